"""Benchmark: conformance.linearizability.check_history on a 100,000-operation history.

The history comes from the simulator: 32 closed-loop clients on 100 keys, no faults by
default (``--faults crashes --duration 40`` for one with crashes). It is cached in
``build/lin-bench-history.jsonl``: loaded if present, generated (about a minute)
and written otherwise. The check is timed with the fast path (the default) and
with the search alone; the goal is under 2 s for the default.

Usage: .venv/bin/python benchmarks/bench_linearizability.py [--regenerate] [--profile]
Figures are wall-clock on this machine.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

from conformance.linearizability import (
    LinearizabilityReport,
    check_history,
    history_to_jsonl,
    load_history,
)
from reference.client import HistoryRecord
from reference.cluster import SimConfig, World
from reference.workload import WorkloadConfig

DEFAULT_PATH = Path("build/lin-bench-history.jsonl")
TARGET_OPS = 100_000
GOAL_S = 2.0


def generate(path: Path, seed: int, faults: str, duration_s: float) -> list[HistoryRecord]:
    # 32 clients with a 1 ms think time complete about 8,000 operations per simulated
    # second without faults (fewer under faults); the history is cut to TARGET_OPS.
    cfg = SimConfig(seed=seed, clients=32, faults=faults, duration_us=int(duration_s * 1e6),
                    workload=WorkloadConfig(keys=100, think_us=1_000))
    print(f"generating: {cfg.clients} clients, {cfg.workload.keys} keys, faults {faults}, "
          f"{cfg.duration_us / 1e6:g} s simulated ...", flush=True)
    start = time.perf_counter()
    world = World(cfg)
    world.run()
    history = world.history
    print(f"  {len(history)} operations in {time.perf_counter() - start:.1f} s")
    if len(history) < TARGET_OPS:
        sys.exit(f"only {len(history)} operations; raise --duration")
    history = history[:TARGET_OPS]  # in invocation order, so a prefix is a valid history
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(history_to_jsonl(history))
    print(f"  wrote {path}")
    # Time what later runs time: the history as loaded from the file.
    return load_history(path)


def timed(history: list[HistoryRecord], repeat: int, **kw: bool) -> tuple[float,
                                                                          LinearizabilityReport]:
    best, rep = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        rep = check_history(history, **kw)  # type: ignore[arg-type]
        best = min(best, time.perf_counter() - start)
    assert rep is not None
    return best, rep


def show(label: str, seconds: float, rep: LinearizabilityReport) -> None:
    print(f"{label}: {seconds:.3f} s ({rep.operations / seconds:,.0f} ops/s)  "
          f"keys {rep.keys_checked}: fast path {len(rep.fast_path_keys)}, "
          f"search {len(rep.search_keys)}, unknown {len(rep.unknown_keys)}; "
          f"search states {rep.states_explored}; "
          f"{len(rep.violations)} violations, {len(rep.eventual_violations)} eventual")


def profile(history: list[HistoryRecord]) -> None:
    prof = cProfile.Profile()
    prof.runcall(check_history, history)
    print("\nwhere the time goes (check_history, profiled; top functions by own time):")
    stats = pstats.Stats(prof)
    stats.sort_stats("tottime").print_stats(14)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--history", type=Path, default=DEFAULT_PATH)
    ap.add_argument("--regenerate", action="store_true")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--faults", default="none")
    ap.add_argument("--duration", type=float, default=14.0,
                    help="simulated seconds when generating (default 14)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    if args.history.exists() and not args.regenerate:
        start = time.perf_counter()
        history = load_history(args.history)
        print(f"loaded {args.history}: {len(history)} operations in "
              f"{time.perf_counter() - start:.2f} s")
    else:
        history = generate(args.history, args.seed, args.faults, args.duration)
    statuses: dict[str, int] = {}
    for h in history:
        statuses[str(h.status)] = statuses.get(str(h.status), 0) + 1
    print(f"ops {len(history)}, keys {len({h.key for h in history})}, statuses {statuses}")
    seconds, rep = timed(history, args.repeat)
    show("check_history (fast path + search)", seconds, rep)
    verdict = "met" if seconds < GOAL_S else "MISSED"
    print(f"goal < {GOAL_S:g} s: {verdict}")
    seconds, rep_search = timed(history, 1, fast_path=False)
    show("check_history (search only)      ", seconds, rep_search)
    if not rep.ok:
        print("\n".join(v.explanation for v in rep.violations[:5]))
    if args.profile:
        profile(history)


if __name__ == "__main__":
    main()
