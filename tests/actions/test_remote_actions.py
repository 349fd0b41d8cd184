"""RemoteAction against a real rasa-sdk action server (tests/actions/sdk_actions.py), round trip and errors."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from bot.actions.rasa_tracker import domain_json, events_from_rasa, responses_from_rasa, tracker_json
from bot.actions.remote import ActionRejectedError, ActionServer, RemoteAction, remote_actions
from bot.actions.responses import ResponseAction, ResponseRenderer
from bot.errors import ActionError, ConfigError
from bot.events import (
    ActionExecuted,
    BotUttered,
    FormActivated,
    FormCompleted,
    HandedOff,
    Session,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from bot.trace import TraceRecorder
from bot.turn import TurnParts, run_turn
from bot.types import (
    Button,
    Domain,
    Entity,
    FormSpec,
    IntentScore,
    Message,
    NluResult,
    ResponseCondition,
    ResponseVariation,
    SlotMapping,
    SlotSpec,
    Story,
    StoryStep,
)
from policies.ensemble import PolicyEnsemble
from policies.rules import RulePolicy
from safety.pipeline import SafetyPipeline
from tests.actions.conftest import free_port

pytestmark = pytest.mark.integration

TEXT = "查订单 SO20261001 的耳机"
NLU = NluResult(
    text=TEXT,
    intent="check_order",
    confidence=0.93,
    ranking=(IntentScore("check_order", 0.93), IntentScore("greet", 0.05)),
    entities=(Entity("order_id", "SO20261001", 4, 14, extractor="regex"), Entity("product", "耳机", 16, 18)),
    language="zh",
)


def slot(name: str, kind: str = "text", *mappings: SlotMapping) -> SlotSpec:
    return SlotSpec(name, kind, mappings)


DOMAIN = Domain(
    intents=("check_order", "greet"),
    entities=("order_id", "product"),
    slots={
        "order_id": slot("order_id", "text", SlotMapping("from_entity", entity="order_id")),
        "product": slot("product", "text", SlotMapping("from_entity", entity="product", active_loop="order_form")),
        "order_status": slot("order_status"),
        "echo": slot("echo", "any"),
        "language": SlotSpec("language", "categorical", values=("zh", "en")),
    },
    responses={
        "utter_order_status": (
            ResponseVariation("订单状态：{status}", conditions=(ResponseCondition("language", "zh"),)),
            ResponseVariation("Order status: {status}", conditions=(ResponseCondition("language", "en"),)),
        ),
        "utter_bad_order_id": (ResponseVariation("{{ value }} 不是订单号 / is not an order id"),),
        "utter_greet": (ResponseVariation("您好！Hello!"),),
    },
    forms={"order_form": FormSpec("order_form", ("order_id",))},
    actions=("action_check_order", "action_echo_tracker", "validate_order_form"),
)
RENDERER = ResponseRenderer(DOMAIN)


def asked(*later: object) -> Session:
    """A session in which the user asked for an order, as a turn records it."""
    said = UserUttered(text=TEXT, message_id="m1", channel="rest", nlu=NLU)
    events = [
        SessionStarted(),
        SlotSet(name="language", value="zh"),
        said,
        SlotSet(name="order_id", value="SO20261001"),
    ]
    return Session("conv-1").with_events([*events, *later])  # type: ignore[list-item]


@pytest.fixture
async def server(action_server: str) -> AsyncIterator[ActionServer]:
    server = ActionServer(action_server, timeout=5.0)
    yield server
    await server.aclose()


async def run(server: ActionServer, name: str, session: Session) -> list:
    return await RemoteAction(name, server, RENDERER).run(session, DOMAIN, TraceRecorder("conv-1"))


async def test_a_custom_action_reads_slots_and_entities_and_answers_with_responses_and_slots(server) -> None:
    events = await run(server, "action_check_order", asked())
    assert events == [
        BotUttered(text="订单状态：已发货 shipped", template="utter_order_status", timestamp=events[0].timestamp),
        BotUttered(
            text="SO20261001: 耳机",
            buttons=(Button("确认 OK", "/affirm"), Button("转人工 Agent", "/handoff")),
            timestamp=events[1].timestamp,
        ),
        SlotSet(name="order_status", value="shipped", timestamp=events[2].timestamp),
        SlotSet(name="product", value="耳机", timestamp=events[3].timestamp),
    ]


async def test_the_tracker_and_domain_arrive_as_rasa_sdk_reads_them(server) -> None:
    session = asked(ActionExecuted(name="order_form"), FormActivated(name="order_form"), BotUttered(text="好的"))
    [echo] = await run(server, "action_echo_tracker", session)
    seen = json.loads(echo.value)
    assert seen["sender_id"] == "conv-1"
    assert seen["slots"] == {"order_id": "SO20261001", "product": None, "order_status": None, "echo": None,
                             "language": "zh", "requested_slot": None}  # fmt: skip
    assert (seen["intent"], seen["text"], seen["entities"]) == ("check_order", TEXT, ["SO20261001"])
    assert (seen["latest_action"], seen["active_loop"], seen["channel"], seen["paused"]) == (
        "order_form",
        "order_form",
        "rest",
        False,
    )
    assert seen["events"] == ["session_started", "slot", "action", "user", "slot", "action", "active_loop", "bot"]
    assert seen["last_bot"]["text"] == "好的"
    assert seen["domain_slots"] == sorted([*DOMAIN.slots, "requested_slot"])
    assert seen["domain_forms"] == {"order_form": {"required_slots": ["order_id"]}}
    assert seen["domain_responses"] == sorted(DOMAIN.responses)


async def test_form_validation_clears_a_bad_value_and_says_why(server) -> None:
    active = [ActionExecuted(name="order_form"), FormActivated(name="order_form")]
    bad = asked(*active, UserUttered(text="12345", nlu=NLU), SlotSet(name="order_id", value="12345"))
    events = await run(server, "validate_order_form", bad)
    assert [type(e) for e in events] == [BotUttered, SlotSet]
    assert events[0].text == "12345 不是订单号 / is not an order id"
    assert (events[1].name, events[1].value) == ("order_id", None)
    good = asked(*active, UserUttered(text="so777", nlu=NLU), SlotSet(name="order_id", value="so777"))
    assert [(e.name, e.value) for e in await run(server, "validate_order_form", good)] == [("order_id", "SO777")]


async def test_reset_loops_and_pause_become_kefu_events(server) -> None:
    events = await run(server, "action_loop_and_reset", asked())
    assert [(type(e), getattr(e, "name", None)) for e in events] == [
        (SlotSet, "language"),
        (SlotSet, "order_id"),
        (FormActivated, "order_form"),
        (FormCompleted, "order_form"),
        (HandedOff, None),
    ]
    assert all(e.value is None for e in events if isinstance(e, SlotSet))


async def test_a_followup_action_is_a_clear_error(server) -> None:
    with pytest.raises(ActionError, match=r"action_followup.*follow-up action.*does not support"):
        await run(server, "action_followup", asked())


async def test_an_action_the_server_does_not_have(server) -> None:
    with pytest.raises(ActionError, match=r"'action_nope' is not registered on the action server at http://127"):
        await run(server, "action_nope", asked())


async def test_a_rejection_names_the_action_and_the_reason(server) -> None:
    with pytest.raises(ActionRejectedError, match="action 'action_reject' rejected execution") as caught:
        await run(server, "action_reject", asked())
    assert (caught.value.action, caught.value.reason) == ("action_reject", "order id missing 缺少订单号")


async def test_a_crashing_action_reports_the_error_but_not_the_conversation(server) -> None:
    with pytest.raises(ActionError, match=r"'action_crash' failed .* \(HTTP 500\): the order database is down") as e:
        await run(server, "action_crash", asked())
    assert "SO20261001" not in str(e.value)  # rasa-sdk echoes the request; kefu does not quote it


async def test_a_slow_action_times_out(action_server: str) -> None:
    server = ActionServer(action_server, timeout=0.3)
    with pytest.raises(ActionError, match=r"did not finish action 'action_slow' within 0.3 s"):
        await run(server, "action_slow", asked())
    await server.aclose()


async def test_no_server_running_says_how_to_start_one() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ActionError, match=rf"no action server at {url}: start it with `python -m rasa_sdk --actions"):
        await run(ActionServer(url, timeout=2.0), "action_check_order", asked())


async def test_a_wrong_server_path_is_reported_with_the_servers_words(action_server: str) -> None:
    with pytest.raises(ActionError, match=r"\(HTTP 500\): Requested URL /elsewhere/webhook not found"):
        await run(ActionServer(action_server + "/elsewhere", timeout=5.0), "action_check_order", asked())


@pytest.mark.parametrize("url", ["localhost:5055", "ftp://host", "http://host:5055/?token=x", "http://"])
def test_a_bad_server_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match="action server URL"):
        remote_actions(["action_x"], url, 1.0, RENDERER)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([{"event": "slot", "name": "x", "value": {"a": 1}}], "a kefu slot holds text"),
        ([{"event": "slot", "value": 1}], "`name` is not text"),
        (["slot"], "not a Rasa event"),
        ([{"event": "teleport"}], "does not know the Rasa event 'teleport'"),
        ([{"event": "restart"}], "a restart"),
        ([{"event": "bot", "text": "hi", "data": {"buttons": [{"payload": "/x"}]}}], "has no `title`"),
    ],
)
def test_malformed_or_unsupported_events_are_errors_that_name_the_action(raw, message) -> None:
    with pytest.raises(ActionError, match=message) as caught:
        events_from_rasa(raw, "action_x", asked())
    assert "action_x" in str(caught.value)


def test_a_response_the_domain_lacks_names_the_action() -> None:
    with pytest.raises(ActionError, match=r"action 'action_x' asked for a response .*'utter_nope' is not in domain"):
        responses_from_rasa([{"response": "utter_nope", "text": None}], "action_x", asked(), RENDERER)
    image_only = [{"text": None, "image": "https://example.com/x.png", "response": None, "buttons": []}]
    [shown] = responses_from_rasa(image_only, "action_x", asked(), RENDERER)  # an image alone is shown too
    assert (shown.text, shown.image) == ("", "https://example.com/x.png")
    assert responses_from_rasa([{"text": None, "attachment": "x.pdf"}], "action_x", asked(), RENDERER) == []


def test_ignored_events_and_bot_events() -> None:
    raw = [{"event": "action", "name": "x"}, {"event": "bot", "text": "hi", "data": {"buttons": [{"title": "t"}]}}]
    [bot] = events_from_rasa(raw, "action_x", asked())
    assert (bot.text, bot.buttons) == ("hi", (Button("t", ""),))


def test_the_json_has_rasas_shape() -> None:
    tracker = tracker_json(asked(), domain_json(DOMAIN)["slots"])
    assert tracker["latest_message"]["intent"] == {"name": "check_order", "confidence": 0.93}
    assert tracker["latest_message"]["intent_ranking"][1] == {"name": "greet", "confidence": 0.05}
    assert tracker["latest_message"]["entities"][0] == {
        "entity": "order_id", "value": "SO20261001", "start": 4, "end": 14, "confidence_entity": 1.0,
        "extractor": "regex",
    }  # fmt: skip
    assert "role" not in tracker["latest_message"]["entities"][1]
    with_role = UserUttered(
        text="换成耳机", nlu=replace(NLU, entities=(Entity("product", "耳机", 2, 4, role="replacement", group="1"),))
    )
    entity = tracker_json(Session("c").with_events([with_role]), {})["latest_message"]["entities"][0]
    assert (entity["role"], entity["group"]) == ("replacement", "1")
    assert tracker["latest_action_name"] == "action_listen" and tracker["active_loop"] == {}
    mapping = domain_json(DOMAIN)["slots"]["product"]["mappings"]
    assert mapping == [{"type": "from_entity", "entity": "product", "conditions": [{"active_loop": "order_form"}]}]


class FixedNlu:
    def parse(self, message: Message, session: Session) -> NluResult:
        return NLU


async def test_a_whole_turn_runs_the_remote_action(action_server: str) -> None:
    rule = Story(
        "check order", (StoryStep("intent", "check_order"), StoryStep("action", "action_check_order")), is_rule=True
    )
    actions = {
        **remote_actions(["action_check_order"], action_server, 5.0, RENDERER),
        "utter_greet": ResponseAction("utter_greet", RENDERER),
    }
    parts = TurnParts(
        DOMAIN, FixedNlu(), PolicyEnsemble([RulePolicy([rule])]), actions, SafetyPipeline([]), SafetyPipeline([])
    )
    session = Session("conv-2").with_events([SessionStarted(), SlotSet(name="language", value="zh")])
    result = await run_turn(parts, session, Message("conv-2", "rest", "u1", "m1", TEXT, time.time()))
    assert [r.text for r in result.replies] == ["订单状态：已发货 shipped", "SO20261001: 耳机"]
    assert result.replies[1].buttons[1] == Button("转人工 Agent", "/handoff")
    assert result.session.slots["order_status"] == "shipped" and result.session.slots["product"] == "耳机"
    assert [d.action for d in result.trace.decisions] == ["action_check_order", "action_listen"]
    assert any(s.name == "action_server" and "action_check_order" in s.detail for s in result.trace.stages)
