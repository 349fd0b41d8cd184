"""kefu's baseline NLU: train from `NluData` into a model folder, then parse messages with it.

A model folder holds model.pt (tensors only), meta.json (intents, feature and network settings,
the fingerprint of what it was trained on) and entities.json (regexes, lookups, gazetteer, synonyms).
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

from bot.errors import ConfigError, ModelNotTrainedError, ProjectError
from bot.events import Session
from bot.nlu.classifier import MODEL_FILE, ClassifierConfig, IntentClassifier, read_meta
from bot.nlu.entities import EntityExtractor
from bot.nlu.features import detect_language, init_jieba
from bot.protocols import Embedder
from bot.types import FALLBACK_INTENT, IntentScore, Message, NluData, NluResult

ENTITIES_FILE = "entities.json"
RANKING_SIZE = 10


@dataclass(frozen=True, slots=True)
class TrainReport:
    """What a training run did; `data_hash` identifies the data it was trained on."""

    n_examples: int
    n_intents: int
    seconds: float
    train_accuracy: float
    data_hash: str


def data_hash(data: NluData) -> str:
    """SHA-256 over a canonical JSON of the examples, synonyms, regexes and lookups (line numbers excluded)."""
    canonical = {
        "examples": [
            [ex.text, ex.intent, [[e.name, e.value, e.start, e.end] for e in ex.entities]] for ex in data.examples
        ],
        "synonyms": sorted(data.synonyms.items()),
        "regexes": [[r.name, r.pattern] for r in data.regexes],
        "lookups": {name: list(values) for name, values in data.lookups.items()},
    }
    text = json.dumps(canonical, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _fingerprint(data: NluData, embedder: Embedder | None, entity_names: Collection[str]) -> dict[str, Any]:
    return {
        "data_hash": data_hash(data),
        "embedder": None if embedder is None else embedder.name,
        "entity_names": sorted(set(entity_names)),
    }


def needs_training(
    data: NluData, model_dir: Path, *, embedder: Embedder | None = None, entity_names: Collection[str] = ()
) -> bool:
    """True unless `model_dir` holds a complete model trained by `train_nlu` with these same arguments."""
    meta = read_meta(model_dir)
    if meta is None or not all((model_dir / name).is_file() for name in (MODEL_FILE, ENTITIES_FILE)):
        return True
    wanted = _fingerprint(data, embedder, entity_names)
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
    config: ClassifierConfig | None = None,
) -> TrainReport:
    """Train the intent classifier and the entity extractor on `data` and save both to `model_dir`.

    `entity_names` are the domain's entities: a regex named after one of them extracts it.
    With an `embedder`, its query embeddings are dense features, and parsing needs the same embedder.
    """
    if not data.examples:
        raise ProjectError("the NLU training data has no examples: add some to data/nlu.yml")
    started = time.perf_counter()
    config = config or ClassifierConfig()
    if epochs is not None:
        config = replace(config, epochs=epochs)
    entities = EntityExtractor.from_data(data, entity_names)
    texts = [example.text for example in data.examples]
    labels = [example.intent for example in data.examples]
    classifier = IntentClassifier.train(texts, labels, embedder=embedder, config=config, seed=seed, progress=progress)
    predicted = classifier.predict(texts).argmax(axis=1)
    accuracy = float(np.mean([classifier.intents[i] == label for i, label in zip(predicted, labels, strict=True)]))
    fingerprint = _fingerprint(data, embedder, entity_names)
    model_dir.mkdir(parents=True, exist_ok=True)
    entities_tmp = model_dir / f".{ENTITIES_FILE}.tmp"
    entities_tmp.write_text(json.dumps(entities.to_json(), ensure_ascii=False, indent=1), encoding="utf-8")
    entities_tmp.replace(model_dir / ENTITIES_FILE)
    # meta.json is written last: needs_training only trusts a folder whose meta.json is there.
    classifier.save(model_dir, {**fingerprint, "seed": seed, "train_accuracy": accuracy, "n_examples": len(texts)})
    return TrainReport(
        len(texts), len(classifier.intents), time.perf_counter() - started, accuracy, fingerprint["data_hash"]
    )


class TrainedNlu:
    """The `NLU` protocol over a folder written by `train_nlu`.

    Below `fallback_threshold` the intent becomes `fallback_intent`; the confidence stays the
    classifier's top confidence and the ranking stays the classifier's, so policies and the
    trace still see what the model thought.
    """

    def __init__(
        self,
        model_dir: Path,
        *,
        embedder: Embedder | None = None,
        fallback_threshold: float = 0.3,
        fallback_intent: str = FALLBACK_INTENT,
    ) -> None:
        if not 0.0 <= fallback_threshold <= 1.0:
            raise ConfigError(f"the NLU fallback threshold must lie in [0, 1], not {fallback_threshold}")
        self.model_dir = Path(model_dir)
        self.embedder = embedder
        self.fallback_threshold = fallback_threshold
        self.fallback_intent = fallback_intent
        self._lock = threading.Lock()
        self._loaded: tuple[IntentClassifier, EntityExtractor] | None = None

    def warm_up(self) -> None:
        """Load the model; raises ModelNotTrainedError when the folder has none."""
        with self._lock:
            if self._loaded is not None:
                return
            init_jieba()
            classifier = IntentClassifier.load(self.model_dir, embedder=self.embedder)
            try:
                entities = EntityExtractor.from_json(json.loads((self.model_dir / ENTITIES_FILE).read_text("utf-8")))
            except (OSError, ValueError) as err:
                raise ModelNotTrainedError(
                    f"no readable {ENTITIES_FILE} in {self.model_dir}: run `kefu train`"
                ) from err
            warm = getattr(classifier.embedder, "warm_up", None)
            if callable(warm):
                warm()
            self._loaded = (classifier, entities)

    @property
    def intents(self) -> tuple[str, ...]:
        """The intents the loaded model knows (loads it if needed)."""
        return self._models()[0].intents

    def parse(self, message: Message, session: Session) -> NluResult:
        """Intent, ranking, entities and language of `message.text` (the session is not used yet)."""
        return self.parse_text(message.text)

    def parse_text(self, text: str) -> NluResult:
        """`parse` for a bare text, for evaluation and the CLI."""
        classifier, extractor = self._models()
        probs = classifier.predict([text])[0]
        order = sorted(range(len(probs)), key=lambda i: (-float(probs[i]), classifier.intents[i]))
        ranking = tuple(IntentScore(classifier.intents[i], float(probs[i])) for i in order[:RANKING_SIZE])
        top = ranking[0]
        intent = top.name if top.confidence >= self.fallback_threshold else self.fallback_intent
        return NluResult(
            text=text,
            intent=intent,
            confidence=top.confidence,
            ranking=ranking,
            entities=extractor.extract(text),
            language=detect_language(text),
        )

    def _models(self) -> tuple[IntentClassifier, EntityExtractor]:
        if self._loaded is None:
            self.warm_up()
        if self._loaded is None:  # warm_up either loads or raises; this keeps the type checker honest
            raise ModelNotTrainedError(f"the NLU model in {self.model_dir} failed to load")
        return self._loaded
