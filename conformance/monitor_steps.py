"""The monitor's step checks: every traced step must be one the spec's action allows.

The invariant monitor (conformance/monitor.py) checks the spec's properties after
each step; ``StepRules``, which it owns, checks each step's enabling condition (the
guard of its action in specs/Replication.tla) in the state before it, so that a step
the spec forbids is rejected at once, without waiting for TLC. The monitor calls
``before`` ahead of its own rule for the event and ``after`` once the rule has folded
the event in. A violation names the spec's property where the guard protects one, and
the action otherwise; ``Violation`` adds the action and ``file:line`` either way.

Some guards were checked by the monitor's rules before this module existed; they
stay there, and are listed below with "(rule)" after them. "(gray)": in
conformance/monitor_gray.py.

Each traced action, the enabling conditions the monitor checks, and (``not:``) what
it cannot check from a trace, and why:

Phase1a(r, b)
    r is a storage member with a B-tree (rule); r does not lead; b > ballot[r]; no
    replica started b before (``Agreement``); with peer confirmation, MayElect (gray).
    not: MayStartBallot, a model's scenario bound.
Phase1b(a, m)
    m.from sent the 1a (it traced Phase1a(m.from, m.bal)); m.from # a; a is a member of
    its view; m.bal > ballot[a]; the link m.from -> a is up (gray).
BecomeLeader(r, b, Q)
    r is b's candidate (role and ballot); r in Q; every other member of Q promised b
    to r (rule: ``Agreement``); Q is a quorum of every configuration of the recovered
    log from the chosen prefix on (rule); Q is minimal; r is a storage member of the
    recovered configuration, with a B-tree (rule); the lease wait it sets (gray).
    not: minimality over the spec's exact ElectionConfigs, which start at the
    candidate's KnownPrefix: that depends on which commit messages reached it, which
    no step shows. The check takes every configuration the recovered log passes
    through from its checkpoint on, a superset, so it flags only a Q that is not
    minimal whatever the candidate knew.
ClientWrite(r, c)
    r holds its lease and has not relinquished it (rule: ``LeaseExclusivity``); c goes
    to r's next slot, once r owes no earlier slot a proposal (MayAppend; see "owes").
    not: that c is a fresh command. A client retries under the same request id, and
    each ClientWrite is a new command of the spec (trace validation numbers them
    afresh), so a trace cannot tell a fresh command from a retry.
Phase2a(r, b, s)
    r leads b; s is one of the slots r recovered; not yet proposed in b; r owes no
    earlier slot a proposal (slot order); the command is the one r recovered there
    (``Agreement``).
Phase2b(a, m)
    m.from sent the 2a: it traced ClientWrite, Phase2a or a membership change at
    m.slot in ballot m.bal, with m.cmd; m.from # a; a is a member of its view or a 2a
    proposed adding it (Joining); m.bal >= ballot[a]; no hole in a's WAL (rule:
    ``Durability``); the link (gray).
    not: the send of a 2a for a slot at or below the checkpoint its leader's election
    recovered. The reference's catch-up re-sends those entries in the leader's ballot
    though the leader never proposed them there (the spec's leader re-proposes them,
    the reference's need not: they are committed; the spec's CHOICE on snapshots and
    truncated logs). For the same reason Joining accepts an add proposed in any
    ballot <= m.bal: a joiner that catches up below its leader's checkpoint learns of
    its add from such a re-sent 2a.
Commit(r, b, s)
    r leads b; its new-leader wait is over (``Linearizability``: a commit acknowledges
    the write, which serves it); r's log holds s in b (rule: ``Durability``); s is not
    yet committed in b, and r owes no earlier slot a commit (slot order); every
    recovered configuration command is re-proposed or applied (rule); a quorum of r's
    view voted for it: Phase2b lines (rule: ``Durability``).
Apply(r)
    r has a B-tree (rule); s is its next slot (rule); r's log holds s, with this
    command; some leader committed s (a Commit line), or a traced checkpoint covers
    s; s is chosen with this command (rule: ``StateMachineSafety``).
    not: KnownCommitted's ballot (that of r's entry). A leader's catch-up re-sends,
    in its own ballot, commits of slots below its recovered checkpoint, and a new
    leader takes its own entries below that checkpoint as committed: neither is a
    Commit line of that ballot.
LeaseRenew(r)
    r leads (rule), has not relinquished (gray), LeaseDur > waitLeft (gray); one
    request at a time: no earlier request of this leadership outlasts its lease.
    not: RenewDue (at most RenewAhead left). The monitor counts a grant when it is
    sent, so its lease is at least the leader's, and RenewAhead is not in the trace.
    (The one-request rule is sound against that longer lease: a request outlasting
    it outlasts the leader's own.)
LeaseGrant(a, m)
    m.from sent the request (it traced LeaseRenew with m.start in ballot m.bal);
    m.from # a; a is a member of its view; m.bal >= ballot[a] (``LeaseExclusivity``:
    granting after a later promise could overlap a later leader's lease); ``held``
    only if its leader held its lease (gray); the link (gray).
    the request has time left on its leader's clock, where certain: the grantor's
    clock is at most LeaseMargin past start + LeaseDur (two clocks differ by at most
    2 * MaxDrift <= LeaseMargin / 2).
    not: the grants within that margin: the leader's clock at the grant is not in the
    trace, only bounded by the drift.
StrongRead(r, k)
    r holds its lease, not relinquished (rule); ReadReady as trace validation has it
    (SkipApplied on): r applied every slot it recovered and every slot it committed
    (``Linearizability``); r is a storage member with a B-tree (rule).
    not: without SkipApplied, ReadReady also wants each recovered slot committed in r's
    ballot; the spec allows a leader to skip slots it has applied, so the monitor does
    not ask for it.
EventualRead(r, k)
    r is a storage member with a B-tree (rule: ``LogReplicaNeverServes``).
AddMember, RemoveMember, PromoteMember(r, c)
    MayChange (rule): lease, a commit in its own ballot, no change pending, a storage
    majority kept; c goes to r's next slot, once every recovered slot is re-proposed;
    add: a fresh incarnation, not a member, a B-tree for a storage member; remove: a
    member other than r; promote: a log replica with a B-tree (rule).
    not: that c is a fresh command (as ClientWrite).
InstallSnapshot(x, src)
    x # src; x has no B-tree and src has one; the copy is a prefix of what src
    applied (rule).
    not: SnapshotTarget's "some change adds x as storage": that change needs x's
    B-tree, so it comes later in the trace; LinkOk(src, x): the reference copies
    B-trees out of band, not over the protocol's links.
Suspect(r)
    peer confirmation on; r is a storage follower, not suspecting, hearing no leader
    (gray). not: a ballot left to start (a model bound).
AnswerProbe(a, m)
    m.from sent probes (it traced Suspect); m.from # a; a is a member of its view; the
    answer is what a hears (gray); the link (gray).
    not: one answer per suspicion. The reference answers every retransmitted probe;
    each answer is again what a hears, the same spec message.
ClearSuspicion(r)
    r suspects, and hears a leader again or got a ``hears`` answer of this suspicion
    (gray).
LeaseRelinquish(r, s)
    r holds its lease, and relinquishes it once; s # r is a storage member of r's view
    (gray).
LinkDown(from, to), LinkUp(from, to)
    from # to; the link is up (LinkDown) or down (LinkUp) (gray).
    not: MaxDownLinks, MayLinkFail, MayLinkRecover (model bounds).
Crash(r)
    always enabled in the spec: nothing to check.

"Owes" (the spec's ProposedOrApplied and CommittedOrApplied, with SkipApplied on as
trace validation has it): a leader of ballot b owes slot t a proposal (a commit) unless
it proposed (committed) t in b or has applied t. Slots at or below the checkpoint its
election recovered are owed nothing either: the reference never re-proposes them (they
are committed; the spec's CHOICE on snapshots and truncated logs).

What no step check can see: a message's receipt that is no step (1b, 2b, commit,
lease ack, probe answer, handoff: the spec's ``Counted``) is taken to have happened
when the message was sent (as trace validation does); a message received is
judged against the sends traced before it (a step is traced once its WAL sync is
done, and sends happen then, so a receipt is always merged after its send; lost,
duplicated, reordered and retransmitted copies are all the same spec message).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol

import msgspec

from reference.actions import TRACED
from reference.trace_events import Change, Cmd

CmdId = str | None
Hook = Callable[[str, Any, Any, int], None]
Sig = tuple[str, Any] | None
"""A command's identity in a message: its request id and its op bytes or change."""


