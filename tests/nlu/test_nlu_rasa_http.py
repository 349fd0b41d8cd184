"""RasaHttpNlu against a real HTTP server that speaks Rasa 3.x's documented `/model/parse` and `/status`.

Rasa itself does not install on Python 3.11, so the server is a small `http.server` in a thread
that answers as Rasa does, token check included.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from bot.errors import ConfigError, KefuError, NluBackendError
from bot.events import Session
from bot.nlu.rasa_http import RasaHttpNlu
from bot.project.init import write_starter_project
from bot.settings import Settings, load_project_config
from bot.types import FALLBACK_INTENT, Entity, IntentScore, Message
from bot.wiring import build_runtime, open_project, train

pytestmark = pytest.mark.integration

TOKEN = "s3cret-rasa-token-42"
WRONG_TOKEN = "wrong-token-17"
CHINESE = "我要退订单SO20261001的2件耳机，退款199元"


def rasa_parse(text: str) -> dict[str, Any]:
    """What Rasa 3.6 with DIET, a regex extractor and Duckling answers (the entities are CHINESE's)."""
    answer = {
        "text": text,
        "intent": {"name": "request_refund", "confidence": 0.9312},
        "entities": [
            {"entity": "order_id", "start": 5, "end": 15, "value": "SO20261001", "extractor": "RegexEntityExtractor"},
            {
                "entity": "number", "start": 16, "end": 17, "text": "2", "value": 2, "confidence": 1.0,
                "additional_info": {"value": 2, "type": "value"}, "extractor": "DucklingEntityExtractor",
            },
            {
                "entity": "product", "start": 18, "end": 20, "value": "耳机", "confidence_entity": 0.87,
                "role": "returned", "group": "1", "extractor": "DIETClassifier",
            },
            {
                "entity": "amount-of-money", "start": 23, "end": 27, "text": "199元", "value": 199.0,
                "confidence": 1.0, "additional_info": {"value": 199.0, "unit": "CNY"},
                "extractor": "DucklingEntityExtractor",
            },
        ],
        "text_tokens": [[0, 1], [1, 2]],
        "intent_ranking": [
            {"name": "request_refund", "confidence": 0.9312},
            {"name": "check_order", "confidence": 0.0521},
            {"name": "greet", "confidence": 0.0167},
        ],
        "response_selector": {"all_retrieval_intents": [], "default": {"response": {}, "ranking": []}},
    }  # fmt: skip
    return answer if text.startswith(CHINESE) else {**answer, "entities": []}


@dataclass
class FakeRasa:
    token: str | None = TOKEN
    api_enabled: bool = True
    model_file: str | None = "models/20261123-100000-brisk-yak.tar.gz"
    replies: dict[str, tuple[int, str, bytes]] = field(default_factory=dict)  # text -> status, type, body
    seen: list[tuple[str, str, dict[str, list[str]], Any]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def reply_json(self, text: str, body: Any, status: int = 200) -> None:
        self.replies[text] = (status, "application/json", json.dumps(body, ensure_ascii=False).encode())


class RasaHandler(BaseHTTPRequestHandler):
    server: RasaServer

    def log_message(self, format: str, *args: Any) -> None:  # keep the test output quiet
        pass

    def do_GET(self) -> None:
        rasa, url = self.server.rasa, urlsplit(self.path)
        rasa.seen.append(("GET", url.path, parse_qs(url.query), None))
        if url.path == "/":
            self.send(200, "text/plain", b"Hello from Rasa: 3.6.20")
        elif url.path == "/status" and rasa.api_enabled:
            if self.authenticated(url.query):
                self.send_json(200, {"model_file": rasa.model_file, "model_id": "b1f2", "num_active_training_jobs": 0})
        else:
            self.send(404, "text/plain", b"Not Found")

    def do_POST(self) -> None:
        rasa, url = self.server.rasa, urlsplit(self.path)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        rasa.seen.append(("POST", url.path, parse_qs(url.query), body))
        if url.path != "/model/parse" or not rasa.api_enabled:
            self.send(404, "text/plain", b"Not Found")
        elif self.authenticated(url.query):
            if body["text"] == "slow":
                rasa.release.wait(10)
            if body["text"] in rasa.replies:
                self.send(*rasa.replies[body["text"]])
            else:
                self.send_json(200, rasa_parse(body["text"]))

    def authenticated(self, query: str) -> bool:
        token = self.server.rasa.token
        if token is None or parse_qs(query).get("token") == [token]:
            return True
        self.send_json(401, {
            "version": "3.6.20", "status": "failure", "message": "User is not authenticated.",
            "reason": "NotAuthenticated", "details": {}, "help": None, "code": 401,
        })  # fmt: skip
        return False

    def send_json(self, status: int, body: Any) -> None:
        self.send(status, "application/json", json.dumps(body, ensure_ascii=False).encode())

    def send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class RasaServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, rasa: FakeRasa) -> None:
        super().__init__(("127.0.0.1", 0), RasaHandler)
        self.rasa = rasa


@pytest.fixture
def rasa() -> Iterator[tuple[FakeRasa, str]]:
    fake = FakeRasa()
    server = RasaServer(fake)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    fake.release.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def nlu(rasa: tuple[FakeRasa, str]) -> Iterator[RasaHttpNlu]:
    parser = RasaHttpNlu(rasa[1], token=TOKEN)
    yield parser
    parser.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_no_token(err: BaseException) -> None:
    """Neither the error nor anything chained to it names a token."""
    seen: BaseException | None = err
    while seen is not None:
        for token in (TOKEN, WRONG_TOKEN):
            assert token not in str(seen) and token not in repr(seen)
        seen = seen.__cause__ or seen.__context__


def test_maps_rasas_answer_for_a_chinese_message(rasa: tuple[FakeRasa, str], nlu: RasaHttpNlu) -> None:
    result = nlu.parse_text(CHINESE)
    assert (result.text, result.intent, result.confidence, result.language) == (
        CHINESE,
        "request_refund",
        0.9312,
        "zh",
    )
    assert result.ranking == (
        IntentScore("request_refund", 0.9312),
        IntentScore("check_order", 0.0521),
        IntentScore("greet", 0.0167),
    )
    assert result.entities == (
        Entity("order_id", "SO20261001", 5, 15, 1.0, "RegexEntityExtractor"),
        Entity("number", "2", 16, 17, 1.0, "DucklingEntityExtractor"),
        Entity("product", "耳机", 18, 20, 0.87, "DIETClassifier", role="returned", group="1"),
        Entity("amount-of-money", "199", 23, 27, 1.0, "DucklingEntityExtractor"),
    )
    assert [CHINESE[e.start : e.end] for e in result.entities] == ["SO20261001", "2", "耳机", "199元"]


def test_sends_the_text_message_id_and_token_as_rasa_expects(rasa: tuple[FakeRasa, str], nlu: RasaHttpNlu) -> None:
    fake, _ = rasa
    message = Message("c1", "rest", "u1", "m-42", "where is my order?", received_at=time.time())
    result = nlu.parse(message, Session("c1"))
    assert (result.intent, result.language) == ("request_refund", "en")
    assert fake.seen[-1] == (
        "POST",
        "/model/parse",
        {"token": [TOKEN]},
        {"text": "where is my order?", "message_id": "m-42"},
    )


def test_without_a_token_none_is_sent(rasa: tuple[FakeRasa, str]) -> None:
    fake, url = rasa
    fake.token = None
    assert RasaHttpNlu(url).parse_text("hi").intent == "request_refund"
    assert fake.seen[-1][2] == {}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (2, "2"),
        (2.0, "2"),
        (2.5, "2.5"),
        (True, "true"),
        ({"value": 3, "unit": "CNY"}, "3"),
        (
            {"from": "2026-11-24T00:00:00.000+08:00", "to": None},
            '{"from": "2026-11-24T00:00:00.000+08:00", "to": null}',
        ),
        (["a", "b"], '["a", "b"]'),
        ("三", "三"),
    ],
)
def test_entity_values_become_strings(rasa: tuple[FakeRasa, str], nlu: RasaHttpNlu, value: Any, expected: str) -> None:
    entity = {"entity": "duration", "start": 0, "end": 2, "value": value, "extractor": "DucklingEntityExtractor"}
    rasa[0].reply_json("三天", {"text": "三天", "intent": {"name": "inform", "confidence": 0.8}, "entities": [entity]})
    assert nlu.parse_text("三天").entities == (Entity("duration", expected, 0, 2, 1.0, "DucklingEntityExtractor"),)


