"""``dynaspec replay FLEET_DIR``: every group of a fleet checked, on Dask distributed.

PObserve's three steps, then the monitor, per group: parse (conformance/fleet_input.py),
sequence (fleet_sequence.py), route (fleet_route.py), check (fleet_check.py). The
groups are split into buckets (``plan_buckets``: groups that share nodes together, so
that fewer tasks read each node's file) and each bucket is one task:

* ``workers=1`` and no scheduler: the one bucket runs in this process, without Dask
  (for debugging and profiling: a breakpoint or a traceback is where it happened);
* ``workers=N``: a ``distributed.LocalCluster`` of N worker processes, one thread each
  (the checks are pure Python: threads would share one interpreter lock), two buckets
  per worker so that a slow bucket does not leave a worker idle at the end;
* ``scheduler=ADDRESS``: an existing cluster. Its workers open the fleet directory by
  the path given here, so it must be readable at that path on every worker (a shared
  filesystem), and they need this package and its dependencies installed.

Each task returns its groups' verdicts (a few KB each), never events: the workers read
the files themselves, so nothing but paths and verdicts crosses the network.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from conformance.errors import InputError, one_line
from conformance.fleet_check import GroupVerdict
from conformance.fleet_input import FleetSpec, read_fleet_spec
from conformance.fleet_route import check_bucket

Progress = Callable[[int, int, int], None]
"""(groups done, events done, events in total or 0 if unknown)."""


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


def plan_buckets(spec: FleetSpec, buckets: int) -> list[list[str]]:
    """The groups in ``buckets`` chunks, groups on the same nodes together."""
    order = sorted(spec.groups, key=lambda g: (sorted(set(spec.groups[g].nodes.values())), g))
    n = max(1, min(buckets, len(order)))
    size, extra = divmod(len(order), n)
    out, i = [], 0
    for k in range(n):
        j = i + size + (1 if k < extra else 0)
        out.append(order[i:j])
        i = j
    return [b for b in out if b]


def replay_fleet(directory: Path, *, workers: int | None = None, scheduler: str | None = None,
                 progress: Progress | None = None) -> FleetResult:
    """Check every group; ``TraceInputError`` only if fleet.json itself is unusable (any
    other bad input is its groups' ``input-error`` verdicts)."""
    spec = read_fleet_spec(directory)
    started = time.perf_counter()
    n = workers or os.cpu_count() or 1
    if scheduler is None and n == 1:
        done = [0]

        def tick(lines: int) -> None:
            done[0] += lines
            if progress is not None:
                progress(0, done[0], 0)

        verdicts = check_bucket(str(directory), list(spec.groups), tick)
        mode = "in-process"
    else:
        verdicts, n = _on_dask(spec, directory, n, scheduler, progress)
        mode = f"scheduler {scheduler}" if scheduler else "local-cluster"
    order = {g: i for i, g in enumerate(spec.groups)}
    verdicts.sort(key=lambda v: order.get(v.group, len(order)))
    if progress is not None:
        progress(len(verdicts), sum(v.events for v in verdicts), 0)
    return FleetResult(directory, verdicts, time.perf_counter() - started, n, mode)


def _on_dask(spec: FleetSpec, directory: Path, workers: int, scheduler: str | None,
             progress: Progress | None) -> tuple[list[GroupVerdict], int]:
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
        buckets = plan_buckets(spec, 2 * workers)
        path = str(directory.resolve()) if scheduler is None else str(directory)
        futures = [client.submit(check_bucket, path, b, key=f"fleet-bucket-{i}", pure=False)
                   for i, b in enumerate(buckets)]
        out: list[GroupVerdict] = []
        for fut in as_completed(futures):  # type: ignore[no-untyped-call]
            out += fut.result()
            if progress is not None:
                progress(len(out), sum(v.events for v in out), 0)
        return out, workers
    finally:
        client.close()  # type: ignore[no-untyped-call]
        if cluster is not None:
            cluster.close()


__all__ = ["FleetResult", "plan_buckets", "replay_fleet"]
