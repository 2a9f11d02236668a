"""Speed of ``edgeaff infer --faces all`` with 1, 2 and 4 people in the picture: frames/s and the cost per face.

The input is a synthetic 30 fps video per face count: the two public-domain photographs of edgeaff's synthetic
dataset (``edgeaff/synth/assets``), cut out with its head mask, drifting in a grid over a smooth background (nobody
overlaps anybody), with the speech fixture looped as sound. The bundle holds random-weight multimodal models
(``benchmarks/infer_speed.py``'s bundle: valence and arousal of the given folds, trunk shared).

Per face count and mode it runs the public :class:`~edgeaff.runtime.Pipeline` (``faces="all"``), plus the
single-subject pipeline on the one-face video as the baseline, and reports frames/s, milliseconds per frame, the
face stage's and the visual graph's milliseconds per frame, and the extra milliseconds per frame each additional
face costs: ``(ms/frame at N faces - ms/frame at 1 face) / (N - 1)``.

Usage::

    python benchmarks/multi_face_speed.py [--faces 1,2,4] [--seconds 10] [--folds 1] [--backbone ir-tiny]
        [--modes offline,stream] [--threads N] [--work DIR] [--json FILE]

Speeds measured while other programs use the machine are not comparable with quiet ones: the JSON records the
load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from infer_speed import SPEECH, build_bundle  # noqa: E402

FPS = 30
SIZE = (640, 360)


def _people(count: int) -> list[tuple[np.ndarray, np.ndarray, float, float, float]]:
    """(RGBA cut-out, 2x3 placement base, x, y, eye distance) of ``count`` people in a grid."""
    from edgeaff.synth.faces import load_face_photos, make_identity

    photos = load_face_photos()
    columns = min(count, 4)  # one row up to four people (the whole-frame detector needs ~30 px between the eyes)
    rows = (count + columns - 1) // columns
    eyes = 44.0 if count <= 2 else 36.0 if rows == 1 else 30.0
    people = []
    for k in range(count):
        photo = photos[k % len(photos)]
        identity = make_identity(f"p{k}", photo, np.random.default_rng(k), mirrored=k >= len(photos))
        x = SIZE[0] * (0.5 + (k % columns)) / columns
        y = SIZE[1] * (0.5 + (k // columns)) / rows
        people.append((identity.image, identity.landmarks, x, y, eyes / identity.eye_distance))
    return people


def write_video(path: Path, faces: int, seconds: float) -> Path:
    """The benchmark video with ``faces`` people (H.264 + AAC)."""
    import av
    import cv2

    rng = np.random.default_rng(0)
    background = cv2.resize(rng.integers(40, 200, (SIZE[1] // 8, SIZE[0] // 8, 3), dtype=np.uint8), SIZE)
    people = _people(faces)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        video.options = {"crf": "18", "preset": "veryfast"}
        sound = container.add_stream("aac", rate=16000, layout="mono")
        for index in range(round(seconds * FPS)):
            frame: np.ndarray = background.astype(np.float32)
            for k, (rgba, points, x, y, scale) in enumerate(people):
                centre = points[[0, 1, 3, 4]].mean(axis=0)
                dx, dy = 8 * np.sin(index / 15 + k), 4 * np.cos(index / 19 + k)
                matrix = np.array([[scale, 0, x + dx - scale * centre[0]], [0, scale, y + dy - scale * centre[1]]])
                warped = cv2.warpAffine(rgba, matrix, SIZE, flags=cv2.INTER_AREA)
                alpha = warped[:, :, 3:4].astype(np.float32) / 255
                frame = frame * (1 - alpha) + warped[:, :, 2::-1] * alpha
            image = av.VideoFrame.from_ndarray(np.clip(frame, 0, 255).astype(np.uint8), format="bgr24")
            for packet in video.encode(image):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        import wave

        with wave.open(str(SPEECH)) as handle:
            pcm = np.frombuffer(handle.readframes(handle.getnframes()), np.int16).astype(np.float32) / 32768
        pcm = np.tile(pcm, int(np.ceil(seconds * 16000 / len(pcm))))[: round(seconds * 16000)]
        step = sound.codec_context.frame_size or 1024
        for start in range(0, len(pcm), step):
            block = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm[None, start : start + step]), format="fltp",
                                               layout="mono")  # fmt: skip
            block.sample_rate, block.pts = 16000, start
            for packet in sound.encode(block):
                container.mux(packet)
        for packet in sound.encode():
            container.mux(packet)
    return path


def measure(bundle: Path, video: Path, *, mode: str, multi: bool, threads: int | None) -> dict[str, Any]:
    """One pass of the pipeline over ``video``: frames/s and per-stage milliseconds per frame."""
    from edgeaff.runtime import Pipeline, StageTimer

    settings: dict[str, Any] = {"mode": mode, "threads": threads}
    if multi:
        settings["faces"] = "all"
    with Pipeline(bundle, **settings) as pipeline:
        list(pipeline.run(video, max_frames=32))  # warm-up: every graph and stage once
        timer = StageTimer()
        start = time.perf_counter()
        run = pipeline.run(video, timer=timer)
        predictions = list(run)
        wall = time.perf_counter() - start
        report = run.report()
    frames = report["frames"]
    stages = timer.summary()
    per_frame = {k: v["total_ms"] / frames for k, v in stages.items() if k != "latency"}
    tracks = report["tracks"]["started"] if report["tracks"] else 1
    return {
        "mode": mode,
        "faces_mode": "all" if multi else "one",
        "frames": frames,
        "tracks": tracks,
        "predictions": len(predictions),
        "wall_s": wall,
        "frames_per_s": frames / wall,
        "ms_per_frame": 1000 * wall / frames,
        "face_ms_per_frame": per_frame.get("face", 0.0),
        "visual_ms_per_frame": per_frame.get("visual", 0.0),
        "visual_ms_per_crop": stages["visual"]["ms_per_frame"] if "visual" in stages else None,
        "temporal_ms_per_frame": per_frame.get("temporal", 0.0),
        "vggish_ms_per_frame": per_frame.get("vggish", 0.0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", default="1,2,4")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--folds", default="1")
    parser.add_argument("--backbone", default="ir-tiny")
    parser.add_argument("--modes", default="offline,stream")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgeaff-multi-face-bench")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    counts = [int(v) for v in args.faces.split(",")]
    folds = list(range(int(args.folds)))
    bundle = build_bundle(args.work / f"{args.backbone}-{len(folds)}fold", folds, args.backbone)
    load_before = os.getloadavg()
    rows = []
    for mode in args.modes.split(","):
        for count in counts:
            video = args.work / f"faces{count}-{args.seconds:g}s.mp4"
            if not video.is_file():
                write_video(video, count, args.seconds)
            if count == 1:
                rows.append({"faces": 1, **measure(bundle, video, mode=mode, multi=False, threads=args.threads)})
            rows.append({"faces": count, **measure(bundle, video, mode=mode, multi=True, threads=args.threads)})
    load_after = os.getloadavg()
    for mode in args.modes.split(","):
        base = next(r for r in rows if r["mode"] == mode and r["faces"] == 1 and r["faces_mode"] == "all")
        for row in rows:
            if row["mode"] == mode and row["faces"] > 1:
                row["extra_ms_per_face"] = (row["ms_per_frame"] - base["ms_per_frame"]) / (row["faces"] - 1)
    print(f"load average before {load_before[0]:.2f} {load_before[1]:.2f}, after {load_after[0]:.2f} "
          f"{load_after[1]:.2f} ({os.cpu_count()} CPUs)")  # fmt: skip
    print("| mode | faces | --faces | tracks | frames/s | ms/frame | face ms | visual ms | visual ms/crop | "
          "+ms per extra face |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        extra = r.get("extra_ms_per_face")
        print(f"| {r['mode']} | {r['faces']} | {r['faces_mode']} | {r['tracks']} | {r['frames_per_s']:.1f} | "
              f"{r['ms_per_frame']:.1f} | {r['face_ms_per_frame']:.1f} | {r['visual_ms_per_frame']:.1f} | "
              f"{r['visual_ms_per_crop']:.2f} | {'' if extra is None else f'{extra:.1f}'} |")  # fmt: skip
    if args.json is not None:
        document = {
            "machine": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": load_after,
            "bundle": {"backbone": args.backbone, "folds": folds},
            "seconds": args.seconds,
            "rows": rows,
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
