"""The conversation archive: sessions that ended, kept durably with personal data masked, for operators to
search and for exports (the learning loop, analytics).

A conversation's Redis log holds all its sessions one after another, each opened by `SessionStarted`. A
session has ended when a newer one follows it, or when it has been idle longer than the session expiration
(the next message would start a new one). Each ended session is archived once, and again only if it changed:
archiving is an idempotent upsert keyed by (conversation id, session number).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from bot.assist.archive_sql import (
    ArchivedSession,
    ArchiveError,
    Backend,
    SearchQuery,
    SessionSummary,
    SqliteBackend,
    backend_for_url,
)
from bot.channels.transcript import transcript
from bot.errors import KefuError
from bot.events import Event, FeedbackGiven, HandedOff, SessionStarted, UserUttered, event_to_dict
from bot.nlu.features import detect_language
from bot.sessions.jobs import claim_period
from bot.sessions.redis_store import RedisSessionStore
from safety.pii import mask_pii

if TYPE_CHECKING:
    from bot.runtime import Bot
    from bot.settings import Settings
    from bot.wiring import Project

__all__ = [
    "Archive", "ArchiveError", "ArchivedSession", "SessionSlice", "SessionSummary", "archive_conversation",
    "archive_ended", "archived_session", "open_archive", "session_idle_s", "split_sessions", "start_archiver",
]  # fmt: skip

log = logging.getLogger(__name__)
T = TypeVar("T")

ARCHIVE_FILE = "archive.sqlite3"
_IDS = frozenset({"id", "reply_id", "message_id"})  # references between events, never personal data


class Archive:
    """Archived sessions behind async methods; the blocking database work runs on one worker thread of its
    own (one connection, used by one thread), so the event loop never waits on it."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kefu-archive")
        self._ready = False

    @property
    def describe(self) -> str:
        """Where the archive lives, without any password."""
        return self._backend.describe

    async def open(self) -> None:
        """Connect and create or migrate the schema now (otherwise the first call does): fails loudly."""
        await self._run(lambda: None)

    async def save(self, sessions: Sequence[ArchivedSession]) -> int:
        """Insert or replace these sessions; returns how many."""
        if sessions:
            await self._run(self._backend.upsert, sessions)
        return len(sessions)

    async def fingerprints(self, conversation_id: str) -> dict[int, int]:
        """Session number -> number of events, of the conversation's archived sessions."""
        return await self._run(self._backend.fingerprints, conversation_id)

    async def search(
        self,
        text: str | None = None,
        *,
        channel: str | None = None,
        handed_off: bool | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
    ) -> list[SessionSummary]:
        """Sessions whose user, bot or operator texts contain every word of `text` (case-insensitive
        substrings, so Chinese needs no spaces), newest first; `since`/`until` bound the session's end."""
        terms = tuple((text or "").split())
        query = SearchQuery(terms, channel, handed_off, since, until, max(1, limit))
        return await self._run(self._backend.search, query)

    async def get(self, conversation_id: str, session_number: int | None = None) -> list[ArchivedSession]:
        """The conversation's archived sessions (or the one numbered), in order."""
        return await self._run(self._backend.get, conversation_id, session_number)

    async def sessions(self, *, since: float | None = None, limit: int = 100_000) -> list[ArchivedSession]:
        """Archived sessions that ended since `since`, oldest first, at most `limit` (the newest ones)."""
        found = await self._run(lambda: list(self._backend.scan(since)))
        return found[-limit:] if limit > 0 else []

    async def export_jsonl(self, target: Path | IO[str], *, since: float | None = None) -> int:
        """Write one JSON object per archived session (ended since `since`, oldest first); returns the count."""
        return await self._run(self._export, target, since)

    def _export(self, target: Path | IO[str], since: float | None) -> int:
        if isinstance(target, Path):
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("w", encoding="utf-8") as file:
                return self._export(file, since)
        count = 0
        for session in self._backend.scan(since):
            target.write(json.dumps(session.to_dict(), ensure_ascii=False) + "\n")
            count += 1
        return count

    async def close(self) -> None:
        await self._run(self._backend.close, setup=False)
        self._worker.shutdown(wait=False)

    async def _run(self, function: Callable[..., T], *args: Any, setup: bool = True) -> T:
        call = functools.partial(self._guarded, function, args, setup)
        return await asyncio.get_running_loop().run_in_executor(self._worker, call)

    def _guarded(self, function: Callable[..., T], args: tuple[Any, ...], setup: bool) -> T:
        try:
            if setup and not self._ready:  # only the worker thread reads or sets it
                self._backend.setup()
                self._ready = True
            return function(*args)
        except self._backend.errors as err:
            raise ArchiveError(f"the archive ({self.describe}) failed: {err}") from err


