"""Hypothesis state machine: clients and faults drive a simulated group; the monitor
checks the spec's invariants after every step.

Each example builds a ``World`` (3 replicas, two spare nodes with the membership
rules, no background workload) from a drawn seed. Rules issue client operations
on three keys (asynchronously: they complete as simulated time passes), inject
faults (crash, restart, partition, heal, one-way link failure, clock skew, WAL bit
rot on a down replica) and advance time. Swarm testing: every example enables a
random subset of the fault kinds, so some examples hammer one kind of fault and
others none.

Membership (issue 9; examples that draw the ``membership`` flag): add a spare
as a log replica, or as a storage replica once a snapshot copy reached it; replace
a log replica by a storage one (snapshot copy, then promote); remove a member; kill
a node for good (once per example). The rules go through the leader
(``ReplicaNode.propose_change``), which refuses what it may not do, and interleave
with the client operations, leader changes and faults.

After every rule the invariant runs: the live monitor must have no violation,
and at most one replica may hold a lease at the current instant (evaluated
exactly, on each replica's own clock). ``teardown`` heals everything, lets the
group settle and checks the whole history with the end-of-run audit and, when
available, the linearizability checker.

Late messages (issue 12): the ``late`` fault holds back the next one to four messages
on one link (mostly from or to the leader) by longer than the lease margin, the time
between lease requests, the lease, an election timeout, or two and a half of them
(``Network.hold_next``): replies from a ballot their sender has left and lease requests
or grants past their time.

Gray failures and deployments (issue 10): every example draws whether failure
detection (``peer_confirm``) and lease handoff are on; the ``link`` and ``partition``
faults exercise detection, and the ``deploy`` fault restarts a replica's process, the
leader handing its lease off first when handoff is on.

Rare situations are reported with ``hypothesis.event`` (see
``--hypothesis-show-statistics``): a leader whose lease expired while it still
led, a leader change while a write was in flight, a crash between a WAL write and
the step's messages (a pending sync), an elected leader that had to wait out an
older lease, a quarantine, and for membership, per rule, ``membership: <rule>
attempted`` / ``proposed`` (the leader took it) / ``refused: <guard>``, snapshot
copies and installs, a committed configuration command, a kill (of the leader).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import HealthCheck, settings, target
from hypothesis import event as hypothesis_event
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from conformance.lease_theorem import require_lease_safety
from conformance.monitor import Monitor
from reference.client import Client
from reference.cluster import SimConfig, World, replica_names
from reference.messages import Change
from reference.node import NodeConfig, ReplicaNode
from reference.storage import (
    AddNumber,
    AttributeNotExists,
    Compare,
    Key,
    M,
    N,
    Put,
    S,
    SetAttr,
    Update,
)
from reference.trace_events import action_of
from reference.wal import HEADER_SIZE, Disk, recover

KEYS = ("a", "b", "c")

EVENT_COUNTS: Counter[str] = Counter()
"""How often each rare situation was reached in this process (the deep run prints it)."""


def event(name: str) -> None:
    EVENT_COUNTS[name] += 1
    hypothesis_event(name)

FAULT_KINDS = ("crash", "partition", "link", "skew", "corrupt", "deploy", "late")
SPARES = 2
MS = 1_000


def _rot_a_logged_digit(node: ReplicaNode, spot: int) -> bool:
    """Bit rot that still decodes: flip the low bit of a digit in the payload of a
    log-entry record ('0' <-> '1', ..., '8' <-> '9'), so the slot, ballot or command
    read back differ from what was written and only the record's checksum can tell.
    False if the (down) node's WAL holds no such digit."""
    records = recover(Disk(node.disk.contents())).records
    spots = [r.offset + HEADER_SIZE + i for r in records if r.payload.startswith(b'["l"')
             for i, ch in enumerate(r.payload) if 0x30 <= ch <= 0x39]
    if not spots:
        return False
    node.disk.flip_bit(spots[spot % len(spots)], 0)
    return True


