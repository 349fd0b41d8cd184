"""The chat widget as a person uses it: Debian's chromium, driven by Playwright, against a real `kefu run`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.wiring import Project
from tests.bot.conftest import CHROMIUM
from tests.bot.servers import Server, free_port
from tests.bot.test_recommend_channels import faq_answers

pytestmark = pytest.mark.integration

GENERATED_QUESTION = "How long do the Nebula Buds last on one charge?"  # a passage of the care guide: generated
HAN = re.compile(r"[\u3400-\u9fff]")
WAIT_MS = 60_000

playwright = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    pytest.skip(
        "Debian's chromium is missing: `make setup` installs it as root (apt-get install chromium)",
        allow_module_level=True,
    )
expect = playwright.expect


def data_dir(shop_project: Project, root: Path) -> Path:
    root.mkdir()
    for name in ("models", "index"):
        (root / name).symlink_to(shop_project.data_dir / name)
    return root


@pytest.fixture
def server(running_shop: Server) -> Server:
    return running_shop


def ask(page: object, text: str) -> None:
    box = page.get_by_role("textbox")  # type: ignore[attr-defined]
    box.fill(text)
    box.press("Enter")


def test_streamed_reply_quick_reply_thumbs_and_history_after_a_reload(server: Server, browser: object) -> None:
    page = browser.new_page(locale="zh-CN")  # type: ignore[attr-defined]
    page.goto(server.url + "/")
    expect(page.get_by_role("dialog", name="在线客服")).to_be_visible()

    ask(page, GENERATED_QUESTION)
    streamed = page.locator(".msg.bot[data-streamed='true']")
    expect(streamed).to_contain_text("6 hours", timeout=WAIT_MS)  # shown as it streamed, then stored

    ask(page, "退货")
    page.get_by_role("button", name="退货政策").click()
    answer = page.locator(".msg.bot").last
    expect(answer).to_contain_text("7 天", timeout=WAIT_MS)
    answer.get_by_role("button", name="有帮助", exact=True).click()
    expect(answer.locator(".thumbs")).to_have_attribute("data-recorded", "true")

    said = page.locator(".msg.user .text")
    expect(said).to_have_count(3)
    page.reload()
    expect(said).to_have_text([GENERATED_QUESTION, "退货", "退货政策"], timeout=WAIT_MS)
    expect(page.locator(".msg.bot", has_text="7 天")).to_have_count(1)
    expect(page.locator(".msg.bot[data-seq]")).to_have_count(3)  # greeting aside, each reply once
    page.close()


def test_hot_questions_under_the_greeting_then_related_questions_under_each_answer(
    server: Server, browser: object, tmp_path: Path
) -> None:
    faq = faq_answers()
    page = browser.new_page(locale="zh-CN")  # type: ignore[attr-defined]
    page.goto(server.url + "/")
    hot = page.locator(".msg.greeting .quick.suggested")
    expect(hot.locator(".quick-label")).to_have_text("猜你想问", timeout=WAIT_MS)
    titles = hot.get_by_role("button").all_inner_texts()
    assert titles and all(title in faq for title in titles)  # the hot questions, in the widget's language
    first = "运费怎么收？" if "运费怎么收？" in titles else titles[0]
    hot.get_by_role("button", name=first, exact=True).click()
    expect(hot.get_by_role("button")).to_have_count(len(titles))
    for chip in hot.get_by_role("button").all():
        expect(chip).to_be_disabled()

    answers = page.locator(".msg.bot[data-seq]")
    expect(answers.nth(0).locator(".text")).to_have_text(faq[first], timeout=WAIT_MS)
    related = answers.nth(0).locator(".quick.suggested")
    expect(related.locator(".quick-label")).to_have_text("猜你想问")
    offered = [title for title in related.get_by_role("button").all_inner_texts() if title in faq]
    assert offered and first not in offered
    related.get_by_role("button", name=offered[0], exact=True).click()
    expect(answers.nth(1).locator(".text")).to_have_text(faq[offered[0]], timeout=WAIT_MS)
    expect(answers.nth(1).locator(".quick.suggested button").first).to_be_visible()
    expect(page.locator(".msg.user .text")).to_have_text([first, offered[0]])
    shot = tmp_path / "recommendations.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 0

    page.get_by_role("button", name="English").click()  # the label follows the widget's language
    expect(related.locator(".quick-label")).to_have_text("You may also ask")
    page.reload()  # history shows the related questions as it shows buttons; the hot list is for a fresh start
    expect(page.locator(".msg.bot[data-seq] .quick.suggested")).to_have_count(2, timeout=WAIT_MS)
    expect(page.locator(".msg.greeting .quick")).to_have_count(0)
    page.close()


def test_the_hot_questions_follow_the_customer_into_the_other_language(server: Server, browser: object) -> None:
    faq = faq_answers()
    page = browser.new_page(locale="zh-CN")  # type: ignore[attr-defined]
    page.goto(server.url + "/")
    hot = page.locator(".msg.greeting .quick.suggested")
    expect(hot).to_have_attribute("lang", "zh", timeout=WAIT_MS)
    chips = hot.get_by_role("button")
    assert all(HAN.search(title) for title in chips.all_inner_texts())
    page.get_by_role("button", name="English").click()  # the widget switched: so do the chips
    expect(hot).to_have_attribute("lang", "en")
    page.get_by_role("button", name="中文").click()
    expect(hot).to_have_attribute("lang", "zh")

    ask(page, "Do you have the Aurora Watch in stock?")  # the widget speaks Chinese, the customer English
    answers = page.locator(".msg.bot[data-seq]")
    expect(answers.nth(0).locator(".text")).to_have_text(
        "The Aurora Watch currently has 45 units in stock.", timeout=WAIT_MS
    )
    expect(hot).to_have_attribute("lang", "en")
    english = chips.all_inner_texts()
    assert english and not any(HAN.search(title) for title in english)
    expect(hot.locator(".quick-label")).to_have_text("猜你想问")  # the widget's own words keep its language

    picked = next((title for title in english if title in faq), english[0])
    hot.get_by_role("button", name=picked, exact=True).click()
    expect(page.locator(".msg.user .text").last).to_have_text(picked)
    expect(answers.nth(1).locator(".text")).not_to_be_empty(timeout=WAIT_MS)
    if picked in faq:
        expect(answers.nth(1).locator(".text")).to_have_text(faq[picked])
    else:  # a graph question, learned from what earlier tests asked
        assert not HAN.search(answers.nth(1).locator(".text").inner_text())
    ask(page, "运费怎么收？")  # back to Chinese: the clicked chips stay as they were, as history
    expect(answers.nth(2).locator(".text")).not_to_be_empty(timeout=WAIT_MS)
    expect(chips).to_have_text(english)
    for chip in chips.all():
        expect(chip).to_be_disabled()
    page.close()


def test_keyboard_phone_width_english_ui_and_csat(server: Server, browser: object) -> None:
    page = browser.new_page(locale="en-US", viewport={"width": 375, "height": 700})  # type: ignore[attr-defined]
    page.goto(server.url + "/")
    panel = page.get_by_role("dialog", name="Customer service")
    expect(panel).to_be_visible()
    assert panel.bounding_box()["width"] == 375  # full width on a phone

    page.get_by_role("textbox", name="Type your question…").focus()
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    launcher = page.get_by_role("button", name="Open customer service chat")
    expect(launcher).to_be_focused()
    page.keyboard.press("Enter")
    expect(panel).to_be_visible()
    expect(page.get_by_role("textbox")).to_be_focused()

    page.keyboard.type("How much is the X1 Pro?")
    page.keyboard.press("Enter")
    expect(page.get_by_role("log")).to_contain_text("¥5999", timeout=WAIT_MS)

    page.get_by_role("button", name="中文").click()
    expect(page.get_by_role("textbox")).to_have_attribute("placeholder", "请输入您的问题…")
    page.get_by_role("button", name="结束对话").click()
    page.get_by_role("button", name="5 分").click()
    expect(page.get_by_text("谢谢您的评价！")).to_be_visible()
    page.close()


def test_the_widget_reconnects_after_a_restart_and_loses_or_repeats_nothing(
    shop_project: Project, tmp_path: Path, browser: object
) -> None:
    data, port = data_dir(shop_project, tmp_path / "data"), free_port()
    server = Server(data, port=port)
    page = browser.new_page(locale="zh-CN")  # type: ignore[attr-defined]
    try:
        page.goto(server.url + "/")
        ask(page, "我想查订单")
        expect(page.locator(".msg.bot").last).to_contain_text("订单号", timeout=WAIT_MS)

        server.stop()
        expect(page.get_by_role("status").first).to_contain_text("重新连接", timeout=WAIT_MS)
        ask(page, "SO20261001")  # typed while the server is down: kept, and sent once it is back
        expect(page.locator(".msg.user.pending")).to_have_count(1)

        server = Server(data, port=port)
        expect(page.locator(".msg.bot").last).to_contain_text("已发货", timeout=WAIT_MS)
        expect(page.locator(".msg.user.pending")).to_have_count(0)
        expect(page.locator(".msg.bot .card").last).to_contain_text("订单 SO20261001")  # the order card
        expect(page.locator(".msg.user", has_text="SO20261001")).to_have_count(1)
        expect(page.locator(".msg.bot", has_text="已发货")).to_have_count(1)
        page.reload()  # what the server stored is what was shown: nothing lost, nothing twice
        expect(page.locator(".msg.user .text")).to_have_text(["我想查订单", "SO20261001"], timeout=WAIT_MS)
        expect(page.locator(".msg.bot", has_text="已发货")).to_have_count(1)
    finally:
        page.close()
        server.stop()
