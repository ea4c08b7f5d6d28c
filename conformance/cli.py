"""The `dynaspec` command line."""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from conformance.check_models import check_models
from conformance.cli_explore import FAULTS_HELP, Faults, bug_named, explore
from conformance.cli_fleet import fleet
from conformance.cli_history import check_history_cmd
from conformance.cli_types import Duration
from conformance.errors import EXIT_INPUT, EXIT_INTERNAL, InputError, one_line
from conformance.manifest import ManifestError, load_manifest
from conformance.tlc_runner import ToolchainError
from reference.cluster import SimConfig
from reference.healing import HealConfig
from reference.network import NetworkConfig
from reference.node import NodeConfig
from reference.simulate import render_summary, run_simulation
from reference.workload import WorkloadConfig

_HEAL_DEFAULTS = HealConfig()

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MANIFEST = REPO / "specs" / "manifest.json"


INTERNAL_ERROR_LOG: Path | None = None
"""Where an internal error's traceback is saved. None: a new file per crash (none
overwrites another), build/dynaspec-crash-<time>-<pid>.txt, or in the temp directory
if build/ cannot be written."""

EXIT_CODES_HELP = (
    "Exit codes: 0 clean, 1 a violation found, 2 unusable input or arguments (one line "
    "on stderr, `path:line: reason`; also input left partly unchecked, unless "
    "--partial-ok), 3 an internal error (one line, the traceback saved to a file it "
    "names). See traces/FORMAT.md, \"Bad input and exit codes\".")


def _save_traceback(text: str) -> Path | None:
    if INTERNAL_ERROR_LOG is not None:
        candidates = [INTERNAL_ERROR_LOG]
    else:
        name = f"dynaspec-crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
        candidates = [Path("build") / name, Path(tempfile.gettempdir()) / name]
    for where in candidates:
        try:
            where.parent.mkdir(parents=True, exist_ok=True)
            where.write_text(text)
        except OSError:
            continue
        return where
    return None


def _fail(message: str, code: int = EXIT_INPUT) -> NoReturn:
    """Exit ``code`` with ``message`` as the one line on stderr."""
    click.echo(f"error: {one_line(message)}", err=True)
    sys.exit(code)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    sys.exit(128 + signum)


class _Group(click.Group):
    """Exit codes, across all commands: 0 clean, 1 a violation, 2 unusable input, 3 an
    internal error (a bug in dynaspec): one line, the traceback saved to a file."""

    @staticmethod
    def _usage_error(exc: click.UsageError, ctx: click.Context) -> NoReturn:
        # One line, not click's usage block: the line is what a log or CI shows.
        path = exc.ctx.command_path if exc.ctx is not None else ctx.command_path
        _fail(f"{exc.format_message()} (see '{path} --help')", exc.exit_code)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.exceptions.NoArgsIsHelpError:
            raise  # bare `dynaspec`: the help, as click shows it
        except click.UsageError as exc:
            self._usage_error(exc, ctx)

    def invoke(self, ctx: click.Context) -> Any:
        # SIGTERM (a CI timeout, `kill`, a scheduler's preemption) ends the command as
        # SystemExit, so that finally blocks run: a fleet replay's route spills (gigabytes)
        # and temporary directories are removed, as on Ctrl-C.
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _exit_on_sigterm)
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            self._usage_error(exc, ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit,
                KeyboardInterrupt):
            raise
        except BrokenPipeError:
            # The reader went away (`dynaspec replay DIR | head`): not a bug. Exit as a
            # process killed by SIGPIPE would, without flushing into the closed pipe.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(128 + 13)
        except Exception as exc:
            import traceback

            where = _save_traceback(traceback.format_exc())
            first = str(exc).splitlines()[0] if str(exc) else ""
            click.echo(f"internal error: {type(exc).__name__}: {first} (a dynaspec bug; "
                       f"traceback in {where or '(no file could be written)'})", err=True)
            sys.exit(EXIT_INTERNAL)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=EXIT_CODES_HELP)
def main() -> None:
    """dynaspec: DynamoDB's replication design in TLA+, with a reference checked against it."""


@main.command("check-models", epilog=EXIT_CODES_HELP)
@click.option("--set", "model_set", type=click.Choice(["standard", "ci", "extended", "all"]),
              default="standard", show_default=True, help="Which models of the manifest to run.")
