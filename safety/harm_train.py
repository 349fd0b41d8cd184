"""Train the harmful-request classifier (safety/harm_model.py) in torch.

The data: `safety/data/harm_examples.csv` (text,label,lang; see harm_examples.md), a project's own
`harm_examples.csv` in the same format, and the project's NLU examples as harmless requests (they are what
its customers ask, so the model learns never to refuse them). The NLU examples together weigh at most as much
as the labelled harmless rows, so a large nlu.yml does not drown the harmful ones.

Training is deterministic for a seed: torch's RNG is forked and seeded, and it runs on one thread. An
unchanged data set and settings (`data_hash`) is not trained again.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from bot.errors import ProjectError
from bot.model_files import seeded
from bot.nlu.embedding_cache import cached_embeddings
from bot.protocols import Embedder
from safety.harm_model import LABELS, NONE, HarmModel, embedding_texts, harm_model_exists, read_meta
from safety.toxicity import ToxicityConfig
from safety.toxicity_train import Progress, _Sparse, _steps, embed

EXAMPLES_FILE = "harm_examples.csv"
FEATURES = ToxicityConfig(buckets=2**16, ngram_max=3)
HIDDEN = 128
EPOCHS = 20
BATCH_SIZE = 256
LEARNING_RATE = 0.05
SPARSE_DECAY = 1e-4
DENSE_DECAY = 1e-3
DENSE_DROPOUT = 0.2
DENSE_AUX = 1.0  # the embedding's own loss, so it learns beside the n-grams instead of after them
# On 1 - P(none). Chosen on examples/shop/tests/redteam.csv, the model alone: 90% refused, 1.4% over-refused.
THRESHOLD = 0.4


@dataclass(frozen=True, slots=True)
class HarmExamples:
    """Texts, their labels and each example's loss weight."""

    texts: tuple[str, ...]
    labels: tuple[str, ...]
    weights: tuple[float, ...]


def read_examples(content: str, path: str) -> list[tuple[str, str]]:
    """(text, label) rows of a harm examples CSV; ProjectError naming the line of a bad row."""
    reader = csv.DictReader(io.StringIO(content, newline=""))
    missing = {"text", "label"} - set(reader.fieldnames or ())
    if missing:
        raise ProjectError(
            f"missing column(s) {', '.join(sorted(missing))}; the header must be text,label,lang", path=path
        )
    rows = []
    for row in reader:
        text, label = (row.get("text") or "").strip(), (row.get("label") or "").strip()
        if not text or label not in LABELS:
            raise ProjectError(
                f"expected a text and a label of {', '.join(LABELS)}; got label {label!r}",
                path=path,
                line=reader.line_num,
            )
        rows.append((text, label))
    return rows


def packaged_examples() -> list[tuple[str, str]]:
    resource = resources.files("safety") / "data" / EXAMPLES_FILE
    return read_examples(resource.read_text(encoding="utf-8"), str(resource))


def training_examples(project_file: Path | None, harmless: Sequence[str] = ()) -> HarmExamples:
    """The packaged examples, the project's file (when it exists) and `harmless` texts labelled `none`;
    a text listed twice keeps its first label (the project's file cannot relabel a packaged row)."""
    rows = packaged_examples()
    if project_file is not None and project_file.is_file():
        try:
            content = project_file.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as err:
            raise ProjectError(f"cannot read it (it must be UTF-8 CSV): {err}", path=str(project_file)) from err
        rows += read_examples(content, str(project_file))
    seen: dict[str, str] = {}
    for text, label in rows:
        seen.setdefault(text, label)
    extra = [text for text in dict.fromkeys(t.strip() for t in harmless) if text and text not in seen]
    labelled_none = sum(1 for label in seen.values() if label == NONE)
    each = min(1.0, labelled_none / max(len(extra), 1))
    return HarmExamples(
        tuple(seen) + tuple(extra),
        tuple(seen.values()) + (NONE,) * len(extra),
        (1.0,) * len(seen) + (each,) * len(extra),
    )


