"""Prompts as jinja2 templates per language: persona, the facts with their ids, the instruction."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import jinja2
import jinja2.sandbox

from bot.protocols import PromptContext

ChatMessage = dict[str, str]


class PromptBuilder:
    """Renders chat messages for a generator; a project's `prompts/answer.<lang>.j2` overrides the default."""

    def __init__(self, project_prompts: Path | None = None, *, brand: str = "our shop") -> None:
        loaders: list[jinja2.BaseLoader] = []
        if project_prompts is not None and project_prompts.is_dir():
            loaders.append(jinja2.FileSystemLoader(project_prompts))
        loaders.append(jinja2.FileSystemLoader(str(resources.files("bot.generation") / "templates")))
        self._env = jinja2.sandbox.SandboxedEnvironment(
            loader=jinja2.ChoiceLoader(loaders), undefined=jinja2.StrictUndefined, autoescape=False
        )
        self._brand = brand

    def messages(self, context: PromptContext) -> list[ChatMessage]:
        system = self._env.get_template(f"answer.{context.language}.j2").render(
            brand=self._brand, facts=context.facts, slots=context.slots
        )
        messages: list[ChatMessage] = [{"role": "system", "content": system.strip()}]
        for speaker, text in context.history:
            messages.append({"role": "user" if speaker == "user" else "assistant", "content": text})
        messages.append({"role": "user", "content": context.question})
        return messages
