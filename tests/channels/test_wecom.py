"""The WeCom channel against the real wechatpy (`wechatpy.enterprise.crypto`), a fake bot and a fake WeCom API."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import httpx
import pytest
import xmltodict
from pydantic import SecretStr
from starlette.applications import Starlette
from wechatpy import parse_message
from wechatpy.crypto import _get_signature
from wechatpy.enterprise.crypto import PrpCrypto, WeChatCrypto

from bot.channels.wecom import WeComChannel, WeComSettings, wecom_channel_from_env
from bot.errors import ConfigError
from bot.types import Button, Message, Reply
from tests.channels.test_wechat_crypto import (
    SAMPLE_CORP,
    SAMPLE_ECHOSTR,
    SAMPLE_KEY,
    SAMPLE_NONCE,
    SAMPLE_SIGNATURE,
    SAMPLE_TIMESTAMP,
    SAMPLE_TOKEN,
)
from tests.channels.wechat_fakes import API_BASE, WELCOME, FakeApi, FakeBot, event_xml, image_xml, text_xml

CORP_SECRET = "corp-secret-never-logged"
AGENT_ID = 1000002
USER = "zhangsan"


class WeComSide:
    """WeCom's servers (via wechatpy) calling a channel served in a Starlette app, with a fake API behind it."""

    def __init__(self, bot: FakeBot, **settings: Any) -> None:
        self.bot = bot
        self.api = FakeApi()
        fields: dict[str, Any] = {
            "token": SecretStr(SAMPLE_TOKEN), "aes_key": SecretStr(SAMPLE_KEY), "corp_id": SAMPLE_CORP,
            "agent_id": AGENT_ID, "secret": SecretStr(CORP_SECRET), "api_base": API_BASE, "reply_deadline_s": 0.3,
        }  # fmt: skip
        self.channel = WeComChannel(WeComSettings(**(fields | settings)), http=self.api.client())
        app = Starlette(routes=self.channel.routes(bot))
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kefu.test")
        self.crypto = WeChatCrypto(SAMPLE_TOKEN, SAMPLE_KEY, SAMPLE_CORP)

    async def post(self, xml: str, *, nonce: str = "1372623149", **params: str) -> httpx.Response:
        ts = str(int(time.time()))
        envelope = self.crypto.encrypt_message(xml, nonce, ts)
        query = {"msg_signature": xmltodict.parse(envelope)["xml"]["MsgSignature"], "timestamp": ts, "nonce": nonce}
        return await self.client.post("/wecom", params=query | params, content=envelope.encode())

    def reply(self, response: httpx.Response) -> Any:
        assert response.status_code == 200
        envelope = xmltodict.parse(response.text)["xml"]
        xml = self.crypto.decrypt_message(
            response.text, envelope["MsgSignature"], envelope["TimeStamp"], envelope["Nonce"]
        )
        return parse_message(xml)


@pytest.fixture
async def wecom() -> AsyncIterator[Callable[..., WeComSide]]:
    sides: list[WeComSide] = []

    def make(bot: FakeBot | None = None, **kwargs: Any) -> WeComSide:
        sides.append(WeComSide(bot or FakeBot(), **kwargs))
        return sides[-1]

    yield make
    for side in sides:
        await side.channel.drain()
        await side.client.aclose()


def echostr_check(echo: str, corp_id: str = SAMPLE_CORP) -> dict[str, str]:
    encrypted = PrpCrypto(base64.b64decode(SAMPLE_KEY + "=")).encrypt(echo, corp_id).decode()
    ts = str(int(time.time()))
    signature = _get_signature(SAMPLE_TOKEN, ts, "5", encrypted)
    return {"msg_signature": signature, "timestamp": ts, "nonce": "5", "echostr": encrypted}


async def test_the_published_url_check_is_answered_with_the_plaintext(wecom):
    side = wecom(timestamp_window_s=10**10)  # the sample was signed in 2014
    params = {"msg_signature": SAMPLE_SIGNATURE, "timestamp": SAMPLE_TIMESTAMP, "nonce": SAMPLE_NONCE}
    response = await side.client.get("/wecom", params=params | {"echostr": SAMPLE_ECHOSTR})
    assert (response.status_code, response.text) == (200, "1616140317555161061")


async def test_url_check_decrypts_the_echostr(wecom):
    response = await wecom().client.get("/wecom", params=echostr_check("8841923462371"))
    assert (response.status_code, response.text) == (200, "8841923462371")


async def test_url_check_with_a_wrong_signature_or_stale_timestamp_is_forbidden(wecom):
    side = wecom()
    forged = echostr_check("1") | {"msg_signature": "0" * 40}
    response = await side.client.get("/wecom", params=forged)
    assert (response.status_code, response.text) == (403, "forbidden")
    stale = echostr_check("1")
    stale["timestamp"] = str(int(stale["timestamp"]) - 600)
    stale["msg_signature"] = _get_signature(SAMPLE_TOKEN, stale["timestamp"], "5", stale["echostr"])
    response = await side.client.get("/wecom", params=stale)
    assert (response.status_code, response.text) == (403, "forbidden")


