# edgeaff runtime image for x86-64 machines with an NVIDIA GPU: ONNX Runtime GPU (CUDA and TensorRT execution
# providers) and the native TensorRT backend. Runtime only: torch is never installed. For Jetson use Dockerfile.jetson.
#
#   docker build -t edgeaff:gpu .
#   docker run --rm --gpus all edgeaff:gpu doctor
#
# CUDA, cuDNN, TensorRT and onnxruntime-gpu must agree with each other: ONNX Runtime 1.22 is built for CUDA 12.x,
# cuDNN 9 and TensorRT 10.9. Change the four build arguments together (docs/desktop-gpu.md).
ARG CUDA_DEVEL_IMAGE=nvcr.io/nvidia/cuda:12.8.1-cudnn-devel-ubuntu24.04
ARG CUDA_RUNTIME_IMAGE=nvcr.io/nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

# Stage 1: a pycuda wheel compiled against this CUDA (the toolkit is only in the devel image).
FROM ${CUDA_DEVEL_IMAGE} AS pycuda
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Versions come from the base image's Ubuntu release, which its tag pins.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential python3-dev python3-venv \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/build \
    && PATH=/usr/local/cuda/bin:/opt/build/bin:${PATH} LIBRARY_PATH=/usr/local/cuda/lib64/stubs \
        pip wheel --no-cache-dir --wheel-dir /wheels "pycuda>=2024.1"

# Stage 2: the runtime.
FROM ${CUDA_RUNTIME_IMAGE}
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG ONNXRUNTIME_GPU="onnxruntime-gpu==1.22.*"
ARG TENSORRT="tensorrt-cu12==10.9.*"
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/edgeaff \
    PATH=/opt/edgeaff/bin:${PATH} \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility,video
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*

# GPU inference libraries. TensorRT's pip wheels fetch their libraries from NVIDIA's own index at install time;
# ONNX Runtime's TensorRT provider finds them through LD_LIBRARY_PATH (python3.12: Ubuntu 24.04's Python). Versions
# are pinned by the build arguments above and by the pycuda stage.
COPY --from=pycuda /wheels /tmp/wheels
# hadolint ignore=DL3013
RUN python3 -m venv "${VIRTUAL_ENV}" \
    && pip install --no-cache-dir /tmp/wheels/pycuda-*.whl "${ONNXRUNTIME_GPU}" "${TENSORRT}" \
    && rm -rf /tmp/wheels
ENV LD_LIBRARY_PATH=/opt/edgeaff/lib/python3.12/site-packages/tensorrt_libs

# edgeaff's dependencies (layer reused while only the code changes), then edgeaff. Installed from the source tree,
# so there is no version to pin; pyproject.toml bounds its dependencies.
WORKDIR /opt/edgeaff-src
COPY pyproject.toml README.md ./
# hadolint ignore=DL3013
RUN mkdir edgeaff && touch edgeaff/__init__.py \
    && pip install --no-cache-dir . \
    && pip uninstall --yes edgeaff \
    && rm -rf edgeaff build
COPY edgeaff ./edgeaff
# hadolint ignore=DL3013
RUN pip install --no-cache-dir --no-deps . && rm -rf build

ENV EDGEAFF_CACHE_DIR=/var/cache/edgeaff
RUN useradd --create-home --uid 10001 --groups video --shell /bin/bash edgeaff \
    && mkdir -p "${EDGEAFF_CACHE_DIR}" /bundles /work \
    && chown edgeaff:edgeaff "${EDGEAFF_CACHE_DIR}" /bundles /work
USER 10001
WORKDIR /work

# Build-time check: no torch, and the CPU path works. GPU backends need a GPU: `docker run --gpus all ... doctor`.
RUN if python -c "import torch" >/dev/null 2>&1; then \
        echo "error: torch is importable in the runtime image; it must not be installed" >&2; \
        exit 1; \
    fi; \
    edgeaff doctor --require ort-cpu --require opencv --require pyav --require opensmile

VOLUME ["/var/cache/edgeaff", "/bundles"]
ENTRYPOINT ["edgeaff"]
CMD ["doctor"]
