"""Retrieval evaluation: recall@1, recall@5 and MRR of a `Retriever` on labelled queries.

The queries file is a CSV with columns `query,expected,lang`. `expected` names the fact that should come
back: an FAQ id, `subject|relation` for a graph answer (`subject|relation|relation` for two hops), a
passage id `doc:path#n`, or `doc:path` for any passage of that document.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.errors import ProjectError
from bot.protocols import Retriever
from bot.types import Fact, Language
from knowledge.problems import Problem
from knowledge.tables import read_table

DEPTH = 10  # facts asked for per query: MRR counts a hit down to this rank
MAX_MISSES = 50


@dataclass(frozen=True, slots=True)
class LabelledQuery:
    query: str
    expected: str
    lang: Language | None
    line: int


@dataclass(frozen=True, slots=True)
class Miss:
    """A query whose expected fact was not first, with what came back instead."""

    query: str
    expected: str
    rank: int | None  # 1-based rank of the expected fact, None when it was not retrieved at all
    got: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Scores:
    n: int
    recall_at_1: float
    recall_at_5: float
    mrr: float

    @classmethod
    def of(cls, ranks: Sequence[int | None]) -> Scores:
        n = len(ranks)
        if not n:
            return cls(0, 0.0, 0.0, 0.0)
        hits = [rank for rank in ranks if rank is not None]
        return cls(
            n,
            sum(rank <= 1 for rank in hits) / n,
            sum(rank <= 5 for rank in hits) / n,
            sum(1 / rank for rank in hits) / n,
        )


@dataclass(frozen=True, slots=True)
class KnowledgeEvaluation:
    overall: Scores
    per_language: dict[str, Scores]
    misses: tuple[Miss, ...] = ()
    problems: tuple[Problem, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "n_queries": self.overall.n,
            "recall_at_1": self.overall.recall_at_1,
            "recall_at_5": self.overall.recall_at_5,
            "mrr": self.overall.mrr,
            "per_language": {lang: _scores_json(scores) for lang, scores in sorted(self.per_language.items())},
            "misses": [
                {"query": m.query, "expected": m.expected, "rank": m.rank, "got": list(m.got)}
                for m in self.misses[:MAX_MISSES]
            ],
            "skipped_rows": [str(problem) for problem in self.problems],
        }


def load_queries(path: Path, problems: list[Problem]) -> list[LabelledQuery]:
    """The labelled queries of a CSV file; rows without a query or an expected id are reported and skipped."""
    if not path.is_file():
        raise ProjectError("no such queries file; write a CSV with the header query,expected,lang", path=str(path))
    queries = []
    for row in read_table(path, required=("query", "expected"), optional=("lang",), problems=problems):
        query, expected, lang = row.get("query"), row.get("expected"), row.get("lang").lower()[:2]
        if not query or not expected:
            problems.append(Problem(str(path), row.line, "a row needs both a query and an expected id"))
            continue
        if lang not in ("", "zh", "en"):
            problems.append(Problem(str(path), row.line, f"unknown lang {row.get('lang')!r}; use zh or en"))
            continue
        queries.append(LabelledQuery(query, expected, lang or None, row.line))  # type: ignore[arg-type]
    return queries


def evaluate(retriever: Retriever, queries: Sequence[LabelledQuery]) -> KnowledgeEvaluation:
    """Ask `retriever` every query and score where the expected fact came back."""
    ranks: list[int | None] = []
    by_language: dict[str, list[int | None]] = defaultdict(list)
    misses = []
    for item in queries:
        facts = retriever.retrieve(item.query, top_k=DEPTH, language=item.lang)
        rank = next((i for i, fact in enumerate(facts, 1) if fact_matches(fact, item.expected)), None)
        ranks.append(rank)
        by_language[item.lang or "any"].append(rank)
        if rank != 1:
            misses.append(Miss(item.query, item.expected, rank, tuple(fact.id for fact in facts[:3])))
    per_language = {lang: Scores.of(found) for lang, found in by_language.items()}
    return KnowledgeEvaluation(Scores.of(ranks), per_language, tuple(misses))


def fact_matches(fact: Fact, expected: str) -> bool:
    """Whether `fact` is the one `expected` names (see the module docstring for the forms)."""
    if fact.id == expected or (fact.source == "kg" and fact.id == f"kg:{expected}"):
        return True
    return fact.source == "doc" and expected.startswith("doc:") and fact.id.startswith(f"{expected}#")


def format_evaluation(evaluation: KnowledgeEvaluation) -> str:
    """A short table for the terminal."""
    lines = [f"{'':8} {'queries':>8} {'recall@1':>9} {'recall@5':>9} {'MRR':>6}"]
    rows = [("all", evaluation.overall), *sorted(evaluation.per_language.items())]
    for name, scores in rows:
        lines.append(f"{name:8} {scores.n:8d} {scores.recall_at_1:9.3f} {scores.recall_at_5:9.3f} {scores.mrr:6.3f}")
    if evaluation.misses:
        lines.append("\nnot first (expected -> rank; top 3 retrieved):")
        for miss in evaluation.misses[:20]:
            rank = "missing" if miss.rank is None else f"rank {miss.rank}"
            lines.append(f"  {miss.query!r}: {miss.expected} -> {rank}; {', '.join(miss.got) or 'nothing'}")
    lines.extend(f"skipped: {problem}" for problem in evaluation.problems)
    return "\n".join(lines)


def _scores_json(scores: Scores) -> dict[str, float | int]:
    return {"n": scores.n, "recall_at_1": scores.recall_at_1, "recall_at_5": scores.recall_at_5, "mrr": scores.mrr}
