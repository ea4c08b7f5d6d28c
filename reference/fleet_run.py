"""Run a fleet on Dask distributed: one task per group, then one per node and router.

Parallelism: a ``LocalCluster`` of ``workers`` single-threaded worker processes (the
simulator is pure Python, so threads would not run in parallel), or an existing
scheduler (``scheduler``; its workers must see ``out_dir``, where the intermediate
files live). Each group task writes its intermediate files; each node (router) merge
task takes the futures of the groups it hosts as arguments, so Dask starts it once
those are done, and node merges run while other groups still simulate.

Determinism (output byte-identical for any number of workers, and any scheduler):

* every random draw comes from a stream derived from the fleet seed and a name
  (``derive_seed``), never from a shared generator, so it does not matter which
  worker runs a task or in what order tasks run;
* all random choices that span groups (fault plan, placement, routing) are made once,
  in the client process, before any task starts; tasks are plain values;
* a group's output depends on its own task only; a merge reads complete files and
  orders its lines by a total order (real time, group id, the replica's own order;
  for histories: completion time, group id, request id), not by arrival;
* compression is deterministic (reference/fleet_segments.py), and what Dask itself
  decides (task keys, timing) reaches no file.

``fleet.json`` is written last (via a temporary name and a rename), after every
segment is complete, so a reader never sees a half-written fleet.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from distributed import Client, Future, LocalCluster, as_completed

from reference.fleet_config import FleetConfig
from reference.fleet_group import GroupResult, run_group
from reference.fleet_merge import MergeResult, merge_node, merge_router
from reference.fleet_plan import FleetPlan

WORK_DIR = ".fleet-work"
"""The intermediate files' directory, inside the output directory (so that the workers
of a remote scheduler, sharing the file system, see it); removed when the run ends."""
_OUTPUT_GLOBS = ("trace-*.jsonl*", "history-*.jsonl*", "fleet.json")

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: stage ``groups``, ``nodes`` or ``routers``."""


@dataclass(frozen=True, slots=True)
class FleetResult:
    fleet: dict[str, Any]
    wall_seconds: float
    task_seconds: dict[str, float]
    """Summed wall time of the tasks per stage (groups, nodes, routers): the work done,
    whatever the parallelism. Printed, never written."""

    @property
    def events(self) -> int:
        return int(self.fleet["events"])

    @property
    def segments(self) -> int:
        return sum(len(h["segments"]) for h in self.fleet["nodes"] + self.fleet["routers"])


@contextmanager
def dask_client(workers: int | None, scheduler: str | None) -> Iterator[Client]:
    """A client of ``scheduler``, or of a new local cluster of ``workers`` processes."""
    if scheduler is not None:
        with Client(scheduler) as client:  # type: ignore[no-untyped-call]
            yield client
        return
    n = workers or os.cpu_count() or 1
    cluster = LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
        silence_logs=logging.ERROR, memory_limit=0)
    with cluster, Client(cluster) as client:  # type: ignore[no-untyped-call]
        yield client


def _clear_outputs(out_dir: Path) -> None:
    # Segments of an earlier, longer run would otherwise look like this run's.
    for pattern in _OUTPUT_GLOBS:
        for p in out_dir.glob(pattern):
            p.unlink()


def run_fleet(cfg: FleetConfig, out_dir: Path, *, workers: int | None = None,
              scheduler: str | None = None, progress: Progress | None = None,
              keep_work: bool = False) -> FleetResult:
    """Simulate the fleet and write its production logs into ``out_dir``."""
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    _clear_outputs(out_dir)
    work = out_dir / WORK_DIR
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    plan = FleetPlan.build(cfg, out_dir.resolve(), work.resolve())
    token = uuid.uuid4().hex[:8]  # task keys only; never reaches a file
    with dask_client(workers, scheduler) as client:
        group_futs: dict[str, Future[GroupResult]] = {
            t.placement.group: client.submit(run_group, t, key=f"fleet-{token}-{t.placement.group}",
                                             pure=False)
            for t in plan.group_tasks()}
        node_futs = [client.submit(merge_node, t, *[group_futs[g] for g in plan.groups_of(t)],
                                   key=f"fleet-{token}-node-{t.host}", pure=False)
                     for t in plan.node_tasks()]
        router_futs = [client.submit(merge_router, t,
                                     *[group_futs[g] for g in plan.groups_of(t)],
                                     key=f"fleet-{token}-router-{t.host}", pure=False)
                       for t in plan.router_tasks()]
        stages: list[tuple[str, list[Future[Any]]]] = [
            ("groups", list(group_futs.values())), ("nodes", list(node_futs)),
            ("routers", list(router_futs))]
        stage_of = {f.key: stage for stage, futs in stages for f in futs}
        totals = {stage: len(futs) for stage, futs in stages}
        done = dict.fromkeys(totals, 0)
        every = [f for _, futs in stages for f in futs]
        for fut in as_completed(every):  # type: ignore[no-untyped-call]
            fut.result()  # raises the task's exception here, with its traceback
            stage = stage_of[fut.key]
            done[stage] += 1
            if progress is not None:
                progress(stage, done[stage], totals[stage])
        groups: list[GroupResult] = [f.result() for f in group_futs.values()]
        nodes: list[MergeResult] = [f.result() for f in node_futs]
        routers: list[MergeResult] = [f.result() for f in router_futs]
    fleet = plan.fleet_json(groups, nodes, routers)
    tmp = out_dir / "fleet.json.tmp"
    tmp.write_bytes(orjson.dumps(fleet, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))
    tmp.replace(out_dir / "fleet.json")
    if not keep_work:
        shutil.rmtree(work)
    task_seconds = {"groups": sum(g.seconds for g in groups),
                     "nodes": sum(m.seconds for m in nodes),
                     "routers": sum(m.seconds for m in routers)}
    return FleetResult(fleet, time.perf_counter() - started, task_seconds)


__all__ = ["WORK_DIR", "FleetResult", "Progress", "dask_client", "run_fleet"]
