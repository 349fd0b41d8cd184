"""What a project's `actions.py` uses to write custom actions.

from bot.actions.sdk import ActionContext, action

@action("action_check_order")
def check_order(ctx: ActionContext) -> list[Event]:
    return [ctx.utter("utter_order_status", order_status="shipped")]
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


def action(name: str) -> Callable[[F], F]:
    """Registers a function (sync or async) as the custom action `name`."""

    def register(function: F) -> F:
        setattr(function, ACTION_ATTRIBUTE, name)
        return function

    return register
