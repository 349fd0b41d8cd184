"""The `NLU` protocol over a running Rasa server, for teams moving from Rasa to kefu.

Rasa 3.x (`rasa run --enable-api`) answers `POST /model/parse` with {"text", "intent": {"name",
"confidence"}, "intent_ranking": [...], "entities": [{"entity", "value", "start", "end",
"confidence_entity", "extractor", "role", "group"}]}. With `--auth-token`, every request carries
the token as the `token` query parameter. No error message names the token, and since httpx logs
every request URL, query string included, the token is also masked in httpx's log records.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Mapping
from typing import Any, TypeGuard

import httpx

from bot.errors import ConfigError, NluBackendError
from bot.events import Session
from bot.nlu.features import detect_language
from bot.types import FALLBACK_INTENT, Entity, IntentScore, Message, NluResult

PARSE_PATH = "/model/parse"
STATUS_PATH = "/status"
DEFAULT_EXTRACTOR = "rasa"
_SNIPPET = 200  # characters of an error body worth quoting
_START_HINT = "start it with `rasa run --enable-api` or fix the Rasa URL in kefu.yml"


class _MaskTokens(logging.Filter):
    """Replaces known tokens in log records of the logger it is attached to."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(token in message for token in self.tokens):
            for token in self.tokens:
                message = message.replace(token, "***")
            record.msg, record.args = message, ()
        return True


_MASK = _MaskTokens()


class _Invalid(ValueError):
    """A field of Rasa's answer is missing or has the wrong type."""


