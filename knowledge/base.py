"""The project's knowledge as one `Retriever`: graph answers, FAQ entries and document passages.

Everything is read from the project's `knowledge/` folder into an immutable snapshot; `reload` builds a
new snapshot (embedding only what changed) while the old one keeps answering, then swaps them. That is
what lets a knowledge update take effect without retraining or restarting anything.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bot.protocols import Embedder
from bot.types import Entity, Fact, Language
from knowledge.bm25 import search_tokens
from knowledge.documents import DocChunk, contextual_text, load_documents
from knowledge.faq import FaqEntry, load_faq_folder
from knowledge.graph import KnowledgeGraph, load_graph
from knowledge.hybrid import Hit, HybridIndex, SyncReport, Unit
from knowledge.problems import Problem

log = logging.getLogger(__name__)

DOCS_FOLDER = "docs"
SOURCES = ("kg", "faq", "doc")


@dataclass(frozen=True, slots=True)
class KnowledgeOptions:
    exact_threshold: float = 0.92  # FAQ similarity from which the best entry's answer is used as written
    chunk_chars: int = 400


@dataclass(frozen=True, slots=True)
class IndexReport:
    """What a (re)load found and did."""

    faq_entries: int
    doc_chunks: int
    triples: int
    faq: SyncReport
    docs: SyncReport
    problems: tuple[Problem, ...]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "faq_entries": self.faq_entries,
            "doc_chunks": self.doc_chunks,
            "triples": self.triples,
            "faq": asdict(self.faq),
            "docs": asdict(self.docs),
            "skipped": [str(problem) for problem in self.problems],
            "seconds": round(self.seconds, 3),
        }

    def summary(self) -> str:
        """One line for the terminal."""
        changed = self.faq.added + self.faq.removed + self.docs.added + self.docs.removed
        return (
            f"{self.faq_entries} FAQ entries, {self.doc_chunks} document passages, {self.triples} graph triples; "
            f"{changed} texts re-indexed in {self.seconds:.1f}s; {len(self.problems)} skipped"
        )


@dataclass(frozen=True, slots=True)
class _Snapshot:
    graph: KnowledgeGraph
    faq: Mapping[str, FaqEntry]
    chunks: Mapping[str, DocChunk]
    faq_index: HybridIndex
    doc_index: HybridIndex
    faq_catalog: _Catalog
    doc_catalog: _Catalog


class KnowledgeBase:
    """A `Retriever` over a project's knowledge folder, reloadable while serving."""

    def __init__(
        self,
        folder: Path,
        embedder: Embedder,
        *,
        index_dir: Path | None = None,
        options: KnowledgeOptions = KnowledgeOptions(),
    ) -> None:
        self.folder = folder
        self.embedder = embedder
        self.index_dir = index_dir
        self.options = options
        self._snapshot: _Snapshot | None = None
        self._reloading = threading.Lock()
        self.problems: tuple[Problem, ...] = ()
        self._reloads = 0

    def warm_up(self) -> None:
        """Load the knowledge (embedding what the saved indexes lack); later calls do nothing."""
        if self._snapshot is None:
            self.reload()

    def reload(self, *, progress: bool = False) -> IndexReport:
        """Read the folder again and swap in the result; one reload at a time, searches carry on meanwhile."""
        with self._reloading:
            started = time.perf_counter()
            problems: list[Problem] = []
            graph = load_graph(self.folder, problems)
            faq = {entry.id: entry for entry in load_faq_folder(self.folder, problems)}
            chunks = load_documents(self.folder / DOCS_FOLDER, problems, max_chars=self.options.chunk_chars)
            faq_index = self._index("faq", self.embedder.embed_queries)
            doc_index = self._index("docs", self.embedder.embed_passages)
            faq_report = faq_index.sync(_faq_units(faq.values()), progress=progress)
            doc_report = doc_index.sync([Unit(c.id, c.id, contextual_text(c)) for c in chunks], progress=progress)
            self._snapshot = _Snapshot(
                graph, faq, {c.id: c for c in chunks}, faq_index, doc_index,
                _Catalog([(e.id, e.lang, e.tags, e.tags) for e in faq.values()]),
                _Catalog([(c.id, c.lang, c.tags, (c.product,)) for c in chunks]),
            )  # fmt: skip
            self.problems = tuple(problems)
            self._reloads += 1
            for problem in problems:
                log.warning("skipped in the knowledge folder: %s", problem)
            return IndexReport(
                len(faq), len(chunks), len(graph.triples), faq_report, doc_report, tuple(problems),
                time.perf_counter() - started,
            )  # fmt: skip

    def _index(self, name: str, embed: Callable[[list[str]], np.ndarray]) -> HybridIndex:
        directory = self.index_dir / name if self.index_dir is not None else None
        return HybridIndex(embed, self.embedder.dim, self.embedder.name, directory)

    @property
    def graph(self) -> KnowledgeGraph:
        return self._current().graph

    @property
    def faq(self) -> Mapping[str, FaqEntry]:
        """The FAQ entries by id, as the current snapshot holds them."""
        return self._current().faq

    @property
    def version(self) -> int:
        """Changes with every reload, so derived data (recommendations) knows when to rebuild."""
        self._current()
        return self._reloads

    def inline(self, query: str) -> bool:
        """Whether retrieving `query` is cheap and free of I/O, so a turn may run it on the event loop: the
        embedder is a table lookup, or has the query's embedding cached (the NLU embedded the same text)."""
        embedder = self.embedder
        if getattr(embedder, "inline", False):
            return True
        cached = getattr(embedder, "cached", None)
        return bool(cached(query)) if callable(cached) else False

    def retrieve(
        self,
        query: str,
        *,
        entities: Sequence[Entity] = (),
        top_k: int = 5,
        filters: Mapping[str, str] | None = None,
        language: Language | None = None,
    ) -> list[Fact]:
        """Up to `top_k` facts: graph answers first, then FAQ entries and passages by fused rank.

        Filters: `source` (kg, faq or doc; "faq|doc" for either), `tag` ("a|b": either), `product` (a
        passage's product, or an FAQ entry tagged with it). Entries and passages in `language` are preferred:
        when any passes the filters, only those are returned. Only the first FAQ hit can be `exact`.
        """
        snapshot = self._current()
        sources = set(filters["source"].split("|")) if filters and filters.get("source") else set(SOURCES)
        if top_k <= 0 or not query.strip():
            return []
        facts = snapshot.graph.answer(query, language, entities) if "kg" in sources else []
        facts = sorted(facts, key=lambda fact: not fact.exact)[:top_k]
        room = top_k - len(facts)
        faq_ids = snapshot.faq_catalog.allowed(filters, language) if "faq" in sources else frozenset()
        doc_ids = snapshot.doc_catalog.allowed(filters, language) if "doc" in sources else frozenset()
        if room <= 0 or not (faq_ids or doc_ids):  # nothing to search: spare the embedding (~10 ms)
            return facts
        vector = np.asarray(self.embedder.embed_queries([query]), dtype=np.float32)
        tokens = search_tokens(query)  # once for both collections: segmenting is most of a keyword search
        found: list[tuple[float, Fact]] = []
        if faq_ids:
            hits = snapshot.faq_index.search(query, vector, room, allowed=faq_ids.__contains__, tokens=tokens)
            found += [(h.score, self._faq_fact(snapshot.faq[h.owner], h, rank == 0)) for rank, h in enumerate(hits)]
        if doc_ids:
            hits = snapshot.doc_index.search(query, vector, room, allowed=doc_ids.__contains__, tokens=tokens)
            found += [(hit.score, _doc_fact(snapshot.chunks[hit.owner], hit)) for hit in hits]
        found.sort(key=lambda pair: (not pair[1].exact, -pair[0]))
        return [*facts, *(fact for _, fact in found[:room])]

    def lookup(self, ids: Iterable[str], language: Language | None = None) -> list[Fact]:
        """The facts with these ids as the current knowledge states them (score 1); unknown ids are left out."""
        snapshot = self._current()
        found: list[Fact] = []
        for fact_id in ids:
            if fact_id.startswith("kg:"):
                fact = snapshot.graph.fact(fact_id, language or "zh")
            elif fact_id in snapshot.faq:
                fact = self._faq_fact(snapshot.faq[fact_id], None, False)
            elif fact_id in snapshot.chunks:
                fact = _doc_fact(snapshot.chunks[fact_id], None)
            else:
                fact = None
            if fact is not None:
                found.append(fact)
        return found

    def _faq_fact(self, entry: FaqEntry, hit: Hit | None, first: bool) -> Fact:
        return Fact(
            id=entry.id,
            text=entry.answer,
            source="faq",
            score=hit.similarity if hit else 1.0,
            citation=f"faq:{entry.id}",
            language=entry.lang,
            exact=hit is not None and first and hit.similarity >= self.options.exact_threshold,
            title=entry.question,
        )

    def _current(self) -> _Snapshot:
        if self._snapshot is None:
            self.warm_up()
        assert self._snapshot is not None
        return self._snapshot


