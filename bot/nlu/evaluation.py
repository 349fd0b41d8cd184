"""Score an NLU against labelled examples (intents, entities, out-of-scope detection), and k-fold cross-validation.

Conventions: a ratio whose denominator is zero counts as 0.0; macro F1 averages over the intents that
occur among the expected labels; an entity is correct when its label (name, role and group), start and
end equal an expected entity's (`entity_value_f1` compares label and value instead, ignoring where the
value was found).
Entity figures are None when the examples neither expect nor predict any entity.
"""

from __future__ import annotations

import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from tqdm import tqdm

from bot.errors import ConfigError, ProjectError
from bot.types import FALLBACK_INTENT, Entity, NluData, NluExample, NluResult

OUT_OF_SCOPE_INTENTS = frozenset({"out_of_scope", FALLBACK_INTENT})
MAX_JSON_ERRORS = 200

Parse = Callable[[str], NluResult]
Pair = tuple[NluExample, NluResult]


@dataclass(frozen=True, slots=True)
class ClassScores:
    precision: float
    recall: float
    f1: float
    support: int  # how many times the class was expected

    @classmethod
    def from_counts(cls, correct: int, predicted: int, expected: int) -> ClassScores:
        precision, recall = _ratio(correct, predicted), _ratio(correct, expected)
        f1 = _ratio(2 * precision * recall, precision + recall)
        return cls(precision, recall, f1, expected)

    def to_json(self) -> dict[str, float | int]:
        rounded = {"precision": _round(self.precision), "recall": _round(self.recall), "f1": _round(self.f1)}
        return {**rounded, "support": self.support}


@dataclass(frozen=True, slots=True)
class IntentError:
    """An example whose predicted intent is not the expected one."""

    text: str
    expected: str
    predicted: str
    confidence: float


@dataclass(frozen=True, slots=True)
class NluEvaluation:
    """The figures of one evaluation. `confusion[i][j]` counts examples of `labels[i]` predicted as `labels[j]`."""

    n_examples: int
    intent_accuracy: float
    intent_macro_f1: float
    intent_weighted_f1: float
    per_intent: Mapping[str, ClassScores]
    entity_precision: float | None
    entity_recall: float | None
    entity_f1: float | None
    entity_value_f1: float | None
    per_entity: Mapping[str, ClassScores]
    oos_recall: float | None  # None when no example expects an out-of-scope intent
    oos_false_accept: int  # out-of-scope examples that were given an in-scope intent
    labels: tuple[str, ...]
    confusion: tuple[tuple[int, ...], ...]
    errors: tuple[IntentError, ...]  # most confident mistakes first
    correct_confidences: tuple[float, ...]
    wrong_confidences: tuple[float, ...]

    def intents_worst_first(self) -> list[tuple[str, ClassScores]]:
        """Per-intent scores, lowest F1 first (ties: more examples first, then by name)."""
        return sorted(self.per_intent.items(), key=lambda item: (item[1].f1, -item[1].support, item[0]))

    def confused_pairs(self, limit: int = 20) -> list[tuple[str, str, int]]:
        """(expected, predicted, count) of the most frequent mistakes."""
        pairs = [
            (self.labels[i], self.labels[j], count)
            for i, row in enumerate(self.confusion)
            for j, count in enumerate(row)
            if i != j and count
        ]
        return sorted(pairs, key=lambda pair: (-pair[2], pair[0], pair[1]))[:limit]

    def to_json(self, *, details: bool = False) -> dict[str, Any]:
        """The figures as JSON-safe values; `details` adds the confusion matrix and up to 200 errors (with texts)."""
        figures: dict[str, Any] = {
            "n_examples": self.n_examples,
            "intent_accuracy": _round(self.intent_accuracy),
            "intent_macro_f1": _round(self.intent_macro_f1),
            "intent_weighted_f1": _round(self.intent_weighted_f1),
            "entity_precision": _maybe(self.entity_precision),
            "entity_recall": _maybe(self.entity_recall),
            "entity_f1": _maybe(self.entity_f1),
            "entity_value_f1": _maybe(self.entity_value_f1),
            "oos_recall": _maybe(self.oos_recall),
            "oos_false_accept": self.oos_false_accept,
            "per_intent": {name: scores.to_json() for name, scores in self.intents_worst_first()},
            "per_entity": {name: scores.to_json() for name, scores in sorted(self.per_entity.items())},
            "top_confusions": [
                {"expected": e, "predicted": p, "count": n} for e, p, n in self.confused_pairs(limit=10)
            ],
            "n_errors": len(self.errors),
        }
        if details:
            figures["labels"] = list(self.labels)
            figures["confusion"] = [list(row) for row in self.confusion]
            figures["errors"] = [
                {"text": e.text, "expected": e.expected, "predicted": e.predicted, "confidence": _round(e.confidence)}
                for e in self.errors[:MAX_JSON_ERRORS]
            ]
        return figures


