"""`kefu run` as a user starts it: a real process, real HTTP, the embedded Redis, and a restart."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import xmltodict
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.utils import WeChatSigner

from tests.bot.servers import Server

pytestmark = pytest.mark.integration


def test_rest_answers_chinese_and_english_and_a_restart_keeps_the_conversation(server_data: Path) -> None:
    server = Server(server_data)
    try:
        zh = server.say("u-zh", "退货政策是什么？")
        assert zh[0]["recipient_id"] == "u-zh" and "7 天" in zh[0]["text"]
        en = server.say("u-en", "How much is the X1 Pro?")
        related = en[0].pop("quick_replies", [])  # recommended questions: tests/bot/test_recommend_channels.py
        assert all(q["payload"] == q["title"] for q in related)
        assert en == [{"recipient_id": "u-en", "text": "The X1 Pro costs ¥5999.", "kefu": en[0]["kefu"]}]
        asked = server.say("u-order", "我想查订单")
        assert "订单号" in asked[0]["text"]
        bad = httpx.post(f"{server.url}/webhooks/rest/webhook", content=b"{not json", timeout=10)
        assert bad.status_code == 400 and "not JSON" in bad.json()["error"]
    finally:
        server.stop()
    server = Server(server_data)
    try:
        answer = server.say("u-order", "SO20261001")  # the form asked before the restart; it still waits for this
        assert answer[0]["text"].startswith("订单 SO20261001 的状态：已发货")
    finally:
        server.stop()


def test_wechat_safe_mode_and_the_v1_api_answer_from_the_shop_when_configured_by_environment(
    server_data: Path,
) -> None:
    token, aes_key, app_id = "kefu-test-token", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wx0123456789abcdef"
    env = {"KEFU_WECHAT_TOKEN": token, "KEFU_WECHAT_AES_KEY": aes_key, "KEFU_WECHAT_APP_ID": app_id}
    server = Server(server_data, env=env | {"KEFU_API_KEYS": "crm:0123456789abcdef0123"})
    try:
        crypto = WeChatCrypto(token, aes_key, app_id)
        timestamp, nonce = str(int(time.time())), "20261124"
        message = (
            "<xml><ToUserName>gh_shop</ToUserName><FromUserName>oFan-1</FromUserName>"
            f"<CreateTime>{timestamp}</CreateTime><MsgType>text</MsgType><Content>退货政策是什么？</Content>"
            "<MsgId>6054768590064713728</MsgId></xml>"
        )
        envelope = crypto.encrypt_message(message, nonce, timestamp)
        signer = WeChatSigner()
        signer.add_data(token, timestamp, nonce)
        query = {
            "signature": signer.signature, "timestamp": timestamp, "nonce": nonce, "openid": "oFan-1",
            "encrypt_type": "aes", "msg_signature": xmltodict.parse(envelope)["xml"]["MsgSignature"],
        }  # fmt: skip
        response = httpx.post(f"{server.url}/wechat", params=query, content=envelope.encode(), timeout=30)
        answer = xmltodict.parse(response.text)["xml"]
        reply = parse_message(
            crypto.decrypt_message(response.text, answer["MsgSignature"], answer["TimeStamp"], answer["Nonce"])
        )
        assert reply.type == "text" and "7 天" in reply.content and reply.target == "oFan-1"

        api = f"{server.url}/api/v1/conversations/crm-42/messages"
        assert httpx.post(api, json={"text": "hi"}).status_code == 401
        sent = httpx.post(
            api, json={"text": "How much is the X1 Pro?"}, headers={"X-API-Key": "0123456789abcdef0123"}, timeout=60
        )
        assert sent.json()["replies"][0]["text"] == "The X1 Pro costs ¥5999."
        history = httpx.get(api, headers={"Authorization": "Bearer 0123456789abcdef0123"}).json()["messages"]
        assert [m["role"] for m in history] == ["user", "bot"]
    finally:
        server.stop()
