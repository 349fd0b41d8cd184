"""WeChat's callback crypto, shared by the Official Account and WeCom: SHA-1 signatures over the sorted
parts, and the "safe mode" message cipher (AES-256-CBC, key = the 43-character EncodingAESKey, IV = the key's
first 16 bytes, PKCS#7 padding to 32 bytes; plaintext = 16 random bytes + 4-byte big-endian length + message +
receive id, the AppID or the CorpID).

Unlike the reference SDKs, signatures are compared in constant time and padding and lengths are checked
before anything is trusted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from bot.errors import BadRequestError, ConfigError

PAD_BLOCK = 32  # WeChat pads to 32 bytes, not to the AES block size
RANDOM_BYTES = 16


class SignatureError(BadRequestError):
    """A callback's signature or timestamp is wrong: answered 403 with nothing else said."""


class DecryptError(BadRequestError):
    """An encrypted message (or echostr) does not decrypt to a well-formed message for this receiver."""


def sign(*parts: str) -> str:
    """WeChat's signature: hex SHA-1 of the parts sorted and concatenated."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()  # noqa: S324  (the protocol fixes SHA-1)


def signature_matches(signature: str, *parts: str) -> bool:
    """Whether `signature` signs `parts`, compared in constant time (bytes: non-ASCII input must not raise)."""
    return hmac.compare_digest(sign(*parts).encode(), signature.encode())


def _pad(data: bytes) -> bytes:
    count = PAD_BLOCK - len(data) % PAD_BLOCK
    return data + bytes([count]) * count


def _unpad(data: bytes) -> bytes:
    count = data[-1] if data else 0
    if not 1 <= count <= PAD_BLOCK or count > len(data) or data[-count:] != bytes([count]) * count:
        raise DecryptError("encrypted message has invalid padding")
    return data[:-count]


class MessageCipher:
    """Encrypts and decrypts message bodies for one receiver (an Official Account's AppID or a WeCom CorpID)."""

    def __init__(self, encoding_aes_key: str, receive_id: str, *, setting: str = "EncodingAESKey") -> None:
        """`setting` names the configuration the key came from, for the error; the key itself is never shown."""
        self._key = _decode_key(encoding_aes_key, setting)
        self._receive_id = receive_id.encode()

    def encrypt(self, plaintext: str, *, random_prefix: bytes | None = None) -> str:
        """Base64 ciphertext of `plaintext`; `random_prefix` (16 bytes) is fixed only by tests."""
        prefix = os.urandom(RANDOM_BYTES) if random_prefix is None else random_prefix
        if len(prefix) != RANDOM_BYTES:
            raise ValueError(f"random_prefix must be {RANDOM_BYTES} bytes")
        message = plaintext.encode()
        data = _pad(prefix + struct.pack(">I", len(message)) + message + self._receive_id)
        encryptor = self._cipher().encryptor()
        return base64.b64encode(encryptor.update(data) + encryptor.finalize()).decode()

    def decrypt(self, ciphertext: str) -> str:
        """The message inside `ciphertext`, after checking its padding, length and receive id."""
        try:
            raw = base64.b64decode(ciphertext, validate=True)
        except (binascii.Error, ValueError) as err:
            raise DecryptError("encrypted message is not base64") from err
        if not raw or len(raw) % 16:
            raise DecryptError("encrypted message is not a whole number of AES blocks")
        decryptor = self._cipher().decryptor()
        data = _unpad(decryptor.update(raw) + decryptor.finalize())
        if len(data) < RANDOM_BYTES + 4:
            raise DecryptError("encrypted message is too short")
        (length,) = struct.unpack(">I", data[RANDOM_BYTES : RANDOM_BYTES + 4])
        body = data[RANDOM_BYTES + 4 :]
        if length > len(body) or not hmac.compare_digest(body[length:], self._receive_id):
            raise DecryptError("encrypted message is not addressed to this AppID / CorpID")
        try:
            return body[:length].decode()
        except UnicodeDecodeError as err:
            raise DecryptError("encrypted message is not UTF-8") from err

    def _cipher(self) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16]))


def _decode_key(encoding_aes_key: str, setting: str) -> bytes:
    error = ConfigError(f"{setting} must be the 43-character EncodingAESKey shown in the WeChat / WeCom console")
    if len(encoding_aes_key) != 43:
        raise error
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except (binascii.Error, ValueError):
        raise error from None  # the decoding error would quote the key
    if len(key) != 32:
        raise error
    return key
