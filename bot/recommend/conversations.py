"""The conversations `kefu test recommend` replays: a YAML file of each conversation's questions (texts or item
ids), resolved to the items that answer them, or archived sessions (the items their answers rested on).

    conversations:
      - lang: zh
        questions: [下单后多久能收到货？, 运费怎么收？, faq_ship_07_zh]
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from bot.errors import ProjectError
from bot.events import BotUttered, QuestionsRecommended, UserUttered, event_from_dict
from bot.project.yaml_io import LineList, LineMap, Source, read_yaml, type_name
from bot.protocols import Retriever
from bot.recommend.catalog import QuestionCatalog
from bot.recommend.evaluation import PROGRESS_FROM, Conversation
from bot.types import Language

CONVERSATIONS_FILE = Path("tests") / "recommend_conversations.yml"
_KEYS = ("lang", "questions")
_BATCH = 64
_ID_LIKE = re.compile(r"kg:\S+|[A-Za-z0-9.-]+(?:_[A-Za-z0-9.-]+)+")  # faq_ship_07_zh; never a question's words


@dataclass(frozen=True, slots=True)
class WrittenConversation:
    """A conversation as the file writes it: its questions and the line of each."""

    language: Language
    questions: tuple[str, ...]
    lines: tuple[int, ...]


def read_conversations(path: Path) -> list[WrittenConversation]:
    """The conversations of a YAML file; a malformed one raises ProjectError with the file, line and fix."""
    try:
        raw = read_yaml(path)
    except ProjectError as err:
        if "got '?'" not in err.message:
            raise
        # PyYAML ends a bare text at an ASCII `?` inside `[...]`: `[How do I pay?]` must be quoted.
        hint = 'quote a question holding `?` inside `[...]` ("How do I pay?"), or list the questions one per line'
        raise ProjectError(f"{err.message}; {hint}", path=err.path, line=err.line) from err
    source = Source(path)
    if "conversations" not in raw:
        raise source.error(
            "there is no `conversations:` list; write `conversations:` with items like "
            "`- lang: zh` and `questions: [运费怎么收？, faq_ship_07_zh]`",
            1,
        )
    value = raw["conversations"]
    listed = source.sequence(value, _line(value, raw.line_of("conversations")), "`conversations:`")
    return [_conversation(source, entry, listed.line_of(n)) for n, entry in enumerate(listed)]


def _conversation(source: Source, value: object, line: int) -> WrittenConversation:
    entry = source.mapping(value, line, "a conversation")
    for key in entry:
        if key not in _KEYS:
            raise source.error(
                f"unknown key `{key}` in a conversation; a conversation has `lang:` (zh or en) and `questions:`",
                entry.line_of(key),
            )
    language = entry.get("lang")
    if language not in ("zh", "en"):
        shown = f"`{language}`" if isinstance(language, str) else type_name(language)
        raise source.error(
            f"`lang:` must be zh or en, not {shown}; add `lang: zh` or `lang: en`", entry.line_of("lang")
        )
    value = entry.get("questions")
    listed = source.sequence(value, _line(value, entry.line_of("questions")), "`questions:`")
    if not listed:
        raise source.error("a conversation needs questions: write `questions: [first question, next one]`", line)
    texts, lines = [], []
    for n, question in enumerate(listed):
        at = listed.line_of(n)
        if isinstance(question, LineMap):  # `[X1 Pro: price?]` reads as a mapping
            raise source.error("a question must be text, not a mapping; quote a question that holds `: `", at)
        text = source.text_of(question, at, "a question").strip()
        if not text:
            raise source.error("an empty question; write the question's text or an item id", at)
        texts.append(text)
        lines.append(at)
    return WrittenConversation(language, tuple(texts), tuple(lines))


def _line(value: object, key_line: int) -> int:
    """Where a value starts: its own line for a mapping or a list (often below its key), else its key's."""
    return value.line if isinstance(value, LineMap | LineList) else key_line


