"""Documents: Markdown, HTML and plain text read into chunks that keep headings, sentences and citations."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.errors import ProjectError
from knowledge.chunking import Section, chunk_sections, split_sentences
from knowledge.documents import DocChunk, contextual_text, load_documents, read_document
from knowledge.problems import Problem

RETURNS_MD = """\
---
title: 退货与换货
lang: zh
tags: [售后, returns]
product: X1 Pro
---

# 退货政策

收到商品后请检查包装。如有问题，请联系**客服**。

## 七天无理由退货

签收之日起七天内可申请退货！详见[售后页面](https://example.com/after)。![图](a.png)

```bash
# not a heading
kefu run
```

| 项目 | 期限 |
|------|:----:|
| 退货 | 7 天 |

### 运费

质量问题由我们承担运费。

## 换货 ##

- 十五天内可换货
- 需要*原包装*和 `SN` 码
"""

PAGE_HTML = """\
<!DOCTYPE html>
<html><head><title>Shipping &amp; Delivery</title><style>p { color: red }</style>
<script>var x = "<p>hidden script</p>";</script></head>
<body><nav><a href="/">Home</a> | <a href="/faq">FAQ</a></nav>
<header>Site header</header>
<h1>Shipping</h1><p>We ship within <b>24 hours</b>. Orders over &yen;99 ship free &amp; fast.</p>
<h2>Rates</h2>
<table><tr><th>Region</th><th>Price</th></tr><tr><td>Mainland</td><td><p>&yen;10</p></td></tr></table>
<ul><li>Express</li><li>Standard</li></ul>
<footer>© 2024 Shop</footer></body></html>
"""


def write(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def load(folder: Path, **options: int) -> tuple[tuple[DocChunk, ...], list[Problem]]:
    problems: list[Problem] = []
    return load_documents(folder, problems, **options), problems


def squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


# Markdown


def test_markdown_front_matter_gives_title_lang_tags_and_product(tmp_path: Path) -> None:
    write(tmp_path, "policies/returns.md", RETURNS_MD)
    chunks, problems = load(tmp_path)
    assert problems == []
    assert [chunk.id for chunk in chunks] == [f"doc:policies/returns.md#{n}" for n in range(len(chunks))]
    assert {(chunk.source, chunk.title, chunk.lang, chunk.tags, chunk.product) for chunk in chunks} == {
        ("policies/returns.md", "退货与换货", "zh", ("售后", "returns"), "X1 Pro")
    }


def test_markdown_heading_paths_citations_and_lines(tmp_path: Path) -> None:
    write(tmp_path, "policies/returns.md", RETURNS_MD)
    chunks, _ = load(tmp_path, max_chars=45)
    assert [(chunk.headings, chunk.line) for chunk in chunks] == [
        (("退货政策",), 10),
        (("退货政策", "七天无理由退货"), 14),
        (("退货政策", "七天无理由退货"), 17),  # the code in the fence, then the table
        (("退货政策", "七天无理由退货", "运费"), 27),
        (("退货政策", "换货"), 31),
    ]
    assert chunks[1].citation == "policies/returns.md › 退货政策 › 七天无理由退货"
    assert contextual_text(chunks[3]) == "退货与换货 › 退货政策 › 七天无理由退货 › 运费: 质量问题由我们承担运费。"


def test_markdown_code_tables_links_and_emphasis_become_plain_text(tmp_path: Path) -> None:
    write(tmp_path, "returns.md", RETURNS_MD)
    chunks, _ = load(tmp_path, max_chars=45)
    texts = [chunk.text for chunk in chunks]
    assert texts[0] == "收到商品后请检查包装。如有问题，请联系客服。"
    assert texts[1] == "签收之日起七天内可申请退货！详见售后页面。"  # link text kept, URL and image dropped
    assert texts[2] == "# not a heading\nkefu run\n项目 | 期限\n退货 | 7 天"  # the |---| line is gone
    assert texts[4] == "十五天内可换货\n需要原包装和 SN 码"


def test_markdown_escapes_reference_links_and_inline_html(tmp_path: Path) -> None:
    text = "# C# tips\n\nUse \\*literal\\* stars, a [guide][ref] and <b>bold</b> __text__.\n\n[ref]: https://x.y\n"
    (chunk,) = read_document(write(tmp_path, "tips.md", text), "tips.md")
    assert (chunk.headings, chunk.text) == (("C# tips",), "Use *literal* stars, a guide and bold text.")


def test_title_falls_back_to_first_h1_then_file_stem(tmp_path: Path) -> None:
    write(tmp_path, "a.md", "Intro text.\n\n# Warranty\n\nTwo years.\n\n# Second H1\n\nMore.\n")
    write(tmp_path, "b.md", "## Only a subheading\n\nText.\n")
    chunks, _ = load(tmp_path)
    assert [(chunk.source, chunk.title, chunk.headings) for chunk in chunks] == [
        ("a.md", "Warranty", ()),
        ("a.md", "Warranty", ("Warranty",)),
        ("a.md", "Warranty", ("Second H1",)),  # a heading at the same level replaces its sibling
        ("b.md", "b", ("Only a subheading",)),
    ]
    assert contextual_text(chunks[1]) == "Warranty: Two years."  # the H1 is not repeated after the title


def test_setext_headings_and_tags_as_a_string(tmp_path: Path) -> None:
    text = "---\ntags: shipping, 物流 | orders\n---\nDelivery\n========\nFast.\n\nAbroad\n------\nSlow.\n"
    chunks = read_document(write(tmp_path, "d.md", text), "d.md")
    assert [(chunk.headings, chunk.text, chunk.line) for chunk in chunks] == [
        (("Delivery",), "Fast.", 6),
        (("Delivery", "Abroad"), "Slow.", 10),
    ]
    assert chunks[0].tags == ("shipping", "物流", "orders")
    assert chunks[0].lang == "en"  # no lang in the front matter: guessed per chunk


def test_ids_are_stable_when_other_files_change(tmp_path: Path) -> None:
    write(tmp_path, "b.md", RETURNS_MD)
    before, _ = load(tmp_path)
    write(tmp_path, "a.md", "# New\n\nAnother document.\n")
    after, _ = load(tmp_path)
    assert [chunk for chunk in after if chunk.source == "b.md"] == list(before)
    assert after[0].id == "doc:a.md#0"


# Sentences and chunks


def test_chinese_sentences_end_at_chinese_punctuation_with_closing_quotes() -> None:
    text = "他说：“好的。”然后走了！真的吗？是的；可以……「明白了。」最后一句"
    assert split_sentences(text) == [
        "他说：“好的。”",
        "然后走了！",
        "真的吗？",
        "是的；",
        "可以……",
        "「明白了。」",
        "最后一句",
    ]


def test_english_sentences_keep_decimals_and_abbreviations() -> None:
    text = "The X1 is 3.5 inches, e.g. small. Dr. Li agrees. U.S. buyers pay $9.99! Really? Yes.\n\nNew paragraph"
    assert split_sentences(text) == [
        "The X1 is 3.5 inches, e.g. small.",
        "Dr. Li agrees.",
        "U.S. buyers pay $9.99!",
        "Really?",
        "Yes.",
        "New paragraph",
    ]


def test_blank_lines_end_sentences_and_whitespace_is_collapsed() -> None:
    assert split_sentences("  first   line\nwraps here\n\n\n 第二段 ") == ["first line\nwraps here", "第二段"]


def test_long_chinese_section_is_chunked_without_losing_or_reordering_sentences() -> None:
    first = "".join(f"第{n}条：商品签收后七天内可以申请退货，运费由买家承担。" for n in range(30))
    second = "".join(f"第{n}项：换货需要保持包装完好！" for n in range(12))
    sections = [Section(("退货",), first, 3), Section(("退货", "换货"), second, 9)]
    chunks = chunk_sections(sections, max_chars=100)
    assert len(chunks) > 6
    assert all(0 < len(chunk.text) <= 100 for chunk in chunks)
    for section in sections:
        mine = [chunk for chunk in chunks if chunk.headings == section.headings]
        assert "".join(chunk.text for chunk in mine) == section.text  # nothing lost, in order, no overlap
        assert all(chunk.text.endswith(("。", "！")) for chunk in mine)  # cut between whole sentences
        assert all(chunk.line == section.line for chunk in mine)  # one line of text


def test_short_sentences_are_packed_greedily_and_lines_counted() -> None:
    text = "One.\nTwo.\n\nThree.\nFour is a longer sentence."
    chunks = chunk_sections([Section(("H",), text, 5)], max_chars=16)
    assert [(chunk.text, chunk.line) for chunk in chunks] == [
        ("One.\nTwo.", 5),
        ("Three.\nFour is a", 8),  # the long sentence is cut at a space, and its pieces packed like sentences
        ("longer sentence.", 9),
    ]


def test_overlong_sentence_is_cut_at_a_comma_near_the_end() -> None:
    sentence = "这款耳机支持主动降噪，" * 6 + "续航三十小时。"
    chunks = chunk_sections([Section((), sentence, 1)], max_chars=25)
    assert all(len(chunk.text) <= 25 for chunk in chunks)
    assert all(chunk.text.endswith("，") for chunk in chunks[:-1])
    assert "".join(chunk.text for chunk in chunks) == sentence


def test_chunking_rejects_a_nonpositive_size() -> None:
    with pytest.raises(ValueError, match="max_chars"):
        chunk_sections([Section((), "text", 1)], max_chars=0)


# HTML and plain text


def test_html_drops_chrome_and_keeps_headings_tables_and_entities(tmp_path: Path) -> None:
    chunks = read_document(write(tmp_path, "page.html", PAGE_HTML), "help/page.html")
    assert [(chunk.headings, chunk.text) for chunk in chunks] == [
        (("Shipping",), "We ship within 24 hours. Orders over ¥99 ship free & fast."),
        (("Shipping", "Rates"), "Region | Price\nMainland | ¥10\nExpress\nStandard"),
    ]
    assert {(chunk.title, chunk.line, chunk.lang) for chunk in chunks} == {("Shipping & Delivery", 0, "en")}
    everything = " ".join(chunk.text for chunk in chunks)
    for hidden in ("hidden script", "color", "Home", "Site header", "2024"):
        assert hidden not in everything
    assert chunks[1].citation == "help/page.html › Shipping › Rates"


def test_html_title_from_first_h1(tmp_path: Path) -> None:
    html = "<body><h1>保修</h1><div>整机保修一年。<span>电池</span>保修半年。</div><h1>其他</h1><p>无</p></body>"
    chunks = read_document(write(tmp_path, "w.htm", html), "w.htm")
    assert [(chunk.title, chunk.headings, chunk.text, chunk.lang) for chunk in chunks] == [
        ("保修", ("保修",), "整机保修一年。电池保修半年。", "zh"),
        ("保修", ("其他",), "无", "zh"),
    ]


def test_html_comments_and_stray_angle_brackets(tmp_path: Path) -> None:
    html = "<p>1 < 2 &lt; 3</p><!-- <p>old</p> --><p>" + "<a" * 20_000 + "</p><!-- never closed <p>gone</p>"
    chunks = read_document(write(tmp_path, "odd.html", html), "odd.html", max_chars=1_000)
    # Each stray "<" is text, and parsing stays linear (the stdlib parser alone is quadratic on these).
    assert "".join(chunk.text for chunk in chunks) == "1 < 2 < 3" + "<a" * 20_000


def test_plain_text_paragraphs_lines_and_languages(tmp_path: Path) -> None:
    text = "营业时间：每天九点到十八点。\n\n\nOpening hours: 9:00 to 18:00 every day.\n"
    chunks = read_document(write(tmp_path, "hours.txt", text), "hours.txt", max_chars=20)
    assert [(chunk.text, chunk.line, chunk.lang) for chunk in chunks] == [
        ("营业时间：每天九点到十八点。", 1, "zh"),
        ("Opening hours: 9:00", 4, "en"),
        ("to 18:00 every day.", 4, "en"),
    ]
    assert {(chunk.title, chunk.headings) for chunk in chunks} == {("hours", ())}


# Bad input


def test_gbk_text_decodes(tmp_path: Path) -> None:
    write(tmp_path, "gbk.txt", "退货政策：七天内可退货。".encode("gbk"))
    chunks, problems = load(tmp_path)
    assert problems == []
    assert [chunk.text for chunk in chunks] == ["退货政策：七天内可退货。"]


def test_undecodable_and_oversized_files_are_problems_and_others_still_load(tmp_path: Path) -> None:
    write(tmp_path, "a_binary.txt", b"hello\nworld \xff\xff\xff")
    write(tmp_path, "b_big.md", "# Big\n\n" + "x" * 500)
    write(tmp_path, "c_good.md", "# Good\n\nStill loads.")
    chunks, problems = load(tmp_path, max_file_bytes=100)
    assert [chunk.text for chunk in chunks] == ["Still loads."]
    binary, big = problems
    assert (binary.path, binary.line) == (str(tmp_path / "a_binary.txt"), 2)
    assert "save the file as UTF-8" in binary.message
    assert big.path == str(tmp_path / "b_big.md")
    assert big.message == "the file is 507 bytes, larger than 100 bytes; split it into smaller files"


def test_size_limit_message_in_megabytes(tmp_path: Path) -> None:
    write(tmp_path, "huge.txt", "字" * 700_000)  # 2.1 MB in UTF-8
    chunks, problems = load(tmp_path, max_file_bytes=2_000_000)
    assert chunks == ()
    assert [problem.message for problem in problems] == [
        "the file is 2.1 MB, larger than 2 MB; split it into smaller files"
    ]


def test_invalid_front_matter_yaml_names_the_line(tmp_path: Path) -> None:
    write(tmp_path, "bad.md", "---\ntitle: ok\ntags: [a, b\nproduct: X1\n---\n# T\n\ntext\n")
    write(tmp_path, "good.md", "text")
    chunks, problems = load(tmp_path)
    assert [chunk.source for chunk in chunks] == ["good.md"]
    (problem,) = problems
    assert problem.line == 4
    assert problem.message.startswith("invalid YAML in the front matter")


def test_front_matter_errors_raise_from_read_document(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match=r"unknown lang 'fr'.*zh, en") as caught:
        read_document(write(tmp_path, "fr.md", "---\ntitle: T\nlang: fr\n---\ntext\n"), "fr.md")
    assert caught.value.line == 3
    with pytest.raises(ProjectError, match="never closed") as caught:
        read_document(write(tmp_path, "open.md", "---\ntitle: T\n\ntext\n"), "open.md")
    assert caught.value.line == 1


def test_empty_documents_are_problems(tmp_path: Path) -> None:
    # A file without text is reported rather than silently ignored: it is usually a mistake.
    write(tmp_path, "empty.txt", "")
    write(tmp_path, "only_meta.md", "---\ntitle: Nothing\n---\n\n# Heading only\n")
    write(tmp_path, "blank.html", "<html><script>x()</script></html>")
    chunks, problems = load(tmp_path)
    assert chunks == ()
    assert sorted(Path(problem.path).name for problem in problems) == ["blank.html", "empty.txt", "only_meta.md"]
    assert all("has no text" in problem.message for problem in problems)


def test_hidden_and_unknown_files_are_ignored_and_order_is_by_path(tmp_path: Path) -> None:
    write(tmp_path, "z.txt", "last")
    write(tmp_path, "a/b.MD", "# B\n\nsecond")
    write(tmp_path, "a/a.html", "<p>first</p>")
    write(tmp_path, ".hidden.md", "hidden")
    write(tmp_path, ".git/x.md", "hidden")
    write(tmp_path, "notes.docx", "binary")
    write(tmp_path, "data.csv", "a,b")
    chunks, problems = load(tmp_path)
    assert problems == []
    assert [(chunk.source, chunk.text) for chunk in chunks] == [
        ("a/a.html", "first"),
        ("a/b.MD", "second"),
        ("z.txt", "last"),
    ]


def test_missing_folder_is_empty(tmp_path: Path) -> None:
    problems: list[Problem] = []
    assert load_documents(tmp_path / "nope", problems) == ()
    assert problems == []


def test_large_document_loads_in_bounded_chunks(tmp_path: Path) -> None:
    paragraph = "这是一段用于测试的长文本，包含中文标点。It also has English sentences, 3.5 inches long. " * 12
    text = "".join(f"## 第{n}节\n\n{paragraph}\n\n" for n in range(1_700))
    write(tmp_path, "big.md", text)
    assert len(text.encode()) > 2_000_000
    chunks, problems = load(tmp_path, max_chars=300)
    assert problems == []
    assert all(0 < len(chunk.text) <= 300 for chunk in chunks)
    assert len({chunk.headings for chunk in chunks}) == 1_700
    assert squeeze("".join(chunk.text for chunk in chunks)) == squeeze(re.sub(r"## 第\d+节", "", text))
