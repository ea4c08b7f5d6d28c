"""The routers' histories of a fleet (format 4), per group, with widened windows.

``history-<router>.<n>.jsonl[.gz|.zst]``: format-3 history records (traces/FORMAT.md,
"History lines") plus ``v`` 4, ``group``, ``router``, ``seq`` (per router, 1, 2, 3, ...)
and ``err``; ``invoke`` and ``complete`` are the router's clock readings, each within
``err`` of true time. The linearizability checker orders operations by real time, so
each operation's window is widened to ``[invoke - err, complete + err]``: an operation
that surely precedes another still does, and two that may overlap are taken as
concurrent. So only violations certain under the bounds are reported (an outstanding
operation, ``complete`` -1, stays open-ended).

A bad line makes the groups that router served so far (and the line's own, if it
names one) input errors; the other groups are still checked. A router's later
operations of another group are lost with it, and that group's check of traced writes
against its history (conformance/fleet_check.py) then refuses it too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import orjson

from conformance.errors import one_line
from conformance.fleet_input import FleetSpec, segment_lines, segments
from conformance.linearizability.model import _record_from_json
from conformance.trace_loader import TraceInputError, json_line, strict_problem
from reference.client import HistoryRecord
from reference.storage import M


@dataclass(slots=True)
class GroupHistory:
    records: list[HistoryRecord] = field(default_factory=list)
    line_of: dict[str, str] = field(default_factory=dict)
    """Request id -> ``path:line`` of its record."""


@dataclass(slots=True)
class Histories:
    groups: dict[str, GroupHistory]
    errors: dict[str, str]
    """Group -> the input error that makes its history unusable."""


def _widen(rec: HistoryRecord, err: int) -> HistoryRecord:
    done = rec.complete_us != -1
    return replace(rec, invoke_us=rec.invoke_us - err,
                   complete_us=rec.complete_us + err if done else -1)


def load_histories(spec: FleetSpec, wanted: Iterable[str], *, records: bool = True
                   ) -> Histories:
    """The histories of the ``wanted`` groups, from every router's rotation. Without
    ``records``, only where each request id is (``line_of``, for checking traced writes
    against it while the traces stream): a record takes about 2 KB decoded, so the
    records are read only once the traces' checks are done."""
    keep = set(wanted)
    out = Histories({g: GroupHistory() for g in keep}, {})
    for router, rot in segments(spec.directory, "history").items():
        served: set[str] = set()
        try:
            _read_router(spec, router, rot.paths, keep, out, served, records)
            if rot.problem:
                raise TraceInputError(rot.problem)
        except TraceInputError as exc:
            for g in served & keep:
                out.errors.setdefault(g, str(exc))
    return out


def _read_router(spec: FleetSpec, router: str, paths: list[Path], keep: set[str],
                 out: Histories, served: set[str], records: bool) -> None:
    prev = 0
    cache: dict[bytes, M] = {}
    for path in paths:
        for ln, line in enumerate(segment_lines(path), start=1):
            where = f"{path}:{ln}"
            obj = json_line(line, where)
            if not isinstance(obj, dict):
                raise TraceInputError(f"{where}: not a history record")
            g = obj.get("group")
            if isinstance(g, str):
                served.add(g)
            problem = strict_problem(line, orjson.dumps(obj))
            if problem is not None:
                raise TraceInputError(f"{where}: {problem}")
            if obj.get("v") != 4 or obj.get("router") != router:
                raise TraceInputError(f"{where}: not a format-4 record of router {router} "
                                      f"(v {obj.get('v')!r}, router {obj.get('router')!r})")
            seq, err = obj.get("seq"), obj.get("err")
            if seq != prev + 1:
                raise TraceInputError(f"{where}: seq {seq!r} follows {prev}: lines lost or out "
                                      f"of order")
            prev = seq
            if not isinstance(err, int) or isinstance(err, bool) or err < 0:
                raise TraceInputError(f"{where}: err must be a non-negative integer, got "
                                      f"{err!r}")
            if g not in spec.groups:
                raise TraceInputError(f"{where}: group {g!r} is not in fleet.json")
            if g not in keep:
                continue
            rid = obj.get("id")
            if not isinstance(rid, str):
                raise TraceInputError(f"{where}: not a history record (no string 'id')")
            gh = out.groups[g]
            if rid in gh.line_of:
                raise TraceInputError(f"{where}: request id {rid!r} of group {g} again "
                                      f"(first at {gh.line_of[rid]})")
            gh.line_of[rid] = where
            if records:
                try:
                    rec = _record_from_json(obj, cache)
                except (ValueError, TypeError, KeyError) as exc:
                    raise TraceInputError(f"{where}: {one_line(str(exc))}") from None
                gh.records.append(_widen(rec, err))


__all__ = ["GroupHistory", "Histories", "load_histories"]