class _Ballot(Protocol):
    base: int
    base_cfg: dict[str, str]
    rec: Any  # the monitor's _SlotMap: slot -> command, for slots base+1..
    rec_changes: list[int]
    leader: str | None


class _Replica(Protocol):
    role: str
    ballot: int
    view: dict[str, str]
    log: Any  # the monitor's _Log: slot -> (ballot, command)
    applied: Any  # the monitor's _Applied: a sequence of commands
    wait_until: int
    leases: dict[int, set[str]]
    lead: Any  # _Ballot | None


class _Archive(Protocol):
    """The monitor's settled slots (conformance/monitor.py ``_Archive``)."""

    cmd: list[CmdId]

    def op(self, s: int) -> bytes: ...


class Monitor(Protocol):
    @property
    def arch(self) -> _Archive: ...
    @property
    def r(self) -> Mapping[str, Any]: ...
    @property
    def ballots(self) -> Mapping[int, Any]: ...
    @property
    def lease_dur(self) -> int: ...
    @property
    def margin(self) -> int: ...
    def _fail(self, prop: str, message: str) -> None: ...
    def view(self, name: str) -> Mapping[str, str]: ...
    def view_members(self, name: str) -> frozenset[str]: ...
    def _is_change(self, c: CmdId | int) -> bool: ...
    def _apply_changes(self, cfg: dict[str, str], cmds: Iterable[CmdId]) -> dict[str, str]: ...


