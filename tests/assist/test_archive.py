"""The conversation archive: real Redis sessions in, real SQLite (and PostgreSQL when reachable) out."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import pytest
import redis.asyncio as aioredis

from bot.assist.archive import Archive, archive_conversation, archive_ended, start_archiver
from bot.assist.archive_sql import ArchivedSession, ArchiveError, SqliteBackend, backend_for_url
from bot.cli import main
from bot.events import (
    ActionExecuted,
    BotUttered,
    Event,
    FeedbackGiven,
    HandedOff,
    OperatorMessage,
    SessionStarted,
    SlotSet,
    UserUttered,
    event_from_dict,
)
from bot.runtime import Bot
from bot.sessions.redis_store import RedisSessionStore, StoreOptions
from bot.types import Entity, NluResult

pytestmark = pytest.mark.integration

REDIS_DB = 7  # a database of the suite's Redis for these tests alone: archiving scans every conversation
PG_URL = os.environ.get("KEFU_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
IDLE = 1800.0
T0 = 1_700_000_000.0
T2 = T0 + 20 + IDLE + 100  # after the first session expired: the second one starts
PHONE, EMAIL = "13812345678", "zhang.san@example.com"
UNREACHABLE = "postgresql://kefu:s3cret@127.0.0.1:1/archive"


def isolated_url(target: str) -> str:
    if target.startswith("unix://"):
        return f"{target}?db={REDIS_DB}"
    return urlunsplit(urlsplit(target)._replace(path=f"/{REDIS_DB}"))


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@dataclass
class Conversations:
    """A (web, Chinese then English, two sessions, handed off) and B (wechat, English, one session)."""

    store: RedisSessionStore
    clock: Clock
    a: str = ""
    b: str = ""

    async def turn(self, conversation_id: str, at: float, *events: Event) -> None:
        self.clock.now = at
        async with self.store.lock(conversation_id) as token:
            session = await self.store.load(conversation_id)
            stamped = [dataclasses.replace(e, timestamp=at) for e in events]
            await self.store.commit(session.with_events(stamped), token)

    async def build(self) -> Conversations:
        self.a, self.b = f"a-{uuid.uuid4().hex[:8]}", f"b-{uuid.uuid4().hex[:8]}"
        ask = BotUttered(text="好的，请问您的订单号和联系电话？", reply_id="r1")
        await self.turn(
            self.a, T0, user("你好，我想退货", "return_request", "zh"), ActionExecuted(name="utter_ask"), ask
        )
        contact = user(f"电话 {PHONE}，邮箱 {EMAIL}", "inform", "zh", Entity("phone_number", PHONE, 3, 14))
        slots = [SlotSet(name="phone", value=PHONE), SlotSet(name="email", value=EMAIL)]
        await self.turn(
            self.a, T0 + 10, contact, *slots, HandedOff(reason="request_human"), BotUttered(text="正在转接人工")
        )
        operator = OperatorMessage(operator="alice", text=f"您好，已收到您的退货申请，会致电 {PHONE}")
        rated = [FeedbackGiven(rating=1, reply_id="r1"), FeedbackGiven(rating=4, kind="csat")]
        await self.turn(self.a, T0 + 20, operator, *rated)
        invoice = user("I need an invoice please", "ask_invoice", "en", channel="wechat")
        await self.turn(self.b, T0 + 100, invoice, BotUttered(text="Sure, here is how to get an invoice."))
        refund = user("Where is my REFUND?", "ask_refund", "en")
        await self.turn(self.a, T2, refund, BotUttered(text="Your refund was sent yesterday."))
        return self


def user(text: str, intent: str, language: str, *entities: Entity, channel: str = "web") -> UserUttered:
    nlu = NluResult(text=text, intent=intent, confidence=0.9, entities=entities, language=language)  # type: ignore[arg-type]
    return UserUttered(text=text, channel=channel, message_id=uuid.uuid4().hex, nlu=nlu)


def sqlite_files(folder: Path) -> str:
    """The archive file and its write-ahead log, as text."""
    return b"".join(p.read_bytes() for p in folder.glob("archive.sqlite3*")).decode("utf-8", "replace")


async def fresh_store(redis_target: str) -> tuple[RedisSessionStore, Clock]:
    client = aioredis.Redis.from_url(isolated_url(redis_target), decode_responses=True)
    await client.flushdb()
    clock = Clock()
    return RedisSessionStore(client, StoreOptions(expiration_s=IDLE), clock=clock), clock


@pytest.fixture
async def convos(redis_target: str) -> AsyncIterator[Conversations]:
    store, clock = await fresh_store(redis_target)
    yield await Conversations(store, clock).build()
    await store.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A schema of its own on the test PostgreSQL (KEFU_TEST_POSTGRES_URL), dropped afterwards."""
    try:
        admin = psycopg.connect(PG_URL, autocommit=True, connect_timeout=3)
    except psycopg.Error as err:
        pytest.skip(f"no PostgreSQL at {PG_URL.split('@')[-1]} ({str(err).strip()}); set KEFU_TEST_POSTGRES_URL")
    schema = f"kefu_test_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE SCHEMA "{schema}"')
    parts = urlsplit(PG_URL)
    query = urlencode([*parse_qsl(parts.query), ("options", f"-csearch_path={schema}")])
    try:
        yield urlunsplit(parts._replace(query=query))
    finally:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def archive(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Archive]:
    if request.param == "sqlite":
        opened = Archive(SqliteBackend(tmp_path / "archive.sqlite3"))
    else:
        opened = Archive(backend_for_url(request.getfixturevalue("postgres_url")))
    yield opened
    await opened.close()


