"""Rule-based entities as customers type them, in the spirit of Rasa's Duckling: numbers, money,
dates and times, phone numbers, order ids and e-mail addresses, in Chinese and English.

Matching runs on a width-folded copy of the text ("１３８" becomes "138", "：" becomes ":") that
has exactly the length of the original, so every offset is an offset into what the customer
typed. Each pattern forbids, just before a match, the characters its leading run is made of, so
the regex engine never rescans a run it has already rejected: long messages stay linear.
Overlapping matches are resolved once: the longest span wins, then the more specific dimension
("199元" is money, not also a number; a phone number's digits are not a number).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import MAX_PREC, Context, Decimal, InvalidOperation
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.errors import ConfigError
from bot.nlu.dates import ZH_DIGITS, ZH_NUMERAL_CHARS, find_times, without_overlaps, zh_to_int
from bot.nlu.features import HAN
from bot.types import Entity

RULE_DIMENSIONS = ("number", "amount_of_money", "time", "phone_number", "order_id", "email")
EXTRACTOR = "rules"
# Ties between equally long spans go to the more specific dimension.
_RANK = {"email": 0, "order_id": 1, "phone_number": 2, "time": 3, "amount_of_money": 4, "number": 5}

# The full-width comma separates clauses in Chinese; folding it to "," would make "3，456" read as 3456.
_KEEP_WIDE = frozenset("，")


@functools.lru_cache(maxsize=8192)
def _fold_char(char: str) -> str:
    folded = unicodedata.normalize("NFKC", char)
    return folded if len(folded) == 1 and char not in _KEEP_WIDE else char


def fold_width(text: str) -> str:
    """NFKC, character by character, keeping only one-to-one mappings: the result has `text`'s length."""
    return text if text.isascii() else "".join(map(_fold_char, text))


# Exact arithmetic whatever the length: the default context would round a 30-digit order number.
_EXACT = Context(prec=MAX_PREC)


