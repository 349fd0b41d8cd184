"""Prompt-injection and jailbreak detection for customer input, in Chinese and English.

A small set of weighted rules (safety/data/injection.txt, which documents its format; a project may add its
own file), each a few regular expressions over three normalised views of the message:

- `words`: English words, lower case, one space apart, with a "|" where a sentence or clause ends (so a
  phrase never runs from one sentence into the next). Zero-width and bidi characters are dropped, Unicode
  tag characters (invisible ASCII) are revealed, full-width letters and Cyrillic/Greek look-alikes become
  ASCII, l33t words are read back ("1gn0re" -> "ignore"), and letters spaced out or run together
  ("i g n o r e", "IgnorePreviousInstructions") are split into the words the rules know.
- `compact`: the Chinese view: letters, digits and ideographs only (spaces and in-sentence punctuation
  removed, so "忽 略.之 前" reads "忽略之前"), traditional characters mapped to simplified, "|" at sentence ends.
- `raw`: the folded text with punctuation kept, for chat-template markers ("<|im_start|>", "[INST]").

A rule's weight counts once however often it matches; the message is blocked when the weights of the rules
it matches add up to the threshold (1.0). Strong rules weigh 1.0 on their own; weak signals ("system:",
"developer mode", "no restrictions", "ChatGPT") weigh less, so one alone never blocks: "developer mode on my
phone won't turn off" passes, "ChatGPT with developer mode" does not. Base64, hex and rot13 payloads are
decoded and scored as well. Customer-service look-alikes stay out by construction: an override needs an
object that is the bot's instructions ("ignore previous instructions", not "ignore my last message"), and
"pretend"/"扮演" alone is nothing ("can you pretend I ordered yesterday and check shipping" passes: it asks
nothing of the bot's rules, and a grounded answer cannot be talked into more than the facts).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Protocol, Self

from bot.errors import ProjectError
from bot.events import Session
from bot.types import Fact, SafetyVerdict, Stage
from safety.aho_corasick import fold
from safety.files import read_text_file

CATEGORY = "injection"
THRESHOLD = 1.0
STRONG = 1.0
ENCODED = "encoded_payload"  # also the rule a decoded payload that scores on its own is reported under

# --- normalisation ---

# Format characters that render as nothing: zero-width space/joiners, bidi marks and isolates, word joiner,
# soft hyphen, BOM, Hangul fillers, variation selectors. Unicode tag characters (U+E0020..E007E) are
# invisible copies of ASCII, a known way to smuggle instructions: they are revealed, not dropped.
_INVISIBLE = [0x00AD, 0x034F, 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180E, 0x3164, 0xFEFF, 0xFFA0]
_INVISIBLE += [*range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2060, 0x2070), *range(0xFE00, 0xFE10)]
_REVEAL: dict[int, int | None] = dict.fromkeys(_INVISIBLE)
_REVEAL |= {cp: cp - 0xE0000 for cp in range(0xE0020, 0xE007F)} | {0xE0001: None, 0xE007F: None}

# Cyrillic and Greek letters that look like Latin ones ("іgnоrе" typed with Cyrillic і, о, е).
_CONFUSABLES = str.maketrans("аеорсухѕіјԁӏкмнтвɡαεικνορτυχ", "aeopcyxsijdlkmhtbgaeiknoptux")
_LEET = str.maketrans("013457@$", "oieastas")

# Traditional forms of the characters the Chinese rules use (a customer may type either script).
_TRADITIONAL = str.maketrans(
    "無視憶記棄蓋繞擺脫違則規準條設詞語統說們這從後現個沒審過濾倫線獄調試發權"
    "員碼執編譯轉換進啟啓動輸復複顯洩給訴內隱對話應該麼為讓與護機體裝飾爺媽開啟聽東將"
    "僅腦電學據檢測種須帶導嗎號覺劃戲義實邊顧務問題繫係讀寫讚態徹觀點層級續釋離處歲娛"
    "樂鬆著於紀錄單稱請",
    "无视忆记弃盖绕摆脱违则规准条设词语统说们这从后现个没审过滤伦线狱调试发权"
    "员码执编译转换进启启动输复复显泄给诉内隐对话应该么为让与护机体装饰爷妈开启听东将"
    "仅脑电学据检测种须带导吗号觉划戏义实边顾务问题系系读写赞态彻观点层级续释离处岁娱"
    "乐松着于纪录单称请",
)

_WORD_SEP = re.compile(r"[!?;\n\u3002]+|[.,:]+(?=\s|$)")  # after folding: ！？；, → ASCII
_ZH_SEP = re.compile(r"[!?;,:\n\u3002]+|\.+(?=\s|$)")
_TOKEN = re.compile(r"[a-z0-9@$]+")
_NOT_ALNUM = re.compile(r"[\W_]+")
_NAME_NUMBER = re.compile(r"[a-z]+[0-9]+")
_SEGMENT_MIN = 8  # tokens at least this long that the rules do not know are tried as run-together words
_TYPO_WORDS = (
    "ignore", "disregard", "previous", "instruction", "instructions", "directions", "directives", "guidelines",
    "restrictions", "unrestricted", "unfiltered", "uncensored", "jailbreak", "jailbroken", "developer",
    "override", "bypass", "pretend", "system", "prompt", "prompts", "programming", "verbatim", "constraints",
    "limitations",
)  # fmt: skip


def reveal(text: str) -> str:
    """Drop invisible format characters and turn Unicode tag characters back into the ASCII they hide."""
    return text.translate(_REVEAL)


def compact_view(text: str) -> str:
    """Letters, digits and ideographs only (simplified script, folded); "|" between sentences."""
    folded = fold(reveal(text)).translate(_TRADITIONAL)
    parts = (_NOT_ALNUM.sub("", part) for part in _ZH_SEP.split(folded))
    return "|".join(p for p in parts if p)


def raw_view(text: str) -> str:
    return fold(reveal(text))


def _typos(vocabulary: frozenset[str]) -> dict[str, str]:
    """Misspellings of the words attackers misspell on purpose ("ignroe all prior instrucitons"): one adjacent
    swap or one dropped letter. A variant that is itself a rule word, or that two words share, is left alone;
    the words are chosen so that no variant is ordinary English ("person" would read as "persona")."""
    seen: dict[str, str | None] = {}
    for word in _TYPO_WORDS:
        swaps = (word[:i] + word[i + 1] + word[i] + word[i + 2 :] for i in range(len(word) - 1))
        drops = (word[:i] + word[i + 1 :] for i in range(len(word)))
        for variant in (*swaps, *drops):
            if variant != word and variant not in vocabulary:
                seen[variant] = word if seen.get(variant, word) == word else None
    return {variant: word for variant, word in seen.items() if word is not None}


class WordsView:
    """Builds the `words` view; knows the rules' vocabulary to undo l33t, typos and run-together letters."""

    def __init__(self, vocabulary: Iterable[str]) -> None:
        self.vocabulary = frozenset(vocabulary)
        self._typos = _typos(self.vocabulary)
        self._longest = max((len(w) for w in self.vocabulary), default=1)

    def view(self, text: str) -> str:
        folded = fold(reveal(text)).translate(_CONFUSABLES)
        sentences = (self._sentence(part) for part in _WORD_SEP.split(folded))
        return " | ".join(s for s in sentences if s)

    def _sentence(self, part: str) -> str:
        tokens = [self._typos.get(t, t) for t in map(self._unleet, _TOKEN.findall(part))]
        words: list[str] = []
        i = 0
        while i < len(tokens):
            j = i
            while j < len(tokens) and len(tokens[j]) == 1:
                j += 1
            if j - i >= 4:  # "i g n o r e" -> "ignore" (or the words the letters spell)
                words.extend(self._split("".join(tokens[i:j])))
                i = j
            else:
                words.extend(self._split(tokens[i]))
                i += 1
        return " ".join(words)

    def _unleet(self, token: str) -> str:
        if token.isdigit() or not any(c in "013457@$" for c in token):
            return token
        if not any(c.isalpha() for c in token):
            return _NOT_ALNUM.sub("", token)
        read = token.translate(_LEET)
        if read not in self.vocabulary and _NAME_NUMBER.fullmatch(token):  # "rot13", "gpt4", "x1": a name
            return token
        if read not in self.vocabulary and "1" in token:  # "ru1es": a 1 may stand for l as well as i
            as_l = token.replace("1", "l").translate(_LEET)
            return as_l if as_l in self.vocabulary else read
        return read

    def _split(self, token: str) -> list[str]:
        """`token` as the fewest vocabulary words, when it is long, unknown and made of them entirely."""
        if len(token) < _SEGMENT_MIN or token in self.vocabulary or len(token) > 200:
            return [token]
        best: list[list[str] | None] = [[]] + [None] * len(token)
        for end in range(1, len(token) + 1):
            for start in range(max(0, end - self._longest), end):
                head, current = best[start], best[end]
                if (
                    head is not None
                    and token[start:end] in self.vocabulary
                    and (current is None or len(head) + 1 < len(current))
                ):
                    best[end] = [*head, token[start:end]]
        found = best[-1]
        return found if found and len(found) > 1 else [token]


