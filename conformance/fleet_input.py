"""Fleet input (format 4): ``fleet.json``, rotated node segments, and their lines.

A fleet directory (``dynaspec fleet simulate``) holds ``fleet.json`` (format 4: the
nodes, the replication groups with their members and the nodes hosting them, and the
replicas' configuration), one rotation of trace segments per storage node,
``trace-<node>.<n>.jsonl[.gz|.zst]`` with n = 1, 2, ..., and the routers' histories,
``history-<router>.<n>.jsonl[.gz|.zst]``. A node's file interleaves the lines of every
group it hosts; ``seq`` counts its lines over all groups and segments.

This module is the parse step: it lists and opens segments and streams one node's
lines in order, checking per line what only the node's whole file can show (so a
per-group reader could not): the segment numbers are contiguous from 1, every segment
but the last has ``segments.max_lines`` lines, the node's lines are as many as
fleet.json's ``nodes[].lines`` says (when it does: a lost last segment shows only
there), the line's ``node`` is the file's, ``seq`` counts 1, 2, 3, ... across segments
(a lost segment or a lost line is a gap), the clock does not run backwards beyond its
bound (``clock + err`` of a line below ``clock - err`` of the one before: the two
readings cannot both be right; a smaller step back is accepted, as a ClockBound clock
corrected within its bound may take one), and the line's group and replica are in
``fleet.json`` on this node.

Lines are read as the trace loader reads them (``read_lines``: ``MAX_LINE_BYTES``, a
compressed segment cut short is an error at its line) and decoded in two steps:
every line into a ``Header`` (routing and the checks above), and only a line of a
group the caller checks into its typed event (``decode_event``). The fast path skips
the trace loader's strict re-encoding check (``strict_problem``: a duplicate key, an
integer outside int64, a lone surrogate escape) for lines that are plain ASCII without
``\\u`` escapes and without a run of 19 digits (a canonical writer's lines); those
that are not are checked strictly. What it skips: a duplicate key in an ASCII line
(msgspec keeps the last one).

Every problem is a ``TraceInputError``, one line ``path:line: reason``.
"""

from __future__ import annotations

import gzip
import io
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import msgspec
import orjson

from conformance.errors import one_line
from conformance.trace_loader import (
    MAX_LINE_BYTES,
    TraceInputError,
    check_payload,
    json_problem,
    member_kinds,
    read_lines,
)
from reference.trace_events import PRODUCTION_VERSION, ProdTraceEvent

FLEET_FORMAT = PRODUCTION_VERSION
_SEGMENT_RE = re.compile(r"^(trace|history)-(.+)\.([0-9]+)\.jsonl(\.gz|\.zst)?$")
_LONG_DIGITS = b"9" * 19
_DIGITS_TO_9 = bytes(0x39 if 0x30 <= i <= 0x39 else 0x20 for i in range(256))


class Header(msgspec.Struct, frozen=True):
    """What routing and the per-node checks read of every line (the rest is skipped)."""

    v: int
    group: str
    node: str
    replica: str
    seq: int
    clock: int
    err: int


_HEADER = msgspec.json.Decoder(Header)
_EVENT = msgspec.json.Decoder(ProdTraceEvent)


@dataclass(frozen=True, slots=True)
class GroupSpec:
    id: str
    kinds: dict[str, str]
    """Replica id -> its kind at the start (``storage``, ``log``, ``none``)."""
    nodes: dict[str, str]
    """Replica id -> the node hosting it."""


