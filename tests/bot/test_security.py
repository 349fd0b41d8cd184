"""Security of the whole app (`bot/server.py`'s create_app over a real Bot and the suite's real Redis): every
operator and admin route refuses without credentials, per-user rate limits in every channel, CORS for the
customer-facing APIs and the widget's socket, request body limits, and secrets from files that never reach a log."""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from bot.channels.api_keys import ApiKeys
from bot.channels.openapi import openapi_schema
from bot.channels.wechat import WeChatSettings
from bot.errors import ConfigError
from bot.server import create_app
from bot.sessions.rate_limit import RateLimiter
from bot.settings import Settings
from bot.wiring import Project, build_runtime, open_project, train
from tests.project.helpers import write_project

pytestmark = pytest.mark.integration

ADMIN_TOKEN = "admin-token-5f1c9a7e3b2d8c40"
API_KEY = "api-key-0c9e8d7b6a5f4e3d2c1b"
WECHAT_TOKEN = "wechat-token-9a8b7c6d5e"
WECOM_TOKEN = "wecom-token-1f2e3d4c5b"
AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
SECRETS = (ADMIN_TOKEN, API_KEY, WECHAT_TOKEN, WECOM_TOKEN, AES_KEY)
BASE = "http://kefu.test"
JSON = {"Content-Type": "application/json"}

# Routes anyone may call. Every other route must refuse a caller without credentials: a new route that forgets
# its guard fails test_every_route_but_the_public_ones_refuses_without_credentials.
PUBLIC = {
    "/health",
    "/",  # the widget's demo page
    "/widget/kefu-widget.js",
    "/ws",  # the widget: a customer has no account
    "/webhooks/rest/webhook",  # Rasa's REST channel: customer-facing, as in Rasa
    "/webhooks/rest/stream",
    "/webhooks/rest/feedback",
    "/api/v1/openapi.json",
    "/api/v1/docs",
    "/console",  # the console's pages and assets are static shells; their data comes from the guarded API
    "/console/login",
    "/console/analytics",
    "/console/assets/{name}",
    "/console/api/login",
    "/console/api/logout",
}
SIGNED = {"/wechat", "/wecom"}  # the platforms sign every callback: unsigned ones are refused

PROJECT = {
    "domain.yml": """\
        version: "3.1"
        intents: [greet, thank]
        responses:
          utter_greet:
            - text: "Hello! How can I help?"
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
              - good morning
              - 你好
              - 您好
          - intent: thank
            examples: |
              - thanks
              - thank you
              - 谢谢
              - 多谢
        """,
    "data/rules.yml": """\
        version: "3.1"
        rules:
          - rule: greet
            steps: [{intent: greet}, {action: utter_greet}]
          - rule: thank
            steps: [{intent: thank}, {action: utter_thank}]
        """,
    "kefu.yml": """\
        nlu: {dense_features: false, epochs: 5}
        generator: {backend: none}
        dialogue: {ml_policy: false}
        safety: {audit: false}
        """,
}

