"""The WeCom (企业微信) application channel: one callback URL (`KEFU_WECOM_PATH`, default /wecom).

WeCom always encrypts, with the CorpID as the receive id. GET is the URL check: msg_signature over token,
timestamp, nonce and the encrypted echostr, whose plaintext is the answer. POST carries an encrypted message,
answered by an encrypted passive reply within the deadline, else "success" and a push through the application
message API (`KEFU_WECOM_SECRET` and `KEFU_WECOM_AGENT_ID`). Retries, events and message types are handled as
for the Official Account (see `bot/channels/wechat.py`).
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
from bot.errors import BadRequestError, ConfigError
from bot.secrets import SecretFileSettings
from bot.types import Reply

HTTP_TIMEOUT_S = 5.0


class WeComSettings(SecretFileSettings):
    """The WeCom application's settings, from `KEFU_WECOM_*` environment variables (secrets also from `..._FILE`)."""

    model_config = SettingsConfigDict(env_prefix="KEFU_WECOM_", extra="ignore")

    corp_id: str = Field("", description="企业ID (CorpID), the receive id of every encrypted message")
    agent_id: int | None = Field(None, description="The application's AgentId, needed for late replies")
    secret: SecretStr | None = Field(None, description="The application's Secret; unset: late answers are lost")
    token: SecretStr | None = Field(None, description="Token of 接收消息 → API接收; unset: the channel is off")
    aes_key: SecretStr | None = Field(None, description="EncodingAESKey of 接收消息 (43 characters)")
    api_base: str = Field("https://qyapi.weixin.qq.com", description="WeCom API base URL (a proxy, or tests)")
    reply_deadline_s: float = Field(4.0, gt=0, lt=5, description="How long to wait for a turn before 'success'")
    timestamp_window_s: float = Field(300.0, gt=0, description="Callbacks signed further from now are refused")
    path: str = Field("/wecom", pattern=r"^/", description="The callback URL path")


class WeComChannel:
    """The WeCom application callback and its application-message push (`deliver`)."""

    name = "wecom"

    def __init__(
        self, settings: WeComSettings, http: httpx.AsyncClient | None = None, *, menus: Menus | None = None
    ) -> None:
        """`http` reaches the WeCom API (a client of your own, or one made here when late replies are on);
        `menus` keeps each member's last numbered menu (in process memory without one)."""
        if not settings.token or not settings.token.get_secret_value() or not settings.aes_key or not settings.corp_id:
            raise ConfigError(
                "WeCom needs KEFU_WECOM_TOKEN, KEFU_WECOM_AES_KEY and KEFU_WECOM_CORP_ID: copy them from the "
                "admin console (应用管理 → your app → 接收消息, and 我的企业 → 企业ID)"
            )
        if settings.secret is not None and settings.agent_id is None:
            raise ConfigError("KEFU_WECOM_SECRET needs KEFU_WECOM_AGENT_ID (the application's AgentId)")
        self.settings = settings
        self._api_base = settings.api_base.rstrip("/")
        self._token = settings.token.get_secret_value()
        self._cipher = MessageCipher(
            settings.aes_key.get_secret_value(), settings.corp_id, setting="KEFU_WECOM_AES_KEY"
        )
        self._own_http = http is None and settings.secret is not None
        self._http = httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) if self._own_http else http
        self._api = (
            PlatformApi(
                self._http, label="WeCom", token_url=f"{self._api_base}/cgi-bin/gettoken",
                token_params={"corpid": settings.corp_id, "corpsecret": settings.secret.get_secret_value()},
            )
            if settings.secret is not None and self._http is not None
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
        """Send replies to the member `recipient` (a userid) as application messages; raises PlatformApiError
        when WeCom refuses."""
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
        signature, timestamp, nonce, echostr = require(params, "msg_signature", "timestamp", "nonce", "echostr")
        check_timestamp(timestamp, self.settings.timestamp_window_s)
        if not signature_matches(signature, self._token, timestamp, nonce, echostr):
            raise SignatureError("msg_signature mismatch")
        return self._cipher.decrypt(echostr)

    async def _on_message(self, request: Request, handler: TurnHandler) -> Response:
        signature, timestamp, nonce = require(request.query_params, "msg_signature", "timestamp", "nonce")
        check_timestamp(timestamp, self.settings.timestamp_window_s)
        body = await read_body(request)
        fields = open_envelope(self._cipher, self._token, signature, timestamp, nonce, body)
        xml = await self._core.answer(fields, handler)
        if xml is None:
            return PlainTextResponse("success")
        return Response(seal(self._cipher, self._token, xml), media_type="application/xml")

    async def _push(self, userid: str, outgoing: Outgoing) -> None:
        if self._api is None:
            raise ConfigError("KEFU_WECOM_SECRET is not set, so WeCom replies after the deadline cannot be sent")
        payload: dict[str, Any] = {"touser": userid, "agentid": self.settings.agent_id}
        if outgoing.article is not None:
            payload |= {"msgtype": "news", "news": {"articles": [dict(outgoing.article)]}}
        else:
            payload |= {"msgtype": "text", "text": {"content": outgoing.text}}
        await self._api.send(f"{self._api_base}/cgi-bin/message/send", payload)


def wecom_channel_from_env(http: httpx.AsyncClient | None = None, *, menus: Menus | None = None) -> WeComChannel | None:
    """The WeCom channel configured by `KEFU_WECOM_*`, or None when KEFU_WECOM_TOKEN is not set."""
    try:
        settings = WeComSettings()
    except ValidationError as err:
        raise ConfigError(f"KEFU_WECOM_* settings are invalid: {err}") from err
    if settings.token is None or not settings.token.get_secret_value():
        return None
    return WeComChannel(settings, http, menus=menus)
