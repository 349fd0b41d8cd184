"""FAQ entries and their CSV file (`knowledge/faq.csv`: id,question,similar,answer,tags,lang)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import get_args

from bot.errors import ProjectError
from bot.types import Language
from knowledge.matching import guess_language
from knowledge.tables import Row, read_table, split_list

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
    line: int = 0  # where it is defined in faq.csv, for error messages and citations

    @property
    def questions(self) -> tuple[str, ...]:
        """The question followed by its paraphrases."""
        return (self.question, *self.similar)


def load_faq(path: Path) -> tuple[FaqEntry, ...]:
    """FAQ entries from a CSV file; a missing file is an empty FAQ.

    `similar` and `tags` are `|`-separated; an empty `lang` is guessed from the question (CJK -> zh).
    Raises ProjectError naming the line for a missing column, an empty id/question/answer, an unknown
    language or a duplicate id.
    """
    if not path.is_file():
        return ()
    entries: list[FaqEntry] = []
    first_line: dict[str, int] = {}
    for row in read_table(path, required=FAQ_REQUIRED, optional=FAQ_OPTIONAL):
        entry = _entry(row, path)
        if entry.id in first_line:
            raise ProjectError(
                f"duplicate FAQ id {entry.id!r} (first on line {first_line[entry.id]}); give each row its own id",
                path=str(path),
                line=row.line,
            )
        first_line[entry.id] = row.line
        entries.append(entry)
    return tuple(entries)


def _entry(row: Row, path: Path) -> FaqEntry:
    for column in FAQ_REQUIRED:
        if not row.get(column):
            raise ProjectError(
                f"empty {column!r}; every FAQ row needs an id, a question and an answer", path=str(path), line=row.line
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
    )


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
