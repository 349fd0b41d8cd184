"""A conversation as people see it: what the customer, the bot and operators said, in order. One shape for
the widget's history, the `/api/v1` history and the operator console."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.events import BotUttered, Event, OperatorMessage, UserUttered
from bot.types import Button


def transcript(events: Sequence[Event], *, after: int = -1) -> list[dict[str, Any]]:
    """The said events after position `after` (`seq` is an event's position in the stored log, so a client
    that saw `seq` N asks for `after=N` and gets nothing twice)."""
    said: list[dict[str, Any]] = []
    offered: dict[str, str] = {}  # a clicked button's payload is stored; people should see the title they clicked
    for seq, event in enumerate(events):
        entry = _entry(event)
        if entry is None:
            continue
        if entry["role"] == "user":
            entry["text"] = offered.get(entry["text"], entry["text"])
        offered = {b["payload"]: b["title"] for b in (*entry.get("buttons", ()), *entry.get("quick_replies", ()))}
        if seq > after:
            said.append({"seq": seq, "timestamp": event.timestamp, **entry})
    return said


def buttons_json(buttons: Sequence[Button]) -> list[dict[str, str]]:
    """Buttons or quick replies as every channel writes them: `[{"title", "payload"}]`."""
    return [{"title": b.title, "payload": b.payload} for b in buttons]


def _entry(event: Event) -> dict[str, Any] | None:
    match event:
        case UserUttered():
            return {"role": "user", "id": event.message_id, "text": event.text}
        case BotUttered():
            entry: dict[str, Any] = {"role": "bot", "id": event.reply_id, "text": event.text}
            if event.buttons:
                entry["buttons"] = buttons_json(event.buttons)
            if event.quick_replies:  # recommended questions (猜你想问), shown as buttons are
                entry["quick_replies"] = buttons_json(event.quick_replies)
            if event.image:
                entry["image"] = event.image
            if event.custom:
                entry["custom"] = dict(event.custom)
            return entry
        case OperatorMessage():
            return {"role": "operator", "id": f"op-{event.timestamp:.6f}", "text": event.text}
    return None