def _is_quorum(members: frozenset[str], group: Iterable[str]) -> bool:
    return 2 * len(members.intersection(group)) > len(members)


def _members(cfg: Mapping[str, str]) -> frozenset[str]:
    return frozenset(x for x, k in cfg.items() if k != "none")


def _sig(c: Cmd | None) -> Sig:
    if c is None:
        return None
    if isinstance(c.change, Change):
        return (c.rid, c.change)
    return (c.rid, bytes(c.op) if isinstance(c.op, msgspec.Raw) else None)


def _added(c: Cmd | None) -> str | None:
    """The replica a command adds, if it is an add."""
    if c is not None and isinstance(c.change, Change) and c.change.op == "add":
        return c.change.who
    return None


_UNSENT = ("", None)
"""No 2a (never a command's signature: request ids are not empty)."""
_ABSENT: Any = object()


def _rid(c: Cmd | None) -> CmdId:
    return None if c is None else c.rid


class SlotSet:
    """A set of slots as sorted runs ``[los[i], his[i]]`` (slots mostly come in order)."""

    __slots__ = ("his", "los")

    def __init__(self) -> None:
        self.los: list[int] = []
        self.his: list[int] = []

    def add(self, s: int) -> None:
        los, his = self.los, self.his
        if his and his[-1] + 1 == s:
            his[-1] = s
            return
        i = bisect_left(his, s)  # the first run ending at or after s
        if i < len(his) and los[i] <= s:
            return
        left = i > 0 and his[i - 1] == s - 1
        right = i < len(los) and los[i] == s + 1
        if left and right:
            his[i - 1] = his[i]
            del los[i], his[i]
        elif left:
            his[i - 1] = s
        elif right:
            los[i] = s
        else:
            los.insert(i, s)
            his.insert(i, s)

    def discard(self, s: int) -> None:
        los, his = self.los, self.his
        i = bisect_left(his, s)
        if i == len(his) or los[i] > s:
            return
        lo, hi = los[i], his[i]
        if lo == hi:
            del los[i], his[i]
        elif s == lo:
            los[i] = s + 1
        elif s == hi:
            his[i] = s - 1
        else:
            his[i] = s - 1
            los.insert(i + 1, s + 1)
            his.insert(i + 1, hi)

    def __contains__(self, s: int) -> bool:
        his = self.his
        if his and his[-1] < s:
            return False
        i = bisect_left(his, s)
        return i < len(his) and self.los[i] <= s

    def __iter__(self) -> Iterator[int]:
        for lo, hi in zip(self.los, self.his, strict=True):
            yield from range(lo, hi + 1)

    def __len__(self) -> int:
        return sum(hi - lo + 1 for lo, hi in zip(self.los, self.his, strict=True))



