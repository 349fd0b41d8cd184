"""The pieces under the recommender: the question catalog, the precomputed neighbours, the learned counts
and the signals read from a conversation's events."""

from __future__ import annotations

import numpy as np
import pytest

from bot.events import (
    BotUttered,
    Event,
    FeedbackGiven,
    HandedOff,
    QuestionsRecommended,
    RecommendationClicked,
    RecommendationRated,
    UserUttered,
)
from bot.recommend.catalog import Question, QuestionCatalog, catalog_of, normalized
from bot.recommend.counts import NEXT_PRIOR, W_NEXT, Observation, UsageCounts
from bot.recommend.neighbours import WEIGHTS, build_neighbours
from bot.recommend.signals import asked_context, click_of, observations, rating_of, rating_of_feedback
from bot.types import NluResult
from knowledge.faq import FaqEntry
from knowledge.graph import load_graph
from tests.knowledge.helpers import write_graph

# --- catalog ---


def test_a_question_is_found_from_its_text_whatever_the_width_case_and_spaces() -> None:
    catalog = QuestionCatalog(
        [Question("fee_en", "How much is shipping?", "en"), Question("fee_zh", "运费怎么收？", "zh")]
    )
    assert catalog.item_of("ＨＯＷ MUCH  is shipping？", "en") == "fee_en"
    assert catalog.item_of("运费 怎么收?", "zh") == "fee_zh"
    assert catalog.item_of("运费怎么收？", "en") is None, "a text is looked up in its language only"
    assert normalized("Ｘ1 Pro ２５６") == "x1pro256"


def test_the_catalog_holds_each_faq_question_and_a_question_per_subject_and_relation(tmp_path) -> None:
    graph = load_graph(write_graph(tmp_path / "knowledge"), [])
    faq = {"fee_en": FaqEntry("fee_en", "How much is shipping?", "Free from 99.", "en", tags=("shipping",))}
    catalog = catalog_of(faq, graph)
    assert catalog.get("fee_en", "en") == Question("fee_en", "How much is shipping?", "en", ("shipping",))
    assert catalog.get("fee_en", "zh") is None
    price = [catalog.get("kg:x1_pro|price", language) for language in ("zh", "en")]
    assert [q.text for q in price if q] == ["星耀X1 Pro的价格是什么？", "What is the price of the X1 Pro?"]
    assert catalog.item_of("What is the price of the X1 Pro?", "en") == "kg:x1_pro|price"
    kg = [q.id for q in catalog.in_language("en") if q.id.startswith("kg:")]
    assert len(kg) == len(set(kg)) == len({(t.subject, t.relation) for t in graph.triples})


# --- neighbours ---


def _unit(*values: float) -> np.ndarray:
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def test_neighbours_stay_in_their_language_never_include_themselves_and_follow_the_graph() -> None:
    questions = [
        Question("a_zh", "a", "zh", ("shipping",)),
        Question("b_zh", "b", "zh", ("shipping",)),
        Question("c_zh", "c", "zh"),
        Question("kg:p|price", "p price", "zh"),
        Question("kg:p|colors", "p colors", "zh"),
        Question("kg:q|price", "q price", "zh"),
        Question("a_en", "a", "en", ("shipping",)),
    ]
    vectors = {
        ("a_zh", "zh"): _unit(1, 0, 0),
        ("b_zh", "zh"): _unit(1, 1, 0),
        ("c_zh", "zh"): _unit(1, 0.1, 0),
        ("kg:p|price", "zh"): _unit(0, 0, 1),
        ("kg:p|colors", "zh"): _unit(0, 1, 0),  # unlike its price question: only the graph links them
        ("kg:q|price", "zh"): _unit(0, 0.2, 1),
        ("a_en", "en"): _unit(1, 0, 0),  # the same vector as a_zh, in the other language
    }
    entities = {"kg:p|price": frozenset({"p"}), "kg:p|colors": frozenset({"p"}), "kg:q|price": frozenset({"q"})}
    found = build_neighbours(QuestionCatalog(questions), vectors, entities, kept=4)
    for (item, _), neighbours in found.items():
        assert item not in [n.item for n in neighbours]
    assert all(not n.item.endswith("_en") for n in found[("a_zh", "zh")])
    assert found[("a_en", "en")] == ()  # alone in its language
    nearest = found[("a_zh", "zh")][0]
    assert nearest.item == "c_zh" and nearest.score == pytest.approx(WEIGHTS["similar"] * 0.995, abs=1e-3)
    assert {n.item: n.score for n in found[("a_zh", "zh")]}["b_zh"] > WEIGHTS["tags"], "shared tags count"
    colors = {n.item: n.score for n in found[("kg:p|price", "zh")]}
    assert colors["kg:p|colors"] == pytest.approx(WEIGHTS["graph"]), "another attribute of the same entity"
    assert len(found[("a_zh", "zh")]) <= 4


