"""The `kefu` command as a user runs it: init, train, test, chat; and a Rasa 3.x project that is not kefu's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from bot.settings import Settings
from bot.wiring import Project, build_runtime, open_project, train
from tests.bot.conftest import Chat
from tests.conftest import REPO, SHOP

pytestmark = pytest.mark.integration

MOODBOT = REPO / "tests" / "project" / "moodbot"


@pytest.fixture
def kefu_env(monkeypatch: pytest.MonkeyPatch, redis_target: str, tmp_path: Path) -> Path:
    monkeypatch.setenv("REDIS_URL", redis_target)
    monkeypatch.setenv("KEFU_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def test_init_train_and_test_a_starter_project(kefu_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = kefu_env / "mybot"
    assert main(["init", str(project)]) == 0
    assert (project / "domain.yml").exists() and (project / "data" / "nlu.yml").exists()
    assert main(["init", str(project)]) == 2  # refuses to overwrite
    assert "is not empty" in capsys.readouterr().err
    assert main(["train", str(project)]) == 0
    assert "Trained NLU" in capsys.readouterr().out
    assert main(["train", str(project)]) == 0
    assert "up to date" in capsys.readouterr().out  # an unchanged project is not retrained
    code = main(["test", str(project)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert " 0 failed" in out


def test_kefu_test_fails_with_a_clear_report_when_a_story_does_not_hold(kefu_env: Path, capsys) -> None:
    project = kefu_env / "broken"
    shutil.copytree(MOODBOT, project)
    stories = project / "tests" / "test_stories.yml"
    stories.write_text(stories.read_text().replace("utter_greet", "utter_goodbye", 1))
    assert main(["test", str(project)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "expected actions ['utter_goodbye']" in out
    assert main(["test", "stories", str(project), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["stories_passed"] == report["stories_total"] - 1 >= 1
    first = report["failures"][0]
    assert first["expected"] == "actions ['utter_goodbye']" and first["got"] == "actions ['utter_greet']"
    assert first["file"].endswith("test_stories.yml") and first["line"] > 0  # the first diverging step
    passing = kefu_env / "passing.yml"
    passing.write_text(stories.read_text().replace("utter_goodbye", "utter_greet", 1))
    assert main(["test", str(project), "--file", str(passing), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["stories_passed"] == report["stories_total"]


def test_a_broken_project_file_names_the_file_and_line(kefu_env: Path, capsys) -> None:
    project = kefu_env / "typo"
    shutil.copytree(MOODBOT, project)
    rules = project / "data" / "rules.yml"
    rules.write_text(rules.read_text().replace("intent: goodbye", "intent: goodbyee", 1))
    assert main(["train", str(project)]) == 2
    err = capsys.readouterr().err
    assert "rules.yml:" in err and "goodbyee" in err


def test_chat_completes_an_order_status_conversation(shop_project: Project, redis_target: str) -> None:
    env = {**os.environ, "REDIS_URL": redis_target, "KEFU_DATA_DIR": str(shop_project.data_dir)}
    env["KEFU_LOG_LEVEL"] = "WARNING"
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "chat", str(SHOP), "--debug"],
        input="where is my order\nSO20261002\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    assert "Could you give me your order number?" in result.stdout
    assert "Order SO20261002: Paid and awaiting shipment." in result.stdout
    assert "policy forms: order_form" in result.stdout  # --debug prints the trace
    assert "policy rules: action_check_order" in result.stdout and "nlu: inform" in result.stdout


async def test_an_unchanged_rasa_project_trains_and_answers(tmp_path: Path, redis_target: str) -> None:
    settings = Settings(data_dir=tmp_path / "data", redis_url=redis_target)
    project = open_project(MOODBOT, settings)
    train(project, progress=False)
    runtime = build_runtime(project, settings)
    runtime.bot.warm_up()
    try:
        chat = Chat(runtime)
        assert await chat.texts("hello there") == ["Hey! How are you?"]
        sad = await chat.texts("I am very sad")
        assert sad == ["Here is something to cheer you up:", "Did that help you?"]
        assert await chat.texts("yes") == ["Great, carry on!"]
    finally:
        await runtime.aclose()
