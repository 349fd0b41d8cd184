"""The trained dialogue transformer's forward pass in numpy, for run time.

Why not torch: on a busy two-core machine torch's intra-op thread pool waits for a core at every
small matrix product (measured: 150 ms per decision with two threads next to another CPU-bound
process, 0.3 ms with one), and the thread count is a setting of the whole process that the NLU
shares. numpy multiplies matrices this small on the calling thread. `tests/policies` checks that
both passes give the same logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from torch import nn

from policies.ted import TedNet

Array = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class _Layer:
    """One pre-norm encoder layer: x + attention(norm1(x)), then x + feed_forward(norm2(x))."""

    norm1: tuple[Array, Array, float]
    qkv: tuple[Array, Array]  # transposed weight (units, 3 * units), bias
    out: tuple[Array, Array]
    norm2: tuple[Array, Array, float]
    ff1: tuple[Array, Array]
    ff2: tuple[Array, Array]


class NumpyTed:
    """`TedNet.forward` in eval mode, for one window at a time."""

    def __init__(self, net: TedNet) -> None:
        net = net.eval()
        self.state = _linear(net.state)
        self.position = _array(net.position.weight)
        layers = [layer for layer in net.encoder.layers if isinstance(layer, nn.TransformerEncoderLayer)]
        self.heads = layers[0].self_attn.num_heads
        self.layers = tuple(_layer(layer) for layer in layers)
        self.norm = _norm(net.norm)
        self.dialogue = _linear(net.dialogue)
        self.actions_t = _array(net.actions).T.copy()
        size = self.position.shape[0]
        self.causal = np.triu(np.full((size, size), -np.inf, dtype=np.float32), k=1)

    def logits(self, window: Array) -> Array:
        """Action logits after the last row of `window` (max_history, features)."""
        weight, bias = self.state
        x = window @ weight + bias + self.position
        for layer in self.layers:
            x = x + self._attention(layer, _layer_norm(x, layer.norm1))
            hidden = np.maximum(_layer_norm(x, layer.norm2) @ layer.ff1[0] + layer.ff1[1], 0.0)
            x = x + hidden @ layer.ff2[0] + layer.ff2[1]
        last = _layer_norm(x[-1:], self.norm)
        out: Array = ((last @ self.dialogue[0] + self.dialogue[1]) @ self.actions_t)[0]
        return out

    def _attention(self, layer: _Layer, x: Array) -> Array:
        steps, units = x.shape
        size = units // self.heads
        qkv = (x @ layer.qkv[0] + layer.qkv[1]).reshape(steps, 3, self.heads, size).transpose(1, 2, 0, 3)
        query, key, value = qkv[0], qkv[1], qkv[2]  # (heads, steps, size) each
        scores = query @ key.transpose(0, 2, 1) / np.float32(np.sqrt(size)) + self.causal
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        mixed = (scores / scores.sum(axis=-1, keepdims=True)) @ value
        attended: Array = mixed.transpose(1, 0, 2).reshape(steps, units) @ layer.out[0] + layer.out[1]
        return attended


def _layer(layer: nn.TransformerEncoderLayer) -> _Layer:
    attention = layer.self_attn
    return _Layer(
        norm1=_norm(layer.norm1),
        qkv=(_array(attention.in_proj_weight).T.copy(), _array(attention.in_proj_bias)),
        out=_linear(attention.out_proj),
        norm2=_norm(layer.norm2),
        ff1=_linear(layer.linear1),
        ff2=_linear(layer.linear2),
    )


def _linear(linear: nn.Linear | nn.modules.linear.NonDynamicallyQuantizableLinear) -> tuple[Array, Array]:
    return _array(linear.weight).T.copy(), _array(linear.bias)


def _norm(norm: nn.LayerNorm) -> tuple[Array, Array, float]:
    return _array(norm.weight), _array(norm.bias), norm.eps


def _layer_norm(x: Array, norm: tuple[Array, Array, float]) -> Array:
    weight, bias, eps = norm
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    variance = (centred * centred).mean(axis=-1, keepdims=True)
    normed: Array = centred / np.sqrt(variance + np.float32(eps)) * weight + bias
    return normed


def _array(tensor: object) -> Array:
    return np.asarray(tensor.detach().numpy(), dtype=np.float32)  # type: ignore[attr-defined]
