"""Named fault schedules for ``dynaspec simulate --faults NAME``.

Each schedule injects faults during the workload (``[0, duration)``); the world
heals everything afterwards. Times are drawn from the world's fault stream.

* ``none``: a healthy group.
* ``crashes``: every 3-8 s a replica crashes (half the time the leader) and
  restarts 1-4 s later; a crash may leave a torn last WAL record.
* ``partitions``: every 3-8 s either the leader or a random replica is isolated
  (symmetric partition), or one direction of a link from the leader fails (a gray
  failure: the leader hears the follower but cannot reach it); healed 1-5 s later.
* ``flaky-network``: 5% loss, 2% duplication, 3 ms jitter (reordering), 1% of
  frames corrupted (caught by the message checksum); see ``SimConfig.effective``.
* ``clock-drift``: clocks wander within +/-50 ms at up to 5% rate error, and the
  leader crashes every 4-8 s, so leases change hands under maximal drift.
* ``disk-faults``: as ``crashes``, and once a bit of a down replica's WAL rots;
  that replica finds the corruption on restart and is quarantined.
* ``heal``: at ``HealConfig.kill_at_us`` (3 s) one storage replica is killed for
  good, its disk with it: by default a follower (``HealConfig.victim``), so that
  the run shows healing alone, not an election as well; the leader notices it,
  and heals the group with a spare node (reference/healing.py). Nothing else fails.
* ``gray``: gray failures around the leader, never a real failure: one fault at a
  time, starting at 2 s and then 1-2 s after the previous one ends: one direction of
  a link between the leader and a random follower fails for 1-4 s (LinkDown, then
  LinkUp; the first: leader -> follower for 3 s), and every fourth fault (from the
  second) is a slow link instead: for
  4-6 s every message from the leader to one follower takes 2 x the election timeout
  + 0.5 s, longer than any randomized timeout. No crashes, no loss elsewhere. A
  follower cut off from the leader suspects it; with peer confirmation (the default)
  its peers, which still hear the leader, veto the election; without it the follower
  deposes a healthy leader.
* ``deploy``: a rolling restart of the initial replicas, one at a time, every 5 s after a
  2 s warm-up, round after round. A follower's process just restarts (crash, WAL
  recovery, restart 0.5 s later). The leader, with handoff (the default), first
  relinquishes its lease to an up-to-date storage follower (re-sending the handoff
  each tick until it is deposed) and waits until that one *serves* strong reads (at
  most 0.5 s), then restarts; without handoff it just restarts, and the group waits
  for an election timeout and then the old lease. Waiting until the successor merely
  leads is not enough: the old leader is often one of the quorum the successor was
  elected by, and must still vote for the recovered slots the successor re-proposes
  (it commits them before it serves reads) and grant its first lease; restarted
  then, the successor has to catch the other follower up first (its log may start
  below the recovered slots: the WAL has no holes), a round trip and a tick more.

Kinds for fault mixes only (not named schedules: ``dynaspec simulate --faults`` takes them
bare or in a mix, but FAULT_SCHEDULES and the runs of the named schedules are unchanged):

* ``membership``: an operator replaces replicas, one at a time, from about 1 s on: a spare
  joins as a log replica (AddMember), the victim (any storage member; a leader is first
  restarted so that leadership moves off it) is removed 0-200 ms later (RemoveMember;
  a correct leader refuses a change while another is in flight, and the operator asks
  again every 50 ms), the newcomer gets a B-tree copy of the leader's, its election timer
  fires once while it is a log replica (the node's own timer runs only for storage
  replicas: what is tested is the replica's guard), and 0.2-1 s later it is promoted
  (PromoteMember). The next replacement starts 2-5 s after the last ended, while spares
  last. Removals of live followers are what make a removed replica's vote arrive while
  its removal is in flight. Everything stops with the workload.
* ``late-grants``: every 2-6 s the leader keeps one storage follower (the rest of the
  group crashes), whose messages to it take longer than a lease renewal interval; 0.5 s
  to a lease later that follower crashes too, with its grants still on their way, and
  1-3 s after that everything is back. The leader's lease requests then go unanswered
  while late grants of earlier requests arrive: a correct leader counts each for the
  request it answers, whose lease has run out, and stops serving.

Fault mixes (``dynaspec explore``'s swarm): ``KIND:RATE+KIND:RATE...``, e.g.
``crashes:2+partitions:0.5``, installs each kind's schedule at once, its faults
``RATE`` times as frequent as the named schedule's (the waits between faults divided
by it; ``flaky-network``: its loss, duplication and corruption probabilities
multiplied by it; ``heal``: one kill whatever the rate). A bare name (``crashes``)
is the named schedule, drawing from the world's fault stream exactly as it always
did, so its runs keep their bytes; a mix (any text with a rate or a ``+``) gives each
kind its own stream, derived from the fault stream and the kind's name, so dropping a
kind from a mix (explore's shrinking) leaves the other kinds' faults where they were.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from reference.messages import Change
from reference.simulator import Simulator

SECOND = 1_000_000


class HealSettings(Protocol):
    @property
    def victim(self) -> str: ...

    @property
    def kill_at_us(self) -> int: ...


class NodeSettings(Protocol):
    @property
    def heal(self) -> HealSettings: ...

    @property
    def election_timeout_us(self) -> int: ...


class FaultConfig(Protocol):
    """What the schedules read of the world's (effective) configuration."""

    @property
    def faults(self) -> str: ...

    @property
    def handoff(self) -> bool: ...

    @property
    def duration_us(self) -> int: ...

    @property
    def replicas(self) -> int: ...

    @property
    def lease_dur_us(self) -> int: ...

    @property
    def renew_ahead_us(self) -> int: ...

    @property
    def node(self) -> NodeSettings: ...


