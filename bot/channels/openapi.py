"""The OpenAPI 3.1 description of `/api/v1`, written as data (the app is plain Starlette: nothing generates
it), and the offline docs page made from it. Change a route in `api_v1.py`, change it here:
tests/channels/test_api_v1.py checks real answers against these schemas."""

from __future__ import annotations

import html
import json
from typing import Any

API = "/api/v1"
CONVERSATION_ID_PATTERN = r"^[A-Za-z0-9_.:@-]{1,128}$"
HISTORY_LIMIT = 500  # the most messages one history page holds

Json = dict[str, Any]


def _ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(description: str, schema: Json) -> Json:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> Json:
    names = {
        400: "BadRequest",
        401: "Unauthorized",
        403: "ApiOff",
        404: "NotFound",
        413: "TooLarge",
        429: "TooManyMessages",
        503: "Unavailable",
    }
    return {str(status): {"$ref": f"#/components/responses/{names[status]}"} for status in statuses}


def _obj(required: list[str], properties: Json, *, closed: bool = True, **extra: Any) -> Json:
    """An object schema; `closed` ones reject unknown properties (a misspelt field is a 400, not ignored)."""
    schema: Json = {"type": "object", "required": required, "properties": properties, **extra}
    if closed:
        schema["additionalProperties"] = False
    return schema


_STR: Json = {"type": "string"}
_NUM: Json = {"type": "number"}
_STRINGS: Json = {"type": "array", "items": _STR}
# Some character that is not white space as Python's str.strip sees it (the server refuses a blank message)
_NOT_BLANK = r"[^\t-\r\x1c- \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
_COMMENT: Json = {"type": "string", "maxLength": 2000, "description": "What the customer wrote with the rating"}
_QUICK_REPLIES: Json = {
    "type": "array",
    "items": _ref("Button"),
    "description": "Recommended questions (猜你想问): send a payload as the next message's text to ask it",
}

SCHEMAS: Json = {
    "Error": _obj(["error"], {"error": {"type": "string", "description": "What went wrong and how to fix it"}}),
    "Button": _obj(["title", "payload"], {"title": _STR, "payload": _STR}),
    "SendMessage": _obj(
        ["text"],
        {
            "text": {"type": "string", "pattern": _NOT_BLANK, "description": "The customer's message"},
            "message_id": {
                "type": "string",
                "minLength": 1,
                "maxLength": 128,
                "description": "Your id for the message: a retry with the same id is answered `duplicate: true` "
                "and no second reply",
            },
            "metadata": {"type": "object", "description": "Passed to custom actions as the message's metadata"},
            "stream": {
                "type": "boolean",
                "default": False,
                "description": "Answer with server-sent events: `partial` (generated text as it passes the "
                "checks), one `message` per reply (a Reply), then `done` ({duplicate})",
            },
        },
    ),
    "Reply": _obj(
        ["id", "text", "buttons", "quick_replies", "fact_ids", "trace_id", "handoff"],
        {
            "id": {"type": "string", "description": "Rate it with /feedback; empty on an error apology"},
            "text": _STR,
            "buttons": {"type": "array", "items": _ref("Button")},
            "quick_replies": _QUICK_REPLIES,
            "image": {"type": "string", "description": "An image URL shown with the text"},
            "custom": {"type": "object", "description": 'Rasa\'s `custom` payload, e.g. {"card": {...}}'},
            "fact_ids": {**_STRINGS, "description": "The knowledge the reply rests on"},
            "trace_id": {"type": "string", "description": "GET /api/v1/traces/{trace_id} explains the turn"},
            "handoff": {"type": "boolean", "description": "A human agent takes the conversation over"},
        },
    ),
    "MessageAnswer": _obj(
        ["conversation_id", "replies", "duplicate"],
        {
            "conversation_id": _STR,
            "replies": {"type": "array", "items": _ref("Reply")},
            "duplicate": {"type": "boolean", "description": "The message id was seen before: no new replies"},
        },
    ),
    "TranscriptEntry": _obj(
        ["seq", "timestamp", "role", "id", "text"],
        {
            "seq": {"type": "integer", "minimum": 0, "description": "Position in the log: ask `after=seq` next"},
            "timestamp": {**_NUM, "description": "Unix time, seconds"},
            "role": {"enum": ["user", "bot", "operator"]},
            "id": _STR,
            "text": _STR,
            "buttons": {"type": "array", "items": _ref("Button")},
            "quick_replies": _QUICK_REPLIES,
            "image": _STR,
            "custom": {"type": "object"},
        },
    ),
    "History": _obj(
        ["conversation_id", "messages", "has_more"],
        {
            "conversation_id": _STR,
            "messages": {"type": "array", "items": _ref("TranscriptEntry")},
            "has_more": {"type": "boolean", "description": "More messages follow: ask again after the last seq"},
        },
    ),
    "ThumbsFeedback": _obj(
        ["reply_id", "rating"],
        {
            "reply_id": {**_STR, "minLength": 1, "description": "A reply's `id`"},
            "rating": {"enum": [1, -1]},
            "comment": _COMMENT,
        },
    ),
    "CsatFeedback": _obj(["csat"], {"csat": {"type": "integer", "minimum": 1, "maximum": 5}, "comment": _COMMENT}),
    "Feedback": {"oneOf": [_ref("ThumbsFeedback"), _ref("CsatFeedback")]},
    "Recorded": _obj(["recorded"], {"recorded": {"const": True}}),
    "Trace": _obj(
        ["trace_id", "conversation_id", "stages", "nlu", "decisions", "facts", "candidates", "verdicts", "error"],
        {
            "trace_id": _STR,
            "conversation_id": _STR,
            "total_ms": _NUM,
            "stages": {"type": "array", "items": _obj(["name", "ms"], {"name": _STR, "ms": _NUM}, closed=False)},
            "nlu": {
                "oneOf": [
                    {"type": "null"},
                    _obj(["text", "intent", "confidence"], {"intent": _STR, "confidence": _NUM}, closed=False),
                ]
            },
            "decisions": {
                "type": "array",
                "items": _obj(["action", "policy", "confidence", "reason"], {"action": _STR}, closed=False),
            },
            "facts": {"type": "array", "items": _obj(["id", "text", "source", "score"], {}, closed=False)},
            "candidates": {"type": "array", "items": _obj(["text", "fact_ids", "generator"], {}, closed=False)},
            "verdicts": {"type": "array", "items": _obj(["check", "stage", "allowed"], {}, closed=False)},
            "error": {"type": ["string", "null"]},
        },
        closed=False,
        description="What one turn understood, decided, retrieved, generated and checked; personal data masked",
    ),
}

