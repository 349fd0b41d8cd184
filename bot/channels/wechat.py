"""The WeChat Official Account (公众号) channel: one callback URL (`KEFU_WECHAT_PATH`, default /wechat).

GET is the server URL check (signature over token, timestamp and nonce; the echostr is answered). POST carries
a message, in plaintext or, when `KEFU_WECHAT_AES_KEY` is set, in safe mode (encrypted, with msg_signature over
the ciphertext; plaintext is then refused). Text reaches the bot; a new follower's subscribe event runs the
"/greet" turn (whose reply lists the hot questions, numbered); other events get "success", other message types a
polite request to type.

WeChat waits 5 seconds and retries twice: a turn that beats `KEFU_WECHAT_REPLY_DEADLINE_S` is answered in the
response, a slower one is answered "success" and its answer pushed through the customer-service message API
when it finishes (which needs `KEFU_WECHAT_APP_SECRET`). Retries carry the same MsgId (events: the same sender
and CreateTime), which is the message id the bot deduplicates on; a duplicate is answered "success".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import SettingsConfigDict
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from bot.channels.base import TurnHandler
from bot.channels.wechat_api import PlatformApi
from bot.channels.wechat_callback import (
    CallbackCore,
    check_timestamp,
    error_response,
    open_envelope,
    read_body,
    require,
    seal,
)
from bot.channels.wechat_crypto import MessageCipher, SignatureError, signature_matches
from bot.channels.wechat_menus import Menus
from bot.channels.wechat_replies import Outgoing
from bot.channels.wechat_xml import parse_xml
from bot.errors import BadRequestError, ConfigError
from bot.secrets import SecretFileSettings
from bot.types import Reply

HTTP_TIMEOUT_S = 5.0


class WeChatSettings(SecretFileSettings):
    """The Official Account's settings, from `KEFU_WECHAT_*` environment variables (secrets also from `..._FILE`)."""

    model_config = SettingsConfigDict(env_prefix="KEFU_WECHAT_", extra="ignore")

    token: SecretStr | None = Field(None, description="The Token of 服务器配置; unset: the channel is off")
    app_id: str = Field("", description="AppID (开发者ID); needed for safe mode and for late replies")
    app_secret: SecretStr | None = Field(
        None, description="AppSecret; unset: answers that miss the reply deadline are logged as lost"
    )
    aes_key: SecretStr | None = Field(None, description="EncodingAESKey (43 characters); set: safe mode only")
    api_base: str = Field("https://api.weixin.qq.com", description="WeChat API base URL (a proxy, or tests)")
    reply_deadline_s: float = Field(4.0, gt=0, lt=5, description="How long to wait for a turn before 'success'")
    timestamp_window_s: float = Field(300.0, gt=0, description="Callbacks signed further from now are refused")
    path: str = Field("/wechat", pattern=r"^/", description="The callback URL path")


