"""Prompt leakage: block a reply that reproduces the bot's own instructions or talks about them.

Two ways a reply leaks. It copies a protected text (the generator's system-prompt instructions, the persona):
the reply and every protected text are folded (case, width, invisible characters) and reduced to English
words and Chinese ideographs, punctuation and spacing ignored; a run of `min_words` consecutive words, or
of `min_chars` consecutive ideographs, shared with a protected text blocks the reply. Runs are compared as
rolling hashes (Rabin-Karp shingles), so a check costs O(len(reply)) however much text is protected.
Or it discloses the prompt in its own words: "my system prompt is", "我被设定为".

Short common phrases ("please contact our customer service", "转接人工客服") are far below the run lengths,
so ordinary replies that share them with the instructions pass. A protected text shorter than the run length
protects nothing on its own (it cannot be told apart from ordinary language); register the longer text.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from bot.events import Session
from bot.types import Fact, SafetyVerdict, Stage
from safety.aho_corasick import fold
from safety.injection import compact_view, reveal

CATEGORY = "prompt_leak"
MIN_CHARS = 24
MIN_WORDS = 8

_MOD = (1 << 61) - 1  # a Mersenne prime: collisions among a few thousand shingles are negligible
_BASE = 1_000_003
_IDEOGRAPH = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_WORD = re.compile(r"[^\W_\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")  # letters/digits, not CJK

_DISCLOSURE_EN = re.compile(
    r"\bmy (?:\w+ ){0,2}?(?:system prompt|prompt|instructions|system message|directives|programming) (?:is|are"
    r"|say|says|state|states|read|reads|tell me|include|includes|were|was|specify|specifies)\b"
    r"|\bi (?:was|have been|ve been) (?:instructed|prompted|given instructions) (?:to|not to|that)\b"
    r"|\b(?:here is|here are|here s|below is|below are) (?:my|the) (?:full |complete |exact |original |initial )?"
    r"(?:system prompt|prompt|instructions|system message)\b"
    r"|\b(?:according to|per|as per|based on) my (?:system prompt|instructions|prompt|programming|guidelines"
    r"|system message)\b"
    r"|\bthe system prompt (?:i was given|says|is|reads|states)\b"
)
_DISCLOSURE_ZH = re.compile(
    r"我的(?:系统)?(?:提示词|提示语|系统提示|系统指令|指令|设定|初始指令|人设)(?:是|如下|为|写着|要求|规定|告诉我|包括|内容是|说)"
    r"|我被(?:设定|设置|编程|指示|配置|定义)(?:为|成|了|要|只能|不能|去)"
    r"|(?:根据|按照|依据)我的(?:系统)?(?:提示词|提示语|系统提示|指令|设定|人设)"
    r"|(?:以下|下面)是我的(?:系统)?(?:提示词|提示语|系统提示|指令|设定)"
    r"|系统提示词(?:是|如下|为)"
)


@dataclass(frozen=True, slots=True)
class _Index:
    """Shingle hash -> number of the protected text it came from; replaced whole, never changed in place."""

    words: Mapping[int, int]
    chars: Mapping[int, int]
    texts: int


@dataclass(frozen=True, slots=True)
class LeakMatch:
    """The longest run a reply shares with a protected text."""

    units: int  # words or ideographs in the run
    text: int  # which protected text, 0-based, in registration order
    unit: str  # "words" or "characters"


def _units(text: str) -> tuple[list[int], list[int]]:
    """The text's words (as hashes) and its ideographs (as code points), in order."""
    folded = fold(reveal(text))
    words = [hash(w) % _MOD for w in _WORD.findall(folded)]
    chars = [ord(ch) for ch in _IDEOGRAPH.findall(folded)]
    return words, chars


def shingles(values: Sequence[int], n: int) -> list[int]:
    """Rolling polynomial hash of every run of `n` consecutive values, in order (empty when too short)."""
    if n <= 0 or len(values) < n:
        return []
    top = pow(_BASE, n - 1, _MOD)
    value = 0
    for v in values[:n]:
        value = (value * _BASE + v) % _MOD
    hashes = [value]
    for i in range(n, len(values)):
        value = ((value - values[i - n] * top) * _BASE + values[i]) % _MOD
        hashes.append(value)
    return hashes


