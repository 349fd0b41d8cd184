"""One session's events, gathered once for the summary: what the customer said, what the bot said and did,
the slots, forms, flags and feedback. Also the masking and trimming every extracted text goes through."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from bot.events import (
    ActionExecuted,
    BotUttered,
    Event,
    FeedbackGiven,
    FormActivated,
    FormCompleted,
    HandedOff,
    RiskFlagged,
    SafetyBlocked,
    SessionStarted,
    SlotRejected,
    SlotSet,
    TurnFailed,
    UserUttered,
)
from bot.types import FALLBACK_INTENT, LANGUAGE_SLOT, Language, SlotValue
from safety.pii import mask_pii

FormStatus = Literal["in_progress", "completed", "cancelled"]
Labels = Mapping[str, Mapping[Language, str]]  # intent -> {language: label}, as kefu.yml's dialogue.clarify.labels

_HAN = re.compile(r"[\u3400-\u9fff]")
_SPACES = re.compile(r"\s+")


@dataclass(slots=True)
class FormRun:
    """One activation of a form, and how it ended."""

    name: str
    at: int  # how many bot replies preceded it: where it goes among them
    status: FormStatus = "in_progress"
    rejected: int = 0  # answers the form's validation refused


@dataclass(slots=True)
class SessionView:
    """The latest session, sorted by kind; `replies` pairs each bot message with the action that said it."""

    user: list[UserUttered] = field(default_factory=list)
    replies: list[tuple[str, BotUttered]] = field(default_factory=list)
    values: dict[str, list[SlotValue]] = field(default_factory=dict)  # each slot's values, refused ones dropped
    rejected: set[tuple[str, str]] = field(default_factory=set)  # (slot, value) a form's validation refused
    language_slot: str | None = None
    forms: list[FormRun] = field(default_factory=list)
    flags: list[RiskFlagged] = field(default_factory=list)
    blocked: list[SafetyBlocked] = field(default_factory=list)
    feedback: list[FeedbackGiven] = field(default_factory=list)
    handoff: str | None = None
    failures: int = 0

    @property
    def slots(self) -> dict[str, SlotValue]:
        """The last accepted value of each slot; a slot cleared later (a finished return) keeps it."""
        return {name: values[-1] for name, values in self.values.items() if values}

    @property
    def intents(self) -> list[str]:
        return [m.nlu.intent for m in self.user if m.nlu is not None]

    @property
    def fallbacks(self) -> int:
        return sum(1 for intent in self.intents if intent == FALLBACK_INTENT)

    def customer_text(self) -> str:
        """Everything the customer typed (button payloads left out), masked, lower-cased: for the lexicons."""
        return masked(" ".join(m.text for m in self.user if not m.text.startswith("/"))).lower()


def latest_session(events: Iterable[Event]) -> list[Event]:
    """The events after the last SessionStarted (slots carried into the new session included)."""
    events = list(events)
    starts = [i for i, e in enumerate(events) if isinstance(e, SessionStarted)]
    return events[starts[-1] + 1 :] if starts else events


def view_of(events: Sequence[Event]) -> SessionView:
    """Sort one session's events into a view, in one pass."""
    view = SessionView()
    action = ""
    for event in events:
        match event:
            case UserUttered():
                view.user.append(event)
                action = ""
            case ActionExecuted(name=name):
                action = name
            case BotUttered():
                view.replies.append((action, event))
            case SlotSet(name=name, value=value):
                if name == LANGUAGE_SLOT:
                    view.language_slot = str(value) if value else view.language_slot
                elif value is not None and value != [] and value != "":
                    view.values.setdefault(name, []).append(value)
            case FormActivated(name=name):
                view.forms.append(FormRun(name, len(view.replies)))
            case FormCompleted(name=name, cancelled=cancelled):
                runs = [run for run in view.forms if run.name == name]
                if not runs:  # activated in an earlier session
                    runs.append(FormRun(name, len(view.replies)))
                    view.forms.append(runs[-1])
                runs[-1].status = "cancelled" if cancelled else "completed"
            case SlotRejected(name=name, value=value):
                # slot filling set the value before the form's validation refused it: it is no fact
                values = view.values.get(name, [])
                if value in values:
                    del values[max(i for i, v in enumerate(values) if v == value)]
                view.rejected.add((name, str(value)))
                for run in view.forms:
                    if run.status == "in_progress":
                        run.rejected += 1
            case RiskFlagged():
                view.flags.append(event)
            case SafetyBlocked():
                view.blocked.append(event)
            case FeedbackGiven():
                view.feedback.append(event)
            case HandedOff(reason=reason):
                view.handoff = reason
            case TurnFailed():
                view.failures += 1
    return view


def conversation_language(view: SessionView) -> Language:
    """The language slot, else the NLU's most frequent language, else whether the customer wrote Chinese."""
    if view.language_slot in ("zh", "en"):
        return "zh" if view.language_slot == "zh" else "en"
    languages = [m.nlu.language for m in view.user if m.nlu is not None]
    if languages:
        return max(("zh", "en"), key=languages.count)  # a tie goes to zh, kefu's default
    return "zh" if any(_HAN.search(m.text) for m in view.user) else "en"


def masked(text: str) -> str:
    """`text` with personal data masked: everything a summary takes from a conversation goes through here."""
    return mask_pii(text)[0]


def width(text: str) -> int:
    """Display width: a Han character takes the room of two Latin ones."""
    return len(text) + len(_HAN.findall(text))


def trimmed(text: str, limit: int) -> str:
    """`text` on one line, cut to `limit` display columns with an ellipsis."""
    text = _SPACES.sub(" ", text).strip()
    if width(text) <= limit:
        return text
    cut, used = [], 0
    for ch in text:
        used += width(ch)
        if used > limit - 1:
            break
        cut.append(ch)
    return "".join(cut).rstrip(" ,，、;；") + "…"


def label_of(name: str, table: Labels, language: Language) -> str:
    """The readable label of an intent (or slot, form) in `language`, else its name with spaces."""
    labels = table.get(name, {})
    return labels.get(language) or next(iter(labels.values()), "") or name.replace("_", " ")


def joined(items: Iterable[str], language: Language) -> str:
    return ("、" if language == "zh" else ", ").join(items)


def terms_of(flag: RiskFlagged) -> list[str]:
    """The lexicon terms a flag names ("risk: 起诉, 律师函"), masked."""
    _, _, terms = flag.reason.partition(":")
    return [masked(t.strip()) for t in terms.split(",") if t.strip()]
