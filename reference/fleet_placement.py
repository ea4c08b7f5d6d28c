"""Where a fleet's replicas live, and which router logs which client.

Nodes are spread over availability zones round robin (``n01`` in az1, ``n02`` in
az2, ...). A group's replica ``r<i>`` goes to a node of az ``(i - 1) % azs + 1``, the
zone the group simulator puts it in (reference/cluster.py), so the simulated network
latencies match the placement. Within the zone it takes the least loaded node the
group does not use yet, ties broken by a per-group seeded order: no two replicas of
a group share a node, and every node hosts about ``groups * replicas / nodes``
replicas. Spares (the ``heal`` schedule) are placed the same way, never on a node
the plan kills. Clients are dealt to routers round robin over the whole fleet.
"""

from __future__ import annotations

import random
from collections.abc import Set
from dataclasses import dataclass
from typing import Literal

from reference.fleet_config import FleetConfig, derive_seed

MemberKind = Literal["storage", "log", "none"]


@dataclass(frozen=True, slots=True)
class Member:
    id: str
    node: str
    kind: MemberKind


@dataclass(frozen=True, slots=True)
class GroupPlacement:
    group: str
    members: tuple[Member, ...]
    clients: tuple[tuple[str, str], ...]
    """(client name, router) per client of the group."""

    def replica_on(self) -> dict[str, str]:
        """Node -> the group's replica there."""
        return {m.node: m.id for m in self.members}

    def routers(self) -> list[str]:
        return sorted({r for _, r in self.clients})


def node_az(cfg: FleetConfig) -> dict[str, str]:
    return {n: f"az{i % cfg.azs + 1}" for i, n in enumerate(cfg.node_ids())}


def place(cfg: FleetConfig, avoid_for_spares: Set[str] = frozenset()) -> list[GroupPlacement]:
    """Every group's members (replicas, then spares) and clients, in group order."""
    azs = node_az(cfg)
    load = dict.fromkeys(cfg.node_ids(), 0)
    routers = cfg.router_ids()
    spares = cfg.spares_per_group()
    out = []
    k = 0
    for g in cfg.group_ids():
        rng = random.Random(derive_seed(cfg.seed, "placement", g))
        tiebreak = {n: rng.random() for n in load}
        used: set[str] = set()
        members = []
        for i in range(cfg.replicas + spares):
            spare = i >= cfg.replicas
            zone = f"az{i % cfg.azs + 1}"
            free = [n for n in load if n not in used and not (spare and n in avoid_for_spares)]
            # Prefer the replica's own zone; a zone with no free node takes another's.
            in_zone = [n for n in free if azs[n] == zone] or free
            if not in_zone:
                raise ValueError(f"group {g}: no free node for replica r{i + 1}")
            n = min(in_zone, key=lambda x: (load[x], tiebreak[x]))
            used.add(n)
            load[n] += 1
            members.append(Member(f"r{i + 1}", n, "none" if spare else "storage"))
        clients = []
        for c in range(1, cfg.clients + 1):
            clients.append((f"{g}-c{c}", routers[k % len(routers)]))
            k += 1
        out.append(GroupPlacement(g, tuple(members), tuple(clients)))
    return out


__all__ = ["GroupPlacement", "Member", "node_az", "place"]
