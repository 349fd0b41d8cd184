"""Fuzzing what clients send the running app: the REST webhook and its stream and feedback, `/api/v1`, and the
widget's WebSocket frames. Every malformed request is answered with a JSON error naming the problem (400, 401,
404, 413, or 429 past the per-user rate limit), every well-formed one with an answer; never a server error, and
the socket stays open."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from hypothesis import event, given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from bot.channels.rest import strict_json
from bot.channels.web import MAX_FRAME_CHARS
from tests.fuzz.conftest import API_KEY
from tests.fuzz.strategies import NASTY_PIECES, deep_json, fuzz, json_values, lone_surrogate_json, nasty_text

AUTH = {"Authorization": f"Bearer {API_KEY}"}
REFUSED = (400, 413, 429)  # a JSON error each
# Over the frame limit by a length no fuzzed frame has: answered with one error naming that length, which marks
# the end of the answers to the frame before it.
SENTINEL = "#" * 20_001

short_text = st.one_of(st.text(max_size=30), st.sampled_from(NASTY_PIECES))
# Mostly fresh conversations (a few repeat, as real ones do); drawn, not random, so a failure replays.
ids = st.one_of(st.text(max_size=20), st.just("crm-42"), st.text("0123456789abcdef", min_size=16).map("fz-".__add__))


def _fields(required: dict[str, st.SearchStrategy[Any]], optional: dict[str, st.SearchStrategy[Any]]) -> Any:
    """JSON objects with the expected fields (each sometimes of the wrong type), sometimes an extra one."""
    anything = json_values | short_text
    return st.fixed_dictionaries(
        {key: value | anything for key, value in required.items()},
        optional={**{key: value | anything for key, value in optional.items()}, "extra": anything},
    )


def _bodies(objects: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """Request bodies: mostly JSON objects of the right shape, then any JSON, broken JSON, deep nesting, lone
    surrogates, bytes that are not UTF-8, and bodies over the 64 KB limit."""
    texts = st.one_of(
        objects.map(json.dumps),
        objects.map(json.dumps),
        json_values.map(json.dumps),
        st.text(max_size=50),
        deep_json,
        lone_surrogate_json.map(lambda s: f'{{"sender": "fz", "message": {s}, "text": {s}}}'),
        lone_surrogate_json.map(lambda s: f'{{"sender": {s}, "message": "hi"}}'),
        st.integers(65_000, 70_000).map(lambda n: json.dumps({"sender": "fz", "message": "x" * n})),
    )
    return st.one_of(texts.map(str.encode), st.binary(max_size=100))


def _is_error(response: Any) -> bool:
    body = response.json()
    return isinstance(body, dict) and isinstance(body.get("error"), str) and bool(body["error"].strip())


# --- the REST channel ---

rest_messages = _fields({"sender": ids, "message": nasty_text}, {"message_id": ids, "metadata": json_values})


@fuzz(50)
@given(body=_bodies(rest_messages))
def test_the_rest_webhook_answers_or_says_what_is_wrong(app_client: TestClient, body: bytes) -> None:
    response = app_client.post("/webhooks/rest/webhook", content=body)
    event(f"status {response.status_code}")
    assert response.status_code in (200, *REFUSED), response.text
    if response.status_code != 200:
        assert _is_error(response), response.text
        return
    sent = json.loads(body)
    for reply in response.json():
        assert reply["recipient_id"] == sent["sender"] and isinstance(reply["text"], str)


@fuzz(25)
@given(body=_bodies(rest_messages))
def test_the_rest_stream_answers_with_events_or_says_what_is_wrong(app_client: TestClient, body: bytes) -> None:
    response = app_client.post("/webhooks/rest/stream", content=body)
    assert response.status_code in (200, *REFUSED), response.text
    if response.status_code != 200:
        assert _is_error(response), response.text
        return
    events = [block.split("\n", 1)[0] for block in response.text.strip().split("\n\n")]
    assert events and events[-1] == "event: done" and set(events) <= {"event: partial", "event: message", "event: done"}


feedback = _fields(
    {"sender": ids},
    {
        "reply_id": short_text,
        "rating": st.sampled_from([1, -1, 0, 2]),
        "csat": st.integers(-2, 7),
        "comment": nasty_text,
    },
)


@fuzz(40)
@given(body=_bodies(feedback))
def test_rest_feedback_is_recorded_or_refused(app_client: TestClient, body: bytes) -> None:
    response = app_client.post("/webhooks/rest/feedback", content=body)
    assert response.status_code in (200, *REFUSED), response.text
    if response.status_code == 200:
        assert response.json() == {"recorded": True}
    else:
        assert _is_error(response), response.text


# --- /api/v1 ---

send = _fields({"text": nasty_text}, {"message_id": ids, "metadata": json_values, "stream": st.booleans()})
rating = _fields({}, {"reply_id": short_text, "rating": st.sampled_from([1, -1, 3]), "csat": st.integers(0, 6),
                      "comment": short_text})  # fmt: skip
conversations = st.one_of(st.just("crm-fuzz"), ids.filter(lambda s: s not in ("", ".", "..")))


def _segment(text: str) -> str:
    """`text` as one path segment: the router never sees a "/" in it (that would be another route's 404)."""
    return quote(text.replace("/", "_").replace("%", "_"), safe="")


@st.composite
def api_calls(draw: st.DrawFn) -> tuple[str, str, dict[str, Any]]:
    """(method, path, httpx keyword arguments) of one call, most with the key, some with a wrong or none."""
    conversation = _segment(draw(conversations))
    which = draw(st.sampled_from(["send", "send", "history", "feedback", "trace"]))
    headers = draw(st.sampled_from([AUTH, AUTH, AUTH, {"X-API-Key": API_KEY}, {"X-API-Key": "wrong"}, {}]))
    if which == "history":
        params = draw(st.fixed_dictionaries({}, optional={"after": short_text | st.integers(), "limit": short_text
                                                          | st.integers()}))  # fmt: skip
        return "GET", f"/api/v1/conversations/{conversation}/messages", {"headers": headers, "params": params}
    if which == "trace":
        trace = draw((short_text | st.text(min_size=120, max_size=140)).filter(lambda s: s not in ("", ".", "..")))
        return "GET", f"/api/v1/traces/{_segment(trace)}", {"headers": headers}
    body = draw(_bodies(send if which == "send" else rating))
    kind = "messages" if which == "send" else "feedback"
    return "POST", f"/api/v1/conversations/{conversation}/{kind}", {"headers": headers, "content": body}


@fuzz(80)
@given(call=api_calls())
def test_api_v1_answers_or_says_what_is_wrong(app_client: TestClient, call: tuple[str, str, dict[str, Any]]) -> None:
    method, path, arguments = call
    response = app_client.request(method, path, **arguments)
    event(f"{method} {path.split('/')[-1] if 'conversations' in path else 'trace'} {response.status_code}")
    keyed = API_KEY in arguments["headers"].values() or arguments["headers"] == AUTH
    assert response.status_code in ((200, 404, *REFUSED) if keyed else (401,)), (response.status_code, response.text)
    if response.headers["content-type"].startswith("text/event-stream"):
        assert "event: done" in response.text
    elif response.status_code == 200:
        assert isinstance(response.json(), dict)
    else:
        assert _is_error(response), response.text


# --- the widget's WebSocket ---

frames = st.one_of(
    _fields({"type": st.sampled_from(["hello"])}, {"conversation_id": ids | st.just(None), "after": json_values}),
    _fields({"type": st.just("message"), "id": ids, "text": nasty_text}, {}),
    _fields({"type": st.sampled_from(["feedback", "csat"])}, {"rating": st.integers(-3, 7), "reply_id": short_text}),
    _fields({"type": short_text}, {}),
).map(json.dumps)
raw_frames = st.one_of(
    frames, frames, json_values.map(json.dumps), st.text(max_size=40), deep_json,
    lone_surrogate_json.map(lambda s: f'{{"type": "message", "id": "m1", "text": {s}}}'),
    st.integers(16_000, 17_000).map(lambda n: json.dumps({"type": "message", "id": "m1", "text": "长" * n})),
)  # fmt: skip
KNOWN = {"welcome", "messages", "ack", "typing", "partial", "done", "error", "recorded"}


def _answers(socket: Any, frame: str) -> list[dict[str, Any]]:
    """The frames the server sends for `frame`: everything before the one error the sentinel gets."""
    socket.send_text(frame)
    socket.send_text(SENTINEL)
    answers: list[dict[str, Any]] = []
    while True:
        answer = json.loads(socket.receive_text())
        assert isinstance(answer, dict) and answer.get("type") in KNOWN, answer
        if answer["type"] == "error":
            assert isinstance(answer["error"], str) and answer["error"].strip()
            if answer["error"].startswith(f"frame of {len(SENTINEL)} characters"):
                return answers
        answers.append(answer)


@fuzz(40)
@given(hello=st.booleans(), sent=st.lists(raw_frames, min_size=1, max_size=4))
def test_the_widget_socket_answers_every_frame_and_stays_open(
    app_client: TestClient, hello: bool, sent: list[str]
) -> None:
    with app_client.websocket_connect("/ws") as socket:
        if hello:
            answers = _answers(socket, json.dumps({"type": "hello", "conversation_id": None, "after": -1}))
            assert [a["type"] for a in answers][:2] == ["welcome", "messages"]
        for frame in sent:
            answers = _answers(socket, frame)
            data = _object(frame)
            if data is None or not isinstance(data.get("type"), str):
                # `messages` may also come at any time: a change notice of the conversation
                assert [a["type"] for a in answers if a["type"] != "messages"] == ["error"], (frame[:200], answers)
            elif data["type"] == "message" and answers and answers[0]["type"] == "ack":
                assert [a for a in answers if a["type"] != "messages"][-1] == {"type": "done", "id": data["id"]}
            else:
                assert answers, frame[:200]
        socket.send_text(json.dumps({"type": "hello"}))
        assert json.loads(socket.receive_text())["type"] == "welcome"  # still open, still serving


def _object(frame: str) -> dict[str, Any] | None:
    """The frame as the server reads it, or None for one it refuses whatever its type."""
    try:
        data = strict_json(frame)
    except ValueError:
        return None
    return data if isinstance(data, dict) and len(frame) <= MAX_FRAME_CHARS else None


def test_deep_nesting_and_lone_surrogates_are_refused_by_name(app_client: TestClient) -> None:
    """Found by fuzzing: json.loads raised RecursionError (a 500), and a JSON "\\ud800" reached the bot and
    failed in Redis, the rate limiter and the embedder (a 500, or a dead socket)."""
    deep, surrogate = "[" * 5000 + "]" * 5000, '{"sender": "fz-s", "message": "x\\udfffy", "text": "\\ud800"}'
    for path, headers in (("/webhooks/rest/webhook", {}), ("/api/v1/conversations/fz-s/messages", AUTH)):
        for body, named in ((deep, "nested"), (surrogate, "surrogate")):
            response = app_client.post(path, content=body.encode(), headers=headers)
            assert response.status_code == 400 and named in response.json()["error"], response.text
    with app_client.websocket_connect("/ws") as socket:
        for frame, named in ((deep, "nested"), ('{"type": "message", "id": "m1", "text": "\\ud800"}', "surrogate")):
            socket.send_text(frame)
            assert named in json.loads(socket.receive_text())["error"]
