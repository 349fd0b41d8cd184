"""The knowledge-graph CSV files (`entities.csv`, `relations.csv`, `graph.csv` of subject,relation,object)
and the `GraphBuilder` that checks entries from every graph file as they arrive.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bot.errors import ProjectError
from bot.types import Language
from knowledge.matching import normalize
from knowledge.problems import Problem
from knowledge.tables import Row, read_table, split_list

ENTITIES_FILE = "entities.csv"
RELATIONS_FILE = "relations.csv"
GRAPH_FILE = "graph.csv"

TEMPLATE_FIELDS = frozenset({"subject", "object", "relation"})
DEFAULT_TEMPLATES: Mapping[Language, str] = {
    "zh": "{subject}的{relation}是{object}。",
    "en": "The {relation} of {subject} is {object}.",
}
QUESTION_FIELDS = frozenset({"subject", "relation"})


@dataclass(frozen=True, slots=True)
class KgEntity:
    """A thing customers ask about (a product) or that answers point to (a color, a brand)."""

    id: str
    type: str
    name_zh: str
    name_en: str
    aliases: tuple[str, ...] = ()

    def name(self, language: Language) -> str:
        """The name in `language`, or in the other language when that one is empty."""
        preferred, other = (self.name_zh, self.name_en) if language == "zh" else (self.name_en, self.name_zh)
        return preferred or other

    @property
    def surface_forms(self) -> tuple[str, ...]:
        """Every way the entity may be written: both names and the aliases."""
        return tuple(dict.fromkeys(form for form in (self.name_zh, self.name_en, *self.aliases) if form))


@dataclass(frozen=True, slots=True)
class KgRelation:
    """An attribute or link (price, colors, compatible_with), how users ask for it, how to say it, and how a
    recommended question asks for it."""

    id: str
    name_zh: str
    name_en: str
    keywords_zh: tuple[str, ...] = ()
    keywords_en: tuple[str, ...] = ()
    template_zh: str = ""
    template_en: str = ""
    question_zh: str = ""
    question_en: str = ""

    def name(self, language: Language) -> str:
        preferred, other = (self.name_zh, self.name_en) if language == "zh" else (self.name_en, self.name_zh)
        return preferred or other or self.id

    def keywords(self, language: Language) -> tuple[str, ...]:
        """The keywords of `language`; the relation's name in that language counts as one."""
        words = self.keywords_zh if language == "zh" else self.keywords_en
        name = self.name_zh if language == "zh" else self.name_en
        return tuple(dict.fromkeys(word for word in (name, *words) if word))

    def template(self, language: Language) -> str:
        """A str.format template with {subject}, {object} and {relation}."""
        return (self.template_zh if language == "zh" else self.template_en) or DEFAULT_TEMPLATES[language]

    def question(self, language: Language) -> str:
        """How a customer asks for the relation: a str.format template with {subject} (and maybe {relation});
        "" when the relation declares none (the recommender then asks generically)."""
        return self.question_zh if language == "zh" else self.question_en


@dataclass(frozen=True, slots=True)
class Triple:
    """(subject entity id, relation id, object): the object is an entity id or a literal."""

    subject: str
    relation: str
    object: str
    line: int = 0


@dataclass(frozen=True, slots=True)
class Where:
    """Where an entry is defined: a file and a line (CSV) or a JSON path such as `entities[2]`."""

    path: str
    line: int | None = None
    pointer: str = ""

    def error(self, message: str) -> ProjectError:
        """A ProjectError about the entry; a JSON path prefixes the message."""
        return ProjectError(f"{self.pointer}: {message}" if self.pointer else message, path=self.path, line=self.line)

    def seen_from(self, other: Where) -> str:
        """How a message about `other` names this place: "line 3", or "entities[0] of graph.json"."""
        spot = f"line {self.line}" if self.line else self.pointer
        return spot if self.path == other.path else f"{spot} of {Path(self.path).name}"


