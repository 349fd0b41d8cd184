"""Training data for the generator, derived from conversation events: SFT records and preference pairs in TRL's
conversational formats, with every text masked for personal data before it leaves.

What counts as a good or a bad answer:
- a bot reply rated thumbs up, and a conversation's generated replies when its CSAT is 4 or 5: SFT;
- a bot reply rated thumbs down that an operator later answered: (operator answer > bot reply), and SFT of it;
- an operator's answer in a handed-off conversation: SFT;
- a suggestion the operator accepted: SFT; edited: (sent > suggestion) and SFT; ignored for a text: (sent > suggestion).
A conversation whose CSAT is 1 or 2 gives no SFT from its bot replies.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from bot.errors import ProjectError
from bot.events import (
    BotUttered,
    Event,
    FeedbackGiven,
    HandedBack,
    HandedOff,
    OperatorMessage,
    SuggestionRated,
    UserUttered,
)
from bot.generation.prompts import ChatMessage, PromptBuilder
from bot.protocols import PromptContext
from bot.types import Fact, Language
from safety.pii import mask_pii

FactLookup = Callable[[Sequence[str]], list[Fact]]
Utterance = BotUttered | OperatorMessage | SuggestionRated

HISTORY_EXCHANGES = 4  # user turns (with their answers) kept before the question
GOOD_CSAT, BAD_CSAT = 4, 2
ROLES = ("system", "user", "assistant")
_HAN = re.compile(r"[\u3400-\u9fff]")
_Record = TypeVar("_Record", "SftRecord", "PreferenceRecord")


@dataclass(frozen=True, slots=True)
class SftRecord:
    """A prompt and the answer to learn (TRL's conversational prompt-completion format)."""

    prompt: tuple[ChatMessage, ...]
    completion: str
    source: str
    conversation: str  # a hash of the conversation id, never the id itself

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt": [dict(m) for m in self.prompt],
            "completion": [_assistant(self.completion)],
            "meta": {"source": self.source, "conversation": self.conversation},
        }


@dataclass(frozen=True, slots=True)
class PreferenceRecord:
    """A prompt, a better and a worse answer (TRL's conversational preference format)."""

    prompt: tuple[ChatMessage, ...]
    chosen: str
    rejected: str
    source: str
    conversation: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt": [dict(m) for m in self.prompt],
            "chosen": [_assistant(self.chosen)],
            "rejected": [_assistant(self.rejected)],
            "meta": {"source": self.source, "conversation": self.conversation},
        }


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What an export found; `counts` are keyed `sft/<source>` and `preference/<source>`."""

    sft: tuple[SftRecord, ...]
    preferences: tuple[PreferenceRecord, ...]
    counts: Mapping[str, int]
    conversations: int

    def summary(self) -> str:
        lines = [f"{self.conversations} conversations: {len(self.sft)} SFT records, {len(self.preferences)} pairs"]
        lines += [f"  {key}: {count}" for key, count in sorted(self.counts.items())]
        return "\n".join(lines)


# --- from events to records ---


@dataclass(frozen=True, slots=True)
class _Said:
    """One assistant-side message with the context of the user message it answers (None: no user message yet)."""

    event: Utterance
    text: str  # the message, or the suggested text
    key: str  # what thumbs feedback names: the reply id of a bot reply, the position of an operator message
    context: PromptContext | None
    handed_off: bool


@dataclass(frozen=True, slots=True)
class _Conversation:
    said: tuple[_Said, ...]
    ratings: Mapping[str, int]  # thumbs by `_Said.key`; the latest rating counts
    csat: int | None


@dataclass(frozen=True, slots=True)
class _Draft:
    context: PromptContext
    chosen: str
    rejected: str | None  # None: an SFT record
    source: str


def conversation_hash(conversation_id: str) -> str:
    """What exports name a conversation by: ids can be phone numbers or open ids."""
    return hashlib.sha256(conversation_id.encode("utf-8")).hexdigest()[:16]


def conversation_records(
    conversation_id: str, events: Sequence[Event], lookup: FactLookup, prompts: PromptBuilder
) -> tuple[list[SftRecord], list[PreferenceRecord]]:
    """The SFT records and preference pairs one conversation's events imply, masked and without duplicates."""
    tag = conversation_hash(conversation_id)
    sft: dict[tuple[Any, ...], SftRecord] = {}
    pairs: dict[tuple[Any, ...], PreferenceRecord] = {}
    for draft in _drafts(_read(events, lookup)):
        prompt = tuple({"role": m["role"], "content": _mask(m["content"])} for m in prompts.messages(draft.context))
        chosen, prompt_key = _mask(draft.chosen).strip(), tuple((m["role"], m["content"]) for m in prompt)
        if not chosen:
            continue
        if draft.rejected is None:
            sft.setdefault((prompt_key, chosen), SftRecord(prompt, chosen, draft.source, tag))
            continue
        rejected = _mask(draft.rejected).strip()
        if rejected and rejected != chosen:
            pairs.setdefault(
                (prompt_key, chosen, rejected), PreferenceRecord(prompt, chosen, rejected, draft.source, tag)
            )
    return list(sft.values()), list(pairs.values())


