"""The Official Account channel against the real wechatpy (signing, encrypting, parsing what WeChat would), a fake
bot (a `TurnHandler`) and a fake WeChat API server."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import httpx
import pytest
import xmltodict
from pydantic import SecretStr
from starlette.applications import Starlette
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.utils import WeChatSigner, check_signature

from bot.channels.wechat import WeChatChannel, WeChatSettings, wechat_channel_from_env
from bot.channels.wechat_api import PlatformApiError, user_ref
from bot.channels.wechat_menus import Menus
from bot.channels.wechat_replies import SORRY_TEXT, UNSUPPORTED_TEXT, render
from bot.errors import ConfigError
from bot.types import Button, Message, Reply
from tests.channels.wechat_fakes import (
    API_BASE,
    WELCOME,
    FakeApi,
    FakeBot,
    echo,
    event_xml,
    image_xml,
    text_xml,
)

TOKEN = "kefu-test-token"
APP_ID = "wx5823bf96d3bd56c7"
APP_SECRET = "app-secret-never-logged"
AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
USER = "oUser-1"


def plain_signature(timestamp: str, nonce: str) -> str:
    signer = WeChatSigner()
    signer.add_data(TOKEN, timestamp, nonce)
    check_signature(TOKEN, signer.signature, timestamp, nonce)  # what WeChat sends is what wechatpy accepts
    return str(signer.signature)


class WeChatSide:
    """WeChat's servers (via wechatpy) calling a channel served in a Starlette app, with a fake API behind it."""

    def __init__(self, bot: FakeBot, *, aes: bool = False, menus: Menus | None = None, **settings: Any) -> None:
        self.bot = bot
        self.api = FakeApi()
        fields: dict[str, Any] = {
            "token": SecretStr(TOKEN), "app_id": APP_ID, "app_secret": SecretStr(APP_SECRET), "api_base": API_BASE,
            "reply_deadline_s": 0.3, "aes_key": SecretStr(AES_KEY) if aes else None,
        }  # fmt: skip
        self.channel = WeChatChannel(WeChatSettings(**(fields | settings)), http=self.api.client(), menus=menus)
        app = Starlette(routes=self.channel.routes(bot))
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kefu.test")
        self.crypto = WeChatCrypto(TOKEN, AES_KEY, APP_ID) if aes else None

    async def post(
        self, xml: str, *, timestamp: int | None = None, nonce: str = "424242", **params: str
    ) -> httpx.Response:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        query = {"signature": plain_signature(ts, nonce), "timestamp": ts, "nonce": nonce, "openid": USER}
        if self.crypto is not None:
            envelope = self.crypto.encrypt_message(xml, nonce, ts)
            query |= {"encrypt_type": "aes", "msg_signature": xmltodict.parse(envelope)["xml"]["MsgSignature"]}
            xml = envelope
        return await self.client.post("/wechat", params=query | params, content=xml.encode())

    def reply(self, response: httpx.Response) -> Any:
        """The reply as wechatpy parses it (decrypted and its signature checked first in safe mode)."""
        assert response.status_code == 200
        xml = response.text
        if self.crypto is not None:
            envelope = xmltodict.parse(xml)["xml"]
            xml = self.crypto.decrypt_message(xml, envelope["MsgSignature"], envelope["TimeStamp"], envelope["Nonce"])
        return parse_message(xml)

    async def aclose(self) -> None:
        await self.channel.drain()
        await self.client.aclose()


@pytest.fixture
async def wechat() -> AsyncIterator[Callable[..., WeChatSide]]:
    sides: list[WeChatSide] = []

    def make(bot: FakeBot | None = None, **kwargs: Any) -> WeChatSide:
        sides.append(WeChatSide(bot or FakeBot(), **kwargs))
        return sides[-1]

    yield make
    for side in sides:
        await side.aclose()