class FaultReplica(Protocol):
    """What the ``membership`` kind reads of a replica."""

    @property
    def has_btree(self) -> bool: ...

    @property
    def leader_view(self) -> Mapping[str, str]: ...

    def kind(self, who: str | None = None) -> str: ...


class FaultNode(Protocol):
    def flip_wal_bit(self) -> int:
        """Rot a bit of the (down) node's WAL; returns the byte offset hit."""
        ...

    def relinquish(self, successor: str | None = None) -> str | None:
        """Leader: relinquish the lease and hand off; returns the successor (None: no)."""
        ...

    def can_serve_strong(self) -> bool:
        """Up, and its replica could serve a strong read now."""
        ...

    @property
    def state(self) -> str: ...

    @property
    def replica(self) -> FaultReplica: ...

    def propose_change(self, c: Change, now: int | None = None) -> bool:
        """Leader: append configuration command ``c`` if it may; whether it did."""
        ...

    def now(self) -> int:
        """The node's local clock."""
        ...

    def _election_timeout(self, now: int) -> None:
        """What the node does when its election timer fires (no public hook yet)."""
        ...


class FaultTarget(Protocol):
    """The part of ``reference.cluster.World`` the schedules use.  A protocol rather
    than an import, so that ``cluster`` can import this module without a cycle."""

    @property
    def config(self) -> FaultConfig: ...

    @property
    def sim(self) -> Simulator: ...

    @property
    def fault_rng(self) -> random.Random: ...

    @property
    def nodes(self) -> Mapping[str, FaultNode]: ...

    @property
    def faults_injected(self) -> Mapping[str, int]: ...

    @property
    def restarts_planned(self) -> list[dict[str, Any]]: ...

    def leader(self) -> str | None: ...

    def up_nodes(self) -> list[str]: ...

    def note(self, what: str) -> None: ...

    def crash(self, name: str) -> None: ...

    def kill(self, name: str) -> None: ...

    def restart(self, name: str) -> None: ...

    def isolate(self, name: str) -> None: ...

    def fail_link(self, src: str, dst: str) -> None: ...

    def restore_link(self, src: str, dst: str) -> None: ...

    def slow_link(self, src: str, dst: str, latency_us: int | None) -> None: ...

    def heal(self) -> None: ...

    def spare(self) -> str | None: ...

    def copying(self) -> set[str]: ...

    def copy_snapshot(self, src: str, dst: str) -> None: ...