@click.option("--model", "models", multiple=True, help="Run only this model (repeatable).")
@click.option("--manifest", type=click.Path(dir_okay=False, path_type=Path),
              default=DEFAULT_MANIFEST, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("build"), show_default=True, help="Where results are written.")
@click.option("--timeout", type=click.FloatRange(min=1), default=1200, show_default=True,
              help="Seconds allowed per model.")
@click.option("--update-manifest", is_flag=True,
              help="Record this run's state counts and depths in the manifest.")
@click.option("--show-traces", is_flag=True, help="Print every counterexample, mutants' too.")
@click.option("--jobs", type=click.IntRange(min=1), default=min(2, os.cpu_count() or 1),
              show_default="2, or 1 on one core",
              help="TLC processes at once (each model keeps its own worker count, so its "
                   "state counts stay deterministic).")
def check_models_cmd(model_set: str, models: tuple[str, ...], manifest: Path, out: Path,
                     timeout: float, update_manifest: bool, show_traces: bool,
                     jobs: int) -> None:
    """Model-check the specs: correct models must pass, mutants must be caught."""
    # Logs (CI) are not terminals: give the table room instead of 80 columns.
    console = Console(stderr=True, width=None if sys.stderr.isatty() else 150)
    try:
        loaded = load_manifest(manifest)
        entries = loaded.select(model_set, list(models) or None)
        if not entries:
            raise click.UsageError(f"no model in set {model_set!r}")
        runs = check_models(loaded, entries, out_dir=out, timeout=timeout,
                            update_manifest=update_manifest, show_traces=show_traces,
                            console=console, jobs=jobs)
    except (ManifestError, ToolchainError) as exc:
        _fail(str(exc))
    sys.exit(0 if all(r.passed for r in runs) else 1)


@main.command("simulate", epilog=EXIT_CODES_HELP)
@click.option("--seed", type=int, default=1, show_default=True, help="The run's only random seed.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Directory for traces, history, config and summary.")
@click.option("--replicas", type=click.IntRange(1, 9), default=3, show_default=True)
@click.option("--duration", type=Duration(), default="30s", show_default=True,
              help="Simulated time under load (then faults heal and the group settles).")
@click.option("--faults", type=Faults(), default="none", show_default=True, help=FAULTS_HELP)
@click.option("--clients", type=click.IntRange(0, 1000), default=8, show_default=True,
              help="Closed-loop clients.")
@click.option("--read-fraction", type=click.FloatRange(0, 1), default=0.5, show_default=True)
@click.option("--consistent-fraction", type=click.FloatRange(0, 1), default=0.5,
              show_default=True, help="Share of reads that are strongly consistent.")
@click.option("--keys", type=click.IntRange(1, 1_000_000), default=16, show_default=True)
@click.option("--value-size", type=click.IntRange(0, 1 << 20), default=32, show_default=True,
              help="Characters per written value.")
@click.option("--think", type=Duration(), default="2ms", show_default=True,
              help="Mean pause between a client's operations.")
@click.option("--availability-interval", type=Duration(), default=None,
              help="Availability interval [default: duration / 12, the paper's 5 minutes "
                   "with the run taken as an hour].")
@click.option("--copy-bandwidth", type=click.IntRange(1), default=_HEAL_DEFAULTS.copy_bandwidth_bps,
              show_default=True, metavar="BYTES_PER_S",
              help="Healing (--faults heal): B-tree snapshot copy speed, simulated.")
@click.option("--unhealthy-after", type=Duration(),
              default=f"{_HEAL_DEFAULTS.unhealthy_after_us}us", show_default="2s",
              help="Healing: a member silent this long (leader's clock) is unhealthy.")
@click.option("--storage-only", is_flag=True,
              help="Healing: copy a B-tree before restoring the quorum (no log replicas); "
                   "the summary compares with the other mode either way.")
@click.option("--peer-confirm/--no-peer-confirm", default=True, show_default=True,
              help="Gray-failure detection (paper 6.2): a follower elects only when a "
                   "quorum of peers confirms that nobody hears a leader holding its lease.")
@click.option("--handoff/--no-handoff", default=True, show_default=True,
              help="Lease handoff: a leader relinquishes its lease to a successor before a "
                   "deployment restarts it (--faults deploy).")
