"""BM25 keyword search over bilingual texts: jieba words for Chinese, lightly stemmed words for English.

An inverted index (term -> document -> term frequency) that takes additions and removals without a
rebuild; a query only touches the documents that contain one of its terms.
"""

from __future__ import annotations

import json
import math
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

import jieba
import numpy as np

from bot.errors import ProjectError
from bot.nlu.features import HAN, init_jieba

BM25_FILE = "bm25.json"
_FORMAT = 1
_HAN_CHAR = re.compile(f"[{HAN}]")
_WORD = re.compile(r"[^\W_]+")  # letters and digits of any script, without punctuation or "_"
# Words that carry no topic. Question words ("怎么", "how") stay: IDF already makes common words cheap.
_CHINESE_STOP = (
    "的 地 得 了 着 过 吗 呢 吧 啊 呀 哦 嗯 么 是 我 你 您 他 她 它 我们 你们 他们 "
    "这 那 这个 那个 在 和 与 及 或 也 就 都 还 又 请 一下"
)
_ENGLISH_STOP = (
    "a an the is are was were be been am do does did of to in on at for and or but it its this that these those "
    "i me my you your we our he she they them his her with as by from"
)
STOP_WORDS = frozenset(_CHINESE_STOP.split() + _ENGLISH_STOP.split())
_DOUBLED = re.compile(r"([b-df-hj-km-np-rtv-y])\1$")  # "shipp" -> "ship"; l, s and z double in stems too


def search_tokens(text: str) -> list[str]:
    """The terms of `text` for keyword search, in reading order.

    Full-width forms fold to ASCII (NFKC) and everything is lower-cased. Chinese goes through jieba's search
    mode, which adds the shorter words inside long ones ("退货政策" also gives "退货"); other words are
    stemmed ("refunds" -> "refund"). Numbers stay; punctuation, whitespace and `STOP_WORDS` go.
    """
    init_jieba()
    folded = unicodedata.normalize("NFKC", text).lower()
    terms: list[str] = []
    for piece in jieba.lcut_for_search(folded):
        if _HAN_CHAR.search(piece):
            if piece not in STOP_WORDS:
                terms.append(piece)
            continue
        terms.extend(stem(word) for word in _WORD.findall(piece) if word not in STOP_WORDS)
    return terms


def stem(word: str) -> str:
    """A light English stemmer for plurals, -ing and -ed: enough for "refunds", "shipped", "charging".

    Words with digits or of three letters or fewer stay as they are. A final "e" goes too, so that
    "charge", "charged" and "charging" meet at "charg".
    """
    if len(word) <= 3 or not word.isascii() or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("es") and word[:-2].endswith(("s", "x", "z", "ch", "sh")):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    elif word.endswith("ing") and len(word) >= 6:
        word = _DOUBLED.sub(r"\1", word[:-3])
    elif word.endswith("ed") and len(word) >= 5:
        word = _DOUBLED.sub(r"\1", word[:-2])
    return word[:-1] if word.endswith("e") and len(word) > 4 else word