def _canonical(value: Decimal) -> str:
    """Plain decimal notation without trailing zeros: 3, 2.5, 10000."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


_ARABIC = r"(?:[0-9]{1,3}(?:,[0-9]{3})+(?![0-9])|[0-9]+)(?:\.[0-9]+)?"
# "千" before 克/米/瓦/卡 is a unit prefix ("3千克" is 3 kg), not a multiplier.
_MULTIPLIER = r"(?:[百千]?[万亿]|百|千(?![克米瓦卡]))"
_ZH_RUN = f"[{ZH_NUMERAL_CHARS}]+"
_NUMBER_TOKEN = f"(?:(?<![0-9A-Za-z_]){_ARABIC}{_MULTIPLIER}?|(?<![{ZH_NUMERAL_CHARS}]){_ZH_RUN})"
_MULTIPLIERS = {"百": 2, "千": 3, "万": 4, "亿": 8}  # powers of ten
_NUMBER = re.compile(_NUMBER_TOKEN)
_HAN = re.compile(f"[{HAN}]")
# A lone Chinese digit is a number only before a measure word or standing apart ("三个", "三"),
# never inside a word ("查一下", "一直", "统一").
_MEASURE_WORDS = frozenset("个件台只本张次天日号位条双套箱瓶盒份部斤克米年周岁项单笔页层楼块元毛角分秒寸码人")


def parse_number(token: str) -> Decimal | None:
    """The value of "3", "1,299.5", "2.5万", "十二" or "两百"; None for anything else."""
    if token[:1].isdigit():
        digits = token.rstrip("".join(_MULTIPLIERS))
        try:
            value = Decimal(digits.replace(",", ""))
        except InvalidOperation:
            return None
        return _EXACT.scaleb(value, sum(_MULTIPLIERS[char] for char in token[len(digits) :]))
    if not (token[0] in ZH_DIGITS or token[0] in "十拾"):
        return None  # "千万" means "by all means", "万一" "just in case"
    integer = zh_to_int(token)
    return None if integer is None else Decimal(integer)


@dataclass(frozen=True, slots=True)
class _Span:
    name: str
    value: str
    start: int
    end: int


def _lone_digit_is_word(text: str, start: int, end: int) -> bool:
    after = text[end : end + 1]
    if after in _MEASURE_WORDS:
        return False
    return bool(_HAN.fullmatch(text[start - 1 : start]) or _HAN.fullmatch(after))


def _numbers(text: str) -> Iterator[_Span]:
    for match in _NUMBER.finditer(text):
        token = match.group()
        if len(token) == 1 and token in ZH_DIGITS and _lone_digit_is_word(text, match.start(), match.end()):
            continue
        value = parse_number(token)
        if value is not None:
            yield _Span("number", _canonical(value), match.start(), match.end())


_CURRENCIES = {
    "¥": "CNY", "RMB": "CNY", "CNY": "CNY", "人民币": "CNY", "元": "CNY", "圆": "CNY", "块": "CNY", "块钱": "CNY",
    "YUAN": "CNY", "KUAI": "CNY",
    "$": "USD", "US$": "USD", "USD": "USD", "美元": "USD", "美金": "USD", "DOLLAR": "USD", "DOLLARS": "USD",
    "BUCKS": "USD",
    "€": "EUR", "EUR": "EUR", "欧元": "EUR", "EURO": "EUR", "EUROS": "EUR",
}  # fmt: skip
_MONEY_BEFORE = re.compile(
    rf"(?<![A-Za-z$])(?P<cur>US\$|\$|¥|€|RMB|CNY|USD|EUR|人民币) *(?P<num>{_ARABIC}{_MULTIPLIER}?)", re.IGNORECASE
)
_MONEY_AFTER = re.compile(
    rf"(?P<num>{_NUMBER_TOKEN}) *(?:(?P<yuan>块钱|块|元|圆)"
    r"(?:(?P<jiao>[0-9一二两三四五六七八九])(?:[毛角]钱?|(?![0-9\w])|(?=[吧呢啊呀吗嘛的了])))?"
    r"|(?P<cur>人民币|美元|美金|欧元|RMB|CNY|USD|EUR|yuan|kuai|dollars?|bucks|euros?)(?![A-Za-z])"
    r"|(?P<dime>[毛角])钱?)",
    re.IGNORECASE,
)


def _money(text: str) -> Iterator[_Span]:
    for match in _MONEY_BEFORE.finditer(text):
        amount = parse_number(match["num"])
        if amount is not None:
            yield _money_span(match, amount, _CURRENCIES[match["cur"].upper()])
    for match in _MONEY_AFTER.finditer(text):
        amount = parse_number(match["num"])
        if amount is None:
            continue
        if match["dime"]:  # "5毛" is half a yuan
            amount = _EXACT.scaleb(amount, -1)
        if match["jiao"]:  # "5块5" is 5.50
            amount = _EXACT.add(amount, _EXACT.scaleb(parse_number(match["jiao"]) or Decimal(0), -1))
        yield _money_span(match, amount, _CURRENCIES[(match["cur"] or match["yuan"] or "元").upper()])


def _money_span(match: re.Match[str], amount: Decimal, currency: str) -> _Span:
    return _Span("amount_of_money", f"{amount:.2f} {currency}", match.start(), match.end())


_CN_MOBILE = re.compile(
    r"(?<![0-9A-Za-z+])(?:(?P<cc>\+86|0086|86) *(?:- *)?)?(?P<n>1[3-9][0-9](?:[ -]?[0-9]{4}){2})(?![0-9])"
)
_CN_LANDLINE = re.compile(
    r"(?<![0-9A-Za-z(./-])(?:\((?P<area>0[1-9][0-9]{1,2})\) *|(?P<area2>0[1-9][0-9]{1,2})[ -])"
    r"(?P<n>[0-9]{3,4}[ -]?[0-9]{4})(?![0-9])"
)
_NANP = re.compile(
    r"(?<![0-9A-Za-z+])(?:(?P<cc>\+?1)[ .-]?)?(?:\((?P<area>[2-9][0-9]{2})\) *|(?P<area2>[2-9][0-9]{2})[ .-])"
    r"(?P<n>[2-9][0-9]{2}[ .-][0-9]{4})(?![0-9])"
)
_NOT_DIGIT = re.compile(r"[^0-9]")


def _phones(text: str) -> Iterator[_Span]:
    for pattern, country in ((_CN_MOBILE, "86"), (_CN_LANDLINE, ""), (_NANP, "1")):
        for match in pattern.finditer(text):
            groups = match.groupdict()
            national = _NOT_DIGIT.sub("", (groups.get("area") or groups.get("area2") or "") + match["n"])
            prefix = f"+{country}" if groups.get("cc") else ""
            yield _Span("phone_number", prefix + national, match.start(), match.end())


# QQ, WeChat (wx/vx) and "tel" prefixes glued to digits name contacts, not orders.
_ORDER_CODE = re.compile(
    r"(?<![0-9A-Za-z_])(?!(?:qq|wx|vx|tel)[0-9])[A-Za-z]{2,4}[0-9]{6,20}(?![0-9A-Za-z_])", re.IGNORECASE
)
_ORDER_NUMBER = re.compile(
    r"(?:订单编号|订单号码|订单号|订单|单号|(?<![A-Za-z])order(?: +(?:id|number|no\.?))?|#)"
    r" *(?:: *)?(?:(?:是|为|is) *)?(?:# *)?(?P<id>[0-9]{12,20})(?![0-9])",
    re.IGNORECASE,
)


def _order_ids(text: str, custom: re.Pattern[str] | None) -> Iterator[_Span]:
    if custom is not None:
        for match in custom.finditer(text):
            if match.end() > match.start():
                yield _Span("order_id", match.group().upper(), match.start(), match.end())
        return
    for match in _ORDER_CODE.finditer(text):
        yield _Span("order_id", match.group().upper(), match.start(), match.end())
    for match in _ORDER_NUMBER.finditer(text):
        yield _Span("order_id", match["id"], match.start("id"), match.end("id"))


_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![A-Za-z0-9-])"
)


def _emails(text: str) -> Iterator[_Span]:
    for match in _EMAIL.finditer(text):
        yield _Span("email", match.group().lower(), match.start(), match.end())


def _times(text: str, today: date) -> Iterator[_Span]:
    for start, end, value in find_times(text, today):
        yield _Span("time", value, start, end)


class RuleExtractor:
    """Duckling-style entities for the dimensions asked for; `extract` is pure and thread-safe.

    Only the requested dimensions compete for a span, as in Duckling: without "time", the
    digits of "3月5日" are numbers. `order_id_pattern` replaces the default order-id rules with
    one regex whose whole match is the id. Relative dates are computed in `timezone`.
    """

    def __init__(
        self,
        dimensions: Collection[str] = RULE_DIMENSIONS,
        *,
        order_id_pattern: str | None = None,
        timezone: str = "Asia/Shanghai",
    ) -> None:
        if isinstance(dimensions, str):
            raise ConfigError(f"rule dimensions must be a list of names, not the string {dimensions!r}")
        unknown = sorted(set(dimensions) - set(RULE_DIMENSIONS))
        if unknown:
            raise ConfigError(f"unknown rule dimension(s) {unknown}; the valid ones are {', '.join(RULE_DIMENSIONS)}")
        self.dimensions = tuple(name for name in RULE_DIMENSIONS if name in set(dimensions))
        self._order_id = _compile_order_id(order_id_pattern)
        try:
            self._zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ConfigError(f"unknown time zone {timezone!r}; use an IANA name such as 'Asia/Shanghai'") from err
        self._finders: dict[str, Callable[[str, date], Iterator[_Span]]] = {
            "number": lambda text, _: _numbers(text),
            "amount_of_money": lambda text, _: _money(text),
            "time": _times,
            "phone_number": lambda text, _: _phones(text),
            "order_id": lambda text, _: _order_ids(text, self._order_id),
            "email": lambda text, _: _emails(text),
        }

    def extract(self, text: str, *, now: datetime | None = None) -> tuple[Entity, ...]:
        """Entities in `text`, without overlaps, in reading order; relative dates count from `now`."""
        if not text:
            return ()
        folded, today = fold_width(text), self._today(now)
        spans = [span for name in self.dimensions for span in self._finders[name](folded, today)]
        return tuple(
            Entity(span.name, span.value, span.start, span.end, 1.0, EXTRACTOR)
            for span in without_overlaps(spans, key=lambda s: (s.start - s.end, _RANK[s.name], s.start))
        )

    def _today(self, now: datetime | None) -> date:
        if now is None:
            return datetime.now(self._zone).date()
        return now.astimezone(self._zone).date() if now.tzinfo is not None else now.date()


def _compile_order_id(pattern: str | None) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as err:
        raise ConfigError(f"order_id_pattern {pattern!r} is not a valid regular expression ({err})") from err