def export_records(
    conversations: Iterable[tuple[str, Sequence[Event]]], lookup: FactLookup, prompts: PromptBuilder
) -> ExportResult:
    """Records from many conversations, in their order, with counts per kind and source."""
    sft: list[SftRecord] = []
    pairs: list[PreferenceRecord] = []
    seen = 0
    for conversation_id, events in conversations:
        more_sft, more_pairs = conversation_records(conversation_id, events, lookup, prompts)
        sft += more_sft
        pairs += more_pairs
        seen += 1
    counts = Counter(f"sft/{r.source}" for r in sft) + Counter(f"preference/{r.source}" for r in pairs)
    return ExportResult(tuple(sft), tuple(pairs), dict(counts), seen)


def _read(events: Sequence[Event], lookup: FactLookup) -> _Conversation:
    """One pass over the events: every assistant-side message with its prompt context, and the feedback."""
    history: list[tuple[str, str]] = []  # (speaker, text) of the whole conversation so far
    said: list[_Said] = []
    ratings: dict[str, int] = {}
    csat: int | None = None
    user: UserUttered | None = None
    asked_at, handed_off, answer_key = 0, False, ""  # where the latest user message sits in `history`
    facts: tuple[Fact, ...] = ()  # what the bot found for the latest user message
    for position, event in enumerate(events):
        match event:
            case UserUttered():
                user, asked_at, facts = event, len(history), ()
                history.append(("user", _user_text(event)))
            case HandedOff():
                handed_off = True
            case HandedBack():
                handed_off = False
            case FeedbackGiven(kind="csat"):
                csat = event.rating
            case FeedbackGiven():
                # Thumbs without a reply id rate the latest answer before them (operator messages have no id).
                if event.reply_id or answer_key:
                    ratings[event.reply_id or answer_key] = event.rating
            case BotUttered() | OperatorMessage() | SuggestionRated():
                if isinstance(event, BotUttered):
                    own = tuple(lookup(event.fact_ids)) if event.fact_ids else ()
                    facts, key = facts or own, event.reply_id
                else:  # operators and suggestions answer with the facts the bot found for the same user message
                    own, key = facts, f"#{position}"
                context = None if user is None else _context(user, history[:asked_at], own)
                text = event.suggestion if isinstance(event, SuggestionRated) else event.text
                said.append(_Said(event, text, key, context, handed_off))
                if not isinstance(event, SuggestionRated):  # the text an operator sends arrives as its own event
                    history.append(("operator" if isinstance(event, OperatorMessage) else "bot", text))
                    answer_key = key
    return _Conversation(tuple(said), ratings, csat)


def _context(user: UserUttered, before: list[tuple[str, str]], facts: tuple[Fact, ...]) -> PromptContext:
    starts = [i for i, (speaker, _) in enumerate(before) if speaker == "user"]
    window = before[starts[-HISTORY_EXCHANGES] :] if len(starts) >= HISTORY_EXCHANGES else before
    question = _user_text(user)
    return PromptContext(question, facts, _language(user, question), tuple(window), {})


def _drafts(conversation: _Conversation) -> Iterator[_Draft]:
    for index, said in enumerate(conversation.said):
        if said.context is None:
            continue
        match said.event:
            case BotUttered() as reply:
                yield from _bot_drafts(reply, said, said.context, conversation, conversation.said[index + 1 :])
            case OperatorMessage(text=text):
                if said.handed_off and conversation.ratings.get(said.key, 0) >= 0:
                    yield _Draft(said.context, text, None, "operator")
            case SuggestionRated() as suggestion:
                yield from _suggestion_drafts(suggestion, said.context)