FAULT_KINDS = ("crashes", "partitions", "flaky-network", "clock-drift", "disk-faults", "heal",
               "gray", "deploy", "membership", "late-grants")
"""The kinds a fault mix combines: every named schedule but ``none``, then the kinds
only mixes use (appended: explore's draw of the earlier kinds depends on their order)."""
MAX_RATE = 10.0


def parse_faults(text: str) -> list[tuple[str, float]]:
    """``(kind, rate)`` per kind of a schedule name or mix (``none``: no kind);
    ``ValueError`` names what is wrong."""
    if text == "none":
        return []
    parts: list[tuple[str, float]] = []
    for item in text.split("+"):
        kind, sep, rate_text = item.partition(":")
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r} in {text!r}; choose from none, "
                             f"{', '.join(FAULT_KINDS)}, or a mix KIND:RATE+KIND:RATE")
        try:
            rate = float(rate_text) if sep else 1.0
        except ValueError:
            raise ValueError(f"fault rate {rate_text!r} of {kind} is not a number") from None
        if not 0 < rate <= MAX_RATE:
            raise ValueError(f"fault rate {rate_text} of {kind} must be in (0, {MAX_RATE:g}]")
        if kind in (k for k, _ in parts):
            raise ValueError(f"fault kind {kind} twice in {text!r}")
        parts.append((kind, rate))
    return parts


def is_mix(text: str) -> bool:
    """A mix, rather than a bare schedule name (whose draws must not change)."""
    return ":" in text or "+" in text


def format_mix(parts: list[tuple[str, float]]) -> str:
    """The mix text ``parse_faults`` reads back; ``none`` if no kind."""
    return "+".join(f"{k}:{r:g}" for k, r in parts) or "none"


def install(world: FaultTarget) -> None:
    text = world.config.faults
    parts = parse_faults(text)
    if not is_mix(text):
        for kind, rate in parts:
            _install_kind(world, kind, rate, world.fault_rng)
        return
    base = world.fault_rng.getrandbits(64)
    for kind, rate in parts:
        # str seeds hash with SHA-512: the same stream in every process, any PYTHONHASHSEED.
        _install_kind(world, kind, rate, random.Random(f"{base}:{kind}"))


def _install_kind(world: FaultTarget, kind: str, rate: float, rng: random.Random) -> None:
    if kind in ("crashes", "disk-faults"):
        flip = kind == "disk-faults"
        _every(world, rng, 3 * SECOND, 8 * SECOND, rate,
               lambda: _crash_one(world, rng, 0.5, flip))
    elif kind == "partitions":
        _every(world, rng, 3 * SECOND, 8 * SECOND, rate, lambda: _partition_one(world, rng))
    elif kind == "clock-drift":
        _every(world, rng, 4 * SECOND, 8 * SECOND, rate,
               lambda: _crash_one(world, rng, 1.0, False))
    elif kind == "heal":
        world.sim.schedule_at(world.config.node.heal.kill_at_us, lambda: _kill_one(world, rng))
    elif kind == "gray":
        _gray(world, rng, rate)
    elif kind == "deploy":
        _deploy(world, rate)
    elif kind == "membership":
        _Replacements(world, rng, rate).install()
    elif kind == "late-grants":
        busy: list[bool] = [False]
        _every(world, rng, 2 * SECOND, 6 * SECOND, rate, lambda: _late_grants(world, rng, busy))
    # flaky-network: SimConfig.effective sets the network's probabilities.


def _kill_one(world: FaultTarget, rng: random.Random) -> None:
    """Kill the leader, or a follower among the initial storage replicas."""
    leader = world.leader()
    if world.config.node.heal.victim == "leader" and leader is not None:
        world.kill(leader)
        return
    group = list(world.nodes)[:world.config.replicas]
    followers = [n for n in group if n != leader and n in world.up_nodes()]
    if followers:
        world.kill(rng.choice(followers))


