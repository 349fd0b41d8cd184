"""OpenAI's frequency and presence penalties as a transformers logits processor."""

from __future__ import annotations

import torch


class OpenAIPenalties:
    """logit -= count * frequency + (count > 0) * presence, counting only the tokens generated so far
    (unlike `repetition_penalty`, which also punishes repeating the prompt, hence the facts)."""

    def __init__(self, prompt_length: int, frequency: float, presence: float) -> None:
        self._start, self._frequency, self._presence = prompt_length, frequency, presence

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        generated = input_ids[:, self._start :]
        if generated.shape[1] == 0:
            return scores
        counts = torch.zeros_like(scores).scatter_add_(1, generated, torch.ones_like(generated, dtype=scores.dtype))
        return scores - counts * self._frequency - (counts > 0).to(scores.dtype) * self._presence  # type: ignore[return-value]
