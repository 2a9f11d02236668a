"""FLOPs of the exact exported networks and the frames/s they allow on Jetson Orin modules: CEILINGS, not measurements.

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` (2 x multiply-accumulates of convolutions and
matrix products; BatchNorm, activations, softmax and normalisations are not counted) on the modules ``edgeaff
export`` turns into ONNX: the visual graph (shared trunk + per-model tails, and the per-fold alternative), VGGish
(one example per video frame, as the reference's features), the windowed temporal graph (one 300-frame window per
200 frames offline) and the streaming graph (one frame). The face detector is counted from its ONNX graph.

Ceiling frames/s = peak operations per second / FLOPs per frame, at three utilisations:

* 100 %: the physical limit;
* ~40 %: what NVIDIA's own MLPerf v3.1 ResNet-50 INT8 *Offline* submissions reached on AGX Orin and Orin NX
  (batched, GPU + both DLAs; samples/s x 8.18 GFLOPs / dense peak) -- a well-tuned batched pipeline;
* ~15 %: the same for *SingleStream* (batch 1, GPU only) on AGX Orin -- a frame-at-a-time stream.

Peaks (anchors.md §4.2, feasibility.md §4): dense INT8 = 1/2 the GPU's sparse INT8 TOPS, dense FP16 tensor = 1/2
dense INT8, FP32 = CUDA cores x 2 x clock. Also a batch-1 memory bound: every weight read once per frame.

Usage::

    python benchmarks/jetson_ceilings.py CHECKPOINT... [--bundle BUNDLE] [--json OUT.json] [--markdown OUT.md]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from edgeaff.export.streaming import StreamingEnsemble
from edgeaff.export.temporal_graph import TemporalEnsemble
from edgeaff.export.visual_graph import TrunkPlan, VisualEnsemble, plan_trunks
from edgeaff.runtime.files import atomic_output
from edgeaff.train.checkpoint import load_checkpoint
from edgeaff.train.vggish import load_vggish


@dataclasses.dataclass(frozen=True)
class Device:
    """A Jetson module's GPU peaks (TFLOPS / TOPS, dense) and memory bandwidth (GB/s)."""

    name: str
    fp32: float
    fp16: float
    int8: float
    bandwidth: float
    source: str


DEVICES = (
    Device("Orin Nano 8GB (625 MHz)", 1.28, 10.0, 20.0, 68.0, "40 sparse INT8 TOPS; 1024 CUDA cores"),
    Device("Orin Nano 8GB Super (1020 MHz)", 2.09, 16.75, 33.5, 102.0, "67 sparse INT8 TOPS; JetPack 6.2 Super mode"),
    Device("Orin NX 16GB (918 MHz)", 1.88, 15.0, 30.0, 102.4, "100 TOPS incl. 2 DLAs; GPU ~60 sparse INT8"),
    Device("AGX Orin 64GB (1.3 GHz)", 5.3, 42.5, 85.0, 204.8, "GPU 170 sparse INT8 TOPS; 2048 CUDA cores"),
)
RESNET50_GFLOPS = 8.176  # ResNet-50 at 224x224 (feasibility.md §2)
# MLPerf Inference v3.1 closed, NVIDIA (anchors.md §4.1): samples/s x GFLOPs / dense INT8 peak of what ran.
UTILISATION = {
    "offline": (6423.6 * RESNET50_GFLOPS / 1000) / 137.5,  # AGX Orin, GPU + 2 DLAs (275 sparse -> 137.5 dense)
    "single_stream": (1571 * RESNET50_GFLOPS / 1000) / 85.0,  # AGX Orin, batch 1, GPU only
}
BYTES = {"fp32": 4, "fp16": 2, "int8": 1}


