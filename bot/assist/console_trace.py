"""The bot's side of a conversation as an operator reads it next to the transcript: per customer message, what
the NLU understood, which actions the policies chose and why, what the replies rested on, and what the
safety checks said. Built from the stored events, so every `kefu run` process shows the same."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.events import (
    ActionExecuted,
    BotUttered,
    Event,
    HandedOff,
    RiskFlagged,
    SafetyBlocked,
    SlotSet,
    UserUttered,
)
from bot.types import REQUESTED_SLOT
from safety.pii import mask_pii


def turn_traces(events: Sequence[Event], *, last: int = 20) -> list[dict[str, Any]]:
    """One entry per customer message (the latest `last`), with `seq` matching the transcript's."""
    turns: list[dict[str, Any]] = []
    for seq, event in enumerate(events):
        if isinstance(event, UserUttered):
            turns.append(_turn(seq, event))
        elif turns:
            _add(turns[-1], event)
    return turns[-last:]


def _turn(seq: int, said: UserUttered) -> dict[str, Any]:
    nlu = said.nlu
    return {
        "seq": seq,
        "text": _masked(said.text),
        "intent": nlu.intent if nlu else "",
        "confidence": round(nlu.confidence, 3) if nlu else None,
        "ranking": [{"intent": r.name, "confidence": round(r.confidence, 3)} for r in (nlu.ranking[:3] if nlu else ())],
        "entities": [{"entity": e.name, "value": _masked(e.value)} for e in (nlu.entities if nlu else ())],
        "actions": [],
        "facts": [],
        "safety": [],
        "slots": [],
        "handoff": "",
    }


def _add(turn: dict[str, Any], event: Event) -> None:
    match event:
        case ActionExecuted():
            turn["actions"].append({"action": event.name, "policy": event.policy, "confidence": event.confidence})
        case BotUttered():
            turn["facts"].extend(f for f in event.fact_ids if f not in turn["facts"])
        case SafetyBlocked():
            verdict = {"check": event.check, "stage": event.stage, "action": event.action, "rule": event.rule}
            turn["safety"].append({**verdict, "category": event.category, "reason": _masked(event.reason)})
        case RiskFlagged():
            turn["safety"].append(
                {"check": event.check, "stage": "input", "action": "flag", "category": event.category}
            )
        case SlotSet() if event.value is not None and event.name != REQUESTED_SLOT:
            turn["slots"].append({"slot": event.name, "value": _masked(str(event.value))})
        case HandedOff():
            turn["handoff"] = event.reason


def _masked(text: str) -> str:
    return mask_pii(text)[0]