class ItemFinder:
    """The item a written question is: an item id, a question's exact text (up to case, width and spaces),
    else the first FAQ entry or graph question the knowledge base answers it with, as the bot would (an exact
    match or a score of at least `min_score`). `embed` (the knowledge base's query embedder, which caches) lets
    `prefetch` embed the texts to search in batches, several times faster than one by one."""

    def __init__(
        self,
        catalog: QuestionCatalog,
        knowledge: Retriever,
        *,
        min_score: float,
        embed: Callable[[list[str]], object] | None = None,
    ) -> None:
        self.catalog = catalog
        self.knowledge = knowledge
        self.min_score = min_score
        self._embed = embed
        self._found: dict[tuple[str, Language], str | None] = {}

    def prefetch(self, questions: Iterable[tuple[str, Language]], *, progress: bool = False) -> None:
        """Embed, in batches, the questions that only a search can resolve."""
        if self._embed is None:
            return
        wanted = [text for text, language in questions if self._direct(text, language) is None]
        unique = list(dict.fromkeys(wanted))
        batches = range(0, len(unique), _BATCH)
        show = progress and len(unique) > _BATCH
        for start in tqdm(batches, desc="embedding questions", unit="batch", file=sys.stderr, disable=not show):
            self._embed(unique[start : start + _BATCH])

    def item(self, text: str, language: Language, *, path: Path, line: int) -> str | None:
        if self.catalog.get(text, language) is not None:
            return text
        other: Language = "en" if language == "zh" else "zh"
        if self.catalog.get(text, other) is not None:
            raise ProjectError(
                f"`{text}` is a question in {other}, but this conversation is `lang: {language}`; "
                f"use the {language} item or move the question",
                path=str(path),
                line=line,
            )
        if _ID_LIKE.fullmatch(text):
            raise ProjectError(
                f"no FAQ entry or graph question has the id `{text}`; check the id, or write the question as text",
                path=str(path),
                line=line,
            )
        key = (text, language)
        if key not in self._found:
            self._found[key] = self._direct(text, language) or self._retrieved(text, language)
        return self._found[key]

    def _direct(self, text: str, language: Language) -> str | None:
        """The item `text` names or is written exactly as, without searching."""
        if self.catalog.get(text, language) is not None:
            return text
        return self.catalog.item_of(text, language)

    def _retrieved(self, text: str, language: Language) -> str | None:
        facts = self.knowledge.retrieve(text, top_k=3, filters={"source": "kg|faq"}, language=language)
        for fact in facts:
            if (fact.exact or fact.score >= self.min_score) and self.catalog.get(fact.id, language) is not None:
                return fact.id
        return None


def resolve(
    written: Sequence[WrittenConversation], finder: ItemFinder, *, path: Path, progress: bool = False
) -> tuple[list[Conversation], list[str]]:
    """Each conversation's items, and the questions no item answers (`file:line: text`), left out of theirs."""
    finder.prefetch(((text, entry.language) for entry in written for text in entry.questions), progress=progress)
    conversations: list[Conversation] = []
    unresolved: list[str] = []
    show = progress and len(written) >= PROGRESS_FROM
    for entry in tqdm(written, desc="questions", unit="conversation", file=sys.stderr, disable=not show, leave=False):
        items = []
        for text, line in zip(entry.questions, entry.lines, strict=True):
            item = finder.item(text, entry.language, path=path, line=line)
            if item is None:
                unresolved.append(f"{path}:{line}: {text}")
            else:
                items.append(item)
        conversations.append(Conversation(entry.language, tuple(items)))
    return conversations, unresolved


def archived_conversations(
    sessions: Iterable[tuple[str, Sequence[Mapping[str, Any]]]], catalog: QuestionCatalog
) -> tuple[list[Conversation], list[str]]:
    """Conversations from archived sessions, given as (language, event dicts): the item each turn's answer
    rested on (its first fact id). Answers no recommendable question matches (a document passage) are left
    out and listed."""
    conversations: list[Conversation] = []
    unrecommendable: list[str] = []
    for written_language, events in sessions:
        language = _language(events, written_language)
        items = []
        for item in _answered(events):
            if catalog.get(item, language) is None:
                unrecommendable.append(item)
            else:
                items.append(item)
        if items:
            conversations.append(Conversation(language, tuple(items)))
    return conversations, unrecommendable


def _language(events: Sequence[Mapping[str, Any]], fallback: str) -> Language:
    """The language recommendations were shown in (the session's language slot then), else `fallback` (the
    language the archive detected in the customer's messages)."""
    shown = next((e.get("language") for e in events if e.get("event") == QuestionsRecommended.type_name), None)
    return "en" if (shown or fallback) == "en" else "zh"


def _answered(events: Sequence[Mapping[str, Any]]) -> list[str]:
    """The first fact id of each turn's first knowledge answer; only user and bot events are decoded."""
    items: list[str] = []
    answered = False
    for data in events:
        kind = data.get("event")
        if kind == UserUttered.type_name:
            answered = False
        elif kind == BotUttered.type_name and data.get("fact_ids") and not answered:
            event = event_from_dict(data)
            if isinstance(event, BotUttered) and event.fact_ids:
                items.append(event.fact_ids[0])
                answered = True
    return items
