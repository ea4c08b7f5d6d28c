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

Configuration (specs/Replication.tla): a replica's *view* is the initial
configuration overridden, per replica id, by the latest configuration command
(``Change``) naming it among the entries of its log, whatever their ballot; a
change takes effect when it is appended, committed or not (Raft's single-server
rule). A leader decides with the same view over its proposals. Quorums are strict
majorities of the view's members (storage and log replicas both count). The set
of ids (``initial``, spares included as ``"none"``) is fixed for the group's life;
ids are never reused, so a replaced node comes back under a new id. Who may
do what: Phase1a, only a storage replica (own view) with a B-tree; Phase1b and
LeaseGrant, members (any kind, own view); Phase2b, members, and a non-member
once the ballot's leader has proposed adding it (spec Joining: a 2a of that
ballot adding it reached it); Apply, a replica with a B-tree; EventualRead, a
storage replica with a B-tree. BecomeLeader's quorum must be a minimal quorum of
every configuration of the recovered log from the end of the prefix the
candidate knows to be committed (spec ElectionConfigs), and the candidate a
storage member of the recovered configuration. A membership change needs the
leader to serve (lease), to have committed an entry of its ballot, to have every
change it proposed committed and every recovered slot re-proposed; a leader does
not commit while a recovered change is not yet re-proposed.

