"""An independent float64 numpy implementation of the reference model, written from ``reference.md`` §1.

It reads a *reference-format* state dict (the sucv/ABAW2 key names, duplicates included), so a test that feeds
the same weights to it and, after ``convert-reference``, to edgeaff's PyTorch model checks the key mapping and every
layer at once. Eval mode only (BatchNorm uses running statistics, dropout is off).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

Array = np.ndarray
BN_EPS = 1e-5
LN_EPS = 1e-5


def conv2d(x: Array, w: Array, stride: int, pad: int) -> Array:
    """x (N, C, H, W), w (O, C, k, k), no bias."""
    n, c, h, width = x.shape
    k = w.shape[2]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh = (h + 2 * pad - k) // stride + 1
    ow = (width + 2 * pad - k) // stride + 1
    cols = np.empty((n, c, k, k, oh, ow))
    for i in range(k):
        for j in range(k):
            cols[:, :, i, j] = xp[:, :, i : i + stride * oh : stride, j : j + stride * ow : stride]
    return np.einsum("ncijhw,ocij->nohw", cols, w, optimize=True)


def batchnorm(x: Array, sd: Mapping[str, Array], name: str) -> Array:
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean = sd[f"{name}.running_mean"].reshape(shape)
    var = sd[f"{name}.running_var"].reshape(shape)
    return (x - mean) / np.sqrt(var + BN_EPS) * sd[f"{name}.weight"].reshape(shape) + sd[f"{name}.bias"].reshape(shape)


def prelu(x: Array, weight: Array) -> Array:
    return np.where(x >= 0, x, x * weight.reshape(1, -1, 1, 1))


def ir_unit(x: Array, sd: Mapping[str, Array], name: str, stride: int) -> Array:
    """bottleneck_IR: BN → conv3 → PReLU → conv3(stride) → BN, plus MaxPool(1, s) or conv1x1(s)+BN shortcut."""
    if f"{name}.shortcut_layer.0.weight" in sd:
        shortcut = batchnorm(
            conv2d(x, sd[f"{name}.shortcut_layer.0.weight"], stride, 0), sd, f"{name}.shortcut_layer.1"
        )
    else:
        shortcut = x[:, :, ::stride, ::stride]
    r = batchnorm(x, sd, f"{name}.res_layer.0")
    r = conv2d(r, sd[f"{name}.res_layer.1.weight"], 1, 1)
    r = prelu(r, sd[f"{name}.res_layer.2.weight"])
    r = conv2d(r, sd[f"{name}.res_layer.3.weight"], stride, 1)
    r = batchnorm(r, sd, f"{name}.res_layer.4")
    return r + shortcut


def backbone(frames: Array, sd: Mapping[str, Array], stage_units=(3, 4, 14, 3)) -> Array:
    """(N, 3, 40, 40) → (N, 512) L2-normalised."""
    x = conv2d(frames, sd["spatial.input_layer.0.weight"], 1, 1)
    x = batchnorm(x, sd, "spatial.input_layer.1")
    x = prelu(x, sd["spatial.input_layer.2.weight"])
    index = 0
    for stage, count in enumerate(stage_units):
        for unit in range(count):
            stride = (1 if stage == 0 else 2) if unit == 0 else 1
            x = ir_unit(x, sd, f"spatial.body.{index}", stride)
            index += 1
    x = batchnorm(x, sd, "spatial.output_layer.0")
    x = x.reshape(x.shape[0], -1)  # channel-major flatten: c*25 + h*5 + w
    x = x @ sd["spatial.output_layer.3.weight"].T + sd["spatial.output_layer.3.bias"]
    x = batchnorm(x, sd, "spatial.output_layer.4")
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def leaky(x: Array) -> Array:
    return np.where(x > 0, x, 0.01 * x)


def causal_conv1d(x: Array, v: Array, g: Array, b: Array, dilation: int) -> Array:
    """Weight-normed conv: w = g·v/‖v‖ (norm over in, k per out); pad (k-1)d both sides, chomp the right."""
    w = g * v / np.sqrt((v**2).sum(axis=(1, 2), keepdims=True))
    k = w.shape[2]
    pad = (k - 1) * dilation
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad)))
    length = x.shape[2] + pad  # full conv output length before chomp
    out = np.zeros((x.shape[0], w.shape[0], length))
    for tap in range(k):
        out += np.einsum("ncl,oc->nol", xp[:, :, tap * dilation : tap * dilation + length], w[:, :, tap])
    out += b.reshape(1, -1, 1)
    return out[:, :, : length - pad]  # chomp


def tcn(x: Array, sd: Mapping[str, Array], name: str, levels: int = 4) -> Array:
    """(N, C, L) → (N, C_out, L). Uses the ``net.0`` / ``net.4`` duplicate keys on purpose."""
    for i in range(levels):
        p = f"{name}.network.{i}"
        d = 2**i
        y = leaky(causal_conv1d(x, sd[f"{p}.net.0.weight_v"], sd[f"{p}.net.0.weight_g"], sd[f"{p}.net.0.bias"], d))
        y = leaky(causal_conv1d(y, sd[f"{p}.net.4.weight_v"], sd[f"{p}.net.4.weight_g"], sd[f"{p}.net.4.bias"], d))
        if f"{p}.downsample.weight" in sd:
            res = np.einsum("ncl,oc->nol", x, sd[f"{p}.downsample.weight"][:, :, 0]) + sd[
                f"{p}.downsample.bias"
            ].reshape(1, -1, 1)
        else:
            res = x
        x = leaky(y + res)
    return x


def linear(x: Array, sd: Mapping[str, Array], name: str) -> Array:
    return x @ sd[f"{name}.weight"].T + sd[f"{name}.bias"]


def softmax(x: Array, axis: int) -> Array:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def unimodal(frames: Array, sd: Mapping[str, Array]) -> Array:
    """my_2d1d: (B, L, 3, 40, 40) → (B, L)."""
    b, length = frames.shape[:2]
    emb = backbone(frames.reshape(b * length, 3, 40, 40), sd).reshape(b, length, -1)
    h = tcn(emb.transpose(0, 2, 1), sd, "temporal").transpose(0, 2, 1).reshape(b * length, -1)
    return linear(h, sd, "regressor").reshape(b, length)


def multimodal_head(emb: Array, vggish: Array, mfcc: Array, sd: Mapping[str, Array]) -> Array:
    """my_2d1ddy after the backbone: (B, L, 512), (B, L, 128), (B, L, 39) → (B, L)."""
    b, length = emb.shape[:2]
    hv = tcn(emb.transpose(0, 2, 1), sd, "temporal").transpose(0, 2, 1).reshape(b * length, -1)
    h1 = tcn(vggish.transpose(0, 2, 1), sd, "temporal1").transpose(0, 2, 1).reshape(b * length, -1)
    h2 = tcn(mfcc.transpose(0, 2, 1), sd, "temporal2").transpose(0, 2, 1).reshape(b * length, -1)
    k0, q0, v0 = linear(hv, sd, "encoder1"), linear(hv, sd, "encoderQ1"), linear(hv, sd, "encoderV1")
    # The reference bug: aural Q and V are projections of the aural key vectors.
    k1 = linear(h1, sd, "encoder2")
    q1, v1 = linear(k1, sd, "encoderQ2"), linear(k1, sd, "encoderV2")
    k2 = linear(h2, sd, "encoder3")
    q2, v2 = linear(k2, sd, "encoderQ3"), linear(k2, sd, "encoderV3")
    keys = np.stack([k0, k1, k2], axis=1)
    queries = np.stack([q0, q1, q2], axis=1)
    values = np.stack([v0, v1, v2], axis=1)
    scores = softmax(np.einsum("nid,njd->nij", keys, queries) / np.sqrt(32.0), axis=-1)
    attended = np.einsum("nij,njd->nid", scores, values) + values
    mean = attended.mean(axis=(1, 2), keepdims=True)
    var = attended.var(axis=(1, 2), keepdims=True)
    normed = (attended - mean) / np.sqrt(var + LN_EPS) * sd["ln.weight"] + sd["ln.bias"]
    fused = np.concatenate([hv, normed.reshape(b * length, -1)], axis=1)
    return linear(fused, sd, "regressor").reshape(b, length)


def multimodal(frames: Array, vggish: Array, mfcc: Array, sd: Mapping[str, Array]) -> Array:
    """my_2d1ddy: (B, L, 3, 40, 40), (B, L, 128), (B, L, 39) → (B, L)."""
    b, length = frames.shape[:2]
    emb = backbone(frames.reshape(b * length, 3, 40, 40), sd).reshape(b, length, -1)
    return multimodal_head(emb, vggish, mfcc, sd)
