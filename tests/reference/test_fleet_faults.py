"""Node-level faults (reference/fleet_faults.py) hit every group on the node at once."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest
from test_fleet_output import host_lines, run_in_process  # one in-process runner

from reference.fleet_clock import HostClock
from reference.fleet_config import SECOND, FleetConfig, derive_seed
from reference.fleet_faults import NodeFault, group_actions, plan_faults
from reference.workload import WorkloadConfig

# Seed 7: crashes: n01 crashes at 2.21 s and restarts at 4 s; partitions (six nodes):
# the link n01 -> n03 fails at 2.21 s and heals at 4 s.
SMALL = FleetConfig(seed=7, nodes=4, groups=6, clients=1, duration_us=4 * SECOND,
                    settle_us=SECOND // 2, workload=WorkloadConfig(think_us=50_000))


def _lines_by_node(out: Path, fleet: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {h["id"]: [orjson.loads(x) for x in host_lines(out, fleet, "nodes", h["id"])]
            for h in fleet["nodes"]}


def _replica_on(fleet: dict[str, Any], node: str) -> dict[str, str]:
    """Group -> its replica on ``node``."""
    return {g["id"]: m["id"] for g in fleet["groups"] for m in g["members"]
            if m["node"] == node}


def test_plan_events_become_each_groups_actions_on_its_replicas() -> None:
    plan = [NodeFault(10, "crash", "n01"), NodeFault(20, "link_down", "n02", "n03"),
            NodeFault(30, "link_down", "n01", "n04"), NodeFault(40, "restart", "n01")]
    acts = group_actions(plan, {"n01": "r1", "n02": "r2", "n03": "r3"})
    assert [(a.t_us, a.op, a.replica, a.peer) for a in acts] == [
        (10, "crash", "r1", None), (20, "link_down", "r2", "r3"), (40, "restart", "r1", None)]
    assert group_actions(plan, {"n05": "r1"}) == []


@pytest.mark.parametrize("faults", ["crashes", "partitions", "mixed", "deploy"])
def test_plans_keep_one_fault_at_a_time_and_end_within_the_run(faults: str) -> None:
    cfg = FleetConfig(seed=3, nodes=6, groups=2, duration_us=60 * SECOND, faults=faults)
    plan = plan_faults(cfg)
    assert plan and plan == plan_faults(cfg)
    assert all(0 < f.t_us <= cfg.duration_us for f in plan)
    active: set[tuple[str, str | None]] = set()
    for f in plan:
        if f.op in ("crash", "link_down"):
            assert (f.op == "link_down" and all(a[1] is not None for a in active)) or not active
            active.add((f.node, f.peer))
        elif f.op in ("restart", "link_up"):
            active.discard((f.node, f.peer))
    assert not active


def test_a_node_crash_crashes_every_group_on_it_at_the_same_instant(tmp_path: Path) -> None:
    cfg = dataclasses.replace(SMALL, faults="crashes")
    plan = plan_faults(cfg)
    assert [(f.op, f.node) for f in plan] == [("crash", "n01"), ("restart", "n01")]
    fleet = run_in_process(cfg, tmp_path)
    lines = _lines_by_node(tmp_path, fleet)
    on_node = _replica_on(fleet, "n01")
    assert len(on_node) >= 3  # several groups share the node
    at = HostClock(cfg.clock, derive_seed(cfg.seed, "clock", "n01")).reading(plan[0].t_us)[0]
    crashes = {(x["group"], x["replica"]): x["clock"] for x in lines["n01"]
               if x["action"] == "Crash"}
    assert crashes == {(g, r): at for g, r in on_node.items()}
    restarts = [x for x in lines["n01"] if x["action"] == "Restart"]
    assert {(x["group"], x["replica"]) for x in restarts} == set(on_node.items())
    assert len({x["clock"] for x in restarts}) == 1
    # No other node crashed.
    assert not [x for n, xs in lines.items() if n != "n01" for x in xs
                if x["action"] in ("Crash", "Restart")]


def test_a_failed_link_between_nodes_fails_in_every_group_with_both_ends(
        tmp_path: Path) -> None:
    # Six nodes, two per zone: some groups on n01 have no replica on n03.
    cfg = dataclasses.replace(SMALL, faults="partitions", nodes=6, groups=8)
    plan = plan_faults(cfg)
    assert [(f.op, f.node, f.peer) for f in plan] == [("link_down", "n01", "n03"),
                                                      ("link_up", "n01", "n03")]
    fleet = run_in_process(cfg, tmp_path)
    lines = _lines_by_node(tmp_path, fleet)
    src, dst = _replica_on(fleet, "n01"), _replica_on(fleet, "n03")
    both = {g: (src[g], dst[g]) for g in src if g in dst}
    assert both and len(both) < len(src)  # some groups span both nodes, some do not
    clock = HostClock(cfg.clock, derive_seed(cfg.seed, "clock", "n01"))
    for action, fault in (("LinkDown", plan[0]), ("LinkUp", plan[1])):
        got = {x["group"]: x for x in lines["n01"] if x["action"] == action}
        assert set(got) == set(both)
        for g, (a, b) in both.items():
            assert got[g]["args"] == {"from": a, "to": b}
            # Traced behind the replica's pending WAL syncs: at the fault, or just after.
            at = clock.reading(fault.t_us)[0]
            assert at <= got[g]["clock"] <= at + 5_000


def test_a_killed_node_takes_every_group_on_it_and_each_heals_with_its_spare(
        tmp_path: Path) -> None:
    cfg = dataclasses.replace(SMALL, faults="heal", nodes=5, groups=4, duration_us=9 * SECOND,
                              settle_us=SECOND)
    plan = plan_faults(cfg)
    assert [f.op for f in plan] == ["kill"] and plan[0].t_us == 3 * SECOND
    dead = plan[0].node
    fleet = run_in_process(cfg, tmp_path)
    lines = _lines_by_node(tmp_path, fleet)
    on_dead = _replica_on(fleet, dead)
    kills = {(x["group"], x["replica"]): x["clock"] for x in lines[dead] if x["action"] == "Kill"}
    at = HostClock(cfg.clock, derive_seed(cfg.seed, "clock", dead)).reading(3 * SECOND)[0]
    storage = {g: r for g, r in on_dead.items() if r != "r4"}
    assert storage and kills == {(g, r): at for g, r in storage.items()}
    assert lines[dead][-1]["action"] == "Kill"  # a dead node writes nothing more
    added: dict[str, Any] = defaultdict(list)
    for xs in lines.values():
        for x in xs:
            if x["action"] == "AddMember":
                added[x["group"]].append(x["args"]["c"]["who"])
    # Every group that lost a replica added its spare (r4); no other group did.
    assert {g for g in added} == set(storage)
    assert all(who == ["r4"] for who in {g: sorted(set(w)) for g, w in added.items()}.values())
    assert all(g["audit_ok"] for g in fleet["groups"])


def test_deploy_drains_leaders_before_the_node_restarts(tmp_path: Path) -> None:
    cfg = dataclasses.replace(SMALL, faults="deploy", duration_us=3 * SECOND)
    plan = plan_faults(cfg)
    assert [f.op for f in plan] == ["drain", "crash", "restart"]
    node = plan[0].node
    fleet = run_in_process(cfg, tmp_path)
    xs = _lines_by_node(tmp_path, fleet)[node]
    leaders = {x["group"] for x in xs if x["action"] == "BecomeLeader"}
    handoffs = {x["group"] for x in xs if x["action"] == "LeaseRelinquish"}
    crashed = {x["group"] for x in xs if x["action"] == "Crash"}
    assert crashed == set(_replica_on(fleet, node))
    assert handoffs and handoffs <= leaders
