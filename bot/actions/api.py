"""Business-API actions: a declared HTTP call (kefu.yml `actions: apis:`), its answer kept in slots and uttered.

An API that fails (no connection, too slow, HTTP 429/5xx after the retries, 4xx at once, an answer
without the declared fields) never fails the turn: the user gets the `error_response` (a graceful
reply), no slot changes, and the trace records what failed. Header values and the environment
variables they read are never logged or traced.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import jinja2
import jinja2.meta
import jinja2.sandbox
from pydantic import JsonValue

from bot.actions.api_config import ENV_REFERENCE, ApiSpec
from bot.actions.clients import LoopClients
from bot.actions.responses import ResponseRenderer
from bot.errors import ActionError, ConfigError
from bot.events import BotUttered, Event, Session, SlotSet
from bot.protocols import TraceSink
from bot.secrets import FILE_SUFFIX, secret_from_env
from bot.types import LANGUAGE_SLOT, Domain, SlotValue

log = logging.getLogger(__name__)

SORRY = {
    "zh": "抱歉，系统暂时无法查询，请稍后再试或转人工客服。",
    "en": "Sorry, I can't look that up right now. Please try again later or ask for a human agent.",
}
_SOLE_SLOT = re.compile(r"^\{\{\s*([A-Za-z_]\w*)\s*\}\}$")
_MISSING = object()


class _MaskSecrets(logging.Filter):
    """Masks secrets in the records of the logger it is attached to (httpx logs every request URL)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(secret in message for secret in self.secrets):
            record.msg, record.args = _mask(message, self.secrets), ()
        return True


_MASK = _MaskSecrets()


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What one API action's call came to."""

    ok: bool
    attempts: int
    status: int | None = None
    problem: str = ""
    data: Any = None
    slots: Mapping[str, SlotValue] = field(default_factory=dict)


