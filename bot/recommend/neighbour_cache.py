"""The neighbours of one knowledge version, built from the questions' embeddings and cached on disk as JSON
(keyed by a digest of the questions, the graph and the embedder), so a restart does not embed them again."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bot.recommend.catalog import Question, QuestionCatalog, catalog_of
from bot.recommend.neighbours import Key, Neighbour, build_neighbours, item_entities
from bot.types import Language
from knowledge.base import KnowledgeBase

log = logging.getLogger(__name__)

CACHE_FILE = "recommend-neighbours.json"
_FORMAT = 1
_BATCH = 64


@dataclass(frozen=True, slots=True)
class NeighbourIndex:
    version: int  # the knowledge base's version it was built from
    catalog: QuestionCatalog
    neighbours: Mapping[Key, tuple[Neighbour, ...]]

    def starters(self, language: Language) -> list[Question]:
        """FAQ questions of `language` in file order, the first of each tag first: a varied default hot list."""
        faq = [q for q in self.catalog.in_language(language) if not q.id.startswith("kg:")]
        firsts: dict[str, Question] = {}
        for question in faq:
            firsts.setdefault(question.tags[0] if question.tags else question.id, question)
        chosen = list(firsts.values())
        return chosen + [q for q in faq if q not in chosen]


def build_index(knowledge: KnowledgeBase, cache_dir: Path | None) -> NeighbourIndex:
    version, faq, graph = knowledge.version, knowledge.faq, knowledge.graph
    catalog = catalog_of(faq, graph)
    questions = list(catalog)
    digest = _digest(
        questions, [f"{t.subject}|{t.relation}|{t.object}" for t in graph.triples], knowledge.embedder.name
    )
    cache = cache_dir / CACHE_FILE if cache_dir is not None else None
    neighbours = _read(cache, digest) if cache is not None else None
    if neighbours is None:
        started = time.perf_counter()
        vectors = _vectors(knowledge, questions)
        neighbours = build_neighbours(catalog, vectors, item_entities(faq, graph))
        log.info("recommendations: neighbours of %d questions in %.1f s", len(questions), time.perf_counter() - started)
        if cache is not None:
            _write(cache, digest, neighbours)
    return NeighbourIndex(version, catalog, neighbours)


def _vectors(knowledge: KnowledgeBase, questions: list[Question]) -> dict[Key, np.ndarray]:
    texts = [q.text for q in questions]
    parts = [np.asarray(knowledge.embedder.embed_queries(texts[i : i + _BATCH])) for i in range(0, len(texts), _BATCH)]
    if not parts:
        return {}
    matrix = np.vstack(parts).astype(np.float32)
    matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    return {(q.id, q.language): matrix[n] for n, q in enumerate(questions)}


def _digest(questions: list[Question], triples: list[str], embedder: str) -> str:
    state = [embedder, _FORMAT, sorted([q.id, q.language, q.text, list(q.tags)] for q in questions), sorted(triples)]
    return hashlib.sha256(json.dumps(state, ensure_ascii=False).encode("utf-8")).hexdigest()


def _read(path: Path, digest: str) -> dict[Key, tuple[Neighbour, ...]] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("digest") != digest:
            return None
        return {
            (item, language): tuple(Neighbour(str(n), float(s)) for n, s in pairs)
            for item, language, pairs in data["neighbours"]
        }
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as err:
        log.warning("rebuilding the recommendation cache %s: %s", path, err)
        return None


def _write(path: Path, digest: str, neighbours: Mapping[Key, tuple[Neighbour, ...]]) -> None:
    rows = [[item, language, [[n.item, n.score] for n in found]] for (item, language), found in neighbours.items()]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps({"digest": digest, "neighbours": rows}, ensure_ascii=False), encoding="utf-8")
        os.replace(temporary, path)
    except OSError as err:  # a read-only data folder costs a rebuild at the next start, nothing more
        log.warning("could not cache recommendations in %s: %s", path, err)
