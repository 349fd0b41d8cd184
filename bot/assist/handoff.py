"""The handoff desk: what happens between "the bot hands off" and "the bot takes over again".

A turn that hands off gets a ticket in the queue (reason, priority, language, summary) and tells the customer
where they stand; operators take tickets, write to the customer (delivered on the original channel: the
widget through change notices, WeChat and WeCom through their push APIs) and hand the conversation back.
Every step is an event in the conversation's log, so transcripts, archives and exports show it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence

from bot.assist.handoff_queue import HandoffQueue, QueueError, Ticket
from bot.assist.notify import Notifier
from bot.assist.summary import ConversationSummary, edit, summarize
from bot.assist.summary_view import Labels
from bot.channels.base import PushChannel
from bot.errors import KefuError
from bot.events import BotUttered, Event, HandedBack, HandedOff, OperatorMessage, Session, SuggestionRated
from bot.sessions.redis_store import RedisSessionStore
from bot.types import Domain, Language, Message, Reply

log = logging.getLogger(__name__)

URGENT, HIGH, NORMAL = 3, 2, 1

_NOTICES: dict[Language, dict[str, str]] = {
    "zh": {
        "next": "已为您转接人工客服，您排在第一位，客服马上就来，会直接在这里回复您。您可以先把问题补充完整。",
        "ahead": "已为您转接人工客服，您前面还有 {ahead} 位客户在等候。客服会直接在这里回复您，请不要离开。",
        "nobody": "目前没有人工客服在线。您的问题和对话记录已转交客服，客服上线后会在这里回复您。",
        "claimed": "人工客服 {operator} 已接入，正在为您服务。",
        "back": "人工客服已结束本次服务，接下来由智能助手继续为您服务。如需人工帮助，请随时说“转人工”。",
    },
    "en": {
        "next": "You're first in line for a human agent, who will reply right here shortly. "
        "Feel free to add any details meanwhile.",
        "ahead": "You're in line for a human agent, with {ahead} customer(s) ahead of you. "
        "The agent will reply right here; please stay in this chat.",
        "nobody": "No human agent is online right now. Your question and this conversation have been passed on, "
        "and an agent will reply here as soon as one is available.",
        "claimed": "{operator} from our support team has joined and will help you now.",
        "back": "The agent has finished; the assistant is with you again. Ask for a human agent any time.",
    },
}


def priority_of(reason: str, summary: ConversationSummary) -> int:
    """Safety and risk first, then explicit requests and angry customers, then the bot's own failures."""
    kind = reason.partition(":")[0]
    base = URGENT if kind in ("safety", "risk") else HIGH if kind in ("requested", "anger") else NORMAL
    return min(URGENT, base + (summary.sentiment.label == "negative"))


