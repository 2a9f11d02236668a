"""The ``edgeaff infer`` command (registered in :mod:`edgeaff.cli`); its work is in :mod:`edgeaff.runtime.pipeline`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def infer_command(
    bundle: Annotated[Path, typer.Option("--bundle", help="Bundle directory written by 'edgeaff export'.")],
    source: Annotated[
        str | None,
        typer.Argument(
            help="Video file, folder of aligned faces, camera (0, /dev/video0), csi://N or rtsp://… "
            "(omit with --prepared)."
        ),
    ] = None,
    out_dir: Annotated[Path, typer.Option("-o", "--output", help="Folder for the result files.")] = Path("."),
    prepared: Annotated[
        Path | None,
        typer.Option("--prepared", metavar="TRIAL_DIR", help="Run on a prepared trial's stored crops and features."),
    ] = None,
    backend: Annotated[str, typer.Option("--backend", help="ort-cpu, ort-cuda, ort-trt or trt.")] = "ort-cpu",
    precision: Annotated[str, typer.Option("--precision", help="fp32, fp16 or int8 (as exported).")] = "fp32",
    mode: Annotated[
        str | None,
        typer.Option("--mode", help="offline (windows) or stream (causal); default: stream for live sources."),
    ] = None,
    face_detector: Annotated[
        str, typer.Option("--face-detector", help="dnn (the bundle's BlazeFace) or haar.")
    ] = "dnn",
    haar_cascade: Annotated[
        Path | None, typer.Option("--haar-cascade", help="Haar cascade XML instead of OpenCV's own.")
    ] = None,
    detect_every: Annotated[
        int, typer.Option("--detect-every", help="Detect faces at least every N frames, track in between.")
    ] = 10,
    face_select: Annotated[
        str, typer.Option("--face-select", help="Whom to follow: largest, center, left or right.")
    ] = "largest",
    clip: Annotated[str, typer.Option("--clip", help="Clip to [-1, 1]: late (after ensembling), early or none.")] = (
        "late"
    ),
    threads: Annotated[int | None, typer.Option("--threads", help="ONNX Runtime threads per graph.")] = None,
    per_model: Annotated[
        bool, typer.Option("--per-model", help="Also write each model's raw predictions (<name>.models.csv).")
    ] = False,
    overlay: Annotated[bool, typer.Option("--overlay", help="Write <name>.overlay.mp4 with box and widget.")] = False,
    plot: Annotated[bool, typer.Option("--plot", help="Write <name>.png with the traces.")] = False,
    live: Annotated[bool, typer.Option("--live", help="Print predictions as they come (stream mode).")] = False,
    max_frames: Annotated[int | None, typer.Option("--max-frames", help="Stop after N frames.")] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Live sources: seconds without a frame before giving up.")
    ] = 10.0,
    fps: Annotated[float | None, typer.Option("--fps", help="Frame rate of a folder of face images.")] = None,
    audio: Annotated[
        Path | None, typer.Option("--audio", help="Audio (any media file) for a folder of face images.")
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Stem of the result files (default: the source's).")
    ] = None,
    batch: Annotated[
        int | None,
        typer.Option("--batch", help="Frames per visual graph call (default 16 offline, 1 in stream mode)."),
    ] = None,
    engine_cache: Annotated[
        Path | None, typer.Option("--engine-cache", metavar="DIR", help="TensorRT engine cache (trt, ort-trt).")
    ] = None,
    shape: Annotated[
        list[str] | None,
        typer.Option(
            "--shape", metavar="[GRAPH.]AXIS=MIN:OPT:MAX", help="Engine profile ranges, as given to build-engines."
        ),
    ] = None,
    device: Annotated[int, typer.Option("--device", help="CUDA device ordinal (GPU backends).")] = 0,
) -> None:
    """Predict valence/arousal per frame of a video, camera or stream with a bundle (torch-free)."""
    from edgeaff.runtime.backends.graphs import BackendOptions
    from edgeaff.runtime.engines.bundle import parse_axis_range
    from edgeaff.runtime.errors import InvalidInputError
    from edgeaff.runtime.pipeline.infer import InferOptions, infer_prepared, infer_source

    if (source is None) == (prepared is None):
        raise InvalidInputError("give either a SOURCE or --prepared TRIAL_DIR (exactly one)")
    backend_options = BackendOptions(
        backend=backend,
        precision=precision,
        threads=threads,
        engine_cache=engine_cache,
        shapes=dict(parse_axis_range(text) for text in shape or []),
        device=device,
    )
    options = InferOptions(
        backend=backend_options,
        mode=mode,
        face_detector=face_detector,
        haar_cascade=haar_cascade,
        detect_every=detect_every,
        face_select=face_select,
        clip=clip,
        per_model=per_model,
        overlay=overlay,
        plot=plot,
        live=live,
        max_frames=max_frames,
        timeout_s=timeout,
        fps=fps,
        audio=audio,
        name=name,
        batch=batch,
    )

    def note(line: str) -> None:
        typer.echo(line, err=True)

    if prepared is not None:
        infer_prepared(prepared, bundle, out_dir, options=options, echo=note)
    else:
        assert source is not None
        infer_source(source, bundle, out_dir, options=options, echo=note, show=typer.echo)
