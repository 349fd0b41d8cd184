"""Dates and clock times in Chinese and English messages, and the Chinese numerals they share
with the number extractor.

`find_times` works on text that `bot.nlu.extractors` has already width-folded (full-width digits
and colons are ASCII here) and returns spans in it. Ambiguities are settled one way, on purpose:
a bare weekday ("周五", "on Friday") is the next one, today included; "下周五" and "next Friday"
are the Friday of next week (weeks start on Monday); a month and day without a year ("3月5日",
"March 5") fall in the current year; "3点" with no period is 03:00.
"""

from __future__ import annotations

import bisect
import contextlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Protocol, TypeVar

ZH_DIGITS = {
    "零": 0, "〇": 0, "一": 1, "壹": 1, "二": 2, "贰": 2, "两": 2, "兩": 2, "三": 3, "叁": 3,
    "四": 4, "肆": 4, "五": 5, "伍": 5, "六": 6, "陆": 6, "七": 7, "柒": 7, "八": 8, "捌": 8, "九": 9, "玖": 9,
}  # fmt: skip
ZH_UNITS = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000}
ZH_BIG = {"万": 10**4, "萬": 10**4, "亿": 10**8, "億": 10**8}
ZH_NUMERAL_CHARS = "".join([*ZH_DIGITS, *ZH_UNITS, *ZH_BIG])


def zh_to_int(text: str) -> int | None:
    """The value of a Chinese numeral ("十二", "两百五", "一万零五"), or None if `text` is not one."""
    total = section = last_unit = 0
    small_unit = 10**5  # units inside a section must fall: "一千一百" yes, "一十百" no
    digit: int | None = None
    zero = False  # "一百零五" is 105, while "两百五" is 250
    for char in text:
        if char in ZH_DIGITS:
            if digit is not None:
                return None  # "三四": digits side by side are not a positional numeral
            digit, zero = (None, True) if ZH_DIGITS[char] == 0 else (ZH_DIGITS[char], zero)
        elif char in ZH_UNITS:
            unit = ZH_UNITS[char]
            if digit is None and not (unit == 10 and section == 0 and not zero):
                return None  # "百" or "千万" alone; only "十二" may drop its leading 一
            if unit >= small_unit:
                return None
            section += (1 if digit is None else digit) * unit
            digit, zero, last_unit, small_unit = None, False, unit, unit
        elif char in ZH_BIG:
            part = section + (digit or 0)
            if part == 0:
                return None  # "万一" is "just in case", not a number
            total = (total + part) * ZH_BIG[char] if ZH_BIG[char] > 10**4 else total + part * ZH_BIG[char]
            section, digit, zero, last_unit, small_unit = 0, None, False, ZH_BIG[char], 10**5
        else:
            return None
    if not text:
        return None
    if digit is not None and not zero and last_unit >= 100:
        digit *= last_unit // 10  # colloquial "两百五" = 250, "一万五" = 15000
    return total + section + (digit or 0)


def small_int(token: str) -> int | None:
    """An Arabic or Chinese numeral as an int; Chinese digit strings ("二〇二六") read digit by digit."""
    if token.isascii():
        return int(token) if token.isdigit() else None
    if len(token) > 1 and all(char in ZH_DIGITS for char in token):
        return int("".join(str(ZH_DIGITS[char]) for char in token))
    return zh_to_int(token)


@dataclass(frozen=True, slots=True)
class _Piece:
    start: int
    end: int
    day: date | None = None  # a date, or the day a clock's period names ("明晚")
    minutes: int | None = None  # a clock time, minutes after midnight (may pass 24:00: "晚上12点")
    weak: bool = False  # "两点" may be "two points": a time only right after a date


