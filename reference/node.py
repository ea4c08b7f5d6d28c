"""A replica process in the simulated world: the driver around the sans-IO Replica.

The node owns what the replica must not: the network endpoint, the local clock,
timers, the write-ahead log on its disk, and the trace. It

* decodes verified frames and hands messages to the replica's handlers;
* writes every ``Persist`` effect to the WAL and carries out the step's sends,
  replies and trace events only once the WAL is synced (``disk_sync_us`` later).
  A step is thus atomic with respect to crashes, as in the spec: a crash before the
  sync loses the step entirely (its WAL records, sends and trace events), a crash
  after it loses nothing the step made durable. Steps complete in order;
* runs a housekeeping tick: the election timeout (a follower that has not heard
  from its ballot's leader for a randomized timeout starts an election, or, with
  peer confirmation, suspects the leader and probes its peers: reference/leader_check.py),
  lease re-requests, and catch-up reports to the leader;
* hands its leadership off before a planned restart (``relinquish``: the spec's
  LeaseRelinquish to an up-to-date storage follower), and traces the environment's
  directed link failures it is the sender of (LinkDown/LinkUp);
* crashes (volatile state and unsynced WAL bytes are lost, and the last unsynced
  record may be left torn) and restarts (WAL recovery, then ``Replica.restore``).

Membership (issue 9): a node hosts one replica id for its whole life; a spare
node waits (``state == "spare"``) until the healing leader claims it for a new
incarnation id; ``kill`` takes a node away for good, disk and all. The leader's
node tracks its members' health (reference/health.py), runs the healing plan
(reference/healing.py) through the control plane (``ControlPlane``: spare nodes
and snapshot copies).

WAL truncation (``checkpoint_every`` > 0): the leader computes a truncation point
P = the highest slot that is committed, applied at the leader, and persisted in
its ballot by every member of its view and by every live replica catching up to
join (from their 2b votes and progress reports), and sends it (``TruncateMsg``)
each time it advanced by ``checkpoint_every``. Each replica then checkpoints:
a storage replica saves its B-tree (its own file, ``btree``) and drops the WAL
entries through min(P, applied); a log replica drops them through P. The WAL is
rewritten (to a new file, renamed into place) as a checkpoint record, the durable
scalars and the entries above it; the dropped entries go to the control plane's
archive (the paper's S3 archive). No member ever lacks an entry a leader no
longer holds; a joiner without a B-tree that does is *seeded* (``SeedMsg``): it
starts its log at the leader's checkpoint. A member that stays silent holds
truncation back until healing removes it.

Design choice (paper §5.2 is silent on repair): recovery that stops at a torn
tail only lost unsynced bytes, so the replica rejoins and catches up. Recovery
that stops at a *corrupt* record lost synced records — promises or votes the
replica may have given — and a Paxos acceptor that forgot a promise can break
Agreement. Such a replica is quarantined: it stays out of the protocol and the
group runs on without it until an operator (or, later, membership change)
replaces it. Corrupt data is never applied or served.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, get_args

import msgspec

from reference.clocks import LocalClock
from reference.codec import (
    ClientReply,
    ClientRequest,
    CodecError,
    ProgressMsg,
    SeedMsg,
    SnapshotReportMsg,
    TruncateMsg,
    Wire,
    decode,
    encode,
)
from reference.healing import Copy, HealConfig, plan
from reference.health import Health
from reference.messages import (
    EMPTY,
    Change,
    Cmd,
    Command,
    CommitMsg,
    Kind,
    LeaseAckMsg,
    LeaseMsg,
    Message,
    NotLeader,
    Phase1aMsg,
    Phase2aMsg,
    Phase2bMsg,
)
from reference.network import Network
from reference.pump import Pump
from reference.replica import (
    Apply,
    Broadcast,
    Effect,
    Persist,
    Recorded,
    Replica,
    ReplicaConfig,
    Reply,
    Send,
    SetTimer,
    Snapshot,
    decode_write,
)
from reference.retransmit import (
    catch_up,
    handoff_resend,
    have,
    lease_resend,
    resend_uncommitted,
)
from reference.simulator import Simulator
from reference.storage import DecodeError, Invalid
from reference.trace import TraceWriter, digest_fields, log_digest
from reference.trace_events import PostState
from reference.wal import HEADER_SIZE, Disk, WriteAheadLog
from reference.wal_records import (
    WalRecordError,
    applied_record,
    ballot_record,
    checkpoint_record,
    durable_and_checkpoint,
    granted_record,
    log_record,
)

NodeState = Literal["up", "down", "quarantined", "spare", "killed"]

_PROTOCOL: frozenset[type] = frozenset(get_args(Message))
"""The spec's message classes (the replica's handlers take them)."""
_LEADER_MESSAGES: frozenset[type] = frozenset({Phase2aMsg, CommitMsg, LeaseMsg, Phase1aMsg})
"""What a follower hears from a ballot's leader (or candidate): each re-arms its timeout."""


