"""A static distillation of e5 in the spirit of model2vec: one vector per sentencepiece piece, so a sentence
embedding is a mean of table rows (well under a millisecond) instead of a transformer pass (10-16 ms).

Distillation embeds each selected piece's text with the teacher, reduces the vectors with PCA and weights each
row by a/(a + p), p the piece's unigram probability (SIF: frequent pieces say little). Tables are an `.npz`
(no pickle) and a `meta.json`; the embedder's name carries the table's digest, so an NLU trained over one table
refuses another.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from bot.errors import ModelNotTrainedError
from bot.nlu.sentencepiece import META, Vocabulary, load_vocabulary
from bot.protocols import Embedder

TABLE_FILE = "table.npz"
META_FILE = "meta.json"
FORMAT = 1
DEFAULT_DIM = 256
SIF_COEFFICIENT = 1e-4  # model2vec's choice
BATCH = 256
UNDISTILLED = "undistilled"  # the name's digest part while a folder has no table

Floats = npt.NDArray[np.float32]
Ids = npt.NDArray[np.int32]


@dataclass(frozen=True, slots=True, eq=False)
class StaticTable:
    """Piece vectors and what they were made from. `mean` and `components` are the PCA, kept so that new
    pieces can be added to the table in the same space."""

    piece_ids: Ids
    vectors: Floats  # (pieces, dim), SIF weight included
    mean: Floats  # (teacher dim,)
    components: Floats  # (teacher dim, dim)
    teacher: str
    top_k: int | None  # the pieces were the top_k by score plus those of some texts; None: chosen otherwise
    sif_coefficient: float = SIF_COEFFICIENT

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def digest(self) -> str:
        """Short hash of the pieces and their vectors: what the embedder's name is made of."""
        sha = hashlib.sha256(np.ascontiguousarray(self.piece_ids, "<i4").tobytes())
        sha.update(np.ascontiguousarray(self.vectors, "<f4").tobytes())
        return sha.hexdigest()[:12]

    def meta(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "teacher": self.teacher,
            "top_k": self.top_k,
            "dim": self.dim,
            "pieces": len(self.piece_ids),
            "sif_coefficient": self.sif_coefficient,
            "digest": self.digest,
        }

    def save(self, folder: Path) -> None:
        """Write `table.npz`, then `meta.json`; each replaces its file atomically, and the meta comes last
        because its presence is what says the table is complete."""
        folder.mkdir(parents=True, exist_ok=True)
        with _replacing(folder / TABLE_FILE) as handle:
            np.savez(handle, piece_ids=self.piece_ids, vectors=self.vectors, mean=self.mean, components=self.components)
        with _replacing(folder / META_FILE) as handle:
            handle.write(json.dumps(self.meta(), indent=1).encode("utf-8"))

    @classmethod
    def load(cls, folder: Path) -> StaticTable:
        meta = read_meta(folder)
        try:
            with np.load(folder / TABLE_FILE, allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in ("piece_ids", "vectors", "mean", "components")}
        except (OSError, KeyError, ValueError) as err:
            raise ModelNotTrainedError(f"no readable static e5 table in {folder}: run `kefu train nlu`") from err
        table = cls(
            arrays["piece_ids"].astype(np.int32),
            arrays["vectors"].astype(np.float32),
            arrays["mean"].astype(np.float32),
            arrays["components"].astype(np.float32),
            teacher=str(meta["teacher"]),
            top_k=meta.get("top_k"),
            sif_coefficient=float(meta["sif_coefficient"]),
        )
        if table.digest != meta["digest"]:
            raise ModelNotTrainedError(f"the static e5 table in {folder} does not match its {META_FILE}: distil again")
        return table


def read_meta(folder: Path) -> dict[str, Any]:
    """A table's meta.json; ModelNotTrainedError when there is none (the table is not distilled yet)."""
    try:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelNotTrainedError(f"no static e5 table in {folder}: run `kefu train nlu` to distil it") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelNotTrainedError(f"the static e5 table in {folder} has an unknown format: distil it again")
    return meta


def select_pieces(vocabulary: Vocabulary, top_k: int, texts: Iterable[str] = ()) -> Ids:
    """The `top_k` most probable pieces plus every piece of `texts`; never the special pieces, nor
    pieces with no text of their own (a lone ▁)."""
    chosen: set[int] = set()
    for piece in np.argsort(-vocabulary.scores, kind="stable").tolist():
        if len(chosen) >= top_k:
            break
        if _usable(vocabulary, piece):
            chosen.add(piece)
    for text in texts:
        chosen.update(i for i in vocabulary.tokenize(text) if _usable(vocabulary, i))
    return np.array(sorted(chosen), dtype=np.int32)


