"""A fleet run as data: the tasks to run, and the ``fleet.json`` that describes them.

``FleetPlan.build`` draws everything random up front (the fault plan, then the
placement, which avoids the nodes the plan kills), so the tasks are plain values and
the run is the same whichever worker runs which task.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reference.fleet_config import FleetConfig
from reference.fleet_faults import NodeFault, group_actions, killed_nodes, plan_faults
from reference.fleet_group import GroupResult, GroupTask, replica_config_json
from reference.fleet_merge import MergeInput, MergeResult, MergeTask
from reference.fleet_placement import GroupPlacement, node_az, place
from reference.trace_events import PRODUCTION_VERSION


@dataclass(frozen=True, slots=True)
class FleetPlan:
    config: FleetConfig
    faults: tuple[NodeFault, ...]
    placements: tuple[GroupPlacement, ...]
    work_dir: Path
    out_dir: Path

    @staticmethod
    def build(cfg: FleetConfig, out_dir: Path, work_dir: Path) -> FleetPlan:
        faults = plan_faults(cfg)
        placements = place(cfg, avoid_for_spares=killed_nodes(faults))
        return FleetPlan(cfg, tuple(faults), tuple(placements), work_dir, out_dir)

    def group_dir(self, group: str) -> Path:
        return self.work_dir / group

    def group_tasks(self) -> list[GroupTask]:
        return [GroupTask(self.config, p, tuple(group_actions(list(self.faults), p.replica_on())),
                          str(self.group_dir(p.group)))
                for p in self.placements]

    def node_tasks(self) -> list[MergeTask]:
        """One per node, inputs in group order (a node with no replica: no inputs)."""
        inputs: dict[str, list[MergeInput]] = {n: [] for n in self.config.node_ids()}
        for p in self.placements:
            for m in p.members:
                path = self.group_dir(p.group) / f"trace-{m.id}.jsonl"
                inputs[m.node].append(MergeInput(p.group, m.id, str(path)))
        return [MergeTask(self.config, n, tuple(i), str(self.out_dir))
                for n, i in inputs.items()]

    def router_tasks(self) -> list[MergeTask]:
        inputs: dict[str, list[MergeInput]] = {r: [] for r in self.config.router_ids()}
        for p in self.placements:
            for r in p.routers():
                path = self.group_dir(p.group) / f"history-{r}.jsonl"
                inputs[r].append(MergeInput(p.group, "", str(path)))
        return [MergeTask(self.config, r, tuple(i), str(self.out_dir))
                for r, i in inputs.items()]

    def groups_of(self, task: MergeTask) -> list[str]:
        return [i.group for i in task.inputs]

    def fleet_json(self, groups: list[GroupResult], nodes: list[MergeResult],
                   routers: list[MergeResult]) -> dict[str, Any]:
        """``fleet.json`` (traces/PRODUCTION.md): what ran, where, and what was written."""
        cfg = self.config
        azs = node_az(cfg)
        by_group = {g.group: g for g in groups}
        node_out = {m.host: m for m in nodes}
        router_out = {m.host: m for m in routers}
        clients_of: dict[str, list[str]] = {r: [] for r in cfg.router_ids()}
        for p in self.placements:
            for c, r in p.clients:
                clients_of[r].append(c)

        def written(m: MergeResult) -> dict[str, Any]:
            return {"lines": m.lines, "segments": [s.name for s in m.segments]}

        return {
            "format": PRODUCTION_VERSION,
            "seed": cfg.seed,
            "duration_us": cfg.duration_us,
            "settle_us": cfg.settle_us,
            "nodes": [{"id": n, "az": azs[n], **written(node_out[n])} for n in cfg.node_ids()],
            "routers": [{"id": r, "clients": clients_of[r], **written(router_out[r])}
                        for r in cfg.router_ids()],
            "groups": [{
                "id": p.group,
                "members": [{"id": m.id, "node": m.node, "incarnation": 1, "kind": m.kind}
                            for m in p.members],
                "clients": [c for c, _ in p.clients],
                "events": sum(by_group[p.group].events.values()),
                "operations": by_group[p.group].operations,
                "audit_ok": by_group[p.group].audit_ok,
            } for p in self.placements],
            "replica_config": replica_config_json(cfg),
            "fault_schedule": cfg.faults,
            "faults": [f.to_json() for f in self.faults],
            "segments": {"max_lines": cfg.segment_lines, "compression": cfg.compression},
            "clock": dataclasses.asdict(cfg.clock),
            "workload": dataclasses.asdict(cfg.workload),
            "replicas": cfg.replicas,
            "clients_per_group": cfg.clients,
            "events": sum(m.lines for m in nodes),
            "operations": sum(m.lines for m in routers),
        }


__all__ = ["FleetPlan"]
