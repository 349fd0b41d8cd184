"""Cleaning user text before NLU: width folding, control characters, and a length cap."""

from __future__ import annotations

import re

# C0/C1 controls except tab and newline, the zero-width and bidi controls people paste by accident, and lone
# surrogates (the JSON string "\ud800" decodes to one; tokenizers and the embedder need text that is UTF-8).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff\ud800-\udfff]")
_SPACE = re.compile(r"\s+")
# Full-width digits and Latin letters -> ASCII; punctuation such as "，" stays as the user typed it.
_WIDTH = {code: code - 0xFEE0 for code in [*range(0xFF10, 0xFF1A), *range(0xFF21, 0xFF3B), *range(0xFF41, 0xFF5B)]}


def clean_text(text: str, max_chars: int) -> tuple[str, tuple[str, ...]]:
    """The text with full-width letters and digits folded to ASCII, without control characters or runs
    of white space, cut to `max_chars`; the second value says what was cut.

    Offsets of the entities found later refer to this text, which is the `NluResult.text`.
    """
    cleaned = _SPACE.sub(" ", _CONTROL.sub("", text.translate(_WIDTH))).strip()
    if len(cleaned) <= max_chars:
        return cleaned, ()
    return cleaned[:max_chars], (f"message truncated from {len(cleaned)} to {max_chars} characters for NLU",)
