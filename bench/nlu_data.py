"""Public intent data sets as kefu `NluData`: CLINC150 (with its out-of-scope queries) and BANKING77."""

from __future__ import annotations

import csv
import json
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from bot.types import NluData, NluExample

DATASETS = ("clinc150", "banking77", "banking77-10")
OOS = "out_of_scope"


@dataclass(frozen=True)
class Dataset:
    name: str
    train: tuple[NluExample, ...]
    val: tuple[NluExample, ...]
    test: tuple[NluExample, ...]

    @property
    def data(self) -> NluData:
        return NluData(self.train)

    @property
    def has_oos(self) -> bool:
        return any(e.intent == OOS for e in self.test)


def load(name: str, root: Path) -> Dataset | None:
    """The named data set from `root` (../shared/data), or None when its files are not there."""
    if name == "clinc150":
        return _clinc(root / "clinc150" / "data_full.json")
    if name in ("banking77", "banking77-10"):
        return _banking(root / "banking77", per_intent=10 if name.endswith("-10") else None, name=name)
    raise SystemExit(f"unknown data set {name!r}; choose from {', '.join(DATASETS)}")


def _clinc(path: Path) -> Dataset | None:
    if not path.is_file():
        return None
    raw = json.loads(path.read_text(encoding="utf-8"))

    def rows(split: str) -> tuple[NluExample, ...]:
        inside = [NluExample(text, intent) for text, intent in raw[split]]
        return (*inside, *(NluExample(text, OOS) for text, _ in raw[f"oos_{split}"]))

    # oos_train becomes an intent of its own; the threshold on top is chosen on the validation split.
    return Dataset("clinc150", rows("train"), rows("val"), rows("test"))


def _banking(folder: Path, *, per_intent: int | None, name: str) -> Dataset | None:
    if not (folder / "train.csv").is_file():
        return None

    def rows(file: str) -> list[NluExample]:
        with (folder / file).open(encoding="utf-8", newline="") as handle:
            return [NluExample(row["text"], row["category"]) for row in csv.DictReader(handle)]

    train = rows("train.csv")
    if per_intent is not None:
        train = _sample(train, per_intent, seed=0)
    return Dataset(name, tuple(train), (), tuple(rows("test.csv")))


def _sample(examples: list[NluExample], per_intent: int, seed: int) -> list[NluExample]:
    by_intent: dict[str, list[NluExample]] = defaultdict(list)
    for example in examples:
        by_intent[example.intent].append(example)
    rng = random.Random(seed)
    return [
        e
        for intent in sorted(by_intent)
        for e in rng.sample(by_intent[intent], min(per_intent, len(by_intent[intent])))
    ]
