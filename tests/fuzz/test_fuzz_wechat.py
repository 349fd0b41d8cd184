"""Fuzzing WeChat's XML, the safe-mode crypto and the Official Account / WeCom callbacks, with the real wechatpy
as the other side: hostile input is refused with BadRequestError (400/403/413), never a 500, and whatever
WeChat can send comes back intact."""

from __future__ import annotations

import base64
import itertools
import time
from collections.abc import Iterator
from typing import Any
from xml.sax.saxutils import escape

import pytest
import xmltodict
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.testclient import TestClient
from wechatpy import parse_message
from wechatpy.crypto import PrpCrypto, WeChatCrypto
from wechatpy.enterprise.crypto import WeChatCrypto as WeComCrypto
from wechatpy.utils import WeChatSigner

from bot.channels.wechat import WeChatChannel, WeChatSettings
from bot.channels.wechat_crypto import DecryptError, MessageCipher, sign, signature_matches
from bot.channels.wechat_xml import MAX_BODY_BYTES, parse_xml, text_reply
from bot.channels.wecom import WeComChannel, WeComSettings
from bot.errors import BadRequestError, ConfigError
from tests.channels.wechat_fakes import FakeBot
from tests.fuzz.strategies import NASTY_PIECES, attempt, fuzz

TOKEN = "kefu-fuzz-token"
APP_ID = "wx5823bf96d3bd56c7"
AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
USER = "oFuzzUser"

# Characters XML 1.0 can carry (WeChat cannot send others); the surrogate block is never valid text.
xml_chars = st.characters(
    exclude_categories=["Cs"],
    exclude_characters="\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f"
    "\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f\ufffe\uffff",
)
xml_text = st.one_of(
    st.text(xml_chars, max_size=100),
    st.lists(st.sampled_from([p for p in NASTY_PIECES if p not in "\x00\x1b"]), max_size=10).map("".join),
)
tags = st.sampled_from(["ToUserName", "FromUserName", "CreateTime", "MsgType", "Content", "MsgId", "Event",
                        "Encrypt", "xml", "a", "ns:x", "A-b.c_d"])  # fmt: skip
ENCODINGS = ["UTF-8", "utf-8", "GBK", "gb2312", "Shift_JIS", "big5", "utf-16", "latin-1", "ascii", "nonsense", ""]


@st.composite
def xml_documents(draw: st.DrawFn) -> str | bytes:
    """Mostly well-formed XML: a declaration (any encoding), maybe a DTD with entities, `<xml>` or another
    root, children with escaped text, CDATA (sometimes broken), comments and nesting; text or encoded bytes."""
    children = []
    for tag, text, form in draw(st.lists(st.tuples(tags, xml_text, st.integers(0, 4)), max_size=6)):
        body = {
            0: escape(text),
            1: "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>",
            2: f"<item>{escape(text)}</item>",
            3: f"<!--{text.replace('--', '')}-->{escape(text)}",
            4: f"<![CDATA[{text}]]>",  # unescaped "]]>" inside breaks it: refused, not crashed
        }[form]
        children.append(f"<{tag}>{body}</{tag}>")
    root = draw(st.sampled_from(["xml", "xml", "xml", "root", "x:xml"]))
    document = f"<{root}>{''.join(children)}</{root}>"
    if draw(st.booleans()):
        document = f'<?xml version="1.0" encoding="{draw(st.sampled_from(ENCODINGS))}"?>' + document
    if draw(st.integers(0, 5)) == 0:
        document = draw(
            st.sampled_from(
                [
                    '<!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa">]>',
                    '<!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
                    '<!DOCTYPE xml SYSTEM "http://example.invalid/x.dtd">',
                ]
            )
        ) + document.replace("</xml>", "&a;&x;</xml>")
    if draw(st.booleans()):
        return document
    return document.encode(draw(st.sampled_from(["utf-8", "utf-16", "gbk", "latin-1"])), errors="replace")


