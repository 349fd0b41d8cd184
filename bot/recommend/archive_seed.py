"""Learned recommendation counts seeded from the conversation archive when Redis holds none (a new or emptied
Redis, or a deployment started on an archive from elsewhere), so the hot list and the ranking start from what
customers asked before rather than from nothing.

Once per Redis: the first process to start claims it (SET NX). A Redis that already holds counts is left as it
is, because the archived sessions are the ones those counts were learned from live.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from redis.exceptions import RedisError

from bot.assist.archive import Archive, ArchivedSession
from bot.errors import KefuError
from bot.events import Event, SlotSet, UserUttered, event_from_dict
from bot.recommend.counts import Observation, UsageCounts
from bot.recommend.shared_counts import COUNTS_KEY, DAY_S
from bot.recommend.signals import observations
from bot.types import LANGUAGE_SLOT, Language

log = logging.getLogger(__name__)

SEEDED_KEY = "kefu:{recommend}:seeded"  # the counts' slot, so one cluster node holds both
SEED_DAYS = 90  # archived sessions older than this teach nothing current
SEED_LIMIT = 20_000  # at most this many of the newest sessions, to bound the start's memory and time


async def seed_from_archive(client: Any, archive: Archive, counts: UsageCounts, *, now: float | None = None) -> int:
    """Add what the archive's recent sessions teach to `counts` (pending, so the next sync shares them) when
    this Redis has no counts and no process seeded it before; returns the number of sessions replayed."""
    now = time.time() if now is None else now
    try:
        if await client.exists(COUNTS_KEY) or not await client.set(SEEDED_KEY, str(int(now)), nx=True):
            return 0
        sessions = await archive.sessions(since=now - SEED_DAYS * DAY_S, limit=SEED_LIMIT)
    except (RedisError, KefuError) as err:
        log.warning("recommendations not seeded from the archive: %s", err)
        return 0
    for session in sessions:
        counts.add(session_observations(session))
    if sessions:
        log.info("recommendations: learned counts seeded from %d archived sessions", len(sessions))
    return len(sessions)


def session_observations(session: ArchivedSession) -> list[Observation]:
    """The counts an archived session's turns teach, as live learning counted them turn by turn."""
    language: Language = "en" if session.language == "en" else "zh"
    history: list[Event] = []
    seen: list[Observation] = []
    for turn in _turns(_decoded(session.events)):
        language = _language_after(turn, language)
        seen += observations(history, turn, language)
        history += turn
    return seen


def _decoded(events: Iterable[Mapping[str, Any]]) -> list[Event]:
    """The events this version can read; one it cannot (written by another version) is left out."""
    decoded = []
    for data in events:
        try:
            decoded.append(event_from_dict(data))
        except KefuError:
            continue
    return decoded


def _turns(events: Sequence[Event]) -> list[list[Event]]:
    """The events cut before each user message (what a committed turn held)."""
    turns: list[list[Event]] = [[]]
    for event in events:
        if isinstance(event, UserUttered) and turns[-1]:
            turns.append([])
        turns[-1].append(event)
    return [turn for turn in turns if turn]


def _language_after(turn: Sequence[Event], language: Language) -> Language:
    """The language slot once `turn` set it (what `stage.language_of` read when the turn was learned)."""
    for event in turn:
        if isinstance(event, SlotSet) and event.name == LANGUAGE_SLOT:
            language = "en" if event.value == "en" else "zh"
    return language
