"""Writing small projects for the loader tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

MINIMAL_DOMAIN = """\
version: "3.1"
intents:
  - greet
responses:
  utter_greet:
    - text: hi
"""


def write_project(root: Path, files: dict[str, str]) -> Path:
    """Write `files` (relative path -> dedented text) under `root`; a domain.yml is added unless given."""
    if not any(name.startswith("domain") for name in files):
        files = {"domain.yml": MINIMAL_DOMAIN, **files}
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root
