"""The leader's view of its members' health (fast healing's failure signal, paper §5.1/§6.1).

A leader hears from every live member all the time: 2b votes, lease grants and
catch-up reports. ``Health`` keeps, per replica id, the leader's local clock when
it last heard from it, and the highest slot it is known to have persisted in the
leader's ballot (a 2b vote for slot s means slots base+1..s are all persisted, by
the no-holes rule). A member is *unhealthy* once it has been silent for longer
than the threshold; the clock starts when the leader takes office, so every member
gets the full threshold first. Pure bookkeeping, no IO.
"""

from __future__ import annotations

from collections.abc import Iterable


class Health:
    def __init__(self, now_us: int) -> None:
        self.since = now_us
        self.last_heard: dict[str, int] = {}
        self.match: dict[str, int] = {}
        self.applied: dict[str, int] = {}
        """Per replica id, the highest ``applied`` its progress reports gave."""

    def heard(self, who: str, now_us: int) -> None:
        self.last_heard[who] = now_us

    def persisted(self, who: str, slot: int) -> None:
        if slot > self.match.get(who, 0):
            self.match[who] = slot

    def reported_applied(self, who: str, applied: int) -> None:
        if applied > self.applied.get(who, 0):
            self.applied[who] = applied

    def silent_for(self, who: str, now_us: int) -> int:
        return now_us - self.last_heard.get(who, self.since)

    def unhealthy(self, who: str, now_us: int, threshold_us: int) -> bool:
        return self.silent_for(who, now_us) > threshold_us

    def persisted_by_all(self, members: Iterable[str], own: str, own_upto: int) -> int:
        """The highest slot every one of ``members`` is known to have persisted (the
        leader's own log counts as ``own_upto``)."""
        return min((own_upto if m == own else self.match.get(m, 0) for m in members),
                   default=0)

    def applied_by_all(self, members: Iterable[str], own: str, own_applied: int) -> int:
        """The highest slot every one of ``members`` has reported applied (the leader's
        own ``applied`` counts as ``own_applied``)."""
        return min((own_applied if m == own else self.applied.get(m, 0) for m in members),
                   default=0)


__all__ = ["Health"]
