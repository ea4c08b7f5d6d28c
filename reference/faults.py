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
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Protocol

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


class FaultConfig(Protocol):
    """What the schedules read of the world's (effective) configuration."""

    @property
    def faults(self) -> str: ...

    @property
    def duration_us(self) -> int: ...

    @property
    def replicas(self) -> int: ...

    @property
    def node(self) -> NodeSettings: ...


class FaultNode(Protocol):
    def flip_wal_bit(self) -> int:
        """Rot a bit of the (down) node's WAL; returns the byte offset hit."""
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

    def leader(self) -> str | None: ...

    def up_nodes(self) -> list[str]: ...

    def note(self, what: str) -> None: ...

    def crash(self, name: str) -> None: ...

    def kill(self, name: str) -> None: ...

    def restart(self, name: str) -> None: ...

    def isolate(self, name: str) -> None: ...

    def fail_link(self, src: str, dst: str) -> None: ...

    def heal(self) -> None: ...


def install(world: FaultTarget) -> None:
    kind = world.config.faults
    if kind in ("crashes", "disk-faults"):
        _every(world, 3 * SECOND, 8 * SECOND, lambda: _crash_one(world, 0.5))
    elif kind == "partitions":
        _every(world, 3 * SECOND, 8 * SECOND, lambda: _partition_one(world))
    elif kind == "clock-drift":
        _every(world, 4 * SECOND, 8 * SECOND, lambda: _crash_one(world, 1.0))
    elif kind == "heal":
        world.sim.schedule_at(world.config.node.heal.kill_at_us, lambda: _kill_one(world))


def _kill_one(world: FaultTarget) -> None:
    """Kill the leader, or a follower among the initial storage replicas."""
    leader = world.leader()
    if world.config.node.heal.victim == "leader" and leader is not None:
        world.kill(leader)
        return
    group = list(world.nodes)[:world.config.replicas]
    followers = [n for n in group if n != leader and n in world.up_nodes()]
    if followers:
        world.kill(world.fault_rng.choice(followers))


def _every(world: FaultTarget, lo: int, hi: int, act: Callable[[], None]) -> None:
    rng = world.fault_rng
    t = rng.randint(lo, hi)
    end = world.config.duration_us
    while t < end:
        world.sim.schedule_at(t, act)
        t += rng.randint(lo, hi)


def _crash_one(world: FaultTarget, leader_bias: float) -> None:
    rng = world.fault_rng
    up = world.up_nodes()
    if len(up) <= len(world.nodes) // 2:
        return  # keep a quorum up so the run keeps making progress
    leader = world.leader()
    name = leader if leader is not None and rng.random() < leader_bias else rng.choice(up)
    world.crash(name)
    node = world.nodes[name]
    flip = world.config.faults == "disk-faults" and not world.faults_injected["flip_bit"]
    if flip:
        offset = node.flip_wal_bit()
        world.note(f"flip_bit {name} byte {offset}")
    world.sim.schedule(rng.randint(1 * SECOND, 4 * SECOND), world.restart, name)


def _partition_one(world: FaultTarget) -> None:
    rng = world.fault_rng
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
