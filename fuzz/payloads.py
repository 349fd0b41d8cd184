"""Fuzzes what clients send the app, below HTTP. Each input is used as a REST webhook body (`parse_request`),
a REST feedback body (`parse_feedback`), an `/api/v1` send-message body (`api_v1.parse_message`), and, as
bytes and as text, a body or WebSocket frame for `strict_json`. The parsers refuse with a BadRequestError
that says why, `strict_json` with ValueError; what they accept must be text UTF-8 can carry (no lone
surrogate). Any other exception is a crash.

    .venv/bin/python -m fuzz.payloads -runs=5000 fuzz/corpus/payloads
    mkdir -p /tmp/corpus && .venv/bin/python -m fuzz.payloads -max_total_time=600 -artifact_prefix=/tmp/ \\
        /tmp/corpus fuzz/corpus/payloads
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TypeVar

import atheris

from fuzz import attempt

with atheris.instrument_imports(include=["bot"]):
    from bot.channels.api_v1 import parse_message
    from bot.channels.rest import parse_feedback, parse_request, strict_json
    from bot.errors import BadRequestError
    from bot.types import Message

T = TypeVar("T")


def _accepted(parse: Callable[[], T]) -> T | None:
    """What `parse` returns, or None when it refuses with a BadRequestError that says why."""
    parsed = attempt(parse, BadRequestError)
    if not isinstance(parsed, BadRequestError):
        return parsed
    assert str(parsed), f"{type(parsed).__name__} without a message"
    return None


def _check(message: Message | None) -> None:
    if message is not None:
        assert message.conversation_id.strip(), message
        json.dumps([message.text, message.message_id, message.meta], ensure_ascii=False).encode()


def test_one_input(data: bytes) -> None:
    _check(_accepted(lambda: parse_request(data, "127.0.0.1")))
    sent = _accepted(lambda: parse_message("fz-1", data))
    _check(sent[0] if sent is not None else None)
    feedback = _accepted(lambda: parse_feedback(data))
    assert feedback is None or feedback[1].kind in ("thumbs", "csat"), feedback
    for raw in (data, data.decode("utf-8", errors="replace")):  # a body, and a WebSocket text frame
        value = attempt(lambda: strict_json(raw), ValueError)  # noqa: B023 (called at once)
        if not isinstance(value, ValueError):
            json.dumps(value, ensure_ascii=False).encode()


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