def _bot_drafts(
    reply: BotUttered, said: _Said, context: PromptContext, conversation: _Conversation, later: Sequence[_Said]
) -> Iterator[_Draft]:
    rating = conversation.ratings.get(said.key)
    if rating is not None and rating < 0:
        operator = next((s for s in later if isinstance(s.event, OperatorMessage)), None)
        # An operator answer that was rated down itself teaches nothing.
        if operator is not None and conversation.ratings.get(operator.key, 0) >= 0:
            yield _Draft(context, operator.text, reply.text, "thumbs_down+operator")
            yield _Draft(context, operator.text, None, "thumbs_down+operator")
        return
    if conversation.csat is not None and conversation.csat <= BAD_CSAT:
        return
    if rating is not None and rating > 0:
        yield _Draft(context, reply.text, None, "thumbs_up")
    elif conversation.csat is not None and conversation.csat >= GOOD_CSAT and reply.template == "generated":
        yield _Draft(context, reply.text, None, "csat")


def _suggestion_drafts(event: SuggestionRated, context: PromptContext) -> Iterator[_Draft]:
    if event.outcome == "accepted":
        yield _Draft(context, event.suggestion, None, "suggestion_accepted")
    elif event.outcome == "edited" and event.sent.strip():
        yield _Draft(context, event.sent, event.suggestion, "suggestion_edited")
        yield _Draft(context, event.sent, None, "suggestion_edited")
    elif event.outcome == "ignored" and event.sent.strip():
        yield _Draft(context, event.sent, event.suggestion, "suggestion_ignored")


def _user_text(event: UserUttered) -> str:
    """The masked text NLU saw when there is one: exports start from what the bot was allowed to keep."""
    return event.nlu.text if event.nlu is not None else event.text


def _language(event: UserUttered, text: str) -> Language:
    if event.nlu is not None:
        return event.nlu.language
    return "zh" if _HAN.search(text) else "en"


def _mask(text: str) -> str:
    return mask_pii(text)[0]


def _assistant(text: str) -> ChatMessage:
    return {"role": "assistant", "content": text}


# --- JSONL files ---


def write_jsonl(records: Iterable[SftRecord | PreferenceRecord], path: Path) -> int:
    """Write one JSON object per line (UTF-8, readable Chinese), replacing `path` atomically; returns the count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    count = 0
    with tmp.open("w", encoding="utf-8", newline="\n") as out:
        for record in records:
            out.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")
            count += 1
    os.replace(tmp, path)
    return count


def read_sft(path: Path) -> list[SftRecord]:
    """SFT records from a JSONL file; a malformed line raises ProjectError naming the file and the line."""
    return _read_jsonl(path, _sft_from_dict)


def read_preferences(path: Path) -> list[PreferenceRecord]:
    """Preference pairs from a JSONL file; a malformed line raises ProjectError naming the file and the line."""
    return _read_jsonl(path, _preference_from_dict)


def _read_jsonl(path: Path, parse: Callable[[Mapping[str, Any]], _Record]) -> list[_Record]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ProjectError(f"cannot read the file ({err}); export it with `kefu export`", path=str(path)) from err
    records: list[_Record] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if not isinstance(data, dict):
                raise ValueError("expected a JSON object")
            records.append(parse(data))
        except ValueError as err:  # json.JSONDecodeError is a ValueError
            raise ProjectError(f"malformed record: {err}", path=str(path), line=number) from err
    return records


def _sft_from_dict(data: Mapping[str, Any]) -> SftRecord:
    source, conversation = _meta(data)
    return SftRecord(_messages(data, "prompt"), _answer(data, "completion"), source, conversation)


def _preference_from_dict(data: Mapping[str, Any]) -> PreferenceRecord:
    source, conversation = _meta(data)
    prompt, chosen, rejected = _messages(data, "prompt"), _answer(data, "chosen"), _answer(data, "rejected")
    return PreferenceRecord(prompt, chosen, rejected, source, conversation)


def _messages(data: Mapping[str, Any], name: str) -> tuple[ChatMessage, ...]:
    value = data.get(name)
    if not isinstance(value, list) or not value:
        raise ValueError(f"{name!r} must be a non-empty list of messages")
    for message in value:
        if (
            not isinstance(message, dict)
            or message.get("role") not in ROLES
            or not isinstance(message.get("content"), str)
        ):
            raise ValueError(f"every message in {name!r} needs a role ({', '.join(ROLES)}) and a string content")
    return tuple({"role": m["role"], "content": m["content"]} for m in value)


def _answer(data: Mapping[str, Any], name: str) -> str:
    messages = _messages(data, name)
    if len(messages) != 1 or messages[0]["role"] != "assistant":
        raise ValueError(f"{name!r} must hold exactly one assistant message")
    return messages[0]["content"]


def _meta(data: Mapping[str, Any]) -> tuple[str, str]:
    meta = data.get("meta", {})  # files from elsewhere may lack kefu's meta
    if not isinstance(meta, dict):
        raise ValueError("'meta' must be an object")
    return str(meta.get("source", "")), str(meta.get("conversation", ""))
