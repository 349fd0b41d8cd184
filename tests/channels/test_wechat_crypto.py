"""The shared WeChat / WeCom crypto and XML against WeChat's published vector and the real wechatpy."""

from __future__ import annotations

import base64

import pytest
from wechatpy.crypto import PrpCrypto
from wechatpy.enterprise.crypto import WeChatCrypto as WeComCrypto
from wechatpy.utils import WeChatSigner

from bot.channels.wechat_crypto import DecryptError, MessageCipher, sign, signature_matches
from bot.channels.wechat_xml import encrypted_envelope, parse_xml, text_reply
from bot.errors import BadRequestError, ConfigError

# WeCom's published sample (企业微信 加解密库 sample code, also in wechatpy's tests): the URL check of corp
# wx5823bf96d3bd56c7, whose encrypted echostr decrypts to 1616140317555161061
SAMPLE_TOKEN = "QDG6eK"
SAMPLE_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
SAMPLE_CORP = "wx5823bf96d3bd56c7"
SAMPLE_SIGNATURE = "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3"
SAMPLE_TIMESTAMP = "1409659589"
SAMPLE_NONCE = "263014780"
SAMPLE_ECHOSTR = "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="
PREFIX = b"0123456789abcdef"


def test_the_published_vector_verifies_and_decrypts():
    assert signature_matches(SAMPLE_SIGNATURE, SAMPLE_TOKEN, SAMPLE_TIMESTAMP, SAMPLE_NONCE, SAMPLE_ECHOSTR)
    assert MessageCipher(SAMPLE_KEY, SAMPLE_CORP).decrypt(SAMPLE_ECHOSTR) == "1616140317555161061"


def test_signatures_are_wechatpys():
    signer = WeChatSigner()
    signer.add_data("token", "1409659589", "nonce", "encrypted")
    assert sign("token", "1409659589", "nonce", "encrypted") == signer.signature
    assert not signature_matches(signer.signature[:-1] + "0", "token", "1409659589", "nonce", "encrypted")
    assert not signature_matches("非ASCII", "token", "1")


@pytest.mark.parametrize("length", [0, 1, 11, 12, 43, 44, 75, 76, 500])  # around the 32-byte padding boundaries
def test_encryption_with_a_fixed_prefix_equals_wechatpys(monkeypatch, length):
    monkeypatch.setattr(PrpCrypto, "get_random_string", lambda self: PREFIX.decode())
    text = ("消息x" * length)[:length]
    theirs = PrpCrypto(base64.b64decode(SAMPLE_KEY + "=")).encrypt(text, SAMPLE_CORP).decode()
    assert MessageCipher(SAMPLE_KEY, SAMPLE_CORP).encrypt(text, random_prefix=PREFIX) == theirs


def test_each_side_decrypts_the_other():
    ours = MessageCipher(SAMPLE_KEY, SAMPLE_CORP)
    theirs = WeComCrypto(SAMPLE_TOKEN, SAMPLE_KEY, SAMPLE_CORP)
    envelope = theirs.encrypt_message("<xml><Content><![CDATA[你好]]></Content></xml>", "1", "1409659589")
    assert ours.decrypt(parse_xml(envelope)["Encrypt"]) == "<xml><Content><![CDATA[你好]]></Content></xml>"
    encrypted = ours.encrypt("<xml>我们的</xml>")
    signature = sign(SAMPLE_TOKEN, "1409659589", "7", encrypted)
    mine = encrypted_envelope(encrypted, signature, "1409659589", "7")
    assert theirs.decrypt_message(mine, signature, "1409659589", "7") == "<xml>我们的</xml>"


def test_a_message_for_another_receiver_is_refused():
    encrypted = MessageCipher(SAMPLE_KEY, "wx-other").encrypt("hi")
    with pytest.raises(DecryptError):
        MessageCipher(SAMPLE_KEY, SAMPLE_CORP).decrypt(encrypted)


@pytest.mark.parametrize(
    "ciphertext",
    [
        "not base64!",
        base64.b64encode(b"short").decode(),  # not whole AES blocks
        base64.b64encode(bytes(32)).decode(),  # decrypts to garbage padding
        "",
    ],
)
def test_malformed_ciphertext_is_refused(ciphertext):
    with pytest.raises(DecryptError):
        MessageCipher(SAMPLE_KEY, SAMPLE_CORP).decrypt(ciphertext)


def test_a_bad_key_is_a_config_error_that_does_not_show_it():
    for key in ("too-short", SAMPLE_KEY[:-1] + "!"):
        with pytest.raises(ConfigError) as caught:
            MessageCipher(key, SAMPLE_CORP, setting="KEFU_WECOM_AES_KEY")
        assert key not in str(caught.value)
        assert "KEFU_WECOM_AES_KEY" in str(caught.value)


def test_reply_text_with_cdata_terminators_and_control_characters_survives():
    xml = text_reply("user", "account", "a ]]> b \x00\x1b c <d> & e", 1)
    assert parse_xml(xml)["Content"] == "a ]]> b  c <d> & e"


def test_parse_xml_refuses_a_dtd():
    with pytest.raises(BadRequestError):
        parse_xml("<!DOCTYPE xml [<!ELEMENT xml ANY>]><xml><A>1</A></xml>")
