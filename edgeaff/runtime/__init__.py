"""edgeaff's runtime, as a library: valence and arousal per video frame from a bundle, torch-free.

The public API (everything below is importable from ``edgeaff.runtime``)::

    from edgeaff.runtime import Pipeline, load_bundle

    bundle = load_bundle("bundle")
    with Pipeline(bundle, backend="ort-cpu", precision="int8", mode="stream") as pipeline:
        for p in pipeline.run("talk.mp4"):          # files, folders of faces, cameras, csi://, rtsp://, http(s)://
            print(p.frame, p.time_s, p.valence, p.arousal, p.face)
        stream = pipeline.open_stream(fps=30.0)     # or push frames and audio your application captures
        ready = stream.push_frame(rgb, t_s) + stream.push_audio(pcm, 48000, t_s)
        rest = stream.close()

Sinks (:mod:`edgeaff.runtime.sinks`) turn predictions into files; :func:`write_results` is ``edgeaff infer``.
Nothing in this package imports torch, :mod:`edgeaff.train` or :mod:`edgeaff.export` (import-linter enforces it).
"""

from edgeaff.runtime.artifacts.bundle import Bundle, BundleError, load_bundle, zero_stream_state
from edgeaff.runtime.artifacts.manifest import Dimension, ModelKind, Precision
from edgeaff.runtime.audio.logmel import LogMelStream
from edgeaff.runtime.audio.mfcc import Mfcc39Stream
from edgeaff.runtime.backends.base import Backend, Device, Runner, TensorSpec
from edgeaff.runtime.backends.cpu_threads import graph_spinning, graph_threads
from edgeaff.runtime.backends.graphs import BackendOptions, GraphChoice, graph_runner
from edgeaff.runtime.backends.ort import OrtRunner
from edgeaff.runtime.backends.trt import TrtRunner
from edgeaff.runtime.cpu import (
    CpuInfo,
    Int8Kernels,
    cpu_flags,
    cpu_model,
    describe_isa,
    host_cpu,
    isa_summary,
    read_cpu_info,
)
from edgeaff.runtime.errors import EdgeaffError, InvalidInputError, MissingDependencyError
from edgeaff.runtime.faces import (
    MAX_FACES,
    DetectorKind,
    FaceDetection,
    FaceResult,
    FaceSelect,
    FaceStage,
    FaceTracks,
    TrackOptions,
)
from edgeaff.runtime.io.open import open_source
from edgeaff.runtime.io.sources import (
    AudioChunk,
    ReconnectPolicy,
    Source,
    SourceGap,
    SourceInfo,
    SourceKind,
    SourceTimeoutError,
    VideoFrame,
    parse_reconnect,
    resolve_output_name,
    safe_stem,
)
from edgeaff.runtime.pipeline.ensemble import CausalCccCentering, Clip, ccc_centering
from edgeaff.runtime.pipeline.graphs import Instrument
from edgeaff.runtime.pipeline.options import Faces, Mode, PipelineOptions
from edgeaff.runtime.pipeline.pipeline import Pipeline, pipeline_options
from edgeaff.runtime.pipeline.plan import DimensionPlan, bundle_dimension_plans
from edgeaff.runtime.pipeline.prediction import Prediction
from edgeaff.runtime.pipeline.run import PipelineRun
from edgeaff.runtime.pipeline.stream import PushStream
from edgeaff.runtime.pipeline.stream_threads import ThreadChoice, tuned_stream_threads
from edgeaff.runtime.pipeline.timing import StageTimer
from edgeaff.runtime.sinks import Outputs, Results, write_results
from edgeaff.runtime.spec import AudioNormalization, FeatureSpec, ScalarStats

__all__ = [
    "MAX_FACES",
    "AudioChunk",
    "AudioNormalization",
    "Backend",
    "BackendOptions",
    "Bundle",
    "BundleError",
    "CausalCccCentering",
    "Clip",
    "CpuInfo",
    "DetectorKind",
    "Device",
    "Dimension",
    "DimensionPlan",
    "EdgeaffError",
    "FaceDetection",
    "FaceResult",
    "FaceSelect",
    "FaceStage",
    "FaceTracks",
    "Faces",
    "FeatureSpec",
    "GraphChoice",
    "Instrument",
    "Int8Kernels",
    "InvalidInputError",
    "LogMelStream",
    "Mfcc39Stream",
    "MissingDependencyError",
    "Mode",
    "ModelKind",
    "OrtRunner",
    "Outputs",
    "Pipeline",
    "PipelineOptions",
    "PipelineRun",
    "Precision",
    "Prediction",
    "PushStream",
    "ReconnectPolicy",
    "Results",
    "Runner",
    "ScalarStats",
    "Source",
    "SourceGap",
    "SourceInfo",
    "SourceKind",
    "SourceTimeoutError",
    "StageTimer",
    "TensorSpec",
    "ThreadChoice",
    "TrackOptions",
    "TrtRunner",
    "VideoFrame",
    "bundle_dimension_plans",
    "ccc_centering",
    "cpu_flags",
    "cpu_model",
    "describe_isa",
    "graph_runner",
    "graph_spinning",
    "graph_threads",
    "host_cpu",
    "isa_summary",
    "load_bundle",
    "open_source",
    "parse_reconnect",
    "pipeline_options",
    "read_cpu_info",
    "resolve_output_name",
    "safe_stem",
    "tuned_stream_threads",
    "write_results",
    "zero_stream_state",
]