def _usable(vocabulary: Vocabulary, piece: int) -> bool:
    specials = (vocabulary.bos, vocabulary.eos, vocabulary.pad, vocabulary.unk)
    return piece not in specials and bool(surface(vocabulary.pieces[piece]))


def surface(piece: str) -> str:
    """The text a piece stands for: ▁ back to a space, stripped."""
    return piece.replace(META, " ").strip()


def distill_static_table(
    teacher: Embedder,
    vocabulary: Vocabulary,
    piece_ids: Sequence[int] | Ids,
    *,
    dim: int = DEFAULT_DIM,
    top_k: int | None = None,
    sif_coefficient: float = SIF_COEFFICIENT,
    progress: bool = False,
) -> StaticTable:
    """Embed each piece's text with `teacher`, reduce to `dim` by PCA (fewer with fewer pieces), weight by SIF.

    `top_k` only records how the pieces were chosen (see `select_pieces`)."""
    ids = np.asarray(piece_ids, dtype=np.int32)
    embedded = _embed_pieces(teacher, vocabulary, ids, progress=progress)
    mean = embedded.mean(axis=0) if len(ids) else np.zeros(teacher.dim)
    components = _principal_axes(embedded - mean, min(dim, len(ids), teacher.dim))
    vectors = _rows(vocabulary, ids, embedded, mean, components, sif_coefficient)
    return StaticTable(
        ids,
        vectors,
        mean.astype(np.float32),
        components.astype(np.float32),
        teacher=teacher.name,
        top_k=top_k,
        sif_coefficient=sif_coefficient,
    )


def extend_static_table(
    table: StaticTable, teacher: Embedder, vocabulary: Vocabulary, piece_ids: Iterable[int], *, progress: bool = False
) -> StaticTable:
    """`table` plus the pieces of `piece_ids` it lacks, projected with the table's own PCA."""
    new = np.setdiff1d(np.asarray(list(piece_ids), dtype=np.int32), table.piece_ids)
    if not len(new):
        return table
    embedded = _embed_pieces(teacher, vocabulary, new, progress=progress)
    vectors = _rows(vocabulary, new, embedded, table.mean, table.components, table.sif_coefficient)
    ids = np.concatenate([table.piece_ids, new])
    order = np.argsort(ids, kind="stable")
    return StaticTable(
        ids[order],
        np.concatenate([table.vectors, vectors])[order],
        table.mean,
        table.components,
        teacher=table.teacher,
        top_k=table.top_k,
        sif_coefficient=table.sif_coefficient,
    )


def _rows(
    vocabulary: Vocabulary,
    ids: Ids,
    embedded: npt.NDArray[np.float64],
    mean: npt.NDArray[np.floating[Any]],
    components: npt.NDArray[np.floating[Any]],
    sif_coefficient: float,
) -> Floats:
    """Table rows: the teacher's vectors in PCA space, times the SIF weight a / (a + p)."""
    probability = np.exp(vocabulary.scores[ids].astype(np.float64))
    weight = sif_coefficient / (sif_coefficient + probability)
    projected = (embedded - mean.astype(np.float64)) @ components.astype(np.float64)
    return (projected * weight[:, None]).astype(np.float32)


def _embed_pieces(teacher: Embedder, vocabulary: Vocabulary, ids: Ids, *, progress: bool) -> npt.NDArray[np.float64]:
    texts = [surface(vocabulary.pieces[i]) for i in ids.tolist()]
    out = np.zeros((len(texts), teacher.dim), np.float64)
    with tqdm(total=len(texts), desc="distilling e5", unit="piece", disable=not progress) as bar:
        for start in range(0, len(texts), BATCH):
            batch = texts[start : start + BATCH]
            out[start : start + len(batch)] = teacher.embed_queries(batch)
            bar.update(len(batch))
    return out


