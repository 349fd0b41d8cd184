"""Script suggestion latency: `Suggester.suggest(..., use_generator=False)` over the demo shop's FAQ questions.

    .venv/bin/python bench/suggest_benchmark.py                 # every question and paraphrase once
    .venv/bin/python bench/suggest_benchmark.py --rounds 3 --archive 2000

The shop's knowledge base with the real e5 embedder (one thread), and an archive index of `--archive` past
replies: FAQ questions answered by an operator with the FAQ answer, which exercises the dedupe (questions
recur, so only distinct ones are embedded). Each question is asked `--rounds` times; the first round fills
the embedder's query cache, so later rounds time the search alone.
Prints p50/p99 per round in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.assist.archive_sql import ArchivedSession
from bot.assist.suggest import Suggester
from bot.assist.suggest_archive import ArchiveReplyIndex
from bot.nlu.embedder import E5Embedder
from bot.nlu.features import detect_language
from bot.settings import Settings
from bot.wiring import knowledge_base, open_project
from knowledge.faq import load_faq_folder

SHOP = Path(__file__).resolve().parents[1] / "examples" / "shop"


def archived(number: int, question: str, reply: str) -> ArchivedSession:
    said = ({"role": "user", "text": question, "seq": 0}, {"role": "operator", "text": reply, "seq": 1})
    return ArchivedSession(
        f"bench-{number}", 1, "web", detect_language(question), 0.0, float(number), 1, True, "request_human",
        None, 0, 0, (), question, said, (), float(number),
    )  # fmt: skip


def asked(question: str, language: str, *, archive: bool = False) -> str:
    """The question as a customer might word it: a greeting in front makes it new to the embedder's cache."""
    if archive:
        return ("你好，" if language == "zh" else "Hello, ") + question
    return ("请问" if language == "zh" else "Hi, ") + question


async def measure(suggester: Suggester, questions: Sequence[tuple[str, str, str]]) -> list[float]:
    times: list[float] = []
    for question, language, _ in questions:
        began = time.perf_counter()
        await suggester.suggest(asked(question, language), language=language, use_generator=False)  # type: ignore[arg-type]
        times.append((time.perf_counter() - began) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--archive", type=int, default=1000, help="past replies in the archive index")
    args = parser.parse_args()
    entries = load_faq_folder(SHOP / "knowledge", [])
    questions = [(q, entry.lang, entry.answer) for entry in entries for q in entry.questions]
    embedder = E5Embedder(num_threads=1)
    project = open_project(SHOP, Settings(data_dir=Path(tempfile.mkdtemp(prefix="kefu-suggest-bench-"))))
    base = knowledge_base(project, embedder)
    began = time.perf_counter()
    base.warm_up()
    print(f"knowledge base ready in {time.perf_counter() - began:.1f} s ({len(questions)} FAQ questions)")
    index = ArchiveReplyIndex(embedder.embed_queries)
    past = [questions[n % len(questions)] for n in range(args.archive)]
    began = time.perf_counter()
    index.build([archived(n, asked(q, lang, archive=True), answer) for n, (q, lang, answer) in enumerate(past)])
    print(f"archive index: {len(index)} pairs in {time.perf_counter() - began:.1f} s")
    suggester = Suggester(base, index)
    for round_number in range(1, args.rounds + 1):
        times = asyncio.run(measure(suggester, questions))
        p50, p99 = np.percentile(times, [50, 99])
        cache = "cold" if round_number == 1 else "warm"
        print(
            f"round {round_number} ({cache} query cache): {len(times)} suggestions, p50 {p50:.1f} ms, p99 {p99:.1f} ms"
        )


if __name__ == "__main__":
    main()
