"""Compliance rules per industry: what a reply must never say (a guaranteed return, a loan approval, a refund
outside the policy), kept as YAML in kefu (industry packs) and in the project (`compliance.yml`).

    rules:
      - id: no_guaranteed_returns
        industry: finance
        description: No promise of returns or of the principal (资管新规)
        stage: output               # output (default), input or both
        patterns: ['保本保息', 'guaranteed (returns?|profits?)']
        unless: ['不(保证|承诺)收益']  # a match inside a disclaimer is fine
        unless_in_facts: true       # fine when the retrieved facts say the same (the policy itself)
        action: replace             # block, replace (with `reply`) or escalate
        reply: {zh: ..., en: ...}

Patterns are regular expressions, matched ignoring case on text folded to half width.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from bot.errors import ProjectError
from bot.events import Session
from bot.types import LANGUAGE_SLOT, Fact, Language, SafetyVerdict, Stage, VerdictAction
from safety.aho_corasick import fold

RuleAction = Literal["block", "replace", "escalate"]
_ACTIONS: tuple[RuleAction, ...] = ("block", "replace", "escalate")
_STAGES = ("input", "output", "both")
_KEYS = {"id", "industry", "description", "stage", "patterns", "unless", "unless_in_facts", "action", "reply"}


@dataclass(frozen=True, slots=True)
class ComplianceRule:
    id: str
    industry: str
    patterns: tuple[re.Pattern[str], ...]
    unless: tuple[re.Pattern[str], ...] = ()
    unless_in_facts: bool = True
    stages: frozenset[str] = frozenset({"output"})
    action: RuleAction = "replace"
    reply: tuple[tuple[Language, str], ...] = ()
    description: str = ""

    def violation(self, folded: str, facts: str) -> str | None:
        """The offending phrase, or None when the rule is kept."""
        for pattern in self.patterns:
            for match in pattern.finditer(folded):
                context = folded[max(0, match.start() - 12) : match.end() + 12]
                if any(u.search(context) for u in self.unless):
                    continue
                if self.unless_in_facts and pattern.search(facts):
                    continue
                return match.group(0)
        return None

    def reply_in(self, language: Language) -> str | None:
        texts = dict(self.reply)
        return texts.get(language) or next(iter(texts.values()), None)


def industry_pack(industry: str) -> Path:
    """The YAML of rules kefu ships for an industry (finance, ecommerce)."""
    data = resources.files("safety") / "data" / "compliance"
    path = Path(str(data / f"{industry}.yml"))
    if not path.is_file():
        known = sorted(p.stem for p in Path(str(data)).glob("*.yml"))
        raise ProjectError(f"no compliance rules for industry {industry!r}; kefu ships: {', '.join(known)}")
    return path


def load_rules(paths: Iterable[Path]) -> list[ComplianceRule]:
    """Read rule files in order (a later file's rule replaces an earlier one with its id); a malformed rule
    raises ProjectError naming the file and the rule."""
    rules: list[ComplianceRule] = []
    for path in paths:
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except FileNotFoundError as err:
            raise ProjectError("compliance rules file not found", path=str(path)) from err
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            raise ProjectError(f"cannot read compliance rules (YAML, UTF-8): {err}", path=str(path)) from err
        entries = document.get("rules") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise ProjectError("expected a top-level 'rules:' list", path=str(path))
        own: dict[str, ComplianceRule] = {}
        for index, entry in enumerate(entries, start=1):
            rule = _rule(entry, str(path), index)
            if rule.id in own:
                raise ProjectError(f"rule id {rule.id!r} is defined twice; ids must be unique", path=str(path))
            own[rule.id] = rule
        rules = [r for r in rules if r.id not in own] + list(own.values())  # a later file overrides by id
    return rules


def _rule(entry: Any, path: str, index: int) -> ComplianceRule:
    where = f"rule {index}"
    if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or not entry["id"]:
        raise ProjectError(f"{where}: each rule is a mapping with an 'id'", path=path)
    where = f"rule {entry['id']!r}"
    unknown = set(entry) - _KEYS
    if unknown:
        raise ProjectError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(_KEYS)}", path=path)
    action, stage = entry.get("action", "replace"), entry.get("stage", "output")
    if action not in _ACTIONS:
        raise ProjectError(f"{where}: action must be one of {', '.join(_ACTIONS)}", path=path)
    if stage not in _STAGES:
        raise ProjectError(f"{where}: stage must be one of {', '.join(_STAGES)}", path=path)
    reply = entry.get("reply") or {}
    if not isinstance(reply, dict) or set(reply) - {"zh", "en"}:
        raise ProjectError(f"{where}: reply is a mapping of zh/en texts", path=path)
    if action == "replace" and not reply:
        raise ProjectError(f"{where}: action 'replace' needs a 'reply' with zh and/or en text", path=path)
    return ComplianceRule(
        id=entry["id"],
        industry=str(entry.get("industry", "")),
        patterns=_patterns(entry.get("patterns"), f"{where}: patterns", path, required=True),
        unless=_patterns(entry.get("unless"), f"{where}: unless", path, required=False),
        unless_in_facts=bool(entry.get("unless_in_facts", True)),
        stages=frozenset({"input", "output"} if stage == "both" else {stage}),
        action=action,
        reply=tuple((lang, str(text)) for lang, text in reply.items()),
        description=str(entry.get("description", "")),
    )


def _patterns(raw: Any, where: str, path: str, *, required: bool) -> tuple[re.Pattern[str], ...]:
    if raw is None and not required:
        return ()
    if not isinstance(raw, list) or not raw or not all(isinstance(p, str) and p for p in raw):
        raise ProjectError(f"{where} must be a non-empty list of regular expressions", path=path)
    try:
        return tuple(re.compile(p, re.IGNORECASE) for p in raw)
    except re.error as err:
        raise ProjectError(f"{where}: {err}", path=path) from err


class ComplianceCheck:
    """SafetyCheck applying the rules; the first broken rule decides (block, replace or escalate)."""

    name = "compliance"

    def __init__(self, rules: Sequence[ComplianceRule]) -> None:
        self.rules = tuple(rules)

    def warm_up(self) -> None:
        """Nothing to load: patterns compile when the rules are read."""

    def check(
        self, text: str, *, stage: Stage, session: Session | None = None, facts: Sequence[Fact] = ()
    ) -> SafetyVerdict:
        folded = fold(text)
        known = fold(" ".join(f.text for f in facts))
        for rule in self.rules:
            if stage not in rule.stages:
                continue
            phrase = rule.violation(folded, known)
            if phrase is None:
                continue
            action: VerdictAction = rule.action
            language: Language = "en" if session is not None and session.slots.get(LANGUAGE_SLOT) == "en" else "zh"
            reason = f"{rule.industry or 'project'} rule {rule.id}: {phrase!r}"
            return SafetyVerdict(self.name, stage, False, "compliance", reason, action=action, rule=rule.id,
                                 replacement=rule.reply_in(language))  # fmt: skip
        return SafetyVerdict(self.name, stage, True)
