"""NLU training data in Rasa 3.x format: `nlu:` items with intents, synonyms, regexes and lookup tables.

Examples come as a YAML block of `- ` lines or as a list of `{text: ...}` mappings. Entity annotations
follow Rasa: `[text](entity)`, `[text](entity:value)`, `[text]{"entity": "e", "value": "v"}` and the list
form `[text][{"entity": "a"}, {"entity": "b"}]`, with optional `role` and `group`. An annotation
whose value differs from its surface text adds the synonym surface (lower case) -> value, as Rasa does.
Offsets are Python `str` indices into the text with the annotations removed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from bot.errors import ProjectError
from bot.project.yaml_io import LineMap, Source
from bot.types import Entity, NluData, NluExample, RegexFeature

ANNOTATION_EXTRACTOR = "annotation"

# Rasa's own grammar: `[text]` followed by `(entity[:value])`, `{json}` or `[json, ...]`.
_ANNOTATION = re.compile(
    r"\[(?P<text>[^\]]+?)\]"
    r"(?:\((?P<entity>[^:)]+?)(?::(?P<value>[^)]+))?\)"
    r"|\{(?P<dict>[^}]+?)\}"
    r"|\[(?P<list>.*?)\])"
)
_ITEM_KINDS = ("intent", "synonym", "regex", "lookup")


@dataclass(frozen=True, slots=True)
class AnnotatedText:
    """An example with its annotations removed, the entities they marked, and the synonyms they imply."""

    text: str
    entities: tuple[Entity, ...] = ()
    synonyms: Mapping[str, str] = field(default_factory=dict)


def parse_annotated(text: str, *, source: Source | None = None, line: int = 0) -> AnnotatedText:
    """Strip Rasa entity annotations from `text`, returning the plain text, entities and implied synonyms."""
    plain: list[str] = []
    length = 0
    entities: list[Entity] = []
    synonyms: dict[str, str] = {}
    position = 0
    for match in _ANNOTATION.finditer(text):
        before = text[position : match.start()]
        plain.append(before)
        start = length + len(before)
        surface = match["text"]
        plain.append(surface)
        length = start + len(surface)
        position = match.end()
        for name, value, role, group in _annotation_targets(match, source, line):
            entities.append(
                Entity(name, value or surface, start, length, extractor=ANNOTATION_EXTRACTOR, role=role, group=group)
            )
            if value is not None and value != surface:
                synonyms[surface.lower()] = value
    plain.append(text[position:])
    return AnnotatedText("".join(plain), tuple(entities), synonyms)


_Target = tuple[str, str | None, str | None, str | None]  # entity, value, role, group


def _annotation_targets(match: re.Match[str], source: Source | None, line: int) -> list[_Target]:
    """What one annotation names; value, role and group are None when it does not say."""
    if match["entity"] is not None:
        return [(match["entity"].strip(), match["value"].strip() if match["value"] else None, None, None)]
    raw = "{" + match["dict"] + "}" if match["dict"] is not None else "[" + match["list"] + "]"
    hint = '[text]{"entity": "name", "value": "value"}'
    try:
        decoded = json.loads(raw)
    except json.JSONDecodeError as err:
        message = f"the annotation {match[0]!r} is not valid JSON ({err.msg}); write it like {hint}"
        raise _error(message, source, line) from err
    except RecursionError as err:  # json.loads recurses into nested arrays and objects
        raise _error(
            f"the annotation {match[0][:40]!r}... is nested too deeply; write it like {hint}", source, line
        ) from err
    targets = []
    for item in decoded if isinstance(decoded, list) else [decoded]:
        if not isinstance(item, dict) or not isinstance(item.get("entity"), str):
            raise _error(f'the annotation {match[0]!r} needs an "entity" name', source, line)
        value, role, group = (None if item.get(key) is None else str(item[key]) for key in ("value", "role", "group"))
        if any(mark in item["entity"] + (role or "") for mark in "@#"):
            raise _error(f"the annotation {match[0]!r} uses @ or # in a name; kefu keeps those for roles", source, line)
        targets.append((item["entity"], value, role, group))
    return targets


def _error(message: str, source: Source | None, line: int) -> ProjectError:
    return source.error(message, line) if source is not None else ProjectError(message)


class NluBuilder:
    """Collects `nlu:` sections of several files into one NluData, remembering each example's file."""

    def __init__(self) -> None:
        self._examples: list[NluExample] = []
        self._sources: list[str] = []
        self._synonyms: dict[str, tuple[str, str, int]] = {}  # surface -> (value, file, line)
        self._regexes: list[RegexFeature] = []
        self._lookups: dict[str, list[str]] = {}

    @property
    def sources(self) -> tuple[str, ...]:
        """The file of each example, in the order of `build().examples`."""
        return tuple(self._sources)

    def add(self, items: object, *, source: Source, line: int) -> None:
        """Add the items of one `nlu:` section (the value of the key at `line` of `source`)."""
        section = source.sequence(items, line, "`nlu:`")
        for index, item in enumerate(section):
            self._add_item(source.mapping(item, section.line_of(index), "an item under `nlu:`"), source)

    def build(self) -> NluData:
        """The collected data."""
        return NluData(
            examples=tuple(self._examples),
            synonyms={surface: value for surface, (value, _, _) in self._synonyms.items()},
            regexes=tuple(self._regexes),
            lookups={name: tuple(values) for name, values in self._lookups.items()},
        )

    def _add_item(self, item: LineMap, source: Source) -> None:
        kind = next((key for key in _ITEM_KINDS if key in item), None)
        if kind is None:
            raise source.error(
                "each item under `nlu:` needs one of `intent:`, `synonym:`, `regex:` or `lookup:`", item.line
            )
        name = source.name_of(item[kind], item.line_of(kind), f"`{kind}:`")
        if "examples" not in item:
            raise source.error(f"`{kind}: {name}` has no `examples:`; add them as a block of `- ` lines", item.line)
        examples = _examples(item, source)
        if kind == "intent":
            for text, line in examples:
                self._add_example(name, text, line, source)
        elif kind == "synonym":
            for text, line in examples:
                self._add_synonym(text, name, source, line)
        elif kind == "regex":
            self._regexes.extend(_regex(name, text, source, line) for text, line in examples)
        else:
            self._lookups.setdefault(name, []).extend(text for text, _ in examples)

    def _add_example(self, intent: str, text: str, line: int, source: Source) -> None:
        annotated = parse_annotated(text, source=source, line=line)
        if not annotated.text.strip():
            raise source.error(f"an example of intent `{intent}` has no text", line)
        self._examples.append(NluExample(annotated.text, intent, annotated.entities, line))
        self._sources.append(source.name)
        for surface, value in annotated.synonyms.items():
            self._add_synonym(surface, value, source, line)

    def _add_synonym(self, surface: str, value: str, source: Source, line: int) -> None:
        key = surface.lower()
        known = self._synonyms.get(key)
        if known is not None and known[0] != value:
            raise source.error(
                f"{surface!r} is a synonym of both {known[0]!r} ({known[1]}:{known[2]}) and {value!r}; keep one",
                line,
            )
        self._synonyms.setdefault(key, (value, source.name, line))


