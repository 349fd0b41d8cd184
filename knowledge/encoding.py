"""Decoding knowledge files whose encoding nobody wrote down: UTF-8 first, then what Chinese tools save."""

from __future__ import annotations

import codecs
from pathlib import Path

from bot.errors import ProjectError

_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"))
_BOMS_16 = ((codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
# Excel and Notepad on a Chinese Windows save GBK (a subset of GB 18030); Taiwan and Hong Kong use Big5.
_FALLBACKS = ("gb18030", "big5")


def read_text_file(path: Path) -> str:
    """A knowledge file's text (see `decode_text`); ProjectError when it cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ProjectError(
            f"cannot read the file ({err.strerror}); check that it is a readable file", path=str(path)
        ) from err
    return decode_text(data, str(path))


def decode_text(data: bytes, path: str) -> str:
    """The text of a file: by its byte-order mark, else UTF-8, else GB 18030 or Big5 when they decode cleanly.

    Raises ProjectError, naming the line of the first undecodable byte, when none fits.
    """
    for bom, encoding in (*_BOMS, *_BOMS_16):  # UTF-32 LE starts like UTF-16 LE, so it is tried first
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as err:
                raise _error(data, err, path) from err
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as utf8_error:
        for encoding in _FALLBACKS:
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError:
                continue
            if "\x00" not in text:
                return text
        raise _error(data, utf8_error, path) from utf8_error


def _error(data: bytes, err: UnicodeDecodeError, path: str) -> ProjectError:
    line = data[: err.start].count(b"\n") + 1
    return ProjectError(
        f"cannot tell the text encoding ({err.reason} at byte {err.start}); save the file as UTF-8",
        path=path,
        line=line,
    )
