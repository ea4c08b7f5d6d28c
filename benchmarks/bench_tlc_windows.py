"""Benchmark: TLC trace validation in windows, by trace length.

On one simulated run (a crash schedule, so the trace has elections, recoveries and
lease waits) it prints, for the first N events of the merged trace:

* windowed validation (conformance/trace_windows.py, ``--window`` items per TLC run):
  seconds, events/s, and seconds per 1,000 events (flat when time is linear);
* for the shorter lengths, one TLC run over the whole prefix (the old way), in the
  same process, for the ratio;
* the goals: 10,000 events under 30 s and 100,000 under 5 minutes.

Then it edits one event at or just after event ``--violation-at`` (its post-state:
one slot more applied than the replica has) and checks that the windowed run reports
it at that event's file:line.

Usage: .venv/bin/python benchmarks/bench_tlc_windows.py [--lengths 1000,2000,5000,10000]
       [--window 1500] [--single-upto 2000] [--violation-at 9000] [--out build/bench-tv]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

GOALS = {10_000: 30.0, 100_000: 300.0}


def simulate(out: Path, events_needed: int, seed: int) -> Path:
    """A crash run with at least ``events_needed`` trace events (reused if present)."""
    from conformance.trace_loader import load_trace_dir
    from reference.cluster import SimConfig
    from reference.simulate import run_simulation
    from reference.workload import WorkloadConfig

    seconds = max(4, events_needed // 600 + 2)
    while True:
        run = out / f"run-seed{seed}-{seconds}s"
        if not (run / "summary.json").exists():
            if run.exists():
                shutil.rmtree(run)
            cfg = SimConfig(seed=seed, clients=2, duration_us=seconds * 1_000_000,
                            settle_us=1_000_000, faults="crashes",
                            workload=WorkloadConfig(think_us=20_000))
            run_simulation(cfg, run)
        events, _ = load_trace_dir(run)
        if len(events) >= events_needed:
            return run
        seconds *= 2


def validate(run: Path, n: int, window: int | None) -> tuple[bool, float, str, int]:
    from conformance.trace_loader import load_trace_dir, member_kinds
    from conformance.trace_validation import TimingConfig, validate_events
    from conformance.trace_windows import validate_windowed

    events, config = load_trace_dir(run)
    kinds = member_kinds(config)
    timing = TimingConfig.from_config_json(config)
    started = time.perf_counter()
    if window is None:
        res = validate_events(events[:n], timing, replicas=list(kinds), kinds=kinds,
                              timeout=3600)
    else:
        res = validate_windowed(events[:n], timing, replicas=list(kinds), kinds=kinds,
                                window=window, timeout=3600)
    return res.ok, time.perf_counter() - started, res.message, res.items


def place_violation(run: Path, at: int, to: Path) -> str:
    """A copy of ``run`` whose event number ``at`` (or the first after it with a
    post-state) claims one applied slot too many; its file:line."""
    from conformance.trace_loader import load_trace_dir

    if to.exists():
        shutil.rmtree(to)
    shutil.copytree(run, to)
    events, _ = load_trace_dir(to)
    target = next(loc for loc in events[at - 1:] if getattr(loc.event, "post", None))
    path, line = target.where.rsplit(":", 1)
    lines = Path(path).read_bytes().splitlines()
    ev = orjson.loads(lines[int(line) - 1])
    ev["post"]["applied"] += 1
    lines[int(line) - 1] = orjson.dumps(ev)
    Path(path).write_bytes(b"\n".join(lines) + b"\n")
    return target.where


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lengths", default="1000,2000,5000,10000")
    ap.add_argument("--window", type=int, default=1500)
    ap.add_argument("--single-upto", type=int, default=2000,
                    help="also time one whole-prefix TLC run for lengths up to this")
    ap.add_argument("--violation-at", type=int, default=9000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=REPO / "build" / "bench-tv")
    args = ap.parse_args()
    lengths = [int(x) for x in args.lengths.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    run = simulate(args.out, max([*lengths, args.violation_at]), args.seed)
    print(f"run: {run}")
    print(f"{'events':>8} {'mode':<10} {'items':>7} {'seconds':>9} {'ev/s':>7} "
          f"{'s/1k ev':>8}  verdict")
    for n in lengths:
        modes: list[int | None] = [args.window]
        if n <= args.single_upto:
            modes.append(None)
        for window in modes:
            ok, secs, msg, items = validate(run, n, window)
            label = "single" if window is None else f"w={window}"
            print(f"{n:>8} {label:<10} {items:>7} {secs:>9.1f} {n / secs:>7.0f} "
                  f"{1000 * secs / n:>8.2f}  {'ok' if ok else 'FAIL: ' + msg}", flush=True)
            if window is not None and n in GOALS:
                goal = GOALS[n]
                print(f"{'':>8} goal: {n:,} events in under {goal:.0f} s: "
                      f"{'met' if secs < goal else 'NOT met'} ({secs:.1f} s)", flush=True)
    where = place_violation(run, args.violation_at, args.out / "violation")
    n = max(lengths)
    ok, secs, msg, _ = validate(args.out / "violation", n, args.window)
    reported = (not ok) and msg.startswith(f"{where}:")
    print(f"violation placed at event {args.violation_at} ({where}): "
          f"{'reported at its file:line' if reported else 'NOT reported there'} in "
          f"{secs:.1f} s\n  {msg}")
    return 0 if reported else 1


if __name__ == "__main__":
    raise SystemExit(main())
