"""Face stage speed on this CPU: detection (whole frame and region), tracking steps, alignment, and the whole stage
at several detection intervals, on a synthetic video of a real face moving across the frame.

Usage::

    python benchmarks/face_speed.py [--frames 150] [--size 640x480] [--threads 1] [--json benchmarks/results/x.json]

Prints a Markdown table (ms per call: p50 / p90 / p99 / mean) and writes the same numbers with the machine,
library versions and settings as JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgeaff.bench.stamp import load_average, make_stamp
from edgeaff.bench.stats import Repeats, latency_stats, time_calls

REPO = Path(__file__).resolve().parents[1]
FACE_PHOTO = REPO / "tests" / "data" / "astronaut_face.jpg"


def _video(frames: int, width: int, height: int) -> Iterator[np.ndarray]:
    """A face drifting across a smooth background (40 % of the width, 20 % of the height over the clip) while
    slowly turning (±10°) and growing (+30 %)."""
    import cv2

    face = cv2.imread(str(FACE_PHOTO))
    if face is None:
        raise SystemExit(f"cannot read the face photo {FACE_PHOTO}")
    rng = np.random.default_rng(0)
    # Large soft blobs, like an out-of-focus room. (Busy high-contrast texture makes the Haar cascade several
    # times slower: ~300 ms instead of ~15 ms per 320x240 frame here.)
    noise = rng.integers(40, 200, (height // 40, width // 40, 3), dtype=np.uint8)
    background = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    base = min(width, height) / 480
    for index in range(frames):
        phase = index / max(frames - 1, 1)
        centre = (width * (0.3 + 0.4 * phase), height * (0.4 + 0.2 * phase))
        matrix = cv2.getRotationMatrix2D((128, 128), 10 * np.sin(6 * phase), base * (1.0 + 0.3 * phase))
        matrix[:, 2] += np.array(centre) - 128
        warped = cv2.warpAffine(face, matrix, (width, height))
        mask = cv2.warpAffine(np.full((256, 256), 255, np.uint8), matrix, (width, height))
        frame = background.copy()
        frame[mask > 0] = warped[mask > 0]
        yield frame


def _stats(samples_s: list[float]) -> dict[str, float]:
    """Milliseconds statistics of samples in seconds (the shared definition in edgeaff.bench.stats)."""
    stats = latency_stats([1e3 * x for x in samples_s])
    return {"min": stats.min_ms, "p50": stats.p50_ms, "p90": stats.p90_ms, "p99": stats.p99_ms,
            "mean": stats.mean_ms, "n": stats.count}  # fmt: skip


def _time(call: Callable[[], Any], repeats: int, warmup: int = 10) -> list[float]:
    """Seconds per call (edgeaff.bench.stats.time_calls gives milliseconds)."""
    return [ms / 1e3 for ms in time_calls(call, Repeats(iterations=repeats, warmup=warmup))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=150, help="frames per stage run")
    parser.add_argument("--size", default="640x480", help="frame size WIDTHxHEIGHT")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads for the detector")
    parser.add_argument("--every", default="1,5,10,30", help="detection intervals to time the whole stage with")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))

    from edgeaff.export.face_detector import convert_face_detector
    from edgeaff.runtime.faces import FaceStage, FaceStageOptions
    from edgeaff.runtime.faces.alignment import alignment_matrix, model_crop, warp_aligned
    from edgeaff.runtime.faces.dnn_detector import DnnFaceDetector
    from edgeaff.runtime.faces.haar_detector import HaarFaceDetector
    from edgeaff.runtime.faces.tracking import KltTracker

    load_before = load_average()
    rows: dict[str, dict[str, float]] = {}
    counts: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = convert_face_detector(None, Path(tmp) / "face_detector.onnx").onnx_path
        frames = list(_video(min(args.frames, 60), width, height))
        frame = frames[len(frames) // 2]

        with DnnFaceDetector.from_files(onnx_path, threads=args.threads) as detector:
            face = detector.detect(frame)[0]
            cx, cy = face.center
            half = max(face.width, face.height)
            region = (cx - half, cy - half, cx + half, cy + half)
            tensor, _ = detector.preprocess(frame, (0, 0, width, height))
            raw = detector.runner.infer({detector.spec.input_name: tensor})
            rows["detector: preprocess (warp + scale)"] = _stats(
                _time(lambda: detector.preprocess(frame, (0, 0, width, height)), 300)
            )
            rows["detector: inference only (ORT)"] = _stats(
                _time(lambda: detector.runner.infer({detector.spec.input_name: tensor}), 300)
            )
            rows["detector: decode + NMS"] = _stats(
                _time(lambda: detector.decode(raw[detector.spec.boxes_output], raw[detector.spec.scores_output]), 300)
            )
            rows["detect, whole frame"] = _stats(_time(lambda: detector.detect(frame), 300))
            rows["detect, region around the face"] = _stats(_time(lambda: detector.detect(frame, roi=region), 300))
            face = detector.detect(frame, roi=region)[0]

        tracker = KltTracker()
        samples = []
        for _ in range(3):
            tracker.start(frames[0], _first_face(onnx_path, frames[0]))
            for nxt in frames[1:]:
                start = time.perf_counter()
                moved = tracker.step(nxt)
                samples.append(time.perf_counter() - start)
                if moved is None:
                    break
        rows["track one step (optical flow)"] = _stats(samples)

        points = face.keypoints[[0, 1, 2, 3]].astype(np.float64)  # type: ignore[index]
        rows["align: similarity fit"] = _stats(_time(lambda: alignment_matrix(points), 1000))
        matrix = alignment_matrix(points)
        rows["align: warp to 112x112"] = _stats(_time(lambda: warp_aligned(frame, matrix), 1000))
        aligned = warp_aligned(frame, matrix)
        rows["align: Pillow bicubic to 48x48"] = _stats(_time(lambda: model_crop(aligned), 1000))

        with HaarFaceDetector() as haar:
            rows["Haar detect, whole frame (320 px wide)"] = _stats(_time(lambda: haar.detect(frame), 30, warmup=3))

        video = list(_video(args.frames, width, height))
        for every in (int(v) for v in args.every.split(",")):
            for kind in ("dnn", "haar"):
                if kind == "haar" and every not in (1, 10):
                    continue
                options = FaceStageOptions(detect_every=every)
                stage = (
                    FaceStage.dnn(onnx_path, threads=args.threads, options=options)
                    if kind == "dnn"
                    else FaceStage.haar(options=options)
                )
                with stage:
                    for warm in video[:10]:
                        stage.process(warm)
                    stage.reset()
                    stage.counts = {"detected": 0, "tracked": 0, "missing": 0}
                    samples = []
                    for item in video:
                        start = time.perf_counter()
                        stage.process(item)
                        samples.append(time.perf_counter() - start)
                label = f"stage ({kind}), detect every {every} frame{'s' if every > 1 else ''}"
                rows[label] = _stats(samples)
                counts[label] = dict(stage.counts)

    settings = {"frame_size": [width, height], "frames": args.frames, "detector_threads": args.threads}
    stamp = make_stamp(settings=settings, load_before=load_before)
    load = stamp["load_average"]
    print(
        f"\nFace stage, {width}x{height} frames, {args.frames} frames per stage run, detector threads "
        f"{args.threads}; {stamp['device']}; load average {load['before']} -> {load['after']}\n"
    )
    print("| what | min ms | p50 ms | p90 ms | p99 ms | mean ms | n |")
    print("|---|---|---|---|---|---|---|")
    for name, row in rows.items():
        extra = f" ({counts[name]})" if name in counts else ""
        cells = " | ".join(f"{row[key]:.3f}" for key in ("min", "p50", "p90", "p99", "mean"))
        print(f"| {name}{extra} | {cells} | {row['n']} |")
    result = {
        "stamp": stamp,
        "ms": rows,
        "stage_counts": counts,
    }
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {args.json}")


def _first_face(onnx_path: Path, frame: np.ndarray) -> Any:
    from edgeaff.runtime.faces.dnn_detector import DnnFaceDetector

    with DnnFaceDetector.from_files(onnx_path) as detector:
        return detector.detect(frame)[0]


if __name__ == "__main__":
    main()
