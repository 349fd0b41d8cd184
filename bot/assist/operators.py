"""Operator accounts and console sign-in.

Accounts are `name:scrypt$...` lines, from `KEFU_OPERATORS_FILE` (default: `PROJECT/.kefu/operators`, which
`kefu operators add NAME` writes) and from `KEFU_OPERATORS` (the same lines, comma-separated). Only scrypt
hashes are kept; passwords are compared in constant time, and an unknown name costs as much as a wrong
password. Signed-in consoles hold a random token in an HttpOnly cookie; Redis keeps its sha256 with a TTL,
so every `kefu run` process sharing the Redis knows the session and signing out ends it everywhere.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Awaitable, Mapping
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bot.errors import ConfigError, SessionStoreError

OPERATORS_FILE = "operators"  # in the project's data folder
NAME = re.compile(r"[\w.@-]{1,64}")
SESSION_TTL_S = 12 * 3600
FAILURES_ALLOWED = 10  # wrong passwords per name within FAILURE_WINDOW_S before sign-in pauses
FAILURE_WINDOW_S = 15 * 60
_N, _R, _P = 2**14, 8, 1
_PREFIX = "kefu:{console}:"


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = encoded.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        given = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except ValueError:
        return False
    return hmac.compare_digest(given, expected)


@functools.cache
def _dummy() -> str:
    return hash_password("", salt=b"kefu-dummy-salt!")


class OperatorAccounts:
    def __init__(self, accounts: Mapping[str, str]) -> None:
        self._accounts = dict(accounts)

    @classmethod
    def load(cls, data_dir: Path, environ: Mapping[str, str] = os.environ) -> OperatorAccounts:
        """The accounts of the file and the environment; a malformed line stops the start with its place."""
        path = Path(environ.get("KEFU_OPERATORS_FILE") or data_dir / OPERATORS_FILE)
        accounts: dict[str, str] = {}
        if path.is_file():
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if line.strip() and not line.lstrip().startswith("#"):
                    accounts.update([parse_account(line, f"{path}:{number}")])
        for item in environ.get("KEFU_OPERATORS", "").split(","):
            if item.strip():
                accounts.update([parse_account(item, "KEFU_OPERATORS")])
        return cls(accounts)

    def __len__(self) -> int:
        return len(self._accounts)

    def check(self, name: str, password: str) -> bool:
        encoded = self._accounts.get(name)
        matches = verify_password(password, encoded or _dummy())  # the same work for an unknown name
        return encoded is not None and matches


def parse_account(line: str, where: str) -> tuple[str, str]:
    name, sep, encoded = line.strip().partition(":")
    if not sep or not NAME.fullmatch(name) or not encoded.startswith("scrypt$") or encoded.count("$") != 5:
        raise ConfigError(
            f"{where}: an operator account is NAME:scrypt$..., as `kefu operators add NAME` writes it "
            "(the password itself is never stored)"
        )
    return name, encoded


def add_account(path: Path, name: str, password: str) -> None:
    """Add or replace an account in an accounts file (created with owner-only permissions)."""
    if not NAME.fullmatch(name):
        raise ConfigError("an operator name is 1-64 letters, digits, '.', '@', '_' or '-'")
    if len(password) < 8:
        raise ConfigError("an operator password needs at least 8 characters")
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    kept = [line for line in lines if line.partition(":")[0].strip() != name]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([*kept, f"{name}:{hash_password(password)}"]) + "\n", encoding="utf-8")
    path.chmod(0o600)


class ConsoleSessions:
    """Signed-in consoles and failed sign-ins, in Redis."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client

    async def start(self, operator: str) -> str:
        token = secrets.token_urlsafe(32)
        await self._call(self._redis.set(_session_key(token), operator, ex=SESSION_TTL_S))
        return token

    async def operator(self, token: str) -> str | None:
        if not token or len(token) > 128:
            return None
        found = await self._call(self._redis.get(_session_key(token)))
        return found.decode() if isinstance(found, bytes) else found

    async def end(self, token: str) -> None:
        await self._call(self._redis.delete(_session_key(token)))

    async def paused(self, name: str) -> bool:
        """Whether sign-in for this name pauses after too many wrong passwords."""
        failures = await self._call(self._redis.get(_failures_key(name)))
        return int(failures or 0) >= FAILURES_ALLOWED

    async def failed(self, name: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(_failures_key(name))
            pipe.expire(_failures_key(name), FAILURE_WINDOW_S)
            await self._call(pipe.execute())

    async def succeeded(self, name: str) -> None:
        await self._call(self._redis.delete(_failures_key(name)))

    async def _call(self, awaitable: Awaitable[Any]) -> Any:
        try:
            return await awaitable
        except RedisError as err:
            raise SessionStoreError(f"the console's Redis failed: {err}") from err


def _session_key(token: str) -> str:
    return f"{_PREFIX}session:{hashlib.sha256(token.encode()).hexdigest()}"


def _failures_key(name: str) -> str:
    return f"{_PREFIX}failures:{hashlib.sha256(name.encode()).hexdigest()[:32]}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
