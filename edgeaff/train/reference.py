"""Compatibility with the reference implementation (sucv/ABAW2) state dicts.

* :func:`convert_reference_state_dict` maps a trained ``my_2d1ddy`` (multimodal) or ``my_2d1d`` (unimodal)
  ``model_state_dict.pth`` onto :class:`~edgeaff.train.model.EmotionModel` (fusion variant ``abaw2``).
* :func:`load_backbone_weights` loads the pretrained backbone file (``res50_ir_0.887.pth``: keys ``backbone.*`` and
  ``logits.*``) into a model's visual backbone.

The key layout is described in ``reference.md`` §2: the reference registers each TCN convolution twice
(``network.i.conv1`` ≡ ``network.i.net.0``, ``conv2`` ≡ ``net.4``) and carries two unused GroupNorms (``gn1``,
``gn2``); both are accepted and dropped. Every other key must be present with the right shape.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from edgeaff.runtime.errors import InvalidInputError
from edgeaff.train.config import ModelConfig, backbone_preset
from edgeaff.train.model import EmotionModel
from edgeaff.train.torchfile import load_state_dict_file


class ReferenceFormatError(InvalidInputError):
    """A reference state dict does not have the expected keys or shapes."""


@dataclass(frozen=True)
class _Rule:
    """A bidirectional key rule between a reference template and an edgeaff template (``{i}`` index, ``{p}`` name)."""

    reference: str
    edgeaff: str

    @staticmethod
    def _regex(template: str) -> re.Pattern[str]:
        pattern = re.escape(template).replace(r"\{i\}", r"(?P<i>\d+)").replace(r"\{p\}", r"(?P<p>[A-Za-z_]+)")
        return re.compile(f"^{pattern}$")

    def to_edgeaff(self, key: str) -> str | None:
        match = self._regex(self.reference).match(key)
        return self.edgeaff.format(**match.groupdict()) if match else None

    def to_reference(self, key: str) -> str | None:
        match = self._regex(self.edgeaff).match(key)
        return self.reference.format(**match.groupdict()) if match else None


def _backbone_rules(prefix: str) -> list[_Rule]:
    """Rules for an IR backbone whose reference keys start with ``prefix`` (``spatial`` or ``backbone``)."""
    parts = {
        "input_layer.0": "stem_conv",
        "input_layer.1": "stem_bn",
        "input_layer.2": "stem_prelu",
        "output_layer.0": "embedding.bn_map",
        "output_layer.3": "embedding.fc",
        "output_layer.4": "embedding.bn_embedding",
        "body.{i}.res_layer.0": "units.{i}.bn_in",
        "body.{i}.res_layer.1": "units.{i}.conv1",
        "body.{i}.res_layer.2": "units.{i}.prelu",
        "body.{i}.res_layer.3": "units.{i}.conv2",
        "body.{i}.res_layer.4": "units.{i}.bn_out",
        "body.{i}.shortcut_layer.0": "units.{i}.shortcut_conv",
        "body.{i}.shortcut_layer.1": "units.{i}.shortcut_bn",
    }
    return [_Rule(f"{prefix}.{ref}.{{p}}", f"backbone.{ours}.{{p}}") for ref, ours in parts.items()]


def _temporal_rules() -> tuple[list[_Rule], list[_Rule]]:
    """(canonical rules, alias rules) for the TCNs, fusion and head of the video models."""
    rules: list[_Rule] = []
    aliases: list[_Rule] = []
    for ref, ours in (("temporal", "visual_tcn"), ("temporal1", "vggish_tcn"), ("temporal2", "mfcc_tcn")):
        for part in ("conv1", "conv2", "downsample"):
            rules.append(_Rule(f"{ref}.network.{{i}}.{part}.{{p}}", f"temporal.{ours}.blocks.{{i}}.{part}.{{p}}"))
        aliases.append(_Rule(f"{ref}.network.{{i}}.net.0.{{p}}", f"temporal.{ours}.blocks.{{i}}.conv1.{{p}}"))
        aliases.append(_Rule(f"{ref}.network.{{i}}.net.4.{{p}}", f"temporal.{ours}.blocks.{{i}}.conv2.{{p}}"))
    for index in range(3):
        rules.append(_Rule(f"encoder{index + 1}.{{p}}", f"temporal.fusion.key.{index}.{{p}}"))
        rules.append(_Rule(f"encoderQ{index + 1}.{{p}}", f"temporal.fusion.query.{index}.{{p}}"))
        rules.append(_Rule(f"encoderV{index + 1}.{{p}}", f"temporal.fusion.value.{index}.{{p}}"))
    rules.append(_Rule("ln.{p}", "temporal.fusion.norm.{p}"))
    rules.append(_Rule("regressor.{p}", "temporal.regressor.{p}"))
    return rules, aliases


_VIDEO_RULES = _backbone_rules("spatial") + _temporal_rules()[0]
_VIDEO_ALIASES = _temporal_rules()[1]
# Constructed by the reference (my_2d1ddy.gn1/gn2) but never used in its forward pass.
_UNUSED_MULTIMODAL_KEYS = ("gn1.weight", "gn1.bias", "gn2.weight", "gn2.bias")


def _first(rules: list[_Rule], key: str, *, reverse: bool = False) -> str | None:
    for rule in rules:
        converted = rule.to_reference(key) if reverse else rule.to_edgeaff(key)
        if converted is not None:
            return converted
    return None


def reference_key(edgeaff_key: str) -> str:
    """The canonical reference name of an edgeaff video-model key (e.g. ``backbone.stem_conv.weight`` →
    ``spatial.input_layer.0.weight``)."""
    converted = _first(_VIDEO_RULES, edgeaff_key, reverse=True)
    if converted is None:
        raise KeyError(edgeaff_key)
    return converted


def reference_layout(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every key (duplicates and unused ones included) and shape a reference state dict has for ``config``."""
    model = EmotionModel(config)
    layout: dict[str, tuple[int, ...]] = {}
    for key, tensor in model.state_dict().items():
        layout[reference_key(key)] = tuple(tensor.shape)
        alias = _first(_VIDEO_ALIASES, key, reverse=True)
        if alias is not None:
            layout[alias] = tuple(tensor.shape)
    if config.multimodal:
        channels = config.audio_channels[-1]
        for key in _UNUSED_MULTIMODAL_KEYS:
            layout[key] = (channels,)
    return layout


