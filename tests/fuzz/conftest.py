"""A small bilingual shop, trained once per test run in seconds (the demo shop takes about a minute), and the
whole kefu app over it on the suite's real Redis: the fuzz tests of the NLU, the payloads and the OpenAPI
schema share them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from bot.nlu.pipeline import TrainedNlu
from bot.server import create_app
from bot.settings import Settings
from bot.wiring import Project, build_parts, build_runtime, open_project, train
from tests.project.helpers import write_project

API_KEY = "fuzz-key-0123456789abcdef"

# Entities from every source the NLU merges: a regex (order_id), a lookup table with synonyms (product),
# annotations (the tagger) and the rule extractors the domain names (number, amount_of_money, time, ...).
PROJECT = {
    "domain.yml": """\
        version: "3.1"
        intents: [greet, thank, check_order, ask_product, inform]
        entities: [order_id, product, number, amount_of_money, time, phone_number, email]
        slots:
          order_id:
            type: text
            mappings:
              - type: from_entity
                entity: order_id
        forms:
          order_form:
            required_slots: [order_id]
        responses:
          utter_greet:
            - text: "你好！有什么可以帮您？ / Hello! How can I help?"
              buttons:
                - title: "查订单 / Orders"
                  payload: "/check_order"
          utter_thank:
            - text: "不客气 / You're welcome."
          utter_ask_order_id:
            - text: "请告诉我订单号（SO 加 8 位数字） / Your order number, please (SO and 8 digits)?"
          utter_order:
            - text: "订单 {order_id} 已发货 / Order {order_id} has shipped."
          utter_product:
            - text: "这款很受欢迎 / A popular choice."
        """,
    "data/nlu.yml": """\
        version: "3.1"
        nlu:
          - intent: greet
            examples: |
              - 你好
              - 您好
              - 在吗
              - hello
              - hi there
              - good morning
          - intent: thank
            examples: |
              - 谢谢
              - 多谢了
              - thanks
              - thank you very much
          - intent: check_order
            examples: |
              - 查一下订单[SO12345678](order_id)
              - 我的订单到哪了
              - 订单[SO87654321](order_id)什么时候到
              - where is my order
              - track order [SO11223344](order_id)
          - intent: ask_product
            examples: |
              - [X1 Pro](product)多少钱
              - [星耀手机](product:X1 Pro)有货吗
              - how much is the [Nebula Buds](product)
              - is [x1pro](product:X1 Pro) in stock
          - intent: inform
            examples: |
              - [SO12345678](order_id)
              - 是[SO99887766](order_id)
              - it's [SO55667788](order_id)
          - regex: order_id
            examples: |
              - SO\\d{8}
          - lookup: product
            examples: |
              - X1 Pro
              - Nebula Buds
              - 星耀X1
          - synonym: X1 Pro
            examples: |
              - x1pro
              - 星耀手机
        """,
    "data/rules.yml": """\
        version: "3.1"
        rules:
          - rule: greet
            steps:
              - intent: greet
              - action: utter_greet
          - rule: thank
            steps:
              - intent: thank
              - action: utter_thank
          - rule: product
            steps:
              - intent: ask_product
              - action: utter_product
          - rule: start the order form
            steps:
              - intent: check_order
              - action: order_form
              - active_loop: order_form
          - rule: submit the order form
            condition:
              - active_loop: order_form
            steps:
              - action: order_form
              - active_loop: null
              - action: utter_order
        """,
    "kefu.yml": """\
        nlu:
          epochs: 5
          max_chars: 120  # at the default 1000, each e5 embedding of a long fuzzed text takes up to a second
        generator:
          backend: none
        dialogue:
          ml_policy: false
          forms:
            order_form:
              slots:
                order_id: {regex: "[Ss][Oo]\\\\d{8}"}
        safety:
          audit: false
        """,
}


@pytest.fixture(scope="session")
def fuzz_project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The small shop, its NLU trained (with the multilingual dense features the demo shop uses)."""
    root = tmp_path_factory.mktemp("fuzz-shop")
    write_project(root, PROJECT)
    project = open_project(root, Settings(data_dir=root / ".kefu"))
    train(project, progress=False, parts=("nlu",))
    return project


@pytest.fixture(scope="session")
def fuzz_nlu(fuzz_project: Project) -> TrainedNlu:
    """The project's NLU as the turn uses it, loaded."""
    nlu = build_parts(fuzz_project, Settings(data_dir=fuzz_project.data_dir)).parts.nlu
    assert isinstance(nlu, TrainedNlu)
    nlu.warm_up()
    return nlu


@pytest.fixture(scope="module")
def app_client(fuzz_project: Project, redis_target: str) -> Iterator[TestClient]:
    """The kefu app (REST, widget WebSocket, /api/v1) over the small shop, its lifespan run by the client;
    `API_KEY` opens /api/v1, and only the channels every server runs are on."""
    settings = Settings(data_dir=fuzz_project.data_dir, redis_url=redis_target, max_message_chars=2000)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("KEFU_API_KEYS", f"fuzz:{API_KEY}")
        for name in ("KEFU_API_KEYS_FILE", "KEFU_WECHAT_TOKEN", "KEFU_WECOM_TOKEN", "KEFU_ADMIN_TOKEN"):
            env.delenv(name, raising=False)
        app = create_app(build_runtime(fuzz_project, settings), settings)
    with TestClient(app) as client:
        yield client
