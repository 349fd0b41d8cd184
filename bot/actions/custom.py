"""Custom actions in Python, loaded from the project's actions file and run in-process."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import inspect
from pathlib import Path
from types import ModuleType

from bot.actions.responses import ResponseRenderer
from bot.actions.sdk import ACTION_ATTRIBUTE, VALIDATOR_ATTRIBUTE, ActionContext, ActionFunction, ValidatorFunction
from bot.errors import ActionError, ProjectError
from bot.events import Event, Session
from bot.protocols import TraceSink
from bot.types import Domain


class PythonAction:
    def __init__(self, name: str, function: ActionFunction, project_dir: Path, renderer: ResponseRenderer) -> None:
        self.name = name
        self._function = function
        self._project_dir = project_dir
        self._renderer = renderer

    async def run(self, session: Session, domain: Domain, trace: TraceSink) -> list[Event]:
        context = ActionContext(session, domain, self._project_dir, self._renderer)
        try:
            if inspect.iscoroutinefunction(self._function):
                result = await self._function(context)
            else:  # a blocking function (a database, an HTTP client) must not stall other conversations
                result = await asyncio.to_thread(self._function, context)
        except Exception as err:  # a custom action's bug becomes this turn's failure, not the server's
            raise ActionError(f"custom action {self.name!r} failed: {type(err).__name__}: {err}") from err
        if not isinstance(result, list) or not all(isinstance(e, Event) for e in result):
            raise ActionError(f"custom action {self.name!r} must return a list of events, got {type(result).__name__}")
        return result


def load_python_actions(path: Path, renderer: ResponseRenderer) -> dict[str, PythonAction]:
    """Every function decorated with `@action(name)` in the file at `path` (none if it does not exist)."""
    module = _load_module(path)
    actions: dict[str, PythonAction] = {}
    for value in vars(module).values() if module is not None else ():
        name = getattr(value, ACTION_ATTRIBUTE, None)
        if isinstance(name, str) and callable(value):
            actions[name] = PythonAction(name, value, path.parent, renderer)
    return actions


def load_validators(path: Path) -> dict[str, ValidatorFunction]:
    """Every function decorated with `@validator(name)` in the file at `path`."""
    module = _load_module(path)
    found: dict[str, ValidatorFunction] = {}
    for value in vars(module).values() if module is not None else ():
        name = getattr(value, VALIDATOR_ATTRIBUTE, None)
        if isinstance(name, str) and callable(value):
            found[name] = value
    return found


_MODULES: dict[tuple[Path, int], ModuleType] = {}


def _load_module(path: Path) -> ModuleType | None:
    """The project's actions module, imported once per version of the file (actions and validators share it)."""
    if not path.exists():
        return None
    key = (path.resolve(), path.stat().st_mtime_ns)
    if key in _MODULES:
        return _MODULES[key]
    module_name = "kefu_actions_" + hashlib.sha1(str(key[0]).encode(), usedforsecurity=False).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ProjectError("cannot be imported as Python", path=str(path))
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # the project's code: report any import failure with the file
        raise ProjectError(f"failed to import custom actions: {type(err).__name__}: {err}", path=str(path)) from err
    _MODULES[key] = module
    return module
