"""HTML pages as text sections: headings give the path, scripts, navigation and forms are dropped."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from knowledge.chunking import Outline, Parsed

_DROPPED = frozenset({"script", "style", "nav", "header", "footer", "noscript", "svg", "form", "template"})
_UNCLOSED_TAG = re.compile(r"<(?!!--)(?=[^<>]*(?:<|\Z))")
_HEADING_LEVELS = {f"h{level}": level for level in range(1, 7)}
_CELLS = frozenset({"td", "th"})
_BLOCKS = frozenset(
    {"p", "div", "li", "ul", "ol", "dl", "dt", "dd", "blockquote", "section", "article", "main", "aside", "pre"}
    | {"table", "caption", "tr", "br", "hr", "figure", "figcaption", "address", "details", "summary", "body"}
)


class _HtmlText(HTMLParser):
    """Visible text of an HTML page by heading; block elements end a paragraph, table rows become "a | b"."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.outline = Outline(0)
        self.title_parts: list[str] = []
        self._text: list[str] = []
        self._cells: list[str] = []
        self._dropped = 0  # depth inside script, nav and the like
        self._pre = 0
        self._heading = 0  # the level of the open heading, 0 when none
        self._in_title = self._in_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROPPED:
            self._dropped += 1
        elif self._dropped:
            return
        elif tag == "title":
            self._in_title = True
        elif tag in _HEADING_LEVELS:
            self._end_row()
            self._heading = _HEADING_LEVELS[tag]
        elif tag in _CELLS:
            self._end_cell()
            self._in_cell = True
        else:
            self._end_block(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROPPED:
            self._dropped = max(0, self._dropped - 1)
        elif self._dropped:
            return
        elif tag == "title":
            self._in_title = False
        elif tag in _HEADING_LEVELS and self._heading:
            self.outline.heading(self._heading, self._take(), 0)
            self._heading = 0
        elif tag in _CELLS:
            self._end_cell()
        else:
            self._end_block(tag)

    def handle_data(self, data: str) -> None:
        if not self._dropped:
            (self.title_parts if self._in_title else self._text).append(data)

    def close(self) -> None:
        super().close()
        self._end_row()
        self.outline.close()

    def _end_block(self, tag: str) -> None:
        if tag not in _BLOCKS:
            return
        if tag in ("tr", "table"):
            self._end_row()
        elif self._in_cell or self._heading:  # a <p> inside a cell or a heading does not split it
            self._text.append(" ")
        else:
            self._add(self._take())
        if tag == "pre":  # both <pre> and </pre> come through here
            self._pre = 1 - self._pre

    def _end_cell(self) -> None:
        if self._in_cell:
            self._cells.append(self._take())
            self._in_cell = False

    def _end_row(self) -> None:
        self._end_cell()
        self._add(" | ".join(self._cells) if self._cells else self._take())
        self._cells = []

    def _add(self, block: str) -> None:
        if block:
            self.outline.lines.extend((block, ""))  # the blank line ends the sentence with the block

    def _take(self) -> str:
        text, self._text = "".join(self._text), []
        if self._pre:
            return "\n".join(" ".join(line.split()) for line in text.split("\n"))
        return " ".join(text.split())


def parse_html(text: str) -> Parsed:
    parser = _HtmlText()
    parser.feed(_defuse(text))
    parser.close()
    title = " ".join("".join(parser.title_parts).split())
    return Parsed(title or parser.outline.title, parser.outline.sections)


def _defuse(html: str) -> str:
    """The page without the "<" that open no tag: escaped as text, or cut off for a comment never closed.

    CPython's HTMLParser rescans the rest of the page for each of them: 80 KB of "<a<a<a" or "<!--<!--"
    takes seconds, 20 MB would take hours. A "<" that no ">" closes before the next "<" is such a one.
    """
    closed = html.rfind("-->") + 1
    unclosed = html.find("<!--", closed)
    if unclosed >= 0:  # as in browsers, a comment never closed runs to the end of the page
        html = html[:unclosed]
    return _UNCLOSED_TAG.sub("&lt;", html)
