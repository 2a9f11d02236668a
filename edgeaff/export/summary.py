"""The table ``edgeaff export`` prints: graphs, sizes, parity and precision (no torch)."""

from __future__ import annotations

from pathlib import Path

from edgeaff.runtime.artifacts.manifest import Manifest


def _megabytes(size: int | None) -> str:
    return "-" if size is None else f"{size / 1e6:.1f} MB"


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def summary_table(path: Path, manifest: Manifest) -> str:
    """Plain-text summary of an exported bundle."""
    parity = manifest.parity
    models = manifest.models
    lines = [
        f"bundle {path}",
        f"models ({len(models)}): " + ", ".join(m.name.replace("_", "/") for m in models),
        f"visual trunk: {'shared by all models' if manifest.visual.shared_trunk else 'one backbone per model'}; "
        "audio normalisation: inside the temporal graphs; "
        f"streaming state: {manifest.streaming.state_size} floats",
        "",
        f"{'graph':<17}{'precision':<11}{'size':>10}  {'max |diff| vs':<14}{'value':>10}",
    ]
    for name, graph in manifest.graphs.items():
        for precision, variant in graph.variants.items():
            if precision == "fp32":
                entry = parity.get("fp32_vs_pytorch", {}).get(name)
                reference, value = "pytorch", None if entry is None else entry["max_abs"]
            else:
                reference, value = "fp32", parity.get(f"{precision}_max_abs_vs_fp32", {}).get(name)
            shown = "-" if value is None else f"{value:.2e}"
            lines.append(f"{name:<17}{precision:<11}{_megabytes(variant.bytes):>10}  {reference:<14}{shown:>10}")
    ccc = parity.get("ccc")
    if ccc:
        lines += ["", f"CCC on {ccc['frames']} prepared frames ({len(ccc['trials'])} trials), mean over models:"]
        lines.append(f"  fp32  vs labels {_mean(ccc['fp32']['ccc_labels']):+.4f}")
        for precision in manifest.precisions[1:]:
            entry = ccc.get(precision.value)
            if entry:
                drop = entry["ccc_drop"]
                lines.append(
                    f"  {precision:<5} vs labels {_mean(entry['ccc_labels']):+.4f}  drop {_mean(drop):+.4f}"
                    f" (largest {max(drop):+.4f})  vs fp32 {_mean(entry['ccc_vs_fp32']):.5f}"
                )
    return "\n".join(lines)
