"""A chat model behind an OpenAI-compatible HTTP API (OpenAI, vLLM, TGI, llama.cpp, Ollama, `kefu serve`)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any, TypeVar

import httpx

from bot.errors import GenerationError
from bot.generation.chat import Completion, FinishReason
from bot.generation.prompts import ChatMessage, estimate_tokens
from bot.generation.stops import StopCutter
from bot.protocols import DecodingParams

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_API_STOPS = 4  # the OpenAI API rejects more; the rest are cut here
MAX_RETRY_AFTER = 10.0
_FIXES = {
    401: "check KEFU_GENERATOR_API_KEY",
    403: "check that KEFU_GENERATOR_API_KEY may use this model",
    404: "check generator.base_url (it includes the version path, e.g. http://host:8000/v1) and the model name",
    413: "the prompt is too large for the server; lower the prompt budget",
    429: "the server is rate-limiting; lower the load or raise its limits",
}


class _Retry(Exception):
    """A failure that may pass on another attempt; `after` is the wait the server asked for."""

    def __init__(self, message: str, after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.after = after


class OpenAIChat:
    """A ChatModel served over HTTP by anything that speaks OpenAI's chat-completions protocol.

    Thread-safe: turns call it from worker threads and share one connection pool."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 2,
        backoff: float = 0.5,
    ) -> None:
        self.name = f"openai:{model}"
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self._api_key = api_key
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()
        self._where = f"the generator at {self.base_url}"

    def count_tokens(self, text: str) -> int:
        """An estimate: the server's tokenizer is not at hand."""
        return estimate_tokens(text)

    def close(self) -> None:
        """Close the connection pool; a later call opens a new one."""
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def __enter__(self) -> OpenAIChat:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def complete(
        self, messages: Sequence[ChatMessage], *, n: int = 1, params: DecodingParams | None = None
    ) -> list[Completion]:
        """`n` answers; servers that ignore `n` (Ollama, llama.cpp) are asked again until there are `n`."""
        params = params or DecodingParams()
        cutter = StopCutter(params.stop)
        completions: list[Completion] = []
        for round_ in range(n):  # every round brings at least one choice
            body = self._body(messages, params, n - len(completions), round_)
            completions += _completions(self._retrying(partial(self._post_json, body)), cutter, self._where)
            if len(completions) >= n:
                break
        return completions[:n]

    def stream_chat(self, messages: Sequence[ChatMessage], *, params: DecodingParams | None = None) -> Iterator[str]:
        """The answer in pieces; a failure is retried only until the first piece arrived."""
        params = params or DecodingParams()
        body = {**self._body(messages, params, 1, 0), "stream": True}
        return StopCutter(params.stop).stream(self._stream(body), strip=True)

    def _body(self, messages: Sequence[ChatMessage], params: DecodingParams, n: int, round_: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [dict(m) for m in messages],
            "n": n,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "frequency_penalty": params.frequency_penalty,
            "presence_penalty": params.presence_penalty,
        }
        if params.stop:
            body["stop"] = list(params.stop[:MAX_API_STOPS])
        if params.seed is not None:
            # a server that ignored `n` would answer a repeated request with the same seed identically
            body["seed"] = params.seed + round_
        if params.repetition_penalty != 1.0:  # a vLLM/TGI extension that OpenAI itself rejects
            body["repetition_penalty"] = params.repetition_penalty
        return body

    def _http(self) -> httpx.Client:
        with self._client_lock:
            if self._client is None:
                headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
                self._client = httpx.Client(timeout=httpx.Timeout(self.timeout), headers=headers)
            return self._client

    def _retrying(self, attempt: Callable[[], T]) -> T:
        """`attempt()`, again after a backoff while it fails with what may pass, at most `retries` times more."""
        tries = 0
        while True:
            try:
                return attempt()
            except _Retry as failure:
                tries += 1
                if tries > self.retries:
                    raise GenerationError(f"{failure.message} ({tries} attempts)") from failure
                wait = failure.after if failure.after is not None else self.backoff * 2 ** (tries - 1)
                log.warning("%s; retrying in %.2f s", failure.message, wait)
                time.sleep(wait)

    def _send(self, body: dict[str, Any]) -> httpx.Response:
        """An open 2xx response to POST /chat/completions (the caller closes it), or the failure raised."""
        client = self._http()
        request = client.build_request("POST", f"{self.base_url}/chat/completions", json=body)
        try:
            response = client.send(request, stream=True)
        except httpx.TransportError as err:
            raise self._transport_failure(err) from err
        if response.is_success:
            return response
        try:
            content = response.read()
        except httpx.TransportError:
            content = b""  # the status says enough
        finally:
            response.close()
        raise self._status_failure(response, content)

    def _post_json(self, body: dict[str, Any]) -> Any:
        response = self._send(body)
        try:
            content = response.read()
        except httpx.TransportError as err:
            raise self._transport_failure(err) from err
        finally:
            response.close()
        return _json(content, self._where)

    def _stream(self, body: dict[str, Any]) -> Iterator[str]:
        response, first, rest = self._retrying(lambda: self._open_stream(body))
        try:
            if first is None:
                return
            yield first
            yield from rest
        except httpx.TransportError as err:
            raise GenerationError(f"the stream from {self._where} broke off: {type(err).__name__}: {err}") from err
        finally:
            response.close()

    def _open_stream(self, body: dict[str, Any]) -> tuple[httpx.Response, str | None, Iterator[str]]:
        """The response, its first piece (None: the answer is empty) and an iterator over the other pieces."""
        response = self._send(body)
        try:
            if "text/event-stream" in response.headers.get("content-type", ""):
                pieces = _deltas(_sse_data(response.iter_lines()), self._where)
            else:  # a server that ignored `stream` answers in one piece
                completion = _completions(_json(response.read(), self._where), StopCutter(()), self._where)[0]
                pieces = iter([completion.text])
            return response, next(pieces, None), pieces
        except httpx.TransportError as err:
            response.close()
            raise self._transport_failure(err) from err
        except BaseException:
            response.close()
            raise

    def _transport_failure(self, err: httpx.TransportError) -> Exception:
        if isinstance(err, httpx.TimeoutException):
            return _Retry(
                f"{self._where} did not answer within {self.timeout:g} s; check its load or raise the timeout"
            )
        if isinstance(err, httpx.NetworkError | httpx.RemoteProtocolError):
            return _Retry(f"{self._where} cannot be reached ({err}); check generator.base_url and that it runs")
        return GenerationError(f"cannot call {self._where} ({type(err).__name__}: {err}); check generator.base_url")

    def _status_failure(self, response: httpx.Response, content: bytes) -> Exception:
        status = response.status_code
        detail = _server_message(content)
        if self._api_key:  # some servers echo the key they refused
            detail = detail.replace(self._api_key, "***")
        fix = _FIXES.get(status) or ("see the server's logs" if status >= 500 else "check the generator settings")
        message = f"{self._where} answered HTTP {status}: {detail}; {fix}"
        if status == 429 or status >= 500:
            return _Retry(message, _retry_after(response))
        return GenerationError(message)


