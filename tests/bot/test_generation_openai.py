"""The OpenAI-compatible backend and server, end to end with real peers: the openai SDK, uvicorn, failing servers."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from bot.errors import GenerationError
from bot.generation.chat import ChatGenerator, Completion
from bot.generation.openai_http import OpenAIChat
from bot.generation.openai_server import openai_app
from bot.generation.prompts import ChatMessage, PromptBuilder
from bot.generation.transformers_lm import TransformersChat
from bot.protocols import DecodingParams, PromptContext
from bot.types import Fact
from tests.bot.openai_peers import (
    EchoChat,
    FailingChat,
    OneAtATime,
    SlowChat,
    completion_json,
    error_json,
    scripted,
    serve,
)

pytestmark = [pytest.mark.integration]
slow = pytest.mark.slow

KEY = "sk-kefu-test-0123456789"
MODEL = "kefu-smollm2"
ASK = "How long does express shipping take? Answer in one sentence."
QUESTION: list[ChatMessage] = [{"role": "user", "content": ASK}]
SDK_QUESTION: list[ChatCompletionMessageParam] = [{"role": "user", "content": ASK}]
FACT = Fact("faq_ship_express", "Express shipping takes 1-2 business days and costs ¥15.", "faq", 0.88, "faq:x", "en")
TOKENS = 12
GREEDY = DecodingParams(max_new_tokens=TOKENS, temperature=0.0)


@pytest.fixture(scope="module")
def local_url() -> Iterator[str]:
    """kefu's packaged model behind the OpenAI protocol, as `kefu serve generator` runs it."""
    model = TransformersChat()
    model.warm_up()
    with serve(openai_app(model, model_name=MODEL, api_key=KEY)) as url:
        yield f"{url}/v1"


@pytest.fixture(scope="module")
def sdk(local_url: str) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(base_url=local_url, api_key=KEY, max_retries=0, timeout=60)
    yield client
    client.close()


@pytest.fixture(scope="module")
def remote(local_url: str) -> Iterator[OpenAIChat]:
    chat = OpenAIChat(local_url, MODEL, api_key=KEY, timeout=60)
    yield chat
    chat.close()


@pytest.fixture(scope="module")
def echo() -> Iterator[tuple[str, EchoChat]]:
    model = EchoChat()
    with serve(openai_app(model, model_name="echo", max_body_bytes=2000)) as url:
        yield f"{url}/v1", model


@pytest.fixture(scope="module")
def greedy(remote: OpenAIChat) -> Completion:
    """The greedy answer to QUESTION, through OpenAIChat: the reference the other answers are compared with."""
    [whole] = remote.complete(QUESTION, params=GREEDY)
    return whole


# --- the official SDK against our server ---


@slow
def test_sdk_gets_an_answer_in_openai_shape(sdk: openai.OpenAI, greedy: Completion) -> None:
    response = sdk.chat.completions.create(model=MODEL, messages=SDK_QUESTION, max_tokens=TOKENS, temperature=0)
    assert response.id.startswith("chatcmpl-") and response.object == "chat.completion" and response.model == MODEL
    [choice] = response.choices
    assert choice.index == 0 and choice.message.role == "assistant" and choice.message.content == greedy.text
    assert choice.finish_reason == greedy.finish_reason
    assert response.usage is not None and response.usage.prompt_tokens == greedy.prompt_tokens > 10
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens
    assert [m.id for m in sdk.models.list()] == [MODEL]


