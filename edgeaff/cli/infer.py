"""The ``edgeaff infer`` command (registered in :mod:`edgeaff.cli`): a :class:`~edgeaff.runtime.Pipeline` and the
sinks its options ask for (:func:`~edgeaff.runtime.write_results`); for many videos at once (a folder of videos, a
glob, a list file, several files), a batch (:mod:`edgeaff.batch`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

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
    RayOpt,
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
    sources: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="SOURCE...",
            help="Video file, folder of aligned faces, camera (0, /dev/video0), csi://N, rtsp://… or http(s)://… "
            "(omit with --prepared). Many videos: a folder of videos (searched recursively), a glob ('clips/**/*.mp4'"
            "), a list file (.txt, one path per line) or several files: one result set per video under -o, in the "
            "input's folder structure, and -o/batch-index.csv.",
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
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help="Many videos: worker processes, each with its own pipeline (1..the cores; default 1); with --ray, "
            "the number of Ray workers (default: what the cluster offers).",
        ),
    ] = None,
    ray: RayOpt = None,
) -> None:
    """Predict valence/arousal per frame of a video, camera or stream, or of many videos, with a bundle
    (torch-free)."""
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

    if bool(sources) == (prepared is not None):
        raise InvalidInputError("give either a SOURCE or --prepared TRIAL_DIR (exactly one)")
    if sources and is_batch(sources):
        _batch(
            sources, out_dir=out_dir, bundle=bundle, workers=workers, ray=ray, max_frames=max_frames,
            outputs=Outputs(per_model=per_model, overlay=overlay, plot=plot),
            refused={"--name": name is not None, "--live": live, "--fps": fps is not None,
                     "--audio": audio is not None, "--publish": publish is not None},
            options=dict(
                backend=backend, precision=precision, threads=threads, device=device, engine_cache=engine_cache,
                shape=shape, mode=mode, face_detector=face_detector, haar_cascade=haar_cascade,
                detect_every=detect_every, face_select=face_select, faces=faces, max_faces=max_faces,
                track_timeout=track_timeout, clip=clip, batch=batch,
            ),
        )  # fmt: skip
        return
    if workers is not None or ray is not None:
        raise InvalidInputError(
            "--workers and --ray run many videos: give a folder of videos, a glob, a list file or several files"
        )
    source = sources[0] if sources else None
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


def is_batch(sources: list[str]) -> bool:
    """Whether the SOURCE arguments ask for a batch: several of them, a glob, a list file, or a folder with videos
    in it and no face images (everything else is one source, as before)."""
    from edgeaff.batch import holds_videos, is_glob, is_list_file
    from edgeaff.runtime.io.face_folder import holds_face_images

    if len(sources) > 1:
        return True
    source = sources[0]
    if is_glob(source) or is_list_file(source):
        return True
    return Path(source).is_dir() and not holds_face_images(source) and holds_videos(source)


def _batch(
    sources: list[str],
    *,
    out_dir: Path,
    bundle: Path,
    workers: int | None,
    ray: str | None,
    max_frames: int | None,
    outputs: Any,
    refused: dict[str, bool],
    options: dict[str, Any],
) -> None:
    """``edgeaff infer`` on many videos (:mod:`edgeaff.batch`)."""
    from edgeaff.batch import BatchSettings, RichProgress, VideoStatus, find_videos, run_batch
    from edgeaff.batch.executors import local_threads
    from edgeaff.runtime import InvalidInputError

    for option, given in refused.items():
        if given:
            raise InvalidInputError(f"{option} applies to one source, not to a batch of videos")
    if ray is None:  # --ray was checked when it was parsed
        local_threads(1 if workers is None else workers, options["threads"])  # checked before any search
    mode = options.pop("mode")
    pipeline = pipeline_options(
        backend=backend_options(**{k: options.pop(k) for k in ("backend", "precision", "threads", "device",
                                                               "engine_cache", "shape")}),
        mode=mode, per_model=outputs.per_model, images=outputs.overlay, spool_dir=out_dir, **options,
    )  # fmt: skip
    settings = BatchSettings.create(bundle, pipeline, outputs=outputs, max_frames=max_frames)
    items = find_videos(sources, out_dir)
    with RichProgress() as progress:
        report = run_batch(
            items,
            out_dir,
            settings,
            workers=workers,
            threads=pipeline.backend.threads,
            ray=ray,
            progress=progress,
        )
    done, failed = report.count(VideoStatus.DONE), report.count(VideoStatus.FAILED)
    frames = report.frames
    speed = frames / report.wall_s if report.wall_s > 0 else 0.0
    parts = [f"{done} done" + (f" ({report.reused} kept from an earlier run)" if report.reused else "")]
    parts += [f"{failed} failed"] if failed else []
    for status in (VideoStatus.INTERRUPTED, VideoStatus.PENDING):
        if report.count(status):
            parts.append(f"{report.count(status)} {status}")
    typer.echo(
        f"{len(items)} videos: {', '.join(parts)}; {frames} frames in {report.wall_s:.1f} s ({speed:.1f} frames/s) -> "
        + ", ".join(str(p) for p in report.index),
        err=True,
    )
    if report.interrupted:
        typer.echo("stopped by the user (Ctrl-C); run the same command again to finish the rest", err=True)
        raise typer.Exit(130)
    if failed:
        raise typer.Exit(1)
