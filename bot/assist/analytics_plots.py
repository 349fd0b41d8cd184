"""Analytics as PNG charts: rates per day, handoff reasons, top intents, the CSAT distribution.

Figures are drawn with `matplotlib.figure.Figure` and the Agg canvas directly (no pyplot): no global backend or
figure registry, safe outside the main thread. Labels are bilingual, and intents or reasons may be Chinese,
so a CJK font is named first when one is installed.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from bot.assist.analytics import CSAT_SCALE, Analytics
from bot.nlu.report import font_families

DPI = 100
MAX_BARS = 15
NO_DATA = "无数据 No data"


def write_plots(analytics: Analytics, folder: Path) -> list[Path]:
    """Write the four charts as PNG files into `folder` (created if needed); returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    figures = {
        "rates_by_day.png": _rates_by_day(analytics),
        "handoff_reasons.png": _bars(
            "转人工原因 Handoff reasons", [(c.name, c.count) for c in analytics.handoff_reasons], horizontal=True
        ),
        "top_intents.png": _bars(
            "热门意图 Top intents", [(c.name, c.count) for c in analytics.top_intents], horizontal=True
        ),
        "csat.png": _bars(
            "满意度分布 CSAT distribution",
            [(str(r), n) for r, n in zip(CSAT_SCALE, analytics.csat.distribution, strict=True)],
            horizontal=False,
            empty=analytics.csat.count == 0,
        ),
    }
    written = []
    for name, figure in figures.items():
        path = folder / name
        _save(figure, path)
        written.append(path)
    return written


def _rates_by_day(analytics: Analytics) -> Figure:
    figure, axes = _figure("每日比率 Rates per day")
    days = analytics.by_day
    if not days:
        return _empty(figure, axes)
    labels = [d.day[5:] for d in days]  # MM-DD: the year is in the period
    series = [d.to_json() for d in days]
    for key, base, label in (
        ("containment_rate", "engaged_sessions", "自助解决 Containment"),
        ("handoff_rate", "engaged_sessions", "转人工 Handoff"),
        ("fallback_rate", "user_turns", "兜底 Fallback"),
    ):
        # a day without conversations has no rate: a gap in the line, not a drop to zero
        values = [100 * s[key] if s[base] else math.nan for s in series]
        axes.plot(range(len(days)), values, marker="o", markersize=3, label=label)
    step = max(1, len(days) // 10)
    axes.set_xticks(range(0, len(days), step), labels[::step], rotation=45, fontsize=8)
    axes.set_ylim(0, 100)
    axes.set_ylabel("%")
    axes.grid(alpha=0.3)
    axes.legend(prop={"family": list(font_families()), "size": 8})
    return figure


def _bars(title: str, items: Sequence[tuple[str, int]], *, horizontal: bool, empty: bool = False) -> Figure:
    figure, axes = _figure(title)
    shown = list(items[:MAX_BARS])
    if empty or not shown:
        return _empty(figure, axes)
    names, counts = [n for n, _ in shown], [c for _, c in shown]
    fonts = list(font_families())
    if horizontal:
        positions = range(len(shown))[::-1]  # the largest on top
        axes.barh(positions, counts, color="#3b82f6")
        axes.set_yticks(positions, names, fontsize=8, fontfamily=fonts)
    else:
        axes.bar(range(len(shown)), counts, color="#3b82f6")
        axes.set_xticks(range(len(shown)), names, fontfamily=fonts)
    (axes.xaxis if horizontal else axes.yaxis).set_major_locator(MaxNLocator(integer=True))  # counts
    axes.grid(alpha=0.3, axis="x" if horizontal else "y")
    return figure


def _figure(title: str) -> tuple[Figure, Axes]:
    figure = Figure(figsize=(8, 4.5), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.set_title(title, fontsize=11, fontfamily=list(font_families()))
    return figure, axes


def _empty(figure: Figure, axes: Axes) -> Figure:
    axes.set_axis_off()
    axes.text(0.5, 0.5, NO_DATA, ha="center", va="center", fontsize=14, fontfamily=list(font_families()))
    return figure


def _save(figure: Figure, path: Path) -> None:
    # Without a CJK font installed, Chinese labels draw as boxes; a warning per missing glyph is noise here.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph .* missing from", category=UserWarning)
        figure.savefig(path, format="png")