def test_a_null_intent_is_the_fallback_intent(rasa: tuple[FakeRasa, str], nlu: RasaHttpNlu) -> None:
    rasa[0].reply_json("???", {"text": "???", "intent": {"name": None, "confidence": 0.0}, "entities": []})
    result = nlu.parse_text("???")
    assert (result.intent, result.confidence, result.ranking, result.entities) == (FALLBACK_INTENT, 0.0, (), ())


def test_without_a_ranking_the_intent_is_the_ranking(rasa: tuple[FakeRasa, str], nlu: RasaHttpNlu) -> None:
    rasa[0].reply_json("hello", {"text": "hello", "intent": {"name": "greet", "confidence": 1.0}})
    result = nlu.parse_text("hello")
    assert (result.intent, result.ranking, result.entities) == ("greet", (IntentScore("greet", 1.0),), ())


def test_below_the_threshold_the_intent_falls_back_and_keeps_rasas_view(rasa: tuple[FakeRasa, str]) -> None:
    result = RasaHttpNlu(rasa[1], token=TOKEN, fallback_threshold=0.95).parse_text(CHINESE)
    assert (result.intent, result.confidence, result.ranking[0]) == (
        FALLBACK_INTENT,
        0.9312,
        IntentScore("request_refund", 0.9312),
    )
    assert RasaHttpNlu(rasa[1], token=TOKEN, fallback_threshold=0.9).parse_text(CHINESE).intent == "request_refund"


