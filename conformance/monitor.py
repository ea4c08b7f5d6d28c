"""Invariant monitor: the spec's safety properties, checked after every traced step.

The monitor folds typed trace events (reference/trace_events.py; from the trace
loader, or live from a running ``World``) into the spec's variables, as far as a
trace shows them, and after each event checks the properties of specs/Replication.tla under their
names:

* ``Agreement``: no slot is chosen (voted for by a quorum in one ballot) with two
  commands; a leader never proposes, at a slot chosen in an earlier ballot, a
  command other than the chosen one (the Paxos invariant Agreement rests on).
* ``Durability``: a slot is committed (the write acknowledged) only once chosen;
  every later leader proposes the chosen command there; a restarted replica
  recovers exactly the durable state (ballot, granted, log, applied) its steps made.
* ``StateMachineSafety``: each replica applies slots in order, and only chosen ones.
* ``LeaseExclusivity``: at no real time do two replicas believe they hold a lease.
  A replica's belief is evaluated on its own clock, interpolated between its events
  (rate 1 between samples; the error is the clock's rate error times the gap).
* ``Linearizability``: a strong read is served only by a leader that holds its lease
  and has applied every acknowledged write.
* ``EventualReadsCommitted``: an eventual read is served from an applied prefix of
  chosen commands.

Its rules are the ``_on_<Action>`` methods, one per traced action of the catalogue
(reference/actions.py); the dispatch table is built from the catalogue, so a
missing rule is an error at construction.

Like the spec, the monitor treats a grant as known to the leader when it is sent,
which over-approximates the leader's belief; the properties hold for that
over-approximation, so a violation is real.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from reference.actions import TRACED
from reference.trace import log_digest
from reference.trace_events import EVENT_TYPES, Cmd

CmdId = str | None  # a command's request id; None is NoOp
Rule = Callable[[str, "_Replica", Any, int], None]


@dataclass(frozen=True, slots=True)
class Violation:
    prop: str
    message: str
    event: Any
    """The typed trace event (reference/trace_events.py)."""
    where: str = ""
    """``file:line`` of the offending event, when it came from a file."""

    def __str__(self) -> str:
        loc = f"{self.where}: " if self.where else ""
        return f"{loc}{self.prop}: {self.message}"


@dataclass(slots=True)
class _Replica:
    ballot: int = 0
    granted: int = 0
    role: str = "follower"
    log: dict[int, tuple[int, CmdId]] = field(default_factory=dict)
    ops: dict[int, bytes] = field(default_factory=dict)  # slot -> op bytes, for digests
    applied: list[CmdId] = field(default_factory=list)
    wait_until: int = 0  # local clock
    # Lease requests of the current leadership: start -> grantors (self included).
    leases: dict[int, set[str]] = field(default_factory=dict)
    promised_granted: dict[int, int] = field(default_factory=dict)
    last_real: int | None = None
    last_clock: int = 0
    seq: int = 0
    out: bool = False  # quarantined: its durable state is gone


def op_bytes(c: Cmd | None) -> bytes:
    """A command's op as the canonical bytes the replica logged (b"" for NoOp)."""
    return b"" if c is None else bytes(c.op)


def cmd_key(c: Cmd | None) -> CmdId:
    """A command's identity in traces: its request id (NoOp is ``null``)."""
    return None if c is None else c.rid


