"""``dynaspec explore``: the seed sweep's command (conformance/explore.py), and the
``--faults`` parameter type it shares with ``dynaspec simulate``.

Registered on the main ``dynaspec`` group (conformance/cli.py), whose error handling
applies: a bad argument is one line on stderr and exit 2, an internal error exit 3.
Exit 0: every seed passed; 1: some seed failed (each printed with its reproduction).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click
import orjson
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from conformance import mutants
from conformance.cli_types import Duration
from conformance.errors import EXIT_INPUT, EXIT_VIOLATION, InputError, one_line
from conformance.explore_shrink import DEFAULT_RUNS
from reference.cluster import FAULT_SCHEDULES
from reference.faults import FAULT_KINDS, parse_faults


class Faults(click.ParamType):  # type: ignore[type-arg]
    """A named fault schedule, or a mix ``KIND:RATE+KIND:RATE`` (reference/faults.py)."""

    name = "schedule|mix"

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> str:
        text = str(value)
        try:
            parse_faults(text)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        return text

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "[" + "|".join(FAULT_SCHEDULES) + "|KIND:RATE+...]"


FAULTS_HELP = (f"Named fault schedule, or a mix of kinds with rates, e.g. crashes:2+partitions:0.5 "
               f"(kinds: {', '.join(FAULT_KINDS)}; see reference/faults.py).")


def bug_named(name: str | None) -> mutants.Bug | None:
    """The seeded bug ``name`` (every bug the matrix knows); ``click.UsageError`` if none."""
    if name is None:
        return None
    from conformance import mutation_matrix  # noqa: F401  (registers the matrix's bugs)

    bug = mutants.BUGS.get(name)
    if bug is None:
        raise click.UsageError(f"unknown bug {name!r}; choose from {', '.join(mutants.BUGS)}")
    return bug


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {one_line(message)}", err=True)
    sys.exit(EXIT_INPUT)


@click.command("explore")
@click.option("--seeds", type=click.IntRange(1), default=100, show_default=True,
              help="How many seeds to run.")
@click.option("--first-seed", type=int, default=1, show_default=True)
@click.option("--duration", type=Duration(), default="10s", show_default=True,
              help="Simulated time under load per seed (then the faults heal).")
@click.option("--liveness-bound", type=Duration(), default="10s", show_default=True,
              help="After the heal, a write must succeed within this, or the seed is stuck.")
@click.option("--bug", default=None, help="Seed this bug of conformance/mutants.py (or the "
                                          "mutation matrix) in every run.")
@click.option("--max-failures", type=click.IntRange(1), default=None,
              show_default="no limit",
              help="Stop once this many seeds failed (the lowest failing seeds are kept, "
                   "whatever the workers).")
@click.option("--shrink-runs", type=click.IntRange(0), default=DEFAULT_RUNS, show_default=True,
              help="Re-runs each failing seed's shrink may spend (0: no shrinking).")
@click.option("--workers", type=click.IntRange(1), default=None,
              show_default="the number of cores",
              help="Dask worker processes of a local cluster; 1 runs in this process.")
@click.option("--scheduler", metavar="ADDRESS", default=None,
              help="Use the Dask cluster at ADDRESS (its workers need this package).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("build/explore.json"), show_default=True,
              help="One row per seed: options drawn, verdict, failures, ops, seconds.")
def explore(seeds: int, first_seed: int, duration: int, liveness_bound: int, bug: str | None,
            max_failures: int | None, shrink_runs: int, workers: int | None,
            scheduler: str | None, out: Path) -> None:
    """Sweep seeds, each with its own fault mix and workload; check, shrink, reproduce.

    Exit codes: 0 every seed passed, 1 some seed failed (each printed with the
    `dynaspec simulate` line that reproduces it, and its shrink), 2 bad arguments, 3 an
    internal error."""
    from conformance.explore import Status, sweep

    if workers is not None and scheduler is not None:
        raise click.UsageError("--workers and --scheduler exclude each other")
    seeded = bug_named(bug)
    console = Console(stderr=True)
    try:
        with Progress(TextColumn("explore"), BarColumn(), TextColumn("{task.description}"),
                      TimeElapsedColumn(), console=console, transient=True,
                      disable=not console.is_terminal) as bar:
            task = bar.add_task("", total=seeds)

            def tick(s: Status) -> None:
                what = f"{s.done}/{s.total} seeds, {s.failed} failed, {s.ops:,} ops simulated"
                if s.phase != "seeds":
                    what += f" ({s.phase})"
                bar.update(task, completed=s.done, description=what)

            result = sweep(range(first_seed, first_seed + seeds), duration_us=duration,
                           liveness_us=liveness_bound, bug=seeded, workers=workers,
                           scheduler=scheduler, max_failures=max_failures,
                           shrink_runs=shrink_runs, progress=tick)
    except InputError as exc:
        _fail(str(exc))
    for r in result.failed:
        first = next(iter(r.failures.items()))
        click.echo(f"FAIL seed {r.options.seed}: {first[0]}: {first[1][:300]}")
        click.echo(f"  reproduce: {r.options.command(bug, r.failures)}")
        s = result.shrunk.get(r.options.seed)
        if s is not None:
            click.echo(f"  shrunk ({s.runs} re-runs, fails {', '.join(s.failures)}): "
                       f"{s.options.command(bug, s.failures)}")
    stop = f", stopped at seed {result.stopped_after}" if result.stopped_after else ""
    click.echo(f"explore: {len(result.rows)} seeds, {len(result.failed)} failed{stop}, "
               f"{result.ops:,} ops simulated, {result.seconds:.1f}s wall on "
               f"{result.workers} worker(s) ({result.mode})")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(orjson.dumps(result.to_json(), option=orjson.OPT_INDENT_2))
    except OSError as exc:
        _fail(f"{out}:0: cannot write: {exc.strerror or exc}")
    click.echo(f"wrote {out}")
    sys.exit(EXIT_VIOLATION if result.failed else 0)


__all__ = ["FAULTS_HELP", "Faults", "bug_named", "explore"]
