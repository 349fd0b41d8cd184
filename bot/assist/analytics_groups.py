"""Unanswered questions grouped by meaning: each group a candidate for a new FAQ entry.

Greedy leader clustering: the distinct questions, most asked first, each join the most similar group leader
at or above the threshold, or lead a new group. Similarity is the cosine of normalised embeddings when an
`embed` function is given, else of TF-IDF weighted character features that need no model and no word
segmentation: Chinese characters and character bigrams, English words (function words of both languages
left out, so "发票怎么开" and "能开发票吗" meet on 开, 发票). A group is shown by its medoid, the member
closest to all the others.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

Embed = Callable[[list[str]], np.ndarray]

EMBED_THRESHOLD = 0.85
LEXICAL_THRESHOLD = 0.5  # TF-IDF cosines of paraphrases run lower than embedding cosines
MAX_QUESTIONS = 20_000  # distinct questions clustered, the most asked; the rest are the long tail
MEDOID_POOL = 200  # the medoid is sought among a group's most asked members (quadratic in their number)
EXAMPLES = 5

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_WORD = re.compile(r"[a-z0-9]+")
# How people ask rather than what about; removed before comparing (longest first, so 怎么样 beats 怎么).
_ZH_FUNCTION = re.compile(
    "请问|怎么样|怎么|怎样|如何|什么|可不可以|可以|能不能|能否|是不是|有没有|一下|我们|你们|您好|你好|谢谢"
    "|[吗呢吧啊呀哦的了么能我你您是想要请帮给]"
)
_EN_FUNCTION_WORDS = (
    "a an the i you me my your we our us is are am be was were do does did can could would will should may "
    "how what where when which who why to of for in on at by it its this that these those please pls hi hello "
    "hey there get got have has had with and or any some want need like know tell help thanks thank just"
)
_EN_FUNCTION = frozenset(_EN_FUNCTION_WORDS.split())
_UNIGRAM_WEIGHT = 0.5  # a shared character says less than a shared bigram


@dataclass(frozen=True, slots=True)
class Question:
    """One unanswered user message (already masked) and its language."""

    text: str
    language: str


@dataclass(frozen=True, slots=True)
class QuestionGroup:
    """Questions that mean the same: the medoid as `question`, how often any was asked, the most asked ones."""

    question: str
    count: int
    examples: tuple[str, ...]
    language: str

    def to_json(self) -> dict[str, object]:
        return {
            "question": self.question,
            "count": self.count,
            "examples": list(self.examples),
            "language": self.language,
        }


@dataclass(frozen=True, slots=True)
class _Distinct:
    text: str  # the most frequent spelling of the normalised text
    count: int
    languages: Counter[str]


def group_questions(
    questions: Sequence[Question], *, embed: Embed | None = None, threshold: float | None = None
) -> tuple[QuestionGroup, ...]:
    """The questions grouped by meaning, largest group first."""
    distinct = _distinct(questions)
    if not distinct:
        return ()
    texts = [d.text for d in distinct]
    space: _Space = _Dense(texts, embed) if embed is not None else _Lexical(texts)
    limit = threshold if threshold is not None else (EMBED_THRESHOLD if embed is not None else LEXICAL_THRESHOLD)
    groups = [_group(members, distinct, space) for members in space.leader_groups(limit)]
    return tuple(sorted(groups, key=lambda g: (-g.count, g.question)))


def normalised(text: str) -> str:
    """The form under which two messages count as the same question: NFKC, lower case, no punctuation."""
    folded = unicodedata.normalize("NFKC", text).lower()
    kept = "".join(c if c.isalnum() or c.isspace() else " " for c in folded)
    return " ".join(kept.split())


def _distinct(questions: Sequence[Question]) -> list[_Distinct]:
    spellings: dict[str, Counter[str]] = defaultdict(Counter)
    languages: dict[str, Counter[str]] = defaultdict(Counter)
    for question in questions:
        key = normalised(question.text)
        if key:
            spellings[key][question.text.strip()] += 1
            languages[key][question.language] += 1
    found = [_Distinct(s.most_common(1)[0][0], s.total(), languages[k]) for k, s in spellings.items()]
    found.sort(key=lambda d: (-d.count, d.text))  # the most asked phrasing leads its group
    return found[:MAX_QUESTIONS]


def _group(members: list[int], distinct: list[_Distinct], space: _Space) -> QuestionGroup:
    pool = members[:MEDOID_POOL]  # already most asked first
    weights = np.array([distinct[i].count for i in pool], dtype=np.float64)
    centrality = space.pairwise(pool) @ weights
    medoid = pool[int(np.argmax(centrality))]  # argmax takes the first of equals: the most asked
    languages: Counter[str] = Counter()
    for i in members:
        languages.update(distinct[i].languages)
    return QuestionGroup(
        question=distinct[medoid].text,
        count=sum(distinct[i].count for i in members),
        examples=tuple(distinct[i].text for i in members[:EXAMPLES]),
        language=languages.most_common(1)[0][0],
    )


class _Space:
    """Questions as vectors: groups by the leader rule, and similarities within a group."""

    def leader_groups(self, threshold: float) -> list[list[int]]:
        raise NotImplementedError

    def pairwise(self, indices: list[int]) -> np.ndarray:
        raise NotImplementedError


class _Dense(_Space):
    def __init__(self, texts: list[str], embed: Embed) -> None:
        vectors = np.asarray(embed(texts), dtype=np.float64)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        self._vectors = vectors / np.where(norms > 0, norms, 1.0)

    def leader_groups(self, threshold: float) -> list[list[int]]:
        groups: list[list[int]] = []
        leaders = np.empty((0, self._vectors.shape[1]))
        for i, vector in enumerate(self._vectors):
            scores = leaders @ vector
            best = int(np.argmax(scores)) if len(scores) else -1
            if best >= 0 and scores[best] >= threshold:
                groups[best].append(i)
            else:
                groups.append([i])
                leaders = np.vstack([leaders, vector])
        return groups

    def pairwise(self, indices: list[int]) -> np.ndarray:
        chosen = self._vectors[indices]
        return np.asarray(chosen @ chosen.T)


class _Lexical(_Space):
    def __init__(self, texts: list[str]) -> None:
        counts = [_features(t) for t in texts]
        documents = Counter(f for c in counts for f in c)
        n = len(texts)
        idf = {f: math.log((1 + n) / (1 + df)) + 1 for f, df in documents.items()}
        self._vectors = [_unit({f: w * idf[f] for f, w in c.items()}) for c in counts]

    def leader_groups(self, threshold: float) -> list[list[int]]:
        # an inverted index of the leaders' features: a question is compared only with leaders it shares one with
        index: dict[str, list[tuple[int, float]]] = defaultdict(list)
        groups: list[list[int]] = []
        for i, vector in enumerate(self._vectors):
            scores: dict[int, float] = defaultdict(float)
            for feature, weight in vector.items():
                for group, leader_weight in index.get(feature, ()):
                    scores[group] += weight * leader_weight
            best = max(scores, key=lambda g: scores[g], default=-1)
            if best >= 0 and scores[best] >= threshold:
                groups[best].append(i)
                continue
            for feature, weight in vector.items():
                index[feature].append((len(groups), weight))
            groups.append([i])
        return groups

    def pairwise(self, indices: list[int]) -> np.ndarray:
        vectors = [self._vectors[i] for i in indices]
        return np.array([[_dot(a, b) for b in vectors] for a in vectors], dtype=np.float64)


def _features(text: str) -> dict[str, float]:
    """Weighted features of the content words; of the whole text when it is nothing but function words."""
    folded = normalised(text)
    found = _content_features(folded, strip=True)
    return found or _content_features(folded, strip=False)


def _content_features(folded: str, *, strip: bool) -> dict[str, float]:
    found: dict[str, float] = defaultdict(float)
    for run in _HAN.findall(folded):
        # a removed function word leaves a gap, so no bigram spans it
        for piece in _ZH_FUNCTION.split(run) if strip else [run]:
            for char in piece:
                found[char] += _UNIGRAM_WEIGHT
            for k in range(len(piece) - 1):
                found[piece[k : k + 2]] += 1.0
    for word in _WORD.findall(folded):
        if not (strip and word in _EN_FUNCTION):
            found["w:" + _stem(word)] += 1.0
    return dict(found)


def _stem(word: str) -> str:
    # plural and third person only: enough to meet "invoices" with "invoice", too little to merge meanings
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _unit(vector: dict[str, float]) -> dict[str, float]:
    norm = math.sqrt(sum(w * w for w in vector.values()))
    return {f: w / norm for f, w in vector.items()} if norm > 0 else {}


def _dot(a: dict[str, float], b: dict[str, float]) -> float:
    small, large = (a, b) if len(a) <= len(b) else (b, a)
    return sum(w * large.get(f, 0.0) for f, w in small.items())
