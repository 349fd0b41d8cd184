"""Freshness: a knowledge edit reaches a running `kefu run` through `kefu index --reload`, with no restart."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from bot.wiring import Project
from tests.bot.servers import Server
from tests.conftest import SHOP

pytestmark = pytest.mark.integration

TOKEN = "test-admin-token-1234"
OLD = "标准快递订单实付满 ¥99 包邮"
NEW = "标准快递订单实付满 ¥59 包邮"


@pytest.fixture
def shop_copy(shop_project: Project, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the shop (so its knowledge can be edited) and a data folder with the session's trained models."""
    project = tmp_path / "shop"
    shutil.copytree(SHOP, project, ignore=shutil.ignore_patterns(".kefu"))
    data = tmp_path / "data"
    data.mkdir()
    (data / "models").symlink_to(shop_project.data_dir / "models")
    return project, data


def kefu(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(KEFU_DATA_DIR=str(data), KEFU_LOG_LEVEL="WARNING", KEFU_ADMIN_TOKEN=TOKEN)
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_an_faq_edit_is_served_after_kefu_index_reload(shop_copy: tuple[Path, Path]) -> None:
    project, data = shop_copy
    server = Server(data, project=project, env={"KEFU_ADMIN_TOKEN": TOKEN})
    try:
        assert OLD in server.say("u1", "运费怎么收？")[0]["text"]
        refused = httpx.post(f"{server.url}/admin/knowledge/reload", timeout=10)
        assert refused.status_code == 401 and "KEFU_ADMIN_TOKEN" in refused.json()["error"]
        wrong = httpx.post(f"{server.url}/admin/knowledge/reload", headers={"Authorization": "Bearer nope"}, timeout=10)
        assert wrong.status_code == 401
        faq = project / "knowledge" / "faq.csv"
        faq.write_text(faq.read_text(encoding="utf-8").replace(OLD, NEW), encoding="utf-8")
        done = kefu("index", str(project), "--reload", "--url", server.url, data=data)
        assert done.returncode == 0, done.stderr
        assert "reloaded its knowledge" in done.stdout
        assert NEW in server.say("u2", "运费怎么收？")[0]["text"]  # same process, new answer
    finally:
        server.stop()


def test_the_admin_api_is_off_without_a_token(shop_copy: tuple[Path, Path]) -> None:
    project, data = shop_copy
    server = Server(data, project=project)
    try:
        answer = httpx.post(f"{server.url}/admin/knowledge/reload", headers={"Authorization": "Bearer x"}, timeout=10)
        assert answer.status_code == 403 and "KEFU_ADMIN_TOKEN" in answer.json()["error"]
    finally:
        server.stop()


def test_kefu_test_knowledge_prints_the_figures_as_json(shop_copy: tuple[Path, Path]) -> None:
    project, data = shop_copy
    done = kefu("test", "knowledge", str(project), "--json", data=data)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["n_queries"] == 30
    assert {"recall_at_1", "recall_at_5", "mrr"} <= set(figures)
    assert 0.0 <= figures["recall_at_1"] <= figures["recall_at_5"] <= 1.0
