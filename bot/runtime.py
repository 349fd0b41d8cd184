"""The Bot: what channels call. Locks the conversation, loads it, runs a turn, commits, answers."""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from bot.errors import BadRequestError, KefuError, RateLimitedError, StaleSessionError
from bot.events import (
    BotUttered,
    FeedbackGiven,
    HandedBack,
    HandedOff,
    OperatorMessage,
    Session,
    SuggestionRated,
    TurnFailed,
    UserUttered,
)
from bot.nlu.features import detect_language
from bot.recommend.signals import rating_of_feedback
from bot.sessions.rate_limit import RateLimiter
from bot.sessions.redis_store import RedisSessionStore
from bot.sessions.round_trips import counting_round_trips
from bot.trace import PartialSink
from bot.turn import TurnParts, reply_of, run_turn
from bot.types import Message, Reply, Trace
from safety.audit import AuditLog, audit_records

log = logging.getLogger(__name__)

TRACES_KEPT = 512
_SORRY = {
    "zh": "抱歉，系统刚才出了点问题，请稍后再试一次。",
    "en": "Sorry, something went wrong on our side. Please try again in a moment.",
}


@dataclass(frozen=True, slots=True)
class BotAnswer:
    replies: tuple[Reply, ...]
    trace: Trace | None
    duplicate: bool = False
    round_trips: int = 0  # to Redis, for the whole turn (dedupe, lock, load, commit, queue, notices)
    total_ms: float = 0.0  # the whole turn: the trace's stages plus the session store and handoff hooks


class HandoffHooks(Protocol):
    """What happens around a turn's commit when a human is involved (bot/assist/handoff.py)."""

    async def before_commit(self, session: Session, message: Message) -> Session:
        """The turn's session, with anything to add before it is stored (e.g. where the customer stands in
        the queue); called under the conversation's lock."""
        ...

    async def after_commit(self, session: Session) -> None:
        """After the turn is stored (e.g. queue the conversation, tell operators that it changed)."""
        ...


