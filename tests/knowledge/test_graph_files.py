"""Loading the graph files: graph.json next to the CSVs, and bad rows or entries skipped and reported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.errors import ProjectError
from knowledge.graph import load_graph
from knowledge.problems import Problem
from tests.knowledge.helpers import ENTITIES, GRAPH, RELATIONS, write_graph

CARDS: dict[str, Any] = {
    "entities": [
        {
            "id": "card_platinum",
            "type": "card",
            "name_zh": "白金卡",
            "name_en": "Platinum Card",
            "aliases": ["白金信用卡", "platinum"],
            "attributes": {"annual_fee": 3600, "cashback": "1%"},
        },
        {
            "id": "card_diamond",
            "type": "card",
            "name_zh": "钻石卡",
            "name_en": "Diamond Card",
            "aliases": "钻石信用卡|diamond",
            "attributes": {"annual_fee": "8800", "perks": ["机场贵宾厅", "Airport lounge"]},
        },
    ],
    "relations": [
        {
            "id": "annual_fee",
            "name_zh": "年费",
            "name_en": "annual fee",
            "keywords_zh": ["年费", "年费多少"],
            "keywords_en": ["annual fee", "yearly fee"],
            "template_zh": "{subject}的年费是 ¥{object}。",
            "template_en": "The {subject} has an annual fee of ¥{object}.",
        },
        {"id": "cashback", "name_zh": "返现", "name_en": "cashback"},
        {"id": "perks", "name_zh": "权益", "name_en": "perks"},
        {"id": "upgrade_to", "name_zh": "升级卡", "name_en": "upgrade", "keywords_zh": ["升级"]},
    ],
    "triples": [
        ["card_platinum", "upgrade_to", "card_diamond"],
        {"subject": "card_diamond", "relation": "cashback", "object": "2%"},
    ],
}


def write_json(folder: Path, document: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "graph.json").write_text(json.dumps(document, ensure_ascii=False, indent=1), encoding="utf-8")
    return folder


def with_cards(**changes: Any) -> dict[str, Any]:
    """CARDS with whole sections replaced or, for `extra_<section>`, items appended."""
    document = json.loads(json.dumps(CARDS))
    for key, value in changes.items():
        if key.startswith("extra_"):
            document[key.removeprefix("extra_")].extend(value)
        else:
            document[key] = value
    return document


def test_json_entities_aliases_attributes_and_templates(tmp_path: Path) -> None:
    kg = load_graph(write_json(tmp_path, CARDS))
    platinum = kg.entities["card_platinum"]
    assert (platinum.type, platinum.name_zh, platinum.name_en) == ("card", "白金卡", "Platinum Card")
    assert platinum.aliases == ("白金信用卡", "platinum")
    assert kg.entities["card_diamond"].aliases == ("钻石信用卡", "diamond")  # a "|" string works too
    assert kg.objects("card_platinum", "annual_fee") == ("3600",)  # a JSON number becomes its text
    assert kg.objects("card_diamond", "perks") == ("机场贵宾厅", "Airport lounge")  # a list: several objects
    assert kg.objects("card_platinum", "upgrade_to") == ("card_diamond",)
    assert kg.objects("card_diamond", "cashback") == ("2%",)
    fee = kg.relations["annual_fee"]
    assert fee.keywords_en == ("annual fee", "yearly fee")
    assert fee.template("zh") == "{subject}的年费是 ¥{object}。"
    assert kg.render("card_diamond", "annual_fee", "en") == "The Diamond Card has an annual fee of ¥8800."
    assert [item.entity_id for item in kg.link("白金信用卡和diamond")] == ["card_platinum", "card_diamond"]


def test_json_merges_with_the_csv_files(tmp_path: Path) -> None:
    write_graph(tmp_path)
    document = {
        "entities": [
            {"id": "charger65", "name_zh": "65W 快充头", "name_en": "65W Charger", "attributes": {"price": 129}}
        ],
        "relations": [{"id": "charger", "name_zh": "充电器", "name_en": "charger"}],
        "triples": [["x1_pro", "charger", "charger65"]],
    }
    kg = load_graph(write_json(tmp_path, document))
    assert len(kg.entities) == 7
    assert kg.objects("x1_pro", "price") == ("5999",)
    assert kg.objects("x1_pro", "charger") == ("charger65",)  # a CSV subject, a JSON relation and object
    assert kg.objects("charger65", "price") == ("129",)  # a JSON attribute of a CSV relation


def test_a_json_syntax_error_names_the_line_even_with_a_problems_list(tmp_path: Path) -> None:
    (tmp_path / "graph.json").write_text('{"entities": [\n  {"id": "a", "name_zh": "甲"},\n  {"id": }\n]}\n')
    problems: list[Problem] = []
    with pytest.raises(ProjectError, match="not valid JSON") as caught:
        load_graph(tmp_path, problems)
    assert (caught.value.path, caught.value.line) == (str(tmp_path / "graph.json"), 3)
    assert problems == []


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        (["not", "an", "object"], "the file must hold one object"),
        (with_cards(entities={"id": "x"}), "entities must be a list, not an object"),
        (with_cards(extra_entities=[{"id": "", "name_zh": "金卡"}]), "entities[2].id is empty"),
        (with_cards(extra_entities=[{"id": "gold"}]), "entities[2].name_zh and entities[2].name_en are empty"),
        (with_cards(extra_entities=[{"id": "gold", "name_en": "Gold", "alias": []}]), "unknown key(s) alias"),
        (with_cards(extra_entities=[{"id": "gold", "name_en": "Gold", "aliases": [1]}]), "must be a list of strings"),
        (with_cards(extra_entities=[{"id": "card_diamond", "name_en": "Gold"}]), "entities[2]: duplicate entity id"),
        (with_cards(extra_entities=[{"id": "gold", "name_zh": "白金卡"}]), "'白金卡' already names entity"),
        (with_cards(extra_relations=[{"id": "fee", "template_en": "{price}"}]), "relations[4].template_en uses"),
        (with_cards(extra_relations=[{"id": "fee", "question_zh": "年费？"}]), "relations[4].question_zh does not"),
        (with_cards(extra_triples=[["card_platinum", "cashback"]]), "triples[2] has 2 items"),
        (with_cards(extra_triples=[["card_gold", "cashback", "3%"]]), "triples[2]: unknown subject 'card_gold'"),
        (with_cards(extra_triples=[["card_platinum", "cashback", None]]), "triples[2].object must be a string"),
        (
            with_cards(extra_entities=[{"id": "g", "name_en": "G", "attributes": {"fee": 1}}]),
            "unknown relation id 'fee'",
        ),
        (with_cards(extras=[]), "unknown top-level key 'extras'"),
    ],
)
def test_json_errors_name_the_json_path(tmp_path: Path, document: Any, fragment: str) -> None:
    write_json(tmp_path, document)
    with pytest.raises(ProjectError) as caught:
        load_graph(tmp_path)
    assert caught.value.path == str(tmp_path / "graph.json")
    assert fragment in str(caught.value)


def test_bad_json_entries_are_skipped_and_reported(tmp_path: Path) -> None:
    document = with_cards(
        extra_entities=[
            {"id": "card_platinum", "name_zh": "另一张卡"},  # entities[2]: duplicate, the first wins
            {"id": "card_gold", "name_zh": "金卡", "attributes": {"annual_fee": 800, "colour": "gold"}},
        ],
        extra_triples=[["card_gold", "upgrade_to", "card_platinum"], ["card_gold", "downgrade_to", "card_none"]],
    )
    problems: list[Problem] = []
    kg = load_graph(write_json(tmp_path, document), problems)
    assert kg.entities["card_platinum"].name_zh == "白金卡"
    assert kg.objects("card_gold", "annual_fee") == ("800",)  # the rest of the entry still loads
    assert kg.objects("card_gold", "upgrade_to") == ("card_platinum",)
    assert [(problem.line, problem.message.split(":")[0]) for problem in problems] == [
        (0, "entities[2]"),
        (0, "entities[3].attributes.colour"),
        (0, "triples[3]"),
    ]
    assert "unknown relation id 'downgrade_to'" in problems[2].message


def test_bad_csv_rows_are_skipped_and_reported_with_their_lines(tmp_path: Path) -> None:
    entities = ENTITIES + (
        ",product,无编号,No Id,\n"  # 8: no id
        "x9,product,,,\n"  # 9: no name
        "x1,product,另一个,Another,\n"  # 10: duplicate id
        "x8,product,星耀X8,X8,X1手机\n"  # 11: an alias of x1
        "x7,product,星耀X7,X7,X7 Pro,X7 Max\n"  # 12: an unquoted comma makes one field too many
    )
    relations = RELATIONS + "weight,重量,weight,重量,weight,{subject}重{weight},\n"  # 6: unknown placeholder
    graph = GRAPH + "x2,price,1\nx1,weight,172 g\nx1,colors,\nx1,colors,c_blue\nbuds,colors,Midnight\n"
    write_graph(tmp_path, entities=entities, relations=relations, graph=graph)
    problems: list[Problem] = []
    kg = load_graph(tmp_path, problems)
    assert list(kg.entities) == ["x1_pro", "x1", "buds", "c_black", "c_white", "c_blue"]
    assert kg.entities["x1"].name_zh == "星耀X1"  # the first of two duplicates wins
    assert "weight" not in kg.relations
    assert kg.objects("buds", "colors") == ("Midnight",)  # a literal object is fine
    assert len(kg.triples) == 10  # the 9 good rows, the repeat once, and the literal
    assert [(Path(problem.path).name, problem.line) for problem in problems] == [
        ("entities.csv", 8),
        ("entities.csv", 9),
        ("entities.csv", 10),
        ("entities.csv", 11),
        ("entities.csv", 12),
        ("relations.csv", 6),
        ("graph.csv", 11),
        ("graph.csv", 12),
        ("graph.csv", 13),
    ]
    messages = [problem.message for problem in problems]
    assert "quote a field that contains a comma" in messages[4]
    assert "duplicate entity id 'x1' (first on line 3)" in messages[2]
    assert "'X1手机' already names entity 'x1' (line 3)" in messages[3]
    assert "unknown subject 'x2'" in messages[6]
    assert "unknown relation id 'weight'" in messages[7]
    assert "empty 'object'" in messages[8]


def test_duplicates_across_csv_and_json_keep_the_csv_entry(tmp_path: Path) -> None:
    write_graph(tmp_path)
    document = {"entities": [{"id": "x1", "name_zh": "冒牌X1", "name_en": "Fake X1", "attributes": {"price": 1}}]}
    problems: list[Problem] = []
    kg = load_graph(write_json(tmp_path, document), problems)
    assert kg.entities["x1"].name_en == "X1"
    assert kg.objects("x1", "price") == ("3999",)  # the skipped entity's attributes go with it
    (problem,) = problems
    assert problem.message == "entities[0]: duplicate entity id 'x1' (first on line 3 of entities.csv)"
    with pytest.raises(ProjectError, match="duplicate entity id 'x1'"):
        load_graph(tmp_path)


def test_a_broken_csv_header_raises_even_with_a_problems_list(tmp_path: Path) -> None:
    write_graph(tmp_path, graph="subject,relation\nx1,price\n")
    with pytest.raises(ProjectError, match=r"missing column\(s\) object"):
        load_graph(tmp_path, [])
