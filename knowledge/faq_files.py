"""FAQ sources besides CSV: Excel workbooks (`.xlsx`) and Markdown files (`.md`), read as table `Row`s.

An `.xlsx` FAQ has the CSV's columns (id, question, similar, answer, tags, lang) in the first row of the
sheet named "faq" (any case), or of the first sheet; row numbers are the ones Excel shows.

A Markdown FAQ has one entry per `## ` heading::

    ---
    tags: [returns]          # optional front matter (YAML): default tags and lang of every entry
    lang: zh
    ---
    # 退货 Returns            (an optional title; text before the first `## ` is ignored)

    ## 怎么退货？ {#faq_return_zh}
    相似问题：如何退货 | 退货流程是什么
    标签：returns, after-sales
    语言：zh

    签收后 7 天内可在"我的订单"中申请退货。

    ## How do I return an item?
    similar: How can I send it back | Return policy

    Open *My orders* and choose **Return** within 7 days of delivery.

- The heading is the question; `{#id}` at its end gives the id, else the id is `<file stem>-<n>` where n
  counts the headings of the file from 1 (stable while their order is unchanged).
- `similar:` (`|`-separated), `tags:` (comma-separated) and `lang:` lines right after the heading (blank
  lines between them allowed; also `相似问题：`, `标签：`, `语言：`) are metadata. An entry's own `tags:` or
  `lang:` replaces the front matter's.
- The answer is everything after the metadata up to the next `## ` heading, as written, trimmed; it may
  hold paragraphs, lists and `###` subheadings. A `## ` inside a fenced code block is not a heading.
"""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

import yaml
from openpyxl import Workbook, load_workbook
from openpyxl.utils import get_column_letter
from openpyxl.utils.exceptions import InvalidFileException
from openpyxl.worksheet._read_only import ReadOnlyWorksheet

from bot.errors import ProjectError
from bot.types import Language
from knowledge.encoding import read_text_file
from knowledge.problems import Problem
from knowledge.tables import Row, _check_header

FAQ_SHEET = "faq"
_LANGUAGES: tuple[Language, ...] = get_args(Language)
# CommonMark ATX heading of level 2; an optional closing run of #s ("## Question ##") is not part of it.
_HEADING = re.compile(r"^ {0,3}##(?:[ \t]+(?P<text>.*?))?(?:[ \t]+#+)?[ \t]*$")
_EXPLICIT_ID = re.compile(r"\s*\{#(?P<id>[^{}\s]+)\}$")
_FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})")
_METADATA = re.compile(r"^(?P<key>similar|tags|lang|相似问题|标签|语言)[ \t]*[:：][ \t]*(?P<value>.*)$", re.IGNORECASE)
_KEYS = {"similar": "similar", "相似问题": "similar", "tags": "tags", "标签": "tags", "lang": "lang", "语言": "lang"}
_FRONT_MATTER_KEYS = ("tags", "lang")
# People type tag lists the way they write prose: commas in either width, or the Chinese enumeration comma.
_TAG_SEPARATORS = re.compile(r"[,，、|｜]")


def read_xlsx(
    path: Path, *, required: Sequence[str], optional: Sequence[str] = (), problems: list[Problem] | None = None
) -> list[Row]:
    """Rows of the FAQ sheet of the workbook at `path`, each cell as text; blank rows are skipped.

    Raises ProjectError for a file that is not a workbook and for the header errors of `read_table`. A
    row with a value in a column without a header is skipped and added to `problems` (or raised).
    """
    records = _sheet_records(path)
    if not records:
        return []
    header = _check_header(_trim(records[0][1]), path, required, optional)
    rows = []
    for number, cells in records[1:]:
        values = _trim(cells)
        if len(values) > len(header):
            # The last non-empty cell, as trailing empties are trimmed; Excel names columns by letter.
            column = get_column_letter(len(values))
            error = ProjectError(
                f"a value in column {column}, which has no header; name the column or clear the cell",
                path=str(path),
                line=number,
            )
            if problems is None:
                raise error
            problems.append(Problem.of(error))
            continue
        if any(values):
            rows.append(Row(line=number, values=dict(zip(header, values, strict=False))))
    return rows


def _sheet_records(path: Path) -> list[tuple[int, list[str]]]:
    """(row number, cell texts) of the FAQ sheet's rows, from the header on."""
    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
        try:
            records = _read_sheet(workbook)
        finally:
            workbook.close()
    except OSError as err:
        raise ProjectError(
            f"cannot read the file ({err.strerror}); check that it is a readable file", path=str(path)
        ) from err
    # A read-only workbook parses its sheets lazily, so a damaged sheet (SyntaxError: bad XML) fails here.
    except (zipfile.BadZipFile, InvalidFileException, KeyError, ValueError, SyntaxError) as err:
        raise ProjectError("not a valid .xlsx file; save it again from Excel", path=str(path)) from err
    # The first non-blank row is the header, wherever the author put it.
    start = next((index for index, (_, cells) in enumerate(records) if any(cells)), len(records))
    return records[start:]


def _read_sheet(workbook: Workbook) -> list[tuple[int, list[str]]]:
    if not workbook.worksheets:
        return []
    named = [sheet for sheet in workbook.worksheets if sheet.title.strip().lower() == FAQ_SHEET]
    sheet = named[0] if named else workbook.worksheets[0]
    if isinstance(sheet, ReadOnlyWorksheet):
        # Some tools write a wrong size record; read every row rather than trust it.
        sheet.reset_dimensions()
    numbered = enumerate(sheet.iter_rows(values_only=True), start=1)
    return [(number, [_cell_text(value) for value in cells]) for number, cells in numbered]