class ApiAction:
    """A business-API action; the `Action` protocol over one declared HTTP call."""

    def __init__(
        self,
        name: str,
        spec: ApiSpec,
        renderer: ResponseRenderer,
        *,
        clients: LoopClients | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self._spec = spec
        self._renderer = renderer
        self._clients = clients or LoopClients()
        where = f"kefu.yml actions.apis.{name}"
        env = os.environ if environ is None else environ
        self._secrets: set[str] = set()
        self._headers = {key: self._expand(value, env, f"{where}.headers.{key}") for key, value in spec.headers.items()}
        # ${VAR} in the URL is filled in after rendering: slot values, URL-escaped, cannot smuggle one in
        self._url_env = {match.group(1): self._expand(match.group(0), env, f"{where}.url") for match in
                         ENV_REFERENCE.finditer(spec.url)}  # fmt: skip
        jinja = jinja2.sandbox.SandboxedEnvironment(autoescape=False, finalize=_url_value)
        self._url = jinja.from_string(spec.url)
        self._url_slots = sorted(jinja2.meta.find_undeclared_variables(jinja.parse(spec.url)))
        self._body = jinja2.sandbox.SandboxedEnvironment(autoescape=False, undefined=jinja2.ChainableUndefined)
        for response in filter(None, (spec.response, _declared_error_response(spec))):
            if not renderer.has(response):
                raise ConfigError(f"{where}: the response {response!r} is not in domain.yml; add it under `responses:`")
        _MASK.secrets.update(self._secrets)
        logging.getLogger("httpx").addFilter(_MASK)  # a no-op when already attached

    def __repr__(self) -> str:
        return f"ApiAction({self.name!r}, {self._spec.method} {self._spec.url!r})"

    async def run(self, session: Session, domain: Domain, trace: TraceSink) -> list[Event]:
        outcome = await self._call(session.slots)
        events: list[Event] = [SlotSet(name=name, value=value) for name, value in outcome.slots.items()]
        if outcome.ok and self._spec.response is not None:
            slots = {**session.slots, **outcome.slots}
            try:
                events.append(self._renderer.render(self._spec.response, slots, extra={"response": outcome.data}))
            except ActionError as err:
                outcome = _Outcome(False, outcome.attempts, outcome.status, f"rendering {self._spec.response}: {err}")
        with trace.stage(f"api:{self.name}", self._describe(outcome)):
            pass  # the turn times the action; this stage records what the call came to
        if outcome.ok:
            return events
        log.warning("business API action %r: %s", self.name, self._describe(outcome))
        return [self._graceful(session)]

    async def check(self, slots: Mapping[str, SlotValue]) -> bool | None:
        """A form's API check of the values in `slots`: True on 2xx, False when the API says no (4xx),
        None when it could not be asked (down, too slow: the customer is not blamed for that)."""
        outcome = await self._call(slots)
        if outcome.ok:
            return True
        if outcome.status is not None and 400 <= outcome.status < 500 and outcome.status != 429:
            return False
        log.warning("API check %r could not be made: %s", self.name, self._describe(outcome))
        return None

    async def _call(self, slots: Mapping[str, SlotValue]) -> _Outcome:
        try:
            request = self._request(slots)
        except ActionError as err:
            return _Outcome(False, 0, problem=str(err))
        spec, status, problem = self._spec, None, ""
        for attempt in range(1, spec.retries + 2):
            if attempt > 1:
                await asyncio.sleep(spec.backoff_s * 2 ** (attempt - 2))
            try:
                async with asyncio.timeout(spec.timeout_s):
                    response = await self._clients.get().send(request)
            except (TimeoutError, httpx.TimeoutException):
                status, problem = None, f"no answer within {spec.timeout_s:g} s"
                continue
            except httpx.TransportError as err:
                status, problem = None, f"{type(err).__name__}: {self._mask(str(err)) or 'connection failed'}"
                continue
            except httpx.HTTPError as err:  # e.g. an undecodable body: asking again will not help
                return _Outcome(False, attempt, None, f"{type(err).__name__}: {self._mask(str(err))}")
            status = response.status_code
            if status == 429 or status >= 500:
                problem = f"HTTP {status}"
                continue
            if not 200 <= status < 300:  # the request itself is wrong: repeating it will not help
                return _Outcome(False, attempt, status, f"HTTP {status}")
            return self._read(response, attempt)
        return _Outcome(False, spec.retries + 1, status, problem)

    def _request(self, slots: Mapping[str, SlotValue]) -> httpx.Request:
        empty = [name for name in self._url_slots if slots.get(name) is None]
        if empty:
            raise ActionError(f"the URL needs the slot(s) {', '.join(empty)}, which are not set")
        try:
            url = ENV_REFERENCE.sub(lambda match: self._url_env[match.group(1)], self._url.render(**slots))
            body = _render_json(self._body, self._spec.json_body, slots)
        except jinja2.TemplateError as err:
            raise ActionError(f"the request template failed: {err}") from err
        options: dict[str, Any] = {"headers": self._headers, "timeout": httpx.Timeout(self._spec.timeout_s)}
        if body is not None:
            options["json"] = body
        try:
            return self._clients.get().build_request(self._spec.method, url, **options)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError) as err:
            raise ActionError(self._mask(f"the URL {self._safe_url(url)!r} is not valid: {err}")) from err

    def _read(self, response: httpx.Response, attempt: int) -> _Outcome:
        status = response.status_code
        try:
            data = response.json() if response.content else None
        except ValueError:
            if self._spec.slots:
                return _Outcome(False, attempt, status, "the answer is not JSON")
            data = None
        slots: dict[str, SlotValue] = {}
        for slot, path in self._spec.slots.items():
            value = _lookup(data, path)
            if value is _MISSING:
                return _Outcome(False, attempt, status, f"the answer has no {path!r} (for slot {slot!r})")
            if not _is_slot_value(value):
                return _Outcome(False, attempt, status, f"the answer's {path!r} is an object, not a slot value")
            slots[slot] = value
        return _Outcome(True, attempt, status, data=data, slots=slots)

    def _graceful(self, session: Session) -> BotUttered:
        name = self._spec.error_response
        message = session.latest_message()
        if self._renderer.has(name):
            try:
                return self._renderer.render(name, session.slots, channel=message.channel if message else "")
            except ActionError as err:
                log.warning("the error response %r of action %r failed: %s", name, self.name, err)
        language = "en" if session.slots.get(LANGUAGE_SLOT) == "en" else "zh"
        return BotUttered(text=SORRY[language], template="api_error")

    def _describe(self, outcome: _Outcome) -> str:
        where = f"{self._spec.method} {self._safe_url(str(self._spec.url))}"
        attempts = f"{outcome.attempts} attempt{'s' if outcome.attempts != 1 else ''}"
        if outcome.ok:
            return f"{where}: HTTP {outcome.status} after {attempts}"
        status = f" (last status HTTP {outcome.status})" if outcome.status and "HTTP" not in outcome.problem else ""
        return f"failed: {where}: {outcome.problem}{status} after {attempts}"

    def _expand(self, text: str, env: Mapping[str, str], where: str) -> str:
        """`${VAR}` replaced by the environment's value (or the content of the file `VAR_FILE` names), remembered
        as a secret to mask."""

        def value(match: re.Match[str]) -> str:
            found = secret_from_env(match.group(1), env)
            if found is None:
                raise ConfigError(
                    f"{where} reads the environment variable {match.group(1)}, which is not set (nor "
                    f"{match.group(1)}{FILE_SUFFIX}, a file holding it)"
                )
            if len(found) >= 4:
                self._secrets.add(found)
            return found

        return ENV_REFERENCE.sub(value, text)

    def _safe_url(self, url: str) -> str:
        """The URL template as written (${VAR} unexpanded), without its query string."""
        parts = urlsplit(url)
        return _mask(urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", "")), self._secrets)

    def _mask(self, text: str) -> str:
        return _mask(text, self._secrets)


def api_actions(
    specs: Mapping[str, ApiSpec], renderer: ResponseRenderer, *, environ: Mapping[str, str] | None = None
) -> dict[str, ApiAction]:
    """The declared API actions, sharing one connection pool; raises ConfigError for a missing response or variable."""
    clients = LoopClients()
    return {name: ApiAction(name, spec, renderer, clients=clients, environ=environ) for name, spec in specs.items()}


def _declared_error_response(spec: ApiSpec) -> str | None:
    """The error response when it must exist: the default one may be missing (the built-in apology stands in)."""
    return spec.error_response if "error_response" in spec.model_fields_set else None


def _url_value(value: Any) -> str:
    """What a `{{ }}` in a URL template becomes: the value, URL-escaped (a list becomes comma-separated)."""
    if value is None or isinstance(value, jinja2.Undefined):
        return ""
    if isinstance(value, bool):
        value = json.dumps(value)
    elif isinstance(value, list | tuple):
        value = ",".join(str(item) for item in value)
    return quote(str(value), safe="")


def _render_json(jinja: jinja2.Environment, template: JsonValue, slots: Mapping[str, SlotValue]) -> JsonValue:
    if isinstance(template, str):
        sole = _SOLE_SLOT.match(template)
        if sole is not None:  # exactly one slot: its value as it is (a number stays a number)
            value = slots.get(sole.group(1))
            return list(value) if isinstance(value, list) else value
        return jinja.from_string(template).render(**slots)
    if isinstance(template, list):
        return [_render_json(jinja, item, slots) for item in template]
    if isinstance(template, dict):
        return {key: _render_json(jinja, item, slots) for key, item in template.items()}
    return template


def _lookup(data: Any, path: str) -> Any:
    """`data.status` or `items.0.name` in the parsed JSON; _MISSING where the path leads nowhere."""
    for key in path.split("."):
        if isinstance(data, dict) and key in data:
            data = data[key]
        elif isinstance(data, list) and key.isdigit() and int(key) < len(data):
            data = data[int(key)]
        else:
            return _MISSING
    return data


def _is_slot_value(value: Any) -> bool:
    if value is None or isinstance(value, str | bool | int | float):
        return True
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _mask(text: str, secrets: set[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text
