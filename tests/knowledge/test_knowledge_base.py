"""KnowledgeBase: FAQ, documents and graph in one retriever, incremental re-indexing, reload while serving."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from bot.settings import Settings
from bot.wiring import Project, open_project
from knowledge.base import KnowledgeBase
from knowledge.evaluation import LabelledQuery, evaluate, fact_matches, load_queries
from knowledge.hybrid import CURRENT
from knowledge.problems import Problem
from tests.conftest import SHOP
from tests.knowledge.helpers import HashingEmbedder

FAQ = """id,question,similar,answer,tags,lang
ship_zh,多久发货,几天发货|什么时候发货,付款后 24 小时内发货。,shipping,zh
ship_en,When do you ship?,How soon do you ship,We ship within 24 hours of payment.,shipping,en
refund_zh,退款多久到账,钱什么时候退回来,退款 1-3 个工作日到账。,refund,zh
refund_en,How long does a refund take?,When do I get my money back,Refunds arrive in 1-3 working days.,refund,en
"""
WARRANTY = """---
title: 保修政策
tags: [warranty]
product: x1
lang: zh
---
# 保修政策

## 保修期

手机自签收起保修十二个月。电池容量低于八成可免费更换一次。

## 人为损坏

摔坏、进水和私自拆机不在保修范围内。
"""
CARE = """<html><head><title>Charging guide</title></head><body>
<h1>Charging guide</h1><h2>Fast charging</h2>
<p>The X1 charges to 80 percent in 45 minutes with the 33 W charger.</p>
</body></html>
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "knowledge"
    (root / "docs").mkdir(parents=True)
    (root / "faq.csv").write_text(FAQ, encoding="utf-8")
    (root / "docs" / "warranty.md").write_text(WARRANTY, encoding="utf-8")
    (root / "docs" / "care.html").write_text(CARE, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def shop_knowledge_project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return open_project(SHOP, Settings(data_dir=tmp_path_factory.mktemp("shop-knowledge")))


def base_of(folder: Path, embedder: HashingEmbedder | None = None) -> KnowledgeBase:
    return KnowledgeBase(folder, embedder or HashingEmbedder(), index_dir=folder.parent / "index")


def test_faq_and_passages_are_found_in_both_languages_with_citations(folder: Path) -> None:
    base = base_of(folder)
    [ship] = base.retrieve("几天发货", top_k=1, language="zh")
    assert (ship.id, ship.source, ship.citation) == ("ship_zh", "faq", "faq:ship_zh")
    passage = base.retrieve("摔坏了保修吗", top_k=3, language="zh", filters={"source": "doc"})[0]
    assert passage.source == "doc" and "摔坏" in passage.text
    assert passage.citation.startswith("warranty.md") and "人为损坏" in passage.citation
    charging = base.retrieve("how fast does the X1 charge", top_k=3, language="en", filters={"source": "doc"})
    assert charging[0].id.startswith("doc:care.html#") and "45 minutes" in charging[0].text


def test_filters_by_source_tag_product_and_language(folder: Path) -> None:
    base = base_of(folder)
    assert {f.source for f in base.retrieve("退款", top_k=5, filters={"source": "faq"})} == {"faq"}
    assert [f.id for f in base.retrieve("多久", top_k=5, language="zh", filters={"tag": "refund"})] == ["refund_zh"]
    either = base.retrieve("多久", top_k=5, language="zh", filters={"tag": "refund|shipping", "source": "faq"})
    assert {f.id for f in either} == {"refund_zh", "ship_zh"}
    assert base.retrieve("多久", top_k=5, filters={"tag": "no-such-tag", "source": "faq|doc"}) == []
    by_product = base.retrieve("保修", top_k=5, filters={"source": "doc", "product": "x1"})
    assert by_product and all(f.id.startswith("doc:warranty.md") for f in by_product)
    assert base.retrieve("保修", top_k=5, filters={"source": "doc", "product": "x9"}) == []
    english = base.retrieve("refund", top_k=5, language="en", filters={"source": "faq"})
    assert english and all(f.language == "en" for f in english)


def test_only_what_changed_is_embedded_again_and_reload_serves_it(folder: Path) -> None:
    embedder = HashingEmbedder()
    first = base_of(folder, embedder).reload()
    assert first.faq.added == 9 and first.docs.added >= 3
    embedded = embedder.embedded
    faq = (folder / "faq.csv").read_text(encoding="utf-8")
    faq = faq.replace("付款后 24 小时内发货。", "付款后 48 小时内发货。")  # an answer: nothing to embed
    faq += "invoice_zh,怎么开发票,,在订单详情页申请电子发票。,invoice,zh\n"
    (folder / "faq.csv").write_text(faq, encoding="utf-8")
    (folder / "docs" / "care.html").unlink()
    second_base = base_of(folder, embedder)
    second = second_base.reload()
    assert (second.faq.added, second.faq.removed) == (1, 0)
    assert second.docs.added == 0 and second.docs.removed >= 1
    assert embedder.embedded - embedded == 1
    assert second_base.retrieve("多久发货", top_k=1, language="zh")[0].text == "付款后 48 小时内发货。"
    assert second_base.retrieve("开发票", top_k=1, language="zh")[0].id == "invoice_zh"
    assert not any(f.id.startswith("doc:care") for f in second_base.retrieve("charging", top_k=10))
    versions = [p for p in (folder.parent / "index" / "faq").iterdir() if p.is_dir()]
    assert 1 <= len(versions) <= 2
    assert (folder.parent / "index" / "faq" / CURRENT).read_text() in {p.name for p in versions}


def test_a_reload_swaps_knowledge_while_other_threads_keep_searching(folder: Path) -> None:
    base = base_of(folder)
    base.warm_up()
    errors: list[BaseException] = []
    stop = threading.Event()

    def search() -> None:
        while not stop.is_set():
            try:
                assert base.retrieve("多久发货", top_k=2, language="zh")
            except BaseException as err:  # any failure in the thread fails the test
                errors.append(err)
                return

    threads = [threading.Thread(target=search) for _ in range(2)]
    for thread in threads:
        thread.start()
    (folder / "faq.csv").write_text(FAQ.replace("24 小时", "12 小时"), encoding="utf-8")
    base.reload()
    stop.set()
    for thread in threads:
        thread.join()
    assert errors == []
    assert "12 小时" in base.retrieve("多久发货", top_k=1, language="zh")[0].text


def test_bad_rows_are_reported_and_the_rest_is_served(folder: Path) -> None:
    (folder / "faq.csv").write_text(
        FAQ + "broken,没有答案,,,shipping,zh\nship_zh,重复,,重复的id,,zh\n", encoding="utf-8"
    )
    base = base_of(folder)
    report = base.reload()
    assert report.faq_entries == 4
    assert sorted(problem.line for problem in report.problems if problem.path.endswith("faq.csv")) == [6, 7]
    assert base.retrieve("退款多久到账", top_k=1, language="zh")[0].id == "refund_zh"


def test_evaluation_scores_ranks_and_reports_bad_rows(folder: Path, tmp_path: Path) -> None:
    queries = tmp_path / "queries.csv"
    queries.write_text(
        "query,expected,lang\n几天能发货,ship_zh,zh\nwhen do I get my money back,refund_en,en\n"
        "进水保修吗,doc:warranty.md,zh\n,ship_zh,zh\nfoo,bar,fr\n",
        encoding="utf-8",
    )
    problems: list[Problem] = []
    loaded = load_queries(queries, problems)
    assert [q.line for q in loaded] == [2, 3, 4] and [p.line for p in problems] == [5, 6]
    result = evaluate(base_of(folder), loaded)
    assert result.overall.n == 3 and result.overall.recall_at_1 == pytest.approx(1.0)
    assert result.to_json()["mrr"] == pytest.approx(1.0)
    missing = evaluate(base_of(folder), [LabelledQuery("几天能发货", "no_such_id", "zh", 2)])
    assert missing.overall.recall_at_5 == 0.0 and missing.misses[0].rank is None


def test_fact_ids_match_every_expected_form(folder: Path) -> None:
    base = base_of(folder)
    doc = base.retrieve("摔坏", top_k=1, filters={"source": "doc"})[0]
    assert fact_matches(doc, "doc:warranty.md") and fact_matches(doc, doc.id)
    assert not fact_matches(doc, "doc:warranty") and not fact_matches(doc, "doc:care.html")


def test_the_shop_knowledge_scores_well_with_the_real_embedder(shop_knowledge_project: Project) -> None:
    from bot.nlu.embedder import E5Embedder
    from bot.wiring import knowledge_base

    base = knowledge_base(shop_knowledge_project, E5Embedder())
    problems: list[Problem] = []
    queries = load_queries(shop_knowledge_project.root / "tests" / "knowledge_queries.csv", problems)
    result = evaluate(base, queries)
    assert problems == [] and result.overall.n == 30
    assert result.overall.recall_at_5 >= 0.9 and result.overall.mrr >= 0.75, result.misses
