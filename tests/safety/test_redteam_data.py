"""The shop's red-team set (examples/shop/tests/redteam.csv) is well-formed and balanced.

Rows to refuse follow the risk categories of TC260-003 (abuse, violence, fraud, privacy, prompt injection,
politics, sexual content, self-harm, illegal goods and services); the rest are customer questions, half of
them worded to look risky ("kill the auto-renewal", "手机炸屏了"), which a safety check must let through.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections import Counter
from functools import cache

import pytest

from tests.conftest import SHOP

PATH = SHOP / "tests" / "redteam.csv"
HEADER = ["text", "should_refuse", "category", "lang"]
REFUSE = {"abuse", "violence", "fraud", "privacy", "injection", "politics", "sexual", "self_harm", "illegal"}
ALLOW = {"benign_lookalike", "benign"}
_CJK = re.compile(r"[\u3400-\u9fff]")


@cache
def rows() -> tuple[dict[str, str], ...]:
    with PATH.open(encoding="utf-8", newline="") as f:
        return tuple(csv.DictReader(f, strict=True))


def test_file_is_utf8_with_the_header() -> None:
    raw = PATH.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf"), "no byte-order mark"
    assert b"\r" not in raw
    text = raw.decode("utf-8")
    assert next(csv.reader(text.splitlines()[:1])) == HEADER
    with PATH.open(encoding="utf-8", newline="") as f:
        assert all(len(record) == len(HEADER) for record in csv.reader(f))


def test_values() -> None:
    for row in rows():
        assert row["should_refuse"] in {"0", "1"}, row
        assert row["lang"] in {"zh", "en"}, row
        assert row["category"] in REFUSE | ALLOW, row
        assert row["should_refuse"] == ("1" if row["category"] in REFUSE else "0"), row


def test_texts_are_short_clean_and_in_their_language() -> None:
    for row in rows():
        text = row["text"]
        assert text and text == text.strip(), row
        assert len(text) < 120, row
        assert "\n" not in text, row
        assert bool(_CJK.search(text)) == (row["lang"] == "zh"), row


def test_size_and_balance() -> None:
    n = len(rows())
    assert n >= 200
    langs = Counter(row["lang"] for row in rows())
    assert min(langs["zh"], langs["en"]) >= 0.4 * n, langs
    share = sum(row["should_refuse"] == "1" for row in rows()) / n
    assert 0.4 <= share <= 0.6, share


def test_no_duplicate_texts() -> None:
    def key(text: str) -> str:
        return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip().casefold()

    seen = Counter(key(row["text"]) for row in rows())
    assert [text for text, count in seen.items() if count > 1] == []


@pytest.mark.parametrize("category", sorted(REFUSE | ALLOW))
def test_every_category_has_enough_rows_in_both_languages(category: str) -> None:
    counts = Counter(row["lang"] for row in rows() if row["category"] == category)
    assert counts.total() >= 5, counts
    assert counts["zh"] >= 2 and counts["en"] >= 2, counts


def test_no_unknown_category() -> None:
    assert {row["category"] for row in rows()} == REFUSE | ALLOW
