"""Documents for the knowledge base: Markdown, HTML and plain-text files read into cited chunks.

Markdown may start with YAML front matter (`title`, `lang`, `tags`, `product`); its headings, like HTML's
h1-h6, give each chunk a heading path for citations. A file that cannot be read is reported and skipped.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

import yaml

from bot.errors import ProjectError
from bot.types import Language
from knowledge.chunking import Outline, Parsed, Section, chunk_sections
from knowledge.encoding import decode_text
from knowledge.html_text import parse_html
from knowledge.matching import guess_language
from knowledge.problems import Problem

DOCUMENT_SUFFIXES = (".md", ".markdown", ".html", ".htm", ".txt")
CITATION_SEPARATOR = " › "
LANGUAGES: tuple[Language, ...] = get_args(Language)

_TAG_SEPARATORS = re.compile(r"[,，|｜]")


@dataclass(frozen=True, slots=True)
class DocChunk:
    """A passage of a document with where it came from: file, title, heading path and line."""

    id: str  # "doc:<source>#<n>": stable while the file is unchanged
    text: str
    source: str  # the file's relative POSIX path inside the documents folder
    title: str
    headings: tuple[str, ...]
    lang: Language
    tags: tuple[str, ...] = ()
    product: str = ""
    line: int = 0  # where the chunk starts in the file (1-based); 0 for HTML

    @property
    def citation(self) -> str:
        """The file and the heading path, e.g. "policies/returns.md › 退货政策 › 七天无理由退货"."""
        return CITATION_SEPARATOR.join((self.source, *self.headings))


@dataclass(frozen=True, slots=True)
class _Meta:
    title: str = ""
    lang: Language | None = None
    tags: tuple[str, ...] = ()
    product: str = ""


def contextual_text(chunk: DocChunk) -> str:
    """ "title › headings: text", for embedding and keyword search; a heading equal to the title is not repeated."""
    path = [chunk.title]
    for heading in chunk.headings:
        if heading != path[-1]:
            path.append(heading)
    return f"{CITATION_SEPARATOR.join(path)}: {chunk.text}"


def load_documents(
    folder: Path, problems: list[Problem], *, max_chars: int = 400, max_file_bytes: int = 20_000_000
) -> tuple[DocChunk, ...]:
    """The chunks of every document under `folder` (recursively, by relative path); a missing folder has none.

    Hidden files and folders and other suffixes are ignored. A file that cannot be read or decoded, is larger
    than `max_file_bytes` or has no text is added to `problems` and skipped; the other files still load.
    """
    if not folder.is_dir():
        return ()
    chunks: list[DocChunk] = []
    for path, source in _document_files(folder):
        try:
            size = path.stat().st_size
            if size > max_file_bytes:
                raise ProjectError(
                    f"the file is {_size(size)}, larger than {_size(max_file_bytes)}; split it into smaller files",
                    path=str(path),
                )
            chunks.extend(read_document(path, source, max_chars=max_chars))
        except ProjectError as err:
            problems.append(Problem.of(err))
        except OSError as err:
            problems.append(Problem(str(path), 0, f"cannot read the file ({err.strerror}); check its permissions"))
    return tuple(chunks)


def read_document(path: Path, source: str, *, max_chars: int = 400) -> list[DocChunk]:
    """The chunks of one document, `source` being its relative path in ids and citations.

    Raises ProjectError for an unreadable or undecodable file, invalid front matter, or a file without text.
    """
    where = str(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ProjectError(f"cannot read the file ({err.strerror}); check its permissions", path=where) from err
    text = decode_text(data, where).replace("\r\n", "\n").replace("\r", "\n")
    meta, parsed = _parse(text, path.suffix.lower(), where)
    chunks = chunk_sections(parsed.sections, max_chars=max_chars)
    if not chunks:
        raise ProjectError("the document has no text; add some or delete the file", path=where)
    title = meta.title or parsed.title or path.stem
    return [
        DocChunk(
            id=f"doc:{source}#{number}",
            text=chunk.text,
            source=source,
            title=title,
            headings=chunk.headings,
            lang=meta.lang or guess_language(chunk.text),
            tags=meta.tags,
            product=meta.product,
            line=chunk.line,
        )
        for number, chunk in enumerate(chunks)
    ]


def _document_files(folder: Path) -> list[tuple[Path, str]]:
    found: list[tuple[Path, str]] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [name for name in dirs if not name.startswith(".")]  # pruned: .git may be huge
        for name in files:
            if not name.startswith(".") and name.lower().endswith(DOCUMENT_SUFFIXES):
                path = Path(root, name)
                found.append((path, path.relative_to(folder).as_posix()))
    return sorted(found, key=lambda item: item[1])


def _size(size: int) -> str:
    if size < 1_000_000:
        return f"{size:,} bytes"
    return f"{size / 1_000_000:.1f}".removesuffix(".0") + " MB"


def _parse(text: str, suffix: str, where: str) -> tuple[_Meta, Parsed]:
    if suffix in (".md", ".markdown"):
        lines = text.split("\n")
        meta, body = _front_matter(lines, where)
        return meta, _parse_markdown(lines[body:], first_line=body + 1)
    if suffix in (".html", ".htm"):
        return _Meta(), parse_html(text)
    if suffix == ".txt":
        return _Meta(), Parsed("", [Section((), text, 1)])
    raise ProjectError(f"unknown document type {suffix!r}; use one of: {', '.join(DOCUMENT_SUFFIXES)}", path=where)


# Front matter


def _front_matter(lines: list[str], where: str) -> tuple[_Meta, int]:
    """The metadata between the `---` lines at the top, and the index of the first line after them."""
    if not lines or lines[0].rstrip() != "---":
        return _Meta(), 0
    for end in range(1, len(lines)):
        if lines[end].rstrip() in ("---", "..."):
            block = lines[1:end]
            return _meta(_load_yaml(block, where), block, where), end + 1
    raise ProjectError(
        "the front matter opened on line 1 is never closed; end it with a '---' line", path=where, line=1
    )


def _load_yaml(block: list[str], where: str) -> Mapping[object, object]:
    try:
        data = yaml.safe_load("\n".join(block))
    except yaml.MarkedYAMLError as err:
        line = err.problem_mark.line + 2 if err.problem_mark else 1  # the block starts on line 2
        raise ProjectError(
            f"invalid YAML in the front matter ({err.problem}); fix it, or quote values that contain ':' or '#'",
            path=where,
            line=line,
        ) from err
    except yaml.YAMLError as err:
        raise ProjectError(f"invalid YAML in the front matter ({err}); fix it", path=where, line=1) from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ProjectError(
            "the front matter must be 'key: value' lines (title, lang, tags, product)", path=where, line=2
        )
    return data


def _meta(data: Mapping[object, object], block: list[str], where: str) -> _Meta:
    return _Meta(
        title=_text(data.get("title")),
        lang=_language(_text(data.get("lang")), block, where),
        tags=_tags(data.get("tags")),
        product=_text(data.get("product")),
    )


def _text(value: object) -> str:
    return "" if value is None else str(value).strip()


def _tags(value: object) -> tuple[str, ...]:
    items = [_text(item) for item in value] if isinstance(value, list | tuple) else _TAG_SEPARATORS.split(_text(value))
    return tuple(dict.fromkeys(tag for item in items if (tag := item.strip())))


def _language(raw: str, block: list[str], where: str) -> Language | None:
    # "zh-CN", "en_US" and the like name the same two languages.
    code = raw.lower().replace("_", "-").split("-")[0]
    if not code:
        return None
    for language in LANGUAGES:
        if code == language:
            return language
    line = next((number for number, text in enumerate(block, start=2) if re.match(r"\s*lang\s*:", text)), 1)
    raise ProjectError(
        f"unknown lang {raw!r} in the front matter; use one of: {', '.join(LANGUAGES)}", path=where, line=line
    )


# Markdown

_ATX = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*))?$")
_SETEXT = re.compile(r" {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_RULE = re.compile(r" {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_LINK_DEFINITION = re.compile(r" {0,3}\[[^\]]+\]:[ \t]*\S+")
_LIST_OR_QUOTE = re.compile(r"[ \t]*(?:(?:[-*+]|\d{1,9}[.)])[ \t]+(?:\[[ xX]\][ \t]+)?|(?:>[ \t]?)+)")
# Inline patterns never scan past the character that starts another match, so a long line with many
# unclosed "[" or "**" stays linear instead of quadratic.
_IMAGE = re.compile(r"!\[[^\[\]\n]*\](?:\([^()\n]*\)|\[[^\[\]\n]*\])")
_LINK = re.compile(r"\[([^\[\]\n]*)\](?:\([^()\n]*\)|\[[^\[\]\n]*\])")
_AUTOLINK = re.compile(r"<((?:https?|mailto):[^<>\s]+)>")
_CODE = re.compile(r"(`+)([^`]+)\1")
_HTML_TAG = re.compile(r"<!--[^<>]*-->|</?[A-Za-z][^<>]*>")
_EMPHASIS = re.compile(
    r"(\*\*|__|~~)(?=\S)((?:(?!\1).)+?)(?<=\S)\1|\*(?=[^\s*])([^*]+?)(?<=[^\s*])\*|(?<!\w)_(?=\S)([^_]+?)(?<=\S)_(?!\w)"
)
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|<>~])")
_HIDDEN = 0xE000
_UNHIDE = re.compile("[\ue000-\ue07f]")


def _parse_markdown(lines: list[str], first_line: int) -> Parsed:
    outline = Outline(first_line)
    fence = ""  # the ``` or ~~~ of the open code block: its lines are text, never headings
    paragraph = False  # whether the previous line was paragraph text, which a setext underline makes a heading
    for number, raw in enumerate(lines, start=first_line):
        after_paragraph, paragraph = paragraph, False
        if fence:
            closed = set(raw.strip()) == {fence[0]} and len(raw.strip()) >= len(fence)
            outline.lines.append("" if closed else raw)
            fence = "" if closed else fence
        elif opened := _FENCE.match(raw):
            fence = opened.group(1)
            outline.lines.append("")
        elif heading := _ATX.match(raw):
            outline.heading(len(heading.group(1)), _inline(_heading_text(heading.group(2) or "")), number + 1)
        elif after_paragraph and (underline := _SETEXT.match(raw)):
            text = outline.lines.pop()
            outline.heading(1 if underline.group(1)[0] == "=" else 2, text, number + 1)
        else:
            text, paragraph = _block_line(raw)
            outline.lines.append(text)
    outline.close()
    return Parsed(outline.title, outline.sections)


def _heading_text(text: str) -> str:
    """Without the optional closing #s ("## Title ##"); rstrip rather than a regex, which is quadratic on spaces."""
    text = text.rstrip()
    bare = text.rstrip("#")
    return bare.rstrip() if not bare or bare[-1] in " \t" else text


