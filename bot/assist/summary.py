"""会话摘要: a structured summary of a conversation for the human agent who takes it over, at handoff and at
the end: the customer's problem, key facts, what the bot tried, the sentiment, why it was handed off and a
suggested next step.

Extractive and rule-based by default (see `summary_extract` and `summary_signals`); a configured generator
may rewrite the problem into one sentence (`refine`), kept only when it is grounded on the customer's words;
operators correct it with `edit`. Everything taken from the conversation is masked (`safety.pii`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import jinja2

from bot.assist.summary_extract import bot_tried_of, key_facts_of, problem_of
from bot.assist.summary_signals import SENTIMENT_LABELS, Sentiment, handoff_text, next_step_of, sentiment_of
from bot.assist.summary_view import Labels, conversation_language, label_of, latest_session, masked, view_of, width
from bot.errors import GenerationError, KefuError
from bot.events import Event
from bot.generation.sentences import split_sentences
from bot.protocols import DecodingParams, Generator, PromptContext
from bot.types import Domain, Fact, Language
from safety.pii import find_pii

__all__ = [
    "ConversationSummary",
    "Sentiment",
    "SummaryError",
    "accept_refined",
    "edit",
    "refine",
    "render",
    "summarize",
]

log = logging.getLogger(__name__)

MAX_FIELD_WIDTH = 1000  # display columns an edited text field may take
MAX_REFINED_WIDTH = 200  # one sentence: about 100 Han characters or 200 Latin ones
REFINE_PARAMS = DecodingParams(max_new_tokens=64)


class SummaryError(KefuError, ValueError):
    """An edit, or a stored summary, that does not fit the summary's fields."""


@dataclass(frozen=True, slots=True)
class ConversationSummary:
    """What an agent reads before answering. Texts are in `language`, except the customer's quoted words.

    `extract` keeps the customer's own words that `problem` was taken from, also after a generator rewrote
    the problem (`refined`) or an agent edited the summary (`edited`).
    """

    language: Language
    problem: str
    topic: str = ""  # the main intent, readable
    intent: str = ""
    key_facts: tuple[tuple[str, str], ...] = ()  # (label, value)
    bot_tried: tuple[str, ...] = ()
    sentiment: Sentiment = field(default_factory=Sentiment)
    handoff_reason: str = ""  # readable; empty when the conversation was not handed off
    next_step: str = ""
    extract: str = ""
    refined: bool = False
    edited: bool = False

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["key_facts"] = [list(pair) for pair in self.key_facts]
        data["bot_tried"] = list(self.bot_tried)
        data["sentiment"] = {**dataclasses.asdict(self.sentiment), "evidence": list(self.sentiment.evidence)}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConversationSummary:
        """A summary from `to_dict`'s shape, validated as an edit is."""
        missing = {"language", "problem"} - set(data)
        if missing:
            raise SummaryError(f"a stored summary needs {', '.join(sorted(missing))}")
        return cls(**{name: _checked(name, value) for name, value in data.items()})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> ConversationSummary:
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as err:
            raise SummaryError(f"a stored summary is not JSON: {err}") from err
        if not isinstance(data, dict):
            raise SummaryError("a stored summary must be a JSON object")
        return cls.from_dict(data)


def summarize(
    events: Iterable[Event], domain: Domain, *, labels: Labels | None = None, language: Language | None = None
) -> ConversationSummary:
    """Summarise the latest session of a conversation (its events after the last SessionStarted).

    `labels` are readable intent names per language (kefu.yml's `dialogue.clarify.labels`); `language` is the
    summary's language, by default the conversation's.
    """
    view = view_of(latest_session(events))
    lang = language or conversation_language(view)
    problem, intent = problem_of(view)
    sentiment = sentiment_of(view, lang)
    return ConversationSummary(
        language=lang,
        problem=problem,
        topic=label_of(intent, labels or {}, lang) if intent else "",
        intent=intent,
        key_facts=key_facts_of(view, domain, lang),
        bot_tried=bot_tried_of(view, domain, lang),
        sentiment=sentiment,
        handoff_reason=handoff_text(view, labels or {}, lang),
        next_step=next_step_of(view, sentiment, lang),
        extract=problem,
    )


