"""Grounding of generated replies: numbers, product names, promises, and claims the facts contradict."""

from __future__ import annotations

import re

import pytest

from bot.events import Session, SlotSet, UserUttered
from bot.types import Fact
from safety.claims import contradictions
from safety.grounding import GroundingCheck

CHARGING_EN = "Wireless charging works on the X1 Pro at up to 15 W; the X1 has no wireless charging."
CHARGING_ZH = "星耀X1不支持无线充电，星耀X1 Pro支持15W无线充电。"
RETURNS_ZH = ["支持7天无理由退货，商品需保持完好。", "定制商品不支持退货。"]


def products(text: str) -> frozenset[str]:
    """A stand-in for the knowledge graph's linker: X1 and X1 Pro are different products."""
    found = set()
    if re.search(r"x1\s*pro", text):
        found.add("x1_pro")
    if re.search(r"x1(?!\s*pro)", text):
        found.add("x1")
    if "nebula" in text or "星云" in text:
        found.add("nebula_buds")
    return frozenset(found)


def fact(text: str) -> Fact:
    return Fact("f1", text, "doc", 0.9, "care-guide.html")


@pytest.mark.parametrize(
    ("reply", "facts"),
    [
        ("The X1 supports wireless charging.", [CHARGING_EN]),
        ("The X1 Pro does not support wireless charging.", [CHARGING_EN]),
        ("星耀X1支持无线充电。", [CHARGING_ZH]),
        ("星耀X1 Pro不支持无线充电。", [CHARGING_ZH]),
        ("定制商品可以退货。", RETURNS_ZH),
    ],
)
def test_a_claim_with_the_opposite_polarity_is_a_contradiction(reply: str, facts: list[str]) -> None:
    assert contradictions(reply, facts, products)


@pytest.mark.parametrize(
    ("reply", "facts"),
    [
        ("The X1 has no wireless charging, but the X1 Pro charges wirelessly at 15 W.", [CHARGING_EN]),
        ("Wireless charging works on the X1 Pro at up to 15 W.", [CHARGING_EN]),
        ("Sorry, I'm not sure about that; shall I connect you with an agent?", [CHARGING_EN]),
        ("星耀X1 Pro支持无线充电，功率15W。", [CHARGING_ZH]),
        ("您好，支持7天无理由退货。", RETURNS_ZH),
        ("定制商品不能退货哦。", RETURNS_ZH),
        ("商品需保持完好才能退货。", RETURNS_ZH),
        ("不好意思，我不太确定。", RETURNS_ZH),
    ],
)
def test_faithful_restatements_are_not_contradictions(reply: str, facts: list[str]) -> None:
    assert contradictions(reply, facts, products) == []


def test_words_that_only_look_negative_do_not_flip_polarity() -> None:
    facts = ["这款耳机音质非常好，支持无线充电。"]
    assert contradictions("这款耳机音质很不错，支持无线充电。", facts) == []


@pytest.mark.parametrize(
    ("reply", "rule"),
    [
        ("The X1 Pro costs ¥4999.", "numbers"),
        ("The Nebula Buds also charge wirelessly at 15 W.", "names"),
        ("We guarantee it works with every charger at 15 W.", "promises"),
        ("The X1 supports wireless charging.", "contradiction"),
    ],
)
def test_the_check_names_the_rule_that_failed(reply: str, rule: str) -> None:
    verdict = GroundingCheck(products).check(reply, stage="output", facts=[fact(CHARGING_EN)])
    assert (verdict.allowed, verdict.category, verdict.rule) == (False, "ungrounded", rule)


def test_a_grounded_reply_passes_and_slots_count_as_known() -> None:
    session = Session("c").with_events([SlotSet(name="order_id", value="SO20261124")])
    check = GroundingCheck(products)
    assert check.check(
        "The X1 Pro charges wirelessly at up to 15 W.", stage="output", facts=[fact(CHARGING_EN)]
    ).allowed
    assert check.check("Order SO20261124 is on its way.", stage="output", session=session).allowed


def test_a_price_the_customer_claims_does_not_ground_the_reply() -> None:
    session = Session("c").with_events([UserUttered(text="Is the X1 Pro 3999 now?")])
    verdict = GroundingCheck(products).check("Yes, the X1 Pro is 3999.", stage="output", session=session)
    assert verdict.rule == "numbers"
    named = GroundingCheck(products).check("The X1 Pro charges at 15 W.", stage="output", session=session,
                                           facts=[fact("Wireless charging works at up to 15 W.")])  # fmt: skip
    assert named.allowed  # but the product the customer named may be repeated
