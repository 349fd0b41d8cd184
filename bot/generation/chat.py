"""Chat models (local or remote) behind one interface, and the Generator that prompts them with facts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from bot.generation.prompts import ChatMessage, PromptBuilder
from bot.protocols import DecodingParams, PromptContext
from bot.types import Candidate

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True, slots=True)
class Completion:
    """One answer of a chat model, with what it cost in tokens."""

    text: str
    finish_reason: FinishReason = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0


class ChatModel(Protocol):
    """A chat model: a list of {"role", "content"} messages in, text out (whole or streamed)."""

    name: str

    def complete(
        self, messages: Sequence[ChatMessage], *, n: int = 1, params: DecodingParams | None = None
    ) -> list[Completion]: ...

    def stream_chat(self, messages: Sequence[ChatMessage], *, params: DecodingParams | None = None) -> Iterator[str]:
        """The answer's text in pieces as they are decoded; the pieces joined equal `complete`'s text."""

    def count_tokens(self, text: str) -> int:
        """Tokens `text` takes in this model's prompt (an estimate where the tokenizer is remote)."""


class ChatGenerator:
    """The Generator of the turn pipeline: renders the prompt for a chat model and keeps the fact ids."""

    def __init__(self, model: ChatModel, prompts: PromptBuilder) -> None:
        self.model = model
        self.prompts = prompts
        self.name = model.name

    def warm_up(self) -> None:
        warm = getattr(self.model, "warm_up", None)
        if callable(warm):
            warm()

    def messages(self, context: PromptContext) -> list[ChatMessage]:
        return self.prompts.messages(context, count_tokens=self.model.count_tokens)

    def generate(self, context: PromptContext, *, n: int = 1, params: DecodingParams | None = None) -> list[Candidate]:
        completions = self.model.complete(self.messages(context), n=n, params=params)
        fact_ids = tuple(f.id for f in context.facts)
        return [Candidate(c.text, fact_ids, self.name, 0.0, c.finish_reason) for c in completions]

    def stream(self, context: PromptContext, *, params: DecodingParams | None = None) -> Iterator[str]:
        return self.model.stream_chat(self.messages(context), params=params)