_SENTIMENT_WORDS: dict[Language, dict[str, str]] = {
    "zh": {"negative": "负面", "neutral": "中性", "positive": "正面"},
    "en": {"negative": "negative", "neutral": "neutral", "positive": "positive"},
}


def render(summary: ConversationSummary, language: Language | None = None) -> str:
    """The summary as a short text for an agent, with headings in `language` (default: the summary's).

    The fields stay in the summary's language: summarise in the agent's language to read it all in one.
    """
    lang = language or summary.language
    template = _templates().get_template(f"summary.{lang}.j2")
    quoted = summary.problem == summary.extract  # the customer's words, not a rewrite
    text = template.render(
        s=summary,
        quoted=quoted,
        feeling=_SENTIMENT_WORDS[lang][summary.sentiment.label],
        evidence=("；" if lang == "zh" else "; ").join(summary.sentiment.evidence),
    )
    return "\n".join(line for line in text.strip().splitlines() if line.strip())


@functools.cache
def _templates() -> jinja2.Environment:
    folder = resources.files("bot.assist") / "templates"
    # plain text for an agent's console (the console escapes it), never HTML: no autoescaping
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def edit(summary: ConversationSummary, **changes: Any) -> ConversationSummary:
    """The summary with an agent's changes, validated and masked; marks it `edited`.

    A rewritten problem is the agent's own words: it is no longer `refined`.
    """
    unknown = set(changes) - _EDITABLE
    if unknown:
        raise SummaryError(f"cannot edit {', '.join(sorted(unknown))}; editable: {', '.join(sorted(_EDITABLE))}")
    checked = {name: _checked(name, value) for name, value in changes.items()}
    if "problem" in checked:
        checked["refined"] = False
    return dataclasses.replace(summary, **checked, edited=True)


_TEXT_FIELDS = frozenset({"problem", "topic", "intent", "handoff_reason", "next_step", "extract"})
_EDITABLE = frozenset({f.name for f in dataclasses.fields(ConversationSummary)} - {"edited", "refined"})


def _checked(name: str, value: Any) -> Any:
    """`value` as field `name` holds it; texts masked. SummaryError says what does not fit."""
    if name in _TEXT_FIELDS:
        return _text(name, value)
    if name == "language":
        if value not in ("zh", "en"):
            raise SummaryError(f"language must be 'zh' or 'en', not {value!r}")
        return value
    if name == "key_facts":
        pairs = value.items() if isinstance(value, Mapping) else value
        if isinstance(pairs, str) or not isinstance(pairs, Iterable):
            raise SummaryError("key_facts must be (label, value) pairs or a mapping of labels to values")
        return tuple(_fact(pair) for pair in pairs)
    if name == "bot_tried":
        return _texts(name, value)
    if name == "sentiment":
        return _sentiment(value)
    if name in ("refined", "edited"):
        if not isinstance(value, bool):
            raise SummaryError(f"{name} must be true or false, not {value!r}")
        return value
    raise SummaryError(f"a summary has no field {name!r}")


def _fact(pair: Any) -> tuple[str, str]:
    items = () if isinstance(pair, str) or not isinstance(pair, Iterable) else tuple(pair)
    if len(items) != 2:
        raise SummaryError(f"a key fact must be a (label, value) pair, not {pair!r}")
    return _text("a key fact's label", items[0], empty=False), _text("a key fact", items[1])


def _text(name: str, value: Any, *, empty: bool = True) -> str:
    if not isinstance(value, str):
        raise SummaryError(f"{name} must be text, not {type(value).__name__}")
    text = masked(value.strip())
    if not text and not empty:
        raise SummaryError(f"{name} must not be empty")
    if width(text) > MAX_FIELD_WIDTH:
        raise SummaryError(f"{name} is too long ({width(text)} columns; at most {MAX_FIELD_WIDTH})")
    return text


