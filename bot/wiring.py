"""Builds a Bot from a project folder and settings: the only place that picks implementations."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from bot.actions.answer import AnswerAction, AnswerOptions
from bot.actions.api import api_actions
from bot.actions.builtin import (
    AskRephraseAction,
    CancelFormAction,
    ClarifyAction,
    DefaultFallbackAction,
    HandoffAction,
    OfferHumanAction,
)
from bot.actions.custom import load_python_actions, load_validators
from bot.actions.forms import FormAction, FormRules
from bot.actions.responses import ResponseAction, ResponseRenderer
from bot.actions.sources import custom_actions
from bot.assist.handoff import HandoffDesk
from bot.assist.handoff_queue import HandoffQueue
from bot.assist.notify import Notifier
from bot.errors import ConfigError, ProjectError
from bot.generation.chat import ChatGenerator, ChatModel
from bot.generation.openai_http import OpenAIChat
from bot.generation.prompts import Persona, PromptBuilder
from bot.generation.rerank import RewardReranker
from bot.generation.reward import META_FILE, RewardModel
from bot.generation.transformers_lm import PACKAGED_SMOLLM2, TransformersChat
from bot.nlu.embedder import E5Embedder
from bot.nlu.extractors import RULE_DIMENSIONS
from bot.nlu.network import NetworkConfig
from bot.nlu.pipeline import TrainedNlu, TrainReport, needs_training, train_nlu
from bot.nlu.rasa_http import RasaHttpNlu
from bot.nlu.static_embedder import static_embedder_for
from bot.project.loader import ProjectFiles, load_project
from bot.project.validate import validate
from bot.protocols import Action, DecodingParams, Embedder, Generator, Policy
from bot.recommend.recommender import Recommender, RecommendOptions
from bot.recommend.stage import RecommendStage
from bot.runtime import Bot
from bot.sessions.connect import EmbeddedRedis, client_for_socket, client_for_url, describe_url
from bot.sessions.rate_limit import RateLimiter
from bot.sessions.redis_store import RedisSessionStore, StoreOptions
from bot.settings import DialogueConfig, FormConfig, ProjectConfig, Settings, load_project_config
from bot.turn import TurnParts
from bot.types import NluData
from bot.wiring_safety import SafetyPaths, SafetyStage, register_instructions, safety_stage, train_harm_model
from knowledge.base import KnowledgeBase, KnowledgeOptions
from policies.clarify import ClarifyPolicy
from policies.ensemble import PolicyEnsemble
from policies.fallback import TwoStageFallbackPolicy
from policies.forms import FormPolicy
from policies.handoff import HandoffPolicy
from policies.ml_policy import CoreTrainReport, MLPolicy, needs_core_training, train_core
from policies.rules import RulePolicy
from policies.ted import TedConfig
from safety.audit import AuditLog

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Project:
    """A loaded project: its files, its kefu.yml and where its trained artefacts live."""

    files: ProjectFiles
    config: ProjectConfig
    data_dir: Path

    @property
    def root(self) -> Path:
        return self.files.root

    @property
    def nlu_dir(self) -> Path:
        return self.data_dir / "models" / "nlu"

    @property
    def static_e5_dir(self) -> Path:
        """The static e5 table of `nlu.dense_embedder: static`."""
        return self.data_dir / "models" / "static-e5"

    @property
    def core_dir(self) -> Path:
        return self.data_dir / "models" / "core"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def reward_dir(self) -> Path:
        return self.data_dir / "models" / "reward"

    @property
    def generator_dir(self) -> Path:
        return self.data_dir / "models" / "generator"

    @property
    def toxicity_dir(self) -> Path:
        return self.data_dir / "models" / "safety"

    @property
    def harm_model_dir(self) -> Path:
        return self.data_dir / "models" / "harm"

    @property
    def fallback_threshold(self) -> float:
        configured = self.config.nlu.fallback_threshold
        return configured if configured is not None else (self.files.fallback_threshold or 0.3)


def open_project(path: Path, settings: Settings) -> Project:
    root = path.resolve()
    if not root.is_dir():
        raise ProjectError(f"project folder {path} does not exist; `kefu init {path}` writes a starter project")
    files = load_project(root)
    for warning in validate(files):
        log.warning("%s", warning)
    return Project(files, load_project_config(root), settings.data_dir or root / ".kefu")


@dataclass(frozen=True, slots=True)
class TrainSummary:
    """What `train` did: a report per part it trained, None for a part that was up to date or not asked."""

    nlu: TrainReport | None = None
    core: CoreTrainReport | None = None
    harm: bool = False  # the harm model was trained


def train(
    project: Project,
    *,
    force: bool = False,
    progress: bool = True,
    parts: Collection[str] = ("nlu", "core", "knowledge", "harm"),
) -> TrainSummary:
    """Train the `parts` that changed: "nlu" (the NLU model), "core" (the ML dialogue policy), "knowledge"
    (the retrieval index) and "harm" (the harmful-request classifier)."""
    nlu = project.config.nlu
    e5 = E5Embedder()
    embedder = nlu_embedder(project, e5, distill="nlu" in parts and nlu.backend == "kefu", progress=progress)
    nlu_report = core_report = None
    stale = force or needs_training(
        project.files.nlu,
        project.nlu_dir,
        embedder=embedder,
        entity_names=project.files.domain.entities,
        config=_network(project),
        seed=nlu.seed,
    )
    if "nlu" in parts and stale and nlu.backend == "kefu":
        nlu_report = train_project_nlu(
            project, project.files.nlu, project.nlu_dir, embedder=embedder, progress=progress
        )
    if "core" in parts and project.config.dialogue.ml_policy:
        core_report = _train_core(project, force=force, progress=progress)
    if "knowledge" in parts:
        knowledge_base(project, e5).reload(progress=progress)
    harm = "harm" in parts and train_harm_model(
        project.config.safety,
        project.root,
        project.harm_model_dir,
        [example.text for example in project.files.nlu.examples],
        embedder=embedder if nlu.dense_features else None,
        force=force,
        progress=_say if progress else None,
    )
    return TrainSummary(nlu_report, core_report, harm)


def _say(text: str) -> None:
    print(text, file=sys.stderr)


def _train_core(project: Project, *, force: bool, progress: bool) -> CoreTrainReport | None:
    files, dialogue = project.files, project.config.dialogue
    config, seed = TedConfig(epochs=dialogue.core_epochs), dialogue.core_seed
    if not force and not needs_core_training(
        files.stories, files.rules, files.domain, project.core_dir, seed=seed, config=config
    ):
        return None
    return train_core(
        files.stories, files.rules, files.domain, project.core_dir, seed=seed, config=config, progress=progress
    )


def train_project_nlu(
    project: Project, data: NluData, model_dir: Path, *, embedder: Embedder | None, progress: bool
) -> TrainReport:
    """Train an NLU on `data` (the project's own, or a cross-validation fold) with the project's settings."""
    return train_nlu(
        data,
        model_dir,
        embedder=embedder,
        seed=project.config.nlu.seed,
        progress=progress,
        entity_names=project.files.domain.entities,
        config=_network(project),
        calibrate=project.config.nlu.calibrate,
    )


def project_nlu(
    project: Project,
    model_dir: Path | None = None,
    *,
    embedder: Embedder | None = None,
    settings: Settings | None = None,
) -> TrainedNlu | RasaHttpNlu:
    """The project's NLU as the bot runs it, over `model_dir` (default: the project's trained model)."""
    nlu = project.config.nlu
    if nlu.backend == "rasa" and nlu.rasa_url:
        token = settings.rasa_token if settings is not None else None
        return RasaHttpNlu(
            nlu.rasa_url,
            timeout=nlu.rasa_timeout,
            token=None if token is None else token.get_secret_value(),
            fallback_threshold=project.fallback_threshold,
        )
    return TrainedNlu(
        model_dir or project.nlu_dir,
        embedder=(embedder or nlu_embedder(project)) if nlu.dense_features else None,
        fallback_threshold=project.fallback_threshold,
        rule_dimensions=rule_dimensions(project),
        max_chars=nlu.max_chars,
    )


def nlu_embedder(
    project: Project, e5: Embedder | None = None, *, distill: bool = False, progress: bool = False
) -> Embedder | None:
    """The NLU's dense-feature embedder as kefu.yml says: none, e5 itself (`e5`, when given, is shared with the
    knowledge base) or the static table, distilled from e5 first when `distill` and it is missing or stale."""
    nlu = project.config.nlu
    if not nlu.dense_features:
        return None
    teacher = e5 or E5Embedder()
    if nlu.dense_embedder == "e5":
        return teacher
    texts = [example.text for example in project.files.nlu.examples] if distill else None
    return static_embedder_for(
        project.static_e5_dir, teacher=teacher, top_k=nlu.static_vocabulary, texts=texts, progress=progress
    )


def _network(project: Project) -> NetworkConfig:
    return NetworkConfig(epochs=project.config.nlu.epochs)


def rule_dimensions(project: Project) -> tuple[str, ...]:
    """The rule extractors to run: as configured, else those the domain declares as entities."""
    configured = project.config.nlu.rule_entities
    if configured is not None:
        return tuple(configured)
    return tuple(name for name in RULE_DIMENSIONS if name in project.files.domain.entities)


@dataclass
class Runtime:
    """A running bot and what must be closed with it."""

    project: Project
    bot: Bot
    embedded: EmbeddedRedis | None
    generator: Generator | None
    knowledge: KnowledgeBase | None = None
    desk: HandoffDesk | None = None

    def warm_up_generator_in_background(self) -> None:
        """The LLM loads in the background: exact answers work at once, generated ones once it is ready."""
        warm = getattr(self.generator, "warm_up", None)
        if callable(warm):
            threading.Thread(target=_quiet(warm), name="generator-warm-up", daemon=True).start()

    async def aclose(self) -> None:
        if self.desk is not None:
            await self.desk.notifier.close()
        await self.bot.store.close()
        if self.embedded is not None:
            self.embedded.stop()


def build_runtime(project: Project, settings: Settings) -> Runtime:
    """Everything wired; nothing heavy loaded yet (`bot.warm_up()` does that)."""
    wired = build_parts(project, settings)
    store, embedded = session_store(project, settings)
    labels = project.config.dialogue.clarify.labels
    desk = HandoffDesk(HandoffQueue(store.client), Notifier(store.client), store, project.files.domain, labels)
    bot = Bot(
        wired.parts,
        store,
        max_message_chars=settings.max_message_chars,
        warm_ups=wired.warm_ups,
        audit=wired.audit,
        handoffs=desk,
        rate_limiter=rate_limiter(store, settings),
    )
    return Runtime(project, bot, embedded, wired.generator, wired.retriever, desk)


def rate_limiter(store: RedisSessionStore, settings: Settings) -> RateLimiter | None:
    """The per-user limit of KEFU_RATE_LIMIT and the per-address one of KEFU_RATE_LIMIT_CLIENT on the sessions'
    Redis (shared by every process), or None when both are off."""
    rule, per_client = settings.rate_rule, settings.rate_rule_client
    if rule is None and per_client is None:
        return None
    return RateLimiter(store.client, rule, per_client=per_client)


@dataclass(frozen=True, slots=True)
class WiredParts:
    parts: TurnParts
    generator: ChatGenerator | None
    retriever: KnowledgeBase
    warm_ups: tuple[Callable[[], None], ...]
    audit: AuditLog | None


def build_parts(project: Project, settings: Settings) -> WiredParts:
    """The stages of a turn, without the session store (`kefu test safety` runs turns without Redis)."""
    config = project.config
    embedder = E5Embedder(backend=settings.e5_backend)
    dense = nlu_embedder(project, embedder)
    nlu = project_nlu(project, embedder=dense, settings=settings)
    retriever = knowledge_base(project, embedder)
    generator = generator_for(project, settings)
    domain = project.files.domain
    renderer = ResponseRenderer(domain)
    safety = _safety(project, retriever, embedder, dense)
    if generator is not None:
        prompts = generator.prompts
        register_instructions(safety, lambda: [prompts.instructions(lang) for lang in config.generator.languages])
    reranker = _reranker(project, generator, embedder)
    answer = AnswerAction(
        retriever, generator, renderer, _answer_options(config), checks=safety.candidate_checks, reranker=reranker
    )
    actions = _actions(project, renderer, answer)
    policies = dialogue_policies(project)
    recommend = recommend_stage(project, retriever)
    parts = TurnParts(domain, nlu, policies, actions, safety.input, safety.output, safety.abuse, recommend,
                      config.default_language)  # fmt: skip
    warm_ups = (nlu.warm_up, policies.warm_up, retriever.warm_up, safety.warm_up)
    extra = [*([reranker.warm_up] if reranker else []), *([recommend.recommender.warm_up] if recommend else [])]
    return WiredParts(parts, generator, retriever, (*warm_ups, *extra), safety.audit)


def recommend_stage(project: Project, knowledge: KnowledgeBase) -> RecommendStage | None:
    """Question recommendation from the knowledge base, as `kefu.yml`'s `recommend:` configures it."""
    config = project.config.recommend
    if not config.enabled:
        return None
    options = RecommendOptions(
        related=config.related, hot={lang: tuple(items) for lang, items in config.hot.items()},
        hot_count=config.hot_count, hot_days=config.hot_days, did_you_mean=config.did_you_mean,
        did_you_mean_min_score=config.did_you_mean_min_score, learning=config.learning, sync_every_s=config.sync_every,
        handoff_intents=tuple(project.config.dialogue.handoff.intents),
    )  # fmt: skip
    return RecommendStage(Recommender(knowledge, options, cache_dir=project.index_dir))