def _longest_run(hashes: Sequence[int], index: Mapping[int, int], n: int, unit: str) -> LeakMatch | None:
    """The longest stretch of consecutive shingles found in `index` (a run of k shingles is k + n - 1 units)."""
    best: LeakMatch | None = None
    run = 0
    for h in hashes:
        source = index.get(h)
        run = run + 1 if source is not None else 0
        if source is not None and (best is None or run + n - 1 > best.units):
            best = LeakMatch(run + n - 1, source, unit)
    return best


class PromptLeakCheck:
    """SafetyCheck (output stage) that blocks replies copying a protected text or disclosing the prompt.

    `protected` are the texts that must never reach a customer (the generator's instructions, the persona);
    `add_protected` registers more at run time (rendered templates). Facts are not protected: replies quote
    them on purpose.
    """

    name: str = "prompt_leak"

    def __init__(
        self, protected: Sequence[str] = (), *, min_chars: int = MIN_CHARS, min_words: int = MIN_WORDS
    ) -> None:
        if min_chars < 4 or min_words < 3:
            raise ValueError("min_chars must be at least 4 and min_words at least 3, or ordinary replies would match")
        self.min_chars = min_chars
        self.min_words = min_words
        self._lock = threading.Lock()  # serialises writers; readers take the current index without locking
        self._index = _Index({}, {}, 0)
        self.add_protected(protected)

    @property
    def protected_count(self) -> int:
        return self._index.texts

    def add_protected(self, texts: Iterable[str]) -> None:
        """Protect more texts. Builds a new index beside the current one and swaps the reference, so a check
        running meanwhile sees either the old or the new index, never a half-built one."""
        texts = [t for t in texts if t and t.strip()]
        if not texts:
            return
        with self._lock:
            current = self._index
            words, chars = dict(current.words), dict(current.chars)
            for number, text in enumerate(texts, start=current.texts):
                text_words, text_chars = _units(text)
                for h in shingles(text_words, self.min_words):
                    words.setdefault(h, number)
                for h in shingles(text_chars, self.min_chars):
                    chars.setdefault(h, number)
            self._index = _Index(words, chars, current.texts + len(texts))

    def warm_up(self) -> None:
        """Nothing to load: the index is built as texts are registered."""

    def find_copy(self, text: str) -> LeakMatch | None:
        """The longest run `text` shares with a protected text, when one is long enough to count."""
        index = self._index
        if not index.words and not index.chars:
            return None
        words, chars = _units(text)
        found = [
            _longest_run(shingles(words, self.min_words), index.words, self.min_words, "words"),
            _longest_run(shingles(chars, self.min_chars), index.chars, self.min_chars, "characters"),
        ]
        return max((f for f in found if f is not None), key=lambda f: f.units, default=None)

    def check(
        self, text: str, *, stage: Stage, session: Session | None = None, facts: Sequence[Fact] = ()
    ) -> SafetyVerdict:
        if stage != "output" or not text.strip():
            return SafetyVerdict(check=self.name, stage=stage, allowed=True)
        copy = self.find_copy(text)
        if copy is not None:
            reason = f"{CATEGORY}: repeats {copy.units} consecutive {copy.unit} of protected text {copy.text + 1}"
            return SafetyVerdict(check=self.name, stage=stage, allowed=False, category=CATEGORY, reason=reason)
        if _discloses(text):
            reason = f"{CATEGORY}: talks about its own instructions"
            return SafetyVerdict(check=self.name, stage=stage, allowed=False, category=CATEGORY, reason=reason)
        return SafetyVerdict(check=self.name, stage=stage, allowed=True)


def _discloses(text: str) -> bool:
    words = " ".join(_WORD.findall(fold(reveal(text))))
    return bool(_DISCLOSURE_EN.search(words) or _DISCLOSURE_ZH.search(compact_view(text)))
