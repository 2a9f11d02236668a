"""The runtime against reference-style PyTorch inference of the same weights, on one prepared trial.

Reference style (``reference.md`` §6.1-6.2): for every fold model, for every 300-frame window (hop 200, the last
window flush with the trial's end), ``model(frames, vggish, mfcc)`` on that window: the backbone runs on every frame
of every window that covers it, and the window's crops and audio are normalised per window as the reference's
dataset does. Window outputs are averaged per frame; folds are merged per dimension by CCC-centering, clipped late.
Windows of one model go through in batches of 8 (the reference's batch size), under ``torch.no_grad``.

Runtime: ``edgeaff infer``'s pipeline over the same trial's stored crops and raw audio features
(:class:`~edgeaff.runtime.io.prepared_trial.PreparedTrialSource`), with the bundle exported from those checkpoints
(FP32, ONNX Runtime CPU): each frame's embeddings once (shared trunk), the temporal graph per window, ensembling,
writing the result files.

The two are timed in alternating pairs in one process (ratio = PyTorch time / runtime time) and their final per-frame
predictions are compared (they must agree within 1e-4).

Usage::

    python benchmarks/reference_speed.py --bundle BUNDLE --trial PREPARED/TRIAL CHECKPOINT... [--pairs 3]
        [--threads N] [--json OUT.json] [--markdown OUT.md]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgeaff.bench.pipeline import PipelineSession
from edgeaff.bench.report import build_document, render_markdown, write_json, write_markdown
from edgeaff.bench.stamp import load_average, make_stamp
from edgeaff.bench.stats import Repeats, time_interleaved
from edgeaff.runtime import BackendOptions, Mode, PipelineOptions, load_bundle
from edgeaff.runtime.artifacts.prepared import load_trial_arrays
from edgeaff.runtime.io.prepared_trial import PreparedTrialSource
from edgeaff.runtime.limits import usable_cores
from edgeaff.runtime.pipeline.ensemble import ccc_centering
from edgeaff.runtime.pipeline.plan import plan_models
from edgeaff.runtime.pipeline.windows import OverlapAverager, window_starts
from edgeaff.train.checkpoint import CheckpointMetadata, load_checkpoint
from edgeaff.train.model import EmotionModel

TOLERANCE = 1e-4
REFERENCE_BATCH = 8  # windows per forward pass (the reference's batch_size)


class ReferenceStyle:
    """Reference-style inference of fold models on one trial's stored crops and raw audio features."""

    def __init__(self, models: Sequence[EmotionModel], metas: Sequence[CheckpointMetadata], trial: Any) -> None:
        self.models, self.metas = list(models), list(metas)
        self.frames = np.asarray(trial.frame)
        self.vggish = np.asarray(trial.vggish, dtype=np.float32)
        self.mfcc = np.asarray(trial.mfcc, dtype=np.float32)
        spec = self.metas[0].feature_spec
        self.window, self.hop = spec.window.length, spec.window.hop
        self.face = spec.face

    def _window_inputs(self, meta: CheckpointMetadata, starts: list[int], length: int) -> dict[str, torch.Tensor]:
        """One batch of windows, normalised as the reference's dataset does it per window."""
        offset, size = self.face.crop_offset, self.face.crop_size
        crops = np.stack([self.frames[s : s + length, offset : offset + size, offset : offset + size] for s in starts])
        scaled = (crops.astype(np.float32) / 255.0 - self.face.scale_mean) / self.face.scale_std
        inputs = {"frames": torch.from_numpy(np.ascontiguousarray(scaled.transpose(0, 1, 4, 2, 3)))}
        if meta.model.multimodal and meta.normalization is not None:
            stats = meta.normalization
            vggish = np.stack([self.vggish[s : s + length] for s in starts])
            mfcc = np.stack([self.mfcc[s : s + length] for s in starts])
            inputs["vggish"] = torch.from_numpy((vggish - stats.vggish.mean) / stats.vggish.std)
            inputs["mfcc"] = torch.from_numpy((mfcc - stats.mfcc.mean) / stats.mfcc.std)
        return inputs

    def model_predictions(self, index: int) -> np.ndarray:
        """One model's per-frame predictions (length,), overlap-averaged over its windows."""
        model, meta = self.models[index], self.metas[index]
        length = len(self.frames)
        starts = window_starts(length, window=self.window, hop=self.hop)
        span = min(self.window, length)
        averager = OverlapAverager(length)
        with torch.no_grad():
            for first in range(0, len(starts), REFERENCE_BATCH):
                batch = starts[first : first + REFERENCE_BATCH]
                outputs = model(**self._window_inputs(meta, batch, span)).numpy()
                for start, values in zip(batch, outputs, strict=True):
                    averager.add(start, values)
        return averager.result()[:, 0]

    def predictions(self, dimensions: Sequence[str]) -> np.ndarray:
        """Final per-frame predictions (frames, dimensions): every model, then CCC-centering per dimension."""
        per_model = np.stack([self.model_predictions(i) for i in range(len(self.models))])
        merged = []
        for dimension in dimensions:
            rows = [i for i, meta in enumerate(self.metas) if meta.dimension == dimension]
            merged.append(ccc_centering(per_model[rows], clip="late"))
        return np.stack(merged, axis=1)

    def warm_up(self) -> None:
        """One short window per model (allocations and kernel choices happen outside the timed calls)."""
        with torch.no_grad():
            for model, meta in zip(self.models, self.metas, strict=True):
                model(**self._window_inputs(meta, [0], 16))


