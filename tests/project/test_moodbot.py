"""A genuine Rasa 3.x project loads unchanged: the `rasa init` moodbot, in `tests/project/moodbot/`.

The fixture reproduces the files `rasa init` writes (Rasa 3.x, `rasa/cli/initial_project/`). Its
config.yml ships with the default pipeline and policies commented out; the fixture has them
uncommented, as the file's own comment invites, so the FallbackClassifier threshold (0.3) is there to
read. The file exactly as shipped (pipeline left empty) is checked separately below.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from bot.project import load_project, validate
from bot.types import ResponseVariation, SessionConfig

MOODBOT = Path(__file__).with_name("moodbot")
INTENTS = ("greet", "goodbye", "affirm", "deny", "mood_great", "mood_unhappy", "bot_challenge")


def test_moodbot_domain() -> None:
    project = load_project(MOODBOT)
    domain = project.domain
    assert domain.intents == INTENTS
    assert domain.responses == {
        "utter_greet": (ResponseVariation("Hey! How are you?"),),
        "utter_cheer_up": (
            ResponseVariation("Here is something to cheer you up:", image="https://i.imgur.com/nGF1K8f.jpg"),
        ),
        "utter_did_that_help": (ResponseVariation("Did that help you?"),),
        "utter_happy": (ResponseVariation("Great, carry on!"),),
        "utter_goodbye": (ResponseVariation("Bye"),),
        "utter_iamabot": (ResponseVariation("I am a bot, powered by Rasa."),),
    }
    assert (domain.entities, domain.slots, domain.forms, domain.actions) == ((), {}, {}, ())
    assert domain.session == SessionConfig(expiration_minutes=60.0, carry_over_slots=True)
    assert (project.fallback_threshold, project.language) == (0.3, "en")
    assert validate(project) == []


def test_moodbot_nlu() -> None:
    nlu = load_project(MOODBOT).nlu
    counts = {intent: sum(1 for e in nlu.examples if e.intent == intent) for intent in INTENTS}
    assert counts == {
        "greet": 13, "goodbye": 10, "affirm": 6, "deny": 7, "mood_great": 14, "mood_unhappy": 14, "bot_challenge": 4
    }  # fmt: skip
    first, second = nlu.examples[:2]
    assert (first.text, first.intent, first.line, second.text) == ("hey", "greet", 6, "hello")
    assert "I don't think so" in {e.text for e in nlu.examples if e.intent == "deny"}
    assert all(not e.entities for e in nlu.examples)
    assert (nlu.synonyms, nlu.regexes, nlu.lookups) == ({}, (), {})


def test_moodbot_rules_and_stories() -> None:
    project = load_project(MOODBOT)
    rules = [(r.name, [(s.kind, s.name) for s in r.steps]) for r in project.rules]
    assert rules == [
        ("Say goodbye anytime the user says goodbye", [("intent", "goodbye"), ("action", "utter_goodbye")]),
        ("Say 'I am a bot' anytime the user challenges", [("intent", "bot_challenge"), ("action", "utter_iamabot")]),
    ]
    assert all(rule.is_rule and rule.source == "data/rules.yml" for rule in project.rules)
    sad = project.stories[1]
    assert sad.name == "sad path 1"
    assert [s.name for s in sad.steps] == [
        "greet", "utter_greet", "mood_unhappy", "utter_cheer_up", "utter_did_that_help", "affirm", "utter_happy"
    ]  # fmt: skip
    assert [s.line for s in sad.steps] == [14, 15, 16, 17, 18, 19, 20]


def test_moodbot_test_stories() -> None:
    tests = load_project(MOODBOT).test_stories
    assert [t.name for t in tests] == [
        "happy path 1", "happy path 2", "sad path 1", "sad path 2", "sad path 3", "say goodbye", "bot challenge"
    ]  # fmt: skip
    user_steps = [(s.text, s.name) for s in tests[1].steps if s.kind == "user"]
    assert user_steps == [("hello there!", "greet"), ("amazing", "mood_great"), ("bye-bye!", "goodbye")]
    assert tests[4].steps[2].text == "very terrible"


def test_config_exactly_as_rasa_init_writes_it(tmp_path: Path) -> None:
    shutil.copytree(MOODBOT, tmp_path, dirs_exist_ok=True)
    lines = (MOODBOT / "config.yml").read_text(encoding="utf-8").splitlines()
    start = lines.index("pipeline:") + 1
    # `rasa init` ships the default pipeline and policies as comments: Rasa fills in its defaults.
    shipped = [f"#{line}" if line.startswith("  ") else line for line in lines[start:]]
    (tmp_path / "config.yml").write_text("\n".join(lines[:start] + shipped) + "\n", encoding="utf-8")
    project = load_project(tmp_path)
    assert (project.fallback_threshold, project.language) == (None, "en")