class ControlPlane(Protocol):
    """What a leader's healing needs from outside the group (reference/cluster.py)."""

    def spare(self) -> str | None:
        """The id of the spare node healing would use next (the same until it joins)."""
        ...

    def claim(self, who: str) -> None:
        """Start the spare node ``who`` (it joins as a new incarnation)."""
        ...

    def copying(self) -> set[str]:
        """Replicas a snapshot copy is under way to."""
        ...

    def copy_snapshot(self, src: str, dst: str) -> None:
        """Copy ``src``'s B-tree to ``dst`` (simulated time: size / bandwidth)."""
        ...

    def config_committed(self, leader: str, view: Mapping[str, Kind]) -> None:
        """The leader committed a configuration command; ``view`` is its view then."""
        ...

    def archive_entries(self, entries: Mapping[int, Cmd]) -> None:
        """Committed WAL entries a checkpoint is about to truncate (the S3 archive)."""
        ...


@dataclass(frozen=True, slots=True)
class NodeConfig:
    disk_sync_us: int = 100
    """Time for a WAL sync to complete (a step's effects wait for it)."""
    tick_us: int = 20_000
    """Local period of the housekeeping tick."""
    election_timeout_us: int = 1_500_000
    """Base election timeout; each arming draws uniformly from [T, 2T)."""
    progress_every: int = 5
    """Followers report progress to the leader every this many ticks."""
    torn_write_prob: float = 0.5
    """On a crash with unsynced WAL bytes, chance that part of the first one survives."""
    checkpoint_every: int = 0
    """Checkpoint the B-tree and truncate the WAL once this many slots past the last
    checkpoint are safe to drop (0: never truncate)."""
    heal: HealConfig = field(default_factory=HealConfig)
    """Fast healing (reference/healing.py); off by default."""

    def __post_init__(self) -> None:
        if self.disk_sync_us < 0 or self.tick_us <= 0 or self.election_timeout_us <= 0:
            raise ValueError("node timings must be positive")
        if self.progress_every < 1:
            raise ValueError("progress_every must be >= 1")
        if self.checkpoint_every < 0:
            raise ValueError("checkpoint_every must be >= 0")


