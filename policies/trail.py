"""The session as rules see it: intents and actions in order, each with the state before it."""

from __future__ import annotations

from dataclasses import dataclass

from bot.events import ActionExecuted, Event, FormActivated, SessionState, UserUttered
from bot.types import ACTION_LISTEN

SKIPPED_ACTIONS = frozenset({ACTION_LISTEN, "action_session_start"})


@dataclass(frozen=True, slots=True)
class TrailItem:
    kind: str  # "intent" or "action"
    name: str
    before: SessionState
    active_during: str | None  # the form active before this step, or the form this action activated


_last: tuple[tuple[Event, ...], tuple[TrailItem, ...]] | None = None


def trail(events: tuple[Event, ...]) -> tuple[TrailItem, ...]:
    """The intents and actions of the session, oldest first (action_listen left out).

    The latest session's trail is kept: the ensemble asks every policy about the same session in turn, and the
    replay is a large part of a decision. Sessions are immutable, so the same events tuple has the same trail.
    """
    global _last
    last = _last
    if last is not None and last[0] is events:
        return last[1]
    items = _replay(events)
    _last = (events, items)
    return items


def _replay(events: tuple[Event, ...]) -> tuple[TrailItem, ...]:
    items: list[TrailItem] = []
    state = SessionState()
    for event in events:
        if isinstance(event, UserUttered) and event.nlu is not None:
            items.append(TrailItem("intent", event.nlu.intent, state, state.active_form))
        elif isinstance(event, ActionExecuted) and event.name not in SKIPPED_ACTIONS:
            items.append(TrailItem("action", event.name, state, state.active_form))
        elif isinstance(event, FormActivated) and items and items[-1].kind == "action":
            last = items[-1]
            items[-1] = TrailItem(last.kind, last.name, last.before, event.name)
        state = state.apply(event)
    return tuple(items)
