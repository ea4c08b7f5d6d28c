"""Delivery and pumping: what turns messages and time into the replica's spec actions.

``Pump`` hands one received message to the replica (through the reorder buffer
for 2a messages), then takes every local action that has become enabled: an
election won, recovered slots re-proposed, commits, applies and a lease renewal.
The replica itself (reference/replica.py) holds only the spec's actions; the
choice of which enabled action to take next lives here: among them dropping a
suspicion (ClearSuspicion) and an election a quorum confirmed or a handoff
started (Phase1a without a timeout; the timeout itself is the node's).
"""

from __future__ import annotations

from reference.messages import (
    CommitMsg,
    HandoffMsg,
    LeaseAckMsg,
    LeaseMsg,
    Message,
    Phase1aMsg,
    Phase1bMsg,
    Phase2aMsg,
    Phase2bMsg,
    ProbeAckMsg,
    ProbeMsg,
)
from reference.reorder import ReorderBuffer
from reference.replica import Effect, Replica


class Pump:
    PIPELINE = 128
    """Re-proposed recovered slots in flight, uncommitted, at most (the spec lets Phase2a wait)."""

    def __init__(self, replica: Replica) -> None:
        self.replica = replica
        self.reorder = ReorderBuffer()

    @property
    def has_gap(self) -> bool:
        return self.reorder.has_gap

    def receive(self, m: Message, now_us: int) -> list[Effect]:
        """Deliver one message, then take every local step it enables."""
        r = self.replica
        r.now_us = now_us
        # The most frequent messages first; exact types (messages are never subclassed),
        # compared without isinstance calls: this runs for every message.
        t = type(m)
        effects: list[Effect]
        if t is Phase2bMsg:
            r.receive_vote(m)  # type: ignore[arg-type]
            effects = []
        elif t is Phase2aMsg:
            r.observe_2a(m)  # type: ignore[arg-type]
            effects = self.reorder.accept(r, m)  # type: ignore[arg-type]
        elif t is CommitMsg:
            r.receive_commit(m)  # type: ignore[arg-type]
            effects = []
        elif t is LeaseMsg:
            effects = r.lease_grant(m, now_us)  # type: ignore[arg-type]
        elif t is LeaseAckMsg:
            r.receive_lease_ack(m)  # type: ignore[arg-type]
            effects = []
        elif t is Phase1aMsg:
            effects = r.phase1b(m)  # type: ignore[arg-type]
        elif t is Phase1bMsg:
            r.receive_promise(m)  # type: ignore[arg-type]
            effects = []
        elif t is ProbeMsg:
            effects = r.answer_probe(m, now_us)  # type: ignore[arg-type]
        elif t is ProbeAckMsg:
            r.receive_probe_ack(m)  # type: ignore[arg-type]
            effects = []
        elif t is HandoffMsg:
            r.receive_handoff(m)  # type: ignore[arg-type]
            effects = []
        else:
            effects = []
        step = self.pump(now_us)
        if step:
            effects += step
        return effects

    def pump(self, now_us: int) -> list[Effect]:
        """Take every enabled local action (election, re-proposal, commit, apply, lease)."""
        r = self.replica
        r.now_us = now_us
        effects: list[Effect] = []
        # The guards in this method only skip calls that would find their action disabled:
        # without a suspicion or a handoff nobody elects; a follower commits and renews
        # nothing; nothing applies past the log's end. Most pumps take no step at all.
        # The volatile state is read directly (one attribute load, not a property call per
        # field): this runs after every message and tick. Only an election replaces it.
        v = r._v
        detect = v.detect
        if detect.suspecting:
            effects += r.clear_suspicion(now_us)
        if (detect.suspecting or detect.handoff_bal) and r.may_elect(now_us):
            effects += r.phase1a(r.next_ballot(), now_us)
            v = r._v
        if v.role == "candidate":
            quorum = r.first_quorum()
            if quorum is not None:
                effects += r.become_leader(r.ballot, quorum, now_us)
                v = r._v
        if v.role == "leader":
            # Re-propose recovered slots with a bounded number uncommitted, so a long log
            # does not flood followers; but always through the last recovered
            # configuration command, since nothing commits before it is re-proposed.
            while (v.proposed_upto < v.read_barrier
                   and (v.proposed_upto - v.committed_upto < self.PIPELINE
                        or r.reproposing_config())):
                effects += r.phase2a(r.ballot, v.proposed_upto + 1)
            if v.committed_upto < v.proposed_upto:
                while step := r.commit(r.ballot, v.committed_upto + 1, now_us):
                    effects += step
            if r.applied + 1 in r.log:
                while step := r.apply():
                    effects += step
            effects += r.lease_renew(now_us)
        elif r.applied + 1 in r.log:
            while step := r.apply():
                effects += step
        return effects

__all__ = ["Pump"]
