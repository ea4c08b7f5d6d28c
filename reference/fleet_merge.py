"""Per-node and per-router merges: the groups' intermediate files -> production logs.

One task per node (and per router) after the groups it hosts have run. Each is a
streaming k-way merge (``heapq.merge``): one line of every input in memory, never a
node's whole output. A node writes its lines in the order it took the steps: by
real time, ties by group id and then the replica's own order (its ``seq``). Each
line becomes a format-4 event (reference/trace.py ``to_production``), numbered in
the node's sequence, with the node clock's error bound at that real time; ``real``
is dropped. The node's clock, read at the line's real time, must give the line's
``clock``, within ``err`` of real time and never decreasing: the merge checks all
three, so a production log never breaks the guarantee it states.

A router logs its clients' operations as they complete (completed ones by real
completion time, then the outstanding ones by invocation; ties by group, request
id), with its own clock's readings in place of real times and one error bound
``err`` for both (traces/PRODUCTION.md).
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import orjson

from reference.fleet_clock import HostClock
from reference.fleet_config import FleetConfig, derive_seed
from reference.fleet_segments import SegmentInfo, SegmentWriter
from reference.trace import to_production
from reference.trace_events import PRODUCTION_VERSION, TraceEvent


class ClockGuaranteeError(RuntimeError):
    """A line would break the production profile's clock guarantee (a generator bug)."""


@dataclass(frozen=True, slots=True)
class MergeInput:
    group: str
    replica: str
    path: str


@dataclass(frozen=True, slots=True)
class MergeTask:
    """One node's (or router's) merge: its inputs, in group order."""

    config: FleetConfig
    host: str
    inputs: tuple[MergeInput, ...]
    out_dir: str


@dataclass(frozen=True, slots=True)
class MergeResult:
    host: str
    segments: tuple[SegmentInfo, ...]
    lines: int
    seconds: float = 0.0
    """Wall time of the task (printed, never written)."""


def _trace_stream(path: Path, rank: int) -> Iterator[tuple[int, int, int, Any]]:
    decoder = msgspec.json.Decoder(TraceEvent)
    with path.open("rb", buffering=1 << 20) as f:
        for line in f:
            ev = decoder.decode(line)
            # (real, group rank, replica seq): a total order; the event never compares.
            yield (ev.real, rank, ev.seq, ev)


def merge_node(task: MergeTask, *_after: object) -> MergeResult:
    """Write node ``task.host``'s rotated trace segments. ``_after``: the group runs this
    waits for (Dask passes their results)."""
    started = time.perf_counter()
    cfg = task.config
    clock = HostClock(cfg.clock, derive_seed(cfg.seed, "clock", task.host))
    groups = [i.group for i in task.inputs]
    streams = [_trace_stream(Path(i.path), rank) for rank, i in enumerate(task.inputs)]
    writer = SegmentWriter(Path(task.out_dir), f"trace-{task.host}", cfg.segment_lines,
                           cfg.compression)
    encoder = msgspec.json.Encoder()
    last_clock = None
    seq = 0
    for real, rank, _, ev in heapq.merge(*streams):
        expect, err = clock.reading(real)
        if ev.clock != expect or abs(ev.clock - real) > err or \
                (last_clock is not None and ev.clock < last_clock):
            raise ClockGuaranteeError(
                f"node {task.host}: {groups[rank]} {ev.replica} seq {ev.seq}: clock "
                f"{ev.clock} at real {real} (host clock {expect} +- {err}, last {last_clock})")
        last_clock = ev.clock
        seq += 1
        out = to_production(ev, group=groups[rank], node=task.host, seq=seq, err=err)
        writer.write(encoder.encode(out) + b"\n")
    segments = writer.close()
    return MergeResult(task.host, tuple(segments), seq, time.perf_counter() - started)


def _history_stream(path: Path, rank: int) -> Iterator[tuple[int, int, int, str, Any]]:
    with path.open("rb", buffering=1 << 20) as f:
        for line in f:
            rec = orjson.loads(line)
            done = rec["complete"] != -1
            t = rec["complete"] if done else rec["invoke"]
            yield (0 if done else 1, t, rank, rec["id"], rec)


def merge_router(task: MergeTask, *_after: object) -> MergeResult:
    """Write router ``task.host``'s rotated history segments."""
    started = time.perf_counter()
    cfg = task.config
    clock = HostClock(cfg.clock, derive_seed(cfg.seed, "clock", task.host))
    groups = [i.group for i in task.inputs]
    streams = [_history_stream(Path(i.path), rank) for rank, i in enumerate(task.inputs)]
    writer = SegmentWriter(Path(task.out_dir), f"history-{task.host}", cfg.segment_lines,
                           cfg.compression)
    opt = orjson.OPT_APPEND_NEWLINE
    seq = 0
    for _, _, rank, _, rec in heapq.merge(*streams):
        seq += 1
        invoke, err = clock.reading(rec["invoke"])
        readings = [(rec["invoke"], invoke)]
        complete = -1
        if rec["complete"] != -1:
            complete, err_c = clock.reading(rec["complete"])
            err = max(err, err_c)
            readings.append((rec["complete"], complete))
        # -1 marks an outstanding operation: a completion must not read it.
        if any(abs(reading - real) > err for real, reading in readings) or \
                (len(readings) == 2 and complete == -1):
            raise ClockGuaranteeError(f"router {task.host}: {rec['id']}: clock readings "
                                      f"{readings} (real, clock) not within {err}, or -1")
        out: dict[str, Any] = {"v": PRODUCTION_VERSION, "group": groups[rank],
                               "router": task.host, "seq": seq}
        for k, v in rec.items():
            if k == "invoke":
                out[k] = invoke
            elif k == "complete":
                out[k] = complete
                out["err"] = err
            else:
                out[k] = v
        writer.write(orjson.dumps(out, option=opt))
    segments = writer.close()
    return MergeResult(task.host, tuple(segments), seq, time.perf_counter() - started)


__all__ = ["ClockGuaranteeError", "MergeInput", "MergeResult", "MergeTask", "merge_node",
           "merge_router"]
