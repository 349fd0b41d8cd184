"""Fuzzes WeChat / WeCom callbacks below HTTP. Each input is used as a callback body for `parse_xml`
(defusedxml), as the message inside a correctly signed safe-mode envelope (`open_envelope`: signature,
decryption, inner XML), as bytes encrypted for `MessageCipher.decrypt`, with WeChat's framing and as the whole
plaintext (so the fuzzer reaches the padding, length and receive-id checks), as an `<Encrypt>` value and as a
signature. BadRequestError (DecryptError, SignatureError) with a message is the refusal; any other exception
is a crash.

    .venv/bin/python -m fuzz.wechat_xml -runs=5000 fuzz/corpus/wechat_xml
    mkdir -p /tmp/corpus && .venv/bin/python -m fuzz.wechat_xml -max_total_time=600 -artifact_prefix=/tmp/ \\
        /tmp/corpus fuzz/corpus/wechat_xml
"""

from __future__ import annotations

import base64
import struct
import sys
from collections.abc import Callable, Mapping

import atheris
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from fuzz import attempt

with atheris.instrument_imports(include=["bot", "defusedxml"]):
    from bot.channels.wechat_callback import open_envelope
    from bot.channels.wechat_crypto import MessageCipher, sign, signature_matches
    from bot.channels.wechat_xml import encrypted_envelope, parse_xml
    from bot.errors import BadRequestError

TOKEN, APP_ID = "kefu-fuzz-token", "wx5823bf96d3bd56c7"  # the test credentials of tests/fuzz/test_fuzz_wechat.py
AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
TIMESTAMP, NONCE = "1700000000", "12345"
CIPHER = MessageCipher(AES_KEY, APP_ID)
_KEY = base64.b64decode(AES_KEY + "=")


def _aes(message: bytes, *, framed: bool) -> str:
    """`message` encrypted with the test key: framed and padded as WeChat does (any bytes, UTF-8 or not), or
    as it is, zero-filled to whole blocks (the fuzzer writes the prefix, length, receive id and padding)."""
    if framed:
        data = bytes(16) + struct.pack(">I", len(message)) + message + APP_ID.encode()
        data += bytes([32 - len(data) % 32]) * (32 - len(data) % 32)
    else:
        data = message + b"\0" * (-len(message) % 16)
    encryptor = Cipher(algorithms.AES(_KEY), modes.CBC(_KEY[:16])).encryptor()
    return base64.b64encode(encryptor.update(data) + encryptor.finalize()).decode()


def _fields_or_refusal(parse: Callable[[], Mapping[str, str]]) -> None:
    fields = attempt(parse, BadRequestError)
    if isinstance(fields, BadRequestError):
        assert str(fields), f"{type(fields).__name__} without a message"
    else:
        assert all(isinstance(tag, str) and isinstance(text, str) for tag, text in fields.items()), fields


def test_one_input(data: bytes) -> None:
    text = data.decode("utf-8", errors="replace")  # what a query parameter or an XML text can hold
    _fields_or_refusal(lambda: parse_xml(data))
    encrypted = CIPHER.encrypt(text, random_prefix=bytes(16))
    signature = sign(TOKEN, TIMESTAMP, NONCE, encrypted)
    body = encrypted_envelope(encrypted, signature, TIMESTAMP, NONCE).encode()
    _fields_or_refusal(lambda: open_envelope(CIPHER, TOKEN, signature, TIMESTAMP, NONCE, body))
    framed = attempt(lambda: CIPHER.decrypt(_aes(data, framed=True)), BadRequestError)
    assert framed == text if isinstance(framed, str) else "not UTF-8" in str(framed), framed  # a round trip
    for ciphertext in (_aes(data, framed=False), text):
        plaintext = attempt(lambda: CIPHER.decrypt(ciphertext), BadRequestError)  # noqa: B023 (called at once)
        assert isinstance(plaintext, str) or str(plaintext), plaintext
    assert signature_matches(sign(text, TOKEN), TOKEN, text)
    assert signature_matches(text, TOKEN, TIMESTAMP, NONCE) == (text == sign(TOKEN, TIMESTAMP, NONCE))


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