async def test_url_check_for_another_corp_is_refused(wecom):
    response = await wecom().client.get("/wecom", params=echostr_check("1", corp_id="ww-another-corp"))
    assert response.status_code == 400


async def test_an_encrypted_message_round_trip(wecom):
    side = wecom()
    reply = side.reply(await side.post(text_xml("查订单", user=USER, to=SAMPLE_CORP, msg_id="42")))
    assert (reply.type, reply.content, reply.target, reply.source) == ("text", "echo: 查订单", USER, SAMPLE_CORP)
    (message,) = side.bot.messages
    assert (message.channel, message.conversation_id, message.sender_id, message.message_id) == (
        "wecom", f"wecom:{USER}", USER, "42",
    )  # fmt: skip


async def test_a_forged_message_is_forbidden(wecom):
    side = wecom()
    response = await side.post(text_xml("hi", user=USER), msg_signature="f" * 40)
    assert (response.status_code, response.text) == (403, "forbidden")
    assert side.bot.messages == []


async def test_subscribe_greets_and_other_types_are_answered_without_the_bot(wecom):
    side = wecom()
    assert side.reply(await side.post(event_xml("subscribe", user=USER, to=SAMPLE_CORP))).content == WELCOME
    assert (await side.post(event_xml("enter_agent", user=USER, to=SAMPLE_CORP))).text == "success"
    assert "文字" in side.reply(await side.post(image_xml(user=USER, to=SAMPLE_CORP))).content
    assert [m.text for m in side.bot.messages] == ["/greet"]


async def test_recommended_questions_are_numbered_and_a_number_asks_one(wecom):
    asked = (Button("怎么开发票？", "怎么开发票？"), Button("退款多久到账？", "退款多久到账？"))

    def hot(message: Message) -> Sequence[Reply]:
        return [Reply(text="您好！", quick_replies=asked if message.text == "/greet" else ())]

    side = wecom(FakeBot(hot))
    greeting = side.reply(await side.post(event_xml("subscribe", user=USER, to=SAMPLE_CORP)))
    assert greeting.content == "您好！\n猜你想问：\n1. 怎么开发票？\n2. 退款多久到账？"
    await side.post(text_xml("2", user=USER, to=SAMPLE_CORP, msg_id="8"))
    assert [m.text for m in side.bot.messages] == ["/greet", "退款多久到账？"]


async def test_a_retry_is_answered_once(wecom):
    side = wecom()
    await side.post(text_xml("hi", user=USER, msg_id="7"))
    assert (await side.post(text_xml("hi", user=USER, msg_id="7"), nonce="2")).text == "success"
    assert len(side.bot.messages) == 1


async def test_a_slow_turn_is_pushed_as_an_application_message(wecom):
    side = wecom(FakeBot(delay=0.2), reply_deadline_s=0.01)
    assert (await side.post(text_xml("慢", user=USER, msg_id="8"))).text == "success"
    assert (await side.post(text_xml("也慢", user=USER, msg_id="9"))).text == "success"
    await side.channel.drain()
    assert side.api.token_calls == [{"corpid": SAMPLE_CORP, "corpsecret": CORP_SECRET}]
    assert side.api.sends == [
        ("/cgi-bin/message/send", "ACCESS-1",
         {"touser": USER, "agentid": AGENT_ID, "msgtype": "text", "text": {"content": "echo: 慢"}}),
        ("/cgi-bin/message/send", "ACCESS-1",
         {"touser": USER, "agentid": AGENT_ID, "msgtype": "text", "text": {"content": "echo: 也慢"}}),
    ]  # fmt: skip


async def test_a_renewed_token_after_42001(wecom):
    side = wecom()
    side.api.send_errcodes = [42001]
    await side.channel.deliver(USER, [Reply(text="hi")])
    assert [token for _, token, _ in side.api.sends] == ["ACCESS-1", "ACCESS-2"]


def test_channel_from_env(monkeypatch):
    for name in ("TOKEN", "AES_KEY", "CORP_ID", "SECRET", "AGENT_ID"):
        monkeypatch.delenv(f"KEFU_WECOM_{name}", raising=False)
    assert wecom_channel_from_env() is None
    monkeypatch.setenv("KEFU_WECOM_TOKEN", SAMPLE_TOKEN)
    with pytest.raises(ConfigError):  # no AES key, no CorpID
        wecom_channel_from_env()
    monkeypatch.setenv("KEFU_WECOM_AES_KEY", SAMPLE_KEY)
    monkeypatch.setenv("KEFU_WECOM_CORP_ID", SAMPLE_CORP)
    channel = wecom_channel_from_env()
    assert channel is not None
    assert (channel.name, channel.settings.path, channel.settings.api_base) == (
        "wecom", "/wecom", "https://qyapi.weixin.qq.com",
    )  # fmt: skip
    monkeypatch.setenv("KEFU_WECOM_SECRET", CORP_SECRET)
    with pytest.raises(ConfigError) as caught:  # a secret without the AgentId cannot send
        wecom_channel_from_env()
    assert CORP_SECRET not in str(caught.value)
