"""Node-level fault plans for a fleet, and their translation into each group's faults.

A plan is drawn once, before any group runs, from its own stream of the fleet seed;
it names nodes, never replicas. ``group_actions`` turns it into the actions on the
replicas a group has on those nodes, at the same real times, so a node fault hits
every group on the node at once. At most one fault is active at a time, so a group
of three never loses two replicas at once (as ``reference/faults.py`` keeps a quorum
up). Schedules (``--faults``):

* ``none``: nothing fails.
* ``crashes``: every 2-6 s after the last one healed, a random node crashes (every
  replica on it), and restarts 1-4 s later.
* ``partitions``: every 2-6 s after the last one healed, the link between two random
  nodes fails for 1-5 s: one direction, or both (LinkDown/LinkUp in every group with
  replicas on both nodes).
* ``mixed``: crashes and link failures, one at a time, drawn half and half.
* ``heal``: at 3 s (or a third of the run, if shorter) one node dies for good, its
  disks with it; every group it hosted heals with its spare replica on another node
  (reference/healing.py).
* ``deploy``: a rolling restart of the nodes, one every 3 s after a 2 s warm-up, in a
  seeded order: the node first drains (each group leader on it hands its lease off to
  a follower), and 100 ms later its process restarts (down 0.5 s).

A fault still active at the end of the run heals at ``duration_us`` (where the group
simulator heals every fault anyway), and the plan says so.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from reference.fleet_config import SECOND, FleetConfig, derive_seed

NodeOp = Literal["crash", "restart", "kill", "link_down", "link_up", "drain"]

DEPLOY_WARMUP_US = 2 * SECOND
DEPLOY_EVERY_US = 3 * SECOND
DRAIN_US = 100_000
"""How long a drained node waits for its groups' successors before it restarts (a
handoff completes within a few ms: the spec's HandoffBound)."""
DEPLOY_DOWNTIME_US = SECOND // 2
HEAL_KILL_AT_US = 3 * SECOND


@dataclass(frozen=True, slots=True)
class NodeFault:
    """One node-level event at real time ``t_us``; ``peer`` for a directed link
    ``node -> peer``."""

    t_us: int
    op: NodeOp
    node: str
    peer: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"t_us": self.t_us, "op": self.op, "node": self.node}
        if self.peer is not None:
            out["peer"] = self.peer
        return out


@dataclass(frozen=True, slots=True)
class GroupAction:
    """A plan event as one group sees it: replica ids instead of nodes."""

    t_us: int
    op: NodeOp
    replica: str
    peer: str | None = None


def plan_faults(cfg: FleetConfig) -> list[NodeFault]:
    """The node-level plan for ``cfg.faults``, sorted by time (ties: as drawn)."""
    rng = random.Random(derive_seed(cfg.seed, "faults"))
    nodes, end = cfg.node_ids(), cfg.duration_us
    out: list[NodeFault] = []
    if cfg.faults in ("crashes", "partitions", "mixed"):
        t = rng.randint(2 * SECOND, 6 * SECOND)
        while t < end:
            link = cfg.faults == "partitions" or (cfg.faults == "mixed" and rng.random() < 0.5)
            if link and len(nodes) >= 2:
                a, b = rng.sample(nodes, 2)
                up = min(t + rng.randint(SECOND, 5 * SECOND), end)
                pairs = [(a, b), (b, a)] if rng.random() < 0.5 else [(a, b)]
                for x, y in pairs:
                    out += [NodeFault(t, "link_down", x, y), NodeFault(up, "link_up", x, y)]
            else:
                n = rng.choice(nodes)
                up = min(t + rng.randint(SECOND, 4 * SECOND), end)
                out += [NodeFault(t, "crash", n), NodeFault(up, "restart", n)]
            t = up + rng.randint(2 * SECOND, 6 * SECOND)
    elif cfg.faults == "heal":
        out.append(NodeFault(min(HEAL_KILL_AT_US, end // 3), "kill", rng.choice(nodes)))
    elif cfg.faults == "deploy":
        order = list(nodes)
        rng.shuffle(order)
        t, i = DEPLOY_WARMUP_US, 0
        while t + DRAIN_US < end and i < len(order):
            n = order[i]
            down = t + DRAIN_US
            out += [NodeFault(t, "drain", n), NodeFault(down, "crash", n),
                    NodeFault(min(down + DEPLOY_DOWNTIME_US, end), "restart", n)]
            t += DEPLOY_EVERY_US
            i += 1
    # Stable sort by time only: events at one instant keep the order they were drawn in.
    out.sort(key=lambda f: f.t_us)
    return out


def killed_nodes(plan: list[NodeFault]) -> set[str]:
    return {f.node for f in plan if f.op == "kill"}


def group_actions(plan: list[NodeFault], replica_on: Mapping[str, str]) -> list[GroupAction]:
    """The plan's events for one group; ``replica_on``: node -> the group's replica
    there. A link event counts only if the group has replicas at both ends."""
    out = []
    for f in plan:
        r = replica_on.get(f.node)
        if r is None:
            continue
        if f.peer is None:
            out.append(GroupAction(f.t_us, f.op, r))
        elif f.peer in replica_on:
            out.append(GroupAction(f.t_us, f.op, r, replica_on[f.peer]))
    return out


__all__ = ["GroupAction", "NodeFault", "group_actions", "killed_nodes", "plan_faults"]