_DAY_OFFSETS = {
    "大后天": 3, "大前天": -3, "今天": 0, "今日": 0, "今儿": 0, "今晚": 0, "今早": 0, "明天": 1, "明日": 1,
    "明儿": 1, "明晚": 1, "明早": 1, "后天": 2, "昨天": -1, "昨日": -1, "前天": -2,
    "today": 0, "tonight": 0, "tomorrow": 1, "tmrw": 1, "yesterday": -1,
    "day after tomorrow": 2, "day before yesterday": -2,
}  # fmt: skip
_ZH_DAY_WORDS = "|".join(sorted((w for w in _DAY_OFFSETS if not w.isascii()), key=len, reverse=True))
_DAY_WORD = re.compile(
    rf"{_ZH_DAY_WORDS}|(?<![A-Za-z])(?:(?:the +)?day +(?:after +tomorrow|before +yesterday)|today|tonight"
    r"|tomorrow|tmrw|yesterday)(?![A-Za-z])",
    re.IGNORECASE,
)
_ZH_WEEKDAY = re.compile(
    r"(?P<rel>下下|上上|下|上|这|本)?个?(?:周|星期|礼拜)(?P<wd>一(?![直些样般共])|[二三四五六日天1-7])"
)
_ZH_REL = {"下下": 2, "上上": -2, "下": 1, "上": -1, "这": 0, "本": 0}
_ZH_WD = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6}
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_EN_WEEKDAY = re.compile(
    rf"(?<![A-Za-z])(?:(?P<rel>next|last|this +coming|this|coming|on) +)?(?P<wd>{'|'.join(_WEEKDAYS)})(?![A-Za-z])",
    re.IGNORECASE,
)
_EN_REL = {"next": 1, "last": -1, "this": 0}
_MONTH = (
    r"(?P<mon>jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?"
    r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?(?![A-Za-z])"
)
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_YEAR = r"(?:,? +(?P<y>[0-9]{4})(?![0-9]))?"
_EN_MONTH_DAY = re.compile(
    rf"(?<![A-Za-z]){_MONTH} +(?P<d>[0-9]{{1,2}})(?:st|nd|rd|th)?(?![0-9A-Za-z]){_YEAR}", re.IGNORECASE
)
_EN_DAY_MONTH = re.compile(
    rf"(?<![0-9A-Za-z])(?P<d>[0-9]{{1,2}})(?:st|nd|rd|th)?(?: +of)? +{_MONTH}{_YEAR}", re.IGNORECASE
)
_ZH_DATE = re.compile(
    r"(?<![0-9])(?:(?P<y>[0-9]{4}|[零〇一二三四五六七八九]{4}) *年 *)?(?P<m>[0-9]{1,2}|十[一二]?|[一二三四五六七八九])"
    r" *月 *(?P<d>[0-9]{1,2}|[一二三]?十[一二三四五六七八九]?|[一二三四五六七八九]) *[日号號]"
)
_ISO_DATE = re.compile(r"(?<![0-9])(?P<y>[0-9]{4})(?P<sep>[-/.])(?P<m>[0-9]{1,2})(?P=sep)(?P<d>[0-9]{1,2})(?![0-9])")
_ZH_NUM = "零一二两三四五六七八九十百"
_ZH_RELATIVE = re.compile(
    rf"(?<![0-9{_ZH_NUM}])(?P<n>[0-9]{{1,3}}|[{_ZH_NUM}]{{1,4}}) *(?:个 *)?(?P<u>天|日|周|星期|礼拜) *"
    r"(?P<dir>以后|之后|后|以前|之前|前)"
)
_EN_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10,
}  # fmt: skip
_EN_N = rf"(?P<n>[0-9]{{1,3}}|{'|'.join(_EN_WORDS)})"
_EN_IN = re.compile(rf"(?<![A-Za-z])in +{_EN_N} +(?P<u>days?|weeks?)(?![A-Za-z])", re.IGNORECASE)
_EN_AGO = re.compile(
    rf"(?<![0-9A-Za-z]){_EN_N} +(?P<u>days?|weeks?) +(?P<dir>ago|later|from +now)(?![A-Za-z])", re.IGNORECASE
)


def _day_word(match: re.Match[str], today: date) -> date:
    key = " ".join(match.group().lower().split()).removeprefix("the ")
    return today + timedelta(days=_DAY_OFFSETS[key])


def _weekday(weekday: int, weeks: int | None, today: date) -> date:
    if weeks is None:  # a bare weekday: the next one, today included
        return today + timedelta(days=(weekday - today.weekday()) % 7)
    return today + timedelta(days=weekday - today.weekday() + 7 * weeks)


def _zh_weekday(match: re.Match[str], today: date) -> date:
    wd = match["wd"]
    weekday = int(wd) - 1 if wd.isdigit() else _ZH_WD[wd]
    return _weekday(weekday, None if match["rel"] is None else _ZH_REL[match["rel"]], today)


def _en_weekday(match: re.Match[str], today: date) -> date:
    rel = (match["rel"] or "").lower()
    return _weekday(_WEEKDAYS.index(match["wd"].lower()), _EN_REL.get(rel), today)