def evaluate(examples: Sequence[NluExample], parse: Parse, *, progress: bool = False) -> NluEvaluation:
    """Parse each example's text and score the results against its intent and entities."""
    show = progress and sys.stderr.isatty()
    items = tqdm(examples, desc="evaluating", unit="msg", file=sys.stderr, disable=not show, leave=False)
    return evaluate_predictions([(example, parse(example.text)) for example in items])


def evaluate_predictions(pairs: Sequence[Pair]) -> NluEvaluation:
    """Score (expected example, prediction) pairs; raises ProjectError when there are none."""
    if not pairs:
        raise ProjectError("there are no labelled examples to evaluate; add `- intent:` examples to the test data")
    labels, confusion = _confusion(pairs)
    per_intent = _per_intent(labels, confusion, {example.intent for example, _ in pairs})
    n = len(pairs)
    correct = sum(confusion[i][i] for i in range(len(labels)))
    overall, per_entity, value = _entity_scores(pairs)
    oos = [result.intent in OUT_OF_SCOPE_INTENTS for example, result in pairs if example.intent in OUT_OF_SCOPE_INTENTS]
    errors = [
        IntentError(example.text, example.intent, result.intent, result.confidence)
        for example, result in pairs
        if result.intent != example.intent
    ]
    return NluEvaluation(
        n_examples=n,
        intent_accuracy=correct / n,
        intent_macro_f1=sum(s.f1 for s in per_intent.values()) / len(per_intent),
        intent_weighted_f1=sum(s.f1 * s.support for s in per_intent.values()) / n,
        per_intent=per_intent,
        entity_precision=None if overall is None else overall.precision,
        entity_recall=None if overall is None else overall.recall,
        entity_f1=None if overall is None else overall.f1,
        entity_value_f1=None if value is None else value.f1,
        per_entity=per_entity,
        oos_recall=sum(oos) / len(oos) if oos else None,
        oos_false_accept=len(oos) - sum(oos),
        labels=labels,
        confusion=confusion,
        errors=tuple(sorted(errors, key=lambda e: (-e.confidence, e.expected, e.text))),
        correct_confidences=tuple(r.confidence for ex, r in pairs if r.intent == ex.intent),
        wrong_confidences=tuple(r.confidence for ex, r in pairs if r.intent != ex.intent),
    )


def _confusion(pairs: Sequence[Pair]) -> tuple[tuple[str, ...], tuple[tuple[int, ...], ...]]:
    """Labels (expected ones sorted, then predicted-only ones sorted) and the square count matrix over them."""
    expected = sorted({example.intent for example, _ in pairs})
    labels = (*expected, *sorted({result.intent for _, result in pairs} - set(expected)))
    index = {label: i for i, label in enumerate(labels)}
    counts = Counter((index[example.intent], index[result.intent]) for example, result in pairs)
    matrix = tuple(tuple(counts[(i, j)] for j in range(len(labels))) for i in range(len(labels)))
    return labels, matrix


def _per_intent(
    labels: Sequence[str], confusion: Sequence[Sequence[int]], expected: set[str]
) -> dict[str, ClassScores]:
    scores = {}
    for i, label in enumerate(labels):
        if label in expected:
            predicted = sum(row[i] for row in confusion)
            scores[label] = ClassScores.from_counts(confusion[i][i], predicted, sum(confusion[i]))
    return scores


