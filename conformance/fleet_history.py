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

Memory. The route pass (conformance/fleet_spill.py ``route_router``) reads every
router's rotation once and checks each line (JSON, strict, format, router, seq, err,
group, id); a fleet replay task's ``HistoryIndex`` reads its groups' routed lines,
indexes each (its request id, and where it is) and copies it to a temporary file, the
group's *spill*. The traces are then checked against the
index (is each traced write in its group's history?), and afterwards each group's
records are decoded from its spill one group at a time, checked and dropped. So what a
task holds does not grow with the operations: a decoded record takes about 2 KB, a line
about 450 bytes, an index entry 8 bytes (``RequestIds``); only the group being checked
has its records in memory. A record whose fields do not decode is found then, not in the
pass: it makes its group, and every group its router served up to its line, input errors
(``RecordError``), as a bad line found in the pass does.
"""

from __future__ import annotations

import tempfile
from array import array
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO

import orjson

from conformance.errors import one_line
from conformance.fleet_input import FleetSpec, segments
from conformance.fleet_spill import Routed, read_history_spill, route_router
from conformance.linearizability.model import _record_from_json
from conformance.trace_loader import TraceInputError
from reference.client import HistoryRecord
from reference.storage import M

SPILL_CHUNK = 1 << 16
"""Bytes of a group's lines buffered before they go to its spill."""
ITEM_CACHE = 4096
"""Decoded items shared while decoding a group (the same item recurs: a write's new
value is the next write's old one); cleared when it holds more."""
_SLACK = 4096
"""How far past the end of a client's run of request numbers a new one may land (the
gap is filled with empty entries); one further away goes to the plain dict."""
_LINE_BITS = 32


@dataclass(slots=True)
class GroupHistory:
    records: list[HistoryRecord] = field(default_factory=list)
    line_of: dict[str, str] = field(default_factory=dict)
    """Request id -> ``path:line`` of its record."""
    origin: dict[str, tuple[str, int]] = field(default_factory=dict)
    """Request id -> (router, ``err``) of its record: with the widened window, its
    router's own readings (conformance/fleet_z3.py ``router_ops``)."""


@dataclass(slots=True)
class Histories:
    groups: dict[str, GroupHistory]
    errors: dict[str, str]
    """Group -> the input error that makes its history unusable."""


class _Run:
    """A client's request ids ``<client>-<n>``, n = first, first + 1, ...: where each is
    (0: not in the history)."""

    __slots__ = ("first", "locs")

    def __init__(self, first: int) -> None:
        self.first = first
        self.locs = array("Q")


def _numbered(rid: str) -> tuple[str, int] | None:
    """``(client, n)`` if ``rid`` is ``<client>-<n>`` with n in canonical decimal (so that
    the id is rebuilt exactly from the two), else None."""
    head, sep, tail = rid.rpartition("-")
    if not sep or not tail or len(tail) > 18 or not (tail.isascii() and tail.isdigit()) \
            or (tail[0] == "0" and tail != "0"):
        return None
    return head, int(tail)


class RequestIds(Mapping[str, str]):
    """One group's request ids -> ``path:line`` of their records, in about 8 bytes an id.

    A router's clients number their requests (``reference/client.py``: ``<client>-<n>``,
    n = 1, 2, ...), so each client's ids are kept as one array of positions indexed by n;
    an id of another shape (or far outside its client's run) goes to a plain dict. Either
    way the mapping is exact: nothing is hashed or approximated."""

    __slots__ = ("_n", "_other", "_paths", "_runs")

    def __init__(self, paths: list[str]) -> None:
        self._paths = paths
        """Segment paths, shared by the index's groups (a position is (path index, line))."""
        self._runs: dict[str, _Run] = {}
        self._other: dict[str, str] = {}
        self._n = 0

    def _slot(self, rid: str) -> tuple[_Run, int] | None:
        num = _numbered(rid)
        if num is None:
            return None
        run = self._runs.get(num[0])
        if run is None:
            return None
        i = num[1] - run.first
        return (run, i) if 0 <= i < len(run.locs) else None

    def add(self, rid: str, client: str, path_index: int, line: int) -> str | None:
        """Record ``rid`` at ``line`` of segment ``path_index``; if it is already there,
        change nothing and return where it was first."""
        first = self.get(rid)
        if first is not None:
            return first
        self._n += 1
        num = _numbered(rid)
        if num is not None and num[0] == client and line < 1 << _LINE_BITS:
            run = self._runs.get(client)
            if run is None:
                run = self._runs[client] = _Run(num[1])
            i = num[1] - run.first
            if 0 <= i <= len(run.locs) + _SLACK:
                if i >= len(run.locs):
                    run.locs.frombytes(bytes(8 * (i + 1 - len(run.locs))))
                run.locs[i] = path_index << _LINE_BITS | line
                return None
        self._other[rid] = f"{self._paths[path_index]}:{line}"
        return None

    def _where(self, loc: int) -> str:
        return f"{self._paths[loc >> _LINE_BITS]}:{loc & ((1 << _LINE_BITS) - 1)}"

    def __getitem__(self, rid: str) -> str:
        slot = self._slot(rid)
        if slot is not None and slot[0].locs[slot[1]]:
            return self._where(slot[0].locs[slot[1]])
        return self._other[rid]

    def __contains__(self, rid: object) -> bool:
        if not isinstance(rid, str):
            return False
        slot = self._slot(rid)
        return bool(slot is not None and slot[0].locs[slot[1]]) or rid in self._other

    def __iter__(self) -> Iterator[str]:
        for client, run in self._runs.items():
            for i, loc in enumerate(run.locs):
                if loc:
                    yield f"{client}-{run.first + i}"
        yield from self._other

    def __len__(self) -> int:
        return self._n


def _widen(rec: HistoryRecord, err: int) -> HistoryRecord:
    """``rec`` (just decoded, so no one else's) with its window widened by ``err``."""
    rec.invoke_us -= err
    if rec.complete_us != -1:
        rec.complete_us += err
    return rec


class HistoryIndex:
    """Every router's rotation read once for the ``wanted`` groups: their request ids
    (``ids``), the input errors the pass found (``errors``), and their lines spilled to a
    temporary file for ``history``. Close it (or use it as a context manager) to drop the
    file."""

    def __init__(self, spec: FleetSpec, wanted: Iterable[str],
                 routed: Iterable[Routed] | None = None, bucket: int = 0) -> None:
        """Without ``routed``, every router's rotation is read and checked here; with it,
        the route pass (conformance/fleet_spill.py) has checked them, and only the
        bucket's spills are read."""
        self.spec = spec
        keep = set(wanted)
        self._paths: list[str] = []
        self.ids: dict[str, RequestIds] = {g: RequestIds(self._paths) for g in keep}
        self.errors: dict[str, str] = {}
        """Group -> the input error the pass found (a bad line of a router it used)."""
        self.first_seq: dict[tuple[str, str], int] = {}
        """(router, group) -> seq of the router's first line of the group."""
        # Closed by close() (the index is a context manager); unnamed, so never left behind.
        self._spill: IO[bytes] = tempfile.TemporaryFile(  # noqa: SIM115
            prefix="dynaspec-history-")
        self._buf: dict[str, bytearray] = {g: bytearray() for g in keep}
        self._chunks: dict[str, list[tuple[int, int]]] = {g: [] for g in keep}
        self._end = 0
        if routed is not None:
            self._read_routed(routed, bucket, keep)
            return
        # No route pass ran: route the routers here, into a temporary directory (one
        # reader and checker of router lines: conformance/fleet_spill.py route_router).
        with tempfile.TemporaryDirectory(prefix="dynaspec-history-") as out:
            bucket_of = dict.fromkeys(keep, 0)
            self._read_routed([route_router(str(spec.directory), r, bucket_of, out)
                               for r in segments(spec.directory, "history")], 0, keep)

    def _read_routed(self, routed: Iterable[Routed], bucket: int, keep: set[str]) -> None:
        for r in routed:
            self._read_spill(r, bucket, keep)
        for g in keep:
            self._flush(g)
        self._buf.clear()

    def __enter__(self) -> HistoryIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._spill.close()

    def _flush(self, g: str) -> None:
        buf = self._buf[g]
        if buf:
            self._spill.seek(self._end)
            self._spill.write(buf)
            self._chunks[g].append((self._end, len(buf)))
            self._end += len(buf)
            buf.clear()

    def _read_spill(self, routed: Routed, bucket: int, keep: set[str]) -> None:
        """The bucket's lines of one routed router, indexed and copied (the route pass
        checked them but for duplicate ids)."""
        if routed.problem:
            for g, _first in routed.served.items():
                if g in keep:
                    self.errors.setdefault(g, routed.problem)
        for g, seq in routed.served.items():
            if g in keep:
                self.first_seq[(routed.name, g)] = seq
        base = len(self._paths)
        self._paths.extend(routed.paths)
        for seg, ln, _seq, line in read_history_spill(routed, bucket):
            obj = orjson.loads(line)  # (checked when routed: an object of a kept group)
            g, rid, client = obj["group"], obj["id"], obj.get("client")
            if g not in keep:
                continue
            first = self.ids[g].add(rid, client if isinstance(client, str) else "",
                                    base + seg, ln)
            if first is not None:
                # A request id twice is its group's bad input (only its task sees it).
                self.errors.setdefault(g, f"{routed.paths[seg]}:{ln}: request id {rid!r} of "
                                          f"group {g} again (first at {first})")
                continue
            buf = self._buf[g]
            buf += line
            if len(buf) >= SPILL_CHUNK:
                self._flush(g)

    def lines(self, group: str) -> Iterator[bytes]:
        """The group's history lines, in each router's order (routers one after another)."""
        for offset, size in self._chunks.get(group, ()):
            self._spill.seek(offset)
            yield from self._spill.read(size).splitlines(keepends=True)

    def history(self, group: str) -> GroupHistory:
        """The group's records, decoded from its spill and widened; ``RecordError`` at the
        first record whose fields do not decode."""
        ids = self.ids[group]
        out = GroupHistory(line_of=dict(ids.items()))
        cache: dict[bytes, M] = {}
        for line in self.lines(group):
            obj = orjson.loads(line)  # the pass checked it: a JSON object, of this group
            if len(cache) > ITEM_CACHE:
                cache.clear()
            try:
                rec = _record_from_json(obj, cache)
            except (ValueError, TypeError, KeyError) as exc:
                router, seq = obj["router"], obj["seq"]
                reach = sorted(g for (r, g), first in self.first_seq.items()
                               if r == router and first <= seq)
                raise RecordError(f"{ids[obj['id']]}: {one_line(str(exc))}", reach) from None
            out.records.append(_widen(rec, obj["err"]))
            out.origin[rec.id] = (obj["router"], obj["err"])
        return out


class RecordError(TraceInputError):
    """A history record whose fields do not decode: a bad line of its router, so it makes
    every group that router served up to it an input error (``reach``), as a bad line
    the pass finds does."""

    def __init__(self, message: str, reach: list[str]) -> None:
        super().__init__(message)
        self.reach = reach


def load_histories(spec: FleetSpec, wanted: Iterable[str], *, records: bool = True
                   ) -> Histories:
    """The histories of the ``wanted`` groups, all in memory at once (a replay task uses
    ``HistoryIndex`` instead, one group at a time). Without ``records``, only where each
    request id is (``line_of``)."""
    with HistoryIndex(spec, wanted) as index:
        out = Histories({}, dict(index.errors))
        for g in index.ids:
            if not records:
                out.groups[g] = GroupHistory(line_of=dict(index.ids[g].items()))
                continue
            try:
                out.groups[g] = index.history(g)
            except RecordError as exc:
                out.groups[g] = GroupHistory(line_of=dict(index.ids[g].items()))
                for h in exc.reach:
                    out.errors.setdefault(h, str(exc))
    return out


__all__ = ["GroupHistory", "Histories", "HistoryIndex", "RecordError", "RequestIds",
           "load_histories"]