def _principal_axes(centred: npt.NDArray[np.float64], dim: int) -> npt.NDArray[np.float64]:
    """The `dim` leading principal axes, (features, dim), from the covariance (features are few: 384)."""
    if dim == 0:
        return np.zeros((centred.shape[1], 0))
    values, vectors = np.linalg.eigh(centred.T @ centred)
    axes = vectors[:, np.argsort(-values, kind="stable")[:dim]]
    # eigh's signs are arbitrary: fix them so that the same data always gives the same table
    signs = np.sign(axes[np.argmax(np.abs(axes), axis=0), np.arange(dim)])
    return axes * np.where(signs == 0, 1.0, signs)


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[BinaryIO]:
    """A file written under a temporary name and moved over `path` only once complete."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


class StaticEmbedder:
    """The `Embedder` protocol over a distilled table: the mean of the vectors of a text's pieces that are in
    the table, L2-normalised (a zero vector when none is). Queries and passages are embedded alike.

    The constructor reads only the small meta.json: the name is needed before loading, to check that an NLU
    model was trained over this very table. Over a folder with no table yet the name says so, and `warm_up`
    raises ModelNotTrainedError; otherwise `warm_up` loads the table and the vocabulary.
    """

    inline = True  # a mean of table rows: microseconds, no I/O (see `bot.nlu.offload`)

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        try:
            meta = read_meta(self.folder)
        except ModelNotTrainedError:
            meta = {"digest": UNDISTILLED, "dim": 0}
        self.name = f"static-e5-{meta['digest']}"
        self.dim = int(meta["dim"])
        self._lock = threading.Lock()
        self._loaded: tuple[Vocabulary, Floats, npt.NDArray[np.int64]] | None = None

    def warm_up(self) -> None:
        """Load the table and the sentencepiece vocabulary (about 0.3 s); later calls do nothing."""
        with self._lock:
            if self._loaded is None:
                self._loaded = self._load()

    def _load(self) -> tuple[Vocabulary, Floats, npt.NDArray[np.int64]]:
        table = StaticTable.load(self.folder)
        if f"static-e5-{table.digest}" != self.name:
            raise ModelNotTrainedError(
                f"the static e5 table in {self.folder} was distilled again after this embedder was made: make a new one"
            )
        vocabulary = load_vocabulary()
        rows = np.full(len(vocabulary), -1, dtype=np.int64)  # piece id -> table row, -1: not in the table
        rows[table.piece_ids] = np.arange(len(table.piece_ids))
        return vocabulary, table.vectors, rows

    def embed_queries(self, texts: Sequence[str]) -> Floats:
        """Shape (len(texts), dim), each row of unit length or zero."""
        if self._loaded is None:
            self.warm_up()
        if self._loaded is None:  # warm_up loads or raises; this keeps the type checker honest
            raise ModelNotTrainedError(f"the static e5 table in {self.folder} failed to load")
        vocabulary, vectors, rows = self._loaded
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            found = rows[vocabulary.tokenize(text)]
            found = found[found >= 0]
            if found.size:
                mean = vectors[found].mean(axis=0)
                norm = float(np.linalg.norm(mean))
                out[i] = mean / norm if norm > 0 else 0.0
        return out

    def embed_passages(self, texts: Sequence[str]) -> Floats:
        """The same as `embed_queries`: the table was distilled from query embeddings."""
        return self.embed_queries(texts)


def static_embedder_for(
    folder: Path,
    *,
    teacher: Embedder,
    top_k: int,
    texts: Sequence[str] | None = None,
    dim: int = DEFAULT_DIM,
    progress: bool = False,
) -> StaticEmbedder:
    """The static embedder over `folder`. With `texts` (the NLU's training texts), first distil the table from
    `teacher` when it is missing or was made from another teacher, `top_k` or `dim`, and add the pieces of
    `texts` it lacks (new training data), so that it is ready for training."""
    if texts is not None:
        _prepare(folder, teacher, top_k, texts, dim=dim, progress=progress)
    return StaticEmbedder(folder)


def _prepare(folder: Path, teacher: Embedder, top_k: int, texts: Sequence[str], *, dim: int, progress: bool) -> None:
    vocabulary = load_vocabulary()
    try:
        table: StaticTable | None = StaticTable.load(folder)
    except ModelNotTrainedError:
        table = None
    if table is not None and (table.teacher, table.top_k) == (teacher.name, top_k) and table.dim <= dim:
        new = np.setdiff1d(select_pieces(vocabulary, 0, texts), table.piece_ids)
        if not len(new):
            return
        if table.dim == min(dim, teacher.dim):  # new pieces fit the table's PCA space
            extend_static_table(table, teacher, vocabulary, new, progress=progress).save(folder)
            return
    # missing, made otherwise, or a tiny table whose PCA had fewer pieces than dimensions: distil it all
    ids = select_pieces(vocabulary, top_k, texts)
    distill_static_table(teacher, vocabulary, ids, dim=dim, top_k=top_k, progress=progress).save(folder)
