"""``edgeaff convert-reference``: a reference (sucv/ABAW2) checkpoint → an edgeaff fold checkpoint."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from edgeaff.runtime.artifacts.checkpoint_header import read_checkpoint_metadata
from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.files import sha256_file
from edgeaff.runtime.spec import AudioNormalization, FeatureSpec, ScalarStats, VggishSpec
from edgeaff.train.checkpoint import CheckpointMetadata, save_checkpoint
from edgeaff.train.config import EMOTION_DIMENSIONS, MODEL_KINDS
from edgeaff.train.folds import NUM_FOLDS
from edgeaff.train.reference import load_reference_model

REFERENCE_REVISION = "sucv/ABAW2@71d40fb"


def _stats(name: str, values: tuple[float, float]) -> ScalarStats:
    try:
        return ScalarStats(mean=float(values[0]), std=float(values[1]))
    except ValueError as exc:
        raise InvalidInputError(f"--{name}-stats: {exc}") from None


def convert_reference_checkpoint(
    source: str | Path,
    output: str | Path,
    *,
    kind: str,
    dimension: str,
    mfcc_stats: tuple[float, float] | None = None,
    vggish_stats: tuple[float, float] | None = None,
    fold: int | None = None,
    overwrite: bool = False,
) -> CheckpointMetadata:
    """Convert a reference ``model_state_dict.pth`` into a fold checkpoint with fusion variant ``abaw2``.

    Args:
        source: the reference state dict (loaded with ``weights_only=True``).
        output: the fold checkpoint to write.
        kind: ``"multimodal"`` or ``"unimodal"``.
        dimension: ``"valence"`` or ``"arousal"``.
        mfcc_stats: (mean, std) the reference normalised MFCC with; multimodal only.
        vggish_stats: (mean, std) for VGGish; multimodal only.
        fold: fold index to record.
        overwrite: replace an existing ``output`` (only an edgeaff fold checkpoint, never ``source`` itself).

    Raises:
        InvalidInputError: bad options, an unreadable or mismatched source, an existing output.
    """
    if kind not in MODEL_KINDS:
        raise InvalidInputError(f"unknown --model '{kind}'; choose one of {', '.join(MODEL_KINDS)}")
    if dimension not in EMOTION_DIMENSIONS:
        raise InvalidInputError(f"unknown --dim '{dimension}'; choose one of {', '.join(EMOTION_DIMENSIONS)}")
    normalization: AudioNormalization | None = None
    if kind == "multimodal":
        if mfcc_stats is None or vggish_stats is None:
            raise InvalidInputError(
                "the multimodal model needs --mfcc-stats MEAN STD and --vggish-stats MEAN STD "
                "(the scalar statistics the reference normalised the training audio with, mean_std_dict.pkl)"
            )
        normalization = AudioNormalization(mfcc=_stats("mfcc", mfcc_stats), vggish=_stats("vggish", vggish_stats))
    elif mfcc_stats is not None or vggish_stats is not None:
        raise InvalidInputError("the unimodal model reads no audio: omit --mfcc-stats and --vggish-stats")
    if fold is not None and not 0 <= fold < NUM_FOLDS:
        raise InvalidInputError(f"--fold must be 0-{NUM_FOLDS - 1}, got {fold}")
    out = Path(output)
    if out.exists() and Path(source).exists() and out.resolve() == Path(source).resolve():
        raise InvalidInputError(f"-o {out} is the source checkpoint itself; nothing was changed: write to a new file")
    if out.is_dir():
        raise InvalidInputError(
            f"{out} is a directory; give the checkpoint file to write, e.g. {out}/fold0.safetensors"
        )
    if out.exists() and not overwrite:
        raise InvalidInputError(f"{out} already exists; choose another path or pass --force")
    if out.exists():
        try:
            read_checkpoint_metadata(out)
        except InvalidInputError:
            raise InvalidInputError(
                f"{out} is not an edgeaff fold checkpoint: --force only replaces one; nothing was changed: choose "
                "another path"
            ) from None
    model = load_reference_model(source, kind)
    # The reference computed VGGish features with the TF-slim AudioSet checkpoint (reference §4.4); its hash is not
    # known here, so deployment must supply VGGish weights that reproduce those features.
    feature_spec = dataclasses.replace(
        FeatureSpec(),
        vggish=VggishSpec(weights_source="audioset-vggish (TF-slim vggish_model.ckpt, as the reference)"),
    )
    return save_checkpoint(
        model,
        out,
        dimension=dimension,
        fold=fold,
        feature_spec=feature_spec,
        normalization=normalization,
        provenance={
            "source": "reference-conversion",
            "reference": REFERENCE_REVISION,
            "source_file": Path(source).name,
            "source_sha256": sha256_file(source),
        },
    )
