"""KnowledgeGraph: loading and validating the three files, entity linking, relations, rendered answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import ProjectError
from bot.types import Entity
from knowledge.graph import KnowledgeGraph, load_graph
from knowledge.problems import Problem
from tests.knowledge.helpers import ENTITIES, GRAPH, RELATIONS, write_graph
from tests.knowledge.test_graph_files import CARDS, with_cards, write_json

SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop" / "knowledge"
# The X1 Pro's charger is an entity with a price of its own: "X1 Pro 的充电器多少钱" takes two hops.
CHARGER = {
    "entities": ENTITIES + "charger65,accessory,65W 快充头,65W Charger,快充头\n",
    "relations": RELATIONS
    + "charger,充电器,charger,充电器|充电头,charger|power adapter,"
    + "{subject}配套{object}。,The {subject} ships with the {object}.\n",
    "graph": GRAPH + "x1_pro,charger,charger65\ncharger65,price,129\n",
}


@pytest.fixture
def kg(tmp_path: Path) -> KnowledgeGraph:
    return load_graph(write_graph(tmp_path))


@pytest.fixture
def charger_kg(tmp_path: Path) -> KnowledgeGraph:
    return load_graph(write_graph(tmp_path, **CHARGER))


@pytest.fixture
def cards(tmp_path: Path) -> KnowledgeGraph:
    return load_graph(write_json(tmp_path, CARDS))


def test_loads_the_three_files(kg: KnowledgeGraph) -> None:
    assert list(kg.entities) == ["x1_pro", "x1", "buds", "c_black", "c_white", "c_blue"]
    assert kg.entities["x1_pro"].aliases == ("X1Pro", "星耀x1pro", "Xingchen X1 Pro")
    assert kg.relations["price"].keywords_zh == ("多少钱", "价钱", "售价")
    assert len(kg.triples) == 9
    assert kg.objects("x1_pro", "colors") == ("c_black", "c_white")


def test_missing_folder_is_an_empty_graph(tmp_path: Path) -> None:
    graph = load_graph(tmp_path / "none")
    assert not graph
    assert graph.answer("星耀X1 Pro多少钱") == []


def test_links_inside_chinese_text(kg: KnowledgeGraph) -> None:
    (linked,) = kg.link("星耀X1 Pro多少钱")
    assert (linked.entity_id, linked.type, linked.surface, linked.start, linked.end) == (
        "x1_pro",
        "product",
        "星耀X1 Pro",
        0,
        8,
    )
    assert [item.entity_id for item in kg.link("星云蓝牙耳机和星耀x1pro，还有X1手机")] == ["buds", "x1_pro", "x1"]


def test_links_english_case_insensitively_longest_first(kg: KnowledgeGraph) -> None:
    assert [(item.entity_id, item.surface) for item in kg.link("how much is the x1 pro")] == [("x1_pro", "x1 pro")]
    assert [item.entity_id for item in kg.link("X1 or X1PRO in BLACK?")] == ["x1", "x1_pro", "c_black"]
    assert kg.link("the x10 and xbox") == []  # no match cutting through a number or a word


def test_detects_relations_in_both_languages(kg: KnowledgeGraph) -> None:
    assert kg.detect_relations("星耀X1 Pro多少钱", "zh") == ["price"]
    assert kg.detect_relations("what colours and how much", "en") == ["colors", "price"]
    assert kg.detect_relations("星耀X1 Pro的battery", "zh") == ["battery"]  # falls back to English keywords
    assert kg.detect_relations("电池续航", "zh") == ["battery"]  # the relation's name counts as a keyword
    assert kg.detect_relations("hello", "en") == []


def test_answers_in_chinese_with_citation(kg: KnowledgeGraph) -> None:
    (fact,) = kg.answer("星耀X1 Pro多少钱", "zh")
    assert fact.text == "星耀X1 Pro的价格是 ¥5999。"
    assert (fact.id, fact.source, fact.citation, fact.language) == (
        "kg:x1_pro|price",
        "kg",
        "kg:x1_pro|price|5999",
        "zh",
    )
    assert fact.exact
    assert fact.score == 1.0


def test_answers_in_english_and_joins_several_objects(kg: KnowledgeGraph) -> None:
    (price,) = kg.answer("how much is the x1 pro", "en")
    assert price.text == "The X1 Pro costs ¥5999."
    (colors,) = kg.answer("What colors does the X1 Pro come in?", "en")
    assert colors.text == "The X1 Pro comes in Black, White."
    assert colors.citation == "kg:x1_pro|colors|c_black;c_white"
    (colors_zh,) = kg.answer("X1Pro有什么颜色", "zh")
    assert colors_zh.text == "星耀X1 Pro有黑色、白色可选。"


def test_entity_objects_render_by_name_and_default_templates(kg: KnowledgeGraph) -> None:
    (fact,) = kg.answer("星云耳机兼容X1吗", "zh")
    assert fact.text == "星云耳机兼容星耀X1 Pro、星耀X1。"
    (battery,) = kg.answer("X1 Pro battery life?", "en")  # the row has no templates: the defaults apply
    assert battery.text == "The battery of X1 Pro is 5000 mAh."
    assert kg.answer("X1 Pro电池多大", "zh")[0].text == "星耀X1 Pro的电池是5000 mAh。"


def test_several_subjects_and_relations_and_guessed_language(kg: KnowledgeGraph) -> None:
    facts = kg.answer("X1 和 X1 Pro 的价格和颜色")  # no language given: Chinese is guessed
    assert [fact.id for fact in facts] == ["kg:x1|price", "kg:x1|colors", "kg:x1_pro|price", "kg:x1_pro|colors"]
    assert {fact.language for fact in facts} == {"zh"}


def test_overview_when_no_relation_is_asked(kg: KnowledgeGraph) -> None:
    (fact,) = kg.answer("tell me about the X1 Pro", "en")
    assert fact.text == "X1 Pro — price: 5999; colors: Black, White; battery: 5000 mAh"
    assert (fact.exact, fact.score, fact.citation) == (False, 0.5, "kg:x1_pro")
    (zh,) = kg.answer("介绍一下星耀X1", "zh")
    assert zh.text == "星耀X1 — 价格：3999；颜色：蓝色"


def test_colors_are_not_subjects(kg: KnowledgeGraph) -> None:
    assert kg.answer("黑色的多少钱", "zh") == []


def test_nlu_entities_link_subjects(kg: KnowledgeGraph) -> None:
    by_name = Entity(name="product", value="Nebula Buds", start=0, end=0)
    (fact,) = kg.answer("how much is it?", "en", entities=[by_name])
    assert fact.citation == "kg:buds|price|699"
    by_alias = Entity(name="product", value="星云", start=0, end=0)
    assert kg.answer("多少钱", "zh", entities=[by_alias])[0].text == "星云耳机的价格是 ¥699。"
    by_id = Entity(name="product", value="x1", start=0, end=0)
    assert kg.answer("多少钱", "zh", entities=[by_id])[0].id == "kg:x1|price"
    unknown = Entity(name="product", value="Galaxy S99", start=0, end=0)
    assert kg.answer("how much is it?", "en", entities=[unknown]) == []


@pytest.mark.parametrize(
    ("file", "text", "line", "fragment"),
    [
        ("graph", GRAPH + "x1,weight,172 g\n", 11, "unknown relation id 'weight'"),
        ("graph", "subject,relation,object\nx2,price,1\n", 2, "unknown subject 'x2'"),
        ("graph", "subject,relation\nx1,price\n", 1, "missing column(s) object"),
        ("graph", "subject,relation,object\nx1,price,\n", 2, "empty 'object'"),
        ("entities", ENTITIES + "x9,product,星耀X9,X9,X1手机\n", 8, "'X1手机' already names entity 'x1' (line 3)"),
        ("entities", ENTITIES + "x1,product,另一个,Another,\n", 8, "duplicate entity id 'x1'"),
        ("entities", ENTITIES + "x9,product,,,\n", 8, "has no name"),
        (
            "relations",
            RELATIONS + "weight,重量,weight,重量,weight,{subject}重{weight},\n",
            6,
            "unknown placeholder(s) weight",
        ),
        ("relations", RELATIONS + "weight,重量,weight,重量,weight,{subject,\n", 6, "not a valid template"),
        ("relations", "id,name_zh,keyword_zh\nprice,价格,多少钱\n", 1, "did you mean 'keywords_zh'"),
        ("relations", "id,name_en,question_en\nprice,price,How much?\n", 2, "question_en does not name the subject"),
    ],
)
def test_malformed_files_raise_with_the_line(tmp_path: Path, file: str, text: str, line: int, fragment: str) -> None:
    write_graph(tmp_path, **{file: text})
    with pytest.raises(ProjectError) as caught:
        load_graph(tmp_path)
    assert caught.value.path == str(tmp_path / f"{file}.csv")
    assert caught.value.line == line
    assert fragment in str(caught.value)


def test_json_one_hop_questions_in_both_languages(cards: KnowledgeGraph) -> None:
    (zh,) = cards.answer("白金卡年费多少")
    assert (zh.text, zh.citation, zh.language) == ("白金卡的年费是 ¥3600。", "kg:card_platinum|annual_fee|3600", "zh")
    (en,) = cards.answer("what's the annual fee of the platinum card")
    assert (en.text, en.citation, en.language) == (
        "The Platinum Card has an annual fee of ¥3600.",
        "kg:card_platinum|annual_fee|3600",
        "en",
    )


def test_two_hops_in_chinese_cite_both_triples(charger_kg: KnowledgeGraph) -> None:
    (fact,) = charger_kg.answer("X1 Pro 的充电器多少钱", "zh")  # not also the phone's own price
    assert fact.text == "星耀X1 Pro的充电器（65W 快充头）的价格是 ¥129。"
    assert (fact.id, fact.citation) == (
        "kg:x1_pro|charger|price",
        "kg:x1_pro|charger|charger65 ; kg:charger65|price|129",
    )
    assert (fact.source, fact.score, fact.exact, fact.language) == ("kg", 1.0, True, "zh")


def test_two_hops_in_english_ask_for_the_first_hop_last(charger_kg: KnowledgeGraph) -> None:
    (fact,) = charger_kg.answer("how much is the charger of the X1 Pro")
    assert fact.text == "The charger of the X1 Pro (65W Charger) costs ¥129."
    assert fact.citation == "kg:x1_pro|charger|charger65 ; kg:charger65|price|129"
    assert fact.language == "en"


def test_two_hops_from_json_in_both_languages(cards: KnowledgeGraph) -> None:
    (zh,) = cards.answer("白金卡升级后的卡年费多少")
    assert zh.text == "白金卡的升级卡（钻石卡）的年费是 ¥8800。"
    assert zh.citation == "kg:card_platinum|upgrade_to|card_diamond ; kg:card_diamond|annual_fee|8800"
    (en,) = cards.answer("what's the annual fee of the card the platinum card upgrades to")
    assert en.text == "The upgrade of the Platinum Card (Diamond Card) has an annual fee of ¥8800."
    assert en.id == "kg:card_platinum|upgrade_to|annual_fee"


def test_text_order_decides_the_first_hop_when_both_paths_exist(tmp_path: Path) -> None:
    document = with_cards(
        extra_entities=[{"id": "card_gold", "name_zh": "金卡", "name_en": "Gold Card"}],
        extra_relations=[{"id": "downgrade_to", "name_zh": "降级卡", "name_en": "downgrade", "keywords_zh": ["降级"]}],
        extra_triples=[
            ["card_platinum", "downgrade_to", "card_gold"],
            ["card_diamond", "downgrade_to", "card_platinum"],
            ["card_gold", "upgrade_to", "card_platinum"],
        ],
    )
    kg = load_graph(write_json(tmp_path, document))
    (up_first,) = kg.answer("白金卡升级后再降级是什么卡")
    assert up_first.text == "白金卡的升级卡（钻石卡）的降级卡是白金卡。"
    (down_first,) = kg.answer("白金卡降级后再升级是什么卡")
    assert down_first.citation == "kg:card_platinum|downgrade_to|card_gold ; kg:card_gold|upgrade_to|card_platinum"
    (english,) = kg.answer("what is the downgrade of the upgrade of the platinum card")
    assert english.id == "kg:card_platinum|upgrade_to|downgrade_to"


def test_one_hop_questions_stay_one_hop(charger_kg: KnowledgeGraph) -> None:
    (charger,) = charger_kg.answer("X1 Pro 配的充电器是哪个", "zh")
    assert (charger.id, charger.text) == ("kg:x1_pro|charger", "星耀X1 Pro配套65W 快充头。")
    (price,) = charger_kg.answer("星耀X1 Pro多少钱", "zh")
    assert price.citation == "kg:x1_pro|price|5999"
    (power,) = charger_kg.answer("which power adapter does the X1 Pro use?", "en")
    assert power.text == "The X1 Pro ships with the 65W Charger."


def test_no_two_hops_through_a_literal(charger_kg: KnowledgeGraph) -> None:
    facts = charger_kg.answer("X1 Pro 的电池多少钱", "zh")  # the battery is "5000 mAh", not an entity
    assert [fact.id for fact in facts] == ["kg:x1_pro|battery", "kg:x1_pro|price"]


def test_naming_the_accessory_asks_about_it_directly(charger_kg: KnowledgeGraph) -> None:
    (fact,) = charger_kg.answer("快充头多少钱", "zh")
    assert fact.citation == "kg:charger65|price|129"
    facts = charger_kg.answer("X1 Pro 的充电器快充头多少钱", "zh")
    assert "kg:charger65|price" in [fact.id for fact in facts]
    assert all(fact.id.count("|") == 1 for fact in facts)  # one-hop facts only


def test_nlu_entities_start_two_hop_questions(charger_kg: KnowledgeGraph) -> None:
    phone = Entity(name="product", value="星耀x1pro", start=0, end=0)
    (fact,) = charger_kg.answer("how much is its charger?", "en", entities=[phone])
    assert fact.citation == "kg:x1_pro|charger|charger65 ; kg:charger65|price|129"


@pytest.mark.skipif(not SHOP.is_dir(), reason="the demo project is not there")
def test_the_demo_graph_answers_two_hop_questions() -> None:
    problems: list[Problem] = []
    kg = load_graph(SHOP, problems)
    assert problems == []
    (zh,) = kg.answer("X1 Pro 的充电器多少钱")  # "充电器" also names the charger category
    assert zh.citation == "kg:x1_pro|charger|nova_charger ; kg:nova_charger|price|129"
    (en,) = kg.answer("how much is the charger of the Comet Laptop")
    assert en.text == "The charger of the Comet Laptop 14 (Nova Charger 65W) costs ¥129."
