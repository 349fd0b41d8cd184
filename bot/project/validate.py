"""Check that a loaded project's files agree with each other.

Hard errors (one ProjectError naming the first problem's file and line, listing the others): an intent
used in NLU data, rules, stories or test stories but not declared in the domain; an action in a rule or
story that is not a response, a form, a declared action or a built-in; a form's required slot that is
not declared under `slots:`. Everything else that looks wrong but still runs comes back as warnings.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator

from bot.errors import ProjectError
from bot.project.files import ProjectFiles
from bot.types import KEFU_ACTIONS, REQUESTED_SLOT, Domain, Story, StoryStep

# Rasa's default actions, plus kefu's own (handoff, knowledge answers, clarification, form cancelling).
BUILTIN_ACTIONS = frozenset({
    "action_listen", "action_restart", "action_session_start", "action_default_fallback",
    "action_deactivate_loop", "action_revert_fallback_events", "action_default_ask_affirmation",
    "action_default_ask_rephrase", "action_two_stage_fallback", "action_unlikely_intent", "action_back",
    "action_extract_slots", *KEFU_ACTIONS,
})  # fmt: skip
# Intents Rasa adds to every domain; rules may use them without declaring them.
BUILTIN_INTENTS = frozenset({"nlu_fallback", "restart", "back", "out_of_scope", "session_start"})


def validate(project: ProjectFiles) -> list[str]:
    """Raise ProjectError for the hard errors; return warnings ("file:line: message") for the rest."""
    errors = [*_intent_errors(project), *_action_errors(project), *_form_errors(project)]
    if errors:
        first = errors[0]
        rest = "".join(f"\n{error}" for error in errors[1:])
        more = f"\n(and {len(errors) - 1} more:){rest}" if rest else ""
        raise ProjectError(f"{_message(first)}{more}", path=first.path, line=first.line)
    return [
        *_intent_warnings(project),
        *_entity_warnings(project),
        *_slot_warnings(project),
        *_form_warnings(project),
        *_response_warnings(project),
    ]


def _message(error: ProjectError) -> str:
    location = error.path if error.line is None else f"{error.path}:{error.line}"
    return str(error).removeprefix(f"{location}: ")


def _domain_file(project: ProjectFiles) -> str:
    """How to name the domain in a fix: the single file, or the folder."""
    names = [file.relative_to(project.root).as_posix() for file in project.files if file.is_relative_to(project.root)]
    return next((name for name in names if name.startswith("domain.")), "a file of domain/")


def _steps(project: ProjectFiles) -> Iterator[tuple[Story, StoryStep]]:
    for story in (*project.rules, *project.stories, *project.test_stories):
        for step in (*story.conditions, *story.steps):
            yield story, step


def _where(project: ProjectFiles, name: str, line: int) -> str:
    return f"{project.path_of(name)}:{line}"


def _declared_at(project: ProjectFiles, *key: str) -> str:
    path, line = project.locations.get(key, (_domain_file(project), 0))
    return f"{path}:{line}" if line else path


def _hint(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean `{close[0]}`?)" if close else ""


# --- hard errors ---


def _known_intent(domain: Domain, intent: str) -> bool:
    # A retrieval intent `faq/ask_price` is covered by `faq` in the domain, as in Rasa.
    return intent in domain.intents or intent in BUILTIN_INTENTS or intent.split("/", 1)[0] in domain.intents


def _intent_errors(project: ProjectFiles) -> Iterator[ProjectError]:
    domain, fix = project.domain, f"add it under `intents:` in {_domain_file(project)}"
    reported: set[str] = set()
    for index, example in enumerate(project.nlu.examples):
        if not _known_intent(domain, example.intent) and example.intent not in reported:
            reported.add(example.intent)
            path = project.path_of(project.nlu_sources[index]) if index < len(project.nlu_sources) else None
            message = f"intent `{example.intent}` is not in the domain{_hint(example.intent, domain.intents)}; {fix}"
            yield ProjectError(message, path=None if path is None else str(path), line=example.line)
    for story, step in _steps(project):
        if step.kind in ("intent", "user") and step.name is not None and not _known_intent(domain, step.name):
            message = f"intent `{step.name}` is not in the domain{_hint(step.name, domain.intents)}; {fix}"
            yield ProjectError(message, path=str(project.path_of(story.source)), line=step.line)


def known_action(domain: Domain, name: str) -> bool:
    """Whether `name` is a response, form, declared action, built-in, or a retrieval intent's `utter_`."""
    if name in BUILTIN_ACTIONS or domain.is_known_action(name):
        return True
    return name.startswith("utter_") and any(response.startswith(f"{name}/") for response in domain.responses)


