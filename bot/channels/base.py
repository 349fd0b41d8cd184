"""What a channel is: routes that turn a platform's requests into `Message`s for the bot, and, for platforms
that can be written to later (a reply after a deadline, an operator's message), a way to deliver replies.

Adding Feishu, DingTalk, Slack or Telegram is one module: a class with `name` and `routes(handler)`, parsing
the platform's requests (verify its signature first, in constant time), calling `handler(message)`, and
answering in the platform's format; `deliver()` when the platform has a push API. Register it in
`bot/channels/registry.py`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Protocol, runtime_checkable

from starlette.routing import BaseRoute

from bot.runtime import BotAnswer
from bot.trace import PartialSink
from bot.types import Message, Reply


class TurnHandler(Protocol):
    """The bot as channels see it: one message in, the turn's answer out."""

    def __call__(self, message: Message, on_partial: PartialSink | None = None) -> Awaitable[BotAnswer]: ...


class Channel(Protocol):
    name: str

    def routes(self, handler: TurnHandler) -> list[BaseRoute]:
        """The HTTP or WebSocket routes the channel serves, each calling `handler` for a user message."""
        ...


@runtime_checkable
class PushChannel(Channel, Protocol):
    async def deliver(self, recipient: str, replies: Sequence[Reply]) -> None:
        """Send replies outside a request: after the platform's reply deadline, or an operator's message."""
        ...