def _json(content: bytes, where: str) -> Any:
    try:
        return json.loads(content)
    except ValueError as err:
        raise GenerationError(f"{where} answered invalid JSON ({err}): {content[:200]!r}") from err


def _completions(data: Any, cutter: StopCutter, where: str) -> list[Completion]:
    """The choices of a chat-completion response, cut at the stop sequences the server was not sent."""
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices or not all(isinstance(c, dict) for c in choices):
        raise GenerationError(f"{where} answered without choices: {json.dumps(data)[:200]}")
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    prompt_tokens = _count(usage.get("prompt_tokens"))
    # usage covers all choices together: an even share each
    completion_tokens = _count(usage.get("completion_tokens")) // len(choices)
    completions = []
    for choice in choices:
        message = choice.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if content is not None and not isinstance(content, str):
            raise GenerationError(f"{where} answered a choice without text: {json.dumps(choice)[:200]}")
        text, stopped = cutter.cut(content or "")
        finish: FinishReason = "length" if choice.get("finish_reason") == "length" and not stopped else "stop"
        completions.append(Completion(text.strip(), finish, prompt_tokens, completion_tokens))
    return completions


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _sse_data(lines: Iterator[str]) -> Iterator[str]:
    """The data of each server-sent event; comments, other fields and empty events are skipped."""
    data: list[str] = []
    for line in lines:
        if not line:
            if any(data):
                yield "\n".join(data)
            data = []
            continue
        field, _, value = line.partition(":")
        if field == "data":  # a line starting with ":" is a comment: its field is ""
            data.append(value.removeprefix(" "))
    if any(data):
        yield "\n".join(data)


def _deltas(events: Iterator[str], where: str) -> Iterator[str]:
    """The content pieces of the first choice in a stream of chat-completion chunks, up to `[DONE]`."""
    for data in events:
        if data.strip() == "[DONE]":
            return
        chunk = _json(data.encode(), where)
        if not isinstance(chunk, dict):
            raise GenerationError(f"{where} streamed something other than a chunk: {data[:200]}")
        if chunk.get("error"):
            raise GenerationError(f"{where} failed while streaming: {_error_message(chunk)}")
        for choice in chunk.get("choices") or ():  # a usage chunk has no choices
            delta = choice.get("delta") if isinstance(choice, dict) and choice.get("index", 0) == 0 else None
            content = delta.get("content") if isinstance(delta, dict) else None
            if isinstance(content, str) and content:
                yield content


def _error_message(data: Any) -> str:
    """The message of an error body: OpenAI's {"error": {"message"}}, or the shapes other servers use."""
    if isinstance(data, dict):
        error = data.get("error", data.get("detail"))
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(error, str):
            return error
    return json.dumps(data)[:300]


def _server_message(content: bytes) -> str:
    try:
        return _error_message(json.loads(content))
    except ValueError:
        return content[:300].decode(errors="replace").strip() or "(no body)"


def _retry_after(response: httpx.Response) -> float | None:
    """A numeric Retry-After, capped; the HTTP-date form is ignored for the exponential backoff."""
    try:
        return min(max(float(response.headers.get("retry-after", "")), 0.0), MAX_RETRY_AFTER)
    except ValueError:
        return None
