"""Benchmark: fleet replay (format 4) against plain parsing of the same files.

On each fleet directory it runs, each in a fresh process so that peak memory is its own:

* ``plain``: every line decoded into its typed event (msgspec), nothing else;
* ``parse``: what the replay's reader does per line (segments, header, per-node checks,
  typed decoding and payload checks of every line), no sequencing or monitor;
* ``monitor1``: parse + sequence + monitor (every trace check, and each traced write
  looked up in the routers' histories), in one process without Dask (``--workers 1``:
  one bucket holds every group); not the histories' linearizability;
* ``replay1``: the same with the histories' checks (linearizability): all of
  ``dynaspec replay --workers 1``;
* ``dask``: the whole replay on a Dask local cluster of ``--workers`` processes;
* ``dask-mon``: the same without the histories' linearizability (as ``monitor1``);

and prints, per phase, events/s per core (``dask``: per worker), wall time and the peak
RSS of the process tree (the Dask scheduler, nannies and workers summed in), sampled
with psutil every 50 ms; then, on the same files in the same run, the ratio of parse +
monitor to plain parse, and the issue's goals, met or not: parse + monitor
(``monitor1``) >= 250,000 events/s per core and >= 40% of plain parse; 10 M events in
under 60 s on 2 workers; the peak RSS of the largest fleet at most 1.5 times that of the
smallest (``--fleet`` given more than once). ``--json PATH`` writes the figures.

Without ``--fleet`` it builds one under build/ from simulated single-group runs
(conformance/fleet_convert.py): ``--groups`` runs of ``--seconds`` simulated seconds
each. The issue's fleets (traces/PRODUCTION.md, "Benchmark inputs") are made with
``dynaspec fleet simulate``.

Usage: .venv/bin/python benchmarks/bench_replay.py [--fleet DIR ...] [--workers 2]
       [--phases plain,parse,monitor1,replay1,dask,dask-mon] [--json build/bench-replay.json]
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import psutil  # type: ignore[import-untyped]  # (no stubs installed)

REPO = Path(__file__).resolve().parent.parent
PHASES = ("plain", "parse", "monitor1", "replay1", "dask", "dask-mon")
GOAL_RATE = 250_000
GOAL_SHARE = 0.40
GOAL_WALL_10M = 60.0
GOAL_RSS_RATIO = 1.5


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


def phase(name: str, fleet: Path, workers: int) -> tuple[float, int, str]:
    """Run one phase here; (seconds, events, a note on the verdicts)."""
    from conformance.fleet_input import decode_event, read_fleet_spec, read_node, segments

    spec = read_fleet_spec(fleet)
    start = time.perf_counter()
    events, note = 0, ""
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
        from collections import Counter

        from conformance.fleet_replay import replay_fleet

        result = replay_fleet(fleet, workers=workers if name.startswith("dask") else 1,
                              histories=name not in ("monitor1", "dask-mon"))
        events = result.events
        verdicts = Counter(v.verdict for v in result.verdicts)
        note = ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items()))
        bad = [v for v in result.verdicts if v.verdict not in ("ok", "warning")]
        if bad:
            note += (f"; e.g. {bad[0].group} {bad[0].verdict}: "
                     f"{(bad[0].violations or [bad[0].input_error])[0][:160]}")
    return time.perf_counter() - start, events, note


def measure(name: str, fleet: Path, workers: int) -> dict[str, Any]:
    """The phase in a child process: its seconds, events, verdicts and the peak RSS of
    its process tree (MB)."""
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); sys.path.insert(0, "
            f"{str(REPO / 'benchmarks')!r}); import orjson; from bench_replay import phase; "
            f"s, n, note = phase({name!r}, __import__('pathlib').Path({str(fleet)!r}), "
            f"{workers}); print(orjson.dumps([s, n, note]).decode())")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    peak = [0]
    root = psutil.Process(proc.pid)

    def sample() -> None:
        while proc.poll() is None:
            try:
                total = root.memory_info().rss
                for p in root.children(recursive=True):
                    with contextlib.suppress(psutil.Error):  # (gone since listed)
                        total += p.memory_info().rss
                peak[0] = max(peak[0], total)
            except psutil.Error:
                pass
            time.sleep(0.05)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    out, _ = proc.communicate()
    t.join()
    if proc.returncode != 0:
        raise SystemExit(f"phase {name} failed ({proc.returncode})")
    seconds, events, note = orjson.loads(out.strip().splitlines()[-1])
    cores = workers if name.startswith("dask") else 1
    return {"phase": name, "seconds": round(seconds, 2), "events": events, "cores": cores,
            "events_per_s_per_core": round(events / seconds / cores),
            "peak_rss_mb": round(peak[0] / 2**20), "verdicts": note}


def fleet_events(fleet: Path) -> int | None:
    try:
        n = orjson.loads((fleet / "fleet.json").read_bytes()).get("events")
    except (OSError, orjson.JSONDecodeError):
        return None
    return n if isinstance(n, int) else None


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--fleet", type=Path, action="append")
    ap.add_argument("--groups", type=int, default=4)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--compression", choices=("none", "gz", "zst"), default="zst")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--phases", default=",".join(PHASES))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    fleets = args.fleet or [build_fleet(args.groups, args.seconds, args.compression)]
    phases = args.phases.split(",")
    results: list[dict[str, Any]] = []
    for fleet in fleets:
        size = sum(p.stat().st_size for p in fleet.glob("trace-*"))
        declared = fleet_events(fleet)
        print(f"fleet {fleet}: {declared or '?':,} events in fleet.json, "
              f"{size / 2**20:.0f} MB of trace segments")
        got: dict[str, dict[str, Any]] = {}
        for name in phases:
            r = got[name] = measure(name, fleet, args.workers)
            r["fleet"] = str(fleet)
            results.append(r)
            print(f"  {name:<8} {r['events']:>11,} events {r['seconds']:8.1f}s wall "
                  f"{r['events_per_s_per_core']:>9,} events/s per core  peak RSS "
                  f"{r['peak_rss_mb']:6,} MB  {r['verdicts']}")
            if declared is not None and r["events"] != declared:
                print(f"    (fleet.json says {declared:,} events)")
        if "plain" in got and "monitor1" in got:
            plain, full = got["plain"], got["monitor1"]
            rate = full["events_per_s_per_core"]
            share = rate / plain["events_per_s_per_core"]
            checked = (f", {100 * rate / got['parse']['events_per_s_per_core']:.1f}% of parse "
                       f"with every input check" if "parse" in got else "")
            print(f"  parse + sequence + monitor: {rate:,} events/s per core, "
                  f"{100 * share:.1f}% of plain parse ({plain['events_per_s_per_core']:,}) on "
                  f"the same files{checked}")
            print(f"    goals: >= {GOAL_RATE:,} events/s per core: "
                  f"{met(rate >= GOAL_RATE)}; >= "
                  f"{100 * GOAL_SHARE:.0f}% of plain parse: {met(share >= GOAL_SHARE)}")
        for name in ("dask", "dask-mon"):
            if name in got and got[name]["events"] >= 10_000_000:
                d = got[name]
                print(f"    goal: 10 M events in under {GOAL_WALL_10M:.0f}s on {args.workers} "
                      f"workers ({name}): {d['seconds']:.1f}s, "
                      f"{met(d['seconds'] < GOAL_WALL_10M)}")
    if len(fleets) > 1:
        for name in ("monitor1", "replay1", "dask", "dask-mon"):
            rows = [r for r in results if r["phase"] == name]
            if len(rows) < 2:
                continue
            small = min(rows, key=lambda r: r["events"])
            large = max(rows, key=lambda r: r["events"])
            ratio = large["peak_rss_mb"] / small["peak_rss_mb"]
            print(f"peak RSS ({name}): {large['peak_rss_mb']:,} MB at {large['events']:,} "
                  f"events, {small['peak_rss_mb']:,} MB at {small['events']:,}: x{ratio:.2f} "
                  f"(goal <= x{GOAL_RSS_RATIO}: {met(ratio <= GOAL_RSS_RATIO)})")
    if args.json is not None:
        args.json.write_bytes(orjson.dumps({"workers": args.workers, "results": results},
                                           option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
