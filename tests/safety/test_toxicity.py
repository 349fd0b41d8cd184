"""The learned toxicity check: features, training, persistence, the SafetyCheck, and COLD behaviour."""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from bot.errors import ConfigError, ModelNotTrainedError, ProjectError
from safety.toxicity import (
    META_FILE,
    WEIGHTS_FILE,
    ToxicityCheck,
    ToxicityConfig,
    ToxicityModel,
    char_ngrams,
    featurize,
    latin_word_ngrams,
    normalise,
    toxicity_model_exists,
)
from safety.toxicity_train import (
    best_threshold,
    data_hash,
    evaluate_toxicity,
    read_cold,
    read_english_seed,
    stratified_limit,
    train_from_cold,
    train_toxicity,
)

COLD = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cold"

ABUSIVE = [
    "你这个傻逼",
    "滚开你个废物",
    "你们都是骗子",
    "蠢货客服，听不懂人话",
    "你脑子有病吧",
    "去死吧你个垃圾",
    "you are an idiot",
    "shut up you moron",
    "you useless clown",
    "you people are stupid liars",
]
BENIGN = [
    "我的订单到哪了",
    "怎么申请退款",
    "请问运费多少",
    "谢谢你的帮助",
    "发票怎么开",
    "可以改收货地址吗",
    "where is my order",
    "how do I get a refund",
    "thanks for the help",
    "kill the auto-renewal please",
]
TINY_TEXTS = ABUSIVE + BENIGN
TINY_LABELS = [1] * len(ABUSIVE) + [0] * len(BENIGN)


class HashEmbedder:
    """A deterministic stand-in for e5: character counts hashed into 16 dimensions, L2-normalised."""

    name = "test-hash"
    dim = 16

    def __init__(self) -> None:
        self.calls = 0

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for ch in text:
                out[row, zlib.crc32(ch.encode()) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1.0)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed_queries(texts)


def _tiny(*, seed: int = 0, embedder: HashEmbedder | None = None) -> ToxicityModel:
    return train_toxicity(TINY_TEXTS, TINY_LABELS, seed=seed, epochs=40, embedder=embedder)


@pytest.fixture(scope="module")
def tiny() -> ToxicityModel:
    return _tiny()


# --- features ---


def test_features_fold_width_and_case() -> None:
    config = ToxicityConfig()
    indices, values = featurize("ＹＯＵ Idiot", config)
    same_indices, same_values = featurize("you idiot", config)
    assert np.array_equal(indices, same_indices) and np.allclose(values, same_values)
    assert np.isclose(np.linalg.norm(values), 1.0)
    assert np.all(np.diff(indices) > 0)  # sorted, unique buckets
    assert "傻逼" in char_ngrams("你傻逼", 1, 2) and " " not in char_ngrams("a b", 1, 2)
    assert normalise("ＹＯＵ  are\tNo.１") == "you are no.0"
    assert latin_word_ngrams("you idiot", 2) == ["w:you", "w:idiot", "w:you idiot"]


def test_sublinear_term_frequency() -> None:
    config = ToxicityConfig(ngram_min=1, ngram_max=1, latin_words=0)
    indices, values = featurize("滚滚滚滚你", config)  # " ", "滚" x4, "你", " " -> spaces dropped
    assert len(indices) == 2
    weights = sorted(values.tolist())
    assert weights[1] / weights[0] == pytest.approx(1 + np.log(4), rel=1e-5)


# --- training on a tiny data set (never skipped) ---


def test_tiny_model_separates_abuse_from_benign(tiny: ToxicityModel) -> None:
    proba = tiny.predict_proba(TINY_TEXTS)
    assert proba.shape == (len(TINY_TEXTS),)
    assert np.all(proba[: len(ABUSIVE)] > 0.5) and np.all(proba[len(ABUSIVE) :] < 0.5)
    unseen = tiny.predict_proba(["你个傻逼客服", "我的订单什么时候发货", "you stupid idiot", "where is my refund"])
    assert unseen[0] > unseen[1] and unseen[2] > unseen[3]
    assert not tiny.uses_dense and tiny.threshold == 0.5  # no dev data: the default threshold


