"""Invariant monitor: the spec's safety properties, checked after every traced step.

The monitor folds typed trace events (reference/trace_events.py; from the trace
loader, or live from a running ``World``) into the spec's variables, as far as a
trace shows them, and after each event checks the properties of specs/Replication.tla
under their names:

* ``Agreement``: no slot is chosen with two commands; a leader never proposes, at a
  slot chosen in an earlier ballot, a command other than the chosen one (the Paxos
  invariant Agreement rests on); an election counts only promises its candidate
  received, and its quorum is a quorum of every configuration of the recovered log
  from the chosen prefix on (the spec's ``ElectionConfigs``; the mutant
  RaftStyleElection counts the latest one only); no incarnation acts, or is added,
  after its disk is gone (Kill, removal: the spec's ``Fresh``, mutant
  ReaddOldIncarnation).
* ``Durability``: a slot is committed (the write acknowledged) only with the votes
  of a quorum of the leader's current view, and only once every configuration
  command it recovered has been re-proposed; every later leader recovers and
  proposes the chosen command there; an acceptor's WAL has no holes (slot s of
  ballot b only after slot s-1 of b, or right after its checkpoint: the spec's
  Phase2b); a replica checkpoints (truncates its WAL) only a chosen prefix its B-tree
  has applied; a restarted replica recovers exactly the durable state (ballot,
  granted, applied, log above its checkpoint) its steps made.
* ``StateMachineSafety``: each replica with a B-tree applies slots in order, and
  only chosen ones; only a replica with a B-tree applies; a snapshot is a prefix of
  what its source applied, installed by a replica that had no B-tree.
* ``LeaseExclusivity``: at no real time do two replicas believe they hold a lease.
  A replica's belief is evaluated on its own clock, interpolated between its events
  (rate 1 between samples; the error is the clock's rate error times the gap). A
  lease counts grants from a quorum of the leader's current view. Writes and
  configuration changes are taken only under the lease.
* ``Linearizability``: a strong read is served only by a leader that holds its lease
  and has applied every acknowledged command.
* ``EventualReadsCommitted``: an eventual read is served from an applied prefix of
  chosen commands.
* ``ConfigSafety``: after every step, the views of the leaders whose ballot can still
  gather a quorum (the spec's ``CanDecide``) and the configuration of the chosen
  prefix pairwise have intersecting majorities; a leader proposes a configuration
  change only after committing an entry of its own ballot (mutant
  ChangeBeforeOwnCommit) and when every change in its proposals is committed (one at
  a time: mutant TwoChangesInFlight); a removal names a member other than the
  leader; an addition names a non-member.
* ``LogReplicaNeverLeads``: only a storage member of its view with a B-tree starts an
  election, and a leader is a storage member, with a B-tree, of the configuration it
  recovered.
* ``LogReplicaNeverServes``: only a storage member of its view with a B-tree serves a
  strong or an eventual read; a replica is promoted, or added as storage, only once
  it has a B-tree (a storage member without one could not serve).
* ``AckedSurvivesReplacement``: an acknowledged write is held by a quorum of the
  configuration without any one of its members (held: in the replica's log, which
  the monitor never truncates, as the spec's is never, or applied in its B-tree);
  checked at its commit against the leader's view it committed in, and against the
  chosen configuration whenever that changes. (The spec checks the chosen
  configuration in every state; that is stronger than the claim in one reachable
  transient: on append, a leader may commit slot s with the votes of a quorum of a
  view that already holds a later, not yet chosen, removal, e.g. s held by {r1, r4}
  of {r1, r3, r4} while the chosen prefix still has {r1, r2, r3, r4}; the reference's
  ``heal`` run does exactly this, and the write is safe: every election quorum of
  the chosen configuration meets r4.) A snapshot that leaves out an acknowledged
  write's slot is this property's violation.

Gray failures and lease handoff (conformance/monitor_gray.py, a ``GrayRules`` the
monitor owns): ``LinkDelivery`` (no message is taken over a link that is down),
``NoNeedlessElection`` (suspicion, answers and elections of peer-confirmed failure
detection), ``EventuallyConnectedLease`` (nobody vouches for a leader without a lease),
``LeaseExclusivity`` (a relinquished leader neither serves nor renews; a new leader
skips its wait only for leases handed off to it) and ``HandoffGap`` (a leader hands off
only to a storage member of its view); see that module.

Steps, not only states (conformance/monitor_steps.py, a ``StepRules`` the monitor
owns): before its rule folds a step in, the step's enabling condition in the spec is
checked on the state before it (a 1b, 2a, lease request or probe received was sent;
a promise is for a higher ballot, a vote for one at least the promise; an election by
the ballot's candidate on a minimal quorum; proposals and commits in slot order; a
commit after the new-leader wait; an apply of a committed slot; one lease request at a
time; a read behind the read barrier; ...). That module's docstring lists, per action,
what is checked, where, and what a trace cannot show. A violation names the action
and the ``file:line`` of its step (``Violation.action``, ``Violation.where``).

Configuration, as in the spec (``CfgOf``, on append): a replica's view is the
initial kinds (``config.json`` ``members``; ``conformance.trace_loader.member_kinds``)
overridden by the latest change naming each replica among its log's entries above
its checkpoint, on top of the configuration at its checkpoint; a leader's view is
that of its proposals (what it recovered, plus what it proposed). A command is
chosen at slot s in ballot b (``ChosenTriples``) when its voters are a quorum (a
strict majority of the members, storage and log alike) of the configuration of
ballot b's proposals up to some slot n >= s; ballot b's proposals are what its
leader's ClientWrite/Phase2a/AddMember/RemoveMember/PromoteMember events, and its
acceptors' Phase2b events, show. A reference leader does not re-propose the slots up
to the highest checkpoint its quorum reported (they are committed); the monitor takes
their configuration from the chosen prefix.

Its rules are the ``_on_<Action>`` methods, one per traced action of the catalogue
(reference/actions.py); the dispatch table is built from the catalogue, so a
missing rule is an error at construction.

Like the spec, the monitor treats a grant as known to the leader when it is sent,
which over-approximates the leader's belief; the properties hold for that
over-approximation, so a violation is real.
"""

from __future__ import annotations

import zlib
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, overload

import orjson

from conformance.monitor_gray import GrayRules
from conformance.monitor_steps import SlotSet, StepRules
from reference.actions import TRACED
from reference.trace import log_digest
from reference.trace_events import ACTION_OF, EVENT_TYPES, PROD_EVENT_TYPES, Change, Cmd

CmdId = str | None  # a command's request id; None is NoOp
Rule = Callable[[str, "_Replica", Any, int], None]
Config = dict[str, str]  # replica id -> "storage" | "log" | "none"
Members = frozenset[str]

KINDS = ("storage", "log", "none")
SETTLE_BATCH = 64
"""Chosen slots settled at a time (``Monitor._settle``)."""
SETTLE_LAG = 256
"""How far behind the chosen prefix the settled slots may be, at most."""
SETTLE_EVERY = 16
"""Steps between looks at the watermark (``Monitor._settle``)."""
MISSING = "<missing slot>"
"""What a replica's applied sequence holds at a slot a snapshot claimed but its source
had not applied (never a request id)."""


# --- settled slots -----------------------------------------------------------------------
#
# Memory. Without checkpoints a replica's log, and so the monitor's copy of it, only grows
# (the spec's too), and any later step may read any slot of it: a restart's digest covers
# the whole log, an election recovers it, a late 2b or a lagging replica's Apply reads
# its slot. So each slot costs something for good; the monitor makes that little once
# the slot is *settled*: chosen (its command can never change: ``_check_chosen``) and at
# or below the archive's top (``Monitor._settle`` says when a slot settles). A settled
# slot's command, and one op (zlib-compressed), are kept once (``_Archive``); every
# structure indexed by slot keeps, for a settled slot, only how it differs from that: a
# replica's log entry that holds the settled command is its ballot, in runs of equal
# ballots (``_Log``, ``_Runs``); a ballot's proposal of it, its chosen (slot, command)
# pair, a 2a that carried it, a commit, an acknowledgement are a slot in a run of slots
# (``_SlotMap``, ``_PairSet``, ``SlotSet``); what a replica applied is the settled
# commands (``_Applied``); which ids are acknowledged, and which each replica applied,
# are bits of one dict entry per id (``_RidSet``). Anything else (another command,
# another op) is kept as it was, in a dict: these are changes of representation, and
# each structure answers every read exactly as the dict, list or set it replaces did
# (tests/conformance/test_monitor_settle.py compares the two on correct runs and seeded
# bugs). The one thing dropped is the votes of a slot its ballot chose and committed, or
# of a dead ballot (``Monitor._settle`` says why no check of a correct run reads them).
# What is left per slot: its request id (a str, shared by every structure), about 40
# bytes of compressed op, and a few bytes of runs and bits; before, about 3 KB.

