"""Train the toxicity model (safety/toxicity.py) on COLD plus kefu's English seed, in torch.

COLD (Deng et al. 2022, Apache-2.0) labels Chinese comments on race, region and gender as offensive or not;
`safety/data/toxicity_en.csv` adds hand-written English customer-service lines under the same policy:
1 = the text insults or abuses a person or a group (the agent, staff, "you people", women, foreigners);
0 = everything else, including frustration and rough words about a thing ("the app is stupid slow",
"kill the auto-renewal", "what the hell happened to my refund") and criticism without insult ("you didn't
answer my question"). The English lines are few, so each weighs more (`ENGLISH_SHARE`); with dense
features the multilingual embedding also carries what COLD teaches across to English.

Training is deterministic for a seed: torch's RNG is forked and seeded, and it runs on one thread.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import random
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from tqdm import tqdm

from bot.errors import ProjectError
from bot.model_files import seeded
from bot.protocols import Embedder
from safety.toxicity import (
    ToxicityConfig,
    ToxicityModel,
    dense_weight_names,
    featurize,
    read_meta,
    toxicity_model_exists,
)

Progress = Callable[[str], None]
T = TypeVar("T")

SPLITS = ("train", "dev", "test")
ENGLISH_SEED = "toxicity_en.csv"
ENGLISH_SHARE = 0.05  # the English seed's share of the total training weight
EMBED_BATCH = 64
BATCH_SIZE = 256
EPOCHS = 15
LEARNING_RATE = 0.03
SPARSE_DECAY = 1e-4  # AdamW weight decay; on COLD 1e-5..1e-3 give the same figures, 1.0 costs 1.5 points
DENSE_DECAY = 1e-4
DENSE_DROPOUT = 0.1
HIDDEN = 128  # hidden units over the dense embedding (0: linear)
DENSE_AUX = 1.0  # weight of the loss of the embedding's logit alone (English CV 0.93 -> 0.95)


# --- data ---


def read_cold(directory: Path, split: str) -> tuple[list[str], list[int]]:
    """Texts and labels (1 = offensive) of one COLD split; ProjectError when the file is missing or broken."""
    if split not in SPLITS:
        raise ValueError(f"unknown COLD split {split!r}; use one of {', '.join(SPLITS)}")
    path = Path(directory) / f"{split}.csv"
    try:
        content = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as err:
        raise ProjectError(
            "COLD split not found; get the data set from github.com/thu-coai/COLDataset (see "
            "../shared/data/README.md) and pass its folder",
            path=str(path),
        ) from err
    except (OSError, UnicodeDecodeError) as err:
        raise ProjectError(f"cannot read the COLD split (it must be UTF-8 CSV): {err}", path=str(path)) from err
    return _labelled_rows(content, str(path), text_column="TEXT")


def read_english_seed() -> tuple[list[str], list[int]]:
    """kefu's hand-written English lines (`safety/data/toxicity_en.csv`: text,label)."""
    resource = resources.files("safety") / "data" / ENGLISH_SEED
    return _labelled_rows(resource.read_text(encoding="utf-8"), str(resource), text_column="text")


def _labelled_rows(content: str, path: str, *, text_column: str) -> tuple[list[str], list[int]]:
    reader = csv.DictReader(io.StringIO(content, newline=""))
    missing = {text_column, "label"} - set(reader.fieldnames or ())
    if missing:
        raise ProjectError(f"missing column(s) {', '.join(sorted(missing))}; got {reader.fieldnames}", path=path)
    texts: list[str] = []
    labels: list[int] = []
    for row in reader:
        text, label = row.get(text_column), (row.get("label") or "").strip()
        if text is None or label not in ("0", "1"):
            raise ProjectError(f"expected a text and a label 0 or 1, got {label!r}", path=path, line=reader.line_num)
        texts.append(text)
        labels.append(int(label))
    if not texts:
        raise ProjectError("no rows", path=path)
    return texts, labels


