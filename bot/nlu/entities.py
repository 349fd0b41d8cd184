"""Rule-based entity extraction: regexes, lookup tables and a gazetteer of annotated values.

Rasa treats regexes and lookup tables mostly as classifier features; kefu's baseline also lets
them extract entities: a regex extracts when its name is a known entity (one the domain declares
or the training data annotates), a lookup table always extracts the entity it is named after.
Overlapping matches are resolved once, globally: the longer span wins, then regex > lookup >
gazetteer. Synonyms then map every value to its canonical form.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from bot.errors import ProjectError
from bot.types import Entity, NluData

REGEX = "regex"
LOOKUP = "lookup"
GAZETTEER = "gazetteer"
_PRIORITY = {REGEX: 0, LOOKUP: 1, GAZETTEER: 2}
# A gazetteer value was only ever seen in an example, so it is trusted a little less than a rule.
_CONFIDENCE = {REGEX: 1.0, LOOKUP: 1.0, GAZETTEER: 0.9}


def _is_ascii_alnum(char: str) -> bool:
    return char.isascii() and char.isalnum()


def _fold(text: str) -> str:
    """Lower-case without changing the length, so offsets in the folded text are offsets in `text`."""
    return "".join(low if len(low := char.lower()) == 1 else char for char in text)


@dataclass(frozen=True, slots=True)
class _Match:
    name: str
    value: str
    start: int
    end: int
    extractor: str


class _Gazetteer:
    """Exact, case-insensitive phrase matching by hashing every candidate substring length.

    Works inside Chinese text with no spaces; an ASCII word only matches at ASCII word
    boundaries, so "pro" is not found inside "product" but "X1" is found in "我的X1坏了".
    """

    def __init__(self, phrases: Mapping[str, tuple[str, str]], extractor: str) -> None:
        self.phrases = {_fold(surface): entry for surface, entry in phrases.items() if surface.strip()}
        # The lengths of the phrases starting with each character, longest first: most positions of a text start
        # no phrase, and one lookup passes them over instead of one per phrase length.
        lengths: dict[str, set[int]] = {}
        for surface in self.phrases:
            lengths.setdefault(surface[0], set()).add(len(surface))
        self.lengths = {first: sorted(found, reverse=True) for first, found in lengths.items()}
        self.extractor = extractor

    def find(self, text: str) -> list[_Match]:
        """At every position, the longest phrase that starts there."""
        folded, matches = _fold(text), []
        for start in range(len(text)):
            for length in self.lengths.get(folded[start], ()):
                end = start + length
                entry = self.phrases.get(folded[start:end]) if end <= len(text) else None
                if entry is not None and self._at_boundaries(text, start, end):
                    matches.append(_Match(entry[0], entry[1], start, end, self.extractor))
                    break
        return matches

    @staticmethod
    def _at_boundaries(text: str, start: int, end: int) -> bool:
        if _is_ascii_alnum(text[start]) and start > 0 and _is_ascii_alnum(text[start - 1]):
            return False
        return not (_is_ascii_alnum(text[end - 1]) and end < len(text) and _is_ascii_alnum(text[end]))


class EntityExtractor:
    """Extracts `Entity`s with regexes, lookup tables and annotated values, then applies synonyms."""

    def __init__(
        self,
        *,
        regexes: Iterable[tuple[str, str]] = (),
        lookups: Mapping[str, Iterable[str]] | None = None,
        gazetteer: Mapping[str, tuple[str, str]] | None = None,
        synonyms: Mapping[str, str] | None = None,
    ) -> None:
        self._regex_specs = [(name, pattern) for name, pattern in regexes]
        self._regexes = [(name, _compile(name, pattern)) for name, pattern in self._regex_specs]
        self._lookup_specs = {name: sorted(set(values)) for name, values in (lookups or {}).items()}
        lookup_phrases = {v: (name, v) for name, values in sorted(self._lookup_specs.items()) for v in values}
        self._lookups = _Gazetteer(lookup_phrases, LOOKUP)
        self._gazetteer = _Gazetteer(dict(gazetteer or {}), GAZETTEER)
        self._synonyms = {surface.lower(): canonical for surface, canonical in (synonyms or {}).items()}

    @classmethod
    def from_data(cls, data: NluData, entity_names: Collection[str] = ()) -> EntityExtractor:
        """Build from training data; `entity_names` are the domain's entities (annotated ones are added)."""
        annotated = {entity.name for example in data.examples for entity in example.entities}
        known = set(entity_names) | annotated | set(data.lookups)
        return cls(
            regexes=[(r.name, r.pattern) for r in data.regexes if r.name in known],
            lookups=data.lookups,
            gazetteer=_annotated_values(data),
            synonyms=data.synonyms,
        )

    def extract(self, text: str) -> tuple[Entity, ...]:
        """All entities in `text`, without overlaps, in reading order."""
        candidates = self._regex_matches(text) + self._lookups.find(text) + self._gazetteer.find(text)
        candidates.sort(key=lambda m: (m.start - m.end, _PRIORITY[m.extractor], m.start, m.name))
        taken: list[_Match] = []
        for match in candidates:
            if all(match.end <= other.start or match.start >= other.end for other in taken):
                taken.append(match)
        taken.sort(key=lambda m: m.start)
        return tuple(self._entity(m) for m in taken)

    def _regex_matches(self, text: str) -> list[_Match]:
        return [
            _Match(name, found.group(0), found.start(), found.end(), REGEX)
            for name, pattern in self._regexes
            for found in pattern.finditer(text)
            if found.end() > found.start()  # a pattern that can match nothing must not make empty entities
        ]

    def _entity(self, match: _Match) -> Entity:
        value = self._synonyms.get(match.value.lower(), match.value)
        return Entity(match.name, value, match.start, match.end, _CONFIDENCE[match.extractor], match.extractor)

    def with_synonym(self, entity: Entity) -> Entity:
        """`entity` with its value mapped to the canonical value of a synonym, if it is one."""
        value = self._synonyms.get(entity.value.lower(), entity.value)
        return entity if value == entity.value else replace(entity, value=value)

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe description from which `from_json` rebuilds the same extractor."""
        return {
            "regexes": [list(spec) for spec in self._regex_specs],
            "lookups": self._lookup_specs,
            "gazetteer": {surface: list(entry) for surface, entry in sorted(self._gazetteer.phrases.items())},
            "synonyms": dict(sorted(self._synonyms.items())),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EntityExtractor:
        return cls(
            regexes=[(str(name), str(pattern)) for name, pattern in data.get("regexes", [])],
            lookups={str(name): [str(v) for v in values] for name, values in data.get("lookups", {}).items()},
            gazetteer={str(s): (str(e[0]), str(e[1])) for s, e in data.get("gazetteer", {}).items()},
            synonyms={str(k): str(v) for k, v in data.get("synonyms", {}).items()},
        )


def _compile(name: str, pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as err:
        raise ProjectError(f"regex {name!r} is not a valid regular expression ({err}); fix its pattern") from err


def _annotated_values(data: NluData) -> dict[str, tuple[str, str]]:
    """Surface text -> (entity name, annotated value); a surface annotated differently keeps its most common reading."""
    seen: dict[str, Counter[tuple[str, str]]] = {}
    for example in data.examples:
        for entity in example.entities:
            surface = example.text[entity.start : entity.end]
            if surface.strip():
                seen.setdefault(_fold(surface), Counter())[(entity.name, entity.value)] += 1
    # Ties go to the alphabetically first reading, so the result does not depend on example order.
    return {surface: min(counts, key=lambda k: (-counts[k], k)) for surface, counts in seen.items()}
