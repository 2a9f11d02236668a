"""Console output of ``edgeaff train``: a progress bar per epoch, one line per finished epoch, and the final table."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from edgeaff.train.fit import JobSpec


class TrainingConsole:
    """Receives training events (the ``progress`` callback) and shows them."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self._progress: Progress | None = None
        self._task: Any = None
        self._epoch_key: tuple[str, int] | None = None

    def __call__(self, event: str, info: dict[str, Any]) -> None:
        """Handle one event from :class:`edgeaff.train.fit.FoldTrainer`."""
        if event == "batch":
            self._batch(info)
        elif event == "epoch":
            self._close_bar()
            self.console.print(
                f"[bold]{info['job']}[/] epoch {info['epoch']:>3}: loss {info['train_loss']:.3f}  "
                f"train CCC {info['train_ccc']:.3f}  val CCC {info['val_ccc']:.3f}  lr {info['lr']:.0e}  "
                f"best epoch {info['best_epoch']}  ({info['seconds']:.1f} s)"
            )
        elif event == "release":
            self.console.print(f"[cyan]{info['job']}[/] epoch {info['epoch']}: releasing {', '.join(info['group'])}")
        elif event == "resume":
            self.console.print(f"[cyan]{info['job']}[/] resuming after {info['epoch']} completed epochs")

    def _batch(self, info: dict[str, Any]) -> None:
        key = (info["job"], info["epoch"])
        if key != self._epoch_key:
            self._close_bar()
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]:.3f}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(
                f"{info['job']} epoch {info['epoch']}", total=info["steps"], loss=info["loss"]
            )
            self._epoch_key = key
        assert self._progress is not None
        self._progress.update(self._task, completed=info["step"], loss=info["loss"])

    def _close_bar(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
            self._epoch_key = None


def _fmt(value: float | None) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def results_table(jobs: list[JobSpec], results: dict[str, dict[str, Any]]) -> Table:
    """Validation CCC per fold (rows) and model × dimension (columns), with the mean row (cf. the paper's Table 1)."""
    columns = list(dict.fromkeys((job.model, job.dimension) for job in jobs))
    folds = sorted({job.fold for job in jobs})
    table = Table(title="Validation CCC (best epoch)")
    table.add_column("fold", justify="right")
    for model, dimension in columns:
        table.add_column(f"{model}\n{dimension}", justify="right")
    values: dict[tuple[str, str], list[float]] = {column: [] for column in columns}
    for fold in folds:
        cells = []
        for model, dimension in columns:
            result = results.get(f"{model}/fold{fold}/{dimension}")
            if result is None:
                cells.append("—")
            elif result.get("status") == "failed":
                cells.append("[red]failed[/]")
            else:
                value = result["metrics"]["validation_ccc"]
                values[(model, dimension)].append(value)
                cells.append(_fmt(value))
        table.add_row(str(fold), *cells)
    means = [_fmt(sum(v) / len(v)) if v else "—" for v in values.values()]
    table.add_row("mean", *means, style="bold")
    return table
