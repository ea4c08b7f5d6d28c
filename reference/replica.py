"""One replica of a replication group as a sans-IO state machine.

The handlers are the actions of specs/Replication.tla, with the same names (in
snake_case) and parameters, and the same enabling conditions. A handler whose
condition is false changes nothing and returns ``[]`` (client operations return a
``Reply`` with an error instead). Handlers that change state return the
``Effect``s the driver must carry out, in order: a ``Persist`` must be durable
before any ``Send``/``Broadcast``/``Reply`` that follows it, because a promise or
vote that was sent but not persisted could be forgotten by a crash.

The spec reads a global set of messages ``msgs``; a replica only knows what it
has sent and received. The spec's predicates over ``msgs`` become local
knowledge gathered by the ``receive_*`` methods (reference/pump.py delivers):

* ``Proposed(b, s)``/``Committed(b, s)`` for the replica's own ballot: only the
  ballot's leader sends 2a and commit messages for it, and it does so in slot
  order, so two counters (``proposed_upto``, ``committed_upto``) are exact;
* ``Votes2b``: 2b votes the leader received, per slot;
* ``KnownCommitted``: commit messages received (or sent), as (ballot, slot);
* ``LeaseGrantors``: lease grants received, per lease request ``start``.

Time: handlers take ``now_us``, the replica's local clock. Instead of the spec's
count-downs (``waitLeft``, a lease message's ``left``) the replica keeps absolute
local deadlines; ``waitLeft = max(0, wait_until - now)`` and a lease request's
``left = max(0, start + LeaseDur - now)``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeAlias

from reference.actions import spec_action
from reference.messages import (
    EMPTY,
    Cmd,
    Command,
    CommitMsg,
    Entry,
    Kind,
    LeaseAckMsg,
    LeaseMsg,
    LeaseNotHeld,
    Message,
    NotLeader,
    NotReady,
    NotStorage,
    Phase1aMsg,
    Phase1bMsg,
    Phase2aMsg,
    Phase2bMsg,
    ReadResult,
    ReplyResult,
    Role,
)
from reference.storage import (
    DecodeError,
    Invalid,
    Key,
    KeySchema,
    Result,
    StorageEngine,
    WriteOp,
    decode_op,
)
from reference.trace_events import PostState

# --- effects -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    dst: str
    msg: Message


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Send ``msg`` to every other member (kind other than ``"none"``)."""

    msg: Message


@dataclass(frozen=True, slots=True)
class Persist:
    """Make durable state ``what`` ("ballot", "log", "granted", "applied") stable.

    ``slot`` names the log slot written, for ``what == "log"``.
    """

    what: str
    slot: int | None = None


@dataclass(frozen=True, slots=True)
class Apply:
    slot: int
    cmd: Cmd


@dataclass(frozen=True, slots=True)
class Reply:
    request_id: str
    result: ReplyResult


@dataclass(frozen=True, slots=True)
class SetTimer:
    """Call back (e.g. ``pump``) when the local clock reaches ``at_local_us``."""

    name: str
    at_local_us: int


Effect: TypeAlias = Send | Broadcast | Persist | Apply | Reply | SetTimer

# --- configuration -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplicaConfig:
    lease_dur_us: int
    lease_margin_us: int
    max_drift_us: int
    renew_ahead_us: int

    def __post_init__(self) -> None:
        if self.lease_dur_us <= 0:
            raise ValueError("lease_dur_us must be > 0")
        if self.max_drift_us < 0:
            raise ValueError("max_drift_us must be >= 0")
        # The spec's lease safety condition, LeaseMargin >= 2 * MaxDrift, where the
        # spec's MaxDrift is the width of the window clocks stay in: 2 * max_drift_us
        # for clocks within +/- max_drift_us. The old lease and the new leader's wait
        # are each measured on one clock, and each may be off by that width in real
        # time (a clock can run from one edge of the window to the other meanwhile).
        if self.lease_margin_us < 4 * self.max_drift_us:
            raise ValueError("lease_margin_us must be >= 4 * max_drift_us (twice the "
                             "width of the +/- max_drift_us window)")
        # RenewAhead < LeaseDur, or a fresh lease would already be due for renewal.
        if not 0 <= self.renew_ahead_us < self.lease_dur_us:
            raise ValueError("renew_ahead_us must be in [0, lease_dur_us)")


