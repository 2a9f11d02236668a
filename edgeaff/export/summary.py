"""The table ``edgeaff export`` prints: graphs, sizes, parity and precision (no torch)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def summary_table(path: Path, manifest: Mapping[str, Any]) -> str:
    """Plain-text summary of an exported bundle."""
    parity = manifest["parity"]
    models = manifest["models"]
    visual = manifest["visual"]
    lines = [
        f"bundle {path}",
        f"models ({len(models)}): "
        + ", ".join(f"fold{'-' if m['fold'] is None else m['fold']}/{m['dimension']}/{m['kind']}" for m in models),
        f"visual trunk: {'shared by all models' if visual['shared_trunk'] else 'one backbone per model'}; "
        "audio normalisation: inside the temporal graphs; "
        f"streaming state: {manifest['streaming']['state_size']} floats",
        "",
        f"{'graph':<17}{'precision':<11}{'size':>10}  {'max |diff| vs':<14}{'value':>10}",
    ]
    for name, graph in manifest["graphs"].items():
        for precision, variant in graph["variants"].items():
            if precision == "fp32":
                entry = parity["fp32_vs_pytorch"].get(name)
                reference, value = "pytorch", None if entry is None else entry["max_abs"]
            else:
                reference, value = "fp32", parity.get(f"{precision}_max_abs_vs_fp32", {}).get(name)
            shown = "-" if value is None else f"{value:.2e}"
            lines.append(f"{name:<17}{precision:<11}{_megabytes(variant['bytes']):>10}  {reference:<14}{shown:>10}")
    ccc = parity.get("ccc")
    if ccc:
        lines += ["", f"CCC on {ccc['frames']} prepared frames ({len(ccc['trials'])} trials), mean over models:"]
        base = ccc["fp32"]["ccc_labels"]
        lines.append(f"  fp32  vs labels {sum(base) / len(base):+.4f}")
        for precision in manifest["precisions"][1:]:
            entry = ccc.get(precision)
            if entry:
                mean = lambda values: sum(values) / len(values)  # noqa: E731
                lines.append(
                    f"  {precision:<5} vs labels {mean(entry['ccc_labels']):+.4f}  drop {mean(entry['ccc_drop']):+.4f}"
                    f" (largest {max(entry['ccc_drop']):+.4f})  vs fp32 {mean(entry['ccc_vs_fp32']):.5f}"
                )
    return "\n".join(lines)
