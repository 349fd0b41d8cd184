"""Custom actions served by a rasa-sdk action server (`python -m rasa_sdk --actions actions`) over HTTP.

kefu posts Rasa 3.x's action call to `SERVER/webhook` and turns the answer into kefu events
(bot.actions.rasa_tracker). rasa-sdk answers 404 for an action it does not have, 400 with
`{"error", "action_name"}` when the action raised `ActionExecutionRejection` (a form's validation
said no), and 500 when the action crashed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import httpx

from bot.actions.clients import LoopClients
from bot.actions.rasa_tracker import action_call, domain_json, events_from_rasa, responses_from_rasa
from bot.actions.responses import ResponseRenderer
from bot.errors import ActionError, ConfigError
from bot.events import Event, Session
from bot.protocols import TraceSink
from bot.types import Domain

WEBHOOK_PATH = "/webhook"
_START_HINT = "start it with `python -m rasa_sdk --actions actions` or fix `actions.server_url` in kefu.yml"
_SNIPPET = 200


class ActionRejectedError(ActionError):
    """The action server refused to run the action (rasa-sdk's ActionExecutionRejection)."""

    def __init__(self, message: str, *, action: str, reason: str) -> None:
        super().__init__(message)
        self.action = action
        self.reason = reason


class ActionServer:
    """One rasa-sdk action server: its address and a pooled HTTP client for each event loop."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        if not (math.isfinite(timeout) and timeout > 0):
            raise ConfigError(f"the action server timeout must be a positive number of seconds, not {timeout}")
        base = _base_url(url)
        self.url = str(base.copy_with(username=None, password=None)).rstrip("/")  # safe to show
        self.timeout = timeout
        self._webhook = str(base).rstrip("/") + WEBHOOK_PATH
        self._clients = LoopClients(timeout=httpx.Timeout(timeout))

    def __repr__(self) -> str:
        return f"ActionServer({self.url!r}, timeout={self.timeout:g})"

    async def aclose(self) -> None:
        """Close the running loop's connections; a later call opens new ones."""
        await self._clients.aclose()

    async def call(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST the action call; the server's `{"events", "responses"}`, or ActionError saying what went wrong."""
        try:
            response = await self._clients.get().post(self._webhook, json=body)
        except httpx.ConnectError as err:
            raise ActionError(f"no action server at {self.url}: {_START_HINT} (action {action!r} runs there)") from err
        except httpx.TimeoutException as err:
            raise ActionError(
                f"the action server at {self.url} did not finish action {action!r} within {self.timeout:g} s "
                "(raise `actions.server_timeout` in kefu.yml if the action is slow on purpose)"
            ) from err
        except httpx.HTTPError as err:
            raise ActionError(f"cannot reach the action server at {self.url} ({type(err).__name__}: {err})") from err
        if response.status_code != 200:
            raise self._refusal(action, response)
        return self._answer(action, response)

    def _refusal(self, action: str, response: httpx.Response) -> ActionError:
        code, error = response.status_code, _error_text(response)
        if code == 404 and _names_action(response):
            return ActionError(
                f"action {action!r} is not registered on the action server at {self.url}: add a rasa_sdk Action "
                f"whose name() returns {action!r} to the server's actions package, or implement it in kefu"
            )
        if code == 404:
            return ActionError(f"the server at {self.url} has no {WEBHOOK_PATH}: is it a rasa-sdk action server?")
        if code == 400 and _names_action(response):
            return ActionRejectedError(
                f"action {action!r} rejected execution on the action server at {self.url}: {error} "
                "(rasa-sdk's ActionExecutionRejection; with forms it means the validation failed)",
                action=action,
                reason=error,
            )
        return ActionError(f"action {action!r} failed on the action server at {self.url} (HTTP {code}): {error}")

    def _answer(self, action: str, response: httpx.Response) -> dict[str, Any]:
        where = f"the action server at {self.url} answered action {action!r} with"
        try:
            data = response.json()
        except ValueError as err:
            raise ActionError(f"{where} something that is not JSON: {_snippet(response)}") from err
        if not isinstance(data, dict):
            raise ActionError(f"{where} {_snippet(response)}, not an object with `events` and `responses`")
        for key in ("events", "responses"):
            if not isinstance(data.get(key, []), list):
                raise ActionError(f"{where} `{key}` = {data[key]!r}, which is not a list")
        return data


class RemoteAction:
    """An action that an action server runs; the `Action` protocol over rasa-sdk's HTTP protocol."""

    def __init__(self, name: str, server: ActionServer, renderer: ResponseRenderer) -> None:
        self.name = name
        self._server = server
        self._renderer = renderer
        self._domain: tuple[Domain, dict[str, Any]] | None = None

    def __repr__(self) -> str:
        return f"RemoteAction({self.name!r}, {self._server!r})"

    async def run(self, session: Session, domain: Domain, trace: TraceSink) -> list[Event]:
        body = action_call(self.name, session, self._domain_json(domain))
        with trace.stage("action_server", f"POST {self._server.url}{WEBHOOK_PATH} {self.name}"):
            data = await self._server.call(self.name, body)
        uttered = responses_from_rasa(data.get("responses") or [], self.name, session, self._renderer)
        # As Rasa's RemoteAction does: the messages first, then the events the action returned.
        return [*uttered, *events_from_rasa(data.get("events") or [], self.name, session)]

    def _domain_json(self, domain: Domain) -> dict[str, Any]:
        if self._domain is None or self._domain[0] is not domain:
            self._domain = (domain, domain_json(domain))
        return self._domain[1]


def remote_actions(
    names: Iterable[str], url: str, timeout: float, renderer: ResponseRenderer
) -> dict[str, RemoteAction]:
    """One `RemoteAction` per name, all served by the action server at `url` (sharing its connections)."""
    server = ActionServer(url, timeout=timeout)
    return {name: RemoteAction(name, server, renderer) for name in names}


def _base_url(url: str) -> httpx.URL:
    try:
        base = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as err:
        raise ConfigError("the action server URL is not a valid URL; write it as http://localhost:5055") from err
    if base.scheme not in ("http", "https") or not base.host:
        raise ConfigError(f"the action server URL must be an http(s) URL such as http://localhost:5055, not {url!r}")
    if base.query or base.fragment:
        raise ConfigError("the action server URL must not carry a query string or fragment")
    return base


def _names_action(response: httpx.Response) -> bool:
    try:
        data = response.json()
    except ValueError:
        return False
    return isinstance(data, dict) and "action_name" in data


def _error_text(response: httpx.Response) -> str:
    """rasa-sdk's `error` field; a 500 also echoes the request (the user's messages), which stays out."""
    try:
        data = response.json()
    except ValueError:
        return _snippet(response)
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, str) else _snippet(response)


def _snippet(response: httpx.Response) -> str:
    return response.content[: _SNIPPET * 4].decode("utf-8", "replace")[:_SNIPPET]
