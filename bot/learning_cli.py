"""The generator's learning loop on the command line: `kefu export sft|preferences`, `kefu train reward`,
`kefu train generator`, and `kefu serve generator` (the local model behind an OpenAI-compatible API)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Literal

from bot.errors import ConfigError
from bot.generation.learning_data import ExportResult, export_records, read_preferences, write_jsonl
from bot.nlu.embedder import E5Embedder
from bot.settings import Settings
from bot.wiring import Project, generator_for, knowledge_base, open_project, session_store

ExportKind = Literal["sft", "preferences"]


def exports_dir(project: Project) -> Path:
    return project.data_dir / "exports"


def run_export(path: Path, settings: Settings, what: ExportKind, *, out: Path | None) -> int:
    """Write the training data that feedback and operators produced, from every stored conversation."""
    project = open_project(path, settings)
    result = asyncio.run(_collect(project, settings))
    records = result.sft if what == "sft" else result.preferences
    target = out or exports_dir(project) / f"{what}.jsonl"
    written = write_jsonl(records, target)
    print(f"Wrote {written} {what} records to {target} ({result.summary()}).")
    return 0


async def _collect(project: Project, settings: Settings) -> ExportResult:
    knowledge = knowledge_base(project, E5Embedder())
    await asyncio.to_thread(knowledge.warm_up)
    generator = generator_for(project, settings)
    if generator is None:  # the prompts are the project's all the same
        from bot.generation.prompts import PromptBuilder

        prompts = PromptBuilder(project.root / "prompts", brand=project.root.name)
    else:
        prompts = generator.prompts
    store, embedded = session_store(project, settings)
    try:
        conversations = [item async for item in store.conversations()]
    finally:
        await store.close()
        if embedded is not None:
            embedded.stop()
    return export_records(conversations, knowledge.lookup, prompts)


def run_train_reward(path: Path, settings: Settings, *, file: Path | None, force: bool) -> int:
    """Train the reward model that reranks generated candidates, from exported preference pairs."""
    from bot.generation.reward import needs_reward_training, train_reward

    project = open_project(path, settings)
    source = file or exports_dir(project) / "preferences.jsonl"
    if not source.exists():
        raise ConfigError(f"{source} does not exist: run `kefu export preferences {path}` first, or pass --file")
    pairs = read_preferences(source)
    embedder = E5Embedder()
    if not force and not needs_reward_training(pairs, project.reward_dir, embedder):
        print(f"The reward model in {project.reward_dir} is up to date ({len(pairs)} pairs).")
        return 0
    report = train_reward(pairs, embedder, project.reward_dir, seed=project.config.nlu.seed, progress=True)
    print(report.summary())
    print(f"Saved to {project.reward_dir}; `kefu run` reranks candidates with it (generator.reward_model: true).")
    return 0


def run_train_generator(
    path: Path,
    settings: Settings,
    *,
    sft: Path | None,
    preferences: Path | None,
    method: str,
    full: bool,
    epochs: int,
    force: bool,
) -> int:
    """Fine-tune the local generator (LoRA by default) on exported data, with an evaluation before and after."""
    from bot.generation.finetune import FinetuneConfig, finetune_generator, needs_finetuning

    project = open_project(path, settings)
    generator = project.config.generator
    if generator.backend != "transformers":
        raise ConfigError("`kefu train generator` fine-tunes a local model: set generator.backend: transformers")
    sft = sft or _existing(exports_dir(project) / "sft.jsonl")
    preferences = preferences or _existing(exports_dir(project) / "preferences.jsonl")
    config = FinetuneConfig(method=method, lora=not full, epochs=epochs, seed=generator.seed or 0)  # type: ignore[arg-type]
    out = project.generator_dir
    if not force and not needs_finetuning(
        out, sft, preferences, config, generator.model, gguf_file=generator.gguf_file
    ):
        print(f"The fine-tuned generator in {out} is up to date.")
        return 0
    report = finetune_generator(
        generator.model, out, sft=sft, preferences=preferences, config=config, gguf_file=generator.gguf_file
    )
    print("\n".join(report.summary()))
    relative = out.relative_to(project.root) if out.is_relative_to(project.root) else out
    print(f"Saved to {out}. To answer with it, set in kefu.yml: generator: {{model: {relative}}}")
    return 0


def _existing(path: Path) -> Path | None:
    return path if path.exists() else None


def run_serve_generator(path: Path, settings: Settings, *, host: str, port: int) -> int:
    """Serve the project's local generator model over the OpenAI chat-completions API."""
    import uvicorn

    from bot.generation.openai_server import openai_app

    project = open_project(path, settings)
    generator = generator_for(project, settings)
    if generator is None:
        raise ConfigError("generator.backend is `none`: there is no model to serve")
    key = settings.generator_api_key.get_secret_value() if settings.generator_api_key else None
    generator.warm_up()
    app = openai_app(generator.model, model_name=project.config.generator.model, api_key=key)
    print(f"kefu serves the generator {generator.name} on http://{host}:{port}/v1 (OpenAI chat completions)")
    uvicorn.run(app, host=host, port=port, log_level=settings.log_level.lower())
    return 0