def count_flops(module: torch.nn.Module, *args: Any, **kwargs: Any) -> tuple[float, dict[str, float]]:
    """Total FLOPs of ``module(*args, **kwargs)`` and the FLOPs per named submodule."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(*args, **kwargs)
    per_module = {name: float(sum(ops.values())) for name, ops in counter.get_flop_counts().items()}
    return float(counter.get_total_flops()), per_module


def onnx_conv_flops(path: Path) -> float:
    """Convolution and matrix-product FLOPs of an ONNX graph with static shapes (the face detector)."""
    import onnx
    from onnx import numpy_helper, shape_inference

    model = shape_inference.infer_shapes(onnx.load(str(path)))
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in model.graph.value_info}
    shapes |= {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in model.graph.output}
    weights = {t.name: numpy_helper.to_array(t).shape for t in model.graph.initializer}
    total = 0.0
    for node in model.graph.node:
        if node.op_type == "Conv" and node.input[1] in weights and node.output[0] in shapes:
            out_channels, in_per_group, *kernel = weights[node.input[1]]
            out_shape = shapes[node.output[0]]
            spatial = 1
            for size in out_shape[2:]:
                spatial *= max(size, 1)
            macs = out_channels * in_per_group * spatial
            for k in kernel:
                macs *= k
            total += 2.0 * macs * max(out_shape[0], 1)
        elif node.op_type in ("MatMul", "Gemm") and node.input[1] in weights and node.output[0] in shapes:
            rows = 1
            for size in shapes[node.output[0]][:-1]:
                rows *= max(size, 1)
            k, n = weights[node.input[1]][-2:] if node.op_type == "MatMul" else weights[node.input[1]][::-1][-2:]
            total += 2.0 * rows * k * n
    return total


def parameters(module: torch.nn.Module) -> int:
    """Number of scalar parameters."""
    return sum(p.numel() for p in module.parameters())


def network_flops(checkpoints: Sequence[Path], bundle: Path | None) -> dict[str, Any]:
    """FLOPs per video frame (and parameters) of each exported network of the ensemble."""
    loaded = [load_checkpoint(path) for path in checkpoints]
    models, metas = [m for m, _ in loaded], [meta for _, meta in loaded]
    spec = metas[0].feature_spec
    normalizations = [meta.normalization for meta in metas]
    frame = torch.zeros(1, spec.face.image_size, spec.face.image_size, 3, dtype=torch.uint8)
    shared_plan = plan_trunks(models)
    shared = VisualEnsemble(models, spec.face, shared_plan)
    visual_total, per_module = count_flops(shared, frame)
    trunk = sum(v for k, v in per_module.items() if k.startswith("VisualEnsemble.trunks.") and k.count(".") == 2)
    per_fold_plan = TrunkPlan(
        False, tuple((i,) for i in range(len(models))), ("",) * len(models), shared_plan.trunk_units
    )
    per_fold = VisualEnsemble(models, spec.face, per_fold_plan)
    per_fold_total, _ = count_flops(per_fold, frame)
    vggish_model, _ = load_vggish(spec.vggish.weights_source)
    vggish, _ = count_flops(vggish_model, torch.zeros(1, spec.vggish.example_frames, spec.vggish.mel_bins))
    window, hop = spec.window.length, spec.window.hop
    count, width = len(models), models[0].config.backbone.embedding_dim
    multimodal = any(m.config.multimodal for m in models)
    audio = {}
    if multimodal:
        audio = {"vggish": torch.zeros(1, window, spec.vggish.embedding_dim), "mfcc": torch.zeros(1, window, 39)}
    temporal_module = TemporalEnsemble(models, normalizations)
    temporal_window, _ = count_flops(temporal_module, torch.zeros(1, window, count, width), **audio)
    streaming = StreamingEnsemble(models, normalizations)
    step_audio = {k: v[:, :1] for k, v in audio.items()}
    step, _ = count_flops(
        streaming, torch.zeros(1, 1, count, width), state=torch.zeros(1, streaming.state_size), **step_audio
    )
    detector = None
    if bundle is not None and (bundle / "face_detector.onnx").is_file():
        detector = onnx_conv_flops(bundle / "face_detector.onnx")
    return {
        "models": count,
        "backbone": models[0].config.backbone.name,
        "shared_trunk": shared_plan.shared,
        "gflops_per_frame": {
            "visual_shared_trunk": visual_total / 1e9,
            "visual_trunk": trunk / 1e9,
            "visual_tails": (visual_total - trunk) / 1e9,
            "visual_per_fold": per_fold_total / 1e9,
            "vggish": vggish / 1e9 if multimodal else 0.0,
            "temporal_offline": temporal_window / hop / 1e9,
            "temporal_stream": step / 1e9,
            "face_detector_per_call": None if detector is None else detector / 1e9,
        },
        "temporal_window_gflops": temporal_window / 1e9,
        "parameters_millions": {
            "visual_shared_trunk": parameters(shared) / 1e6,
            "visual_per_fold": parameters(per_fold) / 1e6,
            "vggish": parameters(vggish_model) / 1e6 if multimodal else 0.0,
            "temporal": parameters(temporal_module) / 1e6,
        },
    }


def ceilings(flops: dict[str, Any]) -> list[dict[str, Any]]:
    """Frames/s ceilings per device and precision for the shared-trunk ensemble, the per-fold one, and one model."""
    g = flops["gflops_per_frame"]
    detector = (g["face_detector_per_call"] or 0.0) / 10  # detect every 10 frames, track in between
    shared = g["visual_shared_trunk"] + g["vggish"] + g["temporal_offline"] + detector
    per_fold = g["visual_per_fold"] + g["vggish"] + g["temporal_offline"] + detector
    one = (g["visual_trunk"] + g["visual_tails"] / flops["models"]) + g["vggish"] + detector
    p = flops["parameters_millions"]
    rows = []
    for device in DEVICES:
        for precision in ("fp32", "fp16", "int8"):
            peak = getattr(device, precision) * 1e3  # GFLOP/s
            weights_mb = (p["visual_shared_trunk"] + p["vggish"] + p["temporal"]) * BYTES[precision]
            rows.append(
                {
                    "device": device.name,
                    "precision": precision,
                    "peak_tops": getattr(device, precision),
                    "fps_shared_trunk_100pct": peak / shared,
                    "fps_shared_trunk_offline_util": peak * UTILISATION["offline"] / shared,
                    "fps_shared_trunk_single_stream_util": peak * UTILISATION["single_stream"] / shared,
                    "fps_per_fold_100pct": peak / per_fold,
                    "fps_one_model_100pct": peak / one,
                    "fps_batch1_memory_bound": device.bandwidth * 1e3 / weights_mb,
                    "peak_source": device.source,
                }
            )
    return rows


def render(document: dict[str, Any]) -> str:
    """Markdown: the FLOPs table, then the ceilings table, with the assumptions."""
    flops = document["flops"]
    g = flops["gflops_per_frame"]
    u = document["utilisation"]
    lines = [
        "# Jetson ceilings for the ensemble (from counted FLOPs; NOT measured)",
        "",
        f"Counted {document['date']} with torch.utils.flop_counter on the modules edgeaff exports "
        f"({flops['models']} models, {flops['backbone']}, shared trunk {flops['shared_trunk']}). "
        "FLOPs = 2 x MACs of convolutions and matrix products only.",
        "",
        "| network | GFLOPs per video frame |",
        "|---|---|",
    ]
    for key, value in g.items():
        lines.append(f"| {key} | {'-' if value is None else f'{value:.3f}'} |")
    lines += [
        "",
        f"Per frame, {flops['models']}-network ensemble: shared trunk "
        f"{document['per_frame_gflops']['shared']:.2f} GFLOPs, "
        f"per-fold backbones {document['per_frame_gflops']['per_fold']:.2f} GFLOPs (VGGish once per frame, the "
        "temporal graph offline, face detection every 10 frames).",
        "",
        "Ceiling frames/s = peak / FLOPs per frame. Utilisations from NVIDIA's MLPerf v3.1 ResNet-50 INT8 results: "
        f"offline (batched) {100 * u['offline']:.0f} %, single-stream (batch 1) {100 * u['single_stream']:.0f} % of "
        "the dense peak. Memory bound: every weight (shared trunk + VGGish + temporal) read once per frame at batch 1.",
        "All networks are assumed to run at the row's precision (the bundle's INT8 quantises only the visual graph). "
        "Face detection, decoding and audio features run on the CPU and are not in these figures.",
        "",
        "| device | precision | dense peak T(FL)OPS | shared trunk @100 % | @offline util | @single-stream util "
        "| per-fold @100 % | 1 model @100 % | batch-1 memory bound | peak source |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in document["ceilings"]:
        lines.append(
            f"| {row['device']} | {row['precision']} | {row['peak_tops']:g} | {row['fps_shared_trunk_100pct']:.0f} "
            f"| {row['fps_shared_trunk_offline_util']:.0f} | {row['fps_shared_trunk_single_stream_util']:.0f} "
            f"| {row['fps_per_fold_100pct']:.0f} | {row['fps_one_model_100pct']:.0f} "
            f"| {row['fps_batch1_memory_bound']:.0f} | {row['peak_source']} |"
        )
    return "\n".join(lines) + "\n"


def build(checkpoints: Sequence[Path], bundle: Path | None) -> dict[str, Any]:
    """Count, derive the ceilings, and return the document."""
    torch.set_num_threads(2)
    flops = network_flops(checkpoints, bundle)
    g = flops["gflops_per_frame"]
    detector = (g["face_detector_per_call"] or 0.0) / 10
    return {
        "format": "edgeaff-jetson-ceilings",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "flops": flops,
        "per_frame_gflops": {
            "shared": g["visual_shared_trunk"] + g["vggish"] + g["temporal_offline"] + detector,
            "per_fold": g["visual_per_fold"] + g["vggish"] + g["temporal_offline"] + detector,
        },
        "utilisation": UTILISATION,
        "ceilings": ceilings(flops),
        "devices": [dataclasses.asdict(d) for d in DEVICES],
        "label": "ceilings from counted FLOPs and published peaks; not measured on a Jetson",
    }


def main() -> int:
    """Parse arguments, count, print and write."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--bundle", type=Path, help="the exported bundle (for the face detector's FLOPs)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    document = build(args.checkpoints, args.bundle)
    text = render(document)
    print(text)
    if args.json:
        with atomic_output(args.json) as tmp:
            tmp.write_text(json.dumps(document, indent=2) + "\n")
    if args.markdown:
        with atomic_output(args.markdown) as tmp:
            tmp.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
