"""The joint intent + entity network, in the spirit of Rasa's DIET.

Input: a sentence token (hashed word, bigram and character n-gram features of the whole message,
plus the multilingual sentence embedding when configured) followed by one token per Han character
or Latin word (its hashed features). A small transformer reads them all; the sentence token's
output goes to the intent similarity head (inner product between the message's embedding and each
intent's learned embedding); every other token's output gives BIO emissions for a CRF. With
sentence embeddings, a linear head on them alone adds its logits (see `NetOutput`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from bot.nlu.crf import Crf

# Sentence embeddings are unit vectors; scaled up, a linear head on them learns at the pace of the rest.
DENSE_SCALE = 10.0


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    """Sizes and training schedule; stored in the model's meta.json."""

    units: int = 128
    layers: int = 1
    heads: int = 4
    ff_units: int = 256
    embed_dim: int = 64
    dropout: float = 0.1
    input_dropout: float = 0.1
    feature_dropout: float = 0.2
    noise_share: float = 0.06  # synthetic gibberish, labelled nlu_fallback, as a share of the examples
    max_tokens: int = 48
    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    entity_weight: float = 1.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NetworkConfig:
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})


@dataclass(frozen=True, slots=True)
class Batch:
    """Several messages as tensors: bags of table rows with offsets and weights, token counts, dense vectors."""

    sentence_rows: torch.Tensor
    sentence_offsets: torch.Tensor
    sentence_weights: torch.Tensor
    token_rows: torch.Tensor
    token_offsets: torch.Tensor
    token_weights: torch.Tensor
    lengths: torch.Tensor  # tokens per message (0 for a message without words)
    dense: torch.Tensor | None


@dataclass(frozen=True, slots=True)
class NetOutput:
    """Intent logits of the joint network and of the dense head (trained apart), tag emissions, token mask."""

    joint: torch.Tensor
    dense: torch.Tensor | None
    emissions: torch.Tensor
    mask: torch.Tensor

    @property
    def logits(self) -> torch.Tensor:
        """The two heads' logits added: a product of their distributions."""
        return self.joint if self.dense is None else self.joint + self.dense


class JointNet(nn.Module):
    def __init__(
        self,
        n_sentence_rows: int,
        n_token_rows: int,
        n_intents: int,
        tags: list[str],
        dense_dim: int,
        cfg: NetworkConfig,
    ) -> None:
        super().__init__()
        self.sentence_bag = nn.EmbeddingBag(max(n_sentence_rows, 1), cfg.units, mode="sum")
        self.token_bag = nn.EmbeddingBag(max(n_token_rows, 1), cfg.units, mode="sum")
        self.dense = nn.Linear(dense_dim, cfg.units) if dense_dim else None
        # A linear head on the sentence embedding alone, with a loss of its own: trained jointly, the
        # sparse features fit the training data first and leave the dense features little to learn.
        self.dense_head = nn.Linear(dense_dim, n_intents) if dense_dim else None
        self.position = nn.Embedding(cfg.max_tokens + 1, cfg.units)
        self.input_dropout = nn.Dropout(cfg.input_dropout)
        layer = nn.TransformerEncoderLayer(
            cfg.units, cfg.heads, cfg.ff_units, cfg.dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.units)
        self.intent_head = nn.Linear(cfg.units, cfg.embed_dim)
        self.intent_embeddings = nn.Parameter(torch.randn(n_intents, cfg.embed_dim) * 0.1)
        self.emissions = nn.Linear(cfg.units, len(tags))
        self.crf = Crf(tags)

    def forward(self, batch: Batch) -> NetOutput:
        """Intent logits (B, intents), tag emissions (B, T, tags) and the token mask (B, T)."""
        sentence = self.sentence_bag(
            batch.sentence_rows, batch.sentence_offsets, per_sample_weights=batch.sentence_weights
        )
        if self.dense is not None and batch.dense is not None:
            sentence = sentence + self.dense(batch.dense)
        sentence = self.input_dropout(sentence)
        tokens, mask = self._token_inputs(batch)
        x = torch.cat([sentence.unsqueeze(1), tokens], dim=1)
        x = x + self.position(torch.arange(x.shape[1]).clamp(max=self.position.num_embeddings - 1))
        padding = torch.cat([torch.zeros(len(mask), 1, dtype=torch.bool), ~mask], dim=1)
        # nothing to hide in a batch without padding; the unmasked softmax is the faster kernel
        out = self.encoder(x, src_key_padding_mask=padding if bool(padding.any()) else None)
        # Inner product, not cosine: a message with few known features keeps a short vector and so
        # a flat distribution, where a normalised one would be confidently anything.
        logits = self.intent_head(out[:, 0]) @ self.intent_embeddings.T
        dense_logits = None
        if self.dense_head is not None and batch.dense is not None:
            dense_logits = self.dense_head(batch.dense * DENSE_SCALE)
        return NetOutput(logits, dense_logits, self.emissions(self.norm(out[:, 1:])), mask)

    def _token_inputs(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        flat = self.token_bag(batch.token_rows, batch.token_offsets, per_sample_weights=batch.token_weights)
        flat = self.input_dropout(flat)
        longest = max(int(batch.lengths.max()) if len(batch.lengths) else 0, 1)
        mask = torch.arange(longest).unsqueeze(0) < batch.lengths.unsqueeze(1)
        tokens = flat.new_zeros(len(batch.lengths), longest, flat.shape[1])
        tokens[mask] = flat
        return tokens, mask
