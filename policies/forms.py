"""While a form is active, the form runs on every user message and the bot then waits for the next one."""

from __future__ import annotations

from bot.events import PolicyDecision, Session
from bot.types import ACTION_LISTEN, Domain


class FormPolicy:
    def __init__(self, *, name: str = "forms", priority: int = 5) -> None:
        self.name = name
        self.priority = priority

    def decide(self, session: Session, domain: Domain) -> PolicyDecision | None:
        form = session.active_form
        if form is None:
            return None
        latest = session.latest_action()
        if latest == ACTION_LISTEN:
            return PolicyDecision(form, self.name, 1.0, f"form {form!r} is active: it takes the user's answer")
        if latest == form:
            return PolicyDecision(ACTION_LISTEN, self.name, 1.0, f"form {form!r} asked for a slot")
        return None