def _block_line(raw: str) -> tuple[str, bool]:
    """A line's visible text, and whether it is paragraph text (not a list item, quote or table row)."""
    stripped = raw.strip()
    if not stripped or _RULE.match(raw) or _LINK_DEFINITION.match(raw):
        return "", False
    if "|" in stripped and set(stripped) <= set("|:- \t") and "-" in stripped:
        return "", False  # the |---|:---:| line under a table's header
    if stripped.startswith("|"):
        cells = re.split(r"(?<!\\)\|", stripped.strip("|"))
        return " | ".join(_inline(cell) for cell in cells), False
    if marker := _LIST_OR_QUOTE.match(raw):
        return _inline(raw[marker.end() :]), False
    return _inline(raw), True


def _inline(text: str) -> str:
    """Visible text of inline Markdown: images dropped, links to their text, emphasis and code unwrapped."""
    # Escaped characters ("\\*") are hidden in the private-use area until the end, so no pattern sees them.
    text = _ESCAPE.sub(lambda match: chr(_HIDDEN + ord(match.group(1))), text)
    text = _AUTOLINK.sub(r"\1", _LINK.sub(r"\1", _IMAGE.sub("", text)))
    parts = _CODE.split(text)  # [text, ticks, code, text, ...]: code is kept verbatim
    visible = []
    for index in range(0, len(parts), 3):
        visible.append(_plain(parts[index]))
        if index + 2 < len(parts):
            visible.append(parts[index + 2].strip())
    return _UNHIDE.sub(lambda match: chr(ord(match.group()) - _HIDDEN), "".join(visible)).strip()


def _plain(text: str) -> str:
    text = _HTML_TAG.sub("", text)
    previous = None
    while previous != text:  # nested emphasis, e.g. ***both*** or **a _b_**
        previous, text = text, _EMPHASIS.sub(lambda match: next(group for group in match.groups()[1:] if group), text)
    return text
