"""Term lexicons (abuse, violence, fraud, ...) with an allow-list, and the check that blocks on them.

A lexicon file is plain UTF-8 text a project owner can edit, one entry per line, columns separated by a tab:

    # a comment
    abuse<TAB>傻逼
    abuse<TAB>fuck*
    abuse<TAB>sb<TAB>zh
    allow<TAB>傻瓜相机

Chinese terms match anywhere (Chinese puts no spaces between words). A Latin-script term must start and end
at word boundaries, so "class" never matches "ass"; a "*" at either end lifts that ("fuck*" also matches
"fucking"). The optional third column is the term's language (default: guessed from its script). `allow`
lines list phrases that contain a term but are fine. Matching ignores case and full/half width.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from bot.errors import ProjectError
from bot.events import Session
from bot.types import Fact, Language, SafetyVerdict, Stage
from safety.aho_corasick import AhoCorasick, fold
from safety.files import read_text_file

log = logging.getLogger(__name__)

ALLOW = "allow"
_CATEGORY = re.compile(r"[a-z][a-z0-9_-]*")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_LANGUAGES: tuple[Language, ...] = ("zh", "en")


@dataclass(frozen=True, slots=True)
class Term:
    """A lexicon entry; `open_start`/`open_end` let a Latin-script term run into a longer word."""

    text: str
    category: str
    language: Language
    open_start: bool = False
    open_end: bool = False

    @property
    def masked(self) -> str:
        """The term with its middle starred ("f**k", "傻*"), safe to show in traces and logs."""
        return mask_term(self.text)


@dataclass(frozen=True, slots=True)
class LexiconMatch:
    term: Term
    start: int
    end: int
    allowed: bool  # inside an allow-listed phrase


def mask_term(term: str) -> str:
    """Keep the first character (and the last, for terms of four or more), star the rest."""
    if len(term) <= 3:
        return term[:1] + "*" * (len(term) - 1)
    return term[0] + "*" * (len(term) - 2) + term[-1]


def _is_word_char(ch: str) -> bool:
    folded = fold(ch)
    return folded.isascii() and folded.isalnum()


class Lexicon:
    """Terms plus allow-listed phrases; the automaton is built on first use (or `compile()`)."""

    def __init__(self, terms: Iterable[Term], allow: Iterable[str] = ()) -> None:
        unique = {(fold(t.text), t.category, t.open_start, t.open_end): t for t in terms}
        self.terms: tuple[Term, ...] = tuple(unique.values())
        self.allow: tuple[str, ...] = tuple(dict.fromkeys(a for a in allow if a))
        self._automaton: AhoCorasick | None = None

    def __len__(self) -> int:
        return len(self.terms)

    def compile(self) -> AhoCorasick:
        if self._automaton is None:
            # One automaton over terms and allow phrases: a single pass finds both.
            self._automaton = AhoCorasick([t.text for t in self.terms] + list(self.allow))
        return self._automaton

    def find(self, text: str) -> list[LexiconMatch]:
        """Every term occurrence in `text` (respecting word boundaries), each marked allowed or not."""
        hits = self.compile().find_all(text)
        n_terms = len(self.terms)
        allowed_spans = [(h.start, h.end) for h in hits if h.pattern >= n_terms]
        matches: list[LexiconMatch] = []
        for hit in hits:
            if hit.pattern >= n_terms:
                continue
            term = self.terms[hit.pattern]
            if not _at_boundaries(text, hit.start, hit.end, term):
                continue
            inside = any(s <= hit.start and hit.end <= e for s, e in allowed_spans)
            matches.append(LexiconMatch(term, hit.start, hit.end, inside))
        return sorted(matches, key=lambda m: (m.start, m.end))

    def blocking(self, text: str) -> list[LexiconMatch]:
        """The matches that no allow-listed phrase excuses."""
        return [m for m in self.find(text) if not m.allowed]


def _at_boundaries(text: str, start: int, end: int, term: Term) -> bool:
    """A Latin-script edge must not continue a word, unless the term was written with "*" there."""
    if not term.open_start and _is_word_char(term.text[0]) and start > 0 and _is_word_char(text[start - 1]):
        return False
    return term.open_end or not _is_word_char(term.text[-1]) or end >= len(text) or not _is_word_char(text[end])


# --- files ---


def default_lexicon_paths() -> list[Path]:
    """The lexicons shipped with kefu (Chinese and English)."""
    data = resources.files("safety") / "data"
    if not isinstance(data, Path):
        raise ProjectError("kefu's safety package data is not on the file system (zip install?)", path=str(data))
    return [data / "lexicon_zh.txt", data / "lexicon_en.txt"]


def load_lexicon(paths: Iterable[str | Path]) -> Lexicon:
    """Read lexicon files in order; a malformed line raises ProjectError naming the file and line."""
    terms: list[Term] = []
    allow: list[str] = []
    for path in map(Path, paths):
        content = read_text_file(path, "lexicon file")
        for lineno, line in enumerate(content.splitlines(), start=1):
            entry = _parse_line(line, str(path), lineno)
            if isinstance(entry, Term):
                terms.append(entry)
            elif entry is not None:
                allow.append(entry)
    return Lexicon(terms, allow)


def _parse_line(line: str, path: str, lineno: int) -> Term | str | None:
    """A Term, an allow-listed phrase, or None for blank and comment lines."""
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return None
    fields = [f.strip() for f in line.split("\t")]
    if len(fields) < 2:
        raise ProjectError(
            "expected 'category<TAB>term' (no tab found; an editor may have turned it into spaces)",
            path=path,
            line=lineno,
        )
    if len(fields) > 3:
        raise ProjectError(
            "too many tab-separated columns; expected 'category<TAB>term[<TAB>zh|en]'", path=path, line=lineno
        )
    category, raw = fields[0], fields[1]
    if category == ALLOW:
        if not raw or len(fields) > 2:
            raise ProjectError("expected 'allow<TAB>phrase'", path=path, line=lineno)
        return raw
    if not _CATEGORY.fullmatch(category):
        raise ProjectError(
            f"bad category {category!r}; use lower-case letters, digits, '_' or '-'", path=path, line=lineno
        )
    return _parse_term(category, raw, fields[2] if len(fields) == 3 and fields[2] else None, path, lineno)


def _parse_term(category: str, raw: str, language: str | None, path: str, lineno: int) -> Term:
    text = raw.strip("*")
    if not text:
        raise ProjectError("empty term", path=path, line=lineno)
    if "*" in text:
        raise ProjectError("'*' is only allowed at the start or end of a term", path=path, line=lineno)
    if language is None:
        language = "zh" if _CJK.search(text) else "en"
    if language not in _LANGUAGES:
        raise ProjectError(f"unknown language {language!r}; use 'zh' or 'en'", path=path, line=lineno)
    lang: Language = "zh" if language == "zh" else "en"
    return Term(text, category, lang, open_start=raw.startswith("*"), open_end=raw.endswith("*"))


# --- the check ---


def _stamps(paths: Sequence[Path]) -> tuple[tuple[int, int] | None, ...]:
    stamps: list[tuple[int, int] | None] = []
    for path in paths:
        try:
            stat = os.stat(path)
            stamps.append((stat.st_mtime_ns, stat.st_size))
        except OSError:
            stamps.append(None)
    return tuple(stamps)


class LexiconCheck:
    """SafetyCheck that blocks text containing a lexicon term outside every allow-listed phrase.

    Built from files (`from_files`), it notices when one changes (checked at most every `poll_s` seconds) and
    reloads it without a restart; a file broken by an edit is logged and the previous lexicon kept.
    """

    name: str = "lexicon"

    def __init__(self, lexicon: Lexicon, *, paths: Sequence[Path] = (), poll_s: float = 2.0) -> None:
        self.lexicon = lexicon
        self.paths = tuple(paths)
        self.poll_s = poll_s
        self._stamps = _stamps(self.paths)
        self._next_poll = time.monotonic() + poll_s
        self._lock = threading.Lock()

    @classmethod
    def default(cls, extra_paths: Iterable[str | Path] = ()) -> LexiconCheck:
        """The shipped lexicons plus a project's own files (read now; the automaton builds in warm_up)."""
        return cls.from_files([*default_lexicon_paths(), *map(Path, extra_paths)])

    @classmethod
    def from_files(cls, paths: Sequence[Path], *, poll_s: float = 2.0) -> LexiconCheck:
        return cls(load_lexicon(paths), paths=paths, poll_s=poll_s)

    def warm_up(self) -> None:
        self.lexicon.compile()

    def reload_if_changed(self) -> bool:
        """Re-read the files if any changed since they were read; True when the lexicon was replaced."""
        with self._lock:
            stamps = _stamps(self.paths)
            if stamps == self._stamps:
                return False
            self._stamps = stamps
            try:
                lexicon = load_lexicon(self.paths)
                lexicon.compile()
            except ProjectError as err:
                log.error("lexicon not reloaded, the previous one stays in use: %s", err)
                return False
            self.lexicon = lexicon
        log.info("lexicon reloaded: %d terms", len(lexicon))
        return True

    def check(
        self, text: str, *, stage: Stage, session: Session | None = None, facts: Sequence[Fact] = ()
    ) -> SafetyVerdict:
        if self.paths and time.monotonic() >= self._next_poll:
            self._next_poll = time.monotonic() + self.poll_s
            self.reload_if_changed()
        blocking = self.lexicon.blocking(text)
        if not blocking:
            return SafetyVerdict(check=self.name, stage=stage, allowed=True)
        by_category: dict[str, list[str]] = {}
        for match in blocking:
            masked = by_category.setdefault(match.term.category, [])
            if match.term.masked not in masked:
                masked.append(match.term.masked)
        reason = "; ".join(f"{category}: {', '.join(terms)}" for category, terms in by_category.items())
        return SafetyVerdict(
            check=self.name,
            stage=stage,
            allowed=False,
            category=blocking[0].term.category,
            reason=f"lexicon term matched ({reason})",
        )