# --- rules ---

_VIEWS = ("en", "zh", "raw")
_MACRO_NAME = re.compile(r"<[A-Z][A-Z0-9_]*>")
_RULE_ID = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True, slots=True)
class InjectionRule:
    """Patterns (macros expanded) over the `words` (en), `compact` (zh) and `raw` views, and their weight."""

    id: str
    weight: float
    en: tuple[str, ...] = ()
    zh: tuple[str, ...] = ()
    raw: tuple[str, ...] = ()


def default_rule_paths() -> list[Path]:
    """The rule file shipped with kefu."""
    data = resources.files("safety") / "data"
    if not isinstance(data, Path):
        raise ProjectError("kefu's safety package data is not on the file system (zip install?)", path=str(data))
    return [data / "injection.txt"]


@dataclass(slots=True)
class RuleDraft:
    weight: float
    patterns: dict[str, list[str]]


def load_rules(paths: Iterable[str | Path]) -> tuple[InjectionRule, ...]:
    """Read rule files in order (format: the head of safety/data/injection.txt); a malformed line or a pattern
    that does not compile raises ProjectError naming the file and line."""
    macros: dict[str, str] = {}
    drafts: dict[str, RuleDraft] = {}
    for path in map(Path, paths):
        content = read_text_file(path, "injection rule file")
        for keyword, body, lineno in logical_lines(content):
            apply_statement(keyword, body, macros, drafts, str(path), lineno)
    return tuple(
        InjectionRule(rule_id, draft.weight, *(tuple(draft.patterns[view]) for view in _VIEWS))
        for rule_id, draft in drafts.items()
    )


