"""Shared by the fuzz tests: hypothesis settings sized for CI, and strategies for hostile text and JSON.

CI runs a fixed, derandomized set of examples so it never flakes. To hunt for new crashes locally, scale the
example counts and draw fresh random examples: `KEFU_FUZZ_SCALE=20 .venv/bin/pytest tests/fuzz`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

T = TypeVar("T")
E = TypeVar("E", bound=BaseException)

SCALE = float(os.environ.get("KEFU_FUZZ_SCALE", "1"))


def fuzz(max_examples: int) -> settings:
    """Settings for one fuzz test: `max_examples` (times KEFU_FUZZ_SCALE), no deadline (the cores are shared),
    no example database written into the tree, derandomized unless a scale is asked for."""
    return settings(
        max_examples=max(1, round(max_examples * SCALE)),
        deadline=None,
        database=None,
        derandomize="KEFU_FUZZ_SCALE" not in os.environ,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
        print_blob=True,
    )


# What people paste and what breaks naive code: bidi and zero-width controls, combining marks, full-width
# forms, emoji sequences, CJK, NUL and other C0/C1 controls, line and paragraph separators, BOM, non-BMP.
NASTY_PIECES = (
    "\u200f", "\u200e", "\u202e", "\u2066", "\u200b", "\u200d", "\ufeff", "\u2028", "\u2029", "\x00", "\x1b",
    "\x7f", "\x85", "\u0301", "\u0e49", "Ｓ０１２３４５６７８", "ＳＯ１２３４５６７８", "，", "。", "😀", "👨‍👩‍👧",
    "🇨🇳", "\U0010ffff", "你好", "退货", "订单", "SO12345678", "X1 Pro", "¥199", "$5", "13800138000",
    "a@b.cn", "明天下午3点", "2024-02-30", "99999999999999999999", "-0", "1e309", "[a](b)", "{", "}", "]]>",
    "<xml>", "&amp;", "%s", "{0}", "\\", '"', "'", "\t", "\n", "\r\n", " ", "ﷺ", "𒐫", "Ⅻ", "١٢٣", "ß", "İ",
)  # fmt: skip

nasty_text = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(NASTY_PIECES) | st.text(max_size=5), max_size=30).map("".join),
    st.tuples(st.sampled_from(NASTY_PIECES), st.integers(1, 100_000)).map(lambda pair: pair[0] * pair[1]),
)


def _nested(depth: int, kind: str) -> str:
    return ("[" * depth + "]" * depth) if kind == "list" else ('{"a":' * depth + "1" + "}" * depth)


# JSON nested deeper than Python's recursion limit: json.loads raises RecursionError, not JSONDecodeError.
deep_json = st.tuples(st.integers(1_000, 2_000), st.sampled_from(["list", "dict"])).map(lambda p: _nested(*p))

# Any JSON value, NaN and Infinity included (Python's json reads and writes them)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


# A lone surrogate is valid JSON (`"\ud800"`) but no UTF-8 store or channel can carry it.
lone_surrogate_json = st.sampled_from(['"\\ud800"', '"a\\udfff"', '"\\ud83d"', '"x\\udc00y"'])


def attempt(call: Callable[[], T], refusal: type[E]) -> T | E:
    """What `call` returns, or the `refusal` it raises (any other exception propagates and fails the test)."""
    try:
        return call()
    except refusal as err:
        return err