def _entity_scores(pairs: Sequence[Pair]) -> tuple[ClassScores | None, dict[str, ClassScores], ClassScores | None]:
    """(overall exact-span scores, exact-span scores per entity name, name+value scores)."""
    correct: Counter[str] = Counter()
    predicted: Counter[str] = Counter()
    expected: Counter[str] = Counter()
    value_correct = 0
    for example, result in pairs:
        gold = Counter((e.label, e.start, e.end) for e in example.entities)
        found = Counter((e.label, e.start, e.end) for e in result.entities)
        correct.update(name for name, _, _ in (gold & found).elements())
        predicted.update(name for name, _, _ in found.elements())
        expected.update(name for name, _, _ in gold.elements())
        value_correct += _value_matches(example.entities, result.entities)
    n_predicted, n_expected = predicted.total(), expected.total()
    if not n_predicted and not n_expected:
        return None, {}, None
    per_entity = {
        name: ClassScores.from_counts(correct[name], predicted[name], expected[name])
        for name in sorted(predicted.keys() | expected.keys())
    }
    overall = ClassScores.from_counts(correct.total(), n_predicted, n_expected)
    return overall, per_entity, ClassScores.from_counts(value_correct, n_predicted, n_expected)


def _value_matches(expected: Iterable[Entity], predicted: Iterable[Entity]) -> int:
    # Values compare case-insensitively: an extractor may return the canonical form in another case.
    def key(entity: Entity) -> tuple[str, str]:
        return entity.label, entity.value.strip().casefold()

    return (Counter(map(key, expected)) & Counter(map(key, predicted))).total()


def stratified_folds(data: NluData, k: int, seed: int = 0) -> list[tuple[NluData, tuple[NluExample, ...]]]:
    """k (training data, test examples) splits; every example is tested exactly once.

    Each intent's examples are shuffled (seeded) and dealt round-robin over the folds, continuing
    where the previous intent stopped, so intents and fold sizes are both spread evenly. Training
    data keeps the synonyms, regexes and lookups.
    """
    n = len(data.examples)
    if k < 2:
        raise ConfigError(f"cross-validation needs at least 2 folds, not {k}; pass --cross-validation 2 or more")
    if k > n:
        raise ConfigError(
            f"{k}-fold cross-validation needs at least {k} examples and the data has {n}; "
            f"pass --cross-validation {max(n, 2)} or fewer, or add examples"
        )
    rng = random.Random(seed)
    by_intent: dict[str, list[int]] = {}
    for i, example in enumerate(data.examples):
        by_intent.setdefault(example.intent, []).append(i)
    fold_of: dict[int, int] = {}
    dealt = 0
    for intent in sorted(by_intent):
        indices = by_intent[intent]
        rng.shuffle(indices)
        for index in indices:
            fold_of[index] = dealt % k
            dealt += 1
    folds = []
    for fold in range(k):
        train = tuple(ex for i, ex in enumerate(data.examples) if fold_of[i] != fold)
        test = tuple(ex for i, ex in enumerate(data.examples) if fold_of[i] == fold)
        folds.append((replace(data, examples=train), test))
    return folds


def cross_validate(
    data: NluData, k: int, fit: Callable[[NluData], Parse], *, seed: int = 0, progress: bool = False
) -> NluEvaluation:
    """Train with `fit` on k-1 folds, parse the held-out fold, and score the pooled predictions of all folds.

    With `progress`, one line per fold (and a bar while parsing, on a terminal) goes to stderr.
    """
    started = time.perf_counter()
    pairs: list[Pair] = []
    for number, (train, test) in enumerate(stratified_folds(data, k, seed), start=1):
        if progress:
            print(
                f"fold {number}/{k}: training on {len(train.examples)} examples, testing on {len(test)} "
                f"({time.perf_counter() - started:.1f}s elapsed)",
                file=sys.stderr,
                flush=True,
            )
        parse = fit(train)
        show = progress and sys.stderr.isatty()
        pairs.extend(
            (example, parse(example.text))
            for example in tqdm(test, desc=f"fold {number}", file=sys.stderr, disable=not show, leave=False)
        )
    if progress:
        print(f"cross-validation done in {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)
    return evaluate_predictions(pairs)


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def _round(value: float) -> float:
    return round(value, 6)


def _maybe(value: float | None) -> float | None:
    return None if value is None else _round(value)
