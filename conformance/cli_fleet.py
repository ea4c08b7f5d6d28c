"""``dynaspec fleet``: production-profile logs of a simulated fleet (traces/PRODUCTION.md).

Registered on the main ``dynaspec`` group (conformance/cli.py), whose error handling
applies: a bad argument is one line on stderr and exit 2, an internal error exit 3.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from conformance.cli_types import Duration
from conformance.errors import EXIT_INPUT, one_line
from reference.fleet_config import COMPRESSIONS, FLEET_FAULTS, FleetConfig
from reference.fleet_group import group_sim_config
from reference.workload import WorkloadConfig


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {one_line(message)}", err=True)
    sys.exit(EXIT_INPUT)


@click.group("fleet")
def fleet() -> None:
    """A simulated fleet: many replication groups on shared storage nodes."""


@fleet.command("simulate")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Directory for fleet.json and the rotated trace and history segments "
                   "(earlier trace-*, history-* and fleet.json files there are removed).")
@click.option("--seed", type=int, default=1, show_default=True, help="The run's only seed.")
@click.option("--nodes", type=click.IntRange(1, 10_000), default=9, show_default=True,
              help="Storage nodes.")
@click.option("--groups", type=click.IntRange(1, 1_000_000), default=12, show_default=True,
              help="Replication groups.")
@click.option("--replicas", type=click.IntRange(1, 9), default=3, show_default=True,
              help="Replicas per group (on distinct nodes).")
@click.option("--routers", type=click.IntRange(1, 1_000), default=2, show_default=True,
              help="Request-router hosts that log the client histories.")
@click.option("--duration", type=Duration(), default="10s", show_default=True,
              help="Simulated time under load (then faults heal and groups settle).")
@click.option("--settle", type=Duration(), default="2s", show_default=True,
              help="Simulated time after the load, to finish in-flight work.")
@click.option("--clients", type=click.IntRange(0, 1000), default=2, show_default=True,
              help="Closed-loop clients per group.")
@click.option("--think", type=Duration(), default="20ms", show_default=True,
              help="Mean pause between a client's operations.")
@click.option("--keys", type=click.IntRange(1, 1_000_000), default=16, show_default=True,
              help="Keys per group.")
@click.option("--faults", type=click.Choice(FLEET_FAULTS), default="none", show_default=True,
              help="Node-level fault schedule (reference/fleet_faults.py).")
@click.option("--segment-lines", type=click.IntRange(1), default=1_000_000, show_default=True,
              help="Lines per segment before a log is rotated.")
@click.option("--compression", type=click.Choice(COMPRESSIONS), default="gz",
              show_default=True)
@click.option("--workers", type=click.IntRange(1, 1024), default=None,
              show_default="the number of cores", help="Local Dask worker processes.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Use this Dask scheduler instead of a local cluster (its workers must "
                   "see --out).")
@click.option("--keep-work", is_flag=True, help="Keep the intermediate per-group files.")
def simulate_cmd(out: Path, seed: int, nodes: int, groups: int, replicas: int, routers: int,
                 duration: int, settle: int, clients: int, think: int, keys: int, faults: str,
                 segment_lines: int, compression: str, workers: int | None,
                 scheduler: str | None, keep_work: bool) -> None:
    """Simulate a fleet and write its production logs (format 4, traces/PRODUCTION.md)."""
    if workers is not None and scheduler is not None:
        raise click.UsageError("--workers and --scheduler exclude each other")
    try:
        cfg = FleetConfig(seed=seed, nodes=nodes, groups=groups, replicas=replicas,
                          routers=routers, clients=clients, duration_us=duration,
                          settle_us=settle, faults=faults, segment_lines=segment_lines,
                          compression=compression,  # type: ignore[arg-type]
                          workload=WorkloadConfig(keys=keys, think_us=think))
        from conformance.lease_theorem import require_lease_safety  # z3: only when it runs

        # Every group runs the same lease settings: prove them safe once, before starting.
        require_lease_safety(group_sim_config(cfg, "").effective().replica_config())
    except ValueError as exc:
        _fail(str(exc))
    from reference.fleet_run import run_fleet  # dask: only when it runs

    console = Console(stderr=True)
    started = time.perf_counter()
    with Progress(TextColumn("{task.description:<8}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                  console=console, transient=True, disable=not console.is_terminal) as bar:
        tasks: dict[str, TaskID] = {}

        def tick(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done)

        try:
            result = run_fleet(cfg, out, workers=workers, scheduler=scheduler, progress=tick,
                               keep_work=keep_work)
        except OSError as exc:
            _fail(f"{exc.filename or out}:0: {exc.strerror or exc}")
    wall = time.perf_counter() - started
    fleet_json = result.fleet
    bad = [g["id"] for g in fleet_json["groups"] if not g["audit_ok"]]
    click.echo(f"fleet: {groups} groups on {nodes} nodes, {result.events:,} events and "
               f"{fleet_json['operations']:,} operations written in {result.segments} "
               f"segments, {wall:.1f}s ({result.events / max(wall, 1e-9):,.0f} events/s; "
               + ", ".join(f"{k} {v:.1f}s" for k, v in result.task_seconds.items())
               + " of task time)")
    if bad:
        click.echo(f"audit: VIOLATION in {len(bad)} groups: {', '.join(bad[:10])}")
        sys.exit(1)


__all__ = ["fleet"]
