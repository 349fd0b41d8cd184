"""Related questions, precomputed once per knowledge version: semantic neighbours (cosine of the questions'
embeddings), neighbours in the knowledge graph (the same or a linked entity) and shared FAQ tags, blended into
one static score per pair. A turn then only looks its answer's neighbours up."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from bot.recommend.catalog import Question, QuestionCatalog
from bot.types import Language
from knowledge.faq import FaqEntry
from knowledge.graph import KnowledgeGraph

KEPT = 12  # neighbours kept per question: more than are ever shown, so learning can reorder them
WEIGHTS = {"similar": 0.6, "graph": 0.25, "tags": 0.15}
_BLOCK = 1024  # rows of the similarity matrix computed at once (bounded memory for large FAQs)


@dataclass(frozen=True, slots=True)
class Neighbour:
    item: str
    score: float


Key = tuple[str, Language]
Neighbours = Mapping[Key, tuple[Neighbour, ...]]


def build_neighbours(
    catalog: QuestionCatalog,
    vectors: Mapping[Key, np.ndarray],
    entities: Mapping[str, frozenset[str]],
    *,
    kept: int = KEPT,
) -> dict[Key, tuple[Neighbour, ...]]:
    """Each question's best `kept` neighbours in its language. `vectors` are the questions' unit embeddings,
    `entities` the knowledge-graph entities each item is about (with their one-hop neighbours)."""
    found: dict[Key, tuple[Neighbour, ...]] = {}
    for language in ("zh", "en"):
        questions = catalog.in_language(language)
        similar = _similar(questions, vectors, kept * 2)
        about = _Sharing({q.id: entities.get(q.id, frozenset()) for q in questions})
        tagged = _Sharing({q.id: frozenset(q.tags) for q in questions})
        for question in questions:
            scores: dict[str, float] = {}
            for kind, pairs in (
                ("similar", similar.get(question.id, [])),
                ("graph", _graph(question.id, about)),
                ("tags", tagged.overlaps(question.id)),
            ):
                for item, score in pairs:
                    scores[item] = scores.get(item, 0.0) + WEIGHTS[kind] * score
            scores.pop(question.id, None)
            best = sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))[:kept]
            found[(question.id, language)] = tuple(Neighbour(item, round(score, 4)) for item, score in best)
    return found


class _Sharing:
    """Items with sets of labels (entities, tags), indexed by label, so overlaps cost what they share."""

    def __init__(self, labels: Mapping[str, frozenset[str]]) -> None:
        self.labels = labels
        self._items: dict[str, list[str]] = {}
        for item, names in labels.items():
            for name in names:
                self._items.setdefault(name, []).append(item)

    def overlaps(self, item: str) -> list[tuple[str, float]]:
        """Every other item sharing a label with `item`, with the Jaccard overlap of their labels."""
        mine = self.labels.get(item, frozenset())
        others = {other for name in mine for other in self._items[name] if other != item}
        return [(other, len(mine & self.labels[other]) / len(mine | self.labels[other])) for other in others]


def _similar(
    questions: Sequence[Question], vectors: Mapping[Key, np.ndarray], k: int
) -> dict[str, list[tuple[str, float]]]:
    """Each question's `k` nearest questions by cosine, computed a block of rows at a time."""
    usable = [q for q in questions if (q.id, q.language) in vectors]
    if len(usable) < 2:
        return {}
    matrix = np.stack([vectors[(q.id, q.language)] for q in usable]).astype(np.float32)
    k = min(k, len(usable) - 1)
    found: dict[str, list[tuple[str, float]]] = {}
    for start in range(0, len(usable), _BLOCK):
        sims = matrix[start : start + _BLOCK] @ matrix.T
        for row, question in enumerate(usable[start : start + _BLOCK]):
            sims[row, start + row] = -1.0
            best = np.argpartition(-sims[row], k - 1)[:k]
            found[question.id] = [(usable[j].id, max(0.0, float(sims[row, j]))) for j in best]
    return found


def _graph(item: str, about: _Sharing) -> list[tuple[str, float]]:
    """Questions about the same entities (Jaccard overlap); another attribute of the same entity counts fully."""
    subject = _subject(item)
    return [(other, 1.0 if subject and _subject(other) == subject else score) for other, score in about.overlaps(item)]


def _subject(item: str) -> str:
    """The entity of a knowledge-graph question `kg:S|r`; empty for an FAQ entry."""
    return item.removeprefix("kg:").split("|")[0] if item.startswith("kg:") else ""


def item_entities(faq: Mapping[str, FaqEntry], graph: KnowledgeGraph) -> dict[str, frozenset[str]]:
    """The entities each item is about: those an FAQ entry names, or a graph question's subject, each with the
    entities one triple away."""
    adjacent: dict[str, set[str]] = {}
    for triple in graph.triples:
        if triple.object in graph.entities:
            adjacent.setdefault(triple.subject, set()).add(triple.object)
            adjacent.setdefault(triple.object, set()).add(triple.subject)
    direct: dict[str, set[str]] = {
        entry.id: {link.entity_id for link in graph.link(f"{entry.question}\n{entry.answer}")} for entry in faq.values()
    }
    for triple in graph.triples:
        direct.setdefault(f"kg:{triple.subject}|{triple.relation}", {triple.subject})
    return {
        item: frozenset(names.union(*(adjacent.get(name, set()) for name in names)))
        for item, names in direct.items()
        if names
    }
