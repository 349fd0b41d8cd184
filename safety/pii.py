"""Find and mask personal data: Chinese ID and mobile numbers, bank cards, e-mails, US SSNs and phones.

Every kind is a pattern plus a validator (check digit, Luhn, number plan), because a bare digit pattern
would also mask order numbers and prices, which the dialogue needs. Masks keep a hint ("138****5678") so
a customer can still recognise which number was meant.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass

from bot.events import Session
from bot.types import Fact, SafetyVerdict, Stage

# Digits and ASCII letters on either side mean the number is part of something longer (an order id such
# as "SO13812345678", a longer digit run); Chinese characters around a number are fine.
_B = r"(?<![0-9A-Za-z])"
_E = r"(?![0-9A-Za-z])"

# Chinese input methods in full-width mode type "１３８１２３４５６７８"; map full-width ASCII (and the
# ideographic space) to plain ASCII one character for one, so offsets still index the original text.
_HALF_WIDTH = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK_CHARS = "10X98765432"
# Business numbers (China 400, toll-free 800/8xx) are published by companies, not personal data.
_SERVICE_PREFIXES = ("400", "800", "833", "844", "855", "866", "877", "888")


@dataclass(frozen=True, slots=True)
class PiiMatch:
    """One masked span of the original text; the value itself is deliberately not kept."""

    kind: str  # cn_id, cn_mobile, bank_card, email, us_ssn, phone
    start: int
    end: int
    masked: str


def id_check_char(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character of a mainland resident ID (GB 11643-1999)."""
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK_CHARS[total % 11]


