"""The ML dialogue policy: trains the dialogue transformer (`policies.ted`) from stories and rules, and
predicts the next action of any session, including paths no story shows.

Training data: every story and rule replayed into events, plus stories and rules stitched end to end
at random (Rasa's augmentation), so the model learns what follows the end of any story in any context.
Each decision point with a known next action gives one example: the last `max_history` states and that
action; identical examples are kept once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from bot.errors import ModelNotTrainedError, ProjectError
from bot.events import Event, PolicyDecision, Session
from bot.model_files import seeded
from bot.types import ACTION_LISTEN, KEFU_ACTIONS, Domain, Story, StoryStep
from policies.core_model import META_FILE, MODEL_FILE, CoreModel, read_meta
from policies.state_features import (
    State,
    StateFeaturizer,
    story_events,
    training_pairs,
    vocabulary_of,
    waits_at_end,
)
from policies.ted import TedConfig, fit
from policies.ted_numpy import NumpyTed

log = logging.getLogger(__name__)

DEFAULT_AUGMENTATION = 10  # stitched dialogues per story or rule that can be stitched
_MAX_PIECES = 4  # a stitched dialogue joins 2 to this many stories and rules


@dataclass(frozen=True, slots=True)
class CoreTrainReport:
    """What a training run did; `data_hash` identifies the stories and rules it was trained on."""

    n_stories: int
    n_rules: int
    n_dialogues: int  # stories, rules and stitched dialogues
    n_examples: int  # distinct (history, next action) pairs
    n_actions: int
    seconds: float
    train_accuracy: float
    final_loss: float
    data_hash: str


@dataclass(frozen=True, slots=True)
class Dialogue:
    """Events to learn from, and whether the bot waits for the user after the last one."""

    events: tuple[Event, ...]
    wait_at_end: bool


@dataclass(frozen=True, slots=True)
class Examples:
    """Training examples as tensors: each one's last `max_history` states and the action that followed."""

    windows: torch.Tensor  # (N, max_history, features)
    targets: torch.Tensor  # (N,) action indices


@dataclass(frozen=True, slots=True)
class TrainedCore:
    """A trained model, not saved yet, and what it was trained on."""

    model: CoreModel
    examples: Examples
    n_dialogues: int
    loss: float  # of the last epoch
    accuracy: float  # on the training examples