@click.option("--late-messages", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Probability that a message is held back longer than an election "
                   "timeout (and the lease margin): 1 to 2.5 election timeouts more. "
                   "Combines with any --faults.")
@click.option("--liveness-bound", type=Duration(), default=None,
              help="Once the faults heal, a probe client writes until a write succeeds: "
                   "exit 1 unless one does within this bound [default: no probe].")
@click.option("--bug", default=None,
              help="Seed this bug of conformance/mutants.py (or the mutation matrix): to "
                   "reproduce a `dynaspec explore --bug` failure.")
@click.option("--plot/--no-plot", default=True, show_default=True,
              help="Write timeline.png: roles, leases, faults and availability over time.")
def simulate_cmd(seed: int, out: Path, replicas: int, duration: int, faults: str, clients: int,
                 read_fraction: float, consistent_fraction: float, keys: int, value_size: int,
                 think: int, availability_interval: int | None, copy_bandwidth: int,
                 unhealthy_after: int, storage_only: bool, peer_confirm: bool, handoff: bool,
                 late_messages: float, liveness_bound: int | None, bug: str | None,
                 plot: bool) -> None:
    """Run a simulated replication group and write its traces, history and summary."""
    from conformance import mutants
    from conformance.lease_theorem import require_lease_safety  # here: only simulate needs z3

    seeded = bug_named(bug)

    heal = HealConfig(log_replicas=not storage_only, unhealthy_after_us=unhealthy_after,
                      copy_bandwidth_bps=copy_bandwidth)
    try:
        cfg = SimConfig(seed=seed, replicas=replicas, clients=clients, duration_us=duration,
                        faults=faults, peer_confirm=peer_confirm, handoff=handoff,
                        liveness_us=liveness_bound or 0,
                        network=NetworkConfig(late_prob=late_messages),
                        node=NodeConfig(heal=heal), workload=WorkloadConfig(
                            keys=keys, value_size=value_size, read_fraction=read_fraction,
                            consistent_fraction=consistent_fraction, think_us=think))
        console = Console(stderr=True)
        with Progress(TextColumn("simulating"), BarColumn(), TextColumn("{task.description}"),
                      TimeElapsedColumn(), console=console, transient=True,
                      disable=not console.is_terminal) as bar:
            task = bar.add_task("", total=cfg.duration_us + cfg.settle_us)

            def tick(now_us: int, end_us: int) -> None:
                bar.update(task, completed=now_us, description=f"{now_us / 1e6:.0f}s simulated")

            # Refuse to start unless Z3 proves the replicas' lease configuration safe for
            # every drift within the bound and every message delay.
            with mutants.active(seeded.name if seeded is not None else None):
                result = run_simulation(cfg, out, availability_interval, tick,
                                        check_config=require_lease_safety, plot=plot)
    except (ValueError, OSError) as exc:
        _fail(str(exc))
    for line in render_summary(result.summary, result.wall_seconds):
        click.echo(line)
    click.echo(f"wrote {out}/trace-*.jsonl, history.jsonl, config.json, summary.json"
               + (", timeline.png" if plot else ""))
    live = result.world.liveness()
    if live is not None:
        click.echo(f"liveness: {'STUCK' if live['stuck'] else 'ok'}: after the heal at "
                   f"{live['healed_at_s']:g}s the first write succeeded "
                   + (f"{live['write_after_s']}s later" if live["write_after_s"] is not None
                      else "never") + f" (bound {live['bound_s']:g}s)"
                   + (f"; not owed: {live['lost']} lost for good, more than a minority"
                      if live["beyond_budget"] else ""))
    stuck = live is not None and live["stuck"]
    sys.exit(0 if result.summary["audit"]["ok"] and not stuck else 1)


@main.command("replay", epilog=EXIT_CODES_HELP)
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--tlc", is_flag=True, help="Also validate the trace against the spec with TLC.")
@click.option("--tlc-max-events", type=click.IntRange(1), default=None,
              show_default="every event",
              help="Validate only this many events (merged by real time) with TLC; a "
                   "longer trace is a partial check (see --partial-ok).")