def _every(world: FaultTarget, rng: random.Random, lo: int, hi: int, rate: float,
           act: Callable[[], None]) -> None:
    if rate != 1.0:  # (rate 1 leaves the bounds, hence the draws, as they were)
        lo, hi = max(1, round(lo / rate)), max(1, round(hi / rate))
    t = rng.randint(lo, hi)
    end = world.config.duration_us
    while t < end:
        world.sim.schedule_at(t, act)
        t += rng.randint(lo, hi)


def _crash_one(world: FaultTarget, rng: random.Random, leader_bias: float, flip: bool) -> None:
    up = world.up_nodes()
    if len(up) <= len(world.nodes) // 2:
        return  # keep a quorum up so the run keeps making progress
    leader = world.leader()
    name = leader if leader is not None and rng.random() < leader_bias else rng.choice(up)
    world.crash(name)
    node = world.nodes[name]
    if flip and not world.faults_injected["flip_bit"]:
        offset = node.flip_wal_bit()
        world.note(f"flip_bit {name} byte {offset}")
    world.sim.schedule(rng.randint(1 * SECOND, 4 * SECOND), world.restart, name)


def _partition_one(world: FaultTarget, rng: random.Random) -> None:
    leader = world.leader()
    names = list(world.nodes)
    roll = rng.random()
    if leader is not None and roll < 0.4:
        world.isolate(leader)
    elif leader is not None and roll < 0.7:
        world.fail_link(leader, rng.choice([n for n in names if n != leader]))
    else:
        world.isolate(rng.choice(names))
    world.sim.schedule(rng.randint(1 * SECOND, 5 * SECOND), world.heal)


# --- gray failures -------------------------------------------------------------------

GRAY_FIRST_US = 2 * SECOND
"""The first gray fault (the group has a leader holding its lease by then)."""


def _gray(world: FaultTarget, rng: random.Random, rate: float) -> None:
    gap_lo, gap_hi = SECOND, 2 * SECOND
    if rate != 1.0:
        gap_lo, gap_hi = max(1, round(gap_lo / rate)), max(1, round(gap_hi / rate))
    slow_us = 2 * world.config.node.election_timeout_us + SECOND // 2
    t, i = GRAY_FIRST_US, 0
    while t < world.config.duration_us:
        slow = i % 4 == 1
        took = rng.randint(4 * SECOND, 6 * SECOND) if slow else rng.randint(SECOND, 4 * SECOND)
        pick, direction = rng.random(), rng.random()
        if i == 0:  # the first: the leader's link to a follower, for 3 s
            took, direction = 3 * SECOND, 0.0
        world.sim.schedule_at(t, _gray_fault, world, slow, took, slow_us, pick, direction)
        t += took + rng.randint(gap_lo, gap_hi)
        i += 1


def _gray_fault(world: FaultTarget, slow: bool, took: int, slow_us: int, pick: float,
                direction: float) -> None:
    leader = world.leader()
    if leader is None:
        return
    group = list(world.nodes)[:world.config.replicas]
    followers = [n for n in group if n != leader and n in world.up_nodes()]
    if not followers:
        return
    f = followers[min(int(pick * len(followers)), len(followers) - 1)]
    if slow:
        world.slow_link(leader, f, slow_us)
        world.sim.schedule(took, world.slow_link, leader, f, None)
        return
    src, dst = (leader, f) if direction < 0.5 else (f, leader)
    world.fail_link(src, dst)
    world.sim.schedule(took, world.restore_link, src, dst)


# --- deployment: rolling restart with lease handoff ------------------------------------

DEPLOY_WARMUP_US = 2 * SECOND
DEPLOY_EVERY_US = 5 * SECOND
DEPLOY_DOWNTIME_US = SECOND // 2
"""How long a restarted process is down."""
HANDOFF_TIMEOUT_US = SECOND // 2
"""How long the deployment waits for the successor to serve before restarting anyway."""
HANDOFF_POLL_US = 1_000


def _deploy(world: FaultTarget, rate: float) -> None:
    group = list(world.nodes)[:world.config.replicas]
    every = DEPLOY_EVERY_US if rate == 1.0 else max(1, round(DEPLOY_EVERY_US / rate))
    t, i = DEPLOY_WARMUP_US, 0
    while t < world.config.duration_us:
        world.sim.schedule_at(t, _deploy_one, world, group[i % len(group)])
        t += every
        i += 1


