"""Leases in traces, checked with Z3.

``check_trace_leases``: rebuild the leases a leader could have believed it held from
trace lines (traces/FORMAT.md) and decide with Z3 whether two of them, of different
leaders, could have overlapped in real time given only the drift bound
(``|clock - real| <= max_drift``, the "symmetric" clock model of
``conformance.lease_theorem``), the per-node order of events and causality.
It takes events in their JSON form (``conformance.trace_loader.event_to_obj`` of
the shared loader's typed events).
"""

from __future__ import annotations

import bisect
import itertools
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, TypeAlias

import z3

from conformance.z3_util import Z3Expr, _fraction, _is_sat, _num

__all__ = [
    "LeaseOverlap",
    "TraceLease",
    "TraceLeaseResult",
    "check_trace_leases",
]




# --- leases ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TraceLease:
    """A lease a leader could have believed it held, on its own clock.

    Requested at ``start`` (``LeaseRenew``, node ``node`` event ``seq``) in ballot
    ``ballot`` and granted by ``grantors`` (a quorum, the leader included).  It is held
    while the leader's clock is in ``[held_from, until)`` and the leader still leads:
    ``ended_seq`` is the leader's step that ended its leadership (a crash, a promise
    to a higher ballot, ...), if the trace has one.  ``held_from`` is ``start``, or the
    end of the new-leader wait when the check models it.
    """

    replica: str
    node: str
    ballot: int | None
    start: int
    until: int
    held_from: int
    grantors: tuple[str, ...]
    seq: int
    ended_seq: int | None
    ended_by: str | None

    def describe(self) -> str:
        b = "?" if self.ballot is None else self.ballot
        end = ("" if self.ended_seq is None
               else f", led until {self.ended_by} at seq {self.ended_seq}")
        return (f"{self.replica} ballot {b} lease requested at local {self.start} (seq {self.seq}),"
                f" held on its clock over [{self.held_from}, {self.until}),"
                f" granted by {','.join(self.grantors)}{end}")


@dataclass(frozen=True, slots=True)
class LeaseOverlap:
    """Two leases of different leaders held at one real time, and an assignment of
    real times that shows it: ``real`` is the instant, ``local_first``/``local_second``
    the two leaders' clocks then, ``event_real`` the real times of the events that
    matter (keyed ``"node#seq Action"``)."""

    first: TraceLease
    second: TraceLease
    real: Fraction
    local_first: Fraction
    local_second: Fraction
    event_real: dict[str, Fraction]

    def describe(self) -> str:
        return (f"at real {_num(self.real)}: {self.first.replica}'s clock reads"
                f" {_num(self.local_first)} ({self.first.describe()}) and"
                f" {self.second.replica}'s reads {_num(self.local_second)}"
                f" ({self.second.describe()})")


@dataclass(frozen=True, slots=True)
class TraceLeaseResult:
    """``ok``: no two leases of different leaders can have overlapped in real time.

    ``overlaps``: every pair that could have (``witness`` is the first), each with a
    real-time assignment consistent with the drift bound, per-node order and
    causality.  ``actual_overlap``: with every event pinned at its recorded ``real``
    (``None`` when the trace has no ``real``), whether an overlap is still possible;
    only the clocks between events are then free (within the drift bound), since the
    instant a lease runs out is not itself an event.
    """

    ok: bool
    explanation: str
    leases: tuple[TraceLease, ...]
    requests: int
    pairs_checked: int
    overlaps: tuple[LeaseOverlap, ...]
    actual_overlap: bool | None
    actual_overlaps: tuple[LeaseOverlap, ...]
    seconds: float

    @property
    def witness(self) -> LeaseOverlap | None:
        return self.overlaps[0] if self.overlaps else None


@dataclass(slots=True)
class _Ev:
    node: str
    pos: int  # index in the node's events
    seq: int
    clock: int
    real: int | None
    action: str
    args: dict[str, Any]

    @property
    def key(self) -> str:
        return f"{self.node}#{self.seq} {self.action}"


