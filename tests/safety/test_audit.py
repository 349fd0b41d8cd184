"""The safety audit log: what is kept, that it holds no personal data, and that processes can share it."""

from __future__ import annotations

import datetime as dt
import multiprocessing
from pathlib import Path

from bot.types import SafetyVerdict
from safety.audit import AuditLog, audit_records, conversation_ref
from safety.pii import PiiMasker

NOW = dt.datetime(2026, 11, 24, 9, 30, tzinfo=dt.UTC)


def test_only_verdicts_that_did_something_are_kept() -> None:
    verdicts = [
        SafetyVerdict("lexicon", "input", True),
        PiiMasker().check("我的手机 13812345678", stage="input"),
        SafetyVerdict("flags", "input", True, "risk", "risk: 律*函"),
        SafetyVerdict("compliance", "output", False, "compliance", "rule x", action="replace", rule="x"),
        SafetyVerdict("injection", "input", False, "injection", "injection: ignore_instructions"),
    ]
    records = audit_records("+8613812345678", "t1", verdicts, now=NOW)
    assert [(r.check, r.verdict) for r in records] == [
        ("pii", "redact"), ("flags", "flag"), ("compliance", "replace"), ("injection", "block")
    ]  # fmt: skip
    assert {r.conversation for r in records} == {conversation_ref("+8613812345678")}
    assert records[0].time == "2026-11-24T09:30:00.000+00:00"


def test_records_hold_no_personal_data(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    verdict = PiiMasker().check("card 4111 1111 1111 1111, phone 13812345678", stage="input")
    log.write(audit_records("13812345678", "t1", [verdict], now=NOW))
    content = (tmp_path / "audit-2026-11-24.jsonl").read_text(encoding="utf-8")
    assert "13812345678" not in content and "4111" not in content
    [record] = list(log.read())
    assert record.reason == "masked cn_mobile, bank_card"


def _append(directory: str, worker: int) -> None:
    log = AuditLog(Path(directory))
    for turn in range(200):
        verdict = SafetyVerdict("lexicon", "input", False, "abuse", f"worker {worker} turn {turn}")
        log.write(audit_records(f"c{worker}", f"t{turn}", [verdict, verdict], now=NOW))


def test_processes_append_whole_lines_to_one_file(tmp_path: Path) -> None:
    workers = [multiprocessing.get_context("spawn").Process(target=_append, args=(str(tmp_path), w)) for w in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    records = list(AuditLog(tmp_path).read())
    assert len(records) == 3 * 200 * 2
    assert {r.reason for r in records} == {f"worker {w} turn {t}" for w in range(3) for t in range(200)}


def test_read_since_skips_older_days(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    verdict = SafetyVerdict("lexicon", "input", False, "abuse")
    log.write(audit_records("c", "t1", [verdict], now=NOW - dt.timedelta(days=2)))
    log.write(audit_records("c", "t2", [verdict], now=NOW))
    assert [r.trace_id for r in log.read(since=NOW.date())] == ["t2"]
    assert [r.trace_id for r in log.read()] == ["t1", "t2"]
