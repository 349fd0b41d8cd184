"""One commit's events as one element of a conversation's Redis list: their compact JSON (`encode_event`), one
event a line, raw-deflated with a preset dictionary of typical stored-event text.

A ten-turn conversation's events take about a third of their JSON size this way. Each element starts with a
format marker (`Z1`); a new dictionary takes a new marker, and elements written under an old one keep
decoding. An element that starts with `{` is one plain JSON event, as kefu stored them before batches.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence

from bot.errors import SessionStoreError
from bot.events import Event, decode_event, encode_event

MARKER = b"Z1"
MAX_INFLATED = 16 * 1024 * 1024  # a batch is a few KB; anything this large is not one kefu wrote

# Least common text first: deflate reaches the end of its dictionary with the shortest distances. NEVER edit
# these bytes: every stored `Z1` element needs exactly them (tests pin a `Z1` element); a better dictionary
# takes a new marker and keeps this one for decoding.
_ZDICT_PARTS = (
    '{"event":"turn_failed","timestamp":17,"stage":"","error":""}',
    '{"event":"safety_blocked","timestamp":17,"check":"","stage":"input","category":"","reason":"","action":"',
    'block","rule":""}{"event":"risk_flagged","timestamp":17,"check":"","category":"","reason":""}',
    '{"event":"handed_off","timestamp":17,"reason":"requested:request_human"}{"event":"handed_back","timestamp":17}',
    '{"event":"operator","timestamp":17,"operator":"","text":""}',
    '{"event":"feedback","timestamp":17,"rating":1,"kind":"csat","reply_id":"","comment":""}',
    '{"event":"suggestion","timestamp":17,"suggestion":"","outcome":"accepted","sent":"","source":"faq",',
    '"operator":""}{"event":"slot_rejected","timestamp":17,"name":"","value":"","reason":""}',
    '{"event":"recommendation_rated","timestamp":17,"item":"faq_","context":"","satisfied":true,"signal":"',
    'next_question"}{"event":"recommendation_clicked","timestamp":17,"item":"faq_","context":"hot","rank":1}',
    '"template":"kefu:utter_handoff","template":"kefu:utter_ask_rephrase","template":"kefu:utter_default",',
    '"template":"handoff_queue","template":"generated","template":"did_you_mean","template":"utter_no_answer"',
    '"name":"action_default_fallback","name":"action_default_ask_rephrase","name":"action_handoff",',
    '"name":"action_listen","name":"action_offer_human","name":"action_clarify","name":"action_cancel_form"',
    '"intent":"nlu_fallback","intent":"out_of_scope","intent":"request_human","intent":"affirm","intent":"deny"',
    ',"intent":"inform","intent":"cancel","intent":"bot_challenge","buttons":[{"title":"","payload":"/',
    '"entities":[{"name":"order_id","value":"","start":0,"end":10,"confidence":1.0,"extractor":"regex"}]',
    '"custom":{"card":{"kind":"order","title":"","fields":[{"label":"","value":""}]}},"image":"',
    # what customers and a shop's answers say most, in both languages
    "您好！请问您的订单号是多少？抱歉，我没太明白您的意思，能换个说法吗？退货退款发货快递付款发票收货地址修改",
    "一般几天能到？运费多久到账？付款失败显示未付款怎么办？支持哪些支付方式：微信支付、支付宝、信用卡。",
    "7天无理由退换货，质量问题，申请，商品，个工作日内，取消订单怎么申请？可以吗？客服，谢谢，再见！",
    "Sorry, I did not understand. Could you rephrase that? Your order has been shipped and will arrive within ",
    "business days. You can request a refund, a return or an invoice in the app; we accept credit cards. ",
    "Hello! How do I change my address? What is your return policy? How long does a refund take? Thank you! ",
    "Do you offer free shipping? Which payment methods do you accept? How long does delivery take? ",
    # in almost every turn
    '{"event":"form_activated","timestamp":17,"name":"order_form"}',
    '{"event":"slot","timestamp":17,"name":"requested_slot","value":null}',
    '{"event":"form_completed","timestamp":17,"name":"order_form"}',
    '{"event":"session_started","timestamp":17}',
    '{"event":"slot","timestamp":17,"name":"language","value":"zh"}',
    '{"event":"recommended","timestamp":17,"context":"hot","items":["faq_ship_01_zh","faq_ret_01_zh"],',
    '"language":"en"}{"event":"action","timestamp":17,"name":"utter_greet","policy":"rules"}',
    '{"event":"action","timestamp":17,"name":"action_answer","policy":"rules"}',
    '{"event":"bot","timestamp":17,"text":"","template":"utter_goodbye","reply_id":""}',
    '{"event":"bot","timestamp":17,"text":"","template":"knowledge:faq","fact_ids":["faq_',
    '_zh"],"reply_id":"","quick_replies":[{"title":"？","payload":"？"},{"title":"?","payload":"?"},{"title":"',
    '{"event":"user","timestamp":17,"text":"","message_id":"","channel":"widget","nlu":{"intent":"greet",',
    '"confidence":0.9,"ranking":[{"name":"greet","confidence":0.9},{"name":"thank","confidence":0.0},{"name":',
    '"goodbye","confidence":0.00}],"language":"en"}}\n{"event":"user","timestamp":17,"text":"","channel":',
    '"rest","nlu":{"intent":"ask_","confidence":0.9,"ranking":[{"name":"ask_","confidence":0.0}],"language":"zh"}}\n',
)
ZDICT = "".join(_ZDICT_PARTS).encode()


def encode_batch(events: Iterable[Event]) -> bytes:
    """The events of one commit (at least one) as one stored element."""
    text = "\n".join(encode_event(e) for e in events)  # JSON escapes newlines inside strings: a line is an event
    if not text:
        raise ValueError("a batch holds at least one event")
    return MARKER + deflate(text.encode(), ZDICT)


def decode_element(raw: bytes | str) -> list[Event]:
    """The events of one stored element: a batch, or one plain JSON event of the format before batches."""
    data = raw.encode() if isinstance(raw, str) else raw
    if data.startswith(b"{"):
        return [_decode_line(data)]
    if data.startswith(MARKER):
        return [_decode_line(line) for line in inflate(data[len(MARKER) :], ZDICT).split(b"\n")]
    raise SessionStoreError(
        f"a stored session element starts with {data[:2]!r}, which this kefu version does not read (written by a "
        "newer kefu, or corrupt)"
    )


def decode_elements(raw: Sequence[bytes | str]) -> list[Event]:
    """The events of consecutive stored elements, in order."""
    return [event for element in raw for event in decode_element(element)]


def deflate(data: bytes, zdict: bytes) -> bytes:
    """Raw deflate (no zlib header or checksum: a few bytes less for each element) with a preset dictionary."""
    # zlib's default level: level 9 gives the same bytes on a turn's few KB, in twice the time
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY, zdict)
    return compressor.compress(data) + compressor.flush()


def inflate(data: bytes, zdict: bytes) -> bytes:
    """What `deflate` compressed; SessionStoreError when the bytes are truncated, corrupt or too large."""
    decompressor = zlib.decompressobj(-15, zdict)
    try:
        text = decompressor.decompress(data, MAX_INFLATED)
    except zlib.error as err:
        raise SessionStoreError(f"stored session data is corrupt and cannot be decompressed: {err}") from err
    if not decompressor.eof or decompressor.unused_data or decompressor.unconsumed_tail:
        raise SessionStoreError("stored session data is corrupt: truncated, too large, or followed by stray bytes")
    return text


def _decode_line(line: bytes) -> Event:
    # A damaged element can fail anywhere in parsing; the store reports it as its own error, not a traceback
    # from json or a dataclass constructor. The message leaves the text out: it may hold what a customer wrote.
    try:
        return decode_event(line)
    except SessionStoreError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise SessionStoreError(f"a stored session event is corrupt: {type(err).__name__}: {err}") from err
