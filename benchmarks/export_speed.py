"""Export benchmark: shared trunk vs per-fold backbones, and FP32 vs FP16 vs INT8 (ONNX Runtime, CPU).

Builds ``--folds`` fold models (random weights, one shared frozen trunk, BatchNorm statistics settled), a synthetic
prepared-data directory, and exports them with ``--fp16 --int8 --calib``. The labels of the synthetic data are the
FP32 ensemble's own predictions plus noise (a teacher signal, so CCC against labels is meaningful and its drop
measures what reduced precision loses); frames are smooth moving blobs with noise. Random weights make INT8 figures
indicative only.

Reports: visual graph size and latency for shared trunk vs per-fold backbones (same outputs), FP32/FP16/INT8
latency at batch ``--batch`` with ``--threads`` threads (min, p50, p90 over ``--runs``), and the CCC figures the
export measured. Prints a Markdown table and writes JSON.

Usage:
    python benchmarks/export_speed.py --backbone ir50 --folds 3 --json benchmarks/results/export_speed_cpu.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from assets import build_models, per_fold_visual_graph

from edgeaff.bench.compare import compare_graph_files
from edgeaff.bench.stamp import load_average, make_stamp
from edgeaff.bench.stats import Repeats, latency_stats, time_calls
from edgeaff.export.exporter import ExportOptions, export_bundle
from edgeaff.runtime.artifacts.bundle import load_bundle
from edgeaff.runtime.backends.ort import OrtRunner
from edgeaff.train import save_checkpoint
from edgeaff.train.model import EmotionModel


def build_folds(backbone: str, folds: int) -> list[EmotionModel]:
    """Unimodal fold models with one shared frozen trunk and fold-specific tails and heads."""
    return build_models(folds, backbone=backbone, kind="unimodal")


def blob_frames(rng: np.random.Generator, length: int) -> np.ndarray:
    """Smooth moving bright blobs on a dark background plus noise: (length, 48, 48, 3) uint8."""
    yy, xx = np.mgrid[0:48, 0:48].astype(np.float32)
    centres = np.cumsum(rng.normal(0, 0.6, (length, 3, 2)), axis=0) + 24
    colours = rng.uniform(60, 200, (3, 3))
    frames = np.full((length, 48, 48, 3), 30.0, np.float32)
    for blob in range(3):
        cy, cx = centres[:, blob, 0, None, None], centres[:, blob, 1, None, None]
        weight = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 8.0**2))
        frames += weight[..., None] * colours[blob]
    frames += rng.normal(0, 6, frames.shape)
    return np.clip(frames, 0, 255).astype(np.uint8)


def write_synthetic(directory: Path, models: list[EmotionModel], *, trials: dict[str, tuple[str, int]]) -> None:
    """Prepared-data layout whose valence labels are the ensemble's FP32 predictions plus noise."""
    rng = np.random.default_rng(0)
    index = {}
    for name, (partition, length) in trials.items():
        frames = blob_frames(rng, length)
        start, stop = 4, 44
        crops = frames[:, start:stop, start:stop].astype(np.float32).transpose(0, 3, 1, 2)
        x = torch.from_numpy((crops / 255.0 - 0.5) / 0.5)[None]
        with torch.no_grad():
            teacher = torch.stack([m(x)[0] for m in models]).mean(0).numpy()
        noise = rng.normal(0, 0.5 * float(teacher.std()) + 1e-6, length)
        labels = np.stack([teacher + noise, np.zeros(length)], axis=1).astype(np.float32)
        folder = directory / name
        folder.mkdir(parents=True)
        np.save(folder / "frame.npy", frames)
        np.save(folder / "mfcc.npy", rng.normal(0, 1, (length, 39)).astype(np.float32))
        np.save(folder / "vggish.npy", rng.normal(0, 1, (length, 128)).astype(np.float32))
        np.save(folder / "label.npy", labels)
        index[name] = {"partition": partition, "length": length, "fps": 30.0}
    (directory / "dataset.json").write_text(json.dumps({"trials": index}))


