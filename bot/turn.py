"""One turn: input safety, NLU, slot filling, policies and actions, output safety. No I/O of sessions here."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

from bot.actions.slots import extract_slots
from bot.errors import ActionError
from bot.events import (
    ActionExecuted,
    BotUttered,
    Event,
    FormCompleted,
    HandedOff,
    RiskFlagged,
    SafetyBlocked,
    Session,
    SlotSet,
    UserUttered,
)
from bot.nlu.offload import parse as nlu_parse
from bot.nlu.payload import parse_payload
from bot.protocols import NLU, Action
from bot.recommend.stage import RecommendStage
from bot.trace import PartialSink, TraceRecorder
from bot.types import (
    ACTION_LISTEN,
    LANGUAGE_SLOT,
    REQUESTED_SLOT,
    Domain,
    Language,
    Message,
    Reply,
    SafetyVerdict,
    Stage,
    Trace,
)
from policies.ensemble import PolicyEnsemble
from safety.abuse import COOLDOWN_CHECK, AbuseRule
from safety.pipeline import SafetyOutcome, SafetyPipeline
from safety.refusals import cooldown, escalation, refusal

MAX_ACTIONS_PER_TURN = 10


@dataclass(frozen=True, slots=True)
class TurnParts:
    """Everything a turn needs, built once by wiring."""

    domain: Domain
    nlu: NLU
    policies: PolicyEnsemble
    actions: Mapping[str, Action]
    input_safety: SafetyPipeline
    output_safety: SafetyPipeline
    abuse: AbuseRule = field(default_factory=AbuseRule)
    recommend: RecommendStage | None = None
    default_language: Language = "zh"  # of a message that shows none, such as a button's payload


@dataclass(frozen=True, slots=True)
class TurnResult:
    session: Session
    replies: tuple[Reply, ...]
    trace: Trace


async def run_turn(
    parts: TurnParts, session: Session, message: Message, *, on_partial: PartialSink | None = None
) -> TurnResult:
    """Process one user message against a loaded session; the caller commits `result.session`.
    A streaming channel passes `on_partial` to show generated text sentence by sentence, as it is checked."""
    trace = TraceRecorder(message.conversation_id, on_partial=on_partial)
    with trace.stage("input_safety"):
        screened = _cool_down(parts, session, parts.input_safety.run(message.text, stage="input", session=session))
    trace.add_verdicts(screened.verdicts)
    with trace.stage("nlu"):
        nlu = parse_payload(message.text, parts.domain.intents, session, parts.default_language)
        if nlu is None:
            nlu = await nlu_parse(parts.nlu, dataclasses.replace(message, text=screened.text), session)
    trace.nlu = nlu
    said = UserUttered(text=message.text, message_id=message.message_id, channel=message.channel, nlu=nlu)
    clicked = parts.recommend.on_message(session, message.text, message.channel) if parts.recommend else []
    session = session.with_events([said, *clicked, *_flags(screened.verdicts)])
    if screened.blocked_by is not None:
        session = session.with_events(_blocked(parts, session, screened.blocked_by, nlu.language))
    elif not session.state.handed_off:  # handed off: a human answers; the bot stays silent
        session = session.with_events(extract_slots(parts.domain, session, nlu))
        session = await _act(parts, session, trace)
        if parts.recommend is not None:
            with trace.stage("recommend"):
                session = parts.recommend.finish_turn(session)
    replies = tuple(reply_of(e, trace.trace_id) for e in session.new_events if isinstance(e, BotUttered))
    return TurnResult(session, replies, trace.freeze())


def reply_of(event: BotUttered, trace_id: str) -> Reply:
    return Reply(
        text=event.text,
        buttons=event.buttons,
        fact_ids=event.fact_ids,
        trace_id=trace_id,
        template=event.template,
        reply_id=event.reply_id,
        image=event.image,
        custom=event.custom,
        quick_replies=event.quick_replies,
    )


async def _act(parts: TurnParts, session: Session, trace: TraceRecorder) -> Session:
    """Ask the policies for the next action and run it, until they say to wait for the user."""
    for _ in range(MAX_ACTIONS_PER_TURN):
        with trace.stage("policies"):
            decision = parts.policies.decide(session, parts.domain)
        trace.add_decision(decision)
        if decision.action == ACTION_LISTEN:
            return session
        action = parts.actions.get(decision.action)
        if action is None:
            raise ActionError(f"the policies chose {decision.action!r}, which no action implements")
        session = session.with_events(decision.events)  # what the decision implies, e.g. why it hands off
        with trace.stage(f"action:{action.name}"):
            events = await action.run(session, parts.domain, trace)
        executed = ActionExecuted(name=action.name, policy=decision.policy, confidence=decision.confidence)
        session = session.with_events([executed, *_screen(parts, session, events, trace)])
    return session


def _flags(verdicts: tuple[SafetyVerdict, ...]) -> list[Event]:
    """Input checks that let a message through but name a category (a risk, anger) flag it for the policies."""
    return [
        RiskFlagged(check=v.check, category=v.category, reason=v.reason)
        for v in verdicts
        if v.allowed and v.category and v.stage == "input"
    ]


def _screen(parts: TurnParts, session: Session, events: list[Event], trace: TraceRecorder) -> list[Event]:
    """Output safety on every bot utterance, whatever produced it: redact, or replace with a refusal."""
    screened: list[Event] = []
    language: Language = "zh" if session.slots.get(LANGUAGE_SLOT, "zh") == "zh" else "en"
    for event in events:
        if not isinstance(event, BotUttered):
            screened.append(event)
            continue
        with trace.stage("output_safety"):
            facts = trace.facts_for(event.fact_ids)
            outcome = parts.output_safety.run(event.text, stage="output", session=session, facts=facts)
        trace.add_verdicts(outcome.verdicts)
        if outcome.blocked_by is None:
            screened.append(dataclasses.replace(event, text=outcome.text))
            continue
        screened += _blocked(parts, session, outcome.blocked_by, language)
    return screened


def _cool_down(parts: TurnParts, session: Session, screened: SafetyOutcome) -> SafetyOutcome:
    """While a conversation cools down after repeated abuse, every message is turned away."""
    if screened.blocked_by is not None or not parts.abuse.cooling_down(session):
        return screened
    verdict = SafetyVerdict(COOLDOWN_CHECK, "input", False, COOLDOWN_CHECK, "cooling down after repeated abuse")
    return SafetyOutcome(screened.text, False, (*screened.verdicts, verdict), verdict)


def _blocked(parts: TurnParts, session: Session, verdict: SafetyVerdict, language: Language) -> list[Event]:
    """What a veto becomes: a refusal, a replacement, a handoff, or a cool-down, always on the record."""
    stage: Stage = verdict.stage
    kind = verdict.kind
    text = refusal(language, verdict.category, stage=stage)
    template = f"refusal:{verdict.category}" if stage == "input" else "refusal:output"
    if verdict.check == COOLDOWN_CHECK:
        text, template = cooldown(language), "refusal:cooldown"
    elif stage == "input" and kind == "block":
        then = parts.abuse.after_block(session, verdict.category)
        kind = "escalate" if then == "handoff" else kind
        if then == "cooldown":
            text, template = cooldown(language), "refusal:cooldown"
    record = SafetyBlocked(check=verdict.check, stage=stage, category=verdict.category, reason=verdict.reason,
                           action=kind, rule=verdict.rule)  # fmt: skip
    if kind == "replace" and verdict.replacement:
        return [record, BotUttered(text=verdict.replacement, template=f"safety:{verdict.rule or verdict.check}")]
    if kind != "escalate":
        return [record, BotUttered(text=text, template=template)]
    events: list[Event] = [record]
    if not session.state.handed_off:
        events.append(HandedOff(reason=f"safety:{verdict.category or verdict.check}"))
    if session.active_form is not None:
        events += [FormCompleted(name=session.active_form, cancelled=True), SlotSet(name=REQUESTED_SLOT, value=None)]
    return [*events, BotUttered(text=escalation(language, verdict.category), template="refusal:escalate")]
