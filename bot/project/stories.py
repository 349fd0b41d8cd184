"""Rules and stories in Rasa 3.x format (`rules:` and `stories:`, also test stories) as `bot.types.Story`.

How Rasa's forms map onto `StoryStep`:

- `intent: x` (optional `entities:`) -> kind "intent"; `action: x` -> "action";
  `active_loop: form` -> "active_loop" with the form as name, `active_loop: null` -> name None.
- `slot_was_set:` -> one "slot_was_set" step whose `slots` holds every listed slot. A bare slot name
  (`- order_id` instead of `- order_id: "123"`) means "set to any value" and is stored as `ANY_VALUE` ("*").
- `entities:` of an intent step become `Entity(name, value, 0, 0, extractor="story")`; a bare entity
  name means "present with any value" and also gets the value `ANY_VALUE`.
- `user: text` with `intent:` (test stories, end-to-end stories) -> kind "user": the plain text, the
  expected intent as name (None when absent) and the entities annotated in the text.
- `or:` blocks keep only their first alternative; `checkpoint:` steps are skipped.
- A rule's `condition:` items (`active_loop`, `slot_was_set`) become `Story.conditions`.

`bot:` steps (end-to-end bot text) have no StepKind and are refused with a fix.
"""

from __future__ import annotations

from bot.project.nlu_data import parse_annotated
from bot.project.yaml_io import LineList, LineMap, Source
from bot.types import Entity, SlotValue, Story, StoryStep

ANY_VALUE = "*"
STORY_EXTRACTOR = "story"

_SECTIONS = {"rule": "rules", "story": "stories"}
_STEP_KINDS = ("user", "intent", "action", "active_loop", "slot_was_set", "or", "checkpoint", "bot")


def parse_stories(items: object, *, source: Source, line: int, is_rule: bool) -> tuple[Story, ...]:
    """Parse the items of a `rules:` (is_rule) or `stories:` section that starts at `line`."""
    key = "rules" if is_rule else "stories"
    section = source.sequence(items, line, f"`{key}:`")
    return tuple(
        _story(source.mapping(item, section.line_of(i), f"an item under `{key}:`"), source, is_rule)
        for i, item in enumerate(section)
    )


def _story(raw: LineMap, source: Source, is_rule: bool) -> Story:
    label, other = ("rule", "story") if is_rule else ("story", "rule")
    if label not in raw:
        hint = f"; move this {other} under `{_SECTIONS[other]}:`" if other in raw else f", like `- {label}: greet`"
        raise source.error(f"each item under `{_SECTIONS[label]}:` needs a `{label}:` name{hint}", raw.line)
    name = source.text_of(raw[label], raw.line, f"`{label}:`")
    if "steps" not in raw:
        raise source.error(f"{label} {name!r} has no `steps:`", raw.line)
    steps = source.sequence(raw["steps"], raw.line_of("steps"), f"`steps:` of {label} {name!r}")
    conditions = source.sequence(raw.get("condition"), raw.line_of("condition"), f"`condition:` of {name!r}")
    return Story(
        name=name,
        steps=_steps(steps, source),
        is_rule=is_rule,
        conditions=tuple(_condition(item, conditions.line_of(i), source) for i, item in enumerate(conditions)),
        conversation_start=_flag(raw, "conversation_start", False, source),
        wait_for_user_input=_flag(raw, "wait_for_user_input", True, source),
        source=source.name,
    )


def _flag(raw: LineMap, key: str, default: bool, source: Source) -> bool:
    return source.flag(raw.get(key, default), raw.line_of(key), f"`{key}:`")


def _steps(items: LineList, source: Source) -> tuple[StoryStep, ...]:
    steps = []
    for index, item in enumerate(items):
        step = _step(source.mapping(item, items.line_of(index), "a step"), source)
        if step is not None:
            steps.append(step)
    return tuple(steps)


def _condition(item: object, line: int, source: Source) -> StoryStep:
    raw = source.mapping(item, line, "a condition")
    if "active_loop" not in raw and "slot_was_set" not in raw:
        raise source.error("a rule condition is `- active_loop: form_name` or `- slot_was_set: [...]`", raw.line)
    step = _step(raw, source)
    if step is None:  # unreachable: only `checkpoint:` steps are skipped
        raise source.error("a rule condition cannot be skipped", raw.line)
    return step


