"""Training, inference and storage of the joint intent + entity network (`bot.nlu.network`).

A model folder holds model.pt (tensors only, loaded with weights_only) and meta.json (intents,
tags, sizes, the calibration temperature and what the model was trained on).
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from tqdm import tqdm

from bot.errors import ModelNotTrainedError
from bot.model_files import read_meta as read_meta_file
from bot.model_files import write_model
from bot.nlu.crf import OUTSIDE, bio_tags
from bot.nlu.features import FeaturizerConfig, HashingFeaturizer, IndexArray, ValueArray
from bot.nlu.network import Batch, JointNet, NetOutput, NetworkConfig
from bot.nlu.tokens import Token, token_bags, tokenize
from bot.types import Entity

MODEL_FILE = "model.pt"
META_FILE = "meta.json"
FORMAT_VERSION = 2
TOKEN_DIM = 2**20
EXTRACTOR = "kefu_tagger"

Logits = npt.NDArray[np.float32]
Bag = tuple[IndexArray, ValueArray]


@dataclass(frozen=True, slots=True)
class Encoded:
    """One message as table rows: the sentence bag, the tokens' bags one after another with the number of rows
    of each, and the tokens themselves."""

    sentence: Bag
    tokens: Bag
    token_sizes: IndexArray
    spans: tuple[Token, ...]


@dataclass(frozen=True, slots=True)
class Prediction:
    logits: Logits  # calibrated: already divided by the temperature
    entities: tuple[Entity, ...]


class _Vocabulary:
    """Hashed bucket -> row of an embedding table, for the buckets seen in training only."""

    def __init__(self, buckets: IndexArray) -> None:
        self.buckets = buckets

    @classmethod
    def of(cls, bags: Sequence[IndexArray]) -> _Vocabulary:
        return cls(np.unique(np.concatenate(bags)) if bags else np.zeros(0, np.int64))

    def rows(self, bag: Bag) -> Bag:
        indices, values = bag
        pos, known = self.find(indices)
        return pos[known], values[known]

    def find(self, indices: IndexArray) -> tuple[IndexArray, npt.NDArray[np.bool_]]:
        """The row of each bucket, and whether the bucket has one."""
        pos = np.searchsorted(self.buckets, indices).astype(np.int64)
        known = pos < len(self.buckets)
        known[known] = self.buckets[pos[known]] == indices[known]
        return pos, known


class JointModel:
    """A trained network with its vocabularies, intents, tags and calibration temperature."""

    def __init__(
        self,
        net: JointNet,
        intents: Sequence[str],
        tags: Sequence[str],
        vocabularies: tuple[_Vocabulary, _Vocabulary],
        config: NetworkConfig,
        featurizer: HashingFeaturizer,
        temperature: float = 1.0,
    ) -> None:
        self.net = net.eval()
        self.intents = tuple(intents)
        self.tags = tuple(tags)
        self.sentence_vocabulary, self.token_vocabulary = vocabularies
        self.config = config
        self.featurizer = featurizer
        self.temperature = temperature

    @classmethod
    def build(
        cls,
        texts: Sequence[str],
        intents: Sequence[str],
        entity_names: Sequence[str],
        dense_dim: int,
        config: NetworkConfig,
    ) -> JointModel:
        """An untrained model whose vocabularies cover `texts`."""
        featurizer = HashingFeaturizer(FeaturizerConfig())
        sentence = _Vocabulary.of([featurizer.featurize(text)[0] for text in texts])
        token = _Vocabulary.of([_token_bags(text, config.max_tokens)[1] for text in texts])
        tags = bio_tags(list(entity_names))
        net = JointNet(len(sentence.buckets), len(token.buckets), len(intents), tags, dense_dim, config)
        return cls(net, intents, tags, (sentence, token), config, featurizer)

    def encode(self, text: str) -> Encoded:
        owners, indices, values, tokens = _token_bags(text, self.config.max_tokens)
        rows, known = self.token_vocabulary.find(indices)
        return Encoded(
            self.sentence_vocabulary.rows(self.featurizer.featurize(text)),
            (rows[known], values[known]),
            np.bincount(owners[known], minlength=len(tokens)),
            tuple(tokens),
        )

    def batch(self, encoded: Sequence[Encoded], dense: torch.Tensor | None) -> Batch:
        sentence = _bags([e.sentence for e in encoded], [len(e.sentence[0]) for e in encoded])
        tokens = _bags([e.tokens for e in encoded], np.concatenate([e.token_sizes for e in encoded]) if encoded else [])
        lengths = torch.tensor([len(e.spans) for e in encoded], dtype=torch.int64)
        return Batch(*sentence, *tokens, lengths, dense)

    def fit(
        self,
        encoded: Sequence[Encoded],
        dense: torch.Tensor | None,
        intents: torch.Tensor,
        tags: Sequence[torch.Tensor],
        *,
        seed: int,
        progress: bool,
    ) -> None:
        """Train on `encoded` messages with target intent indices and per-token tag indices."""
        cfg = self.config
        optimizer = torch.optim.AdamW(self.net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        steps = cfg.epochs * -(-len(encoded) // cfg.batch_size)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, cfg.learning_rate, total_steps=max(steps, 1))
        has_entities = len(self.tags) > 1
        order = torch.Generator().manual_seed(seed)
        self.net.train()
        show = progress and sys.stderr.isatty()
        with tqdm(range(cfg.epochs), desc="training NLU", unit="epoch", disable=not show, leave=False) as bar:
            for _ in bar:
                total = 0.0
                for chunk in torch.split(torch.randperm(len(encoded), generator=order), cfg.batch_size):
                    picked = chunk.tolist()
                    batch = self.batch([encoded[i] for i in picked], None if dense is None else dense[chunk])
                    batch = _drop_features(batch, cfg.feature_dropout)
                    out: NetOutput = self.net(batch)
                    loss = nn.functional.cross_entropy(out.joint, intents[chunk])
                    if out.dense is not None:
                        loss = loss + nn.functional.cross_entropy(out.dense, intents[chunk])
                    if has_entities:
                        loss = loss + cfg.entity_weight * self._tag_loss(
                            out.emissions, out.mask, [tags[i] for i in picked]
                        )
                    optimizer.zero_grad()
                    loss.backward()  # type: ignore[no-untyped-call]
                    optimizer.step()
                    schedule.step()
                    total += loss.item() * len(picked)
                bar.set_postfix(loss=f"{total / max(len(encoded), 1):.4f}")
        self.net.eval()

    def _tag_loss(self, emissions: torch.Tensor, mask: torch.Tensor, tags: list[torch.Tensor]) -> torch.Tensor:
        keep = mask[:, 0]  # messages without tokens have nothing to tag
        if not bool(keep.any()):
            return emissions.new_zeros(())
        padded = torch.zeros(mask.shape, dtype=torch.int64)
        padded[mask] = torch.cat(tags) if tags else torch.zeros(0, dtype=torch.int64)
        return self.net.crf.nll(emissions[keep], padded[keep], mask[keep])

    def logits(self, encoded: Sequence[Encoded], dense: torch.Tensor | None) -> torch.Tensor:
        """Uncalibrated intent logits, for fitting the temperature."""
        with torch.inference_mode():
            out: NetOutput = self.net(self.batch(encoded, dense))
        return out.logits

    def predict(self, text: str, encoded: Encoded, dense: torch.Tensor | None) -> Prediction:
        """Calibrated intent logits and the tagged entities of one message."""
        with torch.inference_mode():
            out: NetOutput = self.net(self.batch([encoded], dense))
            logits = out.logits
            entities: tuple[Entity, ...] = ()
            if len(self.tags) > 1 and encoded.spans:
                scores = out.emissions[0, : len(encoded.spans)]
                path = self.net.crf.decode(scores)
                confidence = torch.softmax(scores, dim=-1).max(dim=-1).values.tolist()
                entities = _spans(text, encoded.spans, [self.tags[i] for i in path], confidence)
        return Prediction((logits[0] / self.temperature).numpy(), entities)

    def save(self, model_dir: Path, extra: dict[str, Any]) -> None:
        """Write model.pt and then meta.json; a folder without meta.json is never trusted."""
        tensors = {
            **self.net.state_dict(),
            "vocabulary.sentence": torch.from_numpy(self.sentence_vocabulary.buckets),
            "vocabulary.token": torch.from_numpy(self.token_vocabulary.buckets),
        }
        meta = {
            "format": FORMAT_VERSION,
            "intents": list(self.intents),
            "tags": list(self.tags),
            "network": self.config.to_json(),
            "featurizer": self.featurizer.config.to_json(),
            "dense_dim": 0 if self.net.dense is None else self.net.dense.in_features,
            "temperature": self.temperature,
            **extra,
        }
        write_model(model_dir, MODEL_FILE, tensors, META_FILE, meta)

    @classmethod
    def load(cls, model_dir: Path) -> tuple[JointModel, dict[str, Any]]:
        """What `save` wrote, with its meta.json; ModelNotTrainedError when missing or unreadable."""
        meta = read_meta(model_dir)
        if meta is None or not (model_dir / MODEL_FILE).is_file():
            raise ModelNotTrainedError(f"no trained NLU model in {model_dir}: run `kefu train nlu` first")
        try:
            tensors = torch.load(model_dir / MODEL_FILE, weights_only=True)
            vocabularies = (
                _Vocabulary(tensors.pop("vocabulary.sentence").numpy()),
                _Vocabulary(tensors.pop("vocabulary.token").numpy()),
            )
            config = NetworkConfig.from_json(meta["network"])
            tags = list(meta["tags"])
            sizes = (len(vocabularies[0].buckets), len(vocabularies[1].buckets), len(meta["intents"]))
            net = JointNet(*sizes, tags, int(meta["dense_dim"]), config)
            net.load_state_dict(tensors)
            featurizer = HashingFeaturizer(FeaturizerConfig.from_json(meta["featurizer"]))
            model = cls(net, meta["intents"], tags, vocabularies, config, featurizer, float(meta["temperature"]))
        except (KeyError, TypeError, ValueError, RuntimeError, OSError, pickle.UnpicklingError) as err:
            raise ModelNotTrainedError(
                f"the NLU model in {model_dir} is unreadable ({err}): run `kefu train nlu`"
            ) from err
        return model, meta


def _drop_features(batch: Batch, rate: float) -> Batch:
    """Drop single sparse features at random, as DIET does, so that a message with words the model
    never saw still reads like the known words it has."""
    if rate <= 0:
        return batch
    keep_sentence = (torch.rand(batch.sentence_weights.shape) >= rate).to(batch.sentence_weights.dtype)
    keep_token = (torch.rand(batch.token_weights.shape) >= rate).to(batch.token_weights.dtype)
    return replace(
        batch,
        sentence_weights=batch.sentence_weights * keep_sentence,
        token_weights=batch.token_weights * keep_token,
    )


def tag_targets(spans: Sequence[Token], entities: Sequence[Entity], tags: Sequence[str]) -> torch.Tensor:
    """BIO tag indices for `spans` from annotated entities (a token overlapping an entity belongs to it)."""
    index = {tag: i for i, tag in enumerate(tags)}
    out = [0] * len(spans)
    for entity in entities:
        inside = [i for i, t in enumerate(spans) if t.start < entity.end and entity.start < t.end]
        for k, i in enumerate(inside):
            out[i] = index.get(f"{'B' if k == 0 else 'I'}-{entity.label}", 0)
    return torch.tensor(out, dtype=torch.int64)


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """The temperature minimising the negative log-likelihood of held-out predictions (a grid: deterministic)."""
    grid = np.geomspace(0.25, 8.0, 61)
    losses = [float(nn.functional.cross_entropy(logits / t, targets)) for t in grid]
    return float(grid[int(np.argmin(losses))])


def _token_bags(text: str, max_tokens: int) -> tuple[IndexArray, IndexArray, ValueArray, list[Token]]:
    tokens = tokenize(text)[:max_tokens]
    return (*token_bags(text, tokens, TOKEN_DIM), tokens)


def _bags(bags: Sequence[Bag], sizes: Sequence[int] | IndexArray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows, offsets and weights for `nn.EmbeddingBag`: the bags' rows one after another, in bags of `sizes`."""
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64) if len(sizes) else np.zeros(0, np.int64)
    rows = np.concatenate([r for r, _ in bags]) if bags else np.zeros(0, np.int64)
    weights = np.concatenate([w for _, w in bags]) if bags else np.zeros(0, np.float32)
    return torch.from_numpy(rows), torch.from_numpy(offsets), torch.from_numpy(weights)


