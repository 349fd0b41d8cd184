"""Plots for the benchmarks (matplotlib's object API: no global pyplot state, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from nlu_benchmark import Sweep


def latency_histogram(latencies_ms: list[float], path: Path, *, title: str) -> Path:
    """A histogram of per-message latencies with p50 and p99 marked."""
    figure = Figure(figsize=(7, 4), dpi=110)
    axes = figure.subplots()
    values = np.asarray(latencies_ms)
    axes.hist(values, bins=60, color="#4C72B0")
    for q, style in ((50, "--"), (99, ":")):
        x = float(np.percentile(values, q))
        axes.axvline(x, color="black", linestyle=style, label=f"p{q} {x:.2f} ms")
    axes.set_xlabel("milliseconds per message")
    axes.set_ylabel("messages")
    axes.set_title(title)
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path


def threshold_plot(val: Sweep, test: Sweep, chosen: float, path: Path) -> Path:
    """In-scope accuracy and out-of-scope recall against the confidence threshold, validation and test."""
    figure = Figure(figsize=(7, 4), dpi=110)
    axes = figure.subplots()
    for sweep, style, split in ((val, "--", "validation"), (test, "-", "test")):
        axes.plot(sweep.thresholds, sweep.in_scope, style, color="#4C72B0", label=f"in-scope accuracy ({split})")
        axes.plot(sweep.thresholds, sweep.oos_recall, style, color="#DD8452", label=f"OOS recall ({split})")
    axes.axvline(chosen, color="black", linestyle=":", label=f"chosen {chosen:.2f}")
    axes.set_xlabel("confidence threshold")
    axes.set_ylim(0, 1.01)
    axes.legend(fontsize="small", loc="lower left")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path
