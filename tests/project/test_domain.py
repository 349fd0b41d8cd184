"""Domain parsing: every section, Rasa's variants, merging a domain/ folder, and type errors with lines."""

from __future__ import annotations

import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from bot.errors import ProjectError
from bot.project import load_project
from bot.project.domain import DomainPart, parse_domain
from bot.project.yaml_io import LineMap, Source, parse_yaml
from bot.types import Button, FormSpec, ResponseCondition, ResponseVariation, SessionConfig, SlotMapping
from tests.project.helpers import write_project

FULL_DOMAIN = """\
version: "3.1"
intents:
  - greet
  - inform:
      use_entities: [city]
  - faq:
      is_retrieval_intent: true
entities:
  - city
  - order_id:
      roles: [from, to]
slots:
  city:
    type: text
    influence_conversation: false
    mappings:
      - type: from_entity
        entity: city
        role: to
        intent: [inform, greet]
        not_intent: chitchat
        conditions:
          - active_loop: booking_form
            requested_slot: city
          - active_loop: other_form
  confirmed:
    type: bool
    initial_value: false
    mappings:
      - type: from_intent
        intent: affirm
        value: true
  answer:
    type: categorical
    values: [yes, no, 1]
    mappings:
      - type: custom
  notes:
    type: any
  language:
    type: categorical
    values: [zh, en]
    mappings:
      - type: from_text
        conditions:
          - active_loop: booking_form
responses:
  utter_greet:
    - text: 您好！
      condition:
        - type: slot
          name: language
          value: zh
    - text: Hello {{ name }}!
      channel: web
      image: https://example.com/hi.png
      buttons:
        - title: Track my order
          payload: /check_order
        - title: 人工客服
  utter_ask_city:
    - text: Which city?
forms:
  booking_form:
    ignored_intents: [chitchat]
    required_slots:
      - city
      - confirmed
  old_style_form:
    required_slots:
      city:
        - type: from_entity
          entity: city
actions:
  - action_check_order
  - action_send_mail:
      send_domain: true
session_config:
  session_expiration_time: 15
  carry_over_slots_to_new_session: false
e2e_actions: []
"""


def _parse(text: str, path: Path = Path("/nonexistent/domain.yml")) -> DomainPart:
    raw = parse_yaml(textwrap.dedent(text), path=path)
    assert isinstance(raw, LineMap)
    return parse_domain(raw, source=Source(path))


def test_full_domain() -> None:
    part = _parse(FULL_DOMAIN)
    domain = part.domain
    assert domain.intents == ("greet", "inform", "faq")
    assert domain.entities == ("city", "order_id")
    assert domain.actions == ("action_check_order", "action_send_mail")
    assert domain.session == SessionConfig(expiration_minutes=15.0, carry_over_slots=False)
    assert domain.forms == {
        "booking_form": FormSpec("booking_form", ("city", "confirmed")),
        "old_style_form": FormSpec("old_style_form", ("city",)),
    }
    assert part.locations[("form_slot", "booking_form", "confirmed")] == ("/nonexistent/domain.yml", 68)


def test_slots_and_mappings() -> None:
    slots = _parse(FULL_DOMAIN).domain.slots
    city = slots["city"]
    assert (city.type, city.influence_conversation, city.initial_value) == ("text", False, None)
    base = SlotMapping("from_entity", entity="city", intent=("inform", "greet"), not_intent=("chitchat",), role="to")
    assert city.mappings == (replace(base, active_loop="booking_form"), replace(base, active_loop="other_form"))
    assert slots["confirmed"].initial_value is False
    assert slots["confirmed"].mappings == (SlotMapping("from_intent", intent=("affirm",), value=True),)
    # YAML 1.2, as Rasa reads it: yes and no are text, not booleans.
    assert slots["answer"].values == ("yes", "no", "1")
    assert slots["notes"].influence_conversation is False  # `any` slots never influence the conversation
    assert slots["language"].mappings == (SlotMapping("from_text", active_loop="booking_form"),)


def test_responses_with_conditions_buttons_image_and_channel() -> None:
    responses = _parse(FULL_DOMAIN).domain.responses
    assert responses["utter_greet"] == (
        ResponseVariation("您好！", conditions=(ResponseCondition("language", "zh"),)),
        ResponseVariation(
            "Hello {{ name }}!",
            buttons=(Button("Track my order", "/check_order"), Button("人工客服", "人工客服")),
            channel="web",
            image="https://example.com/hi.png",
        ),
    )


def test_defaults_of_an_empty_domain() -> None:
    domain = _parse("intents: []\n").domain
    assert (domain.intents, domain.slots, domain.responses, domain.session) == ((), {}, {}, SessionConfig())


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("intents: greet\n", 1, "`intents:` must be a list"),
        ("intents:\n  - greet\n  - [a, b]\n", 3, "an item under `intents:` must be a name"),
        ("slots:\n  city:\n    mappings: []\n", 2, "slot `city` needs a `type:`"),
        ("slots:\n  city:\n    type: txt\n", 3, "unknown type `txt`"),
        ("slots:\n  city:\n    type: text\n    mappings:\n      - type: from_nowhere\n", 5, "unknown type"),
        ("slots:\n  c:\n    type: text\n    mappings:\n      - type: from_entity\n", 5, "needs `entity:`"),
        ("responses:\n  utter_a: hello\n", 2, "response `utter_a` must be a list"),
        ("responses:\n  utter_a: []\n", 2, "has no variations"),
        ("responses:\n  utter_a:\n    - text: [1]\n", 3, "`text:` of `utter_a` must be text"),
        ("forms:\n  f:\n    required_slots: city\n", 3, "`required_slots:` must be a list"),
        ("session_config:\n  session_expiration_time: soon\n", 2, "number of minutes"),
        ("session_config:\n  carry_over_slots_to_new_session: yes\n", 2, "`true` or `false`"),
        ("intents:\n  - greet\nintents:\n  - bye\n", 3, "appears twice"),
    ],
)
def test_wrong_types_name_the_line(text: str, line: int, message: str) -> None:
    with pytest.raises(ProjectError, match=message) as caught:
        _parse(text)
    assert caught.value.line == line
    assert caught.value.path == "/nonexistent/domain.yml"


def test_domain_folder_is_merged(tmp_path: Path) -> None:
    write_project(
        tmp_path,
        {
            "domain/intents.yml": "intents: [greet, bye]\nactions: [action_a]\n",
            "domain/more/responses.yml": """\
                intents: [bye, thank]
                responses:
                  utter_bye:
                    - text: bye
                session_config:
                  session_expiration_time: 5
                """,
        },
    )
    project = load_project(tmp_path)
    assert project.domain.intents == ("greet", "bye", "thank")
    assert project.domain.actions == ("action_a",)
    assert set(project.domain.responses) == {"utter_bye"}
    assert project.domain.session.expiration_minutes == 5.0
    assert project.files == (tmp_path / "domain/intents.yml", tmp_path / "domain/more/responses.yml")


def test_response_defined_in_two_domain_files_is_refused(tmp_path: Path) -> None:
    write_project(
        tmp_path,
        {
            "domain/a.yml": "responses:\n  utter_bye:\n    - text: bye\n",
            "domain/b.yml": "intents: [x]\nresponses:\n  utter_bye:\n    - text: ciao\n",
        },
    )
    with pytest.raises(ProjectError, match=r"already defined at .*a\.yml:2") as caught:
        load_project(tmp_path)
    assert caught.value.path == str(tmp_path / "domain/b.yml")
    assert caught.value.line == 3