_NONE = -(1 << 63)
"""A ``_Log`` ballot slot: no entry."""
_ODD = _NONE + 1
"""A ``_Log`` ballot slot: the entry is in ``_Log.odd`` (not the settled command and op)."""


class _Archive:
    """The settled slots 1..top: each one's command (chosen) and the op bytes of one
    proposal of it (``Monitor._settle`` says which). The ops are the bulk (a write's
    item); read only at a restart's digest and when a settled slot is written again, they
    are kept zlib-compressed, ``OPS_CHUNK`` slots to a chunk (the latest one plain)."""

    __slots__ = ("_cache", "_chunks", "_ends", "_pending", "cmd")

    OPS_CHUNK = 256

    def __init__(self) -> None:
        self.cmd: list[CmdId] = []
        self._chunks: list[bytes] = []
        self._ends: list[array[int]] = []
        """Per chunk: where each op of the decompressed chunk ends."""
        self._pending: list[bytes] = []
        self._cache: tuple[int, bytes] = (-1, b"")

    @property
    def top(self) -> int:
        return len(self.cmd)

    def add(self, c: CmdId, op: bytes) -> None:
        self.cmd.append(c)
        self._pending.append(op)
        if len(self._pending) == self.OPS_CHUNK:
            ends = array("I")
            n = 0
            for x in self._pending:
                n += len(x)
                ends.append(n)
            self._chunks.append(zlib.compress(b"".join(self._pending), 1))
            self._ends.append(ends)
            self._pending = []

    def op(self, s: int) -> bytes:
        """Settled slot s's op."""
        k, i = divmod(s - 1, self.OPS_CHUNK)
        if k == len(self._chunks):
            return self._pending[i]
        if self._cache[0] != k:
            self._cache = (k, zlib.decompress(self._chunks[k]))
        ends = self._ends[k]
        return self._cache[1][ends[i - 1] if i else 0:ends[i]]


class _RidSet:
    """A set of request ids kept as one bit (``mask``) of their entry in ``bits``, which
    the monitor's id sets share (the acknowledged writes and changes, and what each
    replica applied): one dict entry per id, not an entry in each of several sets."""

    __slots__ = ("bits", "mask", "n")

    def __init__(self, bits: dict[str, int], mask: int) -> None:
        self.bits = bits
        self.mask = mask
        self.n = 0

    def __contains__(self, c: object) -> bool:
        return isinstance(c, str) and bool(self.bits.get(c, 0) & self.mask)

    def add(self, c: str) -> None:
        v = self.bits.get(c, 0)
        if not v & self.mask:
            self.bits[c] = v | self.mask
            self.n += 1

    def clear(self) -> None:
        bits, mask = self.bits, self.mask
        for c in [c for c, v in bits.items() if v & mask]:
            bits[c] &= ~mask
        self.n = 0

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[str]:
        mask = self.mask
        return iter([c for c, v in self.bits.items() if v & mask])


class _Applied:
    """A replica's applied sequence (the spec's ``applied[r]``: index s-1 -> the command
    applied at slot s), as a list reads. The first ``k`` entries are folded: each is the
    settled command of its slot, or in ``odd``; the rest are the list ``rest``."""

    __slots__ = ("arch", "k", "odd", "rest")

    def __init__(self, arch: _Archive, items: Iterable[CmdId] = ()) -> None:
        self.arch = arch
        self.k = 0
        self.odd: dict[int, CmdId] = {}
        self.rest: list[CmdId] = list(items)

    def __len__(self) -> int:
        return self.k + len(self.rest)

    def _at(self, i: int) -> CmdId:
        if i >= self.k:
            return self.rest[i - self.k]
        return self.odd[i] if i in self.odd else self.arch.cmd[i]

    @overload
    def __getitem__(self, i: int) -> CmdId: ...
    @overload
    def __getitem__(self, i: slice) -> list[CmdId]: ...
    def __getitem__(self, i: int | slice) -> CmdId | list[CmdId]:
        n = len(self)
        if isinstance(i, slice):
            return [self._at(j) for j in range(*i.indices(n))]
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(i)
        return self._at(i)

    def __iter__(self) -> Iterator[CmdId]:
        return (self._at(i) for i in range(len(self)))

    def __eq__(self, other: object) -> bool:
        return list(self) == (list(other) if isinstance(other, _Applied) else other)

    __hash__ = None  # type: ignore[assignment]

    def append(self, c: CmdId) -> None:
        self.rest.append(c)

    def fold(self, top: int) -> None:
        """Fold the entries of settled slots (up to ``top``)."""
        n = min(top, len(self)) - self.k
        if n <= 0:
            return
        cmd, rest, k = self.arch.cmd, self.rest, self.k
        for j in range(n):
            c = rest[j]
            if c is not cmd[k + j] and c != cmd[k + j]:
                self.odd[k + j] = c
        del rest[:n]
        self.k = k + n


class _Runs:
    """A list of ints (ballots) that come in long runs of one value: each run is its first
    index (``starts``) and value (``vals``)."""

    __slots__ = ("n", "starts", "vals")

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.vals: list[int] = []
        self.n = 0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return self.vals[bisect_right(self.starts, i) - 1]

    def append(self, v: int) -> None:
        if not self.vals or self.vals[-1] != v:
            self.starts.append(self.n)
            self.vals.append(v)
        self.n += 1

    def __setitem__(self, i: int, v: int) -> None:
        starts, vals = self.starts, self.vals
        j = bisect_right(starts, i) - 1
        old = vals[j]
        if old == v:
            return
        end = starts[j + 1] if j + 1 < len(starts) else self.n
        # Run j becomes [start, i) of old, [i] of v, (i, end) of old; then equal
        # neighbours of the new run merge.
        new_s, new_v = [i], [v]
        k = j
        if starts[j] < i:
            new_s.insert(0, starts[j])
            new_v.insert(0, old)
            k += 1
        if i + 1 < end:
            new_s.append(i + 1)
            new_v.append(old)
        starts[j:j + 1] = new_s
        vals[j:j + 1] = new_v
        if k + 1 < len(vals) and vals[k + 1] == v:
            del starts[k + 1], vals[k + 1]
        if k > 0 and vals[k - 1] == v:
            del starts[k], vals[k]

    def runs(self, lo: int = 0) -> Iterator[tuple[int, int, int]]:
        """(first, end, value) of each run, from index ``lo`` on (clipped)."""
        starts, vals, n = self.starts, self.vals, self.n
        for j in range(max(0, bisect_right(starts, lo) - 1), len(starts)):
            end = starts[j + 1] if j + 1 < len(starts) else n
            if end > lo:
                yield max(starts[j], lo), end, vals[j]

    def copy(self) -> _Runs:
        out = _Runs()
        out.starts, out.vals, out.n = list(self.starts), list(self.vals), self.n
        return out


