"""Entity roles and groups, Rasa-style: read from nlu.yml, learned by the tagger, scored, and used by slot mappings."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from bot.actions.slots import slot_value
from bot.errors import ProjectError
from bot.events import Session, SessionStarted
from bot.nlu.evaluation import evaluate_predictions
from bot.nlu.pipeline import TrainedNlu, merge_entities, train_nlu
from bot.project.nlu_data import parse_annotated
from bot.types import Entity, NluData, NluExample, NluResult, SlotMapping, SlotSpec

CITIES_EN = ["Beijing", "Shanghai", "Chengdu", "Hangzhou", "Wuhan", "Xiamen"]
CITIES_ZH = ["北京", "上海", "成都", "杭州", "武汉", "厦门"]
TEMPLATES = {
    "en": ["a ticket from {o} to {d}", "I want to fly from {o} to {d}", "to {d} from {o} please"],
    "zh": ["从{o}到{d}的机票", "我想从{o}飞{d}", "去{d}，从{o}出发"],
}


def _annotate(template: str, origin: str, destination: str) -> str:
    return template.format(
        o=f'[{origin}]{{"entity": "city", "role": "origin"}}',
        d=f'[{destination}]{{"entity": "city", "role": "destination"}}',
    )


def _examples() -> list[NluExample]:
    """Half of the city pairs: the tests ask about pairs the model never saw."""
    out = [NluExample(text, "greet") for text in ["hello", "hi", "good morning", "你好", "您好", "在吗"] * 2]
    for cities, lang in ((CITIES_EN, "en"), (CITIES_ZH, "zh")):
        pairs = list(itertools.permutations(cities, 2))[::2]
        for i, (origin, destination) in enumerate(pairs):
            parsed = parse_annotated(_annotate(TEMPLATES[lang][i % 3], origin, destination))
            out.append(NluExample(parsed.text, "book_flight", parsed.entities))
    return out


@pytest.fixture(scope="module")
def flight_nlu(tmp_path_factory: pytest.TempPathFactory) -> TrainedNlu:
    folder = tmp_path_factory.mktemp("flight-nlu")
    data = NluData(tuple(_examples()), lookups={"city": (*CITIES_EN, *CITIES_ZH)})
    train_nlu(data, folder, epochs=40, progress=False, entity_names=["city"])
    nlu = TrainedNlu(folder, rule_dimensions=())
    nlu.warm_up()
    return nlu


def test_annotations_carry_role_and_group() -> None:
    parsed = parse_annotated('[2]{"entity": "size", "group": 1} [large]{"entity": "size", "role": "cup", "group": 1}')
    assert parsed.text == "2 large"
    assert [(e.name, e.role, e.group, e.label) for e in parsed.entities] == [
        ("size", None, "1", "size#1"),
        ("size", "cup", "1", "size@cup#1"),
    ]
    with pytest.raises(ProjectError, match="roles"):
        parse_annotated('[x]{"entity": "a@b"}')


@pytest.mark.parametrize(
    ("text", "origin", "destination"),
    [
        ("a ticket from Xiamen to Beijing", "Xiamen", "Beijing"),
        ("to Wuhan from Chengdu please", "Chengdu", "Wuhan"),
        ("从厦门到北京的机票", "厦门", "北京"),
        ("去上海，从成都出发", "成都", "上海"),
    ],
)
def test_the_tagger_tells_roles_apart_by_context(
    flight_nlu: TrainedNlu, text: str, origin: str, destination: str
) -> None:
    result = flight_nlu.parse_text(text)
    roles = {e.role: e.value for e in result.entities if e.name == "city"}
    assert roles == {"origin": origin, "destination": destination}


def test_a_lookup_match_keeps_the_role_the_tagger_gave() -> None:
    lookup = Entity("city", "Beijing", 5, 12, 0.9, "lookup")
    tagged = Entity("city", "Beijing", 5, 12, 0.7, "kefu_tagger", role="destination")
    [merged] = merge_entities([lookup, tagged])
    assert (merged.extractor, merged.role) == ("lookup", "destination")


def test_evaluation_counts_a_wrong_role_as_a_wrong_entity() -> None:
    gold = NluExample("from A to B", "book_flight", (Entity("city", "A", 5, 6, role="origin"),))
    right = NluResult("", "book_flight", 0.9, entities=(Entity("city", "A", 5, 6, role="origin"),))
    wrong = NluResult("", "book_flight", 0.9, entities=(Entity("city", "A", 5, 6, role="destination"),))
    assert evaluate_predictions([(gold, right)]).entity_f1 == 1.0
    assert evaluate_predictions([(gold, wrong)]).entity_f1 == 0.0


def test_slot_mappings_with_a_role_take_only_that_role(tmp_path: Path) -> None:
    nlu = NluResult(
        "from Xiamen to Beijing",
        "book_flight",
        0.9,
        entities=(
            Entity("city", "Xiamen", 5, 11, role="origin"),
            Entity("city", "Beijing", 15, 22, role="destination"),
        ),
    )
    session = Session("c").with_events([SessionStarted()])

    def slot(**mapping: str) -> SlotSpec:
        return SlotSpec("s", "text", (SlotMapping("from_entity", entity="city", **mapping),))

    assert slot_value(slot(role="destination"), session, nlu) == "Beijing"
    assert slot_value(slot(role="origin"), session, nlu) == "Xiamen"
    assert slot_value(slot(), session, nlu) is None  # as in Rasa: no role in the mapping takes no role
    assert slot_value(slot(role="stopover"), session, nlu) is None
