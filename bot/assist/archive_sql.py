"""Where archived sessions live: SQLite (the default, one file under PROJECT/.kefu) or PostgreSQL.

Both backends hold the same rows and answer the same queries; only text search differs. SQLite keeps the
searchable text in an FTS5 table with the trigram tokenizer (substrings of any script, case-insensitive);
PostgreSQL uses ILIKE, backed by a pg_trgm index where the extension can be created. Terms shorter than
three characters cannot be found through trigrams, so they are matched with LIKE on both.
Every call here blocks: `Archive` (archive.py) runs them on its own worker thread.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from bot.errors import KefuError
from bot.sessions.connect import describe_url

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
# version -> statements that migrate from the version before it (none yet: version 1 is the first)
MIGRATIONS: dict[int, tuple[str, ...]] = {}


class ArchiveError(KefuError):
    """The conversation archive cannot be opened, read or written."""


@dataclass(frozen=True, slots=True)
class ArchivedSession:
    """One session of a conversation as archived; every text in it is already masked."""

    conversation_id: str
    session_number: int
    channel: str
    language: str
    started_at: float
    ended_at: float
    user_turns: int
    handed_off: bool
    handoff_reason: str
    csat: int | None
    thumbs_up: int
    thumbs_down: int
    intents: tuple[str, ...]
    first_message: str
    transcript: tuple[Mapping[str, Any], ...]  # the shape of bot/channels/transcript.py
    events: tuple[Mapping[str, Any], ...]  # event_to_dict() of each event
    archived_at: float

    @property
    def search_text(self) -> str:
        return "\n".join(str(entry.get("text", "")) for entry in self.transcript)

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**data, "intents": list(self.intents), "transcript": list(self.transcript), "events": list(self.events)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArchivedSession:
        values = {f.name: data[f.name] for f in fields(cls)}
        tuples = {name: tuple(values[name]) for name in ("intents", "transcript", "events")}
        return cls(**{**values, **tuples, "handed_off": bool(values["handed_off"])})


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """A search hit: enough for an operator to pick the session to open."""

    conversation_id: str
    session_number: int
    channel: str
    started_at: float
    ended_at: float
    user_turns: int
    handed_off: bool
    first_message: str
    snippet: str


@dataclass(frozen=True, slots=True)
class SearchQuery:
    terms: tuple[str, ...] = ()  # every term must occur (case-insensitive substring)
    channel: str | None = None
    handed_off: bool | None = None
    since: float | None = None  # ended_at >= since
    until: float | None = None  # ended_at < until
    limit: int = 50


class Backend(Protocol):
    describe: str
    errors: tuple[type[Exception], ...]

    def setup(self) -> None: ...
    def upsert(self, sessions: Sequence[ArchivedSession]) -> None: ...
    def fingerprints(self, conversation_id: str) -> dict[int, int]: ...
    def search(self, query: SearchQuery) -> list[SessionSummary]: ...
    def get(self, conversation_id: str, session_number: int | None) -> list[ArchivedSession]: ...
    def scan(self, since: float | None) -> Iterator[ArchivedSession]: ...
    def close(self) -> None: ...


SESSIONS = "kefu_archive_sessions"
TEXT = "kefu_archive_text"
_COLUMNS = (*(f.name for f in fields(ArchivedSession)), "event_count")
_JSON_COLUMNS = frozenset({"intents", "transcript", "events"})
_SUMMARY = (
    "s.conversation_id, s.session_number, s.channel, s.started_at, s.ended_at, s.user_turns, s.handed_off, "
    "s.first_message"
)
_VERSION_TABLE = "CREATE TABLE IF NOT EXISTS kefu_archive_schema (version INTEGER NOT NULL)"


def upsert_sql(extra: Sequence[str] = ()) -> str:
    """Insert a session, or replace the one archived before under the same conversation and number."""
    columns = (*_COLUMNS, *extra)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns[2:])
    return (
        f"INSERT INTO {SESSIONS} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)}) "  # noqa: S608
        f"ON CONFLICT (conversation_id, session_number) DO UPDATE SET {updates}"
    )


def create_sessions_sql(boolean: str, real: str, json_type: str, extra: str = "") -> str:
    return f"""CREATE TABLE {SESSIONS} (
        conversation_id TEXT NOT NULL, session_number INTEGER NOT NULL, channel TEXT NOT NULL,
        language TEXT NOT NULL, started_at {real} NOT NULL, ended_at {real} NOT NULL,
        user_turns INTEGER NOT NULL, handed_off {boolean} NOT NULL, handoff_reason TEXT NOT NULL,
        csat INTEGER, thumbs_up INTEGER NOT NULL, thumbs_down INTEGER NOT NULL, intents {json_type} NOT NULL,
        first_message TEXT NOT NULL, transcript {json_type} NOT NULL, events {json_type} NOT NULL,
        archived_at {real} NOT NULL, event_count INTEGER NOT NULL, {extra}
        PRIMARY KEY (conversation_id, session_number))"""


class SqlBackend:
    """What both dialects share; SQL is written with `?` placeholders."""

    describe = "archive"
    errors: tuple[type[Exception], ...] = ()
    _from = ""  # the FROM clause of search: the sessions as `s`, and where the searchable text is
    _body_column = ""

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        raise NotImplementedError

    def _json_param(self, value: Any) -> Any:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    def _params(self, session: ArchivedSession) -> list[Any]:
        data = session.to_dict() | {"event_count": len(session.events)}
        return [self._json_param(data[c]) if c in _JSON_COLUMNS else data[c] for c in _COLUMNS]

    def _migrate(self) -> None:
        """Bring the schema to SCHEMA_VERSION; the caller holds a lock against concurrent setups."""
        self._execute(_VERSION_TABLE)
        row = self._execute("SELECT MAX(version) FROM kefu_archive_schema").fetchone()
        version = row[0] if row else None
        if version is None:
            self._create_schema()
            self._execute("INSERT INTO kefu_archive_schema (version) VALUES (?)", [SCHEMA_VERSION])
            return
        if version > SCHEMA_VERSION:
            raise ArchiveError(
                f"the archive ({self.describe}) has schema version {version}, written by a newer kefu; "
                f"this one knows version {SCHEMA_VERSION}: upgrade kefu"
            )
        for step in range(version + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[step]:
                self._execute(statement)
            self._execute("UPDATE kefu_archive_schema SET version = ?", [step])

    def _create_schema(self) -> None:
        raise NotImplementedError

    def fingerprints(self, conversation_id: str) -> dict[int, int]:
        rows = self._execute(
            f"SELECT session_number, event_count FROM {SESSIONS} WHERE conversation_id = ?",  # noqa: S608
            [conversation_id],
        )
        return {int(number): int(count) for number, count in rows}

    def get(self, conversation_id: str, session_number: int | None) -> list[ArchivedSession]:
        sql = f"SELECT {', '.join(_COLUMNS)} FROM {SESSIONS} WHERE conversation_id = ?"  # noqa: S608
        params: list[Any] = [conversation_id]
        if session_number is not None:
            sql, params = sql + " AND session_number = ?", [*params, session_number]
        return [self._session(row) for row in self._execute(sql + " ORDER BY session_number", params)]

    def _rows(self, sql: str, params: Sequence[Any]) -> Iterator[Sequence[Any]]:
        yield from self._execute(sql, params)

    def scan(self, since: float | None) -> Iterator[ArchivedSession]:
        where, params = ("WHERE ended_at >= ?", [since]) if since is not None else ("", [])
        order = "ORDER BY ended_at, conversation_id, session_number"
        sql = f"SELECT {', '.join(_COLUMNS)} FROM {SESSIONS} {where} {order}"  # noqa: S608 (constants only)
        for row in self._rows(sql, params):
            yield self._session(row)

    def search(self, query: SearchQuery) -> list[SessionSummary]:
        conditions, params = self._text_conditions(query.terms)
        for condition, value in (
            ("s.channel = ?", query.channel),
            ("s.handed_off = ?", query.handed_off),
            ("s.ended_at >= ?", query.since),
            ("s.ended_at < ?", query.until),
        ):
            if value is not None:
                conditions.append(condition)
                params.append(value)
        where = " AND ".join(conditions) or "1 = 1"
        # Only constant fragments are joined into the SQL; every value is a parameter.
        sql = f"SELECT {_SUMMARY}, {self._body_column} FROM {self._from} WHERE {where} "  # noqa: S608
        sql += "ORDER BY s.ended_at DESC, s.conversation_id, s.session_number DESC LIMIT ?"
        rows = self._execute(sql, [*params, query.limit]).fetchall()
        return [_summary(row, query.terms) for row in rows]

    def _text_conditions(self, terms: Sequence[str]) -> tuple[list[str], list[Any]]:
        raise NotImplementedError

    def _session(self, row: Sequence[Any]) -> ArchivedSession:
        data = dict(zip(_COLUMNS, row, strict=True))
        for name in _JSON_COLUMNS:
            if isinstance(data[name], str):  # SQLite keeps JSON as text; PostgreSQL hands back objects
                data[name] = json.loads(data[name])
        return ArchivedSession.from_dict(data)


def _summary(row: Sequence[Any], terms: Sequence[str]) -> SessionSummary:
    cid, number, channel, started, ended, turns, handed_off, first, body = row
    hit = (cid, int(number), channel, float(started), float(ended), int(turns), bool(handed_off), first)
    return SessionSummary(*hit, snippet(body, terms))


def snippet(body: str, terms: Sequence[str], *, width: int = 40) -> str:
    """The text around the first term found, on one line; empty without terms."""
    if not terms:
        return ""
    found = re.search(re.escape(terms[0]), body, re.IGNORECASE)
    start = max(0, found.start() - width) if found else 0
    end = min(len(body), (found.end() if found else 0) + width)
    text = body[start:end].replace("\n", " / ")
    return ("…" if start > 0 else "") + text + ("…" if end < len(body) else "")


def like_pattern(term: str) -> str:
    """`%term%` with LIKE's wildcards in the term taken literally (escape character: backslash)."""
    return "%" + re.sub(r"([\\%_])", r"\\\1", term) + "%"


