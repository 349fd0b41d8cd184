"""Past operator replies to similar questions: an embedding index over the archived sessions.

Every operator reply is paired with the customer message(s) just before it; the customer side is embedded
(the same query embedder as the knowledge base, so no second model is loaded) into an exact FAISS index
over L2-normalised vectors. A few hundred thousand vectors are searched exhaustively in a few milliseconds,
so nothing approximate is needed at the sizes the cap allows.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import faiss
import numpy as np

from bot.assist.archive_sql import ArchivedSession
from bot.nlu.features import detect_language

__all__ = ["ArchiveHit", "ArchivePair", "ArchiveReplyIndex", "ArchiveSource", "reply_pairs"]

log = logging.getLogger(__name__)

Embed = Callable[[list[str]], np.ndarray]

MAX_QUESTION_MESSAGES = 3  # a customer's earlier messages in a row rarely add to the question; many dilute it
MAX_QUESTION_CHARS = 500
EMBED_BATCH = 64  # the embedder serialises callers: small batches let live turns in between
# What safety/pii.py leaves of personal data: "138****5678", "z***@example.com", "**** **** **** 1234".
_MASK = re.compile(r"[0-9A-Za-z+(]*\*[*\s().-]*[0-9A-Za-z.@+()-]*", re.ASCII)


class ArchiveSource(Protocol):
    """What the index reads: `bot.assist.archive.Archive` honours it."""

    async def sessions(self, *, since: float | None = None, limit: int = 100_000) -> list[ArchivedSession]: ...


@dataclass(frozen=True, slots=True)
class ArchivePair:
    """One operator reply and the customer question it answered."""

    question: str
    reply: str
    ref: str  # "conversation_id#session_number"
    language: str


class ArchiveHit(NamedTuple):
    score: float
    reply: str
    question: str
    ref: str


@dataclass(frozen=True, slots=True)
class _Snapshot:
    pairs: tuple[ArchivePair, ...]
    index: Any  # faiss.IndexFlatIP (untyped)
    signature: tuple[int, float, float]


def reply_pairs(sessions: Iterable[ArchivedSession]) -> list[ArchivePair]:
    """The (question, operator reply) pairs of these sessions, in their order."""
    pairs: list[ArchivePair] = []
    for session in sessions:
        ref = f"{session.conversation_id}#{session.session_number}"
        pairs += (
            ArchivePair(q, r, ref, detect_language(q)) for q, r in _session_pairs(session.transcript) if usable(r)
        )
    return pairs


def _session_pairs(transcript: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """Consecutive operator messages make one reply. The question is what the customer wrote since the last
    reply of anyone; when the bot answered in between (typically "transferring you to an agent"), what the
    customer wrote since the last operator reply, because that is what the operator then answered."""
    pairs: list[tuple[str, str]] = []
    since_bot: list[str] = []
    since_operator: list[str] = []
    replies: list[str] = []
    question = ""
    for entry in [*transcript, {"role": "end"}]:
        role, text = entry.get("role"), str(entry.get("text", "")).strip()
        if role != "operator" and replies:
            pairs.append((question, "\n".join(replies)))
            replies = []
        if role == "user" and text and not text.startswith("/"):
            since_bot.append(text)
            since_operator.append(text)
        elif role == "bot":
            since_bot = []
        elif role == "operator" and text:
            if not replies:
                question = join_question(since_bot or since_operator)
                since_bot, since_operator = [], []
            replies.append(text)
    return [(q, r) for q, r in pairs if q]


def join_question(texts: Sequence[str]) -> str:
    """The customer's last few messages in a row as one question."""
    return " ".join(texts[-MAX_QUESTION_MESSAGES:])[-MAX_QUESTION_CHARS:].strip()


def usable(reply: str) -> bool:
    """False for a reply with nothing left once masked personal data is taken out: it helps nobody."""
    return any(ch.isalpha() for ch in _MASK.sub("", reply))


