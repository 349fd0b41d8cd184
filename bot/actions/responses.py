"""Responses from the domain: the variation whose conditions hold, rendered with the slots.

Texts with `{{ }}` or `{% %}` are jinja2 templates; others use Rasa's `{slot}` substitution.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import jinja2
import jinja2.sandbox

from bot.errors import ActionError
from bot.events import BotUttered, Event, Session
from bot.protocols import TraceSink
from bot.types import LANGUAGE_SLOT, Domain, ResponseVariation


class _KeepMissing(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class ResponseRenderer:
    def __init__(self, domain: Domain) -> None:
        self._domain = domain
        self._jinja = jinja2.sandbox.SandboxedEnvironment(undefined=jinja2.ChainableUndefined, autoescape=False)

    def has(self, name: str) -> bool:
        return name in self._domain.responses

    def render(
        self, name: str, slots: Mapping[str, Any], *, channel: str = "", extra: Mapping[str, Any] | None = None
    ) -> BotUttered:
        """Pick a matching variation (seeded by the slots, so tests are repeatable) and fill it in."""
        variations = self._domain.responses.get(name)
        if not variations:
            raise ActionError(f"response {name!r} is not in domain.yml: add it under `responses:`")
        applying = [v for v in variations if _applies(v, slots, channel)]
        # As in Rasa, a variation whose conditions hold beats the unconditional ones.
        matching = [v for v in applying if v.conditions] or applying
        if not matching:
            language = slots.get(LANGUAGE_SLOT)
            matching = [v for v in variations if not v.conditions] or [
                v for v in variations if all(c.slot == LANGUAGE_SLOT for c in v.conditions)
            ]
            if not matching:
                raise ActionError(f"no variation of {name!r} applies (language={language!r})")
        chosen = random.Random(f"{name}:{sorted(slots.items(), key=str)}").choice(matching)
        values = {**slots, **(extra or {})}
        return BotUttered(
            text=self._fill(name, chosen.text, values),
            buttons=chosen.buttons,
            template=name,
            image=self._fill(name, chosen.image, values) if chosen.image else "",
            custom=self._fill_custom(name, chosen.custom, values),
        )

    def _fill(self, name: str, text: str, values: Mapping[str, Any]) -> str:
        if "{{" in text or "{%" in text:
            try:
                return self._jinja.from_string(text).render(**values)
            except jinja2.TemplateError as err:
                raise ActionError(f"response {name!r} is not a valid jinja2 template: {err}") from err
        return text.format_map(_KeepMissing({k: "" if v is None else v for k, v in values.items()}))

    def _fill_custom(self, name: str, custom: Any, values: Mapping[str, Any]) -> Any:
        """A `custom:` payload with the slots filled into every string in it."""
        if isinstance(custom, str):
            return self._fill(name, custom, values)
        if isinstance(custom, Mapping):
            return {key: self._fill_custom(name, value, values) for key, value in custom.items()}
        if isinstance(custom, list):
            return [self._fill_custom(name, item, values) for item in custom]
        return custom


def _applies(variation: ResponseVariation, slots: Mapping[str, Any], channel: str) -> bool:
    if variation.channel and variation.channel != channel:
        return False
    return all(slots.get(c.slot) == c.value for c in variation.conditions)


class ResponseAction:
    """`utter_*`: says a response."""

    def __init__(self, name: str, renderer: ResponseRenderer) -> None:
        self.name = name
        self._renderer = renderer

    async def run(self, session: Session, domain: Domain, trace: TraceSink) -> list[Event]:
        message = session.latest_message()
        channel = message.channel if message is not None else ""
        return [self._renderer.render(self.name, session.slots, channel=channel)]
