"""Wires the safety stage from `kefu.yml`: which checks screen the customer's message, which screen every
reply, which screen generated candidates, and where verdicts are audited."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.errors import ConfigError
from bot.protocols import Embedder, SafetyCheck
from bot.settings import SafetyConfig
from safety.abuse import AbuseRule
from safety.audit import AuditLog
from safety.claims import Names
from safety.compliance import ComplianceCheck, industry_pack, load_rules
from safety.flags import FlagCheck
from safety.grounding import GroundingCheck
from safety.harm import HarmfulRequestCheck
from safety.harm_model import HarmModelCheck, harm_model_exists
from safety.harm_train import train_if_stale, training_examples
from safety.injection import InjectionCheck
from safety.leakage import PromptLeakCheck
from safety.lexicon import LexiconCheck
from safety.pii import PiiMasker
from safety.pipeline import SafetyPipeline
from safety.privacy import PiiLeakCheck
from safety.toxicity import ToxicityCheck, toxicity_model_exists
from safety.toxicity_train import Progress

COMPLIANCE_FILE = "compliance.yml"
HARM_EXAMPLES_FILE = "harm_examples.csv"


@dataclass(frozen=True, slots=True)
class SafetyStage:
    input: SafetyPipeline
    output: SafetyPipeline
    candidate_checks: tuple[SafetyCheck, ...]  # grounding first, then the output checks
    abuse: AbuseRule
    audit: AuditLog | None
    prompt_leak: PromptLeakCheck | None  # the runtime registers the generator's instructions with it

    def warm_up(self) -> None:
        self.input.warm_up()
        self.output.warm_up()


@dataclass(frozen=True, slots=True)
class SafetyPaths:
    root: Path  # the project
    toxicity_dir: Path
    audit_dir: Path
    harm_model_dir: Path | None = None


def safety_stage(
    config: SafetyConfig,
    paths: SafetyPaths,
    *,
    embedder: Embedder | None = None,
    harm_embedder: Embedder | None = None,
    names: Names | None = None,
    flags: bool = True,
) -> SafetyStage:
    """The checks `config` turns on, in order: masking first, so every later check (and every log) sees
    masked text; on output, leaks of someone else's data before the customer's own is masked.
    `harm_embedder` is the harm model's (the NLU's, whose embedding of the same text a turn needs anyway)."""
    shared: list[SafetyCheck] = []
    if config.lexicon:
        shared.append(LexiconCheck.default([paths.root / p for p in config.lexicons]))
    toxicity = _toxicity(config, paths.toxicity_dir, embedder)
    compliance = _compliance(config, paths.root)
    leak = PromptLeakCheck(()) if config.prompt_leak else None
    masker: list[SafetyCheck] = [PiiMasker()] if config.pii else []
    inputs: list[SafetyCheck] = [*masker, *([InjectionCheck()] if config.injection else [])]
    inputs += [*([HarmfulRequestCheck()] if config.harm else []), *_harm_model(config, paths, harm_embedder)]
    inputs += [*compliance, *shared]
    inputs += [*toxicity, *([FlagCheck.default()] if flags else [])]
    outputs: list[SafetyCheck] = [*([PiiLeakCheck()] if config.pii_leak else []), *masker, *compliance, *shared]
    outputs += [*toxicity, *([leak] if leak is not None else [])]
    actions = dict(config.actions)
    return SafetyStage(
        input=SafetyPipeline(inputs, actions=actions),
        output=SafetyPipeline(outputs, actions=actions),
        candidate_checks=(GroundingCheck(names), *outputs),
        abuse=AbuseRule(
            frozenset(config.abuse.categories),
            config.abuse.limit,
            config.abuse.then,
            config.abuse.cooldown_minutes * 60,
        ),
        audit=AuditLog(paths.audit_dir) if config.audit else None,
        prompt_leak=leak,
    )


def _toxicity(config: SafetyConfig, directory: Path, embedder: Embedder | None) -> list[SafetyCheck]:
    if config.toxicity == "off" or (config.toxicity == "auto" and not toxicity_model_exists(directory)):
        return []
    if not toxicity_model_exists(directory):
        raise ConfigError(
            f"safety.toxicity is 'on' but no classifier is trained in {directory}; "
            "run `kefu train safety PROJECT` (it needs the COLD data set) or set safety.toxicity: auto"
        )
    return [ToxicityCheck(directory, embedder=embedder, threshold=config.toxicity_threshold)]


def _harm_model(config: SafetyConfig, paths: SafetyPaths, embedder: Embedder | None) -> list[SafetyCheck]:
    directory = paths.harm_model_dir
    if not config.harm or config.harm_model == "off" or directory is None:
        return []
    if not harm_model_exists(directory):
        if config.harm_model == "on":
            raise ConfigError(f"safety.harm_model is 'on' but no model is trained in {directory}; run `kefu train`")
        return []
    return [HarmModelCheck(directory, embedder=embedder, threshold=config.harm_model_threshold)]


def train_harm_model(
    config: SafetyConfig,
    root: Path,
    out_dir: Path,
    harmless: Sequence[str],
    *,
    embedder: Embedder | None,
    force: bool = False,
    progress: Progress | None = None,
) -> bool:
    """Train the harm model when `config` uses it and its data or settings changed: kefu's examples, the
    project's harm_examples.csv and `harmless` (the NLU's examples). True when it trained."""
    if not config.harm or config.harm_model == "off":
        return False
    examples = training_examples(root / HARM_EXAMPLES_FILE, harmless)
    return train_if_stale(examples, out_dir, embedder=embedder, force=force, progress=progress) is not None


def _compliance(config: SafetyConfig, root: Path) -> list[SafetyCheck]:
    files = [industry_pack(industry) for industry in config.industries]
    own = root / (config.compliance or COMPLIANCE_FILE)
    if config.compliance is not None or own.is_file():
        files.append(own)
    return [ComplianceCheck(load_rules(files))] if files else []


def register_instructions(stage: SafetyStage, instructions: Callable[[], Sequence[str]]) -> None:
    """Protect the generator's system prompt (per language) from being repeated in a reply."""
    if stage.prompt_leak is not None:
        stage.prompt_leak.add_protected(list(instructions()))
