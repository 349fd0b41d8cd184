"""Frozen values passed between the stages of a turn, and the project model they refer to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Language = Literal["zh", "en"]
Stage = Literal["input", "output"]
VerdictAction = Literal["allow", "redact", "replace", "block", "escalate"]
FactSource = Literal["kg", "faq", "doc", "api"]
SlotValue = str | int | float | bool | list[str] | None

ACTION_LISTEN = "action_listen"
FALLBACK_INTENT = "nlu_fallback"
REQUESTED_SLOT = "requested_slot"
LANGUAGE_SLOT = "language"
CONFIRM_SLOT = "confirm"  # the `requested_slot` while a form waits for its confirmation step

# kefu's built-in actions, beside Rasa's defaults; policies predict them, bot/actions/builtin.py runs them.
ACTION_DEFAULT_FALLBACK = "action_default_fallback"
ACTION_ASK_REPHRASE = "action_default_ask_rephrase"
ACTION_CLARIFY = "action_clarify"
ACTION_HANDOFF = "action_handoff"
ACTION_OFFER_HUMAN = "action_offer_human"
ACTION_CANCEL_FORM = "action_cancel_form"
ACTION_ANSWER = "action_answer"
KEFU_ACTIONS = (
    ACTION_DEFAULT_FALLBACK, ACTION_ASK_REPHRASE, ACTION_CLARIFY, ACTION_HANDOFF, ACTION_OFFER_HUMAN,
    ACTION_CANCEL_FORM, ACTION_ANSWER,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Message:
    """One inbound user message as a channel received it."""

    conversation_id: str
    channel: str
    sender_id: str
    message_id: str
    text: str
    received_at: float
    attachments: tuple[str, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict)
    # the network address the message came from (web channels only): for the per-address rate limit, never
    # stored, and kept out of repr so that no log shows it
    client: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class Entity:
    name: str
    value: str
    start: int
    end: int
    confidence: float = 1.0
    extractor: str = ""
    role: str | None = None  # Rasa's entity roles and groups: `from [Berlin]{"entity": "city", "role": "origin"}`
    group: str | None = None

    @property
    def label(self) -> str:
        """What the tagger learns and evaluation compares: `city`, `city@origin`, `city@origin#1`, `city#1`."""
        return self.name + (f"@{self.role}" if self.role else "") + (f"#{self.group}" if self.group else "")


@dataclass(frozen=True, slots=True)
class IntentScore:
    name: str
    confidence: float


@dataclass(frozen=True, slots=True)
class NluResult:
    text: str
    intent: str
    confidence: float
    ranking: tuple[IntentScore, ...] = ()
    entities: tuple[Entity, ...] = ()
    language: Language = "en"
    warnings: tuple[str, ...] = ()  # e.g. the message was truncated; shown in the trace


@dataclass(frozen=True, slots=True)
class Fact:
    """A retrieved piece of knowledge; `text` is what a reply may rest on."""

    id: str
    text: str
    source: FactSource
    score: float
    citation: str
    language: Language | None = None
    exact: bool = False  # the retriever vouches that `text` answers the query as written
    title: str = ""  # what it answers, as a person would ask it (an FAQ question, a section heading)


@dataclass(frozen=True, slots=True)
class Candidate:
    text: str
    fact_ids: tuple[str, ...]
    generator: str
    score: float = 0.0
    finish_reason: str = "stop"


@dataclass(frozen=True, slots=True)
class SafetyVerdict:
    """One check's decision. `action` defaults from the rest: a block when not allowed, a redaction when the
    check masked something, else allow; "replace" carries `replacement`, "escalate" hands off to a human."""

    check: str
    stage: Stage
    allowed: bool
    category: str = ""
    reason: str = ""
    redacted: str | None = None  # the text with offending spans masked, when the check masks
    action: VerdictAction | None = None
    rule: str = ""  # which rule of the check decided, for the audit log
    replacement: str | None = None  # what to say instead, for action "replace"

    @property
    def kind(self) -> VerdictAction:
        if self.action is not None:
            return self.action
        if not self.allowed:
            return "block"
        return "redact" if self.redacted is not None else "allow"


@dataclass(frozen=True, slots=True)
class Button:
    title: str
    payload: str


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    buttons: tuple[Button, ...] = ()
    handoff: bool = False
    fact_ids: tuple[str, ...] = ()
    trace_id: str = ""
    template: str | None = None
    reply_id: str = ""
    image: str = ""  # an image URL shown with the text
    custom: Mapping[str, Any] | None = None  # Rasa's `custom` payload; {"card": {...}} is a product or order card
    quick_replies: tuple[Button, ...] = ()  # recommended questions (猜你想问); each sends its payload as text


@dataclass(frozen=True, slots=True)
class StageRecord:
    name: str
    ms: float
    detail: str = ""


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    action: str
    policy: str
    confidence: float
    reason: str


@dataclass(frozen=True, slots=True)
class Trace:
    """What one turn understood, decided, retrieved, generated and checked, and how long each stage took."""

    trace_id: str
    conversation_id: str
    stages: tuple[StageRecord, ...] = ()
    nlu: NluResult | None = None
    decisions: tuple[DecisionRecord, ...] = ()
    facts: tuple[Fact, ...] = ()
    candidates: tuple[Candidate, ...] = ()
    verdicts: tuple[SafetyVerdict, ...] = ()
    error: str | None = None

    @property
    def total_ms(self) -> float:
        return sum(stage.ms for stage in self.stages)


# --- the project model: what a Rasa 3.x project (plus kefu's additions) declares ---


@dataclass(frozen=True, slots=True)
class SlotMapping:
    type: str  # from_entity, from_text, from_intent, from_trigger_intent, custom
    entity: str | None = None
    intent: tuple[str, ...] = ()
    not_intent: tuple[str, ...] = ()
    value: SlotValue = None
    role: str | None = None
    group: str | None = None
    active_loop: str | None = None  # from Rasa's `conditions: [{active_loop: ...}]`


@dataclass(frozen=True, slots=True)
class SlotSpec:
    name: str
    type: str  # text, bool, categorical, float, list, any
    mappings: tuple[SlotMapping, ...] = ()
    values: tuple[str, ...] = ()
    initial_value: SlotValue = None
    influence_conversation: bool = True


@dataclass(frozen=True, slots=True)
class ResponseCondition:
    slot: str
    value: SlotValue


@dataclass(frozen=True, slots=True)
class ResponseVariation:
    text: str
    buttons: tuple[Button, ...] = ()
    conditions: tuple[ResponseCondition, ...] = ()
    channel: str | None = None
    image: str | None = None
    custom: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class FormSpec:
    name: str
    required_slots: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SessionConfig:
    expiration_minutes: float = 30.0
    carry_over_slots: bool = True


@dataclass(frozen=True, slots=True)
class Domain:
    intents: tuple[str, ...]
    entities: tuple[str, ...] = ()
    slots: Mapping[str, SlotSpec] = field(default_factory=dict)
    responses: Mapping[str, tuple[ResponseVariation, ...]] = field(default_factory=dict)
    forms: Mapping[str, FormSpec] = field(default_factory=dict)
    actions: tuple[str, ...] = ()
    session: SessionConfig = SessionConfig()

    def is_known_action(self, name: str) -> bool:
        return name in self.responses or name in self.forms or name in self.actions


StepKind = Literal["intent", "action", "active_loop", "slot_was_set", "user"]


@dataclass(frozen=True, slots=True)
class StoryStep:
    """One step of a rule or story. `user` steps (test stories) carry the text and its expected intent."""

    kind: StepKind
    name: str | None = None  # intent, action or form name; None for `active_loop: null`
    slots: Mapping[str, SlotValue] = field(default_factory=dict)
    text: str | None = None
    entities: tuple[Entity, ...] = ()
    line: int = 0


@dataclass(frozen=True, slots=True)
class Story:
    name: str
    steps: tuple[StoryStep, ...]
    is_rule: bool = False
    conditions: tuple[StoryStep, ...] = ()
    conversation_start: bool = False
    wait_for_user_input: bool = True
    source: str = ""


@dataclass(frozen=True, slots=True)
class NluExample:
    text: str
    intent: str
    entities: tuple[Entity, ...] = ()
    line: int = 0


@dataclass(frozen=True, slots=True)
class RegexFeature:
    name: str
    pattern: str


@dataclass(frozen=True, slots=True)
class NluData:
    examples: tuple[NluExample, ...] = ()
    synonyms: Mapping[str, str] = field(default_factory=dict)  # surface form (lower case) -> canonical value
    regexes: tuple[RegexFeature, ...] = ()
    lookups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def intents(self) -> tuple[str, ...]:
        return tuple(sorted({example.intent for example in self.examples}))
