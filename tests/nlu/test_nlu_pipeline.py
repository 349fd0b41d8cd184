from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bot.errors import ConfigError, ModelNotTrainedError, ProjectError
from bot.events import Session
from bot.nlu.model import JointModel
from bot.nlu.network import NetworkConfig
from bot.nlu.pipeline import TrainedNlu, TrainReport, data_hash, needs_training, train_nlu
from bot.types import FALLBACK_INTENT, Message, NluData, NluExample, RegexFeature

SESSION = Session("c1")


def logits_of(model_dir: Path, texts: list[str]) -> np.ndarray:
    model = JointModel.load(model_dir)[0]
    return np.stack([model.predict(text, model.encode(text), None).logits for text in texts])


def message(text: str) -> Message:
    return Message("c1", "rest", "u1", "m1", text, received_at=0.0)


def cases_in(held_out: dict[str, list[str]], language: str) -> list[tuple[str, str]]:
    chinese = language == "zh"
    return [
        (text, intent)
        for intent, texts in held_out.items()
        for text in texts
        if any("\u4e00" <= char <= "\u9fff" for char in text) == chinese
    ]


@pytest.mark.parametrize("language", ["zh", "en"])
def test_held_out_paraphrases_classify_correctly(
    nlu: TrainedNlu, nlu_data: NluData, held_out: dict[str, list[str]], language: str
) -> None:
    cases = cases_in(held_out, language)
    training = {example.text for example in nlu_data.examples}
    assert not training & {text for text, _ in cases}, "held-out texts must not be training examples"
    results = [(text, intent, nlu.parse(message(text), SESSION)) for text, intent in cases]
    correct = [result.intent == intent for _, intent, result in results]
    misses = [(text, intent, result.intent) for text, intent, result in results if result.intent != intent]
    assert sum(correct) / len(correct) >= 0.8, misses
    assert all(result.language == language for _, _, result in results)


def test_parse_returns_ranking_entities_and_language(nlu: TrainedNlu) -> None:
    result = nlu.parse(message("我的X1 Pro坏了，订单SO12345678"), SESSION)
    assert result.text == "我的X1 Pro坏了，订单SO12345678"
    assert result.language == "zh"
    assert {(e.name, e.value) for e in result.entities} == {("product", "X1 Pro"), ("order_id", "SO12345678")}
    assert result.ranking[0].name == result.intent
    assert result.confidence == result.ranking[0].confidence
    assert sorted(s.name for s in result.ranking) == sorted(nlu.intents)
    confidences = [s.confidence for s in result.ranking]
    assert confidences == sorted(confidences, reverse=True)
    assert sum(confidences) == pytest.approx(1.0, abs=1e-5)


def test_fallback_below_threshold_keeps_confidence_and_ranking(
    trained: tuple[Path, TrainReport], held_out: dict[str, list[str]]
) -> None:
    lenient = TrainedNlu(trained[0], fallback_threshold=0.0)
    results = [lenient.parse(message(text), SESSION) for texts in held_out.values() for text in texts]
    unsure = min((r for r in results if r.intent != FALLBACK_INTENT), key=lambda r: r.confidence)
    strict = TrainedNlu(trained[0], fallback_threshold=min(1.0, unsure.confidence + 0.01))
    low = strict.parse(message(unsure.text), SESSION)
    assert low.intent == FALLBACK_INTENT
    assert low.confidence == unsure.confidence
    assert low.ranking == unsure.ranking


@pytest.mark.parametrize("text", ["qzxv blorp", "asdfjkl", "😀😀"])
def test_gibberish_is_not_understood(trained: tuple[Path, TrainReport], text: str) -> None:
    assert TrainedNlu(trained[0], fallback_threshold=0.3).parse(message(text), SESSION).intent == FALLBACK_INTENT


def test_custom_fallback_intent_and_invalid_threshold(trained: tuple[Path, TrainReport]) -> None:
    custom = TrainedNlu(trained[0], fallback_threshold=1.0, fallback_intent="out_of_scope")
    assert custom.parse(message("你好"), SESSION).intent == "out_of_scope"
    with pytest.raises(ConfigError):
        TrainedNlu(trained[0], fallback_threshold=1.5)


def test_same_seed_gives_identical_weights_and_probabilities(
    tmp_path: Path, nlu_data: NluData, held_out: dict[str, list[str]]
) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    train_nlu(nlu_data, first, seed=7, epochs=8, progress=False)
    train_nlu(nlu_data, second, seed=7, epochs=8, progress=False)
    weights_a = torch.load(first / "model.pt", weights_only=True)
    weights_b = torch.load(second / "model.pt", weights_only=True)
    assert weights_a.keys() == weights_b.keys()
    assert all(torch.equal(weights_a[key], weights_b[key]) for key in weights_a)
    texts = [text for texts in held_out.values() for text in texts]
    assert np.array_equal(logits_of(first, texts), logits_of(second, texts))