# --- counts ---


def _counts(*seen: tuple[str, str, str, int]) -> UsageCounts:
    counts = UsageCounts()
    counts.add(Observation(kind, context, item) for kind, context, item, times in seen for _ in range(times))
    return counts


def test_nothing_learned_boosts_nothing_and_a_few_observations_move_little() -> None:
    assert UsageCounts().boost("a", "b") == 0.0
    once = _counts(("next", "a", "b", 1)).boost("a", "b")
    assert once == pytest.approx(W_NEXT * 1 / (1 + NEXT_PRIOR))
    often = _counts(("next", "a", "b", 20)).boost("a", "b")
    assert once < 0.2 < often == pytest.approx(W_NEXT * 20 / (20 + NEXT_PRIOR))
    shared = _counts(("next", "a", "b", 10), ("next", "a", "c", 10))
    assert shared.boost("a", "b") == shared.boost("a", "c") < _counts(("next", "a", "b", 10)).boost("a", "b")
    assert sorted(shared.learned_after("a", 5)) == ["b", "c"] and len(shared.learned_after("a", 1)) == 1


def test_the_boost_grows_with_clicks_and_with_satisfied_answers() -> None:
    boosts = [_counts(("shown", "a", "b", 10), ("click", "a", "b", clicks)).boost("a", "b") for clicks in range(11)]
    assert boosts == sorted(boosts) and len(set(boosts)) == len(boosts), "strictly more with each click"
    assert boosts[0] < 0 < boosts[2], "shown and never clicked falls below the prior; clicked often rises above"
    base = (("shown", "a", "b", 10), ("click", "a", "b", 5))
    good = _counts(*base, ("good", "a", "b", 5)).boost("a", "b")
    bad = _counts(*base, ("bad", "a", "b", 5)).boost("a", "b")
    assert bad < _counts(*base).boost("a", "b") < good


def test_counts_from_elsewhere_replace_the_totals_and_keep_what_is_pending() -> None:
    counts = _counts(("next", "a", "b", 2))
    counts.replace({("next", "a", "b"): 5, ("next", "a", "c"): 1})  # every process's totals, from Redis
    assert dict(counts.counts("next", "a")) == {"b": 7, "c": 1}
    assert counts.learned_after("a", 1) == ["b"]


# --- signals ---

SHOWN = QuestionsRecommended(context="fee_en", items=("ship_en", "track_en"), language="en")
CATALOG = QuestionCatalog(
    [
        Question("fee_en", "How much is shipping?", "en"),
        Question("ship_en", "How long does delivery take?", "en"),
        Question("track_en", "How can I track my package?", "en"),
    ]
)


def _answer(item: str, **fields: object) -> BotUttered:
    return BotUttered(text="...", template="knowledge:faq", fact_ids=(item,), **fields)  # type: ignore[arg-type]


def test_a_message_repeating_a_question_just_recommended_is_a_click_with_its_rank() -> None:
    history: list[Event] = [UserUttered(text="How much is shipping?"), _answer("fee_en"), SHOWN]
    click = click_of(history, "how can I  TRACK my package？", CATALOG)
    assert click is not None and (click.item, click.context, click.rank) == ("track_en", "fee_en", 2)
    assert click_of(history, "How much is shipping?", CATALOG) is None, "not among those shown"
    later = [*history, UserUttered(text="thanks"), BotUttered(text="You're welcome")]
    assert click_of(later, "How can I track my package?", CATALOG) is None, "shown before the last message only"


def _clicked_turns(then: list[Event]) -> list[Event]:
    click = RecommendationClicked(item="track_en", context="fee_en", rank=2)
    first = [UserUttered(text="How much is shipping?"), _answer("fee_en"), SHOWN]
    return [*first, UserUttered(text="How can I track my package?"), click, _answer("track_en"), *then]