class Bot:
    def __init__(
        self,
        parts: TurnParts,
        store: RedisSessionStore,
        *,
        max_message_chars: int = 4000,
        warm_ups: tuple[Callable[[], None], ...] = (),
        audit: AuditLog | None = None,
        handoffs: HandoffHooks | None = None,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        self.parts = parts
        self.handoffs = handoffs
        self.rate_limiter = rate_limiter
        self.store = store
        self.audit = audit
        self._max_chars = max_message_chars
        self._warm_ups = warm_ups
        self._traces: OrderedDict[str, Trace] = OrderedDict()

    def warm_up(self) -> None:
        """Load every model and index now rather than on the first message."""
        for warm_up in self._warm_ups:
            warm_up()

    async def handle(self, message: Message, *, on_partial: PartialSink | None = None) -> BotAnswer:
        """Answer one message; a duplicate delivery (same channel and message id) gets no second answer.
        `on_partial(reply_id, text)` receives generated text ahead of the answer, a checked sentence at a time."""
        if len(message.text) > self._max_chars:
            raise BadRequestError(
                f"message is {len(message.text)} characters long; the limit is {self._max_chars} "
                "(KEFU_MAX_MESSAGE_CHARS)"
            )
        started = time.perf_counter()
        with counting_round_trips() as trips:
            await self._check_rate(message)
            answer = await self._answer(message, on_partial)
        return replace(answer, round_trips=trips.count, total_ms=(time.perf_counter() - started) * 1000)

    async def _answer(self, message: Message, on_partial: PartialSink | None) -> BotAnswer:
        try:
            return await self._turn_with_retry(message, on_partial)
        except KefuError as err:
            log.warning("turn failed in conversation %s: %s", _ref(message.conversation_id), type(err).__name__)
            return await self._failed(message, err)
        except Exception as err:  # the edge of a turn: a bug anywhere becomes a polite reply and a record
            log.exception("unexpected error in a turn of conversation %s", _ref(message.conversation_id))
            return await self._failed(message, err)

    async def _check_rate(self, message: Message) -> None:
        """RateLimitedError when the sender or its network address is over its rate limit: refused before
        anything is stored."""
        limiter = self.rate_limiter
        if limiter is None:
            return
        verdict = await limiter.check(message.channel, message.sender_id, message.client)
        if not verdict.allowed:
            raise RateLimitedError(
                verdict.retry_after_s, limit=limiter.limit(verdict.scope), language=detect_language(message.text)
            )

    async def operator_reply(self, conversation_id: str, operator: str, text: str) -> Reply:
        """Record a human agent's message in a handed-off conversation; the channel delivers the reply."""
        async with self.store.hold(conversation_id) as held:
            said = OperatorMessage(operator=operator, text=text)
            await self.store.commit_and_release(held, held.session.with_events([said]))
        return Reply(text=text, handoff=True)

    async def record_feedback(self, conversation_id: str, feedback: FeedbackGiven | SuggestionRated) -> None:
        """Append a customer's rating or an operator's use of a suggestion; the learning loop exports them.
        Thumbs must name a reply of this conversation; ratings must be in range."""
        if isinstance(feedback, FeedbackGiven):
            _check_rating(feedback)
        async with self.store.hold(conversation_id) as held:
            if isinstance(feedback, FeedbackGiven) and feedback.reply_id:
                said = {e.reply_id for e in await self.store.history(conversation_id) if isinstance(e, BotUttered)}
                if feedback.reply_id not in said:
                    raise BadRequestError(f"conversation has no reply {feedback.reply_id!r} to rate")
            session = held.session
            rated = rating_of_feedback(session.events, feedback) if isinstance(feedback, FeedbackGiven) else None
            session = session.with_events([feedback, *([rated] if rated else [])])
            await self.store.commit_and_release(held, session)
        if rated is not None and self.parts.recommend is not None:
            self.parts.recommend.learn(session)

    async def hand_back(self, conversation_id: str) -> bool:
        """Give a handed-off conversation back to the bot; False if it was not handed off."""
        async with self.store.hold(conversation_id) as held:
            if not held.session.state.handed_off:
                return False
            await self.store.commit_and_release(held, held.session.with_events([HandedBack()]))
        return True

    def trace(self, trace_id: str) -> Trace | None:
        return self._traces.get(trace_id)

    async def _turn_with_retry(self, message: Message, on_partial: PartialSink | None) -> BotAnswer:
        try:
            return await self._turn(message, on_partial)
        except StaleSessionError:  # the lock expired under a slow turn: run it once more on the fresh session
            return await self._turn(message, None)  # what was streamed stands; the retry's reply replaces it

    async def _turn(self, message: Message, on_partial: PartialSink | None) -> BotAnswer:
        async with self.store.hold(message.conversation_id) as held:
            session = held.session
            if _delivered_before(session, message):
                return BotAnswer((), None, duplicate=True)
            result = await run_turn(self.parts, session, message, on_partial=on_partial)
            turn, replies = result.session, result.replies
            if self.handoffs is not None:
                turn = await self.handoffs.before_commit(turn, message)
                added = turn.new_events[len(result.session.new_events) :]
                replies += tuple(reply_of(e, result.trace.trace_id) for e in added if isinstance(e, BotUttered))
            if any(isinstance(e, HandedOff) for e in turn.new_events):  # its ticket is queued under the lock
                await self.store.commit(turn, held.token)
            else:
                await self.store.commit_and_release(held, turn)
            if self.handoffs is not None:
                await self.handoffs.after_commit(turn)
        if self.parts.recommend is not None:
            self.parts.recommend.learn(turn)
        self._remember(result.trace)
        self._audit(result.trace)
        return BotAnswer(replies, result.trace)

    async def _failed(self, message: Message, err: Exception) -> BotAnswer:
        language = detect_language(message.text)
        try:
            async with self.store.hold(message.conversation_id) as held:
                failed = TurnFailed(stage=type(err).__name__, error=str(err)[:500])
                await self.store.commit_and_release(held, held.session.with_events([failed]))
        except KefuError:
            log.warning("could not record the failed turn of conversation %s", _ref(message.conversation_id))
        return BotAnswer((Reply(text=_SORRY[language]),), None)

    def _audit(self, trace: Trace) -> None:
        if self.audit is None:
            return
        try:
            self.audit.write(audit_records(trace.conversation_id, trace.trace_id, trace.verdicts))
        except KefuError as err:  # the customer still gets the answer; operators see the error
            log.error("%s", err)

    def _remember(self, trace: Trace) -> None:
        self._traces[trace.trace_id] = trace
        while len(self._traces) > TRACES_KEPT:
            self._traces.popitem(last=False)


def _delivered_before(session: Session, message: Message) -> bool:
    """Whether the session already holds this message: a redelivery (a client's retry, the same message sent
    to two servers). Checked under the lock against what is stored, so a delivery whose first turn died before
    its commit is answered, and one whose turn committed is not answered twice."""
    if not message.message_id:
        return False
    return any(
        isinstance(e, UserUttered) and e.message_id == message.message_id and e.channel == message.channel
        for e in reversed(session.events)
    )


def _check_rating(feedback: FeedbackGiven) -> None:
    if feedback.kind == "thumbs" and (feedback.rating not in (1, -1) or not feedback.reply_id):
        raise BadRequestError("thumbs feedback needs reply_id and rating 1 (up) or -1 (down)")
    if feedback.kind == "csat" and not 1 <= feedback.rating <= 5:
        raise BadRequestError("CSAT feedback needs a rating from 1 to 5")


def _ref(conversation_id: str) -> str:
    """What logs show of a conversation: channels may use a phone number or an e-mail address as its id."""
    return hashlib.sha256(conversation_id.encode()).hexdigest()[:12]
