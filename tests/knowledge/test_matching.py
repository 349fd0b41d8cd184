"""PhraseMatcher: leftmost-longest phrase matching that ignores case, width and spaces."""

from __future__ import annotations

from knowledge.matching import PhraseMatcher, guess_language


def matcher(*phrases: tuple[str, str]) -> PhraseMatcher:
    built = PhraseMatcher()
    for phrase, value in phrases:
        built.add(phrase, value)
    return built


def found(built: PhraseMatcher, text: str) -> list[tuple[str, tuple[str, ...]]]:
    return [(match.surface, match.values) for match in built.find(text)]


def test_longest_match_wins_inside_chinese_text() -> None:
    built = matcher(("星耀X1", "x1"), ("星耀X1 Pro", "x1_pro"), ("X1", "x1"))
    assert found(built, "星耀X1 Pro多少钱") == [("星耀X1 Pro", ("x1_pro",))]
    assert found(built, "星耀x1多少钱，X1呢") == [("星耀x1", ("x1",)), ("X1", ("x1",))]


def test_case_width_and_spaces_are_ignored_and_positions_kept() -> None:
    built = matcher(("X1 Pro", "x1_pro"))
    text = "is the Ｘ１  pro or the x1pro cheaper"
    matches = built.find(text)
    assert [text[match.start : match.end] for match in matches] == ["Ｘ１  pro", "x1pro"]


def test_matches_do_not_cut_through_latin_words_or_numbers() -> None:
    built = matcher(("pro", "p"), ("x1", "x1"), ("mAh", "battery"))
    assert found(built, "product x10 x1max") == [("x1", ("x1",))]
    assert found(built, "5000mAh pro.") == [("mAh", ("battery",)), ("pro", ("p",))]


def test_a_phrase_may_carry_several_values_and_lookup_is_exact() -> None:
    built = matcher(("价格", "price"), ("价格", "cost"), ("多少钱", "price"))
    assert found(built, "价格多少钱") == [("价格", ("price", "cost")), ("多少钱", ("price",))]
    assert built.lookup(" 价 格 ") == ("price", "cost")
    assert built.lookup("价") == ()
    assert len(built) == 2


def test_guess_language() -> None:
    assert guess_language("X1 Pro 多少钱") == "zh"
    assert guess_language("how much is the x1 pro") == "en"


def test_plural_s_is_optional_when_asked_for() -> None:
    plain = matcher(("price", "price"))
    assert found(plain, "prices?") == []
    plural = PhraseMatcher(plural_s=True)
    plural.add("price", "price")
    plural.add("colour", "colors")
    assert found(plural, "prices? Colours!") == [("prices", ("price",)), ("Colours", ("colors",))]
    assert found(plural, "pricess price s") == [("price", ("price",))]