def test_training_is_deterministic_for_a_seed(tiny: ToxicityModel) -> None:
    again = _tiny()
    assert np.array_equal(again.predict_proba(TINY_TEXTS), tiny.predict_proba(TINY_TEXTS))
    for name, array in tiny.weights.items():
        assert np.array_equal(array, again.weights[name]), name


def test_threshold_is_chosen_on_dev_data() -> None:
    model = train_toxicity(TINY_TEXTS, TINY_LABELS, epochs=40, dev=(TINY_TEXTS, TINY_LABELS))
    proba = model.predict_proba(TINY_TEXTS)
    top_benign, low_abuse = proba[len(ABUSIVE) :].max(), proba[: len(ABUSIVE)].min()
    assert top_benign < model.threshold <= low_abuse + 1e-9  # separates dev perfectly
    assert evaluate_toxicity(model, TINY_TEXTS, TINY_LABELS)["macro_f1"] == 1.0


def test_best_threshold_and_metrics() -> None:
    labels = [0, 0, 0, 1, 1, 1]
    assert best_threshold(labels, np.array([0.1, 0.2, 0.65, 0.7, 0.8, 0.9])) == pytest.approx(0.66)
    assert best_threshold(labels, np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])) == pytest.approx(0.5)  # ties: nearest 0.5
    model = ToxicityModel(ToxicityConfig(), {"sparse": np.zeros(2**18, np.float32), "bias": np.array([2.0])})
    metrics = evaluate_toxicity(model, ["a b", "c d"], [1, 0])  # every text: sigmoid(2) = 0.88 -> offensive
    assert metrics == {"accuracy": 0.5, "macro_f1": pytest.approx(1 / 3), "precision": 0.5, "recall": 1.0, "n": 2.0}


def test_training_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="same length"):
        train_toxicity(["a"], [1, 0])
    with pytest.raises(ValueError, match="labels 0 or 1"):
        train_toxicity(["a", "b"], [1, 2])


# --- persistence ---


def test_save_load_round_trip(tiny: ToxicityModel, tmp_path: Path) -> None:
    tiny.threshold = 0.42
    tiny.metrics = {"test_accuracy": 0.9}
    tiny.save(tmp_path)
    assert toxicity_model_exists(tmp_path)
    meta = json.loads((tmp_path / META_FILE).read_text(encoding="utf-8"))
    assert meta["threshold"] == 0.42 and meta["uses_dense"] is False and meta["config"]["buckets"] == 2**18
    with np.load(tmp_path / WEIGHTS_FILE, allow_pickle=False) as archive:
        assert sorted(archive.files) == ["bias", "sparse"]
    loaded = ToxicityModel.load(tmp_path)
    assert np.array_equal(loaded.predict_proba(TINY_TEXTS), tiny.predict_proba(TINY_TEXTS))
    assert loaded.threshold == 0.42 and loaded.metrics == {"test_accuracy": 0.9}
    tiny.threshold = 0.5


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    assert not toxicity_model_exists(tmp_path)
    with pytest.raises(ModelNotTrainedError, match="no toxicity model"):
        ToxicityModel.load(tmp_path)
    with pytest.raises(ModelNotTrainedError, match="train"):
        ToxicityCheck(tmp_path / "nowhere").warm_up()


def test_corrupt_model_is_a_clear_error(tiny: ToxicityModel, tmp_path: Path) -> None:
    tiny.save(tmp_path)
    (tmp_path / WEIGHTS_FILE).write_bytes(b"not a zip file")
    with pytest.raises(ProjectError, match="broken toxicity weights"):
        ToxicityModel.load(tmp_path)
    (tmp_path / META_FILE).write_text("{not json", encoding="utf-8")
    assert not toxicity_model_exists(tmp_path)
    with pytest.raises(ProjectError, match="unreadable toxicity meta"):
        ToxicityModel.load(tmp_path)
    (tmp_path / META_FILE).write_text(json.dumps({"format": 1, "config": {"buckets": 7}}), encoding="utf-8")
    with pytest.raises(ProjectError, match="broken toxicity meta"):
        ToxicityModel.load(tmp_path)


