"""Collects what a turn did, stage by stage, into a frozen Trace."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from bot.events import PolicyDecision
from bot.types import Candidate, DecisionRecord, Fact, NluResult, SafetyVerdict, StageRecord, Trace

PartialSink = Callable[[str, str], None]  # (reply id, text): a piece of a reply, shown before the turn ends


class TraceRecorder:
    """The `TraceSink` of one turn."""

    def __init__(self, conversation_id: str, *, on_partial: PartialSink | None = None) -> None:
        self.trace_id = uuid.uuid4().hex
        self._on_partial = on_partial
        self._conversation_id = conversation_id
        self._stages: list[StageRecord] = []
        self._decisions: list[DecisionRecord] = []
        self._facts: list[Fact] = []
        self._candidates: list[Candidate] = []
        self._verdicts: list[SafetyVerdict] = []
        self.nlu: NluResult | None = None
        self.error: str | None = None

    @contextmanager
    def stage(self, name: str, detail: str = "") -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self._stages.append(StageRecord(name, (time.perf_counter() - started) * 1000, detail))

    def add_decision(self, decision: PolicyDecision) -> None:
        self._decisions.append(DecisionRecord(decision.action, decision.policy, decision.confidence, decision.reason))

    def add_facts(self, facts: Sequence[Fact]) -> None:
        self._facts.extend(facts)

    def facts_for(self, ids: Sequence[str]) -> list[Fact]:
        """The facts retrieved this turn that a reply names, for output checks that compare against them."""
        wanted = set(ids)
        return [fact for fact in self._facts if fact.id in wanted]

    def add_candidates(self, candidates: Sequence[Candidate]) -> None:
        self._candidates.extend(candidates)

    def add_verdicts(self, verdicts: Sequence[SafetyVerdict]) -> None:
        self._verdicts.extend(verdicts)

    @property
    def streaming(self) -> bool:
        return self._on_partial is not None

    def partial(self, reply_id: str, text: str) -> None:
        if self._on_partial is not None:
            self._on_partial(reply_id, text)

    def freeze(self) -> Trace:
        return Trace(
            trace_id=self.trace_id,
            conversation_id=self._conversation_id,
            stages=tuple(self._stages),
            nlu=self.nlu,
            decisions=tuple(self._decisions),
            facts=tuple(self._facts),
            candidates=tuple(self._candidates),
            verdicts=tuple(self._verdicts),
            error=self.error,
        )