def compare_with_reference(
    bundle_dir: Path, checkpoints: Sequence[Path], trial_dir: Path, *, pairs: int, threads: int
) -> dict[str, Any]:
    """Time the runtime and reference-style PyTorch side by side and compare their predictions; the document."""
    load_before = load_average()
    torch.set_num_threads(threads)
    bundle = load_bundle(bundle_dir)
    loaded = [load_checkpoint(path) for path in checkpoints]
    models, metas = [m for m, _ in loaded], [meta for _, meta in loaded]
    order = [(m.fold, m.dimension.value, m.kind.value) for m in bundle.models]
    if sorted(order) != sorted((meta.fold, meta.dimension, meta.model.kind) for meta in metas):
        raise SystemExit(f"the checkpoints {[str(p) for p in checkpoints]} are not the bundle's models {order}")
    trial = load_trial_arrays(trial_dir, spec=bundle.feature_spec)
    reference = ReferenceStyle(models, metas, trial)
    dimensions = [plan.dimension for plan in plan_models(bundle.models, audio=True)]
    options = PipelineOptions(backend=BackendOptions(threads=threads), mode=Mode.OFFLINE)
    with tempfile.TemporaryDirectory(prefix="edgeaff-reference-") as scratch:
        session = PipelineSession(
            bundle, lambda: PreparedTrialSource(trial_dir, spec=bundle.feature_spec), options=options,
            out_dir=Path(scratch),
        )  # fmt: skip
        with session:
            session.run_pass(max_frames=64)
            reference.warm_up()
            runtime_pass = session.run_pass()
            expected = reference.predictions(dimensions)
            assert tuple(runtime_pass.dimensions) == tuple(dimensions)
            difference = float(np.abs(runtime_pass.predictions - expected).max())
            frames = len(trial.frame)
            starts = window_starts(frames, window=reference.window, hop=reference.hop)
            timing = time_interleaved(
                session.run_pass,
                lambda: reference.predictions(dimensions),
                Repeats(iterations=pairs, warmup=0),
                name="runtime_vs_reference_pytorch",
                labels=("edgeaff runtime (ONNX Runtime FP32)", "reference-style PyTorch (FP32)"),
                frames=(frames, frames),
                note=f"{len(models)} models, {frames} frames, windows at {starts}: PyTorch runs "
                f"{len(starts) * min(reference.window, frames)} backbone passes per model, the runtime {frames}",
            )
    settings = {
        "backend": "ort-cpu",
        "precision": "fp32",
        "models": len(models),
        "folds": len({meta.fold for meta in metas}),
        "backbone": sorted({meta.model.backbone.name for meta in metas}),
        "shared_trunk": bundle.shared_trunk,
        "window": reference.window,
        "hop": reference.hop,
        "threads": threads,
        "trial": str(trial_dir),
        "trial_frames": frames,
        "reference_batch_windows": REFERENCE_BATCH,
    }
    stamp = make_stamp(settings=settings, load_before=load_before)
    stamp["versions"]["torch"] = torch.__version__
    checks = {
        "max |runtime - PyTorch| of the final per-frame predictions": difference,
        "tolerance": TOLERANCE,
        "equal within the tolerance": difference <= TOLERANCE,
        "prediction range": f"[{expected.min():.3f}, {expected.max():.3f}]",
        "speed-up (median of per-pair ratios)": timing.ratio,
    }
    return build_document(
        stamp=stamp, stages={}, end_to_end=None, comparisons=[timing.to_dict()], skipped=[], notes=[], checks=checks
    )


def main() -> int:
    """Parse arguments, compare, print and write."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", type=Path, help="the bundle's fold checkpoints")
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--trial", type=Path, required=True, help="a prepared trial directory")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=usable_cores(), help="threads (default: the usable cores)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    document = compare_with_reference(args.bundle, args.checkpoints, args.trial, pairs=args.pairs, threads=args.threads)
    print(render_markdown(document, title="runtime vs reference-style PyTorch"))
    if args.json:
        write_json(document, args.json)
    if args.markdown:
        write_markdown(document, args.markdown, title="runtime vs reference-style PyTorch")
    return 0 if document["checks"]["equal within the tolerance"] else 1


if __name__ == "__main__":
    sys.exit(main())
