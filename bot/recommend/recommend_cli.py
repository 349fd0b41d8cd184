"""`kefu test recommend [PROJECT] [--file F | --from-archive] [--split 0.5] [--seed 0] [--json]`: hit rate@3 of
the project's question recommendations on replayed conversations, before and after learning. Needs the knowledge
index only: no Redis, no server, no trained NLU (the learned counts stay in memory)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

from bot.assist.archive import ArchivedSession, open_archive
from bot.errors import ConfigError, ProjectError
from bot.nlu.embedder import E5Embedder
from bot.recommend.conversations import (
    CONVERSATIONS_FILE,
    ItemFinder,
    archived_conversations,
    read_conversations,
    resolve,
)
from bot.recommend.evaluation import Comparison, Conversation, compare, comparison_json, format_comparison
from bot.recommend.recommender import Recommender
from bot.settings import Settings
from bot.wiring import Project, knowledge_base, open_project, recommend_stage

DEFAULT_SPLIT = 0.5


def run_recommend_test(
    path: Path,
    settings: Settings,
    *,
    file: Path | None = None,
    from_archive: bool = False,
    split: float | None = None,
    seed: int | None = None,
    as_json: bool = False,
) -> int:
    """Replay the conversations (the file, the archive, else PROJECT/tests/recommend_conversations.yml) and
    print hit rate@3 before and after learning: a table, or one JSON object with `as_json`."""
    fraction = DEFAULT_SPLIT if split is None else split
    if not 0 <= fraction < 1:
        raise ConfigError(f"--split {fraction:g}: the share of conversations to learn from is at least 0 and below 1")
    if file is not None and from_archive:
        raise ConfigError("pass --file or --from-archive, not both")
    project = open_project(path, settings)
    source = file or project.root / CONVERSATIONS_FILE
    if not from_archive and not source.is_file():
        raise ProjectError(
            "no conversations to replay: write this file (see `kefu test --help`), or pass --file or --from-archive",
            path=str(source),
        )
    written = None if from_archive else read_conversations(source)  # a malformed file fails before any indexing
    recommender = _recommender(project, progress=not as_json)
    if written is None:
        conversations, unresolved = _from_archive(project, settings, recommender)
    else:
        knowledge = recommender.knowledge
        min_score = project.config.knowledge.min_score
        finder = ItemFinder(recommender.catalog, knowledge, min_score=min_score, embed=knowledge.embedder.embed_queries)
        conversations, unresolved = resolve(written, finder, path=source, progress=not as_json)
    if not any(c.items for c in conversations):
        where = "the archive" if from_archive else str(source)
        raise ProjectError(f"{where}: no conversation has a question the knowledge base answers; nothing to replay")
    comparison = compare(recommender, conversations, fraction=fraction, seed=seed or 0, progress=not as_json)
    comparison = dataclasses.replace(comparison, unresolved=tuple(unresolved))
    print(json.dumps(comparison_json(comparison), ensure_ascii=False) if as_json else _report(comparison))
    return 0


def _recommender(project: Project, *, progress: bool) -> Recommender:
    """The project's recommender as `kefu run` configures it, over its freshly synced knowledge index."""
    knowledge = knowledge_base(project, E5Embedder())
    knowledge.reload(progress=progress)
    stage = recommend_stage(project, knowledge)
    if stage is None:
        raise ConfigError("recommendations are off in kefu.yml (`recommend: {enabled: false}`): turn them on first")
    stage.recommender.warm_up()
    return stage.recommender


def _from_archive(
    project: Project, settings: Settings, recommender: Recommender
) -> tuple[list[Conversation], list[str]]:
    sessions = asyncio.run(_archived(project, settings))
    if not sessions:
        raise ProjectError("the archive holds no session yet: run `kefu archive --now` after some conversations")
    return archived_conversations(((s.language, s.events) for s in sessions), recommender.catalog)


async def _archived(project: Project, settings: Settings) -> list[ArchivedSession]:
    archive = open_archive(project, settings)
    try:
        await archive.open()
        return await archive.sessions(since=None)
    finally:
        await archive.close()


def _report(comparison: Comparison) -> str:
    shown = comparison.unresolved[:5]
    more = len(comparison.unresolved) - len(shown)
    lines = [format_comparison(comparison), *(f"  {entry}" for entry in shown)]
    return "\n".join([*lines, *([f"  ... and {more} more"] if more > 0 else [])])
