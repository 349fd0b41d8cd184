"""Conversation events (append-only, JSON) and the session state derived from them."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from bot.errors import SessionStoreError
from bot.types import (
    ACTION_LISTEN,
    Button,
    Entity,
    IntentScore,
    NluResult,
    SlotValue,
)

FeedbackKind = Literal["thumbs", "csat"]
SuggestionOutcome = Literal["accepted", "edited", "ignored"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    type_name: ClassVar[str] = "event"
    timestamp: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionStarted(Event):
    type_name: ClassVar[str] = "session_started"


@dataclass(frozen=True, slots=True, kw_only=True)
class UserUttered(Event):
    type_name: ClassVar[str] = "user"
    text: str
    message_id: str = ""
    channel: str = ""
    nlu: NluResult | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SlotSet(Event):
    type_name: ClassVar[str] = "slot"
    name: str
    value: SlotValue


@dataclass(frozen=True, slots=True, kw_only=True)
class SlotRejected(Event):
    """A form's validation refused a value for a slot; counts towards the form's attempt limit."""

    type_name: ClassVar[str] = "slot_rejected"
    name: str
    value: SlotValue
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskFlagged(Event):
    """The safety stage saw a risk in the user's message that a person should handle (not a block)."""

    type_name: ClassVar[str] = "risk_flagged"
    check: str
    category: str
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class FormActivated(Event):
    type_name: ClassVar[str] = "form_activated"
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class FormCompleted(Event):
    type_name: ClassVar[str] = "form_completed"
    name: str
    cancelled: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionExecuted(Event):
    type_name: ClassVar[str] = "action"
    name: str
    policy: str = ""
    confidence: float = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class BotUttered(Event):
    type_name: ClassVar[str] = "bot"
    text: str
    buttons: tuple[Button, ...] = ()
    template: str | None = None
    fact_ids: tuple[str, ...] = ()
    reply_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12], compare=False)  # what feedback names
    image: str = ""
    custom: Mapping[str, Any] | None = None
    quick_replies: tuple[Button, ...] = ()  # recommended questions shown under the reply (猜你想问)


@dataclass(frozen=True, slots=True, kw_only=True)
class QuestionsRecommended(Event):
    """Questions shown as quick replies with the turn's reply: `items` (fact ids, best first) recommended
    after `context` (the item just answered, `hot` at the start of a session, or `did_you_mean`)."""

    type_name: ClassVar[str] = "recommended"
    context: str
    items: tuple[str, ...]
    language: str = "zh"


@dataclass(frozen=True, slots=True, kw_only=True)
class RecommendationClicked(Event):
    """The user's message is a question the bot recommended: `item` (an FAQ id) from the list shown after
    `context` (the FAQ answered before, `hot`, or `did_you_mean`), at `rank` (1 = first)."""

    type_name: ClassVar[str] = "recommendation_clicked"
    item: str
    context: str
    rank: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RecommendationRated(Event):
    """Whether the answer to a clicked recommendation satisfied the customer, judged by what came next:
    `signal` is next_question, rephrase, handoff or thumbs."""

    type_name: ClassVar[str] = "recommendation_rated"
    item: str
    context: str
    satisfied: bool
    signal: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SafetyBlocked(Event):
    """A check vetoed a text: the customer's message (input) or a reply (output); `action` is what followed."""

    type_name: ClassVar[str] = "safety_blocked"
    check: str
    stage: str
    category: str = ""
    reason: str = ""
    action: str = "block"
    rule: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class HandedOff(Event):
    type_name: ClassVar[str] = "handed_off"
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HandedBack(Event):
    type_name: ClassVar[str] = "handed_back"


