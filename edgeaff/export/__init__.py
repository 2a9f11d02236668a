"""Export: fold checkpoints to ONNX graphs, FP16/INT8 variants and a self-describing bundle.

This ``__init__`` imports nothing. Modules that use torch: ``torch2onnx`` (the exporter), ``visual_graph``,
``temporal_graph`` and ``streaming`` (the modules it exports), ``parity`` (the PyTorch side of the checks) and
``exporter`` (which loads checkpoints). ``sources``, ``calibration``, ``precision``, ``accuracy``, ``bundle``,
``manifest``, ``detector_bundle`` and ``summary`` are torch-free.
"""
