"""kefu's NLU: train the joint intent + entity model from `NluData` into a folder, then parse with it.

A model folder holds model.pt and meta.json (`bot.nlu.model`) and entities.json (regexes, lookups,
gazetteer, synonyms). Parsing merges three entity sources: the project's regexes and lookup tables
(exact, so they win), the trained tagger (it generalises to values never seen) and the rule
extractors (numbers, money, dates, phone numbers, order ids, e-mail).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bot.errors import ConfigError, ModelNotTrainedError, ProjectError
from bot.events import Session
from bot.nlu.entities import EntityExtractor
from bot.nlu.extractors import RULE_DIMENSIONS, RuleExtractor
from bot.nlu.features import detect_language, init_jieba
from bot.nlu.model import EXTRACTOR, MODEL_FILE, JointModel, read_meta
from bot.nlu.network import NetworkConfig
from bot.nlu.text import clean_text
from bot.nlu.training import train_model, with_epochs
from bot.protocols import Embedder
from bot.types import FALLBACK_INTENT, Entity, IntentScore, Message, NluData, NluResult

ENTITIES_FILE = "entities.json"
RANKING_SIZE = 10
# Lower rank wins an overlap (see merge_entities).
_PRIORITY = {"regex": 0, "lookup": 0, "gazetteer": 1, EXTRACTOR: 3}
_STRUCTURED = frozenset({"phone_number", "email", "amount_of_money", "time"})


@dataclass(frozen=True, slots=True)
class TrainReport:
    """What a training run did; `data_hash` identifies the data it was trained on."""

    n_examples: int
    n_intents: int
    seconds: float
    train_accuracy: float
    data_hash: str
    temperature: float = 1.0


def data_hash(data: NluData) -> str:
    """SHA-256 over a canonical JSON of the examples, synonyms, regexes and lookups (line numbers excluded)."""
    canonical = {
        "examples": [
            [ex.text, ex.intent, [[e.label, e.value, e.start, e.end] for e in ex.entities]] for ex in data.examples
        ],
        "synonyms": sorted(data.synonyms.items()),
        "regexes": [[r.name, r.pattern] for r in data.regexes],
        "lookups": {name: list(values) for name, values in data.lookups.items()},
    }
    text = json.dumps(canonical, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _fingerprint(
    data: NluData, embedder: Embedder | None, entity_names: Collection[str], config: NetworkConfig, seed: int
) -> dict[str, Any]:
    return {
        "data_hash": data_hash(data),
        "embedder": None if embedder is None else embedder.name,
        "entity_names": sorted(set(entity_names)),
        "network": config.to_json(),
        "seed": seed,
    }


def needs_training(
    data: NluData,
    model_dir: Path,
    *,
    embedder: Embedder | None = None,
    entity_names: Collection[str] = (),
    config: NetworkConfig | None = None,
    seed: int = 0,
) -> bool:
    """True unless `model_dir` holds a complete model trained by `train_nlu` with these same arguments."""
    meta = read_meta(model_dir)
    if meta is None or not all((model_dir / name).is_file() for name in (MODEL_FILE, ENTITIES_FILE)):
        return True
    wanted = _fingerprint(data, embedder, entity_names, config or NetworkConfig(), seed)
    return any(meta.get(key) != value for key, value in wanted.items())


def train_nlu(
    data: NluData,
    model_dir: Path,
    *,
    embedder: Embedder | None = None,
    seed: int = 0,
    epochs: int | None = None,
    progress: bool = True,
    entity_names: Collection[str] = (),
    config: NetworkConfig | None = None,
    calibrate: bool = True,
) -> TrainReport:
    """Train the joint model and the entity extractor on `data` and save both to `model_dir`.

    `entity_names` are the domain's entities: a regex named after one of them extracts it.
    With an `embedder`, its query embeddings are dense features, and parsing needs the same embedder.
    """
    if not data.examples:
        raise ProjectError("the NLU training data has no examples: add some to data/nlu.yml")
    started = time.perf_counter()
    config = with_epochs(config or NetworkConfig(), epochs)
    model = train_model(data, embedder=embedder, config=config, seed=seed, progress=progress, calibrate=calibrate)
    accuracy = _training_accuracy(model, data, embedder)
    fingerprint = _fingerprint(data, embedder, entity_names, config, seed)
    model_dir.mkdir(parents=True, exist_ok=True)
    entities = EntityExtractor.from_data(data, entity_names)
    entities_tmp = model_dir / f".{ENTITIES_FILE}.tmp"
    entities_tmp.write_text(json.dumps(entities.to_json(), ensure_ascii=False, indent=1), encoding="utf-8")
    entities_tmp.replace(model_dir / ENTITIES_FILE)
    model.save(model_dir, {**fingerprint, "train_accuracy": accuracy, "n_examples": len(data.examples)})
    seconds = time.perf_counter() - started
    return TrainReport(
        len(data.examples), len(data.intents), seconds, accuracy, fingerprint["data_hash"], model.temperature
    )


def _training_accuracy(model: JointModel, data: NluData, embedder: Embedder | None) -> float:
    texts = [example.text for example in data.examples]
    dense = None if embedder is None else torch.from_numpy(np.asarray(embedder.embed_queries(texts), np.float32))
    logits = model.logits([model.encode(text) for text in texts], dense)
    predicted = logits.argmax(dim=1).tolist()
    return float(np.mean([model.intents[p] == e.intent for p, e in zip(predicted, data.examples, strict=True)]))


class TrainedNlu:
    """The `NLU` protocol over a folder written by `train_nlu`.

    Below `fallback_threshold` the intent becomes `fallback_intent`; the confidence stays the
    model's calibrated top confidence and the ranking stays the model's, so policies and the
    trace still see what it thought.
    """

    def __init__(
        self,
        model_dir: Path,
        *,
        embedder: Embedder | None = None,
        fallback_threshold: float = 0.3,
        fallback_intent: str = FALLBACK_INTENT,
        rule_dimensions: Collection[str] = RULE_DIMENSIONS,
        max_chars: int = 1000,
    ) -> None:
        if not 0.0 <= fallback_threshold <= 1.0:
            raise ConfigError(f"the NLU fallback threshold must lie in [0, 1], not {fallback_threshold}")
        self.model_dir = Path(model_dir)
        self.embedder = embedder
        self.fallback_threshold = fallback_threshold
        self.fallback_intent = fallback_intent
        self.max_chars = max_chars
        self.rules = RuleExtractor(rule_dimensions)
        self._lock = threading.Lock()
        self._loaded: tuple[JointModel, EntityExtractor] | None = None

    def warm_up(self) -> None:
        """Load the model; raises ModelNotTrainedError when the folder has none."""
        with self._lock:
            if self._loaded is None:
                self._loaded = self._load()

    def _load(self) -> tuple[JointModel, EntityExtractor]:
        init_jieba()
        model, meta = JointModel.load(self.model_dir)
        wanted = meta.get("embedder")
        have = None if self.embedder is None else self.embedder.name
        if wanted != have:
            raise ModelNotTrainedError(
                f"the NLU model in {self.model_dir} was trained with the {wanted!r} embedder but {have!r} is "
                "configured: configure the same embedder or run `kefu train nlu` again"
            )
        try:
            entities = EntityExtractor.from_json(json.loads((self.model_dir / ENTITIES_FILE).read_text("utf-8")))
        except (OSError, ValueError) as err:
            raise ModelNotTrainedError(f"no readable {ENTITIES_FILE} in {self.model_dir}: run `kefu train`") from err
        warm = getattr(self.embedder, "warm_up", None)
        if callable(warm):
            warm()
        return model, entities

    @property
    def inline(self) -> bool:
        """A parse is cheap enough to run on the event loop (see `bot.nlu.offload`) unless its dense features
        come from an embedder that may take milliseconds (e5 on a text it has not cached)."""
        return self.embedder is None or bool(getattr(self.embedder, "inline", False))

    @property
    def intents(self) -> tuple[str, ...]:
        """The intents the loaded model knows (loads it if needed)."""
        return self._models()[0].intents

    def parse(self, message: Message, session: Session) -> NluResult:
        """Intent, ranking, entities and language of `message.text` (the session is not used yet)."""
        return self.parse_text(message.text)

    def parse_text(self, text: str) -> NluResult:
        """`parse` for a bare text, for evaluation and the CLI."""
        model, extractor = self._models()
        text, warnings = clean_text(text, self.max_chars)
        dense = None
        if self.embedder is not None:
            dense = torch.from_numpy(np.asarray(self.embedder.embed_queries([text]), dtype=np.float32))
        prediction = model.predict(text, model.encode(text), dense)
        probs = np.exp(prediction.logits - prediction.logits.max())
        probs /= probs.sum()
        order = sorted(range(len(probs)), key=lambda i: (-float(probs[i]), model.intents[i]))
        ranking = tuple(IntentScore(model.intents[i], float(probs[i])) for i in order[:RANKING_SIZE])
        top = ranking[0]
        tagged = tuple(extractor.with_synonym(e) for e in prediction.entities)
        return NluResult(
            text=text,
            intent=top.name if top.confidence >= self.fallback_threshold else self.fallback_intent,
            confidence=top.confidence,
            ranking=ranking,
            entities=merge_entities([*extractor.extract(text), *tagged, *self.rules.extract(text)]),
            language=detect_language(text),
            warnings=warnings,
        )

    def _models(self) -> tuple[JointModel, EntityExtractor]:
        if self._loaded is None:
            self.warm_up()
        if self._loaded is None:  # warm_up either loads or raises; this keeps the type checker honest
            raise ModelNotTrainedError(f"the NLU model in {self.model_dir} failed to load")
        return self._loaded


def merge_entities(entities: list[Entity]) -> tuple[Entity, ...]:
    """One entity per stretch of text and name, preferring the more exact extractor.

    Across names: a phone number, e-mail, amount or date found by the rules beats what the tagger
    guessed for the same digits, and a rule `number` inside any other entity is dropped.
    """
    ranked = sorted(entities, key=lambda e: (_rank(e), e.start - e.end, e.start))
    kept: list[Entity] = []
    for entity in ranked:
        clashes = [k for k in kept if k.start < entity.end and entity.start < k.end]
        same = [k for k in clashes if k.name == entity.name]
        if same:
            # A lookup's exact value with the role only the tagger can tell from the context.
            if (entity.role or entity.group) and not (same[0].role or same[0].group):
                kept[kept.index(same[0])] = replace(same[0], role=entity.role, group=entity.group)
            continue
        if clashes and (entity.extractor == EXTRACTOR or (entity.extractor == "rules" and entity.name == "number")):
            continue
        kept.append(entity)
    return tuple(sorted(kept, key=lambda e: (e.start, e.end, e.name)))


def _rank(entity: Entity) -> int:
    if entity.extractor == "rules":
        return 2 if entity.name in _STRUCTURED else 4
    return _PRIORITY.get(entity.extractor, 5)
