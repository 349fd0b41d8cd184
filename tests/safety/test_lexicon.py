"""Lexicon files, matching (Chinese, English, boundaries, allow-list) and the blocking check."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import ProjectError
from safety.lexicon import Lexicon, LexiconCheck, Term, default_lexicon_paths, load_lexicon, mask_term

SAMPLE = """\
# test lexicon
abuse\t傻瓜
abuse\t*fuck*
abuse\tcunt
abuse\tass
abuse\tsb\tzh
violence\tkill you
fraud\t洗钱
politics\t颠覆国家政权

allow\t傻瓜相机
allow\tScunthorpe
allow\t反洗钱
"""


@pytest.fixture
def check(tmp_path: Path) -> LexiconCheck:
    path = tmp_path / "sample.txt"
    path.write_text(SAMPLE, encoding="utf-8")
    return LexiconCheck(load_lexicon([path]))


def write(tmp_path: Path, content: str) -> Path:
    path = tmp_path / "lexicon.txt"
    path.write_text(content, encoding="utf-8")
    return path


# --- matching ---


@pytest.mark.parametrize(
    ("text", "category", "masked"),
    [
        ("你这个傻瓜", "abuse", "傻*"),
        ("what the FUCK", "abuse", "f**k"),
        ("Ｆｕｃｋｉｎｇ slow", "abuse", "f**k"),  # full-width letters
        ("motherfucker", "abuse", "f**k"),
        ("你是SB吗", "abuse", "s*"),
        ("I will KILL YOU", "violence", "k******u"),
        ("帮我洗钱", "fraud", "洗*"),
        ("怎么颠覆国家政权", "politics", "颠****权"),
    ],
)
def test_blocks_with_category_and_masked_term(check: LexiconCheck, text: str, category: str, masked: str) -> None:
    verdict = check.check(text, stage="input")
    assert not verdict.allowed
    assert verdict.check == "lexicon"
    assert verdict.category == category
    assert masked in verdict.reason
    assert category in verdict.reason


def test_reason_never_contains_the_full_term(check: LexiconCheck) -> None:
    verdict = check.check("傻瓜, fuck, kill you, 洗钱", stage="output")
    for term in ("傻瓜", "fuck", "kill you", "洗钱"):
        assert term not in verdict.reason.lower()
    assert verdict.category == "abuse"  # the first match in the text decides
    assert verdict.reason == "lexicon term matched (abuse: 傻*, f**k; violence: k******u; fraud: 洗*)"


@pytest.mark.parametrize(
    "text",
    [
        "我想买一台傻瓜相机",  # allow-listed phrase contains a term
        "I live in Scunthorpe",
        "根据反洗钱规定，需要核实身份",
        "a classic class, pass the assessment",  # whole-word Latin terms
        "USB 接口坏了",
        "订单SO20261001多少钱？",
        "",
    ],
)
def test_allowed_texts(check: LexiconCheck, text: str) -> None:
    verdict = check.check(text, stage="input")
    assert verdict.allowed, verdict.reason
    assert (verdict.category, verdict.reason, verdict.redacted) == ("", "", None)


def test_allow_list_only_excuses_matches_inside_the_phrase(check: LexiconCheck) -> None:
    assert not check.check("傻瓜相机都不会用，傻瓜", stage="input").allowed
    assert not check.check("Scunthorpe cunt", stage="input").allowed


def test_find_marks_allowed_matches(check: LexiconCheck) -> None:
    matches = check.lexicon.find("傻瓜相机")
    assert [(m.term.text, m.start, m.end, m.allowed) for m in matches] == [("傻瓜", 0, 2, True)]
    assert check.lexicon.blocking("傻瓜相机") == []


def test_lexicon_from_terms_dedupes_case_insensitively() -> None:
    lexicon = Lexicon([Term("Fuck", "abuse", "en"), Term("fuck", "abuse", "en")], allow=["x", "x"])
    assert len(lexicon) == 1
    assert lexicon.allow == ("x",)


def test_mask_term() -> None:
    assert [mask_term(t) for t in ("傻瓜", "fuck", "办假证", "a", "money laundering")] == [
        "傻*",
        "f**k",
        "办**",
        "a",
        "m**************g",
    ]


def test_language_inferred_or_given(check: LexiconCheck) -> None:
    languages = {t.text: t.language for t in check.lexicon.terms}
    assert (languages["傻瓜"], languages["fuck"], languages["sb"]) == ("zh", "en", "zh")


# --- files ---


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        ("abuse\tok\nabuse fuck\n", 2, "no tab found"),
        ("# c\n\nAbuse!\tx\n", 3, "bad category"),
        ("abuse\tf*ck\n", 1, "only allowed at the start or end"),
        ("abuse\t**\n", 1, "empty term"),
        ("abuse\tx\tfr\n", 1, "unknown language"),
        ("abuse\tx\ten\textra\n", 1, "too many"),
        ("allow\t\n", 1, "allow<TAB>phrase"),
    ],
)
def test_file_errors_name_path_and_line(tmp_path: Path, content: str, line: int, message: str) -> None:
    path = write(tmp_path, content)
    with pytest.raises(ProjectError, match=message) as info:
        load_lexicon([path])
    assert info.value.line == line
    assert info.value.path == str(path)
    assert f"{path}:{line}:" in str(info.value)


def test_missing_and_undecodable_files(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="not found") as info:
        load_lexicon([tmp_path / "nope.txt"])
    assert isinstance(info.value.__cause__, FileNotFoundError)
    bad = tmp_path / "gbk.txt"
    bad.write_bytes("abuse\t傻瓜\n".encode("gbk"))
    with pytest.raises(ProjectError, match="UTF-8"):
        load_lexicon([bad])


def test_bom_comments_and_blank_lines_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "bom.txt"
    path.write_text("\ufeff# comment\n\n  \nabuse\t蠢货\t\n", encoding="utf-8")
    assert [t.text for t in load_lexicon([path]).terms] == ["蠢货"]


# --- shipped lexicons ---


def test_default_lexicons_load_and_block() -> None:
    paths = default_lexicon_paths()
    assert [p.name for p in paths] == ["lexicon_zh.txt", "lexicon_en.txt"]
    check = LexiconCheck.default()
    check.warm_up()
    assert 60 <= len(check.lexicon) <= 120
    assert {"abuse", "violence", "fraud", "politics"} <= {t.category for t in check.lexicon.terms}
    for text in (
        "你这个傻逼",
        "帮我洗钱",
        "我要办假证",
        "fuck off",
        "how to launder money",
        "I know about money laundering",
    ):
        assert not check.check(text, stage="input").allowed, text
    for text in ("我想买个傻瓜相机", "反洗钱政策", "I live in Scunthorpe", "shitake mushrooms", "where is my order?"):
        assert check.check(text, stage="input").allowed, text


def test_every_default_term_blocks_itself() -> None:
    check = LexiconCheck.default()
    for term in check.lexicon.terms:
        verdict = check.check(f"「{term.text}」", stage="output")
        assert not verdict.allowed, term.masked
        assert verdict.category == term.category, term.masked


def test_project_lexicon_extends_defaults(tmp_path: Path) -> None:
    extra = write(tmp_path, "competitor\tacme\n")
    verdict = LexiconCheck.default([extra]).check("is ACME cheaper?", stage="output")
    assert (verdict.allowed, verdict.category) == (False, "competitor")


def test_an_edited_lexicon_file_is_reloaded_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "own.txt"
    path.write_text("abuse\t蠢材\n", encoding="utf-8")
    check = LexiconCheck.from_files([path], poll_s=0.0)
    assert not check.check("你这个蠢材", stage="input").allowed
    assert check.check("一派胡言", stage="input").allowed
    path.write_text("abuse\t蠢材\nabuse\t胡言\nallow\t胡言乱语的小说\n", encoding="utf-8")
    assert not check.check("一派胡言", stage="input").allowed  # picked up on the next check
    assert check.check("胡言乱语的小说有吗", stage="input").allowed


def test_a_broken_edit_keeps_the_previous_lexicon(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "own.txt"
    path.write_text("abuse\t蠢材\n", encoding="utf-8")
    check = LexiconCheck.from_files([path], poll_s=0.0)
    path.write_text("abuse 蠢材 (spaces, not a tab)\n", encoding="utf-8")
    assert not check.check("蠢材", stage="input").allowed
    assert "lexicon not reloaded" in caplog.text and "own.txt" in caplog.text
    assert check.reload_if_changed() is False  # the broken file is not retried until it changes again
