"""Response variations: Rasa's rule that a variation whose condition holds beats the unconditional ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.actions.responses import ResponseRenderer
from bot.channels.rest import _rasa_message
from bot.events import decode_event, encode_event
from bot.project.init import write_starter_project
from bot.project.loader import load_project
from bot.types import Reply


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


def test_a_card_in_a_custom_payload_is_filled_from_the_slots_and_reaches_the_rest_channel(tmp_path: Path) -> None:
    write_starter_project(tmp_path / "bot")
    domain = tmp_path / "bot" / "domain.yml"
    card = """responses:
  utter_card:
  - text: "订单 {order_id}"
    image: "/img/{order_id}.png"
    custom:
      card: {title: "Order {order_id}", fields: [{label: 状态, value: "{status}"}], url: "/o/{order_id}"}
"""
    domain.write_text(domain.read_text(encoding="utf-8").replace("responses:\n", card, 1), encoding="utf-8")
    said = ResponseRenderer(load_project(tmp_path / "bot").domain).render(
        "utter_card", {"order_id": "SO1", "status": "已发货"}
    )
    assert said.image == "/img/SO1.png"
    assert said.custom == {
        "card": {"title": "Order SO1", "fields": [{"label": "状态", "value": "已发货"}], "url": "/o/SO1"}
    }
    stored = decode_event(encode_event(said))
    assert stored == said and stored.custom == said.custom
    reply = Reply(text=said.text, image=said.image, custom=said.custom)
    assert _rasa_message("u", reply)["custom"]["card"]["title"] == "Order SO1"
