"""`kefu test generation`: the faithfulness and don't-know metrics, and an evaluation of the real shop."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.errors import ConfigError, ProjectError
from bot.generation.evaluation import (
    GenerationQuery,
    check_sentences,
    content_tokens,
    evaluate_generation,
    faithfulness,
    format_generation_report,
    load_generation_queries,
    matches_expected,
    says_dont_know,
    split_sentences,
)
from bot.generation_cli import run_test_generation
from bot.nlu.embedder import E5Embedder
from bot.settings import Settings
from bot.types import Fact, Language, Reply
from bot.wiring import Project, Runtime, build_runtime
from tests.conftest import SHOP

SHIPPING_EN = Fact(
    "faq_ship_02_en",
    "Standard shipping is free on orders of ¥99 or more; below ¥99 it costs ¥8. Express shipping (1-2 days) is a "
    "flat ¥15 and is not covered by free shipping.",
    "faq",
    0.9,
    "faq:faq_ship_02_en",
    "en",
)
SHIPPING_ZH = Fact(
    "faq_ship_02_zh",
    "标准快递订单实付满 ¥99 包邮，不满 ¥99 收取运费 ¥8。加急快递（1-2 天送达）统一收费 ¥15，不参与包邮。",
    "faq",
    0.9,
    "faq:faq_ship_02_zh",
    "zh",
)
FACTS = (SHIPPING_EN, SHIPPING_ZH)


@pytest.fixture(scope="module")
def embedder() -> E5Embedder:
    return E5Embedder()


def verdicts(answer: str, embedder: E5Embedder) -> list[str]:
    return [check.verdict for check in check_sentences(answer, FACTS, embedder)]


def test_sentences_end_at_chinese_and_english_marks_but_not_inside_numbers() -> None:
    text = "The X1 Pro has a 6.7-inch screen. It costs ¥5,999!好的。真的吗？\nNext line"
    assert split_sentences(text) == [
        "The X1 Pro has a 6.7-inch screen.", "It costs ¥5,999!", "好的。", "真的吗？", "Next line",
    ]  # fmt: skip
    assert content_tokens("The Shipping is FREE") == {"shipping", "free"}
    assert content_tokens("加急快递") == {"加急", "急快", "快递"}


def test_a_sentence_the_facts_support_is_supported_in_both_languages(embedder: E5Embedder) -> None:
    assert verdicts("Shipping is free from ¥99. Express shipping costs ¥15!", embedder) == ["supported"] * 2
    # few shared characters, but the same meaning: e5 supports it
    assert verdicts("满99元包邮。加急快递收费15元。", embedder) == ["supported"] * 2


def test_an_unrelated_or_invented_sentence_is_unsupported(embedder: E5Embedder) -> None:
    assert verdicts("We sell gift cards in our Berlin store.", embedder) == ["unsupported"]
    assert verdicts("我们在北京有实体门店。", embedder) == ["unsupported"]
    [invented] = check_sentences("Express shipping costs ¥25.", FACTS, embedder)
    assert invented.verdict == "unsupported" and "25" in invented.reason  # every other word is in the fact
    assert verdicts("加急快递收费 ¥20。", embedder) == ["unsupported"]


def test_refusals_and_offers_of_a_human_are_left_out_of_faithfulness(embedder: E5Embedder) -> None:
    checks = check_sentences(
        "Sorry, I'm not sure about gift cards. Express shipping costs ¥15. Would you like a human agent?",
        FACTS,
        embedder,
    )
    assert [c.verdict for c in checks] == ["excluded", "supported", "excluded"]
    assert faithfulness(checks) == 1.0
    assert (
        faithfulness(check_sentences("抱歉，这个问题我暂时没有找到答案。需要为您转接人工客服吗？", FACTS, embedder))
        is None
    )
    assert faithfulness(check_sentences("Express costs ¥15. It ships by drone.", FACTS, embedder)) == 0.5


def test_dont_know_is_recognised_in_both_languages() -> None:
    assert says_dont_know(
        [Reply("抱歉，这个问题我暂时没有找到答案。需要为您转接人工客服吗？", template="utter_no_answer")]
    )
    assert says_dont_know([Reply("抱歉，我不确定。", template="generated")])
    assert says_dont_know([Reply("I don\u2019t know that, sorry.", template="generated")])
    assert says_dont_know([Reply("Would you like me to connect you with a human agent?")])
    assert says_dont_know([Reply("需要为您转接人工客服吗？")])
    assert says_dont_know([Reply("Sorry, I can't help with that request.", template="refusal:fraud")])
    assert says_dont_know([Reply("抱歉，我没太明白您的意思。", template="kefu:utter_ask_rephrase")])
    assert says_dont_know([])
    # an answer that also points to an agent, and a quoted fact that does, are answers
    assert not says_dont_know([Reply("Check your balance. If it keeps failing, contact a human agent.")])
    quote = "已发货的订单无法在线修改，请联系人工客服。"
    assert not says_dont_know([Reply(quote, fact_ids=("faq_ship_06_zh",), template="knowledge:faq")])
    assert not says_dont_know([Reply("Express shipping costs ¥15.", template="generated")])


def test_expected_is_a_cited_fact_id_or_a_phrase_of_the_answer() -> None:
    assert matches_expected("faq_ship_02_en|¥15", "It costs ¥8.", ["faq_ship_02_en"])
    assert matches_expected("faq_ship_02_en|¥15", "Express costs ¥15.", [])
    assert matches_expected("kg:x1_pro|price|5999", "", ["kg:x1_pro|price"])
    assert matches_expected("x1_pro|price", "", ["kg:x1_pro|price"])  # as `kefu test knowledge` names it
    assert not matches_expected("kg:x1_pro|price", "The price is right.", ["kg:x1|price"])
    assert matches_expected("doc:warranty-policy.md", "", ["doc:warranty-policy.md#2"])
    assert matches_expected("3-5 天", "标准快递一般 3-5 天送达", [])


def test_a_bad_row_is_named_by_its_line(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_text("question,lang,answerable,expected\nHow long?,en,1,faq_a\n你好,zh,maybe,\n", encoding="utf-8")
    with pytest.raises(ProjectError, match=r"q\.csv:3: answerable must be 1 or 0"):
        load_generation_queries(path)
    path.write_text("question,lang,answerable\nHow long?,,1\n运费多少,,0\n", encoding="utf-8")
    assert [(q.lang, q.answerable, q.expected, q.line) for q in load_generation_queries(path)] == [
        ("en", True, "", 2), ("zh", False, "", 3),
    ]  # fmt: skip
    with pytest.raises(ProjectError, match="no such file"):
        load_generation_queries(tmp_path / "missing.csv")


# --- the real shop, with the generator off: answers are quoted facts or scripted replies ---

SHOP_QUERIES: list[tuple[str, Language, bool, str]] = [
    ("How long does delivery take?", "en", True, "faq_ship_01_en|3-5 days"),
    ("how much is the X1 Pro", "en", True, "kg:x1_pro|price|5999"),
    ("When will I get my refund?", "en", True, "faq_ref_01_en"),
    ("Do you have a physical store in Berlin?", "en", False, ""),
    ("加急快递要多少钱？", "zh", True, "faq_ship_02_zh|¥15"),
    ("你们支持分期付款吗？", "zh", True, "faq_pay_02_zh"),
    ("极光手表有哪些颜色？", "zh", True, "kg:aurora_watch|colors"),
    ("你们在北京有实体店吗？", "zh", False, ""),
]


def without_generator(project: Project) -> Project:
    generator = project.config.generator.model_copy(update={"backend": "none"})
    return dataclasses.replace(project, config=project.config.model_copy(update={"generator": generator}))


@pytest.fixture
async def quoting_shop(shop_project: Project, redis_target: str) -> AsyncIterator[Runtime]:
    settings = Settings(data_dir=shop_project.data_dir, redis_url=redis_target)
    runtime = build_runtime(without_generator(shop_project), settings)
    runtime.bot.warm_up()
    yield runtime
    await runtime.aclose()


@pytest.mark.integration
async def test_the_shop_quotes_its_facts_and_declines_what_it_does_not_know(
    quoting_shop: Runtime, embedder: E5Embedder
) -> None:
    queries = [GenerationQuery(q, lang, ok, expected, i) for i, (q, lang, ok, expected) in enumerate(SHOP_QUERIES, 2)]
    report = await evaluate_generation(quoting_shop.bot, queries, embedder)
    overall = report.overall
    table = format_generation_report(report)
    assert overall.n == 8 and set(report.per_language) == {"en", "zh"}, table
    assert overall.faithfulness == 1.0 and overall.sentences >= 6, table  # quoted facts support themselves
    assert overall.idk_rate_unanswerable is not None and overall.idk_rate_unanswerable >= 0.5, table
    assert overall.false_idk_rate == 0.0 and overall.answered_with_expected is not None, table
    assert overall.answered_with_expected >= 0.8, table
    assert overall.answer_relevance is not None and overall.answer_relevance > 0.85, table
    assert report.templates.get("knowledge:faq", 0) >= 3 and report.templates.get("knowledge:kg", 0) >= 1, table
    assert 0 < overall.latency_p50_ms <= overall.latency_p95_ms
    assert all(r.query.question in table for r in report.results if r.query.answerable and not r.expected_hit)


@pytest.mark.integration
def test_kefu_test_generation_prints_one_json_object(
    shop_project: Project, redis_target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "shop"  # the shop with its generator off, on the session's trained models and index
    shutil.copytree(SHOP, project, ignore=shutil.ignore_patterns(".kefu"))
    config = project / "kefu.yml"
    config.write_text(config.read_text(encoding="utf-8").replace("backend: transformers", "backend: none"))
    queries = tmp_path / "queries.csv"
    queries.write_text(
        "question,lang,answerable,expected\nhow much is the X1 Pro,en,1,5999\n你们卖礼品卡吗？,zh,0,\n",
        encoding="utf-8",
    )
    settings = Settings(data_dir=shop_project.data_dir, redis_url=redis_target)
    assert run_test_generation(project, settings, file=queries, as_json=True) == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("faithfulness", "answer_relevance", "idk_rate_unanswerable", "false_idk_rate", "per_language"):
        assert key in report
    assert report["n_queries"] == 2 and report["answered_with_expected"] == 1.0 and report["faithfulness"] == 1.0
    with pytest.raises(ConfigError, match="no generation queries"):
        run_test_generation(project, settings, file=tmp_path / "missing.csv", as_json=False)