@click.option("--tlc-window", type=click.IntRange(1), default=1500, show_default=True,
              help="Trace items per TLC run: a longer trace is validated in windows, "
                   "each starting from the spec state the previous one ended in.")
@click.option("--partial-ok", is_flag=True,
              help="Accept a check that left part of the input unchecked (events past "
                   "--tlc-max-events, keys the linearizability search could not decide): "
                   "still reported, but exit 0 instead of 2.")
@click.option("--max-states", type=click.IntRange(1), default=None,
              show_default="the history checker's default, 1,000,000",
              help="Linearizability search budget per key of a single group's history; a "
                   "key that needs more is reported undecided, never a violation.")
@click.option("--workers", type=click.IntRange(1), default=None,
              show_default="the number of cores",
              help="Fleet directory: Dask worker processes of a local cluster; 1 runs "
                   "in this process, without Dask (for debugging).")
@click.option("--scheduler", metavar="ADDRESS", default=None,
              help="Fleet directory: use the Dask cluster at ADDRESS; its workers must "
                   "read the fleet directory at the same path.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("build/replay-report.json"), show_default=True,
              help="Fleet directory: where the per-group verdicts are written.")
@click.option("--spill-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              show_default="the system's temporary directory; with --scheduler, the fleet "
                           "directory",
              help="Fleet directory: where the route pass writes each check task's lines "
                   "(about 480 bytes per event, removed at the end; every worker must "
                   "reach it).")
@click.pass_context
def replay_cmd(ctx: click.Context, directory: Path, tlc: bool, tlc_max_events: int | None,
               tlc_window: int, partial_ok: bool, max_states: int | None,
               workers: int | None, scheduler: str | None,
               report_path: Path, spill_dir: Path | None) -> None:
    """Check a `dynaspec simulate` output: monitor, linearizability, Z3 leases [, TLC];
    or every group of a fleet directory (fleet.json, format 4).

    Reads DIRECTORY/config.json, history.jsonl and one trace-<node>.jsonl (or
    .jsonl.gz) per node the config lists. Bad input (traces/FORMAT.md, "Bad input and
    exit codes") is one line `path:line: reason` and exit 2, before any check runs.
    A fleet directory's groups are checked on Dask (--workers, --scheduler), each
    group's verdict written to --report; a group with bad input is reported as
    such (exit 2) while the others are still checked."""
    from conformance.fleet_input import is_fleet_dir
    from conformance.linearizability import HistoryFormatError
    from conformance.replay import replay

    for opt in ("tlc_max_events", "tlc_window"):
        if ctx.get_parameter_source(opt) is not click.core.ParameterSource.DEFAULT \
                and not tlc:
            raise click.UsageError(f"--{opt.replace('_', '-')} sets the TLC layer: it needs "
                                   f"--tlc")
    console = Console(stderr=True)
    if not directory.is_dir():
        _fail(f"{directory}:0: no such directory")
    if is_fleet_dir(directory):
        if tlc:
            raise click.UsageError("--tlc checks a single simulated group, not a fleet")
        if max_states is not None:
            raise click.UsageError("--max-states applies to a single group; a fleet's "
                                   "groups use the default budget")
        _replay_fleet(directory, workers, scheduler, report_path, partial_ok, console,
                      spill_dir)
    if workers is not None or scheduler is not None or spill_dir is not None:
        raise click.UsageError("--workers, --scheduler and --spill-dir are for a fleet "
                               "directory (fleet.json)")
    try:
        with Progress(TextColumn("{task.description:<16}"), BarColumn(),
                      TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                      console=console, transient=True,
                      disable=not console.is_terminal) as bar:
            tasks: dict[str, Any] = {}

            def tick(layer: str, done: int, total: int) -> None:
                if layer not in tasks:
                    tasks[layer] = bar.add_task(layer, total=total)
                bar.update(tasks[layer], completed=done, total=total)

            result = replay(directory, tlc=tlc, tlc_max_events=tlc_max_events,
                            tlc_window=tlc_window, progress=tick, max_states=max_states)
    except (InputError, HistoryFormatError, ToolchainError) as exc:
        _fail(str(exc))
    except OSError as exc:  # the loaders name most input failures; this is the rest
        _fail(f"{exc.filename or directory}:0: {exc.strerror or exc}")
    for layer in result.layers:
        verdict = "FAIL" if not layer.ok else "part" if layer.unchecked else "ok  "
        click.echo(f"{verdict} {layer.layer:<16} {layer.seconds:6.1f}s  {layer.summary}")
        for p in layer.problems:
            click.echo(f"     {p}")
        if layer.unchecked:
            click.echo(f"     unchecked: {layer.unchecked}")
    if not result.ok:
        sys.exit(1)
    if result.unchecked:
        left = "; ".join(result.unchecked)
        if not partial_ok:
            _fail(f"only part of the input was checked ({left}); pass --partial-ok to "
                  f"accept a partial check")
        click.echo(f"note: a partial check, accepted by --partial-ok ({left})")
    sys.exit(0)


