"""One group of a fleet, simulated by the single-group simulator (one Dask task each).

The group runs in its own virtual time, which is the fleet's real time (every group
starts at 0), with its own seed (``derive_seed(fleet seed, "group", id)``). What
makes it a fleet member rather than a lone group:

* each replica reads the clock of the node it is placed on (``SimHostClock``), so
  every group on a node shares that node's one clock;
* its clients are named after the group (``g0001-c1``), so request ids are unique
  across the fleet;
* its faults are the node-level plan's events on its nodes (reference/fleet_faults.py),
  at the plan's real times.

It writes intermediate files into its own work directory, in format 3 (with ``real``,
which the per-node merge orders by and then drops): ``trace-<replica>.jsonl``, and one
``history-<router>.jsonl`` per router its clients use, sorted in the order that
router logs them (completed operations by completion, then the outstanding ones).
"""

from __future__ import annotations

import dataclasses
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from reference.client import Client, HistoryRecord
from reference.cluster import DEPLOY_CHECKPOINT_EVERY, HEAL_CHECKPOINT_EVERY, SimConfig, World
from reference.fleet_clock import HostClock, SimHostClock
from reference.fleet_config import FleetConfig, derive_seed
from reference.fleet_faults import GroupAction
from reference.fleet_placement import GroupPlacement
from reference.healing import HealConfig
from reference.node import NodeConfig
from reference.workload import Workload


def group_sim_config(cfg: FleetConfig, group: str) -> SimConfig:
    """The single-group configuration every group of ``cfg`` runs with (its seed aside,
    the same for all): fault schedule ``none`` (the fleet plan injects the faults),
    healing and a spare under ``heal``, WAL truncation under ``heal`` and ``deploy``."""
    heal = cfg.faults == "heal"
    checkpoint = HEAL_CHECKPOINT_EVERY if heal else \
        DEPLOY_CHECKPOINT_EVERY if cfg.faults == "deploy" else 0
    node = NodeConfig(heal=HealConfig(enabled=heal, compare=False), checkpoint_every=checkpoint)
    return SimConfig(seed=derive_seed(cfg.seed, "group", group), replicas=cfg.replicas,
                     azs=cfg.azs, clients=0, duration_us=cfg.duration_us,
                     settle_us=cfg.settle_us, faults="none", workload=cfg.workload,
                     max_drift_us=cfg.max_drift_us, max_rate_ppm=cfg.clock.max_rate_ppm,
                     spares=cfg.spares_per_group(), node=node)


@dataclass(frozen=True, slots=True)
class GroupTask:
    """Everything one group's run needs (plain data: it travels to a Dask worker)."""

    config: FleetConfig
    placement: GroupPlacement
    actions: tuple[GroupAction, ...]
    work_dir: str


@dataclass(frozen=True, slots=True)
class GroupResult:
    group: str
    events: dict[str, int]
    """Trace lines per replica id."""
    operations: int
    routers: tuple[str, ...]
    audit_ok: bool
    seconds: float = 0.0
    """Wall time of the task (printed, never written: it would break determinism)."""


class FleetWorld(World):
    """A ``World`` whose replicas read their hosts' clocks, whose clients carry the
    group's name, and whose faults come from the fleet plan."""

    def __init__(self, task: GroupTask, sinks: dict[str, IO[bytes]] | None) -> None:
        cfg = task.config
        super().__init__(group_sim_config(cfg, task.placement.group), sinks)
        for m in task.placement.members:
            host = HostClock(cfg.clock, derive_seed(cfg.seed, "clock", m.node))
            # Swapped after construction: the first election deadline was set on the
            # stand-in clock, within 2 * max drift of this one (a timeout, not safety).
            self.nodes[m.id].clock = SimHostClock(self.sim, host, cfg.max_drift_us)
        targets = self.config.ids()
        self.clients = [
            Client(self.sim, self.net, name, f"az{i % self.config.azs + 1}", targets,
                   self.sim.fork_rng(), self.history, self.config.client)
            for i, (name, _) in enumerate(task.placement.clients)]
        self.workload = Workload(self.sim, self.clients, self.sim.fork_rng(),
                                 self.config.workload, stop_us=self.config.duration_us)
        for a in task.actions:
            self.sim.schedule_at(a.t_us, self._apply, a)

    def _apply(self, a: GroupAction) -> None:
        if a.op == "crash":
            self.crash(a.replica)
        elif a.op == "restart":
            self.restart(a.replica)
        elif a.op == "kill":
            self.kill(a.replica)
        elif a.op == "link_down" and a.peer is not None:
            self.fail_link(a.replica, a.peer)
        elif a.op == "link_up" and a.peer is not None:
            self.restore_link(a.replica, a.peer)
        elif a.op == "drain":
            node = self.nodes[a.replica]
            if node.state == "up" and node.replica.role == "leader":
                self.note(f"handoff {a.replica}->{node.relinquish()}")


def history_order(h: HistoryRecord) -> tuple[int, int, str]:
    """A router logs an operation when it completes: by completion time, the
    outstanding ones (``complete`` -1) last, by invocation (ties: request id)."""
    if h.status is None:
        return (1, h.invoke_us, h.id)
    return (0, h.complete_us, h.id)


def run_group(task: GroupTask) -> GroupResult:
    """Simulate one group and write its intermediate files (module docstring)."""
    started = time.perf_counter()
    work = Path(task.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    ids = [m.id for m in task.placement.members]
    with ExitStack() as stack:
        sinks: dict[str, IO[bytes]] = {
            r: stack.enter_context((work / f"trace-{r}.jsonl").open("wb", buffering=1 << 20))
            for r in ids}
        world = FleetWorld(task, sinks)
        world.run()
    router_of = dict(task.placement.clients)
    by_router: dict[str, list[HistoryRecord]] = {r: [] for r in task.placement.routers()}
    for h in world.history:
        by_router[router_of[h.client]].append(h)
    opt = orjson.OPT_APPEND_NEWLINE
    for router, records in by_router.items():
        records.sort(key=history_order)
        with (work / f"history-{router}.jsonl").open("wb", buffering=1 << 20) as f:
            for h in records:
                f.write(orjson.dumps(h.to_json(), option=opt))
    return GroupResult(task.placement.group, {r: world.nodes[r].trace.seq for r in ids},
                       len(world.history), tuple(by_router), world.audit().ok,
                       time.perf_counter() - started)


def replica_config_json(cfg: FleetConfig) -> dict[str, Any]:
    """The group protocol settings, as a single-group run's config.json has them."""
    sim = group_sim_config(cfg, "").effective()
    return dataclasses.asdict(sim.replica_config())


__all__ = ["FleetWorld", "GroupResult", "GroupTask", "group_sim_config", "history_order",
           "replica_config_json", "run_group"]
