"""The server APIs of WeChat and WeCom that kefu writes to: an access token fetched once and cached until
shortly before it expires (refreshed once when the platform says it is invalid or expired), and the send call
that delivers a reply after the passive-reply deadline.

The token and the app secret travel in URL query strings, as both platforms require: they are kept out of
exception messages and tracebacks, and a filter on httpx's logger masks them in its request log lines.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from collections.abc import Mapping
from typing import Any

import httpx

from bot.errors import KefuError

log = logging.getLogger(__name__)

TOKEN_ERRCODES = frozenset({40001, 40014, 42001})  # invalid credential, invalid token, token expired
TOKEN_MARGIN_S = 300.0  # refresh this long before the platform's expiry, so no request carries a dying token
_KNOWN_ERRCODES = {
    40001: "invalid credential (app secret or token)",
    40003: "invalid user id",
    43004: "the user does not follow the account",
    45015: "the user has not written within the last 48 hours (customer-service window closed)",
    45047: "too many messages to this user since their last message",
    48001: "the account is not authorised for this API",
    60011: "the app has no permission for this user",
}
_SECRET_QUERY = re.compile(r"\b((?:secret|corpsecret|access_token)=)[^&\s\"']+")


class PlatformApiError(KefuError):
    """The WeChat / WeCom API refused a call or could not be reached; never carries a secret or a user id."""

    def __init__(self, message: str, errcode: int | None = None) -> None:
        super().__init__(message)
        self.errcode = errcode


def user_ref(user_id: str) -> str:
    """What logs show of an openid or WeCom userid: a short hash, enough to correlate lines."""
    return hashlib.sha256(user_id.encode()).hexdigest()[:12]


class _RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed record: let the handler report it as logging does
            return True
        redacted = _SECRET_QUERY.sub(r"\1***", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def _guard_httpx_log() -> None:
    logger = logging.getLogger("httpx")
    if not any(isinstance(existing, _RedactSecrets) for existing in logger.filters):
        logger.addFilter(_RedactSecrets())


class PlatformApi:
    """One app's access to the platform: `send(path, payload)` posts JSON with a cached access token."""

    def __init__(self, http: httpx.AsyncClient, *, label: str, token_url: str, token_params: Mapping[str, str]) -> None:
        """`label` names the platform in errors ("WeChat", "WeCom"); `token_params` hold the secret."""
        self._http = http
        self._label = label
        self._token_url = token_url
        self._token_params = dict(token_params)
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        _guard_httpx_log()

    async def send(self, url: str, payload: Mapping[str, Any]) -> None:
        """POST `payload` to `url` (with the access token); a token the platform rejects is renewed once."""
        token = await self._access_token()
        errcode, errmsg = await self._post(url, token, payload)
        if errcode in TOKEN_ERRCODES:
            self._invalidate(token)
            errcode, errmsg = await self._post(url, await self._access_token(), payload)
        if errcode:
            raise _api_error(self._label, errcode, errmsg)

    async def _access_token(self) -> str:
        async with self._lock:  # concurrent late replies share one token request
            if self._token is None or time.monotonic() >= self._expires_at:
                self._token, lifetime = await self._fetch_token()
                self._expires_at = time.monotonic() + max(lifetime - TOKEN_MARGIN_S, lifetime / 2)
            return self._token

    def _invalidate(self, token: str) -> None:
        if self._token == token:  # another sender may have renewed it already
            self._token = None

    async def _fetch_token(self) -> tuple[str, float]:
        data = await self._request("GET", self._token_url, params=self._token_params)
        token, lifetime = data.get("access_token"), data.get("expires_in", 7200)
        if not isinstance(token, str) or not token or not isinstance(lifetime, int | float):
            errcode = data.get("errcode")
            errcode = errcode if isinstance(errcode, int) else -1
            raise _api_error(self._label, errcode, str(data.get("errmsg", "no access token")), "token")
        log.info("%s access token renewed; it expires in %ss", self._label, lifetime)
        return token, float(lifetime)

    async def _post(self, url: str, token: str, payload: Mapping[str, Any]) -> tuple[int, str]:
        body = json.dumps(payload, ensure_ascii=False).encode()  # raw UTF-8: the platforms show \\u escapes as is
        data = await self._request(
            "POST", url, params={"access_token": token}, content=body,
            headers={"Content-Type": "application/json; charset=utf-8"},
        )  # fmt: skip
        errcode = data.get("errcode", 0)
        return (errcode if isinstance(errcode, int) else -1), str(data.get("errmsg", ""))

    async def _request(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._http.request(method, url, **kwargs)
            response.raise_for_status()
            data = response.json()
        except httpx.HTTPStatusError as err:
            # `from None`: httpx's own message and traceback quote the URL, secret or token included
            raise PlatformApiError(f"{self._label} API answered HTTP {err.response.status_code}") from None
        except httpx.HTTPError as err:
            raise PlatformApiError(f"{self._label} API unreachable ({type(err).__name__})") from None
        except ValueError:
            raise PlatformApiError(f"{self._label} API answered something that is not JSON") from None
        if not isinstance(data, dict):
            raise PlatformApiError(f"{self._label} API answered JSON that is not an object")
        return data


def _api_error(label: str, errcode: int, errmsg: str, call: str = "send") -> PlatformApiError:
    # errmsg is the platform's text; it names no secret, but keep it short in logs
    reason = _KNOWN_ERRCODES.get(errcode, errmsg[:120])
    return PlatformApiError(f"{label} {call} failed: errcode {errcode}: {reason}", errcode)
