"""A small torch intent classifier over hashed sparse features, optionally with dense sentence embeddings.

Architecture: EmbeddingBag(sum, TF weights) over the hashed buckets seen in training, concatenated
with an optional dense query embedding, -> Linear -> ReLU -> Dropout -> Linear -> softmax.
Only buckets seen in training get a row: unseen buckets would carry untrained noise, and a
compact table keeps model.pt small (a few MB) whatever the hashing dimension.
"""

from __future__ import annotations

import json
import pickle
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from tqdm import tqdm

from bot.errors import ModelNotTrainedError
from bot.nlu.features import FeaturizerConfig, HashingFeaturizer, IndexArray, ValueArray
from bot.protocols import Embedder

MODEL_FILE = "model.pt"
META_FILE = "meta.json"
FORMAT_VERSION = 1

Probabilities = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class ClassifierConfig:
    """Network size and training schedule; stored in meta.json."""

    embed_dim: int = 128
    hidden_dim: int = 128
    dropout: float = 0.1
    epochs: int = 40
    batch_size: int = 32
    learning_rate: float = 5e-3
    weight_decay: float = 1e-2
    label_smoothing: float = 0.1

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClassifierConfig:
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})


class IntentNet(nn.Module):
    """The network; `buckets` (a buffer, saved with the weights) maps hashed indices to table rows."""

    def __init__(self, n_buckets: int, n_intents: int, dense_dim: int, config: ClassifierConfig) -> None:
        super().__init__()
        self.register_buffer("buckets", torch.zeros(n_buckets, dtype=torch.int64))
        self.bag = nn.EmbeddingBag(max(n_buckets, 1), config.embed_dim, mode="sum")
        self.hidden = nn.Linear(config.embed_dim + dense_dim, config.hidden_dim)
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(config.hidden_dim, n_intents)

    def forward(self, batch: SparseBatch, dense: torch.Tensor | None = None) -> torch.Tensor:
        x = self.bag(batch.rows, batch.offsets, per_sample_weights=batch.weights)
        if dense is not None:
            x = torch.cat([x, dense], dim=1)
        logits: torch.Tensor = self.out(self.dropout(torch.relu(self.hidden(x))))
        return logits


@dataclass(frozen=True, slots=True)
class SparseBatch:
    """EmbeddingBag input for several texts: flat rows, where each text starts, and the TF weights."""

    rows: torch.Tensor
    offsets: torch.Tensor
    weights: torch.Tensor

    @classmethod
    def of(cls, features: Sequence[tuple[IndexArray, ValueArray]]) -> SparseBatch:
        lengths = [len(rows) for rows, _ in features]
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        rows = np.concatenate([r for r, _ in features]) if features else np.zeros(0, np.int64)
        weights = np.concatenate([w for _, w in features]) if features else np.zeros(0, np.float32)
        return cls(torch.from_numpy(rows), torch.from_numpy(offsets), torch.from_numpy(weights))


