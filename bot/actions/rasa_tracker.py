"""kefu's session and domain in the JSON of Rasa 3.x's action-server protocol, and back.

Rasa posts `{"next_action", "sender_id", "tracker", "domain", "version"}` to an action server's
`/webhook`; the server answers `{"events": [...], "responses": [...]}`. The tracker carries the
slots, the latest message's parse data and the session's events in Rasa's event format; the domain
carries what rasa-sdk's `Tracker`, `FormValidationAction` and `ValidationAction` read.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bot.actions.responses import ResponseRenderer
from bot.errors import ActionError
from bot.events import (
    ActionExecuted,
    BotUttered,
    Event,
    FormActivated,
    FormCompleted,
    HandedBack,
    HandedOff,
    OperatorMessage,
    Session,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from bot.types import (
    ACTION_LISTEN,
    REQUESTED_SLOT,
    Button,
    Domain,
    Entity,
    NluResult,
    ResponseVariation,
    SlotMapping,
    SlotSpec,
    SlotValue,
)

log = logging.getLogger(__name__)

RASA_VERSION = "3.6.20"  # the Rasa Open Source release whose protocol kefu speaks
# Events an action may return that change nothing kefu keeps: dropped with a debug line.
_IGNORED = frozenset(
    {"action", "bot_started", "user_featurization", "loop_interrupted", "form_validation", "reminder",
     "cancel_reminder", "export", "entities", "agent", "session_started", "stack"}
)  # fmt: skip
# Events that would change the dialogue in ways kefu does not support: an error, never silence.
_UNSUPPORTED = {
    "followup": "a follow-up action (FollowupAction); write a rule for the next action instead",
    "restart": "a restart (Restarted)",
    "rewind": "a rewind of the user's message (UserUtteranceReverted)",
    "undo": "an undo of the last action (ActionReverted)",
    "user": "a user message (UserUttered)",
    "session_ended": "the end of the session (SessionEnded)",
    "action_execution_rejected": "a rejection of its own execution (ActionExecutionRejected)",
}
# Keys of a rasa-sdk response that are not template variables.
_MESSAGE_KEYS = frozenset(
    {"text", "buttons", "elements", "custom", "template", "response", "image", "attachment", "quick_replies"}
)


# --- kefu -> Rasa ---


def action_call(name: str, session: Session, domain_data: Mapping[str, Any]) -> dict[str, Any]:
    """The body of `POST /webhook` that asks the server to run action `name`."""
    return {
        "next_action": name,
        "sender_id": session.conversation_id,
        "tracker": tracker_json(session, domain_data.get("slots", {})),
        "domain": domain_data,
        "version": RASA_VERSION,
    }


def tracker_json(session: Session, domain_slots: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Rasa's `tracker.current_state()`: what rasa-sdk's `Tracker.from_dict` reads."""
    latest = session.latest_message()
    slots = {name: spec.get("initial_value") for name, spec in (domain_slots or {}).items()}
    slots.update(session.slots)
    return {
        "sender_id": session.conversation_id,
        "slots": slots,
        "latest_message": _parse_data(latest),
        "latest_event_time": session.events[-1].timestamp if session.events else None,
        "followup_action": None,
        "paused": session.state.handed_off,
        "events": events_json(session.events),
        "latest_input_channel": latest.channel if latest is not None else None,
        "active_loop": {"name": session.active_form} if session.active_form else {},
        "latest_action_name": session.latest_action(),
    }


def events_json(events: Iterable[Event]) -> list[dict[str, Any]]:
    """The events in Rasa's format; as in Rasa, an `action_listen` precedes every user message."""
    converted: list[dict[str, Any]] = []
    for event in events:
        if isinstance(event, UserUttered):
            converted.append({"event": "action", "name": ACTION_LISTEN, "policy": None, "confidence": None,
                              "timestamp": event.timestamp})  # fmt: skip
        data = event_json(event)
        if data is not None:
            converted.append(data)
    return converted


def event_json(event: Event) -> dict[str, Any] | None:
    """One kefu event in Rasa's format; kefu-only events (safety, feedback, failures) have none."""
    data: dict[str, Any]
    match event:
        case SessionStarted():
            data = {"event": "session_started"}
        case UserUttered():
            data = {"event": "user", "text": event.text, "parse_data": _parse_data(event),
                    "input_channel": event.channel, "message_id": event.message_id or None}  # fmt: skip
        case ActionExecuted():
            data = {"event": "action", "name": event.name, "policy": event.policy or None,
                    "confidence": event.confidence}  # fmt: skip
        case SlotSet():
            data = {"event": "slot", "name": event.name, "value": event.value}
        case BotUttered():
            data = {"event": "bot", "text": event.text, "data": {"buttons": _buttons_json(event.buttons)},
                    "metadata": {"utter_action": event.template} if event.template else {}}  # fmt: skip
        case OperatorMessage():
            data = {"event": "bot", "text": event.text, "data": {}, "metadata": {"operator": event.operator}}
        case FormActivated():
            data = {"event": "active_loop", "name": event.name}
        case FormCompleted():
            data = {"event": "active_loop", "name": None}
        case HandedOff():
            data = {"event": "pause"}
        case HandedBack():
            data = {"event": "resume"}
        case _:
            return None
    return {**data, "timestamp": event.timestamp}