Checkpoints and phase 1 over a truncated log: slots 1..``base`` of a replica's
log may be dropped once they are committed, and applied locally if it keeps a
B-tree (``checkpoint``); ``base_config`` is the configuration at ``base`` and
``base_named`` the ids named by a change by then (never to be re-added). A 1b
reports ``base`` (and that configuration) with the entries above it; every slot
<= base is committed. A new leader takes N = the highest base reported by its
quorum (itself included), recovers only the slots above N (the hook ``recover``
gets the reports aligned at N + 1), never re-proposes slots <= N (its ballot's
first slot is N + 1: ``proposals_base``), starts from the configuration at N of
that report, and applies its own entries up to N before it serves reads (reads
need ``applied >= committed_upto >= N``). Phase 2's no-holes rule starts at the
base: slot base + 1 needs no predecessor. The node's truncation policy
(reference/node.py: a point every member of the leader's view, and every replica
catching up to join, has persisted in the leader's ballot) guarantees that no
member is ever behind a truncation point, so a leader always holds its own
entries up to N; a replica without a B-tree that lacks truncated slots (a joiner)
starts its log at the leader's checkpoint (``seed``) and a storage joiner gets a
B-tree snapshot (``install_snapshot``) covering at least its base.

Time: handlers take ``now_us``, the replica's local clock. Instead of the spec's
count-downs (``waitLeft``, a lease message's ``left``) the replica keeps absolute
local deadlines; ``waitLeft = max(0, wait_until - now)`` and a lease request's
``left = max(0, start + LeaseDur - now)``.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeAlias

import msgspec

from reference.actions import spec_action
from reference.leader_check import Detector, probe_targets
from reference.messages import (
    EMPTY,
    Change,
    Cmd,
    Command,
    CommitMsg,
    Entry,
    HandoffMsg,
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
    ProbeAckMsg,
    ProbeMsg,
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


class Send(msgspec.Struct, frozen=True):
    dst: str
    msg: Message


class Broadcast(msgspec.Struct, frozen=True):
    """Send ``msg`` to every other replica id of the group (members, spares and joiners:
    a joining replica catches up from the leader's 2a messages)."""

    msg: Message


class Persist(msgspec.Struct, frozen=True):
    """Make durable state ``what`` ("ballot", "log", "granted", "applied", "btree") stable.

    ``"btree"``: the B-tree as a checkpoint (an installed snapshot).

    ``slot`` names the log slot written, for ``what == "log"``.
    """

    what: str
    slot: int | None = None


class Apply(msgspec.Struct, frozen=True):
    slot: int
    cmd: Cmd


class Reply(msgspec.Struct, frozen=True):
    request_id: str
    result: ReplyResult


class SetTimer(msgspec.Struct, frozen=True):
    """Call back (e.g. ``pump``) when the local clock reaches ``at_local_us``."""

    name: str
    at_local_us: int


Effect: TypeAlias = Send | Broadcast | Persist | Apply | Reply | SetTimer

# --- configuration -----------------------------------------------------------------


def keeps_storage_majority(view: Mapping[str, Kind]) -> bool:
    """Storage replicas are a majority of the members: WAL truncation leaves slots below a
    checkpoint only in B-trees, so these must survive the loss of any one member."""
    members = [k for k in view.values() if k != "none"]
    return 2 * sum(k == "storage" for k in members) > len(members)


@dataclass(frozen=True, slots=True)
class ReplicaConfig:
    lease_dur_us: int
    lease_margin_us: int
    max_drift_us: int
    renew_ahead_us: int
    peer_confirm: bool = False
    """Gray-failure detection (paper section 6.2): Phase1a needs a confirmed suspicion
    (or a handoff), and lease requests carry ``held``. Off: Phase1a whenever the caller
    (the node's election timeout) asks, as without the feature."""

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
    pbase: int = 0
    """Leader: ``proposals[i]`` is slot ``pbase + 1 + i`` (pbase: the highest reported base)."""
    view: dict[str, Kind] = field(default_factory=dict)
    """Leader: the configuration of its proposals."""
    base_view: dict[str, Kind] = field(default_factory=dict)
    """Leader: the configuration at ``pbase``."""
    view_members: frozenset[str] = frozenset()
    """Leader: the members (any kind) of ``view``."""
    config_slots: dict[int, Change] = field(default_factory=dict)
    """Leader: the slots of its proposals that hold configuration commands."""
    named: set[str] = field(default_factory=set)
    """Leader: ids named by a change at or below pbase or in its proposals."""
    detect: Detector = field(default_factory=Detector)
    """Gray-failure detection: hearing, suspicion, answers, handoff (kept on step-down)."""
    promised: Phase1bMsg | None = None
    """Acceptor: the promise it sent for its current ballot, kept to send again (the
    spec's 1b stays in ``msgs``; ours may be lost: see ``phase1b``)."""
    relinquished: bool = False
    """Leader: it handed its ballot off; it neither serves nor renews its lease."""
    successor: str | None = None
    """Leader that relinquished: who it handed its ballot off to."""
    took_over: int = 0
    """Candidate/leader: the ballot whose leader handed off to it (0: a plain election)."""
    lease_held: dict[int, bool] = field(default_factory=dict)
    """Leader: lease request start -> its ``held`` flag (a resend repeats it)."""
    renew_retry_at: int = -1
    """Leader: the local time of the timer set to ask again once the requests that
    block a new one have expired (-1: none)."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A copy of a storage replica's B-tree: the committed prefix 1..upto applied.

    ``store`` is the engine's encoding (``StorageEngine.snapshot``) and ``results``
    the at-most-once table (part of the applied state), a private copy nobody changes.
    ``size_bytes`` is what a copy moves (reference/healing.py turns it into simulated
    copy time).
    """

    src: str
    upto: int
    store: bytes
    results: Mapping[str, Result]

    @property
    def size_bytes(self) -> int:
        return len(self.store) + sum(len(rid) + 64 for rid in self.results)


class Recorded(NamedTuple):
    """One step a handler took: the spec action, its arguments, the state after it."""

    action: str
    args: dict[str, Any]
    post: PostState


_new_recorded = tuple.__new__

Config: TypeAlias = dict[str, Kind]


def config_pairs(c: Config) -> tuple[tuple[str, Kind], ...]:
    return tuple(sorted(c.items()))


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
        """``members``: the initial configuration over every id of the group (spares and
        future joiners as ``"none"``); it fixes ballot ownership for the group's life."""
        if node_id not in members:
            raise ValueError(f"{node_id!r} is not in members")
        self.node_id = node_id
        self.initial: Config = dict(members)
        self._ids = sorted(self.initial)
        self.config = config
        # durable: survives crash()
        self.ballot = 0
        self.log: dict[int, Entry] = {}
        self.granted = 0
        self.applied = 0
        self.top = 0
        """Highest slot holding an entry (the log has no holes between base and it)."""
        self.base = 0
        """Checkpoint point: slots 1..base are committed and truncated from the log."""
        self.base_config: Config = dict(members)
        """The configuration at slot ``base``."""
        self.base_named: frozenset[str] = frozenset()
        """Ids named by a configuration command at or below ``base``."""
        self.has_btree = members[node_id] == "storage"
        """It keeps a B-tree: an initial storage member, or it installed a snapshot."""
        self.store = StorageEngine(schema)
        # Outcome per applied request id: the at-most-once table, part of the applied state.
        self.results: dict[str, Result] = {}
        self._config_slots: dict[int, Change] = {}
        self._view: Config = dict(members)
        self._view_members: frozenset[str] = frozenset(
            r for r, k in members.items() if k != "none")
        self._v = _Volatile()
        self.now_us = 0
        """The latest local time a handler or the pump was given; a step's post-state
        judges the lease at it."""
        self.snapshot_holders: set[str] = set()
        """Replicas known (from their reports) to have installed a B-tree snapshot."""
        self.joining: set[int] = set()
        """Ballots whose leader has proposed adding this replica (a 2a of that ballot
        adding it reached it): spec Joining, under which a non-member accepts."""
        self.events: list[Recorded] = []

    # --- views of state, named as in the spec --------------------------------------

    @property
    def role(self) -> Role:
        return self._v.role

    @property
    def proposals(self) -> list[Cmd]:
        return self._v.proposals

    @property
    def proposals_base(self) -> int:
        """``proposals[i]`` is slot ``proposals_base + 1 + i``."""
        return self._v.pbase

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
    def detector(self) -> Detector:
        """Gray-failure detection state (reference/leader_check.py)."""
        return self._v.detect

    @property
    def suspecting(self) -> bool:
        return self._v.detect.suspecting

    @property
    def relinquished(self) -> bool:
        return self._v.relinquished

    def lease_request_held(self, start: int) -> bool:
        """The ``held`` flag of this leadership's lease request ``start``."""
        return self._v.lease_held.get(start, False)

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

    @property
    def members(self) -> Config:
        """The replica's own view of the configuration (from its log)."""
        return self._view

    @property
    def leader_view(self) -> Config:
        """A leader's view: the configuration of its proposals (others: its own view)."""
        return self._v.view if self._v.role == "leader" else self._view

    def reproposing_config(self) -> bool:
        """Leader: a recovered configuration command is not re-proposed yet (it may not
        commit until it is)."""
        v = self._v
        return any(t > v.proposed_upto for t in v.config_slots)

    def leader_config_slots(self) -> list[int]:
        """Leader: the slots of its proposals holding configuration commands."""
        return sorted(self._v.config_slots)

    def leader_config_at(self, s: int) -> Config:
        """Leader: the configuration of its proposals through slot ``s``."""
        v = self._v
        cfg = dict(v.base_view)
        for t in sorted(v.config_slots):
            if t <= s:
                cfg[v.config_slots[t].who] = v.config_slots[t].new_kind
        return cfg

    def kind(self, who: str | None = None) -> Kind:
        """``who``'s kind (default: this replica) in this replica's own view."""
        return self._view.get(self.node_id if who is None else who, "none")

    def entry(self, s: int) -> Entry:
        return self.log.get(s, EMPTY)

    def wait_left(self, now_us: int) -> int:
        return max(0, self._v.wait_until - now_us)

    def member_ids(self) -> list[str]:
        """Members (any kind) of the deciding view: a leader's, else its own."""
        return sorted(self._quorum_members())

    def is_member(self) -> bool:
        return self.kind() != "none"

    def _quorum_members(self) -> frozenset[str]:
        v = self._v
        return v.view_members if v.role == "leader" else self._view_members

    def is_quorum(self, group: set[str]) -> bool:
        members = self._quorum_members()
        return 2 * len(group & members) > len(members)

    def is_minimal_quorum(self, group: set[str]) -> bool:
        return is_minimal_quorum_of(self._view, group)

    def ballot_owner(self, b: int | None = None) -> str | None:
        """The replica that may lead ballot ``b`` (default: the current one); see next_ballot."""
        b = self.ballot if b is None else b
        if b <= 0:
            return None
        return self._ids[b % len(self._ids)]

    def next_ballot(self) -> int:
        """The least ballot above ``ballot`` that belongs to this replica.

        The spec takes only ballots no one has started; ballots congruent to this
        replica's index modulo the number of ids (fixed for the group's life) give that
        without coordination.
        """
        n, i = len(self._ids), self._ids.index(self.node_id)
        b = self.ballot + 1
        return b + (i - b) % n

    # --- time and leases -------------------------------------------------------------

    def lease_left(self, now_us: int) -> int:
        """The spec's LeaseLeft: local time left on the longest quorum-granted request."""
        v = self._v
        if v.role != "leader":
            return 0
        # is_quorum inlined over the leader's members: this runs at every step.
        members = v.view_members
        need = len(members)
        left = 0
        dur_left = self.config.lease_dur_us - now_us
        for t, g in v.lease_grants.items():
            if t + dur_left > left and 2 * len(g & members) > need:
                left = t + dur_left
        return left

    def holds_lease(self, now_us: int) -> bool:
        v = self._v
        return v.role == "leader" and now_us >= v.wait_until and self.lease_left(now_us) > 0

    def can_serve(self, now_us: int) -> bool:
        """Holds its lease and has not relinquished it."""
        return self.holds_lease(now_us) and not self._v.relinquished

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
        # The spec's HoldsLease includes "not relinquished": report can_serve, not
        # holds_lease, or a line after LeaseRelinquish claims a lease the spec denies.
        role = self._v.role
        # can_serve is false off the lead: skip its calls for the followers' many steps.
        return PostState(self.ballot, role, self.top, self.applied,
                         role == "leader" and self.can_serve(self.now_us))

    def _record(self, action: str, **args: Any) -> None:
        """Record a step once its handler has made all its changes (the post-state)."""
        # tuple.__new__ skips the NamedTuple's Python-level __new__ (a step records one).
        self.events.append(_new_recorded(Recorded, (action, args, self.summary())))

    def _write_log(self, s: int, e: Entry) -> None:
        old = self.log.get(s)
        self.log[s] = e
        if s > self.top:
            self.top = s
        if isinstance(e.cmd, Change):
            self._config_slots[s] = e.cmd
            self._recompute_view()
        elif old is not None and isinstance(old.cmd, Change):
            del self._config_slots[s]
            self._recompute_view()

    def _recompute_view(self) -> None:
        view = dict(self.base_config)
        for s in sorted(self._config_slots):
            c = self._config_slots[s]
            view[c.who] = c.new_kind
        self._view = view
        self._view_members = frozenset(r for r, k in view.items() if k != "none")

    def _step_down(self) -> None:
        # Spec StepDown: all leadership (and candidacy) knowledge is volatile and
        # tied to the ballot being left, so drop it; commits learned stay useful
        # (stale ones are filtered when used).
        self._v = _Volatile(known_commits=self._v.known_commits, detect=self._v.detect)

    def _own_log(self) -> tuple[Entry, ...]:
        return tuple(self.entry(s) for s in range(self.base + 1, self.top + 1))

    def _report(self) -> _Report:
        return _Report(self.base, config_pairs(self.base_config), self.base_named,
                       self._own_log())

    def _propose(self, b: int, s: int, c: Cmd) -> list[Effect]:
        # Spec Proposal: persist the entry (the leader's own 2b vote) and send 2a.
        self._write_log(s, Entry(b, c))
        self._v.proposed_upto = s
        self._v.votes[s] = {self.node_id}
        return [Persist("log", s), Broadcast(Phase2aMsg(b, s, c, self.node_id))]

    def _next_slot(self) -> int:
        return self._v.pbase + len(self._v.proposals) + 1

    # --- the spec's hooks (specs/Replication.tla), the seams seeded bugs replace --------

    def recover(self, reports: list[tuple[Entry, ...]]) -> list[Cmd]:
        """Spec Recover: per slot, the command accepted in the highest ballot (NoOp if none).

        The reports are aligned: element 0 of each is the slot after the highest
        reported checkpoint."""
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
        return (self.log.get(s, EMPTY).bal, s) in self._v.known_commits

    # --- protocol actions --------------------------------------------------------------

    @spec_action
    def phase1a(self, b: int, now_us: int) -> list[Effect]:
        """Start an election with ballot ``b``, which the caller must own (``next_ballot``)."""
        self.now_us = now_us
        if self.kind() != "storage" or not self.has_btree or self._v.role == "leader":
            return []
        if b <= self.ballot:
            return []
        detect = self._v.detect
        handoff = detect.has_handoff(self.ballot)
        if self.config.peer_confirm and not handoff \
                and not detect.confirmed_by_quorum(self.node_id, now_us, self.is_quorum):
            return []
        took_over = self.ballot if handoff else 0
        self._step_down()
        detect.end()
        self.ballot = b
        self._v.role = "candidate"
        self._v.took_over = took_over
        self._record("Phase1a", r=self.node_id, b=b)
        return [Persist("ballot"), Broadcast(Phase1aMsg(b, self.node_id))]

    @spec_action
    def phase1b(self, m: Phase1aMsg) -> list[Effect]:
        if m.src == self.node_id or not self.is_member():
            return []
        if m.bal <= self.ballot:
            # A candidate sends its 1a again when its election stalls (the spec's 1b
            # never gets lost; ours can): the very promise already sent goes again, no
            # new step. Only the same message: the log may have moved since.
            p = self._v.promised
            if p is not None and p.bal == m.bal == self.ballot and p.dst == m.src:
                return [Send(m.src, p)]
            return []
        self.ballot = m.bal
        self._step_down()
        if self.base:
            reply = Phase1bMsg(m.bal, self.node_id, m.src, self._own_log(), self.granted,
                               self.base, config_pairs(self.base_config),
                               tuple(sorted(self.base_named)))
        else:
            reply = Phase1bMsg(m.bal, self.node_id, m.src, self._own_log(), self.granted)
        self._v.promised = reply
        self._record("Phase1b", a=self.node_id, m=m)
        return [Persist("ballot"), Send(m.src, reply)]

    def phase1a_resend(self) -> list[Effect]:
        """A candidate's 1a again, to the members whose promise has not arrived (a
        resend of the spec's message, not a new step)."""
        v = self._v
        if v.role != "candidate":
            return []
        m = Phase1aMsg(self.ballot, self.node_id)
        return [Send(p, m) for p in sorted(self._view_members)
                if p != self.node_id and p not in v.promises]

    def receive_promise(self, m: Phase1bMsg) -> None:
        """Learn a promise (spec: a 1b message in ``msgs``); no state of the spec changes."""
        v = self._v
        if v.role == "candidate" and m.bal == self.ballot and m.dst == self.node_id:
            v.promises.setdefault(m.src, m)

    def _reports(self, group: set[str]) -> list[_Report]:
        v = self._v
        out = [self._report()]
        for a in sorted(group - {self.node_id}):
            p = v.promises[a]
            cfg = p.base_config if p.base else config_pairs(self.initial)
            out.append(_Report(p.base, cfg, frozenset(p.base_named), p.log))
        return out

    def known_prefix(self) -> int:
        """Spec KnownPrefix: slots 1..k this replica knows to be committed (applied or
        checkpointed, or a commit message for each of them reached it)."""
        k = max(self.applied, self.base)
        slots = {t for _, t in self._v.known_commits}
        while k + 1 in slots:
            k += 1
        return k

    def election(self, group: set[str]) -> _Election | None:
        """What BecomeLeader would recover from ``group``'s reports, if ``group`` may win.

        Spec ElectionConfigs: ``group`` must be a minimal quorum of every configuration
        of the recovered log from the end of the prefix this replica knows to be
        committed on (the committed configuration and the change, if any, recovered
        after it), and this replica a storage member of the recovered configuration
        (None otherwise)."""
        v = self._v
        if self.node_id not in group or not (group - {self.node_id}) <= v.promises.keys():
            return None
        reports = self._reports(group)
        n = max(rep.base for rep in reports)
        top = next(rep for rep in reports if rep.base == n)
        aligned = [rep.log[n - rep.base:] for rep in reports]
        recovered = self.recover(aligned)
        k = max(self.known_prefix(), n)
        cfg, named = dict(top.config), set(top.named)
        base_cfg = dict(cfg)
        config_slots: dict[int, Change] = {}
        configs: list[Config] = []
        for i, c in enumerate(recovered):
            slot = n + 1 + i
            if slot == k + 1:
                configs.append(dict(cfg))
            if isinstance(c, Change):
                cfg[c.who] = c.new_kind
                named.add(c.who)
                config_slots[slot] = c
                if slot > k:
                    configs.append(dict(cfg))
        if not configs or n + len(recovered) <= k:
            configs.append(dict(cfg))
        if cfg.get(self.node_id) != "storage" or not is_minimal_quorum_of_all(configs, group):
            return None
        return _Election(n, recovered, cfg, config_slots, named, base_cfg)

    def first_quorum(self) -> set[str] | None:
        """The first minimal quorum of promises to arrive (self first) that may win.

        The quorum must be one of the configuration recovered from its own reports,
        which may differ from this replica's view: take the promises in arrival order
        until they form a quorum of this replica's view; if that group fails, try every
        subset of the promises (smallest first, earliest arrivals first)."""
        group = {self.node_id}
        for a in self._v.promises:  # dicts keep arrival order
            if self.is_quorum(group):
                break
            if self._view.get(a, "none") != "none":
                group.add(a)
        if self.election(group) is not None:
            return group
        v = self._v
        if not v.promises or not self.has_btree:
            return None
        # Without a checkpoint or a configuration command in any report, every group's
        # recovered configuration is the initial one: the arrival-order group was it.
        if not self.base and not self._config_slots and not any(
                p.base or any(isinstance(e.cmd, Change) for e in p.log)
                for p in v.promises.values()):
            return None
        order = list(self._v.promises)
        for size in range(1, len(order) + 1):
            for combo in itertools.combinations(order, size):
                g = {self.node_id, *combo}
                if self.election(g) is not None:
                    return g
        return None

    @spec_action
    def become_leader(self, b: int, quorum: set[str], now_us: int) -> list[Effect]:
        self.now_us = now_us
        v = self._v
        if v.role != "candidate" or self.ballot != b or not self.has_btree:
            return []
        won = self.election(quorum)
        if won is None:
            return []
        others = quorum - {self.node_id}
        grants = [self.granted, *(v.promises[a].granted for a in others)]
        # Wait out every lease a voter may have granted; after a handoff of ballot
        # took_over, leases up to it need no wait (their leader relinquished, having
        # itself waited out the older ones).
        wait_needed = any(g > 0 for g in grants) \
            and not (v.took_over and max(grants) <= v.took_over)
        wait_until = now_us + self.new_leader_wait_us()
        v.role = "leader"
        v.pbase = won.base
        v.proposals = won.recovered
        v.proposal_rids = {c.request_id for c in won.recovered if isinstance(c, Command)}
        v.read_barrier = v.proposed_upto = v.committed_upto = won.base
        v.read_barrier += len(won.recovered)
        v.view, v.config_slots, v.named = won.config, won.config_slots, won.named
        v.base_view = won.base_config
        v.view_members = frozenset(m for m, k in won.config.items() if k != "none")
        v.wait_until = wait_until if wait_needed else now_us
        v.promises = {}
        # Slots up to the highest reported checkpoint are committed: apply our own
        # entries of them (the truncation policy keeps them in every member's log).
        for s in range(max(self.applied, self.base) + 1, won.base + 1):
            if s in self.log:
                v.known_commits.add((self.log[s].bal, s))
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
        if v.proposed_upto < v.pbase + len(v.proposals):
            # Spec: every earlier slot of the ballot must be proposed first.
            return [Reply(cmd.request_id, NotReady())]
        done = self.results.get(cmd.request_id)
        if done is not None:
            return [Reply(cmd.request_id, done)]  # a retry of a write already applied
        if cmd.request_id in v.proposal_rids:
            return []  # in flight; its reply comes when it is applied
        b, s = self.ballot, self._next_slot()
        v.proposals.append(cmd)
        v.proposal_rids.add(cmd.request_id)
        effects = self._propose(b, s, cmd)
        self._record("ClientWrite", r=self.node_id, c=cmd, s=s)
        return effects

    # --- membership change (one member at a time) -------------------------------------

    def may_change(self, now_us: int) -> bool:
        """The guards every membership change shares (see ``change_refusal``)."""
        return self.change_refusal(now_us) is None

    def change_refusal(self, now_us: int) -> str | None:
        """Which shared guard refuses a membership change now (None: none does): r leads
        and may serve, has committed an entry of its own ballot (Ongaro's 2015 fix),
        every configuration command it proposed is committed (one change in flight), and
        every recovered slot is re-proposed."""
        v = self._v
        if v.role != "leader":
            return "not leading"
        if not self.can_serve(now_us):
            return "no lease"
        if v.committed_upto <= v.pbase:
            return "nothing of its ballot committed"
        if any(s > v.committed_upto for s in v.config_slots):
            return "a change in flight"
        if v.proposed_upto != v.pbase + len(v.proposals) or v.proposed_upto < v.read_barrier:
            return "recovered slots not re-proposed"
        return None

    def change_valid(self, c: Change) -> bool:
        """``c`` is valid in the leader's view (see the handlers), and leaves storage
        replicas a majority of the members (the spec's KeepsStorageMajority)."""
        view = self._v.view
        kind = view.get(c.who, "none")
        if not keeps_storage_majority({**view, c.who: c.new_kind}):
            return False
        if c.op == "add":
            fresh = c.who not in self._v.named and self.initial.get(c.who, "none") == "none"
            return (kind == "none" and fresh
                    and (c.kind == "log" or c.who in self.snapshot_holders))
        if c.op == "remove":
            return kind != "none" and c.who != self.node_id
        return kind == "log" and c.who in self.snapshot_holders

    def _change(self, c: Change, op: str, now_us: int) -> list[Effect]:
        self.now_us = now_us
        v = self._v
        if c.op != op or not self.may_change(now_us) or not self.change_valid(c):
            return []
        b, s = self.ballot, self._next_slot()
        v.proposals.append(c)
        v.view[c.who] = c.new_kind
        v.view_members = frozenset(m for m, k in v.view.items() if k != "none")
        v.config_slots[s] = c
        v.named.add(c.who)
        effects = self._propose(b, s, c)
        self._record(ACTION_OF_OP[op], r=self.node_id, c=c, s=s)
        return effects

    @spec_action
    def add_member(self, c: Change, now_us: int) -> list[Effect]:
        """Append ``add c.who as c.kind``: c.who is a fresh incarnation, not a member; a
        storage joiner must already have installed a B-tree snapshot."""
        return self._change(c, "add", now_us)

    @spec_action
    def remove_member(self, c: Change, now_us: int) -> list[Effect]:
        """Append ``remove c.who``: a member other than the leader itself."""
        return self._change(c, "remove", now_us)

    @spec_action
    def promote_member(self, c: Change, now_us: int) -> list[Effect]:
        """Append ``promote c.who``: a log replica that has installed a B-tree snapshot."""
        return self._change(c, "promote", now_us)

    def receive_snapshot_report(self, src: str) -> None:
        """Learn that ``src`` has installed a B-tree snapshot (its own report)."""
        self.snapshot_holders.add(src)

    @spec_action
    def install_snapshot(self, snap: Snapshot) -> list[Effect]:
        """This replica, which has no B-tree, installs a copy of ``snap.src``'s B-tree
        (slots 1..upto); it then applies later committed slots from its own log, so the
        snapshot must reach at least its checkpoint point."""
        if self.has_btree or snap.src == self.node_id or snap.upto < self.base:
            return []
        self.store = StorageEngine.from_snapshot(snap.store)
        self.results = dict(snap.results)
        self.applied = snap.upto
        self.has_btree = True
        self._v.known_commits = {(b, t) for b, t in self._v.known_commits if t > snap.upto}
        self._record("InstallSnapshot", x=self.node_id, src=snap.src, upto=snap.upto)
        return [Persist("btree"), Persist("applied")]

    def take_snapshot(self) -> Snapshot | None:
        """A copy of this replica's B-tree (None without one)."""
        if not self.has_btree:
            return None
        # A dict copy, not a sorted tuple of pairs: the table holds every request id ever
        # applied and each checkpoint takes a snapshot; one object per copy, where pairs
        # made the garbage collector's full passes (over the whole heap) ever more frequent.
        return Snapshot(self.node_id, self.applied, self.store.snapshot(), dict(self.results))

    @spec_action
    def phase2a(self, b: int, s: int) -> list[Effect]:
        v = self._v
        if v.role != "leader" or self.ballot != b:
            return []
        if not v.pbase < s <= v.read_barrier or v.proposed_upto != s - 1:
            return []
        c = v.proposals[s - v.pbase - 1]
        effects = self._propose(b, s, c)
        self._record("Phase2a", r=self.node_id, b=b, s=s, c=c)
        return effects

    def observe_2a(self, m: Phase2aMsg) -> None:
        """Learn from a 2a message (spec: it is in ``msgs``) that its ballot's leader
        proposed adding this replica; no state of the spec changes."""
        c = m.cmd
        if isinstance(c, Change) and c.op == "add" and c.who == self.node_id:
            self.joining.add(m.bal)

    @spec_action
    def phase2b(self, m: Phase2aMsg) -> list[Effect]:
        """A member accepts; so does a non-member once the ballot's leader has proposed
        adding it (spec Joining): that is how a joining replica catches up."""
        self.observe_2a(m)
        if m.src == self.node_id or m.bal < self.ballot or m.slot <= self.base:
            return []
        if not self.is_member() and m.bal not in self.joining:
            return []
        # The WAL has no holes: slot s of ballot b only after slot s-1 of ballot b (or
        # right after the checkpoint).
        if m.slot > self.base + 1 and self.log.get(m.slot - 1, EMPTY).bal != m.bal:
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
        if self.log.get(s, EMPTY).bal != b or v.committed_upto != s - 1:
            return []
        if self.reproposing_config():
            return []  # a recovered configuration command is not yet re-proposed
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
        if not self.has_btree:
            return []
        s = self.applied + 1
        e = self.log.get(s, EMPTY)
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
        if v.relinquished:
            return []  # it promised its successor not to use a lease any more
        left = self.lease_left(now_us)
        if left > self.config.renew_ahead_us:
            return []
        dur = self.config.lease_dur_us
        # One request outstanding at a time: none may outlast the lease already held.
        blocking = [t + dur for t in v.lease_grants if t + dur - now_us > left]
        if blocking:
            # Ask again once they have expired: a leader that hears nobody (a gray
            # failure) must keep asking, with held false once its lease has lapsed.
            at = max(blocking)
            if at == v.renew_retry_at:
                return []
            v.renew_retry_at = at
            return [SetTimer("lease_renew", at)]
        # Expired requests can never count again (the spec drops them on Tick).
        v.lease_grants = {t: g for t, g in v.lease_grants.items() if t + dur > now_us}
        # The spec's held: HoldsLease (its wait is over) and not relinquished, as it
        # asks: judged before its own grant of this request, which alone is a quorum
        # of a one-member group (the deep run found a lone leader vouching for itself).
        held = self.config.peer_confirm and self.can_serve(now_us)
        v.lease_grants[now_us] = {self.node_id}
        v.lease_held = {t: h for t, h in v.lease_held.items() if t in v.lease_grants}
        v.lease_held[now_us] = held
        self._record("LeaseRenew", r=self.node_id, start=now_us)
        return [
            Broadcast(LeaseMsg(self.ballot, now_us, self.node_id, held)),
            SetTimer("lease_renew", now_us + dur - self.config.renew_ahead_us),
        ]

    @spec_action
    def lease_grant(self, m: LeaseMsg, now_us: int | None = None) -> list[Effect]:
        """Grant; a request whose leader held its lease means ``a`` heard such a leader
        (for LeaseDur on its own clock)."""
        if now_us is not None:
            self.now_us = now_us
        if m.src == self.node_id or not self.is_member() or m.bal < self.ballot:
            return []
        if self.now_us >= m.start + self.config.lease_dur_us - 2 * self.config.max_drift_us:
            # Refuse (a message loss, which the spec allows) a request that may have
            # expired on its leader's clock: the spec drops a lease message once its time
            # left (counted down on the leader's clock) reaches 0, so no trace could
            # match a grant of it. This replica cannot read the leader's clock, but two
            # clocks within +/- max_drift_us of real time differ by at most
            # 2 * max_drift_us (the spec's MaxDrift, the window's width): if
            # now < start + dur - 2 * max_drift_us here, the leader's clock is still
            # below start + dur, so the request has time left there.
            return []
        if m.bal > self.ballot:
            self._step_down()
        self.ballot = m.bal
        self.granted = m.bal
        if m.held:
            self._v.detect.heard(self.now_us, self.config.lease_dur_us)
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
        if self.kind() != "storage" or not self.has_btree:
            return [Reply(request_id, NotStorage())]
        item = self.store.get(key)
        self._record("EventualRead", r=self.node_id, k=key)
        return [Reply(request_id, ReadResult(item))]

    # --- gray-failure detection and lease handoff (paper section 6.2) -------------------

    def may_elect(self, now_us: int) -> bool:
        """Phase1a is enabled without an election timeout: a handoff for the current
        ballot arrived, or (peer confirmation) a quorum confirmed the suspicion."""
        v = self._v
        if v.role == "leader" or self.kind() != "storage" or not self.has_btree:
            return False
        if v.detect.has_handoff(self.ballot):
            return True
        return self.config.peer_confirm and v.detect.confirmed_by_quorum(
            self.node_id, now_us, self.is_quorum)

    @spec_action
    def suspect(self, now_us: int) -> list[Effect]:
        """The election timeout fired and r no longer hears a leader holding its lease:
        suspect the leader and probe every peer of r's view."""
        self.now_us = now_us
        v = self._v
        if self.kind() != "storage" or not self.has_btree or v.role != "follower":
            return []
        if not v.detect.may_suspect(now_us):
            return []
        nonce = v.detect.suspect()
        self._record("Suspect", r=self.node_id)
        probe = ProbeMsg(self.node_id, nonce)
        return [Send(p, probe) for p in probe_targets(self.node_id, self._view_members)]

    def probes(self) -> list[Effect]:
        """The probes of the current suspicion again (a resend: no new step)."""
        if not self._v.detect.suspecting:
            return []
        probe = ProbeMsg(self.node_id, self._v.detect.nonce)
        return [Send(p, probe) for p in probe_targets(self.node_id, self._view_members)]

    @spec_action
    def answer_probe(self, m: ProbeMsg, now_us: int) -> list[Effect]:
        """Member a tells m.from whether it hears a leader holding its lease (spec Hears:
        a leader holding its lease vouches for itself, unless it relinquished it: the
        spec's HoldsLease is false then, and a leader that handed off to a successor
        that never took over must not keep the others from electing)."""
        self.now_us = now_us
        if m.src == self.node_id or not self.is_member():
            return []
        hears = self._v.detect.hears(now_us) or self.can_serve(now_us)
        self._record("AnswerProbe", a=self.node_id, m=m, hears=hears)
        return [Send(m.src, ProbeAckMsg(self.node_id, m.src, hears, m.n))]

    def receive_probe_ack(self, m: ProbeAckMsg) -> None:
        """Learn an answer to this replica's probe; no state of the spec changes. Only
        an answer to the current suspicion's probes (same nonce) counts."""
        if m.dst == self.node_id:
            self._v.detect.answer(m.src, m.hears, m.n)

    @spec_action
    def clear_suspicion(self, now_us: int) -> list[Effect]:
        """Drop the suspicion: a peer hears the leader, or r hears one again itself."""
        self.now_us = now_us
        detect = self._v.detect
        if not detect.may_clear(now_us):
            return []
        detect.clear()
        self._record("ClearSuspicion", r=self.node_id)
        return []

    @spec_action
    def lease_relinquish(self, s: str, now_us: int) -> list[Effect]:
        """Leader r, holding its lease, stops serving and renewing it and hands its
        ballot off to the storage member s of its view (before a planned restart)."""
        self.now_us = now_us
        v = self._v
        if v.role != "leader" or v.relinquished or not self.holds_lease(now_us):
            return []
        if s == self.node_id or v.view.get(s, "none") != "storage":
            return []
        v.relinquished = True
        v.successor = s
        self._record("LeaseRelinquish", r=self.node_id, s=s)
        return [Send(s, HandoffMsg(self.ballot, self.node_id, s))]

    def handoff_again(self) -> list[Effect]:
        """The handoff of a relinquished leadership again (a resend: no new step; the
        spec's message stays in ``msgs``)."""
        v = self._v
        if v.role != "leader" or not v.relinquished or v.successor is None:
            return []
        return [Send(v.successor, HandoffMsg(self.ballot, self.node_id, v.successor))]

    def receive_handoff(self, m: HandoffMsg) -> None:
        """Learn a handoff (spec: in ``msgs``); it enables Phase1a if it is for r's ballot."""
        if m.dst == self.node_id and m.bal == self.ballot and self._v.role != "leader":
            self._v.detect.handed_off(m.bal)

    @spec_action
    def link_down(self, to: str) -> list[Effect]:
        """The environment cut the directed link from this replica to ``to``."""
        self._record("LinkDown", **{"from": self.node_id, "to": to})
        return []

    @spec_action
    def link_up(self, to: str) -> list[Effect]:
        """The environment restored the directed link from this replica to ``to``."""
        self._record("LinkUp", **{"from": self.node_id, "to": to})
        return []

    @spec_action
    def crash(self) -> list[Effect]:
        """Lose volatile state; ballot, log, granted and the applied B-tree survive
        (and the probe nonce counter: answers from before the crash stay stale)."""
        self._v = _Volatile(detect=Detector(nonce=self._v.detect.nonce))
        self.snapshot_holders = set()
        self.joining = set()
        # The spec has no Crash for a non-member (it has no protocol state to lose).
        if self.is_member():
            self._record("Crash", r=self.node_id)
        return []

    # --- checkpoints (not spec actions: the node traces a Checkpoint env event) --------

    def checkpoint(self, upto: int) -> int:
        """Truncate the log through slot ``upto`` (committed, and applied here if this
        replica keeps a B-tree); returns how many entries were dropped (0: refused).

        The caller (reference/node.py) only passes a point every member of the
        leader's view has persisted, so that no member ever needs a truncated slot."""
        if upto <= self.base or (self.has_btree and upto > self.applied):
            return 0
        if any(s not in self.log for s in range(self.base + 1, upto + 1)):
            return 0  # it lacks slots it would claim to have checkpointed
        cfg = dict(self.base_config)
        named = set(self.base_named)
        for s in sorted(t for t in self._config_slots if t <= upto):
            c = self._config_slots.pop(s)
            cfg[c.who] = c.new_kind
            named.add(c.who)
        dropped = [s for s in self.log if s <= upto]
        for s in dropped:
            del self.log[s]
        self.base, self.base_config, self.base_named = upto, cfg, frozenset(named)
        self.top = max(self.top, upto)
        self._recompute_view()
        self._v.known_commits = {(b, t) for b, t in self._v.known_commits if t > upto}
        return len(dropped)

    def seed(self, base: int, config: tuple[tuple[str, Kind], ...],
             named: tuple[str, ...]) -> int:
        """Start the log after ``base`` on the leader's word that slots 1..base are
        committed, with ``config`` the configuration there (a joining replica that
        lacks slots the leader has truncated). Refused if it would skip slots this
        replica's B-tree has not applied. Returns entries dropped, or -1 if refused."""
        if base <= self.base or (self.has_btree and base > self.applied):
            return -1
        for t in [t for t in self._config_slots if t <= base]:
            del self._config_slots[t]
        dropped = [t for t in self.log if t <= base]
        for t in dropped:
            del self.log[t]
        self.base, self.base_config, self.base_named = base, dict(config), frozenset(named)
        self.top = max(self.top, base)
        self._recompute_view()
        self._v.known_commits = {(b, t) for b, t in self._v.known_commits if t > base}
        return len(dropped)

    def checkpoint_state(self) -> tuple[int, tuple[tuple[str, Kind], ...], tuple[str, ...]]:
        return self.base, config_pairs(self.base_config), tuple(sorted(self.base_named))

    @classmethod
    def restore(
        cls,
        node_id: str,
        members: dict[str, Kind],
        config: ReplicaConfig,
        durable: tuple[int, dict[int, Entry], int, int],
        *,
        schema: KeySchema = DEFAULT_SCHEMA,
        checkpoint: tuple[int, tuple[tuple[str, Kind], ...], tuple[str, ...]] | None = None,
        btree: Snapshot | None = None,
    ) -> Replica:
        """A restarted replica from its recovered durable state.

        The B-tree is rebuilt from its checkpoint ``btree`` (if any; slots 1..upto) by
        re-applying the later slots up to ``applied``, which gives exactly the state the
        spec keeps durable (``applied``): apply is deterministic. ``checkpoint`` is
        where a truncated WAL starts (base, configuration at base, ids named by then).
        """
        ballot, log, granted, applied = durable
        r = cls(node_id, members, config, schema=schema)
        r.ballot, r.granted = ballot, granted
        if checkpoint is not None and checkpoint[0] > 0:
            r.base, r.base_config = checkpoint[0], dict(checkpoint[1])
            r.base_named = frozenset(checkpoint[2])
            r.top = r.base
        for s, e in sorted(log.items()):
            if s > r.base:
                r._write_log(s, e)
        r._recompute_view()
        start = 1
        if btree is not None:
            r.store = StorageEngine.from_snapshot(btree.store)
            r.results = dict(btree.results)
            r.has_btree = True
            start = btree.upto + 1
            applied = max(applied, btree.upto)
        if r.has_btree:
            for s in range(start, applied + 1):
                cmd = r.entry(s).cmd
                if isinstance(cmd, Command) and cmd.request_id not in r.results:
                    r.results[cmd.request_id] = r._apply_op(cmd.op)
            r.applied = applied
        return r

    # --- durable state ------------------------------------------------------------------

    def durable_state(self) -> tuple[int, dict[int, Entry], int, int]:
        return self.ballot, dict(self.log), self.granted, self.applied


class _Report(NamedTuple):
    """One phase-1 report: checkpoint point, configuration and named ids there, log above."""

    base: int
    config: tuple[tuple[str, Kind], ...]
    named: frozenset[str]
    log: tuple[Entry, ...]


class _Election(NamedTuple):
    base: int
    recovered: list[Cmd]
    config: Config
    config_slots: dict[int, Change]
    named: set[str]
    base_config: Config


def is_minimal_quorum_of(config: Config, group: set[str]) -> bool:
    """``group`` is a minimal quorum (strict majority, no member to spare) of ``config``."""
    members = {r for r, k in config.items() if k != "none"}
    if not group <= members:
        return False
    n = len(members)
    return 2 * len(group) > n and 2 * (len(group) - 1) <= n


def is_quorum_of(config: Config, group: set[str]) -> bool:
    """Spec IsQuorumOf: a strict majority of ``config``'s members (any kind)."""
    members = {r for r, k in config.items() if k != "none"}
    return 2 * len(group & members) > len(members)


def is_minimal_quorum_of_all(configs: list[Config], group: set[str]) -> bool:
    """A quorum of every one of ``configs``, none of whose elements it could spare."""
    return (all(is_quorum_of(c, group) for c in configs)
            and all(not all(is_quorum_of(c, group - {a}) for c in configs) for a in group))


ACTION_OF_OP = {"add": "AddMember", "remove": "RemoveMember", "promote": "PromoteMember"}


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
    "Snapshot",
    "config_pairs",
    "decode_write",
    "is_minimal_quorum_of",
    "is_minimal_quorum_of_all",
    "is_quorum_of",
]
