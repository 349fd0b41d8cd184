"""Knowledge-graph questions as customers would ask them: the relation's own question, or a generic one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.errors import ProjectError
from bot.recommend.catalog import catalog_of
from knowledge.graph import load_graph
from tests.conftest import SHOP
from tests.knowledge.helpers import RELATIONS, write_graph


def test_the_demo_shops_graph_questions_read_as_its_relations_write_them() -> None:
    catalog = catalog_of({}, load_graph(SHOP / "knowledge"))
    asked = {(q.id, q.language): q.text for q in catalog}
    assert asked[("kg:x1_pro|warranty_months", "en")] == "How long is the warranty on the X1 Pro?"
    assert asked[("kg:x1_pro|warranty_months", "zh")] == "星耀X1 Pro的保修期是多久？"
    assert asked[("kg:x1_pro|stock", "en")] == "Do you have the X1 Pro in stock?"
    assert asked[("kg:x1_pro|stock", "zh")] == "星耀X1 Pro有货吗？"
    assert asked[("kg:nebula_buds|colors", "en")] == "Which colors are available for the Nebula Buds?"
    assert asked[("kg:comet_laptop|price", "zh")] == "彗星笔记本 14多少钱？"
    assert catalog.item_of("do you have the x1 pro in stock?", "en") == "kg:x1_pro|stock", "the fact id is the item"


def test_each_demo_graph_question_is_answered_by_its_own_fact() -> None:
    # a recommended question is sent back as the customer's message when clicked: it must find its fact
    graph = load_graph(SHOP / "knowledge")
    for question in catalog_of({}, graph):
        assert [f.id for f in graph.answer(question.text, question.language)] == [question.id], question.text


def test_a_relation_without_a_question_gets_a_generic_one(tmp_path: Path) -> None:
    extra = "usb,接口,USB ports,接口,usb,,,,\nwarranty,保修期,Warranty,保修,warranty,,,,\n"
    relations = RELATIONS.replace("template_en\n", "template_en,question_zh,question_en\n", 1) + extra
    graph = "subject,relation,object\nx1_pro,usb,USB-C\nx1_pro,warranty,12\nx1_pro,price,5999\n"
    catalog = catalog_of({}, load_graph(write_graph(tmp_path, relations=relations, graph=graph)))
    asked = {(q.id, q.language): q.text for q in catalog}
    assert asked[("kg:x1_pro|price", "en")] == "What is the price of the X1 Pro?"
    assert asked[("kg:x1_pro|price", "zh")] == "星耀X1 Pro的价格是什么？"
    assert asked[("kg:x1_pro|warranty", "en")] == "What is the warranty of the X1 Pro?"  # mid-sentence: lower case
    assert asked[("kg:x1_pro|usb", "en")] == "What is the USB ports of the X1 Pro?"  # but an acronym stays


def test_a_declared_question_may_name_the_relation_as_written(tmp_path: Path) -> None:
    header = "id,name_zh,name_en,question_zh,question_en\n"
    relations = header + "price,价格,Price,{subject}的{relation}？,{relation} of {subject}?\n"
    write_graph(tmp_path, relations=relations, graph="subject,relation,object\nx1,price,3999\n")
    asked = {q.language: q.text for q in catalog_of({}, load_graph(tmp_path))}
    assert asked == {"zh": "星耀X1的价格？", "en": "Price of X1?"}


@pytest.mark.parametrize(
    ("question", "fragment"),
    [
        ("What does it cost?", "question_en does not name the subject; write {subject} where its name goes"),
        ("How much is {subject}? {object}", "question_en uses unknown placeholder(s) object"),
        ("How much is {subject", "question_en is not a valid template"),
    ],
)
def test_a_bad_question_template_is_an_error_naming_the_file_and_line(
    tmp_path: Path, question: str, fragment: str
) -> None:
    relations = f"id,name_zh,name_en,question_zh,question_en\nprice,价格,price,{{subject}}多少钱？,{question}\n"
    write_graph(tmp_path, relations=relations)
    with pytest.raises(ProjectError) as caught:
        load_graph(tmp_path)
    assert (caught.value.path, caught.value.line) == (str(tmp_path / "relations.csv"), 2)
    assert fragment in str(caught.value)


def test_graph_json_declares_questions_too(tmp_path: Path) -> None:
    document = {
        "entities": [{"id": "gold", "name_zh": "金卡", "name_en": "Gold Card", "attributes": {"fee": 300}}],
        "relations": [{"id": "fee", "name_en": "annual fee", "question_en": "How much is the {subject}'s fee?"}],
    }
    (tmp_path / "graph.json").write_text(json.dumps(document), encoding="utf-8")
    asked = {q.language: q.text for q in catalog_of({}, load_graph(tmp_path))}
    assert asked == {"en": "How much is the Gold Card's fee?", "zh": "金卡的annual fee是什么？"}
    document["relations"][0]["question_zh"] = "年费多少？"
    (tmp_path / "graph.json").write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ProjectError, match=r"relations\[0\]\.question_zh does not name the subject") as caught:
        load_graph(tmp_path)
    assert caught.value.path == str(tmp_path / "graph.json")