@slow
def test_sdk_stream_joins_to_the_greedy_answer(sdk: openai.OpenAI, greedy: Completion) -> None:
    stream = sdk.chat.completions.create(
        model=MODEL, messages=SDK_QUESTION, max_tokens=TOKENS, temperature=0, stream=True
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == greedy.finish_reason
    pieces = [c.choices[0].delta.content or "" for c in chunks]
    assert len(pieces) > 4 and "".join(pieces) == greedy.text


@slow
def test_sdk_n_samples_and_max_tokens_cut(sdk: openai.OpenAI) -> None:
    sampled = sdk.chat.completions.create(
        model=MODEL, messages=SDK_QUESTION, n=2, max_tokens=4, temperature=0.9, seed=3
    )
    assert [c.index for c in sampled.choices] == [0, 1] and all(c.message.content for c in sampled.choices)
    story: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Write a long story about a dragon."}]
    cut = sdk.chat.completions.create(model=MODEL, messages=story, max_completion_tokens=3, temperature=0)
    assert cut.choices[0].finish_reason == "length" and cut.usage is not None and cut.usage.completion_tokens <= 3


@slow
def test_sdk_sees_auth_and_request_errors(local_url: str) -> None:
    # no model call is made: auth and validation come first
    with (
        openai.OpenAI(base_url=local_url, api_key="sk-wrong", max_retries=0) as wrong,
        pytest.raises(openai.AuthenticationError) as refused,
    ):
        wrong.chat.completions.create(model=MODEL, messages=SDK_QUESTION)
    assert refused.value.code == "invalid_api_key"
    with openai.OpenAI(base_url=local_url, api_key=KEY, max_retries=0) as client:
        with pytest.raises(openai.BadRequestError) as bad:
            client.chat.completions.create(model=MODEL, messages=SDK_QUESTION, temperature=7)
        assert bad.value.param == "temperature" and "temperature" in bad.value.message
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model=MODEL, messages=[])


# --- OpenAIChat against our server over the local model ---


@slow
def test_remote_complete_stream_and_n(remote: OpenAIChat, greedy: Completion) -> None:
    pieces = list(remote.stream_chat(QUESTION, params=GREEDY))
    assert greedy.text and len(pieces) > 4 and "".join(pieces) == greedy.text
    assert greedy.prompt_tokens > 10 and 0 < greedy.completion_tokens <= TOKENS
    sampled = remote.complete(QUESTION, n=2, params=DecodingParams(max_new_tokens=4, temperature=0.9, seed=5))
    assert len(sampled) == 2 and all(c.text for c in sampled)


@slow
def test_remote_stop_sequences_cut_also_past_the_fourth(remote: OpenAIChat, greedy: Completion) -> None:
    word = greedy.text.split()[2]  # the server is sent only four stops: the fifth is cut here
    params = replace(GREEDY, stop=("<zz1>", "<zz2>", "<zz3>", "<zz4>", word))
    [cut] = remote.complete(QUESTION, params=params)
    assert cut.text == greedy.text[: greedy.text.index(word)].strip() != greedy.text and cut.finish_reason == "stop"
    assert "".join(remote.stream_chat(QUESTION, params=params)) == cut.text


@slow
def test_chat_generator_over_the_remote_model_keeps_fact_ids(remote: OpenAIChat) -> None:
    generator = ChatGenerator(remote, PromptBuilder(brand="KeFu Shop"))
    context = PromptContext("How long does express shipping take?", (FACT,), "en")
    [candidate] = generator.generate(context, params=DecodingParams(max_new_tokens=12))
    assert candidate.text and candidate.fact_ids == ("faq_ship_express",) and candidate.generator == f"openai:{MODEL}"


# --- the server's protocol over a small model ---


def test_decoding_parameters_travel_unchanged(echo: tuple[str, EchoChat]) -> None:
    url, model = echo
    params = DecodingParams(
        max_new_tokens=9,
        temperature=0.0,
        top_p=0.8,
        repetition_penalty=1.2,
        frequency_penalty=0.5,
        presence_penalty=-0.5,
        stop=("<1>", "<2>", "<3>", "<4>"),
        seed=11,
    )
    with OpenAIChat(url, "echo") as remote:
        completions = remote.complete([{"role": "user", "content": "x y"}], n=2, params=params)
    assert [c.text for c in completions] == ["echo: x y"] * 2  # greedy: one answer, given twice
    assert model.params[-1] == params


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b'"a string"', None),
        (b'{"model": "echo"}', "messages"),
        (b'{"messages": [{"role": "tool", "content": "x"}]}', "messages[0].role"),
        (b'{"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}', "messages[0].content"),
        (b'{"messages": [{"role": ["user"], "content": "x"}]}', "messages[0].role"),
        (b'{"messages": [{"role": "user", "content": "x"}], "n": true}', "n"),
        (b'{"messages": [{"role": "user", "content": "x"}], "n": 0}', "n"),
        (b'{"messages": [{"role": "user", "content": "x"}], "top_p": 0}', "top_p"),
        (b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": "9"}', "max_tokens"),
        (b'{"messages": [{"role": "user", "content": "x"}], "stop": ["1", "2", "3", "4", "5"]}', "stop"),
        (b'{"messages": [{"role": "user", "content": "x"}], "stream": true, "n": 2}', "n"),
    ],
)
def test_invalid_requests_get_400_in_openai_format(echo: tuple[str, EchoChat], body: bytes, param: str | None) -> None:
    response = httpx.post(f"{echo[0]}/chat/completions", content=body)
    error = response.json()["error"]
    assert response.status_code == 400 and error["type"] == "invalid_request_error" and error["param"] == param
    assert error["message"] and set(error) == {"message", "type", "param", "code"}


