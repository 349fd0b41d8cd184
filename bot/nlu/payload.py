"""Button payloads: `/intent` or `/intent{"entity": "value"}` is that intent for sure (Rasa's convention)."""

from __future__ import annotations

import json
import re

from bot.events import ActionExecuted, Session, UserUttered
from bot.types import ACTION_CLARIFY, ACTION_LISTEN, Entity, IntentScore, Language, NluResult

_PAYLOAD = re.compile(r"/(?P<intent>[A-Za-z_][\w\-]*)(?P<entities>\{.*\})?", re.DOTALL)


def parse_payload(
    text: str, intents: tuple[str, ...], session: Session, default_language: Language = "zh"
) -> NluResult | None:
    """The NLU result a payload stands for, or None when `text` is not a payload of a known intent.

    A payload's own text ("/greet") says nothing of the language: it is the session's, else `default_language`.

    After a clarification the payload answers the question asked before it: that question's text and
    entities stay, so knowledge retrieval still searches for what the customer wrote.
    """
    match = _PAYLOAD.fullmatch(text.strip())
    if match is None or match["intent"] not in intents:
        return None
    entities = _entities(match["entities"])
    asked = _clarified(session)
    language = session.slots.get("language")
    if asked is not None and asked.nlu is not None:
        text, entities = asked.nlu.text, entities or asked.nlu.entities
        language = asked.nlu.language
    intent = match["intent"]
    return NluResult(
        text=text,
        intent=intent,
        confidence=1.0,
        ranking=(IntentScore(intent, 1.0),),
        entities=entities,
        language="en" if language == "en" else ("zh" if language == "zh" else default_language),
    )


def _entities(raw: str | None) -> tuple[Entity, ...]:
    if not raw:
        return ()
    try:
        values = json.loads(raw)
    except json.JSONDecodeError:
        return ()
    if not isinstance(values, dict):
        return ()
    return tuple(Entity(str(k), str(v), 0, 0, 1.0, "payload") for k, v in values.items() if v is not None)


def _clarified(session: Session) -> UserUttered | None:
    """The user message a clarification asked about, when the bot's last action was that clarification."""
    asked = False
    for event in reversed(session.events):
        if isinstance(event, ActionExecuted) and event.name != ACTION_LISTEN and not asked:
            if event.name != ACTION_CLARIFY:
                return None
            asked = True
        elif isinstance(event, UserUttered):
            return event if asked else None
    return None
