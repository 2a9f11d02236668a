"""`edgeaff doctor`: what this machine can run (libraries, GPU, cameras, Jetson model and power mode)."""