def logical_lines(content: str) -> Iterator[tuple[str, str, int]]:
    """(keyword, rest, line number) per statement, indented continuation lines joined on."""
    current: list[str] | None = None
    start = 0
    for lineno, line in enumerate(content.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if line[0].isspace() and current is not None:
            current.append(stripped)
            continue
        if current is not None:
            yield _statement("".join(current), start)
        current, start = [stripped], lineno
    if current is not None:
        yield _statement("".join(current), start)


def _statement(text: str, lineno: int) -> tuple[str, str, int]:
    keyword, _, rest = text.partition(" ")
    return keyword, rest.strip(), lineno


def apply_statement(
    keyword: str, body: str, macros: dict[str, str], drafts: dict[str, RuleDraft], path: str, line: int
) -> None:
    if keyword == "define":
        name, _, regex = body.partition(" ")
        if not _MACRO_NAME.fullmatch(name) or not regex.strip():
            raise ProjectError("expected 'define <NAME> regex' (NAME in capitals)", path=path, line=line)
        macros[name] = _expand(regex.strip(), macros, path, line)
    elif keyword == "rule":
        fields = body.split()
        if not fields or len(fields) > 2 or not _RULE_ID.fullmatch(fields[0]):
            raise ProjectError("expected 'rule id [weight]' (id in lower case)", path=path, line=line)
        weight = parse_weight(fields[1], path, line) if len(fields) == 2 else None
        if fields[0] not in drafts and weight is None:
            raise ProjectError(f"new rule {fields[0]!r} needs a weight", path=path, line=line)
        draft = drafts.pop(fields[0], None) or RuleDraft(0.0, {view: [] for view in _VIEWS})
        draft.weight = draft.weight if weight is None else weight
        drafts[fields[0]] = draft  # the current rule is the last one
    elif keyword in _VIEWS:
        if not drafts:
            raise ProjectError(f"'{keyword}' pattern before any 'rule' line", path=path, line=line)
        pattern = _expand(body, macros, path, line)
        try:
            re.compile(pattern)
        except re.error as err:
            raise ProjectError(f"pattern does not compile: {err}", path=path, line=line) from err
        next(reversed(drafts.values())).patterns[keyword].append(pattern)
    else:
        raise ProjectError(f"unknown keyword {keyword!r}; use define, rule, en, zh or raw", path=path, line=line)


def parse_weight(text: str, path: str, line: int) -> float:
    try:
        weight = float(text)
    except ValueError:
        weight = -1.0
    if not 0.0 <= weight <= 10.0:
        raise ProjectError(f"bad weight {text!r}; use a number from 0 to 10", path=path, line=line)
    return weight


def _expand(pattern: str, macros: dict[str, str], path: str, line: int) -> str:
    expanded = _MACRO_NAME.sub(lambda m: macros.get(m.group(), m.group()), pattern)
    if unknown := _MACRO_NAME.search(expanded):
        raise ProjectError(f"unknown macro {unknown.group()}; define it above", path=path, line=line)
    return expanded


@cache
def _default_rules() -> tuple[InjectionRule, ...]:
    return load_rules(default_rule_paths())


def injection_rules() -> tuple[str, ...]:
    """The ids of the shipped rules, strong ones first (for docs and traces)."""
    return tuple(rule.id for rule in _default_rules())


def compile_patterns(patterns: Sequence[str], flags: int = 0) -> re.Pattern[str] | None:
    return re.compile("|".join(f"(?:{p})" for p in patterns), flags) if patterns else None


# --- encoded payloads ---

_BASE64 = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{16,}={0,2}(?![A-Za-z0-9+/=_-])")
_HEX = re.compile(r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}){10,}(?![0-9A-Fa-f])")
_ROT13 = re.compile(r"\brot ?13\b")
_MAX_PAYLOADS = 8


