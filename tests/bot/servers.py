"""A real `kefu run` process for tests, on the embedded Redis of its own data folder."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import SHOP


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(
        self,
        data_dir: Path,
        *,
        project: Path = SHOP,
        env: dict[str, str] | None = None,
        port: int | None = None,
        workers: int = 1,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environment = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}  # the embedded Redis, as `make run`
        environment.update(KEFU_DATA_DIR=str(data_dir), KEFU_LOG_LEVEL="WARNING", **(env or {}))
        command = [sys.executable, "-m", "bot.cli", "run", str(project), "--port", str(self.port)]
        command += ["--workers", str(workers)]
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

    def kill(self) -> None:
        """As a crash would: no chance to finish turns or release locks."""
        self.process.kill()
        self.process.wait(timeout=30)
