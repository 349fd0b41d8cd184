"""One commit's events as one stored element: every event type survives, old plain JSON elements still read, a
damaged element is the store's own error, and `Z1` elements written once keep decoding."""

from __future__ import annotations

import base64
import json

import pytest

from bot.errors import SessionStoreError
from bot.events import (
    EVENT_TYPES,
    ActionExecuted,
    BotUttered,
    Event,
    FeedbackGiven,
    FormActivated,
    FormCompleted,
    HandedBack,
    HandedOff,
    OperatorMessage,
    QuestionsRecommended,
    RecommendationClicked,
    RecommendationRated,
    RiskFlagged,
    SafetyBlocked,
    SessionStarted,
    SessionState,
    SlotRejected,
    SlotSet,
    SuggestionRated,
    TurnFailed,
    UserUttered,
    encode_event,
)
from bot.sessions.event_batches import MARKER, decode_element, decode_elements, deflate, encode_batch
from bot.sessions.redis_store import decode_state, encode_state
from bot.types import Button, Entity, IntentScore, NluResult
from tests.sessions.conversations import shop_turns

T = 1_795_518_101.5171723


def every_type() -> list[Event]:
    nlu = NluResult(
        "帮我查订单SO20261002", "check_order_status", 0.9615,
        (IntentScore("check_order_status", 0.9615), IntentScore("inform", 0.0061)),
        (Entity("order_id", "SO20261002", 5, 15, 1.0, "regex"),), "zh",
    )  # fmt: skip
    return [
        SessionStarted(timestamp=T),
        UserUttered(text="帮我查订单SO20261002", message_id="m-1", channel="widget", nlu=nlu, timestamp=T + 0.1),
        UserUttered(text='line one\nline two\u2028 and "quoted"', timestamp=T + 0.2),
        SlotSet(name="requested_slot", value=None, timestamp=T),
        SlotSet(name="sizes", value=["S", "M"], timestamp=T),
        SlotRejected(name="phone", value="123", reason="too short", timestamp=T),
        RiskFlagged(check="lexicon", category="self_harm", reason="keyword", timestamp=T),
        FormActivated(name="order_form", timestamp=T),
        FormCompleted(name="order_form", cancelled=True, timestamp=T),
        ActionExecuted(name="action_answer", policy="rules", confidence=0.25, timestamp=T),
        BotUttered(
            text="请选择",
            buttons=(Button("退货", "/return"),),
            template="knowledge:faq",
            fact_ids=("faq_1",),
            reply_id="r1",
            image="https://example.com/a.png",
            custom={"card": {"kind": "order"}},
            quick_replies=(Button("运费怎么收？", "运费怎么收？"),),
            timestamp=T,
        ),
        QuestionsRecommended(context="hot", items=("faq_ship_01_zh", "faq_ret_01_zh"), language="en", timestamp=T),
        RecommendationClicked(item="faq_ship_01_zh", context="hot", rank=2, timestamp=T),
        RecommendationRated(item="faq_ship_01_zh", context="hot", satisfied=False, signal="rephrase", timestamp=T),
        SafetyBlocked(check="pii", stage="output", category="phone", action="redact", rule="r1", timestamp=T),
        HandedOff(reason="requested:request_human", timestamp=T),
        HandedBack(timestamp=T),
        OperatorMessage(operator="alice", text="您好，我来处理", timestamp=T),
        FeedbackGiven(rating=4, kind="csat", comment="快", timestamp=T),
        SuggestionRated(suggestion="a", outcome="edited", sent="b", source="faq", operator="alice", timestamp=T),
        TurnFailed(stage="store", error="SessionStoreError", timestamp=T),
    ]


def test_every_event_type_survives_a_batch() -> None:
    events = every_type()
    assert {type(e) for e in events} == set(EVENT_TYPES.values()), "add the new event type to every_type()"
    element = encode_batch(events)
    assert element.startswith(MARKER)
    back = decode_element(element)
    assert back == events
    assert [e.reply_id for e in back if isinstance(e, BotUttered)] == ["r1"]  # not compared by ==


