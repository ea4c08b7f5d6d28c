"""Check: one task's groups, checked while streaming its spills of every node's lines.

A task (one Dask task, or one after another in-process) owns a bucket of at most
``GROUPS_PER_TASK`` groups. The route pass (conformance/fleet_spill.py) has read every
node's rotation once, checked every line, and written each line to the spill of the
task that owns its group. The task reads its spill of every node hosting one of its
groups at once, always the line with the smallest ``lo`` next (a heap of the nodes' next
lines), so that reading advances through true time on every node alike; each line is
decoded and handed to its group's ``GroupChecker``. A node's ``lo`` only grows, so every
unread line of the task's groups on a node is at least that node's next spill line's
``lo``: that is what tells the sequencer a blocked event's cause can no longer come
(causes are within a group).

Histories: an operation's record is written when it completes, so a group's history
cannot be checked while its traces stream, and a task's records decoded at once would
take memory in proportion to its operations. The task reads its history spills once
before the traces (conformance/fleet_history.py ``HistoryIndex``): it keeps its groups'
request ids (about 8 bytes each) and copies their lines to a temporary file, from which
each group's records are decoded, checked and dropped, one group at a time, once the
traces are done.

A node's bad input (a missing or cut-short segment, a seq gap, a clock running
backwards, a line of a group or replica fleet.json does not have there) makes that
node's groups input errors from that line on; the task reads the other nodes on.
"""

from __future__ import annotations

import heapq
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

from conformance.fleet_check import GroupChecker, GroupVerdict, finish
from conformance.fleet_history import GroupHistory, HistoryIndex, RecordError
from conformance.fleet_input import FleetSpec, NodeLine, read_fleet_spec, segments
from conformance.fleet_sequence import INF
from conformance.fleet_spill import Routes, read_spill, route_here
from conformance.trace_loader import TraceInputError

RETRY_EVERY = 256
"""Lines read between retries of blocked groups (their causes' nodes read further)."""
Progress = Callable[[int], None]


def _advance(it: Iterator[NodeLine]) -> NodeLine | None:
    return next(it, None)


def check_bucket(directory: str, groups: list[str], progress: Progress | None = None, *,
                 histories: bool = True, routes: Routes | None = None, bucket: int = 0,
                 ) -> list[GroupVerdict]:
    """Check ``groups`` of the fleet in ``directory``; one verdict per group. ``routes``:
    what the route pass (conformance/fleet_spill.py) left for this task, ``bucket``;
    without it, the rotations are routed here first, into a temporary directory.
    ``histories=False`` (benchmarks/bench_replay.py, to time the traces' checks alone):
    the traced writes are still checked against the histories, but not the histories'
    linearizability (each verdict says so in ``unchecked``)."""
    spec = read_fleet_spec(Path(directory))
    keep = [g for g in groups if g in spec.groups]
    if routes is None:
        with tempfile.TemporaryDirectory(prefix="dynaspec-route-") as out:
            routes = route_here(spec, dict.fromkeys(keep, 0), out)
            return check_bucket(directory, groups, progress, histories=histories,
                                routes=routes, bucket=0)
    with HistoryIndex(spec, keep, routes.histories, bucket) as index:
        return _check(spec, groups, keep, index, progress, histories, routes, bucket)