def _format_keys(keys: list[str], limit: int = 6) -> str:
    shown = ", ".join(keys[:limit])
    return f"{shown} (+{len(keys) - limit} more)" if len(keys) > limit else shown


def _kind_hint(reference: Mapping[str, torch.Tensor], config: ModelConfig) -> str:
    has_audio = any(key.startswith(("temporal1.", "encoder")) for key in reference)
    if has_audio and not config.multimodal:
        return " (this looks like a multimodal my_2d1ddy state dict: use --model multimodal)"
    if not has_audio and config.multimodal and "regressor.weight" in reference:
        return " (this looks like a unimodal my_2d1d state dict: use --model unimodal)"
    if not any(key.startswith("spatial.") for key in reference):
        return " (no 'spatial.*' keys: is this a reference video-model state dict, model_state_dict.pth?)"
    return ""


def convert_reference_state_dict(reference: Mapping[str, torch.Tensor], config: ModelConfig) -> dict[str, torch.Tensor]:
    """Map a reference video-model state dict onto an edgeaff state dict for ``config``.

    Raises:
        ReferenceFormatError: missing, unexpected or mis-shaped keys, or duplicate keys that disagree; the message
            names them.
    """
    expected = EmotionModel(config).state_dict()
    converted: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    mismatched: list[str] = []
    disagreeing: list[str] = []
    aliases: dict[str, torch.Tensor] = {}
    for key, tensor in reference.items():
        if config.multimodal and key in _UNUSED_MULTIMODAL_KEYS:
            continue
        target = _first(_VIDEO_RULES, key)
        if target is None:
            alias_target = _first(_VIDEO_ALIASES, key)
            if alias_target is not None and alias_target in expected:
                aliases[alias_target] = tensor
                continue
            unexpected.append(key)
            continue
        if target not in expected:
            unexpected.append(key)
            continue
        if tuple(tensor.shape) != tuple(expected[target].shape):
            mismatched.append(f"{key} {tuple(tensor.shape)} != {tuple(expected[target].shape)}")
            continue
        converted[target] = tensor.detach().to(expected[target].dtype).clone()
    for target, tensor in aliases.items():
        if target not in converted:
            # Only the duplicate (net.0 / net.4) name is present: use it.
            if tuple(tensor.shape) != tuple(expected[target].shape):
                mismatched.append(f"{reference_key(target)} (alias) {tuple(tensor.shape)}")
                continue
            converted[target] = tensor.detach().to(expected[target].dtype).clone()
        elif not torch.equal(converted[target], tensor.to(converted[target].dtype)):
            disagreeing.append(reference_key(target))
    missing = [reference_key(key) for key in expected if key not in converted]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} keys: {_format_keys(missing)}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} keys: {_format_keys(unexpected)}")
    if mismatched:
        problems.append(f"wrong shapes: {_format_keys(mismatched, 3)}")
    if disagreeing:
        problems.append(f"duplicate TCN keys (conv vs net.*) that differ: {_format_keys(disagreeing, 3)}")
    if problems:
        raise ReferenceFormatError(
            f"not a reference {config.kind} state dict{_kind_hint(reference, config)}: " + "; ".join(problems)
        )
    return converted