class HandoffDesk:
    """Implements the Bot's handoff hooks and the operators' side; the console calls it."""

    def __init__(
        self,
        queue: HandoffQueue,
        notifier: Notifier,
        store: RedisSessionStore,
        domain: Domain,
        labels: Labels | None = None,
    ) -> None:
        self.queue = queue
        self.notifier = notifier
        self.store = store
        self._domain = domain
        self._labels = labels or {}
        self._push: dict[str, PushChannel] = {}
        self._pending: dict[str, Ticket] = {}  # built before a turn commits, queued after: same lock, same process

    def use_channels(self, channels: Sequence[object]) -> None:
        """The channels that can deliver later (WeChat, WeCom) by name; the widget follows change notices."""
        self._push = {c.name: c for c in channels if isinstance(c, PushChannel)}

    def summary(self, events: Sequence[Event], language: Language | None = None) -> ConversationSummary:
        return summarize(events, self._domain, labels=self._labels, language=language)

    # --- the Bot's hooks (called under the conversation's lock) ---

    async def before_commit(self, session: Session, message: Message) -> Session:
        """A turn that hands off gets its ticket ready and tells the customer what happens next."""
        handoff = next((e for e in session.new_events if isinstance(e, HandedOff)), None)
        if handoff is None:
            return session
        summary = self.summary(session.events)
        ticket = Ticket(
            conversation_id=session.conversation_id, reason=handoff.reason,
            priority=priority_of(handoff.reason, summary), language=summary.language, channel=message.channel,
            sender=message.sender_id, enqueued_at=time.time(), summary=summary.to_dict(),
        )  # fmt: skip
        self._pending[session.conversation_id] = ticket
        notice = await self._queue_notice(ticket)
        return session.with_events([BotUttered(text=notice, template="handoff_queue")])

    async def after_commit(self, session: Session) -> None:
        ticket = self._pending.pop(session.conversation_id, None)
        try:
            if ticket is not None and not await self.queue.enqueue(ticket):
                log.info("conversation was already queued for a human")
        except KefuError as err:  # the turn is stored and answered; the operators must hear of the miss
            log.error("a handed-off conversation could not join the queue: %s", err)
        if ticket is not None or session.state.handed_off:
            await self.notifier.publish(session.conversation_id)

    async def _queue_notice(self, ticket: Ticket) -> str:
        say = _NOTICES[_language(ticket.language)]
        if not await self.queue.online():
            return say["nobody"]
        ahead = await self.queue.ahead_of(ticket.score)
        return say["ahead"].format(ahead=ahead) if ahead else say["next"]

    # --- the operators' side ---

    async def claim(self, conversation_id: str, operator: str, *, take_over: bool = False) -> Ticket:
        """Take a waiting conversation (or, with `take_over`, another operator's); the customer is told."""
        before = await self.queue.get(conversation_id)
        ticket = await self.queue.claim(conversation_id, operator, take_over=take_over)
        if before is None or before.operator != operator:
            text = _NOTICES[_language(ticket.language)]["claimed"].format(operator=operator)
            await self._append(ticket, [BotUttered(text=text, template="handoff_claimed")])
        return ticket

    async def reply(
        self, conversation_id: str, operator: str, text: str, *, ratings: Sequence[SuggestionRated] = ()
    ) -> Ticket:
        """Send an operator's message to the customer; records what was done with the suggestions shown."""
        if not text.strip():
            raise QueueError("an operator's message needs some text")
        ticket = await self.queue.get(conversation_id)
        if ticket is None:
            raise QueueError(f"conversation {conversation_id!r} is not with a human; it was handed back or closed")
        if ticket.operator != operator:
            ticket = await self.claim(conversation_id, operator)
        await self._append(ticket, [*ratings, OperatorMessage(operator=operator, text=text)])
        return ticket

    async def hand_back(self, conversation_id: str, operator: str) -> bool:
        """Give the conversation back to the bot and tell the customer; False if no human had it."""
        ticket = await self.queue.get(conversation_id)
        async with self.store.hold(conversation_id) as held:
            session = held.session
            if not session.state.handed_off and ticket is None:
                return False
            language = _language(ticket.language) if ticket else self.summary(session.events).language
            events: list[Event] = [BotUttered(text=_NOTICES[language]["back"], template="handoff_back")]
            if session.state.handed_off:
                events.insert(0, HandedBack())
            await self.store.commit_and_release(held, session.with_events(events))
        await self.queue.release(conversation_id)
        log.info("conversation handed back to the bot by an operator")
        await self._deliver(conversation_id, ticket, events)
        return True

    async def edit_summary(self, conversation_id: str, changes: Mapping[str, object]) -> Ticket:
        """An operator's correction of the ticket's summary (validated field by field)."""
        ticket = await self.queue.get(conversation_id)
        if ticket is None:
            raise QueueError(f"conversation {conversation_id!r} has no handoff ticket")
        corrected = edit(ConversationSummary.from_dict(ticket.summary), **changes)
        return await self.queue.update_summary(conversation_id, corrected.to_dict())

    async def _append(self, ticket: Ticket, events: Sequence[Event]) -> None:
        async with self.store.hold(ticket.conversation_id) as held:
            await self.store.commit_and_release(held, held.session.with_events(events))
        await self._deliver(ticket.conversation_id, ticket, events)

    async def _deliver(self, conversation_id: str, ticket: Ticket | None, events: Sequence[Event]) -> None:
        if ticket is not None and ticket.channel in self._push:
            replies = [_reply(e) for e in events if isinstance(e, BotUttered | OperatorMessage)]
            try:
                await self._push[ticket.channel].deliver(ticket.sender, replies)
            except Exception:  # the message is stored; the operator sees the failure in the log, not a crash
                log.exception("could not deliver an operator's message on %s", ticket.channel)
        await self.notifier.publish(conversation_id)


def _reply(event: BotUttered | OperatorMessage) -> Reply:
    if isinstance(event, OperatorMessage):
        return Reply(text=event.text, handoff=True)
    return Reply(text=event.text, reply_id=event.reply_id, template=event.template, handoff=True)


def _language(value: str) -> Language:
    return "en" if value == "en" else "zh"