App = Callable[..., TestClient]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A two-intent bot trained in seconds: what is tested here is the app around it."""
    root = tmp_path_factory.mktemp("security-bot")
    write_project(root, PROJECT)
    opened = open_project(root, Settings(data_dir=root / ".kefu"))
    train(opened, progress=False, parts=("nlu",))
    return opened


@pytest.fixture
def app(project: Project, redis_target: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    """`app(address, **settings)`: a started app (lifespan run) with the admin token, an API key and WeChat and
    WeCom on, its requests coming from `address`."""
    for name, value in {
        "KEFU_API_KEYS": API_KEY, "KEFU_WECHAT_TOKEN": WECHAT_TOKEN, "KEFU_WECOM_TOKEN": WECOM_TOKEN,
        "KEFU_WECOM_AES_KEY": AES_KEY, "KEFU_WECOM_CORP_ID": "ww-test-corp",
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("KEFU_OPERATORS", raising=False)
    started: list[TestClient] = []

    def make(address: str = "testclient", **overrides: Any) -> TestClient:
        fields: dict[str, Any] = {"admin_token": ADMIN_TOKEN, "rate_limit": "off", "rate_limit_client": "off"}
        settings = Settings(data_dir=project.data_dir, redis_url=redis_target, **(fields | overrides))
        app = create_app(build_runtime(project, settings), settings)
        client = TestClient(app, base_url=BASE, client=(address, 50000))
        started.append(client.__enter__())
        return client

    yield make
    for client in started:
        client.__exit__(None, None, None)


def sample_path(template: str) -> str:
    return template.replace("{cid:path}", "c-1").replace("{conversation_id}", "c-1").replace("{trace_id}", "t-1")


# --- authentication ---


def test_every_route_but_the_public_ones_refuses_without_credentials(app: App) -> None:
    client = app()
    routes = client.app.routes  # type: ignore[attr-defined]
    paths = {route.path for route in routes}
    assert paths >= PUBLIC | SIGNED, f"listed as public but not served: {(PUBLIC | SIGNED) - paths}"
    checked = []
    for route in routes:
        if route.path in PUBLIC:
            continue
        if isinstance(route, WebSocketRoute):
            with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect(route.path) as socket:
                socket.receive_text()
            assert refused.value.code in (1008, 4401, 4403), route.path
            checked.append(route.path)
            continue
        assert isinstance(route, Route), route
        for method in sorted((route.methods or set()) - {"HEAD"}):
            answer = client.request(method, sample_path(route.path), json={})
            expected = (400, 403) if route.path in SIGNED else (401, 403)
            assert answer.status_code in expected, (method, route.path, answer.status_code, answer.text)
            checked.append(route.path)
    assert {"/admin/knowledge/reload", "/console/api/queue", "/console/ws", "/api/v1/traces/{trace_id}"} <= set(checked)


def test_wrong_credentials_are_refused_too(app: App) -> None:
    client = app()
    wrong = {"Authorization": "Bearer not-the-token", "X-API-Key": "not-a-key"}
    assert client.post("/admin/knowledge/reload", headers=wrong).status_code == 401
    assert client.get("/api/v1/traces/t-1", headers=wrong).status_code == 401
    answer = client.get("/console/api/queue", headers={"Cookie": "kefu_console=forged-session"})
    assert answer.status_code == 401


# --- rate limits ---


def retry_after(answer: Any) -> int:
    assert answer.status_code == 429, answer.text
    seconds = int(answer.headers["Retry-After"])
    assert 1 <= seconds <= 30  # 2 per 60 s: one message every 30 s once the burst is spent
    return seconds


def user_texts(client: TestClient, conversation_id: str) -> list[str]:
    history = client.get(f"/api/v1/conversations/{conversation_id}/messages", headers={"X-API-Key": API_KEY})
    return [m["text"] for m in history.json()["messages"] if m["role"] == "user"]


def test_a_user_over_the_rate_limit_gets_429_over_rest_and_the_api_and_nothing_is_stored(app: App) -> None:
    client = app(rate_limit="2/60")
    sender = f"rest-{uuid.uuid4().hex[:10]}"
    for text in ("hello", "thanks"):
        assert client.post("/webhooks/rest/webhook", json={"sender": sender, "message": text}).status_code == 200
    refused = client.post("/webhooks/rest/webhook", json={"sender": sender, "message": "hello again"})
    retry_after(refused)
    assert "wait" in refused.json()["error"] and "send again" in refused.json()["error"]
    retry_after(client.post("/webhooks/rest/stream", json={"sender": sender, "message": "hi"}))
    assert user_texts(client, sender) == ["hello", "thanks"]

    conversation = f"crm-{uuid.uuid4().hex[:10]}"
    send = f"/api/v1/conversations/{conversation}/messages"
    for text in ("hello", "thanks"):
        assert client.post(send, json={"text": text}, headers={"X-API-Key": API_KEY}).status_code == 200
    for body in ({"text": "hi"}, {"text": "hi", "stream": True}):
        refused = client.post(send, json=body, headers={"X-API-Key": API_KEY})
        retry_after(refused)
        assert set(refused.json()) == {"error"} and "send again" in refused.json()["error"]
    assert user_texts(client, conversation) == ["hello", "thanks"]
    spec = openapi_schema()["paths"]["/api/v1/conversations/{conversation_id}/messages"]["post"]["responses"]
    assert spec["429"] == {"$ref": "#/components/responses/TooManyMessages"}


def test_the_widget_gets_an_error_frame_in_the_users_language_and_keeps_its_connection(app: App) -> None:
    client = app(rate_limit="2/60")
    with client.websocket_connect("/ws") as socket:
        socket.send_json({"type": "hello", "conversation_id": None, "after": -1})
        conversation = socket.receive_json()["conversation_id"]
        socket.receive_json()
        for n, text in enumerate(("hello", "thanks", "你好")):
            socket.send_json({"type": "message", "id": f"m{n}", "text": text})
            frames = [socket.receive_json()]
            while frames[-1]["type"] != "done":
                frames.append(socket.receive_json())
        [error] = [frame for frame in frames if frame["type"] == "error"]
        assert error["id"] == "m2" and "秒后再试" in error["error"] and 1 <= error["retry_after"] <= 30
        assert [m for f in frames if f["type"] == "messages" for m in f["messages"]] == []  # nothing stored
        socket.send_json({"type": "hello", "conversation_id": conversation, "after": -1})
        assert socket.receive_json() == {"type": "welcome", "conversation_id": conversation}  # still open
        assert [m["text"] for m in socket.receive_json()["messages"] if m["role"] == "user"] == ["hello", "thanks"]


def wechat_post(client: TestClient, user: str, text: str, msg_id: str) -> str:
    timestamp, nonce = str(int(time.time())), "4242"
    signature = hashlib.sha1("".join(sorted([WECHAT_TOKEN, timestamp, nonce])).encode()).hexdigest()
    xml = (
        f"<xml><ToUserName><![CDATA[gh_shop]]></ToUserName><FromUserName><![CDATA[{user}]]></FromUserName>"
        f"<CreateTime>{timestamp}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{text}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    )
    query = {"signature": signature, "timestamp": timestamp, "nonce": nonce, "openid": user}
    answer = client.post("/wechat", params=query, content=xml.encode())
    assert answer.status_code == 200, answer.text
    return answer.text


def test_wechat_users_over_the_limit_get_a_polite_reply_in_their_language(app: App) -> None:
    client = app(rate_limit="1/60")
    user = f"oUser-{uuid.uuid4().hex[:8]}"
    assert "How can I help" in wechat_post(client, user, "hello", "1001")
    slow_down = wechat_post(client, user, "你好", "1002")
    assert "秒后再试" in slow_down and "How can I help" not in slow_down
    assert "seconds" in wechat_post(client, user, "hello", "1003")


def test_one_address_rotating_senders_gets_429_on_the_rest_webhook_and_the_widget(app: App) -> None:
    address = ipaddress.IPv6Address((0x20010DB8 << 96) + (uuid.uuid4().int % 2**32 << 64) + 1)  # a /64 of its own
    client = app(str(address), rate_limit_client="3/60")  # the per-sender limit is off
    senders = [f"rotating-{uuid.uuid4().hex[:10]}" for _ in range(4)]
    for sender in senders[:3]:
        assert client.post("/webhooks/rest/webhook", json={"sender": sender, "message": "hello"}).status_code == 200
    refused = client.post("/webhooks/rest/webhook", json={"sender": senders[3], "message": "hello"})
    retry_after(refused)
    assert "from one network address" in refused.json()["error"]
    api = f"/api/v1/conversations/{senders[3]}/messages"  # callers with a key are servers: limited per conversation
    assert client.post(api, json={"text": "hello"}, headers={"X-API-Key": API_KEY}).status_code == 200
    with client.websocket_connect("/ws") as socket:
        socket.send_json({"type": "hello", "conversation_id": None, "after": -1})
        assert socket.receive_json()["type"] == "welcome"
        socket.receive_json()  # the (empty) transcript
        socket.send_json({"type": "message", "id": "m0", "text": "hello"})
        frames = [socket.receive_json()]
        while frames[-1]["type"] != "done":
            frames.append(socket.receive_json())
    [error] = [frame for frame in frames if frame["type"] == "error"]
    assert error["id"] == "m0" and 1 <= error["retry_after"] <= 20


async def test_the_limiter_is_wired_only_when_a_limit_is_set(project: Project, redis_target: str) -> None:
    cases = (("off", "off", False), ("0", "0", False), ("30/60", "off", True), ("off", "300/60", True))
    for rate, per_client, wired in cases:
        settings = Settings(
            data_dir=project.data_dir, redis_url=redis_target, rate_limit=rate, rate_limit_client=per_client
        )
        runtime = build_runtime(project, settings)
        assert isinstance(runtime.bot.rate_limiter, RateLimiter) is wired, (rate, per_client)
        await runtime.aclose()


# --- CORS and the widget's origin ---


def preflight(client: TestClient, path: str, origin: str) -> Any:
    headers = {"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-api-key"}
    return client.options(path, headers=headers)


def test_cors_opens_the_customer_apis_to_the_listed_sites_only(app: App) -> None:
    client = app(cors_origins="https://shop.example.com")
    shop, other = "https://shop.example.com", "https://evil.example"
    for path in ("/webhooks/rest/webhook", "/api/v1/conversations/c-1/messages"):
        allowed = preflight(client, path, shop)
        assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == shop
        assert "x-api-key" in allowed.headers["access-control-allow-headers"].lower()
        assert "access-control-allow-origin" not in preflight(client, path, other).headers
    sent = client.post("/webhooks/rest/webhook", json={"sender": "cors-1", "message": "hi"}, headers={"Origin": shop})
    assert sent.headers["access-control-allow-origin"] == shop
    assert "retry-after" in sent.headers["access-control-expose-headers"].lower()
    foreign = client.post(
        "/webhooks/rest/webhook", json={"sender": "cors-2", "message": "hi"}, headers={"Origin": other}
    )
    assert "access-control-allow-origin" not in foreign.headers
    for path in ("/console/api/login", "/admin/knowledge/reload"):  # same-origin only, whatever the list says
        assert "access-control-allow-origin" not in preflight(client, path, shop).headers
        assert "access-control-allow-origin" not in client.post(path, json={}, headers={"Origin": shop}).headers


def test_cors_star_allows_any_page_but_the_default_allows_none(app: App) -> None:
    anyone = app(cors_origins="*")
    assert preflight(anyone, "/api/v1/conversations/c-1/messages", "https://a.example").status_code == 200
    nobody = app()
    assert "access-control-allow-origin" not in preflight(nobody, "/webhooks/rest/webhook", "https://a.example").headers


def test_the_widget_socket_refuses_pages_of_other_sites_with_1008(app: App, caplog: pytest.LogCaptureFixture) -> None:
    client = app(cors_origins="https://shop.example.com")
    for origin in (None, "http://testserver", "https://shop.example.com"):  # no browser, this server, the list
        with client.websocket_connect("/ws", headers={"origin": origin} if origin else {}) as socket:
            socket.send_json({"type": "hello", "conversation_id": None, "after": -1})
            assert socket.receive_json()["type"] == "welcome", origin
    with caplog.at_level(logging.WARNING, logger="bot.channels.origins"):
        for _ in range(2):
            with (
                pytest.raises(WebSocketDisconnect) as refused,
                client.websocket_connect("/ws", headers={"origin": "https://evil.example"}) as socket,
            ):
                socket.receive_json()
            assert refused.value.code == 1008
    [warning] = [r.getMessage() for r in caplog.records if r.name == "bot.channels.origins"]  # once per origin
    assert "https://evil.example" in warning and "KEFU_CORS_ORIGINS" in warning


# --- request size ---


def test_bodies_over_the_limit_are_refused_with_413_on_every_route(app: App) -> None:
    client = app(max_body_bytes=2048)
    for path in ("/console/api/login", "/admin/knowledge/reload", "/wechat"):
        declared = client.post(path, content=b"x" * 4096, headers=JSON)
        assert declared.status_code == 413 and "KEFU_MAX_BODY_BYTES" in declared.json()["error"], path
    # no Content-Length: stopped as soon as the route reads past the limit
    chunked = client.post("/console/api/login", content=iter([b"x" * 1024] * 4), headers=JSON)
    assert "content-length" not in chunked.request.headers
    assert chunked.status_code == 413 and "over the limit" in chunked.json()["error"]
    small = client.post("/console/api/login", json={"name": "nobody", "password": "wrong-password"})
    assert small.status_code == 403 and "kefu operators add" in small.json()["error"]  # reached the route
    rest = client.post("/webhooks/rest/webhook", json={"sender": "big", "message": "x" * 1000})
    assert rest.status_code == 200  # under both limits


# --- secrets ---


def test_secrets_never_reach_the_log(app: App, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = app()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {ADMIN_TOKEN}"}):
        client.post("/admin/knowledge/reload", headers=headers)
    for headers in ({"X-API-Key": "wrong"}, {"X-API-Key": API_KEY}, {"Authorization": f"Bearer {API_KEY}"}):
        client.post("/api/v1/conversations/c-log/messages", json={"text": "hello"}, headers=headers)
    client.post("/console/api/login", json={"name": "admin", "password": ADMIN_TOKEN})
    assert "How can I help" in wechat_post(client, "oUser-log", "hello", "2001")
    client.post("/wechat", params={"signature": "bad", "timestamp": str(int(time.time())), "nonce": "1"})
    client.get("/wecom", params={"msg_signature": "bad", "timestamp": "1", "nonce": "1", "echostr": "x"})
    assert caplog.records, "nothing was logged: the test would prove nothing"
    logged = caplog.text + "".join(str(record.__dict__) for record in caplog.records)
    for secret in SECRETS:
        assert secret not in logged


def test_settings_and_keys_never_show_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(
        admin_token=ADMIN_TOKEN, generator_api_key=API_KEY, redis_url=f"redis://:{WECOM_TOKEN}@redis:6379/0"
    )
    for shown in (repr(settings), str(settings), repr(ApiKeys([API_KEY])), repr(WeChatSettings(token=WECHAT_TOKEN))):
        for secret in SECRETS:
            assert secret not in shown
    assert settings.admin_token is not None and settings.admin_token.get_secret_value() == ADMIN_TOKEN


def test_secrets_are_read_from_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "admin").write_text(ADMIN_TOKEN + "\n", encoding="utf-8")
    (tmp_path / "wechat").write_text(WECHAT_TOKEN, encoding="utf-8")
    (tmp_path / "redis").write_text("redis://:pw@redis:6379/0\n", encoding="utf-8")
    monkeypatch.setenv("KEFU_ADMIN_TOKEN_FILE", str(tmp_path / "admin"))
    monkeypatch.setenv("KEFU_ADMIN_TOKEN", "")  # an empty variable left in a compose file does not hide the file
    monkeypatch.setenv("KEFU_WECHAT_TOKEN_FILE", str(tmp_path / "wechat"))
    monkeypatch.setenv("REDIS_URL_FILE", str(tmp_path / "redis"))
    monkeypatch.delenv("REDIS_URL", raising=False)
    settings = Settings()
    assert settings.admin_token == SecretStr(ADMIN_TOKEN)  # the trailing newline is not part of the token
    assert settings.redis_url == "redis://:pw@redis:6379/0"
    assert WeChatSettings().token == SecretStr(WECHAT_TOKEN)
    assert Settings(admin_token="given").admin_token == SecretStr("given")  # arguments still come first


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KEFU_ADMIN_TOKEN": "a", "KEFU_ADMIN_TOKEN_FILE": "{dir}/admin"}, "both set; keep one"),
        ({"KEFU_ADMIN_TOKEN_FILE": "{dir}/missing"}, "KEFU_ADMIN_TOKEN_FILE=.*missing: cannot read"),
        ({"KEFU_GENERATOR_API_KEY_FILE": "{dir}/empty"}, "KEFU_GENERATOR_API_KEY_FILE=.*empty: .* is empty"),
    ],
)
def test_a_wrong_secret_file_stops_the_start_with_the_fix(
    env: dict[str, str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "admin").write_text("x", encoding="utf-8")
    (tmp_path / "empty").write_text("\n", encoding="utf-8")
    for name, value in env.items():
        monkeypatch.setenv(name, value.format(dir=tmp_path))
    with pytest.raises(ConfigError, match=message):
        Settings()
