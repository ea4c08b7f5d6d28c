"""Benchmark: simulated client operations per wall-clock second, 3-replica group.

Runs the default workload (8 closed-loop clients, 50% reads, half of them strong)
without faults and under the ``crashes`` schedule, each with per-node traces
written to a temporary directory (what ``dynaspec simulate`` does) and with traces
disabled. With ``--profile`` it also shows where the time goes, by module.

Usage: .venv/bin/python benchmarks/bench_simulate.py [--duration 20] [--profile]
Figures are wall-clock on this machine; compare ratios within one run.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from collections import defaultdict
from contextlib import ExitStack
from pathlib import Path
from typing import IO

from reference.cluster import SimConfig, World


def run_once(faults: str, duration_s: float, traces: bool, seed: int) -> tuple[int, float, int]:
    cfg = SimConfig(seed=seed, faults=faults, duration_us=int(duration_s * 1e6), settle_us=0)
    with ExitStack() as stack:
        sinks: dict[str, IO[bytes]] | None = None
        if traces:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            sinks = {f"r{i}": stack.enter_context((tmp / f"trace-r{i}.jsonl").open("wb"))
                     for i in (1, 2, 3)}
        start = time.perf_counter()
        world = World(cfg, sinks)
        world.run()
        wall = time.perf_counter() - start
    done = sum(1 for h in world.history if h.done)
    return done, wall, world.sim.events_run


def profile(faults: str, duration_s: float, seed: int) -> None:
    prof = cProfile.Profile()
    cfg = SimConfig(seed=seed, faults=faults, duration_us=int(duration_s * 1e6), settle_us=0)
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        sinks: dict[str, IO[bytes]] = {
            f"r{i}": stack.enter_context((Path(tmp) / f"t{i}").open("wb")) for i in (1, 2, 3)}
        world = World(cfg, sinks)
        prof.runcall(world.run)
    stats = pstats.Stats(prof)
    by_module: dict[str, float] = defaultdict(float)
    total = 0.0
    for (filename, _, _), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        name = Path(filename).stem if "reference" in filename else (
            "builtins/C" if filename == "~" else "stdlib/other")
        by_module[name] += tottime
        total += tottime
    print(f"\nwhere the time goes ({faults}, traces on, profiled; own time by module):")
    for name, t in sorted(by_module.items(), key=lambda kv: -kv[1])[:12]:
        print(f"  {name:<14} {t:6.2f}s  {100 * t / total:5.1f}%")
    stats.sort_stats("tottime").print_stats(12)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=20.0, help="simulated seconds per run")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    print(f"{'schedule':<10} {'traces':<7} {'ops':>8} {'wall s':>7} {'ops/s':>8} {'events/s':>9}")
    for faults in ("none", "crashes"):
        for traces in (True, False):
            ops, wall, events = run_once(faults, args.duration, traces, args.seed)
            print(f"{faults:<10} {'on' if traces else 'off':<7} {ops:>8} {wall:>7.2f} "
                  f"{ops / wall:>8,.0f} {events / wall:>9,.0f}")
    if args.profile:
        profile("none", min(args.duration, 10.0), args.seed)


if __name__ == "__main__":
    main()