def _spans(text: str, tokens: Sequence[Token], tags: Sequence[str], confidence: Sequence[float]) -> tuple[Entity, ...]:
    """Entities from a BIO tag sequence; the value is the text as written between the first and last token."""
    found: list[Entity] = []
    open_span: tuple[str, int, int, list[float]] | None = None
    for token, tag, score in zip(tokens, [*tags], confidence, strict=True):
        if open_span is not None and tag == f"I-{open_span[0]}":
            open_span = (open_span[0], open_span[1], token.end, [*open_span[3], score])
            continue
        if open_span is not None:
            found.append(_entity(text, *open_span))
            open_span = None
        if tag != OUTSIDE and tag.startswith("B-"):
            open_span = (tag[2:], token.start, token.end, [score])
    if open_span is not None:
        found.append(_entity(text, *open_span))
    return tuple(found)


def _entity(text: str, label: str, start: int, end: int, scores: list[float]) -> Entity:
    rest, _, group = label.partition("#")
    name, _, role = rest.partition("@")
    confidence = float(np.mean(scores))
    return Entity(name, text[start:end], start, end, confidence, EXTRACTOR, role=role or None, group=group or None)


def read_meta(model_dir: Path) -> dict[str, Any] | None:
    """The model folder's meta.json, or None when it is missing, unreadable or of another format."""
    return read_meta_file(model_dir / META_FILE, FORMAT_VERSION)
