"""The training loop and the losses of generator fine-tuning (SFT and DPO), written in plain torch."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from tqdm import tqdm

from bot.generation.finetune_data import IGNORE, Encoded, batches, pad

T = TypeVar("T")
MAX_GRAD_NORM = 1.0  # one unlucky batch of a tiny data set must not wreck the model


@dataclass(frozen=True, slots=True)
class Pair:
    """A tokenised preference pair with the reference model's log-probabilities of both answers."""

    chosen: Encoded
    rejected: Encoded
    ref_chosen: float = 0.0
    ref_rejected: float = 0.0


@dataclass(frozen=True, slots=True)
class Schedule:
    """How a phase trains: epochs over seeded shuffles, batch size, learning rate, and the progress bar."""

    epochs: int
    batch_size: int
    learning_rate: float
    seed: int
    label: str
    progress: bool


def sequence_logps(model: Any, encoded: Sequence[Encoded], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sequence: the summed log-probability of its completion tokens, and how many there are."""
    batch = pad(encoded, pad_id)
    # logits only from the position before the earliest completion token on: the prompt's logits over a
    # 49k vocabulary would cost time and most of the memory, and no loss reads them
    first = min(len(e.prompt_ids) for e in encoded)
    keep = batch["input_ids"].shape[1] - first + 1
    output = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], logits_to_keep=keep)
    logits, labels = output.logits[:, :-1], batch["labels"][:, first:]
    token_logps = -F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=IGNORE, reduction="none")
    return token_logps.sum(dim=1), (labels != IGNORE).sum(dim=1)


def sft_loss(model: Any, encoded: Sequence[Encoded], pad_id: int) -> torch.Tensor:
    """Mean negative log-likelihood per completion token of the batch."""
    logps, counts = sequence_logps(model, encoded, pad_id)
    return -logps.sum() / counts.sum()


def pair_rewards(model: Any, pairs: Sequence[Pair], pad_id: int, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """DPO's implicit rewards beta * (log pi - log ref) of the chosen and the rejected answers, one forward pass."""
    logps, _ = sequence_logps(model, [p.chosen for p in pairs] + [p.rejected for p in pairs], pad_id)
    chosen, rejected = logps[: len(pairs)], logps[len(pairs) :]
    ref_chosen = torch.tensor([p.ref_chosen for p in pairs], dtype=chosen.dtype)
    ref_rejected = torch.tensor([p.ref_rejected for p in pairs], dtype=chosen.dtype)
    return beta * (chosen - ref_chosen), beta * (rejected - ref_rejected)


def dpo_loss(model: Any, pairs: Sequence[Pair], pad_id: int, beta: float) -> torch.Tensor:
    """-log sigmoid(reward(chosen) - reward(rejected)), averaged over the pairs."""
    chosen, rejected = pair_rewards(model, pairs, pad_id, beta)
    return -F.logsigmoid(chosen - rejected).mean()


def with_reference(model: Any, pairs: Sequence[Pair], pad_id: int, batch_size: int) -> list[Pair]:
    """The pairs with the current model's log-probabilities as the DPO reference.

    Computed once before DPO trains: the same numbers a frozen copy (or the model with its LoRA adapters
    disabled) would give at every step, without a second model in memory, and right after SFT too.
    """
    model.eval()
    scored = []
    with torch.no_grad():
        for group in batches(pairs, batch_size):
            logps, _ = sequence_logps(model, [p.chosen for p in group] + [p.rejected for p in group], pad_id)
            for index, pair in enumerate(group):
                ref_chosen, ref_rejected = float(logps[index]), float(logps[len(group) + index])
                scored.append(Pair(pair.chosen, pair.rejected, ref_chosen, ref_rejected))
    return scored


def evaluate_sft(model: Any, encoded: Sequence[Encoded], pad_id: int, batch_size: int) -> dict[str, float]:
    """Mean completion-token loss over all evaluation tokens, and its perplexity."""
    model.eval()
    total, tokens = 0.0, 0
    with torch.no_grad():
        for group in batches(encoded, batch_size):
            logps, counts = sequence_logps(model, group, pad_id)
            total, tokens = total - float(logps.sum()), tokens + int(counts.sum())
    loss = total / max(tokens, 1)
    return {"sft_loss": loss, "sft_perplexity": math.exp(min(loss, 50.0))}


def evaluate_dpo(model: Any, pairs: Sequence[Pair], pad_id: int, batch_size: int, beta: float) -> dict[str, float]:
    """Preference accuracy (chosen rewarded above rejected; a tie counts half), mean reward margin, DPO loss."""
    model.eval()
    margins = []
    with torch.no_grad():
        for group in batches(pairs, batch_size):
            chosen, rejected = pair_rewards(model, group, pad_id, beta)
            margins.append(chosen - rejected)
    return margin_metrics(torch.cat(margins))


def margin_metrics(margins: torch.Tensor) -> dict[str, float]:
    """DPO's metrics from the reward margins of the evaluation pairs."""
    accuracy = (margins > 0).float().mean() + 0.5 * (margins == 0).float().mean()
    return {
        "dpo_accuracy": float(accuracy),
        "dpo_margin": float(margins.mean()),
        "dpo_loss": float(-F.logsigmoid(margins).mean()),
    }


def train(model: Any, items: Sequence[T], loss: Callable[[Sequence[T]], torch.Tensor], schedule: Schedule) -> None:
    """AdamW over the trainable parameters at a constant rate, reshuffling the items each epoch."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=schedule.learning_rate, weight_decay=0.0)
    order, rng = list(items), random.Random(schedule.seed)
    steps = schedule.epochs * math.ceil(len(order) / schedule.batch_size)
    running: float | None = None
    model.train()
    with tqdm(total=steps, desc=schedule.label, unit="step", disable=not schedule.progress) as bar:
        for _ in range(schedule.epochs):
            rng.shuffle(order)
            for group in batches(order, schedule.batch_size):
                value = loss(group)
                optimizer.zero_grad(set_to_none=True)
                value.backward()  # type: ignore[no-untyped-call]
                torch.nn.utils.clip_grad_norm_(parameters, MAX_GRAD_NORM)
                optimizer.step()
                # an exponential average: a readable running loss while each batch's loss jumps about
                current = float(value.detach())
                running = current if running is None else 0.9 * running + 0.1 * current
                bar.set_postfix(loss=f"{running:.4f}")
                bar.update()
    model.eval()