@dataclass(slots=True)
class _Lease:
    replica: str
    node: str
    ballot: int | None
    start: int
    held_from: int
    renew: _Ev
    grants: list[_Ev]
    grantors: set[str]
    election: _Election | None
    end: _Ev | None = None     # the step that ended the leadership
    after: _Ev | None = None   # the leader's first event at or past the lease's end
    before: _Ev | None = None  # its last event before held_from (if after start)


# Actions that end a leadership whatever their ballot (a leader takes none of them
# while leading: it has stepped down, crashed or restarted).
_ENDS_LEADERSHIP = {"Crash", "Phase1a", "Phase1b", "BecomeLeader", "Restart", "Quarantine"}


# Steps a leader takes only while it holds its lease (CanServe) or once its wait is
# over (Commit): evidence of what it believed.
_SERVES = {"ClientWrite", "Commit", "StrongRead"}


def _msg(e: _Ev) -> dict[str, Any]:
    m = e.args.get("m")
    return m if isinstance(m, dict) else {}


def _ids_in(e: Mapping[str, Any]) -> set[str]:
    args = e.get("args") or {}
    out = {e["replica"]}
    for k in ("r", "a"):
        if isinstance(args.get(k), str):
            out.add(args[k])
    m = args.get("m")
    if isinstance(m, dict) and isinstance(m.get("from"), str):
        out.add(m["from"])
    q = args.get("Q")
    if isinstance(q, list):
        out.update(x for x in q if isinstance(x, str))
    return out


@dataclass(slots=True)
class _Trace:
    by_node: dict[str, list[_Ev]]
    clocks: dict[str, list[int]]
    replica_of: dict[str, str]
    members: frozenset[str]
    has_real: bool

    def is_quorum(self, group: set[str]) -> bool:
        return 2 * len(group & self.members) > len(self.members)

    def first_at_or_after(self, node: str, after: int, clock: int) -> _Ev | None:
        """The node's first event after position ``after`` whose clock is >= ``clock``."""
        i = bisect.bisect_left(self.clocks[node], clock, lo=after + 1)
        evs = self.by_node[node]
        return evs[i] if i < len(evs) else None

    def last_before(self, node: str, clock: int) -> _Ev | None:
        """The node's last event whose clock is < ``clock``."""
        i = bisect.bisect_left(self.clocks[node], clock)
        return self.by_node[node][i - 1] if i > 0 else None


def _index_trace(events: Iterable[Mapping[str, Any]], d: int,
                 members: Iterable[str] | None) -> _Trace:
    raw: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    names: set[str] = set()
    replica_of: dict[str, str] = {}
    for line in events:
        raw[line["node"]].append(line)
        replica_of.setdefault(line["node"], line["replica"])
        if members is None:
            names |= _ids_in(line)
    by_node: dict[str, list[_Ev]] = {}
    has_real = True
    for node, lines in raw.items():
        out: list[_Ev] = []
        for i, line in enumerate(sorted(lines, key=lambda x: int(x["seq"]))):
            ev = _Ev(node, i, int(line["seq"]), int(line["clock"]), line.get("real"),
                     str(line["action"]), dict(line.get("args") or {}))
            if out and ev.seq == out[-1].seq:
                raise ValueError(f"node {node} has seq {ev.seq} twice")
            if out and ev.clock < out[-1].clock:
                raise ValueError(f"node {node} seq {ev.seq}: clock goes back from"
                                 f" {out[-1].clock} to {ev.clock}")
            if ev.real is None:
                has_real = False
            elif abs(ev.clock - ev.real) > d:
                raise ValueError(f"node {node} seq {ev.seq}: clock {ev.clock} is more than"
                                 f" {d} us from real {ev.real}")
            out.append(ev)
        by_node[node] = out
    return _Trace(by_node, {n: [e.clock for e in evs] for n, evs in by_node.items()},
                  replica_of, frozenset(names if members is None else members), has_real)


