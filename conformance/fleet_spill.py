"""Route, as a pass of its own: each rotation read once, its lines spilled per task.

PObserve's third step. Every node's trace rotation and every router's history rotation
is read once, by one task of its own (``route_node``, ``route_router``), with every
per-line check of ``read_node`` / the history pass, and each line is written, framed
with where it came from, to the *spill* of the check task (bucket) that owns its group:
``<spill dir>/<bucket>/trace-<node>.spill`` or ``history-<router>.spill``. A check task
(conformance/fleet_route.py) then reads only its own groups' lines.

Why a pass, not every check task streaming the node files itself: fleet.json places
replicas at random, so every node hosts groups of every task. A task that streamed node
files would read (headers decoded) every line of the fleet, so the fleet's lines would be
read once per task; and to keep that down the tasks had to be few, so each held the
monitors of its share of *all* groups at once: its memory grew with the fleet (measured:
peak RSS 354 MB for 10.8 M events against 70 MB for 1.1 M, one process). With the route
pass the lines are read once, a task holds at most ``GROUPS_PER_TASK`` groups' monitors,
and a bigger fleet is more tasks, not more memory. What it costs: every line is written
and read back once more (about 480 bytes a line, uncompressed, on the spill disk: 5.2 GB
for 10.8 M lines), and no check starts before every rotation is routed.

Why the checks stay exact: a spill is the subsequence of one node's lines whose groups
one task owns, in file order. ``lo`` only grows along a node's file, so the task's next
unread spill line still bounds from below every line it has not read of its groups on
that node: the sequencer's "a cause from that node can no longer come" holds as before
(causes are within a group). A node's bad line ends its rotation: the route stops there
and records the problem, and the spill reader raises it after the last good line, where
``read_node`` would have (fleet_route.py fails the node's groups then, as before).

Frames: ``<length u32, line number u32, lo i64, segment index u16>`` then the line's
bytes, unchanged (so a violation still quotes the file's own text, by its path:line).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import orjson

from conformance.fleet_input import (
    _HEADER,
    FleetSpec,
    NodeLine,
    read_fleet_spec,
    read_node,
    segment_lines,
    segments,
)
from conformance.trace_loader import TraceInputError, json_line, strict_problem

GROUPS_PER_TASK = 16
"""At most this many groups per check task: what bounds a task's memory (a group's
monitor, settled, holds about 1-3 MB for 40,000 events)."""
_FRAME = struct.Struct("<IIqH")
_BUFFER = 1 << 16


@dataclass(slots=True)
class Routed:
    """What routing one rotation left for the check tasks (a few hundred bytes: this,
    not lines, is what goes back to the driver)."""

    kind: str
    """``trace`` (a node's rotation) or ``history`` (a router's)."""
    name: str
    paths: list[str]
    spills: dict[int, str] = field(default_factory=dict)
    """Bucket -> its spill file (none if the rotation has no line of the bucket's groups)."""
    problem: str = ""
    """The rotation's bad input, if any: its lines up to there are routed, none after."""
    lines: int = 0
    served: dict[str, int] = field(default_factory=dict)
    """History: group -> seq of the router's first line of it before ``problem`` (a bad
    router line makes the groups it served up to there input errors)."""


class _Spills:
    """One rotation's spill writers, opened on first use."""

    def __init__(self, out: str, kind: str, name: str) -> None:
        self.out, self.kind, self.name = out, kind, name
        self.files: dict[int, IO[bytes]] = {}
        self.paths: dict[int, str] = {}

    def write(self, bucket: int, ln: int, lo: int, segment: int, line: bytes) -> None:
        f = self.files.get(bucket)
        if f is None:
            d = os.path.join(self.out, str(bucket))
            os.makedirs(d, exist_ok=True)
            p = self.paths[bucket] = os.path.join(d, f"{self.kind}-{self.name}.spill")
            f = self.files[bucket] = open(p, "wb", buffering=_BUFFER)  # noqa: SIM115
        f.write(_FRAME.pack(len(line), ln, lo, segment))
        f.write(line)

    def close(self) -> None:
        for f in self.files.values():
            f.close()


def route_node(directory: str, node: str, bucket_of: dict[str, int], out: str) -> Routed:
    """Route ``node``'s trace rotation (which must exist) into ``out``."""
    spec = read_fleet_spec(Path(directory))
    rot = segments(spec.directory, "trace")[node]
    paths = [str(p) for p in rot.paths]
    result = Routed("trace", node, paths, problem=rot.problem)
    if rot.problem:  # a lost segment: its lines could be anyone's causes (fleet_route.py)
        return result
    index = {p: i for i, p in enumerate(paths)}
    spills = _Spills(out, "trace", node)
    n = 0
    try:
        for nl in read_node(spec, node, rot.paths):
            n += 1
            b = bucket_of.get(nl.header.group)
            if b is not None:
                spills.write(b, nl.ln, nl.lo, index[nl.path], nl.line)
    except TraceInputError as exc:
        result.problem = str(exc)
    finally:
        spills.close()
    result.spills, result.lines = spills.paths, n
    return result


def read_spill(routed: Routed, bucket: int) -> Iterator[NodeLine]:
    """A check task's lines of one node, as ``read_node`` gave them; then the node's
    problem, if it has one, raised where ``read_node`` raised it."""
    path = routed.spills.get(bucket)
    if path is not None:
        decode, paths, size = _HEADER.decode, routed.paths, _FRAME.size
        with open(path, "rb", buffering=_BUFFER) as f:
            while head := f.read(size):
                n, ln, lo, seg = _FRAME.unpack(head)
                line = f.read(n)
                h = decode(line)  # (checked when routed)
                yield NodeLine(h, line, paths[seg], ln, lo, h.clock + h.err)
    if routed.problem:
        raise TraceInputError(routed.problem)


def route_router(directory: str, router: str, bucket_of: dict[str, int], out: str
                 ) -> Routed:
    """Route ``router``'s history rotation into ``out``, every line checked but for its
    record's fields (decoded by the check task: conformance/fleet_history.py) and for
    a request id seen twice (only the group's task has its ids)."""
    spec = read_fleet_spec(Path(directory))
    rot = segments(spec.directory, "history")[router]
    paths = [str(p) for p in rot.paths]
    result = Routed("history", router, paths)
    spills = _Spills(out, "history", router)
    prev = 0
    try:
        for k, path in enumerate(rot.paths):
            for ln, line in enumerate(segment_lines(path), start=1):
                where = f"{path}:{ln}"
                obj = json_line(line, where)
                if not isinstance(obj, dict):
                    raise TraceInputError(f"{where}: not a history record")
                g = obj.get("group")
                if isinstance(g, str) and g not in result.served:
                    result.served[g] = prev + 1
                problem = strict_problem(line, orjson.dumps(obj))
                if problem is not None:
                    raise TraceInputError(f"{where}: {problem}")
                if obj.get("v") != 4 or obj.get("router") != router:
                    raise TraceInputError(f"{where}: not a format-4 record of router {router} "
                                          f"(v {obj.get('v')!r}, router {obj.get('router')!r})")
                seq, err = obj.get("seq"), obj.get("err")
                if seq != prev + 1:
                    raise TraceInputError(f"{where}: seq {seq!r} follows {prev}: lines lost or "
                                          f"out of order")
                prev = seq
                if not isinstance(err, int) or isinstance(err, bool) or err < 0:
                    raise TraceInputError(f"{where}: err must be a non-negative integer, got "
                                          f"{err!r}")
                if g not in spec.groups:
                    raise TraceInputError(f"{where}: group {g!r} is not in fleet.json")
                if not isinstance(obj.get("id"), str):
                    raise TraceInputError(f"{where}: not a history record (no string 'id')")
                result.lines += 1
                b = bucket_of.get(g)
                if b is not None:
                    spills.write(b, ln, seq, k, line)
        if rot.problem:
            raise TraceInputError(rot.problem)
    except TraceInputError as exc:
        result.problem = str(exc)
    finally:
        spills.close()
    result.spills = spills.paths
    return result


def read_history_spill(routed: Routed, bucket: int) -> Iterator[tuple[int, int, int, bytes]]:
    """A check task's history lines of one router: (segment index in ``routed.paths``,
    line number, seq, line), in the router's order."""
    path = routed.spills.get(bucket)
    if path is None:
        return
    size = _FRAME.size
    with open(path, "rb", buffering=_BUFFER) as f:
        while head := f.read(size):
            n, ln, seq, seg = _FRAME.unpack(head)
            yield seg, ln, seq, f.read(n)


@dataclass(slots=True)
class Routes:
    """Every rotation's ``Routed``: what a check task needs besides fleet.json."""

    traces: dict[str, Routed] = field(default_factory=dict)
    histories: list[Routed] = field(default_factory=list)

    def add(self, r: Routed) -> None:
        if r.kind == "trace":
            self.traces[r.name] = r
        else:
            self.histories.append(r)


RouteJob = tuple[Callable[[str, str, dict[str, int], str], Routed], str]
"""A route task: the function and the rotation's name (node or router)."""


def route_jobs(spec: FleetSpec, bucket_of: dict[str, int]) -> list[RouteJob]:
    """One job per rotation to route: every node hosting a bucketed group that has a
    trace rotation (a missing one is the check task's finding), and every router."""
    nodes = {n for g in bucket_of if g in spec.groups for n in spec.groups[g].nodes.values()}
    traces = segments(spec.directory, "trace")
    jobs: list[RouteJob] = [(route_node, n) for n in sorted(nodes & traces.keys())]
    jobs += [(route_router, r) for r in sorted(segments(spec.directory, "history"))]
    return jobs


def route_here(spec: FleetSpec, bucket_of: dict[str, int], out: str) -> Routes:
    """Every job of ``route_jobs``, one after another in this process."""
    routes = Routes()
    for fn, name in route_jobs(spec, bucket_of):
        routes.add(fn(str(spec.directory), name, bucket_of, out))
    return routes


__all__ = ["GROUPS_PER_TASK", "RouteJob", "Routed", "Routes", "read_history_spill",
           "read_spill", "route_here", "route_jobs", "route_node", "route_router"]
