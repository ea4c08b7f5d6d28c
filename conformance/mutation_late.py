"""The scripted scenario that exposes the late-message bugs (issue 12), for
conformance/mutation_matrix.py; the bugs are in conformance/mutants.py.

| bug | what breaks | its late message |
|---|---|---|
| GrantExpiredRequest | a follower grants a lease request that expired | a request 2 s late |
| LateGrantRenews | the leader counts a grant for its latest request | a grant 1.2 s late |

``late``: three replicas, two clients reading strongly, failure detection and handoff
on. From 1.0 s to 1.6 s every message from the leader to one follower (``first``) takes
2 s, so a lease request sent then arrives after its lease ran out: refused, unless
GrantExpiredRequest. At 3 s the other follower crashes and every message from
``first`` to the leader starts taking 1.2 s; at 3.5 s ``first`` crashes too, with a
grant on its way. The correct leader's lease lapses (nobody grants its next request)
and it stops serving strong reads; with LateGrantRenews the late grant counts for that
next request, which nobody granted, and the leader serves without a lease. At 5 s the
link is back and both followers restart.
"""

from __future__ import annotations

from conformance import mutants
from reference.cluster import SimConfig, World
from reference.node import NodeConfig
from reference.workload import WorkloadConfig

SECOND = 1_000_000

LATE_BUGS = {n: mutants.BUGS[n] for n in ("GrantExpiredRequest", "LateGrantRenews")}
LATE_SCENARIO_OF = dict.fromkeys(LATE_BUGS, "late")


def late_config(seed: int) -> SimConfig:
    return SimConfig(seed=seed, clients=2, duration_us=6 * SECOND, settle_us=1 * SECOND,
                     peer_confirm=True, handoff=True,
                     workload=WorkloadConfig(keys=4, think_us=40_000,
                                             consistent_fraction=1.0),
                     node=NodeConfig(disk_sync_us=500))


def late_script(world: World) -> None:
    picked: dict[str, str] = {}

    def slow_requests() -> None:
        leader = world.leader()
        if leader is None:
            return
        first, second = [n for n in world.config.ids() if n != leader][:2]
        picked.update(leader=leader, first=first, second=second)
        world.slow_link(leader, first, 2 * SECOND)

    def requests_on_time() -> None:
        if picked:
            world.slow_link(picked["leader"], picked["first"], None)

    def slow_grants() -> None:
        if not picked:
            return
        world.crash(picked["second"])
        world.slow_link(picked["first"], picked["leader"], 1_200_000)

    def crash_first() -> None:
        if picked:
            world.crash(picked["first"])

    def back() -> None:
        if not picked:
            return
        world.slow_link(picked["first"], picked["leader"], None)
        world.restart(picked["first"])
        world.restart(picked["second"])

    world.sim.schedule_at(1 * SECOND, slow_requests)
    world.sim.schedule_at(1_600_000, requests_on_time)
    world.sim.schedule_at(3 * SECOND, slow_grants)
    world.sim.schedule_at(3_500_000, crash_first)
    world.sim.schedule_at(5 * SECOND, back)


__all__ = ["LATE_BUGS", "LATE_SCENARIO_OF", "late_config", "late_script"]
