"""The extension interfaces: every stage implementation honours one of these."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from bot.events import Event, PolicyDecision, Session
from bot.types import Candidate, Domain, Entity, Fact, Language, Message, NluResult, SafetyVerdict, Stage


class WarmUp(Protocol):
    def warm_up(self) -> None:
        """Load models and indexes; constructors stay cheap."""


class NLU(Protocol):
    def parse(self, message: Message, session: Session) -> NluResult: ...


class Policy(Protocol):
    name: str
    priority: int

    def decide(self, session: Session, domain: Domain) -> PolicyDecision | None:
        """Predict the next action after the session's latest event; None abstains."""


class Embedder(Protocol):
    name: str
    dim: int

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...


class Retriever(Protocol):
    def retrieve(
        self,
        query: str,
        *,
        entities: Sequence[Entity] = (),
        top_k: int = 5,
        filters: Mapping[str, str] | None = None,
        language: Language | None = None,
    ) -> list[Fact]: ...


@dataclass(frozen=True, slots=True)
class DecodingParams:
    """Decoding settings every backend honours (the HTTP backend passes them as the OpenAI API names them)."""

    max_new_tokens: int = 96
    temperature: float = 0.0
    top_p: float = 1.0
    repetition_penalty: float = 1.0  # multiplicative, as in transformers and vLLM
    frequency_penalty: float = 0.0  # additive per earlier occurrence, as in the OpenAI API
    presence_penalty: float = 0.0  # additive once a token occurred, as in the OpenAI API
    stop: tuple[str, ...] = ()
    seed: int | None = 0


@dataclass(frozen=True, slots=True)
class PromptContext:
    """What a generator may use: the question, the facts, a window of the dialogue, the slots."""

    question: str
    facts: tuple[Fact, ...]
    language: Language
    history: tuple[tuple[str, str], ...] = ()  # (speaker, text), oldest first
    slots: Mapping[str, Any] = field(default_factory=dict)


class Generator(Protocol):
    name: str

    def generate(
        self, context: PromptContext, *, n: int = 1, params: DecodingParams | None = None
    ) -> list[Candidate]: ...

    def stream(self, context: PromptContext, *, params: DecodingParams | None = None) -> Iterator[str]: ...


class SafetyCheck(Protocol):
    name: str

    def check(
        self, text: str, *, stage: Stage, session: Session | None = None, facts: Sequence[Fact] = ()
    ) -> SafetyVerdict: ...


class TraceSink(Protocol):
    """Where stages record what they did; actions receive one per turn."""

    def stage(self, name: str, detail: str = "") -> AbstractContextManager[None]: ...

    def add_facts(self, facts: Sequence[Fact]) -> None: ...

    def add_candidates(self, candidates: Sequence[Candidate]) -> None: ...

    def add_verdicts(self, verdicts: Sequence[SafetyVerdict]) -> None: ...

    @property
    def streaming(self) -> bool:
        """Whether the channel shows text ahead of the reply; only then is `partial` worth calling."""

    def partial(self, reply_id: str, text: str) -> None:
        """Show the next checked piece of the reply `reply_id` now (its BotUttered carries the whole text)."""


class Action(Protocol):
    name: str

    async def run(self, session: Session, domain: Domain, trace: TraceSink) -> list[Event]: ...


@runtime_checkable
class SessionStore(Protocol):
    def lock(self, conversation_id: str) -> AbstractAsyncContextManager[str]:
        """Hold the conversation's lock (bounded wait); yields the token a commit must present."""

    async def load(self, conversation_id: str) -> Session: ...

    async def commit(self, session: Session, lock_token: str) -> Session:
        """Append the session's new events atomically; raises StaleSessionError if it changed meanwhile."""


OnMessage = Callable[[Message], Awaitable[list[Any]]]


class Channel(Protocol):
    name: str

    def routes(self, on_message: OnMessage) -> list[Any]:
        """Starlette routes; the channel only ever calls `on_message`."""