_CONVERSATION: Json = {
    "name": "conversation_id",
    "in": "path",
    "required": True,
    "description": "Your id for the conversation (a customer or ticket id): 1-128 of A-Z a-z 0-9 _ . : @ -",
    "schema": {"type": "string", "pattern": CONVERSATION_ID_PATTERN},
}
_SSE = (
    "event: message\ndata: {Reply}\n\n"
    'event: done\ndata: {"duplicate": false}\n\n'
    "(with generated replies, `partial` events {reply_id, text} come first)"
)


def _event(name: str, data: Json) -> Json:
    """One kind of server-sent event: its name, and its `data` line holding JSON of the schema `data`."""
    payload = {"type": "string", "contentMediaType": "application/json", "contentSchema": data}
    return _obj(["event", "data"], {"event": {"const": name}, "data": payload}, closed=False)


# With OpenAPI 3.1, the schema of an event stream describes each event ({event, data, id, retry})
_SSE_EVENT: Json = {
    "oneOf": [
        _event("partial", _obj(["reply_id", "text"], {"reply_id": _STR, "text": _STR})),
        _event("message", _ref("Reply")),
        _event("done", _obj(["duplicate"], {"duplicate": {"type": "boolean"}})),
    ],
    "description": _SSE,
}

PATHS: Json = {
    f"{API}/conversations/{{conversation_id}}/messages": {
        "parameters": [_CONVERSATION],
        "post": {
            "operationId": "sendMessage",
            "summary": "Send a customer message, get the bot's replies · 发送客户消息，取得机器人回复",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("SendMessage"), "example": {"text": "你好"}}},
            },
            "responses": {
                "200": {
                    "description": "The replies, or server-sent events with `stream: true`",
                    "content": {
                        "application/json": {"schema": _ref("MessageAnswer")},
                        "text/event-stream": {"schema": _SSE_EVENT},
                    },
                },
                **_errors(400, 401, 403, 413, 429),
            },
        },
        "get": {
            "operationId": "listMessages",
            "summary": "The conversation so far · 查询会话记录",
            "parameters": [
                {
                    "name": "after",
                    "in": "query",
                    "description": "Only messages after this `seq` (the last one you saw); -1 for all",
                    "schema": {"type": "integer", "minimum": -1, "default": -1},
                },
                {
                    "name": "limit",
                    "in": "query",
                    "description": "The most messages to return",
                    "schema": {"type": "integer", "minimum": 1, "maximum": HISTORY_LIMIT, "default": 100},
                },
            ],
            "responses": {
                "200": _json("Messages in order, oldest first", _ref("History")),
                **_errors(400, 401, 403, 404, 503),
            },
        },
    },
    f"{API}/conversations/{{conversation_id}}/feedback": {
        "parameters": [_CONVERSATION],
        "post": {
            "operationId": "sendFeedback",
            "summary": "Rate a reply (thumbs) or the conversation (CSAT 1-5) · 评价回复或整个会话",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": _ref("Feedback"), "example": {"reply_id": "a1b2c3", "rating": 1}}
                },
            },
            "responses": {"200": _json("Recorded", _ref("Recorded")), **_errors(400, 401, 403, 404, 413, 503)},
        },
    },
    f"{API}/traces/{{trace_id}}": {
        "get": {
            "operationId": "getTrace",
            "summary": "How a turn was answered (this process keeps its latest turns) · 查看一轮对话的处理过程",
            "parameters": [
                {"name": "trace_id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 128}}
            ],
            "responses": {"200": _json("The trace", _ref("Trace")), **_errors(401, 403, 404)},
        },
    },
    f"{API}/openapi.json": {
        "get": {
            "operationId": "getOpenApi",
            "summary": "This description (no key needed) · 本接口描述（无需密钥）",
            "security": [],
            "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}},
        },
    },
    f"{API}/docs": {
        "get": {
            "operationId": "getDocs",
            "summary": "A readable page of the endpoints (no key needed) · 接口说明页（无需密钥）",
            "security": [],
            "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}},
        },
    },
}


