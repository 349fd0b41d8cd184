"""`kefu index` and `kefu test knowledge`: build the knowledge index, reload a server, score retrieval."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import httpx

from bot.errors import ConfigError, ProjectError
from bot.nlu.embedder import E5Embedder
from bot.settings import Settings
from bot.wiring import knowledge_base, open_project
from knowledge.evaluation import evaluate, format_evaluation, load_queries
from knowledge.problems import Problem

QUERIES_FILE = Path("tests") / "knowledge_queries.csv"
RELOAD_PATH = "/admin/knowledge/reload"


def run_index(path: Path, settings: Settings, *, reload: bool, url: str | None) -> int:
    """Index what changed in PROJECT/knowledge; with `reload`, then ask the running server to reload."""
    project = open_project(path, settings)
    report = knowledge_base(project, E5Embedder()).reload(progress=True)
    for problem in report.problems:
        print(f"skipped: {problem}", file=sys.stderr)
    print(f"Indexed {path}: {report.summary()}.")
    if not reload:
        return 0
    return _reload_server(url or f"http://{settings.host}:{settings.port}", settings)


def _reload_server(base_url: str, settings: Settings) -> int:
    if settings.admin_token is None:
        raise ConfigError("--reload needs the server's admin token: set KEFU_ADMIN_TOKEN as for `kefu run`")
    headers = {"Authorization": f"Bearer {settings.admin_token.get_secret_value()}"}
    try:
        answer = httpx.post(base_url.rstrip("/") + RELOAD_PATH, headers=headers, timeout=600)
    except httpx.HTTPError as err:
        raise ConfigError(f"cannot reach the server at {base_url} ({err}); is `kefu run` up? pass --url") from err
    if answer.status_code != 200:
        detail = answer.json().get("error", answer.text) if _is_json(answer) else answer.text
        print(f"kefu: the server refused the reload ({answer.status_code}): {detail}", file=sys.stderr)
        return 1
    print(f"The server at {base_url} reloaded its knowledge in {answer.json().get('seconds', 0):.1f}s.")
    return 0


def _is_json(answer: httpx.Response) -> bool:
    return str(answer.headers.get("content-type", "")).startswith("application/json")


def run_knowledge_test(path: Path, settings: Settings, *, file: Path | None, as_json: bool) -> int:
    """Score retrieval on labelled queries; prints a table, or one JSON object with `--json`."""
    project = open_project(path, settings)
    queries_file = file or project.root / QUERIES_FILE
    if not queries_file.is_file():
        raise ProjectError("no labelled queries: pass --file with a CSV of query,expected,lang", path=str(queries_file))
    problems: list[Problem] = []
    queries = load_queries(queries_file, problems)
    base = knowledge_base(project, E5Embedder())
    base.reload(progress=not as_json)
    evaluation = evaluate(base, queries)
    evaluation = replace(evaluation, problems=tuple(problems))
    print(json.dumps(evaluation.to_json(), ensure_ascii=False) if as_json else format_evaluation(evaluation))
    return 0
