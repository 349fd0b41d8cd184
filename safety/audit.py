"""The safety audit log: every verdict that did more than allow (redact, replace, block, escalate), and every
flag, as one JSON line: when, which conversation (hashed), which check, which rule, why.

Verdict reasons already name masked terms and kinds of personal data, never values; the conversation id is
hashed because channels may use a phone number or an OpenID as one. Files are per day
(`audit-YYYY-MM-DD.jsonl`) and appended with one `write` per turn, so several processes can share a folder.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bot.errors import KefuError
from bot.types import SafetyVerdict


@dataclass(frozen=True, slots=True)
class AuditRecord:
    time: str  # ISO 8601, UTC
    conversation: str  # sha256 of the conversation id, 16 hex digits
    trace_id: str
    stage: str
    check: str
    verdict: str  # redact, replace, block, escalate, or flag
    category: str
    rule: str
    reason: str


def conversation_ref(conversation_id: str) -> str:
    """How the audit log names a conversation: operators hash a known id to find its records."""
    return hashlib.sha256(conversation_id.encode()).hexdigest()[:16]


def audit_records(
    conversation_id: str, trace_id: str, verdicts: Iterable[SafetyVerdict], *, now: dt.datetime | None = None
) -> list[AuditRecord]:
    """The records worth keeping from one turn's verdicts: everything but a plain allow."""
    when = (now or dt.datetime.now(dt.UTC)).isoformat(timespec="milliseconds")
    ref = conversation_ref(conversation_id)
    records = []
    for v in verdicts:
        kind = v.kind
        if kind == "allow" and not v.category:
            continue
        verdict = "flag" if kind == "allow" else kind
        records.append(AuditRecord(when, ref, trace_id, v.stage, v.check, verdict, v.category, v.rule, v.reason))
    return records


class AuditLog:
    """Appends records to `directory/audit-<UTC date>.jsonl`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def write(self, records: Sequence[AuditRecord]) -> None:
        if not records:
            return
        payload = "".join(json.dumps(asdict(r), ensure_ascii=False) + "\n" for r in records).encode()
        path = self.directory / f"audit-{records[0].time[:10]}.jsonl"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, payload)
            finally:
                os.close(fd)
        except OSError as err:
            raise KefuError(f"cannot append to the safety audit log {path}: {err}") from err

    def read(self, *, since: dt.date | None = None) -> Iterator[AuditRecord]:
        """Every record, oldest first (from `since`, a UTC date, when given)."""
        for path in sorted(self.directory.glob("audit-*.jsonl")):
            if since is not None and path.stem.removeprefix("audit-") < since.isoformat():
                continue
            with path.open(encoding="utf-8") as lines:
                for line in lines:
                    if line.strip():
                        yield AuditRecord(**json.loads(line))
