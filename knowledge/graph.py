"""The knowledge graph: entity linking, relation detection, and exact answers rendered from templates."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.types import Entity, Fact, Language
from knowledge.graph_files import (
    ENTITIES_FILE,
    GRAPH_FILE,
    RELATIONS_FILE,
    GraphBuilder,
    KgEntity,
    KgRelation,
    Triple,
    read_entities,
    read_relations,
    read_triples,
)
from knowledge.graph_json import GRAPH_JSON_FILE, read_graph_json
from knowledge.matching import PhraseMatcher, guess_language
from knowledge.problems import Problem

__all__ = ["KgEntity", "KgRelation", "KnowledgeGraph", "LinkedEntity", "Triple", "load_graph"]

OVERVIEW_SCORE = 0.5
_JOINERS: Mapping[Language, str] = {"zh": "、", "en": ", "}
_LANGUAGES: tuple[Language, Language] = ("zh", "en")
# How a two-hop answer names the middle entity: the path to it, then its name.
_PATHS: Mapping[Language, str] = {
    "zh": "{subject}的{relation}（{object}）",
    "en": "{relation} of the {subject} ({object})",
}


@dataclass(frozen=True, slots=True)
class LinkedEntity:
    """A knowledge-graph entity mentioned in the text at `text[start:end]` (`surface`)."""

    entity_id: str
    type: str
    start: int
    end: int
    surface: str


class KnowledgeGraph:
    """Entities, relations and (subject, relation, object) triples, with the lookups a turn needs.

    Construction builds the phrase tries (cheap: a dict per character); `load_graph` validates files.
    """

    def __init__(
        self, entities: Sequence[KgEntity], relations: Sequence[KgRelation], triples: Sequence[Triple]
    ) -> None:
        self.entities: Mapping[str, KgEntity] = {entity.id: entity for entity in entities}
        self.relations: Mapping[str, KgRelation] = {relation.id: relation for relation in relations}
        self.triples = tuple(triples)
        self._objects: dict[tuple[str, str], list[str]] = {}
        for triple in self.triples:
            self._objects.setdefault((triple.subject, triple.relation), []).append(triple.object)
        self._names = PhraseMatcher()
        for entity in entities:
            for form in entity.surface_forms:
                self._names.add(form, entity.id)
        self._keywords = {language: PhraseMatcher(plural_s=True) for language in _LANGUAGES}
        for relation in relations:
            for language in _LANGUAGES:
                for keyword in relation.keywords(language):
                    self._keywords[language].add(keyword, relation.id)

    def __bool__(self) -> bool:
        return bool(self.entities or self.triples)

    def objects(self, subject: str, relation: str) -> tuple[str, ...]:
        """The objects of (subject, relation), in file order."""
        return tuple(self._objects.get((subject, relation), ()))

    def subject_relations(self, subject: str) -> tuple[str, ...]:
        """The relations `subject` has triples for, in the order relations are defined."""
        return tuple(relation for relation in self.relations if (subject, relation) in self._objects)

    def link(self, text: str) -> list[LinkedEntity]:
        """Entity names and aliases found in `text`: case-insensitive, longest match first, spaces optional."""
        linked: list[LinkedEntity] = []
        for match in self._names.find(text):
            entity = self.entities[match.values[0]]  # GraphBuilder makes every surface form unique
            linked.append(LinkedEntity(entity.id, entity.type, match.start, match.end, match.surface))
        return linked

    def resolve(self, name: str) -> KgEntity | None:
        """The entity whose id, name or alias is exactly `name` (case and spaces ignored), if any."""
        if name in self.entities:
            return self.entities[name]
        ids = self._names.lookup(name)
        return self.entities[ids[0]] if ids else None

    def detect_relations(self, text: str, language: Language | None = None) -> list[str]:
        """Relation ids whose keywords occur in `text`, in order of appearance.

        Keywords of `language` are tried first and the other language's only when those find nothing,
        since customers mix languages ("X1 Pro 的 battery"). `None` tries both at once.
        """
        order: tuple[Language, ...] = _LANGUAGES if language is None else (language, _other(language))
        found: list[str] = []
        for lang in order:
            for match in self._keywords[lang].find(text):
                found.extend(relation for relation in match.values if relation not in found)
            if found and language is not None:
                break
        return found

    def answer(self, text: str, language: Language | None = None, entities: Sequence[Entity] = ()) -> list[Fact]:
        """Facts for the subjects and relations mentioned in `text`.

        One exact fact (score 1.0) per (subject, relation) that has triples, rendered with the relation's
        template in `language` (guessed from the text when None). A two-hop question ("X1 Pro 的充电器多少钱")
        gets one exact fact in place of its two relations' facts (see `chain`). When no asked relation is
        known for any subject (or none is asked), each subject gets an overview of its attributes instead
        (exact=False, score 0.5). NLU entities link subjects too, by id, name or alias. A subject is an
        entity with triples of its own.
        """
        lang = language or guess_language(text)
        linked = self.link(text)
        subjects = self._subjects(linked, entities)
        if not subjects:
            return []
        relations = self.detect_relations(self._relation_text(text, linked, subjects), lang)
        mentioned = {item.entity_id for item in linked}
        facts: list[Fact] = []
        for subject in subjects:
            chain = self.chain(subject, relations, lang, mentioned)
            if chain is not None:
                facts.append(self._chain_fact(subject, *chain, lang))
            facts.extend(
                self._fact(subject, relation, lang)
                for relation in relations
                if relation not in (chain or ()) and self.objects(subject, relation)
            )
        return facts or [self._overview(subject, lang) for subject in subjects]

    def chain(
        self, subject: str, relations: Sequence[str], language: Language, mentioned: Collection[str] = ()
    ) -> tuple[str, str] | None:
        """The relations (r1, r2) of a two-hop question: `subject` -r1-> an entity O -r2-> a value; or None.

        `relations` are in text order. Chinese names the first hop first ("X的充电器的价格"), English last
        ("the price of the charger of X"), so that order wins when both would do. No chain runs through r1
        when `mentioned` holds one of the subject's r1 objects: a customer who names the accessory asks
        about it directly, in one hop.
        """
        pairs = [(first, second) for i, first in enumerate(relations) for second in relations[i + 1 :]]
        if language == "en":
            pairs = [(second, first) for first, second in pairs]
        for first, second in [*pairs, *((second, first) for first, second in pairs)]:
            if self._middles(subject, first, second, mentioned):
                return first, second
        return None

    def render(self, subject: str, relation: str, language: Language) -> str:
        """The sentence stating every object of (subject, relation), e.g. "The X1 is available in Black, White."."""
        return self._sentence(self.entities[subject].name(language), subject, relation, language)

    def _subjects(self, linked: Sequence[LinkedEntity], entities: Sequence[Entity]) -> list[str]:
        """Entity ids with triples of their own, text mentions first, then NLU entities; no repeats."""
        candidates = [item.entity_id for item in linked]
        for entity in entities:
            resolved = self.resolve(entity.value)
            if resolved is not None:
                candidates.append(resolved.id)
        has_triples = {subject for subject, _ in self._objects}
        return [subject for subject in dict.fromkeys(candidates) if subject in has_triples]

    def _relation_text(self, text: str, linked: Sequence[LinkedEntity], subjects: Collection[str]) -> str:
        """`text` with entity mentions blanked, so "星云蓝牙耳机" does not also count as the keyword "蓝牙".

        A mention of an entity without triples that reads exactly as a relation keyword stays: "充电器" names
        the charger category, but in "X1 Pro 的充电器多少钱" it asks for the charger relation.
        """
        masked = [
            item
            for item in linked
            if item.entity_id in subjects or not any(self._keywords[lang].lookup(item.surface) for lang in _LANGUAGES)
        ]
        return _mask(text, masked)

    def _middles(self, subject: str, first: str, second: str, mentioned: Collection[str]) -> list[str]:
        """The entities O with `subject` -first-> O -second-> something; none when an O is mentioned."""
        objects = self.objects(subject, first)
        if any(obj in mentioned for obj in objects):
            return []
        return [obj for obj in objects if obj in self.entities and self.objects(obj, second)]

    def _sentence(self, name: str, subject: str, relation: str, language: Language) -> str:
        """The relation's template, with `name` standing for the subject."""
        rel = self.relations[relation]
        return rel.template(language).format(
            subject=name, object=self._objects_text(subject, relation, language), relation=rel.name(language)
        )

    def _objects_text(self, subject: str, relation: str, language: Language) -> str:
        names = [self._object_name(obj, language) for obj in self.objects(subject, relation)]
        return _JOINERS[language].join(names)

    def _object_name(self, obj: str, language: Language) -> str:
        entity = self.entities.get(obj)
        return entity.name(language) if entity else obj

    def fact(self, fact_id: str, language: Language) -> Fact | None:
        """The fact an id of this graph names (`kg:S`, `kg:S|r`, `kg:S|r1|r2`), None if the graph lacks it."""
        subject, *relations = fact_id.removeprefix("kg:").split("|")
        if subject not in self.entities or any(r not in self.relations for r in relations):
            return None
        if not relations:
            return self._overview(subject, language)
        if len(relations) == 1:
            return self._fact(subject, relations[0], language) if self.objects(subject, relations[0]) else None
        return self._chain_fact(subject, relations[0], relations[1], language) if len(relations) == 2 else None

    def _fact(self, subject: str, relation: str, language: Language) -> Fact:
        objects = ";".join(self.objects(subject, relation))
        return Fact(
            id=f"kg:{subject}|{relation}",
            text=self.render(subject, relation, language),
            source="kg",
            score=1.0,
            citation=f"kg:{subject}|{relation}|{objects}",
            language=language,
            exact=True,
        )

    def _chain_fact(self, subject: str, first: str, second: str, language: Language) -> Fact:
        """ "星耀X1 Pro的充电器（65W 快充头）的价格是 ¥129。", citing both triples of each path."""
        sentences: list[str] = []
        cited: list[str] = []
        for middle in self._middles(subject, first, second, ()):
            path = _PATHS[language].format(
                subject=self.entities[subject].name(language),
                relation=self.relations[first].name(language),
                object=self.entities[middle].name(language),
            )
            sentences.append(self._sentence(path, middle, second, language))
            values = ";".join(self.objects(middle, second))
            cited.append(f"kg:{subject}|{first}|{middle} ; kg:{middle}|{second}|{values}")
        return Fact(
            id=f"kg:{subject}|{first}|{second}",
            text=("" if language == "zh" else " ").join(sentences),
            source="kg",
            score=1.0,
            citation=" ; ".join(cited),
            language=language,
            exact=True,
        )

    def _overview(self, subject: str, language: Language) -> Fact:
        """Every attribute of `subject` in one line: "X1 — price: 3999; colors: Black, White"."""
        colon, separator, dash = ("：", "；", " — ") if language == "zh" else (": ", "; ", " — ")
        parts = [
            f"{self.relations[relation].name(language)}{colon}{self._objects_text(subject, relation, language)}"
            for relation in self.subject_relations(subject)
        ]
        return Fact(
            id=f"kg:{subject}",
            text=f"{self.entities[subject].name(language)}{dash}{separator.join(parts)}",
            source="kg",
            score=OVERVIEW_SCORE,
            citation=f"kg:{subject}",
            language=language,
            exact=False,
        )


