"""What a project's `actions.py` uses to write custom actions.

from bot.actions.sdk import ActionContext, action

@action("action_check_order")
def check_order(ctx: ActionContext) -> list[Event]:
    return [ctx.utter("utter_order_status", order_status="shipped")]

@validator("order_exists")
def order_exists(value: SlotValue, ctx: ActionContext) -> bool | Validation:
    return Validation(valid=False, response="utter_order_not_found") if value not in ORDERS else True
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from bot.actions.responses import ResponseRenderer
from bot.events import BotUttered, Event, Session
from bot.types import LANGUAGE_SLOT, Domain, SlotValue

ActionFunction = Callable[["ActionContext"], list[Event] | Awaitable[list[Event]]]
F = TypeVar("F", bound=ActionFunction)
ACTION_ATTRIBUTE = "__kefu_action__"
VALIDATOR_ATTRIBUTE = "__kefu_validator__"


@dataclass(frozen=True, slots=True)
class Validation:
    """A validator's verdict on a slot value: `value` replaces it (normalised) when valid; an invalid
    value is re-asked with `response` (default `utter_invalid_<slot>`), `reason` goes into the trace."""

    valid: bool
    value: SlotValue = None
    response: str | None = None
    reason: str = ""


ValidatorFunction = Callable[[SlotValue, "ActionContext"], "bool | Validation | Awaitable[bool | Validation]"]
V = TypeVar("V", bound=ValidatorFunction)


@dataclass(frozen=True, slots=True)
class ActionContext:
    session: Session
    domain: Domain
    project_dir: Path
    renderer: ResponseRenderer

    @property
    def slots(self) -> Mapping[str, SlotValue]:
        return self.session.slots

    @property
    def language(self) -> str:
        return str(self.session.slots.get(LANGUAGE_SLOT) or "zh")

    def utter(self, response: str, **values: Any) -> BotUttered:
        """The domain response `response`, filled with the slots and `values`."""
        return self.renderer.render(response, self.slots, extra=values)


def validator(name: str) -> Callable[[V], V]:
    """Registers a function (sync or async) that checks a form's slot value; kefu.yml names it per slot
    (`dialogue: forms: FORM: slots: SLOT: validator: NAME`)."""

    def register(function: V) -> V:
        setattr(function, VALIDATOR_ATTRIBUTE, name)
        return function

    return register


def action(name: str) -> Callable[[F], F]:
    """Registers a function (sync or async) as the custom action `name`."""

    def register(function: F) -> F:
        setattr(function, ACTION_ATTRIBUTE, name)
        return function

    return register
