"""Reciprocal rank fusion: one ranking from several (dense and keyword search), by rank rather than score.

Cormack, Clarke and Büttcher (2009): each ranking gives an item `weight / (k + rank)`; `k` = 60 damps the
difference between the first few ranks, so an item found by both searches beats one ranked first by one.
"""

from __future__ import annotations

from collections.abc import Sequence


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[str]], *, k: int = 60, weights: Sequence[float] | None = None
) -> list[tuple[str, float]]:
    """Items of all `rankings` (each best first) as (item, fused score), best first.

    An item found by several rankings adds up their shares; an item repeated within one ranking counts at
    its best rank only. Equal scores go to the item with the best single rank, then by item, so the order
    is deterministic.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    if weights is None:
        weights = [1.0] * len(rankings)
    elif len(weights) != len(rankings):
        raise ValueError(f"{len(weights)} weights for {len(rankings)} rankings")
    scores: dict[str, float] = {}
    best_rank: dict[str, int] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        if isinstance(ranking, str):
            raise TypeError("each ranking is a sequence of items, not one string")
        seen: set[str] = set()
        for rank, item in enumerate(ranking, start=1):
            if item in seen:
                continue
            seen.add(item)
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
            best_rank[item] = min(rank, best_rank.get(item, rank))
    return sorted(scores.items(), key=lambda pair: (-pair[1], best_rank[pair[0]], pair[0]))