def test_a_batch_of_one_event_and_an_old_plain_json_element_both_read() -> None:
    said = UserUttered(text="你好", timestamp=T)
    assert decode_element(encode_batch([said])) == [said]
    assert decode_element(encode_event(said)) == [said]  # as redis-py returns it to a decoding client
    assert decode_element(encode_event(said).encode()) == [said]
    assert decode_elements([encode_event(said).encode(), encode_batch([said, said])]) == [said, said, said]


def test_a_turn_takes_about_a_third_of_its_json() -> None:
    turns = shop_turns()
    plain = sum(len(encode_event(e).encode()) for turn in turns for e in turn)
    stored = sum(len(encode_batch(turn)) for turn in turns)
    assert stored < 0.4 * plain, (stored, plain)
    assert [decode_element(encode_batch(turn)) for turn in turns] == turns


@pytest.mark.parametrize(
    "element",
    [
        b"",
        b"Z9" + b"\x00" * 10,  # a marker this version does not know
        b"Z1" + b"not deflate at all",
        encode_batch([SessionStarted(timestamp=T), HandedBack(timestamp=T)])[:-4],  # truncated
        encode_batch([SessionStarted(timestamp=T)]) + b"junk",  # stray bytes after the stream
        MARKER + deflate(b"not json", b""),  # wrong dictionary and not JSON
        b'{"event":"user","timestamp":1',  # a damaged old element
        b'{"event":"user","timestamp":1,"nlu":{"confidence":1}}',  # valid JSON, not an event
        b'{"event":"bot","timestamp":1,"text":"x","buttons":[1]}',
        b"{\xff\xfe}",
    ],
)
def test_a_damaged_element_is_a_session_store_error(element: bytes) -> None:
    with pytest.raises(SessionStoreError, match=r"stored session|does not read|does not match"):
        decode_element(element)


def test_an_empty_batch_is_never_written() -> None:
    with pytest.raises(ValueError, match="at least one event"):
        encode_batch([])


# A `Z1` element written when the format was made: if it stops decoding, the dictionary was edited. Keep the
# old bytes under `Z1` and give a new dictionary a new marker.
PINNED_Z1 = (
    "WjGllsENwjAMRe8dBtmOnTrjhNLO0Wt34MAYSIhtOggpqQgNVQLiHMuK7a+n9zUVnAgqAh4EW2zJ1GZL9fSsf8063y9BSvJrIyiYwQqTYw"
    "Yhj95jpxYIezp6/1canOIvgQjl9UwA2NpCd+CZtmLWrZRh2tSolBrytmEZdk2RKampbG+XC+V5mm/jYmBRaa6LYkZUfLJt/ckbcXpWKwN1"
    "JytSpE/UwqhRwSRzGO08Bw9+AA=="
)


def test_an_element_written_under_z1_still_decodes() -> None:
    nlu = NluResult("你好", "greet", 0.9981, (IntentScore("greet", 0.9981), IntentScore("thank", 0.0006)), (), "zh")
    quick = (Button("运费怎么收？", "运费怎么收？"),)
    assert decode_element(base64.b64decode(PINNED_Z1)) == [
        SessionStarted(timestamp=T),
        UserUttered(
            text="你好", message_id="10803f6542944052a1aa1c86021e2baa", channel="widget", nlu=nlu, timestamp=T + 0.01
        ),
        SlotSet(name="language", value="zh", timestamp=T + 0.02),
        ActionExecuted(name="utter_greet", policy="rules", timestamp=T + 0.03),
        BotUttered(text="您好！请问有什么可以帮您？", template="utter_greet", quick_replies=quick, timestamp=T + 0.04),
    ]


def test_the_state_is_stored_small_and_old_plain_json_state_still_reads() -> None:
    state = SessionState(
        slots={"language": "zh", "order_id": "SO20261002", "requested_slot": None},
        last_activity=T,
        session_number=1,
        turns=10,
    )
    stored = encode_state(state)
    assert decode_state(stored) == state
    assert len(stored) <= 64  # Redis keeps a hash of values this small in its compact encoding
    assert decode_state(json.dumps(state.to_dict(), ensure_ascii=False)) == state  # as kefu stored it before
    with pytest.raises(SessionStoreError, match="corrupt"):
        decode_state(stored[:-3])