class Monitor:
    def __init__(self, members: Iterable[str], lease_dur_us: int, lease_margin_us: int) -> None:
        self.members = sorted(members)
        if not self.members:
            raise ValueError("a group needs members")
        self.lease_dur = lease_dur_us
        self.margin = lease_margin_us
        self.r: dict[str, _Replica] = {n: _Replica() for n in self.members}
        self.votes: dict[tuple[int, int], dict[CmdId, set[str]]] = {}
        self.chosen: dict[int, tuple[CmdId, int]] = {}  # slot -> (command, first ballot)
        self.acked: set[str] = set()
        self.violations: list[Violation] = []
        self.events = 0
        self._where = ""
        self._event: Any = None
        self._rules: dict[type, Rule] = {}
        for a in TRACED:
            rule = getattr(self, "_on_" + a.name, None)
            if rule is None:
                raise TypeError(f"the monitor has no rule for {a.name}")
            self._rules[EVENT_TYPES[a.name]] = rule

    # --- helpers ---------------------------------------------------------------------

    def is_quorum(self, group: set[str]) -> bool:
        return 2 * len(group.intersection(self.members)) > len(self.members)

    def _fail(self, prop: str, message: str) -> None:
        self.violations.append(Violation(prop, message, self._event, self._where))

    def _step_down(self, rep: _Replica) -> None:
        rep.role = "follower"
        rep.leases = {}
        rep.wait_until = 0

    def _raise_ballot(self, rep: _Replica, b: int) -> None:
        if b > rep.ballot:
            self._step_down(rep)
        rep.ballot = max(rep.ballot, b)

    def _vote(self, a: str, b: int, s: int, c: CmdId) -> None:
        voters = self.votes.setdefault((b, s), {}).setdefault(c, set())
        voters.add(a)
        if self.is_quorum(voters):
            prev = self.chosen.get(s)
            if prev is None:
                self.chosen[s] = (c, b)
            elif prev[0] != c:
                self._fail("Agreement", f"slot {s} chosen with {prev[0]!r} in ballot {prev[1]} "
                                        f"and with {c!r} in ballot {b}")

    def _propose(self, r: str, b: int, s: int, c: CmdId, op: bytes = b"") -> None:
        prev = self.chosen.get(s)
        if prev is not None and prev[1] < b and prev[0] != c:
            prop = "Durability" if prev[0] in self.acked else "Agreement"
            self._fail(prop, f"{r} proposes {c!r} at slot {s} in ballot {b}, but {prev[0]!r} "
                             f"was chosen there in ballot {prev[1]}")
        rep = self.r[r]
        rep.log[s] = (b, c)
        rep.ops[s] = op
        self._vote(r, b, s, c)

    def clock_at(self, name: str, real: int) -> int | None:
        """``name``'s clock at real time ``real``, from its latest event (rate 1 after it)."""
        rep = self.r[name]
        if rep.last_real is None:
            return None
        return rep.last_clock + (real - rep.last_real)

    def lease_believers(self, real: int) -> list[str]:
        out = []
        for name, rep in self.r.items():
            if rep.role != "leader" or rep.out:
                continue
            clock = self.clock_at(name, real)
            if clock is None or clock < rep.wait_until:
                continue
            if any(t + self.lease_dur > clock and self.is_quorum(g)
                   for t, g in rep.leases.items()):
                out.append(name)
        return out

    def holds_lease(self, name: str, clock: int) -> bool:
        rep = self.r[name]
        return rep.role == "leader" and clock >= rep.wait_until and any(
            t + self.lease_dur > clock and self.is_quorum(g) for t, g in rep.leases.items())

    # --- the step ----------------------------------------------------------------------

    def step(self, ev: Any, where: str = "") -> list[Violation]:
        """Fold one typed event in and check the properties; returns the new violations."""
        self._where, self._event = where, ev
        before = len(self.violations)
        rule = self._rules.get(type(ev))
        if rule is None:
            raise ValueError(f"{where or 'event'}: not a trace event: {ev!r}")
        self.events += 1
        node = ev.node
        rep = self.r.get(node)
        if rep is None:
            raise ValueError(f"{where or 'event'}: node {node!r} is not a member "
                             f"({', '.join(self.members)})")
        seq = ev.seq
        if seq != rep.seq + 1:
            raise ValueError(f"{where or 'event'}: {node} seq {seq} follows {rep.seq}")
        rep.seq = seq
        real = ev.real
        clock = ev.clock
        rule(node, rep, ev.args, clock)
        if real is not None:
            rep.last_real, rep.last_clock = real, clock
            believers = self.lease_believers(real)
            if len(believers) > 1:
                self._fail("LeaseExclusivity", f"{' and '.join(believers)} all believe they "
                                               f"hold a lease at real time {real}us")
        return self.violations[before:]

    # --- one handler per traced action -------------------------------------------------

    def _on_Phase1a(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        self._step_down(rep)
        rep.ballot = a.b
        rep.role = "candidate"

    def _on_Phase1b(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        b = a.m.bal
        self._step_down(rep)
        rep.ballot = b
        rep.promised_granted[b] = rep.granted

    def _on_BecomeLeader(self, node: str, rep: _Replica, a: Any,
                         clock: int) -> None:
        b, quorum = a.b, set(a.Q)
        voters_granted = [rep.granted] + [self.r[v].promised_granted.get(b, 0)
                                          for v in quorum - {node} if v in self.r]
        rep.role = "leader"
        rep.leases = {}
        wait = any(g > 0 for g in voters_granted)
        rep.wait_until = clock + self.lease_dur + self.margin if wait else clock

    def _on_ClientWrite(self, node: str, rep: _Replica, a: Any,
                        clock: int) -> None:
        if not self.holds_lease(node, clock):
            self._fail("LeaseExclusivity", f"{node} takes a client write without a lease")
        self._propose(node, rep.ballot, a.s, cmd_key(a.c), op_bytes(a.c))

    def _on_Phase2a(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        self._propose(node, a.b, a.s, cmd_key(a.c), op_bytes(a.c))

    def _on_Phase2b(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        m = a.m
        self._raise_ballot(rep, m.bal)
        c = cmd_key(m.cmd)
        rep.log[m.slot] = (m.bal, c)
        rep.ops[m.slot] = op_bytes(m.cmd)
        self._vote(node, m.bal, m.slot, c)

    def _on_Commit(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        b, s = a.b, a.s
        entry = rep.log.get(s)
        if entry is None or entry[0] != b:
            self._fail("Durability", f"{node} commits slot {s} of ballot {b}, which its log "
                                     f"does not hold")
            return
        c = entry[1]
        voters = self.votes.get((b, s), {}).get(c, set())
        if not self.is_quorum(voters):
            self._fail("Durability", f"{node} commits slot {s} ({c!r}) with votes from "
                                     f"{sorted(voters)} only: not a quorum")
        if c is not None:
            self.acked.add(c)

    def _on_Apply(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        s, c = a.s, cmd_key(a.c)
        if s != len(rep.applied) + 1:
            self._fail("StateMachineSafety", f"{node} applies slot {s} after "
                                             f"{len(rep.applied)}")
        chosen = self.chosen.get(s)
        if chosen is None:
            self._fail("StateMachineSafety", f"{node} applies slot {s} ({c!r}) before it is "
                                             f"chosen")
        elif chosen[0] != c:
            self._fail("StateMachineSafety", f"{node} applies {c!r} at slot {s}, chosen "
                                             f"{chosen[0]!r}")
        rep.applied.append(c)

    def _on_LeaseRenew(self, node: str, rep: _Replica, a: Any,
                       clock: int) -> None:
        if rep.role != "leader":
            self._fail("LeaseExclusivity", f"{node} asks for a lease while {rep.role}")
        rep.leases = {t: g for t, g in rep.leases.items() if t + self.lease_dur > clock}
        rep.leases[a.start] = {node}

    def _on_LeaseGrant(self, node: str, rep: _Replica, a: Any,
                       clock: int) -> None:
        m = a.m
        self._raise_ballot(rep, m.bal)
        rep.granted = m.bal
        leader = self.r.get(m.src)
        if leader is not None and leader.role == "leader" and leader.ballot == m.bal:
            grantors = leader.leases.get(m.start)
            if grantors is not None:
                grantors.add(node)

    def _on_StrongRead(self, node: str, rep: _Replica, a: Any,
                       clock: int) -> None:
        if not self.holds_lease(node, clock):
            self._fail("Linearizability", f"{node} serves a strong read without a lease")
        missing = self.acked.difference(c for c in rep.applied if c is not None)
        if missing:
            self._fail("Linearizability", f"{node} serves a strong read before applying "
                                          f"acknowledged writes {sorted(missing)[:3]}")

    def _on_EventualRead(self, node: str, rep: _Replica, a: Any,
                         clock: int) -> None:
        n = len(rep.applied)
        if n and self.chosen.get(n, (object(),))[0] != rep.applied[-1]:
            self._fail("EventualReadsCommitted", f"{node} serves an eventual read from an "
                                                 f"applied state that is not committed")

    def _on_Crash(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        self._step_down(rep)

    def _on_Restart(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        self._step_down(rep)
        got = (a.ballot, a.granted, a.applied, a.log)
        want = (rep.ballot, rep.granted, len(rep.applied), max(rep.log, default=0))
        if got != want:
            self._fail("Durability", f"{node} restarted with (ballot, granted, applied, log) "
                                     f"= {got}, but its steps made {want} durable")
        else:
            digest = log_digest((s, b, c or "", rep.ops.get(s, b""))
                                for s, (b, c) in sorted(rep.log.items()))
            if digest != a.digest:
                self._fail("Durability", f"{node} restarted with a log that differs from the "
                                         f"one its steps wrote (digest {a.digest}, "
                                         f"expected {digest})")

    def _on_Quarantine(self, node: str, rep: _Replica, a: Any,
                       clock: int) -> None:
        self._step_down(rep)
        rep.out = True