class _Log:
    """A replica's log (the spec's ``log[r]``: slot -> (ballot, command)) and each
    entry's op bytes (for the restart digest). Slot s up to ``len(bal)`` (settled) keeps,
    in ``bal[s - 1]``, its entry's ballot if the entry is the settled command with the
    settled op (``_NONE``: no entry; ``_ODD``: the entry is in ``odd``); a later slot is in
    ``tail``. A phase-1 report's copy (``snapshot``) hides the slots up to its checkpoint,
    ``floor``."""

    __slots__ = ("arch", "bal", "floor", "odd", "ops", "tail")

    def __init__(self, arch: _Archive) -> None:
        self.arch = arch
        self.bal = _Runs()
        self.odd: dict[int, tuple[int, CmdId, bytes]] = {}
        self.tail: dict[int, tuple[int, CmdId]] = {}
        self.ops: dict[int, bytes] = {}
        self.floor: int | None = None

    def get(self, s: int, default: Any = None) -> Any:
        if self.floor is not None and s <= self.floor:
            return default
        if s > len(self.bal) or s <= 0:
            return self.tail.get(s, default)
        b = self.bal[s - 1]
        if b == _NONE:
            return default
        if b == _ODD:
            e = self.odd[s]
            return (e[0], e[1])
        return (b, self.arch.cmd[s - 1])

    def op(self, s: int) -> bytes:
        if s > len(self.bal) or s <= 0:
            return self.ops.get(s, b"")
        b = self.bal[s - 1]
        if b == _ODD:
            return self.odd[s][2]
        return b"" if b == _NONE else self.arch.op(s)

    def put(self, s: int, b: int, c: CmdId, op: bytes) -> None:
        if s > len(self.bal) or s <= 0:
            self.tail[s] = (b, c)
            self.ops[s] = op
        else:
            self._fold(s, b, c, op)

    def _fold(self, s: int, b: int, c: CmdId, op: bytes) -> None:
        """Entry (b, c, op) at settled slot s (s <= len(bal))."""
        arch = self.arch
        if c == arch.cmd[s - 1] and op == arch.op(s) and b not in (_NONE, _ODD):
            self.bal[s - 1] = b
            self.odd.pop(s, None)
        else:
            self.bal[s - 1] = _ODD
            self.odd[s] = (b, c, op)

    def settle(self, s: int) -> None:
        """Slot s (the next one) settles: its entry moves from ``tail`` to ``bal``."""
        e = self.tail.pop(s, None)
        op = self.ops.pop(s, b"")
        self.bal.append(_NONE)
        if e is not None:
            self._fold(s, e[0], e[1], op)

    def entries(self, above: int | None = None) -> Iterator[tuple[int, int, CmdId]]:
        """(slot, ballot, command) of every entry above slot ``above`` (and ``floor``), in
        slot order."""
        cut = max((x for x in (above, self.floor) if x is not None), default=None)
        tail = self.tail
        low = sorted(s for s in tail if s <= 0 and (cut is None or s > cut))
        for s in low:
            yield s, tail[s][0], tail[s][1]
        cmd, odd = self.arch.cmd, self.odd
        for first, end, b in self.bal.runs(max(cut or 0, 0)):
            if b == _ODD:
                for i in range(first, end):
                    e = odd[i + 1]
                    yield i + 1, e[0], e[1]
            elif b != _NONE:
                for i in range(first, end):
                    yield i + 1, b, cmd[i]
        for s in sorted(s for s in tail if s > 0 and (cut is None or s > cut)):
            yield s, tail[s][0], tail[s][1]

    def top(self) -> int | None:
        """The highest slot with an entry (None: no entry)."""
        shown = [x for x in self.tail if self.floor is None or x > self.floor]
        high = max(shown, default=None)
        if high is not None and high > len(self.bal):
            return high
        last = None
        for _, end, b in self.bal.runs(max(self.floor or 0, 0)):
            if b != _NONE:
                last = end  # (the run's last index is end - 1: slot end)
        return last if last is not None else high

    def count(self, lo: int, hi: int) -> int:
        """Entries at slots lo < s <= hi."""
        n = 0
        for s, _, _ in self.entries(lo):
            if s > hi:
                break
            n += 1
        return n

    def snapshot(self, floor: int) -> _Log:
        """A copy of the entries above ``floor`` (a phase-1 report: the log above its
        checkpoint, as it was when it promised; without the ops, which no report uses)."""
        out = _Log(self.arch)
        out.bal = self.bal.copy()
        out.odd = dict(self.odd)
        out.tail = dict(self.tail)
        out.floor = floor if self.floor is None else max(floor, self.floor)
        return out


class _Chosen:
    """Slot -> (command, the ballot it was first chosen in): the settled slots' commands
    are the archive's, their ballots in ``bal``; the others in ``d``."""

    __slots__ = ("arch", "bal", "d")

    def __init__(self, arch: _Archive) -> None:
        self.arch = arch
        self.bal = _Runs()
        self.d: dict[int, tuple[CmdId, int]] = {}

    def get(self, s: int, default: Any = None) -> Any:
        v = self.d.get(s)
        if v is not None:
            return v
        if 0 < s <= len(self.bal):
            return (self.arch.cmd[s - 1], self.bal[s - 1])
        return default

    def __getitem__(self, s: int) -> tuple[CmdId, int]:
        v = self.get(s)
        if v is None:
            raise KeyError(s)
        out: tuple[CmdId, int] = v
        return out

    def __contains__(self, s: int) -> bool:
        return s in self.d or 0 < s <= len(self.bal)

    def __setitem__(self, s: int, v: tuple[CmdId, int]) -> None:
        if 0 < s <= len(self.bal):  # settled: chosen once and for all (never reached)
            raise RuntimeError(f"slot {s} is settled: its chosen command cannot change")
        self.d[s] = v

    def __len__(self) -> int:
        return len(self.bal) + len(self.d)

    def settle(self, s: int, op: bytes) -> None:
        """Slot s (the next one) settles: its command, and ``op``, go to the archive."""
        c, b = self.d.pop(s)
        self.arch.add(c, op)
        self.bal.append(b)


class _SlotMap:
    """Slot -> command (a ballot's proposals, its leader's recovered log, the
    acknowledged writes): settled slots mapped to their settled command are in ``same``,
    the rest in ``d``."""

    __slots__ = ("arch", "d", "same")

    def __init__(self, arch: _Archive, items: Iterable[tuple[int, CmdId]] = ()) -> None:
        self.arch = arch
        self.same = SlotSet()
        self.d: dict[int, CmdId] = {}
        for s, c in items:
            self[s] = c

    def get(self, s: int, default: Any = None) -> Any:
        if s in self.d:
            return self.d[s]
        return self.arch.cmd[s - 1] if s in self.same else default

    def __getitem__(self, s: int) -> CmdId:
        if s in self.d:
            return self.d[s]
        if s in self.same:
            return self.arch.cmd[s - 1]
        raise KeyError(s)

    def __contains__(self, s: int) -> bool:
        return s in self.d or s in self.same

    def __setitem__(self, s: int, c: CmdId) -> None:
        if 0 < s <= self.arch.top:
            if c == self.arch.cmd[s - 1]:
                self.same.add(s)
                self.d.pop(s, None)
                return
            self.same.discard(s)
        self.d[s] = c

    def __iter__(self) -> Iterator[int]:
        """The slots, in order."""
        return iter(sorted([*self.d, *self.same]))

    def __len__(self) -> int:
        return len(self.d) + len(self.same)

    def items(self) -> Iterator[tuple[int, CmdId]]:
        """(slot, command), in slot order."""
        for s in self:
            yield s, self[s]

    def settle(self, s: int) -> None:
        if s in self.d and self.d[s] == self.arch.cmd[s - 1]:
            del self.d[s]
            self.same.add(s)


class _PairSet:
    """A set of (slot, command) pairs (the spec's ChosenTriples of one ballot): pairs of a
    settled slot and its settled command are in ``same``, the rest in ``d``."""

    __slots__ = ("arch", "d", "same")

    def __init__(self, arch: _Archive) -> None:
        self.arch = arch
        self.same = SlotSet()
        self.d: set[tuple[int, CmdId]] = set()

    def __contains__(self, pair: tuple[int, CmdId]) -> bool:
        if pair in self.d:
            return True
        s = pair[0]
        return s in self.same and pair[1] == self.arch.cmd[s - 1]

    def add(self, pair: tuple[int, CmdId]) -> None:
        s = pair[0]
        if 0 < s <= self.arch.top and pair[1] == self.arch.cmd[s - 1]:
            self.same.add(s)
        else:
            self.d.add(pair)

    def settle(self, s: int) -> None:
        pair = (s, self.arch.cmd[s - 1])
        if pair in self.d:
            self.d.discard(pair)
            self.same.add(s)


@dataclass(frozen=True, slots=True)
class Violation:
    prop: str
    message: str
    event: Any
    """The typed trace event (reference/trace_events.py)."""
    where: str = ""
    """``file:line`` of the offending event, when it came from a file."""
    action: str = ""
    """The offending event's action (reference/actions.py)."""

    def __str__(self) -> str:
        loc = f"{self.where}: " if self.where else ""
        what = self.prop if self.action in ("", self.prop) else f"{self.prop} in {self.action}"
        return f"{loc}{what}: {self.message}"


@dataclass(frozen=True, slots=True)
class _Report:
    """A phase-1 report: the promiser's checkpoint, its configuration there, its log
    above it, and its granted record."""

    base: int
    base_cfg: Config
    log: _Log
    granted: int


@dataclass(slots=True)
class _Ballot:
    """Ballot b: what it proposed (the spec's ProposedSeq(b)) and, once its leader's
    BecomeLeader is seen, what that leader recovered."""

    base: int
    """Slots 1..base were committed before the ballot (its leader does not re-propose
    them); 0 without checkpoints."""
    base_cfg: Config
    prop: _SlotMap
    """Slot -> the command the ballot proposed there."""
    chosen: _PairSet
    """(slot, command) chosen in this ballot."""
    rec: _SlotMap
    """The leader's recovered commands above base (its proposals before it proposed):
    every slot base+1..top of the logs it recovered (a NoOp where none had one)."""
    points: list[tuple[int, Members]] = field(default_factory=list)
    """(slot n, members through n) at base and after each proposed change, in slot order."""
    top: int = 0
    """The highest slot proposed."""
    pending: set[int] = field(default_factory=set)
    """Slots with votes in this ballot that are not (yet) chosen in it."""
    leader: str | None = None
    rec_changes: list[int] = field(default_factory=list)
    """The slots of ``rec`` holding configuration commands."""
    committed: int = 0
    """The highest slot its leader committed in it (commits are in slot order)."""
    view: Config | None = None
    """Cache of the leader's view (the configuration of its proposals)."""
    view_members: Members = frozenset()


