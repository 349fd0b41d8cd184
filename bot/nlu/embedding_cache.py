"""Query embeddings kept on disk between runs, for training data that every project shares (kefu's own
harm examples): the first training pays for embedding them, later ones (other projects, the test suite) read
them back. One `.npz` per embedder in the user's cache folder, keyed by the SHA-256 of each text; written
atomically, read with `allow_pickle=False`. A cache that cannot be read or written is skipped, never fatal.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bot.protocols import Embedder

log = logging.getLogger(__name__)

MAX_ENTRIES = 200_000  # about 300 MB at 384 float32 dimensions; beyond it the cache starts afresh

Floats = npt.NDArray[np.float32]


def cache_folder() -> Path:
    """$KEFU_CACHE_DIR, else $XDG_CACHE_HOME/kefu, else ~/.cache/kefu."""
    if os.environ.get("KEFU_CACHE_DIR"):
        return Path(os.environ["KEFU_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kefu"


def cached_embeddings(
    embedder: Embedder,
    texts: Sequence[str],
    embed: Callable[[Sequence[str]], Floats],
    folder: Path | None = None,
) -> Floats:
    """The query embeddings of `texts` (shape (n, dim)): those in the cache read back, the rest computed with
    `embed` (a batching, progress-showing wrapper around `embedder.embed_queries`) and added to it."""
    path = (folder or cache_folder()) / f"embeddings-{_safe(embedder.name)}.npz"
    keys = [hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest() for text in texts]
    known = _read(path, embedder.dim)
    text_of = dict(zip(keys, texts, strict=True))
    missing = [key for key in text_of if key not in known]
    if missing:
        fresh = np.asarray(embed([text_of[key] for key in missing]), dtype=np.float32)
        known.update(zip(missing, fresh, strict=True))
        _write(path, known)
    if not texts:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    return np.stack([known[key] for key in keys])


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def _read(path: Path, dim: int) -> dict[str, Floats]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys, vectors = archive["keys"], archive["vectors"]
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError) as err:
        log.warning("ignoring the unreadable embedding cache %s (%s)", path, err)
        return {}
    if vectors.ndim != 2 or vectors.shape != (len(keys), dim):
        log.warning("ignoring the embedding cache %s: its vectors are not %d-dimensional", path, dim)
        return {}
    return {str(key): vectors[i] for i, key in enumerate(keys)}


def _write(path: Path, entries: dict[str, Floats]) -> None:
    if len(entries) > MAX_ENTRIES:
        entries = dict(list(entries.items())[-MAX_ENTRIES:])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, keys=np.array(list(entries)), vectors=np.stack(list(entries.values())))
            os.replace(temp, path)
        finally:
            if os.path.exists(temp):
                os.unlink(temp)
    except OSError as err:
        log.warning("could not write the embedding cache %s (%s); embeddings will be computed again", path, err)
