"""`kefu operators`: the console's accounts (see bot/assist/operators.py)."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path
from typing import TextIO

from bot.assist.operators import OPERATORS_FILE, add_account, parse_account
from bot.errors import ConfigError
from bot.settings import Settings
from bot.wiring import open_project


def run_operators(
    project_path: Path,
    settings: Settings,
    *,
    add: str | None,
    remove: str | None,
    password_stdin: bool,
    stdin: TextIO = sys.stdin,
    out: TextIO = sys.stdout,
) -> int:
    project = open_project(project_path, settings)
    path = Path(os.environ.get("KEFU_OPERATORS_FILE") or project.data_dir / OPERATORS_FILE)
    if add:
        add_account(path, add, _password(password_stdin, stdin))
        print(f"operator {add} can sign in at /console once `kefu run` (re)starts (accounts: {path})", file=out)
    elif remove:
        if not _remove(path, remove):
            print(f"no operator {remove} in {path}", file=out)
            return 1
        print(f"operator {remove} removed; restart `kefu run` for it to take effect", file=out)
    names = sorted(parse_account(line, str(path))[0] for line in _lines(path))
    print(f"operators ({len(names)}): {', '.join(names) or 'none'}", file=out)
    return 0


def _password(from_stdin: bool, stdin: TextIO) -> str:
    if from_stdin:
        return stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ConfigError("the two passwords differ; nothing was changed")
    return first


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        return []
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip() and line[0] != "#"]


def _remove(path: Path, name: str) -> bool:
    lines = _lines(path)
    kept = [line for line in lines if line.partition(":")[0] != name]
    if len(kept) == len(lines):
        return False
    path.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
    return True