@dataclass(slots=True)
class _Replica:
    kind0: str = "storage"
    ballot: int = 0
    granted: int = 0
    role: str = "follower"
    log: _Log = field(default_factory=lambda: _Log(_Archive()))  # (the monitor's archive)
    applied: _Applied = field(default_factory=lambda: _Applied(_Archive()))  # (the monitor's)
    applied_set: _RidSet = field(default_factory=lambda: _RidSet({}, 1))  # (the monitor's)
    applied_acked: int = 0  # how many acknowledged commands applied_set holds
    tree: bool = True  # keeps a B-tree (a storage replica, or a snapshot installed)
    base: int = 0  # checkpoint: slots 1..base are truncated from its WAL
    base_cfg: Config = field(default_factory=dict)
    cfg_slots: dict[int, str] = field(default_factory=dict)  # log slot -> change rid
    view: Config = field(default_factory=dict)
    members: Members = frozenset()
    wait_until: int = 0  # local clock
    # Lease requests of the current leadership: start -> grantors (self included).
    leases: dict[int, set[str]] = field(default_factory=dict)
    lead: _Ballot | None = None  # the ballot it leads
    last_real: int | None = None
    last_clock: int = 0
    out: bool = False  # quarantined: its durable state is gone
    killed: bool = False
    relinquished: bool = False  # leader: it handed its lease off (LeaseRelinquish)


def op_bytes(c: Cmd | None) -> bytes:
    """A command's op as the canonical bytes the replica logged (b"" for NoOp; a
    change's JSON with sorted keys, as ``reference.trace.digest_fields``)."""
    if c is None:
        return b""
    if isinstance(c.change, Change):
        obj: dict[str, str] = {"op": c.change.op, "who": c.change.who}
        if c.change.kind is not None:
            obj["kind"] = c.change.kind
        return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
    return bytes(c.op)  # type: ignore[arg-type]


def cmd_key(c: Cmd | None) -> CmdId:
    """A command's identity in traces: its request id (NoOp is ``null``)."""
    return None if c is None else c.rid


def new_kind(c: Change) -> str:
    """The kind a change gives its replica (the spec's NewKind)."""
    if c.op == "add":
        return c.kind or "none"
    return "none" if c.op == "remove" else "storage"


def members_of(cfg: Mapping[str, str]) -> Members:
    return frozenset(x for x, k in cfg.items() if k != "none")


def is_quorum_of(members: Members, group: Iterable[str]) -> bool:
    """The spec's IsQuorumOf: a strict majority of the members (non-members' votes do
    not count)."""
    return 2 * len(members.intersection(group)) > len(members)


