"""End-to-end runs of the simulated group: determinism, and every named fault schedule
keeping acknowledged writes and strong reads correct (reference.audit)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from reference.cluster import FAULT_SCHEDULES, SimConfig, World
from reference.messages import ReadResult
from reference.replica import Replica
from reference.simulate import run_simulation
from reference.storage import Key, M, N, Put, S

SECOND = 1_000_000


def run(faults: str, seed: int = 7, duration_s: int = 12) -> World:
    world = World(SimConfig(seed=seed, faults=faults, duration_us=duration_s * SECOND,
                            settle_us=3 * SECOND))
    world.run()
    return world


def assert_correct(world: World) -> None:
    report = world.audit()
    assert report.ok, report.problems()[:5]
    # The audit must have had something to check.
    assert report.acked_writes > 100 and report.strong_reads > 100
    assert report.eventual_reads > 100
    assert report.chosen_slots >= report.acked_writes


def test_same_seed_gives_byte_identical_output(tmp_path: Path) -> None:
    cfg = SimConfig(seed=11, faults="crashes", duration_us=6 * SECOND, settle_us=2 * SECOND)
    run_simulation(cfg, tmp_path / "a")
    run_simulation(cfg, tmp_path / "b")
    run_simulation(replace(cfg, seed=12), tmp_path / "c")
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["config.json", "history.jsonl", "summary.json", "trace-r1.jsonl",
                     "trace-r2.jsonl", "trace-r3.jsonl"]
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "trace-r1.jsonl").read_bytes() != \
        (tmp_path / "c" / "trace-r1.jsonl").read_bytes()


def test_schedule_names_are_all_tested() -> None:
    # heal: tests/reference/test_ref_healing.py; gray and deploy are also measured in
    # tests/reference/test_ref_gray_deploy.py.
    assert set(FAULT_SCHEDULES) == {"none", "crashes", "partitions", "flaky-network",
                                    "clock-drift", "disk-faults", "heal", "gray", "deploy"}


def test_none() -> None:
    world = run("none")
    assert_correct(world)
    assert sum(n.action_counts["BecomeLeader"] for n in world.nodes.values()) == 1
    assert all(h.succeeded for h in world.history)


def test_crashes() -> None:
    world = run("crashes")
    assert_correct(world)
    assert world.faults_injected["crash"] >= 2 and world.faults_injected["restart"] >= 2
    assert sum(n.restarts for n in world.nodes.values()) >= 2
    assert sum(n.action_counts["BecomeLeader"] for n in world.nodes.values()) >= 2
    assert all(n.state == "up" for n in world.nodes.values())


def test_partitions() -> None:
    world = run("partitions", seed=1)
    assert_correct(world)
    assert world.faults_injected["isolate"] + world.faults_injected["fail_link"] >= 2
    assert world.net.stats.dropped["partition"] + world.net.stats.dropped["link_down"] > 0


def test_flaky_network() -> None:
    world = run("flaky-network")
    assert_correct(world)
    stats = world.net.stats
    assert stats.dropped["loss"] > 0 and stats.duplicated > 0 and stats.corrupt_dropped > 0


def test_gray() -> None:
    world = run("gray", seed=3)
    assert_correct(world)
    assert world.faults_injected["fail_link"] >= 1
    # Peer confirmation (the default): the followers' peers veto every election.
    assert sum(n.action_counts["BecomeLeader"] for n in world.nodes.values()) == 1


def test_deploy() -> None:
    world = run("deploy", seed=3)
    assert_correct(world)
    assert world.faults_injected["crash"] >= 2 and world.faults_injected["handoff"] >= 1
    assert all(n.state == "up" for n in world.nodes.values())


def test_clock_drift() -> None:
    world = run("clock-drift")
    assert_correct(world)
    cfg = world.config
    assert cfg.max_drift_us == 50_000
    assert world.faults_injected["crash"] >= 1
    assert sum(n.action_counts["BecomeLeader"] for n in world.nodes.values()) >= 2
    offsets = [n.clock.offset_us() for n in world.nodes.values()]
    assert all(abs(o) <= cfg.max_drift_us for o in offsets)
    assert max(offsets) - min(offsets) > 10_000  # the clocks really disagree


def test_disk_faults_quarantine_the_corrupt_replica() -> None:
    world = run("disk-faults")
    assert_correct(world)
    quarantined = [n for n in world.nodes.values() if n.state == "quarantined"]
    assert len(quarantined) == 1 and "WAL corrupt" in quarantined[0].quarantine_reason
    # The other replicas carried on and agree.
    assert len(set(map(tuple, world.applied_logs().values()))) == 1


def test_torn_wal_tail_rejoins_and_catches_up() -> None:
    world = World(SimConfig(seed=5, duration_us=4 * SECOND, settle_us=3 * SECOND))
    world.sim.run(until_us=2 * SECOND)
    world.workload.start()
    world.sim.run(until_us=3 * SECOND)
    name = next(n for n in world.nodes if n != world.leader())
    node = world.nodes[name]
    node.wal.append(b"x" * 100)  # an unsynced record in flight at the crash
    node.nc = replace(node.nc, torn_write_prob=1.0)
    synced = node.disk.synced_len
    world.crash(name)
    assert synced < len(node.disk) < synced + 100  # a torn fragment of the record survived
    world.sim.run(until_us=3 * SECOND + 500_000)
    world.restart(name)
    assert node.state == "up"
    world.sim.run(until_us=world.config.duration_us)
    world.settle()
    assert world.audit().ok
    logs = world.applied_logs()
    assert len(logs[name]) == max(len(v) for v in logs.values())


def _strong_read_at(world: World, replica: str) -> ReadResult | None:
    c = world.clients[0]
    c.leader_guess = replica
    rid = c.get(Key(S("k")), consistent=True)
    world.sim.run(until_us=world.sim.now + 200_000)
    rec = next(h for h in world.history if h.id == rid)
    return rec.result if isinstance(rec.result, ReadResult) else None


def _stale_read_scenario(world: World) -> None:
    """Write v=1, cut leader->follower, write v=2, then strongly read at the follower."""
    world.sim.run(until_us=2 * SECOND)
    leader = world.leader()
    assert leader is not None
    follower = next(n for n in world.nodes if n != leader)
    c = world.clients[0]
    c.leader_guess = leader
    c.put(M(pk=S("k"), v=N(1)))
    world.sim.run(until_us=world.sim.now + 100_000)
    world.fail_link(leader, follower)
    c.leader_guess = leader
    c.write("put", Key(S("k")), lambda rid: Put(M(pk=S("k"), v=N(2))))
    world.sim.run(until_us=world.sim.now + 100_000)
    _strong_read_at(world, follower)


def test_audit_catches_a_replica_serving_strong_reads_without_the_lease(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = SimConfig(seed=3, clients=1, duration_us=SECOND)
    correct = World(cfg)
    _stale_read_scenario(correct)
    assert correct.audit().ok
    # Seeded bug: any replica serves strong reads from its B-tree.
    monkeypatch.setattr(Replica, "can_strong_read", lambda self, now: True)
    monkeypatch.setattr(Replica, "strong_read", lambda self, key, now, rid="":
                        self.eventual_read(key, rid))
    buggy = World(cfg)
    _stale_read_scenario(buggy)
    report = buggy.audit()
    assert report.stale_reads and not report.lost_writes, report.problems()


def test_the_group_refuses_to_start_with_an_unsafe_lease_configuration(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from conformance import lease_theorem
    from conformance.lease_theorem import LeaseConfigError
    from reference.replica import ReplicaConfig

    # Bypass ReplicaConfig's own arithmetic check: the Z3 proof must still refuse.
    monkeypatch.setattr(ReplicaConfig, "__post_init__", lambda self: None)
    with pytest.raises(LeaseConfigError, match="lease safety fails"):
        World(SimConfig(lease_margin_us=4 * 2_000 - 1, max_drift_us=2_000),
              check_config=lease_theorem.require_lease_safety)
    World(SimConfig(lease_margin_us=4 * 2_000, max_drift_us=2_000),  # the least safe margin
          check_config=lease_theorem.require_lease_safety)
