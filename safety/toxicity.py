"""A learned toxicity / abuse classifier (Chinese and English) and the safety check that blocks on it.

The lexicon catches the words everybody agrees on; this model catches the rest: insults without a listed
word, and abuse of a group ("河南人都是骗子") as the COLD data set (Deng et al. 2022) labels it. A text is
offensive when it insults or abuses a person or a group; rough words about a thing ("the app is stupid
slow", "kill the auto-renewal") are not.

Features: hashed character 1-2-grams (plus Latin-script word 1-2-grams) of the text folded to lower case
and half width (sublinear term frequency, L2-normalised), optionally beside the dense query embedding of an
`Embedder`. The model is a logistic regression over the n-grams plus, with dense features, a one-hidden-layer
network over the embedding; the two logits add up. Training is in `safety/toxicity_train.py` (torch);
prediction here is plain numpy. A saved model is `toxicity.npz` (weights, loaded with `allow_pickle=False`) and
`toxicity.json` (feature settings, threshold, data hash, metrics), written in that order: a folder
without the meta file is never trusted.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bot.errors import ConfigError, ModelNotTrainedError, ProjectError
from bot.events import Session
from bot.protocols import Embedder
from bot.types import Fact, SafetyVerdict, Stage
from safety.aho_corasick import fold
from safety.saved_model import LazyModel, model_files_exist, read_model_meta, save_model_files

META_FILE = "toxicity.json"
WEIGHTS_FILE = "toxicity.npz"
FORMAT = 1
CATEGORY = "abuse"
TRAIN_HINT = "train it with safety.toxicity_train.train_from_cold (kefu's toxicity training command)"

_DIGITS = re.compile(r"\d")
_LATIN_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
FloatArray = npt.NDArray[np.float32]
IndexArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class ToxicityConfig:
    """How texts become features; a saved model must reproduce it exactly."""

    buckets: int = 2**18
    ngram_min: int = 1
    ngram_max: int = 2  # measured on COLD: 1-2 beats 1-3 (test accuracy 0.797 vs 0.792)
    sublinear_tf: bool = True
    latin_words: int = 2  # also Latin-script word n-grams up to this length (0: none)
    dense_dim: int = 0  # 0: n-grams only
    hidden: int = 0  # 0: the embedding enters the logit linearly
    embedder: str = ""  # the name of the Embedder the dense features came from

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ToxicityConfig:
        config = cls(
            buckets=int(data["buckets"]),
            ngram_min=int(data["ngram_min"]),
            ngram_max=int(data["ngram_max"]),
            sublinear_tf=bool(data["sublinear_tf"]),
            latin_words=int(data["latin_words"]),
            dense_dim=int(data["dense_dim"]),
            hidden=int(data["hidden"]),
            embedder=str(data["embedder"]),
        )
        if (
            config.buckets < 1
            or not 1 <= config.ngram_min <= config.ngram_max
            or min(config.dense_dim, config.hidden) < 0
        ):
            raise ValueError(f"impossible feature settings: {config}")
        return config


def normalise(text: str) -> str:
    """Lower case, half width, single spaces, every digit a 0 (order numbers say nothing about tone)."""
    return _DIGITS.sub("0", " ".join(fold(text).split()))


def char_ngrams(text: str, lo: int, hi: int) -> list[str]:
    """The n-grams (lo <= n <= hi) of the text padded with a space, so words have edges (normalise it first)."""
    padded = f" {text} "
    return [
        gram for n in range(lo, hi + 1) for i in range(len(padded) - n + 1) if not (gram := padded[i : i + n]).isspace()
    ]


def latin_word_ngrams(text: str, hi: int) -> list[str]:
    """Word n-grams (1 <= n <= hi) of the Latin-script words, marked so they never equal a character n-gram."""
    words = _LATIN_WORD.findall(text)
    return ["w:" + " ".join(words[i : i + n]) for n in range(1, hi + 1) for i in range(len(words) - n + 1)]


def featurize(text: str, config: ToxicityConfig) -> tuple[IndexArray, FloatArray]:
    """Sorted bucket indices and their weights (1 + log tf, L2-normalised); CRC-32 is the same in every
    process, unlike Python's salted `hash()`."""
    text = normalise(text)
    grams = char_ngrams(text, config.ngram_min, config.ngram_max)
    if config.latin_words:
        grams += latin_word_ngrams(text, config.latin_words)
    hashes = np.fromiter((zlib.crc32(g.encode("utf-8")) for g in grams), dtype=np.int64, count=len(grams))
    indices, counts = np.unique(hashes % config.buckets, return_counts=True)
    values = counts.astype(np.float32)
    if config.sublinear_tf:
        values = (1.0 + np.log(values)).astype(np.float32)
    norm = float(np.linalg.norm(values))
    return indices.astype(np.int64), values / norm if norm > 0 else values


