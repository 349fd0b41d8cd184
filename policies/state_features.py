"""Dialogue states for the ML policy: one small multi-hot vector per decision point of a session.

A decision point follows every user message and every action: it is the moment the policies pick
the next action. Its state holds the latest intent and the entity names of that message (only right
after the message, as Rasa's TED does: after an action, the earlier state in the history carries
them), the slots that influence the conversation, the active form and `requested_slot`, and the
previous action. Training stories are replayed into the same kefu events a turn records, then
featurized by the same code, so training and run time cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np
import numpy.typing as npt

from bot.errors import ProjectError
from bot.events import ActionExecuted, Event, FormActivated, FormCompleted, SlotSet, UserUttered
from bot.types import (
    ACTION_LISTEN,
    FALLBACK_INTENT,
    KEFU_ACTIONS,
    REQUESTED_SLOT,
    Domain,
    NluResult,
    SlotValue,
    Story,
    StoryStep,
)

# Actions that are no decision of a policy: action_listen is implied by the user message that follows.
NOT_DECISIONS = frozenset({ACTION_LISTEN, "action_session_start"})
_TRUE = frozenset({"true", "1", "yes"})

State = tuple[int, ...]  # the indices of a state's active features
Matrix = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """Every feature a state can have and every action the policy can predict, fixed at training."""

    intents: tuple[str, ...]
    entities: tuple[str, ...]
    slots: tuple[str, ...]  # "name" (set or not), "name=true|false" (bool), "name=value" (categorical)
    forms: tuple[str, ...]
    requested: tuple[str, ...]  # the slots forms ask for: values of requested_slot
    actions: tuple[str, ...]
    slot_types: Mapping[str, str] = field(default_factory=dict)  # influential slot -> its type

    def features(self) -> list[str]:
        """Feature names in vector order."""
        blocks = (
            ("intent", self.intents),
            ("entity", self.entities),
            ("slot", self.slots),
            ("form", self.forms),
            ("requested", self.requested),
            ("prev", self.actions),
        )
        return [f"{kind}:{name}" for kind, names in blocks for name in names]

    def to_json(self) -> dict[str, Any]:
        return {
            "intents": list(self.intents),
            "entities": list(self.entities),
            "slots": list(self.slots),
            "forms": list(self.forms),
            "requested": list(self.requested),
            "actions": list(self.actions),
            "slot_types": dict(sorted(self.slot_types.items())),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Vocabulary:
        names = ("intents", "entities", "slots", "forms", "requested", "actions")
        lists = {key: tuple(str(v) for v in data[key]) for key in names}
        return cls(**lists, slot_types={str(k): str(v) for k, v in data["slot_types"].items()})


def vocabulary_of(domain: Domain, stories: Sequence[Story] = ()) -> Vocabulary:
    """The domain's features, plus intents and actions the stories use without declaring (built-ins)."""
    used_intents = {s.name for story in stories for s in _all_steps(story) if s.kind in ("intent", "user") and s.name}
    used_actions = {s.name for story in stories for s in _all_steps(story) if s.kind == "action" and s.name}
    slot_types: dict[str, str] = {}
    slot_features: list[str] = []
    for name, spec in sorted(domain.slots.items()):
        if not spec.influence_conversation or name == REQUESTED_SLOT:
            continue
        slot_types[name] = spec.type
        if spec.type == "bool":
            slot_features += [f"{name}=false", f"{name}=true"]
        elif spec.type == "categorical":
            slot_features += [f"{name}={value.lower()}" for value in spec.values]
        else:
            slot_features.append(name)
    actions = {*domain.responses, *domain.forms, *domain.actions, *KEFU_ACTIONS, ACTION_LISTEN, *used_actions}
    return Vocabulary(
        intents=tuple(sorted({*domain.intents, FALLBACK_INTENT, *used_intents})),
        entities=tuple(sorted(set(domain.entities))),
        slots=tuple(slot_features),
        forms=tuple(sorted(domain.forms)),
        requested=tuple(sorted({slot for form in domain.forms.values() for slot in form.required_slots})),
        actions=tuple(sorted(actions - {"action_session_start"})),
        slot_types=slot_types,
    )


@dataclass(slots=True)
class _Tracker:
    """What the events so far imply; private and mutable because it lives for one walk over the events."""

    slots: dict[str, SlotValue] = field(default_factory=dict)
    form: str | None = None
    nlu: NluResult | None = None
    after_user: bool = False
    previous: str | None = None


@dataclass(frozen=True, slots=True)
class DecisionPoint:
    """The state at one decision point and the event that opened it (a user message or an action)."""

    state: State
    opened_by: str  # the action's name, or ACTION_LISTEN for a user message


