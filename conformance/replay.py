"""``dynaspec replay DIR``: check a ``dynaspec simulate`` output directory.

1. The invariant monitor folds every trace event, merged across nodes by real time,
   and checks the spec's properties after each (conformance/monitor.py).
2. The linearizability checker reads history.jsonl (conformance/linearizability;
   SEMANTICS.md there).
3. The history against the traces (conformance/history_vs_trace.py): acknowledged
   writes logged, chosen and committed in time; strong reads served under a lease;
   eventual reads returning states their replica had applied; replicas that exist.
4. Z3 decides whether the logged leases could have overlapped in real time given
   the drift bound (conformance/trace_leases.py).
5. With ``tlc=True``, TLC checks that the trace is a behavior of the spec
   (conformance/trace_validation.py).

Every violation names the file and line of the offending event or operation. Bad
input is a ``TraceInputError`` (``path:line: reason``) before any layer runs: the
traces and config (conformance/trace_loader.py), the history's lines, and a history
that lacks writes the traces logged; a logged copy of a write whose op does not
decode is one too, after the checkers, unless they found a violation. What a layer
leaves unchecked (events past ``tlc_max_events``, if given, keys the linearizability search
could not decide, with the search budget) is its ``unchecked`` note, never a silent
pass: the command exits 2 for it unless ``--partial-ok``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from conformance.errors import one_line
from conformance.monitor import Monitor
from conformance.trace_loader import (
    INT64,
    Located,
    TraceInputError,
    event_to_obj,
    json_line,
    load_trace_dir,
    logged_op_problem,
    member_kinds,
    open_input,
    read_lines,
    strict_problem,
)
from conformance.trace_validation import TimingConfig, TraceValidationResult
from conformance.trace_windows import DEFAULT_WINDOW, validate_windowed
from reference.trace_events import action_of


@dataclass(slots=True)
class LayerResult:
    layer: str
    ok: bool
    """No violation found (in what was checked)."""
    seconds: float
    summary: str
    problems: list[str] = field(default_factory=list)
    unchecked: str = ""
    """What this layer left unchecked, in one line; empty if it checked everything."""


@dataclass(slots=True)
class ReplayResult:
    layers: list[LayerResult]

    @property
    def ok(self) -> bool:
        """No layer found a violation."""
        return all(r.ok for r in self.layers)

    @property
    def unchecked(self) -> list[str]:
        """``layer: what it left unchecked``, per layer that did."""
        return [f"{r.layer}: {r.unchecked}" for r in self.layers if r.unchecked]


Progress = Callable[[str, int, int], None]


@dataclass(slots=True)
class HistoryIndex:
    path: Path
    line_of: dict[str, int]
    """Request id -> its line, to name where an operation is."""
    lines: int


def scan_history(path: Path) -> HistoryIndex:
    """history.jsonl's lines checked as the trace loader checks trace lines (length cap,
    JSON, duplicate keys, 64-bit integers, a unique string ``id``), streamed, before the
    linearizability loader (which checks the fields) reads them whole."""
    if not path.exists():
        raise TraceInputError(f"{path}:0: missing (is {path.parent} a `dynaspec simulate` "
                              f"output?)")
    line_of: dict[str, int] = {}
    ln = 0
    with open_input(path) as f:
        for ln, line in enumerate(read_lines(f, str(path)), start=1):
            where = f"{path}:{ln}"
            obj = json_line(line, where)
            problem = strict_problem(line, orjson.dumps(obj))
            if problem is not None:
                raise TraceInputError(f"{where}: {problem}")
            rid = obj.get("id") if isinstance(obj, dict) else None
            if not isinstance(rid, str):
                raise TraceInputError(f"{where}: not a history record (no string 'id')")
            if (first := line_of.setdefault(rid, ln)) != ln:
                raise TraceInputError(f"{where}: request id {rid!r} again (first at line "
                                      f"{first}; one line per operation)")
    return HistoryIndex(path, line_of, ln)


def check_writes_in_history(events: Sequence[Located], hist: HistoryIndex) -> None:
    """Every write the traces log is an operation of the history (which has every
    operation a client invoked, outcome known or not). A history without one was cut
    short or belongs to another run: checking it would pass writes nobody checked."""
    for loc in events:
        if action_of(loc.event) == "ClientWrite" and loc.event.args.c.rid not in hist.line_of:
            raise TraceInputError(
                f"{loc.where}: write {loc.event.args.c.rid!r} is not in {hist.path} "
                f"({hist.lines} operations: is the history cut short, or from another run?)")


def timing_of(directory: Path, config: Mapping[str, Any]) -> TimingConfig:
    """The run's timing from config.json, each setting a 64-bit non-negative integer."""
    where = directory / "config.json"
    try:
        timing = TimingConfig.from_config_json(config)
    except TraceInputError as exc:
        raise TraceInputError(f"{where}:1: {re.sub(r'^config.json:? ', '', str(exc))}") \
            from None
    for name in ("lease_dur_us", "lease_margin_us", "max_drift_us", "renew_ahead_us"):
        v = getattr(timing, name)
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= INT64[1]:
            raise TraceInputError(f"{where}:1: replica_config.{name} must be a "
                                  f"non-negative integer, got {v!r}")
    return timing


