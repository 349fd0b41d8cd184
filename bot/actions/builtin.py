"""kefu's built-in actions: the default fallback and the handoff to a human."""

from __future__ import annotations

from bot.actions.responses import ResponseRenderer
from bot.events import Event, HandedOff, Session
from bot.protocols import TraceSink
from bot.types import Domain


class DefaultFallbackAction:
    """`action_default_fallback`: asks the user to rephrase (the `utter_default` response)."""

    name = "action_default_fallback"

    def __init__(self, renderer: ResponseRenderer) -> None:
        self._renderer = renderer

    async def run(self, session: Session, domain: Domain, trace: TraceSink) -> list[Event]:
        if not self._renderer.has("utter_default"):
            return []
        return [self._renderer.render("utter_default", session.slots)]


class HandoffAction:
    """`action_handoff`: hands the conversation to a human; the bot stays silent until handed back."""

    name = "action_handoff"

    def __init__(self, renderer: ResponseRenderer) -> None:
        self._renderer = renderer

    async def run(self, session: Session, domain: Domain, trace: TraceSink) -> list[Event]:
        message = session.latest_message()
        intent = message.nlu.intent if message is not None and message.nlu is not None else "unknown"
        events: list[Event] = [HandedOff(reason=f"intent:{intent}")]
        if self._renderer.has("utter_handoff"):
            events.append(self._renderer.render("utter_handoff", session.slots))
        return events