@dataclass(slots=True)
class _Election:
    event: _Ev            # BecomeLeader
    promises: list[_Ev]   # the Phase1b steps of the members of Q (other than the leader)
    handoff: _Ev | None = None  # the LeaseRelinquish whose handoff let it skip the wait


@dataclass(slots=True)
class _Found:
    leases: list[_Lease]
    elections: list[_Election]
    phase1a: dict[tuple[str, int], _Ev]  # (from, bal) -> Phase1a
    requests: int


def _handoff_for(relinquished: list[tuple[_Ev, int]], bl: _Ev, top_grant: int,
                 has_real: bool) -> _Ev | None:
    """The LeaseRelinquish (of a ballot >= every grant its voters report) whose handoff
    lets the new leader ``bl`` skip the wait, or None.  The handoff message was sent at
    the relinquish and arrived before the election (the trace has no receive step for
    it): with recorded real times that is checked, otherwise it is assumed, as the
    message is the only reason the wait may be skipped."""
    for e, h in reversed(relinquished):
        if h >= top_grant and (not has_real or (e.real is not None and bl.real is not None
                                                 and e.real <= bl.real)):
            return e
    return None


def _find_leases(tr: _Trace, dur: int, margin: int | None) -> _Found:
    # pass 1: grants by request, Phase1a by ballot, promises with "had granted before"
    grants: dict[tuple[str, int, int], list[_Ev]] = defaultdict(list)  # (from, start, bal)
    phase1a: dict[tuple[str, int], _Ev] = {}
    promises: dict[tuple[str, int, str], tuple[_Ev, int]] = {}         # (a, bal, to)
    relinquished: dict[str, list[tuple[_Ev, int]]] = defaultdict(list)  # successor -> (ev, bal)
    for node, evs in tr.by_node.items():
        granted = 0  # the highest ballot whose lease the replica granted
        led = -1
        for e in evs:
            m = _msg(e)
            if e.action == "LeaseGrant":
                grants[m.get("from", ""), m.get("start", -1), m.get("bal", -1)].append(e)
            elif e.action == "Phase1a":
                phase1a[tr.replica_of[node], int(e.args.get("b", -1))] = e
            elif e.action == "Phase1b":
                promises[tr.replica_of[node], m.get("bal", -1), m.get("from", "")] = (e, granted)
            elif e.action == "BecomeLeader":
                led = int(e.args.get("b", -1))
            elif e.action == "LeaseRelinquish" and isinstance(e.args.get("s"), str):
                relinquished[e.args["s"]].append((e, led))
            granted = max(granted, _granted_bal(e))
    # pass 2: leaderships and their leases
    found = _Found([], [], phase1a, 0)
    for node, evs in tr.by_node.items():
        r = tr.replica_of[node]
        granted = 0
        ballot: int | None = None
        election: _Election | None = None
        wait_end: int | None = None
        current: list[_Lease] = []
        for e in evs:
            m = _msg(e)
            ends = e.action in _ENDS_LEADERSHIP or (
                e.action in ("LeaseGrant", "Phase2b") and ballot is not None
                and int(m.get("bal", 0)) > ballot)
            if ends and ballot is not None:
                for lease in current:
                    lease.end = e
                current, ballot, election, wait_end = [], None, None, None
            if e.action == "LeaseRelinquish":
                # It gave its lease up (the spec's Relinquished): every lease it held ends
                # here, though it still leads; a lease it asked for afterwards would be new.
                for lease in current:
                    lease.end = e
                current = []
            if e.action == "BecomeLeader":
                ballot = int(e.args["b"])
                used = [promises[a, ballot, r] for a in map(str, e.args.get("Q", []))
                        if (a, ballot, r) in promises]
                election = _Election(e, [p for p, _ in used])
                found.elections.append(election)
                # LeaseWaitNeeded.  A promise missing from the trace counts as "no grant",
                # which can only lengthen the leases checked.  A handoff of a ballot at
                # least every reported grant removes the wait, and orders the old
                # leader's relinquish before this election.
                top = max([granted, *(g for _, g in used)])
                if top > 0:
                    election.handoff = _handoff_for(relinquished.get(r, []), e, top,
                                                    tr.has_real)
                if margin is not None and top > 0 and election.handoff is None:
                    wait_end = e.clock + dur + margin
            elif e.action == "LeaseRenew":
                found.requests += 1
                start = int(e.args.get("start", e.clock))
                if ballot is None:  # a request outside a known leadership: any ballot
                    cands = [g for (frm, st, _), gs in grants.items()
                             if frm == r and st == start for g in gs]
                else:
                    cands = grants.get((r, start, ballot), [])
                who = {r} | {tr.replica_of[g.node] for g in cands}
                held_from = start if wait_end is None else max(start, wait_end)
                if tr.is_quorum(who):
                    lease = _Lease(r, node, ballot, start, held_from, e, list(cands), who,
                                   election)
                    found.leases.append(lease)
                    current.append(lease)
            elif e.action in _SERVES and wait_end is not None and e.clock < wait_end:
                # It served before its wait was over: it did not keep the wait, so its
                # leases count from here on.
                wait_end = e.clock
                for lease in current:
                    lease.held_from = max(lease.start, wait_end)
            granted = max(granted, _granted_bal(e))
    found.leases = [x for x in found.leases if x.held_from < x.start + dur]
    return found


