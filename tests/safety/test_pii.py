"""PII detection and masking: check digits, Luhn, formats, and what must never be masked."""

from __future__ import annotations

import pytest

from safety.pii import PiiMasker, id_check_char, luhn_valid, mask_pii


def published_check_char(first17: str) -> str:
    """GB 11643-1999 as published: weights 2^(17-i) mod 11, check = (12 - sum mod 11) mod 11, 10 is X."""
    total = sum(int(d) * (2 ** (17 - i) % 11) for i, d in enumerate(first17))
    value = (12 - total % 11) % 11
    return "X" if value == 10 else str(value)


def luhn_complete(partial: str) -> str:
    """Append the Luhn check digit to `partial` (computed independently of the module)."""
    for check in "0123456789":
        digits = [int(d) for d in partial + check]
        total = sum(d if i % 2 == 0 else (d * 2 - 9 if d * 2 > 9 else d * 2) for i, d in enumerate(reversed(digits)))
        if total % 10 == 0:
            return partial + check
    raise AssertionError("unreachable")


def kinds(text: str) -> list[str]:
    return [m.kind for m in mask_pii(text)[1]]


# --- resident ID numbers ---


def test_published_example_id_is_masked() -> None:
    masked, matches = mask_pii("身份证号11010519491231002X，请核实")
    assert masked == "身份证号110***********002X，请核实"
    assert [m.kind for m in matches] == ["cn_id"]


@pytest.mark.parametrize("first17", ["44030419900101123", "31011519851231456", "51010720000229789"])
def test_constructed_valid_ids_are_masked(first17: str) -> None:
    number = first17 + published_check_char(first17)
    assert id_check_char(first17) == published_check_char(first17)
    masked, _ = mask_pii(f"我的身份证是{number}")
    assert masked == f"我的身份证是{number[:3]}***********{number[-4:]}"


def test_id_with_wrong_check_digit_is_not_an_id() -> None:
    assert kinds("身份证110105194912310021") == []


def test_lowercase_x_and_grouped_id() -> None:
    assert mask_pii("11010519491231002x")[0] == "110***********002X"
    assert mask_pii("110105 19491231 002X")[0] == "110***********002X"


# --- mobiles ---


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("我的手机号13812345678谢谢", "我的手机号138****5678谢谢"),
        ("电话：+86 138 1234 5678。", "电话：+86 138****5678。"),
        ("8613912345678", "86139****5678"),
        ("打 159-1234-5678 找我", "打 159****5678 找我"),
        ("手机号１３８１２３４５６７８。", "手机号138****5678。"),  # full-width digits
    ],
)
def test_mobiles_in_chinese_text(text: str, expected: str) -> None:
    assert mask_pii(text)[0] == expected


def test_mobile_inside_longer_digit_run_or_id_is_not_masked() -> None:
    assert kinds("流水号2138123456789") == []
    assert kinds("订单SO13812345678") == []
    assert kinds("12812345678") == []  # second digit 2: not a mobile number range


# --- bank cards ---


@pytest.mark.parametrize(
    "card",
    ["4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111", "5555 5555 5555 4444", "3782 822463 10005"],
)
def test_luhn_valid_cards_are_masked(card: str) -> None:
    masked, matches = mask_pii(f"卡号{card}，谢谢")
    assert masked == f"卡号**** **** **** {card[-4:]}，谢谢"
    assert [m.kind for m in matches] == ["bank_card"]


def test_nineteen_digit_unionpay_card() -> None:
    card = luhn_complete("622202123456789012")
    assert luhn_valid(card)
    assert (
        mask_pii(f"{card[:4]} {card[4:8]} {card[8:12]} {card[12:16]} {card[16:]}")[0] == f"**** **** **** {card[-4:]}"
    )


def test_luhn_invalid_card_is_not_masked() -> None:
    assert not luhn_valid("4111111111111112")
    assert kinds("4111 1111 1111 1112") == []


def test_luhn_valid_number_outside_issuer_ranges_is_not_a_card() -> None:
    order = luhn_complete("2026100112345")  # an order number that happens to pass Luhn
    assert kinds(f"订单号{order}") == []


# --- e-mail, SSN, phones ---


def test_email_in_chinese_text() -> None:
    assert mask_pii("邮箱zhangsan@example.com谢谢")[0] == "邮箱z***@example.com谢谢"
    assert mask_pii("Write to Jane.Doe+cs@mail.example.co.uk.")[0] == "Write to J***@mail.example.co.uk."


def test_ssn() -> None:
    assert mask_pii("My SSN is 123-45-6789.")[0] == "My SSN is ***-**-6789."
    assert kinds("000-12-3456 and 123-00-4567") == []  # never issued


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("call +1 415 555 0134 now", "call +1 *** *** 0134 now"),
        ("call (415) 555-0134 now", "call (***) ***-0134 now"),
        ("call 415-555-0134", "call ***-***-0134"),
        ("call +44 20 7946 0958", "call +44 ** **** 0958"),
    ],
)
def test_phones(text: str, expected: str) -> None:
    assert mask_pii(text)[0] == expected


def test_service_hotlines_are_not_personal_data() -> None:
    assert kinds("客服热线400-820-8820，或 1-800-555-0199") == []


def test_keep_list_spares_public_values() -> None:
    text = "write to support@shop.example or 415-555-0134"
    assert mask_pii(text, keep=["Support@Shop.example", "(415) 555 0134"])[0] == text


# --- never masked ---


@pytest.mark.parametrize(
    "text",
    [
        "订单SO20261001什么时候发货？",
        "order SO20261001 costs ¥1299.00",
        "价格是12999元，优惠1000元",
        "2026-10-01 到 2026-10-07",
        "快递单号 SF1234567890123",
        "Version 3.14.159, 100% cotton, size 42",
    ],
)
def test_ordinary_numbers_are_not_masked(text: str) -> None:
    assert mask_pii(text) == (text, [])


def test_several_kinds_in_one_text_and_offsets() -> None:
    text = "我是张三，手机13812345678，邮箱z@example.com，卡号4111111111111111"
    masked, matches = mask_pii(text)
    assert [m.kind for m in matches] == ["cn_mobile", "email", "bank_card"]
    assert text[matches[0].start : matches[0].end] == "13812345678"
    assert masked == "我是张三，手机138****5678，邮箱z***@example.com，卡号**** **** **** 1111"


# --- the check ---


@pytest.mark.parametrize("stage", ["input", "output"])
def test_masker_verdict_redacts_and_never_blocks(stage: str) -> None:
    verdict = PiiMasker().check("卡号4111111111111111，身份证11010519491231002X", stage=stage)  # type: ignore[arg-type]
    assert verdict.allowed
    assert verdict.stage == stage
    assert verdict.category == "pii"
    assert verdict.redacted == "卡号**** **** **** 1111，身份证110***********002X"
    assert verdict.reason == "masked cn_id, bank_card"
    assert "4111" not in verdict.reason


def test_masker_without_pii_gives_a_plain_verdict() -> None:
    verdict = PiiMasker().check("订单SO20261001", stage="input")
    assert (verdict.allowed, verdict.redacted, verdict.category) == (True, None, "")


def test_masker_kinds_filter() -> None:
    verdict = PiiMasker(kinds=["email"]).check("13812345678 a@b.cn", stage="input")
    assert verdict.redacted == "13812345678 a***@b.cn"
    with pytest.raises(ValueError, match="unknown PII kinds"):
        PiiMasker(kinds=["passport"])
