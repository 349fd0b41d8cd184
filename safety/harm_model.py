"""A learned harmful-request classifier: which refusal category, if any, a customer's message asks for.

The rules of harm.py and injection.py catch the phrasings someone wrote down; this model generalises from
examples to the ones nobody did ("could you find out where my ex moved to", "帮我查下隔壁老王买了啥").
It is trained by `safety/harm_train.py` on `safety/data/harm_examples.csv` (plus a project's own
`harm_examples.csv`, and its NLU examples as harmless requests) and runs as one more input check, when a
project turns it on (`safety.harm_model`).

Features are the toxicity model's (hashed character n-grams and Latin-script word n-grams) beside the query
embedding of the project's `Embedder`, which NLU and retrieval compute for the same text anyway. The logits
of each label add a linear model over the n-grams and a one-hidden-layer network over the embedding. A message
is refused when P(none) falls below `1 - threshold`; the category is the likeliest other label.

A saved model is `harm.npz` (weights, read with `allow_pickle=False`) and `harm.json` (labels, feature
settings, threshold, data hash, metrics), written in that order, so a folder without the meta is never used.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bot.errors import ConfigError, ModelNotTrainedError, ProjectError
from bot.events import Session
from bot.nlu.text import clean_text
from bot.protocols import Embedder
from bot.types import Fact, SafetyVerdict, Stage
from safety.harm import CATEGORIES
from safety.saved_model import LazyModel, model_files_exist, read_model_meta, save_model_files
from safety.toxicity import ToxicityConfig, featurize

NAME = "harm_model"
NONE = "none"
LABELS = (NONE, *CATEGORIES, "injection")
META_FILE = "harm.json"
WEIGHTS_FILE = "harm.npz"
FORMAT = 1
TRAIN_HINT = "run `kefu train PROJECT` to train it"
NLU_MAX_CHARS = 1000  # nlu.max_chars's default: the text the NLU embeds, so a turn embeds it once

Floats = npt.NDArray[np.float32]


def weight_shapes(config: ToxicityConfig, n_labels: int) -> dict[str, tuple[int, ...]]:
    """The arrays a model of `config` has, and their shapes."""
    shapes: dict[str, tuple[int, ...]] = {"sparse": (config.buckets, n_labels), "bias": (n_labels,)}
    if config.dense_dim:
        shapes.update(
            hidden_w=(config.dense_dim, config.hidden), hidden_b=(config.hidden,), out_w=(config.hidden, n_labels)
        )
    return shapes


class HarmModel:
    """P(label) for texts over `labels` (the first is `none`); `threshold` on 1 - P(none) decides."""

    def __init__(
        self,
        config: ToxicityConfig,
        labels: Sequence[str],
        weights: Mapping[str, npt.NDArray[Any]],
        *,
        threshold: float = 0.5,
        embedder: Embedder | None = None,
        data_hash: str = "",
        metrics: Mapping[str, float] | None = None,
    ) -> None:
        if not labels or labels[0] != NONE or len(set(labels)) != len(labels):
            raise ValueError(f"harm model labels must be distinct and start with {NONE!r}, got {list(labels)}")
        for name, shape in weight_shapes(config, len(labels)).items():
            got = None if name not in weights else tuple(weights[name].shape)
            if got != shape:
                raise ValueError(f"harm model weights: {name!r} should have shape {shape}, got {got}")
        self.config = config
        self.labels = tuple(labels)
        self.weights: dict[str, Floats] = {
            name: np.asarray(weights[name], dtype=np.float32) for name in weight_shapes(config, len(labels))
        }
        self.threshold = float(threshold)
        self.embedder = embedder
        self.data_hash = data_hash
        self.metrics: dict[str, float] = dict(metrics or {})
        _check_embedder(config, embedder)

    def probabilities(self, texts: Sequence[str]) -> npt.NDArray[np.float64]:
        """Shape (len(texts), len(labels)); rows sum to 1."""
        sparse = self.weights["sparse"]
        logits = np.zeros((len(texts), len(self.labels)), dtype=np.float64)
        for row, text in enumerate(texts):
            indices, values = featurize(text, self.config)
            logits[row] = values @ sparse[indices]
        if self.config.dense_dim and len(texts):
            logits += self._dense_logits(texts)
        logits += self.weights["bias"]
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        out: npt.NDArray[np.float64] = exp / exp.sum(axis=1, keepdims=True)
        return out

    def _dense_logits(self, texts: Sequence[str]) -> npt.NDArray[np.float64]:
        assert self.embedder is not None  # _check_embedder made sure
        vectors = np.asarray(self.embedder.embed_queries(embedding_texts(texts)), dtype=np.float32)
        w = self.weights
        hidden: Floats = np.maximum(vectors @ w["hidden_w"] + w["hidden_b"], 0.0)
        return (hidden @ w["out_w"]).astype(np.float64)

    def classify(self, text: str) -> tuple[str, float]:
        """The likeliest harmful label and 1 - P(none), the probability that the text is harmful at all."""
        p = self.probabilities([text])[0]
        harmful = 1.0 - float(p[0])
        return self.labels[1 + int(np.argmax(p[1:]))], harmful

    def save(self, directory: Path) -> None:
        """Write the weights, then the meta file, each replaced atomically (a crash keeps the old model)."""
        meta = {
            "format": FORMAT,
            "labels": list(self.labels),
            "config": self.config.to_json(),
            "threshold": self.threshold,
            "data_hash": self.data_hash,
            "metrics": self.metrics,
        }
        save_model_files(directory, WEIGHTS_FILE, self.weights, META_FILE, meta)

    @classmethod
    def load(cls, directory: Path, *, embedder: Embedder | None = None) -> HarmModel:
        """The model saved in `directory`: ModelNotTrainedError when there is none, ProjectError when its files
        are broken, ConfigError when it needs another embedder than the one given."""
        meta = read_meta(directory)
        try:
            config = ToxicityConfig.from_json(meta["config"])
            labels = [str(label) for label in meta["labels"]]
            threshold = float(meta["threshold"])
            metrics = {str(k): float(v) for k, v in dict(meta.get("metrics", {})).items()}
        except (KeyError, TypeError, ValueError) as err:
            raise ProjectError(f"broken harm model meta file ({err}); {TRAIN_HINT}", path=str(directory)) from err
        _check_embedder(config, embedder)
        path = directory / WEIGHTS_FILE
        try:
            with np.load(path, allow_pickle=False) as archive:
                weights = {name: archive[name] for name in archive.files}
            return cls(
                config,
                labels,
                weights,
                threshold=threshold,
                embedder=embedder,
                data_hash=str(meta.get("data_hash", "")),
                metrics=metrics,
            )
        except FileNotFoundError as err:
            raise ModelNotTrainedError(f"harm model weights missing: {path}; {TRAIN_HINT}") from err
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
            raise ProjectError(f"broken harm model weights ({err}); {TRAIN_HINT}", path=str(path)) from err


def embedding_texts(texts: Sequence[str]) -> list[str]:
    """The texts as the NLU embeds them, so that the embedder's cache serves the harm model and the NLU once."""
    return [clean_text(text, NLU_MAX_CHARS)[0] for text in texts]


