"""Conversation analytics for operators, from archived sessions: how many conversations the bot resolved
alone (containment), how often and why it handed off, how often it fell back, CSAT and thumbs, the top
intents, and the unanswered questions grouped as candidates for new FAQ entries.

A turn is a user message and what followed it until the next one. It fell back when the bot ran a fallback
action (the two-stage fallback's stages, or a project's own `utter_default` rule) or the knowledge base had no
answer (`utter_no_answer`). A question went unanswered when its turn fell back, led to a `repeated_fallback`
handoff, or was understood as `nlu_fallback` / `out_of_scope` and not answered from knowledge. Messages sent
while an operator has the conversation are the operator's to answer, and button payloads are not questions.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.assist.analytics_groups import Embed, Question, QuestionGroup, group_questions
from bot.assist.archive_sql import ArchivedSession
from bot.nlu.features import detect_language
from bot.types import ACTION_ASK_REPHRASE, ACTION_CLARIFY, ACTION_DEFAULT_FALLBACK, ACTION_OFFER_HUMAN, FALLBACK_INTENT

__all__ = ["Analytics", "Count", "CsatStats", "DayStats", "QuestionGroup", "compute_analytics"]

# the two-stage fallback's actions, and the responses a project's own fallback rule may run as actions
FALLBACK_ACTIONS = frozenset(
    {ACTION_DEFAULT_FALLBACK, ACTION_ASK_REPHRASE, ACTION_OFFER_HUMAN, "utter_default", "utter_ask_rephrase"}
)
NO_ANSWER_TEMPLATE = "utter_no_answer"  # action_answer found nothing in the knowledge base
UNDERSTOOD_AS_UNANSWERABLE = frozenset({FALLBACK_INTENT, "out_of_scope"})
REPEATED_FALLBACK = "repeated_fallback"
CSAT_SCALE = range(1, 6)
MAX_FILLED_DAYS = 400  # days without sessions are listed as zeros up to this span, so charts keep their time axis


@dataclass(frozen=True, slots=True)
class Count:
    name: str
    count: int


@dataclass(frozen=True, slots=True)
class CsatStats:
    count: int = 0
    distribution: tuple[int, ...] = (0, 0, 0, 0, 0)  # ratings 1 to 5

    @property
    def average(self) -> float | None:
        total = sum(n * rating for n, rating in zip(self.distribution, CSAT_SCALE, strict=True))
        return round(total / self.count, 3) if self.count else None

    def to_json(self) -> dict[str, Any]:
        distribution = {str(r): n for r, n in zip(CSAT_SCALE, self.distribution, strict=True)}
        return {"average": self.average, "count": self.count, "distribution": distribution}


@dataclass(frozen=True, slots=True)
class DayStats:
    """One UTC day, the sessions that started on it."""

    day: str  # YYYY-MM-DD
    sessions: int = 0
    engaged: int = 0  # sessions with at least one user message
    user_turns: int = 0
    handoffs: int = 0
    fallbacks: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "day": self.day, "sessions": self.sessions, "engaged_sessions": self.engaged, "user_turns": self.user_turns,
            "handoffs": self.handoffs,
            "fallbacks": self.fallbacks, "containment_rate": _rate(self.engaged - self.handoffs, self.engaged),
            "handoff_rate": _rate(self.handoffs, self.engaged), "fallback_rate": _rate(self.fallbacks, self.user_turns),
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class Analytics:
    """Figures over a period's archived sessions; `to_json()` is what the console's analytics API returns.

    Handoffs count engaged sessions (at least one user message) that were handed off, so containment and the
    handoff rate add up to one."""

    since: float | None
    until: float
    sessions: int = 0
    engaged: int = 0
    user_turns: int = 0
    handoffs: int = 0
    fallback_turns: int = 0
    clarify_turns: int = 0
    unanswered_turns: int = 0
    handoff_reasons: tuple[Count, ...] = ()  # full reasons, e.g. "safety:anger"
    handoff_groups: tuple[Count, ...] = ()  # the part before ":", e.g. "safety"
    csat: CsatStats = field(default_factory=CsatStats)
    thumbs_up: int = 0
    thumbs_down: int = 0
    top_intents: tuple[Count, ...] = ()
    unanswered: tuple[QuestionGroup, ...] = ()
    by_day: tuple[DayStats, ...] = ()

    @property
    def containment_rate(self) -> float:
        return _rate(self.engaged - self.handoffs, self.engaged)

    @property
    def handoff_rate(self) -> float:
        return _rate(self.handoffs, self.engaged)

    @property
    def fallback_rate(self) -> float:
        return _rate(self.fallback_turns, self.user_turns)

    def to_json(self) -> dict[str, Any]:
        return {
            "period": {"since": self.since, "until": self.until},
            "sessions": self.sessions,
            "engaged_sessions": self.engaged,
            "user_turns": self.user_turns,
            "handoffs": self.handoffs,
            "containment_rate": self.containment_rate,
            "handoff_rate": self.handoff_rate,
            "handoff_reasons": [_reason_json(c) for c in self.handoff_reasons],
            "handoff_groups": [{"group": c.name, "count": c.count} for c in self.handoff_groups],
            "fallback_turns": self.fallback_turns,
            "fallback_rate": self.fallback_rate,
            "clarify_rate": _rate(self.clarify_turns, self.user_turns),
            "csat": self.csat.to_json(),
            "thumbs": {"up": self.thumbs_up, "down": self.thumbs_down},
            "top_intents": [{"intent": c.name, "count": c.count} for c in self.top_intents],
            "unanswered_turns": self.unanswered_turns,
            "unanswered": [g.to_json() for g in self.unanswered],
            "by_day": [d.to_json() for d in self.by_day],
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Turn:
    """One user message and how the bot dealt with it."""

    text: str
    intent: str
    language: str
    fallback: bool
    clarified: bool
    unanswered: bool


def compute_analytics(
    sessions: Sequence[ArchivedSession],
    *,
    embed: Embed | None = None,
    top: int = 10,
    now: float | None = None,
    since: float | None = None,
    threshold: float | None = None,
) -> Analytics:
    """Analytics of these sessions over [since, now]; `embed` groups unanswered questions by embeddings
    (else by character features), `threshold` overrides the grouping's similarity threshold."""
    until = time.time() if now is None else now
    turns = {id(s): list(_session_turns(s)) for s in sessions}
    engaged = [s for s in sessions if s.user_turns > 0]
    handed = [s for s in engaged if s.handed_off]
    reasons = Counter(s.handoff_reason or "unknown" for s in handed)
    every = [t for found in turns.values() for t in found]
    intents = Counter(t.intent for t in every if t.intent)
    unanswered = [Question(t.text, t.language) for t in every if t.unanswered]
    return Analytics(
        since=since,
        until=until,
        sessions=len(sessions),
        engaged=len(engaged),
        user_turns=sum(s.user_turns for s in sessions),
        handoffs=len(handed),
        fallback_turns=sum(t.fallback for t in every),
        clarify_turns=sum(t.clarified for t in every),
        unanswered_turns=len(unanswered),
        handoff_reasons=_counts(reasons),
        handoff_groups=_counts(Counter(_reason_group(r) for r in reasons.elements())),
        csat=_csat(sessions),
        thumbs_up=sum(s.thumbs_up for s in sessions),
        thumbs_down=sum(s.thumbs_down for s in sessions),
        top_intents=_counts(intents)[: max(0, top)],
        unanswered=group_questions(unanswered, embed=embed, threshold=threshold),
        by_day=_by_day(sessions, turns, since, until),
    )