def _replay_fleet(directory: Path, workers: int | None, scheduler: str | None,
                  report_path: Path, partial_ok: bool, console: Console,
                  spill_dir: Path | None = None) -> NoReturn:
    """The fleet path of ``replay``: check, write the report, print the summary, exit."""
    from conformance.fleet_replay import replay_fleet
    from conformance.fleet_report import exit_code, render, report_json, write_report

    try:
        with Progress(TextColumn("fleet replay"), BarColumn(),
                      TextColumn("{task.description}"), TimeElapsedColumn(),
                      console=console, transient=True,
                      disable=not console.is_terminal) as bar:
            task = bar.add_task("", total=None)

            def tick(status: str) -> None:
                bar.update(task, description=status)

            result = replay_fleet(directory, workers=workers, scheduler=scheduler,
                                  progress=tick, spill_dir=spill_dir)
    except InputError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"{exc.filename or directory}:0: {exc.strerror or exc}")
    report = report_json(result)
    write_report(report_path, report)
    render(report, Console(width=None if sys.stdout.isatty() else 150), click.echo)
    click.echo(f"wrote {report_path}")
    code = exit_code(result, partial_ok)
    if code == EXIT_INPUT:
        bad = [v for v in result.verdicts if v.verdict == "input-error"]
        if bad:
            _fail(f"{len(bad)} group(s) with unusable input, the first {bad[0].group}: "
                  f"{bad[0].input_error}")
        _fail("only part of the input was checked (see the report's unchecked notes); "
              "pass --partial-ok to accept a partial check")
    sys.exit(code)


@main.command("mutation-matrix", epilog=EXIT_CODES_HELP)
@click.option("--bug", "bugs", multiple=True,
              help="Only this seeded bug (repeatable); 'none' is the correct implementation.")
@click.option("--layer", "layers", multiple=True,
              help="Only this layer (repeatable): hypothesis, monitor, linearizability, "
                   "z3-leases, tlc.")
@click.option("--seeds", type=click.IntRange(1, 50), default=3, show_default=True,
              help="Scenario runs per bug, while some layer has not caught it.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("build/mutation-matrix.json"), show_default=True)
def mutation_matrix_cmd(bugs: tuple[str, ...], layers: tuple[str, ...], seeds: int,
                        out: Path) -> None:
    """Which layer catches which seeded bug, and how fast (every bug: >= 2 layers)."""
    import orjson

    from conformance.mutants import BUGS
    from conformance.mutation_matrix import LAYERS, run_matrix, verdict

    names: list[str | None] = [None, *BUGS] if not bugs else \
        [None if b == "none" else b for b in bugs]
    unknown = [b for b in names if b is not None and b not in BUGS]
    bad_layers = [x for x in layers if x not in LAYERS]
    if unknown or bad_layers:
        raise click.UsageError(f"unknown bug(s) {unknown} or layer(s) {bad_layers}; bugs: "
                               f"none, {', '.join(BUGS)}; layers: {', '.join(LAYERS)}")
    rows = run_matrix(names, layers or LAYERS, seeds=seeds,
                      log=lambda line: click.echo(line, err=True))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps([r.to_json() for r in rows], option=orjson.OPT_INDENT_2))
    problems = verdict(rows) if not layers else verdict(rows, min_layers=0)
    for p in problems:
        click.echo(f"error: {p}", err=True)
    click.echo(f"wrote {out} ({len(rows)} rows)")
    sys.exit(1 if problems else 0)


main.add_command(fleet)
main.add_command(explore)
main.add_command(check_history_cmd)
