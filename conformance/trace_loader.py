"""The one trace loader: trace files (traces/FORMAT.md) into typed, located events.

Every checker reads traces through here: the monitor, the Z3 lease check, TLC
trace validation, the mutation matrix and ``replay``. Decoding a line with the
catalogue's typed events (reference/trace_events.py) is validating it, and every
problem is a ``TraceInputError`` whose message is one line naming ``file:line``:
not JSON, an unknown format version or action, a field missing, unknown or of
the wrong type, a node's ``seq`` that does not count up from 1, a clock or real
time that runs backwards, a line written by another node.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import orjson

from reference.trace_events import FORMAT_VERSION, TraceEvent

_DECODER = msgspec.json.Decoder(TraceEvent)
_FILE_RE = re.compile(r"^trace-(.+)\.jsonl$")


class TraceInputError(ValueError):
    """Unusable trace input; the message is one line, ``path:line: reason``."""


@dataclass(frozen=True, slots=True)
class Located:
    event: Any
    """The typed event (one of reference.trace_events.EVENT_TYPES)."""
    where: str
    """``file:line`` of the event."""


def _why(line: bytes, exc: msgspec.MsgspecError) -> str:
    """A one-line reason, naming the version when that is what is wrong."""
    if isinstance(exc, msgspec.ValidationError) and "`$.v`" in str(exc):
        try:
            v = orjson.loads(line).get("v")
        except (orjson.JSONDecodeError, AttributeError):
            v = None
        return (f"unsupported trace format version {v!r} (this reader knows version "
                f"{FORMAT_VERSION}; re-run `dynaspec simulate` to regenerate old traces)")
    if isinstance(exc, msgspec.ValidationError):
        return f"not a valid trace event: {exc}"
    return f"not JSON: {exc}"


def decode_line(line: bytes, where: str) -> Any:
    """One trace line as its typed event; ``TraceInputError`` naming ``where`` if it is not."""
    try:
        return _DECODER.decode(line)
    except msgspec.MsgspecError as exc:
        raise TraceInputError(f"{where}: {_why(line, exc)}") from None


def event_from_obj(obj: Mapping[str, Any], where: str = "event") -> Any:
    """A typed event from a JSON-shaped dict (hand-written events in tests, tools)."""
    return decode_line(orjson.dumps(obj), where)


def event_to_obj(event: Any) -> dict[str, Any]:
    """The JSON object of an event, as its line holds it."""
    obj: dict[str, Any] = orjson.loads(msgspec.json.encode(event))
    return obj


def node_of_file(path: Path) -> str | None:
    m = _FILE_RE.match(path.name)
    return m.group(1) if m else None


def read_trace_file(path: Path) -> Iterator[Located]:
    """One node's events in file order, checked line by line (streams; nothing is held)."""
    try:
        f = path.open("rb")
    except OSError as exc:
        raise TraceInputError(f"{path}:0: cannot read: {exc.strerror}") from None
    with f:
        yield from read_trace(f, str(path))


def read_trace(lines: Iterable[bytes], source: str) -> Iterator[Located]:
    """One node's events from ``lines`` (a file, or an in-memory trace) named ``source``
    (``trace-<node>.jsonl`` names the node every line must belong to)."""
    node = node_of_file(Path(source))
    prev_seq, prev_clock, prev_real = 0, None, None
    for ln, line in enumerate(lines, start=1):
        where = f"{source}:{ln}"
        if not line.endswith(b"\n"):
            raise TraceInputError(f"{where}: last line is cut short (no newline)")
        ev = decode_line(line, where)
        if node is not None and ev.node != node:
            raise TraceInputError(f"{where}: event of node {ev.node!r} in "
                                  f"{Path(source).name}")
        if ev.seq != prev_seq + 1:
            raise TraceInputError(f"{where}: seq {ev.seq} follows {prev_seq}")
        if prev_clock is not None and ev.clock < prev_clock:
            raise TraceInputError(f"{where}: clock runs backwards from {prev_clock} "
                                  f"to {ev.clock}")
        if ev.real is not None and prev_real is not None and ev.real < prev_real:
            raise TraceInputError(f"{where}: real time runs backwards from {prev_real} "
                                  f"to {ev.real}")
        prev_seq, prev_clock, prev_real = ev.seq, ev.clock, ev.real
        yield Located(ev, where)


