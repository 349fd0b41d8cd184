"""Importing knowledge-graph entries from `graph.json`, merged with the CSV files of the same folder.

The file is one object with three optional lists::

    {
      "entities": [
        {"id": "card_platinum", "type": "card", "name_zh": "白金卡", "name_en": "Platinum Card",
         "aliases": ["白金信用卡", "platinum"], "attributes": {"annual_fee": "3600", "cashback": "1%"}}
      ],
      "relations": [
        {"id": "annual_fee", "name_zh": "年费", "name_en": "annual fee",
         "keywords_zh": ["年费", "年费多少"], "keywords_en": ["annual fee", "yearly fee"],
         "template_zh": "{subject}的年费是 ¥{object}。", "template_en": "The {subject} has an annual fee of ¥{object}.",
         "question_zh": "{subject}的年费是多少？", "question_en": "What is the annual fee of the {subject}?"}
      ],
      "triples": [
        ["card_platinum", "upgrade_to", "card_diamond"],
        {"subject": "card_diamond", "relation": "annual_fee", "object": "8800"}
      ]
    }

Fields mean what the CSV columns of the same name mean; `aliases` and `keywords_*` are lists of strings
(a `|`-separated string works too). Each `attributes` entry is a triple (entity, key, value), so the key
must be a relation id; a value may be a string, a number or a list of them (several objects). Ids and
names must be unique across the JSON and CSV files. A bad entry is reported with its JSON path
("entities[3].id is empty"), a syntax error with its line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from bot.errors import ProjectError
from knowledge.encoding import read_text_file
from knowledge.graph_files import (
    RELATION_FIELDS,
    GraphBuilder,
    KgEntity,
    KgRelation,
    Triple,
    Where,
    check_question,
    check_template,
)
from knowledge.tables import split_list

GRAPH_JSON_FILE = "graph.json"

_ENTITY_KEYS = ("id", "type", "name_zh", "name_en", "aliases", "attributes")
_RELATION_KEYS = ("id", *RELATION_FIELDS)
_TRIPLE_KEYS = ("subject", "relation", "object")
_SECTIONS = ("entities", "relations", "triples")


def read_graph_json(path: Path, builder: GraphBuilder) -> None:
    """Add the entities, relations and triples of `graph.json` to `builder`; a missing file has none.

    An unreadable file, invalid JSON or a top level that is not an object raises ProjectError whether or
    not the builder collects problems: like a CSV file's broken header, it stops the file.
    """
    if not path.is_file():
        return
    document = _parse(path)
    at = Where(str(path))
    for key in document:
        if key not in _SECTIONS:
            builder.report(at.error(f"unknown top-level key {key!r}; use {', '.join(_SECTIONS)}"))
    for pointer, item in _items(document, "entities", at, builder):
        _add_entity(item, pointer, at, builder)
    for pointer, item in _items(document, "relations", at, builder):
        try:
            builder.add_relation(_relation(item, pointer, at), Where(at.path, pointer=pointer))
        except ProjectError as err:
            builder.report(err)
    for pointer, item in _items(document, "triples", at, builder):
        try:
            builder.add_triple(_triple(item, pointer, at), Where(at.path, pointer=pointer))
        except ProjectError as err:
            builder.report(err)


def _add_entity(item: Any, pointer: str, at: Where, builder: GraphBuilder) -> None:
    """Add the entity and, when it is kept, one triple per attribute value; a bad value skips only itself."""
    try:
        entity = _entity(item, pointer, at)
        attributes = _attributes(item, pointer, at)
    except ProjectError as err:
        builder.report(err)
        return
    if not builder.add_entity(entity, Where(at.path, pointer=pointer)):
        return
    for relation, where, value in attributes:
        try:
            triple = Triple(entity.id, relation, _scalar(value, where, at))
        except ProjectError as err:
            builder.report(err)
            continue
        builder.add_triple(triple, Where(at.path, pointer=where))


def _parse(path: Path) -> Mapping[str, Any]:
    try:
        document = json.loads(read_text_file(path))
    except json.JSONDecodeError as err:
        raise ProjectError(
            f"not valid JSON ({err.msg}, column {err.colno}); check the quotes, commas and brackets here",
            path=str(path),
            line=err.lineno,
        ) from err
    if not isinstance(document, dict):
        raise ProjectError(
            'the file must hold one object: {"entities": [...], "relations": [...], "triples": [...]}',
            path=str(path),
        )
    return document


def _items(document: Mapping[str, Any], section: str, at: Where, builder: GraphBuilder) -> Iterator[tuple[str, Any]]:
    """(JSON path, item) for each item of the list `document[section]`; a section that is not a list is reported."""
    items = document.get(section, [])
    if not isinstance(items, list):
        builder.report(at.error(f"{section} must be a list, not {_kind(items)}"))
        return
    for index, item in enumerate(items):
        yield f"{section}[{index}]", item


def _entity(item: Any, pointer: str, at: Where) -> KgEntity:
    fields = _object(item, pointer, _ENTITY_KEYS, at)
    entity = KgEntity(
        id=_id(fields, pointer, at),
        type=_text(fields, "type", pointer, at),
        name_zh=_text(fields, "name_zh", pointer, at),
        name_en=_text(fields, "name_en", pointer, at),
        aliases=_texts(fields, "aliases", pointer, at),
    )
    if not entity.name_zh and not entity.name_en:
        raise at.error(f"{pointer}.name_zh and {pointer}.name_en are empty; fill one or both")
    return entity


def _attributes(item: Mapping[str, Any], pointer: str, at: Where) -> list[tuple[str, str, Any]]:
    """(relation id, JSON path, raw value) per attribute value; a list value gives several objects."""
    attributes = item.get("attributes", {})
    if not isinstance(attributes, dict):
        raise at.error(f"{pointer}.attributes must be an object of relation id to value, not {_kind(attributes)}")
    found: list[tuple[str, str, Any]] = []
    for key, value in attributes.items():
        where = f"{pointer}.attributes.{key}"
        if isinstance(value, list):
            found.extend((str(key), f"{where}[{index}]", obj) for index, obj in enumerate(value))
        else:
            found.append((str(key), where, value))
    return found


def _relation(item: Any, pointer: str, at: Where) -> KgRelation:
    fields = _object(item, pointer, _RELATION_KEYS, at)
    return KgRelation(
        id=_id(fields, pointer, at),
        name_zh=_text(fields, "name_zh", pointer, at),
        name_en=_text(fields, "name_en", pointer, at),
        keywords_zh=_texts(fields, "keywords_zh", pointer, at),
        keywords_en=_texts(fields, "keywords_en", pointer, at),
        template_zh=check_template(_text(fields, "template_zh", pointer, at), f"{pointer}.template_zh", at),
        template_en=check_template(_text(fields, "template_en", pointer, at), f"{pointer}.template_en", at),
        question_zh=check_question(_text(fields, "question_zh", pointer, at), f"{pointer}.question_zh", at),
        question_en=check_question(_text(fields, "question_en", pointer, at), f"{pointer}.question_en", at),
    )


def _triple(item: Any, pointer: str, at: Where) -> Triple:
    """A triple written as ["subject", "relation", "object"] or {"subject": ..., "relation": ..., "object": ...}."""
    if isinstance(item, list):
        if len(item) != len(_TRIPLE_KEYS):
            raise at.error(f"{pointer} has {len(item)} items; write [subject, relation, object]")
        item = dict(zip(_TRIPLE_KEYS, item, strict=True))
    fields = _object(item, pointer, _TRIPLE_KEYS, at)
    subject, relation, obj = (_scalar(fields.get(key), f"{pointer}.{key}", at) for key in _TRIPLE_KEYS)
    return Triple(subject, relation, obj)


def _object(item: Any, pointer: str, keys: tuple[str, ...], at: Where) -> Mapping[str, Any]:
    if not isinstance(item, dict):
        raise at.error(f"{pointer} must be an object with {', '.join(keys)}, not {_kind(item)}")
    unknown = [str(key) for key in item if key not in keys]
    if unknown:
        raise at.error(f"{pointer} has unknown key(s) {', '.join(unknown)}; use {', '.join(keys)}")
    return item


def _id(fields: Mapping[str, Any], pointer: str, at: Where) -> str:
    value = _text(fields, "id", pointer, at)
    if not value:
        raise at.error(f"{pointer}.id is empty; give every entry an id")
    return value


def _text(fields: Mapping[str, Any], key: str, pointer: str, at: Where) -> str:
    value = fields.get(key, "")
    if not isinstance(value, str):
        raise at.error(f"{pointer}.{key} must be a string, not {_kind(value)}")
    return value.strip()


def _texts(fields: Mapping[str, Any], key: str, pointer: str, at: Where) -> tuple[str, ...]:
    value = fields.get(key, [])
    if isinstance(value, str):
        return split_list(value)
    if not isinstance(value, list) or not all(isinstance(text, str) for text in value):
        raise at.error(f"{pointer}.{key} must be a list of strings")
    return tuple(dict.fromkeys(text.strip() for text in value if text.strip()))


def _scalar(value: Any, pointer: str, at: Where) -> str:
    """A triple part: a non-empty string, or a number written as JSON wrote it."""
    # bool is an int subclass, and "True" is no one's price.
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise at.error(f"{pointer} must be a string or a number, not {_kind(value)}")
    text = value.strip() if isinstance(value, str) else json.dumps(value)
    if not text:
        raise at.error(f"{pointer} is empty; fill it in")
    return text


def _kind(value: Any) -> str:
    """The JSON name of a value's type, for messages."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}
    return names.get(type(value), "a number")
