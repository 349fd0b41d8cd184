"""The stored form of events: compact, and read back as they were (less the NLU ranking's tail)."""

from __future__ import annotations

import json

from bot.events import (
    ActionExecuted,
    BotUttered,
    FeedbackGiven,
    HandedOff,
    SlotSet,
    UserUttered,
    decode_event,
    encode_event,
    event_to_dict,
)
from bot.types import Button, Entity, IntentScore, NluResult


def _ranking(n: int) -> tuple[IntentScore, ...]:
    return tuple(IntentScore(f"intent_{i}", 1 / (i + 2)) for i in range(n))


def test_every_kind_of_value_survives_the_round_trip() -> None:
    events = [
        SlotSet(name="requested_slot", value=None, timestamp=1.5),
        SlotSet(name="count", value=0, timestamp=2.0),
        SlotSet(name="flag", value=False, timestamp=2.0),
        ActionExecuted(name="utter_greet", policy="rules", confidence=0.25, timestamp=3.0),
        ActionExecuted(name="action_listen", timestamp=3.0),
        BotUttered(
            text="请选择", buttons=(Button("退货", "/return"),), fact_ids=("faq_1",), reply_id="r1", timestamp=4
        ),
        BotUttered(text="", custom={"card": {}}, timestamp=4.0),
        FeedbackGiven(rating=-1, kind="thumbs", reply_id="r1", timestamp=5.0),
        HandedOff(reason="requested:request_human", timestamp=6.0),
    ]
    for event in events:
        assert decode_event(encode_event(event)) == event


def test_a_user_message_keeps_its_top_intents_and_drops_what_is_empty() -> None:
    nlu = NluResult(
        "帮我查订单SO20261002", "check_order_status", 0.912345678, _ranking(10),
        (Entity("order_id", "SO20261002", 5, 15, 1.0, "regex"),), "zh",
    )  # fmt: skip
    said = UserUttered(
        text="帮我查订单SO20261002", message_id="m-1", channel="web", nlu=nlu, timestamp=1795511434.12345
    )
    raw = encode_event(said)
    stored = json.loads(raw)
    assert "text" not in stored["nlu"] and "warnings" not in stored["nlu"] and len(stored["nlu"]["ranking"]) == 3
    back = decode_event(raw)
    assert isinstance(back, UserUttered) and back.nlu is not None
    assert back.nlu.text == said.text and back.nlu.entities == nlu.entities and back.nlu.confidence == 0.9123
    assert [s.name for s in back.nlu.ranking] == ["intent_0", "intent_1", "intent_2"]
    assert back.timestamp == said.timestamp and back.message_id == "m-1"
    masked = UserUttered(text="我的手机 13912345678", nlu=NluResult("我的手机 [phone]", "inform", 0.9))
    back_masked = decode_event(encode_event(masked))
    assert isinstance(back_masked, UserUttered) and back_masked.nlu is not None
    assert back_masked.nlu.text == "我的手机 [phone]"  # what the NLU saw differs, so it is kept
    everything = json.dumps(event_to_dict(said), ensure_ascii=False, separators=(",", ":"))
    assert len(raw) < 0.6 * len(everything)


def test_an_encoded_event_is_one_line() -> None:
    """Batches of stored events (`bot/sessions/event_batches.py`) hold one event a line."""
    said = UserUttered(text="第一行\n第二行\r\u2028\u0085", nlu=NluResult("a\nb", "inform", 0.9))
    raw = encode_event(said)
    assert "\n" not in raw and "\r" not in raw
    assert decode_event(raw) == said