@dataclass(frozen=True, slots=True)
class GraphParts:
    """The checked contents of every graph file of a folder."""

    entities: tuple[KgEntity, ...]
    relations: tuple[KgRelation, ...]
    triples: tuple[Triple, ...]


class GraphBuilder:
    """Entities, relations and triples from several files, checked as they arrive; `finish` checks the triples.

    Ids and surface forms must be unique across all files, and a triple must name a known subject and
    relation. A rejected entry raises ProjectError, or, given a `problems` list, is reported there and
    skipped: the first of two duplicates wins and nothing else is lost.
    """

    def __init__(self, problems: list[Problem] | None = None) -> None:
        self.problems = problems
        self._entities: dict[str, tuple[KgEntity, Where]] = {}
        self._forms: dict[str, tuple[str, Where]] = {}  # folded surface form -> (entity id, where)
        self._relations: dict[str, tuple[KgRelation, Where]] = {}
        self._pending: list[tuple[Triple, Where]] = []

    def report(self, error: ProjectError) -> None:
        """Raise `error`, or record it as a Problem when the builder collects problems."""
        if self.problems is None:
            raise error
        self.problems.append(Problem.of(error))

    def add_entity(self, entity: KgEntity, where: Where) -> bool:
        """Keep `entity` unless its id or one of its names is taken; False when it was skipped."""
        first = self._entities.get(entity.id)
        if first is not None:
            self.report(where.error(f"duplicate entity id {entity.id!r} (first on {first[1].seen_from(where)})"))
            return False
        for form in entity.surface_forms:
            owner = self._forms.get(normalize(form))
            if owner is not None and owner[0] != entity.id:
                self.report(
                    where.error(
                        f"{form!r} already names entity {owner[0]!r} ({owner[1].seen_from(where)}); "
                        "a name or alias may belong to one entity"
                    )
                )
                return False
        self._entities[entity.id] = (entity, where)
        for form in entity.surface_forms:
            self._forms.setdefault(normalize(form), (entity.id, where))
        return True

    def add_relation(self, relation: KgRelation, where: Where) -> None:
        """Keep `relation` unless its id is taken."""
        first = self._relations.get(relation.id)
        if first is not None:
            self.report(where.error(f"duplicate relation id {relation.id!r} (first on {first[1].seen_from(where)})"))
            return
        self._relations[relation.id] = (relation, where)

    def add_triple(self, triple: Triple, where: Where) -> None:
        """Queue `triple`; `finish` checks it once every file has named its entities and relations."""
        self._pending.append((triple, where))

    def finish(self) -> GraphParts:
        """Everything kept, with the triples that name a known subject and relation (repeats dropped)."""
        triples: dict[tuple[str, str, str], Triple] = {}
        for triple, where in self._pending:
            if triple.subject not in self._entities:
                self.report(
                    where.error(
                        f"unknown subject {triple.subject!r}: the subject must be an entity id "
                        f"from {ENTITIES_FILE} or the entities of graph.json"
                    )
                )
            elif triple.relation not in self._relations:
                known = ", ".join(sorted(self._relations)) or f"none; add rows to {RELATIONS_FILE}"
                self.report(where.error(f"unknown relation id {triple.relation!r}; known relations: {known}"))
            else:
                triples.setdefault((triple.subject, triple.relation, triple.object), triple)
        return GraphParts(
            entities=tuple(entity for entity, _ in self._entities.values()),
            relations=tuple(relation for relation, _ in self._relations.values()),
            triples=tuple(triples.values()),
        )


def read_entities(path: Path, builder: GraphBuilder) -> None:
    """Add the entities of `entities.csv` to `builder`; a missing file has none."""
    if not path.is_file():
        return
    optional = ("type", "aliases")
    for row in read_table(path, required=("id", "name_zh", "name_en"), optional=optional, problems=builder.problems):
        try:
            entity = _entity(row, path)
        except ProjectError as err:
            builder.report(err)
            continue
        builder.add_entity(entity, Where(str(path), row.line))


