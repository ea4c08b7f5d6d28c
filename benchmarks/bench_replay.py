"""Benchmark: fleet replay (format 4) against plain parsing of the same files.

On one fleet directory it prints, each in a fresh process so that peak memory is its own:

* plain parse: every line decoded into its typed event (msgspec), nothing else;
* parse: what the replay's reader does per line (segments, header, per-node checks,
  typed decoding and payload checks of every line), no sequencing or monitor;
* parse + sequence + monitor, in one process without Dask (``--workers 1``);
* the whole replay on a Dask local cluster of ``--workers`` processes (wall time);

events/s per core for each, the ratio of replay to plain parse, and the peak RSS of the
process tree (the Dask workers' summed in), sampled with psutil.

Without ``--fleet`` it builds one under build/ from simulated single-group runs
(conformance/fleet_convert.py): ``--groups`` runs of ``--seconds`` simulated seconds
each, so the events per group grow with ``--seconds`` and the groups with ``--groups``.

Usage: .venv/bin/python benchmarks/bench_replay.py [--fleet DIR | --groups 4 --seconds 30]
       [--workers 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
PHASES = ("plain", "parse", "replay1", "dask")


def build_fleet(groups: int, seconds: int, compression: str) -> Path:
    from conformance.fleet_convert import convert
    from reference.cluster import SimConfig
    from reference.simulate import run_simulation

    root = REPO / "build" / f"bench-fleet-{groups}x{seconds}s"
    fleet = root / "fleet"
    if (fleet / "fleet.json").exists():
        return fleet
    runs = []
    for seed in range(1, groups + 1):
        out = root / f"run-{seed}"
        if not (out / "summary.json").exists():
            faults = ("none", "crashes", "partitions", "gray")[seed % 4]
            cfg = SimConfig(seed=seed, faults=faults, duration_us=seconds * 1_000_000,
                            settle_us=1_000_000, max_rate_ppm=0)
            run_simulation(cfg, out, plot=False)
        runs.append(out)
    convert(runs, fleet, nodes=max(4, groups // 2), routers=4, max_lines=200_000,
            compression=compression)
    return fleet


def phase(name: str, fleet: Path, workers: int) -> tuple[float, int]:
    """Run one phase here; (seconds, events)."""
    from conformance.fleet_input import decode_event, read_fleet_spec, read_node, segments

    spec = read_fleet_spec(fleet)
    start = time.perf_counter()
    events = 0
    if name == "plain":
        import msgspec

        from conformance.fleet_input import segment_lines
        from reference.trace_events import ProdTraceEvent

        dec = msgspec.json.Decoder(ProdTraceEvent)
        for rot in segments(fleet, "trace").values():
            for p in rot.paths:
                for line in segment_lines(p):
                    dec.decode(line)
                    events += 1
    elif name == "parse":
        for node, rot in segments(fleet, "trace").items():
            for nl in read_node(spec, node, rot.paths):
                decode_event(nl)
                events += 1
    else:
        from conformance.fleet_replay import replay_fleet

        result = replay_fleet(fleet, workers=1 if name == "replay1" else workers)
        events = result.events
        bad = [v for v in result.verdicts if v.verdict not in ("ok", "warning")]
        if bad:
            print(f"  note: {len(bad)} group(s) not ok, e.g. {bad[0].group} {bad[0].verdict}: "
                  f"{(bad[0].violations or [bad[0].input_error])[0][:160]}", file=sys.stderr)
    return time.perf_counter() - start, events


def measure(name: str, fleet: Path, workers: int) -> tuple[float, int, float]:
    """The phase in a child process: (seconds, events, peak RSS of its tree in MB)."""
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); sys.path.insert(0, "
            f"{str(REPO / 'benchmarks')!r}); from bench_replay import phase; "
            f"s, n = phase({name!r}, __import__('pathlib').Path({str(fleet)!r}), {workers}); "
            f"print(s, n)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    peak = [0]
    root = psutil.Process(proc.pid)

    def sample() -> None:
        while proc.poll() is None:
            try:
                procs = [root, *root.children(recursive=True)]
                peak[0] = max(peak[0], sum(p.memory_info().rss for p in procs))
            except psutil.Error:
                pass
            time.sleep(0.1)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    out, _ = proc.communicate()
    t.join()
    if proc.returncode != 0:
        raise SystemExit(f"phase {name} failed ({proc.returncode})")
    seconds, events = out.split()[-2:]
    return float(seconds), int(events), peak[0] / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fleet", type=Path)
    ap.add_argument("--groups", type=int, default=4)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--compression", choices=("none", "gz", "zst"), default="zst")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--phases", default=",".join(PHASES))
    args = ap.parse_args()
    fleet = args.fleet or build_fleet(args.groups, args.seconds, args.compression)
    size = sum(p.stat().st_size for p in fleet.glob("trace-*"))
    print(f"fleet {fleet} ({size / 2**20:.0f} MB of trace segments)")
    got: dict[str, tuple[float, int, float]] = {}
    for name in args.phases.split(","):
        got[name] = measure(name, fleet, args.workers)
        s, n, rss = got[name]
        cores = args.workers if name == "dask" else 1
        print(f"{name:<8} {n:>11,} events {s:8.1f}s wall  {n / s / cores:>10,.0f} events/s "
              f"per core  peak RSS {rss:7.0f} MB")
    if "plain" in got and "replay1" in got:
        plain = got["plain"][1] / got["plain"][0]
        full = got["replay1"][1] / got["replay1"][0]
        print(f"parse + sequence + monitor is {100 * full / plain:.1f}% of plain parse speed")


if __name__ == "__main__":
    main()