def verification(timestamp: int | None = None, signature: str | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {"signature": signature or plain_signature(ts, "777"), "timestamp": ts, "nonce": "777", "echostr": "e-42"}


# --- URL verification ---


async def test_url_verification_answers_the_echostr(wechat):
    response = await wechat().client.get("/wechat", params=verification())
    assert response.status_code == 200
    assert response.text == "e-42"


async def test_url_verification_with_a_wrong_signature_is_forbidden_and_says_nothing(wechat):
    response = await wechat().client.get("/wechat", params=verification(signature="0" * 40))
    assert response.status_code == 403
    assert response.text == "forbidden"


async def test_url_verification_with_a_non_ascii_signature_is_forbidden(wechat):
    response = await wechat().client.get("/wechat", params=verification(signature="签名"))
    assert response.status_code == 403


async def test_url_verification_with_a_stale_timestamp_is_forbidden(wechat):
    response = await wechat().client.get("/wechat", params=verification(timestamp=int(time.time()) - 301))
    assert response.status_code == 403
    assert response.text == "forbidden"


async def test_timestamp_window_is_configurable(wechat):
    side = wechat(timestamp_window_s=3600)
    response = await side.client.get("/wechat", params=verification(timestamp=int(time.time()) - 1800))
    assert response.status_code == 200


async def test_missing_query_parameters_are_a_bad_request(wechat):
    side = wechat()
    params = verification()
    del params["echostr"]
    assert (await side.client.get("/wechat", params=params)).status_code == 400
    assert (await side.client.post("/wechat", params={"timestamp": "1"}, content=b"<xml/>")).status_code == 400
    assert (await side.client.get("/wechat", params=verification() | {"timestamp": "soon"})).status_code == 400


# --- messages ---


async def test_plaintext_text_message_gets_a_passive_text_reply(wechat):
    side = wechat()
    reply = side.reply(await side.post(text_xml("你好", msg_id="1001")))
    assert (reply.type, reply.content, reply.target, reply.source) == ("text", "echo: 你好", USER, "gh_shop")
    (message,) = side.bot.messages
    assert (message.channel, message.conversation_id, message.sender_id) == ("wechat", f"wechat:{USER}", USER)
    assert (message.message_id, message.text) == ("1001", "你好")


async def test_safe_mode_message_gets_an_encrypted_reply_that_wechatpy_decrypts(wechat):
    side = wechat(aes=True)
    response = await side.post(text_xml("加密的消息 & <tags>"))
    assert "echo" not in response.text  # the reply travels encrypted
    assert side.reply(response).content == "echo: 加密的消息 & <tags>"


async def test_safe_mode_refuses_plaintext_and_a_wrong_msg_signature(wechat):
    side = wechat(aes=True)
    ts = str(int(time.time()))
    plain = {"signature": plain_signature(ts, "1"), "timestamp": ts, "nonce": "1"}
    assert (await side.client.post("/wechat", params=plain, content=text_xml("hi").encode())).status_code == 400
    forged = await side.post(text_xml("hi"), msg_signature="f" * 40)
    assert (forged.status_code, forged.text) == (403, "forbidden")
    assert side.bot.messages == []


async def test_a_wrong_signature_on_a_message_is_forbidden_before_the_bot(wechat):
    side = wechat()
    response = await side.post(text_xml("hi"), signature="0" * 40)
    assert (response.status_code, response.text) == (403, "forbidden")
    assert side.bot.messages == []


async def test_subscribe_runs_the_greet_turn(wechat):
    side = wechat()
    reply = side.reply(await side.post(event_xml("subscribe", create_time=1700000000)))
    assert reply.content == WELCOME
    (message,) = side.bot.messages
    assert (message.text, dict(message.meta), message.message_id) == (
        "/greet",
        {"event": "subscribe"},
        f"{USER}:1700000000",
    )


async def test_other_events_get_success_without_the_bot(wechat):
    side = wechat()
    response = await side.post(event_xml("unsubscribe"))
    assert (response.status_code, response.text) == (200, "success")
    assert side.bot.messages == []


async def test_an_image_gets_a_polite_answer_without_the_bot(wechat):
    side = wechat()
    assert side.reply(await side.post(image_xml())).content == UNSUPPORTED_TEXT
    assert side.bot.messages == []


async def test_a_failing_turn_gets_a_polite_reply(wechat):
    def broken(message: Message) -> Sequence[Reply]:
        raise RuntimeError("bug")

    side = wechat(FakeBot(broken))
    assert side.reply(await side.post(text_xml("hi"))).content == SORRY_TEXT


async def test_a_retry_of_the_same_msgid_reaches_the_bot_once(wechat):
    side = wechat()
    first = await side.post(text_xml("hi", msg_id="555"))
    retry = await side.post(text_xml("hi", msg_id="555"), nonce="999")
    assert side.reply(first).content == "echo: hi"
    assert (retry.status_code, retry.text) == (200, "success")
    assert len(side.bot.messages) == 1


# --- replies: menus, cards, several replies ---


def shop(message: Message) -> Sequence[Reply]:
    if message.text == "menu":
        return [Reply(text="请选择：", buttons=(Button("查询订单", "/order_status"), Button("退货", "/return")))]
    if message.text == "card":
        card = {
            "title": "订单 A1001",
            "subtitle": "已发货",
            "image": "http://img.test/a.png",
            "url": "http://shop.test/A1001",
        }
        return [Reply(text="您的订单", custom={"card": card})]
    if message.text == "several":
        earbuds: dict[str, Any] = {"title": "蓝牙耳机", "fields": [{"label": "价格", "value": "¥199"}]}
        return [
            Reply(text="第一条"),
            Reply(text="第二条", custom={"card": earbuds}),
            Reply(text="看图", image="http://img.test/b.png"),
        ]
    return echo(message)


async def test_numbered_buttons_then_a_number_sends_that_buttons_payload(wechat):
    side = wechat(FakeBot(shop))
    menu = side.reply(await side.post(text_xml("menu", msg_id="1")))
    assert menu.content == "请选择：\n1. 查询订单\n2. 退货"
    await side.post(text_xml("２", msg_id="2"))  # a full-width digit, as Chinese keyboards type it
    assert side.bot.messages[1].text == "/return"
    assert side.bot.messages[1].meta == {"button": {"number": 2, "title": "退货"}}
    await side.post(text_xml("2", msg_id="3"))  # the last turn had no buttons: the menu is gone
    assert side.bot.messages[2].text == "2"


async def test_a_number_outside_the_menu_is_plain_text(wechat):
    side = wechat(FakeBot(shop))
    await side.post(text_xml("menu", msg_id="1"))
    await side.post(text_xml("3", msg_id="2"))
    assert side.bot.messages[1].text == "3"


SHIPPING_ZH = (Button("你们用什么快递？", "你们用什么快递？"), Button("从哪里发货？", "从哪里发货？"))
SHIPPING_EN = (Button("Which courier do you use?", "Which courier do you use?"),)


def recommending(message: Message) -> Sequence[Reply]:
    """Replies with recommended questions (猜你想问) under them, as the recommendation stage attaches them."""
    if message.text == "运费":
        human = (Button("转人工", "/request_human"),)
        return [Reply(text="满 ¥99 包邮。", buttons=human, quick_replies=SHIPPING_ZH)]
    if message.text == "shipping":
        return [Reply(text="Free over ¥99.", quick_replies=SHIPPING_EN)]
    if message.text == "card":
        card = {"title": "订单 A1001", "url": "http://shop.test/A1001"}
        return [Reply(text="您的订单", custom={"card": card}, quick_replies=SHIPPING_ZH)]
    return echo(message)


async def test_recommended_questions_are_numbered_after_the_buttons_and_a_number_asks_one(wechat):
    side = wechat(FakeBot(recommending))
    menu = side.reply(await side.post(text_xml("运费", msg_id="1")))
    assert menu.content == "满 ¥99 包邮。\n1. 转人工\n猜你想问：\n2. 你们用什么快递？\n3. 从哪里发货？"
    await side.post(text_xml("3", msg_id="2"))
    assert side.bot.messages[1].text == "从哪里发货？"  # the question's text: the bot sees it asked as a click
    assert side.bot.messages[1].meta == {"button": {"number": 3, "title": "从哪里发货？"}}
    await side.post(text_xml("运费", msg_id="3"))
    await side.post(text_xml("1", msg_id="4"))  # buttons keep their numbers ahead of the questions
    assert side.bot.messages[3].text == "/request_human"


async def test_recommended_questions_in_english_get_an_english_header(wechat):
    side = wechat(FakeBot(recommending))
    reply = side.reply(await side.post(text_xml("shipping", msg_id="1")))
    assert reply.content == "Free over ¥99.\nYou may also ask:\n1. Which courier do you use?"
    await side.post(text_xml("1", msg_id="2"))
    assert side.bot.messages[1].text == "Which courier do you use?"


async def test_a_card_with_recommended_questions_is_text_so_that_the_numbers_show(wechat):
    side = wechat(FakeBot(recommending))
    reply = side.reply(await side.post(text_xml("card", msg_id="1")))
    assert reply.type == "text"
    assert reply.content.endswith("http://shop.test/A1001\n猜你想问：\n1. 你们用什么快递？\n2. 从哪里发货？")


async def test_a_late_answer_numbers_its_recommended_questions_too(wechat):
    side = wechat(FakeBot(recommending, delay=0.2), reply_deadline_s=0.01)
    assert (await side.post(text_xml("shipping", msg_id="1"))).text == "success"
    await side.channel.drain()
    assert side.api.sends[0][2]["text"]["content"].endswith("You may also ask:\n1. Which courier do you use?")
    await side.post(text_xml("1", msg_id="2"))
    assert side.bot.messages[1].text == "Which courier do you use?"


def test_the_header_follows_the_reply_text_else_the_questions():
    assert render([Reply(text="好的", quick_replies=SHIPPING_EN)]).text.splitlines()[1] == "猜你想问："
    assert render([Reply(text="OK", quick_replies=SHIPPING_ZH)]).text.splitlines()[1] == "You may also ask:"
    assert render([Reply(text="", quick_replies=SHIPPING_ZH)]).text.splitlines()[0] == "猜你想问："
    assert render([Reply(text="¥99", quick_replies=SHIPPING_EN)]).text.splitlines()[1] == "You may also ask:"


async def test_a_single_card_with_a_link_is_a_news_reply(wechat):
    side = wechat(FakeBot(shop))
    reply = xmltodict.parse((await side.post(text_xml("card"))).text)["xml"]
    assert (reply["MsgType"], reply["ArticleCount"]) == ("news", "1")
    assert reply["Articles"]["item"] == {
        "Title": "订单 A1001", "Description": "已发货", "PicUrl": "http://img.test/a.png", "Url": "http://shop.test/A1001",
    }  # fmt: skip


async def test_several_replies_are_joined_with_blank_lines(wechat):
    side = wechat(FakeBot(shop))
    reply = side.reply(await side.post(text_xml("several")))
    assert reply.content == "第一条\n\n第二条\n蓝牙耳机\n价格: ¥199\n\n看图\nhttp://img.test/b.png"


# --- late answers through the customer-service API ---


async def test_a_slow_turn_answers_success_then_pushes_the_answer(wechat):
    side = wechat(FakeBot(delay=0.5), reply_deadline_s=0.05)
    started = time.monotonic()
    response = await side.post(text_xml("慢一点", msg_id="77"))
    assert (response.text, time.monotonic() - started < 0.4) == ("success", True)
    await side.channel.drain()
    assert side.api.token_calls == [{"grant_type": "client_credential", "appid": APP_ID, "secret": APP_SECRET}]
    assert side.api.sends == [
        (
            "/cgi-bin/message/custom/send",
            "ACCESS-1",
            {"touser": USER, "msgtype": "text", "text": {"content": "echo: 慢一点"}},
        )
    ]


async def test_the_access_token_is_fetched_once_for_concurrent_and_later_sends(wechat):
    side = wechat(FakeBot(delay=0.2), reply_deadline_s=0.01)
    for msg_id in ("1", "2"):
        assert (await side.post(text_xml(f"m{msg_id}", msg_id=msg_id))).text == "success"
    await side.channel.drain()
    await side.channel.deliver(USER, [Reply(text="later")])
    assert len(side.api.token_calls) == 1
    assert [token for _, token, _ in side.api.sends] == ["ACCESS-1"] * 3


async def test_an_expired_token_is_renewed_once(wechat):
    side = wechat()
    side.api.send_errcodes = [42001]
    await side.channel.deliver(USER, [Reply(text="hi")])
    assert [token for _, token, _ in side.api.sends] == ["ACCESS-1", "ACCESS-2"]
    side.api.send_errcodes = [40001, 40001]
    with pytest.raises(PlatformApiError) as caught:
        await side.channel.deliver(USER, [Reply(text="hi")])
    assert caught.value.errcode == 40001
    assert len(side.api.token_calls) == 3  # renewed once for this send, not in a loop


async def test_a_card_is_pushed_as_news(wechat):
    side = wechat()
    await side.channel.deliver(USER, shop(_message("card")))
    (_, _, payload) = side.api.sends[0]
    assert payload["msgtype"] == "news"
    assert payload["news"]["articles"][0]["url"] == "http://shop.test/A1001"


async def test_a_closed_window_is_logged_without_the_openid_or_secrets(wechat, caplog):
    caplog.set_level(logging.DEBUG)
    side = wechat(FakeBot(delay=0.2), reply_deadline_s=0.01)
    side.api.send_errcodes = [45015]
    assert (await side.post(text_xml("hi"))).text == "success"
    await side.channel.drain()
    logged = "\n".join(r.getMessage() for r in caplog.records if "kefu.test" not in r.getMessage())  # not WeChat's own
    assert "45015" in logged
    assert user_ref(USER) in logged
    assert "access_token=***" in logged  # httpx's request log, masked
    for secret in (USER, APP_SECRET, "ACCESS-1", TOKEN):
        assert secret not in logged


async def test_a_late_answer_without_app_secret_is_logged_as_lost(wechat, caplog):
    side = wechat(FakeBot(delay=0.2), reply_deadline_s=0.01, app_secret=None)
    assert (await side.post(text_xml("hi"))).text == "success"
    await side.channel.drain()
    assert "KEFU_WECHAT_APP_SECRET" in caplog.text
    assert side.api.sends == []


async def test_a_retry_during_a_slow_turn_gets_one_late_answer(wechat):
    side = wechat(FakeBot(delay=0.2), reply_deadline_s=0.01)
    assert (await side.post(text_xml("hi", msg_id="9"))).text == "success"
    assert (await side.post(text_xml("hi", msg_id="9"), nonce="2")).text == "success"
    await side.channel.drain()
    assert len(side.bot.messages) == 1
    assert len(side.api.sends) == 1


# --- hostile requests ---

BOMB = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><xml><Content>&lol3;</Content></xml>'
)
EXTERNAL = (
    '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><xml><Content>&xxe;</Content></xml>'
)


