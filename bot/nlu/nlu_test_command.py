"""`kefu test nlu`: evaluate a project's NLU on a held-out file or by k-fold cross-validation, and write a report."""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from bot.errors import ConfigError
from bot.nlu.evaluation import OUT_OF_SCOPE_INTENTS, NluEvaluation, Parse, cross_validate, evaluate
from bot.nlu.report import ReportFiles, write_report
from bot.project.nlu_data import parse_nlu
from bot.project.yaml_io import Source, read_yaml
from bot.protocols import Embedder
from bot.settings import Settings
from bot.types import NluData, NluExample
from bot.wiring import Project, nlu_embedder, open_project, project_nlu, train, train_project_nlu

DEFAULT_FOLDS = 5
DEFAULT_TEST_FILES = ("tests/nlu.yml", "tests/test_nlu.yml")


def run_nlu_test(
    project_path: Path,
    settings: Settings,
    *,
    file: Path | None,
    folds: int | None,
    as_json: bool,
    out_dir: Path | None,
) -> int:
    """Evaluate, write the report files, and print a summary (or, with `as_json`, one JSON object) on stdout.

    Without `file` or `folds`: the project's tests/nlu.yml when there is one, else 5-fold cross-validation.
    """
    if file is not None and folds is not None:
        raise ConfigError(
            "--file and --cross-validation were both given; pick one: --file evaluates the trained model on a "
            "held-out file, --cross-validation K trains K models on parts of the project's own data"
        )
    # With --json, stdout carries the JSON object alone, whatever a library prints on the way.
    with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
        project = open_project(project_path, settings)
        evaluation, title = _evaluate(project, settings, file, folds, as_json=as_json)
        files = write_report(evaluation, out_dir or project.data_dir / "reports" / "nlu", title=title)
    if as_json:
        print(json.dumps({**evaluation.to_json(), **_paths(files)}, ensure_ascii=False))
    else:
        print(format_summary(evaluation, files, title=title))
    return 0


def load_test_examples(file: Path) -> tuple[NluExample, ...]:
    """The examples of a held-out file in Rasa nlu.yml format; a problem raises ProjectError with file and line."""
    raw = read_yaml(file)
    source = Source(file)
    if "nlu" not in raw:
        raise source.error(
            "there is no `nlu:` section; write held-out examples in Rasa nlu.yml format "
            "(`nlu:` then `- intent: NAME` with `examples: |` and `- text` lines)",
            1,
        )
    examples = parse_nlu(raw["nlu"], source=source, line=raw.line_of("nlu")).examples
    if not examples:
        raise source.error("the `nlu:` section has no intent examples; add `- intent:` items", raw.line_of("nlu"))
    return examples


def format_summary(evaluation: NluEvaluation, files: ReportFiles, *, title: str) -> str:
    """The figures as a person reads them in a terminal: headline, per-intent table worst first, file paths."""
    lines = [
        f"{title}: {evaluation.n_examples} examples",
        f"  intents       accuracy {evaluation.intent_accuracy:.3f}  macro F1 {evaluation.intent_macro_f1:.3f}  "
        f"weighted F1 {evaluation.intent_weighted_f1:.3f}",
        f"  entities      {_entity_line(evaluation)}",
        f"  out of scope  {_oos_line(evaluation)}",
        "",
    ]
    width = max([len("intent"), *(len(name) for name in evaluation.per_intent)])
    lines.append(f"{'intent':<{width}}  precision  recall      f1  support")
    for name, s in evaluation.intents_worst_first():
        lines.append(f"{name:<{width}}  {s.precision:9.3f}  {s.recall:6.3f}  {s.f1:6.3f}  {s.support:7d}")
    lines += ["", f"Report:           {files.html}", f"Confusion matrix: {files.confusion_png}"]
    return "\n".join(lines)


def _evaluate(
    project: Project, settings: Settings, file: Path | None, folds: int | None, *, as_json: bool
) -> tuple[NluEvaluation, str]:
    name = project.root.name
    embedder = nlu_embedder(project, distill=project.config.nlu.backend == "kefu", progress=not as_json)
    if file is None and folds is None:
        file = next((project.root / p for p in DEFAULT_TEST_FILES if (project.root / p).is_file()), None)
        if file is None:
            folds = DEFAULT_FOLDS
            _say(f"{name} has no tests/nlu.yml: evaluating by {folds}-fold cross-validation over its training data")
    if file is not None:
        examples = load_test_examples(file)
        _say(f"evaluating {len(examples)} examples of {file}")
        _note_unknown_intents(examples, project.files.nlu)
        train(project, progress=not as_json, parts=("nlu",))  # a no-op when the model is up to date
        nlu = project_nlu(project, embedder=embedder, settings=settings)
        nlu.warm_up()
        return evaluate(examples, nlu.parse_text, progress=not as_json), f"NLU of {name} on {file.name}"
    k = folds or DEFAULT_FOLDS
    if project.config.nlu.backend != "kefu":
        raise ConfigError(
            "cross-validation trains kefu's own NLU, but this project's NLU is a Rasa server: "
            "evaluate it on a held-out file with --file, or set `nlu.backend: kefu`"
        )
    with _fold_trainer(project, embedder) as fit:
        evaluation = cross_validate(project.files.nlu, k, fit, seed=project.config.nlu.seed, progress=True)
    return evaluation, f"NLU of {name}, {k}-fold cross-validation"


@contextlib.contextmanager
def _fold_trainer(project: Project, embedder: Embedder | None) -> Iterator[Callable[[NluData], Parse]]:
    """A `fit` for cross_validate: trains into a temporary folder that lives until cross-validation ends."""
    with contextlib.ExitStack() as folders:

        def fit(data: NluData) -> Parse:
            model_dir = Path(folders.enter_context(tempfile.TemporaryDirectory(prefix="kefu-nlu-fold-")))
            train_project_nlu(project, data, model_dir, embedder=embedder, progress=False)
            nlu = project_nlu(project, model_dir, embedder=embedder)
            nlu.warm_up()
            return nlu.parse_text

        yield fit


def _note_unknown_intents(examples: Sequence[NluExample], training: NluData) -> None:
    known = set(training.intents) | OUT_OF_SCOPE_INTENTS
    unknown = sorted({example.intent for example in examples} - known)
    if unknown:
        _say(f"note: the training data has no examples of {', '.join(unknown)}; those test examples count as errors")


def _entity_line(evaluation: NluEvaluation) -> str:
    if evaluation.entity_f1 is None:
        return "none expected or predicted"
    return (
        f"precision {evaluation.entity_precision:.3f}  recall {evaluation.entity_recall:.3f}  "
        f"F1 {evaluation.entity_f1:.3f}  (value match F1 {evaluation.entity_value_f1:.3f})"
    )


def _oos_line(evaluation: NluEvaluation) -> str:
    if evaluation.oos_recall is None:
        return "no out-of-scope examples"
    return f"recall {evaluation.oos_recall:.3f}  ({evaluation.oos_false_accept} given an in-scope intent)"


def _paths(files: ReportFiles) -> dict[str, str]:
    return {
        "report_html": str(files.html),
        "confusion_png": str(files.confusion_png),
        "histogram_png": str(files.histogram_png),
        "report_json": str(files.json),
    }


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
