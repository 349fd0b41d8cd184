"""Dialogue policy benchmark: the time of one decision, for the ensemble and for each policy alone.

    .venv/bin/python bench/policy_benchmark.py                      # examples/shop
    .venv/bin/python bench/policy_benchmark.py --project PATH --repeat 50

Trains the ML policy (`train_core`) on the project's stories and rules, builds the policies the bot
runs (`bot.wiring.dialogue_policies`: handoff, clarification, forms, rules, two-stage fallback, memoized
stories, the ML policy), and replays the sessions of
the project's test stories and training stories at every decision point, plus long sessions (all
training stories one after another), on one thread. Prints p50/p99 per decision and how often each
policy's choice is the training story's next action; writes bench/results/policy/latency.png and summary.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.events import ActionExecuted, PolicyDecision, Session, SessionStarted, UserUttered
from bot.settings import Settings
from bot.types import Domain, Story
from bot.wiring import dialogue_policies, open_project
from policies.ml_policy import train_core
from policies.state_features import StateFeaturizer, story_events, training_pairs, waits_at_end

HERE = Path(__file__).resolve().parent
BUDGET_MS = 5.0


@dataclass(frozen=True, slots=True)
class Case:
    """A session at one decision point and the action its story takes there (None: not known)."""

    session: Session
    expected: str | None
    kind: str  # "test", "train" or "long"


@dataclass(frozen=True, slots=True)
class Row:
    name: str
    decisions: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    answered: float  # share of decision points where the policy did not abstain
    correct: float  # share of training-story decision points where it chose the story's next action


def cases(stories: Sequence[Story], featurizer: StateFeaturizer, kind: str) -> list[Case]:
    found = []
    for story in stories:
        events = story_events(story)
        _, targets = training_pairs(featurizer, events, wait_at_end=waits_at_end(story))
        opens = [i for i, e in enumerate(events) if isinstance(e, UserUttered | ActionExecuted)]
        for end, target in zip([*opens[1:], len(events)], targets, strict=True):
            found.append(Case(Session(f"bench-{kind}").with_events([SessionStarted(), *events[:end]]), target, kind))
    return found


def _labelled(story: Story) -> bool:
    """Test stories name each message's intent, except where only the NLU can tell: those need a model."""
    return all(step.name is not None for step in story.steps if step.kind == "user")


def long_cases(stories: Sequence[Story], featurizer: StateFeaturizer, tail: int = 30) -> list[Case]:
    """The latest `tail` decision points of one session that lives through every story in turn."""
    joined = Story("all stories", tuple(step for story in stories for step in story.steps))
    return cases([joined], featurizer, "long")[-tail:]


def timed(decide: Callable[[Session, Domain], PolicyDecision | None], all_cases: Sequence[Case], domain: Domain,
          repeat: int) -> tuple[list[float], list[PolicyDecision | None]]:  # fmt: skip
    for case in all_cases[:20]:  # warm up caches and lazy loading
        decide(case.session, domain)
    times: list[float] = []
    decisions: list[PolicyDecision | None] = []
    for round_ in range(repeat):
        for case in all_cases:
            started = time.perf_counter_ns()
            decision = decide(case.session, domain)
            times.append((time.perf_counter_ns() - started) / 1e6)
            if round_ == 0:
                decisions.append(decision)
    return times, decisions


def row(name: str, times: list[float], decisions: list[PolicyDecision | None], all_cases: Sequence[Case]) -> Row:
    # Test stories are replayed without the events their actions would add (a form's requested slot,
    # slots from entities), so only training and long sessions say whether a choice is right.
    known = [(d, c.expected) for d, c in zip(decisions, all_cases, strict=True) if c.expected and c.kind != "test"]
    return Row(
        name=name,
        decisions=len(times),
        p50_ms=float(np.percentile(times, 50)),
        p99_ms=float(np.percentile(times, 99)),
        max_ms=float(np.max(times)),
        answered=float(np.mean([d is not None for d in decisions])),
        correct=float(np.mean([d is not None and d.action == expected for d, expected in known])),
    )


def histogram(latencies: dict[str, list[float]], path: Path) -> Path:
    """Per-decision latency histograms, one panel per policy, p50 and p99 marked."""
    figure = Figure(figsize=(8, 2.2 * len(latencies)), dpi=110)
    axes_list = figure.subplots(len(latencies), 1, squeeze=False)[:, 0]
    for axes, (name, values) in zip(axes_list, latencies.items(), strict=True):
        data = np.asarray(values)
        axes.hist(data, bins=80, color="#4C72B0", range=(0, float(np.percentile(data, 99.9))))
        for q, style in ((50, "--"), (99, ":")):
            x = float(np.percentile(data, q))
            axes.axvline(x, color="black", linestyle=style, label=f"p{q} {x:.3f} ms")
        axes.set_title(name, fontsize="small")
        axes.set_ylabel("decisions")
        axes.legend(fontsize="small")
    axes_list[-1].set_xlabel("milliseconds per decision (one thread)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path


def table(rows: Sequence[Row], train_s: float, n_cases: int) -> str:
    lines = [
        f"{n_cases} decision points; ML policy trained in {train_s:.1f} s; budget p99 {BUDGET_MS:.0f} ms",
        f"{'policy':<20}{'decisions':>10}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'answers':>9}{'correct':>9}",
    ]
    for r in rows:
        lines.append(
            f"{r.name:<20}{r.decisions:>10}{r.p50_ms:>9.3f}{r.p99_ms:>9.3f}{r.max_ms:>9.3f}"
            f"{r.answered:>9.1%}{r.correct:>9.1%}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", type=Path, default=HERE.parent / "examples" / "shop")
    parser.add_argument("--repeat", type=int, default=30, help="passes over all decision points")
    parser.add_argument("--epochs", type=int, default=None, help="default: the ML policy's own default")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "policy")
    args = parser.parse_args()
    torch.set_num_threads(1)
    opened = open_project(args.project, Settings())
    project = opened.files
    domain = project.domain
    with tempfile.TemporaryDirectory() as model_dir:
        report = train_core(project.stories, project.rules, domain, Path(model_dir), epochs=args.epochs, progress=True)
        print(f"trained: {report}", file=sys.stderr)
        ensemble = dialogue_policies(opened, core_dir=Path(model_dir))  # as the bot wires them
        ensemble.warm_up()
        featurizer = StateFeaturizer.from_domain(domain, (*project.stories, *project.rules))
        all_cases = [
            *cases([s for s in project.test_stories if _labelled(s)], featurizer, "test"),
            *cases(project.stories, featurizer, "train"),
            *long_cases(project.stories, featurizer),
        ]
        deciders: dict[str, Callable[[Session, Domain], PolicyDecision | None]] = {
            "ensemble": ensemble.decide,
            **{policy.name: policy.decide for policy in ensemble.policies},
        }
        rows, latencies = [], {}
        for name, decide in deciders.items():
            times, decisions = timed(decide, all_cases, domain, args.repeat)
            rows.append(row(name, times, decisions, all_cases))
            latencies[name] = times
    histogram(latencies, args.out / "latency.png")
    summary = {"train_seconds": report.seconds, "n_examples": report.n_examples, "rows": [asdict(r) for r in rows]}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(table(rows, report.seconds, len(all_cases)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