@dataclass(frozen=True, slots=True, kw_only=True)
class OperatorMessage(Event):
    type_name: ClassVar[str] = "operator"
    operator: str
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedbackGiven(Event):
    """Thumbs on one bot reply (`rating` 1 or -1, `reply_id` set) or CSAT for the conversation (1-5, no reply)."""

    type_name: ClassVar[str] = "feedback"
    rating: int
    kind: FeedbackKind = "thumbs"
    reply_id: str = ""
    comment: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SuggestionRated(Event):
    """What an operator did with a suggested reply: sent it as is, edited it, or wrote something else."""

    type_name: ClassVar[str] = "suggestion"
    suggestion: str
    outcome: SuggestionOutcome
    sent: str = ""  # the text the operator sent instead (edited or ignored); empty when accepted as is
    source: str = ""  # faq, kg, archive, generator
    operator: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnFailed(Event):
    type_name: ClassVar[str] = "turn_failed"
    stage: str
    error: str


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    """A policy's choice of the next action, why, and the events the choice implies."""

    action: str
    policy: str
    confidence: float
    reason: str
    events: tuple[Event, ...] = ()


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type_name: cls
    for cls in (
        SessionStarted, UserUttered, SlotSet, SlotRejected, RiskFlagged, FormActivated, FormCompleted,
        ActionExecuted, BotUttered, SafetyBlocked, HandedOff, HandedBack, OperatorMessage, FeedbackGiven,
        SuggestionRated, TurnFailed, QuestionsRecommended, RecommendationClicked, RecommendationRated,
    )
}  # fmt: skip


# --- codec: one JSON shape for Redis, the API and exports ---


def event_to_dict(event: Event) -> dict[str, Any]:
    data = {f.name: _plain(getattr(event, f.name)) for f in dataclasses.fields(event)}
    return {"event": event.type_name, **data}


def event_from_dict(data: Mapping[str, Any]) -> Event:
    fields = dict(data)
    cls = EVENT_TYPES.get(str(fields.pop("event", "")))
    if cls is None:
        raise SessionStoreError(f"unknown event type in stored session: {data.get('event')!r}")
    if cls is UserUttered and fields.get("nlu") is not None:
        fields["nlu"] = _nlu_from_dict(fields["nlu"])
    if cls is BotUttered:
        fields["buttons"] = tuple(Button(**b) for b in fields.get("buttons", ()))
        fields["quick_replies"] = tuple(Button(**b) for b in fields.get("quick_replies", ()))
        fields["fact_ids"] = tuple(fields.get("fact_ids", ()))
    if cls is QuestionsRecommended:
        fields["items"] = tuple(fields.get("items", ()))
    try:
        return cls(**fields)
    except TypeError as err:
        raise SessionStoreError(f"stored {cls.type_name!r} event does not match this kefu version: {err}") from err


STORED_RANKING = 3  # intents of a message's ranking kept in storage; the turn's trace has them all


def encode_event(event: Event) -> str:
    """The event as stored: compact JSON without fields at their defaults, the NLU ranking cut to its top intents
    and its confidences to four decimals (a ten-turn conversation then takes about half the memory)."""
    data = {k: v for k, v in event_to_dict(event).items() if not _is_default(type(event), k, v)}
    nlu = data.get("nlu")
    if isinstance(nlu, dict):
        if nlu.get("text") == data.get("text"):
            del nlu["text"]  # restored from the message on reading
        for empty in ("entities", "warnings"):
            if not nlu.get(empty):
                nlu.pop(empty, None)
        if "entities" in nlu:
            nlu["entities"] = [{k: v for k, v in e.items() if v is not None} for e in nlu["entities"]]
        nlu["confidence"] = round(nlu["confidence"], 4)
        if "ranking" in nlu:
            nlu["ranking"] = [{**r, "confidence": round(r["confidence"], 4)} for r in nlu["ranking"][:STORED_RANKING]]
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def decode_event(raw: str | bytes) -> Event:
    data = json.loads(raw)
    if isinstance(data.get("nlu"), dict):
        data["nlu"].setdefault("text", data.get("text", ""))
    return event_from_dict(data)