def knowledge_base(project: Project, embedder: Embedder) -> KnowledgeBase:
    """The project's knowledge folder as a reloadable `Retriever`, indexed under PROJECT/.kefu/index."""
    config = project.config.knowledge
    options = KnowledgeOptions(exact_threshold=config.exact_threshold, chunk_chars=config.chunk_chars)
    return KnowledgeBase(project.root / "knowledge", embedder, index_dir=project.index_dir, options=options)


def generator_for(project: Project, settings: Settings) -> ChatGenerator | None:
    """The configured chat model (local or OpenAI-compatible) with the project's prompts; None for `backend: none`."""
    config = project.config.generator
    if config.backend == "none":
        return None
    persona = Persona(config.brand or project.root.name, config.voice)
    prompts = PromptBuilder(project.root / "prompts", persona=persona, max_prompt_tokens=config.max_prompt_tokens)
    model: ChatModel
    if config.backend == "openai":
        assert config.base_url is not None  # the settings validated it
        key = settings.generator_api_key.get_secret_value() if settings.generator_api_key else None
        model = OpenAIChat(config.base_url, config.model, api_key=key, timeout=config.timeout, retries=config.retries)
    else:
        local = project.root / config.model  # a model folder inside the project, e.g. .kefu/models/generator
        reference = str(local) if config.model != PACKAGED_SMOLLM2 and local.is_dir() else config.model
        model = TransformersChat(reference, gguf_file=config.gguf_file, quantization=config.quantization)
    return ChatGenerator(model, prompts)


