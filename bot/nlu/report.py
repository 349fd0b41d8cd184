"""Write an `NluEvaluation` as report.html, report.json, a confusion-matrix PNG and a confidence histogram PNG.

Plots use `matplotlib.figure.Figure` directly (no pyplot): no global backend or figure registry, and
safe outside the main thread. The HTML is a jinja2 template with autoescaping on, since intent names
and example texts come from users.
"""

from __future__ import annotations

import functools
import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import jinja2
import numpy as np
from matplotlib import font_manager
from matplotlib.figure import Figure

from bot.errors import ProjectError
from bot.nlu.evaluation import MAX_JSON_ERRORS, NluEvaluation

# Preferred fonts for Chinese labels, first installed one wins; DejaVu Sans (bundled) covers the rest.
CJK_FONTS = (
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "Microsoft YaHei",
    "PingFang SC",
    "SimHei",
)
CJK_FONT_FILE = re.compile(r"wqy|NotoSans.*(CJK|SC)|SourceHanSans|msyh|PingFang|simhei", re.IGNORECASE)
ANNOTATE_MAX_LABELS = 30  # above this, count annotations would overlap
MAX_INCHES = 20.0  # with DPI this caps the confusion PNG at 2000 pixels a side (CLINC150 stays readable)
DPI = 100
TOP_CONFUSIONS = 20


@dataclass(frozen=True, slots=True)
class ReportFiles:
    html: Path
    confusion_png: Path
    histogram_png: Path
    json: Path


def write_report(evaluation: NluEvaluation, out_dir: Path, *, title: str) -> ReportFiles:
    """Write the four report files into `out_dir` (created if needed), replacing earlier ones."""
    out_dir = Path(out_dir)
    files = ReportFiles(
        html=out_dir / "report.html",
        confusion_png=out_dir / "confusion.png",
        histogram_png=out_dir / "confidence.png",
        json=out_dir / "report.json",
    )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        _save(confusion_figure(evaluation), files.confusion_png)
        _save(histogram_figure(evaluation), files.histogram_png)
        figures = {"title": title, **evaluation.to_json(details=True)}
        files.json.write_text(json.dumps(figures, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        files.html.write_text(render_html(evaluation, title=title, files=files), encoding="utf-8")
    except OSError as err:
        raise ProjectError(
            f"cannot write the NLU report there ({err.strerror or err}); pass --out with a writable folder",
            path=str(out_dir),
        ) from err
    return files


def render_html(evaluation: NluEvaluation, *, title: str, files: ReportFiles) -> str:
    """The report page; images are referenced by file name, so the folder can be moved as a whole."""
    template = _environment().get_template("nlu_report.html.j2")
    return template.render(
        title=title,
        evaluation=evaluation,
        intents=evaluation.intents_worst_first(),
        entities=sorted(evaluation.per_entity.items()),
        confusions=evaluation.confused_pairs(TOP_CONFUSIONS),
        errors=evaluation.errors[:MAX_JSON_ERRORS],
        n_errors=len(evaluation.errors),
        confusion_png=files.confusion_png.name,
        histogram_png=files.histogram_png.name,
    )


def confusion_figure(evaluation: NluEvaluation) -> Figure:
    """Row-normalised confusion matrix; counts are written in the cells when there are few labels."""
    labels = evaluation.labels
    n = len(labels)
    counts = np.array(evaluation.confusion, dtype=float).reshape(n, n)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    side = min(MAX_INCHES, max(5.0, 2.5 + 0.35 * n))
    figure = Figure(figsize=(side + 1.5, side), dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    size = 9.0 if n <= ANNOTATE_MAX_LABELS else max(3.0, min(8.0, 800.0 / n))
    fonts = list(font_families())
    axes.set_xticks(range(n), labels, rotation=90, fontsize=size, fontfamily=fonts)
    axes.set_yticks(range(n), labels, fontsize=size, fontfamily=fonts)
    axes.set_xlabel("predicted intent")
    axes.set_ylabel("expected intent")
    axes.set_title("Confusion matrix (share of each expected intent)", fontsize=10)
    if n <= ANNOTATE_MAX_LABELS:
        for (row, column), count in np.ndenumerate(counts):
            if count:
                colour = "white" if shares[row, column] > 0.5 else "black"
                axes.text(column, row, str(int(count)), ha="center", va="center", fontsize=8, color=colour)
    figure.colorbar(image, ax=axes, shrink=0.6)
    return figure


def histogram_figure(evaluation: NluEvaluation) -> Figure:
    """How confident the model was when it was right, and when it was wrong."""
    figure = Figure(figsize=(7.0, 4.0), dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    correct, wrong = evaluation.correct_confidences, evaluation.wrong_confidences
    bins = [i / 20 for i in range(21)]  # 0.05 wide, the same for both series
    axes.hist(correct, bins=bins, alpha=0.7, color="tab:green", label=f"correct ({len(correct)})")
    axes.hist(wrong, bins=bins, alpha=0.7, color="tab:red", label=f"wrong ({len(wrong)})")
    axes.set_xlim(0.0, 1.0)
    axes.set_xlabel("confidence of the top intent")
    axes.set_ylabel("examples")
    axes.set_title("Intent confidence", fontsize=10)
    axes.legend()
    return figure


def _save(figure: Figure, path: Path) -> None:
    # Without a CJK font installed, Chinese labels draw as boxes; the warning per glyph is noise here.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph .* missing from", category=UserWarning)
        figure.savefig(path, format="png", dpi=DPI)


@functools.cache
def font_families() -> tuple[str, ...]:
    # Only installed fonts are named: an absent family makes matplotlib log a findfont warning per text.
    manager = font_manager.fontManager
    installed = {font.name for font in manager.ttflist}
    if installed.isdisjoint(CJK_FONTS):
        # matplotlib's font cache is written once, so a font installed later (`make setup`) is not in it.
        for path in font_manager.findSystemFonts():
            if CJK_FONT_FILE.search(Path(path).name):
                manager.addfont(path)
        installed = {font.name for font in manager.ttflist}
    return (*(name for name in CJK_FONTS if name in installed), "DejaVu Sans")


@functools.cache
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("bot.nlu", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["score"] = _score
    return environment


def _score(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