def trace_files(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """Trace files named by ``paths``; a directory stands for its ``trace-*.jsonl``."""
    items = [paths] if isinstance(paths, str | Path) else list(paths)
    out: list[Path] = []
    for p in map(Path, items):
        if p.is_dir():
            found = sorted(p.glob("trace-*.jsonl"))
            if not found:
                raise TraceInputError(f"{p}: no trace-*.jsonl files")
            out += found
        else:
            out.append(p)
    return out


def load_events(paths: str | Path | Iterable[str | Path]) -> list[Located]:
    """Every event of the files, merged across nodes by real time (then file, seq)."""
    keyed: list[tuple[int, int, int, Located]] = []
    for fi, path in enumerate(trace_files(paths)):
        for loc in read_trace_file(path):
            real = loc.event.real
            if real is None:
                raise TraceInputError(f"{loc.where}: no 'real' time; merging nodes' traces "
                                      f"needs the simulator's real time")
            keyed.append((real, fi, loc.event.seq, loc))
    keyed.sort(key=lambda x: x[:3])
    return [k[3] for k in keyed]


def read_config(directory: Path) -> dict[str, Any]:
    """A run's config.json, checked to be an object of a format version this reader knows."""
    path = directory / "config.json"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise TraceInputError(f"{path}: missing (is {directory} a simulate output?)") from None
    except OSError as exc:
        raise TraceInputError(f"{path}:0: cannot read: {exc.strerror}") from None
    try:
        config = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise TraceInputError(f"{path}:1: not JSON: {exc}") from None
    if not isinstance(config, dict):
        raise TraceInputError(f"{path}:1: not a JSON object")
    if config.get("format") != FORMAT_VERSION:
        raise TraceInputError(f"{path}:1: unsupported format version {config.get('format')!r} "
                              f"(this reader knows {FORMAT_VERSION})")
    return config


KINDS = ("storage", "log", "none")


def member_kinds(config: Mapping[str, Any], where: str = "config.json") -> dict[str, str]:
    """Every replica incarnation of the run and its kind at the start.

    From ``"members"``: a list of ``{"id", "node", "incarnation", "kind"}`` (kind
    ``"storage"``, ``"log"``, or ``"none"`` for a spare node not yet a member).  A
    config without it (a run from before membership change) has ``"replicas": n``
    storage replicas named ``r1..rn``.  No checker may assume either naming: they all
    read the group from here.
    """
    members = config.get("members")
    if members is None:
        n = config.get("replicas", 3)
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 64:
            raise TraceInputError(f"{where}:1: 'replicas' must be an integer in 1..64, "
                                  f"got {n!r}")
        return {f"r{i}": "storage" for i in range(1, n + 1)}
    if not isinstance(members, list) or not 1 <= len(members) <= 64:
        raise TraceInputError(f"{where}:1: 'members' must be a list of 1..64 replicas")
    kinds: dict[str, str] = {}
    nodes: dict[tuple[Any, Any], str] = {}
    for i, m in enumerate(members):
        if not isinstance(m, dict):
            raise TraceInputError(f"{where}:1: members[{i}] is not an object")
        rid, kind = m.get("id"), m.get("kind")
        if not isinstance(rid, str) or not rid or '"' in rid or "\\" in rid:
            raise TraceInputError(f"{where}:1: members[{i}].id must be a non-empty string, "
                                  f"got {rid!r}")
        if kind not in KINDS:
            raise TraceInputError(f"{where}:1: members[{i}].kind must be one of "
                                  f"{', '.join(KINDS)}, got {kind!r}")
        if rid in kinds:
            raise TraceInputError(f"{where}:1: replica id {rid!r} listed twice (an "
                                  f"incarnation's id is unique)")
        node, inc = m.get("node"), m.get("incarnation")
        if node is not None:
            if (node, inc) in nodes:
                raise TraceInputError(f"{where}:1: {rid} and {nodes[node, inc]} are both "
                                      f"incarnation {inc!r} of node {node!r}")
            nodes[node, inc] = rid
        kinds[rid] = kind
    if not any(k != "none" for k in kinds.values()):
        raise TraceInputError(f"{where}:1: 'members' has no member (every kind is 'none')")
    return kinds


def members_of(config: Mapping[str, Any], where: str = "config.json") -> list[str]:
    """Every replica incarnation of the run (members and spares), in config order."""
    return list(member_kinds(config, where))


def load_trace_dir(directory: Path) -> tuple[list[Located], dict[str, Any]]:
    """A ``dynaspec simulate`` output directory: its merged events and its config."""
    config = read_config(directory)
    return load_events(directory), config


__all__ = [
    "Located",
    "TraceInputError",
    "decode_line",
    "event_from_obj",
    "event_to_obj",
    "load_events",
    "load_trace_dir",
    "member_kinds",
    "members_of",
    "read_config",
    "read_trace",
    "read_trace_file",
    "trace_files",
]