@dataclass(frozen=True, slots=True)
class FleetSpec:
    directory: Path
    nodes: tuple[str, ...]
    groups: dict[str, GroupSpec]
    replica_config: dict[str, Any]
    by_node: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Node -> the groups with a replica on it (fleet.json order)."""
    node_lines: dict[str, int] = field(default_factory=dict)
    """Node -> its line count, where fleet.json gives one (``nodes[].lines``): what
    shows a lost *last* segment, which no seq gap can."""
    max_lines: int = 0
    """``segments.max_lines``: every segment but a rotation's last has exactly this many
    lines (0: not rotated by count)."""

    def groups_on(self, node: str) -> tuple[str, ...]:
        return self.by_node.get(node, ())


def is_fleet_dir(directory: Path) -> bool:
    """A fleet directory has fleet.json (a single simulated group has config.json)."""
    return (directory / "fleet.json").is_file()


def _bad(where: Path, why: str) -> TraceInputError:
    return TraceInputError(f"{where}:1: {why}")


def read_fleet_spec(directory: Path) -> FleetSpec:
    """``fleet.json``, checked: format 4, nodes, groups and their members, replica_config."""
    path = directory / "fleet.json"
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_LINE_BYTES + 1)
    except FileNotFoundError:
        raise TraceInputError(f"{path}:0: missing (is {directory} a fleet directory?)") \
            from None
    except OSError as exc:
        raise TraceInputError(f"{path}:0: cannot read: {exc.strerror}") from None
    if len(raw) > MAX_LINE_BYTES:
        raise TraceInputError(f"{path}:0: longer than {MAX_LINE_BYTES} bytes")
    problem = json_problem(raw)
    if problem is not None:
        raise _bad(path, problem)
    obj = orjson.loads(raw)
    if not isinstance(obj, dict):
        raise _bad(path, "not a JSON object")
    if obj.get("format") != FLEET_FORMAT:
        raise _bad(path, f"unsupported format version {obj.get('format')!r} (this reader "
                         f"knows {FLEET_FORMAT})")
    nodes_raw = obj.get("nodes")
    if not isinstance(nodes_raw, list) or not nodes_raw:
        raise _bad(path, "'nodes' must be a non-empty list")
    nodes: list[str] = []
    node_lines: dict[str, int] = {}
    for i, n in enumerate(nodes_raw):
        nid = n.get("id") if isinstance(n, dict) else None
        if not isinstance(nid, str) or not nid or "/" in nid or nid in nodes:
            raise _bad(path, f"nodes[{i}].id must be a new non-empty string without '/', "
                             f"got {nid!r}")
        nodes.append(nid)
        count = n.get("lines")
        if count is not None:
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                raise _bad(path, f"nodes[{i}].lines must be a non-negative integer, got "
                                 f"{count!r}")
            node_lines[nid] = count
    seg = obj.get("segments", {})
    max_lines = seg.get("max_lines", 0) if isinstance(seg, dict) else None
    if not isinstance(max_lines, int) or isinstance(max_lines, bool) or max_lines < 0:
        raise _bad(path, f"segments.max_lines must be a non-negative integer, got "
                         f"{max_lines!r}")
    groups_raw = obj.get("groups")
    if not isinstance(groups_raw, list) or not groups_raw:
        raise _bad(path, "'groups' must be a non-empty list")
    groups: dict[str, GroupSpec] = {}
    by_node: dict[str, list[str]] = {}
    for i, g in enumerate(groups_raw):
        gid = g.get("id") if isinstance(g, dict) else None
        if not isinstance(gid, str) or not gid or gid in groups:
            raise _bad(path, f"groups[{i}].id must be a new non-empty string, got {gid!r}")
        assert isinstance(g, dict)
        kinds = member_kinds({"members": g.get("members")}, f"{path} groups[{i}] ({gid})")
        rnodes: dict[str, str] = {}
        for m in g["members"]:
            node = m.get("node")
            if node not in nodes:
                raise _bad(path, f"group {gid}: member {m['id']} is on node {node!r}, not "
                                 f"one of 'nodes'")
            rnodes[m["id"]] = node
            if gid not in by_node.setdefault(node, []):
                by_node[node].append(gid)
        groups[gid] = GroupSpec(gid, kinds, rnodes)
    rc = obj.get("replica_config")
    if not isinstance(rc, dict):
        raise _bad(path, "'replica_config' must be an object")
    for name in ("lease_dur_us", "lease_margin_us", "max_drift_us"):
        v = rc.get(name)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise _bad(path, f"replica_config.{name} must be a non-negative integer, got {v!r}")
    pc = rc.get("peer_confirm")
    if pc is not None and not isinstance(pc, bool):
        raise _bad(path, f"replica_config.peer_confirm must be true or false, got {pc!r}")
    return FleetSpec(directory, tuple(nodes), groups, rc,
                     {n: tuple(gs) for n, gs in by_node.items()}, node_lines, max_lines)


@dataclass(frozen=True, slots=True)
class Rotation:
    """One node's (router's) segments in order; ``problem``: why the rotation is broken
    after ``paths`` (a missing segment), empty if it is whole."""

    paths: list[Path]
    problem: str = ""


def segments(directory: Path, kind: str) -> dict[str, Rotation]:
    """``kind`` (``trace`` or ``history``) -> per node (router), its segments in order,
    checked contiguous from 1 and one file per number. A broken rotation keeps the
    segments before its first gap: a node's bad file is its own groups' problem."""
    found: dict[str, dict[int, Path]] = {}
    twice: dict[str, str] = {}
    for p in sorted(directory.iterdir()):
        m = _SEGMENT_RE.match(p.name)
        if m is None or m.group(1) != kind:
            continue
        name, n = m.group(2), int(m.group(3))
        other = found.setdefault(name, {}).get(n)
        if other is not None:
            twice.setdefault(name, f"{p}:0: segment {n} of {name} again (also "
                                   f"{other.name}); keep one")
        found[name][n] = p
    out: dict[str, Rotation] = {}
    for name, by_n in sorted(found.items()):
        paths: list[Path] = []
        problem = twice.get(name, "")
        for n in range(1, max(by_n) + 1):
            if n not in by_n:
                have = ", ".join(str(k) for k in sorted(by_n))
                problem = problem or (f"{directory / f'{kind}-{name}.{n}.jsonl'}:0: missing "
                                      f"segment {n} of {name}'s rotation (present: {have}); "
                                      f"a lost segment loses lines")
                break
            paths.append(by_n[n])
        out[name] = Rotation(paths, problem)
    return out


def open_segment(path: Path) -> IO[bytes]:
    """A segment for reading bytes, decompressed (``.gz``, ``.zst``)."""
    try:
        if path.name.endswith(".gz"):
            return cast(IO[bytes], gzip.open(path, "rb"))
        if path.name.endswith(".zst"):
            import zstandard

            raw = path.open("rb")
            reader = zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)
            return io.BufferedReader(cast(Any, reader), 1 << 16)
        return path.open("rb")
    except OSError as exc:
        raise TraceInputError(f"{path}:0: cannot read: {exc.strerror or exc}") from None


def segment_lines(path: Path) -> Iterator[bytes]:
    """A segment's lines (``read_lines``; a zstd stream cut short or corrupt is an error
    at its line, as gzip's is)."""
    with open_segment(path) as f:
        try:
            yield from read_lines(f, str(path))
        except Exception as exc:  # zstandard.ZstdError is not an OSError
            if type(exc).__name__ != "ZstdError":
                raise
            raise TraceInputError(f"{path}:0: cannot read: {one_line(str(exc))}") from None