def _parse_data(message: UserUttered | None) -> dict[str, Any]:
    if message is None:
        return {"intent": {}, "entities": [], "text": None, "message_id": None, "metadata": {}}
    nlu = message.nlu or NluResult(text=message.text, intent="", confidence=0.0)
    return {
        "text": message.text,
        "intent": {"name": nlu.intent, "confidence": nlu.confidence} if nlu.intent else {},
        "intent_ranking": [{"name": score.name, "confidence": score.confidence} for score in nlu.ranking],
        "entities": [_entity_json(entity) for entity in nlu.entities],
        "message_id": message.message_id or None,
        "metadata": {},
    }


def _entity_json(entity: Entity) -> dict[str, Any]:
    found = {
        "entity": entity.name,
        "value": entity.value,
        "start": entity.start,
        "end": entity.end,
        "confidence_entity": entity.confidence,
        "extractor": entity.extractor or None,
    }
    return found | {key: value for key, value in (("role", entity.role), ("group", entity.group)) if value}


def _buttons_json(buttons: Iterable[Button]) -> list[dict[str, str]]:
    return [{"title": button.title, "payload": button.payload} for button in buttons]


def domain_json(domain: Domain) -> dict[str, Any]:
    """Rasa's `domain.as_dict()`, the parts rasa-sdk reads (slots with mappings, forms, responses)."""
    return {
        "version": "3.1",
        "session_config": {
            "session_expiration_time": domain.session.expiration_minutes,
            "carry_over_slots_to_new_session": domain.session.carry_over_slots,
        },
        "intents": list(domain.intents),
        "entities": list(domain.entities),
        "slots": _slots_json(domain),
        "responses": {name: [_variation_json(v) for v in variations] for name, variations in domain.responses.items()},
        "actions": list(domain.actions),
        "forms": {name: {"required_slots": list(form.required_slots)} for name, form in domain.forms.items()},
    }


def _variation_json(variation: ResponseVariation) -> dict[str, Any]:
    data: dict[str, Any] = {
        "text": variation.text,
        "buttons": _buttons_json(variation.buttons),
        "condition": [{"type": "slot", "name": c.slot, "value": c.value} for c in variation.conditions],
    }
    if variation.channel:
        data["channel"] = variation.channel
    if variation.image:
        data["image"] = variation.image
    if variation.custom:
        data["custom"] = dict(variation.custom)
    return data


def _slots_json(domain: Domain) -> dict[str, Any]:
    slots = {name: _slot_json(spec) for name, spec in domain.slots.items()}
    if domain.forms and REQUESTED_SLOT not in slots:  # Rasa adds it to every domain with forms
        slots[REQUESTED_SLOT] = {"type": "text", "initial_value": None, "influence_conversation": False, "mappings": []}
    return slots


def _slot_json(spec: SlotSpec) -> dict[str, Any]:
    data: dict[str, Any] = {
        "type": spec.type,
        "initial_value": spec.initial_value,
        "influence_conversation": spec.influence_conversation,
        "mappings": [_mapping_json(mapping) for mapping in spec.mappings],
    }
    if spec.values:
        data["values"] = list(spec.values)
    return data


def _mapping_json(mapping: SlotMapping) -> dict[str, Any]:
    data: dict[str, Any] = {"type": mapping.type}
    optional = {"entity": mapping.entity, "role": mapping.role, "group": mapping.group, "value": mapping.value}
    data.update({key: value for key, value in optional.items() if value is not None})
    if mapping.intent:
        data["intent"] = list(mapping.intent)
    if mapping.not_intent:
        data["not_intent"] = list(mapping.not_intent)
    if mapping.active_loop is not None:
        data["conditions"] = [{"active_loop": mapping.active_loop}]
    return data


# --- Rasa -> kefu ---


def events_from_rasa(raw: Sequence[Any], action: str, session: Session) -> list[Event]:
    """The kefu events for the events an action returned; raises ActionError for ones that matter and kefu lacks."""
    events: list[Event] = []
    form = session.active_form
    for index, item in enumerate(raw):
        where = f"action {action!r} returned events[{index}] = {item!r}"
        if not isinstance(item, dict) or not isinstance(item.get("event"), str):
            raise ActionError(f"{where}, which is not a Rasa event (an object with an `event` name)")
        for event in _event(item, where, action, session, form):
            if isinstance(event, FormActivated | FormCompleted):
                form = event.name if isinstance(event, FormActivated) else None
            events.append(event)
    return events