@pytest.mark.parametrize("body", [BOMB, EXTERNAL, "<xml><Content>unclosed</xml>", "not xml at all", "<other/>"])
async def test_hostile_or_malformed_xml_is_a_bad_request(wechat, body):
    side = wechat()
    response = await side.post(body)
    assert response.status_code == 400
    assert side.bot.messages == []


async def test_an_encrypted_xml_bomb_is_refused(wechat):
    side = wechat(aes=True)
    assert (await side.post(BOMB)).status_code == 400


@pytest.mark.parametrize("streamed", [False, True])
async def test_an_oversized_body_is_refused(wechat, streamed):
    side = wechat()
    big = text_xml("x" * 70_000).encode()

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit applies while reading
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    ts = str(int(time.time()))
    params = {"signature": plain_signature(ts, "1"), "timestamp": ts, "nonce": "1"}
    response = await side.client.post("/wechat", params=params, content=chunks() if streamed else big)
    assert response.status_code == 413
    assert side.bot.messages == []


# --- configuration ---


def test_channel_from_env(monkeypatch):
    for name in ("TOKEN", "APP_ID", "APP_SECRET", "AES_KEY"):
        monkeypatch.delenv(f"KEFU_WECHAT_{name}", raising=False)
    assert wechat_channel_from_env() is None
    monkeypatch.setenv("KEFU_WECHAT_TOKEN", TOKEN)
    monkeypatch.setenv("KEFU_WECHAT_PATH", "/wx")
    channel = wechat_channel_from_env()
    assert channel is not None
    assert (channel.name, channel.settings.path, channel.settings.reply_deadline_s) == ("wechat", "/wx", 4.0)
    monkeypatch.setenv("KEFU_WECHAT_APP_ID", APP_ID)
    monkeypatch.setenv("KEFU_WECHAT_AES_KEY", "short-secret-key")
    with pytest.raises(ConfigError) as caught:
        wechat_channel_from_env()
    assert "short-secret-key" not in str(caught.value)
    monkeypatch.setenv("KEFU_WECHAT_REPLY_DEADLINE_S", "9")
    with pytest.raises(ConfigError):
        wechat_channel_from_env()


def test_safe_mode_needs_the_app_id():
    with pytest.raises(ConfigError):
        WeChatChannel(WeChatSettings(token=SecretStr(TOKEN), app_id="", aes_key=SecretStr(AES_KEY)))


def _message(text: str) -> Message:
    return Message(conversation_id="c", channel="wechat", sender_id=USER, message_id="", text=text, received_at=0.0)
