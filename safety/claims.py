"""Claims a reply makes that the facts contradict: the same statement with the opposite polarity.

"The X1 supports wireless charging" against the fact "the X1 has no wireless charging" shares every content
word and differs only in a negation. Each clause of the reply is aligned with the fact clause it shares the
most content with (token F1); when that clause says the opposite, and no equally close clause agrees, the
claim is contradicted. Lexical, so it works in either language but not across them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from safety.aho_corasick import fold

MIN_ALIGNMENT = 0.5  # token F1 of a reply clause and a fact clause for them to talk about the same thing
_TIE = 0.1
Names = Callable[[str], frozenset[str]]

_CLAUSES = re.compile(r"[。！？!?；;，,、\n]+|(?<=[a-z0-9])\.(?:\s+|$)|\s+(?:but|and|while|whereas)\s+")
_LATIN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_CJK_RUN = re.compile(r"[\u3400-\u9fff]+")
_EN_NEGATION = re.compile(r"\b(?:not|no|never|none|nor|cannot|without)\b|n't\b")
# Chinese negators, minus the words that only look like one: 不错 (good), 无线 (wireless), 非常 (very)...
_ZH_NEGATION = re.compile(
    r"不(?![错客过同久少仅断论管但如然得])|没有?|无(?![线论限])|未(?!来)|非(?![常洲])|(?<![区分特类级性告识鉴])别(?![的人])"
)
_STOP = frozenset({
    "a", "an", "the", "is", "are", "was", "were", "be", "been", "it", "its", "this", "that", "these", "those",
    "to", "of", "in", "on", "at", "for", "with", "by", "from", "as", "or", "and", "you", "your", "we", "our",
    "us", "i", "my", "me", "can", "could", "will", "would", "should", "do", "does", "did", "has", "have",
    "had", "any", "all", "some", "please", "yes", "also", "just", "only", "there", "here", "which", "what",
    "who", "how"
})  # fmt: skip
_NEGATION_WORDS = frozenset({"not", "no", "never", "none", "nor", "cannot", "without"})


@dataclass(frozen=True, slots=True)
class _Clause:
    text: str
    tokens: frozenset[str]
    negated: bool
    about: frozenset[str]


def _clauses(text: str, names: Names | None) -> list[_Clause]:
    clauses = []
    about: frozenset[str] = frozenset()
    for piece in _CLAUSES.split(fold(text)):
        tokens = _tokens(piece)
        if tokens:
            negated = bool(_EN_NEGATION.search(piece) or _ZH_NEGATION.search(piece))
            about = (names(piece) if names is not None else frozenset()) or about
            clauses.append(_Clause(piece.strip(), tokens, negated, about))
    return clauses


def _tokens(text: str) -> frozenset[str]:
    """Latin content words and Chinese character bigrams, negators left out so polarity does not count."""
    words = {w.removesuffix("n't") for w in _LATIN.findall(text)} - _STOP - _NEGATION_WORDS
    for run in _CJK_RUN.findall(_ZH_NEGATION.sub(" ", text)):
        words.update(run[i : i + 2] for i in range(max(1, len(run) - 1)))
    return frozenset(w for w in words if w)


def _f1(a: frozenset[str], b: frozenset[str]) -> float:
    shared = len(a & b)
    return 0.0 if shared < 2 else 2 * shared / (len(a) + len(b))


def contradictions(reply: str, facts: Sequence[str], names: Names | None = None) -> list[str]:
    """The reply's clauses whose closest fact clause states the opposite."""
    fact_clauses = [clause for fact in facts for clause in _clauses(fact, names)]
    found: list[str] = []
    for claim in _clauses(reply, names):
        if len(claim.tokens) < 2:
            continue
        comparable = [f for f in fact_clauses if not claim.about or not f.about or claim.about & f.about]
        scored = [(_f1(claim.tokens, fact.tokens), fact) for fact in comparable]
        best = max((score for score, _ in scored), default=0.0)
        if best < MIN_ALIGNMENT:
            continue
        closest = [fact for score, fact in scored if score >= best - _TIE]
        if all(fact.negated != claim.negated for fact in closest):
            found.append(claim.text)
    return found
