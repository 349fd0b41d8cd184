"""The knowledge-graph files: `entities.csv`, `relations.csv` and `graph.csv` (subject,relation,object)."""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bot.errors import ProjectError
from bot.types import Language
from knowledge.matching import normalize
from knowledge.tables import Row, read_table, split_list

ENTITIES_FILE = "entities.csv"
RELATIONS_FILE = "relations.csv"
GRAPH_FILE = "graph.csv"

TEMPLATE_FIELDS = frozenset({"subject", "object", "relation"})
DEFAULT_TEMPLATES: Mapping[Language, str] = {
    "zh": "{subject}的{relation}是{object}。",
    "en": "The {relation} of {subject} is {object}.",
}


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
    """An attribute or link (price, colors, compatible_with), how users ask for it, and how to say it."""

    id: str
    name_zh: str
    name_en: str
    keywords_zh: tuple[str, ...] = ()
    keywords_en: tuple[str, ...] = ()
    template_zh: str = ""
    template_en: str = ""

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


@dataclass(frozen=True, slots=True)
class Triple:
    """(subject entity id, relation id, object): the object is an entity id or a literal."""

    subject: str
    relation: str
    object: str
    line: int = 0


def load_entities(path: Path) -> tuple[KgEntity, ...]:
    """Entities from `entities.csv`; a missing file has none. Ids and surface forms must be unique."""
    if not path.is_file():
        return ()
    rows = read_table(path, required=("id", "name_zh", "name_en"), optional=("type", "aliases"))
    entities: list[KgEntity] = []
    ids: dict[str, int] = {}
    forms: dict[str, tuple[str, int]] = {}  # folded surface form -> (entity id, line)
    for row in rows:
        entity = _entity(row, path)
        _claim(ids, entity.id, row.line, f"duplicate entity id {entity.id!r}", path)
        for form in entity.surface_forms:
            owner, line = forms.setdefault(normalize(form), (entity.id, row.line))
            if owner != entity.id:
                raise ProjectError(
                    f"{form!r} already names entity {owner!r} (line {line}); a name or alias may belong to one entity",
                    path=str(path),
                    line=row.line,
                )
        entities.append(entity)
    return tuple(entities)


def load_relations(path: Path) -> tuple[KgRelation, ...]:
    """Relations from `relations.csv`; a missing file has none."""
    if not path.is_file():
        return ()
    optional = ("name_zh", "name_en", "keywords_zh", "keywords_en", "template_zh", "template_en")
    relations: list[KgRelation] = []
    ids: dict[str, int] = {}
    for row in read_table(path, required=("id",), optional=optional):
        relation = KgRelation(
            id=_required(row, "id", path),
            name_zh=row.get("name_zh"),
            name_en=row.get("name_en"),
            keywords_zh=split_list(row.get("keywords_zh")),
            keywords_en=split_list(row.get("keywords_en")),
            template_zh=_template(row, "template_zh", path),
            template_en=_template(row, "template_en", path),
        )
        _claim(ids, relation.id, row.line, f"duplicate relation id {relation.id!r}", path)
        relations.append(relation)
    return tuple(relations)


def load_triples(
    path: Path, entity_ids: Mapping[str, object], relation_ids: Mapping[str, object]
) -> tuple[Triple, ...]:
    """Triples from `graph.csv`, checked against the known entities and relations; repeats are dropped."""
    if not path.is_file():
        return ()
    triples: dict[tuple[str, str, str], Triple] = {}
    for row in read_table(path, required=("subject", "relation", "object")):
        subject, relation, obj = (_required(row, column, path) for column in ("subject", "relation", "object"))
        if subject not in entity_ids:
            raise ProjectError(
                f"unknown subject {subject!r}: the subject must be an entity id from {ENTITIES_FILE}",
                path=str(path),
                line=row.line,
            )
        if relation not in relation_ids:
            known = ", ".join(sorted(relation_ids)) or f"none; add rows to {RELATIONS_FILE}"
            raise ProjectError(
                f"unknown relation id {relation!r}; known relations: {known}", path=str(path), line=row.line
            )
        triples.setdefault((subject, relation, obj), Triple(subject, relation, obj, line=row.line))
    return tuple(triples.values())


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


def _template(row: Row, column: str, path: Path) -> str:
    template = row.get(column)
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as err:
        raise ProjectError(
            f"{column} is not a valid template ({err}); write braces as {{{{ and }}}}", path=str(path), line=row.line
        ) from err
    unknown = fields - TEMPLATE_FIELDS
    if unknown:
        placeholders = ", ".join(sorted(unknown))
        raise ProjectError(
            f"{column} uses unknown placeholder(s) {placeholders}; use {{subject}}, {{object}} or {{relation}}",
            path=str(path),
            line=row.line,
        )
    return template


def _required(row: Row, column: str, path: Path) -> str:
    value = row.get(column)
    if not value:
        raise ProjectError(f"empty {column!r}; fill it in", path=str(path), line=row.line)
    return value


def _claim(seen: dict[str, int], key: str, line: int, message: str, path: Path) -> None:
    if key in seen:
        raise ProjectError(f"{message} (first on line {seen[key]})", path=str(path), line=line)
    seen[key] = line