def _faq_units(entries: Iterable[FaqEntry]) -> list[Unit]:
    return [
        Unit(f"{entry.id}#{n}", entry.id, question) for entry in entries for n, question in enumerate(entry.questions)
    ]


def _doc_fact(chunk: DocChunk, hit: Hit | None) -> Fact:
    return Fact(
        id=chunk.id,
        text=chunk.text,
        source="doc",
        score=hit.similarity if hit else 1.0,
        citation=chunk.citation,
        language=chunk.lang,
        title=chunk.citation.rsplit(" › ", 1)[-1],
    )


class _Catalog:
    """Ids of a collection grouped by language, tag and product, so filtering a query costs set operations."""

    def __init__(self, items: Sequence[tuple[str, Language, Sequence[str], Sequence[str]]]) -> None:
        self.all = frozenset(key for key, _, _, _ in items)
        self.by_language = _group((key, (lang,)) for key, lang, _, _ in items)
        self.by_tag = _group((key, tags) for key, _, tags, _ in items)
        self.by_product = _group((key, products) for key, _, _, products in items)

    def allowed(self, filters: Mapping[str, str] | None, language: Language | None) -> frozenset[str]:
        """Ids passing the filters; only those in `language` when there are any."""
        passing = self.all
        for name, groups in (("tag", self.by_tag), ("product", self.by_product)):
            wanted = filters.get(name) if filters else None
            if wanted:
                passing = passing & frozenset().union(*(groups.get(value, ()) for value in wanted.split("|")))
        in_language = passing & self.by_language.get(language or "", frozenset())
        return in_language or passing


def _group(pairs: Iterable[tuple[str, Sequence[str]]]) -> dict[str, frozenset[str]]:
    groups: dict[str, set[str]] = {}
    for key, values in pairs:
        for value in values:
            groups.setdefault(value, set()).add(key)
    return {value: frozenset(keys) for value, keys in groups.items()}