class Bm25Index:
    """Okapi BM25 over documents with string ids; each id is one document, and adding it again replaces it.

    Searches may run concurrently; `add` and `remove` need the caller to exclude searches.
    """

    def __init__(self, *, k1: float = 1.2, b: float = 0.75) -> None:
        if k1 < 0 or not 0 <= b <= 1:
            raise ValueError(f"BM25 needs k1 >= 0 and 0 <= b <= 1, got k1={k1}, b={b}")
        self.k1 = k1
        self.b = b
        self._ids: list[str | None] = []  # by slot; None once removed
        self._slot: dict[str, int] = {}
        self._lengths: list[int] = []
        self._terms: list[tuple[str, ...]] = []  # each slot's distinct terms, to find its postings on removal
        self._postings: dict[str, dict[int, int]] = {}  # term -> slot -> term frequency
        self._total_length = 0
        # Caches for scoring with numpy, dropped when a document changes them.
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._length_array: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self._slot)

    def add(self, ids: Sequence[str], texts: Sequence[str]) -> None:
        """Index one text per id; an id already present is replaced."""
        if isinstance(ids, str) or isinstance(texts, str):
            raise TypeError("add takes sequences of ids and texts, not one string")
        if len(ids) != len(texts):
            raise ValueError(f"{len(ids)} ids for {len(texts)} texts")
        for doc_id, text in zip(ids, texts, strict=True):
            self._insert(doc_id, Counter(search_tokens(text)))
        self._compact_if_sparse()

    def remove(self, ids: Collection[str]) -> int:
        """Remove these documents; returns how many were there."""
        if isinstance(ids, str):
            raise TypeError("remove takes a collection of ids, not one string")
        slots = [slot for doc_id in set(ids) if (slot := self._slot.pop(doc_id, None)) is not None]
        for slot in slots:
            self._drop(slot)
        self._compact_if_sparse()
        return len(slots)

    def search(
        self,
        query: str,
        k: int,
        *,
        allowed: Callable[[str], bool] | None = None,
        tokens: Sequence[str] | None = None,
    ) -> list[tuple[str, float]]:
        """The `k` best documents as (id, BM25 score), best first; only those sharing a term with `query`.

        With `allowed`, only ids it accepts are returned. Equal scores keep insertion order. `tokens` are the
        query's `search_tokens` when the caller has them already (one query, several indexes).
        """
        if k <= 0 or not self._slot:
            return []
        tokens = search_tokens(query) if tokens is None else tokens
        terms = [term for term in dict.fromkeys(tokens) if term in self._postings]
        if not terms:
            return []
        scores = np.zeros(len(self._ids))
        touched = [self._score(term, scores) for term in terms]
        # Candidates repeat a document once per query term it holds: cheaper than a union over all slots.
        candidates = touched[0] if len(touched) == 1 else np.concatenate(touched)
        fetch = k if allowed is None else 4 * k + 16
        while True:
            best = self._best(scores, candidates, fetch, len(touched))
            found = [hit for hit in best if allowed is None or allowed(hit[0])]
            if len(found) >= k or fetch * len(touched) >= len(candidates):
                return found[:k]
            fetch *= 4

    def save(self, directory: Path) -> None:
        """Write `bm25.json` (ids, lengths, postings) into `directory`, replaced atomically."""
        renumber = self._renumbering()
        postings = {
            term: [[renumber[slot] for slot in docs], list(docs.values())] for term, docs in self._postings.items()
        }
        payload = {
            "format": _FORMAT,
            "k1": self.k1,
            "b": self.b,
            "ids": [self._ids[slot] for slot in renumber],
            "lengths": [self._lengths[slot] for slot in renumber],
            "postings": postings,
        }
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f".{BM25_FILE}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(payload, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
        os.replace(tmp, directory / BM25_FILE)

    @classmethod
    def load(cls, directory: Path) -> Bm25Index:
        """Read an index written by `save`; raises ProjectError when the file is missing or malformed."""
        path = directory / BM25_FILE
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ProjectError(
                f"cannot read the keyword index ({err}); delete the folder to rebuild it", path=str(path)
            ) from err
        try:
            return _restore(payload)
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as err:
            raise ProjectError(
                f"the keyword index is malformed ({err}); delete the folder to rebuild it", path=str(path)
            ) from err

    def _insert(self, doc_id: str, counts: Counter[str]) -> None:
        old = self._slot.get(doc_id)
        if old is not None:
            self._drop(old)
        slot = len(self._ids)
        self._slot[doc_id] = slot
        self._ids.append(doc_id)
        self._lengths.append(counts.total())
        self._terms.append(tuple(counts))
        self._total_length += counts.total()
        for term, frequency in counts.items():
            self._postings.setdefault(term, {})[slot] = frequency
            self._arrays.pop(term, None)
        self._length_array = None

    def _drop(self, slot: int) -> None:
        for term in self._terms[slot]:
            docs = self._postings[term]
            del docs[slot]
            if not docs:
                del self._postings[term]
            self._arrays.pop(term, None)
        self._total_length -= self._lengths[slot]
        self._ids[slot], self._lengths[slot], self._terms[slot] = None, 0, ()
        self._length_array = None

    def _renumbering(self) -> dict[int, int]:
        """Old slot -> new slot for the documents still here, closing the holes removals leave."""
        return {slot: new for new, slot in enumerate(sorted(self._slot.values()))}

    def _compact_if_sparse(self) -> None:
        """Renumber the documents once removed ones outnumber them, so arrays sized by slot stay small."""
        if len(self._ids) - len(self._slot) <= max(1024, len(self._slot)):
            return
        renumber = self._renumbering()
        self._ids = [self._ids[slot] for slot in renumber]
        self._lengths = [self._lengths[slot] for slot in renumber]
        self._terms = [self._terms[slot] for slot in renumber]
        self._slot = {doc_id: new for new, doc_id in enumerate(self._ids) if doc_id is not None}
        self._postings = {
            term: {renumber[slot]: frequency for slot, frequency in docs.items()}
            for term, docs in self._postings.items()
        }
        self._arrays.clear()
        self._length_array = None

    def _score(self, term: str, scores: np.ndarray) -> np.ndarray:
        """Add `term`'s BM25 contribution to the scores of the documents that contain it; returns their slots."""
        arrays = self._arrays.get(term)
        if arrays is None:
            docs = self._postings[term]
            arrays = (np.fromiter(docs, dtype=np.int64, count=len(docs)), np.fromiter(docs.values(), dtype=np.float64))
            self._arrays[term] = arrays
        lengths = self._length_array
        if lengths is None:
            lengths = self._length_array = np.asarray(self._lengths, dtype=np.float64)
        slots, frequencies = arrays
        count = len(self._slot)
        idf = math.log(1 + (count - len(slots) + 0.5) / (len(slots) + 0.5))
        average = self._total_length / count
        norm = self.k1 * (1 - self.b + self.b * lengths[slots] / average)
        scores[slots] += idf * frequencies * (self.k1 + 1) / (frequencies + norm)
        return slots

    def _best(self, scores: np.ndarray, candidates: np.ndarray, fetch: int, copies: int) -> list[tuple[str, float]]:
        """The `fetch` best of `candidates` (slots, each at most `copies` times), best first, ties by slot."""
        values = scores[candidates]
        wide = fetch * copies  # enough entries to hold `fetch` distinct slots
        if wide < len(candidates):
            threshold = np.partition(values, len(values) - wide)[len(values) - wide]
            keep = values >= threshold  # all ties at the threshold, so that the earliest slots win them
            candidates, values = candidates[keep], values[keep]
        if copies > 1:
            candidates, first = np.unique(candidates, return_index=True)
            values = values[first]
        order = np.lexsort((candidates, -values))[:fetch]
        return [
            (str(self._ids[slot]), float(values[row]))
            for row, slot in zip(order.tolist(), candidates[order].tolist(), strict=True)
        ]


