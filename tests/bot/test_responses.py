"""Response variations: Rasa's rule that a variation whose condition holds beats the unconditional ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.actions.responses import ResponseRenderer
from bot.project.init import write_starter_project
from bot.project.loader import load_project


@pytest.fixture(scope="module")
def renderer(tmp_path_factory: pytest.TempPathFactory) -> ResponseRenderer:
    folder: Path = tmp_path_factory.mktemp("starter")
    write_starter_project(folder / "bot")
    return ResponseRenderer(load_project(folder / "bot").domain)


@pytest.mark.parametrize("other", [f"value-{i}" for i in range(12)])  # other slots change the seeded choice
def test_a_matching_conditional_variation_wins_over_the_default(renderer: ResponseRenderer, other: str) -> None:
    assert renderer.render("utter_greet", {"language": "zh", "x": other}).text.startswith("您好")
    assert renderer.render("utter_greet", {"language": "en", "x": other}).text.startswith("Hello")
    assert renderer.render("utter_greet", {"x": other}).text.startswith("Hello")
