"""`kefu init`: copy the bilingual starter project (the files under `starter/`) into a folder."""

from __future__ import annotations

import shutil
from pathlib import Path

from bot.errors import ProjectError

STARTER = Path(__file__).with_name("starter")


def write_starter_project(target: Path, *, force: bool = False) -> None:
    """Write the starter project into `target`, creating it if needed.

    A folder that already holds files is refused unless `force`; with `force` the starter's files
    replace files of the same name and every other file stays.
    """
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise ProjectError("this is a file, not a folder; name a new or empty folder", path=str(target))
    if target.is_dir() and any(target.iterdir()) and not force:
        raise ProjectError(
            "the folder is not empty; name a new or empty folder, or pass --force to overwrite the starter's files",
            path=str(target),
        )
    try:
        shutil.copytree(STARTER, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    except OSError as err:
        raise ProjectError(f"cannot write the starter project: {err}", path=str(target)) from err
