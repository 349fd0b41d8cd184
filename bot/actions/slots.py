"""Slot filling from the latest user message, by the slots' mappings (Rasa 3's action_extract_slots)."""

from __future__ import annotations

import re

from bot.events import Event, Session, SlotSet
from bot.types import LANGUAGE_SLOT, REQUESTED_SLOT, Domain, Entity, NluResult, SlotMapping, SlotSpec, SlotValue


def extract_slots(domain: Domain, session: Session, nlu: NluResult) -> list[Event]:
    """SlotSet events for every slot a mapping fills from this message (except those of the active form),
    plus the detected language."""
    events: list[Event] = []
    current = session.slots.get(LANGUAGE_SLOT)
    if LANGUAGE_SLOT in domain.slots and current != nlu.language and (current is None or _has_words(nlu)):
        events.append(SlotSet(name=LANGUAGE_SLOT, value=nlu.language))
    form = domain.forms.get(session.active_form or "")
    validated_by_form = set(form.required_slots) if form is not None else set()
    for spec in domain.slots.values():
        if spec.name in validated_by_form:  # the active form fills these itself, after validating them
            continue
        value = slot_value(spec, session, nlu)
        if value is not None and session.slots.get(spec.name) != value:
            events.append(SlotSet(name=spec.name, value=value))
    return events


_WORD = re.compile(r"[\u3400-\u9fff]|[A-Za-z]{2,}")


def _has_words(nlu: NluResult) -> bool:
    """Whether the text says something in a language beyond its entities: a bare order id keeps the language."""
    text = nlu.text
    for entity in sorted(nlu.entities, key=lambda e: -e.start):
        text = text[: entity.start] + " " + text[entity.end :]
    return _WORD.search(text) is not None


def slot_value(spec: SlotSpec, session: Session, nlu: NluResult) -> SlotValue:
    """The value the first applicable mapping gives, or None."""
    for mapping in spec.mappings:
        if not _applies(mapping, spec, session, nlu):
            continue
        value = _mapped_value(mapping, spec, nlu)
        if value is not None:
            return value
    return None


def _applies(mapping: SlotMapping, spec: SlotSpec, session: Session, nlu: NluResult) -> bool:
    if mapping.active_loop is not None and session.active_form != mapping.active_loop:
        return False
    if mapping.intent and nlu.intent not in mapping.intent:
        return False
    if nlu.intent in mapping.not_intent:
        return False
    if mapping.type == "from_text":  # free text fills only the slot a form asked for
        return session.slots.get(REQUESTED_SLOT) == spec.name
    return True


def _mapped_value(mapping: SlotMapping, spec: SlotSpec, nlu: NluResult) -> SlotValue:
    if mapping.type == "from_entity":
        values = [e.value for e in nlu.entities if e.name == mapping.entity and _role_fits(mapping, e)]
        if not values:
            return None
        return values if spec.type == "list" else values[0]
    if mapping.type == "from_text":
        return nlu.text
    if mapping.type in ("from_intent", "from_trigger_intent"):
        return mapping.value
    return None


def _role_fits(mapping: SlotMapping, entity: Entity) -> bool:
    """Rasa's rule (and rasa-sdk's): role and group must equal the mapping's, so no role matches no role."""
    return entity.role == mapping.role and entity.group == mapping.group