def data_hash(stories: Sequence[Story], rules: Sequence[Story]) -> str:
    """SHA-256 over a canonical JSON of the stories and rules (names, files and line numbers excluded)."""
    canonical = [_canonical(story) for story in (*stories, *rules)]
    text = json.dumps(canonical, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _canonical(story: Story) -> list[Any]:
    def steps(items: Sequence[StoryStep]) -> list[Any]:
        return [[s.kind, s.name, sorted(s.slots.items()), [[e.name, e.value] for e in s.entities]] for s in items]

    flags = [story.is_rule, story.conversation_start, story.wait_for_user_input]
    return [*flags, steps(story.conditions), steps(story.steps)]


def _fingerprint(
    stories: Sequence[Story], rules: Sequence[Story], domain: Domain, config: TedConfig, seed: int, augmentation: int
) -> dict[str, Any]:
    return {
        "data_hash": data_hash(stories, rules),
        "vocabulary_hash": _vocabulary_hash(domain, (*stories, *rules)),
        "network": config.to_json(),
        "seed": seed,
        "augmentation": augmentation,
    }


def _vocabulary_hash(domain: Domain, stories: Sequence[Story]) -> str:
    text = json.dumps(vocabulary_of(domain, stories).to_json(), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def needs_core_training(
    stories: Sequence[Story],
    rules: Sequence[Story],
    domain: Domain,
    model_dir: Path,
    *,
    seed: int = 0,
    epochs: int | None = None,
    augmentation: int = DEFAULT_AUGMENTATION,
    config: TedConfig | None = None,
) -> bool:
    """True unless `model_dir` holds a model `train_core` trained with these same arguments."""
    meta = read_meta(model_dir)
    if meta is None or not (model_dir / MODEL_FILE).is_file():
        return True
    wanted = _fingerprint(stories, rules, domain, _config(config, epochs), seed, augmentation)
    return any(meta.get(key) != value for key, value in wanted.items())


def train_core(
    stories: Sequence[Story],
    rules: Sequence[Story],
    domain: Domain,
    model_dir: Path,
    *,
    seed: int = 0,
    epochs: int | None = None,
    progress: bool = False,
    augmentation: int = DEFAULT_AUGMENTATION,
    config: TedConfig | None = None,
) -> CoreTrainReport:
    """Train the dialogue transformer on `stories` and `rules` and save it to `model_dir`.

    The same data, domain, config, seed and augmentation always give the same weights.
    """
    started = time.perf_counter()
    config = _config(config, epochs)
    trained = build_core_model(
        stories, rules, domain, seed=seed, config=config, augmentation=augmentation, progress=progress
    )
    fingerprint = _fingerprint(stories, rules, domain, config, seed, augmentation)
    n_examples = len(trained.examples.targets)
    trained.model.save(model_dir, {**fingerprint, "train_accuracy": trained.accuracy, "n_examples": n_examples})
    return CoreTrainReport(
        n_stories=len(stories),
        n_rules=len(rules),
        n_dialogues=trained.n_dialogues,
        n_examples=n_examples,
        n_actions=len(trained.model.actions),
        seconds=time.perf_counter() - started,
        train_accuracy=trained.accuracy,
        final_loss=trained.loss,
        data_hash=fingerprint["data_hash"],
    )


def _config(config: TedConfig | None, epochs: int | None) -> TedConfig:
    config = config or TedConfig()
    return config if epochs is None else replace(config, epochs=epochs)


def build_core_model(
    stories: Sequence[Story],
    rules: Sequence[Story],
    domain: Domain,
    *,
    seed: int = 0,
    config: TedConfig | None = None,
    augmentation: int = DEFAULT_AUGMENTATION,
    progress: bool = False,
) -> TrainedCore:
    """A trained model, not saved yet, with what it was trained on and how well it fits it."""
    config = config or TedConfig()
    all_stories = (*stories, *rules)
    if not any(step.kind == "action" for story in all_stories for step in story.steps):
        raise ProjectError(
            "there are no stories or rules with actions to train the ML dialogue policy on: add stories to "
            "data/stories.yml, or set `dialogue: {ml_policy: false}` in kefu.yml"
        )
    featurizer = StateFeaturizer(vocabulary_of(domain, all_stories))
    dialogues = training_dialogues(all_stories, augmentation, seed)
    examples = training_examples(featurizer, dialogues, config.max_history)
    with seeded(seed):
        model = CoreModel.build(featurizer, config)
        loss = fit(model.net, examples.windows, examples.targets, config, seed=seed, progress=progress)
        accuracy = _accuracy(model, examples)
    return TrainedCore(model, examples, len(dialogues), loss, accuracy)


def training_dialogues(stories: Sequence[Story], augmentation: int, seed: int) -> list[Dialogue]:
    """Every story and rule as it is, then `augmentation` stitched dialogues per story that can be stitched.

    Stitchable: it starts with a user message, has no conditions, ends with an action after which the
    bot waits, and leaves no form active (a dialogue must not go on inside a form nobody closed).
    """
    dialogues = [Dialogue(tuple(story_events(story)), waits_at_end(story)) for story in stories]
    pool = [d for d, story in zip(dialogues, stories, strict=True) if _stitchable(story, d)]
    rng = np.random.default_rng(seed)  # local: seeding must not touch anyone's global state
    for _ in range(augmentation * len(pool) if len(pool) > 1 else 0):
        picks = rng.choice(len(pool), size=int(rng.integers(2, _MAX_PIECES + 1)), replace=True)
        dialogues.append(Dialogue(tuple(e for i in picks for e in pool[int(i)].events), True))
    return dialogues


def _stitchable(story: Story, dialogue: Dialogue) -> bool:
    first = next((s for s in story.steps if s.kind in ("intent", "user", "action")), None)
    if story.conditions or story.conversation_start or not dialogue.wait_at_end:
        return False
    if first is None or first.kind == "action":
        return False
    return Session("replay").with_events(dialogue.events).active_form is None


def training_examples(featurizer: StateFeaturizer, dialogues: Sequence[Dialogue], max_history: int) -> Examples:
    """Distinct (last `max_history` states, next action) pairs of the dialogues, as tensors."""
    index = {action: i for i, action in enumerate(featurizer.actions)}
    seen: dict[tuple[tuple[State, ...], int], None] = {}  # a dict keeps the first-seen order: deterministic
    for dialogue in dialogues:
        states, targets = training_pairs(featurizer, dialogue.events, wait_at_end=dialogue.wait_at_end)
        for i, target in enumerate(targets):
            if target is not None:
                seen[(tuple(states[max(0, i + 1 - max_history) : i + 1]), index[target])] = None
    if not seen:
        raise ProjectError("the stories and rules show no action after any user message: nothing to learn from")
    windows = np.stack([featurizer.window(history, max_history) for history, _ in seen])
    return Examples(torch.from_numpy(windows), torch.tensor([target for _, target in seen], dtype=torch.int64))


def _accuracy(model: CoreModel, examples: Examples) -> float:
    with torch.inference_mode():
        predicted = model.net(examples.windows).argmax(dim=1)
    return float((predicted == examples.targets).float().mean())


class MLPolicy:
    """The `Policy` protocol over a folder written by `train_core`; abstains while no model is trained."""

    def __init__(self, model_dir: Path, *, name: str = "ted", priority: int = 1) -> None:
        self.name = name
        self.priority = priority
        self.model_dir = Path(model_dir)
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None
        self._absent = False
        self._mask: tuple[Domain, npt.NDArray[np.bool_]] | None = None

    def warm_up(self) -> None:
        """Load the model. A folder without one is no error (the policy abstains); an unreadable one is."""
        with self._lock:
            if self._loaded is not None or self._absent:
                return
            if any((self.model_dir / name).exists() for name in (MODEL_FILE, META_FILE)):
                model = CoreModel.load(self.model_dir)[0]
                self._loaded = _Loaded(model.featurizer, NumpyTed(model.net), model.config.max_history)
            else:
                self._absent = True
                log.warning("no dialogue policy in %s: the ML policy abstains; run `kefu train core`", self.model_dir)

    @property
    def trained(self) -> bool:
        """Whether a model is loaded (loads it if needed)."""
        return self._get() is not None

    def decide(self, session: Session, domain: Domain) -> PolicyDecision | None:
        """The most probable action after the session's latest event; None before any user message."""
        loaded = self._get()
        message = session.latest_message()
        if loaded is None or message is None:
            return None
        actions = loaded.featurizer.actions
        points = loaded.featurizer.decision_points(session.events, last=loaded.max_history)
        logits = loaded.net.logits(loaded.featurizer.window([p.state for p in points], loaded.max_history))
        logits = np.where(self._allowed(actions, domain), logits, -np.inf)
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        first, second = (int(i) for i in np.argsort(-probs, kind="stable")[:2])
        latest = points[-1].opened_by
        intent = message.nlu.intent if message.nlu is not None else "?"
        after = f"intent {intent}" if latest == ACTION_LISTEN else f"action {latest}"
        p, runner_up = float(probs[first]), f"{actions[second]} {float(probs[second]):.2f}"
        reason = f"{self.name}: after {after} (p={p:.2f}; next best {runner_up})"
        return PolicyDecision(actions[first], self.name, p, reason)

    def _get(self) -> _Loaded | None:
        if self._loaded is None and not self._absent:
            self.warm_up()
        return self._loaded

    def _allowed(self, actions: tuple[str, ...], domain: Domain) -> npt.NDArray[np.bool_]:
        """Which of the model's actions this domain can run (a model older than the domain may know others)."""
        cached = self._mask
        if cached is not None and cached[0] is domain:
            return cached[1]
        runnable = {ACTION_LISTEN, *KEFU_ACTIONS}
        mask = np.array([a in runnable or domain.is_known_action(a) for a in actions], dtype=np.bool_)
        if not mask.any():
            raise ModelNotTrainedError(f"the dialogue policy in {self.model_dir} knows none of the domain's actions")
        self._mask = (domain, mask)
        return mask


@dataclass(frozen=True, slots=True)
class _Loaded:
    featurizer: StateFeaturizer
    net: NumpyTed
    max_history: int
