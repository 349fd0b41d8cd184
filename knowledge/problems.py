"""What was wrong in a knowledge file and skipped: the rest of the file still loads."""

from __future__ import annotations

from dataclasses import dataclass

from bot.errors import ProjectError


@dataclass(frozen=True, slots=True)
class Problem:
    """One skipped row, entry or section, with where it is and how to fix it."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}" if self.line else f"{self.path}: {self.message}"

    @classmethod
    def of(cls, error: ProjectError) -> Problem:
        return cls(error.path or "", error.line or 0, error.message)
