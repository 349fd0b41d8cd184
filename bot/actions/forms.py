"""A form asks for its required slots one by one, validates each answer, optionally asks for a
confirmation, then completes. Invalid answers are re-asked differently and counted (FormPolicy offers a
human when they reach the form's limit)."""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from bot.actions.responses import ResponseRenderer
from bot.actions.sdk import ActionContext, Validation, ValidatorFunction
from bot.actions.slots import slot_value
from bot.errors import ActionError, ConfigError
from bot.events import BotUttered, Event, FormActivated, FormCompleted, Session, SlotRejected, SlotSet
from bot.protocols import TraceSink
from bot.settings import FormConfig, SlotValidation
from bot.types import ACTION_LISTEN, CONFIRM_SLOT, LANGUAGE_SLOT, REQUESTED_SLOT, Domain, FormSpec, SlotValue
from policies.forms import INFORM_INTENTS, rejections

_INVALID = {
    "zh": "抱歉，“{value}”似乎不是有效的{slot}，请再确认一下。",
    "en": "Sorry, “{value}” does not look like a valid {slot}. Please check it.",
}
_MISSING = {"zh": "抱歉，我没有找到{slot}。", "en": "Sorry, I couldn't find the {slot} in that."}


class ApiCheck(Protocol):
    async def check(self, slots: Mapping[str, SlotValue]) -> bool | None: ...


@dataclass(frozen=True, slots=True)
class FormRules:
    """What kefu.yml adds to a domain form: validation per slot, attempts, confirmation, validators."""

    config: FormConfig = field(default_factory=FormConfig)
    validators: Mapping[str, ValidatorFunction] = field(default_factory=dict)
    project_dir: Path = Path()
    apis: Mapping[str, ApiCheck] = field(default_factory=dict)

    def check(self) -> None:
        """Every validator named in kefu.yml exists in actions.py."""
        for slot, rules in self.config.slots.items():
            if rules.validator is not None and rules.validator not in self.validators:
                raise ConfigError(
                    f"kefu.yml: validator {rules.validator!r} of slot {slot!r} is not in actions.py; "
                    f"decorate a function there with @validator({rules.validator!r})"
                )
            if rules.api is not None and rules.api not in self.apis:
                raise ConfigError(
                    f"kefu.yml: the API check {rules.api!r} of slot {slot!r} is not declared under `actions: apis:`"
                )


