"""The safety pipeline: chaining redactions, stopping at the first block."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.events import Session
from bot.types import Fact, SafetyVerdict, Stage
from safety.lexicon import Lexicon, LexiconCheck, Term
from safety.pii import PiiMasker
from safety.pipeline import SafetyPipeline


@dataclass
class Recorder:
    """A fake check: records what it saw, optionally replaces text or blocks."""

    name: str
    replace: tuple[str, str] | None = None
    block: bool = False
    seen: list[str] = field(default_factory=list)
    warmed: bool = False

    def warm_up(self) -> None:
        self.warmed = True

    def check(
        self, text: str, *, stage: Stage, session: Session | None = None, facts: Sequence[Fact] = ()
    ) -> SafetyVerdict:
        self.seen.append(text)
        redacted = text.replace(*self.replace) if self.replace else None
        return SafetyVerdict(
            self.name, stage, allowed=not self.block, category="x" if self.block else "", redacted=redacted
        )


def test_each_check_sees_the_previous_redaction() -> None:
    first, second, third = Recorder("a", replace=("1", "*")), Recorder("b", replace=("2", "#")), Recorder("c")
    outcome = SafetyPipeline([first, second, third]).run("123", stage="input")
    assert (first.seen, second.seen, third.seen) == (["123"], ["*23"], ["*#3"])
    assert outcome.text == "*#3"
    assert outcome.allowed
    assert outcome.blocked_by is None
    assert [v.check for v in outcome.verdicts] == ["a", "b", "c"]


def test_stops_at_the_first_block_by_default() -> None:
    later = Recorder("later")
    outcome = SafetyPipeline([Recorder("ok"), Recorder("no", block=True), later]).run("t", stage="output")
    assert not outcome.allowed
    assert outcome.blocked_by is not None
    assert outcome.blocked_by.check == "no"
    assert outcome.blocked_by.stage == "output"
    assert later.seen == []
    assert len(outcome.verdicts) == 2


def test_run_all_records_every_verdict_and_keeps_the_first_block() -> None:
    checks = [Recorder("one", block=True), Recorder("two", block=True), Recorder("three")]
    outcome = SafetyPipeline(checks, run_all=True).run("t", stage="input")
    assert [v.check for v in outcome.verdicts] == ["one", "two", "three"]
    assert outcome.blocked_by is outcome.verdicts[0]


def test_empty_pipeline_allows_unchanged_text() -> None:
    outcome = SafetyPipeline([]).run("hello", stage="input")
    assert (outcome.text, outcome.allowed, outcome.verdicts) == ("hello", True, ())


def test_warm_up_reaches_checks_that_have_one() -> None:
    check = Recorder("a")
    SafetyPipeline([check, PiiMasker()]).warm_up()
    assert check.warmed


def test_real_checks_mask_then_block() -> None:
    lexicon = LexiconCheck(Lexicon([Term("傻瓜", "abuse", "zh")], allow=["傻瓜相机"]))
    pipeline = SafetyPipeline([PiiMasker(), lexicon])
    blocked = pipeline.run("我的手机号13812345678，你们是傻瓜吗", stage="input")
    assert blocked.text == "我的手机号138****5678，你们是傻瓜吗"
    assert blocked.blocked_by is not None
    assert blocked.blocked_by.category == "abuse"
    fine = pipeline.run("傻瓜相机的订单SO20261001，卡号4111 1111 1111 1111", stage="output")
    assert fine.allowed
    assert fine.text == "傻瓜相机的订单SO20261001，卡号**** **** **** 1111"
    assert [v.redacted is not None for v in fine.verdicts] == [True, False]
