"""The generator end to end: a streamed answer over HTTP, feedback on it, the exports, and the reward model
trained from them reranking the next answers."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from bot.events import FeedbackGiven
from bot.settings import Settings
from bot.types import Message
from bot.wiring import Project, build_runtime, open_project
from tests.bot.servers import Server
from tests.conftest import SHOP

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GENERATED_QUESTION = "How long do the Nebula Buds last on one charge?"  # a passage of the care guide: generated


@pytest.fixture
def data_dir(shop_project: Project, tmp_path: Path) -> Path:
    """The session's trained models and index, with a Redis and a models/reward folder of this test's own."""
    data = tmp_path / "data"
    (data / "models").mkdir(parents=True)
    for name in ("nlu", "core"):
        (data / "models" / name).symlink_to(shop_project.data_dir / "models" / name)
    (data / "index").symlink_to(shop_project.data_dir / "index")
    return data


def sse_events(response: httpx.Response) -> list[tuple[str, dict]]:
    events, name = [], ""
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            events.append((name, json.loads(line.removeprefix("data: "))))
    return events


def kefu(*args: str, data: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    environment.update(KEFU_DATA_DIR=str(data), KEFU_LOG_LEVEL="WARNING", **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args], env=environment, capture_output=True, text=True, timeout=300
    )


def test_a_streamed_answer_rated_up_becomes_a_training_example(data_dir: Path) -> None:
    server = Server(data_dir)
    try:
        body = {"sender": "+8613800138000", "message": GENERATED_QUESTION}
        with httpx.stream("POST", f"{server.url}/webhooks/rest/stream", json=body, timeout=120) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            events = sse_events(response)
        partials = [data for name, data in events if name == "partial"]
        [message] = [data for name, data in events if name == "message"]
        assert events[-1][0] == "done" and partials, events
        assert {p["reply_id"] for p in partials} == {message["kefu"]["id"]}
        assert message["text"] == " ".join(p["text"].strip() for p in partials)  # shown == said
        assert "6" in message["text"] and message["kefu"]["fact_ids"]

        feedback = f"{server.url}/webhooks/rest/feedback"
        rated = {"sender": body["sender"], "reply_id": message["kefu"]["id"], "rating": 1}
        assert httpx.post(feedback, json=rated).json() == {"recorded": True}
        assert httpx.post(feedback, json={**rated, "reply_id": "nope"}).status_code == 400
        assert httpx.post(feedback, json={**rated, "rating": 5}).status_code == 400
        assert httpx.post(feedback, json={"sender": body["sender"], "csat": 5}).status_code == 200

        out = data_dir / "sft.jsonl"
        done = kefu("export", "sft", str(SHOP), "--out", str(out), data=data_dir)  # beside the running server
        assert done.returncode == 0, done.stderr
    finally:
        server.stop()
    [record] = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert record["completion"] == [{"role": "assistant", "content": message["text"]}]
    assert record["prompt"][-1] == {"role": "user", "content": GENERATED_QUESTION}
    assert message["kefu"]["fact_ids"][0] in record["prompt"][0]["content"]  # the facts the answer rested on
    assert record["meta"]["source"] == "thumbs_up" and "13800138000" not in out.read_text(encoding="utf-8")

    tuned = kefu("train", "generator", str(SHOP), "--sft", str(out), "--epochs", "1", data=data_dir)
    assert tuned.returncode == 0, tuned.stderr
    assert "sft_loss" in tuned.stdout and "->" in tuned.stdout and "generator: {model:" in tuned.stdout
    assert (data_dir / "models" / "generator" / "finetune.json").exists()
    again = kefu("train", "generator", str(SHOP), "--sft", str(out), "--epochs", "1", data=data_dir)
    assert again.returncode == 0 and "up to date" in again.stdout


async def _rate_down_and_answer_as_operator(runtime, questions_and_answers) -> None:  # type: ignore[no-untyped-def]
    bot = runtime.bot
    for question, operator_answer in questions_and_answers:
        conversation = f"loop-{uuid.uuid4().hex[:8]}"
        answer = await bot.handle(Message(conversation, "test", conversation, uuid.uuid4().hex, question, time.time()))
        reply = answer.replies[-1]
        await bot.record_feedback(conversation, FeedbackGiven(rating=-1, reply_id=reply.reply_id))
        await bot.operator_reply(conversation, "agent-7", operator_answer)


def test_preferences_from_operators_train_a_reward_model_that_then_reranks(data_dir: Path, redis_target: str) -> None:
    settings = Settings(data_dir=data_dir, redis_url=redis_target)
    project = open_project(SHOP, settings)
    pairs = [
        ("How much does express shipping cost?", "Express shipping costs ¥15 and arrives in 1-2 business days."),
        ("How long does delivery take?", "Standard delivery takes 3-5 business days; express takes 1-2."),
        ("运费怎么算？", "普通快递满99元包邮，不满99元收取10元运费。"),
        ("多久能退款？", "退款会在收到退货后的1-3个工作日内原路退回。"),
    ]

    async def converse() -> None:
        runtime = build_runtime(project, settings)
        runtime.bot.warm_up()
        try:
            await _rate_down_and_answer_as_operator(runtime, pairs)
        finally:
            await runtime.aclose()

    asyncio.run(converse())
    out = data_dir / "preferences.jsonl"
    env = {"REDIS_URL": redis_target}
    exported = kefu("export", "preferences", str(SHOP), "--out", str(out), data=data_dir, env=env)
    assert exported.returncode == 0, exported.stderr
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    chosen = {r["chosen"][0]["content"] for r in records}
    assert {answer for _, answer in pairs} <= chosen

    trained = kefu("train", "reward", str(SHOP), "--file", str(out), data=data_dir, env=env)
    assert trained.returncode == 0, trained.stderr
    assert "accuracy" in trained.stdout and (data_dir / "models" / "reward" / "reward.safetensors").exists()
    again = kefu("train", "reward", str(SHOP), "--file", str(out), data=data_dir, env=env)
    assert "up to date" in again.stdout

    async def ask() -> list[str]:
        runtime = build_runtime(project, settings)
        runtime.bot.warm_up()
        try:
            answer = await runtime.bot.handle(Message("rr", "test", "rr", uuid.uuid4().hex, GENERATED_QUESTION, 0.0))
        finally:
            await runtime.aclose()
        assert answer.trace is not None
        return [f"{s.name}:{s.detail}" for s in answer.trace.stages]

    assert "rerank:reward" in asyncio.run(ask())