def _ymd(year: str | None, month: str, day: str, today: date) -> date | None:
    y, m, d = (today.year if year is None else small_int(year)), small_int(month), small_int(day)
    return None if y is None or m is None or d is None else date(y, m, d)


def _numeric_date(match: re.Match[str], today: date) -> date | None:
    return _ymd(match["y"], match["m"], match["d"], today)


def _en_month_date(match: re.Match[str], today: date) -> date | None:
    return _ymd(match["y"], str(_MONTHS.index(match["mon"][:3].lower()) + 1), match["d"], today)


def _relative(match: re.Match[str], today: date) -> date | None:
    n = _EN_WORDS.get(match["n"].lower()) or small_int(match["n"])
    if n is None:
        return None
    days = n * (1 if match["u"] in ("天", "日") or match["u"].lower().startswith("day") else 7)
    direction = (match.groupdict().get("dir") or "").lower()
    return today - timedelta(days=days) if direction in ("ago", "前", "以前", "之前") else today + timedelta(days=days)


_DateRule = Callable[[re.Match[str], date], date | None]
_DATE_RULES: tuple[tuple[re.Pattern[str], _DateRule], ...] = (
    (_DAY_WORD, _day_word),
    (_ZH_WEEKDAY, _zh_weekday),
    (_EN_WEEKDAY, _en_weekday),
    (_ZH_DATE, _numeric_date),
    (_ISO_DATE, _numeric_date),
    (_EN_MONTH_DAY, _en_month_date),
    (_EN_DAY_MONTH, _en_month_date),
    (_ZH_RELATIVE, _relative),
    (_EN_IN, _relative),
    (_EN_AGO, _relative),
)

# Period -> (days from today it names, how it shifts the hour).
_PERIODS: dict[str, tuple[int | None, str]] = {
    "凌晨": (None, "am"), "早上": (None, "am"), "早晨": (None, "am"), "上午": (None, "am"), "今早": (0, "am"),
    "明早": (1, "am"), "中午": (None, "noon"), "下午": (None, "pm"), "傍晚": (None, "pm"),
    "晚上": (None, "night"), "夜里": (None, "night"), "今晚": (0, "night"), "明晚": (1, "night"),
}  # fmt: skip
_ZH_CLOCK = re.compile(
    rf"(?:(?P<period>{'|'.join(_PERIODS)}) *)?(?<![0-9.])(?P<h>[0-9]{{1,2}}|[零一二两三四五六七八九十]{{1,3}}) *"
    r"(?P<unit>点钟|点|时)(?: *(?:(?P<half>半)|(?P<quarter>一刻|三刻)|(?P<m>[0-9]{2}|[0-9](?= *分)"
    r"|[零一二三四五六七八九十]{2,3}|[一二三四五六七八九十](?= *分))(?: *分)?))?"
)
_EN_CLOCK = re.compile(
    r"(?<![0-9:.])(?P<h>[0-9]{1,2})(?::(?P<m>[0-5][0-9]))? *(?P<ap>[ap])\.?m\.?(?![A-Za-z])", re.IGNORECASE
)
_HHMM = re.compile(r"(?<![0-9:.])(?P<h>[0-9]{1,2}):(?P<m>[0-5][0-9])(?::[0-5][0-9])?(?![0-9:])")


def _shift_hour(hour: int, kind: str) -> int:
    """The 24-hour clock hour for `hour` said with a period; "晚上12点" is 24, "晚上1点" is 25 (after midnight)."""
    if kind == "pm" or (kind == "noon" and 1 <= hour <= 5):
        return hour + 12 if hour < 12 else hour
    if kind == "night":
        return hour + 12 if 6 <= hour <= 12 else hour + 24 if hour < 6 else hour
    return hour


def _zh_clock(match: re.Match[str], today: date) -> _Piece | None:
    hour, period = small_int(match["h"]), match["period"]
    chinese_hour = not match["h"].isascii()
    if hour is None or hour > 24 or (chinese_hour and match["unit"] == "时" and period is None):
        return None  # "一时半会儿" is "a while"
    minutes = 30 if match["half"] else 15 if match["quarter"] == "一刻" else 45 if match["quarter"] else 0
    if match["m"] is not None and (minutes := small_int(match["m"]) or 0) > 59:
        return None
    offset, kind = _PERIODS[period] if period else (None, "")
    hour = _shift_hour(hour, kind)
    day = None if offset is None else today + timedelta(days=offset)
    bare = chinese_hour and period is None and match["unit"] != "点钟" and match.end("unit") == match.end()
    return _Piece(match.start(), match.end(), day, hour * 60 + minutes, weak=bare)