class RasaHttpNlu:
    """Intent, ranking and entities from Rasa's `POST /model/parse`; thread-safe, one pooled client.

    A null intent becomes `FALLBACK_INTENT`, as does an intent below `fallback_threshold` when one
    is set (the confidence and ranking stay Rasa's, so the trace shows what Rasa thought).
    """

    def __init__(
        self, url: str, *, timeout: float = 5.0, token: str | None = None, fallback_threshold: float | None = None
    ) -> None:
        base = _base_url(url)
        if not (math.isfinite(timeout) and timeout > 0):
            raise ConfigError(f"the Rasa timeout must be a positive number of seconds, not {timeout}")
        if fallback_threshold is not None and not 0.0 <= fallback_threshold <= 1.0:
            raise ConfigError(f"the NLU fallback threshold must lie in [0, 1], not {fallback_threshold}")
        self.url = str(base.copy_with(username=None, password=None)).rstrip("/")  # safe to show
        self.timeout = timeout
        self.fallback_threshold = fallback_threshold
        self._base = str(base).rstrip("/")
        self._token = token or None
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None
        if self._token is not None:
            _MASK.tokens.add(self._token)
            logging.getLogger("httpx").addFilter(_MASK)  # a no-op when already attached

    def __repr__(self) -> str:
        return f"RasaHttpNlu({self.url!r}, timeout={self.timeout})"

    def warm_up(self) -> None:
        """Check that Rasa answers at `url` with its HTTP API on and a model loaded; ConfigError says the fix."""
        status = self._get(STATUS_PATH)
        code = status.status_code
        if code in (401, 403):
            raise ConfigError(
                f"the Rasa server at {self.url} refused kefu's token (HTTP {code}): set the token Rasa was "
                "started with (`--auth-token`)"
            )
        if code == 404 and self._get("/").status_code == 200:
            raise ConfigError(f"the Rasa server at {self.url} has its HTTP API off: start it with `--enable-api`")
        if code == 409 or (code == 200 and _no_model(status)):
            raise ConfigError(f"the Rasa server at {self.url} has no model loaded: train one with `rasa train`")
        if code != 200:
            raise ConfigError(f"no Rasa server at {self.url} (GET {STATUS_PATH} answered HTTP {code}): {_START_HINT}")

    def parse(self, message: Message, session: Session) -> NluResult:
        """Rasa's reading of `message.text` (the session is not sent: Rasa's NLU does not use it)."""
        return self.parse_text(message.text, message_id=message.message_id)

    def parse_text(self, text: str, *, message_id: str | None = None) -> NluResult:
        """`parse` for a bare text; raises NluBackendError when Rasa fails or answers nonsense."""
        payload = {"text": text} if message_id is None else {"text": text, "message_id": message_id}
        data = self._post_parse(payload)
        try:
            name, confidence = _intent(data)
            ranking = _ranking(data) or ((IntentScore(name, confidence),) if name is not None else ())
            entities = _entities(data, text)
        except _Invalid as err:
            raise NluBackendError(
                f"the Rasa server at {self.url} answered {PARSE_PATH} with {self._mask(str(err))}"
            ) from err
        below = self.fallback_threshold is not None and confidence < self.fallback_threshold
        return NluResult(
            text=text,
            intent=FALLBACK_INTENT if name is None or below else name,
            confidence=confidence,
            ranking=ranking,
            entities=entities,
            language=detect_language(text),
        )

    def close(self) -> None:
        """Release the pooled connections; a later call opens new ones."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(timeout=httpx.Timeout(self.timeout))
            return self._client

    def _params(self) -> dict[str, str]:
        return {} if self._token is None else {"token": self._token}

    def _get(self, path: str) -> httpx.Response:
        try:
            return self._http().get(self._base + path, params=self._params())
        except httpx.HTTPError as err:
            raise ConfigError(
                f"cannot reach the Rasa server at {self.url} ({type(err).__name__}): {_START_HINT}"
            ) from err

    def _post_parse(self, payload: Mapping[str, str]) -> dict[str, Any]:
        try:
            response = self._http().post(self._base + PARSE_PATH, params=self._params(), json=payload)
        except httpx.TimeoutException as err:
            raise NluBackendError(
                f"the Rasa server at {self.url} did not answer {PARSE_PATH} within {self.timeout:g} s"
            ) from err
        except httpx.HTTPError as err:
            raise NluBackendError(f"cannot reach the Rasa server at {self.url} ({type(err).__name__})") from err
        if response.status_code in (401, 403):
            raise NluBackendError(
                f"the Rasa server at {self.url} refused {PARSE_PATH} (HTTP {response.status_code}): "
                "kefu's token does not match Rasa's `--auth-token`"
            )
        if response.status_code != 200:
            raise NluBackendError(
                f"the Rasa server at {self.url} answered HTTP {response.status_code} to {PARSE_PATH}: "
                f"{self._snippet(response)}"
            )
        try:
            data = response.json()
        except ValueError as err:
            raise NluBackendError(
                f"the Rasa server at {self.url} answered {PARSE_PATH} with something that is not JSON: "
                f"{self._snippet(response)}"
            ) from err
        if not isinstance(data, dict):
            raise NluBackendError(f"the Rasa server at {self.url} answered {PARSE_PATH} with JSON that is no object")
        return data

    def _snippet(self, response: httpx.Response) -> str:
        return self._mask(response.content[: _SNIPPET * 4].decode("utf-8", "replace")[:_SNIPPET])

    def _mask(self, text: str) -> str:
        """What Rasa sends back is quoted in errors; a server that echoes the request must not leak the token."""
        return text.replace(self._token, "***") if self._token else text


def _base_url(url: str) -> httpx.URL:
    try:
        base = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as err:
        raise ConfigError("the Rasa URL is not a valid URL; write it as http://host:5005") from err
    if base.scheme not in ("http", "https") or not base.host:
        raise ConfigError(f"the Rasa URL must be an http(s) URL such as http://localhost:5005, not {url!r}")
    if base.query or base.fragment:
        # the message leaves the URL out: its query string may hold the token
        raise ConfigError("the Rasa URL must not carry a query string; pass the token as `token`")
    return base


def _no_model(status: httpx.Response) -> bool:
    try:
        data = status.json()
    except ValueError:
        return False  # not Rasa's JSON status; the parse call will say more
    return isinstance(data, dict) and "model_file" in data and not data["model_file"]


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _Invalid(f"{where} = {value!r}, which is not a number")
    return float(value)


def _intent(data: Mapping[str, Any]) -> tuple[str | None, float]:
    intent = data.get("intent")
    if not isinstance(intent, dict):
        raise _Invalid(f"'intent' = {intent!r}, which is not an object")
    name = intent.get("name")
    if name is not None and not isinstance(name, str):
        raise _Invalid(f"'intent.name' = {name!r}, which is neither a string nor null")
    if name is None and intent.get("confidence") is None:
        return None, 0.0
    return name, _number(intent.get("confidence"), "'intent.confidence'")


def _ranking(data: Mapping[str, Any]) -> tuple[IntentScore, ...]:
    raw = data.get("intent_ranking") or []  # Rasa leaves it out when no classifier ranks
    if not isinstance(raw, list):
        raise _Invalid(f"'intent_ranking' = {raw!r}, which is not a list")
    scores = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise _Invalid(f"'intent_ranking[{index}]' = {item!r}, which has no intent name")
        scores.append(
            IntentScore(item["name"], _number(item.get("confidence"), f"'intent_ranking[{index}].confidence'"))
        )
    return tuple(scores)


def _entities(data: Mapping[str, Any], text: str) -> tuple[Entity, ...]:
    raw = data.get("entities") or []
    if not isinstance(raw, list):
        raise _Invalid(f"'entities' = {raw!r}, which is not a list")
    return tuple(_entity(item, f"'entities[{index}]'", text) for index, item in enumerate(raw))


def _entity(item: object, where: str, text: str) -> Entity:
    """One Rasa entity, with its role and group when it has them."""
    if not isinstance(item, dict) or not isinstance(item.get("entity"), str) or "value" not in item:
        raise _Invalid(f"{where} = {item!r}, which lacks an entity name or value")
    start, end = item.get("start"), item.get("end")
    if not (_is_int(start) and _is_int(end) and 0 <= start <= end <= len(text)):
        raise _Invalid(f"{where} spanning {start!r}..{end!r}, which is not a span of the text")
    confidence = item.get("confidence_entity", item.get("confidence"))  # Duckling's entities say "confidence"
    extractor = item.get("extractor") or DEFAULT_EXTRACTOR
    if not isinstance(extractor, str):
        raise _Invalid(f"{where}.extractor = {extractor!r}, which is not a string")
    return Entity(
        name=item["entity"],
        value=_value_text(item["value"], where),
        start=start,
        end=end,
        confidence=1.0 if confidence is None else _number(confidence, f"{where}.confidence_entity"),
        extractor=extractor,
        role=_optional_text(item.get("role")),
        group=_optional_text(item.get("group")),
    )


def _optional_text(value: object) -> str | None:
    return None if value is None else str(value)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _value_text(value: object, where: str) -> str:
    """Duckling's values are numbers or objects: 2 -> "2", 2.5 -> "2.5", {"value": 3, ...} -> "3"."""
    if isinstance(value, str):
        return value
    if value is None:
        raise _Invalid(f"{where}.value is null")
    if isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, dict) and "value" in value:
        return _value_text(value["value"], where)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
