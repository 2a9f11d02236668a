"""AudioSet VGGish in PyTorch, returning the raw 128-D embedding the reference used (``reference.md`` §4.4).

The reference ran Google's TF-slim VGGish and read ``vggish/embedding:0``: the pre-activation output of the last
fully connected layer, without the PCA whitening and 8-bit quantisation of the released AudioSet embeddings. This
module reproduces that network with the parameter layout of the widely used PyTorch port (torchvggish,
``vggish-10086976.pth``: keys ``features.*`` and ``embeddings.*``), so the port's released weights load unchanged.
Like the port, the last feature map is flattened in TensorFlow's (height, width, channel) order before the fully
connected layers; unlike the port, no ReLU follows the last layer and no post-processing is applied.

Weights are never downloaded. :func:`load_vggish` takes a local ``.pth`` file or ``random:SEED`` (deterministic random
weights for tests, demos and timing).
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgeaff.runtime.errors import InvalidInputError
from edgeaff.runtime.files import sha256_file
from edgeaff.runtime.spec import DEFAULT_FEATURE_SPEC
from edgeaff.train.checkpoint import tensor_digest
from edgeaff.train.torchfile import load_state_dict_file

# AudioSet VGGish's input and output sizes, the feature spec's defaults.
EXAMPLE_FRAMES = DEFAULT_FEATURE_SPEC.vggish.example_frames
MEL_BINS = DEFAULT_FEATURE_SPEC.vggish.mel_bins
EMBEDDING_DIM = DEFAULT_FEATURE_SPEC.vggish.embedding_dim
# Conv channels with "M" for a 2x2 max-pool; indices in `features` follow nn.Sequential numbering of the port.
_CONV_PLAN: tuple[int | str, ...] = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M")
_FC_SIZES = (512 * 6 * 4, 4096, 4096, EMBEDDING_DIM)

RELEASED_WEIGHTS_NAME = "vggish-10086976.pth"
# torch.hub names a file "<name>-<first 8 hex digits of its sha256>.pth"; the released port file follows that rule.
RELEASED_WEIGHTS_SHA256_PREFIX = "10086976"
RELEASED_WEIGHTS_URL = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth"
# Keys of the port's post-processor (PCA parameters) that may sit in a saved whole-model state dict; never used.
_IGNORED_KEY_PREFIXES = ("pproc.",)
_RANDOM_SOURCE = re.compile(r"random:(\d+)")


def vggish_weights_help() -> str:
    """Where the real VGGish weights come from, in one line (printed when no weights are given)."""
    return (
        f"VGGish weights: use the torchvggish project's released '{RELEASED_WEIGHTS_NAME}' "
        f"({RELEASED_WEIGHTS_URL}), a PyTorch port of Google's AudioSet VGGish checkpoint; edgeaff never downloads "
        "it: fetch it yourself and pass its path (or 'random:SEED' for random weights, useful only for tests)"
    )


@dataclasses.dataclass(frozen=True)
class VggishWeights:
    """Provenance of the weights a :class:`VGGish` was loaded with.

    Attributes:
        source: the weights file's name, or ``"random:SEED"``.
        sha256: sha256 of the file's bytes, or for random weights a digest of the tensors
            (:func:`edgeaff.train.checkpoint.tensor_digest`).
    """

    source: str
    sha256: str

    @property
    def is_random(self) -> bool:
        """True for seeded random weights (features computed with them are meaningless for emotion)."""
        return self.source.startswith("random:")

    @property
    def is_released_port(self) -> bool:
        """True when the file's sha256 matches the hash prefix in the released port's file name."""
        return not self.is_random and self.sha256.startswith(RELEASED_WEIGHTS_SHA256_PREFIX)


class VGGish(nn.Module):
    """AudioSet VGGish: four conv blocks and three fully connected layers, 0.96 s log-mel patch -> 128-D.

    ``forward(examples)`` takes ``(N, 96, 64)`` float32 log-mel examples (:func:`edgeaff.runtime.audio.logmel.log_mel`
    framed by :func:`edgeaff.runtime.audio.logmel.vggish_examples`)
    and returns ``(N, 128)``: the pre-activation output of
    the last fully connected layer (TF-slim ``vggish/embedding:0``).
    """

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for step in _CONV_PLAN:
            if isinstance(step, int):
                layers += [nn.Conv2d(channels, step, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                channels = step
            else:
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        self.features = nn.Sequential(*layers)
        fcs: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(itertools.pairwise(_FC_SIZES)):
            if i:
                fcs.append(nn.ReLU(inplace=True))
            fcs.append(nn.Linear(n_in, n_out))
        self.embeddings = nn.Sequential(*fcs)

    def forward(self, examples: torch.Tensor) -> torch.Tensor:
        """Embed log-mel examples ``(N, 96, 64)`` into ``(N, 128)`` raw embeddings."""
        x = self.features(examples.unsqueeze(1))  # (N, 512, 6, 4)
        # TF-slim flattens NHWC; the port's weights expect that order.
        x = x.permute(0, 2, 3, 1).flatten(1)
        return self.embeddings(x)


def expected_state_shapes() -> dict[str, tuple[int, ...]]:
    """Parameter names and shapes of the port's layout (``features.*``, ``embeddings.*``)."""
    shapes: dict[str, tuple[int, ...]] = {}
    channels, index = 1, 0
    for step in _CONV_PLAN:
        if isinstance(step, int):
            shapes[f"features.{index}.weight"] = (step, channels, 3, 3)
            shapes[f"features.{index}.bias"] = (step,)
            channels, index = step, index + 2  # conv + ReLU
        else:
            index += 1  # max-pool
    for i, (n_in, n_out) in enumerate(itertools.pairwise(_FC_SIZES)):
        shapes[f"embeddings.{2 * i}.weight"] = (n_out, n_in)
        shapes[f"embeddings.{2 * i}.bias"] = (n_out,)
    return shapes


