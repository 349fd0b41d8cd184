"""The knowledge graph: entity linking, relation detection, and exact answers rendered from templates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.types import Entity, Fact, Language
from knowledge.graph_files import (
    ENTITIES_FILE,
    GRAPH_FILE,
    RELATIONS_FILE,
    KgEntity,
    KgRelation,
    Triple,
    load_entities,
    load_relations,
    load_triples,
)
from knowledge.matching import PhraseMatcher, guess_language

__all__ = ["KgEntity", "KgRelation", "KnowledgeGraph", "LinkedEntity", "Triple", "load_graph"]

OVERVIEW_SCORE = 0.5
_JOINERS: Mapping[Language, str] = {"zh": "、", "en": ", "}
_LANGUAGES: tuple[Language, Language] = ("zh", "en")


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
            entity = self.entities[match.values[0]]  # load_entities makes every surface form unique
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
        template in `language` (guessed from the text when None). When no asked relation is known for any
        subject (or none is asked), each subject gets an overview of its attributes instead (exact=False,
        score 0.5). NLU entities link subjects too, by id, name or alias. A subject is an entity with
        triples of its own.
        """
        lang = language or guess_language(text)
        linked = self.link(text)
        subjects = self._subjects(linked, entities)
        if not subjects:
            return []
        masked = _mask(text, linked)  # "星云蓝牙耳机" must not also count as the keyword "蓝牙"
        relations = self.detect_relations(masked, lang)
        facts = [
            self._fact(subject, relation, lang)
            for subject in subjects
            for relation in relations
            if self.objects(subject, relation)
        ]
        return facts or [self._overview(subject, lang) for subject in subjects]

    def render(self, subject: str, relation: str, language: Language) -> str:
        """The sentence stating every object of (subject, relation), e.g. "The X1 is available in Black, White."."""
        rel = self.relations[relation]
        return rel.template(language).format(
            subject=self.entities[subject].name(language),
            object=self._objects_text(subject, relation, language),
            relation=rel.name(language),
        )

    def _subjects(self, linked: Sequence[LinkedEntity], entities: Sequence[Entity]) -> list[str]:
        """Entity ids with triples of their own, text mentions first, then NLU entities; no repeats."""
        candidates = [item.entity_id for item in linked]
        for entity in entities:
            resolved = self.resolve(entity.value)
            if resolved is not None:
                candidates.append(resolved.id)
        has_triples = {subject for subject, _ in self._objects}
        return [subject for subject in dict.fromkeys(candidates) if subject in has_triples]

    def _objects_text(self, subject: str, relation: str, language: Language) -> str:
        names = [self._object_name(obj, language) for obj in self.objects(subject, relation)]
        return _JOINERS[language].join(names)

    def _object_name(self, obj: str, language: Language) -> str:
        entity = self.entities.get(obj)
        return entity.name(language) if entity else obj

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


def load_graph(directory: Path) -> KnowledgeGraph:
    """The graph in `directory` (entities.csv, relations.csv, graph.csv); missing files are empty parts.

    Raises ProjectError with the file and line for malformed rows, duplicate ids or names, and triples
    that name an unknown subject or relation.
    """
    entities = load_entities(directory / ENTITIES_FILE)
    relations = load_relations(directory / RELATIONS_FILE)
    triples = load_triples(
        directory / GRAPH_FILE,
        {entity.id: entity for entity in entities},
        {relation.id: relation for relation in relations},
    )
    return KnowledgeGraph(entities, relations, triples)


def _other(language: Language) -> Language:
    return "en" if language == "zh" else "zh"


def _mask(text: str, linked: Sequence[LinkedEntity]) -> str:
    """`text` with the linked spans blanked out, positions unchanged."""
    chars = list(text)
    for item in linked:
        chars[item.start : item.end] = " " * (item.end - item.start)
    return "".join(chars)