def test_weights_of_the_wrong_shape_are_refused(tiny: ToxicityModel, tmp_path: Path) -> None:
    tiny.save(tmp_path)
    np.savez(tmp_path / WEIGHTS_FILE, sparse=np.zeros(10, np.float32), bias=np.zeros(1, np.float32))
    with pytest.raises(ProjectError, match="shape"):
        ToxicityModel.load(tmp_path)


# --- dense features ---


def test_dense_model_needs_its_embedder(tmp_path: Path) -> None:
    embedder = HashEmbedder()
    model = _tiny(embedder=embedder)
    assert model.uses_dense and model.config.dense_dim == 16 and model.config.embedder == "test-hash"
    proba = model.predict_proba(TINY_TEXTS)
    assert np.all(proba[: len(ABUSIVE)] > 0.5) and np.all(proba[len(ABUSIVE) :] < 0.5)
    assert embedder.calls > 0
    model.save(tmp_path)
    with np.load(tmp_path / WEIGHTS_FILE, allow_pickle=False) as archive:
        assert {"hidden_w", "hidden_b", "out_w"} <= set(archive.files)
    with pytest.raises(ConfigError, match="needs that embedder"):
        ToxicityModel.load(tmp_path)
    other = HashEmbedder()
    other.name = "another-embedder"
    with pytest.raises(ConfigError, match="another-embedder"):
        ToxicityModel.load(tmp_path, embedder=other)
    loaded = ToxicityModel.load(tmp_path, embedder=HashEmbedder())
    assert np.array_equal(loaded.predict_proba(TINY_TEXTS), proba)
    # the dense part matters: another seed starts the hidden layer elsewhere and ends elsewhere
    assert not np.array_equal(_tiny(seed=1, embedder=HashEmbedder()).predict_proba(TINY_TEXTS), proba)


# --- the SafetyCheck ---


def test_check_verdicts(tiny: ToxicityModel, tmp_path: Path) -> None:
    tiny.save(tmp_path)
    check = ToxicityCheck(tmp_path)
    check.warm_up()
    blocked = check.check("你这个傻逼", stage="input")
    assert not blocked.allowed and blocked.category == "abuse" and blocked.check == "toxicity"
    p = float(tiny.predict_proba(["你这个傻逼"])[0])
    assert blocked.reason == f"toxicity {p:.2f} >= 0.50"
    allowed = check.check("我的订单到哪了", stage="output")
    assert allowed.allowed and allowed.category == "" and allowed.stage == "output"
    lenient = ToxicityCheck(tmp_path, threshold=min(1.0, p + 0.01))
    assert lenient.check("你这个傻逼", stage="input").allowed
    input_only = ToxicityCheck(tmp_path, stages=("input",))
    assert input_only.check("你这个傻逼", stage="output").allowed
    assert not input_only.check("你这个傻逼", stage="input").allowed


def test_check_skips_texts_without_words(tmp_path: Path) -> None:
    check = ToxicityCheck(tmp_path / "no-model-here")  # cheap: nothing loads until a text needs the model
    for text in ("", "滚", "  ?  ", "123 456", "!!!"):
        assert check.check(text, stage="input").allowed
    with pytest.raises(ModelNotTrainedError):
        check.check("你这个傻逼", stage="input")


def test_check_refuses_bad_settings(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="threshold"):
        ToxicityCheck(tmp_path, threshold=1.5)
    with pytest.raises(ConfigError, match="stage"):
        ToxicityCheck(tmp_path, stages=("inputs",))


# --- data ---


def test_english_seed() -> None:
    texts, labels = read_english_seed()
    assert 150 <= len(texts) <= 300 and len(set(texts)) == len(texts)
    assert 0.3 < sum(labels) / len(labels) < 0.7
    seed = dict(zip(texts, labels, strict=True))
    assert seed["the app is stupid slow"] == 0 and seed["kill the auto-renewal please"] == 0
    assert seed["you are a complete idiot"] == 1


