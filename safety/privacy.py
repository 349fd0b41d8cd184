"""Personal-data leaks: a reply may repeat the customer's own data (masked by the PII check after this one),
never anyone else's. What the customer wrote this session, the slots and the retrieved facts (a published
hotline) count as known; any other phone, ID, card or e-mail in a reply blocks it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from bot.events import Session, UserUttered
from bot.types import Fact, SafetyVerdict, Stage
from safety.pii import KINDS, find_pii


def _values(texts: Sequence[str]) -> Iterator[str]:
    for text in texts:
        for match in find_pii(text):
            yield text[match.start : match.end]


class PiiLeakCheck:
    """SafetyCheck on output: blocks (category "privacy") a reply with personal data that is not the customer's."""

    name = "pii_leak"

    def warm_up(self) -> None:
        """Nothing to load."""

    def check(
        self, text: str, *, stage: Stage, session: Session | None = None, facts: Sequence[Fact] = ()
    ) -> SafetyVerdict:
        if stage != "output" or not find_pii(text):
            return SafetyVerdict(self.name, stage, True)
        known = [f.text for f in facts]
        if session is not None:
            known += [e.text for e in session.events if isinstance(e, UserUttered)]
            known += [str(v) for v in session.slots.values() if v is not None]
        leaked = find_pii(text, keep=list(_values(known)))
        if not leaked:
            return SafetyVerdict(self.name, stage, True)
        kinds = sorted({m.kind for m in leaked}, key=KINDS.index)
        reason = f"personal data that is not the customer's own: {', '.join(kinds)}"
        return SafetyVerdict(self.name, stage, False, "privacy", reason, rule=kinds[0])