def test_http_500_is_a_backend_error_naming_the_status_and_url(rasa: tuple[FakeRasa, str], nlu: RasaHttpNlu) -> None:
    fake, url = rasa
    fake.replies["boom"] = (500, "application/json", b'{"status": "failure", "message": "An unexpected error"}')
    with pytest.raises(NluBackendError, match="HTTP 500") as caught:
        nlu.parse_text("boom")
    assert url in str(caught.value) and "An unexpected error" in str(caught.value)
    assert_no_token(caught.value)


def test_a_server_echoing_the_token_does_not_leak_it(rasa: tuple[FakeRasa, str], nlu: RasaHttpNlu) -> None:
    rasa[0].replies["echo"] = (502, "text/plain", f"bad gateway for /model/parse?token={TOKEN}".encode())
    with pytest.raises(NluBackendError, match=r"HTTP 502.*token=\*\*\*") as caught:
        nlu.parse_text("echo")
    assert_no_token(caught.value)


def test_a_timeout_is_a_backend_error(rasa: tuple[FakeRasa, str]) -> None:
    nlu = RasaHttpNlu(rasa[1], token=TOKEN, timeout=0.2)
    started = time.perf_counter()
    with pytest.raises(NluBackendError, match=r"did not answer /model/parse within 0\.2 s") as caught:
        nlu.parse_text("slow")
    assert time.perf_counter() - started < 5
    assert_no_token(caught.value)