def test_read_cold_errors(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="COLD split not found"):
        read_cold(tmp_path, "train")
    (tmp_path / "dev.csv").write_text("\ufeff,split,topic,label,TEXT\n1,dev,race,1,好\n2,dev,race,x,坏\n", "utf-8")
    with pytest.raises(ProjectError, match=r"dev.csv:3: .*label 0 or 1"):
        read_cold(tmp_path, "dev")
    (tmp_path / "test.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(ProjectError, match="missing column"):
        read_cold(tmp_path, "test")
    with pytest.raises(ValueError, match="unknown COLD split"):
        read_cold(tmp_path, "validation")


def test_read_cold_strips_the_bom(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text('\ufeff,split,topic,label,TEXT\n1,train,race,1,"好,的"\n', "utf-8")
    assert read_cold(tmp_path, "train") == (["好,的"], [1])


def test_stratified_limit() -> None:
    labels = [1] * 30 + [0] * 70
    picked = stratified_limit(labels, 10, seed=0)
    assert len(picked) == 10 and sum(labels[i] for i in picked) == 3
    assert picked == stratified_limit(labels, 10, seed=0) != stratified_limit(labels, 10, seed=1)
    assert stratified_limit(labels, 500, seed=0) == list(range(100))


def test_data_hash_follows_the_settings(tmp_path: Path) -> None:
    base = data_hash(tmp_path, embedder=None, seed=0, limit=None)
    assert base == data_hash(tmp_path, embedder=None, seed=0, limit=None)
    assert base != data_hash(tmp_path, embedder=None, seed=0, limit=100)
    assert base != data_hash(tmp_path, embedder=HashEmbedder(), seed=0, limit=None)
    (tmp_path / "train.csv").write_text("x", encoding="utf-8")
    assert base != data_hash(tmp_path, embedder=None, seed=0, limit=None)


# --- COLD (skipped without the data) ---


@pytest.fixture(scope="module")
def cold_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, float]]:
    if not (COLD / "train.csv").is_file():
        pytest.skip(f"no COLD data at {COLD} (see ../shared/data/README.md)")
    out = tmp_path_factory.mktemp("toxicity")
    return out, train_from_cold(COLD, out, embedder=None, limit=4000)


def test_cold_model_metrics(cold_model: tuple[Path, dict[str, float]]) -> None:
    out, metrics = cold_model
    assert metrics["skipped"] == 0.0 and metrics["n_train"] == 4000 + len(read_english_seed()[0])
    assert metrics["test_accuracy"] > 0.70 and metrics["test_macro_f1"] > 0.70
    assert 0.05 <= metrics["threshold"] <= 0.95
    assert ToxicityModel.load(out).threshold == metrics["threshold"]


@pytest.mark.parametrize(
    ("text", "offensive"),
    [
        ("河南人都是骗子", True),
        ("你们客服都是傻逼吧", True),
        ("你脑子有病吧，听不懂人话？", True),
        ("黑人都是罪犯", True),
        ("我的快递什么时候到", False),
        ("请问怎么开发票", False),
        ("你是机器人吗", False),
        ("you useless idiot, give me my money back", True),
        ("shut up, you dumb bot", True),
        ("where is my parcel, this is killing me", False),
        ("the app is stupid slow", False),
        ("how do I change my delivery address", False),
    ],
)
def test_cold_model_behaviour(cold_model: tuple[Path, dict[str, float]], text: str, offensive: bool) -> None:
    verdict = ToxicityCheck(cold_model[0]).check(text, stage="input")
    assert verdict.allowed is not offensive, verdict.reason


def test_train_from_cold_skips_unchanged_data(cold_model: tuple[Path, dict[str, float]]) -> None:
    out, metrics = cold_model
    before = (out / WEIGHTS_FILE).stat().st_mtime_ns
    again = train_from_cold(COLD, out, embedder=None, limit=4000)
    assert again == {**metrics, "skipped": 1.0}
    assert (out / WEIGHTS_FILE).stat().st_mtime_ns == before
