"""``dynaspec replay DIR``: check a ``dynaspec simulate`` output directory.

1. The invariant monitor folds every trace event, merged across nodes by real time,
   and checks the spec's properties after each (conformance/monitor.py).
2. The linearizability checker reads history.jsonl (conformance/linearizability.py).
3. Z3 decides whether the logged leases could have overlapped in real time given
   the drift bound (conformance/trace_leases.py).
4. With ``tlc=True``, TLC checks that the trace is a behavior of the spec
   (conformance/trace_validation.py).

Every violation names the file and line of the offending event or operation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from conformance.monitor import Monitor
from conformance.trace_loader import event_to_obj, load_trace_dir, member_kinds
from conformance.trace_validation import (
    TimingConfig,
    TraceValidationResult,
    validate_events,
)


@dataclass(slots=True)
class LayerResult:
    layer: str
    ok: bool
    seconds: float
    summary: str
    problems: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ReplayResult:
    layers: list[LayerResult]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.layers)


Progress = Callable[[str, int, int], None]


def _history_lines(path: Path) -> dict[str, int]:
    """Request id -> line of history.jsonl, to name where a violating operation is."""
    out: dict[str, int] = {}
    if not path.exists():
        return out
    import orjson

    with path.open("rb") as f:
        for i, line in enumerate(f, start=1):
            try:
                rid = orjson.loads(line).get("id")
            except (orjson.JSONDecodeError, AttributeError):
                continue
            if isinstance(rid, str):
                out[rid] = i
    return out


def replay(directory: Path, *, tlc: bool = False, tlc_max_events: int | None = 1500,
           progress: Progress | None = None) -> ReplayResult:
    """Run every layer over ``directory``; raises ValueError subclasses on bad input."""
    events, config = load_trace_dir(directory)
    timing = TimingConfig.from_config_json(config)
    kinds = member_kinds(config)
    replicas = list(kinds)
    layers: list[LayerResult] = []

    # 1. monitor
    started = time.perf_counter()
    mon = Monitor(kinds, timing.lease_dur_us, timing.lease_margin_us)
    total = len(events)
    for i, loc in enumerate(events, start=1):
        mon.step(loc.event, loc.where)
        if progress is not None and (i % 2000 == 0 or i == total):
            progress("monitor", i, total)
    layers.append(LayerResult(
        "monitor", not mon.violations, time.perf_counter() - started,
        f"{total} events, {len(mon.chosen)} slots chosen, {len(mon.acked)} writes "
        f"acknowledged", [str(v) for v in mon.violations[:20]]))

    # 2. linearizability
    from conformance.linearizability import check_history, load_history

    started = time.perf_counter()
    hist_path = directory / "history.jsonl"
    records = load_history(hist_path)
    if progress is not None:
        progress("linearizability", 0, 1)
    lin = check_history(records)
    lines = _history_lines(hist_path) if not lin.ok else {}
    problems = []
    for v in lin.violations[:10]:
        where = ", ".join(f"{hist_path}:{lines.get(r.id, '?')}" for r in v.history[:5])
        problems.append(f"{where}: Linearizability: {v.explanation}")
    for ev in lin.eventual_violations[:10]:
        problems.append(f"{hist_path}:{lines.get(ev.record.id, '?')}: "
                        f"EventualReadsCommitted: {ev.explanation}")
    layers.append(LayerResult(
        "linearizability", lin.ok, time.perf_counter() - started,
        f"{lin.operations} operations over {lin.keys_checked} keys "
        f"({len(lin.fast_path_keys)} fast path, {len(lin.search_keys)} searched, "
        f"{len(lin.unknown_keys)} undecided)", problems))
    if progress is not None:
        progress("linearizability", 1, 1)

    # 3. Z3: could the logged leases have overlapped?
    from conformance.trace_leases import check_trace_leases

    started = time.perf_counter()
    z3res = check_trace_leases([event_to_obj(loc.event) for loc in events], timing.lease_dur_us,
                               timing.max_drift_us, lease_margin_us=timing.lease_margin_us)
    layers.append(LayerResult("z3-leases", z3res.ok, time.perf_counter() - started,
                              z3res.explanation, [] if z3res.ok else [z3res.explanation]))

    # 4. TLC trace validation
    if tlc:
        if progress is not None:
            progress("tlc", 0, 1)
        subset = events if tlc_max_events is None else events[:tlc_max_events]
        res: TraceValidationResult = validate_events(subset, timing, replicas=replicas,
                                                     kinds=kinds)
        problem = [res.message] + [f"  {k} = {v}" for k, v in res.state.items()]
        layers.append(LayerResult("tlc", res.ok, res.seconds, res.message,
                                  [] if res.ok else problem))
        if progress is not None:
            progress("tlc", 1, 1)
    return ReplayResult(layers)
