"""`make check-models`: run every model of the manifest through TLC and judge the results.

A correct model must pass and reproduce the manifest's distinct-state count and depth
(exhaustive BFS counts are deterministic).  A mutant must fail on the property the
manifest names, with a counterexample as long as the manifest says (mutants run on one
worker, so BFS finds a shortest counterexample).  Every constant a .cfg sets must be
declared in the manifest, so no undeclared bound can shrink a model.

Writes build/check-models.json and one counterexample JSON per failing model.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from conformance.manifest import Manifest, ModelEntry, cfg_constants, cfg_section
from conformance.tlc_runner import Progress, TLCResult, run_tlc
from conformance.tlc_trace import format_trace, trace_to_json
from reference.actions import action_of_tlc_step


@dataclass
class ModelRun:
    entry: ModelEntry
    result: TLCResult
    problems: list[str]
    counterexample_file: Path | None = None

    @property
    def passed(self) -> bool:
        return not self.problems

    def row(self) -> dict[str, Any]:
        r = self.result
        return {
            "model": self.entry.name,
            "kind": self.entry.kind,
            "expected": self.entry.expected,
            "outcome": r.outcome,
            "property": r.property,
            "distinct_states": r.distinct_states,
            "depth": len(r.trace) if self.entry.kind == "mutant" else r.depth,
            "seconds": round(r.seconds, 1),
            "passed": self.passed,
            "problems": self.problems,
        }


def judge(entry: ModelEntry, result: TLCResult, *, compare_counts: bool = True) -> list[str]:
    """What is wrong with this run, measured against the manifest entry (empty: nothing)."""
    problems: list[str] = []
    if result.outcome == "timeout":
        return [f"TLC did not finish within the time limit ({result.seconds:.0f} s)"]
    if result.outcome == "error":
        first = result.errors[0].splitlines()[0] if result.errors else "no message"
        return [f"TLC error: {first}"]
    if entry.kind != "mutant":
        if result.outcome != "ok":
            failure = f"{result.outcome} {result.property or ''}".strip()
            problems.append(f"correct model failed: {failure}" if entry.kind == "correct" else
                            f"equivalent mutant caught ({failure}): the guard it drops "
                            "is not redundant after all")
        elif compare_counts:
            expected_states = entry.distinct_states
            if expected_states is not None and result.distinct_states != expected_states:
                problems.append(
                    f"distinct states changed: manifest {expected_states}, "
                    f"now {result.distinct_states} (update the manifest if intended)")
            if entry.depth is not None and result.depth != entry.depth:
                problems.append(f"depth changed: manifest {entry.depth}, now {result.depth}")
    else:
        if result.outcome == "ok":
            problems.append(f"mutant not caught: {entry.expected} still holds")
        elif result.property != entry.expected:
            problems.append(
                f"mutant caught by {result.property or result.outcome}, expected {entry.expected}")
        elif (compare_counts and entry.depth is not None and result.outcome == "invariant_violated"
              and len(result.trace) != entry.depth):
            # One-worker BFS finds a shortest trace; a liveness lasso has no canonical length.
            problems.append(
                f"counterexample length changed: manifest {entry.depth}, now {len(result.trace)}")
    return problems


def check_constants(manifest: Manifest, entry: ModelEntry) -> list[str]:
    """Every bound a .cfg puts on the model is declared in the manifest."""
    cfg = manifest.spec_dir / entry.cfg
    declared = entry.constants
    actual = cfg_constants(cfg)
    problems = [f"{entry.cfg}: undeclared {kw} {name}: state bounds go in constants"
                for kw in ("CONSTRAINT", "ACTION_CONSTRAINT") for name in cfg_section(cfg, kw)]
    for name in sorted(set(actual) | set(declared)):
        if actual.get(name) != declared.get(name):
            problems.append(
                f"{entry.cfg}: constant {name} is {actual.get(name)!r} but the manifest "
                f"declares {declared.get(name)!r}")
    return problems


def run_model(
    manifest: Manifest,
    entry: ModelEntry,
    *,
    timeout: float,
    out_dir: Path,
    on_progress: Callable[[Progress], None] | None = None,
    compare_counts: bool = True,
) -> ModelRun:
    problems = check_constants(manifest, entry)
    result = run_tlc(
        manifest.spec_dir / entry.spec,
        manifest.spec_dir / entry.cfg,
        workers=entry.workers,
        timeout=timeout,
        extra_args=entry.tlc_args,
        on_progress=on_progress,
    )
    # TLC names each step itself (every Next disjunct is a named operator); map the
    # Next<Action> disjuncts to the catalogue's action names.
    result.trace = [dataclasses.replace(step, action=action_of_tlc_step(step.action))
                    if step.action else step for step in result.trace]
    problems += judge(entry, result, compare_counts=compare_counts)
    run = ModelRun(entry, result, problems)
    if result.trace:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{entry.name}.counterexample.json"
        path.write_text(json.dumps({
            "model": entry.name,
            "property": result.property,
            "outcome": result.outcome,
            "steps": trace_to_json(result.trace),
        }, indent=1) + "\n", encoding="utf-8")
        run.counterexample_file = path
    return run


def results_table(runs: list[ModelRun]) -> Table:
    table = Table(title="check-models", show_lines=False)
    numeric = ("distinct", "depth", "seconds")
    for col in ("model", "kind", "expected", "outcome", *numeric, "verdict"):
        table.add_column(col, justify="right" if col in numeric else "left")
    for run in runs:
        row = run.row()
        outcome = row["outcome"]
        if outcome != "ok":
            outcome = f"{outcome}: {row['property']}"
        table.add_row(
            row["model"], row["kind"], row["expected"], outcome,
            f"{row['distinct_states']:,}" if row["distinct_states"] is not None else "-",
            str(row["depth"]) if row["depth"] is not None else "-",
            f"{row['seconds']:.1f}",
            "[green]PASS[/green]" if run.passed else "[red]FAIL[/red]",
        )
    return table


def check_models(
    manifest: Manifest,
    entries: list[ModelEntry],
    *,
    out_dir: Path,
    timeout: float,
    update_manifest: bool = False,
    show_traces: bool = False,
    console: Console | None = None,
    jobs: int = 1,
) -> list[ModelRun]:
    console = console or Console(stderr=True)
    started = time.monotonic()
    lock = threading.Lock()
    done: dict[str, ModelRun] = {}

    def one(i: int, entry: ModelEntry) -> ModelRun:
        label = f"[{i}/{len(entries)}] {entry.name} ({entry.kind}, expect {entry.expected})"

        def say(line: str) -> None:
            with lock:
                console.print(f"     .. {line}", highlight=False)

        def run_it(progress: Callable[[Progress], None]) -> ModelRun:
            return run_model(manifest, entry, timeout=timeout, out_dir=out_dir,
                             on_progress=progress, compare_counts=not update_manifest)

        def line_of(p: Progress) -> str:
            return (f"{label}: {p.distinct_states or 0:,} distinct states, "
                    f"depth {p.depth}, queue {p.queue or 0:,}, {p.seconds:.0f} s")

        if jobs == 1:
            with console.status(label) as status:
                def progress(p: Progress, status: Any = status) -> None:
                    status.update(line_of(p))
                    if not console.is_terminal:  # logs get TLC's (minutely) progress as lines
                        say(line_of(p))
                run = run_it(progress)
        else:  # several TLC processes: minutely progress lines instead of one spinner
            run = run_it(lambda p: say(line_of(p)))
        with lock:
            verdict = "[green]PASS[/green]" if run.passed else "[red]FAIL[/red]"
            console.print(f"{verdict} {label}: {run.result.outcome} "
                          f"{run.result.property or ''} in {run.result.seconds:.1f} s")
            for problem in run.problems:
                console.print(f"     [red]{problem}[/red]")
            done[entry.name] = run
        return run

    numbered = list(enumerate(entries, 1))
    if jobs == 1:
        for i, entry in numbered:
            one(i, entry)
    else:
        # Longest first (by the manifest's last time), so the long models do not end up
        # running alone at the end.  Each model still runs with its own worker count, so
        # its state counts stay what the manifest pins.
        numbered.sort(key=lambda ie: -(ie[1].seconds or 0.0))
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
            for future in [pool.submit(one, i, e) for i, e in numbered]:
                future.result()
    runs = [done[e.name] for e in entries]
    for run in runs:
        entry = run.entry
        unexpected = entry.kind != "mutant" and run.result.trace
        if run.result.trace and (show_traces or unexpected):
            console.print(format_trace(run.result.trace), markup=False, highlight=False,
                          soft_wrap=True)
        if run.counterexample_file:
            console.print(f"     counterexample: {run.counterexample_file}")
        if run.result.errors and run.result.outcome == "error":
            console.print("\n".join(run.result.errors), markup=False, highlight=False)
    if update_manifest:
        for run in runs:
            if run.result.outcome in ("timeout", "error") or run.problems:
                continue
            run.entry.distinct_states = run.result.distinct_states
            mutant = run.entry.kind == "mutant"
            run.entry.depth = len(run.result.trace) if mutant else run.result.depth
            run.entry.seconds = round(run.result.seconds, 1)
        manifest.save()
        console.print(f"updated {manifest.path}")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "check-models.json").write_text(
        json.dumps([r.row() for r in runs], indent=2) + "\n", encoding="utf-8")
    console.print(results_table(runs))
    passed = sum(r.passed for r in runs)
    elapsed = time.monotonic() - started
    console.print(f"{passed} passed, {len(runs) - passed} failed in {elapsed:.0f} s; "
                  f"results in {out_dir / 'check-models.json'}")
    return runs
