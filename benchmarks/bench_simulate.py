"""Benchmark: simulated client operations per wall-clock second, 3-replica group.

Runs the default workload (``dynaspec simulate``'s defaults: 8 closed-loop clients,
think 2 ms, 50% reads, half of them strong) with per-node traces written to a
temporary directory, healthy and under the ``crashes`` schedule, then a short and a
long crash run (cost per operation must not grow with the run's length).

Wall-clock figures depend on the machine and on whatever else runs on it, so the
script also measures, in the same process, the bare event-loop rate of the
simulator's own queue (``Simulator.schedule`` and ``run`` with callbacks that do
nothing) and reports each run's simulated events per second as a fraction of it:
progress shows as a ratio, not as a noisy absolute number. CPU-time rates are shown
beside the wall-clock ones (on a busy machine the wall clock also counts other
processes' turns).

Usage: .venv/bin/python benchmarks/bench_simulate.py [--duration 20] [--short 30]
       [--long 120] [--checkpoint-every N] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

from reference.cluster import SimConfig, World
from reference.simulator import Simulator

LOOP_EVENTS = 200_000


@dataclass(frozen=True, slots=True)
class Run:
    label: str
    ops: int
    events: int
    wall_s: float
    cpu_s: float

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.wall_s

    @property
    def events_per_s(self) -> float:
        return self.events / self.wall_s


def loop_rate() -> tuple[float, float]:
    """Events per second (wall, CPU) of the bare queue: schedule then run no-op callbacks
    at spread-out times, as the simulator's heap sees them. Best of three."""
    def noop() -> None:
        pass

    best_wall = best_cpu = 0.0
    for _ in range(3):
        sim = Simulator(1)
        delays = [(i * 7919) % 5_000 for i in range(LOOP_EVENTS)]
        w0, c0 = time.perf_counter(), time.process_time()
        for d in delays:
            sim.schedule(d, noop)
        sim.run()
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        best_wall = max(best_wall, LOOP_EVENTS / wall)
        best_cpu = max(best_cpu, LOOP_EVENTS / cpu)
    return best_wall, best_cpu


def config(faults: str, duration_s: float, seed: int, checkpoint_every: int) -> SimConfig:
    cfg = SimConfig(seed=seed, faults=faults, duration_us=int(duration_s * 1e6), settle_us=0)
    if checkpoint_every:
        cfg = replace(cfg, node=replace(cfg.node, checkpoint_every=checkpoint_every))
    return cfg


def run_once(label: str, cfg: SimConfig) -> Run:
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        sinks: dict[str, IO[bytes]] = {
            f"r{i}": stack.enter_context((tmp / f"trace-r{i}.jsonl").open("wb"))
            for i in range(1, cfg.replicas + 1)}
        w0, c0 = time.perf_counter(), time.process_time()
        world = World(cfg, sinks)
        world.run()
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    done = sum(1 for h in world.history if h.done)
    return Run(label, done, world.sim.events_run, wall, cpu)


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
    stats.sort_stats("tottime").print_stats(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=20.0,
                    help="simulated seconds of the healthy and the crash run")
    ap.add_argument("--short", type=float, default=30.0, help="simulated seconds, short crash run")
    ap.add_argument("--long", type=float, default=120.0, help="simulated seconds, long crash run")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--checkpoint-every", type=int, default=0,
                    help="WAL truncation period for the crash runs (0: the schedule's own)")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()

    loop_wall, loop_cpu = loop_rate()
    print(f"bare event loop (Simulator.schedule + run, no work): {loop_wall:,.0f} events/s wall, "
          f"{loop_cpu:,.0f} events/s CPU")
    k = args.checkpoint_every
    runs = [
        run_once("healthy", config("none", args.duration, args.seed, 0)),
        run_once("crashes", config("crashes", args.duration, args.seed, k)),
        run_once(f"crash {args.short:g}s", config("crashes", args.short, args.seed, k)),
        run_once(f"crash {args.long:g}s", config("crashes", args.long, args.seed, k)),
    ]
    print(f"\n{'run (traces on)':<16} {'ops':>8} {'events':>9} {'wall s':>7} {'ops/s':>8} "
          f"{'events/s':>9} {'of loop':>8} {'CPU ops/s':>10} {'of loop CPU':>12} "
          f"{'events/op':>10} {'CPU us/op':>10}")
    for r in runs:
        # events/op and CPU us/op show what grows with a run's length (the last two rows).
        print(f"{r.label:<16} {r.ops:>8} {r.events:>9} {r.wall_s:>7.2f} {r.ops_per_s:>8,.0f} "
              f"{r.events_per_s:>9,.0f} {r.events_per_s / loop_wall:>8.3f} "
              f"{r.ops / r.cpu_s:>10,.0f} {r.events / r.cpu_s / loop_cpu:>12.3f} "
              f"{r.events / r.ops:>10.2f} {1e6 * r.cpu_s / r.ops:>10.1f}")
    healthy, crashes, short, long = runs
    print(f"\ncrashes / healthy ops/s: {crashes.ops_per_s / healthy.ops_per_s:.2f} wall, "
          f"{(crashes.ops / crashes.cpu_s) / (healthy.ops / healthy.cpu_s):.2f} CPU")
    print(f"crash {args.long:g}s / {args.short:g}s ops/s: {long.ops_per_s / short.ops_per_s:.2f} "
          f"wall, {(long.ops / long.cpu_s) / (short.ops / short.cpu_s):.2f} CPU")
    if args.profile:
        profile("none", min(args.duration, 10.0), args.seed)


if __name__ == "__main__":
    main()