class ArchiveReplyIndex:
    """Searchable past operator replies; `build` or `refresh` swaps in a new index while searches go on."""

    def __init__(self, embed: Embed, *, min_similarity: float = 0.9, max_pairs: int = 50_000) -> None:
        """`min_similarity` is a cosine of multilingual-e5: paraphrases score 0.90-0.97, unrelated questions
        in the same language up to ~0.89 (e5 puts every text in a narrow cone), so the bar sits high."""
        self.embed = embed
        self.min_similarity = min_similarity
        self.max_pairs = max_pairs
        self._snapshot: _Snapshot | None = None
        self._building = threading.Lock()

    def __len__(self) -> int:
        snapshot = self._snapshot
        return len(snapshot.pairs) if snapshot else 0

    def build(self, sessions: Sequence[ArchivedSession]) -> int:
        """Index the operator replies of `sessions` (oldest first; the newest `max_pairs` are kept); returns
        how many. Questions indexed before are not embedded again."""
        with self._building:
            pairs = reply_pairs(sessions)[-self.max_pairs :] if self.max_pairs > 0 else []
            vectors = self._vectors([p.question for p in pairs])
            index = faiss.IndexFlatIP(vectors.shape[1]) if len(vectors) else None
            if index is not None:
                index.add(vectors)
            self._snapshot = _Snapshot(tuple(pairs), index, _signature(sessions))
            return len(pairs)

    async def refresh(self, archive: ArchiveSource, *, limit: int = 20_000) -> bool:
        """Rebuild from the archive's newest `limit` sessions when they changed since the last build (their
        count, latest end or latest archiving); returns whether it rebuilt."""
        sessions = await archive.sessions(since=None, limit=limit)
        snapshot = self._snapshot
        if snapshot is not None and snapshot.signature == _signature(sessions):
            return False
        count = await asyncio.to_thread(self.build, sessions)
        log.info("archive reply index: %d operator replies from %d sessions", count, len(sessions))
        return True

    def search(self, question: str, k: int = 3, *, language: str | None = None) -> list[ArchiveHit]:
        """Up to `k` past replies whose question is at least `min_similarity` alike, best first, each reply
        once; with `language`, only pairs whose question is in it."""
        snapshot = self._snapshot
        if snapshot is None or snapshot.index is None or k <= 0 or not question.strip():
            return []
        vector = _normalised(self.embed([question]))
        fetch = min(len(snapshot.pairs), k * 8)  # room for duplicates and other languages
        scores, rows = snapshot.index.search(vector, fetch)
        hits: dict[str, ArchiveHit] = {}
        for score, row in zip(scores[0].tolist(), rows[0].tolist(), strict=True):
            if row < 0 or score < self.min_similarity or len(hits) == k:
                break
            pair = snapshot.pairs[row]
            if language is None or pair.language == language:
                hits.setdefault(pair.reply, ArchiveHit(float(score), pair.reply, pair.question, pair.ref))
        return list(hits.values())

    def _vectors(self, questions: list[str]) -> np.ndarray:
        known = self._known_vectors()
        missing = list(dict.fromkeys(q for q in questions if q not in known))
        for start in range(0, len(missing), EMBED_BATCH):
            batch = missing[start : start + EMBED_BATCH]
            known.update(zip(batch, _normalised(self.embed(batch)), strict=True))
        if not questions:
            return np.zeros((0, 1), dtype=np.float32)
        return np.ascontiguousarray(np.stack([known[q] for q in questions]), dtype=np.float32)

    def _known_vectors(self) -> dict[str, np.ndarray]:
        """The previous build's vectors by question, read back from its index rather than kept twice."""
        snapshot = self._snapshot
        if snapshot is None or snapshot.index is None:
            return {}
        stored = snapshot.index.reconstruct_n(0, snapshot.index.ntotal)
        return {pair.question: stored[row] for row, pair in enumerate(snapshot.pairs)}


def _normalised(vectors: np.ndarray) -> np.ndarray:
    # inner product is a cosine only on unit vectors; an injected embedder need not normalise
    array = np.ascontiguousarray(vectors, dtype=np.float32).copy()
    faiss.normalize_L2(array)
    return array


def _signature(sessions: Sequence[ArchivedSession]) -> tuple[int, float, float]:
    ended = max((s.ended_at for s in sessions), default=0.0)
    archived = max((s.archived_at for s in sessions), default=0.0)
    return len(sessions), ended, archived
