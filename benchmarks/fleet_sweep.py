"""Sweep: correct fleets under every fault schedule must replay without a certain violation.

For each seed it simulates a small fleet (``dynaspec fleet simulate``, the schedule taken
in turn from ``--schedules``), replays it (``dynaspec replay``) and reads the per-group
verdicts from the report. A correct run may raise warnings (possible but not certain
under the clock bounds); a violation or an input error is a finding, and the script
exits 1 naming the run.

Usage: .venv/bin/python benchmarks/fleet_sweep.py [--runs 20] [--nodes 5] [--groups 4]
       [--duration 4s] [--schedules none,crashes,partitions,mixed,heal,deploy]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = REPO / ".venv" / "bin" / "dynaspec"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--nodes", type=int, default=5)
    ap.add_argument("--groups", type=int, default=4)
    ap.add_argument("--duration", default="4s")
    ap.add_argument("--schedules", default="none,crashes,partitions,mixed,heal,deploy")
    ap.add_argument("--out", type=Path, default=REPO / "build" / "fleet-sweep")
    args = ap.parse_args()
    schedules = args.schedules.split(",")
    args.out.mkdir(parents=True, exist_ok=True)
    totals: Counter[str] = Counter()
    bad: list[str] = []
    events = 0
    started = time.perf_counter()
    print(f"{'seed':>4} {'schedule':<11} {'events':>8} {'exit':>4}  verdicts")
    for i in range(args.runs):
        seed = args.first_seed + i
        sched = schedules[i % len(schedules)]
        fleet = args.out / f"seed{seed}-{sched}"
        report = args.out / f"seed{seed}-{sched}.json"
        sim = subprocess.run(
            [str(BIN), "fleet", "simulate", "--out", str(fleet), "--seed", str(seed),
             "--nodes", str(args.nodes), "--groups", str(args.groups), "--faults", sched,
             "--duration", args.duration, "--workers", "1"],
            capture_output=True, text=True, check=False)
        if sim.returncode != 0:
            bad.append(f"seed {seed} {sched}: fleet simulate exited {sim.returncode}: "
                       f"{sim.stderr.strip()[-300:]}")
            continue
        rep = subprocess.run([str(BIN), "replay", str(fleet), "--workers", "1", "--report",
                              str(report)], capture_output=True, text=True, check=False)
        verdicts = Counter(g["verdict"] for g in json.loads(report.read_text())["groups"])
        n = json.loads((fleet / "fleet.json").read_text())["events"]
        events += n
        totals.update(verdicts)
        print(f"{seed:>4} {sched:<11} {n:>8} {rep.returncode:>4}  {dict(verdicts)}", flush=True)
        if rep.returncode not in (0,) or verdicts.get("violation") or verdicts.get("input-error"):
            bad.append(f"seed {seed} {sched}: replay exited {rep.returncode}, {dict(verdicts)} "
                       f"(report {report})")
    print(f"{args.runs} runs, {events:,} events, {time.perf_counter() - started:.0f} s: "
          f"group verdicts {dict(totals)}")
    for b in bad:
        print(f"FINDING {b}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
