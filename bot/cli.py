"""The `kefu` command: init, train [nlu|core|knowledge|harm|reward|generator], index, chat, run,
test [stories|nlu|knowledge|generation|safety|recommend], export [sft|preferences], serve generator, archive, analytics,
operators."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from bot.errors import ConfigError, KefuError
from bot.settings import Settings
from bot.types import Message, Story, Trace

if TYPE_CHECKING:
    from bot.wiring import Runtime

DEFAULT_PROJECT = Path("examples/shop")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    _take_late_project(parser, args, extra)
    try:
        settings = Settings()
    except (ValidationError, KefuError) as err:  # a malformed KEFU_* variable or secret file
        print(f"kefu: invalid setting: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # it narrates every CPU feature it probes
    try:
        result: int = args.command(args, settings)
        return result
    except KefuError as err:
        print(f"kefu: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kefu", description="kefu (客服): a bilingual customer-service bot")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, handler: object, help_text: str, usage: str | None = None) -> argparse.ArgumentParser:
        description = help_text if usage is None else f"{help_text}\n\n{usage}"
        formatter = argparse.RawDescriptionHelpFormatter
        sub = commands.add_parser(name, help=help_text, description=description, formatter_class=formatter)
        sub.set_defaults(command=handler)
        if name in _WORDS:
            words, default = _WORDS[name], _DEFAULT_WORD[name]
            sub.add_argument("what", nargs="?", metavar="|".join(words), help=f"what to {name} (default: {default})")
            sub.add_argument("project", nargs="?", type=Path, help=f"project folder (default: {DEFAULT_PROJECT})")
        elif name != "init":
            sub.add_argument("project", nargs="?", type=Path, default=DEFAULT_PROJECT, help="project folder")
        return sub

    init = command("init", _init, "write a starter project")
    init.add_argument("directory", type=Path)
    init.add_argument("--force", action="store_true", help="write into a non-empty folder")
    train = command(
        "train",
        _train,
        "train the NLU and the dialogue policy, index the knowledge (skips what is unchanged)",
        _TRAIN_USAGE,
    )
    train.add_argument("--force", action="store_true", help="retrain even if the data did not change")
    learning = train.add_argument_group("reward and generator")
    learning.add_argument(
        "--file", type=Path, default=None, help="reward: preference pairs (JSONL); safety: the COLD folder"
    )
    learning.add_argument("--sft", type=Path, default=None, help="generator: SFT records (default: the export)")
    learning.add_argument("--preferences", type=Path, default=None, help="generator: pairs for DPO")
    learning.add_argument("--method", choices=("sft", "dpo", "sft+dpo"), default="sft", help="generator: how")
    learning.add_argument("--full", action="store_true", help="generator: tune every weight, not LoRA adapters")
    learning.add_argument("--epochs", type=int, default=2, help="generator: passes over the data")
    learning.add_argument("--limit", type=int, default=None, help="safety: at most this many COLD training rows")
    export = command("export", _export, "write training data from the stored conversations' feedback", _EXPORT_USAGE)
    export.add_argument("--out", type=Path, default=None, help="the JSONL file (default: PROJECT/.kefu/exports/)")
    serve = command("serve", _serve, "serve the project's generator over the OpenAI chat-completions API")
    serve.add_argument("--port", type=int, default=8001)
    serve.add_argument("--host", default="127.0.0.1")
    index = command("index", _index, "index the knowledge folder (only what changed), or make a server reload it")
    index.add_argument("--reload", action="store_true", help="then tell the running server to reload its knowledge")
    index.add_argument("--url", default=None, help="the server for --reload (default: http://HOST:PORT of settings)")
    chat = command("chat", _chat, "talk to the bot in the terminal")
    chat.add_argument("--debug", action="store_true", help="print each turn's trace")
    chat.add_argument("--sender", default=None, help="conversation id (default: a new one)")
    archive = command("archive", _archive, "archive ended conversations, search them, export them (masked)")
    archive.add_argument("--search", metavar="TEXT", default=None, help="list archived sessions saying TEXT")
    archive.add_argument("--export", metavar="FILE.jsonl", type=Path, default=None, help="one JSON line a session")
    archive.add_argument("--now", action="store_true", help="first archive every session that has ended")
    archive.add_argument("--all", action="store_true", help="with --now: open sessions too")
    analytics = command("analytics", _analytics, "containment, handoffs, fallbacks, CSAT, unanswered questions")
    analytics.add_argument("--days", type=float, default=7.0, help="the last N days of the archive (0: all)")
    analytics.add_argument("--json", action="store_true", help="one JSON object on stdout")
    analytics.add_argument("--plots", metavar="DIR", type=Path, default=None, help="write PNG charts into DIR")
    operators = command("operators", _operators, "list, add or remove operator console accounts")
    operators.add_argument("--add", metavar="NAME", default=None, help="add NAME (asks for a password twice)")
    operators.add_argument("--remove", metavar="NAME", default=None)
    operators.add_argument("--password-stdin", action="store_true", help="with --add: read the password from stdin")
    run = command("run", _run, "serve the bot over HTTP")
    run.add_argument("--port", type=int, default=None)
    run.add_argument("--host", default=None)
    run.add_argument(
        "--workers", type=_positive, default=1, help="processes sharing one Redis; about one per CPU core (default 1)"
    )
    test = command("test", _test, "run the project's test stories, or evaluate its NLU or knowledge", _TEST_USAGE)
    nlu = test.add_argument_group("options")
    nlu.add_argument(
        "--file",
        type=Path,
        default=None,
        help="test stories (Rasa test_stories.yml); for nlu, held-out nlu.yml; for knowledge, queries.csv; "
        "for recommend, conversations (YAML)",
    )
    nlu.add_argument(
        "--cross-validation", type=int, default=None, metavar="K", help="K-fold cross-validation over data/nlu.yml"
    )
    nlu.add_argument("--json", action="store_true", help="print the results as one JSON object on stdout")
    nlu.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="report folder (default: PROJECT/.kefu/reports/nlu, .../safety)",
    )
    recommend = test.add_argument_group("recommend")
    recommend.add_argument("--from-archive", action="store_true", help="replay the archived sessions")
    recommend.add_argument("--split", type=float, default=None, help="share learned from, the rest evaluated (0.5)")
    recommend.add_argument("--seed", type=int, default=None, help="seed of the split (0)")
    return parser


# `kefu train` and `kefu test` take an optional first word; a first word that is none of these is the project.
_WORDS = {
    "train": ("nlu", "core", "knowledge", "harm", "reward", "generator", "safety"),
    "test": ("nlu", "stories", "knowledge", "generation", "safety", "recommend"),
    "export": ("sft", "preferences"),
    "serve": ("generator",),
}
_DEFAULT_WORD = {"train": "all", "test": "stories", "export": "sft", "serve": "generator"}
_TRAIN_USAGE = """\
  kefu train [PROJECT]            train the NLU and the dialogue policy, build the knowledge index,
                                  train the harmful-request classifier (unless safety.harm_model is off)
  kefu train nlu [PROJECT]        train the NLU only
  kefu train core [PROJECT]       train the ML dialogue policy only (from stories and rules)
  kefu train knowledge [PROJECT]  build the knowledge index only
  kefu train harm [PROJECT]       train the harmful-request classifier only (kefu's examples, the
                                  project's harm_examples.csv, its NLU examples as harmless ones)
  kefu train reward [PROJECT] [--file F]
                                  train the reward model that reranks generated answers, from
                                  `kefu export preferences` (or F)
  kefu train generator [PROJECT] [--method sft|dpo|sft+dpo] [--full] [--epochs N]
                                  fine-tune the local generator (LoRA) on `kefu export sft`/`preferences`
  kefu train safety [PROJECT] [--file COLD_DIR] [--limit N]
                                  train the abuse classifier on COLD (default ../shared/data/cold)
                                  plus kefu's English examples"""
_EXPORT_USAGE = """\
  kefu export sft [PROJECT] [--out F]          replies customers or operators approved, as TRL
                                               prompt/completion JSONL
  kefu export preferences [PROJECT] [--out F]  chosen/rejected pairs (operator edits, thumbs down
                                               followed by a human answer), as TRL JSONL
Personal data is masked; conversation ids are hashed."""
_TEST_USAGE = """\
  kefu test [PROJECT] [--file F] [--json]  run the test stories (tests/test_stories.yml, or F);
                                     each failed story shows its first diverging step
  kefu test stories [PROJECT]        the same
  kefu test nlu [PROJECT] [options]  score intents and entities on --file, else on tests/nlu.yml,
                                     else by 5-fold cross-validation; writes an HTML report
  kefu test knowledge [PROJECT] [--file F] [--json]
                                     recall@1, recall@5 and MRR of retrieval on F (query,expected,lang),
                                     else on tests/knowledge_queries.csv
  kefu test generation [PROJECT] [--file F] [--json]
                                     faithfulness, answer relevance and correct "I don't know"s on
                                     F (question,lang,answerable,expected), else tests/generation_queries.csv
  kefu test safety [PROJECT] [--file F] [--json] [--out DIR]
                                     red-team refusal rates on F (text,should_refuse,category,lang),
                                     else tests/redteam.csv; writes a chart per category
  kefu test recommend [PROJECT] [--file F | --from-archive] [--split 0.5] [--seed 0] [--json]
                                     hit rate@3 of recommended questions on conversations (F, the
                                     archive, else tests/recommend_conversations.yml), before and after
                                     learning from a seeded share of them

A project folder named like one of the words is written with a path: kefu test ./nlu"""


def _what(args: argparse.Namespace, command: str) -> tuple[str | None, Path]:
    """The optional first word of `kefu train` / `kefu test` (None when left out) and the project folder."""
    words = _WORDS[command]
    if args.what is None or args.what in words:
        return args.what, args.project or DEFAULT_PROJECT
    if args.project is None:  # `kefu test PROJECT`: the first word is the folder
        return None, Path(args.what)
    raise ConfigError(
        f"`kefu {command} {args.what} {args.project}`: `{args.what}` is not one of {', '.join(words)}; "
        f"write `kefu {command} [{'|'.join(words)}] [PROJECT]`"
    )


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def _take_late_project(parser: argparse.ArgumentParser, args: argparse.Namespace, extra: list[str]) -> None:
    # argparse stops filling optional positionals at the first option, so in `kefu test nlu --json PROJECT`
    # PROJECT comes back unrecognised; it is the project folder all the same.
    if len(extra) == 1 and not extra[0].startswith("-") and hasattr(args, "what") and args.project is None:
        args.project = Path(extra[0])
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")


def _init(args: argparse.Namespace, settings: Settings) -> int:
    from bot.project.init import write_starter_project

    write_starter_project(args.directory, force=args.force)
    print(
        f"Wrote a starter project to {args.directory}. Next: kefu train {args.directory} && kefu chat {args.directory}"
    )
    return 0


def _train(args: argparse.Namespace, settings: Settings) -> int:
    from bot.wiring import open_project, train

    what, path = _what(args, "train")
    if what in ("reward", "generator"):
        return _train_learning(what, path, args, settings)
    if what == "safety":
        from bot.safety_cli import run_train_safety

        return run_train_safety(path, settings, data=args.file, force=args.force, limit=args.limit)
    parts = ("nlu", "core", "knowledge", "harm") if what is None else (what,)
    project = open_project(path, settings)
    summary = train(project, force=args.force, progress=True, parts=parts)
    done = []
    if "nlu" in parts:
        report = summary.nlu
        done.append(
            "NLU model is up to date"
            if report is None
            else f"trained NLU on {report.n_examples} examples, {report.n_intents} intents in {report.seconds:.1f}s "
            f"(training accuracy {report.train_accuracy:.3f})"
        )
    if "core" in parts and project.config.dialogue.ml_policy:
        core = summary.core
        done.append(
            "dialogue policy is up to date"
            if core is None
            else f"trained the dialogue policy on {core.n_stories} stories and {core.n_rules} rules "
            f"({core.n_examples} examples) in {core.seconds:.1f}s (training accuracy {core.train_accuracy:.3f})"
        )
    if "knowledge" in parts:
        done.append("knowledge index ready")
    safety = project.config.safety
    if "harm" in parts and safety.harm and safety.harm_model != "off":
        done.append(
            f"trained the harmful-request classifier into {project.harm_model_dir}"
            if summary.harm
            else "harmful-request classifier is up to date"
        )
    message = "; ".join(done) or "nothing to train"
    print(message[0].upper() + message[1:] + ".")
    return 0


def _train_learning(what: str, path: Path, args: argparse.Namespace, settings: Settings) -> int:
    from bot.learning_cli import run_train_generator, run_train_reward

    if what == "reward":
        return run_train_reward(path, settings, file=args.file, force=args.force)
    return run_train_generator(
        path, settings, sft=args.sft, preferences=args.preferences, method=args.method, full=args.full,
        epochs=args.epochs, force=args.force,
    )  # fmt: skip


def _export(args: argparse.Namespace, settings: Settings) -> int:
    from bot.learning_cli import run_export

    what, path = _what(args, "export")
    return run_export(path, settings, "preferences" if what == "preferences" else "sft", out=args.out)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from bot.learning_cli import run_serve_generator

    _, path = _what(args, "serve")
    return run_serve_generator(path, settings, host=args.host, port=args.port)


def _archive(args: argparse.Namespace, settings: Settings) -> int:
    from bot.assist.archive_cli import run_archive

    return run_archive(
        args.project, settings, search=args.search, export=args.export, now=args.now, everything=args.all
    )


def _analytics(args: argparse.Namespace, settings: Settings) -> int:
    from bot.assist.analytics_cli import run_analytics

    return run_analytics(args.project, days=args.days, as_json=args.json, plots=args.plots, settings=settings)


def _operators(args: argparse.Namespace, settings: Settings) -> int:
    from bot.assist.operators_cli import run_operators

    return run_operators(args.project, settings, add=args.add, remove=args.remove, password_stdin=args.password_stdin)


def _index(args: argparse.Namespace, settings: Settings) -> int:
    from bot.knowledge_cli import run_index

    return run_index(args.project, settings, reload=args.reload, url=args.url)


def _ready_runtime(path: Path, settings: Settings) -> Runtime:
    from bot.wiring import build_runtime, open_project, train

    project = open_project(path, settings)
    train(project, progress=True)  # a no-op when the project did not change
    return build_runtime(project, settings)


def _chat(args: argparse.Namespace, settings: Settings) -> int:
    runtime = _ready_runtime(args.project, settings)
    return asyncio.run(_chat_loop(runtime, args.sender or f"cli:{uuid.uuid4().hex[:8]}", debug=args.debug))


async def _chat_loop(runtime: Runtime, sender: str, *, debug: bool) -> int:
    runtime.bot.warm_up()
    print("kefu chat: type a message (Ctrl-D to quit) / 输入消息开始对话")
    try:
        while True:
            try:
                text = await asyncio.to_thread(input, "you> ")
            except EOFError:
                break
            if not text.strip():
                continue
            message = Message(sender, "cli", sender, uuid.uuid4().hex, text, time.time())
            answer = await runtime.bot.handle(message)
            for reply in answer.replies:
                buttons = "  " + " | ".join(f"[{b.title}]" for b in reply.buttons) if reply.buttons else ""
                print(f"bot> {reply.text}{buttons}")
                if reply.quick_replies:
                    print("     " + " | ".join(f"<{b.title}>" for b in reply.quick_replies))
            if debug and answer.trace is not None:
                print(format_trace(answer.trace))
    finally:
        await runtime.aclose()
    return 0


def format_trace(trace: Trace) -> str:
    """The trace as a person reads it in a terminal."""
    lines = [f"  ── trace {trace.trace_id[:8]} ({trace.total_ms:.1f} ms)"]
    if trace.nlu is not None:
        entities = ", ".join(f"{e.name}={e.value} ({e.extractor})" for e in trace.nlu.entities) or "none"
        ranking = ", ".join(f"{s.name} {s.confidence:.2f}" for s in trace.nlu.ranking[:3])
        lines.append(f"  nlu: {trace.nlu.intent} ({trace.nlu.confidence:.2f}) lang={trace.nlu.language}")
        lines.append(f"       ranking: {ranking}; entities: {entities}")
        lines.extend(f"       warning: {warning}" for warning in trace.nlu.warnings)
    for d in trace.decisions:
        lines.append(f"  policy {d.policy}: {d.action} ({d.confidence:.2f}) because {d.reason}")
    for f in trace.facts:
        lines.append(f"  fact {f.id} [{f.source}] score={f.score:.3f}{' exact' if f.exact else ''}: {f.text[:60]}")
    for c in trace.candidates:
        lines.append(f"  candidate [{c.generator}] {c.finish_reason}: {c.text[:80]}")
    for v in trace.verdicts:
        if not v.allowed or v.redacted is not None:
            lines.append(
                f"  safety {v.check}/{v.stage}: {'allowed' if v.allowed else 'BLOCKED'} {v.category} {v.reason}"
            )
    lines.append("  stages: " + ", ".join(f"{s.name} {s.ms:.1f}ms" for s in trace.stages))
    return "\n".join(lines)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from bot.serve import serve

    serve(
        args.project, settings, host=args.host or settings.host, port=args.port or settings.port, workers=args.workers
    )
    return 0


def _test(args: argparse.Namespace, settings: Settings) -> int:
    what, project = _what(args, "test")
    if what == "nlu":
        from bot.nlu.nlu_test_command import run_nlu_test

        return run_nlu_test(
            project, settings, file=args.file, folds=args.cross_validation, as_json=args.json, out_dir=args.out
        )
    if what == "knowledge":
        from bot.knowledge_cli import run_knowledge_test

        return run_knowledge_test(project, settings, file=args.file, as_json=args.json)
    if what == "safety":
        from bot.safety_cli import run_test_safety

        return run_test_safety(project, settings, file=args.file, as_json=args.json, out=args.out)
    if what == "recommend":
        from bot.recommend.recommend_cli import run_recommend_test

        return run_recommend_test(
            project, settings, file=args.file, from_archive=args.from_archive, split=args.split, seed=args.seed,
            as_json=args.json,
        )  # fmt: skip
    if what == "generation":
        from bot.generation_cli import run_test_generation

        return run_test_generation(project, settings, file=args.file, as_json=args.json)
    given = [flag for flag, value in {"--cross-validation": args.cross_validation, "--out": args.out}.items() if value]
    if given:
        raise ConfigError(f"{', '.join(given)} only apply to `kefu test nlu`: write `kefu test nlu {project} ...`")
    from bot.story_test import load_test_stories

    stories = load_test_stories(args.file) if args.file is not None else None
    runtime = _ready_runtime(project, settings)
    return asyncio.run(_test_stories(runtime, project, stories, as_json=args.json))


async def _test_stories(runtime: Runtime, project: Path, stories: tuple[Story, ...] | None, *, as_json: bool) -> int:
    from bot.story_test import format_results, results_json, run_story

    stories = runtime.project.files.test_stories if stories is None else stories
    if not stories:
        print(f"{project}: no test stories (tests/test_stories.yml, or --file)", file=sys.stderr)
        await runtime.aclose()
        return 1
    runtime.bot.warm_up()
    try:
        results = [await run_story(runtime.bot, story) for story in stories]
    finally:
        await runtime.aclose()
    print(results_json(results) if as_json else format_results(results))
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
