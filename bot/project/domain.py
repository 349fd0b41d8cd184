"""The domain in Rasa 3.x format: intents, entities, slots, responses, forms, actions and session config.

A project's domain may be one file or a folder of files; `merge_domains` joins the parts. Names listed in
several parts (intents, entities, actions) are joined; a slot, response or form defined in two parts is an
error, because which definition wins would be invisible. Keys kefu does not use (`version`,
`e2e_actions`, `config`, intent `use_entities`, entity roles, form `ignored_intents`, a mapping's
`requested_slot` condition ...) are accepted and dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bot.errors import ProjectError
from bot.project.files import Location
from bot.project.yaml_io import LineMap, Source
from bot.types import (
    Button,
    Domain,
    FormSpec,
    ResponseCondition,
    ResponseVariation,
    SessionConfig,
    SlotMapping,
    SlotSpec,
)

LocationKey = tuple[str, ...]  # ("intent", name), ("slot", name), ("form_slot", form, slot) ...

SLOT_TYPES = ("text", "bool", "categorical", "float", "list", "any")
MAPPING_TYPES = ("from_entity", "from_text", "from_intent", "from_trigger_intent", "custom")
_LISTED = (("intents", "intent"), ("entities", "entity"), ("actions", "action"))
_DEFINED = (("slots", "slot"), ("responses", "response"), ("forms", "form"))


@dataclass(frozen=True, slots=True)
class DomainPart:
    """One domain file (or the `responses:` of a data file), with where each declaration sits."""

    domain: Domain
    locations: dict[LocationKey, Location] = field(default_factory=dict)
    has_session_config: bool = False


def parse_domain(raw: LineMap, *, source: Source) -> DomainPart:
    """Parse the top-level mapping of one domain file."""
    where: dict[LocationKey, Location] = {}
    listed = {key: _names(raw, key, kind, source, where) for key, kind in _LISTED}
    domain = Domain(
        intents=listed["intents"],
        entities=listed["entities"],
        slots=_slots(raw, source, where),
        responses=_responses(raw, source, where),
        forms=_forms(raw, source, where),
        actions=listed["actions"],
        session=_session(raw, source),
    )
    return DomainPart(domain, where, has_session_config="session_config" in raw)


def merge_domains(parts: Sequence[DomainPart]) -> DomainPart:
    """Join domain parts in order; a slot, response or form defined twice raises ProjectError."""
    where: dict[LocationKey, Location] = {}
    defined = {kind for _, kind in _DEFINED}
    for part in parts:
        for key, location in part.locations.items():
            earlier = where.get(key)
            if earlier is not None and key[0] in defined:
                raise ProjectError(
                    f"{key[0]} `{key[1]}` is already defined at {earlier[0]}:{earlier[1]}; keep one definition",
                    path=location[0],
                    line=location[1],
                )
            where.setdefault(key, location)
    sessions = [part.domain.session for part in parts if part.has_session_config]
    domain = Domain(
        intents=_joined([part.domain.intents for part in parts]),
        entities=_joined([part.domain.entities for part in parts]),
        slots={name: spec for part in parts for name, spec in part.domain.slots.items()},
        responses={name: value for part in parts for name, value in part.domain.responses.items()},
        forms={name: spec for part in parts for name, spec in part.domain.forms.items()},
        actions=_joined([part.domain.actions for part in parts]),
        session=sessions[-1] if sessions else SessionConfig(),
    )
    return DomainPart(domain, where, has_session_config=bool(sessions))


def _joined(groups: Sequence[tuple[str, ...]]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(name for group in groups for name in group))


# --- intents, entities, actions: lists of names, each optionally a one-key mapping of options ---


def _names(raw: LineMap, key: str, kind: str, source: Source, where: dict[LocationKey, Location]) -> tuple[str, ...]:
    items = source.sequence(raw.get(key), raw.line_of(key), f"`{key}:`")
    names: list[str] = []
    for index, item in enumerate(items):
        line = items.line_of(index)
        if isinstance(item, LineMap):
            if len(item) != 1:
                raise source.error(f"each item under `{key}:` is a name or `name: {{options}}`", line)
            item = next(iter(item))
        name = source.name_of(item, line, f"an item under `{key}:`")
        if name not in names:
            names.append(name)
            where[(kind, name)] = (str(source.path), line)
    return tuple(names)


# --- slots ---


def _slots(raw: LineMap, source: Source, where: dict[LocationKey, Location]) -> dict[str, SlotSpec]:
    section = source.mapping(raw.get("slots"), raw.line_of("slots"), "`slots:`")
    slots = {}
    for name, value in section.items():
        line = section.line_of(name)
        slot_name = source.name_of(name, line, "a slot name")
        slots[slot_name] = _slot(slot_name, source.mapping(value, line, f"slot `{name}`"), line, source)
        where[("slot", slot_name)] = (str(source.path), line)
    return slots


def _slot(name: str, raw: LineMap, line: int, source: Source) -> SlotSpec:
    slot_type = raw.get("type")
    if slot_type is None:
        raise source.error(f"slot `{name}` needs a `type:` ({', '.join(SLOT_TYPES)})", line)
    slot_type = source.name_of(slot_type, raw.line_of("type"), f"`type:` of slot `{name}`")
    if slot_type not in SLOT_TYPES and "." not in slot_type:  # a dotted name is a custom slot class
        raise source.error(
            f"slot `{name}` has the unknown type `{slot_type}`; use one of {', '.join(SLOT_TYPES)}",
            raw.line_of("type"),
        )
    values = source.sequence(raw.get("values"), raw.line_of("values"), f"`values:` of slot `{name}`")
    influence = raw.get("influence_conversation", slot_type != "any")
    return SlotSpec(
        name=name,
        type=slot_type,
        mappings=_mappings(name, raw, source),
        values=tuple(source.text_of(v, values.line_of(i), "a slot value") for i, v in enumerate(values)),
        initial_value=source.slot_value(raw.get("initial_value"), raw.line_of("initial_value")),
        influence_conversation=source.flag(
            influence, raw.line_of("influence_conversation"), "`influence_conversation:`"
        ),
    )


def _mappings(slot: str, raw: LineMap, source: Source) -> tuple[SlotMapping, ...]:
    items = source.sequence(raw.get("mappings"), raw.line_of("mappings"), f"`mappings:` of slot `{slot}`")
    found: list[SlotMapping] = []
    for index, item in enumerate(items):
        mapping = source.mapping(item, items.line_of(index), f"a mapping of slot `{slot}`")
        found.extend(_mapping(slot, mapping, source))
    return tuple(found)


def _mapping(slot: str, raw: LineMap, source: Source) -> list[SlotMapping]:
    kind = source.name_of(raw.get("type"), raw.line_of("type"), f"`type:` of a mapping of slot `{slot}`")
    if kind not in MAPPING_TYPES:
        raise source.error(
            f"slot `{slot}` has a mapping of unknown type `{kind}`; use one of {', '.join(MAPPING_TYPES)}",
            raw.line_of("type"),
        )
    entity, role, group = raw.get("entity"), raw.get("role"), raw.get("group")
    base = SlotMapping(
        type=kind,
        entity=None if entity is None else source.name_of(entity, raw.line_of("entity"), "`entity:`"),
        intent=_one_or_many(raw, "intent", source),
        not_intent=_one_or_many(raw, "not_intent", source),
        value=source.slot_value(raw.get("value"), raw.line_of("value")),
        role=None if role is None else source.name_of(role, raw.line_of("role"), "`role:`"),
        group=None if group is None else str(group),
    )
    if kind == "from_entity" and base.entity is None:
        raise source.error(f"a `from_entity` mapping of slot `{slot}` needs `entity:`", raw.line)
    conditions = source.sequence(raw.get("conditions"), raw.line_of("conditions"), "`conditions:`")
    if not conditions:
        return [base]
    # A mapping applies when any condition holds: one SlotMapping per condition says the same.
    loops = []
    for index, condition in enumerate(conditions):
        line = conditions.line_of(index)
        loop = source.mapping(condition, line, "a condition").get("active_loop")
        loops.append(None if loop is None else source.name_of(loop, line, "`active_loop:` of a condition"))
    return [replace(base, active_loop=loop) for loop in loops]


def _one_or_many(raw: LineMap, key: str, source: Source) -> tuple[str, ...]:
    value, line = raw.get(key), raw.line_of(key)
    if value is None:
        return ()
    if isinstance(value, str):
        return (source.name_of(value, line, f"`{key}:`"),)
    items = source.sequence(value, line, f"`{key}:`")
    return tuple(source.name_of(item, items.line_of(i), f"an item of `{key}:`") for i, item in enumerate(items))


# --- responses ---


def _responses(
    raw: LineMap, source: Source, where: dict[LocationKey, Location]
) -> dict[str, tuple[ResponseVariation, ...]]:
    section = source.mapping(raw.get("responses"), raw.line_of("responses"), "`responses:`")
    responses = {}
    for name, value in section.items():
        line = section.line_of(name)
        response = source.name_of(name, line, "a response name")
        items = source.sequence(value, line, f"response `{response}`")
        if not items:
            raise source.error(f"response `{response}` has no variations; add `- text: ...`", line)
        responses[response] = tuple(
            _variation(response, source.mapping(item, items.line_of(i), f"a variation of `{response}`"), source)
            for i, item in enumerate(items)
        )
        where[("response", response)] = (str(source.path), line)
    return responses


def _variation(response: str, raw: LineMap, source: Source) -> ResponseVariation:
    text = raw.get("text")
    image, channel, custom = raw.get("image"), raw.get("channel"), raw.get("custom")
    buttons = source.sequence(raw.get("buttons"), raw.line_of("buttons"), f"`buttons:` of `{response}`")
    conditions = source.sequence(raw.get("condition"), raw.line_of("condition"), f"`condition:` of `{response}`")
    return ResponseVariation(
        text="" if text is None else source.text_of(text, raw.line_of("text"), f"`text:` of `{response}`"),
        buttons=tuple(_button(item, buttons.line_of(i), source) for i, item in enumerate(buttons)),
        conditions=tuple(_condition(item, conditions.line_of(i), source) for i, item in enumerate(conditions)),
        channel=None if channel is None else source.name_of(channel, raw.line_of("channel"), "`channel:`"),
        image=None if image is None else source.text_of(image, raw.line_of("image"), "`image:`"),
        custom=None if custom is None else _plain_mapping(source.mapping(custom, raw.line_of("custom"), "`custom:`")),
    )


def _plain_mapping(value: Mapping[Any, Any]) -> dict[str, Any]:
    """A YAML mapping as plain JSON data: it is stored with the conversation and sent to channels."""

    def plain(item: Any) -> Any:
        if isinstance(item, Mapping):
            return {str(k): plain(v) for k, v in item.items()}
        if isinstance(item, list):
            return [plain(v) for v in item]
        return item if isinstance(item, str | int | float | bool) or item is None else str(item)

    return {str(k): plain(v) for k, v in value.items()}


def _button(value: object, line: int, source: Source) -> Button:
    raw = source.mapping(value, line, "a button")
    title = source.text_of(raw.get("title"), raw.line_of("title"), "`title:` of a button")
    payload = raw.get("payload")
    # Without a payload a click sends the title, as if the user had typed it.
    return Button(title, title if payload is None else source.text_of(payload, raw.line_of("payload"), "`payload:`"))


def _condition(value: object, line: int, source: Source) -> ResponseCondition:
    raw = source.mapping(value, line, "a response condition")
    kind = raw.get("type", "slot")
    if kind != "slot":
        raise source.error(f"a response condition has `type: {kind}`; only `type: slot` is supported", line)
    slot = source.name_of(raw.get("name"), raw.line_of("name"), "`name:` of a response condition")
    return ResponseCondition(slot, source.slot_value(raw.get("value"), raw.line_of("value")))


# --- forms and session ---


def _forms(raw: LineMap, source: Source, where: dict[LocationKey, Location]) -> dict[str, FormSpec]:
    section = source.mapping(raw.get("forms"), raw.line_of("forms"), "`forms:`")
    forms = {}
    for name, value in section.items():
        line = section.line_of(name)
        form = source.name_of(name, line, "a form name")
        spec = source.mapping(value, line, f"form `{form}`")
        slots = _required_slots(spec, source)
        for slot_name, slot_line in slots:
            where[("form_slot", form, slot_name)] = (str(source.path), slot_line)
        forms[form] = FormSpec(form, tuple(slot_name for slot_name, _ in slots))
        where[("form", form)] = (str(source.path), line)
    return forms


def _required_slots(spec: LineMap, source: Source) -> list[tuple[str, int]]:
    """(slot, line) of each required slot of a form."""
    value = spec.get("required_slots")
    if isinstance(value, LineMap):  # Rasa 2.x: a mapping of slot -> mappings; its keys are the slots
        pairs = [(key, value.line_of(key)) for key in value]
    else:
        items = source.sequence(value, spec.line_of("required_slots"), "`required_slots:`")
        pairs = [(item, items.line_of(i)) for i, item in enumerate(items)]
    return [(source.name_of(item, line, "a required slot"), line) for item, line in pairs]


def _session(raw: LineMap, source: Source) -> SessionConfig:
    section = source.mapping(raw.get("session_config"), raw.line_of("session_config"), "`session_config:`")
    defaults = SessionConfig()
    minutes = section.get("session_expiration_time", defaults.expiration_minutes)
    line = section.line_of("session_expiration_time")
    if isinstance(minutes, bool) or not isinstance(minutes, int | float) or minutes < 0:
        raise source.error("`session_expiration_time:` must be a number of minutes (0: never expire)", line)
    carry = section.get("carry_over_slots_to_new_session", defaults.carry_over_slots)
    return SessionConfig(
        expiration_minutes=float(minutes),
        carry_over_slots=source.flag(
            carry, section.line_of("carry_over_slots_to_new_session"), "`carry_over_slots_to_new_session:`"
        ),
    )
