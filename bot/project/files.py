"""`ProjectFiles`: everything the loader read from a project folder, parsed into the core project model."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bot.types import Domain, NluData, Story

Location = tuple[str, int]  # (file path as shown in messages, 1-based line)


@dataclass(frozen=True, slots=True)
class ProjectFiles:
    """A loaded (not yet validated) project: call `bot.project.validate` before using it.

    `files` lists every file read, in reading order, for hashing. `nlu_sources[i]` is the file (relative
    to `root`) of `nlu.examples[i]`; `Story.source` is relative to `root` too. `locations` says where
    each domain declaration sits, keyed by ("intent", name), ("entity", name), ("action", name),
    ("slot", name), ("response", name), ("form", name) and ("form_slot", form, slot).
    """

    root: Path
    domain: Domain
    nlu: NluData
    rules: tuple[Story, ...]
    stories: tuple[Story, ...]
    test_stories: tuple[Story, ...]
    fallback_threshold: float | None
    language: str | None
    files: tuple[Path, ...]
    nlu_sources: tuple[str, ...] = ()
    locations: Mapping[tuple[str, ...], Location] = field(default_factory=dict)

    def path_of(self, name: str) -> Path:
        """The path of a file named relative to the project root (as in `Story.source`)."""
        return self.root / name
