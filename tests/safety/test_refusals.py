"""Refusal texts."""

from __future__ import annotations

import pytest

from safety.refusals import refusal


def test_abuse_on_input() -> None:
    assert refusal("zh", "abuse") == "我们理解您可能有些不满，请文明用语，我会尽力帮您解决问题。"
    assert refusal("en", "abuse").startswith("I understand you may be frustrated.")


def test_output_blocks_are_neutral_whatever_the_category() -> None:
    assert refusal("zh", "abuse", stage="output") == "抱歉，这个问题我暂时无法回答，已为您记录。"
    assert refusal("en", "fraud", stage="output") == refusal("en", "unknown", stage="output")


@pytest.mark.parametrize("category", ["violence", "fraud", "politics", "something-new", ""])
@pytest.mark.parametrize("language", ["zh", "en"])
def test_every_category_has_a_polite_text(language: str, category: str) -> None:
    text = refusal(language, category)  # type: ignore[arg-type]
    assert text
    assert text.startswith("抱歉") if language == "zh" else text.startswith("Sorry")