def open_archive(project: Project, settings: Settings) -> Archive:
    """KEFU_ARCHIVE_URL's archive, else the SQLite file PROJECT/.kefu/archive.sqlite3; connects on first use."""
    if settings.archive_url:
        return Archive(backend_for_url(settings.archive_url))
    return Archive(SqliteBackend(project.data_dir / ARCHIVE_FILE))


def session_idle_s(project: Project) -> float:
    """The project's session expiration (domain.yml `session_config`), in seconds; 0 means never."""
    return project.files.domain.session.expiration_minutes * 60


# --- from a conversation's log to archived sessions ---


@dataclass(frozen=True, slots=True)
class SessionSlice:
    """One session's events and where they start in the conversation's log."""

    number: int
    offset: int
    events: tuple[Event, ...]

    @property
    def last_activity(self) -> float:
        return max(e.timestamp for e in self.events)


def split_sessions(events: Sequence[Event]) -> list[SessionSlice]:
    """The log cut at each `SessionStarted`, numbered as `SessionState.session_number` counts them."""
    starts = [i for i, e in enumerate(events) if isinstance(e, SessionStarted)]
    first = 1
    if not starts or starts[0] > 0:  # events before any SessionStarted: session 0, as the state counts it
        starts, first = [0, *starts], 0
    ends = [*starts[1:], len(events)]
    slices = [SessionSlice(first + k, s, tuple(events[s:e])) for k, (s, e) in enumerate(zip(starts, ends, strict=True))]
    return [s for s in slices if s.events]


def archived_session(conversation_id: str, part: SessionSlice, *, archived_at: float) -> ArchivedSession:
    """The archive row of one session: counts and outcomes, and the transcript and events, masked."""
    events = part.events
    users = [e for e in events if isinstance(e, UserUttered)]
    said = [_masked({**entry, "seq": entry["seq"] + part.offset}) for entry in transcript(events)]
    feedback = [e for e in events if isinstance(e, FeedbackGiven)]
    csat = [f.rating for f in feedback if f.kind == "csat"]
    handoffs = [e for e in events if isinstance(e, HandedOff)]
    first_user = next((entry["text"] for entry in said if entry["role"] == "user"), "")
    return ArchivedSession(
        conversation_id=conversation_id,
        session_number=part.number,
        channel=next((u.channel for u in users if u.channel), ""),
        language=_language(users),
        started_at=events[0].timestamp,
        ended_at=part.last_activity,
        user_turns=len(users),
        handed_off=bool(handoffs),
        handoff_reason=_mask(handoffs[-1].reason) if handoffs else "",
        csat=csat[-1] if csat else None,
        thumbs_up=sum(1 for f in feedback if f.kind == "thumbs" and f.rating > 0),
        thumbs_down=sum(1 for f in feedback if f.kind == "thumbs" and f.rating < 0),
        intents=tuple(dict.fromkeys(u.nlu.intent for u in users if u.nlu is not None)),
        first_message=first_user[:200],
        transcript=tuple(said),
        events=tuple(_masked(event_to_dict(e)) for e in events),
        archived_at=archived_at,
    )