def parse_nlu(items: object, *, source: Source, line: int = 1) -> NluData:
    """The NluData of one `nlu:` section."""
    builder = NluBuilder()
    builder.add(items, source=source, line=line)
    return builder.build()


def _examples(item: LineMap, source: Source) -> list[tuple[str, int]]:
    """(text, line) of each example of an item, in either of Rasa's two forms."""
    value, line = item["examples"], item.line_of("examples")
    if isinstance(value, str):
        return _block_examples(value, line, source)
    examples = source.sequence(value, line, "`examples:`")
    found = []
    for index, entry in enumerate(examples):
        entry_line = examples.line_of(index)
        if isinstance(entry, LineMap):
            text = source.text_of(entry.get("text"), entry_line, "`text:` of an example")
        else:
            text = source.text_of(entry, entry_line, "an example")
        found.append((text.strip(), entry_line))
    return found


def _block_examples(block: str, line: int, source: Source) -> list[tuple[str, int]]:
    # In a `|` block the first example sits on the line after the key; a one-line string sits on it.
    first = line + 1 if "\n" in block else line
    found = []
    for offset, raw in enumerate(block.splitlines()):
        if not raw.strip():
            continue
        if not raw.lstrip().startswith("-"):
            raise source.error(f"an example line must start with `- `, found {raw.strip()!r}", first + offset)
        found.append((raw.lstrip()[1:].strip(), first + offset))
    return found


def _regex(name: str, pattern: str, source: Source, line: int) -> RegexFeature:
    try:
        re.compile(pattern)
    except re.error as err:
        message = f"the pattern {pattern!r} of regex `{name}` is not a valid regular expression: {err}"
        raise source.error(message, line) from err
    return RegexFeature(name, pattern)
