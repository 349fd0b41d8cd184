"""Fuzzing the project loader (domain, training data, test stories, config.yml, kefu.yml): whatever the files
hold, opening the project either works or raises a KefuError whose message names the file; never a KeyError,
TypeError, RecursionError or a YAML error leaking out."""

from __future__ import annotations

import contextlib
import datetime
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from bot.errors import ConfigError, KefuError, ProjectError
from bot.project.init import STARTER
from bot.settings import Settings
from bot.wiring import Project, open_project
from tests.conftest import SHOP
from tests.fuzz.strategies import NASTY_PIECES, deep_json, fuzz

FILES = (
    "domain.yml",
    "data/nlu.yml",
    "data/rules.yml",
    "data/stories.yml",
    "tests/test_stories.yml",
    "config.yml",
    "kefu.yml",
)
SEEDS = {"starter": STARTER, "shop": SHOP}
# Every key the loaders read, so mutations reach past the "unknown key" checks into the parsers.
KEYS = (
    "version", "intents", "entities", "slots", "responses", "forms", "actions", "session_config", "type",
    "mappings", "entity", "intent", "not_intent", "value", "role", "group", "conditions", "active_loop",
    "values", "initial_value", "influence_conversation", "text", "buttons", "condition", "channel", "image",
    "custom", "title", "payload", "name", "required_slots", "session_expiration_time",
    "carry_over_slots_to_new_session", "nlu", "rules", "stories", "rule", "story", "steps", "action",
    "slot_was_set", "user", "or", "checkpoint", "bot", "examples", "synonym", "regex", "lookup", "pipeline",
    "language", "threshold", "conversation_start", "wait_for_user_input", "use_entities", "default_language",
    "generator", "knowledge", "safety", "dialogue", "backend", "epochs", "fallback_threshold", "<<",
)  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.dates(min_value=datetime.date(1900, 1, 1)),
    st.sampled_from(KEYS),
    st.sampled_from(NASTY_PIECES),
    st.text(max_size=30),
    st.sampled_from(["yes", "no", "on", "off", "null", "~", "0o17", "0x1F", "1_000", ".nan", "-.inf", "utter_"]),
)
yaml_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=10) | st.integers(), children, max_size=4)
    ),
    max_leaves=10,
)
# Text that is not YAML a dump would write: broken syntax, tabs, anchors, tags, deep nesting, controls.
raw_texts = st.one_of(
    st.text(max_size=300),
    st.lists(
        st.sampled_from(["\t", "- ", ": ", "[", "]", "{", "}", "&a ", "*a", "!!binary ", "!!set ", "? ", "|", ">"])
        | st.sampled_from(KEYS)
        | st.sampled_from(["\n", "\n  ", "\n    ", "'", '"', "#", "%YAML 1.1\n---\n", "---\n", "...\n"]),
        max_size=60,
    ).map("".join),
    deep_json,
    st.integers(1, 600).map(lambda n: "a:\n" + "".join(f"{' ' * (2 * i)}- \n" for i in range(n))),
)


def _seed_texts(seed: Path) -> dict[str, str | bytes]:
    return {name: (seed / name).read_text(encoding="utf-8") for name in FILES if (seed / name).is_file()}


SEED_TEXTS = {name: _seed_texts(path) for name, path in SEEDS.items()}


@st.composite
def mutated(draw: st.DrawFn, tree: Any, depth: int = 0) -> Any:
    """`tree` with one node replaced, removed or renamed, chosen by walking down from the root."""
    if not isinstance(tree, dict | list) or not tree or depth > 8 or draw(st.integers(0, 4)) == 0:
        return draw(yaml_values)
    if isinstance(tree, list):
        index = draw(st.integers(0, len(tree) - 1))
        action = draw(st.sampled_from(["descend", "descend", "delete", "duplicate"]))
        items = list(tree)
        if action == "delete":
            del items[index]
        elif action == "duplicate":
            items.insert(index, items[index])
        else:
            items[index] = draw(mutated(tree[index], depth + 1))
        return items
    key = draw(st.sampled_from(sorted(tree, key=repr)))
    action = draw(st.sampled_from(["descend", "descend", "delete", "rename"]))
    copy = dict(tree)
    if action == "delete":
        del copy[key]
    elif action == "rename":
        copy[draw(st.sampled_from(KEYS) | st.text(max_size=8))] = copy.pop(key)
    else:
        copy[key] = draw(mutated(tree[key], depth + 1))
    return copy


class Files(dict[str, str | bytes]):
    """Project files by name; the repr shows only the changes (the shop's files would make a huge one)."""

    def __init__(self, seed: str) -> None:
        super().__init__(SEED_TEXTS[seed])
        self.changes: list[str] = [f"seed {seed}"]

    def change(self, name: str, how: str, content: str | bytes | None) -> None:
        if content is None:
            self.pop(name, None)
        else:
            self[name] = content
        shown = "" if content is None else f" {content[:300]!r}" + ("..." if len(content) > 300 else "")
        self.changes.append(f"{name}: {how}{shown}")

    def __repr__(self) -> str:
        return "Files(" + "; ".join(self.changes) + ")"