bodies = st.one_of(xml_documents(), st.binary(max_size=300), st.text(max_size=300))


@fuzz(300)
@given(body=bodies)
def test_parse_xml_answers_fields_or_bad_request(body: str | bytes) -> None:
    fields = attempt(lambda: parse_xml(body), BadRequestError)
    if isinstance(fields, BadRequestError):
        assert str(fields)
        return
    assert all(isinstance(tag, str) and isinstance(text, str) for tag, text in fields.items())


def test_parse_xml_refuses_what_it_cannot_read_with_a_reason() -> None:
    """Found by fuzzing: expat raised ValueError / LookupError for these declarations (a 500 from /wechat)."""
    for body in (
        b'<?xml version="1.0" encoding="GBK"?><xml><a>\xc4\xe3</a></xml>',
        b'<?xml version="1.0" encoding="nonsense"?><xml/>',
        "<xml><a>\ud800</a></xml>",
    ):
        with pytest.raises(BadRequestError, match="UTF-8"):
            parse_xml(body)
    with pytest.raises(BadRequestError, match="over"):
        parse_xml(b"<xml>" + b" " * MAX_BODY_BYTES + b"</xml>")


@fuzz(150)
@given(to_user=xml_text, from_user=xml_text, content=st.text(max_size=300) | xml_text)
def test_a_text_reply_reads_back_in_wechatpy_and_in_our_parser(to_user: str, from_user: str, content: str) -> None:
    xml = text_reply(to_user, from_user, content, 1_700_000_000)
    theirs = parse_message(xml)
    assert theirs.type == "text"
    # XML drops the characters it cannot carry and reads a carriage return as a newline; xmltodict strips
    written = "".join(c for c in content if c in "\t\n\r" or (ord(c) >= 0x20 and c not in "\ufffe\uffff"))
    read = written.replace("\r\n", "\n").replace("\r", "\n")
    assert (theirs.content or "").strip() == read.strip()
    assert parse_xml(xml)["Content"] == read.strip()


# --- crypto ---

cipher = MessageCipher(AES_KEY, APP_ID)
prp = PrpCrypto(base64.b64decode(AES_KEY + "="))


@fuzz(200)
@given(text=st.text(max_size=500))
def test_each_side_decrypts_what_the_other_encrypted(text: str) -> None:
    assert cipher.decrypt(cipher.encrypt(text)) == text
    assert prp.decrypt(cipher.encrypt(text), APP_ID) == text
    assert cipher.decrypt(prp.encrypt(text, APP_ID).decode()) == text


@st.composite
def tampered(draw: st.DrawFn) -> str:
    """Ciphertexts that are not quite right: random base64, flipped bits, cut or grown, other receivers."""
    kind = draw(st.sampled_from(["random", "flip", "cut", "grow", "other", "text"]))
    if kind == "random":
        return base64.b64encode(draw(st.binary(max_size=200))).decode()
    if kind == "text":
        return draw(st.text(max_size=100))
    good = base64.b64decode(cipher.encrypt(draw(st.text(max_size=60))))
    if kind == "other":
        return MessageCipher(AES_KEY, draw(st.text(max_size=20).filter(lambda r: r != APP_ID))).encrypt("x")
    if kind == "cut":
        return base64.b64encode(good[: draw(st.integers(0, len(good) - 1))]).decode()
    if kind == "grow":
        return base64.b64encode(good + draw(st.binary(min_size=1, max_size=48))).decode()
    flipped = bytearray(good)
    index = draw(st.integers(0, len(good) - 1))
    flipped[index] ^= 1 << draw(st.integers(0, 7))
    return base64.b64encode(bytes(flipped)).decode()


@fuzz(300)
@given(ciphertext=tampered())
def test_a_tampered_ciphertext_decrypts_or_raises_decrypt_error(ciphertext: str) -> None:
    # a flip in the random prefix or in the message itself goes unnoticed (CBC has no integrity check)
    plaintext = attempt(lambda: cipher.decrypt(ciphertext), DecryptError)
    assert isinstance(plaintext, str) or str(plaintext)


