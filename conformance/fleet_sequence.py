"""Sequencing one group's events from its nodes without real time (format 4).

A node's lines are in the order it wrote them, so each node's events of a group are a
chain; across nodes there is no order but causality and the clocks' intervals (true
time within ``[clock - err, clock + err]``; ``lo`` below is ``clock - err`` raised to
that of the lines before it on the node, since they were written earlier). The
sequencer merges the chains into one order that the invariant monitor folds.

The order. Every node's queue is emitted in file order. Among the queues' heads, the
sequencer emits the one with the smallest ``lo`` among those that are *ready*: every
condition the monitor checks for that step (conformance/monitor_steps.py, monitor.py,
monitor_gray.py) that reads *another* replica's steps holds in the monitor's state. One
predicate per action mirrors those checks (``_READY``): Phase1b's 1a was started;
BecomeLeader's Q promised; Phase2b's 2a was sent (or re-sent below its leader's
checkpoint) and it joins or is a member; Commit has a quorum of matching votes of its
leader's view; Apply has a Commit of its slot (or a checkpoint covering it) and the slot
is chosen; LeaseGrant's request was sent; a step under a lease (ClientWrite, the
membership changes, StrongRead, LeaseRelinquish, and any leader step whose ``post``
reports a lease) has the grants that make the lease; LeaseRenew also has no
outstanding request; AnswerProbe's suspicion (its nonce) was started; ClearSuspicion
has a "hears" answer unless it hears a leader itself; Phase1a, with peer confirmation,
has its quorum of "hears no leader" answers or a handoff; InstallSnapshot's source
applied what it copies; Checkpoint's slots are chosen; a receipt waits while its link
is down (a LinkUp may come). Conditions on the acting replica's own earlier steps need
no waiting: its chain is in order.

Why a correct run never fails a check. (1) Liveness: among the heads, the one with the
earliest true time has all its causes at earlier true times; each cause is on some
chain, at or before that chain's head would put it at a true time at least the head's,
so it has been emitted: that head is ready. So all heads blocked means the run is not
a correct one. (2) Safety: a ready head passes each cross-replica check by
construction, and its own replica's checks see its own chain in order. The state also
holds steps of other replicas truly *after* the head (emitted ahead); every check is
monotone in them (votes, sends, promises, grants and chosen slots only grow; a later
promise to a higher ballot only makes a deposed leader's checks vacuous).

Waiting is bounded. A blocked head ``e`` is released to the monitor once its causes
can no longer appear before it: every other node of the group has read past ``e``'s
latest true time (its next line's ``lo`` > ``e``'s ``hi``). In a correct run that never
fires while ``e`` is blocked (its causes were all written before ``e``, so before those
nodes' next lines), so when it fires the cause is missing for certain and the monitor
reports the violation at ``e``'s file:line. That is a violation, not an input problem:
the reader has already checked each node's file for lost lines (``seq`` gaps, missing
segments, and a lost last segment by fleet.json's line count per node, when it gives
one), so the cause was never written. If every head
is blocked and none certain (a cycle: only an incorrect run has one), the head with
the smallest ``lo`` is released. Memory: each blocked chain buffers only its events
within that window (error bound plus the node's read lag), not the run.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from conformance.fleet_input import NodeLine
from conformance.monitor import Monitor, is_quorum_of, members_of

INF = 1 << 62
Ready = Callable[["Sequencer", Any, Any, Any, int], bool]
"""(sequencer, event, its replica's monitor state, args, clock) -> ready."""
Emit = Callable[[Any, NodeLine], None]


def _leased(sq: Sequencer, ev: Any, rep: Any, a: Any, clock: int) -> bool:
    """A leader step that needs its lease: the grants that make it are in."""
    return rep.role != "leader" or sq.mon.holds_lease(ev.replica, clock)


def _link_up(sq: Sequencer, src: str, node: str) -> bool:
    return (src, node) not in sq.mon.gray.down


def _phase1a(sq: Sequencer, ev: Any, rep: Any, a: Any, clock: int) -> bool:
    g = sq.mon.gray
    if not g._confirming() or g.handoff_for(ev.replica, rep.ballot):
        return True
    d = g.d[ev.replica]
    if not d.suspecting:
        return False  # a handoff to it may not be in yet
    if g.hears(ev.replica, clock):
        return True  # its own state: the monitor judges
    confirmed = {ev.replica} | {m.src for m, h in d.answers if not h and g._deliverable(m)}
    return is_quorum_of(sq.mon.view_members(ev.replica), confirmed)


def _phase1b(sq: Sequencer, ev: Any, rep: Any, a: Any, clock: int) -> bool:
    return sq.mon.steps.started.get(a.m.bal) == a.m.src and _link_up(sq, a.m.src, ev.replica)


def _become_leader(sq: Sequencer, ev: Any, rep: Any, a: Any, clock: int) -> bool:
    got = sq.mon.promises.get(a.b, {})
    return all(v in got for v in a.Q if v != ev.replica)


def _phase2b(sq: Sequencer, ev: Any, rep: Any, a: Any, clock: int) -> bool:
    m, steps = a.m, sq.mon.steps
    bal = sq.mon.ballots.get(m.bal)
    below = bal is not None and bal.leader == m.src and m.slot <= bal.base
    if not below and (m.src, m.bal, m.slot) not in steps.sent_2a:
        return False
    if not steps._member(ev.replica, rep) and steps.adds.get(ev.replica, INF) > m.bal:
        return False
    return _link_up(sq, m.src, ev.replica)


def _commit(sq: Sequencer, ev: Any, rep: Any, a: Any, clock: int) -> bool:
    b, s = a.b, a.s
    entry = rep.log.get(s)
    if rep.role != "leader" or rep.lead is None or rep.ballot != b or entry is None \
            or entry[0] != b:
        return True  # its own state is wrong: the monitor judges at once
    voters = sq.mon.votes.get((b, s), {}).get(entry[1], set())
    return is_quorum_of(members_of(sq.mon._leader_view(rep.lead)), voters)


def _apply(sq: Sequencer, ev: Any, rep: Any, a: Any, clock: int) -> bool:
    steps, s = sq.mon.steps, a.s
    return (s in steps.committed_slots or s <= steps.checkpointed) and s in sq.mon.chosen


def _lease_renew(sq: Sequencer, ev: Any, rep: Any, a: Any, clock: int) -> bool:
    if rep.role != "leader" or rep.lead is None:
        return True
    mon = sq.mon
    if ev.post.lease and not mon.holds_lease(ev.replica, clock):
        return False
    members = mon.view_members(ev.replica)
    left = max([0, *(t + mon.lease_dur - clock for t, g in rep.leases.items()
                     if is_quorum_of(members, g))])
    return not any(t + mon.lease_dur - clock > left for t in rep.leases)


def _lease_grant(sq: Sequencer, ev: Any, rep: Any, a: Any, clock: int) -> bool:
    m = a.m
    return (m.src, m.bal, m.start) in sq.mon.steps.sent_lease and _link_up(sq, m.src,
                                                                             ev.replica)


def _change(sq: Sequencer, ev: Any, rep: Any, a: Any, clock: int) -> bool:
    c = a.c
    if c.op == "promote" or (c.op == "add" and c.kind == "storage"):
        x = sq.mon.r.get(c.who)
        if x is not None and not x.tree:
            return False  # its snapshot may not be in yet
    return _leased(sq, ev, rep, a, clock)


def _answer_probe(sq: Sequencer, ev: Any, rep: Any, a: Any, clock: int) -> bool:
    src = a.m.src
    if src not in sq.mon.r:
        return True
    if sq.suspects.get(src, 0) < a.m.n or not _link_up(sq, src, ev.replica):
        return False
    g = sq.mon.gray
    return not a.hears or g.hears(ev.replica, clock) or sq.mon.holds_lease(ev.replica, clock)


def _clear_suspicion(sq: Sequencer, ev: Any, rep: Any, a: Any, clock: int) -> bool:
    g = sq.mon.gray
    d = g.d[ev.replica]
    return (not d.suspecting or g.hears(ev.replica, clock)
            or any(h and g._deliverable(m) for m, h in d.answers))


def _install_snapshot(sq: Sequencer, ev: Any, rep: Any, a: Any, clock: int) -> bool:
    src = sq.mon.r.get(a.src)
    return src is None or a.src == ev.replica or (src.tree and len(src.applied) >= a.upto)


def _checkpoint(sq: Sequencer, ev: Any, rep: Any, a: Any, clock: int) -> bool:
    return bool(a.upto <= rep.base or a.upto <= sq.mon.prefix)


_READY: dict[str, Ready] = {
    "Phase1a": _phase1a, "Phase1b": _phase1b, "BecomeLeader": _become_leader,
    "ClientWrite": _leased, "Phase2b": _phase2b, "Commit": _commit, "Apply": _apply,
    "LeaseRenew": _lease_renew, "LeaseGrant": _lease_grant, "StrongRead": _leased,
    "AddMember": _change, "RemoveMember": _change, "PromoteMember": _change,
    "AnswerProbe": _answer_probe, "ClearSuspicion": _clear_suspicion,
    "LeaseRelinquish": _leased, "InstallSnapshot": _install_snapshot,
    "Checkpoint": _checkpoint,
}
_NO_POST_LEASE = frozenset({"BecomeLeader", "LeaseRelinquish", "Phase1a", "Phase1b",
                            "Crash", "Restart", "Quarantine", "Kill"})


class _Head:
    """A queued event: its typed event, action and line."""

    __slots__ = ("action", "ev", "nl")

    def __init__(self, ev: Any, action: str, nl: NodeLine) -> None:
        self.ev, self.action, self.nl = ev, action, nl


class Sequencer:
    """One group's merge. ``push`` an event of a node (in that node's file order), then
    ``drain``: it calls ``emit`` for every event that can go to the monitor now."""

    def __init__(self, mon: Monitor, nodes: list[str], emit: Emit,
                 next_lo: Callable[[str], int]) -> None:
        self.mon = mon
        self.q: dict[str, deque[_Head]] = {n: deque() for n in nodes}
        self.emit = emit
        self.next_lo = next_lo
        """The ``lo`` of a node's next unread line (INF once its file is done)."""
        self.suspects: dict[str, int] = {}
        """Replica -> Suspect steps emitted (its probes' nonce counts them)."""
        self.queued = 0
        self.released = 0
        """Heads released blocked (certainly, or out of a cycle): each a violation."""

    def push(self, node: str, ev: Any, action: str, nl: NodeLine) -> None:
        self.q[node].append(_Head(ev, action, nl))
        self.queued += 1

    def offer(self, node: str, ev: Any, action: str, nl: NodeLine) -> None:
        """``push`` and ``drain``; with nothing queued (the common case) a ready event goes
        straight to the monitor."""
        if not self.queued:
            if self._ready(ev, action):
                if action == "Suspect":
                    self.suspects[ev.replica] = self.suspects.get(ev.replica, 0) + 1
                self.emit(ev, nl)
                return
            self.q[node].append(_Head(ev, action, nl))
            self.queued = 1
            self.drain()
            return
        self.push(node, ev, action, nl)
        self.drain()

    def ready(self, h: _Head) -> bool:
        return self._ready(h.ev, h.action)

    def _ready(self, ev: Any, action: str) -> bool:
        rep = self.mon.r.get(ev.replica)
        if rep is None:
            return True  # the monitor refuses it
        pred = _READY.get(action)
        if pred is not None and not pred(self, ev, rep, ev.args, ev.clock):
            return False
        post = getattr(ev, "post", None)
        if post is not None and post.lease and action not in _NO_POST_LEASE \
                and rep.role == "leader" and pred is not _leased:
            return bool(self.mon.holds_lease(ev.replica, ev.clock)
                        or ev.clock < rep.wait_until)
        return True

    def _certain(self, node: str, h: _Head) -> bool:
        """No other node of the group can still deliver an event before ``h``."""
        hi = h.nl.hi
        for n, q in self.q.items():
            if n != node and min(q[0].nl.lo if q else INF, self.next_lo(n)) <= hi:
                return False
        return True

    def drain(self, final: bool = False) -> None:
        """Emit every event that can go now. ``final``: no more input will come."""
        q = self.q
        while self.queued:
            ready: list[tuple[int, str]] = []
            blocked: list[str] = []
            bound = INF  # the earliest latest-true-time of a blocked head
            for n, dq in q.items():
                if dq:
                    h = dq[0]
                    if self.ready(h):
                        ready.append((h.nl.lo, n))
                    else:
                        blocked.append(n)
                        bound = min(bound, h.nl.hi)
            # An event surely after a blocked one waits for it: emitted first, it could
            # be what unblocks it (a vote cast after the commit it would then justify).
            best = min((x for x in ready if x[0] <= bound), default=None)
            if best is None:
                chosen = next((n for n in blocked if self._certain(n, q[n][0])), None)
                if chosen is None:
                    stuck = all(q[n] or (final or self.next_lo(n) >= INF) for n in q)
                    if not stuck:
                        return  # more input may unblock a head
                    # A cycle, or heads that wait on each other's window: the earliest
                    # blocked one goes to the monitor.
                    chosen = min(blocked, key=lambda n: q[n][0].nl.lo)
                self.released += 1
                best = (0, chosen)
            h = q[best[1]].popleft()
            self.queued -= 1
            if h.action == "Suspect":
                self.suspects[h.ev.replica] = self.suspects.get(h.ev.replica, 0) + 1
            self.emit(h.ev, h.nl)

    def min_blocked_hi(self) -> int:
        """The smallest ``hi`` of a queued head (when to try again), INF if none."""
        return min((dq[0].nl.hi for dq in self.q.values() if dq), default=INF)


__all__ = ["INF", "Sequencer"]