def test_oversized_bodies_and_unknown_paths_get_openai_errors(echo: tuple[str, EchoChat]) -> None:
    big = {"messages": [{"role": "user", "content": "x" * 3000}]}
    too_large = httpx.post(f"{echo[0]}/chat/completions", json=big)
    assert too_large.status_code == 413 and "2000 bytes" in too_large.json()["error"]["message"]
    chunked = httpx.post(f"{echo[0]}/chat/completions", content=iter([json.dumps(big).encode()]))
    assert chunked.status_code == 413  # no Content-Length: counted while reading
    missing = httpx.get(f"{echo[0]}/nothing")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "invalid_request_error"


def test_text_parts_and_developer_role_are_accepted(echo: tuple[str, EchoChat]) -> None:
    messages: list[ChatCompletionMessageParam] = [
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "first"}, {"type": "text", "text": "second"}]},
    ]
    with openai.OpenAI(base_url=echo[0], api_key="unused", max_retries=0) as client:
        response = client.chat.completions.create(model="echo", messages=messages, stop="zz")
    assert response.choices[0].message.content == "echo: first\nsecond"
    assert echo[1].params[-1].stop == ("zz",) and echo[1].params[-1].temperature == 1.0  # OpenAI's default


def test_model_failures_become_generic_500s(caplog: pytest.LogCaptureFixture) -> None:
    with (
        serve(openai_app(FailingChat(), model_name="f")) as url,
        openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0) as client,
    ):
        with pytest.raises(openai.InternalServerError) as failed:
            client.chat.completions.create(model="f", messages=SDK_QUESTION)
        with pytest.raises(openai.InternalServerError):  # fails before its first piece: a plain 500 too
            client.chat.completions.create(model="f", messages=SDK_QUESTION, stream=True)
    assert "/secret/path" not in str(failed.value.body) and "the model failed" in failed.value.message
    assert "out of memory" in caplog.text  # the detail goes to the log


def test_a_failure_midstream_is_an_error_event() -> None:
    with serve(openai_app(SlowChat(delay=0.01, fail_after=2), model_name="s")) as url:
        with openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0) as client:
            stream = client.chat.completions.create(model="s", messages=SDK_QUESTION, stream=True)
            with pytest.raises(openai.APIError, match="the model failed"):
                list(stream)
        with OpenAIChat(f"{url}/v1", "s", retries=0) as remote, pytest.raises(GenerationError, match="streaming"):
            list(remote.stream_chat(QUESTION))


def test_a_long_generation_does_not_stall_other_requests() -> None:
    with serve(openai_app(SlowChat(delay=0.3), model_name="s")) as url:
        with OpenAIChat(f"{url}/v1", "s") as remote:
            pieces: list[str] = []
            streaming = threading.Thread(target=lambda: pieces.extend(remote.stream_chat(QUESTION)))
            streaming.start()
            time.sleep(0.1)
            started = time.monotonic()
            assert httpx.get(f"{url}/v1/models").json()["data"][0]["id"] == "s"
            assert time.monotonic() - started < 0.25
            streaming.join(10)
        assert "".join(pieces) == "piece0 piece1 piece2 piece3 piece4"