class IntentClassifier:
    """A trained intent model: featurizer + network + the intent names, with save/load to a folder."""

    def __init__(
        self,
        net: IntentNet,
        intents: Sequence[str],
        featurizer: HashingFeaturizer,
        config: ClassifierConfig,
        embedder: Embedder | None = None,
    ) -> None:
        self.net = net.eval()
        self.intents = tuple(intents)
        self.featurizer = featurizer
        self.config = config
        self.embedder = embedder
        self._buckets: IndexArray = net.get_buffer("buckets").numpy()

    @classmethod
    def train(
        cls,
        texts: Sequence[str],
        labels: Sequence[str],
        *,
        featurizer: HashingFeaturizer | None = None,
        embedder: Embedder | None = None,
        config: ClassifierConfig | None = None,
        seed: int = 0,
        progress: bool = True,
    ) -> IntentClassifier:
        """Train on `texts` labelled `labels`; the same inputs and seed always give the same weights."""
        featurizer, config = featurizer or HashingFeaturizer(), config or ClassifierConfig()
        intents = sorted(set(labels))
        hashed = [featurizer.featurize(text) for text in texts]
        buckets = np.unique(np.concatenate([idx for idx, _ in hashed])) if hashed else np.zeros(0, np.int64)
        dense = _embed(embedder, texts)
        with _seeded(seed):
            net = IntentNet(len(buckets), len(intents), 0 if dense is None else dense.shape[1], config)
            net.get_buffer("buckets").copy_(torch.from_numpy(buckets))
            model = cls(net, intents, featurizer, config, embedder if dense is not None else None)
            column = {intent: i for i, intent in enumerate(intents)}
            target = torch.tensor([column[label] for label in labels], dtype=torch.int64)
            model._fit([model._rows(f) for f in hashed], dense, target, seed=seed, progress=progress)
        return model

    def _fit(
        self,
        features: list[tuple[IndexArray, ValueArray]],
        dense: torch.Tensor | None,
        target: torch.Tensor,
        *,
        seed: int,
        progress: bool,
    ) -> None:
        config = self.config
        optimizer = torch.optim.AdamW(
            self.net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay, foreach=True
        )
        loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        order_rng = torch.Generator().manual_seed(seed)
        show = progress and sys.stderr.isatty()
        self.net.train()
        with tqdm(range(config.epochs), desc="training NLU", unit="epoch", disable=not show, leave=False) as bar:
            for _ in bar:
                total = 0.0
                for chunk in torch.split(torch.randperm(len(features), generator=order_rng), config.batch_size):
                    picked = chunk.tolist()
                    logits = self.net(SparseBatch.of([features[i] for i in picked]), _take(dense, chunk))
                    loss = loss_fn(logits, target[chunk])
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    total += loss.item() * len(picked)
                bar.set_postfix(loss=f"{total / max(len(features), 1):.4f}")
        self.net.eval()

    def _rows(self, features: tuple[IndexArray, ValueArray]) -> tuple[IndexArray, ValueArray]:
        """Hashed indices -> table rows, dropping buckets never seen in training."""
        indices, values = features
        pos = np.searchsorted(self._buckets, indices)
        known = pos < len(self._buckets)
        known[known] = self._buckets[pos[known]] == indices[known]
        return pos[known].astype(np.int64), values[known]

    def predict(self, texts: Sequence[str]) -> Probabilities:
        """Intent probabilities, shape (len(texts), len(intents)), columns in `self.intents` order."""
        if not texts:
            return np.zeros((0, len(self.intents)), dtype=np.float32)
        batch = SparseBatch.of([self._rows(self.featurizer.featurize(text)) for text in texts])
        dense = _embed(self.embedder, texts)
        with torch.inference_mode():
            probs = torch.softmax(self.net(batch, dense), dim=1)
        return probs.numpy()

    def save(self, model_dir: Path, extra: dict[str, Any] | None = None) -> None:
        """Write model.pt (tensors only) and meta.json (everything needed to rebuild the network)."""
        model_dir.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT_VERSION,
            "intents": list(self.intents),
            "featurizer": self.featurizer.config.to_json(),
            "classifier": asdict(self.config),
            "n_buckets": len(self._buckets),
            "dense_dim": self.net.hidden.in_features - self.config.embed_dim,
            "embedder": None if self.embedder is None else self.embedder.name,
            **(extra or {}),
        }
        _atomic_write(model_dir / MODEL_FILE, lambda path: torch.save(self.net.state_dict(), path))
        _atomic_write(
            model_dir / META_FILE, lambda path: path.write_text(json.dumps(meta, ensure_ascii=False, indent=2))
        )

    @classmethod
    def load(cls, model_dir: Path, *, embedder: Embedder | None = None) -> IntentClassifier:
        """Load what `save` wrote; the embedder must be the one the model was trained with, if any."""
        meta = read_meta(model_dir)
        if meta is None or not (model_dir / MODEL_FILE).is_file():
            raise ModelNotTrainedError(f"no trained NLU model in {model_dir}: run `kefu train` first")
        wanted = meta.get("embedder")
        if wanted is not None and (embedder is None or embedder.name != wanted):
            have = "none" if embedder is None else repr(embedder.name)
            raise ModelNotTrainedError(
                f"the NLU model in {model_dir} was trained with the {wanted!r} embedder but {have} is configured: "
                "configure the same embedder or run `kefu train` again"
            )
        try:
            config = ClassifierConfig.from_json(meta["classifier"])
            net = IntentNet(int(meta["n_buckets"]), len(meta["intents"]), int(meta["dense_dim"]), config)
            net.load_state_dict(torch.load(model_dir / MODEL_FILE, weights_only=True))
            featurizer = HashingFeaturizer(FeaturizerConfig.from_json(meta["featurizer"]))
        except (KeyError, TypeError, ValueError, RuntimeError, OSError, pickle.UnpicklingError) as err:
            raise ModelNotTrainedError(f"the NLU model in {model_dir} is unreadable ({err}): run `kefu train`") from err
        return cls(net, meta["intents"], featurizer, config, embedder if wanted is not None else None)


def read_meta(model_dir: Path) -> dict[str, Any] | None:
    """The model folder's meta.json, or None when it is missing, unreadable or of another format."""
    try:
        meta = json.loads((model_dir / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
        return None
    return meta


def _embed(embedder: Embedder | None, texts: Sequence[str]) -> torch.Tensor | None:
    if embedder is None:
        return None
    return torch.from_numpy(np.ascontiguousarray(embedder.embed_queries(list(texts)), dtype=np.float32))


def _take(dense: torch.Tensor | None, rows: torch.Tensor) -> torch.Tensor | None:
    return None if dense is None else dense[rows]


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch and train on one thread, restoring the caller's RNG state and thread count afterwards.

    One thread fixes the order of every floating-point reduction, which makes CPU training bit-for-bit
    reproducible; `torch.use_deterministic_algorithms` only changes CUDA kernels (and costs a 1 s import).
    It is also faster: this network is too small to gain from threads, and on a busy machine
    spinning OpenMP workers slowed training 30-fold.
    """
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


def _atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Write to a sibling temp file, then rename, so a reader never sees half a model."""
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    tmp.replace(path)