class _Sent2a:
    """(leader, ballot, slot) -> the signature of the 2a its line proposed there. A 2a of
    a settled slot with its settled command and op (the monitor's ``_Archive``) is a slot
    in a run of its (leader, ballot), ``same``; any other is in ``d`` (as a dict)."""

    __slots__ = ("arch", "d", "pairs", "same")

    def __init__(self, arch: _Archive) -> None:
        self.arch = arch
        self.d: dict[tuple[str, int, int], Sig] = {}
        self.same: dict[tuple[str, int], SlotSet] = {}
        self.pairs: set[tuple[str, int]] = set()
        """Every (leader, ballot) with a 2a."""

    def _settled(self, key: tuple[str, int, int]) -> bool:
        runs = self.same.get((key[0], key[1]))
        return runs is not None and key[2] in runs

    def get(self, key: tuple[str, int, int], default: Any = None) -> Any:
        v = self.d.get(key, _ABSENT)
        if v is not _ABSENT:
            return v
        if self._settled(key):
            s = key[2]
            return (self.arch.cmd[s - 1], self.arch.op(s))
        return default

    def __contains__(self, key: tuple[str, int, int]) -> bool:
        return key in self.d or self._settled(key)

    def __setitem__(self, key: tuple[str, int, int], sig: Sig) -> None:
        s, arch, pair = key[2], self.arch, (key[0], key[1])
        self.pairs.add(pair)
        if 0 < s <= len(arch.cmd):
            runs = self.same.setdefault(pair, SlotSet())
            if sig == (arch.cmd[s - 1], arch.op(s)):
                runs.add(s)
                self.d.pop(key, None)
                return
            runs.discard(s)
        self.d[key] = sig

    def settle(self, s: int) -> None:
        canon = (self.arch.cmd[s - 1], self.arch.op(s))
        for leader, b in self.pairs:
            key = (leader, b, s)
            if key in self.d and self.d[key] == canon:
                del self.d[key]
                self.same.setdefault((leader, b), SlotSet()).add(s)


class _BallotSlots:
    """A set of (ballot, slot): per ballot, its slots as runs (commits come in slot
    order)."""

    __slots__ = ("by",)

    def __init__(self) -> None:
        self.by: dict[int, SlotSet] = {}

    def add(self, key: tuple[int, int]) -> None:
        runs = self.by.get(key[0])
        if runs is None:
            runs = self.by[key[0]] = SlotSet()
        runs.add(key[1])

    def __contains__(self, key: tuple[int, int]) -> bool:
        runs = self.by.get(key[0])
        return runs is not None and key[1] in runs