def _tree(content: str | bytes | None) -> Any:
    """The YAML in a file, or an empty mapping when an earlier change left something unreadable."""
    try:
        return yaml.safe_load(content) if isinstance(content, str) else {}
    except (yaml.YAMLError, RecursionError):
        return {}


@st.composite
def mutated_projects(draw: st.DrawFn) -> Files:
    """A real project (the starter or the demo shop) with one to three files changed at the YAML level,
    or replaced by hostile text or bytes, or removed."""
    files = Files(draw(st.sampled_from(sorted(SEED_TEXTS))))
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["tree", "tree", "tree", "text", "bytes", "delete"]))
        name = draw(st.sampled_from(FILES))
        if how == "tree":
            dumped = yaml.safe_dump(draw(mutated(_tree(files.get(name)))), allow_unicode=draw(st.booleans()))
            files.change(name, how, dumped)
        elif how == "text":
            files.change(name, how, draw(raw_texts))
        elif how == "bytes":
            files.change(name, how, draw(st.binary(max_size=200) | st.sampled_from([b"\xff\xfe", b"a: [\xe4\xbd]\n"])))
        else:
            files.change(name, how, None)
    return files


# Opening a project writes nothing to the data folder; training (not fuzzed here) would.
SETTINGS = Settings(data_dir=Path(tempfile.gettempdir()) / "kefu-fuzz-never-written")


@contextlib.contextmanager
def _written(files: dict[str, str | bytes]) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="kefu-fuzz-project-") as folder:
        root = Path(folder)
        for name, content in files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8", errors="surrogatepass")
        yield root


def _open_or_refuse(files: dict[str, str | bytes]) -> Project | KefuError:
    """The opened project, or the KefuError that refused it (any other exception fails the test)."""
    with _written(files) as root:
        try:
            return open_project(root, SETTINGS)
        except KefuError as err:
            refusal = err
        _check_named(refusal, root)
        return refusal


def _check_named(refusal: KefuError, root: Path) -> None:
    """A refusal says what is wrong, in which file of the project."""
    message = str(refusal)
    assert message.strip(), f"{type(refusal).__name__} without a message"
    if isinstance(refusal, ProjectError) and refusal.path is not None:
        assert Path(refusal.path).resolve().is_relative_to(root.resolve()), message
        assert message.startswith(refusal.path), message
    if isinstance(refusal, ConfigError):
        assert "kefu.yml" in message, message


@pytest.mark.parametrize("seed", sorted(SEEDS))
def test_the_seed_projects_open(seed: str) -> None:
    project = _open_or_refuse(dict(SEED_TEXTS[seed]))
    assert isinstance(project, Project), project
    assert project.files.domain.intents and project.files.nlu.examples


@fuzz(120)
@given(files=mutated_projects())
def test_a_mutated_project_opens_or_is_refused_with_a_kefu_error(files: dict[str, str | bytes]) -> None:
    _open_or_refuse(files)


@fuzz(60)
@given(name=st.sampled_from(FILES), text=raw_texts)
def test_hostile_text_in_any_file_is_refused_with_a_kefu_error(name: str, text: str) -> None:
    files = SEED_TEXTS["starter"] | {name: text}
    _open_or_refuse(files)


def test_deep_nesting_and_bad_encodings_get_named_errors() -> None:
    """What the fuzzing found, pinned: YAML nested past the recursion limit, and a file that is not UTF-8."""
    starter = dict(SEED_TEXTS["starter"])
    deep = _open_or_refuse(starter | {"domain.yml": "[" * 5000 + "]" * 5000})
    assert isinstance(deep, ProjectError) and "nested" in str(deep) and "domain.yml" in str(deep)
    binary = _open_or_refuse(starter | {"data/nlu.yml": b"nlu: [\xff]\n"})
    assert isinstance(binary, ProjectError) and "UTF-8" in str(binary)
    annotation = '- intent: greet\n  examples: |\n    - [a]{"entity": ' + "[" * 3000 + "]" * 3000 + "}\n"
    refused = _open_or_refuse(starter | {"data/nlu.yml": "nlu:\n" + annotation})
    assert isinstance(refused, ProjectError) and "nested" in str(refused)


def test_a_date_where_a_name_belongs_is_called_a_date() -> None:
    refused = _open_or_refuse(dict(SEED_TEXTS["starter"]) | {"domain.yml": "intents:\n- 2024-01-01\n"})
    assert isinstance(refused, ProjectError) and "date" in str(refused), refused


@pytest.mark.parametrize("content", [b"language: [\xff]\n", ("[" * 5000 + "]" * 5000).encode()], ids=["latin1", "deep"])
def test_kefu_yml_that_is_not_utf8_or_nested_too_deep_is_a_config_error(content: bytes) -> None:
    """Found by fuzzing: UnicodeDecodeError and RecursionError came out of reading kefu.yml."""
    refused = _open_or_refuse(dict(SEED_TEXTS["starter"]) | {"kefu.yml": content})
    assert isinstance(refused, ConfigError) and ("UTF-8" in str(refused) or "nested" in str(refused)), refused
