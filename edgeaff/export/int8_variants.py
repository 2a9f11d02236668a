"""The INT8 variants of a bundle: which graphs, calibrated on what, in which forms (no torch).

* **visual**: calibrated on real face crops of the ``--calib`` training trials
  (:func:`edgeaff.export.calibration.calibration_batches`);
* **vggish** (multimodal bundles): calibrated on the real log-mel examples of the same trials' audio, decoded from
  the raw data the dataset was prepared from (:mod:`edgeaff.export.audio_examples`). Before they are used, the FP32
  VGGish graph must reproduce the prepared features from them; when the raw data is not on this machine or no longer
  matches, VGGish stays FP32 under ``int8`` and the export says why.

Every quantised graph is written in each form of :data:`edgeaff.export.precision.INT8_FORMS` (``int8`` full-range
U8S8, ``int8_avx2`` 7-bit U8S8, ``int8_trt`` S8S8), from the same calibration data, except VGGish's 7-bit form
(:data:`SEVEN_BIT_ROLES`): on the demo's trained models it cost up to 0.016 CCC against FP32 (full range: 0.004),
over the 0.01 budget, so AVX2 CPUs without VNNI run VGGish in FP32.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeaff.export import audio_examples, calibration, precision
from edgeaff.runtime.artifacts.prepared import PreparedDataset
from edgeaff.runtime.backends.ort import OrtRunner
from edgeaff.runtime.errors import EdgeaffError

CALIBRATION_BATCH = 32
VGGISH_CALIBRATION_EXAMPLES = 256
# The FP32 VGGish graph on the re-computed examples against the prepared features: max |difference| relative to
# the largest feature (float32 front ends and graphs agree to ~1e-6 of it).
AUDIO_CHECK_TOLERANCE = 1e-3
AUDIO_CHECK_FRAMES = 32
# The graphs that get the 7-bit ``int8_avx2`` form (module docstring: VGGish's cost too much CCC).
SEVEN_BIT_ROLES = ("visual",)


@dataclasses.dataclass(frozen=True)
class Int8Variants:
    """What the INT8 step added: per graph role, the file of each form; per form, its recipe."""

    files: Mapping[str, Mapping[str, str]]
    recipes: Mapping[str, Mapping[str, Any]]
    vggish_note: str | None


def _features(vggish: Path, examples: np.ndarray) -> np.ndarray:
    with OrtRunner(vggish) as runner:
        return np.concatenate(
            [
                runner.infer({"log_mel": examples[i : i + CALIBRATION_BATCH]})["vggish"]
                for i in range(0, len(examples), CALIBRATION_BATCH)
            ]
        )


def check_examples(vggish: Path, dataset: PreparedDataset, trial: str, examples: np.ndarray) -> str | None:
    """``None`` when the FP32 VGGish graph on ``examples`` gives the trial's prepared features, else the reason."""
    count = min(AUDIO_CHECK_FRAMES, len(examples))
    ours = _features(vggish, examples[:count])
    stored = np.asarray(dataset.arrays(trial).vggish[:count])
    scaled = float(np.abs(ours - stored).max()) / max(1.0, float(np.abs(stored).max()))
    if not scaled <= AUDIO_CHECK_TOLERANCE:
        return (
            f"the log-mel examples re-computed from the raw audio do not give the prepared VGGish features of "
            f"'{trial}' (difference {scaled:.1e} of the largest feature): the raw data changed since 'edgeaff prepare'"
        )
    return None


def audio_examples_for(
    dataset: PreparedDataset, trials: Sequence[str], vggish: Path, *, frames_per_trial: int | None = None
) -> tuple[dict[str, np.ndarray], str | None]:
    """Each trial's log-mel examples (its first ``frames_per_trial`` frames), checked against the prepared features.

    Returns:
        ``({trial: (N, 96, 64)}, None)``, or ``({}, reason)`` when they cannot be had.
    """
    found, why = audio_examples.locate_trials(dataset, trials)
    if why is not None:
        return {}, why
    examples: dict[str, np.ndarray] = {}
    try:
        for name in trials:
            examples[name] = audio_examples.trial_examples(dataset, name, found[name])[:frames_per_trial]
    except EdgeaffError as exc:
        return {}, str(exc)
    first = next(iter(trials))
    problem = check_examples(vggish, dataset, first, examples[first])
    return ({}, problem) if problem else (examples, None)


def vggish_calibration(
    dataset: PreparedDataset, trials: Sequence[str], vggish: Path, *, count: int = VGGISH_CALIBRATION_EXAMPLES
) -> tuple[list[np.ndarray], str | None]:
    """Batches of about ``count`` real log-mel examples spread over ``trials``, or ``([], reason)``."""
    found, why = audio_examples.locate_trials(dataset, trials)
    if why is not None:
        return [], why
    try:
        first = next(iter(trials))
        problem = check_examples(vggish, dataset, first, audio_examples.trial_examples(dataset, first, found[first]))
        if problem:
            return [], problem
        return audio_examples.calibration_examples(dataset, found, count=count, batch=CALIBRATION_BATCH), None
    except EdgeaffError as exc:
        return [], str(exc)


def build_int8_variants(
    graphs: Mapping[str, Path],
    dataset: PreparedDataset,
    trials: Sequence[str],
    *,
    frames: int,
    log: Callable[[str], None] = lambda _: None,
) -> Int8Variants:
    """Quantise the visual graph (and VGGish where its audio is at hand) in every INT8 form.

    Args:
        graphs: FP32 graph files by role (``visual``, optionally ``vggish``).
        dataset: the ``--calib`` data.
        trials: the calibration trials.
        frames: face crops to calibrate the visual graph on.
        log: progress lines.
    """
    inputs: dict[str, tuple[str, list[np.ndarray]]] = {
        "visual": ("frames", calibration.calibration_batches(dataset, trials, frames=frames, batch=CALIBRATION_BATCH))
    }
    note = None
    if "vggish" in graphs:
        batches, why = vggish_calibration(dataset, trials, graphs["vggish"])
        if batches:
            inputs["vggish"] = ("log_mel", batches)
        else:
            note = f"VGGish stays FP32 under int8: {why}"
            log(note)
    files: dict[str, dict[str, str]] = {role: {} for role in inputs}
    recipes: dict[str, dict[str, Any]] = {}
    for form in precision.INT8_FORMS:
        per_graph = {}
        for role, (name, batches) in inputs.items():
            if form.seven_bit and role not in SEVEN_BIT_ROLES:
                continue
            target = graphs[role].with_name(f"{role}.{form.file_suffix}.onnx")
            per_graph[role] = precision.quantize_int8(graphs[role], target, input_name=name, batches=batches, form=form)
            files[role][form.key] = target.name
        recipes[form.key] = {
            "target": form.target,
            "calibration_trials": list(trials),
            "quantized_graphs": list(per_graph),
            "graphs": per_graph,
            **({"vggish_note": note} if note else {}),
        }
    counts = ", ".join(f"{role} from {sum(len(b) for b in batches)} examples" for role, (_, batches) in inputs.items())
    log(f"built the INT8 graphs in {len(precision.INT8_FORMS)} forms ({counts})")
    return Int8Variants(files, recipes, note)