def _printable(raw: bytes) -> str | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    shown = sum(ch.isprintable() or ch.isspace() for ch in text)
    letters = sum(ch.isalpha() for ch in text)
    return text if text and shown >= 0.95 * len(text) and letters >= 4 else None


def decoded_payloads(text: str) -> list[str]:
    """Base64 and hex runs in `text` that decode to readable UTF-8 text."""
    found: list[str] = []
    for match in _BASE64.finditer(text):
        blob = match.group().rstrip("=").replace("-", "+").replace("_", "/")
        try:
            raw = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True)
        except (binascii.Error, ValueError):
            continue
        if (decoded := _printable(raw)) is not None:
            found.append(decoded)
        if len(found) >= _MAX_PAYLOADS:
            return found
    for match in _HEX.finditer(text):
        if (decoded := _printable(bytes.fromhex(match.group()))) is not None:
            found.append(decoded)
    return found[:_MAX_PAYLOADS]


# --- the check ---


@dataclass(frozen=True, slots=True)
class RuleAssessment:
    """The rules a text matched (the deciding category's strongest first) and their summed weight."""

    score: float
    rules: tuple[str, ...]
    category: str = CATEGORY

    def blocked(self, threshold: float = THRESHOLD) -> bool:
        return self.score >= threshold - 1e-9

    @property
    def rule(self) -> str:
        return self.rules[0] if self.rules else ""


InjectionAssessment = RuleAssessment


class _Assessor(Protocol):
    def assess(self, text: str, *, threshold: float) -> RuleAssessment: ...


_NOTHING = InjectionAssessment(0.0, ())


@dataclass(frozen=True, slots=True)
class CompiledRule:
    rule: InjectionRule
    en: re.Pattern[str] | None
    zh: re.Pattern[str] | None
    raw: re.Pattern[str] | None


def compile_rules(rules: Sequence[InjectionRule]) -> tuple[CompiledRule, ...]:
    """Each rule's patterns as one expression per view; rules turned off (weight 0) are left out."""
    return tuple(
        CompiledRule(
            rule, compile_patterns(rule.en), compile_patterns(rule.zh), compile_patterns(rule.raw, re.MULTILINE)
        )
        for rule in rules
        if rule.weight > 0
    )


def rule_vocabulary(rules: Sequence[InjectionRule]) -> set[str]:
    """The English words the rules mention (and their singulars): what typo and run-together repair aims at."""
    sources = (re.sub(r"\\[a-zA-Z]", " ", p) for rule in rules for p in rule.en)  # no "\b" -> "b"
    vocabulary = {w for source in sources for w in re.findall(r"[a-z]{2,}", source)}
    return vocabulary | {w[:-1] for w in vocabulary if len(w) > 4 and w.endswith("s") and not w.endswith(("ss", "us"))}


def matched_weights(rules: Sequence[CompiledRule], words: str, compact: str, raw: str) -> dict[str, float]:
    """The weight of every rule that matches one of the three views of a text."""
    weights: dict[str, float] = {}
    for compiled in rules:
        views = ((compiled.en, words), (compiled.zh, compact), (compiled.raw, raw))
        if any(pattern is not None and pattern.search(view) for pattern, view in views):
            weights[compiled.rule.id] = max(weights.get(compiled.rule.id, 0.0), compiled.rule.weight)
    return weights


