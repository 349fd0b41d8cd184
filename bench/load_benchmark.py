"""Load benchmark: N concurrent multi-turn conversations through the REST webhook and the widget's WebSocket
against a real `kefu run` (loopback only, bounded in turns and time), without LLM generation.

    .venv/bin/python bench/load_benchmark.py [--concurrency 1,10,50,100] [--seconds 20] [--workers 2]
        [--features static|e5] [--rasa-url http://127.0.0.1:5005] [--out bench/results/load]

Prints throughput, end-to-end and per-stage latency p50/p95/p99, Redis round trips per turn, memory per
process and Redis memory per stored conversation, and the first answer after a cold start; writes the
figures as JSON and two PNG plots. With --rasa-url, the same conversations go to a Rasa server's REST channel
and the ratios are printed. The shop example is copied, its generator turned off, and trained once (cached
in the temporary folder).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml
from load_clients import CONVERSATIONS, HttpConnection, Load, check_loopback, drive, rest_conversation
from load_plots import latency_histogram, scaling

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.sessions.connect import EmbeddedRedis, client_for_socket  # noqa: E402


def prepare(work: Path, features: str) -> Path:
    """The shop without its generator, trained (training is skipped when nothing changed)."""
    project = work / f"shop-{features}"
    # the shop as it is now (training below is skipped when nothing it learns from changed)
    shutil.copytree(REPO / "examples" / "shop", project, ignore=shutil.ignore_patterns(".kefu"), dirs_exist_ok=True)
    config = yaml.safe_load((REPO / "examples" / "shop" / "kefu.yml").read_text(encoding="utf-8"))
    config["generator"] = {"backend": "none"}
    config["nlu"]["dense_embedder"] = features
    (project / "kefu.yml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    subprocess.run([sys.executable, "-m", "bot.cli", "train", str(project)], check=True, env=_env(project, {}))
    return project


def _env(project: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(KEFU_DATA_DIR=str(project / ".kefu"), KEFU_LOG_LEVEL="WARNING", **extra)
    return env


class Served:
    """`kefu run` on a port of its own, timed from its start to its first answer."""

    def __init__(self, project: Path, port: int, workers: int, redis_url: str) -> None:
        limits_off = {"KEFU_RATE_LIMIT": "off", "KEFU_RATE_LIMIT_CLIENT": "off"}  # every customer is 127.0.0.1
        env = _env(project, {"REDIS_URL": redis_url, "KEFU_SERVER_TIMING": "1", **limits_off})
        command = [sys.executable, "-m", "bot.cli", "run", str(project), "--port", str(port)]
        self.url = f"http://127.0.0.1:{port}"
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [*command, "--workers", str(workers)], env=env, stdout=subprocess.DEVNULL, start_new_session=True
        )
        self.first_answer_s = self._first_answer(started)

    def _first_answer(self, started: float) -> float:
        while time.perf_counter() - started < 300:
            if self.process.poll() is not None:
                raise SystemExit(f"kefu run exited with {self.process.returncode}")
            try:
                body = {"sender": "cold-start", "message": "你好"}
                if httpx.post(f"{self.url}/webhooks/rest/webhook", json=body, timeout=10).status_code == 200:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                time.sleep(0.05)
        raise SystemExit("kefu run gave no answer within 300 s")

    def memory_mb(self) -> list[float]:
        """Resident memory of each process (the supervisor and its workers)."""
        return [_rss_mb(pid) for pid in [self.process.pid, *_children(self.process.pid)]]

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:  # the figures are taken already: report them, and say so
            print("warning: kefu run did not stop within 60 s of SIGTERM and was killed", file=sys.stderr)
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        for child in (task / "children").read_text().split():
            found += [int(child), *_children(int(child))]
    return found


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of these processes (those that ended count nothing)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _machine_busy_s() -> float:
    """CPU seconds all cores spent busy since boot (/proc/stat: all but idle and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _redis_pids(socket: str) -> list[int]:
    """The embedded redis-server serving `socket` (it runs detached, not as a child of this process)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if socket in cmdline.read_text():
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


class CpuMeter:
    """CPU time over one level: kefu's processes, the embedded Redis and this load generator, each per answered
    turn, and the cores other processes of the machine took meanwhile (above ~0.1, the figures were disturbed)."""

    def __init__(self, server: Served, socket: str) -> None:
        self._server = server
        self._redis = _redis_pids(socket)
        self._start = self._sample()

    def _sample(self) -> tuple[float, ...]:
        server = _cpu_s([self._server.process.pid, *_children(self._server.process.pid)])
        return server, _cpu_s(self._redis), time.process_time(), _machine_busy_s(), time.perf_counter()

    def use(self, load: Load) -> dict[str, float]:
        server, redis, generator, busy, wall = (b - a for a, b in zip(self._start, self._sample(), strict=True))
        per_turn = 1000 / max(sum(t.ok for t in load.turns), 1)
        return {
            "server_ms_per_turn": round(server * per_turn, 2),
            "redis_ms_per_turn": round(redis * per_turn, 2),
            "generator_ms_per_turn": round(generator * per_turn, 2),
            "other_cores": round(max(busy - server - redis - generator, 0.0) / wall, 2),
        }


def summary(load: Load) -> dict[str, object]:
    ok = [t for t in load.turns if t.ok]
    ms = np.asarray([t.ms for t in ok]) if ok else np.zeros(1)
    stages: dict[str, list[float]] = {}
    for turn in ok:
        for name, value in turn.stages:
            stages.setdefault(name, []).append(value)
    trips = [t.round_trips for t in ok if t.round_trips is not None]
    return {
        "concurrency": load.concurrency,
        "turns": len(load.turns),
        "failed": len(load.turns) - len(ok),
        "turns_per_s": round(load.throughput, 1),
        **{f"p{q}_ms": round(float(np.percentile(ms, q)), 2) for q in (50, 95, 99)},
        "stages_ms": {n: [round(float(np.percentile(v, q)), 2) for q in (50, 95, 99)] for n, v in stages.items()},
        "redis_round_trips_per_turn": round(float(np.mean(trips)), 2) if trips else None,
    }


async def redis_per_conversation(url: str, socket: str, conversations: int = 100) -> dict[str, float]:
    """Redis memory of a stored 10-turn conversation: the growth of `used_memory` while `conversations` new
    ones are held, and the exact size of their keys (MEMORY USAGE, all samples)."""
    client = client_for_socket(socket)
    before = (await client.info("memory"))["used_memory"]
    for start in range(0, conversations, 10):
        batch = [CONVERSATIONS[(start + n) % len(CONVERSATIONS)] for n in range(10)]
        await asyncio.gather(*(_stored_conversation(url, turns) for turns in batch))
    after = (await client.info("memory"))["used_memory"]
    sizes = [await client.memory_usage(key, samples=0) or 0 async for key in client.scan_iter(match="kefu:{memory-*")]
    await client.aclose()
    return {
        "used_memory_growth_per_conversation": (after - before) / conversations,
        "keys_bytes_per_conversation": sum(sizes) / conversations,
    }


async def _stored_conversation(url: str, turns: tuple[str, ...]) -> None:
    http = HttpConnection(url)
    try:
        await rest_conversation(http, turns, "rest", "memory-")
    finally:
        await http.close()


def print_table(rows: list[dict[str, object]], title: str) -> None:
    print(f"\n{title}")
    print(
        f"{'conc':>5} {'turns':>6} {'fail':>5} {'turns/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'RT/turn':>8}"
    )
    for r in rows:
        print(
            f"{r['concurrency']:>5} {r['turns']:>6} {r['failed']:>5} {r['turns_per_s']:>8} {r['p50_ms']:>8} "
            f"{r['p95_ms']:>8} {r['p99_ms']:>8} {r['redis_round_trips_per_turn'] or '-':>8}"
        )


def print_cpu(rows: list[dict[str, object]]) -> None:
    print("\nCPU ms per turn: kefu's processes, the embedded Redis, this load generator; cores others took meanwhile")
    for row in rows:
        use = row["cpu"]
        assert isinstance(use, dict)
        print(
            f"{row['concurrency']:>5} {use['server_ms_per_turn']:>8} {use['redis_ms_per_turn']:>8} "
            f"{use['generator_ms_per_turn']:>8} {use['other_cores']:>8}"
        )


def print_stages(row: dict[str, object]) -> None:
    stages = row["stages_ms"]
    assert isinstance(stages, dict)
    print(f"\nper stage at {row['concurrency']} concurrent (server's own figures, p50 / p95 / p99 ms)")
    for name, (p50, p95, p99) in stages.items():
        print(f"  {name:<12} {p50:>7} {p95:>7} {p99:>7}")


def _bounds(args: argparse.Namespace) -> dict[str, Any]:
    return {"seconds": args.seconds, "max_turns": args.max_turns, "think": args.think}


def _levels(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=_levels, default=[1, 10, 50, 100])
    parser.add_argument("--seconds", type=float, default=20.0, help="per concurrency level (at most)")
    parser.add_argument("--max-turns", type=int, default=6000, help="per concurrency level (at most)")
    parser.add_argument("--workers", type=int, default=2, help="kefu run --workers")
    parser.add_argument("--think", type=float, default=0.0, help="seconds a customer pauses between messages, mean")
    parser.add_argument("--channels", default="rest,ws", help="rest, ws or both, alternating conversations")
    parser.add_argument("--features", choices=("static", "e5"), default="static", help="the NLU's dense features")
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--rasa-url", default=None, help="a Rasa server with its REST channel, on this machine")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "kefu-load-bench")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "load")
    args = parser.parse_args()
    rasa = check_loopback(args.rasa_url) if args.rasa_url else None
    project = prepare(args.work, args.features)
    asyncio.run(run(args, project, rasa))


async def run(args: argparse.Namespace, project: Path, rasa: str | None) -> None:
    shutil.rmtree(args.work / "redis", ignore_errors=True)  # an empty Redis: memory figures count this run only
    redis = EmbeddedRedis(args.work / "redis")
    socket = redis.start()
    server = Served(project, args.port, args.workers, "unix://" + socket)
    try:
        print(f"first answer {server.first_answer_s:.2f} s after `kefu run --workers {args.workers}` started")
        channels = [c.strip() for c in args.channels.split(",")]
        await drive(server.url, 4, seconds=5, max_turns=80, channels=channels)  # warm-up
        loads, cpu = [], []
        for level in args.concurrency:
            meter = CpuMeter(server, socket)
            loads.append(await drive(server.url, level, channels=channels, **_bounds(args)))
            cpu.append(meter.use(loads[-1]))
            print(f"  {level} concurrent: {loads[-1].throughput:.0f} turns/s", flush=True)
        memory = server.memory_mb()
        per_conversation = await redis_per_conversation(server.url, socket)
    finally:
        server.stop()
        redis.stop()
    baseline = (
        [await drive(rasa, n, channels=["rest"], rasa=True, **_bounds(args)) for n in args.concurrency] if rasa else []
    )
    report(args, loads, cpu, baseline, memory, per_conversation, server.first_answer_s)


def report(
    args: argparse.Namespace,
    loads: list[Load],
    cpu: list[dict[str, float]],
    baseline: list[Load],
    memory: list[float],
    per_conversation: dict[str, float],
    first_answer_s: float,
) -> None:
    rows = [{**summary(load), "cpu": use} for load, use in zip(loads, cpu, strict=True)]
    title = f"kefu, {args.workers} workers, NLU features {args.features}, channels {args.channels}"
    print_table(rows, title + (f", customers pause {args.think:g} s on average" if args.think else ", no pauses"))
    print_cpu(rows)
    failures = Counter(f"{t.channel}: {t.error}" for load in loads for t in load.turns if not t.ok)
    if failures:
        print("\nfailed turns: " + ", ".join(f"{reason} ({n})" for reason, n in failures.most_common()))
    print_stages(rows[-1])
    print(f"\nmemory per process (MB): {', '.join(f'{m:.0f}' for m in memory)}")
    print(
        f"Redis memory per 10-turn conversation: {per_conversation['keys_bytes_per_conversation'] / 1024:.2f} KB "
        f"in its keys; used_memory grew {per_conversation['used_memory_growth_per_conversation'] / 1024:.2f} KB each"
    )
    print(f"first answer after a cold start: {first_answer_s:.2f} s")
    results: dict[str, object] = {
        "kefu": rows,
        "memory_mb": memory,
        "redis": per_conversation,
        "first_answer_s": first_answer_s,
    }
    if baseline:
        rasa_rows = [summary(load) for load in baseline]
        print_table(rasa_rows, "Rasa (REST channel)")
        print("\nratios kefu / Rasa: throughput, p50, p99")
        for ours, theirs in zip(rows, rasa_rows, strict=True):
            ratios = [_ratio(ours[k], theirs[k]) for k in ("turns_per_s", "p50_ms", "p99_ms")]
            print(f"  {ours['concurrency']:>4} concurrent: " + ", ".join(ratios))
        results["rasa"] = rasa_rows
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "load.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    latency_histogram(loads[-1], args.out / "latency_histogram.png")
    scaling(loads, args.out / "throughput_by_concurrency.png", baseline=baseline)
    print(f"\nfigures and plots in {args.out}")


def _ratio(ours: object, theirs: object) -> str:
    return f"{float(ours) / float(theirs):.2f}x" if isinstance(ours, int | float) and theirs else "-"  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
