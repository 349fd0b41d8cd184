"""Train the joint model on `NluData`: hold out a slice to fit the confidence temperature, then train on all of it."""

from __future__ import annotations

import random
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch

from bot.model_files import seeded
from bot.nlu.model import JointModel, fit_temperature, tag_targets
from bot.nlu.network import NetworkConfig
from bot.nlu.noise import noise_examples
from bot.protocols import Embedder
from bot.types import FALLBACK_INTENT, NluData, NluExample

# Calibration needs a few held-out examples per intent; below this many in all it is skipped.
MIN_CALIBRATION_EXAMPLES = 30


def train_model(
    data: NluData,
    *,
    embedder: Embedder | None,
    config: NetworkConfig,
    seed: int,
    progress: bool,
    calibrate: bool = True,
) -> JointModel:
    """A trained, calibrated model; the same data, config and seed always give the same weights."""
    examples = list(data.examples)
    if config.noise_share > 0 and not any(e.intent == FALLBACK_INTENT for e in examples):
        examples += noise_examples(max(8, round(config.noise_share * len(examples))), seed)
    intents = sorted({e.intent for e in examples})
    entity_names = sorted({entity.label for e in examples for entity in e.entities})
    dense = _embed(embedder, [e.text for e in examples], progress)
    temperature = 1.0
    train, held_out = calibration_split(examples, seed) if calibrate else (list(range(len(examples))), [])
    if held_out:
        _say(progress, f"calibrating on {len(held_out)} held-out examples")
        probe = _fit([examples[i] for i in train], _rows(dense, train), intents, entity_names, config, seed, progress)
        encoded = [probe.encode(examples[i].text) for i in held_out]
        targets = torch.tensor([intents.index(examples[i].intent) for i in held_out])
        temperature = fit_temperature(probe.logits(encoded, _rows(dense, held_out)), targets)
    model = _fit(examples, dense, intents, entity_names, config, seed, progress)
    model.temperature = temperature
    return model


def calibration_split(examples: Sequence[NluExample], seed: int) -> tuple[list[int], list[int]]:
    """Indices to train on and to hold out: about one in ten of each intent with four or more examples."""
    if len(examples) < MIN_CALIBRATION_EXAMPLES:
        return list(range(len(examples))), []
    by_intent: dict[str, list[int]] = defaultdict(list)
    for i, example in enumerate(examples):
        by_intent[example.intent].append(i)
    rng = random.Random(seed)
    held: list[int] = []
    for intent in sorted(by_intent):
        indices = by_intent[intent]
        if len(indices) >= 4:
            rng.shuffle(indices)
            held.extend(indices[: max(1, len(indices) // 10)])
    chosen = set(held)
    return [i for i in range(len(examples)) if i not in chosen], sorted(held)


def _fit(
    examples: Sequence[NluExample],
    dense: torch.Tensor | None,
    intents: list[str],
    entity_names: list[str],
    config: NetworkConfig,
    seed: int,
    progress: bool,
) -> JointModel:
    texts = [e.text for e in examples]
    with seeded(seed):
        model = JointModel.build(texts, intents, entity_names, 0 if dense is None else dense.shape[1], config)
        encoded = [model.encode(text) for text in texts]
        targets = torch.tensor([intents.index(e.intent) for e in examples], dtype=torch.int64)
        tags = [tag_targets(enc.spans, e.entities, model.tags) for enc, e in zip(encoded, examples, strict=True)]
        model.fit(encoded, dense, targets, tags, seed=seed, progress=progress)
    return model


def _embed(embedder: Embedder | None, texts: list[str], progress: bool) -> torch.Tensor | None:
    if embedder is None:
        return None
    _say(progress, f"embedding {len(texts)} examples with {embedder.name}")
    vectors = embedder.embed_queries(texts)
    return torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))


def _rows(dense: torch.Tensor | None, rows: list[int]) -> torch.Tensor | None:
    return None if dense is None else dense[torch.tensor(rows, dtype=torch.int64)]


def _say(progress: bool, text: str) -> None:
    if progress:
        print(text, file=sys.stderr)


def with_epochs(config: NetworkConfig, epochs: int | None) -> NetworkConfig:
    return config if epochs is None else replace(config, epochs=epochs)