def _restore(payload: Any) -> Bm25Index:
    """An index from the JSON written by `save`, checking that its parts agree."""
    if payload.get("format") != _FORMAT:
        raise ValueError(f"format {payload.get('format')!r}, expected {_FORMAT}")
    index = Bm25Index(k1=float(payload["k1"]), b=float(payload["b"]))
    ids, lengths = payload["ids"], payload["lengths"]
    if len(ids) != len(lengths) or not all(isinstance(doc_id, str) for doc_id in ids):
        raise ValueError("ids and lengths differ")
    index._ids = list(ids)
    index._slot = {doc_id: slot for slot, doc_id in enumerate(ids)}
    if len(index._slot) != len(ids):
        raise ValueError("an id appears twice")
    terms: list[list[str]] = [[] for _ in ids]
    totals = [0] * len(ids)
    for term, (slots, frequencies) in payload["postings"].items():
        if len(slots) != len(frequencies) or not slots:
            raise ValueError(f"postings of {term!r} do not pair up")
        index._postings[term] = docs = dict(zip(map(int, slots), map(int, frequencies), strict=True))
        if min(docs) < 0 or min(docs.values()) <= 0:
            raise ValueError(f"postings of {term!r} hold a negative slot or frequency")
        for slot, frequency in docs.items():
            terms[slot].append(term)
            totals[slot] += frequency
    if totals != [int(length) for length in lengths]:
        raise ValueError("document lengths disagree with the postings")
    index._lengths = totals
    index._terms = [tuple(found) for found in terms]
    index._total_length = sum(totals)
    return index
