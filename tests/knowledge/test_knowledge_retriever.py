"""KnowledgeRetriever: a project's knowledge folder as one Retriever, graph answers first."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import ProjectError
from bot.protocols import Retriever
from bot.types import Entity
from knowledge.retriever import KnowledgeRetriever
from tests.knowledge.helpers import HashingEmbedder, write_graph

SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop" / "knowledge"
FAQ_CSV = """id,question,similar,answer,tags,lang
ship_zh,多久发货？,几天发货,付款后 24 小时内发货。,shipping,zh
ship_en,When do you ship?,How soon do you ship,We ship within 24 hours.,shipping,en
price_zh,价格会变吗？,会降价吗,价格以下单时为准。,pricing,zh
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write_graph(tmp_path / "knowledge")
    (tmp_path / "knowledge" / "faq.csv").write_text(FAQ_CSV, encoding="utf-8")
    return tmp_path / "knowledge"


def test_graph_answers_come_before_faq_hits(folder: Path) -> None:
    retriever: Retriever = KnowledgeRetriever.from_folder(folder, HashingEmbedder())
    facts = retriever.retrieve("星耀X1 Pro多少钱", top_k=3, language="zh")
    assert [fact.source for fact in facts] == ["kg", "faq", "faq"]
    assert facts[0].citation == "kg:x1_pro|price|5999"
    assert facts[0].exact
    assert {fact.language for fact in facts} == {"zh"}


def test_top_k_caps_both_parts_and_filters_reach_the_faq(folder: Path) -> None:
    retriever = KnowledgeRetriever.from_folder(folder, HashingEmbedder())
    retriever.warm_up()
    assert [fact.source for fact in retriever.retrieve("X1 和 X1 Pro 的价格", top_k=1)] == ["kg"]
    only_faq = retriever.retrieve("X1 多少钱", filters={"source": "faq", "tag": "shipping"}, language="zh")
    assert [fact.id for fact in only_faq] == ["ship_zh"]
    only_kg = retriever.retrieve("X1 多少钱", filters={"source": "kg"})
    assert [fact.id for fact in only_kg] == ["kg:x1|price"]
    assert retriever.retrieve("X1 多少钱", top_k=0) == []


def test_nlu_entities_reach_the_graph(folder: Path) -> None:
    retriever = KnowledgeRetriever.from_folder(folder, HashingEmbedder())
    product = Entity(name="product", value="X1 Pro", start=0, end=0)
    facts = retriever.retrieve("how much is it?", entities=[product], top_k=1, language="en")
    assert facts[0].text == "The X1 Pro costs ¥5999."


def test_without_graph_matches_only_faq_answers(folder: Path) -> None:
    retriever = KnowledgeRetriever.from_folder(folder, HashingEmbedder())
    facts = retriever.retrieve("When do you ship?", top_k=2, language="en")
    assert [fact.id for fact in facts] == ["ship_en"]  # the only English entry


def test_missing_files_are_empty_parts(tmp_path: Path) -> None:
    embedder = HashingEmbedder()
    retriever = KnowledgeRetriever.from_folder(tmp_path / "no-knowledge", embedder, index_dir=tmp_path / "index")
    retriever.warm_up()
    assert retriever.retrieve("星耀X1 Pro多少钱") == []
    assert embedder.embedded == 0


def test_a_malformed_file_fails_when_the_project_is_read(folder: Path) -> None:
    (folder / "faq.csv").write_text(FAQ_CSV + "ship_zh,重复,,重复。,,zh\n", encoding="utf-8")
    with pytest.raises(ProjectError, match="duplicate FAQ id 'ship_zh'") as caught:
        KnowledgeRetriever.from_folder(folder, HashingEmbedder())
    assert caught.value.line == 5


@pytest.mark.skipif(not SHOP.is_dir(), reason="the demo project is not there")
def test_the_demo_project_loads_and_answers() -> None:
    retriever = KnowledgeRetriever.from_folder(SHOP, HashingEmbedder())
    facts = retriever.retrieve("星耀X1 Pro多少钱", top_k=3, language="zh")
    assert facts[0].source == "kg"
    assert facts[0].citation.startswith("kg:x1_pro|price|")
    assert retriever.faq.entries, "the demo has a faq.csv"
