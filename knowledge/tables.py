"""Reading the knowledge CSV files: one header row, errors that name the line and the fix.

A broken header stops the file; a broken row is skipped and reported, so one bad row loses nothing else.
"""

from __future__ import annotations

import csv
import difflib
import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.errors import ProjectError
from knowledge.encoding import read_text_file
from knowledge.problems import Problem

# Spreadsheet users type the full-width bar as often as the ASCII one.
_LIST_SEPARATORS = ("|", "｜")


@dataclass(frozen=True, slots=True)
class Row:
    """One data row: its stripped values by (lower-case) column name, and the line it starts on."""

    line: int
    values: Mapping[str, str]

    def get(self, column: str) -> str:
        """The value of `column`, or "" when the file has no such column."""
        return self.values.get(column, "")


def read_table(
    path: Path, *, required: Sequence[str], optional: Sequence[str] = (), problems: list[Problem] | None = None
) -> list[Row]:
    """Rows of the CSV file at `path` (UTF-8, or GBK/Big5 as Excel saves them); blank rows are skipped.

    Raises ProjectError (with the line) for an unreadable file, a missing required column or a column that
    looks like a misspelt known one. A row with malformed quoting or more fields than the header is skipped
    and added to `problems`; without a `problems` list it raises instead.
    """
    text = read_text_file(path)
    reader = csv.reader(io.StringIO(text, newline=""))
    records = _records(reader, path, problems)
    first = next(records, None)
    if first is None:
        return []
    header = _check_header(first[1], path, required, optional)
    rows = []
    for line, record in records:
        try:
            rows.append(_make_row(line, record, header, path))
        except ProjectError as err:
            if problems is None:
                raise
            problems.append(Problem.of(err))
    return rows


def split_list(value: str) -> tuple[str, ...]:
    """The items of a `|`-separated cell, stripped, without empty items or repeats."""
    for separator in _LIST_SEPARATORS[1:]:
        value = value.replace(separator, _LIST_SEPARATORS[0])
    items = (item.strip() for item in value.split(_LIST_SEPARATORS[0]))
    return tuple(dict.fromkeys(item for item in items if item))


def _records(
    reader: Iterator[list[str]], path: Path, problems: list[Problem] | None
) -> Iterator[tuple[int, list[str]]]:
    """Non-blank records with the line each starts on (a quoted field may span lines)."""
    line_num = 0
    while True:
        start = line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            error = ProjectError(f"malformed CSV ({err}); check the quotes in this row", path=str(path), line=start)
            if problems is None:
                raise error from err
            problems.append(Problem.of(error))
            line_num = reader.line_num  # type: ignore[attr-defined]
            continue
        line_num = reader.line_num  # type: ignore[attr-defined]
        if any(field.strip() for field in record):
            yield start, record


def _check_header(record: list[str], path: Path, required: Sequence[str], optional: Sequence[str]) -> list[str]:
    header = [name.strip().lower() for name in record]
    known = [*required, *optional]
    expected = ",".join(known)
    for name in header:
        if header.count(name) > 1:
            raise ProjectError(f"column {name!r} appears twice in the header", path=str(path), line=1)
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
        if name not in known and close:
            raise ProjectError(f"unknown column {name!r}: did you mean {close[0]!r}?", path=str(path), line=1)
    missing = [name for name in required if name not in header]
    if missing:
        raise ProjectError(
            f"missing column(s) {', '.join(missing)}; the first row must be a header like: {expected}",
            path=str(path),
            line=1,
        )
    return header


def _make_row(line: int, record: list[str], header: list[str], path: Path) -> Row:
    if len(record) > len(header):
        raise ProjectError(
            f"{len(record)} fields but the header has {len(header)} columns; quote a field that contains a comma",
            path=str(path),
            line=line,
        )
    return Row(line=line, values={name: value.strip() for name, value in zip(header, record, strict=False)})