def _deploy_one(world: FaultTarget, name: str) -> None:
    now = world.sim.now
    leader = world.leader()
    rec: dict[str, Any] = {"replica": name, "start_us": now, "leader": name == leader,
                           "handoff": None}
    world.restarts_planned.append(rec)
    if name == leader and world.config.handoff:
        s = world.nodes[name].relinquish()
        if s is not None:
            world.note(f"handoff {name}->{s}")
            rec["handoff"] = s
            _await_successor(world, name, s, rec, now + HANDOFF_TIMEOUT_US)
            return
    _restart_process(world, name, rec)


def _await_successor(world: FaultTarget, name: str, s: str, rec: dict[str, Any],
                     deadline: int) -> None:
    serves = world.nodes[s].can_serve_strong()
    if serves or world.sim.now >= deadline:
        rec["successor_leads"] = world.leader() == s
        rec["successor_serves"] = serves
        _restart_process(world, name, rec)
        return
    world.sim.schedule(HANDOFF_POLL_US, _await_successor, world, name, s, rec, deadline)


def _restart_process(world: FaultTarget, name: str, rec: dict[str, Any]) -> None:
    rec["crash_us"] = world.sim.now
    world.crash(name)
    world.sim.schedule(DEPLOY_DOWNTIME_US, world.restart, name)


# --- membership: an operator replacing replicas --------------------------------------

MEMBERSHIP_FIRST_US = (1 * SECOND, 2 * SECOND)
"""When the first replacement starts (the group has a leader by then)."""
MEMBERSHIP_GAP_US = (2 * SECOND, 5 * SECOND)
"""From the end of one replacement to the start of the next (divided by the rate)."""
OPERATOR_POLL_US = 50_000
"""How often the operator asks again after a refusal (or checks on a copy)."""
MEMBERSHIP_COPY_BPS = 1_000_000
"""Snapshot copy bandwidth with ``membership`` on: the healing default (8 KB/s, scaled
to show healing's minutes) would have a copy outlast an explore run of seconds."""
_REMOVE_AFTER_US = (0, 1_000, 20_000, 200_000)
"""How long after the add the operator asks for the removal: at once (the add is still
in flight: a correct leader refuses), or once it has likely committed."""


