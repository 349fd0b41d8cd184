"""PII masking on 2,000 generated bilingual texts: recall per kind, and nothing masked among the look-alikes.

The generator (`safety.pii_samples`) computes check characters and Luhn digits from the standards, not with
`safety.pii`, so a bug there cannot make the test data agree with it. The set includes the cases that once
slipped through: 17-digit cards in groups of four ("6222 0212 3456 7890 3"), and 18-digit ID numbers with a
wrong check character that pass Luhn (they must not be masked as bank cards).
"""

from __future__ import annotations

import re
from functools import cache

import pytest

from safety.pii import KINDS, find_pii
from safety.pii_samples import (
    NEGATIVE_KINDS,
    PROBES,
    Evaluation,
    Probe,
    Sample,
    evaluate,
    full_width,
    generate,
    id_check,
    passes_luhn,
)

N, SEED = 2000, 20261124
_HALF = {cp + 0xFEE0: cp for cp in range(0x21, 0x7F)} | {0x3000: 0x20}


def plain(value: str) -> str:
    return value.translate(_HALF)


def digits(value: str) -> str:
    return re.sub(r"\D", "", plain(value))


@cache
def samples() -> tuple[Sample, ...]:
    return tuple(generate(N, SEED))


@cache
def clean() -> tuple[Sample, ...]:
    return samples()


@cache
def clean_evaluation() -> Evaluation:
    return evaluate(samples())


# --- the generator itself ---


def test_generator_is_deterministic_and_varied() -> None:
    assert generate(200, 5) == generate(200, 5)
    assert generate(200, 5) != generate(200, 6)
    texts = [s.text for s in samples()]
    assert len(set(texts)) > 0.95 * len(texts)
    langs = {s.lang for s in samples()}
    assert langs == {"zh", "en"}
    assert {k for s in samples() for k, _, _ in s.spans} == set(KINDS)
    assert {k for s in samples() for k, _, _ in s.decoys} == set(NEGATIVE_KINDS)
    assert 0.15 < sum(s.negative for s in samples()) / N < 0.35
    assert any(any(0xFF10 <= ord(c) <= 0xFF19 for c in s.text) for s in samples())  # full-width digits


def test_generated_values_are_what_they_claim() -> None:
    """Independent of safety.pii: IDs have a correct check character, cards pass Luhn, look-alikes fail."""
    for s in samples():
        for kind, start, end in s.spans:
            value = plain(s.text[start:end])
            number = digits(value)
            if kind == "cn_id":
                compact = re.sub(r"[ -]", "", value).upper()
                assert len(compact) == 18 and id_check(compact[:17]) == compact[17], value
            elif kind == "bank_card":
                assert 16 <= len(number) <= 19 and number[0] in "456" and passes_luhn(number), value
            elif kind == "cn_mobile":
                assert re.fullmatch(r"1[3-9]\d{9}", number[-11:]), value
            elif kind == "email":
                assert re.fullmatch(r"[\w.+-]+@[\w-]+(\.[\w-]+)+", value, re.ASCII), value
            elif kind == "us_ssn":
                area, group, serial = value.split("-")
                assert area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"
            else:
                assert len(number[-10:]) == 10 and number[-10] in "23456789", value
        for kind, start, end in s.decoys:
            value = plain(s.text[start:end])
            if kind == "bad_id":
                compact = re.sub(r"[ -]", "", value).upper()
                assert id_check(compact[:17]) != compact[17], value
            elif kind == "bad_card":
                assert not passes_luhn(digits(value)), value


def test_spans_index_the_text() -> None:
    for s in samples():
        for kind, start, end in s.spans + s.decoys:
            assert 0 <= start < end <= len(s.text), (s, kind)
            assert s.text[start:end].strip() == s.text[start:end]


def test_full_width_round_trip() -> None:
    assert full_width("138 1234-5678") == "１３８　１２３４－５６７８"
    assert plain(full_width("11010519491231002X")) == "11010519491231002X"


# --- recall ---


@pytest.mark.parametrize("kind", KINDS)
def test_recall_per_kind(kind: str) -> None:
    ev = clean_evaluation()
    assert ev.total[kind] > 150
    misses = [(s.text, s.text[a:b]) for s, (k, a, b), _ in ev.missed if k == kind]
    assert ev.recall(kind) >= 0.99, misses[:5]


def test_recall_overall_and_per_language() -> None:
    ev = clean_evaluation()
    assert ev.recall() >= 0.995
    for lang in ("zh", "en"):
        sub = evaluate(s for s in clean() if s.lang == lang)
        assert sub.recall() >= 0.99, lang


def test_seventeen_digit_cards_in_groups_of_four() -> None:
    cases = [s for s in samples() if any(k == "bank_card" and len(digits(s.text[a:b])) == 17 for k, a, b in s.spans)]
    assert cases  # the generated set does contain such cards
    ev = evaluate(cases)
    assert ev.recall("bank_card") == 1.0
    assert ev.false_positives == []


# --- false positives ---


def test_nothing_masked_in_look_alike_texts() -> None:
    negatives = [s for s in clean() if s.negative]
    assert len(negatives) > 300
    flagged = [(s.text, [s.text[m.start : m.end] for m in find_pii(s.text)]) for s in negatives if find_pii(s.text)]
    assert flagged == []


@pytest.mark.parametrize("decoy_kind", NEGATIVE_KINDS)
def test_no_look_alike_is_masked(decoy_kind: str) -> None:
    ev = clean_evaluation()
    assert sum(k == decoy_kind for s in clean() for k, _, _ in s.decoys) > 20
    hits = [(s.text, m.kind) for s, m, k in ev.false_positives if k == decoy_kind]
    assert hits == []


def test_no_unlabelled_false_positives_and_precision() -> None:
    ev = clean_evaluation()
    assert [(s.text, m) for s, m, _ in ev.false_positives] == []
    assert ev.precision == 1.0


def test_wrong_check_ids_that_pass_luhn_are_not_masked() -> None:
    cases = [s for s in samples() for k, a, b in s.decoys if k == "bad_id" and passes_luhn(digits(s.text[a:b]))]
    assert cases
    assert all(find_pii(s.text) == [] for s in cases)


# --- hand-made probes ---


@pytest.mark.parametrize("probe", PROBES, ids=[p.name for p in PROBES])
def test_probe(probe: Probe) -> None:
    ev = evaluate([probe.sample])
    assert ev.recall() == 1.0
    assert ev.false_positives == []