def _reranker(project: Project, generator: ChatGenerator | None, embedder: Embedder) -> RewardReranker | None:
    """The trained reward model when there is one and it is wanted; None means the heuristic ranking."""
    if generator is None or not project.config.generator.reward_model:
        return None
    if not (project.reward_dir / META_FILE).exists():
        return None
    return RewardReranker(RewardModel(project.reward_dir, embedder), generator.messages)


def _answer_options(config: ProjectConfig) -> AnswerOptions:
    generator = config.generator
    params = DecodingParams(
        max_new_tokens=generator.max_new_tokens,
        temperature=generator.temperature,
        top_p=generator.top_p,
        repetition_penalty=generator.repetition_penalty,
        frequency_penalty=generator.frequency_penalty,
        presence_penalty=generator.presence_penalty,
        stop=tuple(generator.stop),
        seed=generator.seed,
    )
    return AnswerOptions(
        min_score=config.knowledge.min_score,
        top_k=config.knowledge.top_k,
        generator_languages=tuple(generator.languages),
        candidates=generator.candidates,
        params=params,
        stream=generator.stream,
        deadline_s=generator.deadline,
    )


def _actions(project: Project, renderer: ResponseRenderer, answer: AnswerAction) -> dict[str, Action]:
    domain = project.files.domain
    actions: dict[str, Action] = {name: ResponseAction(name, renderer) for name in domain.responses}
    actions.update(_dialogue_actions(project, renderer))
    actions[answer.name] = answer
    python = load_python_actions(project.root / project.config.actions.module, renderer)
    # then kefu.yml's business-API actions and the action server's; a name two of these implement is an error
    actions.update(custom_actions(python, project.config.actions, domain, renderer, implemented=actions))
    missing = [name for name in domain.actions if name not in actions]
    if missing:
        log.warning("actions declared in domain.yml without an implementation (they will fail): %s", missing)
    return actions


