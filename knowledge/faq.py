"""FAQ entries and their files: `faq.csv`, `faq.xlsx` (id,question,similar,answer,tags,lang) and `faq/*.md`.

The Excel and Markdown formats are described in `knowledge/faq_files.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import get_args

from bot.errors import ProjectError
from bot.types import Language
from knowledge.faq_files import read_markdown, read_xlsx
from knowledge.matching import guess_language
from knowledge.problems import Problem
from knowledge.tables import Row, read_table, split_list

FAQ_SUFFIXES = (".csv", ".xlsx", ".md")
FAQ_REQUIRED = ("id", "question", "answer")
FAQ_OPTIONAL = ("similar", "tags", "lang")
LANGUAGES: tuple[Language, ...] = get_args(Language)


@dataclass(frozen=True, slots=True)
class FaqEntry:
    """One question with its paraphrases (`similar`), the answer, tags and language."""

    id: str
    question: str
    answer: str
    lang: Language
    similar: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    line: int = 0  # the line (CSV, Markdown) or row (XLSX) that defines it, for messages and citations
    source: str = ""  # its file, relative to the knowledge folder ("faq.csv", "faq/returns.md")

    @property
    def questions(self) -> tuple[str, ...]:
        """The question followed by its paraphrases."""
        return (self.question, *self.similar)


def load_faq(path: Path, problems: list[Problem] | None = None) -> tuple[FaqEntry, ...]:
    """FAQ entries from a `.csv`, `.xlsx` or `.md` file (by its suffix); a missing file is an empty FAQ.

    `similar` and `tags` are `|`-separated; an empty `lang` is guessed from the question (CJK -> zh).
    A bad entry (empty id, question or answer, unknown language, a duplicate id, a malformed CSV row) is
    skipped and added to `problems`, in file order, the first of two duplicates kept; without `problems`
    the first one is raised as ProjectError naming the line (row in a workbook) and the fix. A broken
    file (unreadable, unknown encoding, missing header columns, not a workbook) always raises.
    """
    return _load(path, path.name, problems)


def load_faq_folder(folder: Path, problems: list[Problem]) -> tuple[FaqEntry, ...]:
    """Every FAQ of a knowledge folder: `faq.csv`, `faq.xlsx`, then each `faq/**/*.md` in name order.

    Entries carry their file relative to `folder` as `source`. Bad entries, an id already defined in an
    earlier file (the later one is skipped) and broken files (skipped whole) are added to `problems`.
    """
    entries: list[FaqEntry] = []
    first: dict[str, FaqEntry] = {}
    for path in _faq_paths(folder):
        source = path.relative_to(folder).as_posix()
        try:
            loaded = _load(path, source, problems)
        except ProjectError as err:
            problems.append(Problem.of(err))
            continue
        for entry in loaded:
            if entry.id in first:
                earlier = first[entry.id]
                where = f"{earlier.source} {_place(earlier.source, earlier.line)}"
                message = f"duplicate FAQ id {entry.id!r} (first in {where}); give each entry its own id"
                problems.append(Problem(str(path), entry.line, message))
                continue
            first[entry.id] = entry
            entries.append(entry)
    return tuple(entries)


def _faq_paths(folder: Path) -> list[Path]:
    """The FAQ files of a knowledge folder that exist, in load order."""
    tables = [folder / f"faq{suffix}" for suffix in (".csv", ".xlsx")]
    pages = folder / "faq"
    # Editors leave hidden files (".#returns.md") next to the ones being edited.
    markdown = sorted(
        (path for path in pages.rglob("*.md") if not path.name.startswith(".")) if pages.is_dir() else (),
        key=lambda path: path.relative_to(pages).as_posix(),
    )
    return [path for path in (*tables, *markdown) if path.is_file()]


def _load(path: Path, source: str, problems: list[Problem] | None) -> tuple[FaqEntry, ...]:
    if not path.is_file():
        return ()
    # Malformed rows are found while reading, bad entries after: report (or raise) them in file order.
    found: list[Problem] = []
    entries: list[FaqEntry] = []
    first_line: dict[str, int] = {}
    for row in _rows(path, found):
        try:
            entry = _entry(row, path, source)
            if entry.id in first_line:
                raise ProjectError(
                    f"duplicate FAQ id {entry.id!r} (first on {_place(path.name, first_line[entry.id])}); "
                    "give each entry its own id",
                    path=str(path),
                    line=row.line,
                )
        except ProjectError as err:
            found.append(Problem.of(err))
            continue
        first_line[entry.id] = row.line
        entries.append(entry)
    found.sort(key=lambda problem: problem.line)
    if problems is None and found:
        raise ProjectError(found[0].message, path=found[0].path, line=found[0].line or None)
    if problems is not None:
        problems.extend(found)
    return tuple(entries)


def _rows(path: Path, problems: list[Problem] | None) -> list[Row]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return read_table(path, required=FAQ_REQUIRED, optional=FAQ_OPTIONAL, problems=problems)
    if suffix == ".xlsx":
        return read_xlsx(path, required=FAQ_REQUIRED, optional=FAQ_OPTIONAL, problems=problems)
    if suffix == ".md":
        return read_markdown(path, problems)
    raise ProjectError(f"not a FAQ file type; save it as one of: {', '.join(FAQ_SUFFIXES)}", path=str(path))


def _entry(row: Row, path: Path, source: str) -> FaqEntry:
    for column in FAQ_REQUIRED:
        if not row.get(column):
            where = " (the text under its ## heading)" if column == "answer" and path.suffix.lower() == ".md" else ""
            raise ProjectError(
                f"empty {column!r}; every FAQ entry needs an id, a question and an answer{where}",
                path=str(path),
                line=row.line,
            )
    question = row.get("question")
    return FaqEntry(
        id=row.get("id"),
        question=question,
        answer=row.get("answer"),
        lang=_language(row, question, path),
        similar=tuple(text for text in split_list(row.get("similar")) if text != question),
        tags=split_list(row.get("tags")),
        line=row.line,
        source=source,
    )


def _place(file: str, line: int) -> str:
    """How to point at `line` of `file`: "row 4" in a workbook (Excel numbers its rows), else "line 4"."""
    return f"{'row' if file.lower().endswith('.xlsx') else 'line'} {line}"


def _language(row: Row, question: str, path: Path) -> Language:
    # "zh-CN", "en_US" and the like name the same two languages.
    raw = row.get("lang")
    value = raw.lower().replace("_", "-").split("-")[0]
    if not value:
        return guess_language(question)
    for language in LANGUAGES:
        if value == language:
            return language
    raise ProjectError(f"unknown lang {raw!r}; use one of: {', '.join(LANGUAGES)}", path=str(path), line=row.line)
