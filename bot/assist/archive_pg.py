"""The conversation archive on PostgreSQL (psycopg 3), chosen by KEFU_ARCHIVE_URL=postgresql://..."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.json import Jsonb

from bot.assist.archive_sql import (
    SESSIONS,
    ArchivedSession,
    ArchiveError,
    SqlBackend,
    create_sessions_sql,
    like_pattern,
    upsert_sql,
)
from bot.sessions.connect import describe_url

log = logging.getLogger(__name__)

_SETUP_LOCK = 0x6B656675  # "kefu": workers that start together create the schema one at a time


class PostgresBackend(SqlBackend):
    """Sessions in one table; the searchable text is a column of it."""

    errors: tuple[type[Exception], ...] = (psycopg.Error,)
    _from = f"{SESSIONS} s"
    _body_column = "s.search_text"

    def __init__(self, url: str) -> None:
        self._url = url
        self.describe = f"PostgreSQL at {describe_url(url)}"
        self._db: psycopg.Connection[Any] | None = None

    def setup(self) -> None:
        with self._connect().transaction():
            self._execute("SELECT pg_advisory_xact_lock(?)", [_SETUP_LOCK])
            self._migrate()

    def _connect(self) -> psycopg.Connection[Any]:
        """The connection, opened again after the server went away (the next archiving round reconnects)."""
        if self._db is not None and not self._db.closed and not self._db.broken:
            return self._db
        try:
            params = conninfo_to_dict(self._url)  # the URL's own settings win over these defaults
            params.setdefault("connect_timeout", 10)
            params.setdefault("application_name", "kefu-archive")
            self._db = psycopg.connect(make_conninfo("", **params), autocommit=True)
        except psycopg.Error as err:
            raise ArchiveError(
                f"cannot reach the archive database ({self.describe}): {self._scrub(err)}. Check KEFU_ARCHIVE_URL "
                "(postgresql://user:password@host:5432/database), that the server runs, and that it accepts this user"
            ) from err
        return self._db

    def _scrub(self, err: Exception) -> str:
        """The error text without the URL's password, should libpq quote the connection string."""
        text, password = str(err), urlsplit(self._url).password
        for secret in {password, unquote(password)} if password else ():
            text = text.replace(secret, "***")
        return text

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._connect().execute(sql.replace("?", "%s"), params)

    def _json_param(self, value: Any) -> Any:
        return Jsonb(value)

    def _create_schema(self) -> None:
        self._execute(create_sessions_sql("BOOLEAN", "DOUBLE PRECISION", "JSONB", "search_text TEXT NOT NULL,"))
        self._execute(f"CREATE INDEX {SESSIONS}_ended ON {SESSIONS} (ended_at)")
        try:
            with self._connect().transaction():  # a savepoint: the archive works without the extension
                self._execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
                self._execute(f"CREATE INDEX {SESSIONS}_text ON {SESSIONS} USING gin (search_text gin_trgm_ops)")
        except psycopg.Error as err:
            log.info("archive text search without a pg_trgm index (%s): it scans the rows", str(err).strip())

    def upsert(self, sessions: Sequence[ArchivedSession]) -> None:
        sql = upsert_sql(extra=("search_text",))
        with self._connect().transaction():
            for session in sessions:
                self._execute(sql, [*self._params(session), session.search_text])

    def _text_conditions(self, terms: Sequence[str]) -> tuple[list[str], list[Any]]:
        return ["s.search_text ILIKE ? ESCAPE '\\'"] * len(terms), [like_pattern(t) for t in terms]

    def _rows(self, sql: str, params: Sequence[Any]) -> Iterator[Sequence[Any]]:
        with self._connect().cursor() as cursor:  # streamed: an export never holds the archive in memory
            yield from cursor.stream(sql.replace("?", "%s"), params)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
