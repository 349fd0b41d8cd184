"""The starter project `kefu init` writes: complete, bilingual, and loading without errors or warnings."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
import yaml

from bot.errors import ProjectError
from bot.project import load_project, validate, write_starter_project

_HAN = re.compile(r"[\u4e00-\u9fff]")
STARTER_FILES = {
    "README.md",
    "domain.yml",
    "kefu.yml",
    "data/nlu.yml",
    "data/rules.yml",
    "data/stories.yml",
    "tests/test_stories.yml",
    "knowledge/faq.csv",
}


def _files(root: Path) -> set[str]:
    return {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()}


def test_starter_loads_and_validates_cleanly(tmp_path: Path) -> None:
    write_starter_project(tmp_path / "bot")
    assert _files(tmp_path / "bot") == STARTER_FILES
    project = load_project(tmp_path / "bot")
    assert validate(project) == []
    assert project.domain.intents == ("greet", "goodbye", "thank", "ask_hours", "out_of_scope")
    assert len(project.rules) == 6
    assert len(project.stories) == 2
    assert len(project.test_stories) == 3


def test_starter_is_bilingual(tmp_path: Path) -> None:
    write_starter_project(tmp_path)
    project = load_project(tmp_path)
    for intent in project.domain.intents:
        texts = [example.text for example in project.nlu.examples if example.intent == intent]
        chinese = [text for text in texts if _HAN.search(text)]
        assert len(chinese) >= 8, intent
        assert len(texts) - len(chinese) >= 8, intent
    for name, variations in project.domain.responses.items():
        languages = {condition.value for variation in variations for condition in variation.conditions}
        assert languages == {"zh"}, name  # a Chinese variation plus the unconditioned (English) default
        assert any(not variation.conditions for variation in variations), name
    users = [step.text or "" for story in project.test_stories for step in story.steps if step.kind == "user"]
    assert any(_HAN.search(text) for text in users)
    assert any(text.isascii() for text in users)


def test_starter_faq_and_settings(tmp_path: Path) -> None:
    write_starter_project(tmp_path)
    with (tmp_path / "knowledge/faq.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["id", "question", "similar", "answer", "tags", "lang"]
    assert len(rows) >= 6
    assert {row["lang"] for row in rows} == {"zh", "en"}
    assert all(row["id"] and row["question"] and row["answer"] for row in rows)
    settings = (tmp_path / "kefu.yml").read_text(encoding="utf-8")
    assert yaml.safe_load(settings) == {"language": ["zh", "en"]}
    assert any(line.startswith("#") for line in settings.splitlines())


def test_refuses_a_non_empty_folder_unless_forced(tmp_path: Path) -> None:
    (tmp_path / "domain.yml").write_text("mine", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(ProjectError, match="not empty") as caught:
        write_starter_project(tmp_path)
    assert caught.value.path == str(tmp_path)
    assert (tmp_path / "domain.yml").read_text(encoding="utf-8") == "mine"
    write_starter_project(tmp_path, force=True)
    assert (tmp_path / "domain.yml").read_text(encoding="utf-8") != "mine"
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "keep me"
    assert _files(tmp_path) == STARTER_FILES | {"notes.txt"}


def test_refuses_a_file_and_accepts_an_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(ProjectError, match="not a folder"):
        write_starter_project(tmp_path / "file")
    (tmp_path / "empty").mkdir()
    write_starter_project(tmp_path / "empty")
    assert _files(tmp_path / "empty") == STARTER_FILES