def _texts(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise SummaryError(f"{name} must be a list of texts")
    return tuple(t for t in (_text(name, item) for item in value) if t)


def _sentiment(value: Any) -> Sentiment:
    """A Sentiment, its dict, or just a label (the score then follows the label)."""
    if isinstance(value, Sentiment):
        value = dataclasses.asdict(value)
    if isinstance(value, str):
        value = {"label": value, "score": {"negative": -0.5, "neutral": 0.0, "positive": 0.5}.get(value, 0.0)}
    if not isinstance(value, Mapping) or set(value) - {"label", "score", "evidence"}:
        raise SummaryError("sentiment must be a label or {label, score, evidence}")
    label, score = value.get("label", "neutral"), value.get("score", 0.0)
    if label not in SENTIMENT_LABELS:
        raise SummaryError(f"sentiment must be one of {', '.join(SENTIMENT_LABELS)}, not {label!r}")
    if isinstance(score, bool) or not isinstance(score, int | float) or not -1.0 <= score <= 1.0:
        raise SummaryError(f"a sentiment score lies between -1 and 1, not {score!r}")
    return Sentiment(label, float(score), _texts("sentiment evidence", value.get("evidence", ())))


# --- refinement by a generator ---

_ASK: dict[Language, str] = {
    "en": "In one sentence, what is the customer's problem?",
    "zh": "请用一句话概括：顾客遇到了什么问题？",
}
# an apology or a refusal is the model answering as the bot, not a summary
_NOT_A_SUMMARY = re.compile(
    r"^(?:i'?m sorry|sorry|i apologi[sz]e|i can(?:not|'t)|i am (?:not|unable)|as an ai"
    r"|抱歉|对不起|很抱歉|我无法|我不能)",
    re.IGNORECASE,
)
_DIGITS = re.compile(r"\d+")


async def refine(
    summary: ConversationSummary,
    generator: Generator | None,
    *,
    languages: Collection[Language],
    params: DecodingParams | None = None,
) -> ConversationSummary:
    """Ask `generator` to rewrite the problem as one concise sentence, grounded on the customer's words.

    `languages` are those the generator may write (kefu.yml's `generator.languages`); in another language, or
    without a generator, or once an agent edited the summary, it is returned as it is. So it is when the
    output is empty, too long, or states a number or id the customer's words and the key facts do not.
    """
    source = summary.extract or summary.problem
    if generator is None or summary.language not in languages or summary.edited or not source:
        return summary
    fact = Fact("customer", source, "doc", 1.0, "conversation", language=summary.language)
    context = PromptContext(_ASK[summary.language], (fact,), summary.language, slots=dict(summary.key_facts))
    try:  # as the answer action calls it: off the event loop, errors kept from the caller
        candidates = await asyncio.to_thread(generator.generate, context, n=1, params=params or REFINE_PARAMS)
    except GenerationError as err:
        log.warning("summary refinement failed, keeping the customer's words: %s", err)
        return summary
    grounds = " ".join([source, *(value for _, value in summary.key_facts)])
    for candidate in candidates:
        text = accept_refined(candidate.text, grounds, finished=candidate.finish_reason != "length")
        if text is not None:
            return dataclasses.replace(summary, problem=text, extract=source, refined=True)
    log.info("summary refinement rejected: %r", [c.text[:80] for c in candidates])
    return summary


def accept_refined(text: str, source: str, *, finished: bool = True) -> str | None:
    """The first sentence of a generated rewrite of `source`, or None when it is no usable summary: empty,
    unfinished, an apology, too long, holding personal data, or with a digit run that `source` lacks (an
    invented order number, amount or date)."""
    sentences = split_sentences(text.strip().strip("\"'“”「」"))
    if not sentences or (not finished and len(sentences) == 1):  # one sentence cut off by the token limit
        return None
    first = sentences[0].strip().strip("\"'“”「」").strip()
    if not first or _NOT_A_SUMMARY.match(first) or width(first) > MAX_REFINED_WIDTH:
        return None
    if set(_DIGITS.findall(first)) - set(_DIGITS.findall(source)):
        return None
    return None if find_pii(first) else first