def _step(raw: LineMap, source: Source) -> StoryStep | None:
    """The step one `- key: value` item describes, or None for a step that is skipped."""
    kind = next((key for key in _STEP_KINDS if key in raw), None)
    line = raw.line
    if kind == "user":
        return _user_step(raw, source)
    if kind == "intent":
        name = source.name_of(raw["intent"], line, "`intent:`")
        return StoryStep("intent", name, entities=_listed_entities(raw, source), line=line)
    if kind == "action":
        return StoryStep("action", source.name_of(raw["action"], line, "`action:`"), line=line)
    if kind == "active_loop":
        loop = raw["active_loop"]
        return StoryStep(
            "active_loop", None if loop is None else source.name_of(loop, line, "`active_loop:`"), line=line
        )
    if kind == "slot_was_set":
        return StoryStep("slot_was_set", slots=_slots(raw["slot_was_set"], line, source), line=line)
    if kind == "or":
        return _first_alternative(raw, source)
    if kind == "checkpoint":
        return None
    if kind == "bot":
        raise source.error("`bot:` steps are not supported; name the response instead: `- action: utter_...`", line)
    keys = ", ".join(f"`{key}:`" for key in raw) or "nothing"
    raise source.error(
        f"a step has {keys}; a step is one of `intent:`, `action:`, `active_loop:`, `slot_was_set:`, "
        "`user:`, `or:` or `checkpoint:`",
        line,
    )


def _user_step(raw: LineMap, source: Source) -> StoryStep:
    line = raw.line
    text = source.text_of(raw["user"], raw.line_of("user"), "`user:`")
    annotated = parse_annotated(text.strip(), source=source, line=raw.line_of("user"))
    intent = raw.get("intent")
    return StoryStep(
        "user",
        None if intent is None else source.name_of(intent, raw.line_of("intent"), "`intent:`"),
        text=annotated.text,
        entities=annotated.entities or _listed_entities(raw, source),
        line=line,
    )


def _first_alternative(raw: LineMap, source: Source) -> StoryStep | None:
    alternatives = source.sequence(raw["or"], raw.line_of("or"), "`or:`")
    if not alternatives:
        raise source.error("an `or:` step needs at least one alternative", raw.line)
    first = source.mapping(alternatives[0], alternatives.line_of(0), "an alternative of `or:`")
    return _step(first, source)


def _listed_entities(raw: LineMap, source: Source) -> tuple[Entity, ...]:
    """The `entities:` of a step: `- name: value`, `- name`, or `- entity: name` with `value:`."""
    items = source.sequence(raw.get("entities"), raw.line_of("entities"), "`entities:`")
    entities = []
    for index, item in enumerate(items):
        line = items.line_of(index)
        if isinstance(item, LineMap):
            name, value = _entity_pair(item, line, source)
        else:
            name, value = source.name_of(item, line, "an entity"), ANY_VALUE
        entities.append(Entity(name, value, 0, 0, extractor=STORY_EXTRACTOR))
    return tuple(entities)


def _entity_pair(item: LineMap, line: int, source: Source) -> tuple[str, str]:
    if "entity" in item:
        name, value = item["entity"], item.get("value")
    else:
        keys = [key for key in item if key not in ("role", "group")]
        if len(keys) != 1:
            raise source.error("an entity of a step is `- name: value` or `- name`", line)
        name, value = keys[0], item[keys[0]]
    entity = source.name_of(name, line, "an entity name")
    return entity, ANY_VALUE if value is None else source.text_of(value, line, f"the value of entity `{entity}`")


def _slots(value: object, line: int, source: Source) -> dict[str, SlotValue]:
    """`slot_was_set:` items: `- slot: value` or a bare `- slot` (any value)."""
    items = [value] if isinstance(value, LineMap) else source.sequence(value, line, "`slot_was_set:`")
    slots: dict[str, SlotValue] = {}
    for index, item in enumerate(items):
        item_line = items.line_of(index) if isinstance(items, LineList) else line
        if not isinstance(item, LineMap):
            slots[source.name_of(item, item_line, "a slot name")] = ANY_VALUE
            continue
        for name, slot_value in item.items():
            slots[source.name_of(name, item_line, "a slot name")] = source.slot_value(slot_value, item_line)
    return slots
