"""Which channels a server runs: the REST webhook, the web widget and `/api/v1` always; WeChat and WeCom when
their tokens are in the environment. A new channel is one line here (see `bot/channels/base.py`)."""

from __future__ import annotations

import logging

from bot.assist.notify import Notifier
from bot.channels.api_keys import ApiKeys
from bot.channels.api_v1 import ApiV1Channel
from bot.channels.base import Channel
from bot.channels.origins import AllowedOrigins
from bot.channels.rest import RestChannel
from bot.channels.web import WebChannel
from bot.channels.wechat import wechat_channel_from_env
from bot.channels.wechat_menus import RedisMenus
from bot.channels.wecom import wecom_channel_from_env
from bot.runtime import Bot

log = logging.getLogger(__name__)


def channels_from_env(
    bot: Bot, notifier: Notifier | None = None, origins: AllowedOrigins | None = None
) -> list[Channel]:
    """Every channel this process serves; the optional ones log that they are on. With `notifier`, widgets
    receive what is said elsewhere (an operator's message) as it happens; `origins` are the other sites whose
    pages may open the widget's socket."""
    found: list[Channel] = [
        RestChannel(on_feedback=bot.record_feedback),
        WebChannel(bot, notifier, origins),
        ApiV1Channel(bot, ApiKeys.from_env()),
    ]
    menus = RedisMenus(bot.store.client)  # a number may reach another process than the one that showed the menu
    for optional in (wechat_channel_from_env(menus=menus), wecom_channel_from_env(menus=menus)):
        if optional is not None:
            log.info("channel %s is on", optional.name)
            found.append(optional)
    return found


class HideQueryStrings(logging.Filter):
    """Uvicorn's access log without query strings: WeChat puts the user's openid and signatures there."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):  # uvicorn's access line
            record.args = (args[0], args[1], args[2].split("?", 1)[0], args[3], args[4])
        return True
