"""A trained demo shop, built once per test run in a private data folder, on the suite's real Redis."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.runtime import BotAnswer
from bot.settings import Settings
from bot.types import Message
from bot.wiring import Project, Runtime, build_runtime, open_project, train
from tests.bot.servers import Server
from tests.conftest import SHOP

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's chromium through Playwright (the browser tests skip themselves when either is missing)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def shop_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shop-data")


@pytest.fixture(scope="session")
def shop_project(shop_data_dir: Path, redis_target: str) -> Project:
    settings = Settings(data_dir=shop_data_dir, redis_url=redis_target)
    project = open_project(SHOP, settings)
    train(project, progress=False)
    return project


@pytest.fixture
async def shop(shop_project: Project, redis_target: str) -> AsyncIterator[Runtime]:
    runtime = build_runtime(shop_project, Settings(data_dir=shop_project.data_dir, redis_url=redis_target))
    runtime.bot.warm_up()
    yield runtime
    await runtime.aclose()


class Chat:
    """A scripted conversation: `await chat.user("...")` returns the bot's answer."""

    def __init__(self, runtime: Runtime, conversation_id: str | None = None) -> None:
        self.runtime = runtime
        self.conversation_id = conversation_id or f"t-{uuid.uuid4().hex[:10]}"

    async def user(self, text: str, message_id: str | None = None) -> BotAnswer:
        message = Message(
            self.conversation_id, "test", self.conversation_id, message_id or uuid.uuid4().hex, text, time.time()
        )
        return await self.runtime.bot.handle(message)

    async def texts(self, text: str) -> list[str]:
        return [reply.text for reply in (await self.user(text)).replies]


@pytest.fixture
def server_data(shop_project: Project, tmp_path: Path) -> Path:
    # the trained models of the session, with a Redis of this test's own
    data = tmp_path / "data"
    data.mkdir()
    for name in ("models", "index"):
        (data / name).symlink_to(shop_project.data_dir / name)
    return data


@pytest.fixture(scope="session")
def running_shop(shop_project: Project, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One `kefu run` of the trained shop shared by the tests that only talk to it."""
    data = tmp_path_factory.mktemp("running-shop")
    for name in ("models", "index"):
        (data / name).symlink_to(shop_project.data_dir / name)
    server = Server(data)
    yield server
    server.stop()