def _granted_bal(e: _Ev) -> int:
    """The ballot of the lease the step grants (durably recorded), or 0."""
    if e.action == "LeaseGrant":
        return max(1, int(_msg(e).get("bal", 1)))
    if e.action == "Restart":
        return int(e.args.get("granted", 0))
    return 0


_Key: TypeAlias = tuple[str, int]  # (node, position in the node's events)


class _LeaseSolver:
    """The real times of the events that matter, constrained by the drift bound
    (``clock - d <= t <= clock + d``), per-node order and causality (``t_u <= t_v``).

    An order constraint between events whose clocks are at least ``2 * d`` apart
    follows from the bounds, so it is dropped; what remains falls apart into small
    independent components (events close in time).  Independent components do not
    constrain each other, so each question about a pair of leases goes to a Z3 solver
    holding only the components it touches: exact, and small however long the trace.
    """

    def __init__(self, tr: _Trace, found: _Found, dur: int, d: int) -> None:
        self.tr, self.dur, self.d = tr, dur, d
        ev: dict[_Key, _Ev] = {}

        def use(e: _Ev) -> _Ev:
            ev[e.node, e.pos] = e
            return e

        causal: list[tuple[_Ev, _Ev]] = []  # (earlier, later)
        for lease in found.leases:
            use(lease.renew)
            causal += [(lease.renew, use(g)) for g in lease.grants]
            lease.after = tr.first_at_or_after(lease.node, lease.renew.pos, lease.start + dur)
            if lease.held_from > lease.start:
                lease.before = tr.last_before(lease.node, lease.held_from)
            for b in (lease.end, lease.after, lease.before):
                if b is not None:
                    use(b)
        for el in found.elections:
            use(el.event)
            if el.handoff is not None:
                causal.append((use(el.handoff), el.event))
            for p in el.promises:
                causal.append((use(p), el.event))
                pm = _msg(p)
                a1 = found.phase1a.get((pm.get("from", ""), pm.get("bal", -1)))
                if a1 is not None:
                    causal.append((use(a1), p))
        per_node: dict[str, list[_Ev]] = defaultdict(list)
        for e in ev.values():
            per_node[e.node].append(e)
        edges = list(causal)
        for evs in per_node.values():
            evs.sort(key=lambda e: e.pos)
            edges += itertools.pairwise(evs)
        self.per_node = dict(per_node)
        self.per_node_clocks = {n: [e.clock for e in evs] for n, evs in per_node.items()}
        # keep the edges the bounds do not imply; group events into components
        self.all_edges = edges
        self.edges = [(u, v) for u, v in edges if v.clock - u.clock < 2 * d]
        parent: dict[_Key, _Key] = {k: k for k in ev}

        def find(k: _Key) -> _Key:
            while parent[k] != k:
                parent[k] = parent[parent[k]]
                k = parent[k]
            return k

        for u, v in self.edges:
            ru, rv = find((u.node, u.pos)), find((v.node, v.pos))
            if ru != rv:
                parent[ru] = rv
        self.comp = {k: find(k) for k in ev}
        self.members: dict[_Key, list[_Ev]] = defaultdict(list)
        for k, e in ev.items():
            self.members[self.comp[k]].append(e)
        self.comp_edges: dict[_Key, list[tuple[_Ev, _Ev]]] = defaultdict(list)
        for u, v in self.edges:
            self.comp_edges[self.comp[u.node, u.pos]].append((u, v))

    def inconsistency(self) -> str | None:
        """Why no real times satisfy every bound and order constraint, or None.

        With recorded real times: whether they satisfy the order constraints (the
        bounds were checked on reading).  Otherwise, as difference constraints: raise
        lower bounds along the edges to a fixpoint (no edge has a positive weight, so
        this terminates); they are satisfiable iff no lower bound then exceeds its
        upper bound, and the raised bounds are then a solution.
        """
        if self.tr.has_real:
            for u, v in self.all_edges:
                assert u.real is not None and v.real is not None
                if u.real > v.real:
                    return (f"recorded real times contradict the order of {u.key}"
                            f" (real {u.real}) and {v.key} (real {v.real})")
            return None
        d = self.d
        low = {k: e.clock - d for k, e in self._events()}
        out: dict[_Key, list[_Key]] = defaultdict(list)
        for u, v in self.edges:
            out[u.node, u.pos].append((v.node, v.pos))
        work = list(low)
        while work:
            k = work.pop()
            for w in out.get(k, ()):
                if low[w] < low[k]:
                    low[w] = low[k]
                    work.append(w)
        for k, e in self._events():
            if low[k] > e.clock + d:
                return (f"no real time within {d} us of its clock {e.clock} for {e.key} is"
                        f" after every event it must follow")
        return None

    def _events(self) -> Iterable[tuple[_Key, _Ev]]:
        for evs in self.members.values():
            for e in evs:
                yield (e.node, e.pos), e

    def holds(self, lease: _Lease, t_x: Z3Expr, c: Z3Expr,
              t: Callable[[_Ev], Z3Expr]) -> tuple[list[Z3Expr], list[_Ev]]:
        """The lease's leader believes it holds the lease at real ``t_x``, its clock ``c``
        (constraints, and the events they mention).

        Exact: such a clock value exists iff ``t_x`` is after the request, before the
        leader's first event at or past the lease's end and before its leadership
        ended, after its last event before ``held_from``, and within the drift window.
        """
        d, until = self.d, lease.start + self.dur
        used = [lease.renew]
        cs = [c >= lease.held_from, c < until, c >= t_x - d, c <= t_x + d, t_x >= t(lease.renew)]
        if lease.after is not None:
            cs.append(t_x < t(lease.after))
            used.append(lease.after)
        if lease.before is not None:
            cs.append(t_x > t(lease.before))
            used.append(lease.before)
        if lease.end is not None:
            cs.append(t_x < t(lease.end))
            used.append(lease.end)
        # Keep c consistent with the modelled events nearby, so the witness is a clock
        # reading (events further than 2 * max_drift on the clock are ordered anyway).
        evs, cks = self.per_node[lease.node], self.per_node_clocks[lease.node]
        lo = bisect.bisect_left(cks, lease.held_from - 2 * d)
        hi = bisect.bisect_right(cks, until + 2 * d)
        for e in evs[lo:hi]:
            cs += [z3.Implies(t(e) <= t_x, e.clock <= c), z3.Implies(t(e) >= t_x, e.clock >= c)]
            used.append(e)
        return cs, used

    def overlap(self, a: _Lease, b: _Lease, *, pin: bool) -> LeaseOverlap | None:
        tvar: dict[_Key, Z3Expr] = {}

        def t(e: _Ev) -> Z3Expr:
            v = tvar.get((e.node, e.pos))
            if v is None:
                v = tvar[e.node, e.pos] = z3.Real(f"t_{e.node}_{e.seq}")
            return v

        t_x, c1, c2 = z3.Reals("t_overlap c_first c_second")
        cs1, used1 = self.holds(a, t_x, c1, t)
        cs2, used2 = self.holds(b, t_x, c2, t)
        keys: list[_Ev] = []
        for lease in (a, b):
            keys += [lease.renew, *lease.grants]
            if lease.election is not None:
                keys += [lease.election.event, *lease.election.promises]
                if lease.election.handoff is not None:
                    keys.append(lease.election.handoff)
        s = z3.Solver()
        s.add(*cs1, *cs2)
        d = self.d
        for root in {self.comp[e.node, e.pos] for e in (*used1, *used2, *keys)}:
            for e in self.members[root]:
                s.add(t(e) >= e.clock - d, t(e) <= e.clock + d)
                if pin:
                    s.add(t(e) == e.real)
            for u, v in self.comp_edges.get(root, ()):
                s.add(t(u) <= t(v))
        if not _is_sat(s):
            return None
        m = s.model()
        return LeaseOverlap(_public(a, self.dur), _public(b, self.dur), _fraction(m, t_x),
                            _fraction(m, c1), _fraction(m, c2),
                            {e.key: _fraction(m, t(e)) for e in keys})


