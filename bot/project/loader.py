"""Load a kefu project folder (Rasa 3.x layout) into `ProjectFiles`.

What is read: `domain.yml` (or a `domain/` folder of YAML files, merged), every YAML file under `data/`
(each may hold `nlu:`, `rules:`, `stories:` and `responses:`, the last merged into the domain as Rasa
does for retrieval intents), `tests/test_*.yml` (test stories) and, when present, `config.yml` for the
`language` and the `FallbackClassifier` threshold. `kefu.yml` and `knowledge/` belong to other loaders.
"""

from __future__ import annotations

from pathlib import Path

from bot.errors import ProjectError
from bot.project.domain import DomainPart, merge_domains, parse_domain
from bot.project.files import ProjectFiles
from bot.project.nlu_data import NluBuilder
from bot.project.stories import parse_stories
from bot.project.validate import validate
from bot.project.yaml_io import LineMap, Source, read_yaml
from bot.types import Story

__all__ = ["ProjectFiles", "load_project", "validate"]

RASA_DEFAULT_FALLBACK_THRESHOLD = 0.3  # FallbackClassifier's own default when `threshold` is left out
_YAML_SUFFIXES = (".yml", ".yaml")
_DATA_KEYS = ("version", "nlu", "rules", "stories", "responses")
_TEST_KEYS = ("version", "stories", "nlu")
_NEEDS = (
    "A kefu project is a folder with domain.yml (intents, responses, slots, forms, actions), "
    "data/nlu.yml, data/rules.yml, data/stories.yml and tests/test_stories.yml, in Rasa 3.x format; "
    "`kefu init DIR` writes a starter project to copy from."
)


def load_project(path: str | Path) -> ProjectFiles:
    """Read and parse the project at `path`; raises ProjectError (file, line, fix) on any problem.

    Loading checks each file on its own; `validate(project)` checks that the files agree with each other.
    """
    root = Path(path)
    if not root.is_dir():
        raise ProjectError(f"there is no project folder here. {_NEEDS}", path=str(root))
    loaded: list[Path] = []
    domain_parts = [_domain_part(root, file, loaded) for file in _domain_files(root)]
    nlu = NluBuilder()
    rules: list[Story] = []
    stories: list[Story] = []
    for file in _yaml_files(root / "data"):
        part = _read_data(root, file, loaded, nlu, rules, stories)
        if part is not None:
            domain_parts.append(part)
    test_stories = [story for file in _test_files(root) for story in _read_tests(root, file, loaded)]
    threshold, language = _read_config(root, loaded)
    domain = merge_domains(domain_parts)
    return ProjectFiles(
        root=root,
        domain=domain.domain,
        nlu=nlu.build(),
        rules=tuple(rules),
        stories=tuple(stories),
        test_stories=tuple(test_stories),
        fallback_threshold=threshold,
        language=language,
        files=tuple(loaded),
        nlu_sources=nlu.sources,
        locations=domain.locations,
    )


def _source(root: Path, file: Path) -> Source:
    return Source(file, name=file.relative_to(root).as_posix())


def _read(root: Path, file: Path, loaded: list[Path]) -> tuple[LineMap, Source]:
    loaded.append(file)
    return read_yaml(file), _source(root, file)


def _domain_files(root: Path) -> list[Path]:
    singles = [root / f"domain{suffix}" for suffix in _YAML_SUFFIXES if (root / f"domain{suffix}").is_file()]
    folder = root / "domain"
    found = [file.name for file in singles] + (["domain/"] if folder.is_dir() else [])
    if len(found) > 1:
        message = f"found {' and '.join(found)}; keep one (the files of a domain/ folder are merged)"
        raise ProjectError(message, path=str(root))
    files = singles or _yaml_files(folder)
    if not files:
        raise ProjectError(f"domain.yml is missing. {_NEEDS}", path=str(root / "domain.yml"))
    return files


def _yaml_files(folder: Path) -> list[Path]:
    """YAML files under `folder`, in a stable order; none when the folder is missing."""
    if not folder.is_dir():
        return []
    return sorted(file for file in folder.rglob("*") if file.suffix in _YAML_SUFFIXES and file.is_file())


def _test_files(root: Path) -> list[Path]:
    return [file for file in _yaml_files(root / "tests") if file.name.startswith("test_")]


def _domain_part(root: Path, file: Path, loaded: list[Path]) -> DomainPart:
    raw, source = _read(root, file, loaded)
    return parse_domain(raw, source=source)


def _read_data(
    root: Path, file: Path, loaded: list[Path], nlu: NluBuilder, rules: list[Story], stories: list[Story]
) -> DomainPart | None:
    """Parse one training data file into the collectors; its `responses:` come back as a domain part."""
    raw, source = _read(root, file, loaded)
    _check_keys(raw, source, _DATA_KEYS)
    if "nlu" in raw:
        nlu.add(raw["nlu"], source=source, line=raw.line_of("nlu"))
    if "rules" in raw:
        rules.extend(parse_stories(raw["rules"], source=source, line=raw.line_of("rules"), is_rule=True))
    if "stories" in raw:
        stories.extend(parse_stories(raw["stories"], source=source, line=raw.line_of("stories"), is_rule=False))
    return parse_domain(raw, source=source) if "responses" in raw else None


def _read_tests(root: Path, file: Path, loaded: list[Path]) -> tuple[Story, ...]:
    raw, source = _read(root, file, loaded)
    _check_keys(raw, source, _TEST_KEYS)  # `nlu:` is held-out NLU test data, for `kefu test nlu`
    return parse_stories(raw.get("stories"), source=source, line=raw.line_of("stories"), is_rule=False)


def _check_keys(raw: LineMap, source: Source, allowed: tuple[str, ...]) -> None:
    for key in raw:
        if key not in allowed:
            raise source.error(
                f"unknown top-level key `{key}`; this file may hold {', '.join(f'`{k}:`' for k in allowed)} "
                "(move anything else out of this folder)",
                raw.line_of(key),
            )


def _read_config(root: Path, loaded: list[Path]) -> tuple[float | None, str | None]:
    """(FallbackClassifier threshold, language) from config.yml; (None, None) without the file."""
    file = next((root / f"config{suffix}" for suffix in _YAML_SUFFIXES if (root / f"config{suffix}").is_file()), None)
    if file is None:
        return None, None
    raw, source = _read(root, file, loaded)
    language = raw.get("language")
    if language is not None:
        language = source.name_of(language, raw.line_of("language"), "`language:`")
    return _fallback_threshold(raw, source), language


def _fallback_threshold(raw: LineMap, source: Source) -> float | None:
    pipeline = source.sequence(raw.get("pipeline"), raw.line_of("pipeline"), "`pipeline:`")
    for index, item in enumerate(pipeline):
        component = source.mapping(item, pipeline.line_of(index), "a pipeline component")
        if component.get("name") != "FallbackClassifier":
            continue
        threshold = component.get("threshold", RASA_DEFAULT_FALLBACK_THRESHOLD)
        line = component.line_of("threshold")
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
            raise source.error("the FallbackClassifier `threshold:` must be a number from 0 to 1", line)
        return float(threshold)
    return None