def dense_weight_names(config: ToxicityConfig) -> tuple[str, ...]:
    """The arrays the dense part needs, beside `sparse` and `bias`."""
    if config.dense_dim == 0:
        return ()
    return ("hidden_w", "hidden_b", "out_w") if config.hidden else ("dense_w",)


def _expected_shapes(config: ToxicityConfig) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {"sparse": (config.buckets,), "bias": (1,)}
    if config.dense_dim and config.hidden:
        shapes.update(hidden_w=(config.dense_dim, config.hidden), hidden_b=(config.hidden,), out_w=(config.hidden,))
    elif config.dense_dim:
        shapes["dense_w"] = (config.dense_dim,)
    return shapes


class ToxicityModel:
    """P(offensive) for texts; `threshold` (chosen on validation data at training) turns it into a decision."""

    def __init__(
        self,
        config: ToxicityConfig,
        weights: Mapping[str, npt.NDArray[Any]],
        *,
        threshold: float = 0.5,
        embedder: Embedder | None = None,
        data_hash: str = "",
        metrics: Mapping[str, float] | None = None,
    ) -> None:
        shapes = _expected_shapes(config)
        for name, shape in shapes.items():
            if name not in weights or tuple(weights[name].shape) != shape:
                got = None if name not in weights else tuple(weights[name].shape)
                raise ValueError(f"toxicity weights: {name!r} should have shape {shape}, got {got}")
        self.config = config
        self.weights: dict[str, FloatArray] = {name: np.asarray(weights[name], dtype=np.float32) for name in shapes}
        self.threshold = float(threshold)
        self.data_hash = data_hash
        self.metrics: dict[str, float] = dict(metrics or {})
        self.embedder = embedder
        if self.uses_dense:
            _check_embedder(config, embedder)

    @property
    def uses_dense(self) -> bool:
        return self.config.dense_dim > 0

    def logits(self, texts: Sequence[str]) -> npt.NDArray[np.float64]:
        sparse = self.weights["sparse"]
        scores = np.fromiter(
            (float(sparse[i] @ v) for i, v in (featurize(t, self.config) for t in texts)),
            dtype=np.float64,
            count=len(texts),
        )
        if self.uses_dense and len(texts):
            scores += self._dense_logits(texts)
        return scores + float(self.weights["bias"][0])

    def _dense_logits(self, texts: Sequence[str]) -> npt.NDArray[np.float64]:
        if self.embedder is None:  # _check_embedder ruled this out; a clear error beats an AttributeError
            raise ConfigError("this toxicity model uses dense features and needs an embedder")
        vectors = np.asarray(self.embedder.embed_queries(list(texts)), dtype=np.float32)
        if vectors.shape != (len(texts), self.config.dense_dim):
            raise ConfigError(
                f"the embedder returned vectors of shape {vectors.shape}, expected ({len(texts)}, "
                f"{self.config.dense_dim})"
            )
        w = self.weights
        if self.config.hidden:
            hidden: FloatArray = np.maximum(vectors @ w["hidden_w"] + w["hidden_b"], 0.0)
            return (hidden @ w["out_w"]).astype(np.float64)
        return (vectors @ w["dense_w"]).astype(np.float64)

    def predict_proba(self, texts: Sequence[str]) -> npt.NDArray[np.float64]:
        """P(offensive) for each text, shape (len(texts),)."""
        return _sigmoid(self.logits(texts))

    def save(self, directory: Path) -> None:
        """Write the weights, then the meta file, each replaced atomically (a crash keeps the old model)."""
        meta = {
            "format": FORMAT,
            "config": self.config.to_json(),
            "threshold": self.threshold,
            "uses_dense": self.uses_dense,
            "data_hash": self.data_hash,
            "metrics": self.metrics,
        }
        save_model_files(directory, WEIGHTS_FILE, self.weights, META_FILE, meta)

    @classmethod
    def load(cls, directory: Path, *, embedder: Embedder | None = None) -> ToxicityModel:
        """The model saved in `directory`. Raises ModelNotTrainedError when there is none, ProjectError when
        its files are broken, ConfigError when it needs an embedder (or another one) than the one given."""
        meta = read_meta(directory)
        try:
            config = ToxicityConfig.from_json(meta["config"])
            threshold = float(meta["threshold"])
            metrics = {str(k): float(v) for k, v in dict(meta.get("metrics", {})).items()}
            data_hash = str(meta.get("data_hash", ""))
        except (KeyError, TypeError, ValueError) as err:
            raise ProjectError(
                f"broken toxicity meta file ({err}); {TRAIN_HINT}", path=str(directory / META_FILE)
            ) from err
        _check_embedder(config, embedder)
        path = directory / WEIGHTS_FILE
        try:
            with np.load(path, allow_pickle=False) as archive:
                weights = {name: archive[name] for name in archive.files}
            return cls(config, weights, threshold=threshold, embedder=embedder, data_hash=data_hash, metrics=metrics)
        except FileNotFoundError as err:
            raise ModelNotTrainedError(f"toxicity weights missing: {path}; {TRAIN_HINT}") from err
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
            raise ProjectError(f"broken toxicity weights ({err}); {TRAIN_HINT}", path=str(path)) from err