async def test_ended_sessions_are_archived_once_and_the_open_one_when_idle(
    convos: Conversations, archive: Archive
) -> None:
    store = convos.store
    assert await archive_ended(store, archive, idle_s=IDLE, now=T2 + 60) == 2  # A#1 (a newer one follows), B#1
    assert await archive_ended(store, archive, idle_s=IDLE, now=T2 + 60) == 0  # unchanged: nothing written
    assert [s.session_number for s in await archive.get(convos.a)] == [1]
    assert await archive_ended(store, archive, idle_s=IDLE, now=T2 + IDLE + 1) == 1  # A#2 is idle now
    assert await archive_ended(store, archive, idle_s=IDLE, now=T2 + IDLE + 1) == 0
    first, second = await archive.get(convos.a)
    assert (first.channel, first.language, first.user_turns, first.started_at, first.ended_at) == (
        "web", "zh", 2, T0, T0 + 20,
    )  # fmt: skip
    assert (first.handed_off, first.handoff_reason, first.csat, first.thumbs_up, first.thumbs_down) == (
        True, "request_human", 4, 1, 0,
    )  # fmt: skip
    assert first.intents == ("return_request", "inform") and first.first_message == "你好，我想退货"
    assert [e["role"] for e in first.transcript] == ["user", "bot", "user", "bot", "operator"]
    assert isinstance(event_from_dict(second.events[0]), SessionStarted)
    assert (second.language, second.user_turns, second.handed_off, second.csat) == ("en", 1, False, None)
    assert second.transcript[0]["seq"] == len(first.events) + 3  # positions in the conversation's whole log
    assert [s.session_number for s in await archive.get(convos.b)] == [1]
    assert await archive.get(convos.a, 2) == [second]


async def test_archive_now_takes_the_open_session_and_replaces_it_when_it_goes_on(
    convos: Conversations, archive: Archive
) -> None:
    assert await archive_conversation(convos.store, archive, convos.a) == 2
    assert await archive_conversation(convos.store, archive, convos.a) == 0
    await convos.turn(convos.a, T2 + 30, user("thanks, bye", "goodbye", "en"))
    assert await archive_conversation(convos.store, archive, convos.a) == 1
    sessions = await archive.get(convos.a)
    assert [(s.session_number, s.user_turns) for s in sessions] == [(1, 2), (2, 2)]
    assert await archive_ended(convos.store, archive, idle_s=IDLE, now=T2 + 60, include_open=True) == 1  # B only