class WeChatChannel:
    """The Official Account callback and its customer-service push (`deliver`)."""

    name = "wechat"

    def __init__(
        self, settings: WeChatSettings, http: httpx.AsyncClient | None = None, *, menus: Menus | None = None
    ) -> None:
        """`http` reaches the WeChat API (a client of your own, or one made here when late replies are on);
        `menus` keeps each follower's last numbered menu (`RedisMenus`, so that every process reads it; in this
        process's memory when None)."""
        if settings.token is None or not settings.token.get_secret_value():
            raise ConfigError("KEFU_WECHAT_TOKEN is not set: copy the Token from 公众号 → 设置与开发 → 基本配置")
        if (settings.aes_key is not None or settings.app_secret is not None) and not settings.app_id:
            raise ConfigError("KEFU_WECHAT_AES_KEY and KEFU_WECHAT_APP_SECRET need KEFU_WECHAT_APP_ID (the AppID)")
        self.settings = settings
        self._api_base = settings.api_base.rstrip("/")
        self._token = settings.token.get_secret_value()
        self._cipher = (
            MessageCipher(settings.aes_key.get_secret_value(), settings.app_id, setting="KEFU_WECHAT_AES_KEY")
            if settings.aes_key is not None
            else None
        )
        self._own_http = http is None and settings.app_secret is not None
        self._http = httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) if self._own_http else http
        self._api = (
            PlatformApi(
                self._http, label="WeChat", token_url=f"{self._api_base}/cgi-bin/token",
                token_params={"grant_type": "client_credential", "appid": settings.app_id,
                              "secret": settings.app_secret.get_secret_value()},
            )
            if settings.app_secret is not None and self._http is not None
            else None
        )  # fmt: skip
        self._core = CallbackCore(self.name, self._push, deadline_s=settings.reply_deadline_s, menus=menus)

    def routes(self, handler: TurnHandler) -> list[BaseRoute]:
        """GET (URL check) and POST (messages) on `settings.path`."""

        async def callback(request: Request) -> Response:
            try:
                if request.method == "GET":
                    return PlainTextResponse(self._verify_url(request.query_params))
                return await self._on_message(request, handler)
            except BadRequestError as err:
                return error_response(err)

        return [Route(self.settings.path, callback, methods=["GET", "POST"])]

    async def deliver(self, recipient: str, replies: Sequence[Reply]) -> None:
        """Send replies to the follower `recipient` (an openid) through the customer-service message API; raises
        PlatformApiError when WeChat refuses (e.g. 45015: no message from the user in the last 48 hours)."""
        await self._core.deliver(recipient, replies)

    async def aclose(self) -> None:
        """Finish the late deliveries in flight and close the HTTP client made here."""
        await self._core.drain()
        if self._own_http and self._http is not None:
            await self._http.aclose()

    async def drain(self) -> None:
        """Wait for the late deliveries in flight."""
        await self._core.drain()

    def _verify_url(self, params: QueryParams) -> str:
        signature, timestamp, nonce, echostr = require(params, "signature", "timestamp", "nonce", "echostr")
        check_timestamp(timestamp, self.settings.timestamp_window_s)
        if not signature_matches(signature, self._token, timestamp, nonce):
            raise SignatureError("signature mismatch")
        return echostr

    async def _on_message(self, request: Request, handler: TurnHandler) -> Response:
        params = request.query_params
        timestamp, nonce = require(params, "timestamp", "nonce")
        check_timestamp(timestamp, self.settings.timestamp_window_s)
        body = await read_body(request)
        encrypted = params.get("encrypt_type", "raw").lower() == "aes"
        if self._cipher is None:
            (signature,) = require(params, "signature")
            if not signature_matches(signature, self._token, timestamp, nonce):
                raise SignatureError("signature mismatch")
            if encrypted:
                raise BadRequestError("safe-mode message, but KEFU_WECHAT_AES_KEY is not set")
            fields = parse_xml(body)
        else:
            (signature,) = require(params, "msg_signature")
            if not encrypted:  # the plaintext body is unsigned: in safe mode it is never trusted
                raise BadRequestError("this account is in safe mode: messages must be encrypted")
            fields = open_envelope(self._cipher, self._token, signature, timestamp, nonce, body)
        xml = await self._core.answer(fields, handler)
        if xml is None:
            return PlainTextResponse("success")
        if self._cipher is not None:
            xml = seal(self._cipher, self._token, xml)
        return Response(xml, media_type="application/xml")

    async def _push(self, openid: str, outgoing: Outgoing) -> None:
        if self._api is None:
            raise ConfigError("KEFU_WECHAT_APP_SECRET is not set, so WeChat replies after the deadline cannot be sent")
        payload: dict[str, Any] = (
            {"touser": openid, "msgtype": "news", "news": {"articles": [dict(outgoing.article)]}}
            if outgoing.article is not None
            else {"touser": openid, "msgtype": "text", "text": {"content": outgoing.text}}
        )
        await self._api.send(f"{self._api_base}/cgi-bin/message/custom/send", payload)


def wechat_channel_from_env(
    http: httpx.AsyncClient | None = None, *, menus: Menus | None = None
) -> WeChatChannel | None:
    """The Official Account channel configured by `KEFU_WECHAT_*`, or None when KEFU_WECHAT_TOKEN is not set."""
    try:
        settings = WeChatSettings()
    except ValidationError as err:
        raise ConfigError(f"KEFU_WECHAT_* settings are invalid: {err}") from err
    if settings.token is None or not settings.token.get_secret_value():
        return None
    return WeChatChannel(settings, http, menus=menus)