def replay(directory: Path, *, tlc: bool = False, tlc_max_events: int | None = None,
           tlc_window: int = DEFAULT_WINDOW, progress: Progress | None = None,
           max_states: int | None = None) -> ReplayResult:
    """Run every layer over ``directory``; ``TraceInputError`` (a ``ValueError``; the
    linearizability loader's ``HistoryFormatError`` too) on bad input. ``max_states``:
    the linearizability search budget per key (None: the checker's default)."""
    events, config = load_trace_dir(directory)
    timing = timing_of(directory, config)
    kinds = member_kinds(config, str(directory / "config.json"))
    replicas = list(kinds)
    hist_path = directory / "history.jsonl"
    hist = scan_history(hist_path)
    check_writes_in_history(events, hist)
    layers: list[LayerResult] = []

    # 1. monitor
    started = time.perf_counter()
    mon = Monitor(kinds, timing.lease_dur_us, timing.lease_margin_us)
    total = len(events)
    for i, loc in enumerate(events, start=1):
        try:
            mon.step(loc.event, loc.where)
        except TraceInputError:
            raise
        except ValueError as exc:
            # The monitor refuses an event it cannot fold with "<where>: reason": bad
            # input. Any other ValueError is a bug in it (exit 3, not 2).
            if not str(exc).startswith(f"{loc.where}: "):
                raise
            raise TraceInputError(one_line(str(exc))) from None
        if progress is not None and (i % 2000 == 0 or i == total):
            progress("monitor", i, total)
    layers.append(LayerResult(
        "monitor", not mon.violations, time.perf_counter() - started,
        f"{total} events, {len(mon.chosen)} slots chosen, {len(mon.acked)} writes "
        f"acknowledged", [str(v) for v in mon.violations[:20]]))

    # 2. linearizability
    from conformance.linearizability import check_history, load_history

    started = time.perf_counter()
    records = load_history(hist_path)
    if progress is not None:
        progress("linearizability", 0, 1)
    lin = check_history(records) if max_states is None else \
        check_history(records, max_states=max_states)
    lines = hist.line_of
    problems = []
    for v in lin.violations[:10]:
        where = ", ".join(f"{hist_path}:{lines.get(r.id, '?')}" for r in v.history[:5])
        problems.append(f"{where}: Linearizability: {v.explanation}")
    for ev in lin.eventual_violations[:10]:
        problems.append(f"{hist_path}:{lines.get(ev.record.id, '?')}: "
                        f"EventualReadsCommitted: {ev.explanation}")
    undecided = ""
    if lin.unknown_keys:
        unknown = set(lin.unknown_keys)
        first: dict[Any, str] = {}
        for r in records:
            if r.key in unknown:
                first.setdefault(r.key, r.id)
        shown = ", ".join(f"{hist_path}:{lines.get(rid, '?')}" for rid in
                          list(first.values())[:5])
        undecided = (f"{len(unknown)} key(s) undecided within the search budget of "
                     f"{lin.max_states:,} states per key, their operations unchecked (first "
                     f"operations at {shown}); `--max-states N` (here, or `dynaspec "
                     f"check-history`) decides them with a larger budget")
    layers.append(LayerResult(
        "linearizability", not (lin.violations or lin.eventual_violations),
        time.perf_counter() - started,
        f"{lin.operations} operations over {lin.keys_checked} keys "
        f"({len(lin.fast_path_keys)} fast path, {len(lin.search_keys)} searched, "
        f"{len(lin.unknown_keys)} undecided)", problems, undecided))
    if progress is not None:
        progress("linearizability", 1, 1)

    # 3. the history against the traces
    from conformance.history_vs_trace import check_history_vs_trace

    started = time.perf_counter()
    hvt = check_history_vs_trace(events, records, kinds, history_where={
        rid: f"{hist_path}:{ln}" for rid, ln in lines.items()},
        config_where=f"{directory / 'config.json'}:1")
    layers.append(LayerResult("history-vs-trace", hvt.ok, time.perf_counter() - started,
                              hvt.summary(), [str(d) for d in hvt.disagreements[:20]]))

    # 4. Z3: could the logged leases have overlapped?
    from conformance.trace_leases import check_trace_leases

    started = time.perf_counter()
    z3res = check_trace_leases([event_to_obj(loc.event) for loc in events], timing.lease_dur_us,
                               timing.max_drift_us, lease_margin_us=timing.lease_margin_us)
    layers.append(LayerResult("z3-leases", z3res.ok, time.perf_counter() - started,
                              z3res.explanation, [] if z3res.ok else [z3res.explanation]))
    if all(r.ok for r in layers):  # a corrupt copy with no violation: unusable input
        bad_copy = logged_op_problem(events)
        if bad_copy is not None:
            raise TraceInputError(bad_copy)

    # 5. TLC trace validation
    if tlc:
        cut = tlc_max_events is not None and total > tlc_max_events
        subset = events[:tlc_max_events] if cut else events
        if progress is not None:
            progress("tlc", 0, len(subset))

        def tlc_tick(done: int, items: int) -> None:
            if progress is not None:
                progress("tlc", done, items)

        res: TraceValidationResult = validate_windowed(subset, timing, replicas=replicas,
                                                       kinds=kinds, window=tlc_window,
                                                       progress=tlc_tick)
        problem = [res.message] + [f"  {k} = {v}" for k, v in res.state.items()]
        left = (f"the first {len(subset)} of {total} events checked (--tlc-max-events), "
                f"the {total - len(subset)} from {events[len(subset)].where} on not"
                if cut else "")
        layers.append(LayerResult("tlc", res.ok, res.seconds, res.message,
                                  [] if res.ok else problem, left))
    return ReplayResult(layers)


__all__ = ["HistoryIndex", "LayerResult", "ReplayResult", "check_writes_in_history", "replay",
           "scan_history", "timing_of"]
