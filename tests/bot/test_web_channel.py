"""The widget's WebSocket protocol against a real `kefu run`, with the `websockets` client as the browser."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx
import pytest
import websockets

from bot.channels.transcript import transcript
from bot.events import BotUttered, UserUttered
from bot.types import Button
from tests.bot.servers import Server

pytestmark = pytest.mark.integration
HAN = re.compile(r"[\u3400-\u9fff]")


@pytest.fixture
def server(running_shop: Server) -> Server:
    return running_shop


class Widget:
    """One browser tab's socket."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket

    @classmethod
    async def open(
        cls, server: Server, conversation_id: str | None = None, after: int = -1, lang: str | None = None
    ) -> tuple[Widget, dict]:
        socket = await websockets.connect(server.url.replace("http", "ws") + "/ws")
        widget = cls(socket)
        hello = {"type": "hello", "conversation_id": conversation_id, "after": after}
        await widget.send(hello | ({"lang": lang} if lang else {}))
        welcome = await widget.receive()
        history = await widget.receive()
        assert welcome["type"] == "welcome" and history["type"] == "messages"
        opened = {"conversation_id": welcome["conversation_id"], "messages": history["messages"]}
        return widget, opened | {"hot": welcome.get("hot", [])}

    async def send(self, frame: dict | str) -> None:
        await self.socket.send(frame if isinstance(frame, str) else json.dumps(frame, ensure_ascii=False))

    async def receive(self) -> dict:
        return json.loads(await asyncio.wait_for(self.socket.recv(), timeout=60))

    async def say(self, message_id: str, text: str) -> list[dict]:
        """Every frame of the turn, `done` included."""
        await self.send({"type": "message", "id": message_id, "text": text})
        frames = [await self.receive()]
        while frames[-1]["type"] != "done":
            frames.append(await self.receive())
        return frames


def said(frames: list[dict]) -> list[dict]:
    return [entry for frame in frames if frame["type"] == "messages" for entry in frame["messages"]]


async def test_a_turn_is_acked_answered_from_the_stored_transcript_and_a_resend_is_not_answered_twice(
    server: Server,
) -> None:
    widget, hello = await Widget.open(server)
    assert hello["conversation_id"].startswith("web:") and hello["messages"] == []
    frames = await widget.say("m1", "退货政策是什么？")
    assert [f["type"] for f in frames[:2]] == ["ack", "typing"] and frames[0]["id"] == "m1"
    user, bot = said(frames)
    assert (user["role"], user["id"], user["text"]) == ("user", "m1", "退货政策是什么？")
    assert bot["role"] == "bot" and "7 天" in bot["text"] and bot["seq"] > user["seq"]

    again = await widget.say("m1", "退货政策是什么？")  # the widget resends what it did not see answered
    assert said(again) == [] and again[-1] == {"type": "done", "id": "m1"}
    await widget.socket.close()

    # a reload: the same conversation, and only what was said after the last position the tab saw
    widget, hello = await Widget.open(server, hello["conversation_id"], after=user["seq"])
    assert [e["id"] for e in hello["messages"]] == [bot["id"]]
    await widget.socket.close()


async def test_quick_replies_feedback_and_csat_are_recorded(server: Server) -> None:
    widget, _ = await Widget.open(server)
    [_, clarify] = said(await widget.say("q1", "退货"))
    titles = {b["title"]: b["payload"] for b in clarify["buttons"]}
    [clicked, answer] = said(await widget.say("q2", titles["退货政策"]))
    assert clicked["text"] == "退货政策"  # the transcript shows the button's title, not its payload
    assert "7 天" in answer["text"]

    await widget.send({"type": "feedback", "reply_id": answer["id"], "rating": 1})
    assert await widget.receive() == {"type": "recorded", "kind": "thumbs", "reply_id": answer["id"]}
    await widget.send({"type": "feedback", "reply_id": "not-a-reply", "rating": 1})
    assert "no reply" in (await widget.receive())["error"]
    await widget.send({"type": "csat", "rating": 5})
    assert (await widget.receive())["kind"] == "csat"
    await widget.socket.close()