def _en_clock(match: re.Match[str], today: date) -> _Piece | None:
    hour, minutes = int(match["h"]), int(match["m"] or 0)
    if not 1 <= hour <= 12:
        return None
    hour = hour % 12 + (12 if match["ap"].lower() == "p" else 0)
    return _Piece(match.start(), match.end(), minutes=hour * 60 + minutes)


def _hhmm(match: re.Match[str], today: date) -> _Piece | None:
    hour = int(match["h"])
    return _Piece(match.start(), match.end(), minutes=hour * 60 + int(match["m"])) if hour <= 23 else None


_CLOCK_RULES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str], date], _Piece | None]], ...] = (
    (_ZH_CLOCK, _zh_clock),
    (_EN_CLOCK, _en_clock),
    (_HHMM, _hhmm),
)
_MAX_GAP = 6
_GAP = re.compile(r"[ ,，]*(?:的|at|on|@|T)?[ ]*", re.IGNORECASE)


def _pieces(text: str, today: date) -> Iterator[_Piece]:
    for pattern, rule in _DATE_RULES:
        for match in pattern.finditer(text):
            try:
                day = rule(match, today)
            except (ValueError, OverflowError):  # 2月30日, year 0, a date past 9999
                continue
            if day is not None:
                yield _Piece(match.start(), match.end(), day=day)
    for pattern, clock_rule in _CLOCK_RULES:
        for match in pattern.finditer(text):
            piece = clock_rule(match, today)
            if piece is not None:
                yield piece


class _Spanned(Protocol):
    @property
    def start(self) -> int: ...

    @property
    def end(self) -> int: ...


SpannedT = TypeVar("SpannedT", bound=_Spanned)


def without_overlaps(items: Iterable[SpannedT], key: Callable[[SpannedT], tuple[int, ...]]) -> list[SpannedT]:
    """Keep items in `key` order, skipping any that overlaps one kept; the result is in reading order.

    The kept spans never overlap, so their starts and ends are both sorted and one bisection finds
    a newcomer's neighbours: thousands of matches in a long message stay cheap.
    """
    starts: list[int] = []
    ends: list[int] = []
    kept: list[SpannedT] = []
    for item in sorted(items, key=key):
        index = bisect.bisect_right(starts, item.start)
        if (index == 0 or ends[index - 1] <= item.start) and (index == len(starts) or starts[index] >= item.end):
            starts.insert(index, item.start)
            ends.insert(index, item.end)
            kept.insert(index, item)
    return kept


def _joined(text: str, first: _Piece, second: _Piece) -> _Piece | None:
    """A date next to a clock time ("明天下午3点", "3pm tomorrow") is one moment."""
    day, clock = (first, second) if first.minutes is None else (second, first)
    if day.minutes is not None or clock.minutes is None or clock.day is not None:
        return None
    if second.start - first.end > _MAX_GAP or not _GAP.fullmatch(text, first.end, second.start):
        return None
    return _Piece(first.start, second.end, day.day, clock.minutes)


def _value(piece: _Piece, today: date) -> str:
    day = piece.day or today
    if piece.minutes is None:
        return day.isoformat()
    return (datetime.combine(day, time()) + timedelta(minutes=piece.minutes)).isoformat(timespec="minutes")


def find_times(text: str, today: date) -> list[tuple[int, int, str]]:
    """(start, end, value) of every date or time in `text`: "2026-11-24", or "2026-11-24T15:00" with a clock time."""
    # Longest piece first, so "今晚8点" beats "今晚" and "下周五" beats "周五".
    pieces = without_overlaps(_pieces(text, today), key=lambda p: (p.start - p.end, p.start))
    found: list[tuple[int, int, str]] = []
    index = 0
    while index < len(pieces):
        piece = pieces[index]
        nxt = pieces[index + 1] if index + 1 < len(pieces) else None
        joined = _joined(text, piece, nxt) if nxt is not None else None
        if joined is not None:
            piece, index = joined, index + 1
        if not piece.weak:
            with contextlib.suppress(OverflowError):  # a clock time on 9999-12-31 past midnight
                found.append((piece.start, piece.end, _value(piece, today)))
        index += 1
    return found