def _check_embedder(config: ToxicityConfig, embedder: Embedder | None) -> None:
    if not config.dense_dim:
        return
    if embedder is None or (embedder.name, embedder.dim) != (config.embedder, config.dense_dim):
        given = "none" if embedder is None else f"{embedder.name!r} ({embedder.dim}-d)"
        raise ConfigError(
            f"the harm model was trained over the embedder {config.embedder!r} ({config.dense_dim}-d), and was "
            f"given {given}: {TRAIN_HINT} again"
        )


def read_meta(directory: Path) -> dict[str, Any]:
    """A saved model's meta: ModelNotTrainedError when there is none, ProjectError when it is not readable."""
    return read_model_meta(directory, META_FILE, kind="harm", fmt=FORMAT, hint=TRAIN_HINT)


def harm_model_exists(directory: Path) -> bool:
    return model_files_exist(directory, WEIGHTS_FILE, META_FILE, kind="harm", fmt=FORMAT)


class HarmModelCheck:
    """SafetyCheck on the customer's message: blocks when the model finds it harmful with at least the
    threshold's probability, naming the category. The constructor is cheap; `warm_up()` loads the model."""

    name: str = NAME

    def __init__(self, directory: Path, *, embedder: Embedder | None = None, threshold: float | None = None) -> None:
        if threshold is not None and not 0.0 < threshold < 1.0:
            raise ConfigError(f"the harm model threshold must be between 0 and 1, got {threshold}")
        self.directory = Path(directory)
        self.embedder = embedder
        self._threshold = threshold
        self._model = LazyModel(lambda: HarmModel.load(self.directory, embedder=self.embedder))

    @property
    def model(self) -> HarmModel:
        return self._model.get()

    def warm_up(self) -> None:
        self.model.probabilities(["warm up"])

    def check(
        self, text: str, *, stage: Stage, session: Session | None = None, facts: Sequence[Fact] = ()
    ) -> SafetyVerdict:
        if stage != "input" or len(text.strip()) < 2 or not any(ch.isalpha() for ch in text):
            return SafetyVerdict(check=self.name, stage=stage, allowed=True)
        category, harmful = self.model.classify(text)
        threshold = self.model.threshold if self._threshold is None else self._threshold
        if harmful < threshold:
            return SafetyVerdict(check=self.name, stage=stage, allowed=True)
        return SafetyVerdict(
            check=self.name,
            stage=stage,
            allowed=False,
            category=category,
            reason=f"{NAME} {category} {harmful:.2f} >= {threshold:.2f}",
        )
