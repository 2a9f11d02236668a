"""Training recipes and the learning-rate / backbone-release / early-stopping state machine (``reference.md`` §5).

Two recipes:

========================  ==========================================  ===========================================
                          ``paper`` (default, the paper's text)        ``abaw2`` (the reference code, §5, §7)
========================  ==========================================  ===========================================
fusion                    ``paper``                                    ``abaw2`` (aural Q/V from keys, K·Qᵀ)
batch size                2                                            8
weight decay (Adam)       1e-4                                         1e-3
LR / minimum LR           1e-5 / 1e-6                                  1e-5 / 1e-6
plateau handling          ``patience`` epochs without improvement:     ReduceLROnPlateau(max, patience 5, ×0.1):
                          LR → minimum LR; next plateau: release the   release the next group only once LR < 1e-6
                          next group, LR back to 1e-5, counters reset  strictly, i.e. after two reductions (§5.2)
early-stop counter        reset on release                             not reset on release (§7.5)
frozen backbone layers    eval mode (BN running stats, no dropout):    train mode: BN batch statistics and running
                          every fold keeps an identical frozen trunk   stats drift, dropout active (§7.6)
short-trial padding       excluded from the loss                       included in the loss (§7.11)
window order              reshuffled every epoch                       shuffled once, same order every epoch
========================  ==========================================  ===========================================

Both: CCC loss along time, Adam re-created (fresh moments, LR 1e-5) at every release, release order output layer →
last stage → last units of the penultimate stage, best weights reloaded after every epoch, early stop after 20
epochs without improvement, at most 100 epochs, selection by overall validation CCC.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from edgeaff.runtime.errors import InvalidInputError


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Hyper-parameters and policies of one training recipe."""

    name: str
    fusion: str
    batch_size: int
    weight_decay: float
    learning_rate: float = 1e-5
    min_learning_rate: float = 1e-6
    patience: int = 5
    factor: float = 0.1
    early_stopping: int = 20
    max_epochs: int = 100
    frozen_layers_in_train_mode: bool = False
    mask_padding: bool = True
    reshuffle_each_epoch: bool = True


RECIPES: dict[str, Recipe] = {
    "paper": Recipe(name="paper", fusion="paper", batch_size=2, weight_decay=1e-4),
    "abaw2": Recipe(
        name="abaw2",
        fusion="abaw2",
        batch_size=8,
        weight_decay=1e-3,
        frozen_layers_in_train_mode=True,
        mask_padding=False,
        reshuffle_each_epoch=False,
    ),
}


def recipe(name: str, **overrides: Any) -> Recipe:
    """A named recipe with optional overrides (e.g. ``max_epochs`` for a demo).

    Raises:
        InvalidInputError: unknown name or override.
    """
    if name not in RECIPES:
        raise InvalidInputError(f"unknown recipe '{name}'; choose one of {', '.join(RECIPES)}")
    try:
        return dataclasses.replace(RECIPES[name], **{k: v for k, v in overrides.items() if v is not None})
    except TypeError as exc:
        raise InvalidInputError(f"invalid recipe override: {exc}") from None


@dataclasses.dataclass
class ScheduleState:
    """Everything the schedule needs to continue after a restart (JSON-serialisable)."""

    epoch: int = 0
    learning_rate: float = 0.0
    released: int = 0
    best_ccc: float = -1e10
    best_epoch: int = -1
    plateau_best: float = -math.inf
    plateau_bad_epochs: int = 0
    early_stop_counter: int = 0
    pending_release: bool = False
    finished: bool = False
    finish_reason: str = ""


@dataclasses.dataclass(frozen=True)
class EpochStart:
    """What to do before training epoch ``epoch``."""

    epoch: int
    release_group: int | None
    reset_optimizer: bool
    load_best: bool
    stop: bool


@dataclasses.dataclass(frozen=True)
class EpochEnd:
    """What happened at the end of an epoch."""

    improved: bool
    learning_rate: float
    stop: bool


