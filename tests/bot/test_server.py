"""`kefu run` as a user starts it: a real process, real HTTP, the embedded Redis, and a restart."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bot.wiring import Project
from tests.conftest import SHOP

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, data_dir: Path, *, project: Path = SHOP, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environment = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}  # the embedded Redis, as `make run`
        environment.update(KEFU_DATA_DIR=str(data_dir), KEFU_LOG_LEVEL="WARNING", **(env or {}))
        command = [sys.executable, "-m", "bot.cli", "run", str(project), "--port", str(self.port)]
        self.process = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._wait_until_healthy()

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.process.stdout.read().decode() if self.process.stdout else ""
                raise RuntimeError(f"kefu run exited with {self.process.returncode}:\n{output}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise TimeoutError("kefu run did not become healthy in 120 s")

    def say(self, sender: str, text: str) -> list[dict]:
        response = httpx.post(f"{self.url}/webhooks/rest/webhook", json={"sender": sender, "message": text}, timeout=60)
        response.raise_for_status()
        return response.json()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)


@pytest.fixture
def server_data(shop_project: Project, tmp_path: Path) -> Path:
    # the trained models of the session, with a Redis of this test's own
    data = tmp_path / "data"
    data.mkdir()
    for name in ("models", "index"):
        (data / name).symlink_to(shop_project.data_dir / name)
    return data


def test_rest_answers_chinese_and_english_and_a_restart_keeps_the_conversation(server_data: Path) -> None:
    server = Server(server_data)
    try:
        zh = server.say("u-zh", "退货政策是什么？")
        assert zh[0]["recipient_id"] == "u-zh" and "7 天" in zh[0]["text"]
        en = server.say("u-en", "How much is the X1 Pro?")
        assert en == [{"recipient_id": "u-en", "text": "The X1 Pro costs ¥5999.", "kefu": en[0]["kefu"]}]
        asked = server.say("u-order", "我想查订单")
        assert "订单号" in asked[0]["text"]
        bad = httpx.post(f"{server.url}/webhooks/rest/webhook", content=b"{not json", timeout=10)
        assert bad.status_code == 400 and "not JSON" in bad.json()["error"]
    finally:
        server.stop()
    server = Server(server_data)
    try:
        answer = server.say("u-order", "SO20261001")  # the form asked before the restart; it still waits for this
        assert answer[0]["text"].startswith("订单 SO20261001 的状态：已发货")
    finally:
        server.stop()
