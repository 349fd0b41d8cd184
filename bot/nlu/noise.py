"""Synthetic gibberish for training: keyboard mashing, random letters, random Han characters, emoji.

A model trained only on real requests must still pick one of them for "asdfgh" or "😀😀", and short
intents such as `affirm` ("ok", "好的") attract everything with few known features. Labelled
`nlu_fallback`, these examples teach the model what not understanding looks like.
"""

from __future__ import annotations

import random

from bot.types import FALLBACK_INTENT, NluExample

_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_EMOJI = "😀😂🤣😊😍🤔😭😡👍👎🙏🎉🔥💯❤️🐶🌹⭐"


def noise_examples(count: int, seed: int) -> list[NluExample]:
    """`count` deterministic gibberish examples, a quarter of each kind."""
    rng = random.Random(seed)
    makers = (_mash, _letters, _han, _emoji)
    return [NluExample(makers[i % len(makers)](rng), FALLBACK_INTENT) for i in range(count)]


def _mash(rng: random.Random) -> str:
    row = rng.choice(_ROWS)
    start = rng.randrange(len(row) - 3)
    return row[start : start + rng.randint(3, len(row) - start)]


def _letters(rng: random.Random) -> str:
    words = ("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 8))) for _ in range(3))
    return " ".join(list(words)[: rng.randint(1, 3)])


def _han(rng: random.Random) -> str:
    return "".join(chr(rng.randint(0x4E00, 0x9FA5)) for _ in range(rng.randint(2, 6)))


def _emoji(rng: random.Random) -> str:
    return "".join(rng.choice(_EMOJI) for _ in range(rng.randint(1, 3)))