async def test_personal_data_never_reaches_the_archive_or_the_export(
    convos: Conversations, archive: Archive, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    await archive_ended(convos.store, archive, idle_s=IDLE, now=T2 + 60, include_open=True)
    export = tmp_path / "out" / "archive.jsonl"
    assert await archive.export_jsonl(export) == 3
    if "postgres_url" in request.fixturenames:
        with psycopg.connect(request.getfixturevalue("postgres_url")) as db:
            stored = "\n".join(r[0] for r in db.execute("SELECT row_to_json(s)::text FROM kefu_archive_sessions s"))
    else:
        stored = sqlite_files(tmp_path)
    for text in (stored, export.read_text(encoding="utf-8")):
        assert PHONE not in text and EMAIL not in text
        assert "138****5678" in text and "z***@example.com" in text  # masked, with a hint, not dropped
    first = (await archive.get(convos.a, 1))[0]
    slots = {e["name"]: e["value"] for e in first.events if e["event"] == "slot"}
    assert slots == {"phone": "138****5678", "email": "z***@example.com"}
    assert "138****5678" in first.transcript[-1]["text"]  # the operator's text too


async def test_search_finds_chinese_and_english_substrings_with_filters(
    convos: Conversations, archive: Archive
) -> None:
    await archive_ended(convos.store, archive, idle_s=IDLE, now=T2 + IDLE + 1)
    a, b = convos.a, convos.b

    async def found(text: str | None = None, **filters: object) -> list[tuple[str, int]]:
        return [(h.conversation_id, h.session_number) for h in await archive.search(text, **filters)]  # type: ignore[arg-type]

    assert await found("退货") == [(a, 1)]  # two characters: below a trigram
    assert await found("我想退货") == [(a, 1)]
    assert await found("已收到") == [(a, 1)]  # an operator's words
    assert await found("refund") == await found("REFUND") == [(a, 2)]
    assert await found("invoice PLEASE") == [(b, 1)]  # every word must occur
    assert await found("invoice refund") == [] and await found("%") == [] and await found("_") == []
    assert await found() == [(a, 2), (b, 1), (a, 1)]  # newest first
    assert await found(channel="wechat") == [(b, 1)]
    assert await found(handed_off=True) == [(a, 1)]
    assert await found(handed_off=False, limit=1) == [(a, 2)]
    assert await found(since=T0 + 50, until=T0 + 1000) == [(b, 1)]
    assert await found("好", channel="web") == [(a, 1)]
    (hit,) = await archive.search("退货")
    assert "我想退货" in hit.snippet and hit.first_message == "你好，我想退货" and hit.handed_off


async def test_export_jsonl_round_trips_what_get_returns(convos: Conversations, archive: Archive) -> None:
    await archive_ended(convos.store, archive, idle_s=IDLE, now=T2 + IDLE + 1)
    out = io.StringIO()
    assert await archive.export_jsonl(out) == 3
    exported = [ArchivedSession.from_dict(json.loads(line)) for line in out.getvalue().splitlines()]
    assert exported == [
        *(await archive.get(convos.a, 1)),
        *(await archive.get(convos.b)),
        *(await archive.get(convos.a, 2)),
    ]
    assert await archive.export_jsonl(io.StringIO(), since=T0 + 50) == 2


async def test_the_background_archiver_archives_and_survives_a_broken_archive(
    convos: Conversations, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bot = cast(Bot, type("BotStandIn", (), {"store": convos.store})())  # the archiver only needs the store
    good = Archive(SqliteBackend(tmp_path / "archive.sqlite3"))
    broken = Archive(backend_for_url(UNREACHABLE))
    tasks = [start_archiver(bot, good, 0.05, idle_s=IDLE), start_archiver(bot, broken, 0.05, idle_s=IDLE)]
    with caplog.at_level(logging.ERROR, logger="bot.assist.archive"):
        for _ in range(100):
            await asyncio.sleep(0.05)
            if len(await good.search()) == 3 and len(caplog.records) >= 2:
                break
    assert len(await good.search()) == 3  # the events are from long ago: every session has ended
    assert not any(t.done() for t in tasks)  # failures were logged, the task goes on
    assert "cannot reach the archive database" in caplog.text and "s3cret" not in caplog.text
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await good.close()
    await broken.close()


async def test_a_wrong_archive_url_says_what_to_fix() -> None:
    archive = Archive(backend_for_url(UNREACHABLE))
    with pytest.raises(ArchiveError, match="KEFU_ARCHIVE_URL") as caught:
        await archive.open()
    assert "127.0.0.1:1" in str(caught.value) and "s3cret" not in str(caught.value)
    await archive.close()
    with pytest.raises(ArchiveError, match="postgresql://") as caught:
        backend_for_url("mysql://kefu:s3cret@db/archive")
    assert "s3cret" not in str(caught.value)


def test_kefu_archive_command(
    tmp_path: Path, redis_target: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "mybot"
    assert main(["init", str(project)]) == 0
    monkeypatch.setenv("REDIS_URL", isolated_url(redis_target))
    monkeypatch.setenv("KEFU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("KEFU_ARCHIVE_URL", raising=False)
    convos = asyncio.run(_build(redis_target))
    capsys.readouterr()
    assert main(["archive", str(project), "--now"]) == 0
    assert "Archived 3 new or changed session(s)" in capsys.readouterr().out
    assert main(["archive", str(project), "--search", "退货"]) == 0
    assert f"{convos.a} #1  [handed off]" in capsys.readouterr().out
    out = tmp_path / "export.jsonl"
    assert main(["archive", str(project), "--export", str(out)]) == 0
    assert "Wrote 3 archived session(s)" in capsys.readouterr().out
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3 and not any(PHONE in line for line in lines)
    assert (tmp_path / "data" / "archive.sqlite3").exists()
    assert main(["archive", str(project)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert main(["archive", str(project), "--all"]) == 2
    assert "--all goes with --now" in capsys.readouterr().err
    monkeypatch.setenv("KEFU_ARCHIVE_URL", UNREACHABLE)
    assert main(["archive", str(project), "--search", "x"]) == 2
    err = capsys.readouterr().err
    assert "KEFU_ARCHIVE_URL" in err and "s3cret" not in err


async def _build(redis_target: str) -> Conversations:
    store, clock = await fresh_store(redis_target)
    try:
        return await Conversations(store, clock).build()
    finally:
        await store.close()
