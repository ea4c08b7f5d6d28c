"""Seeded bugs of gray-failure detection and lease handoff (issue 10), and the two
scripted scenarios that expose them; conformance/mutation_matrix.py runs them.

Each bug mirrors a mutant of the spec (specs/MC_Replication.tla) and replaces one seam
of the reference for the duration of ``mutants.active``:

| bug (= spec mutant) | what breaks |
|---|---|
| NoPeerConfirm | a suspicion alone elects (``Detector.confirmed_by_quorum``) |
| SkipWaitWithoutHandoff | a new leader never waits out an older lease |
| ServeAfterRelinquish | a relinquished leader still serves |
| RenewAfterRelinquish | a relinquished leader still renews |

| VouchWithoutLease | granting any lease request counts as hearing the leader |

VouchWithoutLease shows on ``gray``: the deaf leader's lease lapses, and it keeps asking
for one (``held = false``); with the bug the follower that still hears those requests
vouches for the leader in its probe answers.

Scenarios: ``gray`` cuts the leader's incoming links (it goes deaf and loses its
lease, while its requests still reach the followers) and one follower's link from the
leader, so that follower suspects and the other answers its probe (SkipWaitWithoutHandoff
runs on the matrix's ``lease`` scenario, where a new leader must wait); ``handoff`` has
the leader relinquish twice without being restarted, while clients keep reading, so a
relinquished leader has time to serve and to renew. Both run with failure detection
and handoff on.
"""

from __future__ import annotations

from typing import Any

from conformance import mutants
from reference import leader_check as leader_check_mod
from reference import replica as replica_mod
from reference.cluster import SimConfig, World
from reference.node import NodeConfig
from reference.workload import WorkloadConfig

SECOND = 1_000_000


def _no_peer_confirm() -> list[tuple[Any, str, Any]]:
    def confirmed_by_quorum(self: leader_check_mod.Detector, me: str, now_us: int,
                            is_quorum: Any) -> bool:
        return bool(self.suspecting)

    return [(leader_check_mod.Detector, "confirmed_by_quorum", confirmed_by_quorum)]


def _skip_wait_without_handoff() -> list[tuple[Any, str, Any]]:
    return [(replica_mod.Replica, "become_leader", mutants.patched_method(
        replica_mod.Replica, "become_leader",
        "and not (v.took_over and max(grants) <= v.took_over)", "and False"))]


def _serve_after_relinquish() -> list[tuple[Any, str, Any]]:
    return [(replica_mod.Replica, "can_serve", mutants.patched_method(
        replica_mod.Replica, "can_serve",
        "self.holds_lease(now_us) and not self._v.relinquished", "self.holds_lease(now_us)"))]


def _renew_after_relinquish() -> list[tuple[Any, str, Any]]:
    return [(replica_mod.Replica, "lease_renew", mutants.patched_method(
        replica_mod.Replica, "lease_renew", "if v.relinquished:", "if False:"))]


def _vouch_without_lease() -> list[tuple[Any, str, Any]]:
    return [(replica_mod.Replica, "lease_grant", mutants.patched_method(
        replica_mod.Replica, "lease_grant", "if m.held:", "if True:"))]


GRAY_BUGS: dict[str, mutants.Bug] = mutants.register(
    mutants.Bug("NoPeerConfirm", "NoPeerConfirm",
                "a follower elects on its suspicion alone", _no_peer_confirm),
    mutants.Bug("SkipWaitWithoutHandoff", "SkipWaitWithoutHandoff",
                "a new leader skips the lease wait without a handoff",
                _skip_wait_without_handoff),
    mutants.Bug("ServeAfterRelinquish", "ServeAfterRelinquish",
                "a leader serves after relinquishing its lease", _serve_after_relinquish),
    mutants.Bug("RenewAfterRelinquish", "RenewAfterRelinquish",
                "a leader renews after relinquishing its lease", _renew_after_relinquish),
    mutants.Bug("VouchWithoutLease", "VouchWithoutLease",
                "a grant of any lease request counts as hearing the leader",
                _vouch_without_lease),
)

# Which scenario shows which bug.
GRAY_SCENARIO_OF = {"NoPeerConfirm": "gray", "VouchWithoutLease": "gray",
                    "SkipWaitWithoutHandoff": "lease",
                    "ServeAfterRelinquish": "handoff", "RenewAfterRelinquish": "handoff"}


def gray_config(seed: int) -> SimConfig:
    """Failure detection on, light load, short (TLC validates the interesting part)."""
    return SimConfig(seed=seed, clients=1, duration_us=6 * SECOND, settle_us=1 * SECOND,
                     peer_confirm=True, handoff=True,
                     workload=WorkloadConfig(keys=4, think_us=50_000),
                     node=NodeConfig(disk_sync_us=500))


def gray_script(world: World) -> None:
    """At 1 s the leader goes deaf (the links into it fail) and one follower stops
    hearing it; the links come back at 5.5 s.  That is long enough for the leader's
    lease to lapse (its requests then say ``held = false``) and for the follower's
    second suspicion, once the first was answered while the other follower still heard
    a leader holding its lease."""
    cut: list[tuple[str, str]] = []

    def deafen() -> None:
        leader = world.leader()
        if leader is None:
            return
        others = [n for n in world.config.ids() if n != leader][:2]
        cut.extend([(o, leader) for o in others] + [(leader, others[-1])])
        for src, dst in cut:
            world.fail_link(src, dst)
        world.note(f"gray: {leader} deaf, {others[-1]} cannot hear it")

    def heal() -> None:
        world.heal()

    world.sim.schedule_at(1 * SECOND, deafen)
    world.sim.schedule_at(5_500_000, heal)


def handoff_config(seed: int) -> SimConfig:
    return SimConfig(seed=seed, clients=2, duration_us=4 * SECOND, settle_us=1 * SECOND,
                     peer_confirm=True, handoff=True,
                     workload=WorkloadConfig(keys=4, think_us=20_000,
                                             consistent_fraction=1.0),
                     node=NodeConfig(disk_sync_us=500))


def handoff_script(world: World) -> None:
    """The leader relinquishes at 0.8 s and (the next leader) at 2.2 s, and neither is
    restarted. The link from the successor to the old leader is down for 0.6 s from the
    handoff, so the successor's election does not depose the old leader at once: a
    relinquished leader stays leader for a while, with clients still reading from it
    and its renewal timer still running."""

    def relinquish() -> None:
        leader = world.leader()
        if leader is None:
            return
        s = world.nodes[leader].successor()
        if s is None:
            return
        world.fail_link(s, leader)
        world.nodes[leader].relinquish(s)
        world.note(f"handoff {leader}->{s}, link {s}->{leader} down")
        world.sim.schedule(600_000, world.heal)

    world.sim.schedule_at(800_000, relinquish)
    world.sim.schedule_at(2_200_000, relinquish)


__all__ = ["GRAY_BUGS", "GRAY_SCENARIO_OF", "gray_config", "gray_script", "handoff_config",
           "handoff_script"]
