"""Choose and verify the VGGish weights that go into a multimodal bundle.

The checkpoints' feature spec names the VGGish the training features came from (``weights_source`` and
``weights_sha256``). The bundle must carry the same network: a given file must hash to the recorded sha256; with no
``--vggish-weights`` a recorded ``random:SEED`` source is rebuilt; a spec without a hash (checkpoints converted
from the reference) accepts the user's file and the bundle records which one it was.
"""

from __future__ import annotations

from typing import Any

from edgeaff.runtime.errors import EdgeaffError, InvalidInputError
from edgeaff.runtime.spec import VggishSpec


def resolve_vggish(spec: VggishSpec, weights: str | None) -> tuple[Any, Any]:
    """Load the VGGish for ``spec``: returns ``(module, VggishWeights)``.

    Raises:
        InvalidInputError: no weights given where the spec cannot name them, or a sha256 mismatch.
        EdgeaffError: this edgeaff has no VGGish network.
    """
    try:
        from edgeaff.train.vggish import load_vggish
    except ImportError as exc:
        raise EdgeaffError(
            f"this edgeaff cannot build VGGish graphs ({exc}); install a release with edgeaff.train.vggish"
        ) from None
    if weights is None:
        if spec.weights_source.startswith("random:"):
            weights = spec.weights_source
        else:
            recorded = spec.weights_sha256 or "not recorded"
            raise InvalidInputError(
                f"multimodal models need --vggish-weights FILE: the VGGish their features were computed with "
                f"(source '{spec.weights_source}', sha256 {recorded})"
            )
    model, info = load_vggish(weights)
    if spec.weights_sha256 is not None and info.sha256 != spec.weights_sha256:
        raise InvalidInputError(
            f"--vggish-weights {weights} has sha256 {info.sha256[:16]}…, but the models were trained on features "
            f"from '{spec.weights_source}' with sha256 {spec.weights_sha256[:16]}…; give that file"
        )
    return model, info
