"""`kefu test recommend` end to end on a small project: the default file, --file, --from-archive, and the
errors a user can make (each exits 2 with a message that says what to fix)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bot.assist.archive import Archive, archived_session, split_sessions
from bot.assist.archive_sql import SqliteBackend
from bot.cli import main
from bot.events import BotUttered, Event, QuestionsRecommended, UserUttered
from bot.project.init import write_starter_project
from tests.knowledge.helpers import HashingEmbedder
from tests.recommend.helpers import write_knowledge

KEYS = {"hit_rate_at_3_before", "hit_rate_at_3_after", "opportunities", "hot_hit_rate_at_3_before",
        "hot_hit_rate_at_3_after"}  # fmt: skip
CONVERSATIONS = """\
conversations:
  - lang: zh
    questions: [忘记密码怎么办？, 退款要几天, ship_zh]
  - lang: zh
    questions: [怎么重置密码, 退款多久到账？]
  - lang: en
    questions: ["How long does delivery take?", "How can I track my package?"]
  - lang: en
    questions:
      - Delivery time
      - How can I track my package?
      - refund_en
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The starter project with the small knowledge folder and a conversations file; the fast embedder."""
    root = tmp_path / "bot"
    write_starter_project(root)
    write_knowledge(root / "knowledge")
    (root / "tests" / "recommend_conversations.yml").write_text(CONVERSATIONS, encoding="utf-8")
    monkeypatch.setenv("KEFU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("KEFU_ARCHIVE_URL", raising=False)
    monkeypatch.setattr("bot.recommend.recommend_cli.E5Embedder", HashingEmbedder)
    return root


def test_the_project_file_is_replayed_and_one_json_object_printed(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["test", "recommend", str(project), "--json", "--split", "0.5", "--seed", "1"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert set(figures) >= KEYS and set(figures["per_language"]) == {"zh", "en"}
    assert figures["conversations_learned_from"] == figures["conversations_evaluated"] == 2
    assert figures["unresolved"] == [] and figures["seed"] == 1
    assert figures["hot_opportunities"] == 2 and 1 <= figures["opportunities"] <= 3


def test_the_table_names_languages_and_both_passes(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", "recommend", "--json", str(project)]) == 0  # the project after the options
    capsys.readouterr()
    assert main(["test", "recommend", str(project), "--split", "0"]) == 0
    table = capsys.readouterr().out
    assert "hit rate@3" in table and "before" in table and "after" in table
    rows = [line.split()[0] for line in table.splitlines() if line.startswith("  ") and "chances" not in line]
    assert rows == ["zh", "en", "all"] * 2
    assert "learning from 0 others" in table


def test_a_file_with_a_mistake_says_where(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("conversations:\n  - lang: zh\n    questions: [ship_en]\n", encoding="utf-8")
    assert main(["test", "recommend", str(project), "--file", str(broken)]) == 2
    assert f"{broken}:3: `ship_en` is a question in en" in capsys.readouterr().err
    assert main(["test", "recommend", str(project), "--split", "1"]) == 2
    assert "--split 1" in capsys.readouterr().err
    (project / "tests" / "recommend_conversations.yml").unlink()
    assert main(["test", "recommend", str(project)]) == 2
    assert "no conversations to replay" in capsys.readouterr().err


def test_archived_sessions_can_be_replayed(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", "recommend", str(project), "--from-archive"]) == 2
    assert "no session yet" in capsys.readouterr().err
    asyncio.run(_archive(tmp_path / "data", [["password_en", "refund_en"], ["ship_en", "track_en", "fee_en"]] * 2))
    assert main(["test", "recommend", str(project), "--from-archive", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["conversations_learned_from"] == figures["conversations_evaluated"] == 2
    assert figures["per_language"]["en"]["hot_opportunities"] == 2


async def _archive(data_dir: Path, sessions: list[list[str]]) -> None:
    archive = Archive(SqliteBackend(data_dir / "archive.sqlite3"))
    rows = []
    for number, items in enumerate(sessions):
        events: list[Event] = []
        for n, item in enumerate(items):
            shown = QuestionsRecommended(context=item, items=(), language="en")
            events += [UserUttered(text=f"question {n}"), BotUttered(text="...", fact_ids=(item,)), shown]
        rows.append(archived_session(f"c{number}", split_sessions(events)[0], archived_at=1.0))
    try:
        await archive.save(rows)
    finally:
        await archive.close()
