"""The joint model's entity tagger, CRF, calibration, entity merging and hostile input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bot.nlu.crf import Crf, bio_tags
from bot.nlu.model import fit_temperature
from bot.nlu.pipeline import TrainedNlu, merge_entities, train_nlu
from bot.nlu.text import clean_text
from bot.nlu.tokens import tokenize
from bot.nlu.training import calibration_split
from bot.types import Entity, NluData, NluExample

CITIES_EN = ["Beijing", "Shanghai", "Shenzhen", "Chengdu", "Hangzhou", "Wuhan", "Nanjing", "Xiamen"]
CITIES_ZH = ["北京", "上海", "深圳", "成都", "杭州", "武汉", "南京", "厦门"]
TEMPLATES_EN = ["ship it to {}", "can you deliver to {}", "I live in {}", "send my parcel to {} please"]
TEMPLATES_ZH = ["寄到{}", "能送到{}吗", "我在{}", "请把包裹发到{}"]
GREETINGS = ["hello", "hi there", "good morning", "hey", "你好", "您好", "早上好", "在吗"]


def _examples() -> list[NluExample]:
    out = [NluExample(text, "greet") for text in GREETINGS * 2]
    for cities, templates in ((CITIES_EN, TEMPLATES_EN), (CITIES_ZH, TEMPLATES_ZH)):
        for i, city in enumerate(cities):
            for template in templates[i % 2 :: 2] if i % 3 else templates:
                text = template.format(city)
                start = text.index(city)
                out.append(NluExample(text, "delivery_city", (Entity("city", city, start, start + len(city)),)))
    return out


@pytest.fixture(scope="module")
def city_nlu(tmp_path_factory: pytest.TempPathFactory) -> TrainedNlu:
    folder = tmp_path_factory.mktemp("city-nlu")
    train_nlu(NluData(tuple(_examples())), folder, epochs=30, progress=False, entity_names=["city"])
    nlu = TrainedNlu(folder, rule_dimensions=())
    nlu.warm_up()
    return nlu


@pytest.mark.parametrize(
    ("text", "city"),
    [("can you deliver to Guangzhou", "Guangzhou"), ("ship it to Tianjin", "Tianjin"), ("能送到广州吗", "广州")],
)
def test_the_tagger_finds_entity_values_it_never_saw(city_nlu: TrainedNlu, text: str, city: str) -> None:
    result = city_nlu.parse_text(text)
    assert result.intent == "delivery_city"
    found = [(e.name, e.value, e.extractor) for e in result.entities]
    assert ("city", city, "kefu_tagger") in found
    entity = next(e for e in result.entities if e.name == "city")
    assert text[entity.start : entity.end] == city
    assert 0 < entity.confidence <= 1


def test_crf_decoding_always_gives_valid_bio() -> None:
    tags = bio_tags(["city", "order_id"])
    crf = Crf(tags)
    generator = torch.Generator().manual_seed(0)
    for _ in range(50):
        path = [tags[i] for i in crf.decode(torch.randn(7, len(tags), generator=generator) * 5)]
        for before, tag in zip(["O", *path], path, strict=False):
            if tag.startswith("I-"):
                assert before in (f"B-{tag[2:]}", tag), path


def test_crf_likelihood_prefers_the_true_tags() -> None:
    tags = bio_tags(["city"])
    emissions = torch.tensor([[[3.0, 0, 0], [0, 3.0, 0], [0, 0, 3.0], [3.0, 0, 0]]])
    mask = torch.ones(1, 4, dtype=torch.bool)
    crf = Crf(tags)
    good = crf.nll(emissions, torch.tensor([[0, 1, 2, 0]]), mask)
    bad = crf.nll(emissions, torch.tensor([[0, 0, 0, 0]]), mask)
    assert 0 < good < bad
    assert crf.decode(emissions[0]) == [0, 1, 2, 0]


def test_temperature_undoes_overconfidence() -> None:
    generator = torch.Generator().manual_seed(1)
    true_logits = torch.randn(4000, 5, generator=generator) * 2
    targets = torch.multinomial(torch.softmax(true_logits, dim=1), 1, generator=generator).squeeze(1)
    assert fit_temperature(true_logits * 3, targets) == pytest.approx(3.0, rel=0.15)
    assert fit_temperature(true_logits, targets) == pytest.approx(1.0, rel=0.15)


def test_calibration_holds_out_a_tenth_of_each_intent() -> None:
    examples = [NluExample(f"a{i}", "a") for i in range(40)] + [NluExample(f"b{i}", "b") for i in range(3)]
    train, held = calibration_split(examples, seed=0)
    assert len(held) == 4 and all(examples[i].intent == "a" for i in held)
    assert sorted(train + held) == list(range(len(examples)))
    assert calibration_split(examples[:20], seed=0)[1] == []


def test_merge_prefers_exact_extractors_and_drops_numbers_inside_entities() -> None:
    merged = merge_entities(
        [
            Entity("order_id", "SO20261001", 2, 12, 0.9, "kefu_tagger"),
            Entity("order_id", "SO20261001", 2, 12, 1.0, "regex"),
            Entity("number", "20261001", 4, 12, 1.0, "rules"),
            Entity("order_id", "13800138000", 15, 26, 0.6, "kefu_tagger"),
            Entity("phone_number", "13800138000", 15, 26, 1.0, "rules"),
            Entity("number", "3", 30, 31, 1.0, "rules"),
        ]
    )
    assert [(e.name, e.extractor) for e in merged] == [
        ("order_id", "regex"),
        ("phone_number", "rules"),
        ("number", "rules"),
    ]


def test_clean_text_folds_width_drops_controls_and_truncates() -> None:
    assert clean_text("ＳＯ１２３\x00\u200b 你好，\n\n hi", 100) == ("SO123 你好， hi", ())
    text, warnings = clean_text("x" * 5000, 1000)
    assert len(text) == 1000 and "5000" in warnings[0]


def test_tokens_split_han_characters_and_keep_latin_words() -> None:
    assert [(t.text, t.start) for t in tokenize("订单SO20261001到哪了?")] == [
        ("订", 0), ("单", 1), ("SO20261001", 2), ("到", 12), ("哪", 13), ("了", 14),
    ]  # fmt: skip


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "😀😀😀",
        "\x00\x01\x1b[31m",
        "ｈｅｌｌｏ　ｗｏｒｌｄ",
        "我要refund我的X1 Pro!!!",
        "؟مرحبا",
        "a" * 100_000,
    ],
)
def test_hostile_input_gives_a_sensible_result(city_nlu: TrainedNlu, text: str) -> None:
    result = city_nlu.parse_text(text)
    assert result.intent in ("greet", "delivery_city", "nlu_fallback")
    assert 0 <= result.confidence <= 1
    assert all(result.text[e.start : e.end] for e in result.entities)
    if len(text) > 1000:
        assert len(result.text) == 1000 and result.warnings


def test_full_width_text_reads_as_ascii(city_nlu: TrainedNlu) -> None:
    assert city_nlu.parse_text("ｈｅｌｌｏ").intent == city_nlu.parse_text("hello").intent == "greet"


def test_a_model_from_another_folder_layout_asks_for_training(tmp_path: Path) -> None:
    (tmp_path / "meta.json").write_text('{"format": 1}')
    with pytest.raises(Exception, match="kefu train"):
        TrainedNlu(tmp_path).warm_up()
