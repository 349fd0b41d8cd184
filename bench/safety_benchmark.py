"""Safety stage latency: every input check on a customer message plus every output check on a reply, per turn.

    .venv/bin/python bench/safety_benchmark.py                       # rules only, then with the classifier
    .venv/bin/python bench/safety_benchmark.py --toxicity DIR        # a classifier `kefu train safety` saved

Messages are the demo shop's red-team rows and NLU examples; replies are its FAQ answers. One thread, as one
worker core would run it. Without --toxicity, a sparse classifier and an e5 one are trained on a COLD subset
(from --cold) for the last two rows; they are for latency only (accuracy: bench/cold_benchmark.py).
The harm model rows train it (`kefu train`'s recipe: kefu's examples plus the shop's NLU examples) with n-grams
only, and over e5 with each message embedded before the clock starts, as in a turn where the NLU's embedding of
the same text is shared through the embedder's cache.
Aims (issue 7): p99 <= 5 ms per turn without the neural classifier, <= 15 ms with it.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.nlu.embedder import E5Embedder  # noqa: E402
from bot.settings import SafetyConfig  # noqa: E402
from bot.wiring_safety import SafetyPaths, safety_stage  # noqa: E402
from safety.harm_model import embedding_texts  # noqa: E402
from safety.harm_train import train_harm_model, training_examples  # noqa: E402
from safety.toxicity_train import read_cold, stratified_limit, train_toxicity  # noqa: E402

SHOP = REPO / "examples" / "shop"


def messages() -> list[str]:
    with (SHOP / "tests" / "redteam.csv").open(encoding="utf-8") as file:
        return [row["text"] for row in csv.DictReader(file)] + nlu_examples()


def nlu_examples() -> list[str]:
    nlu = yaml.safe_load((SHOP / "data" / "nlu.yml").read_text(encoding="utf-8"))
    texts = []
    for block in nlu["nlu"]:
        examples = block.get("examples", "")
        texts += [line[2:].strip() for line in examples.splitlines() if line.startswith("- ")]
    return texts


def replies() -> list[str]:
    with (SHOP / "knowledge" / "faq.csv").open(encoding="utf-8") as file:
        return [row["answer"] for row in csv.DictReader(file)]


def measure(
    config: SafetyConfig,
    toxicity_dir: Path,
    embedder: E5Embedder | None,
    turns: int,
    harm_dir: Path | None = None,
    shared: E5Embedder | None = None,
) -> list[float]:
    """Time per turn; `shared` embeds each message before the clock starts (the NLU's embedding, cached)."""
    paths = SafetyPaths(SHOP, toxicity_dir, Path(tempfile.mkdtemp()), harm_dir)
    stage = safety_stage(config, paths, embedder=embedder, harm_embedder=shared)
    stage.warm_up()
    inputs, outputs = messages(), replies()
    for text in inputs[:50]:  # warm caches the way a running server has them
        stage.input.run(text, stage="input")
    times = []
    for i in range(turns):
        message, reply = f"{inputs[i % len(inputs)]} {i}", outputs[i % len(outputs)]  # a new text every turn
        if shared is not None:
            shared.embed_queries(embedding_texts([message]))
        started = time.perf_counter()
        stage.input.run(message, stage="input")
        stage.output.run(reply, stage="output")
        times.append((time.perf_counter() - started) * 1000)
    return times


def row(name: str, times: list[float], aim: float) -> str:
    ordered = sorted(times)
    p50, p99 = statistics.median(ordered), ordered[int(0.99 * (len(ordered) - 1))]
    return f"{name:<42} {p50:7.2f} {p99:7.2f} {aim:6.0f}  {'ok' if p99 <= aim else 'OVER'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=3000)
    parser.add_argument("--toxicity", type=Path, default=None, help="a trained classifier folder")
    parser.add_argument("--cold", type=Path, default=REPO.parent / "shared" / "data" / "cold")
    parser.add_argument("--limit", type=int, default=1000, help="COLD rows for the classifiers trained here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rules = SafetyConfig(industries=["ecommerce"], toxicity="off")
    print(f"{'configuration':<42} {'p50 ms':>7} {'p99 ms':>7} {'aim':>6}")
    print(row("rules (pii, injection, harm, lexicon, ...)", measure(rules, Path("/nonexistent"), None, args.turns), 5))
    for name, embedder in (("n-grams", None), ("e5 + n-grams, shared embedding", E5Embedder(num_threads=1))):
        folder = Path(tempfile.mkdtemp())
        train_harm_model(training_examples(None, nlu_examples()), embedder=embedder).save(folder)
        turns = args.turns if embedder is None else min(args.turns, 600)
        times = measure(rules, Path("/nonexistent"), None, turns, harm_dir=folder, shared=embedder)
        print(row(f"rules + harm model ({name})", times, 5 if embedder is None else 15))
    with_classifier = SafetyConfig(industries=["ecommerce"], toxicity="on")
    if args.toxicity is not None:
        embedder = E5Embedder(num_threads=1)
        print(row("rules + trained classifier", measure(with_classifier, args.toxicity, embedder, args.turns), 15))
        return
    if not (args.cold / "train.csv").is_file():
        print(f"(no COLD at {args.cold}: the rows with a classifier are skipped)")
        return
    texts, labels = read_cold(args.cold, "train")
    keep = stratified_limit(labels, args.limit, 0)
    for name, embedder in (("sparse", None), ("e5 + sparse", E5Embedder(num_threads=1))):
        folder = Path(tempfile.mkdtemp()) / name.replace(" ", "")
        train_toxicity([texts[i] for i in keep], [labels[i] for i in keep], embedder=embedder).save(folder)
        turns = args.turns if embedder is None else min(args.turns, 600)
        print(row(f"rules + {name} classifier", measure(with_classifier, folder, embedder, turns), 15))


if __name__ == "__main__":
    main()
