"""Fast healing end to end (issue 9): the ``heal`` schedule kills a storage replica for
good, the leader restores a full-strength group with a log replica (then promotes it),
or storage-only; WAL truncation after checkpoints, and recovery from a checkpoint."""

from __future__ import annotations

import dataclasses
import functools
import io
import json
from pathlib import Path

from reference.cluster import SimConfig, World
from reference.healing import Copy, HealConfig, copy_time_us, plan
from reference.messages import Change
from reference.node import NodeConfig
from reference.simulate import run_simulation
from reference.summary import healing_lines
from reference.workload import WorkloadConfig

SECOND = 1_000_000
HEAL = HealConfig(kill_at_us=1_500_000, unhealthy_after_us=1_000_000,
                  copy_bandwidth_bps=20_000, compare=False)
CFG = SimConfig(seed=5, faults="heal", clients=3, duration_us=7 * SECOND, settle_us=2 * SECOND,
                workload=WorkloadConfig(think_us=5_000), node=NodeConfig(heal=HEAL))


def with_heal(cfg: SimConfig, **kw: object) -> SimConfig:
    return dataclasses.replace(cfg, node=dataclasses.replace(
        cfg.node, heal=dataclasses.replace(cfg.node.heal, **kw)))  # type: ignore[arg-type]


@functools.cache
def healed(log_replicas: bool) -> World:
    world = World(with_heal(CFG, log_replicas=log_replicas))
    world.run()
    return world


def final_view(world: World) -> dict[str, str]:
    leader = world.leader()
    assert leader is not None
    view = world.nodes[leader].replica.leader_view
    return {m: k for m, k in view.items() if k != "none"}


def test_heal_with_a_log_replica_reaches_full_strength_then_all_storage() -> None:
    world = healed(True)
    report = world.audit()
    assert report.ok, report.problems()[:5]
    assert report.acked_writes > 100
    h = world.healing()
    assert h is not None and h["mode"] == "log-replicas"
    (killed,) = world.killed
    assert world.nodes[killed].state == "killed"
    # add r4 as a log replica, remove the dead one, promote r4 once its snapshot is in.
    ops = [(c["members"].get("r4"), killed in c["members"]) for c in h["changes"]]
    assert ops == [("log", True), ("log", False), ("storage", False)]
    assert h["full_strength_s"] is not None and h["all_storage_s"] is not None
    assert h["full_strength_s"] < h["all_storage_s"]
    assert final_view(world) == {**{n: "storage" for n in ("r1", "r2", "r3") if n != killed},
                                 "r4": "storage"}
    r4 = world.nodes["r4"].replica
    assert r4.has_btree and r4.applied > 0
    counts = sum((n.action_counts for n in world.nodes.values()), start=type(
        world.nodes["r1"].action_counts)())
    assert counts["AddMember"] == counts["RemoveMember"] == counts["PromoteMember"] == 1
    assert counts["InstallSnapshot"] == 1


def test_storage_only_healing_waits_for_the_copy() -> None:
    fast, slow = healed(True), healed(False)
    assert slow.audit().ok
    h, hf = slow.healing(), fast.healing()
    assert h is not None and hf is not None and h["mode"] == "storage-only"
    (killed,) = slow.killed
    ops = [(c["members"].get("r4"), killed in c["members"]) for c in h["changes"]]
    assert ops == [("storage", True), ("storage", False)]
    copy = h["copies"][0]
    assert copy["seconds"] * SECOND == copy_time_us(copy["bytes"], HEAL)
    assert h["full_strength_s"] > copy["seconds"] > hf["full_strength_s"]


def test_heal_run_is_deterministic_and_records_members(tmp_path: Path) -> None:
    cfg = dataclasses.replace(CFG, duration_us=4 * SECOND, settle_us=SECOND)
    a = run_simulation(cfg, tmp_path / "a")
    run_simulation(cfg, tmp_path / "b")
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert "trace-r4.jsonl" in names
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["members"] == [
        {"id": "r1", "node": "r1", "incarnation": 1, "kind": "storage"},
        {"id": "r2", "node": "r2", "incarnation": 1, "kind": "storage"},
        {"id": "r3", "node": "r3", "incarnation": 1, "kind": "storage"},
        {"id": "r4", "node": "r4", "incarnation": 1, "kind": "none"},
    ]
    assert a.summary["healing"]["copy_bandwidth_bps"] == HEAL.copy_bandwidth_bps
    (line,) = healing_lines(a.summary)
    assert line.startswith("healing (log-replicas): ") and "copy bandwidth 20000 B/s" in line


def test_truncation_and_recovery_from_a_checkpoint() -> None:
    cfg = SimConfig(seed=3, clients=3, duration_us=4 * SECOND, settle_us=SECOND,
                    workload=WorkloadConfig(think_us=5_000),
                    node=NodeConfig(checkpoint_every=64))
    world = World(cfg)
    world.sim.schedule_at(2 * SECOND, world.crash, "r2")
    world.sim.schedule_at(2 * SECOND + 300_000, world.restart, "r2")
    world.run()
    report = world.audit()
    assert report.ok, report.problems()[:5]
    assert world.archive and not world.archive_conflicts
    for node in world.nodes.values():
        r = node.replica
        assert r.base > 64 and all(s > r.base for s in r.log)  # the WAL was truncated
        assert node.btree is not None and node.btree.upto >= r.base
    assert world.nodes["r2"].restarts == 1
    chosen = world.chosen_log()
    assert len(chosen) >= max(n.replica.applied for n in world.nodes.values())


