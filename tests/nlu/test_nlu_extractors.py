from __future__ import annotations

import itertools
from collections.abc import Collection
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from bot.errors import ConfigError
from bot.nlu.extractors import RULE_DIMENSIONS, RuleExtractor, fold_width, parse_number
from bot.types import Entity

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI)  # a Monday
Found = list[tuple[str, str, str]]


def found(text: str, dimensions: Collection[str] = RULE_DIMENSIONS, **kwargs: str) -> Found:
    """(dimension, value, surface) of every entity, after checking what every result must satisfy."""
    entities = RuleExtractor(dimensions, **kwargs).extract(text, now=NOW)
    check_invariants(text, entities)
    return [(e.name, e.value, text[e.start : e.end]) for e in entities]


def check_invariants(text: str, entities: tuple[Entity, ...]) -> None:
    for entity in entities:
        assert 0 <= entity.start < entity.end <= len(text)
        assert (entity.extractor, entity.confidence) == ("rules", 1.0)
    for before, after in itertools.pairwise(entities):
        assert before.end <= after.start, "entities overlap or are out of order"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("我要买3个", [("3", "3")]),
        ("I need 3 of them", [("3", "3")]),
        ("about 2.50 kilos", [("2.5", "2.50")]),
        ("预算1万", [("10000", "1万")]),
        ("2.5万就行", [("25000", "2.5万")]),
        ("1,299 units", [("1299", "1,299")]),
        ("三", [("3", "三")]),
        ("我要三个", [("3", "三")]),
        ("十二", [("12", "十二")]),
        ("两百", [("200", "两百")]),
        ("两百五", [("250", "两百五")]),
        ("一百零五", [("105", "一百零五")]),
        ("一万五", [("15000", "一万五")]),
        ("3千克", [("3", "3")]),  # a kilogram, not three thousand
        ("3，456", [("3", "3"), ("456", "456")]),  # the full-width comma separates clauses
        ("123456789012345678901234567890123", [("123456789012345678901234567890123",) * 2]),
        ("查一下订单", []),  # 一 inside a word
        ("我一直在等", []),
        ("万一坏了呢", []),  # "just in case"
        ("千万别发错", []),  # "by all means"
        ("三四个", []),  # "three or four" is not one number
        ("我的X1坏了", []),  # part of a product name
    ],
)
def test_numbers(text: str, expected: list[tuple[str, str]]) -> None:
    assert found(text, ["number"]) == [("number", value, surface) for value, surface in expected]


@pytest.mark.parametrize(
    ("text", "value", "surface"),
    [
        ("这个¥199吗", "199.00 CNY", "¥199"),
        ("付了￥１９９", "199.00 CNY", "￥１９９"),
        ("花了199元", "199.00 CNY", "199元"),
        ("199块", "199.00 CNY", "199块"),
        ("才199块钱", "199.00 CNY", "199块钱"),
        ("RMB 199", "199.00 CNY", "RMB 199"),
        ("199 rmb", "199.00 CNY", "199 rmb"),
        ("it was 199 yuan", "199.00 CNY", "199 yuan"),
        ("两百块", "200.00 CNY", "两百块"),
        ("1.5万元", "15000.00 CNY", "1.5万元"),
        ("5块5", "5.50 CNY", "5块5"),
        ("三块五毛", "3.50 CNY", "三块五毛"),
        ("五毛钱", "0.50 CNY", "五毛钱"),
        ("refund $12.5 please", "12.50 USD", "$12.5"),
        ("US$1,299", "1299.00 USD", "US$1,299"),
        ("12.50 dollars", "12.50 USD", "12.50 dollars"),
        ("USD 12.5", "12.50 USD", "USD 12.5"),
        ("退12.5美元", "12.50 USD", "12.5美元"),
        ("€20", "20.00 EUR", "€20"),
    ],
)
def test_amounts_of_money(text: str, value: str, surface: str) -> None:
    assert found(text, ["amount_of_money"]) == [("amount_of_money", value, surface)]


def test_money_does_not_swallow_what_follows_the_yuan() -> None:
    assert found("100块2件", ["amount_of_money", "number"]) == [
        ("amount_of_money", "100.00 CNY", "100块"),
        ("number", "2", "2"),
    ]


