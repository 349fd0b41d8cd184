"""The files of a small trained safety model: weights in an `.npz` (read with `allow_pickle=False`) and a JSON
meta file, written in that order and each replaced atomically, so a folder whose meta file is missing is never
trusted and a crash while saving keeps the old model."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt

from bot.errors import ModelNotTrainedError, ProjectError

M = TypeVar("M")


class LazyModel(Generic[M]):
    """A model loaded on first use, once, by whichever thread asks first (checks are built cheaply at wiring
    time and warmed up later)."""

    def __init__(self, load: Callable[[], M]) -> None:
        self._load = load
        self._model: M | None = None
        self._lock = threading.Lock()

    def get(self) -> M:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load()
        return self._model


def save_model_files(
    directory: Path, weights_file: str, weights: Mapping[str, npt.NDArray[Any]], meta_file: str, meta: dict[str, Any]
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{weights_file}.tmp"
    with tmp.open("wb") as handle:
        np.savez_compressed(handle, allow_pickle=False, **weights)
    tmp.replace(directory / weights_file)
    tmp = directory / f".{meta_file}.tmp"
    tmp.write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
    tmp.replace(directory / meta_file)


def read_model_meta(directory: Path, meta_file: str, *, kind: str, fmt: int, hint: str) -> dict[str, Any]:
    """The meta file of the `kind` model in `directory`; ModelNotTrainedError or ProjectError when unusable."""
    path = Path(directory) / meta_file
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ModelNotTrainedError(f"no {kind} model in {directory} (no {meta_file}); {hint}") from err
    except (OSError, ValueError) as err:
        raise ProjectError(f"unreadable {kind} meta file ({err}); {hint}", path=str(path)) from err
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        raise ProjectError(f"not a {kind} model of format {fmt}; {hint}", path=str(path))
    return meta


def model_files_exist(directory: Path, weights_file: str, meta_file: str, *, kind: str, fmt: int) -> bool:
    """Whether `directory` holds both files of a saved model, with a meta file of format `fmt`."""
    try:
        read_model_meta(directory, meta_file, kind=kind, fmt=fmt, hint="")
    except (ModelNotTrainedError, ProjectError):
        return False
    return (Path(directory) / weights_file).is_file()
