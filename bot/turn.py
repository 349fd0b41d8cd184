"""One turn: input safety, NLU, slot filling, policies and actions, output safety. No I/O of sessions here."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from bot.actions.slots import extract_slots
from bot.errors import ActionError
from bot.events import ActionExecuted, BotUttered, Event, RiskFlagged, SafetyBlocked, Session, UserUttered
from bot.nlu.payload import parse_payload
from bot.protocols import NLU, Action
from bot.trace import PartialSink, TraceRecorder
from bot.types import ACTION_LISTEN, LANGUAGE_SLOT, Domain, Language, Message, Reply, SafetyVerdict, Trace
from policies.ensemble import PolicyEnsemble
from safety.pipeline import SafetyPipeline
from safety.refusals import refusal

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
        screened = parts.input_safety.run(message.text, stage="input", session=session)
    trace.add_verdicts(screened.verdicts)
    with trace.stage("nlu"):
        nlu = parse_payload(message.text, parts.domain.intents, session)
        if nlu is None:
            nlu = await asyncio.to_thread(parts.nlu.parse, dataclasses.replace(message, text=screened.text), session)
    trace.nlu = nlu
    said = UserUttered(text=message.text, message_id=message.message_id, channel=message.channel, nlu=nlu)
    session = session.with_events([said, *_flags(screened.verdicts)])
    if screened.blocked_by is not None:
        blocked = screened.blocked_by
        reply = BotUttered(text=refusal(nlu.language, blocked.category), template=f"refusal:{blocked.category}")
        session = session.with_events([SafetyBlocked(check=blocked.check, stage="input", category=blocked.category,
                                                     reason=blocked.reason), reply])  # fmt: skip
    elif not session.state.handed_off:  # handed off: a human answers; the bot stays silent
        session = session.with_events(extract_slots(parts.domain, session, nlu))
        session = await _act(parts, session, trace)
    replies = tuple(
        Reply(
            text=e.text,
            buttons=e.buttons,
            fact_ids=e.fact_ids,
            trace_id=trace.trace_id,
            template=e.template,
            reply_id=e.reply_id,
        )
        for e in session.new_events
        if isinstance(e, BotUttered)
    )
    return TurnResult(session, replies, trace.freeze())


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
            outcome = parts.output_safety.run(event.text, stage="output", session=session)
        trace.add_verdicts(outcome.verdicts)
        if outcome.blocked_by is None:
            screened.append(dataclasses.replace(event, text=outcome.text))
            continue
        blocked = outcome.blocked_by
        screened.append(SafetyBlocked(check=blocked.check, stage="output", category=blocked.category,
                                      reason=blocked.reason))  # fmt: skip
        screened.append(BotUttered(text=refusal(language, blocked.category, stage="output"), template="refusal:output"))
    return screened
