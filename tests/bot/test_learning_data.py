"""Training data from conversation events: which event patterns give SFT records and preference pairs, in TRL's
conversational format, masked, deduplicated and readable back."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from bot.errors import ProjectError
from bot.events import (
    BotUttered,
    Event,
    FeedbackGiven,
    HandedOff,
    OperatorMessage,
    SuggestionRated,
    UserUttered,
)
from bot.generation.learning_data import (
    PreferenceRecord,
    SftRecord,
    conversation_hash,
    conversation_records,
    export_records,
    read_preferences,
    read_sft,
    write_jsonl,
)
from bot.generation.prompts import PromptBuilder
from bot.types import Fact, NluResult

FACTS = {
    "ship": Fact("ship", "订单付款后48小时内发货。", "faq", 1.0, "faq.yml", "zh"),
    "return": Fact("return", "Items can be returned within 7 days of delivery.", "faq", 1.0, "faq.yml", "en"),
}
PROMPTS = PromptBuilder(brand="Kefu Shop")


def lookup(ids: Sequence[str]) -> list[Fact]:
    return [FACTS[i] for i in ids if i in FACTS]


def records(events: Sequence[Event], conversation_id: str = "c1") -> tuple[list[SftRecord], list[PreferenceRecord]]:
    return conversation_records(conversation_id, events, lookup, PROMPTS)


def user(text: str, masked: str | None = None) -> UserUttered:
    nlu = None if masked is None else NluResult(masked, "ask", 0.9, language="zh")
    return UserUttered(text=text, nlu=nlu)


def bot(text: str, reply_id: str, *, generated: bool = True, facts: tuple[str, ...] = ()) -> BotUttered:
    return BotUttered(text=text, reply_id=reply_id, template="generated" if generated else "utter_x", fact_ids=facts)


def thumbs(rating: int, reply_id: str = "") -> FeedbackGiven:
    return FeedbackGiven(rating=rating, reply_id=reply_id)


def csat(rating: int) -> FeedbackGiven:
    return FeedbackGiven(rating=rating, kind="csat")


def test_thumbs_up_gives_sft_with_the_facts_and_the_question() -> None:
    sft, pairs = records(
        [user("什么时候发货？"), bot("付款后48小时内发货。", "r1", facts=("ship", "gone")), thumbs(1, "r1")]
    )
    assert pairs == []
    [record] = sft
    assert (record.source, record.completion, record.conversation) == (
        "thumbs_up",
        "付款后48小时内发货。",
        conversation_hash("c1"),
    )
    system, question = record.prompt
    assert system["role"] == "system" and "[ship] 订单付款后48小时内发货。" in system["content"]
    assert "客服助手" in system["content"]  # the Chinese template: no language from NLU, but Han characters
    assert question == {"role": "user", "content": "什么时候发货？"}
    assert record.to_dict()["completion"] == [{"role": "assistant", "content": "付款后48小时内发货。"}]


def test_thumbs_down_and_an_operator_answer_give_a_pair_and_sft() -> None:
    events = [
        user("Can I return this?"),
        bot("No returns, sorry.", "r1", facts=("return",)),
        thumbs(-1, "r1"),
        user("I want a human"),
        HandedOff(reason="asked"),
        OperatorMessage(operator="amy", text="Yes, within 7 days of delivery."),
    ]
    sft, pairs = records(events)
    [pair] = pairs
    assert (pair.chosen, pair.rejected, pair.source) == (
        "Yes, within 7 days of delivery.",
        "No returns, sorry.",
        "thumbs_down+operator",
    )
    assert pair.prompt[-1]["content"] == "Can I return this?" and "[return]" in pair.prompt[0]["content"]
    assert "customer service assistant" in pair.prompt[0]["content"]  # English
    by_source = {r.source: r for r in sft}
    assert set(by_source) == {"thumbs_down+operator", "operator"}
    assert by_source["thumbs_down+operator"].prompt == pair.prompt
    operator = by_source["operator"]
    assert operator.prompt[-1]["content"] == "I want a human"
    # The earlier exchange is history; the operator answers with no facts (no bot reply answered this message).
    assert [m["role"] for m in operator.prompt] == ["system", "user", "assistant", "user"]
    assert "[return]" not in operator.prompt[0]["content"]


def test_thumbs_down_without_an_operator_gives_nothing() -> None:
    assert records([user("hi"), bot("Hello!", "r1"), thumbs(-1, "r1"), csat(5)]) == ([], [])


def test_high_csat_keeps_generated_replies_not_rated_down() -> None:
    events = [
        user("什么时候发货？"),
        bot("付款后48小时内发货。", "r1", facts=("ship",)),
        user("好的，能退货吗？"),
        bot("可以，签收后7天内。", "r2"),
        bot("请问还有什么可以帮您？", "r3", generated=False),
        user("谢谢"),
        bot("不客气，亲。", "r4"),
        thumbs(-1, "r4"),
        csat(5),
    ]
    sft, pairs = records(events)
    assert pairs == []
    assert [(r.source, r.completion) for r in sft] == [
        ("csat", "付款后48小时内发货。"),
        ("csat", "可以，签收后7天内。"),
    ]
    assert [m["content"] for m in sft[1].prompt[1:]] == ["什么时候发货？", "付款后48小时内发货。", "好的，能退货吗？"]


def test_low_csat_drops_the_bot_replies_but_not_the_operators() -> None:
    events = [
        user("where is my parcel"),
        bot("It is on its way.", "r1"),
        thumbs(1, "r1"),
        HandedOff(reason="asked"),
        OperatorMessage(operator="amy", text="It arrives tomorrow."),
        csat(1),
    ]
    sft, _ = records(events)
    assert [(r.source, r.completion) for r in sft] == [("operator", "It arrives tomorrow.")]


def test_operator_messages_count_only_when_handed_off_and_not_rated_down() -> None:
    not_handed_off = [user("hello"), OperatorMessage(operator="amy", text="Hi, how can I help?")]
    assert records(not_handed_off) == ([], [])
    rated_down = [user("hello"), HandedOff(reason="x"), OperatorMessage(operator="amy", text="Go away."), thumbs(-1)]
    assert records(rated_down) == ([], [])
    before_any_user = [HandedOff(reason="x"), OperatorMessage(operator="amy", text="Hi!")]
    assert records(before_any_user) == ([], [])


def test_suggestions_accepted_edited_and_ignored() -> None:
    events = [
        user("什么时候发货？"),
        bot("付款后48小时内发货。", "r1", facts=("ship",)),
        HandedOff(reason="asked"),
        SuggestionRated(suggestion="48小时内发货。", outcome="accepted", source="faq"),
        SuggestionRated(suggestion="马上发货。", outcome="edited", sent="付款后48小时内发货，请耐心等待。"),
        SuggestionRated(suggestion="已经发货了。", outcome="ignored", sent="您的订单明天发货。"),
        SuggestionRated(suggestion="没有信息。", outcome="ignored", sent=""),
        SuggestionRated(suggestion="一样的。", outcome="edited", sent="一样的。"),
    ]
    sft, pairs = records(events)
    assert [(r.source, r.completion) for r in sft] == [
        ("suggestion_accepted", "48小时内发货。"),
        ("suggestion_edited", "付款后48小时内发货，请耐心等待。"),
        ("suggestion_edited", "一样的。"),
    ]
    assert [(p.source, p.chosen, p.rejected) for p in pairs] == [
        ("suggestion_edited", "付款后48小时内发货，请耐心等待。", "马上发货。"),
        ("suggestion_ignored", "您的订单明天发货。", "已经发货了。"),
    ]
    assert all("[ship]" in r.prompt[0]["content"] for r in sft)  # the bot's facts for this user message
    assert all("[ship]" in p.prompt[0]["content"] for p in pairs)


def test_personal_data_and_the_conversation_id_never_leave(tmp_path: Path) -> None:
    events = [
        user("我的手机号13812345678，快递到了吗"),  # no NLU result: the raw text, masked on export
        HandedOff(reason="asked"),
        OperatorMessage(operator="amy", text="已发到您的邮箱 zhang.san@example.com，或拨打 13812345678。"),
        user("原文 13987654321", masked="原文 139****4321"),
        bot("收到。", "r1"),
        thumbs(1, "r1"),
    ]
    result = export_records([("+8613812345678", events)], lookup, PROMPTS)
    path = tmp_path / "sft.jsonl"
    write_jsonl(result.sft, path)
    text = path.read_text(encoding="utf-8")
    assert len(result.sft) == 2
    for secret in ("13812345678", "zhang.san", "13987654321", "8613812345678"):
        assert secret not in text
    assert "138****5678" in text and "z***@example.com" in text and "139****4321" in text
    assert json.loads(text.splitlines()[0])["meta"]["conversation"] == conversation_hash("+8613812345678")


def test_duplicates_within_a_conversation_are_dropped() -> None:
    events = [
        user("运费多少？"),
        HandedOff(reason="asked"),
        SuggestionRated(suggestion="满99元包邮。", outcome="accepted"),
        OperatorMessage(operator="amy", text="满99元包邮。"),
        SuggestionRated(suggestion="满99元包邮。", outcome="accepted"),
        SuggestionRated(suggestion="不包邮。", outcome="edited", sent="满99元包邮。"),
        SuggestionRated(suggestion="不包邮。", outcome="ignored", sent="满99元包邮。"),
    ]
    sft, pairs = records(events)
    assert [(r.source, r.completion) for r in sft] == [("suggestion_accepted", "满99元包邮。")]
    assert [(p.source, p.chosen, p.rejected) for p in pairs] == [("suggestion_edited", "满99元包邮。", "不包邮。")]


def test_history_keeps_four_exchanges_and_uses_the_nlu_text() -> None:
    events: list[Event] = []
    for i in range(6):
        events += [user(f"question {i}"), bot(f"answer {i}", f"a{i}", generated=False)]
    events += [user("最后 13812345678", masked="最后 138****5678"), bot("好的。", "last"), thumbs(1, "last")]
    [record], _ = records(events)
    contents = [m["content"] for m in record.prompt[1:]]
    window = [text for i in range(2, 6) for text in (f"question {i}", f"answer {i}")]
    assert contents == [*window, "最后 138****5678"]
    assert "客服助手" in record.prompt[0]["content"]  # the language NLU detected


def test_export_counts_and_jsonl_round_trip(tmp_path: Path) -> None:
    thumbs_up = [user("什么时候发货？"), bot("48小时内。", "r1"), thumbs(1, "r1")]
    edited = [user("Can I return it?"), SuggestionRated(suggestion="No.", outcome="edited", sent="Yes, within 7 days.")]
    result = export_records([("a", thumbs_up), ("b", edited), ("c", [])], lookup, PROMPTS)
    assert result.conversations == 3
    assert dict(result.counts) == {"sft/thumbs_up": 1, "sft/suggestion_edited": 1, "preference/suggestion_edited": 1}
    assert "2 SFT records, 1 pairs" in result.summary()
    assert write_jsonl(result.sft, tmp_path / "sft.jsonl") == 2
    assert write_jsonl(result.preferences, tmp_path / "out" / "pairs.jsonl") == 1
    assert read_sft(tmp_path / "sft.jsonl") == list(result.sft)
    assert read_preferences(tmp_path / "out" / "pairs.jsonl") == list(result.preferences)
    assert "48小时内" in (tmp_path / "sft.jsonl").read_text(encoding="utf-8")  # not \\u-escaped
    [line] = (tmp_path / "out" / "pairs.jsonl").read_text(encoding="utf-8").splitlines()
    data = json.loads(line)
    assert set(data) == {"prompt", "chosen", "rejected", "meta"}
    assert data["chosen"] == [{"role": "assistant", "content": "Yes, within 7 days."}]
    assert data["rejected"] == [{"role": "assistant", "content": "No."}]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("{not json", "malformed record"),
        ('["a list"]', "expected a JSON object"),
        (
            '{"prompt": [{"role": "boss", "content": "x"}], "completion": [{"role": "assistant", "content": "y"}]}',
            "role",
        ),
        ('{"prompt": [{"role": "user", "content": "x"}], "completion": "y"}', "'completion'"),
        (
            '{"prompt": [{"role": "user", "content": "x"}], "completion": [{"role": "user", "content": "y"}]}',
            "one assistant",
        ),
    ],
)
def test_a_malformed_line_names_the_file_and_the_line(tmp_path: Path, line: str, reason: str) -> None:
    good = '{"prompt": [{"role": "user", "content": "x"}], "completion": [{"role": "assistant", "content": "y"}]}'
    path = tmp_path / "sft.jsonl"
    path.write_text(f"{good}\n\n{line}\n", encoding="utf-8")
    with pytest.raises(ProjectError, match=reason) as caught:
        read_sft(path)
    assert (caught.value.path, caught.value.line) == (str(path), 3)
    assert f"{path}:3" in str(caught.value)
    with pytest.raises(ProjectError, match="cannot read"):
        read_preferences(tmp_path / "missing.jsonl")


def test_records_without_kefu_meta_are_read(tmp_path: Path) -> None:
    path = tmp_path / "other.jsonl"
    path.write_text(
        '{"prompt": [{"role": "user", "content": "x"}], "completion": [{"role": "assistant", "content": "y"}]}\n'
    )
    [record] = read_sft(path)
    assert (record.completion, record.source, record.conversation) == ("y", "", "")