class StateFeaturizer:
    """Sessions (their events) to states, over a fixed `Vocabulary`."""

    def __init__(self, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary
        names = vocabulary.features()
        self.size = len(names)
        self._index = {name: i for i, name in enumerate(names)}
        self._slot_types = dict(vocabulary.slot_types)

    @classmethod
    def from_domain(cls, domain: Domain, stories: Sequence[Story] = ()) -> StateFeaturizer:
        return cls(vocabulary_of(domain, stories))

    @property
    def actions(self) -> tuple[str, ...]:
        return self.vocabulary.actions

    def decision_points(self, events: Sequence[Event], *, last: int | None = None) -> list[DecisionPoint]:
        """One decision point per user message and per action, oldest first; the last is the present.

        With `last`, only the latest `last` points: earlier ones are walked through but not encoded.
        """
        skip = 0 if last is None else max(0, sum(_opener(e) is not None for e in events) - last)
        points: list[DecisionPoint] = []
        tracker = _Tracker()
        opened: str | None = None
        for event in events:
            opener = _opener(event)
            if opener is not None and opened is not None:
                if skip:
                    skip -= 1
                else:
                    points.append(DecisionPoint(self._encode(tracker), opened))
            opened = opener or opened
            _apply(tracker, event)
        if opened is not None:
            points.append(DecisionPoint(self._encode(tracker), opened))
        return points

    def states(self, events: Sequence[Event]) -> list[State]:
        return [point.state for point in self.decision_points(events)]

    def window(self, states: Sequence[State], max_history: int) -> Matrix:
        """The last `max_history` states as a (max_history, size) matrix, zero rows in front when fewer."""
        matrix = np.zeros((max_history, self.size), dtype=np.float32)
        recent = states[-max_history:]
        offset = max_history - len(recent)
        for row, state in enumerate(recent, start=offset):
            matrix[row, list(state)] = 1.0
        return matrix

    def _encode(self, tracker: _Tracker) -> State:
        index = self._index
        keys: list[str] = []
        if tracker.after_user and tracker.nlu is not None:
            keys.append(f"intent:{tracker.nlu.intent}")
            keys += [f"entity:{entity.name}" for entity in tracker.nlu.entities]
        for name, kind in self._slot_types.items():
            key = _slot_key(name, kind, tracker.slots.get(name))
            if key is not None:
                keys.append(f"slot:{key}")
        if tracker.form is not None:
            keys.append(f"form:{tracker.form}")
        requested = tracker.slots.get(REQUESTED_SLOT)
        if requested is not None:
            keys.append(f"requested:{requested}")
        if tracker.previous is not None:
            keys.append(f"prev:{tracker.previous}")
        # Names outside the vocabulary (an intent added since training) are no feature at all.
        return tuple(sorted({index[key] for key in keys if key in index}))


def _opener(event: Event) -> str | None:
    """The decision point an event opens: ACTION_LISTEN for a user message, an action's name, or None."""
    if isinstance(event, UserUttered):
        return ACTION_LISTEN
    if isinstance(event, ActionExecuted) and event.name not in NOT_DECISIONS:
        return event.name
    return None


def _apply(tracker: _Tracker, event: Event) -> None:
    if isinstance(event, UserUttered):
        tracker.nlu, tracker.after_user, tracker.previous = event.nlu, True, ACTION_LISTEN
    elif isinstance(event, ActionExecuted) and event.name not in NOT_DECISIONS:
        tracker.after_user, tracker.previous = False, event.name
    elif isinstance(event, SlotSet):
        tracker.slots[event.name] = event.value
    elif isinstance(event, FormActivated):
        tracker.form = event.name
    elif isinstance(event, FormCompleted):
        tracker.form = None


def _slot_key(name: str, kind: str, value: SlotValue) -> str | None:
    if value is None or value == [] or value == "":
        return None
    if kind == "bool":
        truth = value if isinstance(value, bool) else str(value).lower() in _TRUE
        return f"{name}={'true' if truth else 'false'}"
    if kind == "categorical":
        return f"{name}={str(value).lower()}"
    return name


# --- training stories as events ---


def story_events(story: Story) -> list[Event]:
    """The events a bot would record living through `story` (rules' conditions first)."""
    events: list[Event] = []
    form: str | None = None
    for step in _all_steps(story):
        if step.kind == "slot_was_set":
            events += [SlotSet(name=name, value=value, timestamp=0.0) for name, value in step.slots.items()]
            continue
        event = _step_event(step, form, story)
        if isinstance(event, FormActivated):
            form = event.name
        elif isinstance(event, FormCompleted):
            form = None
        if event is not None:
            events.append(event)
    return events


def _step_event(step: StoryStep, form: str | None, story: Story) -> Event | None:
    if step.kind in ("intent", "user"):
        if step.name is None:
            raise ProjectError(f"story {story.name!r} has a user step without an intent", path=story.source or None)
        nlu = NluResult(text=step.text or f"/{step.name}", intent=step.name, confidence=1.0, entities=step.entities)
        return UserUttered(text=nlu.text, nlu=nlu, timestamp=0.0)
    if step.kind == "action" and step.name is not None and step.name != ACTION_LISTEN:
        return ActionExecuted(name=step.name, timestamp=0.0)
    if step.kind == "active_loop":
        if step.name is not None:
            return FormActivated(name=step.name, timestamp=0.0)
        return None if form is None else FormCompleted(name=form, timestamp=0.0)
    return None


def waits_at_end(story: Story) -> bool:
    """Whether the bot waits for the user after the story's last step (it ends with an action)."""
    last = next((s for s in reversed(story.steps) if s.kind in ("intent", "user", "action")), None)
    return last is not None and last.kind == "action" and story.wait_for_user_input


def training_pairs(
    featurizer: StateFeaturizer, events: Sequence[Event], *, wait_at_end: bool
) -> tuple[list[State], list[str | None]]:
    """The states of `events` and, for each, the action that came next (None where nothing is to learn).

    After an action, a user message means the bot listened; a user message right after another one
    teaches nothing. At the end, the bot listens when the story ends with an action and waits.
    """
    points = featurizer.decision_points(events)
    targets: list[str | None] = []
    for point, following in pairwise(points):
        if following.opened_by != ACTION_LISTEN:
            targets.append(following.opened_by)
        else:
            targets.append(ACTION_LISTEN if point.opened_by != ACTION_LISTEN else None)
    if points:
        targets.append(ACTION_LISTEN if wait_at_end and points[-1].opened_by != ACTION_LISTEN else None)
    return [point.state for point in points], targets


def _all_steps(story: Story) -> tuple[StoryStep, ...]:
    return (*story.conditions, *story.steps)
