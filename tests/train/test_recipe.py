"""The release / learning-rate / early-stopping state machine on scripted validation CCC sequences."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from edgeaff.runtime.errors import InvalidInputError
from edgeaff.train.recipe import FitSchedule, recipe


def drive(schedule: FitSchedule, cccs: list[float]) -> dict[str, list]:
    """Run the schedule like the fit loop does; record what happened per epoch."""
    trace: dict[str, list] = {"release_epochs": [], "lr": [], "improved": [], "epochs_run": []}
    for value in cccs:
        start = schedule.begin_epoch()
        if start.release_group is not None:
            trace["release_epochs"].append((start.epoch, start.release_group))
        if start.stop:
            break
        trace["lr"].append(schedule.state.learning_rate)
        end = schedule.end_epoch(value)
        trace["improved"].append(end.improved)
        trace["epochs_run"].append(start.epoch)
        if end.stop:
            break
    return trace


def test_abaw2_schedule_follows_the_reference_step_by_step() -> None:
    """reference.md §5.3 traced by hand: improvements at epochs 0-1, then a flat validation CCC.

    Epochs 2-7 are 6 bad epochs → LR 1e-5 → 1e-6 after epoch 7; epochs 8-13 → 1e-7 after epoch 13 (1e-6 is not
    < 1e-6, so only the second reduction triggers a release). Epoch 14 releases group 1 with LR back to 1e-5. The
    early-stop counter is not reset: it reached 8 at epoch 13 and hits 0 at the end of epoch 21.
    """
    schedule = FitSchedule(recipe("abaw2"), num_groups=3)
    trace = drive(schedule, [0.1, 0.2] + [0.2] * 40)
    assert trace["release_epochs"] == [(0, 0), (14, 1)]
    assert trace["epochs_run"] == list(range(22))
    lrs = trace["lr"]
    assert lrs[:8] == [1e-5] * 8
    assert all(math.isclose(v, 1e-6) for v in lrs[8:14])
    assert lrs[14] == 1e-5
    assert trace["improved"][:3] == [True, True, False]
    assert schedule.state.finished and "no improvement for 20 epochs" in schedule.state.finish_reason
    assert schedule.state.best_epoch == 1


def test_abaw2_releases_every_group_then_stops() -> None:
    """Improving just often enough never early-stops; every second LR reduction releases the next group."""
    schedule = FitSchedule(recipe("abaw2"), num_groups=2)
    # One improvement every 12 epochs keeps the early-stop counter alive; the plateau still reduces twice.
    cccs = []
    value = 0.0
    for epoch in range(100):
        if epoch % 12 == 0:
            value += 0.01
        cccs.append(value)
    trace = drive(schedule, cccs)
    releases = [epoch for epoch, _ in trace["release_epochs"]]
    assert releases[0] == 0 and len(releases) == 2
    assert schedule.state.finished
    assert schedule.state.finish_reason in ("no backbone groups left to release", "no improvement for 20 epochs")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_abaw2_plateau_matches_torch_reduce_lr_on_plateau(seed: int) -> None:
    """Without releases, the learning rate follows torch's ReduceLROnPlateau(max, patience 5, ×0.1) exactly."""
    rng = np.random.default_rng(seed)
    cccs = list(np.cumsum(rng.choice([0.0, 0.0, 0.0, 0.02], size=60)) + rng.normal(0, 1e-6, 60))
    schedule = FitSchedule(recipe("abaw2", early_stopping=1000), num_groups=0)
    schedule.state.released = 0
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([parameter], lr=1e-5)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", patience=5, factor=0.1)
    for value in cccs:
        schedule.end_epoch(float(value))
        scheduler.step(float(value))
        assert math.isclose(schedule.state.learning_rate, optimizer.param_groups[0]["lr"], rel_tol=1e-12)


def test_paper_schedule_drops_to_min_lr_then_releases_and_resets_counters() -> None:
    """paper: 5 bad epochs → LR 1e-6; 5 more → release next group, LR 1e-5, early-stop counter reset."""
    schedule = FitSchedule(recipe("paper"), num_groups=3)
    trace = drive(schedule, [0.3] + [0.3] * 60)
    # epoch 0 releases group 0; epochs 1-5 bad → LR 1e-6 from epoch 6; epochs 6-10 bad → release at epoch 11.
    assert trace["release_epochs"][:2] == [(0, 0), (11, 1)]
    assert trace["lr"][5] == 1e-5 and trace["lr"][6] == 1e-6 and trace["lr"][11] == 1e-5
    # After the third group, the next pending release finds no group left and stops.
    assert [e for e, _ in trace["release_epochs"]] == [0, 11, 22]
    assert schedule.state.finished and schedule.state.finish_reason == "no backbone groups left to release"
    assert trace["epochs_run"][-1] == 32


def test_max_epochs_and_unknown_recipe() -> None:
    schedule = FitSchedule(recipe("paper", max_epochs=3), num_groups=3)
    trace = drive(schedule, [0.1, 0.2, 0.3, 0.4, 0.5])
    assert trace["epochs_run"] == [0, 1, 2] and schedule.state.finish_reason == "reached 3 epochs"
    with pytest.raises(InvalidInputError, match="paper, abaw2"):
        recipe("fast")