def _header_problem(line: bytes, exc: msgspec.MsgspecError) -> str:
    """A one-line reason for a line whose header does not decode."""
    if isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError):
        return f"not JSON: {exc}"
    try:
        v = orjson.loads(line).get("v")
    except (orjson.JSONDecodeError, AttributeError):
        v = None
    if v != FLEET_FORMAT:
        return (f"unsupported trace format version {v!r} in a fleet directory (this reader "
                f"knows {FLEET_FORMAT})")
    return f"not a valid trace event: {exc}"


@dataclass(slots=True)
class NodeLine:
    """One line of a node's file: its header, its bytes and where it is."""

    header: Header
    line: bytes
    path: str
    ln: int
    lo: int
    """The earliest true time it can have been written: ``clock - err``, at least that of
    the lines before it (they were written before it)."""
    hi: int
    """The latest: ``clock + err``."""

    @property
    def where(self) -> str:
        return f"{self.path}:{self.ln}"


def read_node(spec: FleetSpec, node: str, paths: list[Path]) -> Iterator[NodeLine]:
    """One node's lines, every segment in order, checked (module docstring)."""
    prev_seq, prev_lo, prev_clock, prev_err = 0, -(1 << 62), None, 0
    prev_floor = float("-inf")  # prev_clock - prev_err (none before the first line)
    # (group, replica) of every replica fleet.json places on this node: one lookup for
    # the line's group and replica (``_line_problem`` tells which is wrong).
    placed = {(g, r) for g in spec.groups_on(node)
              for r, n in spec.groups[g].nodes.items() if n == node}
    decode = _HEADER.decode
    ln = 0
    for k, path in enumerate(paths):
        source = str(path)
        if k and spec.max_lines and ln != spec.max_lines:  # the segment before this one
            raise TraceInputError(f"{paths[k - 1]}:{ln}: {ln} lines, but segments.max_lines "
                                  f"is {spec.max_lines}: a segment cut short")
        ln = 0
        for ln, line in enumerate(segment_lines(path), start=1):
            if not line.endswith(b"\n"):
                raise TraceInputError(f"{source}:{ln}: last line is cut short (no newline)")
            try:
                h = decode(line)
            except msgspec.MsgspecError as exc:
                raise TraceInputError(f"{source}:{ln}: {one_line(_header_problem(line, exc))}") \
                    from None
            except UnicodeDecodeError as exc:
                raise TraceInputError(f"{source}:{ln}: not UTF-8: {exc.reason}") from None
            clock, err = h.clock, h.err
            if h.seq != prev_seq + 1 or err < 0 or clock + err < prev_floor \
                    or h.v != FLEET_FORMAT or h.node != node \
                    or (h.group, h.replica) not in placed:
                why = _line_problem(spec, node, h, prev_seq, prev_clock, prev_err)
                raise TraceInputError(f"{source}:{ln}: {why}")
            lo = clock - err
            if lo < prev_lo:
                lo = prev_lo
            prev_seq, prev_lo, prev_clock, prev_err = h.seq, lo, clock, err
            prev_floor = clock - err
            yield NodeLine(h, line, source, ln, lo, clock + err)
    want = spec.node_lines.get(node)
    if want is not None and prev_seq != want:
        last = paths[-1] if paths else spec.directory / f"trace-{node}.1.jsonl"
        raise TraceInputError(f"{last}:{ln}: {node} wrote {prev_seq} lines, but fleet.json "
                              f"says {want}: a lost last segment, or lines cut off its end")