@pytest.mark.parametrize(
    ("text", "value", "surface"),
    [
        ("今天能发货吗", "2026-11-23", "今天"),
        ("明天到", "2026-11-24", "明天"),
        ("后天", "2026-11-25", "后天"),
        ("昨天下的单", "2026-11-22", "昨天"),
        ("大后天", "2026-11-26", "大后天"),
        ("下周五送", "2026-12-04", "下周五"),
        ("这周三", "2026-11-25", "这周三"),
        ("上周五", "2026-11-20", "上周五"),
        ("周五", "2026-11-27", "周五"),
        ("星期五", "2026-11-27", "星期五"),
        ("礼拜五", "2026-11-27", "礼拜五"),
        ("周一", "2026-11-23", "周一"),  # today is a Monday: the next Monday is today
        ("下个星期天", "2026-12-06", "下个星期天"),
        ("3月5日", "2026-03-05", "3月5日"),
        ("3月5号到", "2026-03-05", "3月5号"),
        ("2026年3月5日", "2026-03-05", "2026年3月5日"),
        ("二〇二七年三月五日", "2027-03-05", "二〇二七年三月五日"),
        ("十一月二十四日", "2026-11-24", "十一月二十四日"),
        ("2026-03-05", "2026-03-05", "2026-03-05"),
        ("2026/3/5", "2026-03-05", "2026/3/5"),
        ("３月５日", "2026-03-05", "３月５日"),
        ("can it come today?", "2026-11-23", "today"),
        ("tomorrow", "2026-11-24", "tomorrow"),
        ("Yesterday", "2026-11-22", "Yesterday"),
        ("the day after tomorrow", "2026-11-25", "the day after tomorrow"),
        ("next Friday", "2026-12-04", "next Friday"),
        ("this Friday", "2026-11-27", "this Friday"),
        ("last Friday", "2026-11-20", "last Friday"),
        ("deliver on Friday", "2026-11-27", "on Friday"),
        ("March 5", "2026-03-05", "March 5"),
        ("5 March", "2026-03-05", "5 March"),
        ("the 5th of March", "2026-03-05", "5th of March"),
        ("March 5th 2026", "2026-03-05", "March 5th 2026"),
        ("Dec 1st, 2027", "2027-12-01", "Dec 1st, 2027"),
        ("in 3 days", "2026-11-26", "in 3 days"),
        ("in two weeks", "2026-12-07", "in two weeks"),
        ("3 days ago", "2026-11-20", "3 days ago"),
        ("3天后", "2026-11-26", "3天后"),
        ("三天以后", "2026-11-26", "三天以后"),
        ("两个星期前", "2026-11-09", "两个星期前"),
        ("下午3点", "2026-11-23T15:00", "下午3点"),
        ("晚上8点半", "2026-11-23T20:30", "晚上8点半"),
        ("上午十点一刻", "2026-11-23T10:15", "上午十点一刻"),
        ("中午12点", "2026-11-23T12:00", "中午12点"),
        ("晚上12点", "2026-11-24T00:00", "晚上12点"),  # midnight at the end of today
        ("3pm", "2026-11-23T15:00", "3pm"),
        ("at 9:05 a.m.", "2026-11-23T09:05", "9:05 a.m."),
        ("15:30", "2026-11-23T15:30", "15:30"),
        ("１５：３０", "2026-11-23T15:30", "１５：３０"),
        ("今晚8点", "2026-11-23T20:00", "今晚8点"),
        ("明晚8点", "2026-11-24T20:00", "明晚8点"),
        ("我想明天下午3点来取", "2026-11-24T15:00", "明天下午3点"),
        ("明天一点", "2026-11-24T01:00", "明天一点"),
        ("下周五 15:30", "2026-12-04T15:30", "下周五 15:30"),
        ("3月5日下午两点", "2026-03-05T14:00", "3月5日下午两点"),
        ("tomorrow at 3pm", "2026-11-24T15:00", "tomorrow at 3pm"),
        ("3pm tomorrow", "2026-11-24T15:00", "3pm tomorrow"),
        ("2026-03-05 09:30", "2026-03-05T09:30", "2026-03-05 09:30"),
    ],
)
def test_times(text: str, value: str, surface: str) -> None:
    assert found(text, ["time"]) == [("time", value, surface)]


@pytest.mark.parametrize(
    "text",
    [
        "便宜一点",  # "a bit cheaper", not one o'clock
        "我有三点建议",  # "three points"
        "这周一直没收到",  # "all week", not Monday
        "一时半会儿",  # "a while"
        "2月30日",
        "2026-13-01",
        "25:00",
        "13pm",
        "marathon 5",
    ],
)
def test_not_times(text: str) -> None:
    assert found(text, ["time"]) == []


def test_relative_dates_use_the_extractor_time_zone() -> None:
    late_utc = datetime(2026, 11, 23, 20, 0, tzinfo=ZoneInfo("UTC"))  # already the 24th in Shanghai
    assert RuleExtractor(["time"]).extract("今天", now=late_utc)[0].value == "2026-11-24"
    assert RuleExtractor(["time"], timezone="UTC").extract("今天", now=late_utc)[0].value == "2026-11-23"
    assert RuleExtractor(["time"]).extract("today", now=datetime(2026, 1, 2, 23, 0))[0].value == "2026-01-02"


