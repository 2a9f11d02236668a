"""Audio feature extraction speed on this machine, for a 60 s clip with a 30 fps video.

Times each extractor after warm-up: audio decoding (AAC 48 kHz stereo in mp4 -> 16 kHz mono), the numpy MFCC-39,
openSMILE's MFCC-39, the VGGish log-mel frontend plus one example per video frame, and the VGGish network in
PyTorch (random weights, batches of 30 examples = one second of video).

Usage (from the repository root, edgeaff installed with the train extra)::

    python benchmarks/feature_speed.py [--seconds 60] [--repeats 5] [--threads 2] [--vggish-batches 6]
                                       [--json benchmarks/results/feature_speed.json]

Prints a Markdown table (ms per run: p50 / p90 / min, and × real time from the median) and writes the numbers with
the machine, library versions and settings as JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgeaff.bench.stamp import load_average, make_stamp
from edgeaff.bench.stats import Repeats, latency_stats, time_calls

REPO = Path(__file__).resolve().parents[1]
FPS = 30


def _clip(path: Path, seconds: float) -> Path:
    """A tiny-picture mp4 whose audio is speech-like noise bursts, AAC 48 kHz stereo (a typical camera track)."""
    import av

    rng = np.random.default_rng(0)
    rate = 48000
    t = np.arange(int(seconds * rate)) / rate
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    voice = envelope * (0.2 * np.sin(2 * np.pi * 180 * t * (1 + 0.1 * np.sin(t))) + 0.05 * rng.standard_normal(t.size))
    audio = np.stack([voice, 0.9 * voice]).astype(np.float32)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = container.add_stream("aac", rate=rate, layout="stereo")
        for i in range(int(seconds * FPS)):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i % 256, np.uint8), format="rgb24")
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        step = sound.codec_context.frame_size or 1024
        for start in range(0, audio.shape[1], step):
            block = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(audio[:, start : start + step]), format="fltp", layout="stereo"
            )
            block.sample_rate, block.pts = rate, start
            for packet in sound.encode(block):
                container.mux(packet)
        for packet in sound.encode():
            container.mux(packet)
    return path


def _time(call: Callable[[], Any], repeats: int, warmup: int = 1) -> list[float]:
    """Seconds per call (edgeaff.bench.stats.time_calls gives milliseconds)."""
    return [ms / 1e3 for ms in time_calls(call, Repeats(iterations=repeats, warmup=warmup))]


def _row(name: str, samples: list[float], covered_s: float, note: str) -> dict[str, Any]:
    stats = latency_stats([1e3 * x for x in samples])
    return {
        "stage": name,
        "p50_ms": stats.p50_ms,
        "p90_ms": stats.p90_ms,
        "min_ms": stats.min_ms,
        "runs": stats.count,
        "audio_s": covered_s,
        "x_real_time": covered_s / (stats.p50_ms / 1e3),
        "note": note,
    }


def main() -> None:
    """Run the benchmark and print / write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--vggish-batches", type=int, default=6, help="timed VGGish batches of 30 examples per run")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "feature_speed.json")
    args = parser.parse_args()
    load_before = load_average()

    import torch

    from edgeaff.runtime.audio.alignment import vggish_starts_for_fps
    from edgeaff.runtime.audio.logmel import examples_at_rows, log_mel
    from edgeaff.runtime.audio.mfcc import mfcc39
    from edgeaff.runtime.audio.mfcc_toolkit import mfcc39_opensmile
    from edgeaff.runtime.files import atomic_output
    from edgeaff.runtime.io.audio_track import decode_audio
    from edgeaff.train.vggish import load_vggish

    torch.set_num_threads(args.threads)
    seconds, repeats = args.seconds, args.repeats
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = _clip(Path(tmp) / "clip.mp4", seconds)
        signal = decode_audio(clip)
        rows.append(
            _row(
                "decode (AAC 48k stereo -> 16k mono)",
                _time(lambda: decode_audio(clip), repeats),
                seconds,
                "PyAV + libswresample",
            )
        )
    rows.append(_row("MFCC-39 numpy", _time(lambda: mfcc39(signal), repeats), seconds, f"{len(mfcc39(signal))} rows"))
    rows.append(_row("MFCC-39 openSMILE", _time(lambda: mfcc39_opensmile(signal), repeats), seconds, "opensmile"))

    n_frames = int(seconds * FPS)

    def logmel_examples() -> np.ndarray:
        mel = log_mel(signal)
        return examples_at_rows(mel, vggish_starts_for_fps(np.arange(n_frames), FPS, len(mel)))

    rows.append(
        _row("log-mel + examples (30 per s)", _time(logmel_examples, repeats), seconds, f"{n_frames} examples of 96x64")
    )

    model, _ = load_vggish("random:0")
    batch = torch.from_numpy(logmel_examples()[:30].copy())

    def vggish_batches() -> None:
        with torch.inference_mode():
            for _ in range(args.vggish_batches):
                model(batch)

    vggish_s = _time(vggish_batches, repeats)
    covered = args.vggish_batches * 30 / FPS  # one batch = 30 frames = 1 s of video
    row = _row("VGGish torch fp32, batch 30", vggish_s, covered, "")
    row["ms_per_example"] = row["p50_ms"] / (args.vggish_batches * 30)
    row["note"] = f"{row['ms_per_example']:.2f} ms/example, {args.threads} threads"
    rows.append(row)

    stamp = make_stamp(
        settings={"clip_s": seconds, "fps": FPS, "repeats": repeats, "torch_threads": args.threads},
        load_before=load_before,
    )
    stamp["versions"]["torch"] = torch.__version__
    load = stamp["load_average"]
    print(f"\n{seconds:.0f} s clip, {FPS} fps, {stamp['device']} (load {load['before']} -> {load['after']}), "
          f"torch threads {args.threads}\n")  # fmt: skip
    print("| stage | p50 ms | p90 ms | min ms | × real time | note |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['stage']} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | {r['min_ms']:.1f} | "
            f"{r['x_real_time']:.1f} | {r['note']} |"
        )
    result = {
        "benchmark": "feature_speed",
        "clip_s": seconds,
        "fps": FPS,
        "repeats": repeats,
        "stamp": stamp,  # machine, versions, load average (other work on a shared machine inflates the times)
        "rows": rows,
    }
    with atomic_output(args.json) as tmp_path:
        tmp_path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
