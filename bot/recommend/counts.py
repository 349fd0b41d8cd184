"""What use teaches: counts per (kind, context, item), and the learned part of a recommendation's score.

Kinds: `next` (the item was asked right after the context item was answered: co-occurrence), `shown`,
`click`, `good` and `bad` (whether the answer to a click satisfied), and, per day and language, `asked` (any
question answered) and `first` (a session's first answered question: the hot list's ranking). Counts only grow;
`pending` holds what this process added since the last sync with Redis.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

CountKey = tuple[str, str, str]  # kind, context, item
DAILY = ("asked", "first")  # kinds whose context is a day and a language (`signals.asked_context`)

# The learned boost: P(next | context) from co-occurrence, and the click-through rate above a prior,
# weighted by how often the clicked answer satisfied; both smoothed so a few observations move little.
W_NEXT = 1.0
W_CLICK = 0.5
NEXT_PRIOR = 5.0
CTR_PRIOR = 0.1
CTR_WEIGHT = 10.0


@dataclass(frozen=True, slots=True)
class Observation:
    kind: str
    context: str
    item: str


class UsageCounts:
    """Counts learned from use, kept in memory and indexed by (kind, context) for a turn's lookups."""

    def __init__(self) -> None:
        self._by_context: dict[tuple[str, str], Counter[str]] = {}
        self.pending: Counter[CountKey] = Counter()

    def add(self, observations: Iterable[Observation]) -> None:
        for seen in observations:
            self._by_context.setdefault((seen.kind, seen.context), Counter())[seen.item] += 1
            self.pending[(seen.kind, seen.context, seen.item)] += 1

    def drain(self) -> Counter[CountKey]:
        """Take what was added since the last sync (to send to Redis); `restore` it if sending failed."""
        taken, self.pending = self.pending, Counter()
        return taken

    def restore(self, taken: Mapping[CountKey, int]) -> None:
        self.pending.update(taken)

    def replace(self, totals: Mapping[CountKey, int]) -> None:
        """Adopt `totals` (every process's counts, from Redis) plus what is still pending here."""
        fresh: dict[tuple[str, str], Counter[str]] = {}
        for (kind, context, item), count in (Counter(totals) + self.pending).items():
            fresh.setdefault((kind, context), Counter())[item] = count
        self._by_context = fresh

    def counts(self, kind: str, context: str) -> Mapping[str, int]:
        return self._by_context.get((kind, context), Counter())

    def boost(self, context: str, item: str) -> float:
        """The learned part of `item`'s score after `context` (0 with nothing learned)."""
        after = self.counts("next", context)
        p_next = after.get(item, 0) / (sum(after.values()) + NEXT_PRIOR) if after else 0.0
        shown = self.counts("shown", context).get(item, 0)
        if not shown:
            return W_NEXT * p_next
        clicks = self.counts("click", context).get(item, 0)
        ctr = (clicks + CTR_PRIOR * CTR_WEIGHT) / (shown + CTR_WEIGHT)
        good, bad = self.counts("good", context).get(item, 0), self.counts("bad", context).get(item, 0)
        satisfied = (good + 1) / (good + bad + 2)
        return W_NEXT * p_next + W_CLICK * (ctr - CTR_PRIOR) * 2 * satisfied

    def learned_after(self, context: str, limit: int) -> list[str]:
        """Items most often asked next after `context`, for candidates the static neighbours lack."""
        after = self.counts("next", context)
        return sorted(after, key=lambda item: -after[item])[:limit]