def test_non_json_is_a_backend_error(rasa: tuple[FakeRasa, str], nlu: RasaHttpNlu) -> None:
    rasa[0].replies["html"] = (200, "text/html", b"<html><body>502 proxy error</body></html>")
    with pytest.raises(NluBackendError, match=r"not JSON.*proxy error") as caught:
        nlu.parse_text("html")
    assert_no_token(caught.value)


GREET = {"name": "greet", "confidence": 1}


def one_entity(**fields: Any) -> dict[str, Any]:
    return {"intent": GREET, "entities": [{"entity": "x", "value": "y", "start": 0, "end": 1, **fields}]}


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ({"text": "bad"}, "'intent' = None"),
        ([], "no object"),
        ({"intent": "greet"}, "'intent' = 'greet'"),
        ({"intent": {"name": 3, "confidence": 0.5}}, "'intent.name'"),
        ({"intent": {"name": "greet", "confidence": "high"}}, "'intent.confidence'"),
        ({"intent": {"name": "greet", "confidence": True}}, "'intent.confidence'"),
        ({"intent": {"name": "greet"}}, "'intent.confidence'"),
        ({"intent": GREET, "intent_ranking": "greet"}, "'intent_ranking'"),
        ({"intent": GREET, "intent_ranking": [{"confidence": 1}]}, "'intent_ranking[0]'"),
        ({"intent": GREET, "entities": {"x": 1}}, "'entities'"),
        ({"intent": GREET, "entities": [{"entity": "x", "start": 0, "end": 1}]}, "lacks an entity name or value"),
        (one_entity(entity=None), "lacks an entity name or value"),
        (one_entity(value=None), "value is null"),
        (one_entity(start="0"), "not a span of the text"),
        (one_entity(end=99), "not a span of the text"),
        (one_entity(start=1, end=0), "not a span of the text"),
        (one_entity(confidence_entity="hi"), "confidence_entity"),
        (one_entity(extractor=5), "extractor"),
    ],
)
def test_missing_or_ill_typed_fields_are_backend_errors(
    rasa: tuple[FakeRasa, str], nlu: RasaHttpNlu, body: Any, complaint: str
) -> None:
    rasa[0].reply_json("bad", body)
    with pytest.raises(NluBackendError, match="answered /model/parse with") as caught:
        nlu.parse_text("bad")
    assert complaint in str(caught.value)
    assert_no_token(caught.value)


def test_a_wrong_token_is_a_backend_error_that_names_no_token(rasa: tuple[FakeRasa, str]) -> None:
    with pytest.raises(NluBackendError, match=r"HTTP 401.*auth-token") as caught:
        RasaHttpNlu(rasa[1], token=WRONG_TOKEN).parse_text(CHINESE)
    assert_no_token(caught.value)


def test_the_token_is_masked_in_httpx_request_logs(
    rasa: tuple[FakeRasa, str], nlu: RasaHttpNlu, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="httpx"):
        nlu.parse_text(CHINESE)
    assert "/model/parse?token=***" in caplog.text  # httpx did log the URL, masked
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(nlu)


def test_a_server_that_cannot_be_reached_is_a_backend_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(NluBackendError, match=f"cannot reach the Rasa server at {re.escape(url)}") as caught:
        RasaHttpNlu(url, token=TOKEN).parse_text("hi")
    assert_no_token(caught.value)


def test_parse_is_safe_from_many_threads(rasa: tuple[FakeRasa, str], nlu: RasaHttpNlu) -> None:
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(nlu.parse_text, [f"{CHINESE}{i}" for i in range(40)]))
    assert [r.text for r in results] == [f"{CHINESE}{i}" for i in range(40)]
    assert {r.intent for r in results} == {"request_refund"}


def test_warm_up_checks_status_with_the_token(rasa: tuple[FakeRasa, str], nlu: RasaHttpNlu) -> None:
    nlu.warm_up()
    assert rasa[0].seen[-1] == ("GET", "/status", {"token": [TOKEN]}, None)


