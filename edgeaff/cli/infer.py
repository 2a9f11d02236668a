"""The ``edgeaff infer`` command (registered in :mod:`edgeaff.cli`): a :class:`~edgeaff.runtime.Pipeline` and the
sinks its options ask for (:func:`~edgeaff.runtime.write_results`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeaff.cli.run_options import (
    BackendOpt,
    BatchOpt,
    BundleOpt,
    ClipOpt,
    DetectEveryOpt,
    DeviceOpt,
    EngineCacheOpt,
    FaceDetectorOpt,
    FaceSelectOpt,
    FacesOpt,
    FolderAudioOpt,
    FolderFpsOpt,
    HaarCascadeOpt,
    MaxFacesOpt,
    PrecisionOpt,
    PublishOpt,
    QosOpt,
    ReconnectOpt,
    ShapeOpt,
    ThreadsOpt,
    TimeoutOpt,
    TrackTimeoutOpt,
    backend_options,
    pipeline_options,
)


def infer_command(
    bundle: BundleOpt,
    source: Annotated[
        str | None,
        typer.Argument(
            help="Video file, folder of aligned faces, camera (0, /dev/video0), csi://N, rtsp://… or http(s)://… "
            "(omit with --prepared)."
        ),
    ] = None,
    out_dir: Annotated[Path, typer.Option("-o", "--output", help="Folder for the result files.")] = Path("."),
    prepared: Annotated[
        Path | None,
        typer.Option("--prepared", metavar="TRIAL_DIR", help="Run on a prepared trial's stored crops and features."),
    ] = None,
    backend: BackendOpt = "ort-cpu",
    precision: PrecisionOpt = "fp32",
    mode: Annotated[
        str | None,
        typer.Option("--mode", help="offline (windows) or stream (causal); default: stream for live sources."),
    ] = None,
    face_detector: FaceDetectorOpt = "dnn",
    haar_cascade: HaarCascadeOpt = None,
    detect_every: DetectEveryOpt = 10,
    face_select: FaceSelectOpt = "largest",
    faces: FacesOpt = None,
    max_faces: MaxFacesOpt = None,
    track_timeout: TrackTimeoutOpt = None,
    clip: ClipOpt = "late",
    threads: ThreadsOpt = None,
    per_model: Annotated[
        bool, typer.Option("--per-model", help="Also write each model's raw predictions (<name>.models.csv).")
    ] = False,
    overlay: Annotated[bool, typer.Option("--overlay", help="Write <name>.overlay.mp4 with box and widget.")] = False,
    plot: Annotated[bool, typer.Option("--plot", help="Write <name>.png with the traces.")] = False,
    live: Annotated[bool, typer.Option("--live", help="Print predictions as they come (stream mode).")] = False,
    max_frames: Annotated[int | None, typer.Option("--max-frames", help="Stop after N frames.")] = None,
    timeout: TimeoutOpt = 10.0,
    reconnect: ReconnectOpt = "on",
    fps: FolderFpsOpt = None,
    audio: FolderAudioOpt = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Stem of the result files (default: the source's).")
    ] = None,
    batch: BatchOpt = None,
    engine_cache: EngineCacheOpt = None,
    shape: ShapeOpt = None,
    device: DeviceOpt = None,
    publish: PublishOpt = None,
    qos: QosOpt = 0,
) -> None:
    """Predict valence/arousal per frame of a video, camera or stream with a bundle (torch-free)."""
    from edgeaff.runtime import (
        InvalidInputError,
        Outputs,
        Pipeline,
        parse_reconnect,
        resolve_output_name,
        write_results,
    )
    from edgeaff.runtime.io.open import LIVE_KINDS, classify
    from edgeaff.runtime.sinks.mqtt import publish_sinks

    if (source is None) == (prepared is None):
        raise InvalidInputError("give either a SOURCE or --prepared TRIAL_DIR (exactly one)")
    if live and mode == "offline":
        raise InvalidInputError("--live prints predictions as they come, which needs --mode stream")
    stem = None if name is None else resolve_output_name(out_dir, name).name
    policy = parse_reconnect(reconnect)  # checked for every source, used for live ones
    per_model = per_model or prepared is not None
    options = pipeline_options(
        backend=backend_options(
            backend=backend, precision=precision, threads=threads, device=device, engine_cache=engine_cache,
            shape=shape,
        ),
        mode=mode, face_detector=face_detector, haar_cascade=haar_cascade, detect_every=detect_every,
        face_select=face_select, faces=faces, max_faces=max_faces, track_timeout=track_timeout, clip=clip,
        batch=batch, per_model=per_model, images=overlay, spool_dir=out_dir,
    )  # fmt: skip

    def note(line: str) -> None:
        typer.echo(line, err=True)

    with Pipeline(bundle, options=options, on_note=note) as pipeline, \
            publish_sinks(publish, qos=qos, model_names=pipeline.model_names) as publishers:  # fmt: skip
        if prepared is not None:
            run = pipeline.run_prepared(prepared, max_frames=max_frames)
        else:
            assert source is not None
            retried = classify(source)[0].value in LIVE_KINDS  # files and folders are never retried
            run = pipeline.run(source, fps=fps, audio=audio, timeout_s=timeout, reconnect=policy if retried else None,
                               max_frames=max_frames)  # fmt: skip
        outputs = Outputs(per_model=per_model, overlay=overlay, plot=plot, live=live)
        write_results(run, out_dir, name=stem, outputs=outputs, echo=note, show=typer.echo, sinks=publishers)