class StepRules:
    def __init__(self, mon: Monitor) -> None:
        self.mon = mon
        self.started: dict[int, str] = {}
        """Ballot -> the replica whose Phase1a started it (its 1a message)."""
        self.sent_2a = _Sent2a(mon.arch)
        """(leader, ballot, slot) -> the command of the 2a its line proposed."""
        self.adds: dict[str, int] = {}
        """Replica id -> the lowest ballot in which a 2a proposed adding it (Joining)."""
        self.sent_lease: set[tuple[str, int, int]] = set()
        """(leader, ballot, start) of every lease request (LeaseRenew)."""
        self.probers: set[str] = set()
        """Replicas that sent probes (traced a Suspect)."""
        self.prop_top: dict[int, int] = {}
        """Ballot -> the highest slot its leader proposed."""
        self.commit_top: dict[int, int] = {}
        """Ballot -> the highest slot its leader committed."""
        self.proposed_upto: dict[int, int] = {}
        """Ballot -> k: its leader owes no slot 1..k a proposal (see _owed)."""
        self.committed_upto: dict[int, int] = {}
        """Ballot -> k: its leader owes no slot 1..k a commit."""
        self.commits = _BallotSlots()
        """(ballot, slot) of every Commit line."""
        self.committed_slots = SlotSet()
        self.checkpointed = 0
        """The highest checkpoint any replica traced: slots up to it are committed."""
        self._before: dict[str, Hook] = {}
        self._after: dict[str, Hook] = {}
        for a in TRACED:
            for table, prefix in ((self._before, "_pre_"), (self._after, "_post_")):
                hook = getattr(self, prefix + a.name, None)
                if hook is not None:
                    table[a.name] = hook

    def before(self, action: str, node: str, rep: Any, a: Any, clock: int) -> None:
        """Check ``action``'s enabling condition in the state before the step."""
        hook = self._before.get(action)
        if hook is not None:
            hook(node, rep, a, clock)

    def after(self, action: str, node: str, rep: Any, a: Any, clock: int) -> None:
        """Record what the step sent, once the monitor's rule has folded it in."""
        hook = self._after.get(action)
        if hook is not None:
            hook(node, rep, a, clock)

    # --- helpers ---------------------------------------------------------------------

    def _fail(self, prop: str, message: str) -> None:
        self.mon._fail(prop, message)

    def _member(self, node: str, rep: _Replica) -> bool:
        """IsMember(node): in its log's view, or (a leader) its proposals' view."""
        return (rep.view.get(node, "none") != "none"
                or self.mon.view(node).get(node, "none") != "none")

    def _leading(self, rep: _Replica, b: int | None = None) -> _Ballot | None:
        """The ballot ``rep`` leads (of ballot ``b``, if given), None if it leads none."""
        if rep.role != "leader" or rep.lead is None or (b is not None and rep.ballot != b):
            return None
        lead: _Ballot = rep.lead
        return lead

    def _role_text(self, rep: _Replica) -> str:
        return f"{rep.role} of ballot {rep.ballot}"

    def _owed(self, done: dict[int, int], b: int, bal: _Ballot, rep: _Replica,
              has: Callable[[int], bool]) -> int:
        """The k such that leader ``rep`` of ballot b owes no slot 1..k a proposal (or a
        commit): the slot is in ``has`` (proposed, committed in b), or applied (the spec's
        SkipApplied: it is committed), or at or below the checkpoint its election
        recovered (the reference never re-proposes those: they are committed; the spec's
        CHOICE on snapshots). Both applied and ``has`` only grow, so k is kept."""
        k = max(done.get(b, bal.base), len(rep.applied))
        while has(k + 1):
            k += 1
        done[b] = k
        return k

    def _proposed_upto(self, node: str, rep: _Replica, bal: _Ballot) -> int:
        b = rep.ballot
        return self._owed(self.proposed_upto, b, bal, rep,
                          lambda t: (node, b, t) in self.sent_2a)

    def _committed_upto(self, rep: _Replica, bal: _Ballot) -> int:
        b = rep.ballot
        return self._owed(self.committed_upto, b, bal, rep, lambda t: (b, t) in self.commits)

    def _sent_2a(self, node: str, b: int, s: int, c: Cmd | None) -> None:
        self.sent_2a[(node, b, s)] = _sig(c)
        self.prop_top[b] = max(self.prop_top.get(b, 0), s)
        self._joining(c, b)

    def _joining(self, c: Cmd | None, b: int) -> None:
        who = _added(c)
        if who is not None:
            self.adds[who] = min(self.adds.get(who, b), b)

    def _append(self, action: str, node: str, rep: _Replica, s: int) -> None:
        """ClientWrite and the membership changes: r appends at its next slot, once it owes
        no earlier slot a proposal (the spec's MayAppend)."""
        bal = self._leading(rep)
        if bal is None:
            return  # not leading: the monitor's rule reports the missing lease
        b = rep.ballot
        nxt = max(bal.base + len(bal.rec), self.prop_top.get(b, 0)) + 1
        if s != nxt:
            self._fail(action, f"{node} appends at slot {s}, but its next slot in ballot "
                               f"{b} is {nxt}")
        elif (k := self._proposed_upto(node, rep, bal)) < s - 1:
            self._fail(action, f"{node} appends at slot {s} before re-proposing recovered "
                               f"slot {k + 1} (nor has it applied it)")

    # --- elections ---------------------------------------------------------------------

    def _pre_Phase1a(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        b = a.b
        if rep.role == "leader":
            self._fail("Phase1a", f"{node} starts an election (ballot {b}) while it leads "
                                  f"ballot {rep.ballot}")
        if b <= rep.ballot:
            self._fail("Phase1a", f"{node} starts ballot {b}, not above its ballot "
                                  f"{rep.ballot}")
        first = self.started.get(b)
        if first is not None:
            self._fail("Agreement", f"{node} starts ballot {b}, which {first} started "
                                    f"already: two leaders could propose in one ballot")
        self.started.setdefault(b, node)

    def _pre_Phase1b(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        m = a.m
        cand, b = m.src, m.bal
        if cand == node:
            self._fail("Phase1b", f"{node} promises ballot {b} on its own 1a")
        elif self.started.get(b) != cand:
            who = self.started.get(b)
            self._fail("Phase1b", f"{node} promises ballot {b} to {cand}, which sent no 1a "
                                  f"of it" + (f" ({who} started ballot {b})" if who else ""))
        if not self._member(node, rep):
            self._fail("Phase1b", f"{node} promises ballot {b} while not a member of its "
                                  f"view")
        if b <= rep.ballot:
            self._fail("Phase1b", f"{node} promises ballot {b}, not above its ballot "
                                  f"{rep.ballot}")

    def _pre_BecomeLeader(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        b = a.b
        if rep.role != "candidate" or rep.ballot != b:
            self._fail("BecomeLeader", f"{node} leads ballot {b} while "
                                       f"{self._role_text(rep)}, not its candidate")
        if node not in a.Q:
            self._fail("BecomeLeader", f"{node} leads ballot {b} on {sorted(a.Q)}, a quorum "
                                       f"without itself")

    def _post_BecomeLeader(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        """Q is a minimal quorum: no member is to spare in every configuration the
        recovered log passes through from its checkpoint (a superset of the spec's
        ElectionConfigs, which start at the candidate's KnownPrefix)."""
        bal = self._leading(rep, a.b)
        if bal is None:
            return
        cfg = dict(bal.base_cfg)
        cfgs = [_members(cfg)]
        for s in bal.rec_changes:  # (in slot order; the other commands change nothing)
            c = bal.rec[s]
            if self.mon._is_change(c):
                cfg = self.mon._apply_changes(cfg, [c])
                cfgs.append(_members(cfg))
        q = set(a.Q)
        for x in sorted(q):
            rest = q - {x}
            if all(_is_quorum(m, rest) for m in cfgs):
                self._fail("BecomeLeader", f"{node} leads ballot {a.b} on {sorted(q)}, not a "
                                           f"minimal quorum: {sorted(rest)} is a quorum of "
                                           f"every configuration it recovered")
                break

    # --- phase 2 -----------------------------------------------------------------------

    def _pre_ClientWrite(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        self._append("ClientWrite", node, rep, a.s)

    def _post_ClientWrite(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        self._sent_2a(node, rep.ballot, a.s, a.c)

    def _change(self, action: str, node: str, rep: _Replica, a: Any) -> None:
        self._append(action, node, rep, a.s)
        self._sent_2a(node, rep.ballot, a.s, Cmd(f"{a.c.op}-{a.c.who}", change=a.c))

    def _pre_AddMember(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        self._change("AddMember", node, rep, a)

    def _pre_RemoveMember(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        self._change("RemoveMember", node, rep, a)

    def _pre_PromoteMember(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        self._change("PromoteMember", node, rep, a)

    def _pre_Phase2a(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        b, s = a.b, a.s
        bal = self._leading(rep, b)
        if bal is None:
            self._fail("Phase2a", f"{node} re-proposes slot {s} of ballot {b} while "
                                  f"{self._role_text(rep)}")
        else:
            barrier = bal.base + len(bal.rec)
            if not 1 <= s <= barrier:
                self._fail("Phase2a", f"{node} re-proposes slot {s}, not one of the slots "
                                      f"1..{barrier} it recovered")
            elif (node, b, s) in self.sent_2a:
                self._fail("Phase2a", f"{node} re-proposes slot {s} in ballot {b} again")
            elif (k := self._proposed_upto(node, rep, bal)) < s - 1:
                self._fail("Phase2a", f"{node} re-proposes slot {s} out of slot order: slot "
                                      f"{k + 1} is neither proposed in ballot {b} nor "
                                      f"applied")
            elif s > bal.base and bal.rec.get(s) != _rid(a.c):
                self._fail("Agreement", f"{node} re-proposes {_rid(a.c)!r} at slot {s}, but "
                                        f"it recovered {bal.rec.get(s)!r} there")
        self._sent_2a(node, b, s, a.c)

    def _pre_Phase2b(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        m = a.m
        b, s, src = m.bal, m.slot, m.src
        if src == node:
            self._fail("Phase2b", f"{node} accepts its own 2a (ballot {b}, slot {s})")
        else:
            bal = self.mon.ballots.get(b)
            # A leader's catch-up re-sends, in its ballot, the entries at or below the
            # checkpoint its election recovered, which it never proposed (module doc).
            below = bal is not None and bal.leader == src and s <= bal.base
            sent = self.sent_2a.get((src, b, s), _UNSENT)
            if not below and sent == _UNSENT:
                self._fail("Phase2b", f"{node} accepts a 2a of ballot {b}, slot {s} from "
                                      f"{src}, which proposed nothing there")
            elif not below and sent != _sig(m.cmd):
                what = "a NoOp" if sent is None else repr(sent[0])
                self._fail("Phase2b", f"{node} accepts {_rid(m.cmd)!r} at slot {s} of ballot "
                                      f"{b}, but {src} proposed {what} there")
        if not self._member(node, rep) and self.adds.get(node, b + 1) > b:
            self._fail("Phase2b", f"{node} accepts a 2a of ballot {b} while not a member of "
                                  f"its view, and no 2a of ballot {b} or earlier adds it")
        if b < rep.ballot:
            self._fail("Phase2b", f"{node} accepts a 2a of ballot {b} after promising ballot "
                                  f"{rep.ballot}")
        self._joining(m.cmd, b)

    def _pre_Commit(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        b, s = a.b, a.s
        bal = self._leading(rep, b)
        if bal is None:
            self._fail("Commit", f"{node} commits slot {s} of ballot {b} while "
                                 f"{self._role_text(rep)}")
        else:
            if clock < rep.wait_until:
                self._fail("Linearizability", f"{node} commits slot {s} "
                                              f"{rep.wait_until - clock}us before the end of "
                                              f"its new-leader wait (a commit acknowledges "
                                              f"the write: it serves it)")
            if (b, s) in self.commits:
                self._fail("Commit", f"{node} commits slot {s} of ballot {b} again")
            elif (k := self._committed_upto(rep, bal)) < s - 1:
                self._fail("Commit", f"{node} commits slot {s} of ballot {b} before slot "
                                     f"{k + 1} (committed in the ballot, or applied): commits "
                                     f"are in slot order")
        self.commits.add((b, s))
        self.commit_top[b] = max(self.commit_top.get(b, 0), s)
        self.committed_slots.add(s)

    def _pre_Apply(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        s, c = a.s, _rid(a.c)
        e = rep.log.get(s)
        if e is None or e[1] != c:
            held = "nothing" if e is None else repr(e[1])
            self._fail("Apply", f"{node} applies {c!r} at slot {s}, where its log holds {held}")
        elif s not in self.committed_slots and s > self.checkpointed:
            self._fail("Apply", f"{node} applies slot {s}, which no leader has committed (no "
                                f"Commit of slot {s}, and no checkpoint covers it)")

    # --- leases and reads ----------------------------------------------------------------

    def _pre_LeaseRenew(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        if self._leading(rep) is None:
            return  # the monitor's rule reports a request by a non-leader
        dur = self.mon.lease_dur
        members = self.mon.view_members(node)
        left = max([0, *(t + dur - clock for t, g in rep.leases.items()
                         if _is_quorum(members, g))])
        blocking = sorted(t for t in rep.leases if t + dur - clock > left)
        if blocking:
            t = blocking[0]
            self._fail("LeaseRenew", f"{node} asks for a lease while its request of {t}us is "
                                     f"outstanding ({t + dur - clock}us left, more than the "
                                     f"{left}us of lease it holds): one request at a time")

    def _post_LeaseRenew(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        self.sent_lease.add((node, rep.ballot, a.start))

    def _pre_LeaseGrant(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        m = a.m
        if m.src == node:
            self._fail("LeaseGrant", f"{node} grants its own lease request (ballot {m.bal})")
        elif (m.src, m.bal, m.start) not in self.sent_lease:
            self._fail("LeaseGrant", f"{node} grants a lease request of {m.src} (ballot "
                                     f"{m.bal}, start {m.start}us) that {m.src} never sent")
        if not self._member(node, rep):
            self._fail("LeaseGrant", f"{node} grants {m.src}'s lease request while not a "
                                     f"member of its view")
        if m.bal < rep.ballot:
            self._fail("LeaseExclusivity", f"{node} grants ballot {m.bal}'s lease after "
                                           f"promising ballot {rep.ballot}")
        # The spec drops a lease request once its time left, counted on its leader's
        # clock, runs out. Two clocks differ by at most 2 * MaxDrift <= LeaseMargin / 2
        # (ReplicaConfig asks LeaseMargin >= 4 * MaxDrift), so a grant a whole margin
        # past start + LeaseDur on the grantor's clock received a request that had
        # certainly expired: only a late message brings one.
        late = clock - (m.start + self.mon.lease_dur)
        if late >= self.mon.margin:
            self._fail("LeaseGrant", f"{node} grants {m.src}'s lease request of {m.start}us "
                                     f"{late}us after it expired on its leader's clock "
                                     f"(beyond the {self.mon.margin}us margin for drift: a "
                                     f"late request the spec no longer holds)")

    def _pre_StrongRead(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        """ReadReady, as trace validation takes it (SkipApplied): r has applied every slot
        it recovered (its read barrier) and every slot it committed in its ballot. (That a
        recovered slot be committed in r's ballot, too, follows without SkipApplied only.)"""
        bal = self._leading(rep)
        if bal is None:
            return  # the monitor's rule reports the missing lease
        barrier = bal.base + len(bal.rec)
        n = len(rep.applied)
        if n < barrier:
            self._fail("Linearizability", f"{node} serves a strong read before applying "
                                          f"recovered slot {n + 1} (its read barrier is "
                                          f"{barrier})")
        elif n < self.commit_top.get(rep.ballot, 0):
            self._fail("Linearizability", f"{node} serves a strong read before applying slot "
                                          f"{n + 1}, which it committed")

    # --- failure detection -----------------------------------------------------------------

    def _post_Suspect(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        self.probers.add(node)

    def _pre_AnswerProbe(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        src = a.m.src
        if src == node:
            self._fail("AnswerProbe", f"{node} answers its own probe")
        elif src in self.mon.r and src not in self.probers:
            self._fail("AnswerProbe", f"{node} answers a probe of {src}, which never sent "
                                      f"one (it never suspected)")

    # --- environment -------------------------------------------------------------------------

    def _post_Checkpoint(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        self.checkpointed = max(self.checkpointed, a.upto)

    def settle(self, s: int) -> None:
        """Slot s settles (the monitor's ``_settle``): its 2a's go to runs."""
        self.sent_2a.settle(s)


__all__ = ["SlotSet", "StepRules"]
