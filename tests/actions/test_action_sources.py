"""Custom actions from Python, kefu.yml's APIs and an action server: who runs what, and names taken twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.actions.answer import AnswerAction
from bot.actions.api import ApiAction
from bot.actions.custom import PythonAction
from bot.actions.remote import RemoteAction
from bot.actions.responses import ResponseAction, ResponseRenderer
from bot.actions.sources import custom_actions
from bot.errors import ProjectError
from bot.project.loader import load_project
from bot.settings import ActionsConfig, ProjectConfig
from bot.types import Domain, ResponseVariation
from bot.wiring import Project, _actions

DOMAIN_YML = """\
version: "3.1"
intents: [track_parcel, check_order]
responses:
  utter_greet:
    - text: 您好！Hello!
actions: [action_py, action_track_parcel, action_check_order, action_refund]
"""
ACTIONS_PY = """\
from bot.actions.sdk import action

@action("action_py")
def run(ctx):
    return []
"""
API = {"url": "https://parcels.example.com/track/{{ tracking_no }}"}
DOMAIN = Domain(
    intents=("track_parcel",),
    responses={"utter_greet": (ResponseVariation("您好！Hello!"),)},
    actions=("action_py", "action_track_parcel", "action_check_order", "action_refund"),
)
RENDERER = ResponseRenderer(DOMAIN)


def config(**actions: object) -> ActionsConfig:
    return ActionsConfig.model_validate(actions)


def test_the_server_runs_every_domain_action_nothing_else_implements() -> None:
    python = {"action_py": ResponseAction("utter_greet", RENDERER)}
    found = custom_actions(
        python,
        config(server_url="http://localhost:5055", apis={"action_track_parcel": API}),
        DOMAIN,
        RENDERER,
        implemented={"utter_greet"},
    )
    assert {name: type(a).__name__ for name, a in found.items()} == {
        "action_py": "ResponseAction",
        "action_track_parcel": "ApiAction",
        "action_check_order": "RemoteAction",
        "action_refund": "RemoteAction",
    }


def test_without_a_server_nothing_is_remote_and_a_listed_remote_is_all_it_runs() -> None:
    assert set(custom_actions({}, config(), DOMAIN, RENDERER)) == set()
    listed = custom_actions({}, config(server_url="http://h:5055", remote=["action_refund"]), DOMAIN, RENDERER)
    assert list(listed) == ["action_refund"]


@pytest.mark.parametrize(
    ("python", "actions", "sources"),
    [
        ({"action_track_parcel"}, {"apis": {"action_track_parcel": API}},
         ("actions.py (@action)", "kefu.yml actions.apis")),
        (set(), {"apis": {"action_refund": API}, "server_url": "http://h:5055", "remote": ["action_refund"]},
         ("kefu.yml actions.apis", "the action server")),
        ({"action_py"}, {"server_url": "http://h:5055", "remote": ["action_py"]}, ("actions.py", "the action server")),
    ],
)  # fmt: skip
def test_a_name_implemented_twice_names_both_sources(python, actions, sources) -> None:
    mine = {name: ResponseAction("utter_greet", RENDERER) for name in python}
    with pytest.raises(ProjectError, match="implemented twice") as caught:
        custom_actions(mine, config(**actions), DOMAIN, RENDERER)
    assert all(source in str(caught.value) for source in sources)


def test_wiring_puts_python_api_and_remote_actions_beside_the_built_in_ones(tmp_path: Path) -> None:
    root = tmp_path / "shop"
    (root / "data").mkdir(parents=True)
    (root / "domain.yml").write_text(DOMAIN_YML, encoding="utf-8")
    (root / "actions.py").write_text(ACTIONS_PY, encoding="utf-8")
    files = load_project(root)
    actions_config = {"server_url": "http://localhost:5055", "apis": {"action_track_parcel": API}}
    project = Project(files, ProjectConfig.model_validate({"actions": actions_config}), tmp_path / ".kefu")
    renderer = ResponseRenderer(files.domain)
    actions = _actions(project, renderer, AnswerAction(None, None, renderer))  # type: ignore[arg-type]
    assert isinstance(actions["action_py"], PythonAction)
    assert isinstance(actions["action_track_parcel"], ApiAction)
    assert isinstance(actions["action_check_order"], RemoteAction)
    assert isinstance(actions["action_refund"], RemoteAction)
    assert isinstance(actions["utter_greet"], ResponseAction)
    assert "action_handoff" in actions and not isinstance(actions["action_handoff"], RemoteAction)