@fuzz(150)
@given(parts=st.lists(st.text(max_size=40), max_size=5), signature=st.text(max_size=50))
def test_signatures_are_wechatpys_and_never_raise(parts: list[str], signature: str) -> None:
    signer = WeChatSigner()
    signer.add_data(*parts)
    assert sign(*parts) == signer.signature
    assert signature_matches(signer.signature, *parts)
    assert signature_matches(signature, *parts) == (signature == signer.signature)


@fuzz(150)
@given(
    key=st.text(max_size=60)
    | st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", min_size=43, max_size=43)
)
def test_a_wrong_aes_key_is_a_config_error_that_does_not_show_it(key: str) -> None:
    made = attempt(lambda: MessageCipher(key, APP_ID, setting="KEFU_WECHAT_AES_KEY"), ConfigError)
    if isinstance(made, ConfigError):  # one message whatever the key, so it cannot leak
        assert str(made) == str(attempt(lambda: MessageCipher("", APP_ID, setting="KEFU_WECHAT_AES_KEY"), ConfigError))
        assert "KEFU_WECHAT_AES_KEY" in str(made)
    else:
        assert made.decrypt(made.encrypt(key)) == key


# --- the callbacks over HTTP ---

_ids = itertools.count(1)


@pytest.fixture(scope="module")
def bot() -> FakeBot:
    return FakeBot()


@pytest.fixture(scope="module")
def client(bot: FakeBot) -> Iterator[TestClient]:
    """The Official Account in safe mode (/wechat) and in plaintext (/plain), and WeCom (/wecom), over a fake
    bot that echoes; the reply deadline is long enough that every answer is passive."""
    common: dict[str, Any] = {"token": SecretStr(TOKEN), "reply_deadline_s": 4.5}
    channels: list[WeChatChannel | WeComChannel] = [
        WeChatChannel(WeChatSettings(**common, app_id=APP_ID, aes_key=SecretStr(AES_KEY), path="/wechat")),
        WeChatChannel(WeChatSettings(**common, path="/plain")),
        WeComChannel(WeComSettings(**common, corp_id=APP_ID, aes_key=SecretStr(AES_KEY), path="/wecom")),
    ]
    app = Starlette(routes=[route for channel in channels for route in channel.routes(bot)])
    with TestClient(app) as test_client:  # a server exception is raised here: a crash fails the test
        yield test_client


def _message_xml(content: str, msg_id: int) -> str:
    # escaped, not CDATA, and a carriage return as a reference: the text arrives exactly as typed
    text = escape(content, {"\r": "&#13;"})
    return (
        f"<xml><ToUserName><![CDATA[gh_shop]]></ToUserName><FromUserName><![CDATA[{USER}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content>{text}</Content><MsgId>{msg_id}</MsgId></xml>"
    )


@fuzz(80)
@given(content=xml_text.filter(lambda text: text.strip()), path=st.sampled_from(["/wechat", "/wecom"]))
def test_what_wechat_sends_reaches_the_bot_and_the_reply_decrypts(
    client: TestClient, bot: FakeBot, content: str, path: str
) -> None:
    peer = (WeChatCrypto if path == "/wechat" else WeComCrypto)(TOKEN, AES_KEY, APP_ID)
    timestamp, nonce, msg_id = str(int(time.time())), "12345", next(_ids)
    envelope = peer.encrypt_message(_message_xml(content, msg_id), nonce, timestamp)
    signature = xmltodict.parse(envelope)["xml"]["MsgSignature"]
    params = {"timestamp": timestamp, "nonce": nonce, "msg_signature": signature, "encrypt_type": "aes"}
    response = client.post(path, params=params, content=envelope.encode())
    assert response.status_code == 200, response.text
    assert bot.messages[-1].text == content.strip()
    reply = xmltodict.parse(response.text)["xml"]
    xml = peer.decrypt_message(response.text, reply["MsgSignature"], reply["TimeStamp"], reply["Nonce"])
    said = f"echo: {content.strip()}".replace("\r\n", "\n").replace("\r", "\n")
    assert parse_message(xml).content.strip() == said.strip()