class ReplicaNode:
    def __init__(
        self,
        sim: Simulator,
        net: Network,
        name: str,
        az: str,
        members: dict[str, Kind],
        config: ReplicaConfig,
        clock: LocalClock,
        rng: random.Random,
        trace: TraceWriter,
        node_config: NodeConfig | None = None,
        control: ControlPlane | None = None,
        *,
        spare: bool = False,
    ) -> None:
        """``members``: the group's initial configuration over every replica id (spares
        as ``"none"``). ``spare``: the node waits unstarted until ``activate``."""
        self.sim = sim
        self.net = net
        self.name = name
        self.members = dict(members)
        self.config = config
        self.clock = clock
        self.rng = rng
        self.trace = trace
        self.nc = node_config if node_config is not None else NodeConfig()
        self.disk = Disk()
        self.wal = WriteAheadLog(self.disk)
        self.replica = Replica(name, self.members, config)
        self.pump = Pump(self.replica)
        self.state: NodeState = "up"
        self.epoch = 0
        self.quarantine_reason = ""
        self._peers = [m for m in sorted(self.members) if m != name]
        self._reply_to: dict[str, str] = {}
        self._pending_syncs = 0
        self._queued: deque[tuple[list[Recorded], int, int]] = deque()
        """The traced steps waiting for their WAL sync, in order: (events, clock, real)."""
        self._last_post: PostState | None = None
        """The post-state of the last traced step."""
        self._persisted_ballot = 0
        self._persisted_granted = 0
        self._persisted_applied = 0
        self._election_deadline = 0
        self._ticks = 0
        self._last_progress: dict[str, tuple[int, int, int]] = {}
        self._last_committed = -1
        self._gap_reported_at = -1
        self.serving: list[list[int]] = []
        """Real-time [start, end) windows (simulated us) in which this replica could serve
        strong reads (leader, lease held and not relinquished, reads ready)."""
        self.restarts = 0
        self.action_counts: Counter[str] = Counter()
        self.control = control
        self.btree: Snapshot | None = None
        """The durable B-tree checkpoint (its own file on the node's disk), if any."""
        self._btree_pending: list[tuple[int, Snapshot]] = []
        self.health: Health | None = None
        self._safe_point = 0
        self._safe_ballot = 0
        """The ballot whose leader computed ``_safe_point``: truncation uses the point only
        while this replica's ballot is still that one (see ``_maybe_checkpoint``)."""
        self._sent_safe_point = 0
        self._target = sum(k != "none" for k in members.values())
        net.add_node(name, az, self._on_frame, self._on_message)
        if spare:
            self.state = "spare"
            net.set_node_up(name, False)
            return
        # A new group has no leader to wait for: elect one soon (the first timeout is a
        # tenth of the usual), with randomized starts so that one candidate usually wins.
        t = self.nc.election_timeout_us // 10
        self._election_deadline = self.now() + t + int(self.rng.random() * t)
        self._schedule_tick()

    def activate(self) -> None:
        """Start a spare node: it catches up from the leader's 2a messages (or a seed)."""
        if self.state != "spare":
            return
        self.state = "up"
        self.net.set_node_up(self.name, True)
        self._reset_election_deadline()
        self._schedule_tick()
        self._send_progress(urgent=True)

    # --- time ------------------------------------------------------------------------

    def now(self) -> int:
        return self.clock.now_us()

    def _at_local(self, at_local_us: int, callback: Any, *args: Any) -> None:
        """Run ``callback(epoch, *args)`` once the local clock reaches ``at_local_us``."""
        delay = max(0, at_local_us - self.now())
        self.sim.schedule(delay, callback, self.epoch, *args)

    def _reset_election_deadline(self) -> None:
        t = self.nc.election_timeout_us
        self._election_deadline = self.now() + t + int(self.rng.random() * t)

    def _schedule_tick(self) -> None:
        self.sim.schedule(self.nc.tick_us, self._tick, self.epoch)

    # --- effects -----------------------------------------------------------------------

    def _step(self, effects: list[Effect]) -> None:
        """Make one handler call's effects happen: WAL first, the rest after the sync."""
        r = self.replica
        if not effects and not r.events:
            return  # most pumps find nothing enabled
        events = r.events
        r.events = []
        wrote = False
        outputs: list[Effect] = []
        for e in effects:
            t = type(e)  # exact types: the replica builds these structs itself
            if t is Persist:
                wrote |= self._persist(e)  # type: ignore[arg-type]
            elif t is not Apply:
                outputs.append(e)
        if not events and not outputs and not wrote:
            return
        clock, real = self.clock.now_us(), self.sim.now
        if wrote or self._pending_syncs:
            self._pending_syncs += 1
            self._queued.append((events, clock, real))
            # The sync covers this step's records only: a later step's, written in the
            # meantime, must not become durable before its own sync.
            self.sim.schedule(self.nc.disk_sync_us, self._synced, self.epoch, events, outputs,
                              clock, real, len(self.disk))
        else:
            self._complete(events, outputs, clock, real)

    def _persist(self, p: Persist) -> bool:
        r = self.replica
        if p.what == "log":
            assert p.slot is not None
            e = r.log.get(p.slot, EMPTY)
            self.wal.append(log_record(p.slot, e.bal, e.cmd))
        elif p.what == "ballot":
            if r.ballot == self._persisted_ballot:
                return False
            self._persisted_ballot = r.ballot
            self.wal.append(ballot_record(r.ballot))
        elif p.what == "granted":
            if r.granted == self._persisted_granted:
                return False
            self._persisted_granted = r.granted
            self.wal.append(granted_record(r.granted))
        elif p.what == "applied":
            if r.applied == self._persisted_applied:
                return False
            self._persisted_applied = r.applied
            self.wal.append(applied_record(r.applied))
        elif p.what == "btree":
            # Its own file, written whole and renamed into place when the step's sync
            # completes (a crash before then loses the step, the B-tree with it).
            snap = r.take_snapshot()
            if snap is not None:
                self._btree_pending.append((len(self.disk), snap))
        else:
            raise ValueError(f"unknown durable state {p.what!r}")
        return True

    def _synced(self, epoch: int, events: list[Recorded],
                outputs: list[Effect], clock: int, real: int, upto: int) -> None:
        if epoch != self.epoch:
            return  # crashed before the sync completed: the step never happened
        self._pending_syncs -= 1
        self._queued.popleft()
        self.wal.sync(upto)
        installed = False
        while self._btree_pending and self._btree_pending[0][0] <= upto:
            self.btree = self._btree_pending.pop(0)[1]
            installed = True
        self._complete(events, outputs, clock, real)
        if installed and self.replica.kind() != "storage":
            self._send_progress(urgent=True)  # the snapshot is durable: report it now
        every = self.nc.checkpoint_every
        # (_maybe_checkpoint's own last test first, without the call: most steps fail it)
        if every and self._safe_point >= self.replica.base + every:
            self._maybe_checkpoint()

    def _complete(self, events: list[Recorded], outputs: list[Effect],
                  clock: int, real: int) -> None:
        if events:
            self._count_and_emit(events, clock, real)
        for e in outputs:
            t = type(e)
            if t is Send:
                self.net.send_msg(self.name, e.dst, e.msg, encode)  # type: ignore[union-attr]
            elif t is Broadcast:
                self.net.broadcast_msg(self.name, self._peers, e.msg,  # type: ignore[union-attr]
                                       encode)
            elif isinstance(e, Reply):
                client = self._reply_to.pop(e.request_id, None)
                if client is not None:
                    hint = None
                    if isinstance(e.result, NotLeader):
                        owner = self.replica.ballot_owner()
                        hint = owner if owner != self.name else None
                    self.net.send_msg(self.name, client,
                                      ClientReply(e.request_id, e.result, hint), encode)
            elif isinstance(e, SetTimer):
                self._at_local(e.at_local_us, self._timer, e.at_local_us)

    def _count_and_emit(self, events: list[Recorded], clock: int, real: int) -> None:
        trace = self.trace
        counts = self.action_counts
        control = self.control
        if events:
            self._last_post = events[-1].post
        for ev in events:
            action = ev.action
            counts[action] += 1
            if action == "Commit" and control is not None:
                r = self.replica
                s = ev.args["s"]
                if r.role == "leader" and r.ballot == ev.args["b"] \
                        and s in r.leader_config_slots():
                    control.config_committed(self.name, r.leader_config_at(s))
        if trace.sink is None and trace.listener is None:
            trace.seq += len(events)
        else:
            emit = trace.emit
            for action, args, post in events:
                emit(clock, real, action, args, post)

    def _salvage_link_events(self) -> None:
        """Trace the link failures and repairs queued behind WAL syncs that a crash or
        kill now loses: they are the environment's, and happened whatever became of
        the node's own steps.  The post-state is the last traced one (the lost steps
        never happened), without a lease (it may have run out since)."""
        post = self._last_post
        if post is not None:
            post = msgspec.structs.replace(post, lease=False)
        for events, clock, real in self._queued:
            links = [Recorded(ev.action, ev.args, post) for ev in events  # type: ignore[arg-type]
                     if ev.action in ("LinkDown", "LinkUp")]
            if links:
                self._count_and_emit(links, clock, real)
        self._queued.clear()

    def _env(self, action: str, post: PostState | None, **args: Any) -> None:
        self.trace.emit(self.now(), self.sim.now, action, args, post)

    # --- inputs ------------------------------------------------------------------------

    def _timer(self, epoch: int, at_local_us: int) -> None:
        if epoch != self.epoch or self.state != "up":
            return
        if self.now() < at_local_us:  # a slow clock: not there yet
            self._at_local(at_local_us, self._timer, at_local_us)
            return
        self._step(self.pump.pump(self.now()))
        self._observe_serving()

    def _tick(self, epoch: int) -> None:
        if epoch != self.epoch or self.state != "up":
            return
        self._schedule_tick()
        self._ticks += 1
        r = self.replica
        now = self.now()
        if r.role == "leader":
            self._step(lease_resend(r, now))
            self._step(handoff_resend(r))
            if r.committed_upto == self._last_committed and r.committed_upto < r.proposed_upto:
                self._step(resend_uncommitted(r, now))  # no commit progress for a whole tick
            self._last_committed = r.committed_upto
            self._lead_housekeeping(now)
        elif now >= self._election_deadline and r.kind() == "storage" and r.has_btree:
            self._reset_election_deadline()
            self._election_timeout(now)
        if r.role != "leader" and self._ticks % self.nc.progress_every == 0:
            self._send_progress()
        self._step(self.pump.pump(now))
        self._maybe_checkpoint()
        self._observe_serving()

    def _send_progress(self, urgent: bool = False) -> None:
        r = self.replica
        owner = r.ballot_owner()
        # A replica without a B-tree never applies: it reports its log as applied, so
        # the leader does not re-send it commit messages it has no use for.
        applied = r.applied if r.has_btree else have(r)
        if owner is not None and owner != self.name:
            report = ProgressMsg(r.ballot, self.name, owner, have(r), applied, urgent, r.base)
            self.net.send_msg(self.name, owner, report, encode)
        if r.has_btree and r.kind() != "storage" and self.btree is not None \
                and not self._btree_pending:
            # A snapshot installed for joining or promotion, once durable (its sync done:
            # a crash before it loses the B-tree, and a storage member without one breaks
            # LogReplicaNeverServes): tell whoever leads (or, not knowing yet, everyone).
            snap = SnapshotReportMsg(self.name, r.applied)
            if owner is not None and owner != self.name:
                self.net.send_msg(self.name, owner, snap, encode)
            else:
                self.net.broadcast_msg(self.name, self._peers, snap, encode)

    # --- leader housekeeping: health, healing, truncation ------------------------------

    def _lead_housekeeping(self, now: int) -> None:
        r = self.replica
        health = self.health
        if health is None:
            health = self.health = Health(now)
        view = r.leader_view
        members = [m for m, k in view.items() if k != "none"]
        heal = self.nc.heal
        if heal.enabled and self.control is not None:
            unhealthy = {m for m in members
                         if m != self.name and health.unhealthy(m, now, heal.unhealthy_after_us)}
            steps = plan(view, self.name, self._target, unhealthy, r.snapshot_holders,
                         self.control.copying(), self.control.spare(), heal.log_replicas)
            for step in steps:
                if isinstance(step, Copy):
                    self.control.claim(step.dst)
                    self.control.copy_snapshot(self.name, step.dst)
                elif r.may_change(now):
                    self.propose_change(step, now)
        if self.nc.checkpoint_every and not (heal.enabled and self.control is not None
                                             and self.control.copying()):
            # Truncation point: committed, applied here, persisted by every member and
            # every replica catching up to join (a live non-member that votes), and
            # applied by all of them. Without the last, a member that persisted a slot
            # but never learnt its commit (the commit messages lost, their leader gone)
            # could learn it from no one: a later leader re-proposes only above its own
            # checkpoint, and a seed may not skip slots a B-tree has not applied (seed
            # 486 of explore: stuck for good); a joiner counts too, since it may become a
            # member before it applies. A replica without a B-tree reports its log as
            # applied, so it does not hold truncation back.
            joiners = [m for m in health.match if view.get(m, "none") == "none"
                       and not health.unhealthy(m, now, heal.unhealthy_after_us)]
            safe = min(health.persisted_by_all(members + joiners, self.name, r.proposed_upto),
                       health.applied_by_all(members + joiners, self.name, r.applied),
                       r.committed_upto, r.applied)
            if safe >= self._sent_safe_point + self.nc.checkpoint_every:
                self._sent_safe_point = safe
                self._set_safe_point(r.ballot, safe)
                msg = TruncateMsg(r.ballot, self.name, safe)
                self.net.broadcast_msg(self.name, self._peers, msg, encode)

    def propose_change(self, c: Change, now: int | None = None) -> bool:
        """Have this node's replica (if it leads and may) append configuration command
        ``c``; an added replica's node is started first. Returns whether it did (tests
        and the Hypothesis machine call this directly)."""
        r = self.replica
        now = self.now() if now is None else now
        if self.state != "up":
            return False
        if c.op == "add":
            if self.control is not None:
                self.control.claim(c.who)
            handler = r.add_member
        else:
            handler = r.remove_member if c.op == "remove" else r.promote_member
        effects = handler(c, now)
        if effects and self.health is not None:
            self.health.heard(c.who, now)  # a joiner gets the full threshold to catch up
        self._step(effects)
        return bool(effects)

    def _set_safe_point(self, bal: int, upto: int) -> None:
        if bal != self._safe_ballot:
            self._safe_ballot, self._safe_point = bal, upto
        else:
            self._safe_point = max(self._safe_point, upto)

    def _maybe_checkpoint(self) -> None:
        """Truncate the WAL up to the safe point (applied first, with a B-tree).

        Called at every tick, and as soon as it may become possible: after each message
        (a truncation point or a commit arrived) and once the last pending sync is done.
        Replicas that truncated up to a tick (20 ms) apart would report different bases
        to a new leader, which re-proposes only above the highest: a voter behind it
        refuses those slots (no holes) until a gap report gets it seeded, a round trip
        more (deploy seed 4 with handoff: 8.2 ms against a 6.5 ms bound).

        Only with a point of the replica's current ballot: once it promised a later
        ballot (Phase1b), the new leader recovers from the bases the promises reported
        and re-proposes the slots above the highest; an acceptor that truncated past its
        reported base afterwards (on the old leader's point) could no longer vote for
        them (``phase2b`` refuses slots <= base), and the new leader, unable to commit
        its recovered slots, would never serve reads (deploy seed 1: 5 s)."""
        r = self.replica
        if not self.nc.checkpoint_every or self._pending_syncs or self.state != "up":
            return
        if self._safe_ballot != r.ballot:
            return
        upto = min(self._safe_point, r.applied) if r.has_btree else self._safe_point
        if upto < r.base + self.nc.checkpoint_every:
            return
        dropping = {s: e.cmd for s, e in r.log.items() if s <= upto}
        truncated = r.checkpoint(upto)
        if r.base != upto:
            return  # refused
        if self.control is not None:
            self.control.archive_entries(dropping)
        self._rewrite_wal()
        self._env("Checkpoint", r.summary(), upto=upto, truncated=truncated)

    def _rewrite_wal(self) -> None:
        """Replace the WAL by its live part: the checkpoint record, the durable scalars
        and the log above the checkpoint (with the B-tree file written first). A write
        to a new file and a rename: atomic, so a crash sees the old or the new WAL."""
        r = self.replica
        if r.has_btree:
            self.btree = r.take_snapshot()
        base, config, named = r.checkpoint_state()
        disk = Disk()
        wal = WriteAheadLog(disk, first_seq=self.wal.next_seq)
        wal.append(checkpoint_record(base, config, named))
        wal.append(ballot_record(r.ballot))
        wal.append(granted_record(r.granted))
        wal.append(applied_record(r.applied))
        for s in range(base + 1, r.top + 1):
            if s in r.log:
                e = r.log[s]
                wal.append(log_record(s, e.bal, e.cmd))
        disk.sync()
        self.disk, self.wal = disk, wal
        self._persisted_ballot, self._persisted_granted = r.ballot, r.granted
        self._persisted_applied = r.applied

    def _on_frame(self, dst: str, src: str, payload: bytes) -> None:
        if self.state != "up":
            return
        try:
            m = decode(payload)
        except CodecError:
            self.net.stats.dropped["undecodable"] += 1
            return
        self._on_message(dst, src, m)

    def _on_message(self, dst: str, src: str, m: Wire) -> None:
        """A message arrived (decoded, or sent as an object and delivered intact)."""
        if self.state != "up":
            return
        r = self.replica
        now = self.clock.now_us()
        if type(m) in _PROTOCOL:  # the common case first
            self._on_protocol(m, now)  # type: ignore[arg-type]
        elif isinstance(m, ClientRequest):
            self._on_request(src, m, now)
        elif isinstance(m, ProgressMsg):
            if self.health is not None and r.role == "leader":
                self.health.heard(m.src, now)
                self.health.reported_applied(m.src, m.applied)
                if m.bal == r.ballot:
                    self.health.persisted(m.src, m.have)
            key = (m.bal, m.have, m.applied)
            stalled = self._last_progress.get(m.src) == key
            self._last_progress[m.src] = key
            if stalled or m.urgent or m.bal < r.ballot:
                start = m.have + 1 if m.bal == r.ballot else m.base + 1
                if r.role == "leader" and start <= r.base:
                    # It lacks slots we have truncated: seed it from our checkpoint.
                    base, config, named = r.checkpoint_state()
                    seed = SeedMsg(r.ballot, self.name, base, config, named)
                    self.net.send_msg(self.name, m.src, seed, encode)
                self._step(catch_up(r, m.src, m.bal, m.have, m.applied, base=m.base))
        elif isinstance(m, SnapshotReportMsg):
            r.receive_snapshot_report(m.src)
        elif isinstance(m, SeedMsg):
            self._on_seed(m)
        elif isinstance(m, TruncateMsg):
            # Only if our log holds the leader's (chosen) entries through the point: a
            # replica the leader did not count (one joining, or removed) must not drop
            # slots it lacks, nor take a configuration from stale entries.
            if m.bal == r.ballot and have(r) >= m.upto:
                self._set_safe_point(m.bal, m.upto)
        elif isinstance(m, ClientReply):
            return  # replicas do not issue client requests
        else:
            self._on_protocol(m, now)
        self._observe_serving()
        every = self.nc.checkpoint_every
        # (_maybe_checkpoint's own last test first, without the call: most messages fail it)
        if every and self._safe_point >= self.replica.base + every:
            self._maybe_checkpoint()

    def _on_seed(self, m: SeedMsg) -> None:
        r = self.replica
        if m.bal < r.ballot or self._pending_syncs:
            return
        dropped = r.seed(m.base, m.config, m.named)
        if dropped < 0:
            return
        self._rewrite_wal()
        self._env("Checkpoint", r.summary(), upto=m.base, truncated=dropped)
        self._send_progress(urgent=True)

    def install_snapshot(self, snap: Snapshot) -> bool:
        """A snapshot copy arrived (reference/cluster.py timed it): install it."""
        if self.state != "up":
            return False
        effects = self.replica.install_snapshot(snap)
        if not effects:
            return False
        self._step(effects + self.pump.pump(self.now()))
        self._send_progress(urgent=True)
        return True

    def _on_protocol(self, m: Message, now: int) -> None:
        r = self.replica
        health = self.health
        t = type(m)
        was_leader = r.role == "leader"
        if health is not None and was_leader and (t is Phase2bMsg or t is LeaseAckMsg):
            assert isinstance(m, (Phase2bMsg, LeaseAckMsg))  # narrowed for mypy
            if m.bal == r.ballot:
                health.heard(m.src, now)
                if isinstance(m, Phase2bMsg):
                    health.persisted(m.src, m.slot)
        self._step(self.pump.receive(m, now))
        leader = r.role == "leader"
        if leader and not was_leader:
            self.health = Health(now)
        elif not leader:
            self.health = None
        if self.pump.reorder.held and now - self._gap_reported_at >= self.nc.tick_us // 2:
            owner = r.ballot_owner()
            if owner is None and isinstance(m, Phase2aMsg) and not r.is_member():
                owner = m.src  # a joiner does not know the leader yet: ask the sender
            if owner is not None and owner != self.name:
                self._gap_reported_at = now
                applied = r.applied if r.has_btree else have(r)
                report = ProgressMsg(r.ballot, self.name, owner, have(r), applied, True, r.base)
                self.net.send_msg(self.name, owner, report, encode)
        if not leader and t in _LEADER_MESSAGES and m.bal == r.ballot:  # type: ignore[union-attr]
            self._reset_election_deadline()

    # --- gray-failure detection and handoff (paper §6.2) --------------------------------

    def _election_timeout(self, now: int) -> None:
        """The election timeout fired. Without peer confirmation: elect. With it: a
        candidate sends its 1a again; a follower suspects the leader and probes the peers
        (the pump elects once a quorum confirms), or, if already suspecting, sends the
        probes again (an answer may have been lost)."""
        r = self.replica
        if not r.config.peer_confirm:
            self._step(r.phase1a(r.next_ballot(), now))
        elif r.role == "candidate":
            # A candidate may not suspect (spec Suspect: followers only), so a stalled
            # election must be finished by resending: the spec's 1a and 1b are never lost.
            self._step(r.phase1a_resend())
        elif r.suspecting:
            self._step(r.probes())
        else:
            self._step(r.suspect(now))

    def successor(self) -> str | None:
        """Leader: the storage member of its view to hand off to: the one known to have
        persisted the most of its ballot, heard from most recently (then by id)."""
        r = self.replica
        if self.state != "up" or r.role != "leader":
            return None
        health = self.health
        now = self.now()
        cands = [m for m, k in r.leader_view.items() if k == "storage" and m != self.name]
        if not cands:
            return None
        if health is None:
            return sorted(cands)[0]
        return max(sorted(cands), key=lambda m: (health.match.get(m, 0),
                                                 -health.silent_for(m, now)))

    def relinquish(self, successor: str | None = None) -> str | None:
        """Before a planned restart: relinquish the lease and hand the ballot off to
        ``successor`` (default ``successor()``). Returns who was handed it, or None."""
        s = self.successor() if successor is None else successor
        if s is None or self.state != "up":
            return None
        effects = self.replica.lease_relinquish(s, self.now())
        self._step(effects)
        self._observe_serving()
        return s if effects else None

    def can_serve_strong(self) -> bool:
        """Up, and its replica could serve a strong read now (leader, lease held and not
        relinquished, reads ready)."""
        return self.state == "up" and self.replica.can_strong_read(self.now())

    def link_event(self, to: str, up: bool) -> None:
        """Trace the environment's LinkDown/LinkUp of the directed link self -> to."""
        if self.state in ("spare", "killed"):
            return
        r = self.replica
        # Traced like any step, behind this node's pending WAL syncs, so that its trace
        # stays in clock order (the monitor judges receipts over a link by real time);
        # a crash before they complete still traces it (_salvage_link_events).
        self._step(r.link_up(to) if up else r.link_down(to))

    def _observe_serving(self) -> None:
        """Extend or cut this replica's current serving window (``serving``)."""
        r = self.replica
        t = self.sim.now
        serving = self.serving
        if self.state == "up" and r.role == "leader":
            now = self.clock.now_us()
            if r.can_strong_read(now):
                end = t + r.lease_left(now)
                if serving and serving[-1][1] >= t:
                    if end > serving[-1][1]:
                        serving[-1][1] = end
                else:
                    serving.append([t, end])
                return
        if serving and serving[-1][1] > t:
            serving[-1][1] = t

    def _on_request(self, client: str, m: ClientRequest, now: int) -> None:
        r = self.replica
        self._reply_to[m.rid] = client
        if m.kind == "write":
            try:
                decode_write(m.op)
            except DecodeError as exc:
                # Never replicate what no replica could apply: refuse it at the door.
                self._reply_to.pop(m.rid, None)
                reply = ClientReply(m.rid, Invalid(f"undecodable operation: {exc}"))
                self.net.send_msg(self.name, client, reply, encode)
                return
            self._step(r.client_write(Command(m.rid, m.op), now))
        elif m.key is None:
            self._reply_to.pop(m.rid, None)
        elif m.kind == "strong":
            self._step(r.strong_read(m.key, now, m.rid))
        else:
            self._step(r.eventual_read(m.key, m.rid, now))

    # --- faults ------------------------------------------------------------------------

    def crash(self) -> None:
        """Stop the process: volatile state, pending steps and unsynced WAL bytes are lost."""
        if self.state != "up":
            return
        self._salvage_link_events()
        self.replica.crash()
        self.pump = Pump(self.replica)  # held 2a messages are volatile
        # The Crash step happens now; steps still waiting for their sync are lost with it.
        events, self.replica.events = self.replica.events, []
        self._count_and_emit(events, self.now(), self.sim.now)
        self.epoch += 1
        self.state = "down"
        self._observe_serving()
        self.health = None
        self._btree_pending.clear()
        self._pending_syncs = 0
        self._reply_to.clear()
        self._last_progress.clear()
        self.net.set_node_up(self.name, False)
        unsynced = len(self.disk) - self.disk.synced_len
        keep = 0
        if unsynced and self.rng.random() < self.nc.torn_write_prob:
            # A torn write: a strict prefix of the first unsynced record reached the platter.
            first = self.wal_unsynced_record_len()
            keep = self.rng.randint(1, max(1, first - 1))
        self.disk.truncate(self.disk.synced_len + keep)
        self.disk.sync()

    def kill(self) -> None:
        """The node is gone for good, its disk with it (no restart; its replica id is
        never reused: a replacement joins as a new incarnation)."""
        if self.state == "killed":
            return
        self._salvage_link_events()
        self._env("Kill", None)
        self.epoch += 1
        self.state = "killed"
        self._observe_serving()
        self.health = None
        self._pending_syncs = 0
        self._reply_to.clear()
        self.net.set_node_up(self.name, False)
        self.disk = Disk()
        self.btree = None

    def wal_unsynced_record_len(self) -> int:
        start = self.disk.synced_len
        data = self.disk.view()
        try:
            if len(data) - start < HEADER_SIZE:
                return len(data) - start
            length = int.from_bytes(data[start + 4:start + 8], "big")
        finally:
            data.release()
        return HEADER_SIZE + length

    def flip_wal_bit(self, within_last: int | None = None) -> int:
        """Bit rot in the synced WAL while the node is down; returns the byte offset hit.

        ``within_last``: hit one of the last that many bytes (the newest records)."""
        size = len(self.disk)
        if not size:
            return -1
        lo = 0 if within_last is None else max(0, size - within_last)
        offset = self.rng.randrange(lo, size)
        self.disk.flip_bit(offset, self.rng.randrange(8))
        return offset

    def restart(self) -> None:
        """Start a fresh process on the surviving disk."""
        if self.state != "down":
            return
        self.restarts += 1
        self.wal, result = WriteAheadLog.open(self.disk)
        if result.kind in ("corrupt", "sequence"):
            self.state = "quarantined"
            self.quarantine_reason = f"WAL {result.kind} at byte {result.stop_offset}: " \
                                     f"{result.reason}"
            self._env("Quarantine", None, reason=self.quarantine_reason)
            return
        try:
            durable, checkpoint = durable_and_checkpoint([rec.payload for rec in result.records])
        except WalRecordError as exc:
            self.state = "quarantined"
            self.quarantine_reason = str(exc)
            self._env("Quarantine", None, reason=self.quarantine_reason)
            return
        self.replica = Replica.restore(self.name, self.members, self.config, durable,
                                       checkpoint=checkpoint, btree=self.btree)
        self.pump = Pump(self.replica)
        ballot, _, granted, applied = durable
        self._persisted_ballot, self._persisted_granted = ballot, granted
        self._persisted_applied = applied
        self.state = "up"
        self.net.set_node_up(self.name, True)
        digest = log_digest((slot, e.bal, *digest_fields(e.cmd))
                            for slot, e in sorted(self.replica.log.items()))
        self._env("Restart", self.replica.summary(), ballot=ballot, granted=granted,
                  applied=applied, log=self.replica.top, wal=result.kind,
                  truncated=result.truncated_bytes, digest=digest)
        self._reset_election_deadline()
        self._schedule_tick()


__all__ = ["ControlPlane", "NodeConfig", "ReplicaNode"]