def _check_embedder(config: ToxicityConfig, embedder: Embedder | None) -> None:
    if config.dense_dim == 0:
        return
    if embedder is None:
        raise ConfigError(
            f"this toxicity model was trained with dense features from {config.embedder!r} and needs that "
            "embedder: pass embedder=..., or train a sparse-only model (embedder=None)"
        )
    if embedder.name != config.embedder or embedder.dim != config.dense_dim:
        raise ConfigError(
            f"this toxicity model was trained with the embedder {config.embedder!r} ({config.dense_dim}-d), "
            f"not {embedder.name!r} ({embedder.dim}-d); pass that embedder or retrain"
        )


def _sigmoid(z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    out: npt.NDArray[np.float64] = np.exp(-np.logaddexp(0.0, -z))
    return out


def read_meta(directory: Path) -> dict[str, Any]:
    """The meta file of the model in `directory`; ModelNotTrainedError or ProjectError when it is unusable."""
    return read_model_meta(directory, META_FILE, kind="toxicity", fmt=FORMAT, hint=TRAIN_HINT)


def toxicity_model_exists(directory: Path) -> bool:
    """Whether `directory` holds a saved model (both files, and a meta file of this format)."""
    return model_files_exist(directory, WEIGHTS_FILE, META_FILE, kind="toxicity", fmt=FORMAT)


class ToxicityCheck:
    """SafetyCheck that blocks a text whose P(offensive) reaches the threshold (the model's own, chosen on
    validation data, unless one is given). The constructor is cheap; the model loads in `warm_up()`."""

    name: str = "toxicity"

    def __init__(
        self,
        directory: Path,
        *,
        embedder: Embedder | None = None,
        threshold: float | None = None,
        stages: tuple[str, ...] = ("input", "output"),
    ) -> None:
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"toxicity threshold must be between 0 and 1, got {threshold}")
        unknown = set(stages) - {"input", "output"}
        if unknown:
            raise ConfigError(f"unknown safety stage(s) {sorted(unknown)}; use 'input' and/or 'output'")
        self.directory = Path(directory)
        self.embedder = embedder
        self.stages = tuple(stages)
        self._threshold = threshold
        self._model = LazyModel(lambda: ToxicityModel.load(self.directory, embedder=self.embedder))

    @property
    def model(self) -> ToxicityModel:
        return self._model.get()

    @property
    def threshold(self) -> float:
        return self.model.threshold if self._threshold is None else self._threshold

    def warm_up(self) -> None:
        self.model.predict_proba(["warm up"])  # loads the weights and touches every code path once

    def check(
        self, text: str, *, stage: Stage, session: Session | None = None, facts: Sequence[Fact] = ()
    ) -> SafetyVerdict:
        if stage not in self.stages or len(text.strip()) < 2 or not any(ch.isalpha() for ch in text):
            return SafetyVerdict(check=self.name, stage=stage, allowed=True)
        p = float(self.model.predict_proba([text])[0])
        threshold = self.threshold
        if p < threshold:
            return SafetyVerdict(check=self.name, stage=stage, allowed=True)
        return SafetyVerdict(
            check=self.name,
            stage=stage,
            allowed=False,
            category=CATEGORY,
            reason=f"toxicity {p:.2f} >= {threshold:.2f}",
        )