DEFAULT_SCHEMA = KeySchema("pk")


@functools.lru_cache(maxsize=4096)
def decode_write(op: bytes) -> WriteOp:
    """Every replica decodes the same command bytes; ops are immutable, so share the work."""
    return decode_op(op)


@dataclass(slots=True)
class _Volatile:
    """State lost on a crash (the spec's volatileVars plus local knowledge)."""

    role: Role = "follower"
    proposals: list[Cmd] = field(default_factory=list)
    read_barrier: int = 0
    wait_until: int = 0
    proposed_upto: int = 0
    committed_upto: int = 0
    votes: dict[int, set[str]] = field(default_factory=dict)
    promises: dict[str, Phase1bMsg] = field(default_factory=dict)
    lease_grants: dict[int, set[str]] = field(default_factory=dict)
    known_commits: set[tuple[int, int]] = field(default_factory=set)
    proposal_rids: set[str] = field(default_factory=set)
    """Request ids in ``proposals``: a retried write already proposed is not proposed again."""


class Recorded(NamedTuple):
    """One step a handler took: the spec action, its arguments, the state after it."""

    action: str
    args: dict[str, Any]
    post: PostState


class Replica:
    """A storage (or log) replica running the spec's Multi-Paxos with leader leases."""

    def __init__(
        self,
        node_id: str,
        members: dict[str, Kind],
        config: ReplicaConfig,
        *,
        schema: KeySchema = DEFAULT_SCHEMA,
    ) -> None:
        if node_id not in members:
            raise ValueError(f"{node_id!r} is not in members")
        self.node_id = node_id
        self.members: dict[str, Kind] = dict(members)
        # Membership is fixed for a replica's lifetime (no reconfiguration yet).
        self._member_ids = sorted(r for r, k in self.members.items() if k != "none")
        self._member_set = frozenset(self._member_ids)
        self.config = config
        # durable: survives crash()
        self.ballot = 0
        self.log: dict[int, Entry] = {}
        self.granted = 0
        self.applied = 0
        self.top = 0
        """Highest slot holding an entry (the log has no holes below it)."""
        self.store = StorageEngine(schema)
        # Outcome per applied request id: the at-most-once table, part of the applied state.
        self.results: dict[str, Result] = {}
        self._v = _Volatile()
        self.now_us = 0
        """The latest local time a handler or the pump was given; a step's post-state
        judges the lease at it."""
        self.events: list[Recorded] = []

    # --- views of state, named as in the spec --------------------------------------

    @property
    def role(self) -> Role:
        return self._v.role

    @property
    def proposals(self) -> list[Cmd]:
        return self._v.proposals

    @property
    def read_barrier(self) -> int:
        return self._v.read_barrier

    @property
    def wait_until(self) -> int:
        return self._v.wait_until

    @property
    def lease_grants(self) -> dict[int, set[str]]:
        """Lease request start -> replicas that granted it (self included)."""
        return self._v.lease_grants

    @property
    def committed_upto(self) -> int:
        """The spec's CommittedByLeader is 1..committed_upto."""
        return self._v.committed_upto

    @property
    def proposed_upto(self) -> int:
        return self._v.proposed_upto

    @property
    def votes(self) -> dict[int, set[str]]:
        """Leader: slot -> replicas whose 2b vote for it (in this ballot) has arrived."""
        return self._v.votes

    def entry(self, s: int) -> Entry:
        return self.log.get(s, EMPTY)

    def wait_left(self, now_us: int) -> int:
        return max(0, self._v.wait_until - now_us)

    def member_ids(self) -> list[str]:
        return list(self._member_ids)

    def is_member(self) -> bool:
        return self.members[self.node_id] != "none"

    def is_quorum(self, group: set[str]) -> bool:
        return 2 * len(group & self._member_set) > len(self._member_set)

    def is_minimal_quorum(self, group: set[str]) -> bool:
        members = set(self.member_ids())
        return (
            group <= members
            and self.is_quorum(group)
            and all(not self.is_quorum(group - {a}) for a in group)
        )

    def ballot_owner(self, b: int | None = None) -> str | None:
        """The replica that may lead ballot ``b`` (default: the current one); see next_ballot."""
        b = self.ballot if b is None else b
        if b <= 0:
            return None
        ids = sorted(self.members)
        return ids[b % len(ids)]

    def next_ballot(self) -> int:
        """The least ballot above ``ballot`` that belongs to this replica.

        The spec takes only ballots no one has started; ballots congruent to this
        replica's index modulo the number of replicas give that without coordination.
        """
        ids = sorted(self.members)
        n, i = len(ids), ids.index(self.node_id)
        b = self.ballot + 1
        return b + (i - b) % n

    # --- time and leases -------------------------------------------------------------

    def lease_left(self, now_us: int) -> int:
        """The spec's LeaseLeft: local time left on the longest quorum-granted request."""
        v = self._v
        if v.role != "leader":
            return 0
        dur = self.config.lease_dur_us
        held = [t + dur - now_us for t, g in v.lease_grants.items() if self.is_quorum(g)]
        return max([0, *held])

    def holds_lease(self, now_us: int) -> bool:
        v = self._v
        return v.role == "leader" and now_us >= v.wait_until and self.lease_left(now_us) > 0

    def can_serve(self, now_us: int) -> bool:
        return self.holds_lease(now_us)

    def read_ready(self) -> bool:
        v = self._v
        # CommittedByLeader = 1..committed_upto, so the spec's three conjuncts reduce to
        # read_barrier <= committed_upto <= applied.
        return v.read_barrier <= v.committed_upto <= self.applied

    def can_strong_read(self, now_us: int) -> bool:
        return self.can_serve(now_us) and self.read_ready()

    # --- helpers ---------------------------------------------------------------------

    def summary(self) -> PostState:
        """The state a trace line reports after a step (traces/FORMAT.md ``post``)."""
        return PostState(self.ballot, self._v.role, self.top, self.applied,
                         self.holds_lease(self.now_us))

    def _record(self, action: str, **args: Any) -> None:
        """Record a step once its handler has made all its changes (the post-state)."""
        self.events.append(Recorded(action, args, self.summary()))

    def _write_log(self, s: int, e: Entry) -> None:
        self.log[s] = e
        if s > self.top:
            self.top = s

    def _step_down(self) -> None:
        # Spec StepDown: all leadership (and candidacy) knowledge is volatile and
        # tied to the ballot being left, so drop it; commits learned stay useful
        # (stale ones are filtered when used).
        self._v = _Volatile(known_commits=self._v.known_commits)

    def _own_log(self) -> tuple[Entry, ...]:
        return tuple(self.entry(s) for s in range(1, self.top + 1))

    def _propose(self, b: int, s: int, c: Cmd) -> list[Effect]:
        # Spec Proposal: persist the entry (the leader's own 2b vote) and send 2a.
        self._write_log(s, Entry(b, c))
        self._v.proposed_upto = s
        self._v.votes[s] = {self.node_id}
        return [Persist("log", s), Broadcast(Phase2aMsg(b, s, c, self.node_id))]

    # --- the spec's hooks (specs/Replication.tla), the seams seeded bugs replace --------

    def recover(self, reports: list[tuple[Entry, ...]]) -> list[Cmd]:
        """Spec Recover: per slot, the command accepted in the highest ballot (NoOp if none)."""
        top = max(len(rep) for rep in reports)
        recovered: list[Cmd] = []
        for s in range(1, top + 1):
            entries = [rep[s - 1] for rep in reports if s <= len(rep)]
            # Highest ballot wins; a slot no voter filled has only EMPTY, i.e. NoOp.
            recovered.append(max(entries, key=lambda e: e.bal).cmd)
        return recovered

    def new_leader_wait_us(self) -> int:
        """Spec NewLeaderWait."""
        return self.config.lease_dur_us + self.config.lease_margin_us

    def commit_quorum(self, votes: set[str]) -> bool:
        """Spec CommitQuorum: which sets of persisted copies allow a commit."""
        return self.is_quorum(votes)

    def known_committed(self, s: int) -> bool:
        """Spec KnownCommitted: a commit message for slot s in the ballot of our entry."""
        return (self.entry(s).bal, s) in self._v.known_commits

    # --- protocol actions --------------------------------------------------------------

    @spec_action
    def phase1a(self, b: int, now_us: int) -> list[Effect]:
        """Start an election with ballot ``b``, which the caller must own (``next_ballot``)."""
        self.now_us = now_us
        if self.members[self.node_id] != "storage" or self._v.role == "leader":
            return []
        if b <= self.ballot:
            return []
        self._step_down()
        self.ballot = b
        self._v.role = "candidate"
        self._record("Phase1a", r=self.node_id, b=b)
        return [Persist("ballot"), Broadcast(Phase1aMsg(b, self.node_id))]

    @spec_action
    def phase1b(self, m: Phase1aMsg) -> list[Effect]:
        if m.src == self.node_id or not self.is_member() or m.bal <= self.ballot:
            return []
        self.ballot = m.bal
        self._step_down()
        reply = Phase1bMsg(m.bal, self.node_id, m.src, self._own_log(), self.granted)
        self._record("Phase1b", a=self.node_id, m=m)
        return [Persist("ballot"), Send(m.src, reply)]

    def receive_promise(self, m: Phase1bMsg) -> None:
        """Learn a promise (spec: a 1b message in ``msgs``); no state of the spec changes."""
        v = self._v
        if v.role == "candidate" and m.bal == self.ballot and m.dst == self.node_id:
            v.promises.setdefault(m.src, m)

    def first_quorum(self) -> set[str] | None:
        """The first minimal quorum of promises to arrive (self first), if any."""
        group = {self.node_id}
        for a in self._v.promises:  # dicts keep arrival order
            if self.is_quorum(group):
                break
            if self.members.get(a, "none") != "none":
                group.add(a)
        return group if self.is_minimal_quorum(group) else None

    @spec_action
    def become_leader(self, b: int, quorum: set[str], now_us: int) -> list[Effect]:
        self.now_us = now_us
        v = self._v
        if v.role != "candidate" or self.ballot != b:
            return []
        if not self.is_minimal_quorum(quorum) or self.node_id not in quorum:
            return []
        others = quorum - {self.node_id}
        if not others <= v.promises.keys():
            return []
        reports = [self._own_log()] + [v.promises[a].log for a in sorted(others)]
        recovered = self.recover(reports)
        wait_needed = self.granted > 0 or any(v.promises[a].granted > 0 for a in others)
        wait_until = now_us + self.new_leader_wait_us()
        v.role = "leader"
        v.proposals = recovered
        v.proposal_rids = {c.request_id for c in recovered if isinstance(c, Command)}
        v.read_barrier = len(recovered)
        v.wait_until = wait_until if wait_needed else now_us
        v.promises = {}
        self._record("BecomeLeader", r=self.node_id, b=b, Q=frozenset(quorum))
        # LeaseRenew is first enabled once a lease of LeaseDur would outlast the wait.
        first_renew = max(now_us, v.wait_until - self.config.lease_dur_us + 1)
        effects: list[Effect] = [SetTimer("lease_renew", first_renew)]
        if wait_needed:
            effects.append(SetTimer("wait_over", wait_until))
        return effects

    @spec_action
    def client_write(self, cmd: Command, now_us: int) -> list[Effect]:
        self.now_us = now_us
        v = self._v
        if v.role != "leader":
            return [Reply(cmd.request_id, NotLeader())]
        if not self.can_serve(now_us):
            return [Reply(cmd.request_id, LeaseNotHeld())]
        if v.proposed_upto < len(v.proposals):
            # Spec: every earlier slot of the ballot must be proposed first.
            return [Reply(cmd.request_id, NotReady())]
        done = self.results.get(cmd.request_id)
        if done is not None:
            return [Reply(cmd.request_id, done)]  # a retry of a write already applied
        if cmd.request_id in v.proposal_rids:
            return []  # in flight; its reply comes when it is applied
        b, s = self.ballot, len(v.proposals) + 1
        v.proposals.append(cmd)
        v.proposal_rids.add(cmd.request_id)
        effects = self._propose(b, s, cmd)
        self._record("ClientWrite", r=self.node_id, c=cmd, s=s)
        return effects

    @spec_action
    def phase2a(self, b: int, s: int) -> list[Effect]:
        v = self._v
        if v.role != "leader" or self.ballot != b:
            return []
        if not 1 <= s <= v.read_barrier or v.proposed_upto != s - 1:
            return []
        effects = self._propose(b, s, v.proposals[s - 1])
        self._record("Phase2a", r=self.node_id, b=b, s=s, c=v.proposals[s - 1])
        return effects

    @spec_action
    def phase2b(self, m: Phase2aMsg) -> list[Effect]:
        if m.src == self.node_id or not self.is_member() or m.bal < self.ballot or m.slot < 1:
            return []
        # The WAL has no holes: slot s of ballot b only after slot s-1 of ballot b.
        if m.slot > 1 and self.entry(m.slot - 1).bal != m.bal:
            return []
        if m.bal > self.ballot:
            self._step_down()
        self.ballot = m.bal
        self._write_log(m.slot, Entry(m.bal, m.cmd))
        self._record("Phase2b", a=self.node_id, m=m)
        vote = Phase2bMsg(m.bal, m.slot, m.cmd, self.node_id)
        # Only the ballot's leader counts 2b votes (Votes2b), so send it there alone.
        return [Persist("ballot"), Persist("log", m.slot), Send(m.src, vote)]

    def receive_vote(self, m: Phase2bMsg) -> None:
        v = self._v
        pending = v.committed_upto < m.slot <= v.proposed_upto
        if v.role == "leader" and m.bal == self.ballot and pending:
            v.votes.setdefault(m.slot, {self.node_id}).add(m.src)

    @spec_action
    def commit(self, b: int, s: int, now_us: int) -> list[Effect]:
        self.now_us = now_us
        v = self._v
        if v.role != "leader" or self.ballot != b or now_us < v.wait_until:
            return []
        if self.entry(s).bal != b or v.committed_upto != s - 1:
            return []
        if not self.commit_quorum(v.votes.get(s, {self.node_id})):
            return []
        v.committed_upto = s
        v.votes.pop(s, None)
        v.known_commits.add((b, s))
        self._record("Commit", r=self.node_id, b=b, s=s)
        return [Broadcast(CommitMsg(b, s, self.node_id))]

    def receive_commit(self, m: CommitMsg) -> None:
        if m.slot > self.applied:  # knowledge of applied slots is no longer needed
            self._v.known_commits.add((m.bal, m.slot))

    @spec_action
    def apply(self) -> list[Effect]:
        v = self._v
        if self.members[self.node_id] != "storage":
            return []
        s = self.applied + 1
        e = self.entry(s)
        if e.bal == 0 or not self.known_committed(s):
            return []
        self.applied = s
        v.known_commits = {(b, t) for b, t in v.known_commits if t > s}
        effects: list[Effect] = [Apply(s, e.cmd), Persist("applied")]
        if isinstance(e.cmd, Command) and e.cmd.request_id not in self.results:
            self.results[e.cmd.request_id] = self._apply_op(e.cmd.op)
        if (
            isinstance(e.cmd, Command)
            and v.role == "leader"
            and s <= v.committed_upto
        ):
            # The leader answers writes it committed once it knows their outcome.
            effects.append(Reply(e.cmd.request_id, self.results[e.cmd.request_id]))
        self._record("Apply", r=self.node_id, s=s, c=e.cmd)
        return effects

    def _apply_op(self, op: bytes) -> Result:
        try:
            return self.store.apply(decode_write(op))
        except DecodeError as exc:
            # Deterministic on every replica, so a malformed write is just a failed write.
            return Invalid(f"undecodable operation: {exc}")

    @spec_action
    def lease_renew(self, now_us: int) -> list[Effect]:
        self.now_us = now_us
        v = self._v
        if v.role != "leader" or self.config.lease_dur_us <= self.wait_left(now_us):
            return []
        left = self.lease_left(now_us)
        if left > self.config.renew_ahead_us:
            return []
        dur = self.config.lease_dur_us
        # One request outstanding at a time: none may outlast the lease already held.
        if any(t + dur - now_us > left for t in v.lease_grants):
            return []
        # Expired requests can never count again (the spec drops them on Tick).
        v.lease_grants = {t: g for t, g in v.lease_grants.items() if t + dur > now_us}
        v.lease_grants[now_us] = {self.node_id}
        self._record("LeaseRenew", r=self.node_id, start=now_us)
        return [
            Broadcast(LeaseMsg(self.ballot, now_us, self.node_id)),
            SetTimer("lease_renew", now_us + dur - self.config.renew_ahead_us),
        ]

    @spec_action
    def lease_grant(self, m: LeaseMsg) -> list[Effect]:
        if m.src == self.node_id or not self.is_member() or m.bal < self.ballot:
            return []
        if m.bal > self.ballot:
            self._step_down()
        self.ballot = m.bal
        self.granted = m.bal
        self._record("LeaseGrant", a=self.node_id, m=m)
        ack = LeaseAckMsg(m.bal, m.start, self.node_id, m.src)
        return [Persist("ballot"), Persist("granted"), Send(m.src, ack)]

    def receive_lease_ack(self, m: LeaseAckMsg) -> None:
        v = self._v
        if v.role == "leader" and m.bal == self.ballot and m.dst == self.node_id:
            grantors = v.lease_grants.get(m.start)
            if grantors is not None:  # only requests this leadership made
                grantors.add(m.src)

    @spec_action
    def strong_read(self, key: Key, now_us: int, request_id: str = "") -> list[Effect]:
        self.now_us = now_us
        v = self._v
        if v.role != "leader":
            return [Reply(request_id, NotLeader())]
        if not self.can_serve(now_us):
            return [Reply(request_id, LeaseNotHeld())]
        if not self.read_ready():
            return [Reply(request_id, NotReady())]
        item = self.store.get(key)
        self._record("StrongRead", r=self.node_id, k=key)
        return [Reply(request_id, ReadResult(item))]

    @spec_action
    def eventual_read(self, key: Key, request_id: str = "",
                      now_us: int | None = None) -> list[Effect]:
        if now_us is not None:
            self.now_us = now_us
        if self.members[self.node_id] != "storage":
            return [Reply(request_id, NotStorage())]
        item = self.store.get(key)
        self._record("EventualRead", r=self.node_id, k=key)
        return [Reply(request_id, ReadResult(item))]

    @spec_action
    def crash(self) -> list[Effect]:
        """Lose volatile state; ballot, log, granted and the applied B-tree survive."""
        self._v = _Volatile()
        # The spec has no Crash for a non-member (it has no protocol state to lose).
        if self.is_member():
            self._record("Crash", r=self.node_id)
        return []

    @classmethod
    def restore(
        cls,
        node_id: str,
        members: dict[str, Kind],
        config: ReplicaConfig,
        durable: tuple[int, dict[int, Entry], int, int],
        *,
        schema: KeySchema = DEFAULT_SCHEMA,
    ) -> Replica:
        """A restarted replica from its recovered durable state.

        The B-tree is rebuilt by re-applying slots 1..applied, which gives exactly the
        state the spec keeps durable (``applied``): apply is deterministic.
        """
        ballot, log, granted, applied = durable
        r = cls(node_id, members, config, schema=schema)
        r.ballot, r.granted = ballot, granted
        for s, e in log.items():
            r._write_log(s, e)
        for s in range(1, applied + 1):
            cmd = r.entry(s).cmd
            if isinstance(cmd, Command) and cmd.request_id not in r.results:
                r.results[cmd.request_id] = r._apply_op(cmd.op)
        r.applied = applied
        return r

    # --- durable state ------------------------------------------------------------------

    def durable_state(self) -> tuple[int, dict[int, Entry], int, int]:
        return self.ballot, dict(self.log), self.granted, self.applied


__all__ = [
    "Apply",
    "Broadcast",
    "Effect",
    "Persist",
    "Replica",
    "ReplicaConfig",
    "Reply",
    "Send",
    "SetTimer",
    "decode_write",
]
