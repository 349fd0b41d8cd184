"""Input flags for the handoff policy: a risk at once, anger only with a second sign; never a block."""

from __future__ import annotations

import pytest

from safety.flags import FlagCheck

CHECK = FlagCheck.default()


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("再不处理我就去12315投诉你们", "risk"),
        ("I'm going to sue you if this isn't fixed", "risk"),
        ("你们什么破服务，气死我了！！", "anger"),
        ("This is RIDICULOUS, the worst shop ever", "anger"),
        ("太差了", ""),  # one sign of displeasure: the bot can still help
        ("the delivery was awful", ""),
        ("运费怎么算", ""),
        ("what's the price of the X1 Pro?", ""),
        ("我要告你们！！气死了", "risk"),  # a risk outranks anger
    ],
)
def test_flags(text: str, category: str) -> None:
    verdict = CHECK.check(text, stage="input")
    assert verdict.allowed  # a flag never blocks: the customer is heard, then handed to a person
    assert verdict.category == category
    if category:
        assert category in verdict.reason and "12315" not in verdict.reason  # terms are masked in the reason


def test_output_is_not_flagged() -> None:
    assert CHECK.check("我要告你们！！气死了", stage="output").category == ""
