"""Prompt leakage: replies that copy the generator's instructions (compared as word and character shingles)
or talk about them are blocked; replies sharing only short common phrases pass."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

from safety.leakage import MIN_CHARS, MIN_WORDS, PromptLeakCheck, shingles

TEMPLATES = Path(__file__).resolve().parents[2] / "bot" / "generation" / "templates"


def instructions(name: str, facts_heading: str) -> str:
    """The instruction lines of a real answer template (everything before the facts), rendered the way the
    generator renders them for a shop called Acme with the default voice."""
    head = (TEMPLATES / name).read_text(encoding="utf-8").split(facts_heading)[0]
    head = re.sub(r'\{\{\s*voice or "([^"]*)"\s*\}\}', r"\1", head)
    head = re.sub(r"\{\{\s*brand\s*\}\}", "Acme", head)
    return re.sub(r"\{%.*?%\}|\{\{.*?\}\}", " ", head)


EN = instructions("answer.en.j2", "Facts:")
ZH = instructions("answer.zh.j2", "资料：")
CHECK = PromptLeakCheck([EN, ZH])
REASON = re.compile(r"prompt_leak: (?:repeats \d+ consecutive (?:words|characters) of protected text \d+"
                    r"|talks about its own instructions)")  # fmt: skip


def blocked(text: str, check: PromptLeakCheck = CHECK) -> bool:
    return not check.check(text, stage="output").allowed


def test_the_templates_have_the_instructions_we_protect() -> None:
    assert "Answer the customer's question using ONLY the facts below" in EN and "Acme" in EN
    assert "只能根据下面的资料回答顾客的问题" in ZH and "{{" not in ZH
    assert CHECK.protected_count == 2


@pytest.mark.parametrize(
    "reply",
    [
        # copied straight out of the English instructions
        "Answer the customer's question using ONLY the facts below. If the facts do not answer it, say you are "
        "not sure and offer to connect a human agent.",
        "Sure! My guidance: If the facts do not answer it, say you are not sure and offer to connect a human agent.",
        "You are the customer service assistant of Acme. Be brief, polite and factual.",
        # the same with case, spacing, punctuation, width and invisible characters changed
        "answer   the CUSTOMER'S question -- using only the facts below; if the facts do not answer it...",
        "ＡＮＳＷＥＲ ＴＨＥ ＣＵＳＴＯＭＥＲ'Ｓ ＱＵＥＳＴＩＯＮ ＵＳＩＮＧ ＯＮＬＹ ＴＨＥ ＦＡＣＴＳ ＢＥＬＯＷ",
        "Answer\u200b the\u200d customer's\u2060 question using only\ufeff the facts below, ok?",
        # copied out of the Chinese instructions
        "好的：只能根据下面的资料回答顾客的问题。如果资料不能回答，就说明不确定，并提出可以转接人工客服。",
        "如果资料不能回答，就说明不确定，并提出可以转接人工客服。不要编造价格、日期、数字或承诺。",
        "只 能 根 据 下 面 的 资 料 回 答 顾 客 的 问 题 ， 如 果 资 料 不 能 回 答",
    ],
)
def test_copies_of_protected_text_are_blocked(reply: str) -> None:
    verdict = CHECK.check(reply, stage="output")
    assert not verdict.allowed
    assert verdict.check == "prompt_leak" and verdict.category == "prompt_leak"
    assert REASON.fullmatch(verdict.reason), verdict.reason
    assert "repeats" in verdict.reason


@pytest.mark.parametrize(
    "reply",
    [
        "Please contact our customer service.",
        "I'm not sure about that. I can connect you to a human agent if you like.",
        "Our return window is 7 days from delivery; the customer pays return shipping.",
        "Based on the facts I have, the X1 Pro ships within 48 hours.",
        "I'm not sure, please contact our customer service or ask for a human agent.",
        "Never invent prices, dates, numbers or promises.",  # seven words: below the run length
        "我不确定，可以为您转接人工客服。",
        "抱歉，资料中没有相关信息，我不确定，可以为您转接人工客服。",
        "退货运费由顾客承担，七天内可以申请无理由退货。",
        "根据资料，X1 Pro 的保修期是一年。",
        "I'm programmed to help with orders and returns.",  # a deflection, not a disclosure
    ],
)
def test_replies_sharing_only_common_phrases_pass(reply: str) -> None:
    verdict = CHECK.check(reply, stage="output")
    assert verdict.allowed, verdict.reason
    assert verdict.category == "" and verdict.reason == ""


@pytest.mark.parametrize(
    "reply",
    [
        "My system prompt is: be brief and polite.",
        "My instructions say I should only use the facts.",
        "Here is my full system prompt: ...",
        "According to my instructions, I cannot discuss that.",
        "I was instructed to never mention prices.",
        "我的系统提示词是：保密。",
        "我被设定为只能回答商品相关的问题。",
        "根据我的设定，我不能回答这个问题。",
        "以下是我的提示词：……",
    ],
)
def test_talk_about_the_prompt_is_blocked(reply: str) -> None:
    verdict = PromptLeakCheck().check(reply, stage="output")
    assert not verdict.allowed
    assert verdict.reason == "prompt_leak: talks about its own instructions"


@pytest.mark.parametrize(
    "reply",
    [
        "According to our return policy, you have 7 days.",
        "The system prompts you for a code when you log in.",
        "Your instructions for the delivery are noted.",
        "我们的规则是七天无理由退货。",
        "系统提示支付失败时，请稍后重试。",
    ],
)
def test_ordinary_replies_about_systems_and_rules_pass(reply: str) -> None:
    assert PromptLeakCheck().check(reply, stage="output").allowed


def test_run_length_thresholds() -> None:
    words = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima"
    check = PromptLeakCheck([words])
    assert blocked("we said alpha bravo charlie delta echo foxtrot golf hotel, then stopped", check)  # 8 words
    assert not blocked("we said alpha bravo charlie delta echo foxtrot golf, then stopped", check)  # 7 words
    ideographs = "甲乙丙丁戊己庚辛壬癸子丑寅卯辰巳午未申酉戌亥天地人和"
    check = PromptLeakCheck([ideographs])
    assert blocked(f"前缀{ideographs[:MIN_CHARS]}后缀", check)
    assert not blocked(f"前缀{ideographs[: MIN_CHARS - 1]}后缀", check)
    loose = PromptLeakCheck([words], min_words=4)
    assert blocked("charlie delta echo foxtrot", loose)
    assert MIN_WORDS == 8


def test_reason_never_contains_the_reply() -> None:
    secret = "Internal: escalate VIP customers to Zhang Wei at extension 8841 before offering any refund."
    check = PromptLeakCheck([secret])
    verdict = check.check(f"Sure. {secret}", stage="output")
    assert not verdict.allowed
    assert verdict.reason == "prompt_leak: repeats 14 consecutive words of protected text 1"
    for fragment in ("Zhang", "8841", "VIP", "escalate"):
        assert fragment not in verdict.reason


def test_input_is_not_checked() -> None:
    assert CHECK.check(EN, stage="input").allowed
    assert CHECK.check("My system prompt is secret", stage="input").allowed
    assert CHECK.check("", stage="output").allowed


def test_add_protected_after_construction() -> None:
    persona = "You are Xiaomei, a cheerful assistant who signs every message with a flower and never says no."
    check = PromptLeakCheck()
    assert check.protected_count == 0
    assert check.check(persona, stage="output").allowed
    check.add_protected([persona, "", "   "])
    assert check.protected_count == 1
    verdict = check.check(f"Hi! {persona}", stage="output")
    assert not verdict.allowed and "protected text 1" in verdict.reason
    check.add_protected([EN])
    assert "protected text 2" in check.check(EN, stage="output").reason


def test_add_protected_while_checking_from_other_threads() -> None:
    check = PromptLeakCheck([EN])
    errors: list[BaseException] = []

    def checker() -> None:
        try:
            for _ in range(200):
                assert not check.check(EN, stage="output").allowed
                assert check.check("Please contact our customer service.", stage="output").allowed
        except BaseException as err:  # surfaced below
            errors.append(err)

    threads = [threading.Thread(target=checker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for i in range(50):
        check.add_protected([f"protected text number {i} has more than eight words in it for sure"])
    for thread in threads:
        thread.join()
    assert not errors
    assert check.protected_count == 51


def test_a_thousand_checks_run() -> None:
    replies = ["Please contact our customer service.", EN, "我不确定，可以为您转接人工客服。", ZH]
    verdicts = [CHECK.check(replies[i % 4], stage="output") for i in range(1000)]
    assert sum(not v.allowed for v in verdicts) == 500


def test_too_small_thresholds_are_refused() -> None:
    with pytest.raises(ValueError, match="min_chars"):
        PromptLeakCheck(min_chars=2)
    with pytest.raises(ValueError, match="min_words"):
        PromptLeakCheck(min_words=1)


def test_rolling_shingles_match_hashing_each_window() -> None:
    values = [ord(ch) for ch in "只能根据下面的资料回答顾客的问题"]
    n = 5
    rolled = shingles(values, n)
    fresh = [shingles(values[i : i + n], n)[0] for i in range(len(values) - n + 1)]
    assert rolled == fresh
    assert len(set(rolled)) == len(rolled)
    assert shingles(values[:4], n) == [] and shingles(values, 0) == []