def _cell_text(value: object) -> str:
    """A cell as the text a person sees: 101 not 101.0, a date without midnight, TRUE/FALSE."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value).replace("\r\n", "\n").strip()


def _trim(cells: list[str]) -> list[str]:
    """Without trailing empty cells (formatting makes Excel keep them)."""
    end = len(cells)
    while end and not cells[end - 1]:
        end -= 1
    return cells[:end]


@dataclass(slots=True)
class _Section:
    """One `## ` heading and the lines under it, while the file is being read."""

    line: int
    heading: str
    body: list[str] = field(default_factory=list)


def read_markdown(path: Path, problems: list[Problem] | None = None) -> list[Row]:
    """One row per `## ` entry of the Markdown FAQ at `path` (see the module docstring for the format).

    Raises ProjectError for an unreadable file or broken front matter; an unknown front-matter key is
    added to `problems` (or raised) and ignored.
    """
    lines = read_text_file(path).splitlines()
    defaults, start = _front_matter(lines, path, problems)
    sections = _sections(lines, start)
    return [_markdown_row(section, f"{path.stem}-{n}", defaults) for n, section in enumerate(sections, start=1)]


def _front_matter(lines: list[str], path: Path, problems: list[Problem] | None) -> tuple[dict[str, str], int]:
    """The front matter's defaults (tags `|`-joined, lang) and the index of the first line after it."""
    if not lines or lines[0].strip() != "---":
        return {}, 0
    end = next((index for index in range(1, len(lines)) if lines[index].strip() in ("---", "...")), None)
    if end is None:
        raise ProjectError("the front matter is not closed; end it with a line of ---", path=str(path), line=1)
    try:
        loaded = yaml.safe_load("\n".join(lines[1:end])) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        reason = getattr(err, "problem", None) or "unreadable"
        line = 2 + mark.line if mark is not None else 1  # the YAML starts on the file's second line
        raise ProjectError(
            f"the front matter is not valid YAML ({reason}); write it like `tags: [returns]`", path=str(path), line=line
        ) from err
    if not isinstance(loaded, Mapping):
        raise ProjectError("the front matter must be keys like `tags:` and `lang:`", path=str(path), line=1)
    for key in loaded:
        if key not in _FRONT_MATTER_KEYS:
            error = ProjectError(
                f"unknown front matter key {key!r}, ignored; use {' or '.join(_FRONT_MATTER_KEYS)}",
                path=str(path),
                line=1,
            )
            if problems is None:
                raise error
            problems.append(Problem.of(error))
    tags = _front_matter_tags(loaded.get("tags"), path)
    return {"tags": tags, "lang": _front_matter_lang(loaded.get("lang"), path)}, end + 1


def _front_matter_tags(value: object, path: Path) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return "|".join(_split_tags(value))
    if isinstance(value, list) and all(isinstance(item, str | int | float) for item in value):
        return "|".join(str(item).strip() for item in value)
    raise ProjectError("front matter `tags` must be a list like [returns, shipping]", path=str(path), line=1)


def _front_matter_lang(value: object, path: Path) -> str:
    text = "" if value is None else str(value).strip()
    if text and text.lower().replace("_", "-").split("-")[0] not in _LANGUAGES:
        # Every entry inherits it, so one message here beats the same one under each heading.
        raise ProjectError(
            f"unknown front matter lang {text!r}; use one of: {', '.join(_LANGUAGES)}", path=str(path), line=1
        )
    return text


def _sections(lines: list[str], start: int) -> list[_Section]:
    """The `## ` headings (outside code fences) with the lines under each; earlier lines are dropped."""
    sections: list[_Section] = []
    fence = ""
    for index in range(start, len(lines)):
        line = lines[index]
        opener = _FENCE.match(line)
        if fence:
            fence = "" if _closes(line, fence) else fence
        elif opener:
            fence = opener["fence"]
        heading = None if fence or opener else _HEADING.match(line)
        if heading:
            sections.append(_Section(line=index + 1, heading=heading["text"] or ""))
        elif sections:
            sections[-1].body.append(line)
    return sections


def _closes(line: str, fence: str) -> bool:
    # CommonMark: the same character, at least as many times, indented at most 3 spaces, nothing after it.
    text = line.strip()
    indent = len(line) - len(line.lstrip(" "))
    return indent <= 3 and len(text) >= len(fence) and set(text) == {fence[0]}


def _markdown_row(section: _Section, generated_id: str, defaults: Mapping[str, str]) -> Row:
    """The section as a FAQ table row: explicit or generated id, metadata lines, then the answer."""
    question, entry_id = section.heading, generated_id
    explicit = _EXPLICIT_ID.search(question)
    if explicit:
        question, entry_id = question[: explicit.start()].strip(), explicit["id"]
    metadata: dict[str, list[str]] = {}
    body = section.body
    start = 0
    while start < len(body) and (not body[start].strip() or _METADATA.match(body[start].strip())):
        found = _METADATA.match(body[start].strip())
        if found:
            key = _KEYS[found["key"].lower()]
            value = found["value"].strip()
            metadata.setdefault(key, []).extend(_split_tags(value) if key == "tags" else (value,))
        start += 1
    values = {
        "id": entry_id,
        "question": question,
        "answer": "\n".join(body[start:]).strip(),
        "similar": "|".join(metadata.get("similar", [])),
        "tags": "|".join(metadata["tags"]) if "tags" in metadata else defaults.get("tags", ""),
        "lang": metadata["lang"][-1] if "lang" in metadata else defaults.get("lang", ""),
    }
    return Row(line=section.line, values=values)


def _split_tags(value: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(item.strip() for item in _TAG_SEPARATORS.split(value) if item.strip()))
