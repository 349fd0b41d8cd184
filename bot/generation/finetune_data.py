"""Training data for fine-tuning the generator: the JSONL files `kefu export` writes (TRL's conversational
format), checked line by line, split for evaluation, and tokenised with the model's chat template."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.errors import GenerationError
from bot.generation.prompts import ChatMessage

Messages = tuple[ChatMessage, ...]
IGNORE = -100  # the label torch's cross-entropy skips: prompt and padding positions
MIN_SPLIT = 5  # fewer examples than this: evaluate on the training data, holding none out
_ROLES = frozenset({"system", "user", "assistant"})


@dataclass(frozen=True, slots=True)
class SftExample:
    """A prompt (the conversation so far) and the assistant answer to learn."""

    prompt: Messages
    completion: Messages


@dataclass(frozen=True, slots=True)
class PreferenceExample:
    """A prompt with a preferred (chosen) and a dispreferred (rejected) assistant answer."""

    prompt: Messages
    chosen: Messages
    rejected: Messages


@dataclass(frozen=True, slots=True)
class Encoded:
    """Token ids of one prompt and its completion, already fitted to the token budget."""

    prompt_ids: tuple[int, ...]
    completion_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Split:
    """Indices to train on and to evaluate on; `on_training` when too few examples to hold any out."""

    train: tuple[int, ...]
    evaluate: tuple[int, ...]
    on_training: bool


def read_sft(path: Path) -> list[SftExample]:
    """The SFT examples of `path`; GenerationError names the file and line of a malformed one."""
    return [
        SftExample(_messages(record, "prompt", where), _messages(record, "completion", where, assistant=True))
        for where, record in _records(path)
    ]


def read_preferences(path: Path) -> list[PreferenceExample]:
    """The preference pairs of `path`; GenerationError names the file and line of a malformed one."""
    return [
        PreferenceExample(
            _messages(record, "prompt", where),
            _messages(record, "chosen", where, assistant=True),
            _messages(record, "rejected", where, assistant=True),
        )
        for where, record in _records(path)
    ]


def _records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise GenerationError(f"cannot read training data {path}: {err}") from err
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except ValueError as err:
            raise GenerationError(f"{where}: not a JSON object ({err}); re-run `kefu export`") from err
        if not isinstance(record, dict):
            raise GenerationError(f"{where}: expected a JSON object, got {type(record).__name__}")
        yield where, record


def _messages(record: dict[str, Any], field: str, where: str, *, assistant: bool = False) -> Messages:
    value = record.get(field)
    if not isinstance(value, list) or not value:
        raise GenerationError(f"{where}: {field!r} must be a non-empty list of {{role, content}} messages")
    messages = []
    for message in value:
        role = message.get("role") if isinstance(message, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if role not in _ROLES or not isinstance(content, str):
            raise GenerationError(f"{where}: {field!r} holds {message!r}, not a {{role, content}} message")
        if assistant and role != "assistant":
            raise GenerationError(f"{where}: {field!r} may hold only assistant messages, not {role!r}")
        messages.append({"role": role, "content": content})
    return tuple(messages)


def split(count: int, fraction: float, seed: int) -> Split:
    """A seeded held-out split of at least one example (none below MIN_SPLIT: then evaluate on all)."""
    everything = tuple(range(count))
    if count < MIN_SPLIT:
        return Split(everything, everything, on_training=True)
    held = min(max(1, round(count * fraction)), count - 1)
    order = list(everything)
    random.Random(seed).shuffle(order)
    return Split(tuple(sorted(order[held:])), tuple(sorted(order[:held])), on_training=False)


def encode(tokenizer: Any, prompt: Messages, completion: Messages, max_tokens: int) -> Encoded:
    """Tokenise prompt + completion with the chat template; over budget, the prompt loses its oldest tokens.

    The completion is what is learnt, so it is kept whole where it fits; one prompt token always stays,
    because the first completion token is predicted from the token before it.
    """
    prompt_text = tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True)
    full_text = tokenizer.apply_chat_template(list(prompt + completion), tokenize=False)
    if not full_text.startswith(prompt_text):
        raise GenerationError("the model's chat template does not render the answer after the prompt's text")
    prompt_ids = tokenizer.encode(prompt_text, add_special_tokens=False)
    completion_ids = tokenizer.encode(full_text[len(prompt_text) :], add_special_tokens=False)
    completion_ids = completion_ids[: max_tokens - 1]
    keep = max_tokens - len(completion_ids)
    return Encoded(tuple(prompt_ids[-keep:]), tuple(completion_ids))


def batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Consecutive batches of `size` (the last one shorter)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def pad(encoded: Sequence[Encoded], pad_id: int) -> dict[str, Any]:
    """input_ids, attention_mask and labels (IGNORE outside the completions), right-padded to one length."""
    import torch

    width = max(len(e.prompt_ids) + len(e.completion_ids) for e in encoded)
    ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    labels = torch.full((len(encoded), width), IGNORE, dtype=torch.long)
    for row, e in enumerate(encoded):
        start, end = len(e.prompt_ids), len(e.prompt_ids) + len(e.completion_ids)
        ids[row, :end] = torch.tensor(e.prompt_ids + e.completion_ids)
        mask[row, :end] = 1
        labels[row, start:end] = torch.tensor(e.completion_ids)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}
