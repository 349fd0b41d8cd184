"""FAQ workbooks and Markdown files, and a knowledge folder's FAQ files loaded together."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest
from openpyxl import Workbook

from bot.errors import ProjectError
from knowledge.faq import FaqEntry, load_faq, load_faq_folder
from knowledge.problems import Problem

COLUMNS = ("id", "question", "similar", "answer", "tags", "lang")


def write_xlsx(path: Path, rows: Sequence[Sequence[object]], *, sheets: Sequence[str] = ("Sheet1",)) -> Path:
    """A workbook whose last sheet holds `rows` from A1 down; the other sheets hold noise."""
    workbook = Workbook()
    workbook.active.title = sheets[0]  # type: ignore[union-attr]
    for name in sheets[1:]:
        workbook.create_sheet(name)
    for sheet in workbook.worksheets[:-1]:
        sheet.append(["not", "the", "faq"])
    for row in rows:
        workbook.worksheets[-1].append(list(row))
    path.parent.mkdir(parents=True, exist_ok=True)
    workbook.save(path)
    return path


def write_md(path: Path, text: str, *, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


# --- Excel ---


def test_xlsx_cells_become_text_and_rows_keep_excel_numbers(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "faq.xlsx",
        [
            ["ID", "Question", "Similar", "Answer", "Tags", "Lang"],  # header names in any case
            [101, "多久发货？", "几天发货|什么时候发货", "付款后 24 小时内发货。\n节假日顺延。", "shipping", "zh"],
            [None, None, None, None, None, None],  # a blank row is skipped but still counted
            [102.0, "When is the sale?", None, dt.datetime(2026, 11, 11), "sale", "en"],
            ["ret_en", "How do I return it?", None, "From the order page.", None, None, None, None],
        ],
    )
    entries = load_faq(path)
    assert entries[0] == FaqEntry(
        "101",
        "多久发货？",
        "付款后 24 小时内发货。\n节假日顺延。",
        "zh",
        ("几天发货", "什么时候发货"),
        ("shipping",),
        line=2,
        source="faq.xlsx",
    )
    assert [(entry.id, entry.line, entry.answer, entry.lang) for entry in entries[1:]] == [
        ("102", 4, "2026-11-11", "en"),
        ("ret_en", 5, "From the order page.", "en"),  # empty lang guessed; empty trailing cells ignored
    ]


def test_xlsx_sheet_named_faq_is_read_before_the_first(tmp_path: Path) -> None:
    rows = [["id", "question", "answer"], ["q1", "可以开发票吗？", "可以，在订单页申请。"]]
    path = write_xlsx(tmp_path / "faq.xlsx", rows, sheets=("说明", "FAQ"))
    assert [(entry.id, entry.lang) for entry in load_faq(path)] == [("q1", "zh")]


def test_xlsx_missing_column_raises_naming_the_header(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "faq.xlsx", [["id", "question", "similar"], ["q1", "Hi", ""]])
    with pytest.raises(ProjectError, match=r"missing column\(s\) answer; the first row must be a header") as caught:
        load_faq(path, [])
    assert (caught.value.path, caught.value.line) == (str(path), 1)


def test_xlsx_misspelt_column_is_named(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "faq.xlsx", [["id", "question", "answr"], ["q1", "Hi", "Hello"]])
    with pytest.raises(ProjectError, match="did you mean 'answer'"):
        load_faq(path)


def damaged_sheet(path: Path) -> bytes:
    """A real workbook whose sheet XML is cut in half, as an interrupted copy leaves it."""
    source = write_xlsx(path.with_name("whole.xlsx"), [["id", "question", "answer"], ["q1", "Hi", "Hello"]])
    out = io.BytesIO()
    with zipfile.ZipFile(source) as whole, zipfile.ZipFile(out, "w") as damaged:
        for name in whole.namelist():
            data = whole.read(name)
            damaged.writestr(name, data[: len(data) // 2] if name.startswith("xl/worksheets/") else data)
    return out.getvalue()


@pytest.mark.parametrize("kind", ["csv text", "truncated zip", "empty", "other zip", "damaged sheet"])
def test_a_file_that_is_not_a_workbook_says_to_save_it_again(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "faq.xlsx"
    other_zip = io.BytesIO()
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("notes.txt", "not a workbook")
    contents = {
        "csv text": b"id,question,answer\nq1,Hi,Hello\n",
        "truncated zip": b"PK\x03\x04 truncated",
        "empty": b"",
        "other zip": other_zip.getvalue(),
    }
    path.write_bytes(contents[kind] if kind in contents else damaged_sheet(path))
    with pytest.raises(ProjectError, match=r"not a valid \.xlsx file; save it again from Excel"):
        load_faq(path, [])


def test_xlsx_bad_rows_are_reported_by_row_and_skipped(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "faq.xlsx",
        [
            COLUMNS,
            ["q1", "Hi", None, "Hello", None, "en"],
            ["q2", "怎么退货？", None, "  ", None, "zh"],  # blank answer
            ["q1", "Hey", None, "Hello again", None, "en"],  # duplicate
            ["q3", "Bye", None, "Goodbye", None, "en", None, "stray note"],  # value beyond the header
            ["q4", "多久到？", None, "三天。", None, None],
        ],
    )
    problems: list[Problem] = []
    assert [entry.id for entry in load_faq(path, problems)] == ["q1", "q4"]
    assert [problem.line for problem in problems] == [3, 4, 5]
    assert "empty 'answer'" in problems[0].message
    assert "duplicate FAQ id 'q1' (first on row 2)" in problems[1].message
    assert "a value in column H, which has no header" in problems[2].message
    with pytest.raises(ProjectError, match="empty 'answer'") as caught:
        load_faq(path)
    assert caught.value.line == 3


# --- Markdown ---

RETURNS_MD = """\
---
tags: [returns]
lang: zh
---
# 退货 Returns

