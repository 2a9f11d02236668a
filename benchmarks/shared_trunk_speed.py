"""Shared trunk + per-model tails (the bundle's visual graph) against one whole backbone per model, side by side.

The per-model graph is exported here from the same checkpoints, exactly as ``edgeaff export`` would write it if
the trunks differed. Both run on ONNX Runtime CPU on the same batch of the prepared trial's face crops; their outputs
must be equal (the trunks are bit-identical), and the ratio is the per-model graph's time over the shared one's.

Usage::

    python benchmarks/shared_trunk_speed.py CHECKPOINT... --bundle BUNDLE --trial PREPARED/TRIAL [--batch 16]
        [--pairs 5] [--threads N] [--work DIR] [--json OUT.json] [--markdown OUT.md]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import assets

from edgeaff.bench.compare import compare_graph_files
from edgeaff.bench.report import build_document, render_markdown, write_json, write_markdown
from edgeaff.bench.stamp import load_average, make_stamp
from edgeaff.bench.stats import Repeats
from edgeaff.runtime.artifacts.bundle import load_bundle
from edgeaff.runtime.limits import usable_cores
from edgeaff.train.checkpoint import load_checkpoint


def _onnx_bytes(path: Path) -> int:
    """Bytes of an ONNX graph with its external weight files (saved beside it as ``<name>*.data``)."""
    return path.stat().st_size + sum(p.stat().st_size for p in path.parent.glob(path.name + "*.data"))


def main() -> int:
    """Parse arguments, export the per-model graph (cached), compare, write."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--trial", type=Path, required=True)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=usable_cores(), help="threads (default: the usable cores)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/edgeaff-bench-work/per-fold"))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    load_before = load_average()
    torch.set_num_threads(args.threads)
    bundle = load_bundle(args.bundle)
    key = hashlib.sha256(b"".join(path.read_bytes() for path in args.checkpoints)).hexdigest()
    per_model = args.work / f"per_model_visual.{key[:16]}.onnx"
    if not per_model.is_file():
        models = [load_checkpoint(path)[0] for path in args.checkpoints]
        assets.per_fold_visual_graph(models, per_model)
        del models
    frames = np.load(args.trial / "frame.npy", mmap_mode="r")
    feed = {"frames": np.ascontiguousarray(frames[: args.batch])}
    timing, difference = compare_graph_files(
        bundle.graphs["visual"].file("fp32"),
        per_model,
        feed,
        Repeats(iterations=args.pairs, warmup=1),
        name="shared_trunk_vs_per_model_backbones",
        labels=("shared trunk + tails", "one backbone per model"),
        frames=args.batch,
        threads=args.threads,
    )
    settings = {
        "backend": "ort-cpu", "precision": "fp32", "models": len(bundle.models), "threads": args.threads,
        "visual_batch": args.batch, "shared_trunk": bundle.shared_trunk,
        "backbone": sorted({m.backbone for m in bundle.models}),
        "trunk_units": bundle.manifest.visual.trunk_units,
    }  # fmt: skip
    stamp = make_stamp(settings=settings, load_before=load_before)
    stamp["versions"]["torch"] = torch.__version__
    checks = {
        "max |shared - per-model| of the embeddings": difference,
        "shared-trunk graph MB": bundle.graphs["visual"].file("fp32").stat().st_size / 1e6,
        "per-model graph MB": _onnx_bytes(per_model) / 1e6,
        "speed-up (median of per-pair ratios)": timing.ratio,
    }
    timing_document = timing.to_dict()
    timing_document["note"] = f"{len(bundle.models)} models, batch {args.batch} face crops of the prepared trial"
    document = build_document(
        stamp=stamp, stages={}, end_to_end=None, comparisons=[timing_document], skipped=[], notes=[], checks=checks
    )
    title = "shared trunk vs one backbone per model (visual graph)"
    print(render_markdown(document, title=title))
    if args.json:
        write_json(document, args.json)
    if args.markdown:
        write_markdown(document, args.markdown, title=title)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