async def test_a_new_conversation_is_welcomed_with_the_hot_questions_in_the_widgets_language(
    server: Server,
) -> None:
    widget, hello = await Widget.open(server)  # no lang: Chinese
    hot = hello["hot"]
    assert 2 <= len(hot) <= 9 and all(q["payload"] == q["title"] and HAN.search(q["title"]) for q in hot)
    [clicked, answer] = said(await widget.say("h1", hot[0]["payload"]))
    assert clicked["text"] == hot[0]["title"] and answer["text"]
    related = answer["quick_replies"]
    assert related and hot[0]["title"] not in [q["title"] for q in related]  # related to it, not itself
    assert all(q["payload"] == q["title"] for q in related)
    await widget.socket.close()

    widget, again = await Widget.open(server, hello["conversation_id"], lang="zh")  # asked already: no hot list
    assert again["hot"] == [] and [m.get("quick_replies") for m in again["messages"]] == [None, related]
    await widget.socket.close()
    widget, english = await Widget.open(server, lang="en")
    assert english["hot"] and not any(HAN.search(q["title"]) for q in english["hot"])
    await widget.socket.close()


async def test_bad_frames_get_clear_errors_and_the_connection_stays_usable(server: Server) -> None:
    socket = await websockets.connect(server.url.replace("http", "ws") + "/ws")
    widget = Widget(socket)
    await widget.send({"type": "message", "id": "x", "text": "hi"})
    assert "hello" in (await widget.receive())["error"]
    await widget.send({"type": "hello", "conversation_id": "wechat:o6_bmjrPTlm6_2sgVt7hMZOPfL2M"})  # not a web id
    assert (await widget.receive())["conversation_id"].startswith("web:")
    await widget.receive()
    for frame, error in [
        ("{not json", "JSON"),
        (json.dumps([1, 2]), "type"),
        ({"type": "shout"}, "unknown frame type"),
        ({"type": "message", "id": "a b", "text": "hi"}, '"id"'),
        ({"type": "message", "id": "m", "text": 5}, '"text"'),
        ({"type": "csat", "rating": "five"}, "rating"),
        ("x" * 20_000, "limit"),
    ]:
        await widget.send(frame)
        assert error in (await widget.receive())["error"], frame
    frames = await widget.say("long", "好" * 5000)  # over the bot's message limit: refused, nothing stored
    assert any("limit" in f.get("error", "") for f in frames) and said(frames) == []
    frames = await widget.say("ok", "How much is the X1 Pro?")
    assert "¥5999" in said(frames)[-1]["text"]
    await widget.socket.close()


async def test_the_widget_script_and_demo_page_are_served(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        page = await client.get("/")
        script = await client.get("/widget/kefu-widget.js")
    assert page.status_code == 200 and '<script src="/widget/kefu-widget.js"' in page.text
    assert script.headers["content-type"].startswith("text/javascript") and "attachShadow" in script.text


def test_transcript_positions_roles_and_clicked_titles() -> None:
    events = [
        UserUttered(text="退货", message_id="u1"),
        BotUttered(text="哪一个？", buttons=(Button("退货政策", "/ask_returns"),), reply_id="b1", image="/x.png"),
        UserUttered(text="/ask_returns", message_id="u2"),
        UserUttered(text="/ask_returns", message_id="u3"),  # typed after the buttons were gone: shown as typed
    ]
    entries = transcript(events)
    assert [(e["seq"], e["role"], e["text"]) for e in entries] == [
        (0, "user", "退货"),
        (1, "bot", "哪一个？"),
        (2, "user", "退货政策"),
        (3, "user", "/ask_returns"),
    ]
    assert entries[1]["image"] == "/x.png" and entries[1]["buttons"][0]["payload"] == "/ask_returns"
    assert [e["seq"] for e in transcript(events, after=1)] == [2, 3]


def test_transcript_carries_recommended_questions_as_buttons_are() -> None:
    asked = Button("运费怎么收？", "运费怎么收？")
    events = [BotUttered(text="您好", reply_id="b1", quick_replies=(asked,)), UserUttered(text="运费怎么收？")]
    [greeting, clicked] = transcript(events)
    assert greeting["quick_replies"] == [{"title": "运费怎么收？", "payload": "运费怎么收？"}]
    assert "buttons" not in greeting and clicked["text"] == "运费怎么收？"
    assert "quick_replies" not in transcript([BotUttered(text="好的", reply_id="b2")])[0]
