"""Toxicity benchmark on COLD (Chinese offensive language, Deng et al. 2022), printed beside COLDetector.

    .venv/bin/python bench/cold_benchmark.py                      # sparse and sparse+dense, about 15 min
    .venv/bin/python bench/cold_benchmark.py --features sparse    # under a minute

Trains kefu's toxicity model with the production recipe (`train_from_cold`: COLD train plus the English
seed, threshold on COLD dev) and reports test accuracy, macro-F1, precision and recall of the offensive
class, training time, latency per message on one thread (the whole ToxicityCheck, with the real e5
embedder when dense features are on, and without the embedding), the English seed's accuracy in 5-fold
cross-validation, and the probabilities of a few customer-service lines. The e5 embeddings of the data are
computed once (two threads) and cached in bench/.cache; the training time excludes them, and the embedding
time is printed on its own. The data lives outside the project (`../shared/data/cold`); a missing folder is
skipped with a message.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from bot.nlu.embedder import E5Embedder
from safety.toxicity import ToxicityCheck, ToxicityModel
from safety.toxicity_train import (
    SPLITS,
    best_threshold,
    english_weights,
    read_cold,
    read_english_seed,
    train_from_cold,
    train_toxicity,
)

HERE = Path(__file__).resolve().parent
PUBLISHED = "COLDetector (fine-tuned bert-base-chinese): accuracy about 0.81, macro-F1 about 0.80 (Deng et al. 2022)"
# Customer-service lines, not from COLD: how the model treats the traffic it will see.
PROBES = [
    ("我的快递什么时候到", 0),
    ("怎么申请退款", 0),
    ("你们的客服电话是多少", 0),
    ("这个破手机卡死了，气死我了", 0),
    ("帮我取消自动续费", 0),
    ("你是机器人吗", 0),
    ("你们客服都是傻逼吧", 1),
    ("滚，你这个废物", 1),
    ("你脑子有病吧，听不懂人话？", 1),
    ("河南人都是骗子", 1),
    ("where is my parcel, this is killing me", 0),
    ("the app is stupid slow", 0),
    ("you useless idiot, give me my money back", 1),
    ("shut up, you dumb bot", 1),
    ("很抱歉给您带来不便，我们会尽快为您处理", 0),  # replies the output stage checks
    ("Sorry for the trouble, your refund is on its way", 0),
]


class CachedEmbedder:
    """E5 query embeddings kept in a .npy file beside a .json list of their texts: texts not in the cache
    are embedded once (in batches, with progress) and added to it; later runs read them back."""

    name = E5Embedder.name
    dim = E5Embedder.dim

    def __init__(self, texts: list[str], cache: Path, *, threads: int) -> None:
        names = cache.with_suffix(".json")
        self.embed_seconds_per_text: float | None = None
        known: list[str] = []
        vectors = np.zeros((0, self.dim), dtype=np.float32)
        if cache.is_file() and names.is_file():
            known, vectors = json.loads(names.read_text(encoding="utf-8")), np.load(cache)
        self._rows = {text: i for i, text in enumerate(known)}
        self._vectors = vectors
        missing = [text for text in dict.fromkeys(texts) if text not in self._rows]
        if missing:
            print(f"  embedding {len(missing)} texts once ({threads} threads; cached in {cache})", file=sys.stderr)
            embedder = E5Embedder(num_threads=threads, cache_size=0)
            started = time.perf_counter()
            chunks = []
            for i in range(0, len(missing), 256):
                chunks.append(embedder.embed_queries(missing[i : i + 256]))
                done = min(i + 256, len(missing))
                if done % 2560 == 0 or done == len(missing):
                    print(f"  embedded {done}/{len(missing)}, {time.perf_counter() - started:.0f} s", file=sys.stderr)
            self.embed_seconds_per_text = (time.perf_counter() - started) / len(missing)
            self._add(missing, np.concatenate(chunks))
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.save(cache, self._vectors)
            names.write_text(json.dumps(list(self._rows), ensure_ascii=False), encoding="utf-8")

    def _add(self, texts: list[str], vectors: np.ndarray) -> None:
        self._rows.update({text: len(self._vectors) + i for i, text in enumerate(texts)})
        self._vectors = np.concatenate([self._vectors, vectors.astype(np.float32)])

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        missing = [text for text in dict.fromkeys(texts) if text not in self._rows]
        if missing:
            self._add(missing, E5Embedder(num_threads=1).embed_queries(missing))
        return np.asarray(self._vectors[[self._rows[text] for text in texts]])

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        raise NotImplementedError


@dataclass
class Outcome:
    features: str
    accuracy: float
    macro_f1: float
    precision: float
    recall: float
    dev_macro_f1: float
    threshold: float
    train_s: float
    p50_ms: float
    p99_ms: float
    model_p50_ms: float
    model_p99_ms: float
    english_cv: float
    probes: dict[str, float]


def _say(line: str) -> None:
    print(f"  {line}", file=sys.stderr, flush=True)


def run(data: Path, features: str, seed: int, embedder: CachedEmbedder | None) -> Outcome:
    with tempfile.TemporaryDirectory() as folder:
        model_dir = Path(folder)
        started = time.perf_counter()
        metrics = train_from_cold(data, model_dir, embedder=embedder, seed=seed, progress=_say, force=True)
        train_s = time.perf_counter() - started
        model = ToxicityModel.load(model_dir, embedder=embedder)
        probes = dict(zip([t for t, _ in PROBES], model.predict_proba([t for t, _ in PROBES]).tolist(), strict=True))
        latency = _latencies(model_dir, features == "dense", read_cold(data, "test")[0][:300])
    english = english_cv(data, embedder, seed)
    return Outcome(
        features,
        metrics["test_accuracy"],
        metrics["test_macro_f1"],
        metrics["test_precision"],
        metrics["test_recall"],
        metrics["dev_macro_f1"],
        metrics["threshold"],
        train_s,
        *latency,
        english,
        probes,
    )


def _latencies(model_dir: Path, dense: bool, texts: list[str]) -> tuple[float, float, float, float]:
    """p50/p99 in ms of ToxicityCheck.check per message on one thread: with a live e5 embedder on texts it
    has not seen, then with every embedding already cached (the model's own cost)."""
    torch.set_num_threads(1)
    embedder = E5Embedder(num_threads=1) if dense else None
    check = ToxicityCheck(model_dir, embedder=embedder)
    check.warm_up()
    for text in texts[:20]:
        check.check(text + " 热身", stage="input")

    def timed() -> list[float]:
        out = []
        for text in texts:
            started = time.perf_counter()
            check.check(text, stage="input")
            out.append((time.perf_counter() - started) * 1000)
        return out

    full = timed()
    model_only = timed()  # the embedder's LRU cache now holds every text
    return (*_percentiles(full), *_percentiles(model_only))


def _percentiles(values: list[float]) -> tuple[float, float]:
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def english_cv(data: Path, embedder: CachedEmbedder | None, seed: int, folds: int = 5) -> float:
    """Accuracy on the English seed, each fifth held out of a model trained on COLD train plus the rest."""
    zh_texts, zh_labels = read_cold(data, "train")
    dev_texts, dev_labels = read_cold(data, "dev")
    en_texts, en_labels = read_english_seed()
    order = list(range(len(en_texts)))
    random.Random(seed).shuffle(order)
    right = 0
    for fold in range(folds):
        held = set(order[fold::folds])
        keep = [i for i in order if i not in held]
        texts = zh_texts + [en_texts[i] for i in keep]
        labels = zh_labels + [en_labels[i] for i in keep]
        weights = english_weights(len(zh_texts), len(keep))
        model = train_toxicity(texts, labels, embedder=embedder, seed=seed, weights=weights)
        model.threshold = best_threshold(dev_labels, model.predict_proba(dev_texts))
        proba = model.predict_proba([en_texts[i] for i in sorted(held)])
        right += sum((p >= model.threshold) == bool(en_labels[i]) for p, i in zip(proba, sorted(held), strict=True))
        _say(f"English fold {fold + 1}/{folds}: {right} right so far")
    return right / len(en_texts)


def _table(outcomes: list[Outcome], embed_s: float | None) -> str:
    head = f"{'features':<14}{'accuracy':>9}{'macro F1':>9}{'prec.':>7}{'recall':>7}{'dev F1':>8}{'thresh':>7}"
    head += f"{'train s':>8}{'p50 ms':>8}{'p99 ms':>8}{'model p50':>10}{'model p99':>10}{'EN CV':>7}"
    lines = [head, "-" * len(head)]
    for o in outcomes:
        name = "sparse" if o.features == "sparse" else "sparse+dense"
        lines.append(
            f"{name:<14}{o.accuracy:>9.4f}{o.macro_f1:>9.4f}{o.precision:>7.3f}{o.recall:>7.3f}{o.dev_macro_f1:>8.4f}"
            f"{o.threshold:>7.2f}{o.train_s:>8.0f}{o.p50_ms:>8.2f}{o.p99_ms:>8.2f}{o.model_p50_ms:>10.2f}"
            f"{o.model_p99_ms:>10.2f}{o.english_cv:>7.3f}"
        )
    lines += ["", f"Published: {PUBLISHED}"]
    if len(outcomes) == 2:
        best = max(outcomes, key=lambda o: o.macro_f1)
        lines.append(f"Better on COLD test macro-F1: {'sparse+dense' if best.features == 'dense' else 'sparse only'}")
    if embed_s is not None:
        lines.append(f"e5 embedding (not in 'train s'): {embed_s * 1000:.1f} ms per COLD text on 2 threads")
    lines += ["", "Customer-service probes, P(offensive) (label in brackets):"]
    for text, label in PROBES:
        row = "  ".join(f"{o.features}={o.probes[text]:.2f}" for o in outcomes)
        lines.append(f"  [{label}] {text:<44} {row}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data" / "cold")
    parser.add_argument("--features", default="sparse,dense", help="sparse, dense (sparse + e5 embedding)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--embed-threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "toxicity")
    args = parser.parse_args()
    if not all((args.data / f"{split}.csv").is_file() for split in SPLITS):
        print(f"skipping: no COLD data under {args.data} (see ../shared/data/README.md)", file=sys.stderr)
        return 0
    outcomes: list[Outcome] = []
    embed_s: float | None = None
    for features in args.features.split(","):
        embedder = None
        if features == "dense":
            every = [t for split in SPLITS for t in read_cold(args.data, split)[0]]
            every += read_english_seed()[0] + [t for t, _ in PROBES]
            embedder = CachedEmbedder(every, HERE / ".cache" / "cold-e5.npy", threads=args.embed_threads)
            embed_s = embedder.embed_seconds_per_text
        elif features != "sparse":
            raise SystemExit(f"unknown features {features!r}; use sparse or dense")
        print(f"== COLD, {features} features", file=sys.stderr)
        outcomes.append(run(args.data, features, args.seed, embedder))
        print(_table(outcomes[-1:], None).split("\n\n")[0], file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps([asdict(o) for o in outcomes], indent=1, ensure_ascii=False))
    print(_table(outcomes, embed_s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