def membership_spares(duration_us: int, rate: float) -> int:
    """Spare nodes the ``membership`` kind may use: one per replacement that could start
    within ``duration_us`` (the group's maximum of 9 at most)."""
    gap = max(1, round(MEMBERSHIP_GAP_US[0] / rate))
    return max(1, min(9, 1 + (duration_us - MEMBERSHIP_FIRST_US[0]) // gap))


class _Replacements:
    """The operator: one replacement at a time; each step re-asked until the leader takes
    it (or is seen done: a new leader may have recovered it), until the workload ends."""

    def __init__(self, world: FaultTarget, rng: random.Random, rate: float) -> None:
        self.world, self.rng = world, rng
        lo, hi = MEMBERSHIP_GAP_US
        self.gap = (lo, hi) if rate == 1.0 else (max(1, round(lo / rate)),
                                                 max(1, round(hi / rate)))

    def install(self) -> None:
        self.world.sim.schedule_at(self.rng.randint(*MEMBERSHIP_FIRST_US), self.start)

    def _over(self) -> bool:
        return self.world.sim.now >= self.world.config.duration_us

    def _later(self, step: Callable[..., None], *args: object) -> None:
        if not self._over():
            self.world.sim.schedule(OPERATOR_POLL_US, step, *args)

    def _view(self) -> tuple[str, Mapping[str, str]] | None:
        leader = self.world.leader()
        if leader is None:
            return None
        return leader, self.world.nodes[leader].replica.leader_view

    def start(self) -> None:
        if self._over():
            return
        w = self.world
        new = w.spare()
        seen = self._view()
        if new is None:
            w.note("operator: no spare left")
            return
        if seen is None:
            self._later(self.start)
            return
        _, view = seen
        victim = self.rng.choice(sorted(m for m, k in view.items() if k == "storage"))
        remove_after = self.rng.choice(_REMOVE_AFTER_US)
        hold = self.rng.randint(SECOND // 5, SECOND)
        w.note(f"operator replaces {victim} with {new}")
        self.change(Change("add", new, "log"),
                    lambda: w.sim.schedule(remove_after, self.remove, victim, new, hold))

    def change(self, c: Change, then: Callable[[], object]) -> None:
        """Have the leader append ``c`` (asking again until it does), then ``then()``."""
        seen = self._view()
        if seen is not None:
            leader, view = seen
            done = {"add": view.get(c.who, "none") != "none",
                    "remove": view.get(c.who, "none") == "none",
                    "promote": view.get(c.who, "none") == "storage"}[c.op]
            if done or self.world.nodes[leader].propose_change(c):
                if not done:
                    self.world.note(f"operator {c.op} {c.who}")
                then()
                return
        self._later(self.change, c, then)

    def member(self, new: str, then: Callable[[], object]) -> None:
        """``then()`` once the newcomer is a member in the leader's view (its add may have
        been lost with a leader; ask for it again then)."""
        seen = self._view()
        if seen is None:
            self._later(self.member, new, then)
        elif seen[1].get(new, "none") == "none":
            self.change(Change("add", new, "log"), then)
        else:
            then()

    def remove(self, victim: str, new: str, hold: int) -> None:
        if self._over():
            return
        w = self.world
        if w.leader() == victim:
            # A leader cannot remove itself: restart it, so that leadership moves.
            w.crash(victim)
            w.sim.schedule(DEPLOY_DOWNTIME_US, w.restart, victim)
            self._later(self.remove, victim, new, hold)
            return
        self.member(new, lambda: self.change(Change("remove", victim),
                                             lambda: self.copy(new, hold)))

    def copy(self, new: str, hold: int) -> None:
        """Ship the newcomer the leader's B-tree (again, if a copy was lost)."""
        w = self.world
        node = w.nodes[new]
        if node.state in ("killed", "quarantined") or self._over():
            return  # lost for good: healing's business, not the operator's
        if node.state == "up" and node.replica.has_btree:
            if node.replica.kind() == "log":
                w.note(f"operator: {new}'s election timer fires")
                node._election_timeout(node.now())
            w.sim.schedule(hold, self.promote, new)
            return
        seen = self._view()
        if seen is not None and new not in w.copying():
            w.copy_snapshot(seen[0], new)
        self._later(self.copy, new, hold)

    def promote(self, new: str) -> None:
        self.member(new, lambda: self.change(Change("promote", new), self.next))

    def next(self) -> None:
        self.world.sim.schedule(self.rng.randint(*self.gap), self.start)


# --- late grants --------------------------------------------------------------------------


def _late_grants(world: FaultTarget, rng: random.Random, busy: list[bool]) -> None:
    """One episode (see the module's docstring); none while the last is still on."""
    leader = world.leader()
    if busy[0] or leader is None:
        return
    view = world.nodes[leader].replica.leader_view
    up = set(world.up_nodes())
    followers = sorted(m for m, k in view.items() if k == "storage" and m != leader and m in up)
    if not followers:
        return
    cfg = world.config
    renew_every = cfg.lease_dur_us - cfg.renew_ahead_us
    keep = rng.choice(followers)
    late_us = rng.randint(renew_every + 100_000, cfg.lease_dur_us + renew_every)
    keep_for = rng.randint(renew_every, cfg.lease_dur_us)
    back_after = keep_for + rng.randint(1 * SECOND, 3 * SECOND)
    others = [m for m in followers if m != keep]
    busy[0] = True
    for m in others:
        world.crash(m)
    world.slow_link(keep, leader, late_us)
    world.sim.schedule(keep_for, world.crash, keep)

    def back() -> None:
        busy[0] = False
        world.slow_link(keep, leader, None)
        for m in [keep, *others]:
            world.restart(m)

    world.sim.schedule(back_after, back)
