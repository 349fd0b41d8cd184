"""A small bilingual customer-service NLU data set, and one model trained on it for the whole session."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.nlu.pipeline import TrainedNlu, TrainReport, train_nlu
from bot.types import Entity, NluData, NluExample, RegexFeature

ORDER_ID = re.compile(r"SO\d{8}")
PRODUCTS = ("X1 Pro", "X1", "AirBuds", "降噪耳机", "耳机", "headphones")

TRAIN: dict[str, list[str]] = {
    "greet": [
        "hello", "hi there", "good morning", "hey", "hello, anyone there?", "hi, I need some help",
        "good afternoon", "hey there, how are you", "hello customer service", "good evening", "hi!", "greetings",
        "你好", "您好", "在吗", "有人在吗", "早上好", "下午好",
        "晚上好", "你好，我想咨询一下", "嗨", "哈喽", "您好，请问有客服吗", "客服你好",
    ],
    "goodbye": [
        "bye", "goodbye", "see you later", "thanks, bye", "that's all, goodbye", "talk to you later",
        "have a nice day, bye", "bye bye", "see you", "ok thanks, that's everything", "I'm done, goodbye",
        "catch you later",
        "再见", "拜拜", "好的，再见", "谢谢，再见", "没有别的问题了，再见", "下次见",
        "先这样吧，拜拜", "回头见", "好的谢谢，拜拜", "就这些了，再见", "那我先走了，再见", "祝你愉快，再见",
    ],
    "check_order": [
        "where is my order", "track my order SO12345678", "what's the status of my order", "has my package shipped",
        "when will my order arrive", "check order SO87654321", "I want to track my package",
        "my order hasn't arrived yet", "where is my parcel", "order status please", "can you check my delivery",
        "when will order SO11223344 be delivered",
        "我的订单到哪了", "查一下订单SO12345678", "订单状态是什么", "我的快递发货了吗", "什么时候能到货",
        "帮我查订单SO87654321", "我想查物流", "订单还没到", "包裹到哪里了", "查询订单状态", "帮我看看配送进度",
        "订单SO11223344什么时候送到",
    ],
    "request_refund": [
        "I want a refund", "how do I get my money back", "refund my order please", "can I return this item",
        "I'd like to return the product", "please give me a refund", "how to apply for a refund",
        "return and refund", "I want my money back", "refund for order SO12345678",
        "can I get a refund for the X1 Pro", "I want to return my headphones",
        "我要退款", "怎么退钱", "请帮我退款", "这个商品可以退货吗", "我想退货", "申请退款", "退款流程是什么",
        "退货退款", "把钱退给我", "订单SO12345678退款", "X1 Pro可以退款吗", "我想退掉耳机",
    ],
    "report_fault": [
        "my phone is broken", "the screen doesn't work", "my X1 Pro won't turn on", "the device keeps crashing",
        "it stopped working", "the battery dies quickly", "my headphones have no sound", "the product is defective",
        "it won't charge", "the screen is cracked", "something is wrong with my device", "my laptop is not working",
        "我的手机坏了", "屏幕不亮了", "我的X1 Pro开不了机", "设备一直死机", "用不了了", "电池掉电很快",
        "耳机没有声音", "产品有质量问题", "充不进电", "屏幕碎了", "我的设备出故障了", "笔记本电脑不能用了",
    ],
}  # fmt: skip

HELD_OUT: dict[str, list[str]] = {
    "greet": [
        "hello there", "hi, good morning", "hey, is anyone available", "good morning to you",
        "你好呀", "在不在", "您好，在吗", "早上好，客服",
    ],
    "goodbye": [
        "ok bye", "goodbye and thanks", "see you later, bye", "thanks, that's all",
        "好的拜拜", "再见啦", "谢谢你，再见", "没事了，拜拜",
    ],
    "check_order": [
        "where is my package", "track order SO99887766", "what is the status of my delivery",
        "has my order shipped yet",
        "我的包裹到哪了", "帮我查一下物流", "订单SO99887766到哪了", "快递什么时候到",
    ],
    "request_refund": [
        "I need a refund", "how can I return this and get my money back", "please refund me",
        "I want to return this item",
        "我想申请退款", "可以退货吗", "怎么申请退款", "我要退钱",
    ],
    "report_fault": [
        "my phone won't turn on", "the screen is broken", "my device is not working",
        "the headphones stopped working",
        "手机开不了机", "屏幕坏了", "设备不能用了", "耳机坏了",
    ],
}  # fmt: skip


def annotate(text: str) -> tuple[Entity, ...]:
    """Annotate order ids and the first product mentioned, as a Rasa project's nlu.yml would."""
    found = [Entity("order_id", m.group(0), m.start(), m.end()) for m in ORDER_ID.finditer(text)]
    for product in PRODUCTS:
        start = text.find(product)
        if start >= 0:
            found.append(Entity("product", product, start, start + len(product)))
            break
    return tuple(found)


def make_data(train: dict[str, list[str]] | None = None) -> NluData:
    examples = tuple(
        NluExample(text, intent, annotate(text)) for intent, texts in (train or TRAIN).items() for text in texts
    )
    return NluData(
        examples=examples,
        synonyms={"耳机": "headphones", "earphones": "headphones", "airbuds": "AirBuds"},
        regexes=(RegexFeature("order_id", r"SO\d{8}"), RegexFeature("help", r"\bhelp\b")),
        lookups={"product": ("X1 Pro", "X1", "AirBuds", "降噪耳机", "耳机", "earphones")},
    )


@pytest.fixture(scope="session")
def nlu_data() -> NluData:
    return make_data()


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, nlu_data: NluData) -> tuple[Path, TrainReport]:
    """One trained model folder shared by the tests that only read it."""
    model_dir = tmp_path_factory.mktemp("nlu-model")
    return model_dir, train_nlu(nlu_data, model_dir, seed=0, progress=False)


@pytest.fixture(scope="session")
def nlu(trained: tuple[Path, TrainReport]) -> TrainedNlu:
    parser = TrainedNlu(trained[0])
    parser.warm_up()
    return parser


@pytest.fixture(scope="session")
def held_out() -> dict[str, list[str]]:
    """Paraphrases that are not training examples, by intent."""
    return HELD_OUT