def reference_model_config(kind: str) -> ModelConfig:
    """The configuration the reference code trains (IR-50, ``abaw2`` fusion for the multimodal model)."""
    return ModelConfig(kind=kind, backbone=backbone_preset("ir50"), fusion="abaw2" if kind == "multimodal" else None)


def load_reference_model(path: str | Path, kind: str) -> EmotionModel:
    """Read a reference ``model_state_dict.pth`` into a new :class:`EmotionModel` in eval mode."""
    config = reference_model_config(kind)
    state = convert_reference_state_dict(load_state_dict_file(path, what="reference state dict"), config)
    model = EmotionModel(config)
    model.load_state_dict(state, strict=True)
    return model.eval()


def load_backbone_weights(model: EmotionModel, path: str | Path) -> list[str]:
    """Load pretrained backbone weights into ``model.backbone`` in place.

    Accepts the reference's ``res50_ir_0.887.pth`` (``my_res50`` state dict: ``backbone.*`` plus the ignored FER+
    classifier ``logits.*``) or a reference video-model state dict (``spatial.*``, other keys ignored).

    Returns:
        The keys that were ignored.

    Raises:
        InvalidInputError: unreadable file, missing/unexpected backbone keys or shapes that do not fit the model's
            backbone configuration.
    """
    state = load_state_dict_file(path, what="backbone weights")
    prefix = "backbone" if any(k.startswith("backbone.") for k in state) else "spatial"
    rules = _backbone_rules(prefix)
    expected = {k[len("backbone.") :]: v for k, v in model.state_dict().items() if k.startswith("backbone.")}
    converted: dict[str, torch.Tensor] = {}
    ignored: list[str] = []
    problems: list[str] = []
    for key, tensor in state.items():
        target = _first(rules, key)
        if target is None:
            ignored.append(key)
            continue
        local = target[len("backbone.") :]
        if local not in expected:
            problems.append(f"unexpected {key}")
        elif tuple(tensor.shape) != tuple(expected[local].shape):
            problems.append(f"{key} has shape {tuple(tensor.shape)}, the model needs {tuple(expected[local].shape)}")
        else:
            converted[local] = tensor
    missing = [f"{prefix}.{k}" for k in expected if k not in converted]
    if not converted:
        raise InvalidInputError(
            f"{path}: no backbone weights found (expected keys 'backbone.*' as in res50_ir_0.887.pth)"
        )
    fc = converted.get("embedding.fc.weight")
    hint = ""
    if any("output_layer.3.weight" in p for p in problems) and fc is None:
        hint = (
            " — these weights have a different output layer (e.g. 7×7 for 112×112 input); the paper's model needs the "
            "5×5 layer for 40×40 crops, as in res50_ir_0.887.pth"
        )
    if problems or missing:
        details = problems[:4] + ([f"missing {_format_keys(missing)}"] if missing else [])
        raise InvalidInputError(
            f"{path}: backbone weights do not fit the '{model.config.backbone.name}' backbone: "
            + "; ".join(details)
            + hint
        )
    model.backbone.load_state_dict(converted, strict=True)
    return ignored
