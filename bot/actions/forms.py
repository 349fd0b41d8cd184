"""A form asks for its required slots one by one, then completes."""

from __future__ import annotations

from bot.actions.responses import ResponseRenderer
from bot.actions.slots import slot_value
from bot.events import Event, FormActivated, FormCompleted, Session, SlotSet
from bot.protocols import TraceSink
from bot.types import REQUESTED_SLOT, Domain, FormSpec


class FormAction:
    def __init__(self, spec: FormSpec, renderer: ResponseRenderer) -> None:
        self.name = spec.name
        self._spec = spec
        self._renderer = renderer

    async def run(self, session: Session, domain: Domain, trace: TraceSink) -> list[Event]:
        events: list[Event] = []
        if session.active_form != self.name:
            events.append(FormActivated(name=self.name))
            session = session.with_events(events)
        events += self._fill_from_latest_message(session, domain)
        slots = {**session.slots, **{e.name: e.value for e in events if isinstance(e, SlotSet)}}
        missing = [name for name in self._spec.required_slots if slots.get(name) is None]
        if not missing:
            return [*events, SlotSet(name=REQUESTED_SLOT, value=None), FormCompleted(name=self.name)]
        slots[REQUESTED_SLOT] = missing[0]
        specific = f"utter_ask_{self.name}_{missing[0]}"  # Rasa's form-specific question wins over the general one
        ask = self._renderer.render(specific if self._renderer.has(specific) else f"utter_ask_{missing[0]}", slots)
        return [*events, SlotSet(name=REQUESTED_SLOT, value=missing[0]), ask]

    def _fill_from_latest_message(self, session: Session, domain: Domain) -> list[Event]:
        message = session.latest_message()
        if message is None or message.nlu is None:
            return []
        events: list[Event] = []
        for name in self._spec.required_slots:
            spec = domain.slots.get(name)
            value = slot_value(spec, session, message.nlu) if spec is not None else None
            if value is not None and session.slots.get(name) != value:
                events.append(SlotSet(name=name, value=value))
        return events
