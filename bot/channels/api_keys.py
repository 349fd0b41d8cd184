"""API keys of the `/api/v1` REST API: who may call it, and the name logs give each caller.

Keys come from `KEFU_API_KEYS` (comma-separated) and the file named by `KEFU_API_KEYS_FILE` (one a line,
`#` starts a comment line). Each entry is `key` or `name:key`; an unnamed key is called `key-N` in logs.
Only sha256 digests are kept, and a presented key is compared with every one of them in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from bot.errors import ConfigError

log = logging.getLogger(__name__)

ENV_KEYS = "KEFU_API_KEYS"
ENV_KEYS_FILE = "KEFU_API_KEYS_FILE"
MIN_KEY_CHARS = 16  # shorter keys still work, with a warning: they can be guessed


@dataclass(frozen=True, slots=True)
class _Key:
    name: str
    digest: bytes


class ApiKeys:
    """The configured keys; `caller(key)` names the caller a presented key belongs to."""

    def __init__(self, entries: Iterable[str] = ()) -> None:
        """`entries`: `key` or `name:key` strings; blank ones are skipped."""
        keys: list[_Key] = []
        for entry in (e.strip() for e in entries):
            if not entry:
                continue
            name, _, key = entry.partition(":") if ":" in entry else ("", "", entry)  # the name ends at the first ":"
            name, key = name.strip() or f"key-{len(keys) + 1}", key.strip()
            if not key:
                raise ConfigError(f"API key {name!r} is empty; write `name:key` or just `key`")
            if len(key) < MIN_KEY_CHARS:
                log.warning(
                    "API key %r is shorter than %d characters; `openssl rand -hex 24` makes one", name, MIN_KEY_CHARS
                )
            keys.append(_Key(name, _digest(key)))
        self._keys = tuple(keys)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiKeys:
        """Keys from `KEFU_API_KEYS` and the file named by `KEFU_API_KEYS_FILE` (both, when both are set)."""
        env = os.environ if environ is None else environ
        entries = env.get(ENV_KEYS, "").split(",")
        file = env.get(ENV_KEYS_FILE, "").strip()
        if file:
            entries += _read_file(Path(file))
        return cls(entries)

    @classmethod
    def from_file(cls, path: Path) -> ApiKeys:
        return cls(_read_file(path))

    @property
    def enabled(self) -> bool:
        """False when no key is configured: the API is then off."""
        return bool(self._keys)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(key.name for key in self._keys)

    def caller(self, presented: str) -> str | None:
        """The name of the key `presented` is, or None. Compares against every key, so the time taken tells
        nothing about which key (or how much of one) matched."""
        digest = _digest(presented)  # equal-length digests: compare_digest's time does not depend on the key
        found: str | None = None
        for key in self._keys:
            if hmac.compare_digest(digest, key.digest) and found is None:
                found = key.name
        return found

    def __repr__(self) -> str:  # never the keys, not even their digests
        return f"ApiKeys(names={list(self.names)})"


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _read_file(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{ENV_KEYS_FILE}={path}: cannot read the API keys file ({err.strerror})") from err
    return [line for line in text.splitlines() if not line.strip().startswith("#")]
