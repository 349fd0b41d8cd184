"""The dialogue transformer, in the spirit of Rasa's TED policy.

Each dialogue state (a multi-hot vector, `policies.state_features`) is embedded by one linear layer
plus a position embedding; a small causal transformer reads the last `max_history` states (zero
states in front when the dialogue is shorter, the same at training and at run time); the output at
the latest state is projected into a space where each action has a learned embedding, and the inner
product with each action is its logit (softmax over all actions).

Training drops whole earlier states at random, so that the latest state counts for what it says in
any history, and weights each example by how rare its action is. `policies.ted_numpy` runs the
trained network at decision time.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from tqdm import tqdm


@dataclass(frozen=True, slots=True)
class TedConfig:
    """Sizes and training schedule; stored in the model's meta.json and part of its fingerprint."""

    max_history: int = 10
    units: int = 64
    layers: int = 2
    heads: int = 4
    ff_units: int = 128
    embed_dim: int = 32
    dropout: float = 0.1
    history_dropout: float = 0.2
    epochs: int = 30
    min_steps: int = 400  # small projects: at least this many batches in all, however few the examples
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TedConfig:
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})


class TedNet(nn.Module):
    """States (B, max_history, features) to action logits (B, actions)."""

    def __init__(self, n_features: int, n_actions: int, cfg: TedConfig) -> None:
        super().__init__()
        self.max_history = cfg.max_history
        self.history_dropout = cfg.history_dropout
        self.state = nn.Linear(n_features, cfg.units)
        self.position = nn.Embedding(cfg.max_history, cfg.units)
        self.dropout = nn.Dropout(cfg.dropout)
        layer = nn.TransformerEncoderLayer(
            cfg.units, cfg.heads, cfg.ff_units, cfg.dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.units)
        self.dialogue = nn.Linear(cfg.units, cfg.embed_dim)
        self.actions = nn.Parameter(torch.randn(n_actions, cfg.embed_dim) * 0.1)
        causal = nn.Transformer.generate_square_subsequent_mask(cfg.max_history)
        self.register_buffer("causal", causal, persistent=False)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        """Action logits (B, actions) after the last of `states` (B, max_history, features)."""
        if self.training and self.history_dropout > 0:
            states = self._drop_history(states)
        x = self.dropout(self.state(states) + self.position.weight)
        out = self.encoder(x, mask=self.causal, is_causal=True)
        logits: torch.Tensor = self.dialogue(self.norm(out[:, -1])) @ self.actions.T
        return logits

    def _drop_history(self, states: torch.Tensor) -> torch.Tensor:
        """Zero whole earlier states at random: the history then cannot stand in for what the latest state
        says, so a familiar state in an unfamiliar history still gets its action. (Dropping single
        features instead hurts: a state has only a handful, each decisive.)"""
        keep = torch.rand(states.shape[0], states.shape[1], 1) >= self.history_dropout
        keep[:, -1] = True
        return states * keep


def fit(
    net: TedNet, windows: torch.Tensor, targets: torch.Tensor, cfg: TedConfig, *, seed: int, progress: bool
) -> float:
    """Train `net` on (N, max_history, features) windows and their target action indices; the last epoch's loss.

    Call inside `seeded(seed)` for bit-for-bit reproducible weights.
    """
    optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    per_epoch = -(-len(windows) // cfg.batch_size)
    epochs = max(cfg.epochs, -(-cfg.min_steps // max(per_epoch, 1)))
    steps = epochs * per_epoch
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, cfg.learning_rate, total_steps=max(steps, 1))
    weights = balance(targets, net.actions.shape[0])
    order = torch.Generator().manual_seed(seed)
    show = progress and sys.stderr.isatty()
    net.train()
    total = 0.0
    with tqdm(range(epochs), desc="training core", unit="epoch", disable=not show, leave=False) as bar:
        for _ in bar:
            total = 0.0
            for chunk in torch.split(torch.randperm(len(windows), generator=order), cfg.batch_size):
                losses = nn.functional.cross_entropy(net(windows[chunk]), targets[chunk], reduction="none")
                loss = (losses * weights[chunk]).mean()
                optimizer.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
                schedule.step()
                total += loss.item() * len(chunk)
            bar.set_postfix(loss=f"{total / max(len(windows), 1):.4f}")
    net.eval()
    return total / max(len(windows), 1)


def balance(targets: torch.Tensor, n_actions: int) -> torch.Tensor:
    """Per-example loss weights, 1/sqrt of how often the example's action is a target, averaging 1.

    Stitched dialogues repeat the stories that can be stitched many times over; an action only a rule
    shows (a form of its own) would otherwise drown. Rasa's TED balances its batches for the same reason.
    """
    counts = torch.bincount(targets, minlength=n_actions).clamp(min=1).to(torch.float32)
    weights = counts[targets] ** -0.5
    return weights / weights.mean()