def _event(item: Mapping[str, Any], where: str, action: str, session: Session, form: str | None) -> list[Event]:
    kind = item["event"]
    if kind in _UNSUPPORTED:
        raise ActionError(f"action {action!r} returned {_UNSUPPORTED[kind]}, which kefu does not support")
    match kind:
        case "slot":
            return [SlotSet(name=_text(item.get("name"), where, "name"), value=_slot_value(item.get("value"), where))]
        case "reset_slots":  # AllSlotsReset: every slot back to empty
            return [SlotSet(name=name, value=None) for name, value in session.slots.items() if value is not None]
        case "active_loop" if item.get("name") is not None:
            return [FormActivated(name=_text(item.get("name"), where, "name"))]
        case "active_loop":
            return [FormCompleted(name=form)] if form is not None else []
        case "bot":
            return [_bot_event(item, where)]
        case "pause":  # ConversationPaused: the bot stops answering, as after a handoff
            return [HandedOff(reason=f"paused by action {action}")]
        case "resume":
            return [HandedBack()]
        case _ if kind in _IGNORED:
            log.debug("action %r returned a %r event, which kefu ignores", action, kind)
            return []
    raise ActionError(f"{where}: kefu does not know the Rasa event {kind!r}")


def responses_from_rasa(
    raw: Sequence[Any], action: str, session: Session, renderer: ResponseRenderer
) -> list[BotUttered]:
    """`dispatcher.utter_message(...)` calls as bot messages, as Rasa's RemoteAction utters them.

    A named response is rendered with the slots as they were before the action (as in Rasa) and the
    call's extra keyword arguments; a `text` given beside it wins, and buttons are added to its own.
    """
    message = session.latest_message()
    channel = message.channel if message is not None else ""
    uttered: list[BotUttered] = []
    for index, item in enumerate(raw):
        where = f"action {action!r} answered responses[{index}] = {item!r}"
        if not isinstance(item, dict):
            raise ActionError(f"{where}, which is not an object")
        name = item.get("response") or item.get("template")
        text, buttons = item.get("text"), _buttons(item.get("buttons"), where)
        image = str(item["image"]) if isinstance(item.get("image"), str) else ""
        custom = item.get("custom") if isinstance(item.get("custom"), dict) and item.get("custom") else None
        if name is not None:
            rendered = _render(renderer, _text(name, where, "response"), item, action, session, channel)
            uttered.append(
                BotUttered(
                    text=_text(text, where, "text") if text else rendered.text,
                    buttons=rendered.buttons + buttons,
                    template=rendered.template,
                    image=image or rendered.image,
                    custom=custom or rendered.custom,
                )
            )
        elif text or image or custom:
            uttered.append(
                BotUttered(text=_text(text, where, "text") if text else "", buttons=buttons, image=image, custom=custom)
            )
        else:  # an attachment alone: kefu's channels show text, buttons, images and cards
            log.debug("action %r sent a response kefu's channels cannot show: %r", action, item)
    return uttered


def _render(
    renderer: ResponseRenderer, name: str, item: Mapping[str, Any], action: str, session: Session, channel: str
) -> BotUttered:
    extra = {key: value for key, value in item.items() if key not in _MESSAGE_KEYS}
    try:
        return renderer.render(name, session.slots, channel=channel, extra=extra)
    except ActionError as err:
        raise ActionError(f"action {action!r} asked for a response that kefu cannot say: {err}") from err


def _bot_event(item: Mapping[str, Any], where: str) -> BotUttered:
    data = item.get("data") or {}
    if not isinstance(data, dict):
        raise ActionError(f"{where}: its `data` is not an object")
    return BotUttered(text=_text(item.get("text") or "", where, "text"), buttons=_buttons(data.get("buttons"), where))


def _buttons(raw: object, where: str) -> tuple[Button, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ActionError(f"{where}: `buttons` is not a list")
    buttons = []
    for button in raw:
        if not isinstance(button, dict) or not isinstance(button.get("title"), str):
            raise ActionError(f"{where}: the button {button!r} has no `title` text")
        buttons.append(Button(title=button["title"], payload=str(button.get("payload") or "")))
    return tuple(buttons)


def _text(value: object, where: str, key: str) -> str:
    if not isinstance(value, str):
        raise ActionError(f"{where}: `{key}` is not text")
    return value


def _slot_value(value: object, where: str) -> SlotValue:
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ActionError(f"{where}: a kefu slot holds text, a number, a boolean, a list of texts or null")