def test_a_client_that_leaves_stops_the_decoding() -> None:
    model = SlowChat(delay=0.2)
    with serve(openai_app(model, model_name="s")) as url:
        body = {"model": "s", "messages": QUESTION, "stream": True}
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
            assert next(response.iter_lines()).startswith("data: ")  # the first piece came
        assert model.closed.wait(3) and model.produced < 5


def test_sampling_a_model_that_ignores_n_asks_again() -> None:
    model = OneAtATime()
    with serve(openai_app(model, model_name="o")) as url, OpenAIChat(f"{url}/v1", "o") as remote:
        sampled = remote.complete(QUESTION, n=3, params=DecodingParams(temperature=0.5, seed=4))
        greedy = remote.complete(QUESTION, n=2, params=DecodingParams(temperature=0.0, seed=9))
    assert [c.text for c in sampled] == ["seed 4", "seed 5", "seed 6"] and len(model.params) == 4
    assert [c.text for c in greedy] == ["seed 9"] * 2  # greedy: the one answer, repeated


def test_concurrent_calls_share_one_client(echo: tuple[str, EchoChat]) -> None:
    with OpenAIChat(echo[0], "echo") as remote, ThreadPoolExecutor(6) as pool:
        texts = list(pool.map(lambda i: remote.complete([{"role": "user", "content": str(i)}])[0].text, range(24)))
    assert texts == [f"echo: {i}" for i in range(24)]


# --- OpenAIChat against failing peers ---


async def _ok(i: int, body: Any, request: Request) -> Response:
    return completion_json("fine")


def test_retries_a_503_then_succeeds() -> None:
    async def flaky(i: int, body: Any, request: Request) -> Response:
        return error_json(503, "warming up") if i == 0 else completion_json(" fine ", usage=(5, 3))

    app, seen = scripted(flaky)
    with serve(app) as url, OpenAIChat(f"{url}/v1", "m", backoff=0.01) as remote:
        assert remote.complete(QUESTION) == [Completion("fine", "stop", 5, 3)]  # stripped, with usage
    assert seen.count == 2


def test_honours_retry_after_on_429() -> None:
    async def limited(i: int, body: Any, request: Request) -> Response:
        return error_json(429, "slow down", {"Retry-After": "0.3"}) if i == 0 else completion_json("ok")

    app, seen = scripted(limited)
    with serve(app) as url, OpenAIChat(f"{url}/v1", "m", backoff=0.0) as remote:
        started = time.monotonic()
        assert remote.complete(QUESTION)[0].text == "ok"
    assert seen.count == 2 and time.monotonic() - started >= 0.3


def test_gives_up_after_the_retries() -> None:
    async def broken(i: int, body: Any, request: Request) -> Response:
        return error_json(500, "boom")

    app, seen = scripted(broken)
    with (
        serve(app) as url,
        OpenAIChat(f"{url}/v1", "m", retries=2, backoff=0.01) as remote,
        pytest.raises(GenerationError) as failed,
    ):
        remote.complete(QUESTION)
    assert seen.count == 3 and "HTTP 500: boom" in str(failed.value) and "3 attempts" in str(failed.value)


def test_a_client_error_is_not_retried() -> None:
    async def rejecting(i: int, body: Any, request: Request) -> Response:
        return error_json(404, "The model `m` does not exist.")

    app, seen = scripted(rejecting)
    with (
        serve(app) as url,
        OpenAIChat(f"{url}/v1", "m", backoff=0.01) as remote,
        pytest.raises(GenerationError, match=r"does not exist.*check generator\.base_url"),
    ):
        remote.complete(QUESTION)
    assert seen.count == 1


def test_a_slow_server_times_out_quickly() -> None:
    async def sluggish(i: int, body: Any, request: Request) -> Response:
        for _ in range(100):  # until the client gives up
            if await request.is_disconnected():
                break
            await asyncio.sleep(0.05)
        return completion_json("too late")

    app, seen = scripted(sluggish)
    with serve(app) as url, OpenAIChat(f"{url}/v1", "m", timeout=0.3, retries=1, backoff=0.01) as remote:
        started = time.monotonic()
        with pytest.raises(GenerationError, match=r"did not answer within 0\.3 s"):
            remote.complete(QUESTION)
        assert time.monotonic() - started < 2
    assert seen.count == 2


