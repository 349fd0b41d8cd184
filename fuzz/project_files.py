"""Fuzzes the project's file loaders: an input's first line names the file (domain.yml, data/nlu.yml, ...,
kefu.yml, knowledge/faq.csv, knowledge/graph.csv ...; an unknown name picks one by its first byte) and the
rest is its content, written into one reused temp folder per file. YAML files go through `load_project` and
`validate` (beside a small fixed domain.yml), kefu.yml through `load_project_config`, the knowledge files
through `load_faq` and `load_graph` collecting problems. A KefuError with a message is the refusal; anything
else is a crash.

    .venv/bin/python -m fuzz.project_files -runs=5000 fuzz/corpus/project_files
    mkdir -p /tmp/corpus && .venv/bin/python -m fuzz.project_files -max_total_time=600 -artifact_prefix=/tmp/ \\
        /tmp/corpus fuzz/corpus/project_files
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import atheris

from fuzz import attempt

with atheris.instrument_imports(include=["bot", "knowledge"]):
    from bot.errors import KefuError, ProjectError
    from bot.project.loader import load_project, validate
    from bot.settings import load_project_config
    from knowledge.faq import load_faq
    from knowledge.graph import load_graph
    from knowledge.problems import Problem

FILES = ("domain.yml", "data/nlu.yml", "data/rules.yml", "data/stories.yml", "tests/test_stories.yml",
         "config.yml", "kefu.yml", "knowledge/faq.csv", "knowledge/faq.md", "knowledge/entities.csv",
         "knowledge/relations.csv", "knowledge/graph.csv")  # fmt: skip
DOMAIN = """\
intents: [greet, check_order]
entities: [order_id]
slots:
  order_id: {type: text, mappings: [{type: from_entity, entity: order_id}]}
forms:
  order_form: {required_slots: [order_id]}
responses:
  utter_greet: [{text: "你好 / Hello"}]
  utter_ask_order_id: [{text: "订单号？ / Order number?"}]
"""  # what the seeds of the other files name
GRAPH = {
    "entities.csv": "id,name_zh,name_en\nx1,星耀X1,X1\n",
    "relations.csv": "id,name_zh,name_en\nprice,价格,price\n",
}
# libFuzzer ends the process without running atexit: each run's folder is swept by a later run
ROOT = Path(tempfile.gettempdir()) / f"kefu-fuzz-files-{os.getpid()}"


def _sweep() -> None:
    """Remove the folders of earlier runs that have ended."""
    for folder in ROOT.parent.glob("kefu-fuzz-files-*"):
        try:
            os.kill(int(folder.name.rsplit("-", 1)[1]), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except (ValueError, PermissionError):
            pass


def _folder(name: str) -> Path:
    """The project folder of file `name`, with what the file needs beside it; made once."""
    folder = ROOT / name.replace("/", "-")
    if not folder.is_dir():
        (folder / "knowledge").mkdir(parents=True)
        (folder / "domain.yml").write_text(DOMAIN, encoding="utf-8")
        for other, content in GRAPH.items():
            if name == "knowledge/graph.csv":
                (folder / "knowledge" / other).write_text(content, encoding="utf-8")
    return folder


def _load(name: str, folder: Path) -> None:
    problems: list[Problem] = []  # the knowledge loaders report bad rows here and skip them
    if name == "kefu.yml":
        load_project_config(folder)
    elif name.startswith("knowledge/faq"):
        load_faq(folder / name, problems)
    elif name.startswith("knowledge/"):
        load_graph(folder / "knowledge", problems)
    else:
        validate(load_project(folder))
    assert all(problem.message.strip() for problem in problems), problems


def test_one_input(data: bytes) -> None:
    header, _, content = data.partition(b"\n")
    name = header.decode("utf-8", errors="replace").strip()
    name = name if name in FILES else FILES[(data or b"\0")[0] % len(FILES)]
    folder = _folder(name)
    (folder / name).parent.mkdir(exist_ok=True)
    (folder / name).write_bytes(content)
    refusal = attempt(lambda: _load(name, folder), KefuError)
    if refusal is not None:
        assert str(refusal).strip(), f"{type(refusal).__name__} without a message"
    if isinstance(refusal, ProjectError) and refusal.path:
        assert Path(refusal.path).resolve().is_relative_to(ROOT.resolve()), refusal  # it names the file


def main() -> None:
    _sweep()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