def load_graph(directory: Path, problems: list[Problem] | None = None) -> KnowledgeGraph:
    """The graph in `directory`: entities.csv, relations.csv, graph.csv and graph.json, merged.

    Missing files are empty parts. A malformed row or entry, a duplicate id or name, or a triple naming an
    unknown subject or relation raises ProjectError with the file and line (or JSON path); given a
    `problems` list, it is reported there and skipped instead, and the first of two duplicates wins. An
    unreadable file, a broken CSV header or invalid JSON raises either way.
    """
    paths = [directory / name for name in (ENTITIES_FILE, RELATIONS_FILE, GRAPH_FILE, GRAPH_JSON_FILE)]
    first_new = len(problems) if problems is not None else 0
    builder = GraphBuilder(problems)
    read_entities(paths[0], builder)
    read_relations(paths[1], builder)
    read_triples(paths[2], builder)
    read_graph_json(paths[3], builder)
    parts = builder.finish()
    if problems is not None:
        # Triples are checked last (they may name entities from any file); report in file and line order.
        order = {str(path): index for index, path in enumerate(paths)}
        problems[first_new:] = sorted(problems[first_new:], key=lambda item: (order.get(item.path, 0), item.line))
    return KnowledgeGraph(parts.entities, parts.relations, parts.triples)


def _other(language: Language) -> Language:
    return "en" if language == "zh" else "zh"


def _mask(text: str, linked: Sequence[LinkedEntity]) -> str:
    """`text` with the linked spans blanked out, positions unchanged."""
    chars = list(text)
    for item in linked:
        chars[item.start : item.end] = " " * (item.end - item.start)
    return "".join(chars)