def _line_problem(spec: FleetSpec, node: str, h: Header, prev_seq: int,
                  prev_clock: int | None, prev_err: int) -> str:
    """Why a line of ``node``'s file fails the per-node checks (the first that fails, in
    this order), after a line of ``prev_seq``, ``prev_clock`` and ``prev_err``."""
    if h.v != FLEET_FORMAT:
        return (f"unsupported trace format version {h.v!r} in a fleet directory (this reader "
                f"knows {FLEET_FORMAT})")
    if h.node != node:
        return f"event of node {h.node!r} in {node}'s file"
    if h.seq != prev_seq + 1:
        what = ("lines lost (a segment cut short or missing?)" if h.seq > prev_seq + 1
                else "out of order")
        return f"seq {h.seq} follows {prev_seq}: {what}"
    if h.err < 0:
        return f"negative clock error bound {h.err}"
    if prev_clock is not None and h.clock + h.err < prev_clock - prev_err:
        return (f"clock runs backwards beyond its bound: {h.clock} +- {h.err}us is wholly "
                f"before the line before it ({prev_clock} +- {prev_err}us)")
    g = spec.groups.get(h.group)
    if g is None:
        return f"group {h.group!r} is not in {spec.directory / 'fleet.json'}"
    on = g.nodes.get(h.replica)
    why = (f"not a replica of {h.group} ({', '.join(g.kinds)})" if on is None
           else f"hosted on {on}, not {node}")
    return f"replica {h.replica!r} of group {h.group} is {why} in fleet.json"


def decode_event(nl: NodeLine) -> Any:
    """The line's typed event (reference.trace_events.PROD_EVENT_TYPES), payload checked."""
    line, where = nl.line, nl.where
    try:
        ev = _EVENT.decode(line)
    except msgspec.MsgspecError as exc:
        raise TraceInputError(f"{where}: not a valid trace event: {one_line(str(exc))}") \
            from None
    except UnicodeDecodeError as exc:
        raise TraceInputError(f"{where}: not UTF-8: {exc.reason}") from None
    except RecursionError:
        raise TraceInputError(f"{where}: not a valid trace event: nested too deeply") from None
    if not line.isascii() or b"\\u" in line or _LONG_DIGITS in line.translate(_DIGITS_TO_9):
        problem = json_problem(line)  # the slow strict check, for lines that need it
        if problem is not None:
            raise TraceInputError(f"{where}: {problem}")
    check_payload(ev, where)
    return ev


def node_context(where: str, around: int = 3) -> list[tuple[int, str]]:
    """The lines ``around`` before and after ``path:line`` in its segment, numbered (for a
    violation's report); empty if the segment cannot be read."""
    path_s, _, ln_s = where.rpartition(":")
    try:
        target = int(ln_s)
        out: list[tuple[int, str]] = []
        for ln, line in enumerate(segment_lines(Path(path_s)), start=1):
            if ln > target + around:
                break
            if ln >= target - around:
                out.append((ln, line.decode("utf-8", "replace").rstrip("\n")))
        return out
    except (ValueError, OSError, TraceInputError):
        return []


def groups_of_nodes(spec: FleetSpec, nodes: Mapping[str, object]) -> set[str]:
    """The groups with a replica on any of ``nodes``."""
    return {g for n in nodes for g in spec.groups_on(n)}


__all__ = ["FLEET_FORMAT", "FleetSpec", "GroupSpec", "Header", "NodeLine", "Rotation",
           "decode_event",
           "groups_of_nodes", "is_fleet_dir", "node_context", "open_segment", "read_fleet_spec",
           "read_node", "segment_lines", "segments"]
