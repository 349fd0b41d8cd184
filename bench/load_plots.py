"""Plots of the load benchmark: the latency histogram at the highest concurrency, and throughput and latency
against concurrency (matplotlib's object API: no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from load_clients import Load
from matplotlib.figure import Figure

COLOURS = {"rest": "#4C72B0", "ws": "#55A868", "rasa": "#C44E52"}


def latency_histogram(load: Load, path: Path) -> Path:
    figure = Figure(figsize=(7, 4), dpi=110)
    axes = figure.subplots()
    values = [t.ms for t in load.turns if t.ok]
    top = float(np.percentile(values, 99.5)) if values else 1.0
    for channel in sorted({t.channel for t in load.turns}):
        ms = [t.ms for t in load.turns if t.ok and t.channel == channel]
        axes.hist(ms, bins=60, range=(0, top), alpha=0.6, color=COLOURS.get(channel), label=f"{channel} ({len(ms)})")
    for q, style in ((50, "--"), (99, ":")):
        x = float(np.percentile(values, q))
        axes.axvline(x, color="black", linestyle=style, label=f"p{q} {x:.1f} ms")
    axes.set_xlabel("milliseconds per turn, end to end")
    axes.set_ylabel("turns")
    axes.set_title(f"{load.concurrency} concurrent conversations, {load.throughput:.0f} turns/s")
    axes.legend()
    return _save(figure, path)


def scaling(loads: list[Load], path: Path, *, baseline: list[Load] | None = None) -> Path:
    """Throughput (left) and p50/p99 latency (right) against the number of concurrent conversations."""
    figure = Figure(figsize=(10, 4), dpi=110)
    left, right = figure.subplots(1, 2)
    for runs, name, colour in ((loads, "kefu", COLOURS["rest"]), (baseline or [], "Rasa", COLOURS["rasa"])):
        if not runs:
            continue
        levels = [r.concurrency for r in runs]
        left.plot(levels, [r.throughput for r in runs], "o-", color=colour, label=name)
        for q, style in ((50, "--"), (99, "-")):
            values = [_percentile(r, q) for r in runs]
            right.plot(levels, values, style, marker="o", color=colour, label=f"{name} p{q}")
    left.set_xlabel("concurrent conversations")
    left.set_ylabel("turns per second")
    left.legend()
    right.set_xlabel("concurrent conversations")
    right.set_ylabel("milliseconds per turn")
    right.legend(fontsize="small")
    return _save(figure, path)


def _percentile(load: Load, q: float) -> float:
    values = [t.ms for t in load.turns if t.ok]
    return float(np.percentile(values, q)) if values else float("nan")


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path
