"""`kefu analytics [PROJECT] [--days N] [--json] [--plots DIR]`: conversation analytics of the archive on the
command line, as a bilingual table or one JSON object (the console API's shape), with optional PNG charts."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import unicodedata
from pathlib import Path
from typing import IO

from bot.assist.analytics import Analytics, compute_analytics
from bot.assist.archive import Archive, ArchivedSession, open_archive
from bot.settings import Settings
from bot.wiring import open_project

DAY_S = 86_400.0
SHOWN_GROUPS = 15
QUESTION_WIDTH = 40


def run_analytics(
    project_path: Path,
    *,
    days: float,
    as_json: bool,
    plots: Path | None,
    out: IO[str] = sys.stdout,
    settings: Settings | None = None,
) -> int:
    """Analytics of the sessions archived in the last `days` days (0 or less: all of them), printed to `out`;
    `plots`: also write the PNG charts there."""
    settings = settings if settings is not None else Settings()
    project = open_project(project_path, settings)
    now = time.time()
    since = now - days * DAY_S if days > 0 else None
    analytics = compute_analytics(asyncio.run(_sessions(open_archive(project, settings), since)), now=now, since=since)
    if as_json:
        out.write(json.dumps(analytics.to_json(), ensure_ascii=False) + "\n")
    else:
        out.write(report(analytics) + "\n")
    if plots is not None:
        from bot.assist.analytics_plots import write_plots  # matplotlib loads only for charts

        written = write_plots(analytics, plots)
        # with --json, stdout stays one JSON object
        print(f"Wrote {len(written)} chart(s) to {plots}.", file=sys.stderr if as_json else out)
    return 0


async def _sessions(archive: Archive, since: float | None) -> list[ArchivedSession]:
    try:
        await archive.open()
        return await archive.sessions(since=since)
    finally:
        await archive.close()


def report(analytics: Analytics) -> str:
    """The analytics as a plain-text table, each label in Chinese and English."""
    a, csat = analytics, analytics.csat
    average = f"{csat.average:.2f} / 5 ({csat.count})" if csat.average is not None else "-"
    lines = [
        f"期间 Period: {_when(a.since)} → {_when(a.until)}",
        _row("会话 Sessions", str(a.sessions)),
        _row("用户消息 User turns", str(a.user_turns)),
        _row("自助解决率 Containment", _percent(a.containment_rate)),
        _row("转人工率 Handoff rate", _percent(a.handoff_rate)),
        _row("兜底率 Fallback rate", _percent(a.fallback_rate)),
        _row("满意度 CSAT", average),
        _row("点赞/点踩 Thumbs up/down", f"{a.thumbs_up} / {a.thumbs_down}"),
    ]
    lines += _section("转人工原因 Handoff reasons", [(c.name, c.count) for c in a.handoff_reasons])
    lines += _section("热门意图 Top intents", [(c.name, c.count) for c in a.top_intents])
    groups = [(g.question, g.count) for g in a.unanswered[:SHOWN_GROUPS]]
    lines += _section("未解答问题 Unanswered questions (FAQ candidates)", groups)
    if len(a.unanswered) > SHOWN_GROUPS:
        lines.append(f"  ... {len(a.unanswered) - SHOWN_GROUPS} more / 另有 {len(a.unanswered) - SHOWN_GROUPS} 组")
    return "\n".join(lines)


def _section(title: str, rows: list[tuple[str, int]]) -> list[str]:
    if not rows:
        return ["", f"{title}: -"]
    return ["", f"{title}:", *(f"  {_pad(_clip(name), QUESTION_WIDTH)}  {count:>6}" for name, count in rows)]


def _row(label: str, value: str) -> str:
    return f"{_pad(label, 28)}  {value}"


def _percent(rate: float) -> str:
    return f"{100 * rate:.1f}%"


def _when(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp)) if timestamp is not None else "(start)"


def _width(text: str) -> int:
    # Chinese characters take two terminal columns
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - _width(text))


def _clip(text: str) -> str:
    flat = " ".join(text.split())
    while _width(flat) > QUESTION_WIDTH:
        flat = flat[:-2] + "…"
    return flat
