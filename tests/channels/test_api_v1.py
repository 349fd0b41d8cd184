"""`/api/v1` as another server calls it: a real Bot (a two-intent project trained in seconds) on the suite's real
Redis, served in-process over ASGI, every answer checked against the OpenAPI document the API publishes."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from openapi_spec_validator import validate
from starlette.applications import Starlette
from starlette.routing import Route

from bot.channels.api_keys import ApiKeys
from bot.channels.api_v1 import ApiV1Channel
from bot.channels.base import TurnHandler
from bot.channels.openapi import openapi_schema
from bot.channels.transcript import transcript
from bot.errors import ConfigError
from bot.events import BotUttered, FeedbackGiven, UserUttered
from bot.runtime import Bot, BotAnswer
from bot.settings import Settings
from bot.trace import PartialSink
from bot.types import Button, Message, Reply
from bot.wiring import Project, WiredParts, build_parts, open_project, session_store, train
from tests.project.helpers import write_project

pytestmark = pytest.mark.integration

KEY = "k-0123456789abcdef0123"
CRM_KEY = "crm-secret-9876543210abcdef"
MAX_CHARS = 200
GREETING = "Hello! How can I help?"
MESSAGES = "/api/v1/conversations/{conversation_id}/messages"
FEEDBACK = "/api/v1/conversations/{conversation_id}/feedback"
TRACE = "/api/v1/traces/{trace_id}"

PROJECT = {
    "domain.yml": """\
        version: "3.1"
        intents:
          - greet
          - thank
        responses:
          utter_greet:
            - text: "Hello! How can I help?"
              buttons:
                - title: "Orders"
                  payload: "/greet"
          utter_thank:
            - text: "You're welcome."
        """,
    "data/nlu.yml": """\
        version: "3.1"
        nlu:
          - intent: greet
            examples: |
              - hello
              - hi
              - hey there
              - good morning
              - 你好
          - intent: thank
            examples: |
              - thanks
              - thank you
              - thanks a lot
              - 谢谢
              - 多谢
        """,
    "data/rules.yml": """\
        version: "3.1"
        rules:
          - rule: greet
            steps:
              - intent: greet
              - action: utter_greet
          - rule: thank
            steps:
              - intent: thank
              - action: utter_thank
        """,
    "kefu.yml": """\
        nlu:
          dense_features: false
          epochs: 5
        generator:
          backend: none
        dialogue:
          ml_policy: false
        safety:
          audit: false
        """,
}


@pytest.fixture(scope="module")
def wired(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, WiredParts]:
    """The tiny project trained and warmed once; each test gets its own Bot and Redis client over it."""
    root = tmp_path_factory.mktemp("api-bot")
    write_project(root, PROJECT)
    settings = Settings(data_dir=root / ".kefu")
    project = open_project(root, settings)
    train(project, progress=False, parts=("nlu",))
    parts = build_parts(project, settings)
    for warm_up in parts.warm_ups:
        warm_up()
    return project, parts


@pytest.fixture
async def bot(wired: tuple[Project, WiredParts], redis_target: str) -> AsyncIterator[Bot]:
    project, parts = wired
    store, _ = session_store(project, Settings(data_dir=project.data_dir, redis_url=redis_target))
    yield Bot(parts.parts, store, max_message_chars=MAX_CHARS)
    await store.close()


def handler_for(bot: Bot) -> TurnHandler:
    """The turn handler as bot/server.py passes it to channels."""

    async def on_message(message: Message, on_partial: PartialSink | None = None) -> BotAnswer:
        return await bot.handle(message, on_partial=on_partial)

    return on_message


def app_for(bot: Bot, keys: ApiKeys, handler: TurnHandler | None = None) -> Starlette:
    return Starlette(routes=ApiV1Channel(bot, keys).routes(handler or handler_for(bot)))


@pytest.fixture
async def api(bot: Bot) -> AsyncIterator[httpx.AsyncClient]:
    """A client with a valid key on a server with two keys, one named."""
    keys = ApiKeys([KEY, f"crm:{CRM_KEY}"])
    transport = httpx.ASGITransport(app=app_for(bot, keys))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://kefu.test", headers={"Authorization": f"Bearer {KEY}"}
    ) as client:
        yield client


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    """The document the API serves (a test below checks that it serves this one)."""
    return openapi_schema()


def conforms(spec: dict[str, Any], template: str, method: str, response: httpx.Response) -> None:
    """The response body is valid against the schema the document gives for this path, method and status."""
    answer = spec["paths"][template][method]["responses"][str(response.status_code)]
    if "$ref" in answer:
        answer = spec["components"]["responses"][answer["$ref"].rsplit("/", 1)[1]]
    schema = answer["content"]["application/json"]["schema"]
    jsonschema.validate(response.json(), {**schema, "components": spec["components"]})


def cid() -> str:
    return f"crm-{uuid.uuid4().hex[:12]}"


def sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


async def say(api: httpx.AsyncClient, conversation_id: str, text: str, **extra: Any) -> httpx.Response:
    return await api.post(MESSAGES.format(conversation_id=conversation_id), json={"text": text, **extra})


# --- the document ---


def test_the_schema_is_valid_openapi_3_1_and_describes_every_route(spec: dict[str, Any], bot: Bot) -> None:
    validate(spec)
    assert spec["openapi"].startswith("3.1")
    routes = ApiV1Channel(bot, ApiKeys()).routes(handler_for(bot))
    served = {(r.path, m.lower()) for r in routes if isinstance(r, Route) for m in r.methods or () if m != "HEAD"}
    described = {(path, method) for path, item in spec["paths"].items() for method in item if method != "parameters"}
    assert served == described
    for path, method in described - {("/api/v1/openapi.json", "get"), ("/api/v1/docs", "get")}:
        assert {"401", "403"} <= set(spec["paths"][path][method]["responses"]), (path, method)
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"]["scheme"] == "bearer" and schemes["apiKeyHeader"]["name"] == "X-API-Key"


async def test_openapi_json_is_served_without_a_key_even_when_the_api_is_off(bot: Bot, spec: dict[str, Any]) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app_for(bot, ApiKeys())), base_url="http://t") as c:
        response = await c.get("/api/v1/openapi.json")
        assert response.status_code == 200 and response.json() == spec
        docs = await c.get("/api/v1/docs")
    assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
    for path in spec["paths"]:
        assert path in docs.text
    assert "curl" in docs.text and "Bearer $KEFU_API_KEY" in docs.text and "http://t/api/v1/" in docs.text
    assert "密钥" in docs.text and "API key" in docs.text
    assert "<script" not in docs.text and "https://" not in docs.text  # self-contained, works offline


# --- keys ---


async def test_without_keys_every_call_is_refused_with_403(bot: Bot, spec: dict[str, Any]) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app_for(bot, ApiKeys())), base_url="http://t") as c:
        response = await c.post("/api/v1/conversations/c1/messages", json={"text": "hello"}, headers={"X-API-Key": "x"})
        assert response.status_code == 403
        assert "KEFU_API_KEYS" in response.json()["error"]
        conforms(spec, MESSAGES, "post", response)
        assert (await c.get("/api/v1/traces/abc")).status_code == 403


async def test_a_missing_or_wrong_key_is_401_saying_how_to_send_one(
    api: httpx.AsyncClient, spec: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "wrong-key-that-must-not-come-back"
    for headers in ({"Authorization": ""}, {"Authorization": f"Bearer {wrong}"}, {"X-API-Key": wrong}):
        response = await api.get(MESSAGES.format(conversation_id="c1"), headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"].startswith("Bearer")
        error = response.json()["error"]
        assert "Authorization: Bearer" in error and "X-API-Key" in error
        assert wrong not in response.text
        conforms(spec, MESSAGES, "get", response)
    basic = await api.get(MESSAGES.format(conversation_id="c1"), headers={"Authorization": f"Basic {KEY}"})
    assert basic.status_code == 401  # only the bearer scheme carries a key
    assert wrong not in caplog.text and KEY not in caplog.text


async def test_bearer_and_x_api_key_are_both_accepted_and_logs_name_the_caller(
    api: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="bot.channels.api_v1")
    conversation = cid()
    assert (await say(api, conversation, "hello")).status_code == 200
    path = MESSAGES.format(conversation_id=conversation)
    assert (await api.get(path, headers={"Authorization": f"bearer {CRM_KEY}"})).status_code == 200
    assert (await api.get(path, headers={"Authorization": "", "X-API-Key": CRM_KEY})).status_code == 200
    assert (await api.get(path, headers={"X-API-Key": ""})).status_code == 200  # an empty header: the bearer counts
    assert "list_messages by crm" in caplog.text and "send_message by key-1" in caplog.text
    assert CRM_KEY not in caplog.text and KEY not in caplog.text


def test_keys_come_from_the_environment_and_a_file(tmp_path: Path) -> None:
    file = tmp_path / "keys.txt"
    file.write_text("# partners\nshop:shop-key-0123456789abcdef\n\n  plain-key-0123456789abcdef  \n", "utf-8")
    keys = ApiKeys.from_env({"KEFU_API_KEYS": f" crm:{CRM_KEY}, {KEY} ,", "KEFU_API_KEYS_FILE": str(file)})
    assert keys.names == ("crm", "key-2", "shop", "key-4")
    assert keys.caller(CRM_KEY) == "crm" and keys.caller(KEY) == "key-2"
    assert keys.caller("shop-key-0123456789abcdef") == "shop"
    assert keys.caller("plain-key-0123456789abcdef") == "key-4"
    assert keys.caller("") is None and keys.caller("crm:" + CRM_KEY) is None and keys.caller(KEY[:-1]) is None
    assert CRM_KEY not in repr(keys)
    assert not ApiKeys.from_env({}).enabled and not ApiKeys.from_env({"KEFU_API_KEYS": " , "}).enabled
    assert ApiKeys.from_file(file).names == ("shop", "key-2")
    with pytest.raises(ConfigError, match="KEFU_API_KEYS_FILE"):
        ApiKeys.from_env({"KEFU_API_KEYS_FILE": str(tmp_path / "missing.txt")})
    with pytest.raises(ConfigError, match="'crm' is empty"):
        ApiKeys(["crm:"])


# --- messages, history, feedback, traces ---


async def test_a_message_gets_the_bot_replies_and_a_retry_gets_none(
    api: httpx.AsyncClient, spec: dict[str, Any]
) -> None:
    conversation = cid()
    response = await say(api, conversation, "hello", message_id="m-1", metadata={"ticket": 42})
    assert response.status_code == 200
    conforms(spec, MESSAGES, "post", response)
    body = response.json()
    assert body["conversation_id"] == conversation and body["duplicate"] is False
    [reply] = body["replies"]
    assert reply["text"] == GREETING and reply["buttons"] == [{"title": "Orders", "payload": "/greet"}]
    assert reply["id"] and reply["trace_id"] and reply["handoff"] is False
    again = await say(api, conversation, "hello", message_id="m-1")
    assert again.json() == {"conversation_id": conversation, "replies": [], "duplicate": True}


async def test_history_pages_by_seq_and_never_repeats(api: httpx.AsyncClient, bot: Bot, spec: dict[str, Any]) -> None:
    conversation = cid()
    path = MESSAGES.format(conversation_id=conversation)
    assert (await api.get(path)).status_code == 404
    first = (await say(api, conversation, "hello")).json()["replies"][0]
    response = await api.get(path)
    conforms(spec, MESSAGES, "get", response)
    messages = response.json()["messages"]
    assert [(m["role"], m["text"]) for m in messages] == [("user", "hello"), ("bot", GREETING)]
    assert messages[1]["id"] == first["id"] and response.json()["has_more"] is False
    last = messages[-1]["seq"]
    assert (await api.get(path, params={"after": last})).json()["messages"] == []
    await say(api, conversation, "thanks")
    newer = (await api.get(path, params={"after": last})).json()["messages"]
    assert [m["role"] for m in newer] == ["user", "bot"] and newer[0]["text"] == "thanks"
    assert all(m["seq"] > last for m in newer)
    page = (await api.get(path, params={"limit": 1})).json()
    assert len(page["messages"]) == 1 and page["has_more"] is True
    for bad in ({"after": "x"}, {"after": -2}, {"limit": 0}, {"limit": 501}):
        refused = await api.get(path, params=bad)
        assert refused.status_code == 400 and next(iter(bad)) in refused.json()["error"]
        conforms(spec, MESSAGES, "get", refused)


async def test_feedback_on_a_real_reply_and_csat_are_recorded(
    api: httpx.AsyncClient, bot: Bot, spec: dict[str, Any]
) -> None:
    conversation = cid()
    reply_id = (await say(api, conversation, "hello")).json()["replies"][0]["id"]
    path = FEEDBACK.format(conversation_id=conversation)
    thumbs = await api.post(path, json={"reply_id": reply_id, "rating": -1, "comment": "太慢了"})
    assert thumbs.status_code == 200 and thumbs.json() == {"recorded": True}
    conforms(spec, FEEDBACK, "post", thumbs)
    csat = await api.post(path, json={"csat": 5})
    assert csat.status_code == 200
    recorded = [e for e in await bot.store.history(conversation) if isinstance(e, FeedbackGiven)]
    assert [(e.kind, e.rating, e.reply_id, e.comment) for e in recorded] == [
        ("thumbs", -1, reply_id, "太慢了"),
        ("csat", 5, "", ""),
    ]
    unknown = await api.post(path, json={"reply_id": "not-a-reply", "rating": 1})
    assert unknown.status_code == 404 and "not-a-reply" in unknown.json()["error"]  # well-formed, names nothing
    conforms(spec, FEEDBACK, "post", unknown)
    for bad in ({"rating": 1}, {"reply_id": reply_id, "rating": 2}, {"csat": 6}, {"csat": "5"}, {"stars": 5},
                {"csat": 4, "reply_id": reply_id, "rating": 1}):  # fmt: skip
        assert (await api.post(path, json=bad)).status_code == 400, bad
    nobody = await api.post(FEEDBACK.format(conversation_id=cid()), json={"csat": 4})
    assert nobody.status_code == 404
    conforms(spec, FEEDBACK, "post", nobody)


async def test_a_turn_trace_is_served_while_the_process_keeps_it(api: httpx.AsyncClient, spec: dict[str, Any]) -> None:
    trace_id = (await say(api, cid(), "hello")).json()["replies"][0]["trace_id"]
    response = await api.get(TRACE.format(trace_id=trace_id))
    assert response.status_code == 200
    conforms(spec, TRACE, "get", response)
    trace = response.json()
    assert trace["trace_id"] == trace_id and trace["nlu"]["intent"] == "greet"
    assert trace["decisions"][0]["action"] == "utter_greet" and trace["total_ms"] > 0
    missing = await api.get(TRACE.format(trace_id="0" * 32))
    assert missing.status_code == 404
    conforms(spec, TRACE, "get", missing)


# --- streaming ---


async def test_stream_true_answers_server_sent_events_ending_in_done(
    api: httpx.AsyncClient, spec: dict[str, Any]
) -> None:
    response = await say(api, cid(), "hello", stream=True)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = sse(response.text)
    assert [name for name, _ in events] == ["message", "done"]
    reply_schema = {"$ref": "#/components/schemas/Reply", "components": spec["components"]}
    jsonschema.validate(events[0][1], reply_schema)
    assert events[0][1]["text"] == GREETING and events[-1] == ("done", {"duplicate": False})


async def test_partial_text_streams_before_the_replies(bot: Bot) -> None:
    async def generating(message: Message, on_partial: PartialSink | None = None) -> BotAnswer:
        assert on_partial is not None and message.channel == "api" and message.sender_id == message.conversation_id
        on_partial("r1", "The X1 ships ")
        on_partial("r1", "in two days.")
        return BotAnswer((Reply("The X1 ships in two days.", reply_id="r1", fact_ids=("faq:1",)),), None)

    transport = httpx.ASGITransport(app=app_for(bot, ApiKeys([KEY]), handler=generating))
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers={"X-API-Key": KEY}) as c:
        response = await c.post("/api/v1/conversations/c-1/messages", json={"text": "when?", "stream": True})
    events = sse(response.text)
    assert [name for name, _ in events] == ["partial", "partial", "message", "done"]
    assert events[0][1] == {"reply_id": "r1", "text": "The X1 ships "}
    assert events[2][1]["id"] == "r1" and events[2][1]["fact_ids"] == ["faq:1"]


async def test_recommended_questions_are_quick_replies_in_replies_streams_and_history(
    bot: Bot, spec: dict[str, Any]
) -> None:
    asked = Button("运费怎么收？", "运费怎么收？")

    async def recommending(message: Message, on_partial: PartialSink | None = None) -> BotAnswer:
        return BotAnswer((Reply("满 ¥99 包邮。", reply_id="r1", quick_replies=(asked,)),), None)

    transport = httpx.ASGITransport(app=app_for(bot, ApiKeys([KEY]), handler=recommending))
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers={"X-API-Key": KEY}) as c:
        sent = await c.post("/api/v1/conversations/c-1/messages", json={"text": "运费"})
        streamed = await c.post("/api/v1/conversations/c-1/messages", json={"text": "运费", "stream": True})
    conforms(spec, MESSAGES, "post", sent)
    shown = [{"title": "运费怎么收？", "payload": "运费怎么收？"}]
    assert sent.json()["replies"][0]["quick_replies"] == shown and sent.json()["replies"][0]["buttons"] == []
    [(_, message), _] = sse(streamed.text)
    jsonschema.validate(message, {"$ref": "#/components/schemas/Reply", "components": spec["components"]})
    assert message["quick_replies"] == shown

    said = [BotUttered(text="您好！", reply_id="b1", quick_replies=(asked,)), UserUttered(text=asked.payload)]
    entries = transcript(said)
    entry_schema = {"$ref": "#/components/schemas/TranscriptEntry", "components": spec["components"]}
    for entry in entries:
        jsonschema.validate(entry, entry_schema)
    assert entries[0]["quick_replies"] == shown and "buttons" not in entries[0]
    assert entries[1]["text"] == "运费怎么收？"


# --- bad input ---


async def test_bad_bodies_are_refused_with_what_is_wrong_and_an_example(
    api: httpx.AsyncClient, spec: dict[str, Any]
) -> None:
    path = MESSAGES.format(conversation_id=cid())
    cases = [
        (b"not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"text": 5}', '"text"'),
        (b'{"text": "  "}', '"text"'),
        (b'{"message": "hello"}', "unknown field"),
        (b'{"text": "hi", "stream": "yes"}', '"stream"'),
        (b'{"text": "hi", "metadata": [1]}', '"metadata"'),
        (b'{"text": "hi", "message_id": 7}', '"message_id"'),
    ]
    for body, says in cases:
        response = await api.post(path, content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, body
        error = response.json()["error"]
        assert says in error, (body, error)
        conforms(spec, MESSAGES, "post", response)
    assert '{"text": "你好"' in (await api.post(path, content=b"{")).json()["error"]  # an example to copy


async def test_oversized_bodies_and_messages_are_413(api: httpx.AsyncClient, spec: dict[str, Any]) -> None:
    path = MESSAGES.format(conversation_id=cid())
    huge = await api.post(path, json={"text": "x" * (65 * 1024)})
    assert huge.status_code == 413 and "65536" in huge.json()["error"]
    conforms(spec, MESSAGES, "post", huge)

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit holds while reading
        for _ in range(80):
            yield b" " * 1024

    streamed = await api.post(path, content=chunks())
    assert streamed.status_code == 413
    for stream in (False, True):
        long = await say(api, cid(), "a" * (MAX_CHARS + 1), stream=stream)
        assert long.status_code == 413 and f"the limit is {MAX_CHARS}" in long.json()["error"], stream
        conforms(spec, MESSAGES, "post", long)


async def test_conversation_ids_are_checked(api: httpx.AsyncClient, spec: dict[str, Any]) -> None:
    for bad in ("has space", "x" * 129, "semi;colon", "中文"):
        response = await api.post(MESSAGES.format(conversation_id=bad), json={"text": "hello"})
        assert response.status_code == 400 and "conversation id" in response.json()["error"], bad
        conforms(spec, MESSAGES, "post", response)
        assert (await api.get(MESSAGES.format(conversation_id=bad))).status_code == 400
    for good in ("user@shop.example", "wx:o6_bmjrPTlm6_2sgVt7hMZOPfL2M", "x" * 128):
        assert (await say(api, good, "hello")).status_code == 200, good


async def test_an_unreachable_store_is_503_without_its_address(
    wired: tuple[Project, WiredParts], tmp_path: Path, spec: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    project, parts = wired
    socket = tmp_path / "no-redis.sock"
    store, _ = session_store(project, Settings(data_dir=project.data_dir, redis_url=f"unix://{socket}"))
    bot = Bot(parts.parts, store)
    transport = httpx.ASGITransport(app=app_for(bot, ApiKeys([KEY])))
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers={"X-API-Key": KEY}) as c:
        response = await c.get(MESSAGES.format(conversation_id="c-1"))
        feedback = await c.post(FEEDBACK.format(conversation_id="c-1"), json={"csat": 3})
    await store.close()
    for answer, path, method in ((response, MESSAGES, "get"), (feedback, FEEDBACK, "post")):
        assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
        assert "no-redis" not in answer.text
        conforms(spec, path, method, answer)
    assert "no-redis" in caplog.text  # the operator sees where it looked
