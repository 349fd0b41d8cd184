"""Reading the safety stage's editable text files (lexicons, rule files) with errors that name the file."""

from __future__ import annotations

from pathlib import Path

from bot.errors import ProjectError


def read_text_file(path: Path, what: str) -> str:
    """The UTF-8 text of `path` (a BOM is dropped); ProjectError saying which `what` could not be read."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as err:
        raise ProjectError(f"{what} not found; check the path", path=str(path)) from err
    except (OSError, UnicodeDecodeError) as err:
        raise ProjectError(f"cannot read {what} (it must be UTF-8 text): {err}", path=str(path)) from err