def test_plan_steps() -> None:
    view = {"a": "storage", "b": "storage", "c": "storage", "d": "none"}
    args = dict(view=view, leader="a", target=3, snapshot_holders=set(), copying=set(),
                spare="d")
    assert plan(unhealthy=set(), log_replicas=True, **args) == []  # type: ignore[arg-type]
    got = plan(unhealthy={"c"}, log_replicas=True, **args)  # type: ignore[arg-type]
    assert got == [Change("add", "d", "log")]
    assert plan(unhealthy={"c"}, log_replicas=False, **args) == [Copy("d")]  # type: ignore
    got = plan(unhealthy={"c"}, log_replicas=False,  # type: ignore[arg-type]
               **{**args, "snapshot_holders": {"d"}})
    assert got == [Change("add", "d", "storage")]
    logged = {**view, "d": "log"}
    got = plan(unhealthy={"c"}, log_replicas=True, **{**args, "view": logged})  # type: ignore
    assert got == [Copy("d"), Change("remove", "c")]
    done = {**logged, "c": "none"}
    got = plan(unhealthy=set(), log_replicas=True,  # type: ignore[arg-type]
               **{**args, "view": done, "snapshot_holders": {"d"}})
    assert got == [Change("promote", "d")]
    # The leader itself is never unhealthy; no spare, no healing.
    assert plan(unhealthy={"a"}, log_replicas=True, **args) == []  # type: ignore[arg-type]
    assert plan(unhealthy={"c"}, log_replicas=True, **{**args, "spare": None}) == []  # type: ignore


def test_a_joiner_behind_the_leaders_checkpoint_is_seeded() -> None:
    """The leader truncated its WAL before the failure: the log replica starts its log at
    the leader's checkpoint (a Checkpoint line that dropped nothing) and catches up the
    tail; promoted, it applies from its snapshot on."""
    cfg = dataclasses.replace(
        with_heal(CFG, kill_at_us=2 * SECOND),
        node=dataclasses.replace(with_heal(CFG, kill_at_us=2 * SECOND).node, checkpoint_every=32))
    sinks = {n: io.BytesIO() for n in cfg.effective().ids()}
    world = World(cfg, sinks)
    world.run()
    assert world.audit().ok
    h = world.healing()
    assert h is not None and h["all_storage_s"] is not None
    lines = [json.loads(x) for x in sinks["r4"].getvalue().splitlines()]
    first = next(x for x in lines if x["action"] in ("Checkpoint", "Phase2b"))
    assert first["action"] == "Checkpoint" and first["args"]["truncated"] == 0
    assert first["args"]["upto"] > 0
    seen = [x["action"] for x in lines]
    assert "Apply" not in seen[:seen.index("InstallSnapshot")]  # no B-tree: nothing applied


def test_a_promoted_replica_recovers_its_btree_and_wal_tail_after_a_crash() -> None:
    world = World(with_heal(CFG, log_replicas=True))
    world.sim.schedule_at(5 * SECOND, world.crash, "r4")
    world.sim.schedule_at(5 * SECOND + 300_000, world.restart, "r4")
    world.run()
    report = world.audit()
    assert report.ok, report.problems()[:5]
    assert world.copies[0]["end_us"] < 5 * SECOND  # it crashed as a promoted member
    node = world.nodes["r4"]
    assert node.restarts == 1 and node.btree is not None
    r4 = node.replica
    assert r4.has_btree and r4.kind() == "storage"
    assert r4.applied == max(n.replica.applied for n in world.nodes.values()
                             if n.state == "up")


def test_a_copy_whose_source_dies_is_lost_and_healing_asks_for_another() -> None:
    """The copy to the log replica comes from the leader; the leader is killed mid-copy:
    that copy is lost with it (it may hold applies whose trace lines died with it), the new
    leader copies again, and the log replica is promoted from the second copy."""
    world = World(with_heal(CFG, log_replicas=True))
    killed: list[str] = []

    def kill_the_copy_source() -> None:
        # Within the fault budget: only once the first victim has left the configuration.
        live = [c for c in world.copies if not c["installed"] and "failed" not in c]
        view = world.config_log[-1][2] if world.config_log else {}
        removed = sum(k != "none" for k in view.values()) == 3 and all(
            view.get(n, "none") == "none" for n in world.killed)
        if live and removed and not killed:
            killed.append(live[0]["src"])
            world.kill(live[0]["src"])
        elif not killed:
            world.sim.schedule(50_000, kill_the_copy_source)

    world.sim.schedule_at(2 * SECOND, kill_the_copy_source)
    world.run()
    assert killed, "no copy was ever in progress"
    failed = [c for c in world.copies if c.get("failed") == "source killed"]
    assert failed and failed[0]["src"] == killed[0]
    again = [c for c in world.copies if c["dst"] == failed[0]["dst"] and c["installed"]]
    assert again and again[0]["src"] != killed[0] and again[0]["start_us"] > failed[0]["start_us"]
    assert world.audit().ok
