"""Export: fold checkpoints to ONNX graphs, FP16/INT8 variants and TensorRT engines.

This ``__init__`` imports nothing; torch is used only by the torch-to-ONNX exporter.
"""
