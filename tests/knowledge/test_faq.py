"""FAQ CSV loading: formats accepted, errors that name the line and the fix, bad rows skipped and reported."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.errors import ProjectError
from knowledge.faq import FaqEntry, load_faq
from knowledge.problems import Problem

HEADER = "id,question,similar,answer,tags,lang\n"


def write(tmp_path: Path, text: str, *, encoding: str = "utf-8") -> Path:
    path = tmp_path / "faq.csv"
    path.write_text(text, encoding=encoding)
    return path


def test_loads_entries_with_lists_and_languages(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEADER
        + "ship_zh,多久发货？,几天发货|什么时候发货,24 小时内发货。,shipping|orders,zh\n"
        + 'ship_en,When do you ship?,How soon do you ship,"We ship within 24 hours, every day.",shipping,en\n',
    )
    entries = load_faq(path)
    assert entries == (
        FaqEntry(
            "ship_zh",
            "多久发货？",
            "24 小时内发货。",
            "zh",
            ("几天发货", "什么时候发货"),
            ("shipping", "orders"),
            line=2,
            source="faq.csv",
        ),
        FaqEntry(
            "ship_en",
            "When do you ship?",
            "We ship within 24 hours, every day.",
            "en",
            ("How soon do you ship",),
            ("shipping",),
            line=3,
            source="faq.csv",
        ),
    )
    assert entries[0].questions == ("多久发货？", "几天发货", "什么时候发货")


def test_bom_optional_columns_blank_rows_and_guessed_language(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "id,question,answer\n\nq1,怎么退货？,在订单页申请。\nq2,How do I return?,From the order page.\n",
        encoding="utf-8-sig",
    )
    entries = load_faq(path)
    assert [(entry.id, entry.lang, entry.line, entry.similar, entry.tags) for entry in entries] == [
        ("q1", "zh", 3, (), ()),
        ("q2", "en", 4, (), ()),
    ]


def test_full_width_separator_and_region_language_codes(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "q1,多久发货？,几天发货｜何时发货,很快。,shipping,zh-CN\n")
    (entry,) = load_faq(path)
    assert entry.similar == ("几天发货", "何时发货")
    assert entry.lang == "zh"


def test_missing_file_is_an_empty_faq(tmp_path: Path) -> None:
    assert load_faq(tmp_path / "faq.csv") == ()


def test_empty_file_is_an_empty_faq(tmp_path: Path) -> None:
    assert load_faq(write(tmp_path, "")) == ()


HEADER_ERRORS = [
    ("id,question,similar\nq1,Hi,\n", 1, "missing column(s) answer"),
    ("id,question,answr\nq1,Hi,Hello\n", 1, "did you mean 'answer'"),
]
ROW_ERRORS = [
    (
        HEADER + "q1,Hi,,Hello,,en\nq2,Bye,,Bye,,en\nq1,Hey,,Hello,,en\n",
        4,
        "duplicate FAQ id 'q1' (first on line 2)",
    ),
    (HEADER + "q1,Hi,,,,en\n", 2, "empty 'answer'"),
    (HEADER + "q1,Hi,,Hello,,fr\n", 2, "unknown lang 'fr'"),
    (HEADER + "q1,Hi,,Hello, world,,en\n", 2, "quote a field that contains a comma"),
    # A quoted answer may span lines: the error points at the line the bad row starts on.
    (HEADER + 'q1,Hi,,"two\nlines",,en\nq2,Bye,,,,en\n', 4, "empty 'answer'"),
]


@pytest.mark.parametrize(("text", "line", "fragment"), HEADER_ERRORS + ROW_ERRORS)
def test_errors_name_the_line(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ProjectError) as caught:
        load_faq(path)
    assert caught.value.line == line
    assert caught.value.path == str(path)
    assert fragment in str(caught.value)
    assert f"faq.csv:{line}:" in str(caught.value)


def test_gbk_as_chinese_excel_saves_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "faq.csv"
    path.write_bytes((HEADER + "q1,Hi,,Hello,,en\n").encode() + "q2,多久发货,,很快,,zh\n".encode("gbk"))
    assert [entry.answer for entry in load_faq(path)] == ["Hello", "很快"]


def test_text_in_no_known_encoding_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "faq.csv"
    path.write_bytes((HEADER + "q1,Hi,,Hello,,en\n").encode() + b"q2,\xff\xfe\xff,,x,,zh\n")
    with pytest.raises(ProjectError, match="save the file as UTF-8") as caught:
        load_faq(path)
    assert caught.value.line == 3


@pytest.mark.parametrize(("text", "line", "fragment"), ROW_ERRORS)
def test_with_a_problems_list_a_bad_row_is_skipped_and_reported(
    tmp_path: Path, text: str, line: int, fragment: str
) -> None:
    path = write(tmp_path, text)
    problems: list[Problem] = []
    entries = load_faq(path, problems)
    (problem,) = problems
    assert (problem.path, problem.line) == (str(path), line)
    assert fragment in problem.message
    assert line not in [entry.line for entry in entries]


@pytest.mark.parametrize(("text", "line", "fragment"), HEADER_ERRORS)
def test_a_broken_header_raises_even_with_a_problems_list(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    problems: list[Problem] = []
    with pytest.raises(ProjectError, match=re.escape(fragment)):
        load_faq(write(tmp_path, text), problems)
    assert problems == []


def test_bad_rows_are_skipped_and_every_good_row_loads(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEADER
        + "ship_zh,多久发货？,几天发货,24 小时内发货。,shipping,zh\n"  # 2
        + "ship_en,When do you ship?,,We ship today, every day.,shipping,en\n"  # 3: comma not quoted
        + "ret_zh,怎么退货？,,,returns,zh\n"  # 4: empty answer
        + 'ship_en,When do you ship?,,"We ship within 24 hours, every day.",shipping,en\n'  # 5
        + "ship_zh,几天发货？,,两天。,shipping,zh\n"  # 6: duplicate, the first one wins
        + "ret_fr,Comment retourner ?,,Depuis la commande.,returns,fr\n"  # 7: unknown language
        + "ret_en,How do I return an item?,,From the order page.,returns,en\n",  # 8
    )
    problems: list[Problem] = []
    entries = load_faq(path, problems)
    assert [(entry.id, entry.line) for entry in entries] == [("ship_zh", 2), ("ship_en", 5), ("ret_en", 8)]
    assert entries[0].answer == "24 小时内发货。"
    assert [problem.line for problem in problems] == [3, 4, 6, 7]
    assert "quote a field that contains a comma" in problems[0].message
    assert "empty 'answer'" in problems[1].message
    assert "duplicate FAQ id 'ship_zh' (first on line 2)" in problems[2].message
    assert "unknown lang 'fr'; use one of: zh, en" in problems[3].message
    assert str(problems[3]) == f"{path}:7: {problems[3].message}"


def test_gbk_file_with_a_bad_row_reports_it_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "faq.csv"
    text = HEADER + "q1,多久发货？,,很快。,,\nq2,怎么退货？,,,,\nq3,可以开发票吗？,,可以。,,\n"
    path.write_bytes(text.encode("gbk"))
    problems: list[Problem] = []
    entries = load_faq(path, problems)
    assert [(entry.id, entry.lang, entry.answer) for entry in entries] == [
        ("q1", "zh", "很快。"),
        ("q3", "zh", "可以。"),
    ]
    assert [(problem.line, problem.message.split(";")[0]) for problem in problems] == [(3, "empty 'answer'")]


def test_an_unknown_encoding_always_raises(tmp_path: Path) -> None:
    path = tmp_path / "faq.csv"
    path.write_bytes((HEADER + "q1,Hi,,Hello,,en\n").encode() + b"q2,\xff\xfe\xff,,x,,zh\n")
    with pytest.raises(ProjectError, match="save the file as UTF-8"):
        load_faq(path, [])


def test_an_unsupported_file_type_names_the_ones_that_are(tmp_path: Path) -> None:
    path = tmp_path / "faq.txt"
    path.write_text("q1 Hello", encoding="utf-8")
    with pytest.raises(ProjectError, match=r"\.csv, \.xlsx, \.md"):
        load_faq(path, [])