def test_without_now_dates_count_from_the_current_day_in_the_time_zone() -> None:
    before = datetime.now(SHANGHAI).date().isoformat()
    value = RuleExtractor(["time"]).extract("今天")[0].value
    assert value in {before, datetime.now(SHANGHAI).date().isoformat()}


@pytest.mark.parametrize(
    ("text", "value", "surface"),
    [
        ("电话13800138000", "13800138000", "13800138000"),
        ("call +86 138 0013 8000", "+8613800138000", "+86 138 0013 8000"),
        ("138-0013-8000", "13800138000", "138-0013-8000"),
        ("电话：010-12345678", "01012345678", "010-12345678"),
        ("(0755) 1234 5678", "075512345678", "(0755) 1234 5678"),
        ("call (415) 555-2671", "4155552671", "(415) 555-2671"),
        ("415-555-2671", "4155552671", "415-555-2671"),
        ("+1 415-555-2671", "+14155552671", "+1 415-555-2671"),
        ("客服热线400-820-8820", "4008208820", "400-820-8820"),
        ("电话１３８００１３８０００", "13800138000", "１３８００１３８０００"),
    ],
)
def test_phone_numbers(text: str, value: str, surface: str) -> None:
    assert found(text, ["phone_number"]) == [("phone_number", value, surface)]


@pytest.mark.parametrize(
    "text",
    [
        "12345678901",  # no mobile prefix 12
        "138001380001",  # twelve digits
        "SO13800138000",  # part of an id
        "138\n0013\n8000",  # a line break is no separator
        "2026-03-05",
    ],
)
def test_not_phone_numbers(text: str) -> None:
    assert found(text, ["phone_number"]) == []


@pytest.mark.parametrize(
    ("text", "value", "surface"),
    [
        ("订单SO20261001到哪了", "SO20261001", "SO20261001"),
        ("my order jd123456789 is late", "JD123456789", "jd123456789"),
        ("ＳＯ２０２６１００１", "SO20261001", "ＳＯ２０２６１００１"),
        ("订单号：123456789012345", "123456789012345", "123456789012345"),
        ("单号是 202611230000123", "202611230000123", "202611230000123"),
        ("order #123456789012", "123456789012", "123456789012"),
        ("my order number is 98765432109876", "98765432109876", "98765432109876"),
    ],
)
def test_order_ids(text: str, value: str, surface: str) -> None:
    assert found(text, ["order_id"]) == [("order_id", value, surface)]


@pytest.mark.parametrize(
    "text",
    [
        "123456789012345",  # a bare digit run needs an order cue
        "订单12345678901",  # eleven digits
        "SO12345",  # too few digits
        "ABCDE123456",  # too many letters
        "加我qq123456789",  # a QQ number
        "WX12345678",  # a WeChat id
    ],
)
def test_not_order_ids(text: str) -> None:
    assert found(text, ["order_id"]) == []


def test_a_custom_order_id_pattern_replaces_the_default() -> None:
    assert found("查kf-1234和SO20261001", ["order_id"], order_id_pattern=r"(?i)kf-\d{4}") == [
        ("order_id", "KF-1234", "kf-1234")
    ]


@pytest.mark.parametrize(
    ("text", "value", "surface"),
    [
        ("邮箱是Foo.Bar@Example.COM，谢谢", "foo.bar@example.com", "Foo.Bar@Example.COM"),
        ("mail me at a+b@mail.co.uk.", "a+b@mail.co.uk", "a+b@mail.co.uk"),
        ("ｋｅｆｕ＠ｅｘａｍｐｌｅ．ｃｎ", "kefu@example.cn", "ｋｅｆｕ＠ｅｘａｍｐｌｅ．ｃｎ"),
    ],
)
def test_emails(text: str, value: str, surface: str) -> None:
    assert found(text, ["email"]) == [("email", value, surface)]


@pytest.mark.parametrize("text", ["user@localhost", "@someone", "a@b.c"])
def test_not_emails(text: str) -> None:
    assert found(text, ["email"]) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("这件199元", [("amount_of_money", "199.00 CNY", "199元")]),
        ("打13800138000", [("phone_number", "13800138000", "13800138000")]),
        ("订单SO20261001", [("order_id", "SO20261001", "SO20261001")]),
        ("3月5日", [("time", "2026-03-05", "3月5日")]),
        ("2026-03-05", [("time", "2026-03-05", "2026-03-05")]),
        ("in 3 days", [("time", "2026-11-26", "in 3 days")]),
        ("a@b.com", [("email", "a@b.com", "a@b.com")]),
        ("订单号123456789012", [("order_id", "123456789012", "123456789012")]),
    ],
)
def test_the_most_specific_reading_hides_the_numbers_inside(text: str, expected: Found) -> None:
    assert found(text) == expected


