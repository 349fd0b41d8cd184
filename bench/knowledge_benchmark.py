"""Knowledge-base search benchmark: build and query the vector index (flat, HNSW, IVF) and BM25 at scale.

    .venv/bin/python bench/knowledge_benchmark.py                           # 10k, 100k and 1M passages
    .venv/bin/python bench/knowledge_benchmark.py --sizes 10000,100000 --queries 500

Vectors are synthetic (dim 384, seeded): a mixture of 1000 random unit centres, each point moved inside a
32-dimensional subspace by a spread drawn per centre from 0.5 to 1.5, plus a little isotropic noise, then
normalised. Tight clusters make neighbours easy to find, loose ones spill into other clusters: the mix is
closer to real sentence embeddings than uniform noise, where nearest neighbours mean nothing. Queries are
held out (drawn from the same mixture, another seed).

For each size and each kind (flat, the automatic choice, and IVF from 1M): build time, growth of the
process's resident memory, top-10 query latency p50/p99 on one thread and on two, recall@10 against exact
search, and a sweep of ef_search (HNSW) or nprobe (IVF). BM25 is built and queried over synthetic
bilingual passages (Chinese words drawn from jieba's dictionary by frequency, English from a short list).
Prints a table; writes bench/results/knowledge/summary.json and latency.png.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import faiss
import jieba
import numpy as np
from matplotlib.figure import Figure

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.nlu.features import init_jieba
from knowledge.bm25 import Bm25Index
from knowledge.vector_index import VectorIndex, choose_kind

HERE = Path(__file__).resolve().parent
BUDGET_MS = 10.0
DIM = 384
TOP_K = 10
SWEEP = {"hnsw": (32, 64, 96, 128, 192, 256), "ivf": (16, 32, 64, 128, 256)}
FLAT_QUERY_BUDGET = 2e8  # flat latency queries x size: keeps the exact scans at 1M to a few hundred queries


@dataclass(frozen=True, slots=True)
class Row:
    size: int
    kind: str
    build_s: float
    rss_mb: float
    p50_ms: float
    p99_ms: float
    p50_2t_ms: float
    p99_2t_ms: float
    recall: float
    setting: str = ""  # the ef_search or nprobe the row was measured with
    add_1k_s: float = 0.0
    remove_1k_s: float = 0.0
    save_s: float = 0.0
    load_s: float = 0.0
    file_mb: float = 0.0
    sweep: list[dict[str, float]] = field(default_factory=list)


def clustered(n: int, *, seed: int, centres: int = 1000, latent: int = 32, noise: float = 0.1) -> np.ndarray:
    """`n` unit vectors from the fixed mixture described in the module docstring."""
    world = np.random.default_rng(7)  # the mixture itself is the same for every call
    middles = world.normal(size=(centres, DIM)).astype(np.float32)
    middles /= np.linalg.norm(middles, axis=1, keepdims=True)
    basis = (world.normal(size=(latent, DIM)) / np.sqrt(DIM * latent)).astype(np.float32)
    spread = world.uniform(0.5, 1.5, size=centres).astype(np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):  # in chunks: float64 noise for 1M rows would be 3 GB
        count = min(n, start + 100_000) - start
        which = rng.integers(centres, size=count)
        inside = rng.standard_normal((count, latent), dtype=np.float32) @ basis
        isotropic = rng.standard_normal((count, DIM), dtype=np.float32) * (noise / np.sqrt(DIM))
        points = middles[which] + spread[which, None] * inside + isotropic
        out[start : start + count] = points / np.linalg.norm(points, axis=1, keepdims=True)
    return out


def rss_mb() -> float:
    """Resident memory of this process (VmRSS), in MB, after giving freed heap memory back to the system.

    Without the trim, memory freed by earlier steps stays resident and the next index grows into it unseen.
    """
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed_queries(
    search: Callable[[Any], list[str]], queries: Sequence[Any] | np.ndarray
) -> tuple[np.ndarray, list[list[str]]]:
    """Milliseconds per query and the ids found, one query at a time."""
    for query in queries[:5]:  # warm caches and OpenMP threads
        search(query)
    latencies, found = [], []
    for query in queries:
        started = time.perf_counter()
        ids = search(query)
        latencies.append((time.perf_counter() - started) * 1000)
        found.append(ids)
    return np.array(latencies), found


def recall(found: Sequence[Sequence[str]], truth: np.ndarray) -> float:
    hits = sum(len({int(item) for item in ids} & set(row.tolist())) for ids, row in zip(found, truth, strict=False))
    return hits / (TOP_K * len(found))


def latency_at(index: VectorIndex, queries: np.ndarray, threads: int) -> tuple[np.ndarray, list[list[str]]]:
    faiss.omp_set_num_threads(threads)  # process-wide, so only the benchmark sets it
    try:
        return timed_queries(lambda query: [item for item, _ in index.search(query, TOP_K)], queries)
    finally:
        faiss.omp_set_num_threads(2)


def sweep(index: VectorIndex, queries: np.ndarray, truth: np.ndarray) -> list[dict[str, float]]:
    """Recall and one-thread latency at each ef_search (HNSW) or nprobe (IVF) of SWEEP."""
    points = []
    default = index.ef_search, index.nprobe
    for value in SWEEP.get(index.kind, ()):
        index.ef_search = index.nprobe = value
        latencies, found = latency_at(index, queries, 1)
        points.append(
            {
                "setting": value,
                "recall": recall(found, truth),
                "p50_ms": float(np.percentile(latencies, 50)),
                "p99_ms": float(np.percentile(latencies, 99)),
            }
        )
        print(f"    {index.kind} setting {value}: {points[-1]}", flush=True)
    index.ef_search, index.nprobe = default
    return points


def updates(index: VectorIndex, size: int) -> tuple[float, float]:
    """Seconds to add 1000 new vectors, then to remove 1000 existing ids."""
    extra = clustered(1000, seed=3)
    started = time.perf_counter()
    index.add([f"new{i}" for i in range(1000)], extra)
    added = time.perf_counter() - started
    started = time.perf_counter()
    index.remove({str(row) for row in range(0, size, max(1, size // 1000))})
    return added, time.perf_counter() - started


def save_load(index: VectorIndex) -> tuple[float, float, float]:
    """Seconds to save and to load the index, and the size of its files in MB."""
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        index.save(Path(folder))
        saved = time.perf_counter() - started
        started = time.perf_counter()
        VectorIndex.load(Path(folder))
        loaded = time.perf_counter() - started
        return saved, loaded, sum(path.stat().st_size for path in Path(folder).iterdir()) / 2**20


def measure(size: int, kind: str, data: np.ndarray, queries: np.ndarray, truth: np.ndarray) -> tuple[Row, np.ndarray]:
    before = rss_mb()
    started = time.perf_counter()
    index = VectorIndex.build(DIM, [str(row) for row in range(size)], data, kind=kind, progress=True)
    build_s = time.perf_counter() - started
    grown = rss_mb() - before
    count = len(queries) if kind != "flat" else max(100, min(len(queries), int(FLAT_QUERY_BUDGET / size)))
    one, found = latency_at(index, queries[:count], 1)
    two, _ = latency_at(index, queries[:count], 2)
    points = sweep(index, queries, truth)
    saved, loaded, file_mb = save_load(index)
    added, removed = updates(index, size)
    setting = {"hnsw": f"ef_search={index.ef_search}", "ivf": f"nprobe={index.nprobe}"}.get(kind, "")
    row = Row(
        size=size,
        kind=kind,
        build_s=build_s,
        rss_mb=grown,
        p50_ms=float(np.percentile(one, 50)),
        p99_ms=float(np.percentile(one, 99)),
        p50_2t_ms=float(np.percentile(two, 50)),
        p99_2t_ms=float(np.percentile(two, 99)),
        recall=recall(found, truth[:count]),
        setting=setting,
        add_1k_s=added,
        remove_1k_s=removed,
        save_s=saved,
        load_s=loaded,
        file_mb=file_mb,
        sweep=points,
    )
    print(f"  {row_line(row)}", flush=True)
    return row, one


def kinds_for(size: int, wanted: Sequence[str] | None) -> list[str]:
    if wanted:
        return list(wanted)
    kinds = ["flat", choose_kind(size)]
    if size >= 1_000_000:
        kinds.append("ivf")
    return list(dict.fromkeys(kinds))


def vector_rows(
    sizes: Sequence[int], n_queries: int, wanted: Sequence[str] | None
) -> tuple[list[Row], dict[tuple[int, str], np.ndarray]]:
    rows: list[Row] = []
    latencies: dict[tuple[int, str], np.ndarray] = {}
    for size in sizes:
        print(f"size {size:,}: generating vectors", flush=True)
        data = clustered(size, seed=1)
        queries = clustered(n_queries, seed=2)
        started = time.perf_counter()
        _, truth = faiss.knn(queries, data, TOP_K, metric=faiss.METRIC_INNER_PRODUCT)
        print(f"  exact top-{TOP_K} of {n_queries} queries in {time.perf_counter() - started:.1f} s", flush=True)
        for kind in kinds_for(size, wanted):
            row, one = measure(size, kind, data, queries, truth)
            rows.append(row)
            latencies[(size, kind)] = one
        del data
    return rows, latencies


# --- BM25 ------------------------------------------------------------------------------------------------------

_ENGLISH_WORDS = (
    "order refund return shipping delivery invoice payment card account password login address phone email "
    "coupon discount price package tracking warranty repair exchange cancel store member points gift size color "
    "stock battery charger screen cable app update error broken late missing damaged receipt tax fee"
)
ENGLISH = _ENGLISH_WORDS.split()


def passages(count: int, *, seed: int, words: tuple[int, int] = (12, 40)) -> list[str]:
    """Bilingual texts: Chinese words (by jieba dictionary frequency), a fifth English, sometimes a price."""
    init_jieba()
    common = sorted(jieba.dt.FREQ.items(), key=lambda pair: -pair[1])[:20_000]
    chinese = [word for word, _ in common]
    weights = np.array([freq for _, freq in common], dtype=np.float64) ** 0.75  # flatter than raw frequency
    rng = np.random.default_rng(seed)
    lengths = rng.integers(*words, size=count)
    picks = rng.choice(len(chinese), size=int(lengths.sum()), p=weights / weights.sum()).tolist()
    english = (rng.random(len(picks)) < 0.2).tolist()
    texts, start = [], 0
    for length in lengths.tolist():
        parts = [
            f" {ENGLISH[pick % len(ENGLISH)]} " if is_english else chinese[pick]
            for pick, is_english in zip(picks[start : start + length], english[start : start + length], strict=True)
        ]
        if rng.random() < 0.3:
            parts.append(f"{int(rng.integers(1, 999))}元")
        texts.append("".join(parts))
        start += length
    return texts


def bm25_row(size: int, n_queries: int) -> dict[str, float]:
    texts = passages(size, seed=1)
    queries = passages(n_queries, seed=2, words=(2, 6))
    before = rss_mb()
    started = time.perf_counter()
    index = Bm25Index()
    index.add([str(i) for i in range(size)], texts)
    build_s = time.perf_counter() - started
    grown = rss_mb() - before

    def search(query: str) -> list[str]:
        return [item for item, _ in index.search(query, TOP_K)]

    cold, found = timed_queries(search, queries)  # each term's postings become arrays on first use
    warm, _ = timed_queries(search, queries)
    row = {
        "size": size,
        "build_s": build_s,
        "rss_mb": grown,
        "p50_ms": float(np.percentile(cold, 50)),
        "p99_ms": float(np.percentile(cold, 99)),
        "warm_p50_ms": float(np.percentile(warm, 50)),
        "warm_p99_ms": float(np.percentile(warm, 99)),
        "answered": sum(bool(ids) for ids in found) / len(found),
    }
    print(f"  bm25 {size:>9,}: {row}", flush=True)
    return row


# --- report ----------------------------------------------------------------------------------------------------


def row_line(row: Row) -> str:
    return (
        f"{row.size:>9,} {row.kind:<5} {row.setting:<13} build {row.build_s:7.1f} s  rss +{row.rss_mb:7.0f} MB  "
        f"1t p50 {row.p50_ms:6.2f} p99 {row.p99_ms:6.2f} ms  2t p50 {row.p50_2t_ms:6.2f} p99 {row.p99_2t_ms:6.2f} ms  "
        f"recall@10 {row.recall:.3f}  file {row.file_mb:.0f} MB"
    )


def plot(latencies: dict[tuple[int, str], np.ndarray], path: Path) -> None:
    """One latency histogram (one thread) per kind at the largest size."""
    largest = max(size for size, _ in latencies)
    kinds = [kind for size, kind in latencies if size == largest]
    figure = Figure(figsize=(8, 2.2 * len(kinds)), dpi=110)
    axes = figure.subplots(len(kinds), 1, squeeze=False)[:, 0]
    for ax, kind in zip(axes, kinds, strict=True):
        values = latencies[(largest, kind)]
        ax.hist(values, bins=60, color="#4477aa")
        ax.axvline(float(np.percentile(values, 99)), color="#cc3311", linestyle="--", label="p99")
        ax.set_title(f"{kind} at {largest:,} vectors: top-{TOP_K} query, one thread", fontsize=9)
        ax.set_xlabel("ms")
        ax.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="vector counts, comma-separated")
    parser.add_argument("--kinds", default="", help="kinds to build at every size (default: flat, auto, ivf at 1M)")
    parser.add_argument("--queries", type=int, default=1000, help="held-out queries per size")
    parser.add_argument("--bm25-sizes", default="10000,100000", help="BM25 passage counts ('' to skip)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "knowledge")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    sizes = [int(size) for size in args.sizes.split(",") if size]
    rows, latencies = vector_rows(sizes, args.queries, [kind for kind in args.kinds.split(",") if kind])
    bm25 = [bm25_row(int(size), 1000) for size in args.bm25_sizes.split(",") if size]
    print(f"\nvector search, top-{TOP_K}, {DIM} dims (budget: p99 <= {BUDGET_MS} ms at 1M, recall@10 >= 0.95)")
    for row in rows:
        print(row_line(row))
    for line in bm25:
        print(
            f"{line['size']:>9,} bm25  build {line['build_s']:.1f} s  rss +{line['rss_mb']:.0f} MB  "
            f"first pass p50 {line['p50_ms']:.2f} p99 {line['p99_ms']:.2f} ms  "
            f"warm p50 {line['warm_p50_ms']:.2f} p99 {line['warm_p99_ms']:.2f} ms"
        )
    summary = {"dim": DIM, "queries": args.queries, "vectors": [asdict(row) for row in rows], "bm25": bm25}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    if latencies:
        plot(latencies, args.out / "latency.png")
    print(f"wrote {args.out / 'summary.json'}")


if __name__ == "__main__":
    main()