def _language(users: Sequence[UserUttered]) -> str:
    for user in users:
        if user.nlu is not None:
            return user.nlu.language
    return detect_language(" ".join(u.text for u in users)) if users else ""


def _mask(text: str) -> str:
    # NUL cannot be stored in PostgreSQL text; nobody types it on purpose
    return mask_pii(text.replace("\x00", ""))[0]


def _masked(value: Any) -> Any:
    """Every string in a JSON-like value masked (texts, slot values, NLU entities, comments, errors)."""
    if isinstance(value, str):
        return _mask(value)
    if isinstance(value, dict):
        return {k: v if k in _IDS else _masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    return value


# --- archiving: what has ended, now, or in the background ---


async def archive_ended(
    store: RedisSessionStore, archive: Archive, *, idle_s: float, now: float | None = None, include_open: bool = False
) -> int:
    """Archive every ended session of every stored conversation that is new or changed since it was archived
    (`include_open`: open sessions too). Conversations are read with SCAN. Returns the sessions written."""
    now = time.time() if now is None else now
    conversations = written = still_open = 0
    async for conversation_id, events in store.conversations():
        conversations += 1
        parts = split_sessions(events)
        ended = [p for i, p in enumerate(parts) if include_open or i < len(parts) - 1 or _idle(p, idle_s, now)]
        still_open += len(parts) - len(ended)
        written += await _archive_changed(archive, conversation_id, ended)
    level = logging.INFO if written else logging.DEBUG  # a quiet round every minute is not news
    summary = "archive: %d session(s) written from %d conversation(s), %d still open (%s)"
    log.log(level, summary, written, conversations, still_open, archive.describe)
    return written


async def archive_conversation(store: RedisSessionStore, archive: Archive, conversation_id: str) -> int:
    """Archive all of one conversation now, its open session included (it ended explicitly, e.g. after CSAT;
    should it go on, the session is archived again when it ends). Returns the sessions written."""
    parts = split_sessions(await store.history(conversation_id))
    return await _archive_changed(archive, conversation_id, parts)


def start_archiver(bot: Bot, archive: Archive, interval_s: float = 60.0, *, idle_s: float) -> asyncio.Task[None]:
    """Run `archive_ended` every `interval_s` until the task is cancelled; a failed round is logged, never fatal."""
    return asyncio.create_task(_archive_forever(bot.store, archive, interval_s, idle_s), name="kefu-archiver")


async def _archive_forever(store: RedisSessionStore, archive: Archive, interval_s: float, idle_s: float) -> None:
    while True:
        try:
            if await claim_period(store.client, "archiver", interval_s):  # one process of many archives
                await archive_ended(store, archive, idle_s=idle_s)
        except KefuError as err:
            log.error("archiving failed, next try in %.0f s: %s", interval_s, err)
        except Exception:  # a bug here must not take the server down; the traceback is logged
            log.exception("archiving failed unexpectedly, next try in %.0f s", interval_s)
        await asyncio.sleep(interval_s)


def _idle(part: SessionSlice, idle_s: float, now: float) -> bool:
    # as the store decides: idle for longer than the expiration starts a new session (0: sessions never expire)
    return idle_s > 0 and now - part.last_activity > idle_s


async def _archive_changed(archive: Archive, conversation_id: str, parts: Iterable[SessionSlice]) -> int:
    candidates = list(parts)
    if not candidates:
        return 0
    known = await archive.fingerprints(conversation_id)
    changed = [p for p in candidates if known.get(p.number) != len(p.events)]
    if not changed:
        return 0
    stamp = time.time()
    # masking runs regular expressions over every text: off the event loop
    rows = await asyncio.to_thread(lambda: [archived_session(conversation_id, p, archived_at=stamp) for p in changed])
    return await archive.save(rows)
