"""NLU evaluation figures against hand-computed values, and stratified k-fold cross-validation."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from bot.errors import ConfigError, ProjectError
from bot.nlu.evaluation import cross_validate, evaluate, evaluate_predictions, stratified_folds
from bot.types import Entity, NluData, NluExample, NluResult, RegexFeature


def pair(expected: str, predicted: str, confidence: float = 0.9, text: str = "") -> tuple[NluExample, NluResult]:
    text = text or f"{expected}->{predicted} {confidence}"
    return NluExample(text, expected), NluResult(text, predicted, confidence)


# Expected -> predicted: a->a x3, a->b; b->b x2, b->a, b->c; c->c, c->nlu_fallback.
TOY = [
    *[pair("a", "a", 0.9, f"a{i}") for i in range(3)],
    pair("a", "b", 0.8),
    pair("b", "b", 0.9, "b0"),
    pair("b", "b", 0.9, "b1"),
    pair("b", "a", 0.4),
    pair("b", "c", 0.6),
    pair("c", "c", 0.9),
    pair("c", "nlu_fallback", 0.1),
]


def test_intent_figures_match_a_hand_computed_confusion() -> None:
    ev = evaluate_predictions(TOY)
    # a: tp 3 of 4 predicted, 4 expected; b: tp 2 of 3 predicted, 4 expected; c: tp 1 of 2 predicted, 2 expected.
    assert ev.per_intent["a"].precision == pytest.approx(3 / 4)
    assert ev.per_intent["a"].recall == pytest.approx(3 / 4)
    assert ev.per_intent["b"].precision == pytest.approx(2 / 3)
    assert ev.per_intent["b"].recall == pytest.approx(1 / 2)
    assert ev.per_intent["b"].f1 == pytest.approx(4 / 7)
    assert ev.per_intent["c"].f1 == pytest.approx(1 / 2)
    assert [ev.per_intent[name].support for name in "abc"] == [4, 4, 2]
    assert set(ev.per_intent) == {"a", "b", "c"}  # a predicted-only label gets no row of scores
    assert ev.n_examples == 10
    assert ev.intent_accuracy == pytest.approx(6 / 10)
    assert ev.intent_macro_f1 == pytest.approx((3 / 4 + 4 / 7 + 1 / 2) / 3)
    assert ev.intent_weighted_f1 == pytest.approx((3 / 4 * 4 + 4 / 7 * 4 + 1 / 2 * 2) / 10)
    assert ev.labels == ("a", "b", "c", "nlu_fallback")
    assert ev.confusion == ((3, 1, 0, 0), (1, 2, 1, 0), (0, 0, 1, 1), (0, 0, 0, 0))
    assert [name for name, _ in ev.intents_worst_first()] == ["c", "b", "a"]


def test_errors_are_most_confident_first_and_confidences_split_by_correctness() -> None:
    ev = evaluate_predictions(TOY)
    assert [(e.expected, e.predicted, e.confidence) for e in ev.errors] == [
        ("a", "b", 0.8),
        ("b", "c", 0.6),
        ("b", "a", 0.4),
        ("c", "nlu_fallback", 0.1),
    ]
    assert sorted(ev.wrong_confidences) == [0.1, 0.4, 0.6, 0.8]
    assert len(ev.correct_confidences) == 6
    assert ev.confused_pairs(limit=2) == [("a", "b", 1), ("b", "a", 1)]


def test_json_is_safe_and_leaves_texts_out_unless_asked() -> None:
    ev = evaluate_predictions(TOY)
    figures = json.loads(json.dumps(ev.to_json()))
    assert figures["intent_accuracy"] == pytest.approx(0.6)
    assert list(figures["per_intent"]) == ["c", "b", "a"]
    assert figures["per_intent"]["b"] == {"precision": 0.666667, "recall": 0.5, "f1": 0.571429, "support": 4}
    assert figures["oos_recall"] is None and figures["entity_f1"] is None
    assert "errors" not in figures and "a0" not in json.dumps(figures)
    detailed = ev.to_json(details=True)
    assert detailed["errors"][0] == {"text": "a->b 0.8", "expected": "a", "predicted": "b", "confidence": 0.8}
    assert detailed["confusion"][1] == [1, 2, 1, 0]


def test_errors_in_json_are_capped_at_200() -> None:
    ev = evaluate_predictions([pair("a", "b", text=f"t{i}") for i in range(250)])
    detailed = ev.to_json(details=True)
    assert len(detailed["errors"]) == 200 and detailed["n_errors"] == 250


def entity(name: str, start: int, end: int, value: str) -> Entity:
    return Entity(name, value, start, end)


def test_entities_count_only_exact_name_and_span_and_value_match_separately() -> None:
    pairs = [
        # exact match
        ((entity("product", 0, 6, "X1 Pro"),), (entity("product", 0, 6, "X1 Pro"),)),
        # span off by one: wrong for exact, right for value
        ((entity("order_id", 3, 13, "SO12345678"),), (entity("order_id", 2, 13, "SO12345678"),)),
        # right span, wrong name: wrong for both
        ((entity("product", 0, 2, "耳机"),), (entity("color", 0, 2, "耳机"),)),
        # the same entity predicted twice: one right, one spurious; values compare case-insensitively
        ((entity("product", 0, 7, "AirBuds"),), (entity("product", 0, 7, "airbuds"),) * 2),
    ]
    ev = evaluate_predictions(
        [(NluExample("t", "i", gold), NluResult("t", "i", 1.0, entities=found)) for gold, found in pairs]
    )
    # exact: 2 right of 5 predicted and 4 expected; value: 3 right
    assert ev.entity_precision == pytest.approx(2 / 5)
    assert ev.entity_recall == pytest.approx(2 / 4)
    assert ev.entity_f1 == pytest.approx(4 / 9)
    assert ev.entity_value_f1 == pytest.approx(2 / 3)
    product = ev.per_entity["product"]
    assert product.precision == pytest.approx(2 / 3) and product.recall == pytest.approx(2 / 3)
    assert product.support == 3
    assert ev.per_entity["order_id"].f1 == 0.0 and ev.per_entity["order_id"].support == 1
    assert ev.per_entity["color"].support == 0 and ev.per_entity["color"].precision == 0.0


def test_missed_entities_give_zero_precision_and_recall_not_none() -> None:
    gold = (entity("city", 0, 2, "北京"),)
    ev = evaluate_predictions([(NluExample("北京", "ask", gold), NluResult("北京", "ask", 1.0))])
    assert (ev.entity_precision, ev.entity_recall, ev.entity_f1) == (0.0, 0.0, 0.0)


def test_out_of_scope_recall_treats_both_oos_intents_as_one() -> None:
    ev = evaluate_predictions(
        [
            pair("out_of_scope", "nlu_fallback"),  # caught
            pair("out_of_scope", "greet"),  # accepted as in scope
            pair("nlu_fallback", "out_of_scope"),  # caught
            pair("greet", "greet"),
        ]
    )
    assert ev.oos_recall == pytest.approx(2 / 3)
    assert ev.oos_false_accept == 1
    assert ev.intent_accuracy == pytest.approx(1 / 4)  # intent accuracy itself stays strict


def test_evaluate_parses_every_example() -> None:
    examples = [NluExample("hi", "greet"), NluExample("bye", "goodbye"), NluExample("yo", "greet")]
    answers = {"hi": "greet", "bye": "greet", "yo": "greet"}
    ev = evaluate(examples, lambda text: NluResult(text, answers[text], 0.7))
    assert ev.n_examples == 3 and ev.intent_accuracy == pytest.approx(2 / 3)
    assert ev.per_intent["goodbye"].recall == 0.0


def test_nothing_to_evaluate_is_an_error() -> None:
    with pytest.raises(ProjectError, match="no labelled examples"):
        evaluate_predictions([])


def folds_data() -> NluData:
    counts = {"a": 7, "b": 5, "c": 1, "d": 3}
    examples = tuple(NluExample(f"{intent} {i}", intent) for intent, n in counts.items() for i in range(n))
    return NluData(
        examples=examples,
        synonyms={"earphones": "headphones"},
        regexes=(RegexFeature("order_id", r"SO\d{8}"),),
        lookups={"product": ("X1",)},
    )


def test_folds_are_disjoint_cover_everything_and_are_stratified() -> None:
    data = folds_data()
    folds = stratified_folds(data, 3, seed=1)
    tests = [test for _, test in folds]
    assert sorted(ex.text for test in tests for ex in test) == sorted(ex.text for ex in data.examples)
    assert max(map(len, tests)) - min(map(len, tests)) <= 1
    for intent in ("a", "b", "d"):
        per_fold = [sum(ex.intent == intent for ex in test) for test in tests]
        assert max(per_fold) - min(per_fold) <= 1, (intent, per_fold)
    for train, test in folds:
        assert not {ex.text for ex in train.examples} & {ex.text for ex in test}
        assert len(train.examples) + len(test) == len(data.examples)
        assert (train.synonyms, train.regexes, train.lookups) == (data.synonyms, data.regexes, data.lookups)


def test_folds_depend_on_the_seed_only() -> None:
    data = folds_data()
    assert stratified_folds(data, 4, seed=3) == stratified_folds(data, 4, seed=3)
    shuffled = [[ex.text for ex in test] for _, test in stratified_folds(data, 4, seed=4)]
    assert shuffled != [[ex.text for ex in test] for _, test in stratified_folds(data, 4, seed=3)]


@pytest.mark.parametrize(("k", "fix"), [(1, "--cross-validation 2 or more"), (17, "--cross-validation 16 or fewer")])
def test_impossible_fold_counts_say_the_fix(k: int, fix: str) -> None:
    with pytest.raises(ConfigError, match=fix):
        stratified_folds(folds_data(), k)


def test_cross_validation_trains_per_fold_and_pools_the_predictions() -> None:
    data = folds_data()
    trained_on: list[set[str]] = []

    def fit(train: NluData):
        trained_on.append({ex.text for ex in train.examples})
        majority = Counter(ex.intent for ex in train.examples).most_common(1)[0][0]
        return lambda text: NluResult(text, text.split()[0] if text in trained_on[-1] else majority, 0.5)

    ev = cross_validate(data, 4, fit, seed=0)
    assert len(trained_on) == 4
    assert ev.n_examples == len(data.examples)
    # every prediction came from a model that had not seen the text: all are the fold's majority intent
    assert ev.per_intent["a"].recall == 1.0 and ev.per_intent["b"].recall == 0.0
