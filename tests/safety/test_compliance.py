"""Compliance rules: the shipped industry packs, a project's own file, and what a broken file says."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import ProjectError
from bot.events import Session, SlotSet
from bot.types import LANGUAGE_SLOT, Fact
from safety.compliance import ComplianceCheck, industry_pack, load_rules

PACKS = ComplianceCheck(load_rules([industry_pack("finance"), industry_pack("ecommerce")]))
ENGLISH = Session("c").with_events([SlotSet(name=LANGUAGE_SLOT, value="en")])


def fact(text: str) -> Fact:
    return Fact("f1", text, "faq", 1.0, "faq.csv#1")


@pytest.mark.parametrize(
    ("reply", "rule", "action"),
    [
        ("这款理财产品保本保息，稳赚不赔。", "no_guaranteed_returns", "replace"),
        ("This fund offers guaranteed returns of 5%.", "no_guaranteed_returns", "replace"),
        ("It's a risk-free investment.", "no_guaranteed_returns", "replace"),
        ("您的条件很好，保证能下款。", "no_loan_approval_promise", "replace"),
        ("You will definitely be approved for the card.", "no_loan_approval_promise", "replace"),
        ("再不还款我们就通知你的家人和单位。", "no_collection_threats", "block"),
        ("我们会立即为您全额退款。", "no_refund_promise_outside_policy", "replace"),
        ("We will definitely refund you, no questions asked.", "no_refund_promise_outside_policy", "replace"),
        ("给您带来不便，我们赔偿您50元。", "no_compensation_promise", "escalate"),
        ("您的包裹保证明天送达。", "no_delivery_guarantee", "replace"),
        ("Your parcel will definitely arrive tomorrow.", "no_delivery_guarantee", "replace"),
    ],
)
def test_a_promise_outside_the_rules_is_caught(reply: str, rule: str, action: str) -> None:
    verdict = PACKS.check(reply, stage="output")
    assert (verdict.allowed, verdict.rule, verdict.kind, verdict.category) == (False, rule, action, "compliance")
    assert rule in verdict.reason


@pytest.mark.parametrize(
    "reply",
    [
        "本产品不保证收益，投资需谨慎。",
        "Returns are not guaranteed; past performance is no guarantee of future results.",
        "贷款是否获批以审批结果为准。",
        "Approval is subject to review, so we cannot guarantee it.",
        "支持7天无理由退货，退款将在3-5个工作日内原路返回。",
        "Refunds reach your card in 3-5 business days after we receive the return.",
        "定制商品不支持全额退款。",
        "We can't refund a customised item.",
        "配送时间以物流为准，我们无法保证明天送达。",
        "Express delivery usually takes 1-2 days.",
    ],
)
def test_disclaimers_and_policy_statements_pass(reply: str) -> None:
    assert PACKS.check(reply, stage="output").allowed


def test_a_promise_the_retrieved_policy_makes_is_fine() -> None:
    reply = "质量问题的商品可以全额退款。"
    assert not PACKS.check(reply, stage="output").allowed
    assert PACKS.check(reply, stage="output", facts=[fact("商品存在质量问题的，可申请全额退款。")]).allowed


def test_the_replacement_is_in_the_conversation_language() -> None:
    zh = PACKS.check("保证收益", stage="output")
    en = PACKS.check("guaranteed returns", stage="output", session=ENGLISH)
    assert zh.replacement is not None and zh.replacement.startswith("理财和投资产品均有风险")
    assert en.replacement is not None and en.replacement.startswith("Investments carry risk")


def test_rules_apply_to_their_stage_only() -> None:
    assert PACKS.check("保本保息的产品有吗", stage="input").allowed  # a customer may ask about it


def test_a_project_rule_file(tmp_path: Path) -> None:
    own = tmp_path / "compliance.yml"
    own.write_text(
        "rules:\n  - id: no_medical_claims\n    stage: both\n    patterns: ['治愈', 'cures? ']\n    action: block\n",
        encoding="utf-8",
    )
    check = ComplianceCheck(load_rules([own]))
    assert check.check("这款手环能治愈失眠", stage="input").rule == "no_medical_claims"
    assert not check.check("It cures insomnia.", stage="output").allowed


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("rules: nope", "expected a top-level 'rules:' list"),
        ("rules:\n  - patterns: [x]\n", "each rule is a mapping with an 'id'"),
        ("rules:\n  - id: a\n    patterns: ['(']\n    action: block\n", "rule 'a': patterns"),
        ("rules:\n  - id: a\n    patterns: [x]\n    action: shout\n", "action must be one of"),
        ("rules:\n  - id: a\n    patterns: [x]\n", "action 'replace' needs a 'reply'"),
        ("rules:\n  - id: a\n    patterns: [x]\n    action: block\n    colour: red\n", "unknown keys ['colour']"),
        ("rules:\n  - id: a\n    patterns: [x]\n    action: block\n  - id: a\n    patterns: [y]\n    action: block\n",
         "defined twice"),
        ("rules: [\n", "cannot read compliance rules"),
    ],
)  # fmt: skip
def test_a_broken_rule_file_says_what_is_wrong(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "compliance.yml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ProjectError) as caught:
        load_rules([path])
    assert expected in str(caught.value)
    assert "compliance.yml" in str(caught.value)


def test_an_unknown_industry_lists_the_known_ones() -> None:
    with pytest.raises(ProjectError, match="kefu ships: ecommerce, finance"):
        industry_pack("aviation")


def test_a_project_rule_overrides_a_packaged_one_by_id(tmp_path: Path) -> None:
    own = tmp_path / "compliance.yml"
    own.write_text(
        "rules:\n  - id: no_compensation_promise\n    patterns: ['赔偿您']\n    action: block\n", encoding="utf-8"
    )
    check = ComplianceCheck(load_rules([industry_pack("ecommerce"), own]))
    assert check.check("我们赔偿您50元", stage="output").kind == "block"  # the pack says escalate
    assert sum(r.id == "no_compensation_promise" for r in check.rules) == 1
