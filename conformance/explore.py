"""``dynaspec explore``: a seed sweep, in the spirit of FoundationDB's simulation
and TigerBeetle's VOPR.

Each seed draws its own fault mix and workload (conformance/explore_mix.py), runs a
short simulation and checks it (conformance/explore_run.py: audit, monitor,
linearizability, Z3 leases, liveness after the heal); every failing seed is then
shrunk by re-running it (conformance/explore_shrink.py) and reported with the
``dynaspec simulate`` line that reproduces it.

Where seeds run (as conformance/fleet_replay.py):

* ``workers=1`` and no scheduler: in this process, one after another (debugging);
* ``workers=N``: a ``distributed.LocalCluster`` of N worker processes, one thread each
  (a simulation is pure Python: threads would share one interpreter lock);
* ``scheduler=ADDRESS``: an existing Dask cluster, whose workers need this package.

A task is one seed (its options in, its verdict out: a few hundred bytes each way),
then one task per failing seed's shrink. The result is the same wherever seeds run:
each seed's run depends on the seed alone, the rows are sorted by seed, and with
``max_failures`` the sweep keeps the lowest failing seeds, not the first to finish:
a seed above the ``max_failures``-th lowest failure found so far is cancelled (or its
row dropped), a seed below it still runs.
"""

from __future__ import annotations

import bisect
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from conformance import mutants
from conformance.errors import InputError, one_line
from conformance.explore_mix import Options, draw
from conformance.explore_run import SeedResult, run_seed
from conformance.explore_shrink import DEFAULT_RUNS, Shrunk, shrink

FORMAT = 1


@dataclass(slots=True)
class Status:
    """Where a sweep is, for a progress bar."""

    total: int
    done: int = 0
    failed: int = 0
    ops: int = 0
    phase: str = "seeds"
    """``seeds``, then ``shrinking`` while failing seeds shrink."""


Progress = Callable[[Status], None]


@dataclass(slots=True)
class SweepResult:
    rows: list[SeedResult]
    """One per seed run, by seed."""
    shrunk: dict[int, Shrunk]
    """Failing seed -> its shrink (if shrinking was on)."""
    bug: str | None
    seconds: float
    workers: int
    mode: str
    """``in-process``, ``local-cluster`` or ``scheduler <address>``."""
    stopped_after: int | None = None
    """With ``max_failures``: the failing seed the sweep stopped at (seeds above it
    were not run or not kept)."""
    seeds: list[int] = field(default_factory=list)
    """The seeds asked for."""

    @property
    def failed(self) -> list[SeedResult]:
        return [r for r in self.rows if not r.ok]

    @property
    def ops(self) -> int:
        return sum(r.ops for r in self.rows)

    def seeds_to_detection(self) -> int | None:
        """Seeds run up to and including the lowest failing one (None: none failed)."""
        first = next((r for r in self.rows if not r.ok), None)
        return None if first is None else self.seeds.index(first.options.seed) + 1

    def to_json(self) -> dict[str, Any]:
        rows = []
        for r in self.rows:
            row = r.to_json()
            if not r.ok:
                row["command"] = r.options.command(self.bug, r.failures)
                s = self.shrunk.get(r.options.seed)
                row["shrunk"] = None if s is None else s.to_json(self.bug)
            rows.append(row)
        return {"format": FORMAT, "bug": self.bug, "seeds": len(self.rows),
                "failed": len(self.failed), "ops": self.ops,
                "seeds_to_detection": self.seeds_to_detection(),
                "stopped_after": self.stopped_after, "wall_seconds": round(self.seconds, 2),
                "workers": self.workers, "mode": self.mode, "rows": rows}


def sweep(seeds: Sequence[int], *, duration_us: int, liveness_us: int,
          bug: mutants.Bug | None = None, workers: int | None = None,
          scheduler: str | None = None, max_failures: int | None = None,
          shrink_runs: int = DEFAULT_RUNS, progress: Progress | None = None) -> SweepResult:
    """Run, check and (``shrink_runs`` > 0) shrink every seed of ``seeds``.
    ``InputError`` if the scheduler cannot be reached."""
    started = time.perf_counter()
    status = Status(total=len(seeds))
    n = workers or os.cpu_count() or 1
    options = [draw(s, duration_us, liveness_us) for s in seeds]
    runner: _Runner
    if scheduler is None and n == 1:
        runner, mode = _InProcess(), "in-process"
    else:
        runner = _Dask(n, scheduler)
        mode = f"scheduler {scheduler}" if scheduler else "local-cluster"
        n = runner.workers
    try:
        rows, bound = runner.run_seeds(options, bug, max_failures, status, progress)
        failing = [r for r in rows if not r.ok]
        shrunk: dict[int, Shrunk] = {}
        if failing and shrink_runs > 0:
            status.phase = "shrinking"
            if progress is not None:
                progress(status)
            shrunk = runner.shrink_all(failing, bug, shrink_runs)
    finally:
        runner.close()
    return SweepResult(rows, shrunk, bug.name if bug is not None else None,
                       time.perf_counter() - started, n, mode, bound, list(seeds))


