"""Business-API actions against a real local HTTP server (starlette + uvicorn on a loopback port)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot.actions.api import SORRY, ApiAction, api_actions
from bot.actions.api_config import ApiSpec
from bot.actions.clients import LoopClients
from bot.actions.forms import FormAction, FormRules
from bot.actions.responses import ResponseRenderer
from bot.errors import ConfigError
from bot.events import (
    ActionExecuted,
    BotUttered,
    FormActivated,
    Session,
    SessionStarted,
    SlotRejected,
    SlotSet,
    UserUttered,
)
from bot.settings import FormConfig, SlotValidation, load_project_config
from bot.trace import TraceRecorder
from bot.types import (
    Domain,
    FormSpec,
    NluResult,
    ResponseCondition,
    ResponseVariation,
    SlotMapping,
    SlotSpec,
)
from tests.actions.conftest import free_port

pytestmark = pytest.mark.integration

TOKEN = "parcel-token-8c1f2e77"
PARCEL = {
    "data": {"status": "运输中 in transit", "eta": "2026-10-06", "events": ["揽收 picked up", "运输中 in transit"]}
}


@dataclass
class ParcelApi:
    """What the API received: (method, raw path, authorization header, JSON body), and calls per path."""

    received: list[tuple[str, str, str | None, Any]] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/parcels/{number:path}", self.parcel),
                Route("/flaky/{key}", self.flaky),
                Route("/limited", self.limited),
                Route("/slow", self.slow),
                Route("/missing", self.missing),
                Route("/text", self.text),
                Route("/orders", self.orders, methods=["POST"]),
            ]
        )

    async def _record(self, request: Request) -> str:
        body = await request.json() if request.method == "POST" else None
        query = request.scope["query_string"].decode()
        path = request.scope["raw_path"].decode() + (f"?{query}" if query else "")
        self.received.append((request.method, path, request.headers.get("authorization"), body))
        self.calls[path] += 1
        return path

    async def parcel(self, request: Request) -> Response:
        await self._record(request)
        if request.headers.get("authorization", f"Bearer {TOKEN}") != f"Bearer {TOKEN}":
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        return JSONResponse(PARCEL)

    async def flaky(self, request: Request) -> Response:
        path = await self._record(request)
        if self.calls[path] <= 2:
            return JSONResponse({"error": "busy"}, status_code=503)
        return JSONResponse(PARCEL)

    async def limited(self, request: Request) -> Response:
        await self._record(request)
        return JSONResponse({"error": "slow down"}, status_code=429)

    async def slow(self, request: Request) -> Response:
        await self._record(request)
        await asyncio.sleep(1.0)
        return JSONResponse(PARCEL)

    async def missing(self, request: Request) -> Response:
        await self._record(request)
        return JSONResponse({"error": "no such parcel"}, status_code=404)

    async def text(self, request: Request) -> Response:
        await self._record(request)
        return PlainTextResponse("OK")

    async def orders(self, request: Request) -> Response:
        await self._record(request)
        return JSONResponse({"order": {"id": "SO1", "state": "created"}})


@pytest.fixture(scope="module")
def api_server() -> Iterator[tuple[str, ParcelApi]]:
    api = ParcelApi()
    port = free_port()
    config = uvicorn.Config(api.app(), host="127.0.0.1", port=port, log_level="warning", lifespan="off", ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="parcel-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the test API server did not start")
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}", api
    server.should_exit = True
    thread.join(timeout=10)


DOMAIN = Domain(
    intents=("track_parcel",),
    responses={
        "utter_parcel_status": (
            ResponseVariation(
                "包裹 {tracking_no}：{parcel_status}，预计 {parcel_eta} 送达",
                conditions=(ResponseCondition("language", "zh"),),
            ),
            ResponseVariation(
                "Parcel {{ tracking_no }}: {{ parcel_status }}, due {{ response.data.eta }}",
                conditions=(ResponseCondition("language", "en"),),
            ),
        ),
        "utter_api_error": (ResponseVariation("查询失败，请稍后再试。/ The lookup failed, please try later."),),
        "utter_order_created": (ResponseVariation("订单 {{ response.order.id }}：{{ order_state }}"),),
    },
)
BARE = Domain(intents=("track_parcel",))  # no utter_api_error: the built-in apology


@pytest.fixture
async def clients() -> AsyncIterator[LoopClients]:
    pool = LoopClients()
    yield pool
    await pool.aclose()


def action(base: str, clients: LoopClients, domain: Domain = DOMAIN, **spec: Any) -> ApiAction:
    spec = {"url": f"{base}/parcels/{{{{ tracking_no }}}}", "backoff_s": 0.01, **spec}
    return ApiAction("action_track_parcel", ApiSpec.model_validate(spec), ResponseRenderer(domain), clients=clients)


def session(language: str | None = "zh", **slots: Any) -> Session:
    events = [SlotSet(name=name, value=value) for name, value in {"language": language, **slots}.items()]
    return Session("c").with_events([SessionStarted(), *events])


async def run(api: ApiAction, s: Session) -> tuple[list, str]:
    trace = TraceRecorder("c")
    events = await api.run(s, DOMAIN, trace)
    [stage] = [stage for stage in trace.freeze().stages if stage.name == "api:action_track_parcel"]
    return events, stage.detail


def slots_of(events: list) -> dict[str, Any]:
    return {e.name: e.value for e in events if isinstance(e, SlotSet)}


async def test_slots_come_from_the_answer_and_the_response_is_rendered(api_server, clients, monkeypatch, caplog):
    base, api = api_server
    monkeypatch.setenv("PARCEL_API_TOKEN", TOKEN)
    caplog.set_level(logging.DEBUG)
    spec = {
        "headers": {"Authorization": "Bearer ${PARCEL_API_TOKEN}"},
        "slots": {"parcel_status": "data.status", "parcel_eta": "data.eta", "parcel_events": "data.events"},
        "response": "utter_parcel_status",
    }
    track = action(base, clients, **spec)
    events, detail = await run(track, session(tracking_no="SF 12/34"))
    assert slots_of(events) == {"parcel_status": "运输中 in transit", "parcel_eta": "2026-10-06",
                                "parcel_events": ["揽收 picked up", "运输中 in transit"]}  # fmt: skip
    assert events[-1].text == "包裹 SF 12/34：运输中 in transit，预计 2026-10-06 送达"
    assert api.received[-1] == ("GET", "/parcels/SF%2012%2F34", f"Bearer {TOKEN}", None)  # slot values URL-escaped
    assert detail.startswith("GET http://127.0.0.1:") and detail.endswith("HTTP 200 after 1 attempt")
    english, _ = await run(track, session("en", tracking_no="SF1"))
    assert english[-1].text == "Parcel SF1: 运输中 in transit, due 2026-10-06"
    assert "httpx" in caplog.text  # the request was logged ...
    assert TOKEN not in caplog.text and TOKEN not in detail  # ... but never the header's secret


async def test_a_secret_in_the_url_is_masked_in_logs_and_slots_cannot_reach_it(api_server, clients, caplog):
    base, api = api_server
    key = "url-key-5d0b9a"
    caplog.set_level(logging.INFO, logger="httpx")
    url = f"{base}/parcels/{{{{ tracking_no }}}}?key=${{PARCEL_API_KEY}}"
    track = ApiAction(
        "action_track_parcel",
        ApiSpec(url=url),
        ResponseRenderer(DOMAIN),
        clients=clients,
        environ={"PARCEL_API_KEY": key},
    )
    _, detail = await run(track, session(tracking_no="${PARCEL_API_KEY}"))
    assert api.received[-1][1] == f"/parcels/%24%7BPARCEL_API_KEY%7D?key={key}"
    assert "key=***" in caplog.text and key not in caplog.text and key not in detail


async def test_a_header_secret_can_come_from_a_file_and_a_bad_one_stops_the_start(api_server, clients, tmp_path):
    base, api = api_server
    secret = tmp_path / "parcel-token"
    secret.write_text(TOKEN + "\n", encoding="utf-8")  # as `echo` writes it
    spec = ApiSpec.model_validate(
        {"url": f"{base}/parcels/1", "headers": {"Authorization": "Bearer ${PARCEL_API_TOKEN}"}}
    )
    track = ApiAction("action_track_parcel", spec, ResponseRenderer(DOMAIN), clients=clients,
                      environ={"PARCEL_API_TOKEN_FILE": str(secret)})  # fmt: skip
    _, detail = await run(track, session())
    assert api.received[-1][2] == f"Bearer {TOKEN}" and detail.endswith("HTTP 200 after 1 attempt")
    with pytest.raises(ConfigError, match=r"PARCEL_API_TOKEN_FILE=.*: cannot read the secret file"):
        ApiAction("a", spec, ResponseRenderer(DOMAIN), clients=clients, environ={"PARCEL_API_TOKEN_FILE": "/no/such"})
    both = {"PARCEL_API_TOKEN": TOKEN, "PARCEL_API_TOKEN_FILE": str(secret)}
    with pytest.raises(ConfigError, match=r"PARCEL_API_TOKEN and PARCEL_API_TOKEN_FILE are both set"):
        ApiAction("a", spec, ResponseRenderer(DOMAIN), clients=clients, environ=both)


async def test_a_flaky_api_is_retried_until_it_answers(api_server, clients) -> None:
    base, api = api_server
    flaky = action(base, clients, url=f"{base}/flaky/a", retries=2, slots={"parcel_status": "data.status"})
    events, detail = await run(flaky, session())
    assert slots_of(events) == {"parcel_status": "运输中 in transit"}
    assert api.calls["/flaky/a"] == 3
    assert detail.endswith("HTTP 200 after 3 attempts")


async def test_an_api_that_stays_down_gets_the_graceful_reply_and_no_slots(api_server, clients) -> None:
    base, api = api_server
    flaky = action(base, clients, url=f"{base}/flaky/b", retries=1, slots={"parcel_status": "data.status"})
    events, detail = await run(flaky, session())
    assert [type(e) for e in events] == [BotUttered]
    assert events[0].text == "查询失败，请稍后再试。/ The lookup failed, please try later."
    assert api.calls["/flaky/b"] == 2
    assert detail.startswith("failed: GET http://127.0.0.1:") and detail.endswith("HTTP 503 after 2 attempts")


async def test_rate_limiting_is_retried(api_server, clients) -> None:
    base, api = api_server
    events, detail = await run(action(base, clients, url=f"{base}/limited", retries=2), session())
    assert api.calls["/limited"] == 3 and detail.endswith("HTTP 429 after 3 attempts")
    assert events[0].template == "utter_api_error"


async def test_a_slow_api_times_out_into_the_graceful_reply(api_server, clients) -> None:
    base, _ = api_server
    slow = action(base, clients, BARE, url=f"{base}/slow", timeout_s=0.3, retries=1, slots={"s": "data.status"})
    events, detail = await run(slow, session())
    assert events == [BotUttered(text=SORRY["zh"], template="api_error", timestamp=events[0].timestamp)]
    assert "no answer within 0.3 s after 2 attempts" in detail


async def test_a_client_error_is_not_retried(api_server, clients) -> None:
    base, api = api_server
    events, detail = await run(action(base, clients, BARE, url=f"{base}/missing", retries=3), session("en"))
    assert [e.text for e in events] == [SORRY["en"]]
    assert api.calls["/missing"] == 1
    assert detail.endswith("HTTP 404 after 1 attempt")


async def test_no_server_is_retried_then_the_graceful_reply(clients) -> None:
    base = f"http://127.0.0.1:{free_port()}"
    events, detail = await run(action(base, clients, BARE, retries=1), session(None, tracking_no="SF1"))
    assert [e.text for e in events] == [SORRY["zh"]]  # no language yet: Chinese, the default
    assert "ConnectError" in detail and detail.endswith("after 2 attempts")


async def test_an_answer_without_the_declared_fields_is_a_failure(api_server, clients) -> None:
    base, _ = api_server
    events, detail = await run(action(base, clients, url=f"{base}/text", slots={"s": "data.status"}), session())
    assert not slots_of(events) and "the answer is not JSON" in detail
    missing = action(base, clients, slots={"s": "data.courier.name"})
    events, detail = await run(missing, session(tracking_no="SF1"))
    assert not slots_of(events) and "the answer has no 'data.courier.name' (for slot 's')" in detail
    whole = action(base, clients, slots={"s": "data"})
    assert "is an object, not a slot value" in (await run(whole, session(tracking_no="SF1")))[1]


async def test_an_unset_url_slot_fails_without_calling(api_server, clients) -> None:
    base, api = api_server
    before = len(api.received)
    events, detail = await run(action(base, clients), session())
    assert "needs the slot(s) tracking_no, which are not set" in detail and "after 0 attempts" in detail
    assert len(api.received) == before and events[0].template == "utter_api_error"


async def test_a_json_body_is_rendered_from_the_slots(api_server, clients) -> None:
    base, api = api_server
    body = {"order": "{{ order_id }}", "qty": "{{ qty }}", "note": "订单 {{ order_id }} x{{ qty }}", "tags": ["kefu"]}
    create = action(
        base, clients, url=f"{base}/orders", method="post", json=body,
        slots={"order_state": "order.state"}, response="utter_order_created",
    )  # fmt: skip
    events, _ = await run(create, session(order_id="SO1", qty=2))
    assert api.received[-1][3] == {"order": "SO1", "qty": 2, "note": "订单 SO1 x2", "tags": ["kefu"]}
    assert events[-1].text == "订单 SO1：created"


async def test_wiring_checks_the_environment_and_the_responses(api_server) -> None:
    base, _ = api_server
    spec = ApiSpec.model_validate({"url": f"{base}/x", "headers": {"X-Key": "${KEFU_TEST_UNSET_VARIABLE}"}})
    with pytest.raises(ConfigError, match=r"actions.apis.a.headers.X-Key reads .* KEFU_TEST_UNSET_VARIABLE, which"):
        api_actions({"a": spec}, ResponseRenderer(DOMAIN), environ={})
    spec = ApiSpec.model_validate({"url": f"{base}/x", "response": "utter_nope"})
    with pytest.raises(ConfigError, match=r"the response 'utter_nope' is not in domain\.yml"):
        api_actions({"a": spec}, ResponseRenderer(DOMAIN))
    declared = ApiSpec.model_validate({"url": f"{base}/x", "error_response": "utter_api_error"})
    with pytest.raises(ConfigError, match=r"'utter_api_error' is not in domain\.yml"):
        api_actions({"a": declared}, ResponseRenderer(BARE))
    assert set(api_actions({"a": ApiSpec.model_validate({"url": f"{base}/x"})}, ResponseRenderer(BARE))) == {"a"}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{method: GET}", "actions.apis.action_track_parcel.url: Field required"),
        ("{url: 'https://x/{{ id }}', timeout: 3}", "actions.apis.action_track_parcel.timeout: Extra inputs"),
        ("{url: 'https://x', method: FETCH}", "actions.apis.action_track_parcel.method: Input should be 'GET'"),
        ("{url: 'x.example.com/{{ id }}'}", "must be an http(s) URL such as https://api.example.com"),
        ("{url: 'https://x/{{ id'}", "is not a valid jinja2 template"),
        ("{url: 'https://x', json: {a: 1}}", "`json` is a request body, which GET does not send"),
        ("{url: 'https://x', slots: {s: 'data..status'}}", "write a dotted path such as data.status"),
        ("{url: 'https://x', retries: -1}", "retries: Input should be greater than or equal to 0"),
        ("{url: 'https://x', timeout_s: 0}", "timeout_s: Input should be greater than 0"),
    ],
)
def test_a_malformed_api_entry_is_a_clear_config_error(tmp_path: Path, entry: str, message: str) -> None:
    (tmp_path / "kefu.yml").write_text(f"actions:\n  apis:\n    action_track_parcel: {entry}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"kefu\.yml") as caught:
        load_project_config(tmp_path)
    assert message in str(caught.value)


def test_remote_names_need_a_server(tmp_path: Path) -> None:
    (tmp_path / "kefu.yml").write_text("actions: {remote: [action_check_order]}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="set `server_url`"):
        load_project_config(tmp_path)


async def test_a_form_checks_a_slot_value_against_an_api(api_server, clients) -> None:
    base, _ = api_server
    slot = SlotSpec("tracking_no", "text", (SlotMapping("from_text"),))
    ask = {"utter_ask_tracking_no": (ResponseVariation("Tracking number?"),)}
    domain = Domain(
        ("inform",), slots={"tracking_no": slot}, responses=ask, forms={"f": FormSpec("f", ("tracking_no",))}
    )
    exists = action(base, clients, domain, slots={})
    missing = action(base, clients, domain, url=f"{base}/missing?n={{{{ tracking_no }}}}", slots={})
    down = action(base, clients, domain, url="http://127.0.0.1:9/{{ tracking_no }}", retries=0, slots={})
    for api, accepted in ((exists, True), (missing, False), (down, True)):  # down: the customer is not blamed
        rules = FormRules(FormConfig(slots={"tracking_no": SlotValidation(api="check")}), apis={"check": api})
        rules.check()
        started = [SessionStarted(), ActionExecuted(name="f"), FormActivated(name="f")]
        asked = Session("c").with_events([*started, SlotSet(name="requested_slot", value="tracking_no")])
        answer = NluResult(text="SF123", intent="inform", confidence=0.9)
        s = asked.with_events([UserUttered(text="SF123", nlu=answer)])
        events = await FormAction(domain.forms["f"], ResponseRenderer(domain), rules).run(s, domain, TraceRecorder("c"))
        assert any(isinstance(e, SlotSet) and e.value == "SF123" for e in events) is accepted
        assert any(isinstance(e, SlotRejected) for e in events) is not accepted
    with pytest.raises(ConfigError, match="not declared under `actions: apis:`"):
        FormRules(FormConfig(slots={"tracking_no": SlotValidation(api="nope")})).check()