def _refusal(node: ReplicaNode, c: Change) -> str:
    """Which guard refused a change (the events show whether the rules ever get past it)."""
    if node.state != "up":
        return "not leading"
    why = node.replica.change_refusal(node.now())
    if why is not None:
        return why
    return "not valid in its view" if not node.replica.change_valid(c) else "other"


class ReplicationMachine(RuleBasedStateMachine):
    """One simulated group per example; see the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self.world: World | None = None
        self.monitor: Monitor | None = None
        self.enabled: frozenset[str] = frozenset()
        self.clients: list[Client] = []
        self.names = replica_names(3)
        self.leader_was: str | None = None
        self.lease_seen: set[str] = set()
        self.corrupted: str | None = None  # the replica whose WAL a fault corrupted
        self.membership = False
        self.kills = 0
        self.added_as: dict[str, str] = {}
        """Spare id -> the kind an add of it was proposed with."""
        self.handoff = False

    # --- setup -------------------------------------------------------------------------

    @initialize(seed=st.integers(0, 2**32 - 1),
                swarm=st.lists(st.booleans(), min_size=len(FAULT_KINDS),
                               max_size=len(FAULT_KINDS)),
                drift=st.sampled_from([2_000, 20_000]),
                election_ms=st.sampled_from([200, 1_500]),
                membership=st.sampled_from([True, False]),
                peer_confirm=st.booleans(), handoff=st.booleans())
    def setup(self, seed: int, swarm: list[bool], drift: int, election_ms: int,
              membership: bool, peer_confirm: bool, handoff: bool) -> None:
        enabled = frozenset(k for k, on in zip(FAULT_KINDS, swarm, strict=True) if on)
        # A slower disk widens the window between a step's WAL write and its messages.
        # Two spare nodes (r4, r5) for the membership rules to bring in; none without them
        # (an idle spare still costs simulation time).
        cfg = SimConfig(seed=seed, clients=0, duration_us=10**12, settle_us=3_000 * MS,
                        spares=SPARES if membership else 0,
                        peer_confirm=peer_confirm, handoff=handoff,
                        max_drift_us=drift, max_rate_ppm=20_000,
                        renew_ahead_us=900_000 if election_ms < 500 else 500_000,
                        node=NodeConfig(disk_sync_us=1_000,
                                        election_timeout_us=election_ms * MS))
        rc = cfg.replica_config()
        self.monitor = Monitor(cfg.effective().initial_members(), rc.lease_dur_us,
                               rc.lease_margin_us, peer_confirm=peer_confirm)
        self.world = World(cfg, listener=self._on_event, check_config=require_lease_safety)
        self.enabled = enabled
        w = self.world
        self.membership = membership
        self.clients = [Client(w.sim, w.net, f"hc{i}", f"az{i + 1}", w.config.ids(),
                               w.sim.fork_rng(), w.history, cfg.client) for i in range(3)]
        w.sim.run(until_us=500 * MS)  # the first election
        # Elections faster than the lease leave the lease wait as the only guard.
        event(f"election timeout {election_ms} ms")
        for kind in sorted(enabled):
            event(f"swarm: {kind} enabled")
        if membership:
            event("swarm: membership enabled")
        event(f"peer confirmation {'on' if peer_confirm else 'off'}")
        self.handoff = handoff

    def _on_event(self, ev: Any) -> None:
        assert self.monitor is not None and self.world is not None
        self.monitor.step(ev)
        action = action_of(ev)
        if action == "BecomeLeader":
            if any(not h.done and h.write is not None for h in self.world.history):
                event("leader change with a write in flight")
            node = self.world.nodes[ev.node]
            if node.replica.wait_left(node.now()) > 0:
                event("new leader waits out an older lease")
        elif action == "Quarantine":
            event("replica quarantined after WAL corruption")
        elif action == "Phase1a":
            leader = self.world.leader()
            if leader is not None and leader != ev.node \
                    and self.world.nodes[leader].can_serve_strong():
                event("gray: an election while the leader could serve")
        elif action == "ClearSuspicion":
            event("gray: a suspicion was vetoed by a peer")
        elif action == "LeaseRelinquish":
            event("deploy: a leader relinquished its lease")
        elif action == "InstallSnapshot":
            event("membership: a snapshot was installed")
        elif action == "Commit" and self._commits_change(ev):
            event("membership: a configuration command was committed")

    @property
    def w(self) -> World:
        assert self.world is not None
        return self.world

    # --- client operations ---------------------------------------------------------------

    def _client(self, i: int) -> Client:
        return self.clients[i % len(self.clients)]

    @rule(c=st.integers(0, 2), k=st.sampled_from(KEYS), v=st.integers(0, 9))
    def put(self, c: int, k: str, v: int) -> None:
        self._client(c).write("put", Key(S(k)),
                              lambda rid: Put(M(pk=S(k), v=N(v), w=S(rid))))

    @rule(c=st.integers(0, 2), k=st.sampled_from(KEYS), consistent=st.booleans())
    def get(self, c: int, k: str, consistent: bool) -> None:
        self._client(c).get(Key(S(k)), consistent)

    @rule(c=st.integers(0, 2), k=st.sampled_from(KEYS), v=st.integers(0, 9))
    def conditional_update(self, c: int, k: str, v: int) -> None:
        # A version check against the last value this key had at the leader, if any.
        leader = self.w.leader()
        item = self.w.nodes[leader].replica.store.get(Key(S(k))) if leader else None
        w_attr = item.get("w") if item is not None else None
        cond = Compare("w", "=", w_attr) if isinstance(w_attr, S) else AttributeNotExists("pk")
        self._client(c).write("update", Key(S(k)), lambda rid: Update(
            Key(S(k)), (SetAttr("v", N(v)), SetAttr("w", S(rid)), AddNumber("n", N(1))), cond))

    @rule(c=st.integers(0, 2), k=st.sampled_from(KEYS))
    def delete(self, c: int, k: str) -> None:
        self._client(c).delete(Key(S(k)))

    # --- time ----------------------------------------------------------------------------

    @rule(us=st.sampled_from([300, 1_000, 5_000, 20_000, 100_000, 400_000, 1_200_000,
                              2_500_000]))
    def advance(self, us: int) -> None:
        self.w.sim.run(until_us=self.w.sim.now + us)

    # --- faults --------------------------------------------------------------------------

    @rule(data=st.data())
    def fault(self, data: st.DataObject) -> None:
        """One fault of a kind this example enabled (swarm testing); none if none is."""
        if not self.enabled:
            return
        kind = data.draw(st.sampled_from([*sorted(self.enabled), "heal/restart"]), label="kind")
        w, names = self.w, self.names
        if kind == "crash":
            up = sorted(w.up_nodes())
            leader = w.leader()
            if up:
                prefer = leader if leader in up and data.draw(st.booleans(), label="leader") \
                    else data.draw(st.sampled_from(up), label="crash")
                self._crash(prefer)
        elif kind == "corrupt":
            up = w.up_nodes()
            if up and not self.corrupted:
                name = data.draw(st.sampled_from(sorted(up)), label="corrupt")
                if not self._may_lose_disk(name):
                    return
                w.crash(name)
                # Anywhere, among the newest records, or a digit of a logged entry.
                where = data.draw(st.sampled_from([0, 400, -1]), label="where")
                if where < 0:
                    spot = data.draw(st.integers(0, 1 << 20), label="digit")
                    if _rot_a_logged_digit(w.nodes[name], spot):
                        event("WAL digit rotted (decodes; only the checksum can tell)")
                else:
                    w.nodes[name].flip_wal_bit(within_last=where or None)
                self.corrupted = name
                event("WAL bit flipped")
        elif kind == "partition":
            w.isolate(data.draw(st.sampled_from(names), label="isolate"))
        elif kind == "link":
            src = data.draw(st.sampled_from(names), label="src")
            dst = data.draw(st.sampled_from([n for n in names if n != src]), label="dst")
            w.fail_link(src, dst)
        elif kind == "late":
            # Mostly the leader's messages (its 2a and lease requests) or those to it (the
            # votes and grants): the ones whose lateness a bug could mistake.
            leader = w.leader()
            src = leader if leader is not None and data.draw(st.booleans(), label="leader's") \
                else data.draw(st.sampled_from(names), label="src")
            dst = data.draw(st.sampled_from([n for n in names if n != src]), label="dst")
            et = w.config.node.election_timeout_us
            rc = w.config.replica_config()
            extra = data.draw(st.sampled_from([
                rc.lease_margin_us + 2 * MS, rc.lease_dur_us - rc.renew_ahead_us + 100 * MS,
                rc.lease_dur_us + 2 * rc.lease_margin_us, et + 100 * MS, 2 * et + et // 2]),
                label="late by")
            for _ in range(data.draw(st.integers(1, 4), label="messages")):
                w.net.hold_next(src, dst, extra)
            event(f"late: messages held back {extra // MS} ms")
        elif kind == "skew":
            clock = w.nodes[data.draw(st.sampled_from(names), label="skew")].clock
            fast = data.draw(st.booleans(), label="fast")
            clock.skew(clock.max_rate_ppm if fast else -clock.max_rate_ppm)
        else:
            w.heal()
            for n in names:
                w.restart(n)

    # --- membership (issue 9): interleaved with the client operations and faults ---------

    def _leader_node(self) -> tuple[str, ReplicaNode] | None:
        leader = self.w.leader()
        return None if leader is None else (leader, self.w.nodes[leader])

    def _propose(self, node: ReplicaNode, c: Change, what: str) -> None:
        event(f"membership: {what} attempted")
        if not node.replica.may_change(node.now()):
            # A new leader changes nothing before it committed an entry of its own
            # ballot: give it a write and up to 200 ms to commit it.
            self._client(0).write("put", Key(S("a")),
                                  lambda rid: Put(M(pk=S("a"), v=N(0), w=S(rid))))
            deadline = self.w.sim.now + 200 * MS
            while self.w.sim.now < deadline and node.state == "up" \
                    and not node.replica.may_change(node.now()) and self.w.sim.step():
                pass
        if node.propose_change(c):
            if c.op == "add" and c.kind is not None:
                self.added_as[c.who] = c.kind
            event(f"membership: {what} proposed")
        else:
            event(f"membership: {what} refused: {_refusal(node, c)}")

    @rule(data=st.data())
    def membership_change(self, data: st.DataObject) -> None:
        """One membership step (if this example enabled them; always enabled, so that
        no example is rejected for lack of an enabled rule)."""
        if not self.membership:
            return
        ops = ["add log", "add storage", "replace", "remove"] + (["kill"] if not self.kills else [])
        op = data.draw(st.sampled_from(ops), label="membership")
        if op.startswith("add"):
            self._add_member(op.split()[1])
        elif op == "replace":
            self._replace_log_replica()
        elif op == "remove":
            self._remove_member(data)
        else:
            self._kill(data)

    def _add_member(self, kind: str) -> None:
        """Add a spare node as a log replica (it catches up from the WAL), or as a storage
        replica once a copy of the leader's B-tree has reached it (else start the copy)."""
        # An operator adds an incarnation id with one kind only: an add whose proposal a
        # leader change lost may be asked again, but not as the other kind (a change's
        # command id is "add-<who>": two different adds under one id would be two
        # commands the traces cannot tell apart; traces/FORMAT.md).
        lead = self._leader_node()
        free = [s for s in self.w.spares() if self.added_as.get(s, kind) == kind]
        if lead is None or not free:
            return
        leader, node = lead
        # Two spares, so that adding a log replica (immediate) does not always take
        # the only spare before a storage replica's copy completes: a storage add
        # prefers a spare that holds or is receiving a copy, a log add one that is not.
        busy = node.replica.snapshot_holders | self.w.copying()
        ready = [s for s in free if s in busy]
        idle = [s for s in free if s not in busy]
        spare = (ready or idle)[0] if kind == "storage" else (idle or ready)[0]
        if kind == "log":
            self._propose(node, Change("add", spare, "log"), "add a log replica")
        elif spare in node.replica.snapshot_holders:
            self._propose(node, Change("add", spare, "storage"), "add a storage replica")
        else:
            self.w.claim(spare)
            self.w.copy_snapshot(leader, spare)
            event("membership: snapshot copy to a spare started")
            if self._await_copy(node, spare):
                self._propose(node, Change("add", spare, "storage"), "add a storage replica")

    def _await_copy(self, node: ReplicaNode, dst: str) -> bool:
        """Let the simulation run (up to 3 s) until the leader learns that ``dst``
        installed its copy, so that one rule can also add or promote it (a copy lost
        with its source, or a leader change, ends the wait)."""
        deadline = self.w.sim.now + 3_000 * MS
        while (dst not in node.replica.snapshot_holders and self.w.sim.now < deadline
               and node.state == "up" and node.replica.role == "leader" and self.w.sim.step()):
            pass
        return dst in node.replica.snapshot_holders and node.replica.role == "leader"

    def _replace_log_replica(self) -> None:
        """Make a log replica a storage replica again: copy the leader's B-tree to it,
        then (a later call) promote it."""
        lead = self._leader_node()
        if lead is None:
            return
        leader, node = lead
        logs = sorted(m for m, k in node.replica.leader_view.items() if k == "log")
        if not logs:
            return
        x = logs[0]
        if x in node.replica.snapshot_holders:
            self._propose(node, Change("promote", x), "promote")
        elif x not in self.w.copying():
            self.w.copy_snapshot(leader, x)
            event("membership: snapshot copy to a log replica started")
            if self._await_copy(node, x):
                self._propose(node, Change("promote", x), "promote")

    def _remove_member(self, data: st.DataObject) -> None:
        lead = self._leader_node()
        if lead is None:
            return
        leader, node = lead
        others = sorted(m for m, k in node.replica.leader_view.items()
                        if k != "none" and m != leader)
        if others:
            x = data.draw(st.sampled_from(others), label="remove")
            self._propose(node, Change("remove", x), "remove a member")

    def _kill(self, data: st.DataObject) -> None:
        """A node is gone for good, disk and all (once per example)."""
        alive = sorted(n for n, node in self.w.nodes.items()
                       if node.state in ("up", "down", "quarantined"))
        if len(alive) <= 1:
            return
        name = data.draw(st.sampled_from(alive), label="kill")
        if not self._may_lose_disk(name):
            event("membership: a kill refused (beyond the fault budget)")
            return
        if name == self.w.leader():
            event("membership: the leader was killed")
        self.w.kill(name)
        self.kills += 1
        event("membership: a node was killed")

    def _may_lose_disk(self, victim: str) -> bool:
        """The fault budget: a disk may be lost (a kill, or a corruption that quarantines)
        only if every configuration a live replica holds keeps a majority of members with
        intact disks. Beyond it, losing acknowledged writes is the environment's doing."""
        # A corrupted WAL may have lost its tail (or quarantine the node): count it lost.
        lost = {n for n, node in self.w.nodes.items()
                if node.state in ("killed", "quarantined") or n == self.corrupted} | {victim}
        for node in self.w.nodes.values():
            if node.state != "up":
                continue
            members = {m for m, k in node.replica.leader_view.items() if k != "none"}
            if members and 2 * len(members - lost) <= len(members):
                return False
        return True

    def _commits_change(self, ev: Any) -> bool:
        node = self.w.nodes.get(ev.node)
        slot = getattr(ev.args, "s", None) if hasattr(ev, "args") else None
        if node is None or not isinstance(slot, int):
            return False
        return isinstance(node.replica.entry(slot).cmd, Change)

    def _crash(self, name: str) -> None:
        if name == self.w.leader():
            event("leader crashed")
        if self.w.nodes[name]._pending_syncs:
            event("crash between a WAL write and its step's messages")
        self.w.crash(name)

    @precondition(lambda self: "crash" in self.enabled)
    @rule(k=st.sampled_from(KEYS), v=st.integers(0, 9), after=st.integers(0, 3))
    def crash_leader_mid_write(self, k: str, v: int, after: int) -> None:
        """A write reaches the leader, which crashes while the write's WAL record syncs
        (or right after it synced, depending on ``after``)."""
        w = self.w
        leader = w.leader()
        if leader is None:
            return
        node = w.nodes[leader]
        self._client(0).write("put", Key(S(k)), lambda rid: Put(M(pk=S(k), v=N(v), w=S(rid))))
        deadline = w.sim.now + 50 * MS
        while w.sim.now < deadline and not node._pending_syncs and w.sim.step():
            pass
        for _ in range(after):
            w.sim.step()
        self._crash(leader)

    # --- deployments (issue 10) ---------------------------------------------------------

    @precondition(lambda self: "deploy" in self.enabled)
    @rule(data=st.data())
    def deploy_restart(self, data: st.DataObject) -> None:
        """A deployment restarts one replica's process. The leader, in examples with
        ``handoff``, first relinquishes its lease to a successor, and the restart waits
        (up to 500 ms simulated) for the successor to serve."""
        w = self.w
        up = sorted(n for n in w.up_nodes() if n in self.names)
        if not up:
            return
        name = data.draw(st.sampled_from(up), label="deploy")
        if name == w.leader() and self.handoff:
            s = w.nodes[name].relinquish()
            if s is not None:
                event("deploy: the leader handed its lease off")
                deadline = w.sim.now + 500 * MS
                while w.sim.now < deadline and not w.nodes[s].can_serve_strong() \
                        and w.sim.step():
                    pass
                if w.nodes[s].can_serve_strong():
                    event("deploy: the successor served before the old leader restarted")
        self._crash(name)
        w.sim.run(until_us=w.sim.now + 300 * MS)
        w.restart(name)

    # --- invariants ----------------------------------------------------------------------

    @invariant()
    def monitor_finds_nothing(self) -> None:
        if self.monitor is None:
            return
        assert not self.monitor.violations, "\n".join(map(str, self.monitor.violations[:5]))

    @invariant()
    def one_lease_at_a_time(self) -> None:
        if self.world is None:
            return
        holders = [n for n, node in self.w.nodes.items()
                   if node.state == "up" and node.replica.holds_lease(node.now())]
        assert len(holders) <= 1, f"LeaseExclusivity: {holders} hold leases at once"
        leader = self.w.leader()
        if leader is not None:
            node = self.w.nodes[leader]
            if node.replica.holds_lease(node.now()):
                self.lease_seen.add(leader)
            elif leader in self.lease_seen and node.now() >= node.replica.wait_until:
                event("a leader's lease expired while it still led")
                self.lease_seen.discard(leader)
            if leader != self.leader_was:
                self.leader_was = leader

    def teardown(self) -> None:
        if self.world is None:
            return
        w = self.world
        w.settle()
        report = w.audit()
        target(float(sum(n.action_counts["BecomeLeader"] for n in w.nodes.values())),
               label="leader changes")
        assert self.monitor is not None
        assert not self.monitor.violations, "\n".join(map(str, self.monitor.violations[:5]))
        assert report.ok, "\n".join(report.problems()[:5])
        try:
            from conformance.linearizability import check_history
        except ImportError:  # pragma: no cover - the checker is optional here
            return
        lin = check_history(w.history)
        assert lin.ok, str(lin.violations[:2])



# --- profiles ------------------------------------------------------------------------------

_COMMON: dict[str, Any] = {
    "deadline": None,
    "suppress_health_check": list(HealthCheck),
    "database": None,
}
PROFILES = {
    # CI: bounded; about a minute on one core.
    "ci": settings(max_examples=300, stateful_step_count=60, **_COMMON),
    # Deep: one batch of a long run (see conformance/deep_run.py), longer sequences.
    "deep": settings(max_examples=200, stateful_step_count=120, **_COMMON),
}