class _Net(nn.Module):
    def __init__(self, config: ToxicityConfig, n_labels: int) -> None:
        super().__init__()
        self.sparse = nn.EmbeddingBag(config.buckets, n_labels, mode="sum")
        nn.init.zeros_(self.sparse.weight)
        self.bias = nn.Parameter(torch.zeros(n_labels))
        self.hidden = nn.Linear(config.dense_dim, config.hidden) if config.dense_dim else None
        self.out = nn.Linear(config.hidden, n_labels, bias=False) if config.dense_dim else None
        self.dropout = nn.Dropout(DENSE_DROPOUT)

    def forward(
        self, indices: torch.Tensor, offsets: torch.Tensor, values: torch.Tensor, dense: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The logits, and those of the embedding alone (None without dense features)."""
        sparse: torch.Tensor = self.sparse(indices, offsets, per_sample_weights=values)
        if self.hidden is None or self.out is None or dense is None:
            return sparse + self.bias, None
        alone: torch.Tensor = self.out(torch.relu(self.hidden(self.dropout(dense)))) + self.bias
        return sparse + alone, alone

    def export(self) -> dict[str, npt.NDArray[np.float32]]:
        weights = {"sparse": self.sparse.weight.detach().numpy().copy(), "bias": self.bias.detach().numpy().copy()}
        if self.hidden is not None and self.out is not None:
            weights["hidden_w"] = self.hidden.weight.detach().numpy().T.copy()
            weights["hidden_b"] = self.hidden.bias.detach().numpy().copy()
            weights["out_w"] = self.out.weight.detach().numpy().T.copy()
        return weights


def train_harm_model(
    examples: HarmExamples,
    *,
    embedder: Embedder | None,
    seed: int = 0,
    epochs: int = EPOCHS,
    progress: Progress | None = None,
    data_hash: str = "",
    cache_dir: Path | None = None,
) -> HarmModel:
    """A trained model over `examples`; the same examples, embedder, seed and settings give the same weights.
    Embeddings are cached on disk (`bot.nlu.embedding_cache`; `cache_dir` overrides its folder)."""
    if not examples.texts:
        raise ValueError("training the harm model needs at least one example")
    config = FEATURES
    if embedder is not None:
        config = replace(config, dense_dim=embedder.dim, hidden=HIDDEN, embedder=embedder.name)
    sparse = _Sparse(examples.texts, config, progress)
    dense = None
    if embedder is not None:
        texts = embedding_texts(examples.texts)
        vectors = cached_embeddings(embedder, texts, lambda batch: embed(embedder, batch, progress), cache_dir)
        dense = torch.from_numpy(vectors)
    targets = torch.tensor([LABELS.index(label) for label in examples.labels], dtype=torch.int64)
    weights = torch.tensor(examples.weights)
    net = _fit(sparse, dense, targets, weights, config, seed=seed, epochs=epochs, progress=progress)
    return HarmModel(config, LABELS, net.export(), threshold=THRESHOLD, embedder=embedder, data_hash=data_hash)


def _fit(
    sparse: _Sparse,
    dense: torch.Tensor | None,
    targets: torch.Tensor,
    weight: torch.Tensor,
    config: ToxicityConfig,
    *,
    seed: int,
    epochs: int,
    progress: Progress | None,
) -> _Net:
    with seeded(seed):  # one thread: bit-for-bit the same weights for a seed
        net = _Net(config, len(LABELS))
        dense_params = [p for m in (net.hidden, net.out) if m is not None for p in m.parameters()]
        groups = [
            {"params": [net.sparse.weight], "weight_decay": SPARSE_DECAY},
            {"params": [net.bias], "weight_decay": 0.0},
            {"params": dense_params, "weight_decay": DENSE_DECAY},
        ]
        optimizer = torch.optim.AdamW(groups, lr=LEARNING_RATE, fused=True)
        steps = max(1, epochs * math.ceil(len(targets) / BATCH_SIZE))
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, LEARNING_RATE, total_steps=steps)
        order = torch.Generator().manual_seed(seed)
        net.train()
        for _ in _steps(range(epochs), epochs, "training the harm model", progress):
            for chunk in torch.split(torch.randperm(len(targets), generator=order), BATCH_SIZE):
                logits, alone = net(*sparse.batch(chunk.tolist()), None if dense is None else dense[chunk])
                loss = _loss(logits, targets[chunk], weight[chunk])
                if alone is not None:
                    loss = loss + DENSE_AUX * _loss(alone, targets[chunk], weight[chunk])
                optimizer.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
                schedule.step()
        net.eval()
        return net


def _loss(logits: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    each = nn.functional.cross_entropy(logits, targets, reduction="none")
    return (each * weight).sum() / weight.sum()


def data_hash(examples: HarmExamples, *, embedder: Embedder | None, seed: int) -> str:
    """SHA-256 of the examples and every setting that changes the trained model."""
    digest = hashlib.sha256()
    for text, label, weight in zip(examples.texts, examples.labels, examples.weights, strict=True):
        digest.update(f"{label}\t{weight:.6f}\t{text}\n".encode())
    settings = {
        "labels": LABELS,
        "features": FEATURES.to_json(),
        "embedder": None if embedder is None else [embedder.name, embedder.dim],
        "seed": seed,
        "train": [HIDDEN, EPOCHS, BATCH_SIZE, LEARNING_RATE, SPARSE_DECAY, DENSE_DECAY, DENSE_DROPOUT, DENSE_AUX],
        "threshold": THRESHOLD,
    }
    digest.update(json.dumps(settings, sort_keys=True).encode("utf-8"))
    return digest.hexdigest()


def train_if_stale(
    examples: HarmExamples,
    out_dir: Path,
    *,
    embedder: Embedder | None,
    seed: int = 0,
    force: bool = False,
    progress: Progress | None = None,
) -> HarmModel | None:
    """Train and save the model unless the one in `out_dir` was trained on the same data and settings;
    the new model, or None when it was up to date."""
    digest = data_hash(examples, embedder=embedder, seed=seed)
    if not force and harm_model_exists(out_dir) and read_meta(out_dir).get("data_hash") == digest:
        return None
    model = train_harm_model(examples, embedder=embedder, seed=seed, progress=progress, data_hash=digest)
    model.metrics = {"n_train": float(len(examples.texts))}
    model.save(out_dir)
    return model
