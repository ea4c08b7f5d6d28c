"""Gray-failure check before an election (paper section 6.2).

A follower that stops hearing its leader may be the one with the problem (a
failed link, a slow NIC). Starting an election would depose a healthy leader,
so it first asks its peers whether they still hear the leader, and starts the
election only if none does. This module holds that check's state and rules; the
node (reference/node.py) sends and receives its messages.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class LeaderCheck:
    healthy_votes: int = 0
    """Peers that answered that they still hear the leader, in the current check."""
    ballot: int = -1
    """The ballot whose leader the current check asks about (-1: none running)."""
    last_heard_leader: int = -(1 << 62)
    """Local time this replica last heard its ballot's leader (2a, commit or lease)."""
    vetoed: int = 0
    """Checks that found the leader still heard by a peer (elections avoided)."""

    def start(self, ballot: int) -> None:
        self.healthy_votes = 0
        self.ballot = ballot

    def answer(self, ballot: int, healthy: bool) -> None:
        if healthy and ballot >= self.ballot:
            self.healthy_votes += 1

    def heard_leader(self, now_us: int) -> None:
        self.last_heard_leader = now_us

    def hears_leader(self, now_us: int, timeout_us: int) -> bool:
        """Whether this follower heard its leader within half an election timeout."""
        return now_us - self.last_heard_leader < timeout_us // 2

    def may_elect(self) -> bool:
        """At the end of the check: elect only if no peer still hears the leader."""
        if self.healthy_votes:
            self.vetoed += 1
            return False
        return True


__all__ = ["LeaderCheck"]