def _is_default(cls: type[Event], name: str, value: Any) -> bool:
    """Whether a field holds its declared default, which decoding restores (so it need not be stored)."""
    declared = _DEFAULTS.setdefault(cls, _defaults_of(cls))
    return name in declared and _plain(declared[name]) == value


def _defaults_of(cls: type[Event]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            found[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING and f.name != "timestamp":
            found[f.name] = f.default_factory()
    return found


_DEFAULTS: dict[type[Event], dict[str, Any]] = {}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _nlu_from_dict(data: Mapping[str, Any]) -> NluResult:
    return NluResult(
        text=data["text"],
        intent=data["intent"],
        confidence=data["confidence"],
        ranking=tuple(IntentScore(**r) for r in data.get("ranking", ())),
        entities=tuple(Entity(**e) for e in data.get("entities", ())),
        language=data.get("language", "en"),
        warnings=tuple(data.get("warnings", ())),
    )


# --- session state, derived from events ---


@dataclass(frozen=True, slots=True)
class SessionState:
    """The compact state that events imply; never stored apart from the events it came from."""

    slots: Mapping[str, SlotValue] = field(default_factory=dict)
    active_form: str | None = None
    handed_off: bool = False
    handoff_reason: str = ""
    last_activity: float = 0.0
    session_number: int = 0
    turns: int = 0

    def apply(self, event: Event) -> SessionState:
        # Built field by field: every policy replays the session's events, and dataclasses.replace costs several
        # times a constructor call.
        slots, form, handed_off, reason = self.slots, self.active_form, self.handed_off, self.handoff_reason
        number, turns = self.session_number, self.turns
        match event:
            case SessionStarted():
                number += 1
            case UserUttered():
                turns += 1
            case SlotSet(name=name, value=value):
                slots = {**slots, name: value}
            case FormActivated(name=name):
                form = name
            case FormCompleted():
                form = None
            case HandedOff(reason=why):
                handed_off, reason = True, why
            case HandedBack():
                handed_off, reason = False, ""
        last = max(self.last_activity, event.timestamp)
        return SessionState(slots, form, handed_off, reason, last, number, turns)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SessionState:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


@dataclass(frozen=True, slots=True)
class Session:
    """One conversation's current session: its events so far and the state they imply.

    `version` counts what the conversation has stored (one element per commit); a commit must start from it.
    `new_events` are the events of the turn in progress, not yet committed.
    """

    conversation_id: str
    events: tuple[Event, ...] = ()
    state: SessionState = SessionState()
    version: int = 0
    new_events: tuple[Event, ...] = ()

    @property
    def slots(self) -> Mapping[str, SlotValue]:
        return self.state.slots

    @property
    def active_form(self) -> str | None:
        return self.state.active_form

    def with_events(self, events: Iterable[Event]) -> Session:
        state, added = self.state, tuple(events)
        for event in added:
            state = state.apply(event)
        return dataclasses.replace(self, events=self.events + added, state=state, new_events=self.new_events + added)

    def with_replaced(self, old: Event, new: Event) -> Session:
        """The session with one of the turn's new events replaced by another that changes no state (e.g. a
        reply given its recommended questions)."""
        swap = tuple(new if e is old else e for e in self.new_events)
        kept = len(self.events) - len(self.new_events)
        return dataclasses.replace(self, events=self.events[:kept] + swap, new_events=swap)

    def latest_message(self) -> UserUttered | None:
        for event in reversed(self.events):
            if isinstance(event, UserUttered):
                return event
        return None

    def latest_action(self) -> str | None:
        for event in reversed(self.events):
            if isinstance(event, ActionExecuted):
                return event.name
            if isinstance(event, UserUttered):
                return ACTION_LISTEN
        return None

    def actions_since_user(self) -> list[str]:
        names: list[str] = []
        for event in reversed(self.events):
            if isinstance(event, UserUttered):
                break
            if isinstance(event, ActionExecuted):
                names.append(event.name)
        return names[::-1]
