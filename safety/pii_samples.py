"""Generated sentences with personal data at known offsets, and look-alikes that must stay readable.

`generate(n, seed)` is deterministic for a seed. A positive sample carries one or two values of the kinds
that `safety.pii` masks (`KINDS`), written the way customers write them in Chinese and English chat: compact or
grouped ("138 1234 5678", "6222 0212 3456 7890 123"), with country prefixes, and in Chinese sometimes in
full-width digits. A negative sample carries only look-alikes: order ids, prices, dates, tracking numbers,
ID numbers with a wrong check character, card numbers failing Luhn, 400/800 service numbers and quantities.
Positive samples may carry look-alikes too, so precision is measured in context.

Check characters and Luhn digits are computed here from the published definitions, not with the functions
of `safety.pii`, so that a wrong implementation there cannot make its own test data agree with it.
`evaluate` scores any finder against the samples: a value is recalled when a match of its kind covers it.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from safety.pii import KINDS, PiiMatch, find_pii

Span = tuple[str, int, int]  # (kind, start, end) in the sample's text

NEGATIVE_KINDS: tuple[str, ...] = (
    "order_id",
    "price",
    "date",
    "tracking",
    "bad_id",
    "bad_card",
    "service_number",
    "quantity",
)


@dataclass(frozen=True, slots=True)
class Sample:
    """One generated text: `spans` are the personal data in it, `decoys` the look-alikes (never masked)."""

    text: str
    spans: tuple[Span, ...] = ()
    lang: str = "zh"
    decoys: tuple[Span, ...] = ()

    @property
    def negative(self) -> bool:
        return not self.spans


# --- check digits, from the standards ---


def id_check(first17: str) -> str:
    """GB 11643-1999: weights 2^(17-i) mod 11, check value (12 - sum mod 11) mod 11, 10 written X."""
    total = sum(int(d) * (2 ** (17 - i) % 11) for i, d in enumerate(first17))
    value = (12 - total % 11) % 11
    return "X" if value == 10 else str(value)


def luhn_digit(partial: str) -> str:
    """The digit that, appended to `partial`, makes it pass the Luhn check (ISO/IEC 7812-1 annex B)."""
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = int(ch) * (2 if i % 2 == 0 else 1)  # doubled from the right, the check digit not yet there
        total += d - 9 if d > 9 else d
    return str((10 - total % 10) % 10)


def passes_luhn(digits: str) -> bool:
    return luhn_digit(digits[:-1]) == digits[-1]


_FULL = {cp: cp + 0xFEE0 for cp in range(0x21, 0x7F)} | {0x20: 0x3000}


def full_width(text: str) -> str:
    """ "１３８ １２３４" for "138 1234": what a Chinese input method types in full-width mode."""
    return text.translate(_FULL)


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _grouped(number: str, sep: str, size: int = 4) -> str:
    return sep.join(number[i : i + size] for i in range(0, len(number), size))


# --- values of each kind ---

# County-level codes of GB/T 2260 (Beijing Dongcheng ... Urumqi Tianshan): the region part of an ID number.
_REGIONS = (
    "110101", "110105", "110108", "120101", "130102", "140105", "150102", "210102", "220102", "230103",
    "310101", "310104", "310115", "320102", "320506", "330106", "340104", "350203", "360102", "370202",
    "410105", "420106", "430104", "440106", "440304", "440305", "450103", "460106", "500103", "510104",
    "510107", "520102", "530102", "540102", "610113", "620102", "630102", "640104", "650102",
)  # fmt: skip
_MOBILE_PREFIXES = (
    "130", "131", "132", "133", "134", "135", "136", "137", "138", "139", "145", "147", "150", "151", "152",
    "153", "155", "156", "157", "158", "159", "166", "170", "173", "175", "176", "177", "178", "180", "181",
    "182", "183", "184", "185", "186", "187", "188", "189", "191", "193", "195", "198", "199",
)  # fmt: skip
_UNIONPAY_BINS = ("622202", "622848", "621700", "622588", "621483", "623061", "622700", "621226", "625803")
_AREA_CODES = (
    "201", "202", "206", "212", "213", "305", "310", "312", "404", "415", "425", "469", "503", "512", "602",
    "617", "619", "646", "650", "702", "713", "718", "720", "917",
)  # fmt: skip
_SERVICE = ("400", "800", "833", "844", "855", "866", "877", "888")


def _birth_date(rng: random.Random) -> str:
    start, end = dt.date(1950, 1, 1).toordinal(), dt.date(2008, 12, 31).toordinal()
    return dt.date.fromordinal(rng.randint(start, end)).strftime("%Y%m%d")


def id_first17(rng: random.Random) -> str:
    return rng.choice(_REGIONS) + _birth_date(rng) + f"{rng.randint(1, 999):03d}"


def _layout_id(number: str, rng: random.Random) -> str:
    r = rng.random()
    if number.endswith("X") and rng.random() < 0.3:
        number = number[:-1] + "x"
    if r < 0.15:
        return f"{number[:6]} {number[6:14]} {number[14:]}"
    if r < 0.25:
        return f"{number[:6]}-{number[6:14]}-{number[14:]}"
    return number


def cn_id(rng: random.Random) -> str:
    """A mainland resident ID number with a correct check character, compact or as 6-8-4 groups."""
    first17 = id_first17(rng)
    return _layout_id(first17 + id_check(first17), rng)


def bad_cn_id(rng: random.Random) -> str:
    """An ID-shaped number whose check character is wrong: a typo, not an ID number."""
    first17 = id_first17(rng)
    wrong = rng.choice([c for c in "0123456789X" if c != id_check(first17)])
    return _layout_id(first17 + wrong, rng)


def cn_mobile(rng: random.Random) -> str:
    """A mainland mobile number 1[3-9]x: compact, 3-4-4 with spaces or dashes, or with +86 / 0086 / 86."""
    number = rng.choice(_MOBILE_PREFIXES) + _digits(rng, 8)
    r = rng.random()
    if r < 0.45:
        return number
    if r < 0.6:
        return f"{number[:3]} {number[3:7]} {number[7:]}"
    if r < 0.75:
        return f"{number[:3]}-{number[3:7]}-{number[7:]}"
    prefix = rng.choice(("+86 ", "+86", "+86-", "0086 ", "86 ", "0086"))
    body = number if rng.random() < 0.5 else f"{number[:3]} {number[3:7]} {number[7:]}"
    return prefix + body


def _card_digits(rng: random.Random) -> str:
    """Digits without the check digit: UnionPay 62 (16-19 digits), Visa 4 (16), Mastercard 51-55 (16)."""
    r = rng.random()
    if r < 0.5:
        length = rng.choice((16, 16, 17, 18, 19, 19))
        head = rng.choice(_UNIONPAY_BINS)
    elif r < 0.75:
        length, head = 16, "4" + _digits(rng, 5)
    else:
        length, head = 16, f"5{rng.randint(1, 5)}" + _digits(rng, 4)
    return head + _digits(rng, length - 1 - len(head))


def _layout_card(number: str, rng: random.Random) -> str:
    r = rng.random()
    if r < 0.4:
        return number
    return _grouped(number, " " if r < 0.8 else "-")


def _id_like(number: str) -> bool:
    """An 18-digit number that is also a valid ID number is ambiguous; the generator avoids it."""
    return (
        len(number) == 18
        and re.fullmatch(r"[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{4}", number)
        is not None
        and id_check(number[:17]) == number[17]
    )


def bank_card(rng: random.Random) -> str:
    """A card number that passes Luhn, compact or in groups of four (spaces or dashes)."""
    while True:
        partial = _card_digits(rng)
        number = partial + luhn_digit(partial)
        if not _id_like(number):
            return _layout_card(number, rng)


def bad_bank_card(rng: random.Random) -> str:
    """A card-shaped number whose last digit fails Luhn."""
    while True:
        partial = _card_digits(rng)
        good = luhn_digit(partial)
        number = partial + rng.choice([d for d in "0123456789" if d != good])
        if not _id_like(number):
            return _layout_card(number, rng)


_GIVEN = ("wei", "fang", "na", "min", "jing", "lei", "yang", "jie", "tao", "xin", "hui", "qiang")
_FAMILY = ("zhang", "wang", "li", "liu", "chen", "yang", "zhao", "huang", "zhou", "wu")
_EN_FIRST = ("jane", "john", "emily", "michael", "sarah", "david", "olivia", "james", "anna", "tom")
_EN_LAST = ("doe", "smith", "brown", "lee", "garcia", "miller", "wilson", "taylor", "nguyen", "clark")
_DOMAINS = (
    "qq.com", "163.com", "126.com", "foxmail.com", "sina.com", "sina.com.cn", "gmail.com", "outlook.com",
    "yahoo.com", "hotmail.com", "icloud.com", "mail.example.co.uk", "corp.example.com", "example.org",
)  # fmt: skip


def email(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.2:
        local = str(rng.randint(10000, 3999999999))  # QQ numbers
    elif r < 0.5:
        local = rng.choice(_FAMILY) + rng.choice(("", ".", "_")) + rng.choice(_GIVEN)
        if rng.random() < 0.4:
            local += str(rng.randint(1, 2008))
    else:
        first, last = rng.choice(_EN_FIRST), rng.choice(_EN_LAST)
        local = rng.choice((f"{first}.{last}", f"{first[0]}{last}", f"{first}_{last}", f"{first}{last}"))
        if rng.random() < 0.2:
            local += "+shop"
    if rng.random() < 0.1:
        local = local.capitalize()
    return f"{local}@{rng.choice(_DOMAINS)}"


def us_ssn(rng: random.Random) -> str:
    """AAA-GG-SSSS with an area ever issued (not 000, 666 or 9xx), group not 00, serial not 0000."""
    area = rng.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def us_phone(rng: random.Random) -> str:
    """A North American number in the usual layouts: (415) 555-0134, 415-555-0134, +1 415 555 0134 ..."""
    area, exchange, line = rng.choice(_AREA_CODES), str(rng.randint(200, 999)), _digits(rng, 4)
    layouts = (
        f"({area}) {exchange}-{line}",
        f"({area}){exchange}-{line}",
        f"{area}-{exchange}-{line}",
        f"{area}.{exchange}.{line}",
        f"{area} {exchange} {line}",
        f"+1 {area} {exchange} {line}",
        f"+1-{area}-{exchange}-{line}",
        f"+1 ({area}) {exchange}-{line}",
        f"+1{area}{exchange}{line}",
        f"1-{area}-{exchange}-{line}",
    )
    return rng.choice(layouts)


# --- look-alikes ---


def order_id(rng: random.Random) -> str:
    number = "SO" + _digits(rng, 8)
    return number if rng.random() < 0.85 else rng.choice(("SO " + number[2:], "so" + number[2:], "#" + number))


def price(rng: random.Random) -> str:
    amount = rng.choice((rng.randint(9, 99), rng.randint(100, 999), rng.randint(1000, 19999)))
    cents = rng.choice(("", ".00", ".99", f".{rng.randint(0, 99):02d}"))
    grouped = f"{amount:,}" if amount >= 1000 and rng.random() < 0.5 else str(amount)
    return rng.choice(
        (f"¥{amount}{cents}", f"￥{grouped}{cents}", f"{amount}元", f"${grouped}{cents}", f"RMB {grouped}{cents}")
    )


def date(rng: random.Random) -> str:
    day = dt.date(2026, 1, 1) + dt.timedelta(days=rng.randint(0, 729))
    hour, minute = rng.randint(0, 23), rng.randint(0, 59)
    return rng.choice(
        (
            day.isoformat(),
            day.strftime("%Y/%m/%d"),
            f"{day.year}年{day.month}月{day.day}日",
            day.strftime("%m/%d/%Y"),
            day.strftime("%b %d, %Y"),
            f"{day.isoformat()} {hour:02d}:{minute:02d}",
            day.strftime("%Y%m%d"),
        )
    )


def tracking(rng: random.Random) -> str:
    """Courier numbers: SF Express, YTO, JD, EMS, ZTO (all digits, starts with 7), UPS."""
    return rng.choice(
        (
            "SF" + _digits(rng, 13),
            "SF" + _digits(rng, 12),
            "YT" + _digits(rng, 13),
            "JDVA" + _digits(rng, 11),
            "E" + rng.choice("ACEM") + _digits(rng, 9) + "CN",
            "7" + rng.choice("35") + _digits(rng, 12),
            "1Z" + "".join(rng.choice("0123456789ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(16)),
        )
    )


def service_number(rng: random.Random) -> str:
    """Published business numbers: China 400/800 hotlines, North American toll-free, carrier short codes."""
    a, b = _digits(rng, 3), _digits(rng, 4)
    toll_free = rng.choice(_SERVICE[1:])
    return rng.choice(
        (
            f"400-{a}-{b}",
            f"400 {a} {b}",
            f"400{a}{b}",
            f"4008-{a}-{b[:3]}",
            f"800-{a}-{b}",
            f"1-{toll_free}-{rng.randint(200, 999)}-{b}",
            f"({toll_free}) {rng.randint(200, 999)}-{b}",
            f"+1 {toll_free} {rng.randint(200, 999)} {b}",
            rng.choice(("95588", "95533", "10086", "10010", "12315")),
        )
    )


def quantity(rng: random.Random) -> str:
    n = rng.randint(1, 20)
    return rng.choice(
        (
            f"{n}件",
            f"x{n}",
            f"{n}个",
            f"qty {n}",
            f"{rng.randint(1, 9)},000 pcs",
            rng.choice(("128GB", "256GB", "512GB", "1TB")),
            f"{rng.choice((4500, 5000, 5500))}mAh",
            f"{rng.choice((3, 6, 12, 24))}期免息",
            f"{rng.randint(2, 300)}台",
        )
    )


_VALUES: dict[str, Callable[[random.Random], str]] = {
    "cn_id": cn_id,
    "cn_mobile": cn_mobile,
    "bank_card": bank_card,
    "email": email,
    "us_ssn": us_ssn,
    "phone": us_phone,
    "order_id": order_id,
    "price": price,
    "date": date,
    "tracking": tracking,
    "bad_id": bad_cn_id,
    "bad_card": bad_bank_card,
    "service_number": service_number,
    "quantity": quantity,
}
# Kinds whose digits a Chinese input method in full-width mode may type (e-mail addresses stay half-width).
_FULL_WIDTH_OK = frozenset({"cn_id", "cn_mobile", "bank_card", "bad_id", "bad_card", "order_id", "service_number"})

# --- sentences: "{kind}" is replaced by a value of that kind ---

_POSITIVE: dict[str, dict[str, tuple[str, ...]]] = {
    "zh": {
        "cn_id": (
            "我的身份证号是{cn_id}，麻烦帮我实名认证",
            "跨境订单清关需要身份证：{cn_id}",
            "收件人王芳，身份证{cn_id}，订单{order_id}",
            "身份证号码{cn_id}，之前填错了一位，请更新",
            "实名信息：张伟 {cn_id}",
            "{cn_id}这是我老公的身份证，用他的名字开发票",
            "开个人发票要身份证吗？我的是{cn_id}",
            "身份证 {cn_id} 手机 {cn_mobile}",
        ),
        "cn_mobile": (
            "我的手机号{cn_mobile}，到了打电话",
            "收货电话改成{cn_mobile}，订单{order_id}",
            "联系电话：{cn_mobile}",
            "快递员打{cn_mobile}就行，{date}之前都在家",
            "麻烦回电{cn_mobile}，谢谢！",
            "换绑手机号为{cn_mobile}，旧号停用了",
            "{cn_mobile}是我的号码，验证码一直收不到",
            "收件人李娜 {cn_mobile} 上海市浦东新区",
            "手机{cn_mobile}，邮箱{email}",
        ),
        "bank_card": (
            "退款请退到我的银行卡{bank_card}",
            "卡号{bank_card}，扣了{price}但订单没生成",
            "我用{bank_card}这张卡付的款",
            "银行卡号：{bank_card}（招商银行）",
            "退到尾号不对，应该是{bank_card}",
            "信用卡{bank_card}被扣了两次{price}",
            "请把{price}退回{bank_card}",
        ),
        "email": (
            "电子发票发到{email}就行",
            "我的邮箱是{email}，请发确认邮件",
            "邮箱：{email}",
            "账号绑定的邮箱{email}登录不了",
            "发票抬头个人，邮箱{email}，订单{order_id}",
            "联系我{email}或者{cn_mobile}",
        ),
        "us_ssn": (
            "美国税表需要SSN：{us_ssn}",
            "我的社会安全号是{us_ssn}",
            "SSN {us_ssn}，帮我更新账户资料",
            "填税务信息，社安号{us_ssn}",
        ),
        "phone": (
            "美国收件人电话{phone}",
            "寄到旧金山，联系电话：{phone}",
            "我在美国，号码是{phone}，请回电",
            "收件人 Jane Doe，{phone}，订单{order_id}",
        ),
    },
    "en": {
        "cn_id": (
            "My Chinese ID number is {cn_id} for customs clearance",
            "ID card: {cn_id}, name Zhang Wei",
            "Customs asked for the recipient's ID, it's {cn_id}",
            "Resident ID {cn_id} - please update my real-name info",
            "Use ID {cn_id} for the invoice on order {order_id}",
        ),
        "cn_mobile": (
            "My number in China is {cn_mobile}",
            "Please call {cn_mobile} when the courier arrives",
            "Contact: {cn_mobile}, order {order_id}",
            "Change the delivery phone to {cn_mobile}.",
            "I never got the SMS code on {cn_mobile}",
            "Reach me on WeChat or at {cn_mobile}",
        ),
        "bank_card": (
            "Please refund to my card {bank_card}",
            "I paid {price} with {bank_card} and got charged twice",
            "Card number: {bank_card}",
            "the card ending wrong, it should be {bank_card}",
            "Charge it to {bank_card}, thanks",
            "My Visa {bank_card} was declined on {date}",
        ),
        "email": (
            "Send the invoice to {email}",
            "my email is {email} pls update",
            "Email: {email}",
            "I can't log in with {email}",
            "You can reach me at {email} or {phone}",
            "Reply to {email} about order {order_id}",
        ),
        "us_ssn": (
            "My SSN is {us_ssn}",
            "SSN: {us_ssn} for the tax form",
            "here's my social security number {us_ssn}",
            "Verify me with SSN {us_ssn}, order {order_id}",
            "The W-9 needs {us_ssn}, right?",
        ),
        "phone": (
            "Call me at {phone}",
            "My phone number is {phone}.",
            "Ship to 1 Market St, San Francisco, phone {phone}",
            "Text {phone} when it ships",
            "Contact: Jane Doe, {phone}, order {order_id}",
            "reach me on {phone} after {date}",
        ),
    },
}

_NEGATIVE: dict[str, dict[str, tuple[str, ...]]] = {
    "zh": {
        "order_id": (
            "订单{order_id}什么时候发货？",
            "我的订单号是{order_id}，想取消",
            "{order_id}这个订单能改地址吗",
            "订单{order_id}和{order_id}能合并发货吗",
        ),
        "price": (
            "X1 Pro现在多少钱？我看到的是{price}",
            "退款金额{price}什么时候到账",
            "运费{price}太贵了吧",
            "订单{order_id}实付{price}",
        ),
        "date": (
            "我{date}下的单，还没发货",
            "{date}之前能送到吗",
            "保修到{date}为止吗",
            "订单{order_id}在{date}签收的",
        ),
        "tracking": (
            "快递单号{tracking}，一直没更新",
            "物流单号：{tracking}",
            "{tracking}这个单号查不到",
            "退货寄回了，单号{tracking}，{date}寄出",
        ),
        "bad_id": (
            "身份证号{bad_id}提示格式错误，是哪里不对",
            "我输入{bad_id}说身份证无效",
            "实名认证填{bad_id}一直不通过",
        ),
        "bad_card": (
            "卡号{bad_card}提示无效是怎么回事",
            "绑卡{bad_card}失败，说卡号错误",
            "我输的{bad_card}系统说不对",
        ),
        "service_number": (
            "你们客服电话是{service_number}吗",
            "我刚打了{service_number}没人接",
            "官方热线{service_number}几点上班",
            "{service_number}打来说我中奖了，是你们吗",
        ),
        "quantity": (
            "我要买{quantity}，能便宜点吗",
            "X1 Pro {quantity}还有货吗",
            "下单{quantity}，订单{order_id}",
            "{quantity}的版本什么时候到货",
        ),
    },
    "en": {
        "order_id": (
            "Where is my order {order_id}?",
            "Please cancel {order_id}",
            "order {order_id} arrived damaged",
            "Can you merge {order_id} with {order_id}?",
        ),
        "price": (
            "Is the X1 Pro still {price}?",
            "I was refunded {price} but paid more",
            "shipping cost {price}, that's a lot",
            "Order {order_id} total {price}",
        ),
        "date": (
            "I ordered on {date} and nothing yet",
            "Will it arrive before {date}?",
            "My warranty ends {date}, right?",
            "Delivered {date} but the box was empty",
        ),
        "tracking": (
            "Tracking number {tracking} hasn't moved",
            "tracking: {tracking}",
            "Return sent with {tracking} on {date}",
        ),
        "bad_id": (
            "The site says ID {bad_id} is invalid, why?",
            "real-name check fails for {bad_id}",
        ),
        "bad_card": (
            "Card {bad_card} is rejected as invalid",
            "why does {bad_card} say wrong card number",
        ),
        "service_number": (
            "Is {service_number} your support line?",
            "I called {service_number} and waited an hour",
            "Someone from {service_number} asked for my code, is that you?",
        ),
        "quantity": (
            "I'd like {quantity} of the X1 Pro case",
            "Do you have the {quantity} model in blue?",
            "{quantity} for order {order_id} please",
        ),
    },
}

_SLOT = re.compile(r"\{(\w+)\}")


def _render(template: str, rng: random.Random, lang: str) -> tuple[str, tuple[Span, ...], tuple[Span, ...]]:
    parts: list[str] = []
    spans: list[Span] = []
    decoys: list[Span] = []
    length = cursor = 0
    wide = lang == "zh" and rng.random() < 0.15
    for m in _SLOT.finditer(template):
        literal = template[cursor : m.start()]
        parts.append(literal)
        length += len(literal)
        kind = m.group(1)
        value = _VALUES[kind](rng)
        if wide and kind in _FULL_WIDTH_OK:
            value = full_width(value)
        (spans if kind in KINDS else decoys).append((kind, length, length + len(value)))
        parts.append(value)
        length += len(value)
        cursor = m.end()
    parts.append(template[cursor:])
    return "".join(parts), tuple(spans), tuple(decoys)


def generate(n: int, seed: int = 0, *, positive_share: float = 0.75) -> list[Sample]:
    """`n` samples; each is positive (its main kind drawn evenly from KINDS) with `positive_share`."""
    rng = random.Random(seed)
    samples: list[Sample] = []
    for _ in range(n):
        lang = rng.choice(("zh", "en"))
        if rng.random() < positive_share:
            template = rng.choice(_POSITIVE[lang][rng.choice(KINDS)])
        else:
            template = rng.choice(_NEGATIVE[lang][rng.choice(NEGATIVE_KINDS)])
        text, spans, decoys = _render(template, rng, lang)
        samples.append(Sample(text, spans, lang, decoys))
    return samples


# --- scoring ---


@dataclass(slots=True)
class Evaluation:
    """Recall per kind, and every match that masks something that is not personal data."""

    found: Counter[str] = field(default_factory=Counter)  # recalled values per kind
    total: Counter[str] = field(default_factory=Counter)  # values per kind
    missed: list[tuple[Sample, Span, list[PiiMatch]]] = field(default_factory=list)
    # (sample, match, the decoy kind it hits or "" when it covers nothing labelled)
    false_positives: list[tuple[Sample, PiiMatch, str]] = field(default_factory=list)
    matches: int = 0
    negatives: int = 0  # samples with no personal data
    flagged_negatives: int = 0  # of those, samples with at least one match

    def recall(self, kind: str | None = None) -> float:
        found = sum(self.found.values()) if kind is None else self.found[kind]
        total = sum(self.total.values()) if kind is None else self.total[kind]
        return found / total if total else 1.0

    @property
    def precision(self) -> float:
        return 1 - len(self.false_positives) / self.matches if self.matches else 1.0

    def false_positives_by_decoy(self) -> Counter[str]:
        return Counter(kind or "unlabelled" for _, _, kind in self.false_positives)


def _covers(match: PiiMatch, start: int, end: int) -> bool:
    return match.start <= start and end <= match.end


def evaluate(samples: Iterable[Sample], find: Callable[[str], Sequence[PiiMatch]] = find_pii) -> Evaluation:
    """Run `find` over the samples; a value is recalled when a match of its kind covers it."""
    ev = Evaluation()
    for sample in samples:
        matches = list(find(sample.text))
        ev.matches += len(matches)
        for kind, start, end in sample.spans:
            ev.total[kind] += 1
            if any(m.kind == kind and _covers(m, start, end) for m in matches):
                ev.found[kind] += 1
            else:
                ev.missed.append((sample, (kind, start, end), matches))
        for m in matches:
            if any(m.kind == k and m.start < e and s < m.end for k, s, e in sample.spans):
                continue
            hit = next((k for k, s, e in sample.decoys if m.start < e and s < m.end), "")
            ev.false_positives.append((sample, m, hit))
        if sample.negative:
            ev.negatives += 1
            ev.flagged_negatives += bool(matches)
    return ev


# --- hand-made probes: layouts the generator does not produce, each with what a masker should find ---


@dataclass(frozen=True, slots=True)
class Probe:
    name: str
    sample: Sample
    note: str


def _probe(name: str, note: str, lang: str, before: str, kind: str, value: str, after: str) -> Probe:
    span = (kind, len(before), len(before) + len(value))
    text = before + value + after
    if kind in KINDS:
        return Probe(name, Sample(text, (span,), lang), note)
    return Probe(name, Sample(text, (), lang, (span,)), note)


def _luhn_complete(partial: str) -> str:
    return partial + luhn_digit(partial)


_CARD16 = _luhn_complete("622202123456789")
_CARD17 = _luhn_complete("6222021234567890")
_VISA = _luhn_complete("411111111111111")
_BAD_ID = next(
    first17 + d
    for first17 in ("35020319691218693", "44010619890527776", "31011519600317324")
    for d in "0123456789"
    if d != id_check(first17) and passes_luhn(first17 + d)
)

PROBES: tuple[Probe, ...] = (
    _probe(
        "card_then_expiry",
        "a grouped card followed by a space and more digits (expiry date)",
        "en",
        "card ",
        "bank_card",
        _grouped(_VISA, " "),
        " 08/27",
    ),
    _probe(
        "card_then_date",
        "a grouped card followed by a space and a date",
        "zh",
        "卡号",
        "bank_card",
        _grouped(_CARD16, " "),
        " 2026-11-24扣了两次",
    ),
    _probe(
        "card17_grouped",
        "a 17-digit card in groups of four (the last group has one digit)",
        "zh",
        "退到这张卡",
        "bank_card",
        _grouped(_CARD17, " "),
        "，谢谢",
    ),
    _probe(
        "mobile_then_time",
        "+86 mobile followed by a space and a number (a time of day)",
        "zh",
        "手机",
        "cn_mobile",
        "+86 138 1234 5678",
        " 3点后联系",
    ),
    _probe(
        "us_phone_paren_dash",
        "US phone written (415)-555-0134",
        "en",
        "call ",
        "phone",
        "(415)-555-0134",
        " after 5pm",
    ),
    _probe(
        "bad_id_passing_luhn",
        "an ID number with a wrong check character whose 18 digits pass Luhn",
        "zh",
        "身份证号",
        "bad_id",
        _BAD_ID,
        "提示无效",
    ),
    _probe(
        "plain_card",
        "control: a grouped card at the end of a sentence",
        "en",
        "card ",
        "bank_card",
        _grouped(_VISA, " "),
        ".",
    ),
    _probe(
        "plain_mobile", "control: +86 mobile before a comma", "zh", "手机", "cn_mobile", "+86 138 1234 5678", "，3点后"
    ),
)