def _error_response(description: str, headers: Json | None = None) -> Json:
    response = _json(description, _ref("Error"))
    if headers:
        response["headers"] = headers
    return response


RESPONSES: Json = {
    "BadRequest": _error_response("The body or a parameter is wrong; the error says what and shows an example"),
    "Unauthorized": _error_response(
        "Missing or wrong API key",
        {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}},
    ),
    "ApiOff": _error_response("No API key is configured on the server (KEFU_API_KEYS): the API is off"),
    "NotFound": _error_response("No such conversation, reply or trace"),
    "TooLarge": _error_response("The body is over 64 KB, or the message over the server's length limit"),
    "TooManyMessages": _error_response(
        "This conversation sent more messages than the server's rate limit (KEFU_RATE_LIMIT) allows; nothing was "
        "stored: send the message again after Retry-After seconds",
        {"Retry-After": {"schema": {"type": "string"}, "description": "Seconds to wait"}},
    ),
    "Unavailable": _error_response(
        "The conversation store (Redis) is unreachable; retry later",
        {"Retry-After": {"schema": {"type": "string"}, "description": "Seconds to wait"}},
    ),
}


def openapi_schema() -> Json:
    """The whole OpenAPI document, a fresh copy each call."""
    document: Json = {
        "openapi": "3.1.0",
        "info": {
            "title": "kefu API",
            "version": "1",
            "description": "Server-to-server access to the bot: send messages, read conversations, record "
            "feedback, explain turns. 服务端对接接口：发送消息、读取会话、记录评价、查看处理过程。",
        },
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "responses": RESPONSES,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <API key>"},
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
        "security": [{"bearer": []}, {"apiKeyHeader": []}],
    }
    copied: Json = json.loads(json.dumps(document))  # callers may change their copy
    return copied


_DOCS_INTRO = """\
<p>Send the API key as <code>Authorization: Bearer KEY</code> or <code>X-API-Key: KEY</code>; the server reads its
keys from <code>KEFU_API_KEYS</code>. Bodies are JSON, at most 64 KB; errors are <code>{"error": "..."}</code>.
The machine-readable description is <a href="openapi.json">openapi.json</a>.</p>
<p>用 <code>Authorization: Bearer 密钥</code> 或 <code>X-API-Key: 密钥</code> 发送 API 密钥；服务端的密钥来自
<code>KEFU_API_KEYS</code>。请求体为 JSON，最大 64 KB；出错时返回 <code>{"error": "..."}</code>。
机器可读的接口描述见 <a href="openapi.json">openapi.json</a>。</p>
"""
_STYLE = (
    "body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}"
    "pre{background:#f4f4f4;padding:.8rem;overflow-x:auto}code{background:#f4f4f4;padding:0 .2rem}"
    "h2{font-size:1.05rem;margin-top:2rem}.m{display:inline-block;min-width:3.5rem;font-weight:bold}"
)


def docs_html(schema: Json, base_url: str) -> str:
    """A self-contained page (no scripts, no CDN) listing the operations in `schema` with curl examples."""
    sections = []
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            curl = html.escape(_curl(method, path, operation, base_url.rstrip("/")))
            sections.append(
                f"<h2><span class=m>{method.upper()}</span> <code>{html.escape(path)}</code></h2>\n"
                f"<p>{html.escape(operation['summary'])}</p>\n<pre>{curl}</pre>"
            )
    title = f"{schema['info']['title']} v{schema['info']['version']} · 接口文档"
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head>\n<body><h1>{html.escape(title)}</h1>\n{_DOCS_INTRO}"
        + "\n".join(sections)
        + "\n</body></html>\n"
    )


def _curl(method: str, path: str, operation: Json, base_url: str) -> str:
    url = base_url + path.replace("{conversation_id}", "crm-42").replace("{trace_id}", "TRACE_ID")
    lines = [f"curl -X {method.upper()} '{url}'" if method != "get" else f"curl '{url}'"]
    if operation.get("security") != []:
        lines.append('  -H "Authorization: Bearer $KEFU_API_KEY"')
    example = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("example")
    if example is not None:
        lines.append("  -H 'Content-Type: application/json'")
        lines.append(f"  -d '{json.dumps(example, ensure_ascii=False)}'")
    return " \\\n".join(lines)