def test_warm_up_on_an_unreachable_url_is_a_config_error_with_the_fix() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(
        ConfigError, match=f"cannot reach the Rasa server at {re.escape(url)}.*rasa run --enable-api"
    ) as caught:
        RasaHttpNlu(url, token=TOKEN, timeout=2).warm_up()
    assert_no_token(caught.value)


@pytest.mark.parametrize(
    ("setup", "complaint"),
    [
        ({"token": "another"}, "refused kefu's token.*--auth-token"),
        ({"api_enabled": False}, "HTTP API off.*--enable-api"),
        ({"model_file": None}, "no model loaded.*rasa train"),
    ],
)
def test_warm_up_explains_what_to_fix(
    rasa: tuple[FakeRasa, str], nlu: RasaHttpNlu, setup: dict[str, Any], complaint: str
) -> None:
    for name, value in setup.items():
        setattr(rasa[0], name, value)
    with pytest.raises(ConfigError, match=complaint) as caught:
        nlu.warm_up()
    assert rasa[1] in str(caught.value)
    assert_no_token(caught.value)


def test_warm_up_on_something_that_is_not_rasa(rasa: tuple[FakeRasa, str]) -> None:
    with pytest.raises(ConfigError, match=r"no Rasa server at .*HTTP 404"):
        RasaHttpNlu(rasa[1] + "/elsewhere", token=TOKEN).warm_up()


@pytest.mark.parametrize(
    ("kwargs", "complaint"),
    [
        ({"url": "localhost:5005"}, "http"),
        ({"url": "ftp://localhost:5005"}, "http"),
        ({"url": f"http://localhost:5005/?token={TOKEN}"}, "query string"),
        ({"url": "http://localhost:5005", "timeout": 0}, "timeout"),
        ({"url": "http://localhost:5005", "fallback_threshold": 1.5}, "threshold"),
    ],
)
def test_bad_settings_are_config_errors(kwargs: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint) as caught:
        RasaHttpNlu(**kwargs)
    assert_no_token(caught.value)


def test_backend_errors_are_kefu_errors() -> None:
    assert issubclass(NluBackendError, KefuError)


async def test_a_project_with_backend_rasa_answers_from_rasas_parse(
    rasa: tuple[FakeRasa, str], tmp_path: Path, redis_target: str
) -> None:
    fake, url = rasa
    project_dir = tmp_path / "bot"
    write_starter_project(project_dir)
    (project_dir / "kefu.yml").write_text(f"nlu: {{backend: rasa, rasa_url: '{url}'}}\ngenerator: {{backend: none}}\n")
    settings = Settings(data_dir=tmp_path / "data", redis_url=redis_target, rasa_token=TOKEN)
    project = open_project(project_dir, settings)
    assert train(project, progress=False, parts=("nlu",)).nlu is None  # Rasa's model, nothing of ours to train
    greeting = {"text": "嗨喽", "intent": {"name": "greet", "confidence": 0.97}, "entities": []}
    fake.reply_json("嗨喽", greeting)
    runtime = build_runtime(project, settings)
    try:
        runtime.bot.warm_up()
        answer = await runtime.bot.handle(Message("c-rasa", "test", "c-rasa", "m1", "嗨喽", time.time()))
    finally:
        await runtime.aclose()
    assert [reply.text for reply in answer.replies] == ["您好！我是智能客服，请问有什么可以帮您？"]
    assert answer.trace is not None and answer.trace.nlu is not None
    assert (answer.trace.nlu.intent, answer.trace.nlu.confidence) == ("greet", 0.97)
    assert [seen[1] for seen in fake.seen if seen[0] == "POST"] == ["/model/parse"]


def test_backend_rasa_without_a_url_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "kefu.yml").write_text("nlu: {backend: rasa}\n")
    with pytest.raises(ConfigError, match="rasa_url"):
        load_project_config(tmp_path)
