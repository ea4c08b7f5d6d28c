"""The reorder buffer: 2a messages that arrived ahead of a slot the replica lacks.

The network reorders, and the write-ahead log has no holes (spec Phase2b takes
slot s of ballot b only after slot s-1 of b), so a 2a that arrives early would be
refused. It is held here, in volatile memory, and handed to the replica once the
slot before it is filled. The spec keeps every message in ``msgs``, so handling
one later is a step it allows.
"""

from __future__ import annotations

from reference.messages import EMPTY, Phase2aMsg
from reference.replica import Effect, Replica


class ReorderBuffer:
    LIMIT = 1024
    """At most this many held messages; more are dropped (a re-send brings them back)."""

    def __init__(self) -> None:
        self.held: dict[int, Phase2aMsg] = {}

    @property
    def has_gap(self) -> bool:
        """A 2a arrived ahead of a slot the replica lacks."""
        return bool(self.held)

    def accept(self, r: Replica, m: Phase2aMsg) -> list[Effect]:
        """Phase2b on ``m`` and on any held 2a messages it makes acceptable."""
        if m.slot > r.base + 1 and r.log.get(m.slot - 1, EMPTY).bal != m.bal \
                and m.bal >= r.ballot:
            if len(self.held) < self.LIMIT:
                self.held[m.slot] = m
            return []
        effects = r.phase2b(m)
        nxt = self.held.pop(m.slot + 1, None) if effects else None
        while nxt is not None and nxt.bal == m.bal:
            step = r.phase2b(nxt)
            effects += step
            nxt = self.held.pop(nxt.slot + 1, None) if step else None
        if self.held and min(self.held) <= m.slot:
            self.held = {s: e for s, e in self.held.items() if s > m.slot and e.bal >= r.ballot}
        return effects


__all__ = ["ReorderBuffer"]
