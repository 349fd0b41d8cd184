"""Prompts as jinja2 templates per language (persona, facts with their ids, the instruction), fitted to a
token budget: the oldest dialogue turns go first, then the weakest facts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

import jinja2
import jinja2.sandbox

from bot.protocols import PromptContext
from bot.types import Language

ChatMessage = dict[str, str]
TokenCounter = Callable[[str], int]

DEFAULT_PROMPT_TOKENS = 1536


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate: one token per Han character, about four characters per token otherwise."""
    han = sum(1 for ch in text if "\u3400" <= ch <= "\u9fff")
    return han + (len(text) - han + 3) // 4


@dataclass(frozen=True, slots=True)
class Persona:
    """Who the bot is: the brand, and a few sentences of voice per language (empty: the template's default)."""

    brand: str = "our shop"
    voice: Mapping[Language, str] | None = None


class PromptBuilder:
    """Renders chat messages for a generator; a project's `prompts/answer.<lang>.j2` overrides the default."""

    def __init__(
        self,
        project_prompts: Path | None = None,
        *,
        brand: str = "our shop",
        persona: Persona | None = None,
        max_prompt_tokens: int = DEFAULT_PROMPT_TOKENS,
    ) -> None:
        loaders: list[jinja2.BaseLoader] = []
        if project_prompts is not None and project_prompts.is_dir():
            loaders.append(jinja2.FileSystemLoader(project_prompts))
        loaders.append(jinja2.FileSystemLoader(str(resources.files("bot.generation") / "templates")))
        self._env = jinja2.sandbox.SandboxedEnvironment(
            loader=jinja2.ChoiceLoader(loaders), undefined=jinja2.StrictUndefined, autoescape=False
        )
        self._persona = persona or Persona(brand)
        self.max_prompt_tokens = max_prompt_tokens

    def messages(self, context: PromptContext, *, count_tokens: TokenCounter | None = None) -> list[ChatMessage]:
        """The chat messages for `context`, trimmed to `max_prompt_tokens` as `count_tokens` counts them."""
        count = count_tokens or estimate_tokens
        question = _truncate(context.question, self.max_prompt_tokens // 2, count)
        context = replace(context, question=question)
        while True:
            messages = self._render(context)
            if sum(count(m["content"]) + 4 for m in messages) <= self.max_prompt_tokens:
                return messages
            if context.history:
                context = replace(context, history=context.history[1:])
            elif len(context.facts) > 1:
                context = replace(context, facts=context.facts[:-1])
            elif context.facts:  # one long fact: keep its beginning
                fact = context.facts[0]
                rest = self.max_prompt_tokens - sum(count(m["content"]) + 4 for m in messages) + count(fact.text)
                shorter = _truncate(fact.text, max(rest - 8, 16), count)
                if shorter == fact.text:
                    return messages
                context = replace(context, facts=(replace(fact, text=shorter),))
            else:
                return messages

    def instructions(self, language: Language) -> str:
        """The system prompt without facts or slots: what output safety keeps a reply from revealing."""
        return self._render(PromptContext(question="", facts=(), language=language))[0]["content"]

    def _render(self, context: PromptContext) -> list[ChatMessage]:
        voice = (self._persona.voice or {}).get(context.language, "")
        system = self._env.get_template(f"answer.{context.language}.j2").render(
            brand=self._persona.brand, voice=voice, facts=context.facts, slots=context.slots
        )
        messages: list[ChatMessage] = [{"role": "system", "content": system.strip()}]
        for speaker, text in context.history:
            messages.append({"role": "user" if speaker == "user" else "assistant", "content": text})
        messages.append({"role": "user", "content": context.question})
        return messages


def _truncate(text: str, budget: int, count: TokenCounter) -> str:
    """The longest beginning of `text` within `budget` tokens (binary search on characters)."""
    if count(text) <= budget:
        return text
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if count(text[:middle]) <= budget:
            low = middle
        else:
            high = middle - 1
    return text[:low].rstrip() + "…"
