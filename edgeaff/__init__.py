"""edgeaff: audio-visual continuous emotion recognition from training to real-time inference on the edge.

The package is split into three parts with a strict dependency direction (``design.md`` §2):

* :mod:`edgeaff.runtime` — numpy, OpenCV, openSMILE, ONNX Runtime / TensorRT; never torch.
* :mod:`edgeaff.export` — checkpoints to ONNX graphs and TensorRT engines.
* :mod:`edgeaff.train` — the PyTorch model, data preparation and the fit loop.

Importing :mod:`edgeaff` itself imports no subpackage.
"""

__version__ = "0.1.0"
