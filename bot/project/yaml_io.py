"""Reading project YAML safely, with the line of every mapping, key and list item kept for error messages.

Mappings load as `LineMap` and sequences as `LineList`: plain `dict` and `list` subclasses that also carry
1-based line numbers, so the parsers can say "data/rules.yml:12" without a second pass over the text.
Booleans follow YAML 1.2 (only true/false), as Rasa reads them: `yes`, `no`, `on`, `off` stay strings,
so a categorical slot may have the values `yes` and `no`.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from bot.errors import ProjectError
from bot.types import SlotValue


class LineMap(dict[Any, Any]):
    """A YAML mapping that remembers its own line and the line of each key."""

    def __init__(self, line: int = 0) -> None:
        super().__init__()
        self.line = line
        self.key_lines: dict[Any, int] = {}

    def line_of(self, key: object) -> int:
        """The line of `key`, or of the mapping itself when the key is absent."""
        return self.key_lines.get(key, self.line)


class LineList(list[Any]):
    """A YAML sequence that remembers its own line and the line of each item."""

    def __init__(self, line: int = 0) -> None:
        super().__init__()
        self.line = line
        self.item_lines: list[int] = []

    def line_of(self, index: int) -> int:
        """The line of item `index`, or of the sequence itself when unknown."""
        return self.item_lines[index] if 0 <= index < len(self.item_lines) else self.line


class _Loader(yaml.SafeLoader):
    """SafeLoader with line-carrying containers, YAML 1.2 booleans and an error on a repeated key."""


# Remove YAML 1.1 booleans (yes/no/on/off) and resolve only true/false, as YAML 1.2 does.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> Iterator[LineMap]:
    data = LineMap(node.start_mark.line + 1)
    yield data
    _reject_repeated_keys(node)
    data.update(loader.construct_mapping(node))
    data.key_lines = {
        loader.construct_object(key_node): key_node.start_mark.line + 1
        for key_node, _ in node.value
        if isinstance(key_node, yaml.ScalarNode)
    }


def _construct_seq(loader: _Loader, node: yaml.SequenceNode) -> Iterator[LineList]:
    data = LineList(node.start_mark.line + 1)
    yield data
    data.extend(loader.construct_sequence(node))
    data.item_lines = [child.start_mark.line + 1 for child in node.value]


def _reject_repeated_keys(node: yaml.MappingNode) -> None:
    # PyYAML silently keeps the last of two equal keys; a repeated response or slot is a mistake to show.
    seen: set[str] = set()
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            continue
        if key_node.value in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"the key {key_node.value!r} appears twice in the same mapping", key_node.start_mark
            )
        seen.add(key_node.value)


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


def parse_yaml(text: str, *, path: Path) -> object:
    """The YAML document in `text`; syntax errors become ProjectError with the file and line."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader subclass
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = " ".join(part for part in (err.context, err.problem) if part)
        tabs = "\\t" in problem  # PyYAML writes a tab as the two characters backslash and t
        fix = (
            "indent with spaces there: YAML does not allow tabs" if tabs else "check the indentation and quoting there"
        )
        raise ProjectError(
            f"this is not valid YAML ({problem}); {fix}",
            path=str(path),
            line=line,
        ) from err
    except yaml.YAMLError as err:
        raise ProjectError(f"this is not valid YAML: {err}", path=str(path)) from err
    except RecursionError as err:  # PyYAML parses nested collections recursively
        raise ProjectError(
            "the YAML is nested too deeply to read (hundreds of levels); flatten it", path=str(path)
        ) from err


def read_yaml(path: Path) -> LineMap:
    """The top-level mapping of the YAML file at `path`; an empty file is an empty mapping."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ProjectError("the file is not UTF-8 text; save it as UTF-8", path=str(path)) from err
    except OSError as err:
        raise ProjectError(f"cannot read the file: {err.strerror}", path=str(path)) from err
    data = parse_yaml(text, path=path)
    if data is None:
        return LineMap()
    if not isinstance(data, LineMap):
        raise ProjectError(
            f"the file must be a mapping of keys (like `intents:`), not {type_name(data)}",
            path=str(path),
            line=_line(data),
        )
    return data


def type_name(value: object) -> str:
    """How a YAML user would call the type of `value`, with its article ("a list", "an empty value")."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, datetime.date):  # YAML reads an unquoted 2024-01-01 as a date
        return f"the date {value.isoformat()} (quote it to make it text)"
    if isinstance(value, bytes):
        return "binary data"
    return f"the text {value!r}" if isinstance(value, str) else "text"


def _line(value: object) -> int | None:
    return value.line if isinstance(value, LineMap | LineList) else 1


class Source:
    """One project file being parsed: narrows YAML values to the expected types, or raises with the line."""

    def __init__(self, path: Path, *, name: str | None = None) -> None:
        self.path = path
        self.name = name if name is not None else path.as_posix()  # as recorded in Story.source

    def error(self, message: str, line: int | None) -> ProjectError:
        """A ProjectError pointing at `line` of this file."""
        return ProjectError(message, path=str(self.path), line=line)

    def mapping(self, value: object, line: int, what: str) -> LineMap:
        """`value` as a mapping; an empty value is an empty mapping."""
        if value is None:
            return LineMap(line)
        if not isinstance(value, LineMap):
            raise self.error(f"{what} must be a mapping (`key: value` lines), not {type_name(value)}", line)
        return value

    def sequence(self, value: object, line: int, what: str) -> LineList:
        """`value` as a list; an empty value is an empty list."""
        if value is None:
            return LineList(line)
        if not isinstance(value, LineList):
            raise self.error(f"{what} must be a list (`- item` lines), not {type_name(value)}", line)
        return value

    def name_of(self, value: object, line: int, what: str) -> str:
        """`value` as a non-empty name (intent, action, slot ...)."""
        if not isinstance(value, str) or not value.strip():
            raise self.error(f"{what} must be a name, not {type_name(value)}", line)
        return value.strip()

    def text_of(self, value: object, line: int, what: str) -> str:
        """`value` as text; numbers and booleans are written as YAML shows them."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str | int | float):
            return str(value)
        raise self.error(f"{what} must be text, not {type_name(value)}", line)

    def flag(self, value: object, line: int, what: str) -> bool:
        """`value` as a boolean (`true` or `false`)."""
        if not isinstance(value, bool):
            raise self.error(f"{what} must be `true` or `false`, not {value!r}", line)
        return value

    def slot_value(self, value: object, line: int) -> SlotValue:
        """`value` as a slot value: text, a number, a boolean, a list of text, or empty."""
        if value is None or isinstance(value, str | int | float | bool):
            return value
        if isinstance(value, LineList):
            return [self.text_of(item, value.line_of(i), "an item of a list value") for i, item in enumerate(value)]
        raise self.error(f"a slot value must be text, a number, a boolean or a list, not {type_name(value)}", line)
