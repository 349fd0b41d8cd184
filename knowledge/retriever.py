"""The project's knowledge as one `Retriever`: knowledge-graph answers first, then FAQ hits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from bot.errors import ProjectError
from bot.protocols import Embedder
from bot.types import Entity, Fact, Language
from knowledge.faq import load_faq_folder
from knowledge.faq_retriever import FaqRetriever
from knowledge.graph import KnowledgeGraph, load_graph
from knowledge.problems import Problem


class KnowledgeRetriever:
    """Combines a `KnowledgeGraph` (exact, template-rendered answers) and a `FaqRetriever`.

    Graph facts come first; FAQ facts fill the remaining `top_k` places. Either part may be empty.
    """

    def __init__(self, graph: KnowledgeGraph, faq: FaqRetriever) -> None:
        self.graph = graph
        self.faq = faq

    @classmethod
    def from_folder(
        cls,
        folder: Path,
        embedder: Embedder,
        *,
        index_dir: Path | None = None,
        exact_threshold: float = 0.92,
    ) -> KnowledgeRetriever:
        """Read a project's `knowledge/` folder (faq.csv/.xlsx, faq/*.md, entities.csv, relations.csv, graph.csv).

        The files are parsed and validated here, so a malformed file fails at startup with its line
        (ProjectError); embedding waits for `warm_up`. Missing files, or a missing folder, are empty parts.
        """
        problems: list[Problem] = []
        entries = load_faq_folder(folder, problems)
        if problems:
            # Nothing reports skipped FAQ entries at startup yet, so the first one still stops it.
            more = f" ({len(problems) - 1} more FAQ problem(s) after this one)" if len(problems) > 1 else ""
            raise ProjectError(problems[0].message + more, path=problems[0].path, line=problems[0].line or None)
        faq = FaqRetriever(
            entries,
            embedder,
            index_dir=index_dir,
            exact_threshold=exact_threshold,
        )
        return cls(load_graph(folder), faq)

    def warm_up(self) -> None:
        """Build or load the FAQ index (the graph needs nothing more)."""
        self.faq.warm_up()

    def retrieve(
        self,
        query: str,
        *,
        entities: Sequence[Entity] = (),
        top_k: int = 5,
        filters: Mapping[str, str] | None = None,
        language: Language | None = None,
    ) -> list[Fact]:
        """Up to `top_k` facts: graph answers (exact ones first), then the best FAQ entries.

        `filters={"source": "kg"}` (or "faq") asks one part only; other filters go to the FAQ.
        """
        source = filters.get("source") if filters else None
        if top_k <= 0:
            return []
        graph_facts = self.graph.answer(query, language, entities) if source in (None, "kg") else []
        graph_facts = sorted(graph_facts, key=lambda fact: not fact.exact)[:top_k]
        room = top_k - len(graph_facts)
        faq_facts = (
            self.faq.retrieve(query, entities=entities, top_k=room, filters=filters, language=language)
            if room and source in (None, "faq")
            else []
        )
        return [*graph_facts, *faq_facts]