def _dialogue_actions(project: Project, renderer: ResponseRenderer) -> dict[str, Action]:
    """Forms (with kefu.yml's validation) and the built-in fallback, clarification and handoff actions."""
    config = project.config.dialogue
    validators = load_validators(project.root / project.config.actions.module)
    apis = api_actions(project.config.actions.apis, renderer)
    actions: dict[str, Action] = {}
    for name, spec in project.files.domain.forms.items():
        rules = FormRules(config.forms.get(name, FormConfig()), validators, project.root, apis)
        rules.check()
        actions[name] = FormAction(spec, renderer, rules)
    unknown = sorted(set(config.forms) - set(actions))
    if unknown:
        raise ConfigError(f"kefu.yml: dialogue.forms names {unknown}, which domain.yml does not declare under `forms:`")
    clarify = _clarify_policy(config)
    builtins: list[Action] = [
        DefaultFallbackAction(renderer), AskRephraseAction(renderer), OfferHumanAction(renderer),
        CancelFormAction(renderer), HandoffAction(renderer),
        ClarifyAction(renderer, clarify.choices, config.clarify.labels),
    ]  # fmt: skip
    return {**actions, **{action.name: action for action in builtins}}


def _clarify_policy(config: DialogueConfig) -> ClarifyPolicy:
    clarify = config.clarify
    return ClarifyPolicy(margin=clarify.margin, min_confidence=clarify.min_confidence, exclude=clarify.exclude)


