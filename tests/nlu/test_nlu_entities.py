from __future__ import annotations

import pytest

from bot.errors import ProjectError
from bot.nlu.entities import GAZETTEER, LOOKUP, REGEX, EntityExtractor
from bot.types import Entity, NluData, NluExample, RegexFeature


def spans(entities: tuple[Entity, ...]) -> list[tuple[str, str, int, int, str]]:
    return [(e.name, e.value, e.start, e.end, e.extractor) for e in entities]


def test_regex_order_id_inside_chinese_text_without_spaces(nlu_data: NluData) -> None:
    text = "帮我查订单SO20240517到哪了"
    assert spans(EntityExtractor.from_data(nlu_data).extract(text)) == [
        ("order_id", "SO20240517", 5, 15, REGEX),
    ]


def test_regex_is_case_insensitive_and_keeps_the_surface_text(nlu_data: NluData) -> None:
    entities = EntityExtractor.from_data(nlu_data).extract("order so20240517 please")
    assert spans(entities) == [("order_id", "so20240517", 6, 16, REGEX)]


def test_regex_named_after_no_entity_is_only_a_feature(nlu_data: NluData) -> None:
    # data has RegexFeature("help", ...) but no entity called "help"
    assert EntityExtractor.from_data(nlu_data).extract("I need help") == ()


def test_domain_entity_names_enable_regexes_nobody_annotated() -> None:
    data = NluData(examples=(NluExample("hi", "greet"),), regexes=(RegexFeature("phone", r"1\d{10}"),))
    assert EntityExtractor.from_data(data).extract("电话13812345678") == ()
    entities = EntityExtractor.from_data(data, entity_names=["phone"]).extract("电话13812345678")
    assert spans(entities) == [("phone", "13812345678", 2, 13, REGEX)]


def test_lookup_product_inside_chinese_text_longest_first(nlu_data: NluData) -> None:
    extractor = EntityExtractor.from_data(nlu_data)
    assert spans(extractor.extract("我的X1 Pro坏了")) == [("product", "X1 Pro", 2, 8, LOOKUP)]
    assert spans(extractor.extract("我的x1坏了")) == [("product", "X1", 2, 4, LOOKUP)]


def test_lookup_respects_ascii_word_boundaries(nlu_data: NluData) -> None:
    extractor = EntityExtractor.from_data(nlu_data)
    assert extractor.extract("the AX12 router") == ()  # "X1" inside a longer word
    assert extractor.extract("my airbudsmax") == ()


def test_synonyms_map_to_the_canonical_value(nlu_data: NluData) -> None:
    extractor = EntityExtractor.from_data(nlu_data)
    assert spans(extractor.extract("我的耳机没声音")) == [("product", "headphones", 2, 4, LOOKUP)]
    assert spans(extractor.extract("return my AIRBUDS")) == [("product", "AirBuds", 10, 17, LOOKUP)]


def test_longest_span_wins_across_extractors(nlu_data: NluData) -> None:
    # the lookup has both 降噪耳机 and 耳机; the gazetteer only 耳机 (annotated in an example)
    entities = EntityExtractor.from_data(nlu_data).extract("降噪耳机坏了")
    assert spans(entities) == [("product", "降噪耳机", 0, 4, LOOKUP)]


def test_same_span_priority_is_regex_then_lookup_then_gazetteer() -> None:
    extractor = EntityExtractor(
        regexes=[("coupon", r"VIP\d{3}")],
        lookups={"plan": ["VIP100", "gold"]},
        gazetteer={"vip100": ("tier", "VIP100"), "gold": ("tier", "Gold"), "silver": ("tier", "Silver")},
    )
    found = spans(extractor.extract("VIP100 or gold or silver"))
    assert found == [
        ("coupon", "VIP100", 0, 6, REGEX),
        ("plan", "gold", 10, 14, LOOKUP),
        ("tier", "Silver", 18, 24, GAZETTEER),
    ]


def test_longer_gazetteer_span_beats_shorter_regex() -> None:
    extractor = EntityExtractor(regexes=[("model", r"X\d")], gazetteer={"x1 pro max": ("product", "X1 Pro Max")})
    assert spans(extractor.extract("X1 Pro Max")) == [("product", "X1 Pro Max", 0, 10, GAZETTEER)]


def test_gazetteer_from_annotations_finds_values_in_new_sentences() -> None:
    text = "我要买iPhone 15"
    data = NluData(examples=(NluExample(text, "buy", (Entity("product", "iPhone 15", 3, 12),)),))
    entities = EntityExtractor.from_data(data).extract("IPHONE 15 有货吗")
    assert spans(entities) == [("product", "iPhone 15", 0, 9, GAZETTEER)]
    assert entities[0].confidence < 1.0


def test_extractor_roundtrips_through_json(nlu_data: NluData) -> None:
    extractor = EntityExtractor.from_data(nlu_data)
    restored = EntityExtractor.from_json(extractor.to_json())
    text = "我的X1 Pro坏了，订单SO12345678，earphones也不行"
    assert restored.extract(text) == extractor.extract(text)
    assert len(restored.extract(text)) == 3


def test_invalid_regex_names_the_feature() -> None:
    with pytest.raises(ProjectError, match="order_id"):
        EntityExtractor(regexes=[("order_id", "SO(\\d{8}")])
