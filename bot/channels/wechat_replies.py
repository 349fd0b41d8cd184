"""A turn's replies as one WeChat / WeCom message, and the numbered menus that stand in for buttons.

A passive reply carries a single message, so a turn's replies are joined into one text separated by blank
lines; buttons become numbered lines ("1. 查询订单"), and a reply's recommended questions more numbered lines
after them under "猜你想问：" ("You may also ask:"); the user's next "2" is read as the payload of whatever
line 2 is (`wechat_menus` keeps the menu). A card with a link, alone in its turn and without numbered lines,
becomes a news article, any other card a few lines of text. Late deliveries use the same rendering, so a
user sees the same thing whether the turn beat the deadline or not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.types import Button, Language, Reply

UNSUPPORTED_TEXT = (
    "暂时只能处理文字消息，请用文字描述您的问题。 / I can only read text for now; please type your question."
)
SORRY_TEXT = "抱歉，这条消息暂时无法处理，请换个说法再试。 / Sorry, I could not handle that message; please try again."
QUICK_REPLIES_HEADER = {"zh": "猜你想问：", "en": "You may also ask:"}
_HAN = re.compile(r"[\u3400-\u9fff]")
_LATIN = re.compile(r"[A-Za-z]")


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One platform message: `text`, or a news `article` ({"title", "description", "url", "picurl"}); `menu`
    is the numbered entries (buttons, then recommended questions, reply by reply) in the order of their numbers."""

    text: str
    article: Mapping[str, str] | None = None
    menu: tuple[Button, ...] = ()


def render(replies: Sequence[Reply]) -> Outgoing:
    """The replies of one turn as one message."""
    menu = tuple(entry for reply in replies for entry in (*reply.buttons, *reply.quick_replies))
    card = _card(replies[0]) if len(replies) == 1 else None
    if card is not None and card.get("url") and not menu:  # an article has no room for numbered lines
        return Outgoing(text=replies[0].text, article=_article(card, replies[0].text))
    blocks: list[str] = []
    number = 0
    for reply in replies:
        lines = [reply.text] if reply.text.strip() else []
        lines += _card_lines(_card(reply))
        if reply.image:
            lines.append(reply.image)
        lines += _numbered(reply.buttons, number)
        number += len(reply.buttons)
        if reply.quick_replies:
            lines.append(QUICK_REPLIES_HEADER[language_of(reply)])
            lines += _numbered(reply.quick_replies, number)
            number += len(reply.quick_replies)
        if lines:
            blocks.append("\n".join(lines))
    return Outgoing(text="\n\n".join(blocks), menu=menu)


def language_of(reply: Reply) -> Language:
    """The reply's language as its text shows it (Han characters: zh), else as its recommended questions do."""
    if _HAN.search(reply.text):
        return "zh"
    if _LATIN.search(reply.text):
        return "en"
    return "zh" if any(_HAN.search(q.title) for q in reply.quick_replies) else "en"


def _numbered(entries: Sequence[Button], before: int) -> list[str]:
    return [f"{before + n}. {entry.title}" for n, entry in enumerate(entries, start=1)]


def _card(reply: Reply) -> Mapping[str, Any] | None:
    card = reply.custom.get("card") if reply.custom else None
    return card if isinstance(card, Mapping) else None


def _fields(card: Mapping[str, Any]) -> list[str]:
    fields = card.get("fields")
    if not isinstance(fields, list):
        return []
    return [f"{f.get('label', '')}: {f.get('value', '')}" for f in fields if isinstance(f, Mapping)]


def _card_lines(card: Mapping[str, Any] | None) -> list[str]:
    if card is None:
        return []
    head = [str(card[key]) for key in ("title", "subtitle") if card.get(key)]
    tail = [str(card["url"])] if card.get("url") else []
    return head + _fields(card) + tail


def _article(card: Mapping[str, Any], text: str) -> dict[str, str]:
    description = "\n".join(([str(card["subtitle"])] if card.get("subtitle") else []) + _fields(card)) or text
    return {
        "title": str(card.get("title") or text),
        "description": description,
        "url": str(card["url"]),
        "picurl": str(card.get("image") or ""),
    }