def time_graph(path: Path, frames: np.ndarray, *, threads: int, runs: int) -> dict[str, float]:
    """min / p50 / p90 / p99 milliseconds of one visual-graph call, after two warm-up calls."""
    with OrtRunner(path, threads=threads) as runner:
        stats = latency_stats(time_calls(lambda: runner.infer({"frames": frames}), Repeats(iterations=runs)))
    return {key: getattr(stats, key) for key in ("min_ms", "p50_ms", "p90_ms", "p99_ms")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="ir50")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/export_speed_cpu.json"))
    args = parser.parse_args()

    load_before = load_average()
    models = build_folds(args.backbone, args.folds)
    with tempfile.TemporaryDirectory(prefix="edgeaff-bench-") as scratch:
        root = Path(scratch)
        paths = []
        for fold, model in enumerate(models):
            paths.append(root / f"fold{fold}.safetensors")
            save_checkpoint(model, paths[-1], dimension="valence", fold=fold)
        write_synthetic(
            root / "prepared",
            models,
            trials={"a": ("Train_Set", 160), "b": ("Train_Set", 160), "v": ("Validation_Set", 300)},
        )
        started = time.perf_counter()
        result = export_bundle(
            paths,
            root / "bundle",
            options=ExportOptions(fp16=True, int8=True, calib=root / "prepared", calibration_frames=256),
            log=lambda line: print(line, file=sys.stderr),
        )
        export_seconds = time.perf_counter() - started
        bundle = load_bundle(result.path)
        per_fold = per_fold_visual_graph(models, root / "per_fold_visual.onnx")
        frames = blob_frames(np.random.default_rng(1), args.batch)
        rows = {
            "shared trunk fp32": bundle.graphs["visual"].file("fp32"),
            "per-fold fp32": per_fold,
            "shared trunk fp16": bundle.graphs["visual"].file("fp16"),
            "shared trunk int8": bundle.graphs["visual"].file("int8"),
        }
        paired, shared_vs_per_fold = compare_graph_files(
            rows["shared trunk fp32"],
            per_fold,
            {"frames": frames},
            Repeats(iterations=args.runs, warmup=1),
            name="shared_trunk_vs_per_fold",
            labels=("shared trunk fp32", "per-fold fp32"),
            frames=args.batch,
            threads=args.threads,
        )
        timings = {
            name: {"bytes": path.stat().st_size, **time_graph(path, frames, threads=args.threads, runs=args.runs)}
            for name, path in rows.items()
        }
    ccc = result.manifest.parity["ccc"]
    stamp = make_stamp(
        settings={"backbone": args.backbone, "folds": args.folds, "batch": args.batch, "threads": args.threads},
        load_before=load_before,
    )
    report = {
        "stamp": stamp,
        "versions": dict(result.manifest.versions),
        "backbone": args.backbone,
        "folds": args.folds,
        "batch": args.batch,
        "threads": args.threads,
        "runs": args.runs,
        "export_seconds": export_seconds,
        "shared_vs_per_fold_max_abs": shared_vs_per_fold,
        "visual": timings,
        "speedup_int8_vs_fp32": timings["shared trunk fp32"]["p50_ms"] / timings["shared trunk int8"]["p50_ms"],
        "speedup_shared_vs_per_fold": timings["per-fold fp32"]["p50_ms"] / timings["shared trunk fp32"]["p50_ms"],
        "shared_vs_per_fold_paired": paired.to_dict(),
        "ccc": ccc,
        "fp32_parity": result.manifest.parity["fp32_vs_pytorch"],
    }
    lines = [
        f"visual graph, {args.backbone} x {args.folds} folds, batch {args.batch}, {args.threads} threads, "
        "ONNX Runtime CPU",
        "",
        "| graph | size MB | min ms | p50 ms | p90 ms | ms/frame |",
        "|---|---|---|---|---|---|",
    ]
    for name, t in timings.items():
        lines.append(
            f"| {name} | {t['bytes'] / 1e6:.1f} | {t['min_ms']:.1f} | {t['p50_ms']:.1f} | {t['p90_ms']:.1f} "
            f"| {t['p50_ms'] / args.batch:.2f} |"
        )
    mean = lambda values: sum(values) / len(values)  # noqa: E731
    lines += [
        "",
        f"shared vs per-fold: max |diff| {shared_vs_per_fold:.1e}, "
        f"speed-up x{report['speedup_shared_vs_per_fold']:.2f} (p50s), x{paired.ratio:.2f} (median of "
        f"{paired.pairs} alternating pairs)",
        f"INT8 vs FP32 speed-up x{report['speedup_int8_vs_fp32']:.2f}",
        f"CCC vs labels ({ccc['frames']} frames): fp32 {mean(ccc['fp32']['ccc_labels']):.4f}, "
        f"fp16 drop {mean(ccc['fp16']['ccc_drop']):+.4f} (vs fp32 {mean(ccc['fp16']['ccc_vs_fp32']):.5f}), "
        f"int8 drop {mean(ccc['int8']['ccc_drop']):+.4f} (vs fp32 {mean(ccc['int8']['ccc_vs_fp32']):.5f})",
        f"export took {export_seconds:.0f} s",
    ]
    print("\n".join(lines))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
