"""`kefu test safety` (red-team evaluation of the whole bot) and `kefu train safety` (the abuse classifier)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from bot.errors import ConfigError
from bot.events import HandedOff, RiskFlagged, SafetyBlocked, Session
from bot.nlu.embedder import E5Embedder
from bot.settings import Settings
from bot.turn import TurnParts, run_turn
from bot.types import Message
from bot.wiring import Project, build_parts, open_project, train
from safety.redteam import RedTeamItem, RedTeamResult, format_score, plot_categories, read_redteam, score
from safety.toxicity_train import train_from_cold

REDTEAM_FILE = Path("tests") / "redteam.csv"
DEFAULT_COLD = Path("..") / "shared" / "data" / "cold"


def run_test_safety(path: Path, settings: Settings, *, file: Path | None, as_json: bool, out: Path | None) -> int:
    """Send every red-team item to the bot as the first message of a new conversation; score the refusals."""
    project = open_project(path, settings)
    redteam = file or project.root / REDTEAM_FILE
    if not redteam.is_file():
        raise ConfigError(f"{redteam}: no red-team file; pass --file with a CSV of text,should_refuse,category,lang")
    items = read_redteam(redteam)
    train(project, progress=not as_json)  # a no-op when the project did not change
    wired = build_parts(project, settings)
    for warm_up in wired.warm_ups:
        warm_up()
    results = asyncio.run(evaluate(wired.parts, items, progress=not as_json))
    figures = score(results)
    chart = plot_categories(figures, (out or project.data_dir / "reports" / "safety") / "refusals.png")
    figures["chart"] = str(chart)
    print(json.dumps(figures, ensure_ascii=False) if as_json else f"{format_score(figures)}\n\nchart: {chart}")
    return 0


async def evaluate(parts: TurnParts, items: Sequence[RedTeamItem], *, progress: bool = False) -> list[RedTeamResult]:
    results = []
    for index, item in enumerate(tqdm(items, desc="red team", unit="item", disable=not progress)):
        message = Message(f"redteam-{index}", "redteam", "redteam", "", item.text, time.time())
        turn = await run_turn(parts, Session(message.conversation_id), message)
        results.append(RedTeamResult(item, *_refused(turn.session, [r.template or "" for r in turn.replies])))
    return results


def _refused(session: Session, templates: list[str]) -> tuple[bool, str]:
    """Did the safety stage intervene (block, replace, escalate, or a flag that handed off)? And how."""
    for event in session.new_events:
        if isinstance(event, SafetyBlocked):
            return True, f"{event.check}:{event.category}"
    flags = [e for e in session.new_events if isinstance(e, RiskFlagged)]
    if flags and any(isinstance(e, HandedOff) for e in session.new_events):
        return True, f"{flags[0].check}:{flags[0].category} (handoff)"
    return False, ",".join(t for t in templates if t) or "answered"


def run_train_safety(path: Path, settings: Settings, *, data: Path | None, force: bool, limit: int | None) -> int:
    """Train the abuse classifier on COLD (plus kefu's English seed set) into PROJECT/.kefu/models/safety."""
    project: Project = open_project(path, settings)
    cold = data or DEFAULT_COLD
    if not (cold / "train.csv").is_file():
        raise ConfigError(
            f"{cold}: COLD not found (train.csv, dev.csv, test.csv from github.com/thu-coai/COLDataset); "
            "pass --file DIR"
        )
    dense = project.config.nlu.dense_features
    embedder = E5Embedder() if dense else None
    metrics = train_from_cold(cold, project.toxicity_dir, embedder=embedder, limit=limit, force=force, progress=_stderr)
    figures = ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if isinstance(v, float))
    print(f"Abuse classifier in {project.toxicity_dir} ({figures}).")
    return 0


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)
