"""The NLU report files: valid PNGs, a JSON copy of the figures, and an HTML page that escapes what users wrote."""

from __future__ import annotations

import json
import struct
import warnings
from pathlib import Path

import pytest

from bot.errors import ProjectError
from bot.nlu.evaluation import NluEvaluation, evaluate_predictions
from bot.nlu.report import CJK_FONTS, confusion_figure, write_report
from bot.types import Entity, NluExample, NluResult

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SCRIPT = "<script>alert(1)</script>"


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    assert len(data) > 2000, f"{path} is suspiciously small"
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk comes first
    return width, height


def small_evaluation() -> NluEvaluation:
    product = Entity("product", "耳机", 2, 4)
    pairs = [
        (NluExample("你好", "问候"), NluResult("你好", "问候", 0.95)),
        (NluExample("hello", "问候"), NluResult("hello", "问候", 0.9)),
        (NluExample("bye", "goodbye"), NluResult("bye", "goodbye", 0.8)),
        (NluExample(f"see you {SCRIPT}", "goodbye"), NluResult("x", SCRIPT, 0.7)),
        (
            NluExample("我的耳机坏了", "report_fault", (product,)),
            NluResult("x", "report_fault", 0.6, entities=(product,)),
        ),
        (NluExample("what is the weather", "out_of_scope"), NluResult("x", "nlu_fallback", 0.2)),
    ]
    return evaluate_predictions(pairs)


def test_report_writes_pngs_json_and_html(tmp_path: Path) -> None:
    evaluation = small_evaluation()
    files = write_report(evaluation, tmp_path / "out", title="店铺 NLU 评估")
    assert {files.html, files.confusion_png, files.histogram_png, files.json} <= set((tmp_path / "out").iterdir())
    png_size(files.confusion_png)
    png_size(files.histogram_png)
    figures = json.loads(files.json.read_text("utf-8"))
    assert figures["title"] == "店铺 NLU 评估"
    assert figures["intent_accuracy"] == pytest.approx(4 / 6)
    assert figures["errors"][0]["predicted"] == SCRIPT


def test_html_shows_the_figures_in_both_languages_and_escapes_user_text(tmp_path: Path) -> None:
    files = write_report(small_evaluation(), tmp_path, title="店铺 NLU 评估")
    html = files.html.read_text("utf-8")
    assert '<meta charset="utf-8">' in html
    assert "店铺 NLU 评估" in html and "问候" in html
    assert "0.667" in html  # intent accuracy 4/6
    assert "out-of-scope recall" in html and "product" in html
    assert 'src="confusion.png"' in html and 'src="confidence.png"' in html
    assert SCRIPT not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_a_150_intent_matrix_stays_a_sane_size(tmp_path: Path) -> None:
    labels = [f"intent_{i:03d}" for i in range(150)]
    pairs = [
        (NluExample(f"{label} {j}", label), NluResult("", labels[(i + j // 2) % 150], 0.5))
        for i, label in enumerate(labels)
        for j in range(3)
    ]
    files = write_report(evaluate_predictions(pairs), tmp_path, title="CLINC150 scale")
    width, height = png_size(files.confusion_png)
    assert 1000 <= max(width, height) <= 2500


def test_an_unwritable_folder_says_so(tmp_path: Path) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("a file, not a folder")
    with pytest.raises(ProjectError, match="--out"):
        write_report(small_evaluation(), blocker, title="t")


def test_chinese_intent_labels_are_drawn_with_a_cjk_font(tmp_path: Path) -> None:
    # `make setup` installs Debian's fonts-wqy-microhei; without a CJK font the labels would be boxes.
    figure = confusion_figure(small_evaluation())
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=r"Glyph .* missing from")
        figure.savefig(tmp_path / "confusion.png", format="png")
    tick_fonts = {label.get_fontname() for label in figure.axes[0].get_yticklabels() if label.get_text() == "问候"}
    assert tick_fonts & set(CJK_FONTS)