def _signed(params: dict[str, str], body: str, *, safe: bool) -> dict[str, str]:
    """`params` with a correct signature (safe mode: over the body's Encrypt) where the draw asked for one."""
    timestamp, nonce = params.get("timestamp", ""), params.get("nonce", "")
    if safe:
        try:
            encrypt = parse_xml(body).get("Encrypt", "")
        except BadRequestError:
            encrypt = ""
        return params | {"msg_signature": sign(TOKEN, timestamp, nonce, encrypt)}
    return params | {"signature": sign(TOKEN, timestamp, nonce)}


@st.composite
def hostile_posts(draw: st.DrawFn) -> tuple[str, dict[str, str], str | bytes, bool]:
    """(path, query, body, signed): a callback with any mix of good, missing and hostile parts."""
    path = draw(st.sampled_from(["/wechat", "/plain", "/wecom"]))
    now = int(time.time())
    params = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "timestamp": st.sampled_from([str(now), str(now - 10_000), "", "-1", "１２３", "9" * 30])
                | st.text(max_size=12),
                "nonce": st.text(max_size=12),
                "encrypt_type": st.sampled_from(["aes", "AES", "raw", ""]) | st.text(max_size=5),
                "signature": st.text(max_size=41),
                "msg_signature": st.text(max_size=41),
                "openid": st.text(max_size=10),
            },
        )
    )
    inner = draw(xml_documents() | xml_text)
    body = draw(
        st.one_of(
            bodies,
            tampered().map(lambda encrypt: f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"),
            st.just(inner).map(lambda xml: f"<xml><Encrypt>{cipher.encrypt(_as_text(xml))}</Encrypt></xml>"),
        )
    )
    signed = draw(st.booleans())
    if signed and isinstance(body, str):
        params = _signed(params, body, safe=path != "/plain")
    return path, params, body, signed


def _as_text(xml: str | bytes) -> str:
    return xml if isinstance(xml, str) else xml.decode("utf-8", errors="replace")


@fuzz(250)
@given(post=hostile_posts())
def test_a_hostile_callback_is_refused_or_answered_never_a_server_error(
    client: TestClient, post: tuple[str, dict[str, str], str | bytes, bool]
) -> None:
    path, params, body, signed = post
    response = client.post(path, params=params, content=body)
    assert response.status_code in (200, 400, 403, 413), response.text
    if response.status_code == 200:
        assert signed  # nothing unsigned gets through
        assert response.text == "success" or response.text.startswith("<xml>")
    elif response.status_code == 400:
        assert response.text.strip()
    elif response.status_code == 403:
        assert response.text == "forbidden"  # a bad signature or timestamp says nothing more


@fuzz(150)
@given(
    path=st.sampled_from(["/plain", "/wecom"]),
    echostr=tampered() | st.text(max_size=30),
    timestamp=st.sampled_from([str(int(time.time())), "0", ""]) | st.text(max_size=12),
    signed=st.booleans(),
)
def test_url_verification_echoes_only_when_signed(
    client: TestClient, path: str, echostr: str, timestamp: str, signed: bool
) -> None:
    name = "signature" if path == "/plain" else "msg_signature"
    parts = [TOKEN, timestamp, "7"] + ([] if path == "/plain" else [echostr])
    params = {"timestamp": timestamp, "nonce": "7", "echostr": echostr, name: sign(*parts) if signed else "0" * 40}
    response = client.get(path, params=params)
    assert response.status_code in (200, 400, 403), response.text
    if response.status_code == 200:
        assert signed
        expected = echostr if path == "/plain" else cipher.decrypt(echostr)
        assert response.text == expected
