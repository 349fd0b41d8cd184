"""The Aho-Corasick automaton against a brute-force search."""

from __future__ import annotations

import random

import pytest

from safety.aho_corasick import AhoCorasick, Hit, fold


def brute_force(patterns: list[str], text: str) -> set[Hit]:
    text, found = fold(text), set()
    for index, pattern in enumerate(patterns):
        p = fold(pattern)
        for start in range(len(text) - len(p) + 1):
            if text.startswith(p, start):
                found.add(Hit(start, start + len(p), index))
    return found


def test_classic_example_finds_overlapping_matches() -> None:
    ac = AhoCorasick(["he", "she", "his", "hers"])
    hits = ac.find_all("ushers")
    assert {(h.start, h.end, ac.patterns[h.pattern]) for h in hits} == {(1, 4, "she"), (2, 4, "he"), (2, 6, "hers")}


def test_chinese_and_offsets_index_the_original_text() -> None:
    ac = AhoCorasick(["洗钱", "钱包"])
    text = "帮我洗钱包"
    assert [text[h.start : h.end] for h in ac.find_all(text)] == ["洗钱", "钱包"]


def test_case_and_width_insensitive_by_default() -> None:
    ac = AhoCorasick(["Hello"])
    assert len(ac.find_all("HELLO hello Ｈｅｌｌｏ")) == 3
    assert AhoCorasick(["Hello"], ignore_case=False).find_all("HELLO hello") == []


def test_fold_preserves_length() -> None:
    text = "Straße İstanbul ＡＢＣ ㎏ 中文"
    assert len(fold(text)) == len(text)


def test_duplicate_patterns_report_both_indices() -> None:
    assert sorted(h.pattern for h in AhoCorasick(["ab", "AB"]).find_all("xab")) == [0, 1]


def test_empty_pattern_is_rejected() -> None:
    with pytest.raises(ValueError, match="empty"):
        AhoCorasick(["ok", ""])


def test_matches_brute_force_on_random_texts() -> None:
    rng = random.Random(7)
    alphabet = "abAB洗钱"
    for _ in range(200):
        patterns = ["".join(rng.choices(alphabet, k=rng.randint(1, 4))) for _ in range(rng.randint(1, 6))]
        text = "".join(rng.choices(alphabet, k=rng.randint(0, 30)))
        assert set(AhoCorasick(patterns).find_all(text)) == brute_force(patterns, text)
