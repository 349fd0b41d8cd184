"""The ML dialogue policy: featurization, training, storage, and generalisation to paths no story shows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from bot.errors import ModelNotTrainedError
from bot.events import (
    ActionExecuted,
    Event,
    FormActivated,
    FormCompleted,
    Session,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from bot.model_files import seeded
from bot.project.loader import load_project
from bot.types import (
    ACTION_LISTEN,
    Domain,
    Entity,
    FormSpec,
    NluResult,
    ResponseVariation,
    SlotSpec,
    Story,
    StoryStep,
)
from policies.core_model import MODEL_FILE, CoreModel
from policies.ensemble import PolicyEnsemble
from policies.forms import FormPolicy
from policies.ml_policy import MLPolicy, build_core_model, needs_core_training, train_core
from policies.rules import RulePolicy
from policies.state_features import StateFeaturizer, story_events, training_pairs, waits_at_end
from policies.ted import TedConfig
from policies.ted_numpy import NumpyTed
from tests.conftest import SHOP

# Small enough to train in about a second on one core; the defaults train longer for real projects.
FAST = TedConfig(epochs=20, min_steps=250)
TINY = TedConfig(epochs=2, min_steps=0)  # for tests of the machinery, not of predictions
AUGMENTATION = 5

RESPONSES = ("utter_greet", "utter_hours", "utter_ask_order_id", "utter_thank", "utter_goodbye")
DOMAIN = Domain(
    intents=("greet", "ask_hours", "request_order", "inform", "thank", "goodbye"),
    entities=("order_id",),
    slots={
        "order_id": SlotSpec("order_id", "text", influence_conversation=False),
        "member": SlotSpec("member", "bool"),
        "tier": SlotSpec("tier", "categorical", values=("gold", "silver")),
    },
    responses={name: (ResponseVariation(text=name),) for name in RESPONSES},
    forms={"order_form": FormSpec("order_form", ("order_id",))},
    actions=("action_check_order",),
)


def step(kind: str, name: str | None = None, **slots: object) -> StoryStep:
    return StoryStep(kind=kind, name=name, slots=slots)  # type: ignore[arg-type]


def turn(intent: str, *actions: str) -> list[StoryStep]:
    return [step("intent", intent), *(step("action", action) for action in actions)]


HOURS = Story("opening hours", (*turn("greet", "utter_greet"), *turn("ask_hours", "utter_hours"),
                                *turn("thank", "utter_thank")))  # fmt: skip
ORDER = Story(
    "order with the form",
    (
        *turn("request_order", "order_form"),
        step("active_loop", "order_form"),
        step("slot_was_set", requested_slot="order_id"),
        *turn("inform", "order_form"),
        step("slot_was_set", order_id="SO20260001"),
        step("active_loop", None),
        step("slot_was_set", requested_slot=None),
        step("action", "action_check_order"),
        *turn("goodbye", "utter_goodbye"),
    ),
)
BYE = Story("say goodbye", tuple(turn("goodbye", "utter_goodbye")), is_rule=True)
STORIES, RULES = [HOURS, ORDER], [BYE]


def user(intent: str, **entities: str) -> UserUttered:
    found = tuple(Entity(name, value, 0, len(value)) for name, value in entities.items())
    return UserUttered(text=intent, nlu=NluResult(text=intent, intent=intent, confidence=0.9, entities=found))


def act(name: str, *events: Event) -> list[Event]:
    """An action as a turn records it: the action first, then the events it returned."""
    return [ActionExecuted(name=name), *events]


def session(*events: Event) -> Session:
    return Session("c").with_events([SessionStarted(), *events])


# A novel path: the order id comes with the request, so the form completes at once (no story shows
# that); then the FAQ of the other story, in a context it never appeared in.
NOVEL: list[tuple[list[Event], str]] = [
    ([user("greet")], "utter_greet"),
    (act("utter_greet"), ACTION_LISTEN),
    ([user("request_order", order_id="SO20269999"), SlotSet(name="order_id", value="SO20269999")], "order_form"),
    (
        act(
            "order_form",
            FormActivated(name="order_form"),
            SlotSet(name="requested_slot", value=None),
            FormCompleted(name="order_form"),
        ),
        "action_check_order",
    ),
    (act("action_check_order"), ACTION_LISTEN),
    ([user("ask_hours")], "utter_hours"),
    (act("utter_hours"), ACTION_LISTEN),
    ([user("goodbye")], "utter_goodbye"),
    (act("utter_goodbye"), ACTION_LISTEN),
]
FORM_AT_ONCE = 3  # the step of NOVEL after the form completed at once


def replay(steps: Sequence[tuple[list[Event], str]]) -> list[tuple[Session, str]]:
    """The session before each expected action."""
    out, current = [], session()
    for events, expected in steps:
        current = current.with_events(events)
        out.append((current, expected))
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model_dir = tmp_path_factory.mktemp("core")
    train_core(STORIES, RULES, DOMAIN, model_dir, config=FAST, augmentation=AUGMENTATION)
    return model_dir


# --- featurization ---


def test_slots_form_and_previous_action_are_features() -> None:
    featurizer = StateFeaturizer.from_domain(DOMAIN, STORIES)
    names = featurizer.vocabulary.features()
    s = session(
        user("request_order", order_id="SO1"),
        SlotSet(name="member", value=False),
        SlotSet(name="tier", value="Gold"),
        SlotSet(name="order_id", value="SO1"),  # influence_conversation: false
        *act("order_form", FormActivated(name="order_form"), SlotSet(name="requested_slot", value="order_id")),
    )
    first, second = ({names[i] for i in state} for state in featurizer.states(s.events))
    assert first == {"intent:request_order", "entity:order_id", "slot:member=false", "slot:tier=gold",
                     "prev:action_listen"}  # fmt: skip
    # after an action the intent is left out (the earlier state carries it), as Rasa's TED does
    assert second == {"slot:member=false", "slot:tier=gold", "form:order_form", "requested:order_id",
                      "prev:order_form"}  # fmt: skip
    assert "prev:action_answer" in names and "prev:action_listen" in names


def test_a_story_and_the_same_dialogue_at_run_time_give_the_same_states() -> None:
    featurizer = StateFeaturizer.from_domain(DOMAIN, STORIES)
    live = session(
        user("request_order"),
        *act("order_form", FormActivated(name="order_form"), SlotSet(name="requested_slot", value="order_id")),
        user("inform", order_id="SO20260001"),
        *act(
            "order_form",
            SlotSet(name="order_id", value="SO20260001"),
            SlotSet(name="requested_slot", value=None),
            FormCompleted(name="order_form"),
        ),
        *act("action_check_order"),
        user("goodbye"),
        *act("utter_goodbye"),
    )
    story = replace(ORDER, steps=tuple(replace(s, entities=(Entity("order_id", "SO20260001", 0, 10),))
                                       if s.name == "inform" else s for s in ORDER.steps))  # fmt: skip
    assert featurizer.states(story_events(story)) == featurizer.states(live.events)
    assert featurizer.decision_points(live.events, last=3) == featurizer.decision_points(live.events)[-3:]
    states, targets = training_pairs(featurizer, story_events(story), wait_at_end=waits_at_end(story))
    assert len(states) == len(targets)
    assert targets == ["order_form", ACTION_LISTEN, "order_form", "action_check_order", ACTION_LISTEN,
                       "utter_goodbye", ACTION_LISTEN]  # fmt: skip


# --- training and storage ---


def test_training_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    for name in ("a", "b"):
        train_core(STORIES, RULES, DOMAIN, tmp_path / name, config=TINY, augmentation=2, seed=7)
    first = torch.load(tmp_path / "a" / MODEL_FILE, weights_only=True)
    second = torch.load(tmp_path / "b" / MODEL_FILE, weights_only=True)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[key], second[key]) for key in first)
    train_core(STORIES, RULES, DOMAIN, tmp_path / "c", config=TINY, augmentation=2, seed=8)
    other = torch.load(tmp_path / "c" / MODEL_FILE, weights_only=True)
    assert not all(torch.equal(first[key], other[key]) for key in first)


def test_a_saved_model_predicts_what_it_predicted_before(tmp_path: Path) -> None:
    model = build_core_model(STORIES, RULES, DOMAIN, config=TINY, augmentation=2).model
    model.save(tmp_path, {})
    loaded, _ = CoreModel.load(tmp_path)
    assert loaded.featurizer.vocabulary == model.featurizer.vocabulary
    before, after = NumpyTed(model.net), NumpyTed(loaded.net)
    for s, _ in replay(NOVEL):
        window = model.featurizer.window(model.featurizer.states(s.events), TINY.max_history)
        assert np.array_equal(before.logits(window), after.logits(window))


def test_the_numpy_forward_pass_is_the_torch_one() -> None:
    model = build_core_model(STORIES, RULES, DOMAIN, config=TINY, augmentation=2).model
    fast = NumpyTed(model.net)
    with seeded(0):  # one thread: torch is slow to share a busy machine's cores
        for s, _ in replay(NOVEL):
            states = model.featurizer.states(s.events)
            expected = model.logits(states).numpy()
            assert np.allclose(fast.logits(model.featurizer.window(states, TINY.max_history)), expected, atol=1e-5)


def test_an_unchanged_project_is_not_retrained_and_a_changed_story_is(trained: Path) -> None:
    def needs(
        stories: Sequence[Story] = STORIES, domain: Domain = DOMAIN, *, seed: int = 0, at: Path = trained
    ) -> bool:
        return needs_core_training(stories, RULES, domain, at, seed=seed, config=FAST, augmentation=AUGMENTATION)

    assert not needs()
    changed = replace(HOURS, steps=(*HOURS.steps, *turn("goodbye", "utter_goodbye")))
    assert needs([changed, ORDER])
    assert needs(seed=1)
    assert needs(domain=replace(DOMAIN, actions=("action_other",)))
    assert needs(at=trained / "missing")
    assert needs_core_training(STORIES, RULES, DOMAIN, trained, config=FAST, augmentation=AUGMENTATION, epochs=21)


def test_a_corrupt_model_says_to_retrain(tmp_path: Path, trained: Path) -> None:
    for name in ("meta.json", MODEL_FILE):
        (tmp_path / name).write_bytes((trained / name).read_bytes())
    (tmp_path / MODEL_FILE).write_bytes(b"not a model")
    with pytest.raises(ModelNotTrainedError, match="kefu train core"):
        MLPolicy(tmp_path).warm_up()


def test_without_a_model_or_a_user_message_the_policy_abstains(tmp_path: Path, trained: Path) -> None:
    assert MLPolicy(tmp_path / "none").decide(session(user("greet")), DOMAIN) is None
    assert MLPolicy(trained).decide(session(), DOMAIN) is None


# --- predictions ---


def test_it_reproduces_the_training_stories(trained: Path) -> None:
    policy = MLPolicy(trained)
    featurizer = StateFeaturizer.from_domain(DOMAIN, STORIES)
    for story in (*STORIES, *RULES):
        events = story_events(story)
        _, targets = training_pairs(featurizer, events, wait_at_end=waits_at_end(story))
        for prefix, target in zip(_decision_prefixes(events), targets, strict=True):
            decision = policy.decide(Session("c").with_events(prefix), DOMAIN)
            if target is not None:
                assert decision is not None and decision.action == target, (story.name, len(prefix))


def test_it_generalises_to_a_path_no_story_shows(trained: Path) -> None:
    policy = MLPolicy(trained)
    memoization = RulePolicy(STORIES, name="memoization", priority=3, windows=True)
    for i, (s, expected) in enumerate(replay(NOVEL)):
        decision = policy.decide(s, DOMAIN)
        assert decision is not None and decision.action == expected, (i, decision)
        assert decision.policy == "ted" and 0.5 < decision.confidence <= 1.0
    # the stories never show a form completed at once: memorised stories have nothing to say there
    at_once = replay(NOVEL)[FORM_AT_ONCE][0]
    assert memoization.decide(at_once, DOMAIN) is None
    decision = PolicyEnsemble([RulePolicy(RULES), FormPolicy(), memoization, policy]).decide(at_once, DOMAIN)
    assert (decision.action, decision.policy) == ("action_check_order", "ted")


def test_decisions_explain_themselves(trained: Path) -> None:
    decision = MLPolicy(trained).decide(session(user("ask_hours")), DOMAIN)
    assert decision is not None
    assert decision.reason.startswith("ted: after intent ask_hours (p=") and "next best" in decision.reason


def test_it_reproduces_the_shop_stories(tmp_path: Path) -> None:
    project = load_project(SHOP)
    train_core(project.stories, project.rules, project.domain, tmp_path, config=FAST, augmentation=3)
    policy = MLPolicy(tmp_path)
    featurizer = StateFeaturizer.from_domain(project.domain, (*project.stories, *project.rules))
    checked = 0
    for story in project.stories:
        events = story_events(story)
        _, targets = training_pairs(featurizer, events, wait_at_end=waits_at_end(story))
        for prefix, target in zip(_decision_prefixes(events), targets, strict=True):
            if target is None:
                continue
            decision = policy.decide(Session("c").with_events(prefix), project.domain)
            assert decision is not None and decision.action == target, (story.name, len(prefix), decision)
            checked += 1
    assert checked > 40


def _decision_prefixes(events: Sequence[Event]) -> list[list[Event]]:
    """The events up to each decision point: everything before the next user message or action."""
    opens = [i for i, e in enumerate(events) if isinstance(e, UserUttered | ActionExecuted)]
    return [list(events[:end]) for end in [*opens[1:], len(events)]]