def _check(spec: FleetSpec, groups: list[str], keep: list[str], index: HistoryIndex,
           progress: Progress | None, histories: bool, routes: Routes, bucket: int,
           ) -> list[GroupVerdict]:
    next_lo: dict[str, int] = {}
    # While the traces stream, a group's history is only its request ids (the checker
    # asks whether each traced write is there): ``RequestIds``, a compact read-only
    # mapping, stands in for the dict (the checker only tests membership).
    checkers = {g: GroupChecker(spec, g, GroupHistory(line_of=cast(dict[str, str],
                                                                   index.ids[g])),
                                next_lo.__getitem__)
                for g in keep}
    for g, e in index.errors.items():
        checkers[g].fail_input(e)
    nodes = sorted({n for g in keep for n in spec.groups[g].nodes.values()})
    rotations = segments(spec.directory, "trace")
    if not rotations:
        for c in checkers.values():
            c.fail_input(f"{spec.directory}:0: no trace-<node>.<n>.jsonl segments")

    def fail_node(node: str, message: str) -> None:
        next_lo[node] = INF
        for g in spec.groups_on(node):
            if g in checkers:
                checkers[g].fail_input(message)

    readers: dict[str, Iterator[NodeLine]] = {}
    heap: list[tuple[int, int, NodeLine]] = []
    for i, n in enumerate(nodes):
        next_lo[n] = INF
        if n not in rotations:
            if rotations:
                fail_node(n, f"{spec.directory / f'trace-{n}.1.jsonl'}:0: missing, but "
                             f"fleet.json places replicas of {len(spec.groups_on(n))} "
                             f"group(s) on {n}")
            continue
        if rotations[n].problem:  # a lost segment: its lines could be anyone's causes
            fail_node(n, rotations[n].problem)
            continue
        it = readers[n] = read_spill(routes.traces[n], bucket)
        try:
            first = _advance(it)
        except TraceInputError as exc:
            fail_node(n, str(exc))
            continue
        if first is not None:
            heapq.heappush(heap, (first.lo, i, first))
            next_lo[n] = first.lo
    lines = 0
    stalled: set[GroupChecker] = set()
    while heap:
        _, i, nl = heapq.heappop(heap)
        node = nodes[i]
        reader = readers[node]
        while True:
            problem = ""
            try:
                nxt = _advance(reader)
            except TraceInputError as exc:
                nxt, problem = None, str(exc)
            next_lo[node] = INF if nxt is None else nxt.lo
            owner = checkers.get(nl.header.group)
            if owner is not None:
                owner.add(node, nl)
                if owner.seq.queued:
                    stalled.add(owner)
            if problem:
                fail_node(node, problem)
            lines += 1
            if lines % RETRY_EVERY == 0:
                for s in list(stalled):
                    s.retry()
                    if not s.seq.queued:
                        stalled.discard(s)
                if progress is not None:
                    progress(RETRY_EVERY)
            if nxt is None:
                break
            # The node's next line goes next if the heap would give it first (by (lo,
            # index), as it orders): no push and pop for a run of one node's lines.
            if heap:
                top = heap[0]
                if nxt.lo > top[0] or (nxt.lo == top[0] and i > top[1]):
                    heapq.heappush(heap, (nxt.lo, i, nxt))
                    break
            nl = nxt
    if progress is not None:
        progress(lines % RETRY_EVERY)
    # The monitors go before the histories' records come: never both in memory. Then the
    # records are decoded one group at a time (HistoryIndex), checked and dropped.
    closed = {g: (c.close_traces(), c.logged_problem) for g, c in checkers.items()}
    checkers.clear()
    stalled.clear()
    out: list[GroupVerdict] = []
    bad_records: dict[str, str] = {}
    for g in groups:
        if g not in closed:
            out.append(_unknown(g))
            continue
        verdict, logged = closed.pop(g)
        history: GroupHistory | None = None
        error = ""
        try:  # (even for an input error: a bad record reaches the router's other groups)
            history = index.history(g) if histories else None
        except RecordError as exc:
            error = str(exc)
            for h in exc.reach:
                bad_records.setdefault(h, error)
        out.append(finish(verdict, history, logged, error or bad_records.get(g, "")))
        del history
    # A record that does not decode is a bad line of its router: the groups it served up
    # to that line, checked before it was found, are input errors too.
    for i, v in enumerate(out):
        if v.group in bad_records and v.verdict != "input-error":
            v.unchecked = []
            out[i] = finish(v, None, "", bad_records[v.group])
    return out


def _unknown(group: str) -> GroupVerdict:
    return GroupVerdict(group, verdict="input-error",
                        input_error=f"group {group!r} is not in fleet.json")


__all__ = ["check_bucket"]
