"""`kefu test nlu` and `kefu train nlu|knowledge` as a user runs them, on a small starter project."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from bot.cli import main
from bot.settings import Settings
from bot.wiring import open_project

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
HELD_OUT = """\
    version: "3.1"
    nlu:
      - intent: greet
        examples: |
          - hello friend
          - 你好呀
      - intent: thank
        examples: |
          - thanks so much
          - 太谢谢了
      - intent: out_of_scope
        examples: |
          - what's the capital of France
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    """The starter project, with a fast NLU (no embeddings, few epochs) and a private data folder."""
    monkeypatch.setenv("KEFU_DATA_DIR", str(tmp_path / "data"))
    root = tmp_path / "mybot"
    assert main(["init", str(root)]) == 0
    with (root / "kefu.yml").open("a", encoding="utf-8") as config:
        config.write("nlu:\n  dense_features: false\n  epochs: 5\n")
    capsys.readouterr()
    return root


def held_out_file(folder: Path, name: str = "held_out.yml", text: str = HELD_OUT) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_cross_validation_prints_one_json_object_and_writes_the_report(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["test", "nlu", str(project), "--json", "--cross-validation", "2"]) == 0
    captured = capsys.readouterr()
    figures = json.loads(captured.out)  # fails on anything but one JSON document
    expected = {"intent_accuracy", "intent_macro_f1", "entity_f1", "entity_precision", "entity_recall"}
    assert expected | {"oos_recall", "n_examples", "per_intent", "report_html", "confusion_png"} <= set(figures)
    assert figures["n_examples"] == len(open_project(project, Settings()).files.nlu.examples)
    assert 0.0 <= figures["intent_accuracy"] <= 1.0
    assert figures["oos_recall"] is not None  # the starter has out_of_scope examples
    assert "fold 2/2" in captured.err
    report = Path(figures["report_html"])
    assert report.parent == tmp_path / "data" / "reports" / "nlu"
    assert "<html" in report.read_text("utf-8")
    assert Path(figures["confusion_png"]).read_bytes()[:8] == PNG_MAGIC


def test_a_held_out_file_is_scored_with_the_trained_model(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = held_out_file(tmp_path)
    out = tmp_path / "report"
    assert main(["test", "nlu", str(project), "--file", str(file), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "5 examples" in text and "intent" in text and "precision" in text
    lines = text.splitlines()
    table = lines[lines.index(next(line for line in lines if line.startswith("intent "))) + 1 :]
    assert {line.split()[0] for line in table[:3]} == {"greet", "thank", "out_of_scope"}
    assert f"Report:           {out / 'report.html'}" in text
    assert (out / "confusion.png").is_file() and (out / "report.json").is_file()
    assert (open_project(project, Settings()).nlu_dir / "meta.json").is_file()  # trained on the way


def test_tests_nlu_yml_is_the_default_test_set(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    held_out_file(project, "tests/nlu.yml")
    assert main(["test", "nlu", str(project), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["n_examples"] == 5
    assert "tests/nlu.yml" in captured.err


def test_a_broken_held_out_file_names_the_file_and_line(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = HELD_OUT.replace("- thanks so much", "thanks so much")
    file = held_out_file(tmp_path, "broken.yml", broken)
    # the project may also come after the options
    assert main(["test", "nlu", "--file", str(file), "--json", str(project)]) == 2
    captured = capsys.readouterr()
    assert f"{file}:9" in captured.err and "must start with `- `" in captured.err
    assert captured.out == ""


def test_file_and_cross_validation_together_ask_to_pick_one(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = held_out_file(tmp_path)
    assert main(["test", "nlu", str(project), "--file", str(file), "--cross-validation", "3"]) == 2
    assert "pick one" in capsys.readouterr().err


def test_nlu_options_on_story_tests_are_refused(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", "stories", str(project), "--cross-validation", "3"]) == 2
    assert "only apply to `kefu test nlu`" in capsys.readouterr().err


def test_a_first_word_that_is_not_a_subcommand_is_the_project(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "no-such-bot"
    assert main(["test", str(missing)]) == 2
    assert f"project folder {missing} does not exist" in capsys.readouterr().err
    assert main(["train", "nul", str(missing)]) == 2
    assert "`nul` is not one of nlu, core, knowledge" in capsys.readouterr().err


def test_train_nlu_trains_only_the_nlu(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    opened = open_project(project, Settings())
    assert main(["train", "nlu", str(project)]) == 0
    assert capsys.readouterr().out.startswith("Trained NLU on ")
    assert (opened.nlu_dir / "meta.json").is_file()
    assert not opened.index_dir.exists()  # the knowledge index was not built
    assert main(["train", "nlu", str(project)]) == 0
    assert capsys.readouterr().out == "NLU model is up to date.\n"


def test_help_documents_the_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["test", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "kefu test nlu [PROJECT]" in out and "--cross-validation K" in out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "cannot read the file"),
        ('version: "3.1"\n', "there is no `nlu:` section"),
        ("nlu:\n", "no intent examples"),
    ],
)
def test_an_unusable_held_out_file_says_what_is_missing(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str | None, message: str
) -> None:
    file = tmp_path / "held_out.yml"
    if text is not None:
        file.write_text(text, encoding="utf-8")
    assert main(["test", "nlu", str(project), "--file", str(file)]) == 2
    err = capsys.readouterr().err
    assert str(file) in err and message in err