def test_an_unreachable_server_is_named() -> None:
    with serve(scripted(_ok)[0]) as url:
        pass  # the port is free again
    with (
        OpenAIChat(f"{url}/v1", "m", retries=1, backoff=0.01) as remote,
        pytest.raises(GenerationError, match=r"cannot be reached.*2 attempts"),
    ):
        remote.complete(QUESTION)


def test_a_refused_key_is_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    async def refusing(i: int, body: Any, request: Request) -> Response:
        # the worst case: a server that echoes the key it refused
        return error_json(401, f"Incorrect API key provided: {request.headers['authorization']}")

    app, seen = scripted(refusing)
    caplog.set_level(logging.DEBUG)
    with (
        serve(app) as url,
        OpenAIChat(f"{url}/v1", "m", api_key=KEY) as remote,
        pytest.raises(GenerationError) as refused,
    ):
        remote.complete(QUESTION)
    assert seen.authorization == [f"Bearer {KEY}"]
    assert "KEFU_GENERATOR_API_KEY" in str(refused.value) and "HTTP 401" in str(refused.value)
    assert KEY not in str(refused.value) and KEY not in caplog.text


@pytest.mark.parametrize(
    ("reply", "match"),
    [
        (Response("not json{", media_type="application/json"), "invalid JSON"),
        (Response('{"choices": []}', media_type="application/json"), "without choices"),
        (Response('{"choices": [{"message": {"content": 5}}]}', media_type="application/json"), "without text"),
    ],
)
def test_malformed_answers_are_errors(reply: Response, match: str) -> None:
    async def malformed(i: int, body: Any, request: Request) -> Response:
        return reply

    with (
        serve(scripted(malformed)[0]) as url,
        OpenAIChat(f"{url}/v1", "m") as remote,
        pytest.raises(GenerationError, match=match),
    ):
        remote.complete(QUESTION)


def test_a_server_that_ignores_n_is_asked_again() -> None:
    async def ollama(i: int, body: Any, request: Request) -> Response:
        return completion_json(f"answer {body['seed']}", finish="length")

    app, seen = scripted(ollama)
    params = DecodingParams(max_new_tokens=8, temperature=0.7, seed=7)
    with serve(app) as url, OpenAIChat(f"{url}/v1", "m") as remote:
        completions = remote.complete(QUESTION, n=3, params=params)
    assert [c.text for c in completions] == ["answer 7", "answer 8", "answer 9"]
    assert [c.finish_reason for c in completions] == ["length"] * 3
    assert [(b["n"], b["seed"]) for b in seen.bodies] == [(3, 7), (2, 8), (1, 9)]


SSE = [
    b": connected\n\n",
    b'data: {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}\n\n',
    b": keep-alive\n\n\n",
    b'data: {"choices": [{"index": 0, "delta": {"content": "  Hel"}}]}\r\n\r\n',
    b'event: message\nid: 3\ndata: {"choices": [{"index": 0, "de',  # split inside a line
    b'lta": {"content": "lo wor"}}]}\n\n',
    b"data:\n\n",
    b'data:{"choices": [{"index": 0, "delta": {"content": "ld STOP more"}, "finish_reason": null}]}\n\n',
    b'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}\n\n',
    b'data: {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}}\n\n',
    b"data: [DONE]\n\n",
]


def test_server_sent_events_with_comments_and_keep_alives() -> None:
    async def events(i: int, body: Any, request: Request) -> Response:
        if i == 0:  # a failure before the first piece is retried
            return error_json(502, "bad gateway")
        assert body["stream"] is True

        async def parts() -> Any:
            for part in SSE:
                yield part
                await asyncio.sleep(0.01)

        return StreamingResponse(parts(), media_type="text/event-stream")

    app, seen = scripted(events)
    with serve(app) as url, OpenAIChat(f"{url}/v1", "m", backoff=0.01) as remote:
        assert "".join(remote.stream_chat(QUESTION)) == "Hello world STOP more"
        assert "".join(remote.stream_chat(QUESTION, params=DecodingParams(stop=("STOP",)))) == "Hello world"
    assert seen.count == 3
