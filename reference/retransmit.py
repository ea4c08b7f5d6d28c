"""Retransmission and catch-up: re-sending messages the spec already has in ``msgs``.

The spec's network never consumes a message, so delivering one again is a step
it allows; these functions only choose *which* messages a leader sends again:
the 2a messages of slots still short of a quorum, lease requests not yet granted
by a quorum, and the 2a and commit messages a lagging follower reports missing.
None of them changes the replica's state.
"""

from __future__ import annotations

from reference.messages import CommitMsg, LeaseMsg, Phase2aMsg
from reference.replica import Broadcast, Effect, Replica, Send


def have(r: Replica) -> int:
    """Highest slot of ``r``'s log holding an entry of its current ballot (its
    checkpoint point ``base`` if none: slots up to it are committed).

    By the no-holes rule of phase2b every lower slot holds one too, so this is how
    far ``r``'s log agrees with the ballot's leader.
    """
    b = r.ballot
    for s in range(r.top, r.base, -1):
        e = r.log.get(s)
        if e is not None and e.bal == b:
            return s
    return r.base


def resend_uncommitted(r: Replica, now_us: int, window: int = 64) -> list[Effect]:
    """Leader: re-broadcast the 2a messages of the oldest slots still short of a quorum.

    Slots that only wait for the new-leader wait (or for an earlier slot) are not
    re-sent: more votes would not commit them sooner.
    """
    if r.role != "leader" or now_us < r.wait_until:
        return []
    b = r.ballot
    top = min(r.proposed_upto, r.committed_upto + window)
    return [Broadcast(Phase2aMsg(b, s, r.log[s].cmd, r.node_id))
            for s in range(r.committed_upto + 1, top + 1)
            if not r.is_quorum(r.votes.get(s, {r.node_id}))]


def catch_up(r: Replica, src: str, bal: int, have: int, applied: int,
             window: int = 256, base: int = 0) -> list[Effect]:
    """Leader: re-send the 2a and commit messages a lagging follower lacks.

    ``have``/``applied``/``base`` are the follower's report. A follower in an older
    ballot shares no entry of ours above its checkpoint ``base``, so it gets the
    ballot's 2a messages from there. Slots the leader has truncated are never re-sent:
    the node seeds such a follower instead (reference/node.py, ``SeedMsg``).
    """
    if r.role != "leader" or src == r.node_id or bal > r.ballot:
        return []
    b = r.ballot
    start = have + 1 if bal == b else base + 1
    start = max(start, r.base + 1)
    effects: list[Effect] = [
        Send(src, Phase2aMsg(b, s, r.log[s].cmd, r.node_id))
        for s in range(start, min(r.proposed_upto, start + window - 1) + 1)
        if s in r.log
    ]
    effects += [
        Send(src, CommitMsg(b, s, r.node_id))
        for s in range(applied + 1, min(r.committed_upto, applied + window) + 1)
    ]
    return effects


def lease_resend(r: Replica, now_us: int) -> list[Effect]:
    """Leader: re-broadcast a lease request that has not yet reached a quorum."""
    if r.role != "leader" or r.relinquished:
        return []
    dur = r.config.lease_dur_us
    return [
        Broadcast(LeaseMsg(r.ballot, t, r.node_id, r.lease_request_held(t)))
        for t, g in sorted(r.lease_grants.items())
        if t + dur > now_us and not r.is_quorum(g)
    ]


def handoff_resend(r: Replica) -> list[Effect]:
    """Leader that relinquished its lease: send the handoff to its successor again (it
    may have been lost, or reached the successor before it caught up with the ballot);
    it stops once a later ballot deposes the leader."""
    return r.handoff_again()


__all__ = ["catch_up", "handoff_resend", "have", "lease_resend", "resend_uncommitted"]
