"""Loading a project folder and validating it: errors name the file, the line and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import ProjectError
from bot.project import load_project, validate
from tests.project.helpers import write_project

DOMAIN = """\
version: "3.1"
intents:
  - greet
  - faq
  - book
entities:
  - city
slots:
  city:
    type: text
    mappings:
      - type: from_entity
        entity: city
responses:
  utter_greet:
    - text: hi
  utter_faq/ask_price:
    - text: 10 yuan
  utter_ask_city:
    - text: which city?
forms:
  booking_form:
    required_slots:
      - city
actions:
  - action_book
"""

DATA = """\
version: "3.1"
nlu:
- intent: greet
  examples: |
    - hi
    - 你好
- intent: faq/ask_price
  examples: |
    - how much
- intent: book
  examples: |
    - book a table in [北京](city)
rules:
- rule: greet
  steps:
  - intent: greet
  - action: utter_greet
- rule: fallback to a human
  steps:
  - intent: nlu_fallback
  - action: action_handoff
stories:
- story: book
  steps:
  - intent: book
  - action: booking_form
  - active_loop: booking_form
  - active_loop: null
  - action: action_book
  - intent: faq
  - action: utter_faq
  - action: action_answer
"""


def _project(tmp_path: Path, **files: str) -> Path:
    return write_project(tmp_path, {"domain.yml": DOMAIN, "data/all.yml": DATA, **files})


def test_a_valid_project_loads_without_warnings(tmp_path: Path) -> None:
    project = load_project(_project(tmp_path))
    assert validate(project) == []
    assert project.root == tmp_path
    assert project.files == (tmp_path / "domain.yml", tmp_path / "data/all.yml")
    assert [rule.name for rule in project.rules] == ["greet", "fallback to a human"]
    assert [story.source for story in project.stories] == ["data/all.yml"]
    assert project.nlu_sources == ("data/all.yml",) * 4
    assert (project.fallback_threshold, project.language, project.test_stories) == (None, None, ())


def test_missing_data_files_are_empty(tmp_path: Path) -> None:
    project = load_project(write_project(tmp_path, {}))
    assert (project.nlu.examples, project.rules, project.stories, project.test_stories) == ((), (), (), ())
    domain = tmp_path / "domain.yml"
    assert validate(project) == [
        f"{domain}:3: intent `greet` has no NLU examples; add some under `nlu:` in data/",
    ]


def test_missing_domain_says_what_a_project_needs(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    with pytest.raises(ProjectError, match=r"domain\.yml is missing.*kefu init DIR") as caught:
        load_project(tmp_path)
    assert caught.value.path == str(tmp_path / "domain.yml")
    with pytest.raises(ProjectError, match="no project folder"):
        load_project(tmp_path / "nowhere")


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    broken = "nlu:\n- intent: greet\n  examples: |\n    - hi\n- intent: [oops\n"
    _project(tmp_path, **{"data/nlu.yml": broken})
    with pytest.raises(ProjectError, match="not valid YAML") as caught:
        load_project(tmp_path)
    assert caught.value.path == str(tmp_path / "data/nlu.yml")
    assert caught.value.line == 6
    assert str(caught.value).startswith(f"{tmp_path / 'data/nlu.yml'}:6: ")


def test_bad_indentation_names_the_line(tmp_path: Path) -> None:
    _project(tmp_path, **{"domain.yml": "intents:\n  - greet\n responses:\n"})
    with pytest.raises(ProjectError, match="not valid YAML") as caught:
        load_project(tmp_path)
    assert (caught.value.path, caught.value.line) == (str(tmp_path / "domain.yml"), 3)


def test_intent_missing_from_domain_in_a_story(tmp_path: Path) -> None:
    story = "stories:\n- story: s\n  steps:\n  - intent: greet\n  - action: utter_greet\n  - intent: gret\n"
    project = load_project(_project(tmp_path, **{"data/stories.yml": story}))
    with pytest.raises(ProjectError) as caught:
        validate(project)
    assert caught.value.path == str(tmp_path / "data/stories.yml")
    assert caught.value.line == 6
    message = str(caught.value)
    assert "intent `gret` is not in the domain (did you mean `greet`?)" in message
    assert "add it under `intents:` in domain.yml" in message


def test_intent_missing_from_domain_in_nlu_data(tmp_path: Path) -> None:
    nlu = "nlu:\n- intent: greet\n  examples: |\n    - hey\n- intent: goodbye\n  examples: |\n    - bye\n"
    project = load_project(_project(tmp_path, **{"data/nlu.yml": nlu}))
    with pytest.raises(ProjectError, match="intent `goodbye` is not in the domain") as caught:
        validate(project)
    assert (caught.value.path, caught.value.line) == (str(tmp_path / "data/nlu.yml"), 7)


def test_unknown_actions(tmp_path: Path) -> None:
    rules = "rules:\n- rule: r\n  steps:\n  - intent: greet\n  - action: utter_hello\n  - action: action_bok\n"
    project = load_project(_project(tmp_path, **{"data/rules.yml": rules}))
    with pytest.raises(ProjectError) as caught:
        validate(project)
    assert (caught.value.path, caught.value.line) == (str(tmp_path / "data/rules.yml"), 5)
    lines = str(caught.value).splitlines()
    assert "action `utter_hello` is not in the domain" in lines[0]
    assert "add a response `utter_hello` under `responses:` in domain.yml" in lines[0]
    assert lines[1] == "(and 1 more:)"
    assert lines[2].startswith(f"{tmp_path / 'data/rules.yml'}:6: action `action_bok` is not in the domain")
    assert "did you mean `action_book`?" in lines[2]
    assert "declare it under `actions:` in domain.yml" in lines[2]


def test_form_slot_must_be_declared(tmp_path: Path) -> None:
    domain = DOMAIN.replace("      - city\n", "      - city\n      - guests\n")
    project = load_project(_project(tmp_path, **{"domain.yml": domain}))
    with pytest.raises(ProjectError, match="requires slot `guests`, which is not declared") as caught:
        validate(project)
    assert (caught.value.path, caught.value.line) == (str(tmp_path / "domain.yml"), 25)


def test_unknown_top_level_key_in_data(tmp_path: Path) -> None:
    _project(tmp_path, **{"data/extra.yml": "version: '3.1'\nstorys: []\n"})
    with pytest.raises(ProjectError, match="unknown top-level key `storys`") as caught:
        load_project(tmp_path)
    assert caught.value.line == 2


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    _project(tmp_path, **{"data/list.yml": "- intent: greet\n"})
    with pytest.raises(ProjectError, match="must be a mapping of keys") as caught:
        load_project(tmp_path)
    assert caught.value.line == 1


def test_data_files_anywhere_under_data_and_responses_there(tmp_path: Path) -> None:
    faq = """\
        nlu:
        - intent: faq/ask_hours
          examples: |
            - when are you open
        responses:
          utter_faq/ask_hours:
          - text: 9 to 5
        """
    project = load_project(_project(tmp_path, **{"data/faq/faq.yaml": faq, "data/notes.txt": "ignored"}))
    assert set(project.domain.responses) == {
        "utter_greet",
        "utter_faq/ask_price",
        "utter_ask_city",
        "utter_faq/ask_hours",
    }
    assert project.files == (tmp_path / "domain.yml", tmp_path / "data/all.yml", tmp_path / "data/faq/faq.yaml")
    assert project.nlu_sources[-1] == "data/faq/faq.yaml"
    assert validate(project) == []


def test_test_stories_and_config(tmp_path: Path) -> None:
    tests = "stories:\n- story: t\n  steps:\n  - user: hi\n    intent: greet\n  - action: utter_greet\n"
    config = "language: zh\npipeline:\n  - name: JiebaTokenizer\n  - name: FallbackClassifier\n    threshold: 0.45\n"
    project = load_project(
        _project(tmp_path, **{"tests/test_stories.yml": tests, "tests/notes.yml": "x: 1\n", "config.yml": config})
    )
    assert [story.name for story in project.test_stories] == ["t"]
    assert project.test_stories[0].source == "tests/test_stories.yml"
    assert (project.fallback_threshold, project.language) == (0.45, "zh")
    assert project.files[-2:] == (tmp_path / "tests/test_stories.yml", tmp_path / "config.yml")


def test_fallback_classifier_without_threshold_uses_rasas_default(tmp_path: Path) -> None:
    project = load_project(_project(tmp_path, **{"config.yml": "pipeline:\n  - name: FallbackClassifier\n"}))
    assert project.fallback_threshold == 0.3
    _project(tmp_path, **{"config.yml": "pipeline:\n  - name: FallbackClassifier\n    threshold: 3\n"})
    with pytest.raises(ProjectError, match="from 0 to 1") as caught:
        load_project(tmp_path)
    assert caught.value.line == 3


def test_test_stories_are_checked_too(tmp_path: Path) -> None:
    tests = "stories:\n- story: t\n  steps:\n  - user: hi\n    intent: hello\n"
    project = load_project(_project(tmp_path, **{"tests/test_stories.yml": tests}))
    with pytest.raises(ProjectError, match="intent `hello` is not in the domain") as caught:
        validate(project)
    assert (caught.value.path, caught.value.line) == (str(tmp_path / "tests/test_stories.yml"), 4)


def test_domain_file_and_folder_together_are_refused(tmp_path: Path) -> None:
    _project(tmp_path, **{"domain/more.yml": "intents: [x]\n"})
    with pytest.raises(ProjectError, match=r"found domain\.yml and domain/; keep one"):
        load_project(tmp_path)


def test_warnings(tmp_path: Path) -> None:
    domain = DOMAIN + "  - action_unused\n" + "responses_extra: 1\n"
    domain = domain.replace("  utter_ask_city:\n    - text: which city?\n", "  utter_bye:\n    - text: bye\n")
    story = """\
        stories:
        - story: s
          steps:
          - intent: greet
            entities:
            - colour: red
          - slot_was_set:
            - mood: happy
          - active_loop: nonsense
        """
    project = load_project(_project(tmp_path, **{"domain.yml": domain, "data/s.yml": story}))
    where_domain, where_story = tmp_path / "domain.yml", tmp_path / "data/s.yml"
    assert validate(project) == [
        f"{where_story}:4: entity `colour` is not under `entities:`",
        f"{where_story}:7: slot `mood` is not declared under `slots:`",
        f"{where_story}:9: `active_loop: nonsense` names no form; define it under `forms:`",
        f"{where_domain}:24: form `booking_form` has no question for `city`; add a response `utter_ask_city`",
    ]