class FitSchedule:
    """The fit loop's state machine for one fold (see the module docstring for the two policies).

    Usage per epoch: ``start = schedule.begin_epoch()`` (apply release / optimizer reset / best reload, stop if told),
    train and validate, then ``schedule.end_epoch(val_ccc)`` (save best weights when ``improved``), then reload the
    best weights (both recipes reload them after every epoch).
    """

    def __init__(self, recipe: Recipe, num_groups: int, state: ScheduleState | None = None) -> None:
        self.recipe = recipe
        self.num_groups = num_groups
        self.state = state or ScheduleState(
            learning_rate=recipe.learning_rate, early_stop_counter=recipe.early_stopping
        )

    # -- start of an epoch -------------------------------------------------------------------------------------
    def begin_epoch(self) -> EpochStart:
        """Decide releases before the epoch's training pass."""
        s, r = self.state, self.recipe
        if s.finished:
            return EpochStart(s.epoch, None, False, False, True)
        if r.name == "abaw2":
            wants_release = s.epoch == 0 or s.learning_rate < r.min_learning_rate
        else:
            wants_release = s.epoch == 0 or s.pending_release
        if not wants_release:
            return EpochStart(s.epoch, None, False, False, False)
        return self._release()

    def _release(self) -> EpochStart:
        s, r = self.state, self.recipe
        if s.released >= self.num_groups:
            self._finish("no backbone groups left to release")
            return EpochStart(s.epoch, None, False, True, True)
        group = s.released
        s.released += 1
        s.pending_release = False
        s.learning_rate = r.learning_rate
        s.plateau_best = -math.inf
        s.plateau_bad_epochs = 0
        if r.name == "paper":
            s.early_stop_counter = r.early_stopping
        return EpochStart(s.epoch, group, True, True, False)

    # -- end of an epoch ---------------------------------------------------------------------------------------
    def end_epoch(self, validation_ccc: float) -> EpochEnd:
        """Record the epoch's validation CCC; update best, early stopping and the learning rate."""
        s, r = self.state, self.recipe
        value = validation_ccc if math.isfinite(validation_ccc) else -1e10
        improved = value > s.best_ccc
        if improved:
            s.best_ccc = value
            s.best_epoch = s.epoch
        if s.epoch > 0:
            s.early_stop_counter = r.early_stopping if improved else s.early_stop_counter - 1
            if s.early_stop_counter <= 0:
                self._finish(f"no improvement for {r.early_stopping} epochs")
        if r.name == "abaw2":
            self._plateau_step_torch(value)
        else:
            self._plateau_step_paper(value)
        s.epoch += 1
        if s.epoch >= r.max_epochs and not s.finished:
            self._finish(f"reached {r.max_epochs} epochs")
        return EpochEnd(improved=improved, learning_rate=s.learning_rate, stop=s.finished)

    def _plateau_step_torch(self, value: float) -> None:
        """``torch.optim.lr_scheduler.ReduceLROnPlateau(mode='max', patience, factor, threshold=1e-4 'rel',
        cooldown=0, min_lr=0, eps=1e-8)``, stepped once per epoch (reference §5.2)."""
        s, r = self.state, self.recipe
        if value > s.plateau_best * (1 + 1e-4):
            s.plateau_best = value
            s.plateau_bad_epochs = 0
        else:
            s.plateau_bad_epochs += 1
        if s.plateau_bad_epochs > r.patience:
            reduced = max(s.learning_rate * r.factor, 0.0)
            if s.learning_rate - reduced > 1e-8:
                s.learning_rate = reduced
            s.plateau_bad_epochs = 0

    def _plateau_step_paper(self, value: float) -> None:
        """Patience epochs without strict improvement: drop to the minimum LR; next time: release the next group."""
        s, r = self.state, self.recipe
        if value > s.plateau_best:
            s.plateau_best = value
            s.plateau_bad_epochs = 0
            return
        s.plateau_bad_epochs += 1
        if s.plateau_bad_epochs < r.patience:
            return
        s.plateau_bad_epochs = 0
        if s.learning_rate > r.min_learning_rate:
            s.learning_rate = r.min_learning_rate
        else:
            s.pending_release = True

    def _finish(self, reason: str) -> None:
        self.state.finished = True
        self.state.finish_reason = self.state.finish_reason or reason