class FormAction:
    def __init__(self, spec: FormSpec, renderer: ResponseRenderer, rules: FormRules | None = None) -> None:
        self.name = spec.name
        self._spec = spec
        self._renderer = renderer
        self._rules = rules or FormRules()

    async def run(self, session: Session, domain: Domain, trace: TraceSink) -> list[Event]:
        events: list[Event] = []
        activating = session.active_form != self.name
        if activating:
            if session.active_form is not None:  # a switch: the new request replaces the old form
                events.append(FormCompleted(name=session.active_form, cancelled=True))
            events.append(FormActivated(name=self.name))
        answering = session.latest_action() == ACTION_LISTEN
        confirmed = answering and not activating and _confirmed(session)
        session = session.with_events(events)
        checked, responses = await self._check_answers(session, domain, activating, answering)
        events += checked
        session = session.with_events(checked)
        invalid = [e for e in checked if isinstance(e, SlotRejected)]
        if invalid and rejections(session, self.name) >= self._rules.config.max_attempts:
            return events  # FormPolicy offers a human next
        return events + self._next_step(session, invalid, responses, confirmed)

    async def _check_answers(
        self, session: Session, domain: Domain, activating: bool, answering: bool
    ) -> tuple[list[Event], dict[str, str]]:
        """Validated SlotSets and SlotRejecteds for the values this message gives, and the re-prompt
        responses validators asked for."""
        message = session.latest_message()
        candidates: dict[str, SlotValue] = {}
        for name in self._spec.required_slots:
            spec = domain.slots.get(name)
            value = None
            if answering and message is not None and message.nlu is not None and spec is not None:
                value = slot_value(spec, session, message.nlu)
            if value is None and activating:  # filled before the form started: validate it too
                value = session.slots.get(name)
            if value is not None:
                candidates[name] = value
        events: list[Event] = []
        responses: dict[str, str] = {}
        for name, value in candidates.items():
            verdict = await self._validate(name, value, session, domain)
            if verdict.valid:
                if session.slots.get(name) != verdict.value:
                    events.append(SlotSet(name=name, value=verdict.value))
                continue
            events.append(SlotRejected(name=name, value=value, reason=verdict.reason))
            if verdict.response is not None:
                responses[name] = verdict.response
            if session.slots.get(name) is not None:
                events.append(SlotSet(name=name, value=None))
        requested = session.slots.get(REQUESTED_SLOT)
        attempted = message is not None and message.nlu is not None and message.nlu.intent in INFORM_INTENTS
        if attempted and answering and not activating and not candidates and requested not in (None, CONFIRM_SLOT):
            events.append(SlotRejected(name=str(requested), value=None, reason="no value in the message"))
        return events, responses

    async def _validate(self, name: str, value: SlotValue, session: Session, domain: Domain) -> Validation:
        rules = self._rules.config.slots.get(name, SlotValidation())
        if rules.regex is not None:
            values = value if isinstance(value, list) else [value]
            if not all(re.fullmatch(rules.regex, str(v)) for v in values):
                return Validation(valid=False, reason=f"does not match {rules.regex}")
        if rules.api is not None and await self._rules.apis[rules.api].check({**session.slots, name: value}) is False:
            return Validation(valid=False, reason=f"{rules.api} rejected it")
        if rules.validator is None:
            return Validation(valid=True, value=value)
        function = self._rules.validators[rules.validator]
        context = ActionContext(session, domain, self._rules.project_dir, self._renderer)
        try:
            result = function(value, context)
            if inspect.isawaitable(result):
                result = await result
        except Exception as err:  # the project's code: a failing validator fails this turn with its name
            raise ActionError(f"validator {rules.validator!r} of slot {name!r} failed: {err}") from err
        if isinstance(result, Validation):
            return result if not result.valid or result.value is not None else Validation(True, value)
        return Validation(valid=bool(result), value=value, reason="" if result else f"{rules.validator} said no")

    def _next_step(
        self, session: Session, invalid: list[SlotRejected], responses: Mapping[str, str], confirmed: bool
    ) -> list[Event]:
        slots = dict(session.slots)
        missing = [name for name in self._spec.required_slots if slots.get(name) is None]
        if missing:
            slots[REQUESTED_SLOT] = missing[0]
            prompts = [self._ask(missing[0], slots)]
            if invalid and invalid[-1].name == missing[0]:
                reprompt = self._invalid(invalid[-1], responses.get(missing[0]), slots)
                # the project's own re-prompt replaces the question; kefu's generic one precedes it
                prompts = [reprompt, *prompts] if reprompt.template == f"invalid:{missing[0]}" else [reprompt]
            return [SlotSet(name=REQUESTED_SLOT, value=missing[0]), *prompts]
        confirm = self._rules.config.confirm
        if confirm is not None and not confirmed:
            slots[REQUESTED_SLOT] = CONFIRM_SLOT
            return [SlotSet(name=REQUESTED_SLOT, value=CONFIRM_SLOT), self._renderer.render(confirm, slots)]
        return [SlotSet(name=REQUESTED_SLOT, value=None), FormCompleted(name=self.name)]

    def _ask(self, slot: str, slots: Mapping[str, SlotValue]) -> BotUttered:
        specific = f"utter_ask_{self.name}_{slot}"  # Rasa's form-specific question wins over the general one
        return self._renderer.render(specific if self._renderer.has(specific) else f"utter_ask_{slot}", slots)

    def _invalid(self, rejected: SlotRejected, response: str | None, slots: Mapping[str, SlotValue]) -> BotUttered:
        """The re-prompt differs from the question: it says what was wrong (then the question follows)."""
        extra = {"value": rejected.value, rejected.name: rejected.value}
        for name in (response, f"utter_invalid_{self.name}_{rejected.name}", f"utter_invalid_{rejected.name}"):
            if name is not None and self._renderer.has(name):
                return self._renderer.render(name, slots, extra=extra)
        language = "en" if slots.get(LANGUAGE_SLOT) == "en" else "zh"
        template = _MISSING if rejected.value is None else _INVALID
        text = template[language].format(value=rejected.value, slot=rejected.name)
        return BotUttered(text=text, template=f"invalid:{rejected.name}")


def _confirmed(session: Session) -> bool:
    message = session.latest_message()
    asked = session.slots.get(REQUESTED_SLOT) == CONFIRM_SLOT
    return asked and message is not None and message.nlu is not None and message.nlu.intent == "affirm"
