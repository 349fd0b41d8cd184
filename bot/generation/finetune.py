"""Fine-tuning the local generator on the data `kefu export` writes: SFT, DPO, or SFT then DPO.

LoRA adapters (or all weights) are trained with a plain torch loop, deterministic for the seed, measured on a
held-out split before and after, merged into the weights and saved as a transformers model folder that
`TransformersChat(str(out_dir))` loads like any other.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from bot.errors import ConfigError, GenerationError
from bot.generation.finetune_data import (
    Encoded,
    PreferenceExample,
    SftExample,
    encode,
    read_preferences,
    read_sft,
    split,
)
from bot.generation.finetune_train import (
    Pair,
    Schedule,
    dpo_loss,
    evaluate_dpo,
    evaluate_sft,
    margin_metrics,
    sft_loss,
    train,
    with_reference,
)
from bot.model_files import read_meta

Method = Literal["sft", "dpo", "sft+dpo"]
T = TypeVar("T")
MANIFEST = "finetune.json"
MANIFEST_FORMAT = 1
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_EXPORT_HINT = {"sft": "kefu export sft", "preferences": "kefu export preferences"}


@dataclass(frozen=True, slots=True)
class FinetuneConfig:
    """How to fine-tune; `learning_rate` None means 2e-4 with LoRA, 2e-5 for all weights."""

    method: Method = "sft"
    lora: bool = True
    epochs: int = 2
    learning_rate: float | None = None
    batch_size: int = 4
    max_tokens: int = 512
    dpo_beta: float = 0.1
    seed: int = 0
    eval_fraction: float = 0.1

    def __post_init__(self) -> None:
        checks = [
            (self.method in ("sft", "dpo", "sft+dpo"), f"method must be sft, dpo or sft+dpo, not {self.method!r}"),
            (self.epochs >= 1, "epochs must be at least 1"),
            (self.batch_size >= 1, "batch_size must be at least 1"),
            (self.max_tokens >= 8, "max_tokens must be at least 8"),
            (self.dpo_beta > 0, "dpo_beta must be positive"),
            (0 <= self.eval_fraction < 1, "eval_fraction must be at least 0 and below 1"),
            (self.learning_rate is None or self.learning_rate > 0, "learning_rate must be positive"),
        ]
        problems = [problem for ok, problem in checks if not ok]
        if problems:
            raise ConfigError("fine-tuning: " + "; ".join(problems))

    @property
    def lr(self) -> float:
        """The learning rate used: the configured one, or the default for LoRA or full fine-tuning."""
        if self.learning_rate is not None:
            return self.learning_rate
        return 2e-4 if self.lora else 2e-5

    @property
    def phases(self) -> tuple[Literal["sft", "dpo"], ...]:
        return ("sft", "dpo") if self.method == "sft+dpo" else (self.method,)


@dataclass(frozen=True, slots=True)
class FinetuneReport:
    """What a fine-tuning run did and how the held-out metrics moved.

    Keys sft_loss, sft_perplexity (SFT) and dpo_accuracy, dpo_margin, dpo_loss (DPO), each measured right
    before and after its own phase: with sft+dpo, DPO's "before" is the model SFT left, its reference.
    `examples` and `held_out` add up both phases; `notes` say which phase was evaluated on its training data.
    """

    method: Method
    examples: int
    held_out: int
    before: dict[str, float]
    after: dict[str, float]
    seconds: float
    out_dir: Path
    notes: tuple[str, ...] = field(default=())

    def summary(self) -> list[str]:
        lines = [
            f"fine-tuned ({self.method}) on {self.examples} examples, {self.held_out} held out, "
            f"in {self.seconds:.1f} s -> {self.out_dir}"
        ]
        width = max(map(len, self.before), default=0)
        lines += [
            f"  {key:<{width}}  {self.before[key]:.4f} -> {self.after.get(key, float('nan')):.4f}"
            for key in self.before
        ]
        return lines + [f"  note: {note}" for note in self.notes]

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "out_dir": str(self.out_dir), "notes": list(self.notes)}


@dataclass(frozen=True, slots=True)
class _Data:
    sft: list[SftExample]
    preferences: list[PreferenceExample]


def finetune_generator(
    model: str,
    out_dir: Path,
    *,
    sft: Path | None,
    preferences: Path | None,
    config: FinetuneConfig,
    gguf_file: str | None = None,
    progress: bool = True,
) -> FinetuneReport:
    """Fine-tune `model` ("smollm2": the packaged one) on the exported data and save it to `out_dir`."""
    import torch

    from bot.generation.transformers_lm import load_causal_lm

    started = time.perf_counter()
    if Path(model).resolve() == out_dir.resolve():
        # the base model's weights may be read lazily from the very files the save would overwrite
        raise GenerationError(f"save the fine-tuned model to another folder than its base model {model}")
    data = _read_data(config, sft, preferences)
    fingerprint = _fingerprint(model, gguf_file, config, sft, preferences)
    tokenizer, network = load_causal_lm(model, gguf_file)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)  # LoRA's initial weights and its dropout masks
        run = _Run(_trainable(_unquantized(network), config), tokenizer, config, progress)
        for phase in config.phases:
            run.phase(phase, data)
    report = run.report(out_dir, time.perf_counter() - started)
    _save(run.merged(), tokenizer, out_dir, fingerprint, report)
    return report


def needs_finetuning(
    out_dir: Path,
    sft: Path | None,
    preferences: Path | None,
    config: FinetuneConfig,
    model: str,
    *,
    gguf_file: str | None = None,
) -> bool:
    """True unless `out_dir` holds a model fine-tuned from this base model, config and data (by sha256)."""
    manifest = read_meta(out_dir / MANIFEST, MANIFEST_FORMAT)
    if manifest is None or not any(out_dir.glob("*.safetensors")):
        return True
    stored = {key: manifest.get(key) for key in ("base_model", "gguf_file", "config", "data")}
    return stored != _fingerprint(model, gguf_file, config, sft, preferences)


class _Run:
    """The model being trained across the phases, with the metrics each phase measured."""

    def __init__(self, network: Any, tokenizer: Any, config: FinetuneConfig, progress: bool) -> None:
        self.network, self.tokenizer, self.config, self.progress = network, tokenizer, config, progress
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad_id is None:
            raise GenerationError("the model's tokenizer has neither a padding nor an end-of-sequence token")
        self.pad_id: int = pad_id
        self.examples = self.held_out = 0
        self.before: dict[str, float] = {}
        self.after: dict[str, float] = {}
        self.notes: list[str] = []

    def phase(self, phase: Literal["sft", "dpo"], data: _Data) -> None:
        if phase == "sft":
            self._sft(*self._split("sft", [self._encode(e.prompt, e.completion) for e in data.sft]))
        else:
            pairs = [
                Pair(self._encode(e.prompt, e.chosen), self._encode(e.prompt, e.rejected)) for e in data.preferences
            ]
            # the reference is the model as DPO starts: score every pair once, whichever split it falls in
            self._dpo(*self._split("dpo", with_reference(self.network, pairs, self.pad_id, self.config.batch_size)))

    def _split(self, phase: str, items: list[T]) -> tuple[list[T], list[T]]:
        """The training and the evaluation items, counted for the report."""
        chosen = split(len(items), self.config.eval_fraction, self.config.seed)
        self.examples += len(items)
        if chosen.on_training:
            self.notes.append(f"{phase}: only {len(items)} examples, evaluated on the training data")
        else:
            self.held_out += len(chosen.evaluate)
        return [items[i] for i in chosen.train], [items[i] for i in chosen.evaluate]

    def _sft(self, training: list[Encoded], held: list[Encoded]) -> None:
        size = self.config.batch_size
        self.before |= evaluate_sft(self.network, held, self.pad_id, size)
        train(self.network, training, lambda group: sft_loss(self.network, group, self.pad_id), self._schedule("sft"))
        self.after |= evaluate_sft(self.network, held, self.pad_id, size)

    def _dpo(self, training: list[Pair], held: list[Pair]) -> None:
        import torch

        size, beta = self.config.batch_size, self.config.dpo_beta
        # before training the policy is the reference: every reward margin is exactly zero
        self.before |= margin_metrics(torch.zeros(len(held)))
        train(
            self.network,
            training,
            lambda pairs: dpo_loss(self.network, pairs, self.pad_id, beta),
            self._schedule("dpo"),
        )
        self.after |= evaluate_dpo(self.network, held, self.pad_id, size, beta)

    def report(self, out_dir: Path, seconds: float) -> FinetuneReport:
        c = self.config
        notes = tuple(self.notes)
        return FinetuneReport(c.method, self.examples, self.held_out, self.before, self.after, seconds, out_dir, notes)

    def _schedule(self, label: str) -> Schedule:
        c = self.config
        return Schedule(c.epochs, c.batch_size, c.lr, c.seed, label, self.progress)

    def _encode(self, prompt: Any, completion: Any) -> Encoded:
        return encode(self.tokenizer, prompt, completion, self.config.max_tokens)

    def merged(self) -> Any:
        """The plain transformers model: LoRA adapters folded into the weights they adapt."""
        return self.network.merge_and_unload() if self.config.lora else self.network


def _read_data(config: FinetuneConfig, sft: Path | None, preferences: Path | None) -> _Data:
    phases = config.phases
    sft_examples = read_sft(_data_file("sft", sft)) if "sft" in phases else []
    pairs = read_preferences(_data_file("preferences", preferences)) if "dpo" in phases else []
    if "sft" in phases and not sft_examples:
        raise GenerationError(f"{sft} holds no SFT examples: run `{_EXPORT_HINT['sft']}` first")
    if "dpo" in phases and not pairs:
        raise GenerationError(f"{preferences} holds no preference pairs: run `{_EXPORT_HINT['preferences']}` first")
    return _Data(sft_examples, pairs)


def _data_file(kind: str, path: Path | None) -> Path:
    if path is None:
        raise GenerationError(f"fine-tuning needs {kind} data: run `{_EXPORT_HINT[kind]}` first")
    if not path.is_file():
        raise GenerationError(f"no {kind} data at {path}: run `{_EXPORT_HINT[kind]}` first")
    return path


def _unquantized(network: Any) -> Any:
    """The model without the GGUF quantizer that loading left on it (its weights are already dequantized
    floats), which would otherwise forbid saving; GenerationError where weights really are packed."""
    if getattr(network, "hf_quantizer", None) is None:
        return network
    if not all(parameter.is_floating_point() for parameter in network.parameters()):
        raise GenerationError("this model's weights are quantized and cannot be fine-tuned: use an unquantized one")
    network.hf_quantizer.remove_quantization_config(network)
    return network


def _trainable(network: Any, config: FinetuneConfig) -> Any:
    """The model with LoRA adapters on its attention and MLP projections, or with every weight trainable."""
    if not config.lora:
        for parameter in network.parameters():
            parameter.requires_grad_(True)
        return network
    from peft import LoraConfig, get_peft_model

    adapters = LoraConfig(
        r=8, lora_alpha=16, lora_dropout=0.05, target_modules=list(LORA_TARGETS), task_type="CAUSAL_LM"
    )
    try:
        with warnings.catch_warnings():
            # peft 0.21 reads transformers 5's deprecated `is_gradient_checkpointing`; nothing for kefu to fix
            warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
            return get_peft_model(network, adapters)
    except ValueError as err:
        raise GenerationError(f"LoRA needs a Llama-style model ({', '.join(LORA_TARGETS)}): {err}") from err


def _fingerprint(
    model: str, gguf_file: str | None, config: FinetuneConfig, sft: Path | None, preferences: Path | None
) -> dict[str, Any]:
    """What decides the fine-tuned weights: base model, config, and the sha256 of the data each phase reads."""
    phases = config.phases
    return {
        "base_model": model,
        "gguf_file": gguf_file,
        "config": {**dataclasses.asdict(config), "learning_rate": config.lr},
        "data": {
            "sft": _sha256(sft) if "sft" in phases else None,
            "preferences": _sha256(preferences) if "dpo" in phases else None,
        },
    }


def _sha256(path: Path | None) -> str | None:
    if path is None or not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _save(network: Any, tokenizer: Any, out_dir: Path, fingerprint: dict[str, Any], report: FinetuneReport) -> None:
    """Model and tokenizer as safetensors, then finetune.json last: a crash mid-save leaves no manifest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST).unlink(missing_ok=True)
    # transformers 5 always writes safetensors (its safe_serialization flag is gone)
    network.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    manifest = {"format": MANIFEST_FORMAT, **fingerprint, "report": report.to_json()}
    (out_dir / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