class SqliteBackend(SqlBackend):
    """The archive in one SQLite file (WAL: `kefu run` writes while `kefu archive` reads)."""

    errors: tuple[type[Exception], ...] = (sqlite3.Error,)
    _from = f"{SESSIONS} s JOIN {TEXT} t ON t.rowid = s.rowid"
    _body_column = "t.body"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.describe = f"SQLite file {path}"
        self._db: sqlite3.Connection | None = None
        self._fts = True

    def setup(self) -> None:
        self.close()  # a setup that failed half-way is tried again from the start
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch(mode=0o600, exist_ok=True)  # the archive is for operators only
            # autocommit mode: transactions are explicit (_transaction); waits up to 30 s for another writer
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except (OSError, sqlite3.Error) as err:
            raise ArchiveError(
                f"cannot open the archive {self.path}: {err}. Make its folder writable, or set KEFU_DATA_DIR or "
                "KEFU_ARCHIVE_URL"
            ) from err
        self._execute("PRAGMA journal_mode=WAL")
        with self._transaction():
            self._migrate()
        row = self._execute("SELECT sql FROM sqlite_master WHERE name = ?", [TEXT]).fetchone()
        self._fts = bool(row) and "fts5" in str(row[0]).lower()

    def _create_schema(self) -> None:
        self._execute(create_sessions_sql("INTEGER", "REAL", "TEXT"))
        self._execute(f"CREATE INDEX {SESSIONS}_ended ON {SESSIONS} (ended_at)")
        try:
            self._execute(f"CREATE VIRTUAL TABLE {TEXT} USING fts5(body, tokenize='trigram')")
        except sqlite3.OperationalError:  # SQLite before 3.34 has no trigram tokenizer: search scans
            log.warning("SQLite %s lacks the FTS5 trigram tokenizer: archive search scans", sqlite3.sqlite_version)
            self._execute(f"CREATE TABLE {TEXT} (rowid INTEGER PRIMARY KEY, body TEXT NOT NULL)")

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._execute("ROLLBACK")
            raise
        self._execute("COMMIT")

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        if self._db is None:
            raise ArchiveError("the archive is closed")
        return self._db.execute(sql, params)

    def upsert(self, sessions: Sequence[ArchivedSession]) -> None:
        find = f"SELECT rowid FROM {SESSIONS} WHERE conversation_id = ? AND session_number = ?"  # noqa: S608
        with self._transaction():
            for session in sessions:
                self._execute(upsert_sql(), self._params(session))
                (rowid,) = self._execute(find, [session.conversation_id, session.session_number]).fetchone()
                self._execute(f"DELETE FROM {TEXT} WHERE rowid = ?", [rowid])  # noqa: S608
                self._execute(f"INSERT INTO {TEXT} (rowid, body) VALUES (?, ?)", [rowid, session.search_text])  # noqa: S608

    def _text_conditions(self, terms: Sequence[str]) -> tuple[list[str], list[Any]]:
        conditions: list[str] = []
        params: list[Any] = []
        indexed = [t for t in terms if len(t) >= 3] if self._fts else []
        if indexed:  # a quoted phrase of trigrams is a substring match
            conditions.append(f"s.rowid IN (SELECT rowid FROM {TEXT} WHERE {TEXT} MATCH ?)")  # noqa: S608
            params.append(" AND ".join('"' + t.replace('"', '""') + '"' for t in indexed))
        for term in (t for t in terms if t not in indexed):
            conditions.append("t.body LIKE ? ESCAPE '\\'")
            params.append(like_pattern(term))
        return conditions, params

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def backend_for_url(url: str) -> Backend:
    """The backend a KEFU_ARCHIVE_URL names: postgresql://... or sqlite:///path/to/file."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("postgresql", "postgres"):
        from bot.assist.archive_pg import PostgresBackend

        return PostgresBackend(url)
    if scheme == "sqlite" and urlsplit(url).path:
        return SqliteBackend(Path(urlsplit(url).path))
    raise ArchiveError(
        f"KEFU_ARCHIVE_URL {describe_url(url)!r} is not an archive URL: use postgresql://user:password@host:5432/db, "
        "sqlite:///path/to/archive.sqlite3, or unset it for PROJECT/.kefu/archive.sqlite3"
    )