class _RuleSet:
    def __init__(self, rules: Sequence[InjectionRule]) -> None:
        self.rules = compile_rules(rules)
        self.words = WordsView(rule_vocabulary(rules) | {"i", "a", "u", *_TYPO_WORDS})

    def assess(self, text: str, *, threshold: float, depth: int = 0) -> InjectionAssessment:
        words = self.words.view(text)
        weights = matched_weights(self.rules, words, compact_view(text), raw_view(text))
        if depth < 2 and sum(weights.values()) < threshold and self._hides_injection(text, words, threshold, depth):
            weights[ENCODED] = STRONG
        if not weights:
            return _NOTHING
        ranked = sorted(weights.items(), key=lambda item: (-item[1], item[0]))
        return InjectionAssessment(round(sum(weights.values()), 6), tuple(rule for rule, _ in ranked))

    def _hides_injection(self, text: str, words: str, threshold: float, depth: int) -> bool:
        hidden = decoded_payloads(reveal(text))
        if _ROT13.search(words):
            hidden.append(codecs.decode(text, "rot13"))
        return any(self.assess(h, threshold=threshold, depth=depth + 1).blocked(threshold) for h in hidden)


class RuleCheck:
    """A SafetyCheck over weighted rule files (the format above), on customer input only. Without `rules` it
    uses the shipped files, read and compiled in `warm_up()` (or on the first check); `default(extra_paths)`
    adds a project's own rule files. Subclasses say which files and how a text is scored."""

    name: str = "rules"

    def __init__(self, rules: Sequence[InjectionRule] | None = None, *, threshold: float = THRESHOLD) -> None:
        self._rules = None if rules is None else tuple(rules)
        self.threshold = threshold
        self._compiled: _Assessor | None = None
        self._lock = threading.Lock()

    @classmethod
    def default(cls, extra_paths: Iterable[str | Path] = (), *, threshold: float = THRESHOLD) -> Self:
        """The shipped rules plus a project's own files (read now; the expressions compile in warm_up)."""
        return cls(cls.read_rules([*cls.shipped_paths(), *extra_paths]), threshold=threshold)

    @staticmethod
    def read_rules(paths: Iterable[str | Path]) -> tuple[InjectionRule, ...]:
        raise NotImplementedError

    @staticmethod
    def shipped_paths() -> list[Path]:
        raise NotImplementedError

    def compile_rules(self, rules: Sequence[InjectionRule] | None) -> _Assessor:
        raise NotImplementedError

    def warm_up(self) -> None:
        self._rule_set()

    def _rule_set(self) -> _Assessor:
        if self._compiled is None:
            with self._lock:
                if self._compiled is None:
                    self._compiled = self.compile_rules(self._rules)
        return self._compiled

    def assess(self, text: str) -> RuleAssessment:
        """Every rule `text` matches and the summed weight, blocked or not (for evaluation and traces)."""
        return self._rule_set().assess(text, threshold=self.threshold)

    def check(
        self, text: str, *, stage: Stage, session: Session | None = None, facts: Sequence[Fact] = ()
    ) -> SafetyVerdict:
        if stage != "input" or not text.strip():
            return SafetyVerdict(check=self.name, stage=stage, allowed=True)
        assessment = self.assess(text)
        if not assessment.blocked(self.threshold):
            return SafetyVerdict(check=self.name, stage=stage, allowed=True)
        # The reason names rules, never the text: verdicts end up in traces and logs.
        reason = f"{assessment.category}: {', '.join(assessment.rules)}"
        return SafetyVerdict(self.name, stage, False, assessment.category, reason, rule=assessment.rule)


class InjectionCheck(RuleCheck):
    """Prompt-injection and jailbreak attempts in customer input (Chinese, English). Output is not checked
    here: a reply that leaks the prompt is leakage.PromptLeakCheck's business."""

    name = "injection"

    @staticmethod
    def read_rules(paths: Iterable[str | Path]) -> tuple[InjectionRule, ...]:
        return load_rules(paths)

    @staticmethod
    def shipped_paths() -> list[Path]:
        return default_rule_paths()

    def compile_rules(self, rules: Sequence[InjectionRule] | None) -> _Assessor:
        return _RuleSet(_default_rules() if rules is None else rules)
