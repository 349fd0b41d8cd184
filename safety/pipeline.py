"""Run safety checks in order over one text; each check sees the text as the previous ones redacted it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.events import Session
from bot.protocols import SafetyCheck
from bot.types import Fact, SafetyVerdict, Stage, VerdictAction


@dataclass(frozen=True, slots=True)
class SafetyOutcome:
    """What the checks decided: the (possibly redacted) text, every verdict, and the first block."""

    text: str
    allowed: bool
    verdicts: tuple[SafetyVerdict, ...]
    blocked_by: SafetyVerdict | None = None


class SafetyPipeline:
    """Checks in order. By default it stops at the first block (the text will be replaced by a refusal
    anyway, so later checks would be wasted time); `run_all=True` records every verdict, for evaluation.
    `actions` overrides what a block does, by category (kefu.yml `safety.actions`, e.g. self_harm: escalate).
    """

    def __init__(
        self,
        checks: Sequence[SafetyCheck],
        *,
        run_all: bool = False,
        actions: Mapping[str, VerdictAction] | None = None,
    ) -> None:
        self.checks = tuple(checks)
        self.run_all = run_all
        self.actions = dict(actions or {})

    def warm_up(self) -> None:
        for check in self.checks:
            warm_up = getattr(check, "warm_up", None)
            if callable(warm_up):
                warm_up()

    def run(
        self, text: str, *, stage: Stage, session: Session | None = None, facts: Sequence[Fact] = ()
    ) -> SafetyOutcome:
        verdicts: list[SafetyVerdict] = []
        blocked_by: SafetyVerdict | None = None
        for check in self.checks:
            verdict = check.check(text, stage=stage, session=session, facts=facts)
            if not verdict.allowed and verdict.category in self.actions:
                verdict = dataclasses.replace(verdict, action=self.actions[verdict.category])
            verdicts.append(verdict)
            if verdict.redacted is not None:
                text = verdict.redacted
            if not verdict.allowed and blocked_by is None:
                blocked_by = verdict
                if not self.run_all:
                    break
        return SafetyOutcome(text=text, allowed=blocked_by is None, verdicts=tuple(verdicts), blocked_by=blocked_by)
