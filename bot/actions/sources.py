"""The project's custom actions from all their sources: Python (`actions.py`), business APIs and an action server."""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence

from bot.actions.api import api_actions
from bot.actions.remote import remote_actions
from bot.actions.responses import ResponseRenderer
from bot.errors import ProjectError
from bot.protocols import Action
from bot.settings import ActionsConfig
from bot.types import Domain

log = logging.getLogger(__name__)

API_SOURCE = "kefu.yml actions.apis"
REMOTE_SOURCE = "the action server (kefu.yml actions.server_url)"


def custom_actions(
    python: Mapping[str, Action],
    config: ActionsConfig,
    domain: Domain,
    renderer: ResponseRenderer,
    *,
    implemented: Collection[str] = (),
) -> dict[str, Action]:
    """Python actions, API actions, then the action server's; a name two sources implement is a ProjectError.

    With `server_url` set and `remote` empty, the server runs every action of domain.yml's `actions:`
    that no other source (nor `implemented`, the built-in and response actions) provides.
    """
    sources: list[tuple[str, Mapping[str, Action]]] = [
        (f"{config.module} (@action)", python),
        (API_SOURCE, api_actions(config.apis, renderer)),
    ]
    if config.server_url:
        taken = {*implemented, *python, *config.apis}
        names = config.remote or [name for name in domain.actions if name not in taken]
        log.info("actions run by the action server: %s", ", ".join(names) or "none")
        sources.append((REMOTE_SOURCE, remote_actions(names, config.server_url, config.server_timeout, renderer)))
    return merge_sources(sources)


def merge_sources(sources: Sequence[tuple[str, Mapping[str, Action]]]) -> dict[str, Action]:
    """All actions of all sources; raises ProjectError naming both sources of a name implemented twice."""
    merged: dict[str, Action] = {}
    origin: dict[str, str] = {}
    for source, actions in sources:
        for name, action in actions.items():
            if name in origin:
                raise ProjectError(
                    f"action {name!r} is implemented twice, in {origin[name]} and in {source}: keep one of them"
                )
            merged[name], origin[name] = action, source
    return merged