@pytest.mark.parametrize(
    ("then", "satisfied", "signal"),
    [
        ([UserUttered(text="Where is my tracking number"), _answer("track_en")], False, "rephrase"),
        ([UserUttered(text="human please", nlu=NluResult("human please", "request_human", 0.9))], False, "handoff"),
        ([UserUttered(text="...."), HandedOff(reason="anger")], False, "handoff"),
        ([UserUttered(text="How long does delivery take?"), _answer("ship_en")], True, "next_question"),
    ],
)
def test_the_turn_after_a_click_rates_it(then: list[Event], satisfied: bool, signal: str) -> None:
    rated = rating_of(_clicked_turns(then), ("request_human",))
    assert rated == RecommendationRated(
        item="track_en", context="fee_en", satisfied=satisfied, signal=signal, timestamp=rated.timestamp if rated else 0
    )


def test_a_click_is_rated_once_and_not_before_the_next_turn() -> None:
    assert rating_of(_clicked_turns([]), ()) is None, "the clicked answer's own turn cannot rate it"
    events = _clicked_turns([UserUttered(text="How long does delivery take?"), _answer("ship_en")])
    rated = rating_of(events, ())
    assert rated is not None and rating_of([*events, rated], ()) is None


def test_each_click_of_a_chain_of_clicks_is_rated() -> None:
    events = _clicked_turns([])
    events.append(UserUttered(text="How long does delivery take?"))
    events.append(RecommendationClicked(item="ship_en", context="track_en", rank=1))
    events.append(_answer("ship_en"))
    first = rating_of(events, ())
    assert first is not None and first.item == "track_en"
    events += [first, QuestionsRecommended(context="ship_en", items=("fee_en",), language="en")]
    events += [UserUttered(text="How much is shipping?"), _answer("fee_en")]
    second = rating_of(events, ())
    assert second is not None and second.item == "ship_en"


def test_thumbs_on_the_answer_to_a_click_rate_it() -> None:
    events = _clicked_turns([])
    clicked_reply = events[-1]
    assert isinstance(clicked_reply, BotUttered)
    thumbs_down = FeedbackGiven(rating=-1, reply_id=clicked_reply.reply_id)
    rated = rating_of_feedback(events, thumbs_down)
    assert rated is not None and (rated.item, rated.satisfied, rated.signal) == ("track_en", False, "thumbs")
    first_reply = events[1]
    assert isinstance(first_reply, BotUttered)
    assert rating_of_feedback(events, FeedbackGiven(rating=1, reply_id=first_reply.reply_id)) is None, "not a click"
    assert rating_of_feedback(events, FeedbackGiven(rating=5, kind="csat")) is None


def test_a_turn_teaches_what_was_shown_clicked_rated_asked_and_asked_next() -> None:
    history: list[Event] = [UserUttered(text="How much is shipping?"), _answer("fee_en"), SHOWN]
    click = RecommendationClicked(item="track_en", context="fee_en", rank=2)
    rated = RecommendationRated(item="ship_en", context="hot", satisfied=False, signal="rephrase")
    shown = QuestionsRecommended(context="track_en", items=("ship_en",), language="en")
    new: list[Event] = [UserUttered(text="How can I track my package?", timestamp=0.0), click, _answer("track_en")]
    seen = observations(history, [*new, rated, shown], "en")
    assert seen == [
        Observation("click", "fee_en", "track_en"),
        Observation("bad", "hot", "ship_en"),
        Observation("shown", "track_en", "ship_en"),
        Observation("asked", "19700101:en", "track_en"),
        Observation("next", "fee_en", "track_en"),
    ]
    assert asked_context(0.0, "en") == "19700101:en"
    again = observations([*history, *new], [UserUttered(text="track?", timestamp=0.0), _answer("track_en")], "en")
    assert again == [Observation("asked", "19700101:en", "track_en")], "the same item again is no next question"
    assert observations(history, [UserUttered(text="thanks")], "en") == []


def test_a_sessions_first_answered_question_is_counted_as_opening_it() -> None:
    greeting: list[Event] = [UserUttered(text="hi"), BotUttered(text="Hello!", template="utter_greet")]
    new: list[Event] = [UserUttered(text="How much is shipping?", timestamp=0.0), _answer("fee_en")]
    assert observations(greeting, new, "en") == [
        Observation("asked", "19700101:en", "fee_en"),
        Observation("first", "19700101:en", "fee_en"),
    ]