This introduction is not an entry.

## 怎么退货？ {#faq_return_zh}
相似问题：如何退货 | 退货流程是什么
标签：returns, after-sales

签收后 7 天内可在"我的订单"中申请退货。

退货步骤：

1. 打开订单
2. 点击**申请退货**

## 退款多久到账？
退款在审核通过后 1-3 个工作日原路退回。

## How do I return an item? {#faq_return_en}

similar: How can I send it back | Return policy
Lang: en

Open *My orders* and choose **Return**:

```markdown
## not a question
```

That is all.
"""


def test_markdown_entries_metadata_and_answers(tmp_path: Path) -> None:
    path = write_md(tmp_path / "faq" / "returns.md", RETURNS_MD)
    problems: list[Problem] = []
    zh, refund, en = load_faq(path, problems)
    assert problems == []
    assert zh == FaqEntry(
        "faq_return_zh",
        "怎么退货？",
        '签收后 7 天内可在"我的订单"中申请退货。\n\n退货步骤：\n\n1. 打开订单\n2. 点击**申请退货**',
        "zh",
        ("如何退货", "退货流程是什么"),
        ("returns", "after-sales"),
        line=9,
        source="returns.md",
    )
    # No {#id}: the file stem and the entry's place in the file; front matter gives tags and lang.
    assert (refund.id, refund.question, refund.tags, refund.lang, refund.line) == (
        "returns-2",
        "退款多久到账？",
        ("returns",),
        "zh",
        20,
    )
    assert refund.answer == "退款在审核通过后 1-3 个工作日原路退回。"
    assert (en.id, en.lang, en.similar, en.tags) == (
        "faq_return_en",
        "en",
        ("How can I send it back", "Return policy"),
        ("returns",),
    )
    assert en.answer == (
        "Open *My orders* and choose **Return**:\n\n```markdown\n## not a question\n```\n\nThat is all."
    )


def test_markdown_without_front_matter_guesses_languages(tmp_path: Path) -> None:
    text = "## 可以开发票吗？\n可以。\n\n## Can I get an invoice? ##\nYes.\n\n~~~\n```\n## still code\n~~~\n"
    path = write_md(tmp_path / "invoice.md", text)
    entries = load_faq(path)
    assert [(entry.id, entry.question, entry.lang) for entry in entries] == [
        ("invoice-1", "可以开发票吗？", "zh"),
        ("invoice-2", "Can I get an invoice?", "en"),
    ]
    assert entries[1].answer == "Yes.\n\n~~~\n```\n## still code\n~~~"


def test_markdown_question_without_answer_is_a_problem_and_ids_stay_stable(tmp_path: Path) -> None:
    text = (
        "## 怎么改地址？\n标签：address\n\n"  # metadata but no answer
        "## 能改收货人吗？ {#faq_change}\n能，发货前可改。\n\n"
        "## Bad language\nlang: fr\n\nNo.\n\n"
        "## 发票抬头能改吗？\n能。\n"
    )
    path = write_md(tmp_path / "orders.md", text)
    problems: list[Problem] = []
    entries = load_faq(path, problems)
    assert [entry.id for entry in entries] == ["faq_change", "orders-4"]
    assert [(problem.line, problem.message.split(";")[0]) for problem in problems] == [
        (1, "empty 'answer'"),
        (7, "unknown lang 'fr'"),
    ]
    assert "under its ## heading" in problems[0].message
    with pytest.raises(ProjectError, match="empty 'answer'"):
        load_faq(path)


def test_markdown_in_gbk_is_read(tmp_path: Path) -> None:
    path = write_md(
        tmp_path / "pay.md", "## 支持哪些付款方式？\n相似问题：能用支付宝吗\n\n微信支付、支付宝。\n", encoding="gbk"
    )
    (entry,) = load_faq(path)
    assert (entry.similar, entry.answer) == (("能用支付宝吗",), "微信支付、支付宝。")


@pytest.mark.parametrize(
    ("front_matter", "line", "fragment"),
    [
        ("---\nlang: zh\ntags: [returns\n---\n", 3, "not valid YAML"),
        ("---\nlang: fr\n---\n", 1, "unknown front matter lang 'fr'; use one of: zh, en"),
        ("---\ntags: [returns]\n", 1, "not closed"),
        ("---\n- returns\n---\n", 1, "must be keys"),
        ("---\ntags: {a: b}\n---\n", 1, "must be a list"),
    ],
)
def test_broken_front_matter_raises(tmp_path: Path, front_matter: str, line: int, fragment: str) -> None:
    path = write_md(tmp_path / "returns.md", front_matter + "## 怎么退货？\n在订单页申请。\n")
    with pytest.raises(ProjectError, match=fragment) as caught:
        load_faq(path, [])
    assert caught.value.line == line


def test_unknown_front_matter_key_is_reported_and_ignored(tmp_path: Path) -> None:
    path = write_md(tmp_path / "returns.md", "---\ntag: returns\n---\n## 怎么退货？\n在订单页申请。\n")
    problems: list[Problem] = []
    (entry,) = load_faq(path, problems)
    assert entry.tags == ()
    assert [(problem.line, problem.message) for problem in problems] == [
        (1, "unknown front matter key 'tag', ignored; use tags or lang")
    ]


# --- a knowledge folder ---


def test_folder_merges_csv_xlsx_and_markdown_and_reports_cross_file_duplicates(tmp_path: Path) -> None:
    (tmp_path / "faq.csv").write_text(
        "id,question,answer\nship_zh,多久发货？,24 小时内发货。\nship_en,When do you ship?,Within 24 hours.\n",
        encoding="utf-8",
    )
    write_xlsx(tmp_path / "faq.xlsx", [COLUMNS, ["pay_zh", "怎么付款？", None, "微信或支付宝。", "payment", "zh"]])
    write_md(tmp_path / "faq" / "returns.md", RETURNS_MD)
    write_md(tmp_path / "faq" / "en" / "shipping.md", "## Do you ship abroad? {#ship_en}\nNot yet.\n")
    write_md(tmp_path / "faq" / "notes.txt", "## not a FAQ file\nignored\n")
    problems: list[Problem] = []
    entries = load_faq_folder(tmp_path, problems)
    assert [(entry.source, entry.id) for entry in entries] == [
        ("faq.csv", "ship_zh"),
        ("faq.csv", "ship_en"),
        ("faq.xlsx", "pay_zh"),
        ("faq/returns.md", "faq_return_zh"),
        ("faq/returns.md", "returns-2"),
        ("faq/returns.md", "faq_return_en"),
    ]
    (duplicate,) = problems
    assert (duplicate.path, duplicate.line) == (str(tmp_path / "faq" / "en" / "shipping.md"), 1)
    assert "duplicate FAQ id 'ship_en' (first in faq.csv line 3)" in duplicate.message


def test_folder_skips_a_broken_file_and_loads_the_others(tmp_path: Path) -> None:
    (tmp_path / "faq.csv").write_text("id,question\nq1,Hi\n", encoding="utf-8")  # no answer column
    (tmp_path / "faq.xlsx").write_bytes(b"not a workbook")
    write_md(tmp_path / "faq" / "a.md", "## 在吗？\n在的。\n\n## Empty\n")
    write_md(tmp_path / "faq" / "b.md", "## Hello? {#a-1}\nHi.\n")
    problems: list[Problem] = []
    entries = load_faq_folder(tmp_path, problems)
    assert [(entry.id, entry.source) for entry in entries] == [("a-1", "faq/a.md")]
    assert [(Path(problem.path).name, problem.line) for problem in problems] == [
        ("faq.csv", 1),
        ("faq.xlsx", 0),
        ("a.md", 4),
        ("b.md", 1),
    ]
    assert "(first in faq/a.md line 1)" in problems[3].message


def test_folder_without_faq_files_is_empty(tmp_path: Path) -> None:
    problems: list[Problem] = []
    assert load_faq_folder(tmp_path / "missing", problems) == ()
    assert problems == []
