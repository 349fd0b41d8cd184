"""Forms: while one is active it takes the user's answers; digressions are answered and the form resumes.

A message answers the form when it carries a value for one of its slots, is an `inform` or was not
understood (an invalid answer), or is `affirm`/`deny` at the confirmation step. Anything else is a
digression (an FAQ, a greeting: other policies answer it, then the form asks again) or a switch (another
form, a human: the form is cancelled by what runs next). A cancel intent stops the form.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from bot.actions.slots import slot_value
from bot.events import FormActivated, FormCompleted, PolicyDecision, Session, SlotRejected, SlotSet
from bot.types import (
    ACTION_CANCEL_FORM,
    ACTION_HANDOFF,
    ACTION_LISTEN,
    ACTION_OFFER_HUMAN,
    CONFIRM_SLOT,
    FALLBACK_INTENT,
    REQUESTED_SLOT,
    Domain,
    NluResult,
)

INFORM_INTENTS = frozenset({"inform", FALLBACK_INTENT})
SURE_CANCEL = 0.7  # when the form asks for free text, an unsure "cancel" is more likely an answer
_NO_RESUME = frozenset({ACTION_CANCEL_FORM, ACTION_HANDOFF, ACTION_OFFER_HUMAN})


class FormPolicy:
    def __init__(
        self,
        *,
        cancel_intents: Collection[str] = ("cancel",),
        max_attempts: Mapping[str, int] | None = None,
        name: str = "forms",
        priority: int = 7,
    ) -> None:
        self.name = name
        self.priority = priority
        self._cancel = frozenset(cancel_intents)
        self._max_attempts = dict(max_attempts or {})

    def decide(self, session: Session, domain: Domain) -> PolicyDecision | None:
        latest = session.latest_action()
        if latest in (ACTION_CANCEL_FORM, ACTION_OFFER_HUMAN):
            return PolicyDecision(ACTION_LISTEN, self.name, 1.0, f"{latest} asked the user")
        form = session.active_form
        if form is None:
            return None
        if latest == ACTION_LISTEN:
            return self._on_message(session, domain, form)
        if latest == form:
            attempts = rejections(session, form)
            if attempts >= self._max_attempts.get(form, 3):
                return _stop(form, ACTION_OFFER_HUMAN, self.name, f"{attempts} invalid answers: offer a human")
            return PolicyDecision(ACTION_LISTEN, self.name, 1.0, f"form {form!r} asked the user")
        if latest in _NO_RESUME:
            return None
        return PolicyDecision(form, self.name, 1.0, f"{latest} answered a digression: form {form!r} resumes")

    def _on_message(self, session: Session, domain: Domain, form: str) -> PolicyDecision | None:
        message = session.latest_message()
        nlu = message.nlu if message is not None else None
        if nlu is None:
            return None
        confirming = session.slots.get(REQUESTED_SLOT) == CONFIRM_SLOT
        free_text = _free_text_requested(session, domain, nlu)
        cancels = nlu.intent in self._cancel and (nlu.confidence >= SURE_CANCEL or not free_text)
        if cancels or (confirming and nlu.intent == "deny"):
            return _stop(form, ACTION_CANCEL_FORM, self.name, f"intent {nlu.intent} cancels form {form!r}")
        if (confirming and nlu.intent == "affirm") or _answers(session, domain, form, nlu):
            return PolicyDecision(form, self.name, 1.0, f"form {form!r} is active: it takes the user's answer")
        return None  # a digression or a switch: other policies decide


def _stop(form: str, action: str, policy: str, reason: str) -> PolicyDecision:
    events = (FormCompleted(name=form, cancelled=True), SlotSet(name=REQUESTED_SLOT, value=None))
    return PolicyDecision(action, policy, 1.0, reason, events=events)


def _answers(session: Session, domain: Domain, form: str, nlu: NluResult) -> bool:
    if nlu.intent in INFORM_INTENTS:
        return True
    spec = domain.forms.get(form)
    required = spec.required_slots if spec is not None else ()
    return any(slot_value(domain.slots[name], session, nlu) is not None for name in required if name in domain.slots)


def _free_text_requested(session: Session, domain: Domain, nlu: NluResult) -> bool:
    requested = session.slots.get(REQUESTED_SLOT)
    spec = domain.slots.get(str(requested)) if requested is not None else None
    return spec is not None and any(m.type == "from_text" for m in spec.mappings)


def rejections(session: Session, form: str) -> int:
    """Invalid answers for the slot the form asks for now, since the form was activated."""
    requested = session.slots.get(REQUESTED_SLOT)
    count = 0
    for event in reversed(session.events):
        if isinstance(event, FormActivated) and event.name == form:
            break
        if isinstance(event, SlotRejected) and event.name == requested:
            count += 1
    return count
