"""`kefu test generation`: ask the whole bot labelled questions and score its grounded answers."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from bot.errors import ConfigError
from bot.generation.evaluation import (
    GenerationQuery,
    GenerationReport,
    evaluate_generation,
    format_generation_report,
    load_generation_queries,
)
from bot.nlu.embedder import E5Embedder
from bot.settings import Settings
from bot.wiring import Runtime, build_runtime, open_project, train

QUERIES_FILE = Path("tests") / "generation_queries.csv"


def run_test_generation(path: Path, settings: Settings, *, file: Path | None, as_json: bool) -> int:
    """Score faithfulness, relevance and don't-know rates; prints a table, or one JSON object with `--json`."""
    project = open_project(path, settings)
    queries_file = file or project.root / QUERIES_FILE
    if not queries_file.is_file():
        raise ConfigError(
            f"{queries_file}: no generation queries; pass --file with a CSV of question,lang,answerable,expected"
        )
    queries = load_generation_queries(queries_file)
    train(project, progress=not as_json)  # a no-op when the project did not change
    runtime = build_runtime(project, settings)
    report = asyncio.run(_evaluate(runtime, queries, progress=not as_json))
    print(json.dumps(report.to_json(), ensure_ascii=False) if as_json else format_generation_report(report))
    return 0


async def _evaluate(runtime: Runtime, queries: list[GenerationQuery], *, progress: bool) -> GenerationReport:
    try:
        runtime.bot.warm_up()
        generator = runtime.generator
        warm = getattr(generator, "warm_up", None)
        if generator is not None and callable(warm):  # load the LLM now, so latency is the answers' alone
            if progress:
                print(f"Loading the generator {generator.name}...", file=sys.stderr)
            warm()
        return await evaluate_generation(runtime.bot, queries, E5Embedder())
    finally:
        await runtime.aclose()