def test_training_leaves_the_callers_torch_state_alone(tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    data = NluData((NluExample("hi", "greet"), NluExample("bye", "goodbye")))
    train_nlu(data, tmp_path, config=NetworkConfig(epochs=2), progress=False)
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads


def test_save_load_roundtrip(trained: tuple[Path, TrainReport], tmp_path: Path, held_out: dict[str, list[str]]) -> None:
    model_dir, report = trained
    texts = ["where is my order", "我要退款", "qzxv blorp", ""]
    original = logits_of(model_dir, texts)
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("model.pt", "meta.json", "entities.json"):
        (copy / name).write_bytes((model_dir / name).read_bytes())
    reloaded = TrainedNlu(copy)
    assert np.array_equal(logits_of(copy, texts), original)
    assert reloaded.parse(message("订单SO12345678"), SESSION).entities[0].value == "SO12345678"
    meta = json.loads((model_dir / "meta.json").read_text())
    assert meta["intents"] == sorted([*held_out, FALLBACK_INTENT])  # the model learns gibberish as nlu_fallback
    assert meta["data_hash"] == report.data_hash
    assert meta["featurizer"]["dim"] == 2**18
    assert meta["tags"] == ["O", "B-order_id", "I-order_id", "B-product", "I-product"]
    assert 0.25 <= meta["temperature"] <= 8


def test_train_report(trained: tuple[Path, TrainReport], nlu_data: NluData) -> None:
    report = trained[1]
    assert (report.n_examples, report.n_intents) == (120, 5)
    assert report.train_accuracy >= 0.95
    assert report.seconds > 0
    assert report.data_hash == data_hash(nlu_data)


def test_missing_model_tells_the_user_to_train(tmp_path: Path) -> None:
    nlu = TrainedNlu(tmp_path / "nothing-here")  # the constructor does not touch the disk
    with pytest.raises(ModelNotTrainedError, match="kefu train"):
        nlu.warm_up()
    with pytest.raises(ModelNotTrainedError, match="kefu train"):
        nlu.parse(message("hi"), SESSION)


def test_corrupt_model_is_reported_not_crashed_on(trained: tuple[Path, TrainReport], tmp_path: Path) -> None:
    for name in ("meta.json", "entities.json"):
        (tmp_path / name).write_bytes((trained[0] / name).read_bytes())
    (tmp_path / "model.pt").write_bytes(b"not a model")
    with pytest.raises(ModelNotTrainedError, match="kefu train"):
        TrainedNlu(tmp_path).warm_up()


def test_training_needs_examples(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="no examples"):
        train_nlu(NluData(), tmp_path, progress=False)


def test_data_hash_changes_with_the_data(nlu_data: NluData) -> None:
    base = data_hash(nlu_data)
    assert base == data_hash(dataclasses.replace(nlu_data))
    first = nlu_data.examples[0]
    moved = dataclasses.replace(first, line=first.line + 10)
    assert data_hash(dataclasses.replace(nlu_data, examples=(moved, *nlu_data.examples[1:]))) == base
    changes = [
        dataclasses.replace(nlu_data, examples=(*nlu_data.examples, NluExample("yo", "greet"))),
        dataclasses.replace(nlu_data, examples=(dataclasses.replace(first, intent="goodbye"), *nlu_data.examples[1:])),
        dataclasses.replace(nlu_data, synonyms={**nlu_data.synonyms, "pods": "AirBuds"}),
        dataclasses.replace(nlu_data, regexes=(*nlu_data.regexes, RegexFeature("zip", r"\d{6}"))),
        dataclasses.replace(nlu_data, lookups={**nlu_data.lookups, "color": ("红色",)}),
    ]
    hashes = {data_hash(data) for data in changes}
    assert len(hashes) == len(changes)
    assert base not in hashes


def test_needs_training(tmp_path: Path) -> None:
    data = NluData(examples=(NluExample("hi", "greet"), NluExample("bye", "goodbye")))
    config = NetworkConfig(epochs=2)
    assert needs_training(data, tmp_path, config=config)
    train_nlu(data, tmp_path, config=config, progress=False)
    assert not needs_training(data, tmp_path, config=config)
    changed = dataclasses.replace(data, examples=(*data.examples, NluExample("hello", "greet")))
    assert needs_training(changed, tmp_path, config=config)
    assert needs_training(data, tmp_path, entity_names=["order_id"], config=config)
    assert needs_training(data, tmp_path, config=NetworkConfig(epochs=3))
    assert needs_training(data, tmp_path, config=config, seed=1)
    (tmp_path / "model.pt").unlink()
    assert needs_training(data, tmp_path, config=config)
