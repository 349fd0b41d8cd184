"""The operator console as agents use it, next to a customer's chat widget: Debian's chromium driven by
Playwright against a real `kefu run` with an operator account."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bot.assist.archive import ARCHIVE_FILE, Archive
from bot.assist.archive_sql import SqliteBackend
from bot.assist.operators import hash_password
from bot.events import BotUttered, HandedOff, OperatorMessage
from bot.wiring import Project
from tests.assist.test_analytics import DAY, archived, shop_sessions, user
from tests.bot.servers import Server
from tests.bot.test_widget_browser import WAIT_MS, ask, data_dir, expect

pytestmark = pytest.mark.integration

PASSWORD = "correct horse 42"
PAST_REPLY = "非质量问题的退货运费由您承担，质量问题的运费我们来付。"
PASSWORD_QUESTION = "忘记密码怎么办？"


async def seed_archive(data: Path) -> None:
    """Last days' conversations, one of them answered by an operator, three opened by a forgotten password:
    analytics, suggestions and the hot questions learn from them."""
    now = time.time()
    answered = archived(
        "web:past-returns", now - DAY, user("退货运费谁出？", "ask_returns"),
        HandedOff(reason="requested:request_human"), OperatorMessage(operator="alice", text=PAST_REPLY),
    )  # fmt: skip
    answer = BotUttered(text="在登录页点击“忘记密码”…", template="knowledge:faq", fact_ids=("faq_acc_01_zh",))
    forgotten = [
        s for n in range(3) for s in archived(f"web:pw-{n}", now - DAY + n, user(PASSWORD_QUESTION, "faq"), answer)
    ]
    archive = Archive(SqliteBackend(data / ARCHIVE_FILE))
    await archive.save([*shop_sessions(now - 2.5 * DAY), *answered, *forgotten])
    await archive.close()


@pytest.fixture(scope="module")
def console_server(shop_project: Project, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = data_dir(shop_project, tmp_path_factory.mktemp("console") / "data")
    asyncio.run(seed_archive(data))
    server = Server(data, env={"KEFU_OPERATORS": f"xiaowang:{hash_password(PASSWORD)}"})
    yield server
    server.stop()


def sign_in(page: object, url: str, password: str = PASSWORD) -> None:
    page.goto(url + "/console")  # type: ignore[attr-defined]
    expect(page).to_have_url(url + "/console/login?next=/console", timeout=WAIT_MS)
    page.get_by_label("账号").fill("xiaowang")  # type: ignore[attr-defined]
    page.get_by_label("密码").fill(password)  # type: ignore[attr-defined]
    page.get_by_role("button", name="登录").click()  # type: ignore[attr-defined]


def test_an_agent_takes_a_handed_off_chat_answers_with_a_suggestion_and_hands_it_back(
    console_server: Server, browser: object
) -> None:
    customer = browser.new_page(locale="zh-CN")  # type: ignore[attr-defined]
    agent = browser.new_page(locale="zh-CN")  # type: ignore[attr-defined]
    url = console_server.url
    customer.goto(url + "/")
    ask(customer, "运费怎么收？")
    expect(customer.locator(".msg.bot").last).to_contain_text("99", timeout=WAIT_MS)
    ask(customer, "转人工")
    expect(customer.locator(".msg.bot").last).to_contain_text("人工客服", timeout=WAIT_MS)

    sign_in(agent, url, "wrong password")
    expect(agent.get_by_role("alert")).to_contain_text("wrong name or password")
    sign_in(agent, url)
    expect(agent.locator("#me")).to_contain_text("xiaowang", timeout=WAIT_MS)
    waiting = agent.locator("#waiting .ticket")
    expect(waiting).to_have_count(1)
    expect(waiting).to_contain_text("requested:request_human")
    waiting.get_by_role("button").click()
    expect(agent.locator("#transcript .user")).to_have_text(["客户运费怎么收？", "客户转人工"])
    recommended = agent.locator("#transcript .bot .recommended").first
    expect(recommended).to_contain_text("猜你想问: [")  # as the customer saw them
    expect(agent.locator("#trace")).to_contain_text("request_human")
    expect(agent.locator("#summary")).not_to_be_empty()

    ask(customer, "退货运费谁出？")  # the console follows as the customer writes: transcript and suggestions
    expect(agent.locator("#transcript .user").last).to_contain_text("退货运费谁出", timeout=WAIT_MS)
    first = agent.locator("#suggestions .suggestion").first
    expect(first).to_contain_text("常见问题", timeout=WAIT_MS)
    expect(agent.locator("#suggestions .suggestion.archive")).to_contain_text(PAST_REPLY)  # what alice said

    agent.get_by_role("button", name="接入").click()
    expect(customer.locator(".msg.bot").last).to_contain_text("xiaowang 已接入", timeout=WAIT_MS)
    first.get_by_role("button", name="使用").click()
    box = agent.get_by_label("回复客户")
    suggested = box.input_value()
    assert suggested
    box.fill("您好，我是小王。" + suggested)
    with agent.expect_response(lambda r: "/console/api/messages/" in r.url) as sent:
        agent.get_by_role("button", name="发送").click()
    assert json.loads(sent.value.body())["rated"] == ["edited"]
    expect(customer.locator(".msg.operator").last).to_contain_text("您好，我是小王。", timeout=WAIT_MS)

    agent.get_by_role("button", name="交还机器人").click()
    expect(customer.locator(".msg.bot").last).to_contain_text("智能助手", timeout=WAIT_MS)
    expect(agent.locator("#waiting .ticket")).to_have_count(0)
    expect(agent.locator("#active .ticket")).to_have_count(0)
    ask(customer, "运费怎么收？")  # the bot answers again
    expect(customer.locator(".msg.bot").last).to_contain_text("运费", timeout=WAIT_MS)

    agent.goto(url + "/console/analytics")
    expect(agent.get_by_role("listitem").filter(has_text="会话数")).to_contain_text("12", timeout=WAIT_MS)
    expect(agent.locator("svg").first).to_be_visible()
    expect(agent.get_by_role("region", name="未解答问题（新 FAQ 候选）")).to_contain_text("发票")
    customer.close()
    agent.close()


def test_the_console_api_refuses_without_a_session_and_answers_with_one(console_server: Server) -> None:
    url = console_server.url
    assert httpx.get(url + "/console/api/queue").status_code == 401
    login = httpx.post(url + "/console/api/login", json={"name": "xiaowang", "password": PASSWORD})
    assert login.status_code == 200
    cookie = login.headers["set-cookie"]
    assert (
        "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict") and "Path=/console" in cookie
    )
    with httpx.Client(base_url=url, cookies=login.cookies) as client:
        assert client.get("/console/api/queue").json()["operator"] == "xiaowang"
        form = client.post("/console/api/claim/web:x", data={"take_over": "1"})  # a form, as another site could send
        assert form.status_code == 415
        assert client.post("/console/api/claim/web:nobody", json={}).status_code == 409
        console_server.say("crm-7", "转人工")
        assert client.post("/console/api/claim/crm-7", json={}).json()["ticket"]["operator"] == "xiaowang"
        edited = client.post("/console/api/summary/crm-7", json={"problem": "客户要求人工处理退款"})
        assert edited.status_code == 200 and edited.json()["summary"]["edited"] is True
        bad = client.post("/console/api/summary/crm-7", json={"sentiment": "furious"})
        assert bad.status_code == 400 and "sentiment" in bad.json()["error"]
        shown = client.get("/console/api/conversation/crm-7").json()
        assert shown["summary"]["problem"] == "客户要求人工处理退款" and "客户要求人工处理退款" in shown["summary_text"]
        assert client.post("/console/api/handback/crm-7", json={}).status_code == 200
        assert client.post("/console/api/handback/crm-7", json={}).status_code == 409
        assert client.post("/console/api/logout", json={}).status_code == 200
    assert httpx.get(url + "/console/api/queue", cookies=login.cookies).status_code == 401
    bad = httpx.post(url + "/console/api/login", json={"name": "nobody", "password": PASSWORD})
    assert bad.status_code == 401 and PASSWORD not in bad.text


def test_the_hot_questions_start_from_what_opened_the_archived_sessions(console_server: Server) -> None:
    """The server's Redis started empty, so its learned counts were seeded from the archive."""
    deadline = time.monotonic() + 20
    hot: list[str] = []
    while time.monotonic() < deadline and (not hot or hot[0] != PASSWORD_QUESTION):
        replies = console_server.say(f"hot-{time.monotonic_ns()}", "你好")
        hot = [b["title"] for b in replies[-1].get("quick_replies", [])]
        time.sleep(0.5)
    assert hot[:1] == [PASSWORD_QUESTION], hot
