"""`kefu test stories`: runs test stories (Rasa's test_stories.yml) through the whole bot and compares the
intents and actions of each turn; a failed story reports its first diverging step."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from bot.project.stories import parse_stories
from bot.project.yaml_io import Source, read_yaml
from bot.runtime import Bot
from bot.types import ACTION_LISTEN, Message, Story, StoryStep


@dataclass(frozen=True, slots=True)
class Divergence:
    """Where a story and the bot first parted: the step's line, the user text, what was expected and got."""

    line: int
    text: str
    expected: str
    got: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.text!r}: expected {self.expected}, got {self.got}"


@dataclass(frozen=True, slots=True)
class StoryResult:
    story: str
    source: str
    divergence: Divergence | None = None

    @property
    def passed(self) -> bool:
        return self.divergence is None


async def run_story(bot: Bot, story: Story) -> StoryResult:
    """Play the story's user messages in a new conversation; stop at the first turn that differs."""
    conversation = f"test:{uuid.uuid4().hex[:12]}"
    for user, expected_actions in _turns(story):
        message = Message(conversation, "test", conversation, uuid.uuid4().hex, user.text or "", time.time())
        answer = await bot.handle(message)
        trace = answer.trace
        text = (user.text or "").strip()
        if trace is None or trace.nlu is None:
            return StoryResult(story.name, story.source, Divergence(user.line, text, "a reply", "a failed turn"))
        if user.name and trace.nlu.intent != user.name:
            got = f"intent {trace.nlu.intent} ({trace.nlu.confidence:.2f})"
            return StoryResult(story.name, story.source, Divergence(user.line, text, f"intent {user.name}", got))
        actions = [d.action for d in trace.decisions if d.action != ACTION_LISTEN]
        if actions != expected_actions:
            divergence = Divergence(user.line, text, f"actions {expected_actions}", f"actions {actions}")
            return StoryResult(story.name, story.source, divergence)
    return StoryResult(story.name, story.source)


def load_test_stories(file: Path) -> tuple[Story, ...]:
    """The stories of a file in Rasa's test_stories.yml format; a problem raises ProjectError with file and line."""
    raw = read_yaml(file)
    source = Source(file)
    if "stories" not in raw:
        raise source.error("there is no `stories:` section; write test stories in Rasa's test_stories.yml format", 1)
    return parse_stories(raw["stories"], source=source, line=raw.line_of("stories"), is_rule=False)


def format_results(results: list[StoryResult]) -> str:
    lines = []
    for result in results:
        lines.append(f"{'PASS' if result.passed else 'FAIL'} {result.story}")
        if result.divergence is not None:
            lines.append(f"     {result.source}:{result.divergence}")
    failed = sum(not r.passed for r in results)
    lines.append(f"{len(results) - failed} passed, {failed} failed")
    return "\n".join(lines)


def results_json(results: list[StoryResult]) -> str:
    failures = [{"story": r.story, "file": r.source, **asdict(r.divergence)} for r in results if r.divergence]
    passed = sum(r.passed for r in results)
    summary = {"stories_total": len(results), "stories_passed": passed, "stories_failed": len(results) - passed}
    return json.dumps({**summary, "failures": failures}, ensure_ascii=False)


def _turns(story: Story) -> list[tuple[StoryStep, list[str]]]:
    turns: list[tuple[StoryStep, list[str]]] = []
    for step in story.steps:
        if step.kind == "user":
            turns.append((step, []))
        elif step.kind == "action" and turns and step.name != ACTION_LISTEN:
            turns[-1][1].append(str(step.name))
    return turns