class _Runner(Protocol):
    workers: int

    def run_seeds(self, options: list[Options], bug: mutants.Bug | None,
                  max_failures: int | None, status: Status, progress: Progress | None
                  ) -> tuple[list[SeedResult], int | None]: ...

    def shrink_all(self, failing: list[SeedResult], bug: mutants.Bug | None,
                   runs: int) -> dict[int, Shrunk]: ...

    def close(self) -> None: ...


class _Keeper:
    """The rows kept, and the seed above which none is needed (``max_failures``)."""

    def __init__(self, max_failures: int | None, status: Status,
                 progress: Progress | None) -> None:
        self.max_failures = max_failures
        self.status = status
        self.progress = progress
        self.rows: list[SeedResult] = []
        self.failing: list[int] = []

    @property
    def bound(self) -> int | None:
        if self.max_failures is None or len(self.failing) < self.max_failures:
            return None
        return self.failing[self.max_failures - 1]

    def add(self, r: SeedResult) -> None:
        self.rows.append(r)
        if not r.ok:
            bisect.insort(self.failing, r.options.seed)
        s = self.status
        s.done, s.ops = s.done + 1, s.ops + r.ops
        s.failed += 0 if r.ok else 1
        if self.progress is not None:
            self.progress(s)

    def result(self) -> tuple[list[SeedResult], int | None]:
        bound = self.bound
        rows = sorted((r for r in self.rows if bound is None or r.options.seed <= bound),
                      key=lambda r: r.options.seed)
        return rows, bound


class _InProcess:
    workers = 1

    def run_seeds(self, options: list[Options], bug: mutants.Bug | None,
                  max_failures: int | None, status: Status, progress: Progress | None
                  ) -> tuple[list[SeedResult], int | None]:
        keep = _Keeper(max_failures, status, progress)
        for o in options:
            bound = keep.bound
            if bound is not None and o.seed > bound:
                continue
            keep.add(run_seed(o, bug))
        return keep.result()

    def shrink_all(self, failing: list[SeedResult], bug: mutants.Bug | None,
                   runs: int) -> dict[int, Shrunk]:
        return {r.options.seed: shrink(r, bug, runs) for r in failing}

    def close(self) -> None:
        pass


class _Dask:
    def __init__(self, workers: int, scheduler: str | None) -> None:
        # distributed has no type hints: its calls are untyped (checked by the tests).
        from distributed import Client, LocalCluster

        self.cluster = None
        if scheduler is None:
            self.cluster = LocalCluster(  # type: ignore[no-untyped-call]
                n_workers=workers, threads_per_worker=1, processes=True,
                dashboard_address=None, memory_limit=0, silence_logs=logging.ERROR)
            self.client = Client(self.cluster)  # type: ignore[no-untyped-call]
            self.workers = workers
        else:
            try:
                self.client = Client(scheduler, timeout="20s")  # type: ignore[no-untyped-call]
            except (OSError, ValueError, TimeoutError) as exc:
                raise InputError(f"{scheduler}:0: cannot use the Dask scheduler there: "
                                 f"{one_line(str(exc))}") from None
            self.workers = max(1, len(self.client.scheduler_info().get("workers", {})))

    def run_seeds(self, options: list[Options], bug: mutants.Bug | None,
                  max_failures: int | None, status: Status, progress: Progress | None
                  ) -> tuple[list[SeedResult], int | None]:
        from distributed import as_completed

        keep = _Keeper(max_failures, status, progress)
        # Lower seeds first (higher priority), so that a sweep cut short by
        # max_failures has run the seeds it keeps.
        futures = {self.client.submit(run_seed, o, bug, key=f"explore-seed-{o.seed}",
                                      priority=-i, pure=False): o.seed
                   for i, o in enumerate(options)}
        pending = dict(futures)
        for fut in as_completed(list(futures)):  # type: ignore[no-untyped-call]
            if fut.cancelled():
                continue
            pending.pop(fut, None)
            keep.add(fut.result())
            bound = keep.bound
            if bound is not None:
                late = [f for f, s in pending.items() if s > bound]
                for f in late:
                    pending.pop(f)
                if late:
                    self.client.cancel(late)  # type: ignore[no-untyped-call]
        return keep.result()

    def shrink_all(self, failing: list[SeedResult], bug: mutants.Bug | None,
                   runs: int) -> dict[int, Shrunk]:
        futures = [self.client.submit(shrink, r, bug, runs, key=f"explore-shrink-"
                                      f"{r.options.seed}", pure=False) for r in failing]
        return {r.options.seed: f.result() for r, f in zip(failing, futures, strict=True)}

    def close(self) -> None:
        self.client.close()  # type: ignore[no-untyped-call]
        if self.cluster is not None:
            self.cluster.close()


__all__ = ["FORMAT", "Status", "SweepResult", "sweep"]