def test_only_requested_dimensions_compete() -> None:
    assert found("3月5日", ["number"]) == [("number", "3", "3"), ("number", "5", "5")]
    assert found("199元", ["number"]) == [("number", "199", "199")]


def test_a_whole_message_in_reading_order() -> None:
    text = "明天下午3点给我打13800138000，退199元到 Kefu@Shop.cn，订单SO20261001，买了两件"
    assert found(text) == [
        ("time", "2026-11-24T15:00", "明天下午3点"),
        ("phone_number", "13800138000", "13800138000"),
        ("amount_of_money", "199.00 CNY", "199元"),
        ("email", "kefu@shop.cn", "Kefu@Shop.cn"),
        ("order_id", "SO20261001", "SO20261001"),
        ("number", "2", "两"),
    ]


def test_offsets_point_into_the_original_text_after_wide_and_expanding_characters() -> None:
    # 😀 is one code point; ㈠ and ﬁ expand under NFKC and must not shift the offsets
    text = "😀㈠ﬁ 电话１３８ ００１３ ８０００"
    entities = RuleExtractor().extract(text, now=NOW)
    assert [(e.name, e.value, e.start, text[e.start : e.end]) for e in entities] == [
        ("phone_number", "13800138000", 6, "１３８ ００１３ ８０００")
    ]


def test_fold_width_keeps_the_length() -> None:
    for text in ["１３８：ＡＢ￥", "㈠ﬁ½", "，。、", "😀\x00\u3000"]:
        assert len(fold_width(text)) == len(text)
    assert fold_width("１３８：ＡＢ￥\u3000") == "138:AB¥ "


@pytest.mark.parametrize("text", ["", " ", "\x00\x01\x02\x7f", "😀🎉👍", "\u200b\ufeff", "\ud800", "？？？", "。。。"])
def test_bad_input_gives_nothing_and_never_fails(text: str) -> None:
    assert RuleExtractor().extract(text, now=NOW) == ()


def test_control_characters_around_entities() -> None:
    assert found("\x0013800138000\x07") == [("phone_number", "13800138000", "13800138000")]


@pytest.mark.parametrize(
    "text",
    [
        "我要退订单SO20261001，退199元，明天下午3点给我打电话13800138000 foo@bar.com " * 2000,
        "a" * 100_000,
        "1" * 100_000,
        "一" * 100_000,
        "1-" * 50_000,
        "a@" * 50_000,
        "a@" + "b." * 50_000,
        "3" + " " * 100_000 + "x",
        "订单" + " " * 100_000 + "x",
        "+86" + " " * 100_000,
        "明天" + " " * 100_000 + "3点",
        "１" * 100_000,
    ],
    ids=lambda text: repr(text[:12]),
)
def test_long_messages_are_handled(text: str) -> None:
    # These inputs once took tens of seconds each (catastrophic backtracking); linear matching takes ~0.1 s.
    # No timed assertion (timings belong in bench/); a regression shows as a slow test run.
    entities = RuleExtractor().extract(text, now=NOW)
    check_invariants(text, entities)


def test_a_long_message_finds_every_entity() -> None:
    text = "订单SO20261001退199元 " * 10_000
    entities = RuleExtractor().extract(text, now=NOW)
    assert len(entities) == 20_000
    assert {e.name for e in entities} == {"order_id", "amount_of_money"}


def test_unknown_dimensions_are_a_config_error_naming_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"'duration'.*number, amount_of_money, time"):
        RuleExtractor(["number", "duration"])
    with pytest.raises(ConfigError, match="list of names"):
        RuleExtractor("number")


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="order_id_pattern"):
        RuleExtractor(order_id_pattern="SO(")
    with pytest.raises(ConfigError, match="time zone"):
        RuleExtractor(timezone="Mars/Olympus")


def test_an_order_id_pattern_that_matches_nothing_makes_no_empty_entities() -> None:
    assert RuleExtractor(["order_id"], order_id_pattern=r"x*").extract("abc") == ()


@pytest.mark.parametrize(
    ("token", "value"),
    [("3", "3"), ("1,299.50", "1299.5"), ("2.5万", "25000"), ("1.5亿", "150000000"), ("十二", "12"), ("千万", None)],
)
def test_parse_number(token: str, value: str | None) -> None:
    assert parse_number(token) == (None if value is None else Decimal(value))
