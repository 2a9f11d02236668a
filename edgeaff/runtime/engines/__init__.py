"""TensorRT engines: build spec, cache key, cache, building and the CUDA context."""
