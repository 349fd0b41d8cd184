"""What the models kefu trains itself (NLU, dialogue policy) share: reproducible training and their meta.json."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch and run on one thread, restoring the caller's RNG state and thread count afterwards.

    One thread fixes the order of floating-point reductions, so CPU training is bit-for-bit
    reproducible; these networks are too small to gain from more threads anyway.
    """
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


def read_meta(path: Path, format_version: int) -> dict[str, Any] | None:
    """A model's meta.json, or None when it is missing, unreadable or of another format."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("format") != format_version:
        return None
    return meta


def write_model(model_dir: Path, model_file: str, tensors: dict[str, torch.Tensor], meta_file: str, meta: Any) -> None:
    """Save the tensors (loadable with `weights_only`) and the meta.json, each replaced atomically, so a
    crash mid-save leaves the previous model readable."""
    model_dir.mkdir(parents=True, exist_ok=True)
    _atomic_write(model_dir / model_file, lambda path: torch.save(tensors, path))
    text = json.dumps(meta, ensure_ascii=False, indent=1)
    _atomic_write(model_dir / meta_file, lambda path: path.write_text(text, encoding="utf-8"))


def _atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    tmp.replace(path)
