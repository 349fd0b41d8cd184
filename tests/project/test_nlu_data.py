"""NLU data: entity annotations with offsets (English and Chinese), synonyms, regexes, lookups, errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bot.errors import ProjectError
from bot.project.nlu_data import parse_annotated, parse_nlu
from bot.project.yaml_io import Source, parse_yaml
from bot.types import Entity, NluData, RegexFeature


def _nlu(text: str) -> NluData:
    source = Source(Path("data/nlu.yml"))
    raw = parse_yaml(textwrap.dedent(text), path=source.path)
    assert isinstance(raw, dict)
    return parse_nlu(raw["nlu"], source=source)


def _annotation(name: str, value: str, start: int, end: int) -> Entity:
    return Entity(name, value, start, end, extractor="annotation")


def test_round_bracket_annotation_in_english() -> None:
    result = parse_annotated("where is my order [12345](order_id) from [Berlin](city)?")
    assert result.text == "where is my order 12345 from Berlin?"
    assert result.entities == (_annotation("order_id", "12345", 18, 23), _annotation("city", "Berlin", 29, 35))
    assert result.text[18:23] == "12345"
    assert result.synonyms == {}


def test_annotations_in_chinese_use_str_offsets() -> None:
    result = parse_annotated('我想查一下订单[A1024](order_id)的[物流]{"entity": "topic", "value": "shipping"}')
    assert result.text == "我想查一下订单A1024的物流"
    order, topic = result.entities
    assert (order.start, order.end, order.value) == (7, 12, "A1024")
    assert result.text[order.start : order.end] == "A1024"
    assert (topic.name, topic.value, topic.start, topic.end) == ("topic", "shipping", 13, 15)
    assert result.text[topic.start : topic.end] == "物流"
    assert result.synonyms == {"物流": "shipping"}


def test_legacy_synonym_shorthand_and_role_are_read() -> None:
    result = parse_annotated('fly from [NYC](city:New York) to [上海]{"entity": "city", "role": "to", "group": "1"}')
    assert result.text == "fly from NYC to 上海"
    new_york, shanghai = result.entities
    assert new_york == _annotation("city", "New York", 9, 12)
    assert (shanghai.value, shanghai.start, shanghai.end, shanghai.role, shanghai.group) == ("上海", 16, 18, "to", "1")
    assert result.synonyms == {"nyc": "New York"}


def test_list_of_entities_on_one_span() -> None:
    result = parse_annotated('[苹果][{"entity": "brand"}, {"entity": "fruit", "value": "apple"}]手机')
    assert result.text == "苹果手机"
    assert result.entities == (_annotation("brand", "苹果", 0, 2), _annotation("fruit", "apple", 0, 2))


def test_text_without_annotations_is_unchanged() -> None:
    assert parse_annotated("[not an annotation] and (neither)").text == "[not an annotation] and (neither)"


def test_bad_json_annotation_names_the_line() -> None:
    with pytest.raises(ProjectError, match="not valid JSON") as caught:
        _nlu("""
            nlu:
            - intent: inform
              examples: |
                - fine
                - to [Paris]{"entity": city}
            """)
    assert caught.value.path == "data/nlu.yml"
    assert caught.value.line == 6


def test_intent_examples_with_lines_synonyms_and_retrieval_names() -> None:
    data = _nlu("""
        nlu:
        - intent: check_order
          examples: |
            - 查订单[123](order_id)
            - my [parcel](item:package) is late
        - intent: faq/ask_price
          examples:
          - text: how much is it?
          - text: |
              多少钱
        - synonym: credit card
          examples: |
            - credit
            - 信用卡
        """)
    texts = [(e.text, e.intent, e.line) for e in data.examples]
    assert texts == [
        ("查订单123", "check_order", 5),
        ("my parcel is late", "check_order", 6),
        ("how much is it?", "faq/ask_price", 9),
        ("多少钱", "faq/ask_price", 10),
    ]
    assert data.examples[0].entities == (_annotation("order_id", "123", 3, 6),)
    assert data.synonyms == {"parcel": "package", "credit": "credit card", "信用卡": "credit card"}
    assert data.intents == ("check_order", "faq/ask_price")


def test_regex_and_lookup() -> None:
    data = _nlu(r"""
        nlu:
        - regex: order_id
          examples: |
            - [A-Z]\d{4}
            - \d{10}
        - lookup: city
          examples: |
            - 北京
            - Shanghai
        - lookup: city
          examples: |
            - Berlin
        """)
    assert data.regexes == (RegexFeature("order_id", r"[A-Z]\d{4}"), RegexFeature("order_id", r"\d{10}"))
    assert data.lookups == {"city": ("北京", "Shanghai", "Berlin")}
    assert data.examples == ()


def test_invalid_regex_names_the_line() -> None:
    with pytest.raises(ProjectError, match="not a valid regular expression") as caught:
        _nlu("""
            nlu:
            - regex: broken
              examples: |
                - (unclosed
            """)
    assert caught.value.line == 5


def test_conflicting_synonyms_are_refused() -> None:
    with pytest.raises(ProjectError, match="synonym of both") as caught:
        _nlu("""
            nlu:
            - intent: inform
              examples: |
                - in [NYC](city:New York)
                - in [nyc](city:Newark)
            """)
    assert caught.value.line == 6


def test_example_line_without_dash_is_refused() -> None:
    with pytest.raises(ProjectError, match="must start with `- `") as caught:
        _nlu("""
            nlu:
            - intent: greet
              examples: |
                - hi
                hello
            """)
    assert caught.value.line == 6


def test_item_without_kind_or_examples_is_refused() -> None:
    with pytest.raises(ProjectError, match="needs one of `intent:`"):
        _nlu("nlu:\n- examples: |\n    - hi\n")
    with pytest.raises(ProjectError, match="has no `examples:`") as caught:
        _nlu("nlu:\n- intent: greet\n")
    assert caught.value.line == 2
