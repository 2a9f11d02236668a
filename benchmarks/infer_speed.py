"""End-to-end speed of ``edgeaff infer`` on this machine: frames per second and per-stage milliseconds.

Two bundles of random-weight multimodal models (the trunk shared by all models, as training produces it):
``1 fold`` (fold 0, valence and arousal: 2 models) and ``all folds`` (folds 0-5 x valence, arousal: 12 models).
The input is a synthetic 30 fps video of a real face (the public-domain test photo) drifting over a background,
with the speech fixture looped as its sound. Each bundle runs in offline mode and, optionally, stream mode.

Usage::

    python benchmarks/infer_speed.py [--backbone ir-tiny|ir-small|ir50] [--folds 1,6] [--seconds 20]
        [--size 640x480] [--modes offline,stream,stream-b8] [--threads N] [--work DIR] [--json FILE]

``stream-b8`` is stream mode with ``--batch 8`` (frames wait for 8 to embed them together: more throughput,
up to 8 frames more latency).

Bundles are exported into ``--work`` once and reused by later runs (exporting 12 IR-50 models takes a while).
Prints a Markdown table and writes the numbers with the machine, versions and settings as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FACE_PHOTO = REPO / "tests" / "data" / "astronaut_face.jpg"
SPEECH = REPO / "tests" / "data" / "speech_16k.wav"
FPS = 30
STAGES = ("read", "face", "visual", "audio_features", "vggish", "temporal", "ensemble")


def build_bundle(directory: Path, folds: list[int], backbone: str) -> Path:
    """Export random multimodal models for ``folds`` x (valence, arousal) into ``directory/bundle`` (reused)."""
    import torch

    from edgeaff.export.exporter import ExportOptions, export_bundle
    from edgeaff.runtime.spec import AudioNormalization, FeatureSpec, ScalarStats, VggishSpec
    from edgeaff.train import build_model, model_config, save_checkpoint
    from edgeaff.train.checkpoint import tensor_digest
    from edgeaff.train.vggish import random_vggish_state_dict

    bundle = directory / "bundle"
    if (bundle / "manifest.json").is_file():
        return bundle
    directory.mkdir(parents=True, exist_ok=True)
    spec = dataclasses.replace(
        FeatureSpec(),
        vggish=VggishSpec(weights_source="random:0", weights_sha256=tensor_digest(random_vggish_state_dict(0))),
    )
    trunk = None
    paths = []
    for index, (fold, dimension) in enumerate((f, d) for f in folds for d in ("valence", "arousal")):
        torch.manual_seed(index)
        model = build_model(model_config("multimodal", backbone=backbone, fusion="paper")).eval()
        released = {p for group in model.backbone.finetune_groups() for p in group}
        state = model.backbone.state_dict()
        frozen = {k: v for k, v in state.items() if not any(k.startswith(p + ".") for p in released)}
        if trunk is None:
            trunk = frozen
        else:
            model.backbone.load_state_dict(trunk, strict=False)
        path = directory / f"fold{fold}_{dimension}.safetensors"
        stats = AudioNormalization(mfcc=ScalarStats(0.0, 10.0), vggish=ScalarStats(0.0, 1.0))
        save_checkpoint(model, path, dimension=dimension, fold=fold, feature_spec=spec, normalization=stats)
        paths.append(path)
    started = time.perf_counter()
    export_bundle(paths, bundle, options=ExportOptions(parity_frames=4), log=lambda line: print(f"  export: {line}"))
    print(f"  exported {len(paths)} models in {time.perf_counter() - started:.0f} s")
    return bundle


def write_video(path: Path, *, seconds: float, width: int, height: int) -> Path:
    """A face drifting and turning over a soft background, with the speech fixture looped as mono AAC."""
    import av
    import cv2

    face = cv2.imread(str(FACE_PHOTO))
    if face is None:
        raise SystemExit(f"cannot read the face photo {FACE_PHOTO}")
    rng = np.random.default_rng(0)
    noise = rng.integers(40, 200, (height // 40 + 1, width // 40 + 1, 3), dtype=np.uint8)
    background = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    with wave.open(str(SPEECH)) as handle:
        speech = np.frombuffer(handle.readframes(handle.getnframes()), dtype=np.int16).astype(np.float32) / 32768
    frames = round(seconds * FPS)
    audio = np.resize(speech, round(seconds * 16000))
    partial = path.with_name(f".{path.name}.partial")
    container = av.open(str(partial), "w", format="mp4")
    video = container.add_stream("libx264", rate=FPS)
    video.width, video.height, video.pix_fmt = width, height, "yuv420p"
    sound = container.add_stream("aac", rate=16000, layout="mono")
    scale = min(width, height) / 400
    for index in range(frames):
        phase = index / max(frames - 1, 1)
        centre = (width * (0.35 + 0.3 * np.sin(3 * phase)), height * (0.45 + 0.1 * phase))
        matrix = cv2.getRotationMatrix2D((128, 128), 10 * np.sin(6 * phase), scale * (1.0 + 0.2 * phase))
        matrix[:, 2] += np.array(centre) - 128
        warped = cv2.warpAffine(face, matrix, (width, height))
        mask = cv2.warpAffine(np.full((256, 256), 255, np.uint8), matrix, (width, height))
        image = background.copy()
        image[mask > 0] = warped[mask > 0]
        for packet in video.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
            container.mux(packet)
    for packet in video.encode():
        container.mux(packet)
    step = sound.codec_context.frame_size or 1024
    for start in range(0, len(audio), step):
        frame = av.AudioFrame.from_ndarray(audio[None, start : start + step].copy(), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 16000, start
        for packet in sound.encode(frame):
            container.mux(packet)
    for packet in sound.encode():
        container.mux(packet)
    container.close()
    partial.replace(path)  # an interrupted run leaves no broken video to be reused
    return path


def run(bundle: Path, video: Path, *, mode: str, threads: int | None, out: Path) -> dict[str, Any]:
    """One ``edgeaff infer`` run (torch-free code path) and its summary; ``stream-bN`` is stream mode, batch N."""
    from edgeaff.runtime import Pipeline, write_results

    base, _, batch = mode.partition("-b")
    with Pipeline(bundle, threads=threads, mode=base, batch=int(batch) if batch else None) as pipeline:
        result = write_results(pipeline.run(video), out, echo=lambda _: None, show=lambda _: None)
    return result.summary


def _row(name: str, mode: str, models: int, summary: dict[str, Any]) -> str:
    timing = summary["timing_ms"]
    per_frame = [timing.get(stage, {}).get("ms_per_frame") for stage in STAGES]
    cells = ["-" if value is None else f"{value:.2f}" for value in per_frame]
    latency = summary.get("latency_ms") or {}
    shown = f"{latency['p50_ms']:.0f} / {latency['p99_ms']:.0f}" if latency else "-"
    return f"| {name} | {models} | {mode} | {summary['frames_per_second']:.1f} | " + " | ".join(cells) + f" | {shown} |"


def main() -> None:
    """Parse arguments, build what is missing, run, print and save."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="ir-tiny", choices=["ir-tiny", "ir-small", "ir50"])
    parser.add_argument("--folds", default="1,6", help="bundle sizes to run, in folds (2 models each)")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--modes", default="offline,stream,stream-b8")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgeaff-infer-bench")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    work = args.work / args.backbone
    work.mkdir(parents=True, exist_ok=True)
    video = work / f"face_{args.seconds:g}s_{width}x{height}.mp4"
    if not video.is_file():
        write_video(video, seconds=args.seconds, width=width, height=height)
    results = []
    for count in (int(v) for v in args.folds.split(",")):
        folds = list(range(count))
        name = {1: "1 fold", 6: "all folds"}.get(count, f"{count} folds")
        print(f"bundle '{name}' ({args.backbone}, {2 * len(folds)} models)")
        bundle = build_bundle(work / name.replace(" ", "_"), folds, args.backbone)
        for mode in modes:
            summary = run(bundle, video, mode=mode, threads=args.threads, out=work / "out" / name / mode)
            results.append({"bundle": name, "models": 2 * len(folds), "mode": mode, "summary": summary})
            print(f"  {mode}: {summary['frames_per_second']:.1f} frames/s")
    header = "| bundle | models | mode | frames/s | " + " | ".join(f"{s} ms/frame" for s in STAGES)
    lines = [
        f"edgeaff infer, {args.backbone}, {args.seconds:g} s at {FPS} fps, {width}x{height}, ort-cpu fp32, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}",
        "",
        header + " | latency p50 / p99 ms |",
        "|" + "---|" * (len(STAGES) + 5),
    ]
    lines += [_row(r["bundle"], r["mode"], r["models"], r["summary"]) for r in results]
    print("\n".join(lines))
    if args.json is not None:
        document = {
            "benchmark": "infer_speed",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": {
                "platform": platform.platform(),
                "processor": platform.processor(),
                "cpus": os.cpu_count(),
                "load_average_1min": os.getloadavg()[0],
            },
            "settings": {**vars(args), "work": str(args.work), "json": str(args.json), "fps": FPS},
            "results": [
                {k: r[k] for k in ("bundle", "models", "mode")}
                | {
                    "frames": r["summary"]["frames"],
                    "frames_per_second": r["summary"]["frames_per_second"],
                    "wall_s": r["summary"]["wall_s"],
                    "timing_ms": r["summary"]["timing_ms"],
                    "latency_ms": r["summary"]["latency_ms"],
                    "versions": r["summary"]["versions"],
                }
                for r in results
            ],
            "table": lines,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