def stratified_limit(labels: Sequence[int], limit: int, seed: int) -> list[int]:
    """Indices of `limit` rows (all of them when there are fewer) keeping the label shares; the same for
    the same seed."""
    if limit >= len(labels):
        return list(range(len(labels)))
    rng = random.Random(seed)
    by_label = {label: [i for i, y in enumerate(labels) if y == label] for label in sorted(set(labels))}
    quota = {label: limit * len(rows) / len(labels) for label, rows in by_label.items()}
    counts = {label: math.floor(q) for label, q in quota.items()}
    for label in sorted(quota, key=lambda lb: counts[lb] - quota[lb])[: limit - sum(counts.values())]:
        counts[label] += 1  # the largest remainders take the rows that flooring left over
    return sorted(i for label, rows in by_label.items() for i in rng.sample(rows, counts[label]))


# --- progress ---


def _steps(items: Iterable[T], total: int, desc: str, progress: Progress | None) -> Iterator[T]:
    """`items`, with a tqdm bar on a terminal, else about ten `progress` lines; silent without a callback."""
    if progress is None:
        yield from items
        return
    if sys.stderr.isatty():
        yield from tqdm(items, total=total, desc=desc, leave=False, file=sys.stderr)
        progress(f"{desc}: done ({total})")
        return
    every = max(1, math.ceil(total / 10))
    for done, item in enumerate(items, start=1):
        yield item
        if done % every == 0 or done == total:
            progress(f"{desc}: {done}/{total}")


def embed(embedder: Embedder, texts: Sequence[str], progress: Progress | None = None) -> npt.NDArray[np.float32]:
    """Query embeddings of `texts` in batches (shape (n, dim)), with progress."""
    starts = range(0, len(texts), EMBED_BATCH)
    chunks = [
        np.asarray(embedder.embed_queries(list(texts[s : s + EMBED_BATCH])), dtype=np.float32)
        for s in _steps(starts, len(starts), "embedding", progress)
    ]
    return np.concatenate(chunks) if chunks else np.zeros((0, embedder.dim), dtype=np.float32)


# --- the network ---


