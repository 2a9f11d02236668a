"""Options shared by several commands, defined once: those of the commands that run a bundle (``infer``,
``bench``, ``serve``), and ``--device``, which means the same in every edgeaff command (``cpu``, ``cuda`` or
``cuda:N``; :class:`edgeaff.runtime.Device`).

Each alias is an ``Annotated`` type for a typer parameter; :func:`pipeline_options` turns the values into the
runtime's validated :class:`~edgeaff.runtime.PipelineOptions`, so every command means the same by each option.
Numeric options carry the range checks of :mod:`edgeaff.cli.options` as callbacks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from edgeaff.cli import options

BundleOpt = Annotated[Path, typer.Option("--bundle", help="Bundle directory written by 'edgeaff export'.")]
BackendOpt = Annotated[str, typer.Option("--backend", help="ort-cpu, ort-cuda, ort-trt or trt.")]
PrecisionOpt = Annotated[str, typer.Option("--precision", help="fp32, fp16 or int8 (as exported).")]
ThreadsOpt = Annotated[
    int | None,
    typer.Option(
        "--threads", callback=options.threads, help="ONNX Runtime threads per graph (1..4 × the usable cores)."
    ),
]
RayOpt = Annotated[
    str | None,
    typer.Option(
        "--ray",
        metavar="auto|local|ADDRESS",
        callback=options.ray_address,
        help="Run on Ray: auto (the cluster 'ray start' made here), local (a Ray for this command) or HOST:PORT. "
        "Inputs, weights and the output folder must be on storage every node sees (docs/cluster.md).",
    ),
]
DeviceOpt = Annotated[
    str | None,
    typer.Option("--device", help="cpu, cuda or cuda:N (default: cuda:0 for GPU backends, cpu for ort-cpu)."),
]
TorchDeviceOpt = Annotated[
    str, typer.Option("--device", help="Where PyTorch computes: cpu, cuda or cuda:N (the same meaning as everywhere).")
]
EngineCacheOpt = Annotated[
    Path | None, typer.Option("--engine-cache", metavar="DIR", help="TensorRT engine cache (trt, ort-trt).")
]
ShapeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--shape", metavar="[GRAPH.]AXIS=MIN:OPT:MAX", help="Engine profile ranges, as given to build-engines."
    ),
]
FaceDetectorOpt = Annotated[str, typer.Option("--face-detector", help="dnn (the bundle's BlazeFace) or haar.")]
HaarCascadeOpt = Annotated[
    Path | None, typer.Option("--haar-cascade", help="Haar cascade XML instead of OpenCV's own.")
]
DetectEveryOpt = Annotated[
    int, typer.Option("--detect-every", help="Detect faces at least every N frames, track in between (1..10000).")
]
FaceSelectOpt = Annotated[str, typer.Option("--face-select", help="Whom to follow: largest, center, left or right.")]
FacesOpt = Annotated[
    str | None,
    typer.Option(
        "--faces",
        help="one (default: one subject, --face-select) or all (every face, each with its own track id and "
        "valence/arousal stream; up to 32 at once).",
    ),
]
MaxFacesOpt = Annotated[
    int | None,
    typer.Option("--max-faces", help="Follow every face, at most N at once (1..32; implies --faces all)."),
]
TrackTimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--track-timeout",
        metavar="S",
        help="--faces all: a face not seen for S seconds ends its track (default 2; a face found again before, "
        "near where it was going, keeps its track).",
    ),
]
ClipOpt = Annotated[str, typer.Option("--clip", help="Clip to [-1, 1]: late (after ensembling), early or none.")]
TimeoutOpt = Annotated[
    float,
    typer.Option(
        "--timeout",
        callback=options.timeout,
        help="Live sources: seconds without a frame before giving up (up to 24 h).",
    ),
]
FolderFpsOpt = Annotated[float | None, typer.Option("--fps", help="Frame rate of a folder of face images.")]
FolderAudioOpt = Annotated[
    Path | None, typer.Option("--audio", help="Audio (any media file) for a folder of face images.")
]
ReconnectOpt = Annotated[
    str,
    typer.Option(
        "--reconnect",
        metavar="on|off|attempts=N,interval=S,backoff=X,max-interval=S,give-up=S",
        help="Live sources: reopen a dropped stream with backoff (default on: 0.5 s doubling to 8 s, give up after "
        "60 s without a frame); the frame after a gap is flagged gap=1.",
    ),
]
BatchOpt = Annotated[
    int | None,
    typer.Option(
        "--batch",
        help="Frames per visual graph call, 1..64 (default: offline, measured once for this machine and bundle; "
        "stream mode, the frames already waiting, up to 16).",
    ),
]


def backend_options(
    *,
    backend: str,
    precision: str,
    threads: int | None,
    device: str | None,
    engine_cache: Path | None = None,
    shape: list[str] | None = None,
) -> Any:
    """The runtime's :class:`BackendOptions` for the shared options (validated; one meaning of ``--device``).

    Raises:
        InvalidInputError: a bad value, or a device that does not fit the backend.
    """
    from edgeaff.runtime import Backend, BackendOptions, InvalidInputError, Precision
    from edgeaff.runtime.backends.base import Device
    from edgeaff.runtime.engines.bundle import parse_axis_range

    chosen = Backend.parse(backend)
    where = Device.parse(device) if device is not None else Device("cuda" if chosen.gpu else "cpu")
    if chosen.gpu != (where.kind == "cuda"):
        raise InvalidInputError(
            f"--backend {chosen.value} runs on {'a CUDA GPU' if chosen.gpu else 'the CPU'}, not on --device {where}; "
            + ("use --device cuda or cuda:N" if chosen.gpu else "use --backend ort-cuda, ort-trt or trt for a GPU")
        )
    return BackendOptions(
        backend=chosen,
        precision=Precision.parse(precision),
        threads=threads,
        engine_cache=engine_cache,
        shapes=dict(parse_axis_range(text) for text in shape or []),
        device=where.index,
    )


def pipeline_options(
    *,
    backend: Any,
    mode: str | None = None,
    face_detector: str = "dnn",
    haar_cascade: Path | None = None,
    detect_every: int = 10,
    face_select: str = "largest",
    faces: str | None = None,
    max_faces: int | None = None,
    track_timeout: float | None = None,
    clip: str = "late",
    batch: int | None = None,
    per_model: bool = False,
    images: bool = False,
    spool_dir: Path | None = None,
) -> Any:
    """The runtime's :class:`PipelineOptions` from the shared options (``backend`` from :func:`backend_options`).

    Raises:
        InvalidInputError: ``--faces one`` with ``--max-faces``, or ``--track-timeout`` without more than one face.
    """
    from edgeaff.runtime import Clip, DetectorKind, Faces, FaceSelect, InvalidInputError, Mode, PipelineOptions

    chosen = None if faces is None else Faces.parse(faces)
    if chosen is Faces.ONE and max_faces is not None:
        raise InvalidInputError("--max-faces follows several faces; it cannot go with --faces one")
    multi = chosen is Faces.ALL or max_faces is not None
    if track_timeout is not None and not multi:
        raise InvalidInputError("--track-timeout applies to --faces all / --max-faces only")
    extra: dict[str, Any] = {} if track_timeout is None else {"track_timeout_s": track_timeout}
    return PipelineOptions(
        faces=Faces.ALL if multi else Faces.ONE,
        max_faces=max_faces,
        **extra,
        backend=backend,
        mode=None if mode is None else Mode.parse(mode),
        face_detector=DetectorKind.parse(face_detector),
        haar_cascade=haar_cascade,
        detect_every=detect_every,
        face_select=FaceSelect.parse(face_select),
        clip=Clip.parse(clip),
        batch=batch,
        per_model=per_model,
        images=images,
        spool_dir=spool_dir,
    )


PublishOpt = Annotated[
    str | None,
    typer.Option(
        "--publish",
        metavar="mqtt://HOST:PORT/TOPIC",
        help="Also publish every prediction as JSON to this MQTT broker and topic (mqtts:// for TLS; needs the "
        "serve extra).",
    ),
]
QosOpt = Annotated[
    int, typer.Option("--qos", help="MQTT quality of service for --publish: 0 (at most once), 1 or 2 (exactly once).")
]
