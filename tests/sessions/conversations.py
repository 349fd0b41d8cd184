"""A ten-turn shop conversation as the widget stores it, built from the shop's FAQ: one list of events a turn,
with random message and reply ids and timestamps, as real turns have (compression gets no free ride)."""

from __future__ import annotations

import csv
import random
import uuid

from bot.events import (
    ActionExecuted,
    BotUttered,
    Event,
    FormActivated,
    FormCompleted,
    QuestionsRecommended,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from bot.types import Button, Entity, IntentScore, NluResult
from tests.conftest import SHOP


def _faq_zh() -> list[dict[str, str]]:
    with (SHOP / "knowledge" / "faq.csv").open(encoding="utf-8") as file:
        return [row for row in csv.DictReader(file) if row["lang"] == "zh"]


class _Turns:
    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.now = 1_795_518_101.0 + self.random.random()
        self.faq = _faq_zh()

    def at(self) -> float:
        self.now += self.random.uniform(0.001, 0.05)
        return self.now

    def user(self, text: str, intent: str, *entities: Entity) -> UserUttered:
        top = round(self.random.uniform(0.8, 0.999), 4)
        ranking = (IntentScore(intent, top), IntentScore("thank", 0.0021), IntentScore("nlu_fallback", 0.0004))
        nlu = NluResult(text, intent, top, ranking, entities, "zh")
        message_id = uuid.UUID(int=self.random.getrandbits(128)).hex
        return UserUttered(text=text, message_id=message_id, channel="widget", nlu=nlu, timestamp=self.at())

    def bot(self, text: str, template: str, fact: str = "", suggested: int = 3) -> BotUttered:
        rows = self.random.sample(self.faq, suggested)
        quick = tuple(Button(r["question"], r["question"]) for r in rows)
        reply_id = f"{self.random.getrandbits(48):012x}"
        facts = (fact,) if fact else ()
        return BotUttered(
            text=text, template=template, fact_ids=facts, reply_id=reply_id, quick_replies=quick, timestamp=self.at()
        )

    def recommended(self, context: str) -> QuestionsRecommended:
        items = tuple(r["id"] for r in self.random.sample(self.faq, 3))
        return QuestionsRecommended(context=context, items=items, timestamp=self.at())

    def action(self, name: str) -> ActionExecuted:
        return ActionExecuted(name=name, policy="rules", timestamp=self.at())


def shop_turns(seed: int = 0) -> list[list[Event]]:
    """Greeting, eight FAQ answers (one of them an order look-up through a form), goodbye."""
    t = _Turns(seed)
    greet = [
        SessionStarted(timestamp=t.at()),
        t.user("你好", "greet"),
        SlotSet(name="language", value="zh", timestamp=t.at()),
        t.action("utter_greet"),
        t.bot("您好！我是客服商城的智能客服，可以帮您查订单、问配送、退换货、付款和商品信息。", "utter_greet", "", 5),
        t.recommended("hot"),
    ]
    turns = [greet]
    for row in t.faq[:7]:
        asked = t.user(row["similar"].split("|")[0], "ask_" + row["tags"])
        answer = [t.action("action_answer"), t.bot(row["answer"], "knowledge:faq", row["id"]), t.recommended(row["id"])]
        turns.append([asked, *answer])
    order = Entity("order_id", "SO20261002", 6, 16, 1.0, "regex")
    turns.append(
        [
            t.user("帮我查下订单SO20261002", "check_order_status", order),
            SlotSet(name="order_id", value="SO20261002", timestamp=t.at()),
            t.action("order_form"),
            FormActivated(name="order_form", timestamp=t.at()),
            SlotSet(name="requested_slot", value=None, timestamp=t.at()),
            FormCompleted(name="order_form", timestamp=t.at()),
            t.action("action_check_order"),
            t.bot("订单 SO20261002 的状态：已付款，待发货，仓库会在 24 小时内发出。", "utter_order_status", "", 0),
        ]
    )
    turns.append(
        [t.user("好的，拜拜", "goodbye"), t.action("utter_goodbye"), t.bot("感谢您光临！再见！", "utter_goodbye")]
    )
    return turns