def _action_errors(project: ProjectFiles) -> Iterator[ProjectError]:
    domain, file = project.domain, _domain_file(project)
    for story, step in _steps(project):
        if step.kind != "action" or step.name is None or known_action(domain, step.name):
            continue
        name = step.name
        if name.startswith("utter_"):
            hint = _hint(name, domain.responses)
            fix = f"add a response `{name}` under `responses:` in {file}"
        else:
            hint = _hint(name, [*domain.actions, *domain.forms, *BUILTIN_ACTIONS])
            fix = f"declare it under `actions:` in {file} (a custom action) or define a form `{name}` under `forms:`"
        message = f"action `{name}` is not in the domain{hint}; {fix}"
        yield ProjectError(message, path=str(project.path_of(story.source)), line=step.line)


def _form_errors(project: ProjectFiles) -> Iterator[ProjectError]:
    domain = project.domain
    for form in domain.forms.values():
        for slot in form.required_slots:
            if slot in domain.slots:
                continue
            path, line = project.locations.get(("form_slot", form.name, slot), (None, None))
            message = (
                f"form `{form.name}` requires slot `{slot}`, which is not declared{_hint(slot, domain.slots)}; "
                f"add it under `slots:` in {_domain_file(project)} with a `type:` and `mappings:`"
            )
            yield ProjectError(message, path=path, line=line)


# --- warnings ---


def _intent_warnings(project: ProjectFiles) -> Iterator[str]:
    with_examples = {example.intent.split("/", 1)[0] for example in project.nlu.examples}
    with_examples |= {example.intent for example in project.nlu.examples}
    for intent in project.domain.intents:
        if intent not in with_examples and intent not in BUILTIN_INTENTS:
            where = _declared_at(project, "intent", intent)
            yield f"{where}: intent `{intent}` has no NLU examples; add some under `nlu:` in data/"


def _entity_warnings(project: ProjectFiles) -> Iterator[str]:
    declared = set(project.domain.entities)
    for index, example in enumerate(project.nlu.examples):
        source = project.nlu_sources[index] if index < len(project.nlu_sources) else ""
        for entity in example.entities:
            if entity.name not in declared:
                yield f"{_where(project, source, example.line)}: entity `{entity.name}` is not under `entities:`"
    for story, step in _steps(project):
        for entity in step.entities:
            if entity.name not in declared:
                yield f"{_where(project, story.source, step.line)}: entity `{entity.name}` is not under `entities:`"


def _slot_warnings(project: ProjectFiles) -> Iterator[str]:
    domain = project.domain
    for story, step in _steps(project):
        where = _where(project, story.source, step.line)
        for name in step.slots:
            if name not in domain.slots and name != REQUESTED_SLOT:  # Rasa's built-in slot of forms
                yield f"{where}: slot `{name}` is not declared under `slots:`"
        if step.kind == "active_loop" and step.name is not None and not known_action(domain, step.name):
            yield f"{where}: `active_loop: {step.name}` names no form; define it under `forms:`"
    for slot in domain.slots.values():
        where = _declared_at(project, "slot", slot.name)
        for mapping in slot.mappings:
            if mapping.entity is not None and mapping.entity not in domain.entities:
                yield f"{where}: slot `{slot.name}` maps from entity `{mapping.entity}`, not under `entities:`"
            for intent in (*mapping.intent, *mapping.not_intent):
                if not _known_intent(domain, intent):
                    yield f"{where}: a mapping of slot `{slot.name}` names intent `{intent}`, not under `intents:`"
            if mapping.active_loop is not None and mapping.active_loop not in domain.forms:
                yield f"{where}: a mapping of slot `{slot.name}` names `{mapping.active_loop}`, which is no form"


def _form_warnings(project: ProjectFiles) -> Iterator[str]:
    domain = project.domain
    for form in domain.forms.values():
        for slot in form.required_slots:
            questions = (f"utter_ask_{form.name}_{slot}", f"utter_ask_{slot}", f"action_ask_{form.name}_{slot}",
                         f"action_ask_{slot}")  # fmt: skip
            if not any(domain.is_known_action(question) for question in questions):
                where = _declared_at(project, "form_slot", form.name, slot)
                yield f"{where}: form `{form.name}` has no question for `{slot}`; add a response `utter_ask_{slot}`"


def _response_warnings(project: ProjectFiles) -> Iterator[str]:
    domain = project.domain
    for name, variations in domain.responses.items():
        where = _declared_at(project, "response", name)
        for variation in variations:
            for condition in variation.conditions:
                if condition.slot not in domain.slots:
                    yield f"{where}: response `{name}` has a condition on slot `{condition.slot}`, not under `slots:`"
