"""TLC trace validation of a trace of any length, in windows.

One TLC run over a whole trace slows down as the trace grows (every state holds every
message sent so far), and a deadlock deep in it costs the whole prefix again. So the
items (conformance/trace_validation.py) are cut into windows of ``window`` items and
TLC runs once per window:

* window 1 starts from the spec's ``Init``, as a single run would;
* window k+1 starts from the spec state window k ended in, as TLC printed it
  (``TraceEnd``: every variable of the spec, in the record ``StateRec``), pasted into
  the next module as the initial state (``TraceInitAt``).

Why this is exact. TLC prints a value as TLA+ text that denotes that very value
(records, functions as ``:>``/``@@``, sequences, sets, strings, integers: the only
kinds the spec's variables hold here; replicas are strings, commands integers), and
``StateRec`` names every variable of ``vars`` (a test parses Replication.tla to keep
it so). So window k+1's initial state is the state window k reached, and the
windows' behaviours concatenate into one behaviour of the spec over all the items,
every step matched with its enabling condition, every post-state compared and every
state checked against the invariants. The seam needs no overlap: no step is between
two windows, and the state at the seam is checked by both.

Why a chain and not windows in parallel from states a Python monitor reconstructs:
the monitor's state is not the spec's (it folds what a trace shows, not the message
set, clocks and lease ages the spec keeps), and a reconstruction that differed from
the spec in any corner would make a window start from a state the spec never reaches,
silently. The chain costs one TLC start per window and no parallelism within one
trace; groups of a fleet are independent and run in parallel instead.

Replicas killed in an earlier window stay dead (``KilledBefore``): the spec's rule
that a killed node takes no further step looks for the Kill item among the window's
own items otherwise. And the search for a log's highest filled slot starts at the
highest slot any item so far named (``TopFrom``), not at the whole trace's MaxSlot.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from conformance.trace_loader import Located
from conformance.trace_validation import (
    Items,
    TimingConfig,
    TraceValidationResult,
    build_items,
    run_items,
    top_from,
)

DEFAULT_WINDOW = 1500
"""Items per TLC run: long enough that TLC's start (about 2 s) is a small share."""

WindowProgress = Callable[[int, int], None]
"""(items validated so far, items in all)."""


def window_bounds(n: int, window: int) -> list[tuple[int, int]]:
    """[start, end) of each window over ``n`` items: consecutive, covering all of them."""
    if window < 1:
        raise ValueError("a window holds at least one item")
    return [(a, min(a + window, n)) for a in range(0, n, window)] or [(0, 0)]


def _window(items: Items, a: int, b: int) -> Items:
    return dataclasses.replace(items, items=items.items[a:b], origin=items.origin[a:b])


def killed_in(items: Items, upto: int) -> list[str]:
    """The replicas killed among the first ``upto`` items."""
    return sorted({it["rep"] for it in items.items[:upto] if it["action"] == "Kill"})


def validate_windowed(events: Sequence[Located], timing: TimingConfig, *,
                      replicas: Sequence[str] | None = None,
                      kinds: Mapping[str, str] | None = None, window: int = DEFAULT_WINDOW,
                      workdir: Path | None = None, timeout: float = 600.0,
                      progress: WindowProgress | None = None) -> TraceValidationResult:
    """Every event of ``events`` validated, ``window`` items per TLC run; the first
    failure ends the chain (a later window would start from a state the trace's
    implementation did not reach). ``timeout`` is per window."""
    started = time.perf_counter()
    items = build_items(events, timing, replicas)
    n = len(items.items)
    bounds = window_bounds(n, window)
    start: str | None = None
    runs = 0
    floor = 0  # the highest slot the items before the window name
    for k, (a, b) in enumerate(bounds):
        last = k == len(bounds) - 1
        wdir = None if workdir is None else workdir / f"window-{k + 1:04d}"
        run = run_items(_window(items, a, b), timing, events=len(events), kinds=kinds,
                        start=start, killed_before=killed_in(items, a), print_end=not last,
                        base=a, top_floor=floor, total=n, workdir=wdir, timeout=timeout)
        runs += 1
        res = run.result
        if not res.ok:
            res.seconds, res.items = time.perf_counter() - started, n
            if len(bounds) > 1:
                res.message += (f" [TLC window {k + 1} of {len(bounds)}, items {a + 1}..{b}; "
                                f"the {a} items before it matched]")
            return res
        start = run.end_state
        floor = max(floor, top_from(_window(items, a, b)))
        if progress is not None:
            progress(b, n)
    seconds = time.perf_counter() - started
    return TraceValidationResult(
        True, len(events), n, seconds,
        f"all {len(events)} events matched ({n} items in {runs} TLC "
        f"window{'s' if runs != 1 else ''} of up to {window})")


__all__ = ["DEFAULT_WINDOW", "killed_in", "validate_windowed", "window_bounds"]
