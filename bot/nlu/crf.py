"""A linear-chain CRF over BIO tags: negative log-likelihood for training, Viterbi for decoding.

Transitions that BIO forbids (O -> I-x, B-x -> I-y) are masked out, so decoding never produces a
span that starts with I- or changes entity half-way.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

OUTSIDE = "O"
_FORBIDDEN = -1e4


def bio_tags(entity_names: list[str]) -> list[str]:
    """Tag 0 is O; then B-name and I-name for each entity name."""
    return [OUTSIDE] + [f"{prefix}-{name}" for name in entity_names for prefix in ("B", "I")]


def _allowed(tags: list[str]) -> torch.Tensor:
    """allowed[i, j]: may tag j follow tag i; allowed_start[j]: may a sequence start with tag j."""
    n = len(tags)
    allowed = torch.ones(n + 1, n, dtype=torch.bool)  # the last row is "start of sequence"
    for j, tag in enumerate(tags):
        if not tag.startswith("I-"):
            continue
        name = tag[2:]
        for i, before in enumerate(tags):
            allowed[i, j] = before in (f"B-{name}", f"I-{name}")
        allowed[n, j] = False
    return allowed


class Crf(nn.Module):
    def __init__(self, tags: list[str]) -> None:
        super().__init__()
        n = len(tags)
        self.transitions = nn.Parameter(torch.zeros(n, n))
        self.start = nn.Parameter(torch.zeros(n))
        self.end = nn.Parameter(torch.zeros(n))
        allowed = _allowed(tags)
        self.register_buffer("mask_trans", torch.where(allowed[:n], 0.0, _FORBIDDEN))
        self.register_buffer("mask_start", torch.where(allowed[n], 0.0, _FORBIDDEN))

    def _trans(self) -> torch.Tensor:
        return self.transitions + self.get_buffer("mask_trans")

    def _start(self) -> torch.Tensor:
        return self.start + self.get_buffer("mask_start")

    def nll(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood; emissions (B, T, K), tags (B, T), mask (B, T) true for real tokens.

        Every sequence must have at least one real token, at position 0.
        """
        trans, start = self._trans(), self._start()
        batch = torch.arange(emissions.shape[0])
        score = start[tags[:, 0]] + emissions[batch, 0, tags[:, 0]]
        alpha = start + emissions[:, 0]
        for t in range(1, emissions.shape[1]):
            on = mask[:, t]
            step = trans[tags[:, t - 1], tags[:, t]] + emissions[batch, t, tags[:, t]]
            score = score + step * on
            nxt = torch.logsumexp(alpha.unsqueeze(2) + trans.unsqueeze(0), dim=1) + emissions[:, t]
            alpha = torch.where(on.unsqueeze(1), nxt, alpha)
        last = tags[batch, mask.sum(dim=1) - 1]
        score = score + self.end[last]
        log_z = torch.logsumexp(alpha + self.end, dim=1)
        return (log_z - score).mean()

    def decode(self, emissions: torch.Tensor) -> list[int]:
        """The best tag sequence for one sequence of emissions (T, K). In numpy: at a handful of tags, each of
        a message's dozens of tiny torch operations costs more in dispatch than in arithmetic (the same float32
        sums, and on a tie the first index, as torch's max)."""
        trans = self._trans().detach().numpy()
        steps = emissions.detach().numpy()
        score = self._start().detach().numpy() + steps[0]
        back: list[np.ndarray] = []
        for step in steps[1:]:
            candidates = score[:, np.newaxis] + trans
            back.append(candidates.argmax(axis=0))
            score = candidates.max(axis=0) + step
        path = [int((score + self.end.detach().numpy()).argmax())]
        for index in reversed(back):
            path.append(int(index[path[-1]]))
        return path[::-1]
