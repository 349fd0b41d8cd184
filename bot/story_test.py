"""`kefu test`: runs the project's test stories through the whole bot and compares intents and actions."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from bot.runtime import Bot
from bot.types import ACTION_LISTEN, Message, Story, StoryStep


@dataclass(frozen=True, slots=True)
class StoryResult:
    story: str
    passed: bool
    problems: tuple[str, ...] = ()


async def run_story(bot: Bot, story: Story) -> StoryResult:
    conversation = f"test:{uuid.uuid4().hex[:12]}"
    problems: list[str] = []
    for user, expected_actions in _turns(story):
        message = Message(conversation, "test", conversation, uuid.uuid4().hex, user.text or "", time.time())
        answer = await bot.handle(message)
        trace = answer.trace
        if trace is None or trace.nlu is None:
            problems.append(f"line {user.line}: {user.text!r}: the turn failed")
            break
        if user.name and trace.nlu.intent != user.name:
            problems.append(
                f"line {user.line}: {user.text!r}: expected intent {user.name}, got {trace.nlu.intent} "
                f"({trace.nlu.confidence:.2f})"
            )
        actions = [d.action for d in trace.decisions if d.action != ACTION_LISTEN]
        if actions != expected_actions:
            problems.append(f"line {user.line}: {user.text!r}: expected actions {expected_actions}, got {actions}")
    return StoryResult(story.name, not problems, tuple(problems))


def _turns(story: Story) -> list[tuple[StoryStep, list[str]]]:
    turns: list[tuple[StoryStep, list[str]]] = []
    for step in story.steps:
        if step.kind == "user":
            turns.append((step, []))
        elif step.kind == "action" and turns and step.name != ACTION_LISTEN:
            turns[-1][1].append(str(step.name))
    return turns