def _session_turns(session: ArchivedSession) -> Iterator[_Turn]:
    """The session's user turns, from its archived events."""
    with_operator = False  # a message sent while an operator has the conversation is theirs to answer
    current: list[Mapping[str, Any]] = []
    started_with_operator = False
    for event in session.events:
        kind = event.get("event")
        if kind == "user":
            if current:
                yield _turn(current, session.language, started_with_operator)
            current, started_with_operator = [event], with_operator
        elif current:
            current.append(event)
        if kind in ("handed_off", "handed_back"):
            with_operator = kind == "handed_off"
    if current:
        yield _turn(current, session.language, started_with_operator)


def _turn(events: list[Mapping[str, Any]], language: str, with_operator: bool) -> _Turn:
    user, after = events[0], events[1:]
    nlu = user.get("nlu") or {}
    text = str(user.get("text", "")).strip()
    actions = {str(e.get("name", "")) for e in after if e.get("event") == "action"}
    templates = [str(e.get("template") or "") for e in after if e.get("event") == "bot"]
    fallback = bool(actions & FALLBACK_ACTIONS) or any(t.endswith(NO_ANSWER_TEMPLATE) for t in templates)
    gave_up = any(e.get("event") == "handed_off" and e.get("reason") == REPEATED_FALLBACK for e in after)
    from_knowledge = any(t.startswith("knowledge:") or t == "generated" for t in templates)
    intent = str(nlu.get("intent") or "")
    unanswerable = intent in UNDERSTOOD_AS_UNANSWERABLE and not from_knowledge
    question = bool(text) and not text.startswith("/") and not with_operator
    return _Turn(
        text=text,
        intent=intent,
        language=str(nlu.get("language") or language or detect_language(text)),
        fallback=fallback,
        clarified=ACTION_CLARIFY in actions,
        unanswered=question and (fallback or gave_up or unanswerable),
    )


def _by_day(
    sessions: Sequence[ArchivedSession], turns: Mapping[int, list[_Turn]], since: float | None, until: float
) -> tuple[DayStats, ...]:
    days: dict[str, DayStats] = {}
    for session in sessions:
        day = _day(session.started_at)
        seen = days.get(day, DayStats(day))
        engaged = session.user_turns > 0
        days[day] = DayStats(
            day,
            sessions=seen.sessions + 1,
            engaged=seen.engaged + engaged,
            user_turns=seen.user_turns + session.user_turns,
            handoffs=seen.handoffs + (engaged and session.handed_off),
            fallbacks=seen.fallbacks + sum(t.fallback for t in turns[id(session)]),
        )
    first = since if since is not None else min((s.started_at for s in sessions), default=None)
    if first is not None:
        for day in _days_between(first, until):
            days.setdefault(day, DayStats(day))
    return tuple(days[d] for d in sorted(days))


def _days_between(first: float, last: float) -> list[str]:
    start = datetime.fromtimestamp(first, UTC).date()
    span = (datetime.fromtimestamp(last, UTC).date() - start).days
    if span < 0 or span >= MAX_FILLED_DAYS:
        return []
    return [(start + timedelta(days=k)).isoformat() for k in range(span + 1)]


def _day(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).date().isoformat()


def _csat(sessions: Sequence[ArchivedSession]) -> CsatStats:
    ratings = [s.csat for s in sessions if s.csat is not None and s.csat in CSAT_SCALE]
    return CsatStats(len(ratings), tuple(ratings.count(r) for r in CSAT_SCALE))


def _counts(counter: Counter[str]) -> tuple[Count, ...]:
    return tuple(Count(name, n) for name, n in sorted(counter.items(), key=lambda item: (-item[1], item[0])))


def _reason_json(reason: Count) -> dict[str, Any]:
    return {"reason": reason.name, "group": _reason_group(reason.name), "count": reason.count}


def _reason_group(reason: str) -> str:
    return reason.split(":", 1)[0].strip() or "unknown"


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole > 0 else 0.0