def luhn_valid(digits: str) -> bool:
    """True when the digit string passes the Luhn checksum (ISO/IEC 7812)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _digits(text: str) -> str:
    return "".join(ch for ch in text if "0" <= ch <= "9")


# --- validators: the pattern found a candidate; is it really that kind? ---


def _valid_id(raw: str) -> bool:
    compact = re.sub(r"[ \t-]", "", raw).upper()
    return id_check_char(compact[:17]) == compact[17]


def _valid_card(raw: str) -> bool:
    digits = _digits(raw)
    if not 13 <= len(digits) <= 19 or (len(digits) == 18 and _LOOKS_LIKE_ID.fullmatch(digits)):
        return False
    # Issuer ranges (Amex/JCB/Diners 3, Visa 4, Mastercard 51-55 and 2221-2720, UnionPay/Discover 6) keep
    # Luhn's 1-in-10 false positives away from order numbers that start with a year such as "2026...".
    issuer_ok = digits[0] in "3456" or 2221 <= int(digits[:4]) <= 2720
    return issuer_ok and luhn_valid(digits)


def _valid_ssn(raw: str) -> bool:
    area, group, serial = raw.split("-")
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _valid_phone(raw: str) -> bool:
    digits = _digits(raw)
    if raw.startswith("+") and not raw.startswith("+1"):
        return 8 <= len(digits) <= 15  # E.164 allows at most 15 digits
    return not digits[-10:].startswith(_SERVICE_PREFIXES)


# --- masks: keep a hint, never enough to reconstruct the value ---


def _mask_id(raw: str) -> str:
    compact = re.sub(r"[ \t-]", "", raw).upper()
    return compact[:3] + "*" * 11 + compact[-4:]


def _mask_mobile(raw: str) -> str:
    digits = _digits(raw)
    lead = re.match(r"(?:\+|00)?86[ \t-]?", raw) if len(digits) > 11 else None
    national = digits[-11:]
    return f"{lead.group(0) if lead else ''}{national[:3]}****{national[-4:]}"


def _mask_card(raw: str) -> str:
    return "**** **** **** " + _digits(raw)[-4:]


def _mask_email(raw: str) -> str:
    local, _, domain = raw.partition("@")
    return f"{local[0]}***@{domain}"


def _mask_ssn(raw: str) -> str:
    return "***-**-" + raw[-4:]


def _mask_phone(raw: str) -> str:
    """Star every digit but the last four, keeping the layout and an international "+CC" prefix."""
    keep_lead = re.match(r"\+\d{1,3}", raw)
    lead_len = keep_lead.end() if keep_lead else 0
    digit_positions = [i for i, ch in enumerate(raw) if ch.isdigit() and i >= lead_len]
    hidden = set(digit_positions[:-4])
    return "".join("*" if i in hidden else ch for i, ch in enumerate(raw))


@dataclass(frozen=True, slots=True)
class _Detector:
    kind: str
    pattern: re.Pattern[str]
    valid: Callable[[str], bool]
    mask: Callable[[str], str]
    # prefixes to try when the match is not valid, given the text that follows it
    shorter: Callable[[str, str], Iterable[str]] = lambda raw, after: ()


def _card_prefixes(raw: str, after: str) -> Iterable[str]:
    """A grouped card may run into an expiry or a date ("4111 1111 1111 1111 08/27"): drop trailing groups.
    Only then: a wrong number with a valid-looking beginning ("6230-6101-4392-8914-47") stays unmasked."""
    if not re.match(r"[/.:-]\d", after):
        return
    ends = [m.end() for m in re.finditer(r"\d+", raw)][:-1]
    for end in reversed(ends):
        if len(_digits(raw[:end])) >= 13:
            yield raw[:end]


_SEP = r"[ \t-]?"  # people write "138 1234 5678" and "110105-19491231-002X"
_EMAIL = r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
_DATE = r"(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
_LOOKS_LIKE_ID = re.compile(rf"[1-9]\d{{5}}{_DATE}\d{{4}}")  # an ID with a typo is no bank card
_CN_ID = rf"{_B}[1-9]\d{{5}}{_SEP}{_DATE}{_SEP}\d{{3}}[\dXx]{_E}"
_CN_MOBILE = rf"(?<![0-9A-Za-z+])(?:(?:\+|00)?86{_SEP})?1[3-9]\d(?:{_SEP}\d{{4}}){{2}}{_E}"
_US_SSN = rf"{_B}\d{{3}}-\d{{2}}-\d{{4}}{_E}"
_CARD = rf"{_B}(?:\d{{4,6}}(?:[ -]\d{{1,6}}){{1,4}}|\d{{13,19}}){_E}"
_PHONE = (
    r"(?<![0-9A-Za-z+])(?:"
    r"(?:\+?1[ .-]?)?(?:\([2-9]\d{2}\)[ -]?|[2-9]\d{2}[ .-])[2-9]\d{2}[ .-]\d{4}"  # NANP with separators
    r"|\+1[2-9]\d{9}"  # NANP in E.164 form
    r"|\+(?!1|86[ -]?1[3-9])\d{1,3}(?:[ -]?\d{1,4}){2,5}"  # elsewhere: only with an explicit "+"
    r")" + _E
)
_DETECTORS: tuple[_Detector, ...] = (  # earlier wins when two kinds claim the same span
    _Detector("email", re.compile(_EMAIL, re.ASCII), lambda raw: True, _mask_email),
    _Detector("cn_id", re.compile(_CN_ID, re.ASCII), _valid_id, _mask_id),
    _Detector("cn_mobile", re.compile(_CN_MOBILE, re.ASCII), lambda raw: True, _mask_mobile),
    _Detector("us_ssn", re.compile(_US_SSN, re.ASCII), _valid_ssn, _mask_ssn),
    _Detector("bank_card", re.compile(_CARD, re.ASCII), _valid_card, _mask_card, _card_prefixes),
    _Detector("phone", re.compile(_PHONE, re.ASCII), _valid_phone, _mask_phone),
)
KINDS: tuple[str, ...] = tuple(d.kind for d in _DETECTORS)


def find_pii(text: str, *, kinds: Collection[str] | None = None, keep: Iterable[str] = ()) -> list[PiiMatch]:
    """All personal data in `text`, non-overlapping, in text order.

    `kinds` restricts the search (default: all of `KINDS`); `keep` lists public values (a company hotline,
    a support address) that are never masked.
    """
    kept = {_normalize(v) for v in keep}
    text = text.translate(_HALF_WIDTH)
    candidates: list[tuple[int, int, int, _Detector]] = []
    for rank, det in enumerate(_DETECTORS):
        if kinds is not None and det.kind not in kinds:
            continue
        for m in det.pattern.finditer(text):
            tries = (m.group(0), *det.shorter(m.group(0), text[m.end() : m.end() + 2]))
            raw = next((r for r in tries if det.valid(r)), None)
            if raw is not None and _normalize(raw) not in kept:
                candidates.append((m.start(), m.start() + len(raw), rank, det))
    # The longest span wins (a card number contains mobile-looking digits), then the earlier detector.
    candidates.sort(key=lambda c: (c[0] - c[1], c[2], c[0]))
    taken: list[PiiMatch] = []
    for start, end, _, det in candidates:
        if all(end <= t.start or start >= t.end for t in taken):
            taken.append(PiiMatch(det.kind, start, end, det.mask(text[start:end])))
    return sorted(taken, key=lambda t: t.start)


def _normalize(value: str) -> str:
    value = value.translate(_HALF_WIDTH)
    return value.strip().lower() if "@" in value else _digits(value)


def mask_pii(
    text: str, *, kinds: Collection[str] | None = None, keep: Iterable[str] = ()
) -> tuple[str, list[PiiMatch]]:
    """Return `text` with personal data masked, and what was masked (offsets refer to the input)."""
    matches = find_pii(text, kinds=kinds, keep=keep)
    parts: list[str] = []
    cursor = 0
    for match in matches:
        parts += (text[cursor : match.start], match.masked)
        cursor = match.end
    parts.append(text[cursor:])
    return "".join(parts), matches


class PiiMasker:
    """SafetyCheck that masks personal data on input and output; it never blocks."""

    name: str = "pii"

    def __init__(self, *, kinds: Collection[str] | None = None, keep: Iterable[str] = ()) -> None:
        unknown = set(kinds or ()) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown PII kinds {sorted(unknown)}; known kinds: {', '.join(KINDS)}")
        self.kinds = frozenset(kinds) if kinds is not None else None
        self.keep = tuple(keep)

    def warm_up(self) -> None:
        """Nothing to load: the patterns compile at import."""

    def check(
        self, text: str, *, stage: Stage, session: Session | None = None, facts: Sequence[Fact] = ()
    ) -> SafetyVerdict:
        masked, matches = mask_pii(text, kinds=self.kinds, keep=self.keep)
        if not matches:
            return SafetyVerdict(check=self.name, stage=stage, allowed=True)
        found = sorted({m.kind for m in matches}, key=KINDS.index)
        return SafetyVerdict(
            check=self.name,
            stage=stage,
            allowed=True,
            category="pii",
            reason="masked " + ", ".join(found),
            redacted=masked,
        )
