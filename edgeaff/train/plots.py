"""PNG plots of training curves (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeaff.runtime.files import atomic_output


def plot_job_curves(rows: list[dict[str, Any]], path: Path, *, title: str) -> None:
    """Training/validation CCC and learning rate per epoch of one job."""
    plot_runs({title: rows}, path)


def plot_runs(runs: dict[str, list[dict[str, Any]]], path: Path) -> None:
    """One column per job: CCC (train, validation) on top, learning rate (log scale) below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(runs)
    if not names:
        return
    figure, axes = plt.subplots(2, len(names), figsize=(3.6 * len(names), 5.2), squeeze=False, sharex="col")
    for column, name in enumerate(names):
        rows = runs[name]
        epochs = [row["epoch"] for row in rows]
        top, bottom = axes[0][column], axes[1][column]
        top.plot(epochs, [row["train_ccc"] for row in rows], label="train CCC", marker=".")
        top.plot(epochs, [row["val_ccc"] for row in rows], label="validation CCC", marker=".")
        top.set_title(name, fontsize=9)
        top.set_ylim(-0.2, 1.0)
        top.grid(alpha=0.3)
        bottom.semilogy(epochs, [row["lr"] for row in rows], color="tab:green", marker=".")
        bottom.set_xlabel("epoch")
        bottom.grid(alpha=0.3)
        if column == 0:
            top.set_ylabel("CCC")
            bottom.set_ylabel("learning rate")
            top.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    with atomic_output(path) as tmp:
        figure.savefig(tmp, format="png", dpi=90)
    plt.close(figure)