def _candidate_pairs(leases: list[_Lease], dur: int, d: int) -> list[tuple[int, int]]:
    """Pairs of leases of different leaders whose real-time windows meet: a lease held
    over ``[held_from, min(until, end clock))`` on its clock lies within ``max_drift`` of
    that in real time.  A sweep over windows sorted by start."""
    def window(i: int) -> tuple[int, int]:
        lease = leases[i]
        hi = lease.start + dur
        if lease.end is not None:
            hi = min(hi, lease.end.clock)
        return lease.held_from - d, hi + d

    wins = [window(i) for i in range(len(leases))]
    pairs: list[tuple[int, int]] = []
    active: list[int] = []
    for i in sorted(range(len(leases)), key=lambda i: wins[i][0]):
        lo = wins[i][0]
        active = [j for j in active if wins[j][1] >= lo]
        pairs += [(j, i) for j in active if leases[j].replica != leases[i].replica]
        if wins[i][1] >= lo:
            active.append(i)
    return pairs


def check_trace_leases(events: Iterable[Mapping[str, Any]], lease_dur_us: int,
                       max_drift_us: int, *, lease_margin_us: int | None = None,
                       members: Iterable[str] | None = None) -> TraceLeaseResult:
    """Decide whether two leases of different leaders in a trace could have overlapped.

    ``events``: trace lines as dicts (traces/FORMAT.md), from any number of nodes in
    any order; each node's lines are ordered by ``seq``.

    Leases: every ``LeaseRenew{r, start}`` in r's current ballot (its last
    ``BecomeLeader``) that a quorum granted: r itself plus every replica with a
    ``LeaseGrant`` whose ``m`` is ``{bal, start, from: r}``; quorums are strict
    majorities of ``members`` (default: every replica the trace names).  A lease is
    held while r's clock is in ``[start, start + lease_dur_us)`` and r still leads
    (until its next crash, restart or step-down line, or its ``LeaseRelinquish``: a
    relinquished lease is given up, and only a later request could give a new one).
    With ``lease_margin_us`` the
    check also models the new-leader wait: a lease counts only once r's clock is
    ``lease_dur_us + lease_margin_us`` past its ``BecomeLeader``, when some voter
    (r, or a member of ``Q`` in its promise) had granted a lease before
    (``LeaseWaitNeeded``); it trusts that r kept the wait unless the trace shows r
    serving (``ClientWrite``, ``Commit``, ``StrongRead``) earlier, in which case its
    leases count from then.  A handoff removes the wait: when the voters' highest
    reported grant is of a ballot ``h`` and the new leader r is the successor named by
    a ``LeaseRelinquish`` of h's leader, that relinquish is ordered before r's
    ``BecomeLeader`` (the handoff message is sent at the one and received before the
    other; with recorded real times the order is checked, without them it is assumed,
    as the trace has no receive step for the handoff).  Without ``lease_margin_us``
    every granted lease counts
    from its start, which is stricter: the reference asks for its first lease
    ``lease_margin_us`` after its election, before the wait is over.

    Real times: each event's real time ``t`` satisfies ``|clock - t| <= max_drift_us``;
    per node, real time does not decrease along ``seq`` and the clock is a
    non-decreasing function of it; a ``LeaseGrant`` happens after its ``LeaseRenew``,
    a ``Phase1b`` after its ``Phase1a``, a ``BecomeLeader`` after the promises of its
    ``Q``.  Z3 decides, for each pair of leases of different leaders whose local
    intervals come within ``2 * max_drift_us`` of each other, whether some such
    assignment and some instant have both held.  Events that constrain no lease are
    left out of the model; that is exact, because between two events of a node any
    event can be placed within its drift window.  Each question goes to a small
    solver holding only the events near the two leases (see ``_LeaseSolver``), so
    the cost grows with the number of leader changes, not with the trace's length.

    Raises ``ValueError`` if a node's clock decreases along ``seq``, if a recorded
    ``real`` is more than ``max_drift_us`` from its ``clock``, or if the constraints
    have no solution at all (the trace contradicts the drift bound, or its recorded
    real times contradict per-node order or causality).
    """
    t0 = time.perf_counter()
    if lease_dur_us <= 0 or max_drift_us < 0:
        raise ValueError("lease_dur_us must be > 0 and max_drift_us >= 0")
    if lease_margin_us is not None and lease_margin_us < 0:
        raise ValueError("lease_margin_us must be >= 0")
    tr = _index_trace(events, max_drift_us, members)
    found = _find_leases(tr, lease_dur_us, lease_margin_us)
    model = _LeaseSolver(tr, found, lease_dur_us, max_drift_us)
    why = model.inconsistency()
    if why is not None:
        raise ValueError(f"the trace contradicts a drift bound of {max_drift_us} us, per-node"
                         f" order and causality: {why}")
    leases = found.leases
    pairs = _candidate_pairs(leases, lease_dur_us, max_drift_us)
    overlaps: list[LeaseOverlap] = []
    actual: list[LeaseOverlap] = []
    for i, j in pairs:
        w = model.overlap(leases[i], leases[j], pin=False)
        if w is None:
            continue
        overlaps.append(w)
        if tr.has_real:
            a = model.overlap(leases[i], leases[j], pin=True)
            if a is not None:
                actual.append(a)
    if overlaps:
        text = (f"{len(overlaps)} pair(s) of leases of different leaders could overlap in real"
                f" time; e.g. {overlaps[0].describe()}")
        if tr.has_real:
            text += "; with the recorded real times: " + ("still possible" if actual
                                                          else "ruled out")
    else:
        text = (f"no two of {len(leases)} leases of different leaders can overlap in real time"
                f" ({len(pairs)} pair(s) within 2 * max_drift checked with Z3)")
    return TraceLeaseResult(
        ok=not overlaps, explanation=text, leases=tuple(_public(x, lease_dur_us) for x in leases),
        requests=found.requests, pairs_checked=len(pairs), overlaps=tuple(overlaps),
        actual_overlap=bool(actual) if tr.has_real else None, actual_overlaps=tuple(actual),
        seconds=time.perf_counter() - t0)


def _public(lease: _Lease, dur: int) -> TraceLease:
    return TraceLease(
        replica=lease.replica, node=lease.node, ballot=lease.ballot, start=lease.start,
        until=lease.start + dur, held_from=lease.held_from, grantors=tuple(sorted(lease.grantors)),
        seq=lease.renew.seq, ended_seq=None if lease.end is None else lease.end.seq,
        ended_by=None if lease.end is None else lease.end.action)