def random_vggish_state_dict(seed: int) -> dict[str, torch.Tensor]:
    """Seeded random weights in the port's layout, identical across runs and machines.

    He-uniform weights (bound ``sqrt(6 / fan_in)``) and small uniform biases in [-0.01, 0.01), drawn in key order
    with numpy's PCG64 generator, so activations keep a sensible scale through the network.
    """
    rng = np.random.default_rng(seed)
    state: dict[str, torch.Tensor] = {}
    for name, shape in expected_state_shapes().items():
        bound = np.sqrt(6.0 / int(np.prod(shape[1:]))) if name.endswith(".weight") else 0.01
        values = rng.random(shape, dtype=np.float32)
        values *= np.float32(2 * bound)
        values -= np.float32(bound)
        state[name] = torch.from_numpy(values)
    return state


def check_vggish_state_dict(state: dict[str, torch.Tensor], *, where: str) -> dict[str, torch.Tensor]:
    """Return ``state`` without ignorable keys, or raise naming every missing, unexpected or mis-shaped key.

    Raises:
        InvalidInputError: when the layout differs from the port's.
    """
    kept = {k: v for k, v in state.items() if not k.startswith(_IGNORED_KEY_PREFIXES)}
    expected = expected_state_shapes()
    missing = sorted(set(expected) - set(kept))
    unexpected = sorted(set(kept) - set(expected))
    if missing or unexpected:
        raise InvalidInputError(
            f"{where}: not a VGGish state dict in the torchvggish layout (missing keys {missing[:6]}, "
            f"unexpected keys {unexpected[:6]}); expected the keys of '{RELEASED_WEIGHTS_NAME}'"
        )
    wrong = [f"{k} {tuple(kept[k].shape)} != {expected[k]}" for k in expected if tuple(kept[k].shape) != expected[k]]
    if wrong:
        raise InvalidInputError(f"{where}: VGGish tensors with the wrong shape: {'; '.join(wrong[:6])}")
    not_float = sorted(k for k, v in kept.items() if not v.is_floating_point())
    if not_float:
        raise InvalidInputError(f"{where}: VGGish tensors must be floating point; these are not: {not_float[:6]}")
    return {k: v.float() for k, v in kept.items()}


def load_vggish(weights: str) -> tuple[VGGish, VggishWeights]:
    """Build VGGish with the given weights, in eval mode.

    Args:
        weights: path to a ``.pth`` state dict in the torchvggish layout (loaded with ``weights_only=True``), or
            ``"random:SEED"`` for deterministic random weights.

    Returns:
        The model (eval mode, float32, CPU) and the provenance of its weights.

    Raises:
        InvalidInputError: missing or unreadable file, wrong keys or shapes, or a malformed ``random:`` seed.

    Example:
        >>> model, info = load_vggish("random:0")
        >>> info.source, model.training
        ('random:0', False)
    """
    if weights.startswith("random:"):
        match = _RANDOM_SOURCE.fullmatch(weights)
        if match is None:
            raise InvalidInputError(f"VGGish weights {weights!r}: write random weights as 'random:SEED' with SEED >= 0")
        state = random_vggish_state_dict(int(match.group(1)))
        provenance = VggishWeights(source=f"random:{int(match.group(1))}", sha256=tensor_digest(state))
    else:
        path = Path(weights)
        if not path.is_file():
            raise InvalidInputError(f"VGGish weights file not found: {path}. {vggish_weights_help()}")
        state = check_vggish_state_dict(load_state_dict_file(path, what="VGGish state dict"), where=str(path))
        provenance = VggishWeights(source=path.name, sha256=sha256_file(path))
    with torch.device("meta"):  # no throw-away initialisation of 72 M parameters
        model = VGGish()
    model.load_state_dict(state, strict=True, assign=True)
    model.eval()
    return model, provenance
