"""`kefu archive PROJECT [--now [--all]] [--search TEXT] [--export FILE.jsonl]`: the conversation archive on
the command line. Without options it lists the newest archived sessions."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from bot.assist.archive import Archive, archive_ended, open_archive, session_idle_s
from bot.assist.archive_sql import SessionSummary
from bot.errors import ConfigError
from bot.settings import Settings
from bot.wiring import Project, open_project, session_store

SHOWN = 50


def run_archive(
    path: Path, settings: Settings, *, search: str | None, export: Path | None, now: bool, everything: bool
) -> int:
    """Archive what has ended (`now`; `everything`: open sessions too), then search, then export."""
    if everything and not now:
        raise ConfigError("--all goes with --now: `kefu archive PROJECT --now --all` also archives open sessions")
    project = open_project(path, settings)
    archive = open_archive(project, settings)
    return asyncio.run(_run(project, settings, archive, search=search, export=export, now=now, everything=everything))


async def _run(
    project: Project,
    settings: Settings,
    archive: Archive,
    *,
    search: str | None,
    export: Path | None,
    now: bool,
    everything: bool,
) -> int:
    try:
        await archive.open()
        if now:
            await _archive_now(project, settings, archive, everything=everything)
        if search is not None or not (now or export):
            print(_listing(await archive.search(search, limit=SHOWN), search))
        if export is not None:
            count = await archive.export_jsonl(export)
            print(f"Wrote {count} archived session(s) to {export} (personal data masked).")
    finally:
        await archive.close()
    return 0


async def _archive_now(project: Project, settings: Settings, archive: Archive, *, everything: bool) -> None:
    store, embedded = session_store(project, settings)
    try:
        written = await archive_ended(store, archive, idle_s=session_idle_s(project), include_open=everything)
    finally:
        await store.close()
        if embedded is not None:
            embedded.stop()
    print(f"Archived {written} new or changed session(s) in {archive.describe}.")


def _listing(hits: list[SessionSummary], search: str | None) -> str:
    if not hits:
        return f"No archived session matches {search!r}." if search else "The archive is empty."
    lines = [_line(hit) for hit in hits]
    if len(hits) == SHOWN:
        lines.append(f"(the newest {SHOWN} shown; narrow the search to see others)")
    return "\n".join(lines)


def _line(hit: SessionSummary) -> str:
    ended = time.strftime("%Y-%m-%d %H:%M", time.localtime(hit.ended_at))
    flag = "  [handed off]" if hit.handed_off else ""
    said = hit.snippet or hit.first_message
    return f"{ended}  {hit.channel or '-'}  {hit.conversation_id} #{hit.session_number}{flag}  {said}"
