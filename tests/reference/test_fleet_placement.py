"""Fleet placement (reference/fleet_placement.py) and configuration checks."""

from __future__ import annotations

from collections import Counter

import pytest

from reference.fleet_config import FleetConfig, derive_seed
from reference.fleet_faults import killed_nodes, plan_faults
from reference.fleet_placement import node_az, place


@pytest.mark.parametrize(("nodes", "groups", "replicas"), [(3, 1, 3), (9, 40, 3), (7, 25, 5),
                                                          (12, 100, 3)])
def test_no_two_replicas_of_a_group_share_a_node_and_nodes_are_balanced(
        nodes: int, groups: int, replicas: int) -> None:
    cfg = FleetConfig(nodes=nodes, groups=groups, replicas=replicas)
    placements = place(cfg)
    assert [p.group for p in placements] == cfg.group_ids()
    azs = node_az(cfg)
    load: Counter[str] = Counter()
    for p in placements:
        assert [m.id for m in p.members] == [f"r{i}" for i in range(1, replicas + 1)]
        assert len({m.node for m in p.members}) == replicas
        for i, m in enumerate(p.members):
            load[m.node] += 1
            assert azs[m.node] == f"az{i % cfg.azs + 1}"  # the zone the simulator uses
    # Within a zone, load differs by at most one replica between nodes.
    for zone in set(azs.values()):
        loads = [load[n] for n in azs if azs[n] == zone]
        assert max(loads) - min(loads) <= 1, (zone, loads)
    # Many groups per node.
    if groups * replicas >= 2 * nodes:
        assert min(load[n] for n in azs) >= 2


def test_placement_is_a_function_of_the_seed() -> None:
    cfg = FleetConfig(nodes=9, groups=30)
    assert place(cfg) == place(cfg)
    other = place(FleetConfig(nodes=9, groups=30, seed=2))
    assert other != place(cfg)
    # A group's seed names it, not its position or the fleet's size.
    assert derive_seed(1, "group", "g0001") != derive_seed(2, "group", "g0001")
    assert derive_seed(1, "group", "g0001") != derive_seed(1, "group", "g0002")


def test_spares_avoid_the_killed_node_and_the_groups_own_nodes() -> None:
    cfg = FleetConfig(nodes=6, groups=20, faults="heal")
    plan = plan_faults(cfg)
    killed = killed_nodes(plan)
    assert len(killed) == 1
    for p in place(cfg, avoid_for_spares=killed):
        spare = p.members[-1]
        assert spare.kind == "none" and spare.id == "r4"
        assert spare.node not in killed
        assert len({m.node for m in p.members}) == 4


def test_clients_are_dealt_to_routers_round_robin() -> None:
    cfg = FleetConfig(nodes=3, groups=3, clients=3, routers=2)
    pairs = [c for p in place(cfg) for c in p.clients]
    assert pairs[:4] == [("g0001-c1", "rt01"), ("g0001-c2", "rt02"), ("g0001-c3", "rt01"),
                         ("g0002-c1", "rt02")]
    assert Counter(r for _, r in pairs) == {"rt01": 5, "rt02": 4}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"nodes": 2}, "cannot hold 3 replicas"),
    ({"nodes": 4, "faults": "heal"}, "besides the node the heal schedule kills"),
    ({"faults": "nope"}, "unknown fleet fault schedule"),
    ({"segment_lines": 0}, "segment lines"),
    ({"max_drift_us": 500}, "error bound can reach"),
])
def test_bad_configurations_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FleetConfig(**kwargs)  # type: ignore[arg-type]


def test_names_are_zero_padded_to_sort_in_number_order() -> None:
    cfg = FleetConfig(nodes=120, groups=12_000, routers=3)
    assert cfg.node_ids()[:2] == ["n001", "n002"] and cfg.node_ids()[-1] == "n120"
    assert cfg.group_ids()[0] == "g00001" and sorted(cfg.group_ids()) == cfg.group_ids()
    assert cfg.router_ids() == ["rt01", "rt02", "rt03"]