def quorums_intersect(m1: Members, m2: Members) -> bool:
    """The spec's QuorumsIntersect: no majority of m1 is disjoint from a majority of m2.

    The disjoint pair that needs fewest shared members takes every non-shared member
    first; it exists iff the shared ones suffice for both."""
    shared = len(m1 & m2)
    need1 = max(0, len(m1) // 2 + 1 - (len(m1) - shared))
    need2 = max(0, len(m2) // 2 + 1 - (len(m2) - shared))
    return need1 + need2 > shared


def _show_change(c: Change) -> str:
    return f"{c.op} {c.who}" + (f" as {c.kind}" if c.kind else "")


class Monitor:
    def __init__(self, members: Mapping[str, str] | Iterable[str], lease_dur_us: int,
                 lease_margin_us: int, *, peer_confirm: bool | None = None) -> None:
        """``members``: every replica id of the run and its kind at the start
        (``"storage"``, ``"log"``, or ``"none"`` for a spare that may join), as
        ``conformance.trace_loader.member_kinds`` reads it from config.json; a plain
        iterable of ids means all of them storage replicas.

        ``peer_confirm``: whether the run's replicas confirm a suspicion with their
        peers before an election (config.json ``replica_config.peer_confirm``; see
        ``conformance.trace_loader.run_flags``). None: unknown, taken to be on from the
        first event only a run with it takes (conformance/monitor_gray.py)."""
        kinds: dict[str, str] = (dict(members) if isinstance(members, Mapping)
                                 else dict.fromkeys(members, "storage"))
        for rid, kind in kinds.items():
            if kind not in KINDS:
                raise ValueError(f"replica {rid!r}: kind must be one of {', '.join(KINDS)}, "
                                 f"got {kind!r}")
        if not any(k != "none" for k in kinds.values()):
            raise ValueError("a group needs members")
        self.initial: Config = dict(sorted(kinds.items()))
        self.members = sorted(self.initial)
        """Every replica id of the run (members and spares)."""
        self.lease_dur = lease_dur_us
        self.margin = lease_margin_us
        init_members = members_of(self.initial)
        self.arch = _Archive()
        """The settled slots' commands and ops (``_settle``)."""
        self._rid_bits: dict[str, int] = {}
        """Request id -> its bits in the id sets (``_RidSet``)."""
        self.r: dict[str, _Replica] = {}
        for i, (n, k) in enumerate(self.initial.items()):
            self.r[n] = _Replica(kind0=k, tree=k == "storage", base_cfg=dict(self.initial),
                                 view=dict(self.initial), members=init_members,
                                 log=_Log(self.arch), applied=_Applied(self.arch),
                                 applied_set=_RidSet(self._rid_bits, 4 << i))
        self.seq: dict[str, int] = {}
        self.votes: dict[tuple[int, int], dict[CmdId, set[str]]] = {}
        self.chosen = _Chosen(self.arch)
        """Slot -> (command, the ballot it was first chosen in)."""
        self.ballots: dict[int, _Ballot] = {}
        self.promises: dict[int, dict[str, _Report]] = {}  # ballot -> acceptor -> report
        self.changes: dict[str, Change] = {}  # rid -> change, for every change seen
        self.named: set[str] = set()  # ids named by a change anyone proposed
        self.removed: set[str] = set()  # ids a proposed change removed
        self.killed: set[str] = set()
        self.acked = _RidSet(self._rid_bits, 1)
        """Acknowledged (committed) client writes."""
        self.acked_changes = _RidSet(self._rid_bits, 2)
        """Acknowledged configuration changes."""
        self.acked_slots = _SlotMap(self.arch)
        """Slot -> the acknowledged write committed there."""
        self.prefix = 0  # the chosen prefix is 1..prefix
        self.chosen_cfg: Config = dict(self.initial)
        self.chosen_members: Members = init_members
        self.chosen_change_slots: list[int] = []
        self.leaders: set[str] = set()
        self.violations: list[Violation] = []
        self.warnings: list[Violation] = []
        """What may be a violation but is not certain under the clocks' error bounds
        (format 4 only: conformance/fleet_check.py); never an exit 1."""
        self.bounds: tuple[int, int] | None = None
        """Format 4: the current step's true-time interval [clock - err, clock + err]
        (tightened along its node's file); None for a simulated trace with ``real``."""
        self.events = 0
        self._reported: set[tuple[Any, ...]] = set()
        self._where = ""
        self._event: Any = None
        self._action = ""
        self.gray = GrayRules(self, peer_confirm)
        """Failure detection, link faults and lease handoff (conformance/monitor_gray.py)."""
        self.steps = StepRules(self)
        """Each step's enabling condition (conformance/monitor_steps.py)."""
        self._rules: dict[type, Rule] = {}
        for a in TRACED:
            rule = getattr(self, "_on_" + a.name, None) or getattr(self.gray, "_on_" + a.name,
                                                                   None)
            if rule is None:
                raise TypeError(f"the monitor has no rule for {a.name}")
            self._rules[EVENT_TYPES[a.name]] = rule
            self._rules[PROD_EVENT_TYPES[a.name]] = rule  # format 4: no `real`, an `err`

    # --- configuration ---------------------------------------------------------------

    def _key(self, c: Cmd | None) -> CmdId:
        """A command's id, remembering what a change does."""
        if c is None:
            return None
        if isinstance(c.change, Change):
            was = self.changes.setdefault(c.rid, c.change)
            if was != c.change:
                # Commands are told apart by id in everything below (Agreement compares
                # ids): two different changes under one id would pass as one command.
                self._fail("ConfigSafety", f"two different configuration commands carry "
                                           f"the id {c.rid!r}: {_show_change(was)} and "
                                           f"{_show_change(c.change)} (an id is never "
                                           f"reused: traces/FORMAT.md)")
        return c.rid

    def _apply_changes(self, cfg: Config, cmds: Iterable[CmdId]) -> Config:
        for c in cmds:
            ch = self.changes.get(c) if c is not None else None
            if ch is not None:
                cfg[ch.who] = new_kind(ch)
        return cfg

    def _recompute_view(self, rep: _Replica) -> None:
        slots = sorted(s for s in rep.cfg_slots if s > rep.base)
        rep.view = self._apply_changes(dict(rep.base_cfg), (rep.cfg_slots[s] for s in slots))
        rep.members = members_of(rep.view)

    def _write_log(self, rep: _Replica, s: int, b: int, c: CmdId, op: bytes) -> None:
        rep.log.put(s, b, c, op)
        was = rep.cfg_slots.pop(s, None)
        if c is not None and c in self.changes:
            rep.cfg_slots[s] = c
            self._recompute_view(rep)
        elif was is not None:
            self._recompute_view(rep)

    def view(self, name: str) -> Config:
        """The spec's View(r): a leader's, of its proposals; anyone else's, of its log."""
        rep = self.r[name]
        if rep.role == "leader" and rep.lead is not None:
            return self._leader_view(rep.lead)
        return rep.view

    def view_members(self, name: str) -> Members:
        rep = self.r[name]
        if rep.role == "leader" and rep.lead is not None:
            self._leader_view(rep.lead)
            return rep.lead.view_members
        return rep.members

    def _leader_view(self, bal: _Ballot) -> Config:
        if bal.view is None:
            merged = {s: bal.rec[s] for s in bal.rec_changes}
            merged.update((s, c) for s, c in bal.prop.items() if s in merged or self._is_change(c))
            bal.view = self._apply_changes(dict(bal.base_cfg),
                                           (merged[s] for s in sorted(merged) if s > bal.base))
            bal.view_members = members_of(bal.view)
        return bal.view

    def _is_change(self, c: CmdId | int) -> bool:
        return isinstance(c, str) and c in self.changes

    def chosen_cfg_through(self, n: int) -> Config:
        """The configuration of the chosen prefix through slot n (n <= prefix)."""
        return self._apply_changes(dict(self.initial),
                                   (self.chosen[s][0] for s in self.chosen_change_slots if s <= n))

    def is_quorum(self, group: set[str], name: str | None = None) -> bool:
        """A quorum of ``name``'s view (default: of the chosen configuration)."""
        m = self.chosen_members if name is None else self.view_members(name)
        return is_quorum_of(m, group)

    # --- helpers ---------------------------------------------------------------------

    def _fail(self, prop: str, message: str) -> None:
        self.violations.append(Violation(prop, message, self._event, self._where, self._action))

    def _warn(self, prop: str, message: str) -> None:
        self.warnings.append(Violation(prop, message, self._event, self._where, self._action))

    def _step_down(self, rep: _Replica) -> None:
        if rep.role == "candidate":
            self.promises.pop(rep.ballot, None)  # its promises are dead (spec Dead(m))
        rep.role = "follower"
        rep.leases = {}
        rep.wait_until = 0
        rep.lead = None
        rep.relinquished = False

    def _raise_ballot(self, rep: _Replica, b: int) -> None:
        if b > rep.ballot:
            self._step_down(rep)
        rep.ballot = max(rep.ballot, b)

    def _ballot(self, b: int) -> _Ballot:
        bal = self.ballots.get(b)
        if bal is None:
            arch = self.arch
            bal = _Ballot(0, dict(self.initial), _SlotMap(arch), _PairSet(arch), _SlotMap(arch))
            bal.points = [(0, members_of(bal.base_cfg))]
            self.ballots[b] = bal
        return bal

    def _rebuild_points(self, bal: _Ballot) -> None:
        cfg = dict(bal.base_cfg)
        points = [(bal.base, members_of(cfg))]
        for t in sorted(bal.prop):
            c = bal.prop[t]
            ch = self.changes.get(c) if c is not None else None
            if ch is not None and t > bal.base:
                cfg[ch.who] = new_kind(ch)
                points.append((t, members_of(cfg)))
        bal.points = points

    def _proposed(self, b: int, s: int, c: CmdId, *, leader: bool = True) -> None:
        """Ballot b proposed c at slot s (a 2a message): ProposedSeq(b) grows. An
        acceptor's copy (``leader=False``) only fills in a slot the leader's events did
        not show."""
        bal = self._ballot(b)
        old = bal.prop.get(s, 0)  # 0: never a command id
        if old == c or (not leader and s in bal.prop):
            return
        bal.prop[s] = c
        bal.top = max(bal.top, s)
        if self._is_change(c) or self._is_change(old) or self._is_change(bal.rec.get(s)):
            bal.view = None
        if self._is_change(c) or self._is_change(old):
            self._rebuild_points(bal)
            for t in sorted(bal.pending):  # a configuration may make earlier votes count
                if t <= s:
                    for cmd, voters in list(self.votes.get((b, t), {}).items()):
                        self._check_chosen(b, t, cmd, voters)

    def _chosen_in(self, bal: _Ballot, s: int, voters: set[str]) -> bool:
        """ChosenTriples: voters are a quorum of ballot b's configuration through some
        proposed slot n >= s."""
        top = max(bal.top, s)
        at_s = bal.points[0][1]
        for n, m in bal.points:
            if n <= s:
                at_s = m
            elif n <= top and is_quorum_of(m, voters):
                return True
        return is_quorum_of(at_s, voters)

    def _check_chosen(self, b: int, s: int, c: CmdId, voters: set[str]) -> None:
        bal = self._ballot(b)
        if (s, c) in bal.chosen:
            return
        if not self._chosen_in(bal, s, voters):
            bal.pending.add(s)
            return
        bal.chosen.add((s, c))
        bal.pending.discard(s)
        prev = self.chosen.get(s)
        if prev is None:
            self.chosen[s] = (c, b)
            self._extend_prefix()
        elif prev[0] != c:
            self._fail("Agreement", f"slot {s} chosen with {prev[0]!r} in ballot {prev[1]} "
                                    f"and with {c!r} in ballot {b}")

    def _extend_prefix(self) -> None:
        changed = False
        while self.prefix + 1 in self.chosen:
            self.prefix += 1
            c = self.chosen[self.prefix][0]
            ch = self.changes.get(c) if c is not None else None
            if ch is not None:
                self.chosen_change_slots.append(self.prefix)
                self.chosen_cfg[ch.who] = new_kind(ch)
                changed = True
        if changed:
            self.chosen_members = members_of(self.chosen_cfg)
            for s, w in self.acked_slots.items():
                if w is not None:  # (never: a NoOp is not acknowledged)
                    self._check_survives(s, w)

    def _settle(self) -> None:
        """Settle the chosen slots up to the watermark (a batch at a time).

        Settling is a change of representation (the ``_Archive`` note above): any chosen
        slot may settle, and every structure answers as before. The watermark only keeps
        the hot slots out of it (their reads stay dict lookups): the slots every live
        replica with a B-tree has applied, and at most ``SETTLE_LAG`` behind the chosen
        prefix (so that a replica that is down, or has no B-tree, holds up nothing).

        What settling drops: the votes of slot s in ballot b once b chose s's command, no
        other command has votes there, and either b's leader committed s (a Commit line
        of (b, s)) or b is dead (every replica not killed has promised a higher ballot)
        (``_votes_dropped``). What reads them: a Commit of (b, s), the sequencer's
        readiness of one, and the chosen-ness of (b, s) (which is kept). A correct run
        commits (b, s) once, and only while b's leader leads b: any other Commit of it is
        StepRules' violation ("commits ... again", "commits ... while follower ..."), and
        only that step's quorum check is skipped (``_on_Commit``). (A replica's ballot only
        grows but in a step that is itself a violation: Phase1a or Phase1b of a lower
        ballot.) A late 2b vote for it changes nothing a check reads: it is not stored
        (``_vote``)."""
        n = self.prefix
        top = self.arch.top
        if n - top < SETTLE_BATCH:
            return
        floor = min((len(x.applied) for x in self.r.values() if x.tree and not x.killed),
                    default=n)
        target = max(min(n, floor), n - SETTLE_LAG)
        if target - top < SETTLE_BATCH:
            return
        for s in range(top + 1, target + 1):
            self._settle_slot(s)
        for x in self.r.values():
            x.applied.fold(target)

    def _settle_slot(self, s: int) -> None:
        c = self.chosen.d[s][0]
        # The settled op: a log entry's of the chosen command (in a correct run every
        # copy has the same op: a 2b of other bytes is StepRules' Phase2b violation). Any
        # choice is exact: an entry with other bytes stays as it is (``_Log.odd``).
        op = next((x.log.ops.get(s, b"") for x in self.r.values()
                   if x.log.tail.get(s, (0, 0))[1] == c), b"")
        self.chosen.settle(s, op)
        for x in self.r.values():
            x.log.settle(s)
        for b, bal in self.ballots.items():
            bal.prop.settle(s)
            bal.chosen.settle(s)
            bal.rec.settle(s)
            self._drop_votes(b, s)
        self.acked_slots.settle(s)
        self.steps.settle(s)

    def _drop_votes(self, b: int, s: int) -> None:
        votes = self.votes.get((b, s))
        if votes is not None and len(votes) == 1:
            c = next(iter(votes))
            if c == self.arch.cmd[s - 1] and self._votes_dropped(b, s, c):
                del self.votes[(b, s)]

    def _votes_dropped(self, b: int, s: int, c: CmdId) -> bool:
        """The votes of settled slot s in ballot b for c are not kept (``_settle``): b
        chose (s, c), has no other command pending there, and its leader committed s or
        b is dead."""
        bal = self.ballots.get(b)
        return (bal is not None and (s, c) in bal.chosen and s not in bal.pending
                and ((b, s) in self.steps.commits
                     or all(x.ballot > b for x in self.r.values() if not x.killed)))

    def _vote(self, a: str, b: int, s: int, c: CmdId) -> None:
        if s <= self.arch.top and (b, s) not in self.votes and self._votes_dropped(b, s, c):
            return  # a late vote for a slot its ballot chose and committed (``_settle``)
        voters = self.votes.setdefault((b, s), {}).setdefault(c, set())
        voters.add(a)
        self._check_chosen(b, s, c, voters)
        if s <= self.arch.top:  # (a settled slot chosen again, in a later ballot)
            self._drop_votes(b, s)

    def _propose(self, r: str, b: int, s: int, c: CmdId, op: bytes = b"") -> None:
        prev = self.chosen.get(s)
        if prev is not None and prev[1] < b and prev[0] != c:
            prop = "Durability" if self._is_acked(prev[0]) else "Agreement"
            self._fail(prop, f"{r} proposes {c!r} at slot {s} in ballot {b}, but {prev[0]!r} "
                             f"was chosen there in ballot {prev[1]}")
        rep = self.r[r]
        self._proposed(b, s, c)
        self._write_log(rep, s, b, c, op)
        self._vote(r, b, s, c)

    def _is_acked(self, c: CmdId) -> bool:
        return c is not None and bool(self._rid_bits.get(c, 0) & 3)  # acked, acked_changes

    def _holders(self, s: int, c: str) -> set[str]:
        """Replicas whose durable log holds c at s, or whose B-tree has applied it."""
        out = set()
        for name, rep in self.r.items():
            e = rep.log.get(s)
            if (e is not None and e[1] == c) or (
                    rep.tree and len(rep.applied) >= s and rep.applied[s - 1] == c):
                out.add(name)
        return out

    def _check_survives(self, s: int, c: str, m: Members | None = None,
                        what: str = "the chosen configuration") -> None:
        """AckedSurvivesReplacement for acknowledged write c at slot s, in configuration
        m (default: the chosen one)."""
        m = self.chosen_members if m is None else m
        non = m - self._holders(s, c)
        if 2 * len(non) <= len(m) - 1:
            return  # no removal of one member leaves the non-holders a quorum
        for x in sorted(m):
            without = m - {x}
            if is_quorum_of(without, non - {x}):
                key = ("survives", s, x, m)
                if key not in self._reported:
                    self._reported.add(key)
                    self._fail("AckedSurvivesReplacement",
                               f"acknowledged write {c!r} (slot {s}) is held by "
                               f"{sorted(m - non)} only: without {x}, the members "
                               f"{sorted(non - {x})} of {what} {sorted(m)} form a quorum "
                               f"that lacks it")
                return

    def clock_at(self, name: str, real: int) -> int | None:
        """``name``'s clock at real time ``real``, from its latest event (rate 1 after it)."""
        rep = self.r[name]
        if rep.last_real is None:
            return None
        return rep.last_clock + (real - rep.last_real)

    def _lease_quorum(self, name: str, rep: _Replica, clock: int) -> bool:
        if not any(t + self.lease_dur > clock for t in rep.leases):
            return False
        m = self.view_members(name)
        return any(t + self.lease_dur > clock and is_quorum_of(m, g)
                   for t, g in rep.leases.items())

    def lease_believers(self, real: int) -> list[str]:
        out = []
        for name in sorted(self.leaders):
            rep = self.r[name]
            if rep.out or rep.killed:
                continue
            clock = self.clock_at(name, real)
            if clock is None or clock < rep.wait_until or rep.relinquished:
                continue
            if self._lease_quorum(name, rep, clock):
                out.append(name)
        return out

    def holds_lease(self, name: str, clock: int) -> bool:
        """The spec's HoldsLease: a leader past its wait, with a quorum's grants of a
        request still running on its clock, that has not relinquished its lease."""
        rep = self.r[name]
        return (rep.role == "leader" and clock >= rep.wait_until and not rep.relinquished
                and self._lease_quorum(name, rep, clock))

    def is_storage(self, name: str) -> bool:
        """The spec's IsStorage(r): a storage member of its own view, with a B-tree."""
        return self.view(name).get(name, "none") == "storage" and self.r[name].tree

    # --- ConfigSafety, after every step -------------------------------------------------

    def can_decide(self, name: str) -> bool:
        """The spec's CanDecide(r): r leads, and enough of its view's members have
        promised no higher ballot to form a quorum of it."""
        rep = self.r[name]
        if rep.role != "leader":
            return False
        m = self.view_members(name)
        return is_quorum_of(m, (a for a in m if a in self.r and self.r[a].ballot <= rep.ballot))

    def _check_config_safety(self) -> None:
        cfgs: dict[Members, str] = {self.chosen_members: "the chosen configuration"}
        for name in sorted(self.leaders):
            m = self.view_members(name)
            if m not in cfgs and self.can_decide(name):
                cfgs[m] = f"{name}'s view (ballot {self.r[name].ballot})"
        if len(cfgs) < 2:
            return
        for (m1, w1), (m2, w2) in combinations(cfgs.items(), 2):
            if not quorums_intersect(m1, m2):
                key = ("config", m1, m2)
                if key not in self._reported:
                    self._reported.add(key)
                    self._fail("ConfigSafety", f"{w1} {sorted(m1)} and {w2} {sorted(m2)} can "
                                               f"both form quorums, and some of their "
                                               f"quorums are disjoint")

    # --- the step ----------------------------------------------------------------------

    def step(self, ev: Any, where: str = "", *,
             bounds: tuple[int, int] | None = None) -> list[Violation]:
        """Fold one typed event in and check the properties; returns the new violations.

        ``bounds``: a format-4 event's true-time interval (it has no ``real``). Its
        ``seq`` counts its node's lines over every group, so a group's events skip
        numbers: the fleet reader checks seq per node (conformance/fleet_input.py)."""
        self._where, self._event, self.bounds = where, ev, bounds
        before = len(self.violations)
        rule = self._rules.get(type(ev))
        if rule is None:
            raise ValueError(f"{where or 'event'}: not a trace event: {ev!r}")
        action = self._action = ACTION_OF[type(ev)]
        self.events += 1
        name = ev.replica
        rep = self.r.get(name)
        if rep is None:
            raise ValueError(f"{where or 'event'}: replica {name!r} is not a member "
                             f"({', '.join(self.members)})")
        seq = ev.seq
        last = self.seq.get(ev.node, 0)
        if seq != last + 1 and bounds is None:
            raise ValueError(f"{where or 'event'}: {ev.node} seq {seq} follows {last}")
        self.seq[ev.node] = seq
        if rep.killed:
            key = ("killed", name)
            if key not in self._reported:
                self._reported.add(key)
                self._fail("Agreement", f"{name} takes a step after it was killed: its disk "
                                        f"is gone, so an incarnation acting under its id "
                                        f"has forgotten its promises and votes")
        real = getattr(ev, "real", None)  # format 4 has none
        clock = ev.clock
        # The enabling condition is judged on the state before the step; what it finds is
        # reported after what the rule finds (the property a bad step breaks comes first).
        args = ev.args
        violations = self.violations
        mark = len(violations)
        self.steps.before(action, name, rep, args, clock)
        if len(violations) > mark:
            guards = violations[mark:]
            del violations[mark:]
            rule(name, rep, args, clock)
            violations += guards
        else:
            rule(name, rep, args, clock)
        self.steps.after(action, name, rep, args, clock)
        self.gray.after_step(name, rep, getattr(ev, "post", None), clock)
        if rep.role == "leader":
            self.leaders.add(name)
        else:
            self.leaders.discard(name)
        self._check_config_safety()
        if real is not None:
            rep.last_real, rep.last_clock = real, clock
            believers = self.lease_believers(real)
            if len(believers) > 1:
                self._fail("LeaseExclusivity", f"{' and '.join(believers)} all believe they "
                                               f"hold a lease at real time {real}us")
        if not self.events % SETTLE_EVERY:
            self._settle()
        return violations[before:] if len(violations) > before else []

    # --- one handler per traced action -------------------------------------------------

    def _on_Phase1a(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        if not self.is_storage(node):
            self._fail("LogReplicaNeverLeads", f"{node} starts an election while "
                                               f"{self._kind_text(node)}")
        self.gray.phase1a(node, rep, a.b, clock)
        self._step_down(rep)
        rep.ballot = a.b
        rep.role = "candidate"

    def _kind_text(self, name: str) -> str:
        kind = self.view(name).get(name, "none")
        what = {"none": "not a member", "log": "a log replica"}.get(kind, "a storage replica")
        return f"{what} in its view" + ("" if self.r[name].tree else ", without a B-tree")

    def _on_Phase1b(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        self.gray.receive(node, a.m.src, "Phase1b")
        b = a.m.bal
        self._step_down(rep)
        rep.ballot = b
        cand = self.r.get(a.m.src)
        if cand is None or (cand.role == "candidate" and cand.ballot == b):
            log = rep.log.snapshot(rep.base)
            self.promises.setdefault(b, {})[node] = _Report(rep.base, dict(rep.base_cfg), log,
                                                            rep.granted)

    def _on_BecomeLeader(self, node: str, rep: _Replica, a: Any,
                         clock: int) -> None:
        b, quorum = a.b, set(a.Q)
        got = self.promises.pop(b, {})
        reports = [_Report(rep.base, rep.base_cfg, rep.log.snapshot(rep.base), rep.granted)]
        for v in sorted(quorum - {node}):
            p = got.get(v)
            if p is None:
                self._fail("Agreement", f"{node} leads ballot {b} on a quorum {sorted(quorum)} "
                                        f"with {v}, which did not promise it {b}")
            else:
                reports.append(p)
        # Recover (over the reports' logs above the highest checkpoint N reported).
        n0 = max(p.base for p in reports)
        base_cfg = next(p.base_cfg for p in reports if p.base == n0)
        top = max((t for p in reports if (t := p.log.top()) is not None), default=n0)
        rec: dict[int, CmdId] = {}
        for s in range(n0 + 1, top + 1):
            best: tuple[int, CmdId] = (0, None)
            for p in reports:
                e = p.log.get(s)
                if e is not None and e[0] > best[0]:
                    best = e
            rec[s] = best[1]
        # Election configurations: the recovered log's, from the chosen prefix on.
        k = max(n0, min(self.prefix, top))
        cfg = self._apply_changes(dict(base_cfg), (rec[s] for s in range(n0 + 1, k + 1)))
        cfgs = [dict(cfg)]
        for s in range(k + 1, top + 1):
            if rec[s] is not None and rec[s] in self.changes:
                cfgs.append(dict(self._apply_changes(cfg, [rec[s]])))
        for c in cfgs:
            m = members_of(c)
            if not is_quorum_of(m, quorum):
                self._fail("Agreement", f"{node} leads ballot {b} on {sorted(quorum)}, which "
                                        f"is not a quorum of the recovered configuration "
                                        f"{sorted(m)}")
                break
        if cfg.get(node, "none") != "storage" or not rep.tree:
            kind = cfg.get(node, "none")
            what = {"none": "not a member", "log": "a log replica"}.get(kind, "storage")
            self._fail("LogReplicaNeverLeads", f"{node} leads ballot {b} while {what} in the "
                                               f"configuration it recovered"
                                               + ("" if rep.tree else ", without a B-tree"))
        # Durability: every acknowledged write chosen above N in an earlier ballot is
        # recovered (the new leader will propose it).
        for s, w in self.acked_slots.items():
            ch = self.chosen.get(s)
            if s > n0 and ch is not None and ch[1] < b and rec.get(s) != w:
                self._fail("Durability", f"{node} leads ballot {b} having recovered "
                                         f"{rec.get(s)!r} at slot {s}, where acknowledged "
                                         f"write {w!r} was chosen in ballot {ch[1]}")
        bal = self._ballot(b)
        bal.base, bal.base_cfg, bal.leader, bal.view = n0, dict(base_cfg), node, None
        bal.rec = _SlotMap(self.arch, rec.items())
        bal.rec_changes = [s for s, c in rec.items() if self._is_change(c)]
        self._rebuild_points(bal)
        self._step_down(rep)
        rep.ballot = max(rep.ballot, b)
        rep.role = "leader"
        rep.lead = bal
        # Wait out every lease a voter granted, except those handed off to the new
        # leader (the spec's LeaseWaitNeeded with HandoffBal; a skip it does not allow
        # shows as a renewal or a lease believed during the wait, monitor_gray.py).
        wait = any(p.granted > self.gray.handoff_bal(node) for p in reports)
        rep.wait_until = clock + self.lease_dur + self.margin if wait else clock

    def _on_ClientWrite(self, node: str, rep: _Replica, a: Any,
                        clock: int) -> None:
        if not self.holds_lease(node, clock):
            self._fail("LeaseExclusivity", f"{node} takes a client write without a lease")
        self._propose(node, rep.ballot, a.s, self._key(a.c), op_bytes(a.c))

    def _on_Phase2a(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        self._propose(node, a.b, a.s, self._key(a.c), op_bytes(a.c))

    def _on_Phase2b(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        m = a.m
        self.gray.receive(node, m.src, "Phase2b")
        if m.slot > rep.base + 1 and rep.log.get(m.slot - 1, (0, None))[0] != m.bal:
            self._fail("Durability", f"{node} accepts slot {m.slot} of ballot {m.bal} without "
                                     f"slot {m.slot - 1} of that ballot: a hole in its WAL")
        self._raise_ballot(rep, m.bal)
        c = self._key(m.cmd)
        self._proposed(m.bal, m.slot, c, leader=False)
        self._write_log(rep, m.slot, m.bal, c, op_bytes(m.cmd))
        self._vote(node, m.bal, m.slot, c)

    def _change(self, node: str, rep: _Replica, a: Any, clock: int, op: str) -> None:
        """The rules every configuration change shares (the spec's MayChange), then the
        change's own validity in the leader's view, then the append."""
        c: Change = a.c
        x = c.who
        if c.op != op:
            raise ValueError(f"{self._where or 'event'}: {op} event carries a {c.op!r} change")
        if not self.holds_lease(node, clock):
            self._fail("LeaseExclusivity", f"{node} proposes {op} {x} without a lease")
        bal = rep.lead
        if rep.role != "leader" or bal is None:
            self._fail("ConfigSafety", f"{node} proposes {op} {x} while {rep.role}")
            bal = self._ballot(rep.ballot)
        view = self._leader_view(bal)
        if bal.committed == 0:
            self._fail("ConfigSafety", f"{node} proposes {op} {x} before committing an entry "
                                       f"of its own ballot {rep.ballot}")
        merged = dict(bal.rec.items())
        merged.update(bal.prop.items())
        pending = sorted(s for s, cmd in merged.items()
                         if s > bal.base and self._is_change(cmd) and s > bal.committed)
        if pending:
            self._fail("ConfigSafety", f"{node} proposes {op} {x} while the change at slot "
                                       f"{pending[0]} ({merged[pending[0]]!r}) is not "
                                       f"committed: two changes in flight")
        kind = view.get(x, "none")
        found_before = len(self.violations)
        if op == "add":
            # A killed id that was never a member may still be added: the leader cannot
            # know the node died, and adding a dead incarnation is useless, not unsafe.
            old = (self.initial.get(x, "none") != "none" or x in self.removed
                   or x not in self.r)
            if kind != "none":
                self._fail("ConfigSafety", f"{node} adds {x}, already a {kind} member of "
                                           f"its view")
            elif old:
                why = "not a replica id of the run" if x not in self.r else "a member before"
                self._fail("Agreement", f"{node} adds {x} ({why}): an old incarnation, not a "
                                        f"fresh one")
            if c.kind == "storage" and x in self.r and not self.r[x].tree:
                self._fail("LogReplicaNeverServes", f"{node} adds {x} as a storage replica "
                                                    f"before it has a B-tree")
        elif op == "remove":
            if kind == "none":
                self._fail("ConfigSafety", f"{node} removes {x}, not a member of its view")
            elif x == node:
                self._fail("ConfigSafety", f"{node} removes itself")
            self.removed.add(x)
        else:
            if kind != "log":
                self._fail("ConfigSafety", f"{node} promotes {x}, which is "
                                           f"{'not a member' if kind == 'none' else kind} "
                                           f"in its view, not a log replica")
            elif x in self.r and not self.r[x].tree:
                self._fail("LogReplicaNeverServes", f"{node} promotes {x}, which has not "
                                                    f"installed a B-tree snapshot")
        # The spec's KeepsStorageMajority: slots below a checkpoint live only in B-trees.
        # (Checked for a change that is otherwise valid: one report per bug.)
        new = c.kind if op == "add" else "none" if op == "remove" else "storage"
        after = [k for k in {**view, x: new}.values() if k != "none"]
        if len(self.violations) == found_before and 2 * after.count("storage") <= len(after):
            self._fail("AckedSurvivesReplacement",
                       f"{node}'s {op} {x} leaves {after.count('storage')} storage replicas of "
                       f"{len(after)} members: losing one could lose checkpointed slots")
        self.named.add(x)
        cmd = Cmd(f"{c.op}-{x}", change=c)
        self._propose(node, rep.ballot, a.s, self._key(cmd), op_bytes(cmd))

    def _on_AddMember(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        self._change(node, rep, a, clock, "add")

    def _on_RemoveMember(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        self._change(node, rep, a, clock, "remove")

    def _on_PromoteMember(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        self._change(node, rep, a, clock, "promote")

    def _on_InstallSnapshot(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        src, upto = a.src, a.upto
        s_rep = self.r.get(src)
        if a.x != node:
            raise ValueError(f"{self._where or 'event'}: InstallSnapshot of {a.x} on {node}'s "
                             f"line")
        if s_rep is None:
            raise ValueError(f"{self._where or 'event'}: snapshot source {src!r} is not a "
                             f"replica of the run")
        if rep.tree:
            self._fail("StateMachineSafety", f"{node} installs a snapshot over the B-tree it "
                                             f"has")
        if src == node or not s_rep.tree:
            self._fail("StateMachineSafety", f"{node} installs a snapshot of {src}, which has "
                                             f"no B-tree")
        have = s_rep.applied[:upto]
        if upto > len(s_rep.applied):
            have = have + [MISSING] * (upto - len(s_rep.applied))
            self._snapshot_misses(node, src, range(len(s_rep.applied) + 1, upto + 1),
                                  f"covering slots 1..{upto}, but {src} had applied only "
                                  f"{len(s_rep.applied)}")
        if upto < rep.base:
            self._snapshot_misses(node, src, range(upto + 1, rep.base + 1),
                                  f"covering slots 1..{upto}, but its log starts after its "
                                  f"checkpoint at {rep.base}")
        self._set_applied(rep, list(have))
        rep.tree = True

    def _set_applied(self, rep: _Replica, applied: list[CmdId]) -> None:
        rep.applied = _Applied(self.arch, applied)
        rep.applied_set.clear()
        for c in applied:
            if c is not None:
                rep.applied_set.add(c)
        rep.applied_acked = sum(1 for c in rep.applied_set if self._is_acked(c))

    def _snapshot_misses(self, node: str, src: str, slots: range, why: str) -> None:
        lost = [(s, self.acked_slots[s]) for s in slots if s in self.acked_slots]
        if lost:
            self._fail("AckedSurvivesReplacement", f"{node} installs a snapshot of {src} {why}: "
                                                   f"acknowledged write {lost[0][1]!r} (slot "
                                                   f"{lost[0][0]}) is in neither")
        else:
            self._fail("StateMachineSafety", f"{node} installs a snapshot of {src} {why}")

    def _on_Commit(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        b, s = a.b, a.s
        entry = rep.log.get(s)
        if entry is None or entry[0] != b:
            self._fail("Durability", f"{node} commits slot {s} of ballot {b}, which its log "
                                     f"does not hold")
            return
        c = entry[1]
        bal = rep.lead if rep.lead is not None and rep.ballot == b else self._ballot(b)
        # (A slot the leader has applied is owed no proposal: the spec's SkipApplied.)
        unproposed = [t for t in bal.rec_changes if t not in bal.prop and t > len(rep.applied)]
        if unproposed:
            self._fail("Durability", f"{node} commits slot {s} before re-proposing the "
                                     f"configuration command it recovered at slot "
                                     f"{unproposed[0]}")
        m = members_of(self._leader_view(bal))
        voters = self.votes.get((b, s), {}).get(c, set())
        if s <= self.arch.top and (b, s) not in self.votes and self._votes_dropped(b, s, c):
            pass  # StepRules reported this Commit (again, or not by b's leader): ``_settle``
        elif not is_quorum_of(m, voters):
            self._fail("Durability", f"{node} commits slot {s} ({c!r}) with votes from "
                                     f"{sorted(voters)}: not a quorum of its view "
                                     f"{sorted(m)}")
        if bal.leader == node or bal.leader is None:
            bal.committed = max(bal.committed, s)
        if s <= self.arch.top:  # (a slot settled before its commit: ``_settle``)
            self._drop_votes(b, s)
        if c is None:
            return
        ch = self.chosen.get(s)
        if ch is not None and ch[0] == c:
            c = ch[0]  # the slot's one string (memory)
        if not self._is_acked(c):
            for other in self.r.values():
                if c in other.applied_set:
                    other.applied_acked += 1
        if c in self.changes:
            self.acked_changes.add(c)
            return
        self.acked.add(c)
        self.acked_slots[s] = c
        if self.chosen.get(s, (None,))[0] == c:
            self._check_survives(s, c, m, f"{node}'s view")

    def _on_Apply(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        s, c = a.s, self._key(a.c)
        if not rep.tree:
            self._fail("StateMachineSafety", f"{node} applies slot {s} without a B-tree (a "
                                             f"log replica never applies)")
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
        if chosen is not None and chosen[0] == c:
            c = chosen[0]  # the slot's one string (memory: every replica applies it)
        rep.applied.append(c)
        if c is not None and c not in rep.applied_set:
            rep.applied_set.add(c)
            if self._is_acked(c):
                rep.applied_acked += 1

    def _on_LeaseRenew(self, node: str, rep: _Replica, a: Any,
                       clock: int) -> None:
        if rep.role != "leader":
            self._fail("LeaseExclusivity", f"{node} asks for a lease while {rep.role}")
        self.gray.renew(node, rep, a.start, clock)
        rep.leases = {t: g for t, g in rep.leases.items() if t + self.lease_dur > clock}
        rep.leases[a.start] = {node}

    def _on_LeaseGrant(self, node: str, rep: _Replica, a: Any,
                       clock: int) -> None:
        m = a.m
        self.gray.grant(node, m, clock)
        self._raise_ballot(rep, m.bal)
        rep.granted = m.bal
        leader = self.r.get(m.src)
        if leader is not None and leader.role == "leader" and leader.ballot == m.bal:
            grantors = leader.leases.get(m.start)
            if grantors is not None:
                grantors.add(node)

    def _on_StrongRead(self, node: str, rep: _Replica, a: Any,
                       clock: int) -> None:
        if not self.is_storage(node):
            self._fail("LogReplicaNeverServes", f"{node} serves a strong read while "
                                                f"{self._kind_text(node)}")
        if rep.role == "leader" and rep.relinquished:
            self._fail("LeaseExclusivity", f"{node} serves a strong read in ballot "
                                           f"{rep.ballot} after relinquishing its lease "
                                           f"(served after relinquishing)")
        elif not self.holds_lease(node, clock):
            self._fail("Linearizability", f"{node} serves a strong read without a lease")
        if rep.applied_acked < len(self.acked) + len(self.acked_changes):
            have = rep.applied_set
            missing = {c for c in [*self.acked, *self.acked_changes] if c not in have}
            self._fail("Linearizability", f"{node} serves a strong read before applying "
                                          f"acknowledged commands {sorted(missing)[:3]}")

    def _on_EventualRead(self, node: str, rep: _Replica, a: Any,
                         clock: int) -> None:
        if not self.is_storage(node):
            self._fail("LogReplicaNeverServes", f"{node} serves an eventual read while "
                                                f"{self._kind_text(node)}")
        n = len(rep.applied)
        if n and self.chosen.get(n, (object(),))[0] != rep.applied[-1]:
            self._fail("EventualReadsCommitted", f"{node} serves an eventual read from an "
                                                 f"applied state that is not committed")

    def _on_Crash(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        self._step_down(rep)
        self.gray.crash(node)

    def _on_Restart(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        self._step_down(rep)
        self.gray.crash(node)
        top = max(rep.base, rep.log.top() or 0)
        got = (a.ballot, a.granted, a.applied, a.log)
        want = (rep.ballot, rep.granted, len(rep.applied), top)
        if got != want:
            self._fail("Durability", f"{node} restarted with (ballot, granted, applied, log) "
                                     f"= {got}, but its steps made {want} durable")
        else:
            digest = log_digest((s, b, c or "", rep.log.op(s))
                                for s, b, c in rep.log.entries(rep.base))
            if digest != a.digest:
                self._fail("Durability", f"{node} restarted with a log that differs from the "
                                         f"one its steps wrote (digest {a.digest}, "
                                         f"expected {digest})")

    def _on_Quarantine(self, node: str, rep: _Replica, a: Any,
                       clock: int) -> None:
        self._step_down(rep)
        rep.out = True

    def _on_Kill(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        """The node is gone for good. Its log still counts where the spec's would (the
        spec's dead replica keeps its state and takes no steps); it must take none."""
        self._step_down(rep)
        rep.killed = True
        self.killed.add(node)

    def _on_Checkpoint(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        upto = a.upto
        if upto <= rep.base:
            return
        if rep.tree and upto > len(rep.applied):
            self._fail("Durability", f"{node} truncates its WAL through slot {upto}, but its "
                                     f"B-tree has applied only {len(rep.applied)}")
        if upto > self.prefix:
            self._fail("Durability", f"{node} truncates its WAL through slot {upto}, but only "
                                     f"slots 1..{self.prefix} are chosen")
        held = rep.log.count(rep.base, upto)
        if a.truncated != held:
            self._fail("Durability", f"{node} dropped {a.truncated} WAL entries at its "
                                     f"checkpoint {upto}, but its log held {held} there")
        if upto <= self.prefix:
            rep.base_cfg = self.chosen_cfg_through(upto)
        else:
            cfg = dict(rep.base_cfg)
            rep.base_cfg = self._apply_changes(
                cfg, (rep.cfg_slots[s] for s in sorted(rep.cfg_slots) if rep.base < s <= upto))
        rep.base = upto
        self._recompute_view(rep)
