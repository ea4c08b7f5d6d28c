"""Route: one task's groups, checked while streaming every node file that hosts them.

A task (one Dask task, or the whole run in-process) owns a bucket of groups. It opens
the trace rotation of every node hosting one of them and reads all of those files at
once, always the line with the smallest ``lo`` next (a heap of the nodes' next lines),
so that reading advances through true time on every node alike. A line of an owned
group is decoded and handed to its ``GroupChecker``; any other line is dropped after its
header is read and checked (the per-node checks need every line). A node's ``lo`` only
grows, so every unread line of a node is at least its next line's ``lo``: that is what
tells the sequencer a blocked event's cause can no longer come.

Why this routing, not a spill pass (one pass writing each group's lines to its own
temporary file, then one task per group): spilling writes and reads back every line
once more (10 M lines of ~300 bytes is 3 GB of temporary disk) and needs a pass over
every node before any group can start; streaming keeps nothing on disk, holds per
group only the events its sequencer is waiting on, and lets every task start at once.
What it costs: a node's file is read (headers decoded) by every task whose groups it
hosts, so buckets are few (about two per worker) and groups are bucketed by the nodes
they use, to keep the re-reading down.

A node's bad input (a missing or cut-short segment, a seq gap, a clock running
backwards, a line of a group or replica fleet.json does not have there) makes that
node's groups input errors from that line on; the task reads the other nodes on.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from pathlib import Path

from conformance.fleet_check import GroupChecker, GroupVerdict, finish
from conformance.fleet_history import load_histories
from conformance.fleet_input import NodeLine, read_fleet_spec, read_node, segments
from conformance.fleet_sequence import INF
from conformance.trace_loader import TraceInputError

RETRY_EVERY = 256
"""Lines read between retries of blocked groups (their causes' nodes read further)."""
Progress = Callable[[int], None]


def _advance(it: Iterator[NodeLine]) -> NodeLine | None:
    return next(it, None)


def check_bucket(directory: str, groups: list[str], progress: Progress | None = None,
                 ) -> list[GroupVerdict]:
    """Check ``groups`` of the fleet in ``directory``; one verdict per group."""
    spec = read_fleet_spec(Path(directory))
    keep = [g for g in groups if g in spec.groups]
    hist = load_histories(spec, keep, records=False)  # request ids only, for now
    next_lo: dict[str, int] = {}
    checkers = {g: GroupChecker(spec, g, hist.groups.get(g), next_lo.__getitem__)
                for g in keep}
    for g, e in hist.errors.items():
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
        it = readers[n] = read_node(spec, n, rotations[n].paths)
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
        problem = ""
        try:
            nxt = _advance(readers[node])
        except TraceInputError as exc:
            nxt, problem = None, str(exc)
        if nxt is not None:
            heapq.heappush(heap, (nxt.lo, i, nxt))
            next_lo[node] = nxt.lo
        else:
            next_lo[node] = INF
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
    if progress is not None:
        progress(lines % RETRY_EVERY)
    # The monitors go before the histories' records come: never both in memory.
    closed = {g: (c.close_traces(), c.logged_problem) for g, c in checkers.items()}
    checkers.clear()
    stalled.clear()
    del hist
    records = load_histories(spec, keep)
    out = []
    for g in groups:
        if g not in closed:
            out.append(_unknown(g))
            continue
        verdict, logged = closed.pop(g)
        out.append(finish(verdict, records.groups.pop(g, None), logged,
                          records.errors.get(g, "")))
    return out


def _unknown(group: str) -> GroupVerdict:
    return GroupVerdict(group, verdict="input-error",
                        input_error=f"group {group!r} is not in fleet.json")


__all__ = ["check_bucket"]