# a relation's optional fields, in relations.csv and graph.json alike
RELATION_FIELDS = (
    "name_zh",
    "name_en",
    "keywords_zh",
    "keywords_en",
    "template_zh",
    "template_en",
    "question_zh",
    "question_en",
)


def read_relations(path: Path, builder: GraphBuilder) -> None:
    """Add the relations of `relations.csv` to `builder`; a missing file has none."""
    if not path.is_file():
        return
    for row in read_table(path, required=("id",), optional=RELATION_FIELDS, problems=builder.problems):
        where = Where(str(path), row.line)
        try:
            relation = KgRelation(
                id=_required(row, "id", path),
                name_zh=row.get("name_zh"),
                name_en=row.get("name_en"),
                keywords_zh=split_list(row.get("keywords_zh")),
                keywords_en=split_list(row.get("keywords_en")),
                template_zh=check_template(row.get("template_zh"), "template_zh", where),
                template_en=check_template(row.get("template_en"), "template_en", where),
                question_zh=check_question(row.get("question_zh"), "question_zh", where),
                question_en=check_question(row.get("question_en"), "question_en", where),
            )
        except ProjectError as err:
            builder.report(err)
            continue
        builder.add_relation(relation, where)


def read_triples(path: Path, builder: GraphBuilder) -> None:
    """Add the triples of `graph.csv` to `builder`; a missing file has none."""
    if not path.is_file():
        return
    for row in read_table(path, required=("subject", "relation", "object"), problems=builder.problems):
        try:
            subject, relation, obj = (_required(row, column, path) for column in ("subject", "relation", "object"))
        except ProjectError as err:
            builder.report(err)
            continue
        builder.add_triple(Triple(subject, relation, obj, line=row.line), Where(str(path), row.line))


def check_template(template: str, label: str, where: Where) -> str:
    """`template` when it is a valid str.format template using only {subject}, {object} and {relation}."""
    unknown = _fields(template, label, where) - TEMPLATE_FIELDS
    if unknown:
        placeholders = ", ".join(sorted(unknown))
        raise where.error(
            f"{label} uses unknown placeholder(s) {placeholders}; use {{subject}}, {{object}} or {{relation}}"
        )
    return template


def check_question(template: str, label: str, where: Where) -> str:
    """`template` (empty, or a question naming {subject}, and maybe {relation}) when it is valid."""
    if not template:
        return template
    fields = _fields(template, label, where)
    unknown = fields - QUESTION_FIELDS
    if unknown:
        placeholders = ", ".join(sorted(unknown))
        raise where.error(f"{label} uses unknown placeholder(s) {placeholders}; use {{subject}} or {{relation}}")
    if "subject" not in fields:
        raise where.error(
            f"{label} does not name the subject; write {{subject}} where its name goes, "
            'e.g. "What is the warranty of the {subject}?"'
        )
    return template


def _fields(template: str, label: str, where: Where) -> set[str]:
    """The placeholder names of a str.format template."""
    try:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as err:
        raise where.error(f"{label} is not a valid template ({err}); write braces as {{{{ and }}}}") from err


def _entity(row: Row, path: Path) -> KgEntity:
    entity_id = _required(row, "id", path)
    if not row.get("name_zh") and not row.get("name_en"):
        raise ProjectError(
            f"entity {entity_id!r} has no name; fill name_zh, name_en or both", path=str(path), line=row.line
        )
    return KgEntity(
        id=entity_id,
        type=row.get("type"),
        name_zh=row.get("name_zh"),
        name_en=row.get("name_en"),
        aliases=split_list(row.get("aliases")),
    )


def _required(row: Row, column: str, path: Path) -> str:
    value = row.get(column)
    if not value:
        raise ProjectError(f"empty {column!r}; fill it in", path=str(path), line=row.line)
    return value