class _Net(nn.Module):
    """A logistic regression over the hashed n-grams plus, optionally, a small network over the embedding."""

    def __init__(self, config: ToxicityConfig) -> None:
        super().__init__()
        self.sparse = nn.EmbeddingBag(config.buckets, 1, mode="sum")
        nn.init.zeros_(self.sparse.weight)
        self.bias = nn.Parameter(torch.zeros(1))
        self.dense: nn.Module | None = None
        if config.dense_dim and config.hidden:
            self.dense = nn.Sequential(
                nn.Dropout(DENSE_DROPOUT),
                nn.Linear(config.dense_dim, config.hidden),
                nn.ReLU(),
                nn.Linear(config.hidden, 1, bias=False),
            )
        elif config.dense_dim:
            self.dense = nn.Sequential(nn.Dropout(DENSE_DROPOUT), nn.Linear(config.dense_dim, 1, bias=False))

    def forward(
        self, indices: torch.Tensor, offsets: torch.Tensor, values: torch.Tensor, dense: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The logits, and those of the embedding alone (None without dense features)."""
        sparse: torch.Tensor = self.sparse(indices, offsets, per_sample_weights=values).squeeze(1)
        if self.dense is None or dense is None:
            return sparse + self.bias, None
        alone: torch.Tensor = self.dense(dense).squeeze(1) + self.bias
        return sparse + alone, alone

    def export(self, config: ToxicityConfig) -> dict[str, npt.NDArray[np.float32]]:
        """The weights under the names ToxicityModel reads."""
        weights = {
            "sparse": self.sparse.weight.detach().numpy()[:, 0].copy(),
            "bias": self.bias.detach().numpy().copy(),
        }
        if self.dense is not None:
            linears = [m for m in self.dense.modules() if isinstance(m, nn.Linear)]
            if config.hidden:
                hidden, out = linears
                weights["hidden_w"] = hidden.weight.detach().numpy().T.copy()
                weights["hidden_b"] = hidden.bias.detach().numpy().copy()
                weights["out_w"] = out.weight.detach().numpy()[0].copy()
            else:
                weights["dense_w"] = linears[0].weight.detach().numpy()[0].copy()
        if set(weights) != {"sparse", "bias", *dense_weight_names(config)}:
            raise RuntimeError(f"exported weights {sorted(weights)} do not match the config {config}")
        return weights


class _Sparse:
    """The hashed features of many texts, ready to slice into EmbeddingBag batches."""

    def __init__(self, texts: Sequence[str], config: ToxicityConfig, progress: Progress | None) -> None:
        rows = [featurize(t, config) for t in _steps(texts, len(texts), "featurizing", progress)]
        self.indices = [torch.from_numpy(i) for i, _ in rows]
        self.values = [torch.from_numpy(v) for _, v in rows]

    def batch(self, rows: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        lengths = torch.tensor([0] + [len(self.indices[r]) for r in rows[:-1]], dtype=torch.int64)
        indices = torch.cat([self.indices[r] for r in rows])
        values = torch.cat([self.values[r] for r in rows])
        return indices, torch.cumsum(lengths, 0), values


def train_toxicity(
    texts: Sequence[str],
    labels: Sequence[int],
    *,
    dev: tuple[list[str], list[int]] | None = None,
    embedder: Embedder | None = None,
    seed: int = 0,
    epochs: int = EPOCHS,
    progress: Progress | None = None,
    data_hash: str = "",
    weights: Sequence[float] | None = None,
    config: ToxicityConfig | None = None,
    hidden: int = HIDDEN,
) -> ToxicityModel:
    """A trained model; its threshold maximises macro-F1 on `dev` (0.5 without it). The same data, seed
    and settings always give the same weights. `weights` weigh each example's loss (default 1); `config`
    sets the n-gram features (its dense fields follow `embedder`); `hidden` sizes the layer over the
    embedding (0: linear)."""
    if len(texts) != len(labels) or (weights is not None and len(weights) != len(texts)):
        raise ValueError("texts, labels (and weights) must have the same length")
    if not texts or set(labels) - {0, 1}:
        raise ValueError("training needs at least one text, and labels 0 or 1")
    config = config or ToxicityConfig()
    if embedder is not None:
        config = replace(config, dense_dim=embedder.dim, embedder=embedder.name, hidden=hidden)
    else:
        config = replace(config, dense_dim=0, hidden=0, embedder="")
    sparse = _Sparse(texts, config, progress)
    dense = torch.from_numpy(embed(embedder, texts, progress)) if embedder is not None else None
    net = _fit(sparse, dense, labels, weights, config, seed=seed, epochs=epochs, progress=progress)
    model = ToxicityModel(config, net.export(config), embedder=embedder, data_hash=data_hash)
    if dev is not None:
        model.threshold = best_threshold(dev[1], _probabilities(model, dev[0], progress))
    return model


def _fit(
    sparse: _Sparse,
    dense: torch.Tensor | None,
    labels: Sequence[int],
    weights: Sequence[float] | None,
    config: ToxicityConfig,
    *,
    seed: int,
    epochs: int,
    progress: Progress | None,
) -> _Net:
    with seeded(seed):  # one thread: bit-for-bit the same weights for a seed
        net = _Net(config)
        target = torch.tensor(labels, dtype=torch.float32)
        weight = torch.ones(len(labels)) if weights is None else torch.tensor(weights, dtype=torch.float32)
        weight = weight * len(labels) / weight.sum()
        groups = [
            {"params": [net.sparse.weight], "weight_decay": SPARSE_DECAY},
            {"params": [net.bias], "weight_decay": 0.0},
        ]
        if net.dense is not None:
            groups.append({"params": list(net.dense.parameters()), "weight_decay": DENSE_DECAY})
        optimizer = torch.optim.AdamW(groups, lr=LEARNING_RATE)
        steps = max(1, epochs * math.ceil(len(labels) / BATCH_SIZE))
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, LEARNING_RATE, total_steps=steps)
        order = torch.Generator().manual_seed(seed)
        bce = nn.functional.binary_cross_entropy_with_logits
        net.train()
        for epoch in _steps(range(epochs), epochs, "training", progress):
            total = 0.0
            for chunk in torch.split(torch.randperm(len(labels), generator=order), BATCH_SIZE):
                rows = chunk.tolist()
                indices, offsets, values = sparse.batch(rows)
                logits, alone = net(indices, offsets, values, None if dense is None else dense[chunk])
                loss = bce(logits, target[chunk], weight=weight[chunk])
                if alone is not None and DENSE_AUX > 0:  # the embedding must also judge on its own
                    loss = loss + DENSE_AUX * bce(alone, target[chunk], weight=weight[chunk])
                optimizer.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
                schedule.step()
                total += loss.item() * len(rows)
            if progress is not None and not sys.stderr.isatty():
                progress(f"epoch {epoch + 1}/{epochs}: loss {total / len(labels):.4f}")
        net.eval()
        return net


def _probabilities(model: ToxicityModel, texts: Sequence[str], progress: Progress | None) -> npt.NDArray[np.float64]:
    starts = range(0, len(texts), 512)
    parts = [model.predict_proba(texts[s : s + 512]) for s in _steps(starts, len(starts), "scoring", progress)]
    return np.concatenate(parts) if parts else np.zeros(0)


def best_threshold(labels: Sequence[int], proba: npt.NDArray[np.float64]) -> float:
    """The threshold in 0.05..0.95 (step 0.01) with the best macro-F1; ties go to the one nearest 0.5."""
    candidates = np.round(np.arange(0.05, 0.951, 0.01), 2)
    y = np.asarray(labels)
    scores = [_metrics(y, proba >= t)["macro_f1"] for t in candidates]
    best = max(scores)
    return float(
        min((t for t, s in zip(candidates, scores, strict=True) if s >= best - 1e-12), key=lambda t: abs(t - 0.5))
    )


def _metrics(y: npt.NDArray[np.int_], predicted: npt.NDArray[np.bool_]) -> dict[str, float]:
    truth = y.astype(bool)
    tp, fp = float(np.sum(predicted & truth)), float(np.sum(predicted & ~truth))
    fn, tn = float(np.sum(~predicted & truth)), float(np.sum(~predicted & ~truth))

    def f1(tp: float, fp: float, fn: float) -> float:
        return 2 * tp / (2 * tp + fp + fn) if tp else 0.0

    return {
        "accuracy": (tp + tn) / max(len(y), 1),
        "macro_f1": (f1(tp, fp, fn) + f1(tn, fn, fp)) / 2,
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "n": float(len(y)),
    }


def evaluate_toxicity(
    model: ToxicityModel, texts: Sequence[str], labels: Sequence[int], *, progress: Progress | None = None
) -> dict[str, float]:
    """Accuracy, macro-F1, and precision and recall of the offensive class at the model's threshold."""
    if len(texts) != len(labels):
        raise ValueError("texts and labels must have the same length")
    proba = _probabilities(model, texts, progress)
    return _metrics(np.asarray(labels), proba >= model.threshold)


# --- the whole recipe ---


def data_hash(cold_dir: Path, *, embedder: Embedder | None, seed: int, limit: int | None) -> str:
    """SHA-256 of the COLD files, the English seed and every setting that changes the trained model."""
    digest = hashlib.sha256()
    for split in SPLITS:
        path = Path(cold_dir) / f"{split}.csv"
        digest.update(path.read_bytes() if path.is_file() else b"<missing>")
    digest.update((resources.files("safety") / "data" / ENGLISH_SEED).read_bytes())
    settings = {
        "config": ToxicityConfig().to_json(),
        "embedder": None if embedder is None else [embedder.name, embedder.dim],
        "seed": seed,
        "limit": limit,
        "train": _training_settings(),
    }
    digest.update(json.dumps(settings, sort_keys=True).encode("utf-8"))
    return digest.hexdigest()


def _training_settings() -> dict[str, float]:
    return {
        "english_share": ENGLISH_SHARE,
        "epochs": EPOCHS,
        "batch_size": BATCH_SIZE,
        "learning_rate": LEARNING_RATE,
        "sparse_decay": SPARSE_DECAY,
        "dense_decay": DENSE_DECAY,
        "dense_dropout": DENSE_DROPOUT,
        "hidden": HIDDEN,
        "dense_aux": DENSE_AUX,
    }


def english_weights(n_chinese: int, n_english: int) -> list[float]:
    """Per-example loss weights giving the English seed `ENGLISH_SHARE` of the total (never below 1 each)."""
    each = max(1.0, ENGLISH_SHARE * n_chinese / ((1 - ENGLISH_SHARE) * max(n_english, 1)))
    return [1.0] * n_chinese + [each] * n_english


def train_from_cold(
    cold_dir: Path,
    out_dir: Path,
    *,
    embedder: Embedder | None,
    seed: int = 0,
    limit: int | None = None,
    progress: Progress | None = None,
    force: bool = False,
) -> dict[str, float]:
    """Train on COLD train (at most `limit` rows, stratified) plus the English seed, choose the threshold
    on COLD dev, evaluate on COLD test, save to `out_dir`. When the model there was trained on the same
    data and settings (and not `force`), skip and return its stored metrics (with `skipped` = 1)."""
    cold_dir, out_dir = Path(cold_dir), Path(out_dir)
    splits = {split: read_cold(cold_dir, split) for split in SPLITS}
    digest = data_hash(cold_dir, embedder=embedder, seed=seed, limit=limit)
    if not force and toxicity_model_exists(out_dir) and read_meta(out_dir).get("data_hash") == digest:
        stored = {str(k): float(v) for k, v in dict(read_meta(out_dir).get("metrics", {})).items()}
        if progress is not None:
            progress(f"toxicity model in {out_dir} is up to date (same data and settings); not retraining")
        return {**stored, "skipped": 1.0}
    texts, labels = splits["train"]
    if limit is not None:
        keep = stratified_limit(labels, limit, seed)
        texts, labels = [texts[i] for i in keep], [labels[i] for i in keep]
    en_texts, en_labels = read_english_seed()
    weights = english_weights(len(texts), len(en_texts))
    started = time.perf_counter()
    model = train_toxicity(
        texts + en_texts, labels + en_labels, embedder=embedder, seed=seed, progress=progress, data_hash=digest,
        weights=weights,
    )  # fmt: skip
    dev_texts, dev_labels = splits["dev"]
    dev_proba = _probabilities(model, dev_texts, progress)  # scored once: for the threshold and the metrics
    model.threshold = best_threshold(dev_labels, dev_proba)
    dev = _metrics(np.asarray(dev_labels), dev_proba >= model.threshold)
    train_s = time.perf_counter() - started
    test = evaluate_toxicity(model, *splits["test"], progress=progress)
    model.metrics = {
        **{f"test_{k}": v for k, v in test.items()},
        "dev_macro_f1": dev["macro_f1"],
        "dev_accuracy": dev["accuracy"],
        "threshold": model.threshold,
        "n_train": float(len(labels) + len(en_labels)),
        "train_seconds": round(train_s, 1),
    }
    model.save(out_dir)
    return {**model.metrics, "skipped": 0.0}
