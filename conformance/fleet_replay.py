"""``dynaspec replay FLEET_DIR``: every group of a fleet checked, on Dask distributed.

PObserve's three steps, then the monitor, per group: parse (conformance/fleet_input.py),
sequence (fleet_sequence.py), route (fleet_spill.py), check (fleet_route.py,
fleet_check.py). The groups are split into buckets of at most ``GROUPS_PER_TASK``
(``plan_buckets``), which bounds what one check task holds. Two kinds of task:

* route: one per node's trace rotation and per router's history rotation; each reads its
  files once and spills every line to the bucket of its group (fleet_spill.py says why);
* check: one per bucket, after every route: its groups' spills, sequenced and monitored.

Where they run:

* ``workers=1`` and no scheduler: in this process, one after another, without Dask (for
  debugging and profiling: a breakpoint or a traceback is where it happened);
* ``workers=N``: a ``distributed.LocalCluster`` of N worker processes, one thread each
  (the checks are pure Python: threads would share one interpreter lock), at least two
  buckets per worker so that a slow bucket does not leave a worker idle at the end;
* ``scheduler=ADDRESS``: an existing cluster. Its workers open the fleet directory by
  the path given here, so it must be readable at that path on every worker (a shared
  filesystem), the spill directory (the fleet directory unless ``spill_dir``) writable
  there, and they need this package and its dependencies installed.

Each task returns a few hundred bytes (a rotation's ``Routed``) or its groups' verdicts
(a few KB each), never events: nothing but paths and verdicts crosses the network.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from conformance.errors import InputError, one_line
from conformance.fleet_check import GroupVerdict
from conformance.fleet_input import FleetSpec, read_fleet_spec
from conformance.fleet_route import check_bucket
from conformance.fleet_spill import GROUPS_PER_TASK, Routes, route_jobs

Progress = Callable[[str], None]
"""Where the run is, in a few words (routing: rotations routed; checking: groups and
events done)."""


@dataclass(slots=True)
class FleetResult:
    directory: Path
    verdicts: list[GroupVerdict]
    seconds: float
    workers: int
    mode: str
    """``in-process``, ``local-cluster`` or ``scheduler <address>``."""

    @property
    def events(self) -> int:
        return sum(v.events for v in self.verdicts)


def plan_buckets(spec: FleetSpec, buckets: int, per_task: int = GROUPS_PER_TASK
                 ) -> list[list[str]]:
    """The groups in at least ``buckets`` chunks of at most ``per_task`` groups each,
    groups on the same nodes together (fewer spill files per task)."""
    order = sorted(spec.groups, key=lambda g: (sorted(set(spec.groups[g].nodes.values())), g))
    n = max(1, min(max(buckets, -(-len(order) // per_task)), len(order)))
    size, extra = divmod(len(order), n)
    out, i = [], 0
    for k in range(n):
        j = i + size + (1 if k < extra else 0)
        out.append(order[i:j])
        i = j
    return [b for b in out if b]


def replay_fleet(directory: Path, *, workers: int | None = None, scheduler: str | None = None,
                 progress: Progress | None = None, histories: bool = True,
                 spill_dir: Path | None = None, per_task: int = GROUPS_PER_TASK
                 ) -> FleetResult:
    """Check every group; ``TraceInputError`` only if fleet.json itself is unusable (any
    other bad input is its groups' ``input-error`` verdicts). ``histories=False``: not the
    histories' linearizability (``check_bucket``; for benchmarks). ``spill_dir``: where
    the route pass writes (conformance/fleet_spill.py; the system's temporary directory
    by default, the fleet directory with ``scheduler``: every worker must reach it).
    ``per_task``: at most this many groups per check task."""
    spec = read_fleet_spec(directory)
    started = time.perf_counter()
    n = workers or os.cpu_count() or 1
    if spill_dir is None and scheduler is not None:
        spill_dir = directory
    try:
        out = Path(tempfile.mkdtemp(prefix=".dynaspec-route-", dir=spill_dir))
    except OSError as exc:
        raise InputError(f"{spill_dir or tempfile.gettempdir()}:0: cannot write the route "
                         f"pass's spills there: {one_line(str(exc))}") from None
    try:
        if scheduler is None and n == 1:
            verdicts = _in_process(spec, directory, out, progress, histories, per_task)
            mode = "in-process"
        else:
            verdicts, n = _on_dask(spec, directory, out, n, scheduler, progress, histories,
                                   per_task)
            mode = f"scheduler {scheduler}" if scheduler else "local-cluster"
    finally:
        shutil.rmtree(out, ignore_errors=True)
    order = {g: i for i, g in enumerate(spec.groups)}
    verdicts.sort(key=lambda v: order.get(v.group, len(order)))
    if progress is not None:
        progress(_checked(verdicts))
    return FleetResult(directory, verdicts, time.perf_counter() - started, n, mode)


def _in_process(spec: FleetSpec, directory: Path, out: Path, progress: Progress | None,
                histories: bool, per_task: int) -> list[GroupVerdict]:
    buckets = plan_buckets(spec, 1, per_task)
    bucket_of = {g: k for k, b in enumerate(buckets) for g in b}
    routes = Routes()
    jobs = route_jobs(spec, bucket_of)
    for i, (fn, name) in enumerate(jobs):
        if progress is not None:
            progress(f"routing: {i} of {len(jobs)} rotations")
        routes.add(fn(str(directory), name, bucket_of, str(out)))
    done = [0]
    verdicts: list[GroupVerdict] = []

    def tick(lines: int) -> None:
        done[0] += lines
        if progress is not None:
            progress(f"checking: {len(verdicts)} of {len(spec.groups)} groups done, "
                     f"{done[0]:,} events")

    for k, b in enumerate(buckets):
        verdicts += check_bucket(str(directory), b, tick, histories=histories, routes=routes,
                                 bucket=k)
        shutil.rmtree(out / str(k), ignore_errors=True)
    return verdicts


def _on_dask(spec: FleetSpec, directory: Path, out: Path, workers: int, scheduler: str | None,
             progress: Progress | None, histories: bool, per_task: int
             ) -> tuple[list[GroupVerdict], int]:
    """The verdicts, and the number of workers that ran them."""
    # distributed has no type hints: its calls are untyped (checked by the tests).
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler is None:
        cluster = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
            memory_limit=0, silence_logs=logging.ERROR)
        client = Client(cluster)  # type: ignore[no-untyped-call]
    else:
        try:
            client = Client(scheduler, timeout="20s")  # type: ignore[no-untyped-call]
        except (OSError, ValueError, TimeoutError) as exc:
            raise InputError(f"{scheduler}:0: cannot use the Dask scheduler there: "
                             f"{one_line(str(exc))}") from None
    try:
        if scheduler is not None:
            workers = max(1, len(client.scheduler_info().get("workers", {})))
        buckets = plan_buckets(spec, 2 * workers, per_task)
        bucket_of = {g: k for k, b in enumerate(buckets) for g in b}
        path = str(directory.resolve()) if scheduler is None else str(directory)
        spill = str(out.resolve()) if scheduler is None else str(out)
        # Route first (one task per rotation), then check (one task per bucket): every
        # check needs every node's route done (its groups' lines are on any node).
        routes = Routes()
        futures = [client.submit(fn, path, name, bucket_of, spill, key=f"fleet-route-{name}",
                                 pure=False)
                   for fn, name in route_jobs(spec, bucket_of)]
        for i, fut in enumerate(as_completed(futures)):  # type: ignore[no-untyped-call]
            routes.add(fut.result())
            if progress is not None:
                progress(f"routing: {i + 1} of {len(futures)} rotations")
        checks = [client.submit(check_bucket, path, b, key=f"fleet-bucket-{i}", pure=False,
                                histories=histories, routes=routes, bucket=i)
                  for i, b in enumerate(buckets)]
        got: list[GroupVerdict] = []
        for fut in as_completed(checks):  # type: ignore[no-untyped-call]
            got += fut.result()
            if progress is not None:
                progress(f"checking: {_checked(got)} (of {len(spec.groups)} groups)")
        return got, workers
    finally:
        client.close()  # type: ignore[no-untyped-call]
        if cluster is not None:
            cluster.close()


def _checked(verdicts: list[GroupVerdict]) -> str:
    return f"{len(verdicts)} groups done, {sum(v.events for v in verdicts):,} events"


__all__ = ["FleetResult", "plan_buckets", "replay_fleet"]