def dialogue_policies(project: Project, core_dir: Path | None = None) -> PolicyEnsemble:
    """Priorities: handoff 9, clarification 8, forms 7, rules 6, two-stage fallback 5, memoized stories 3,
    the ML policy 1; the most confident prediction wins and ties go to the higher priority."""
    config = project.config.dialogue
    files = project.files
    max_attempts = {name: form.max_attempts for name, form in config.forms.items()}
    policies: list[Policy] = [
        HandoffPolicy(intents=config.handoff.intents, categories=config.handoff.categories),
        FormPolicy(cancel_intents=config.cancel_intents, max_attempts=max_attempts),
        RulePolicy(files.rules),
        TwoStageFallbackPolicy(offer_after=config.handoff.offer_after),
        RulePolicy(files.stories, name="memoization", priority=3, windows=True),
    ]
    if config.clarify.enabled:
        policies.append(_clarify_policy(config))
    if config.ml_policy:
        policies.append(MLPolicy(core_dir or project.core_dir))
    return PolicyEnsemble(policies)


def _safety(project: Project, retriever: KnowledgeBase, embedder: Embedder, dense: Embedder | None) -> SafetyStage:
    def products(text: str) -> frozenset[str]:
        return frozenset(e.entity_id for e in retriever.graph.link(text) if e.type == "product")

    paths = SafetyPaths(project.root, project.toxicity_dir, project.data_dir / "audit", project.harm_model_dir)
    flags = bool(project.config.dialogue.handoff.categories)
    return safety_stage(
        project.config.safety, paths, embedder=embedder, harm_embedder=dense, names=products, flags=flags
    )


def session_store(project: Project, settings: Settings) -> tuple[RedisSessionStore, EmbeddedRedis | None]:
    domain_session = project.files.domain.session
    carried = project.config.dialogue.carry_over_slots
    options = StoreOptions(
        expiration_s=domain_session.expiration_minutes * 60,
        carry_over_slots=domain_session.carry_over_slots if carried is None else tuple(carried),
    )
    if settings.redis_url:
        described = f"Redis at {describe_url(settings.redis_url)}"
        return RedisSessionStore(client_for_url(settings.redis_url), options, describe=described), None
    embedded = EmbeddedRedis(project.data_dir / "redis")
    socket = embedded.start()
    return RedisSessionStore(client_for_socket(socket), options, describe="the embedded Redis"), embedded


def _quiet(function: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        try:
            function()
        except Exception:  # a failed background load is logged; generated answers then fall back to facts
            log.exception("generator warm-up failed")

    return run
