"""The one trace loader: trace files (traces/FORMAT.md) into typed, located events.

Every checker reads traces through here: the monitor, the Z3 lease check, TLC
trace validation, the mutation matrix and ``replay``. Decoding a line with the
catalogue's typed events (reference/trace_events.py) is validating it, and every
problem is a ``TraceInputError`` whose message is one line naming ``file:line``
(line 0: the file as a whole): not JSON or not UTF-8, a duplicate key, an integer
outside int64, a line longer than ``MAX_LINE_BYTES``, an unknown format version or
action, a field missing, unknown or of the wrong type, an acting replica other than
the line's, a key or a client write's op that does not decode, a node's ``seq``
that does not count up from 1, a clock or real time that runs backwards, a line
written by another node; for a run directory (``load_trace_dir``) also a listed
node's trace file missing, a member's empty, a node or replica not listed. A logged
copy of a write's op is checked apart (``logged_op_problem``), after the checkers.
``trace-<node>.jsonl.gz`` is read like ``trace-<node>.jsonl``.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import msgspec
import orjson

from conformance.errors import InputError, one_line
from reference.actions import TRACED
from reference.storage import decode_op, key_from_json
from reference.trace_events import FORMAT_VERSION, TraceEvent, action_of

_DECODER = msgspec.json.Decoder(TraceEvent)
_ENCODER = msgspec.json.Encoder()
_FILE_RE = re.compile(r"^trace-(.+)\.jsonl(\.gz)?$")

MAX_LINE_BYTES = 16 << 20
"""The longest line (newline included) a reader accepts from a file, so that a corrupt
file cannot make it hold an unbounded line in memory: 16 MiB, 16 times the largest
value ``dynaspec simulate --value-size`` writes (a line carries at most one command;
a history line at most three copies of an item)."""

INT64 = (-(1 << 63), (1 << 63) - 1)
"""Every integer of the formats fits in a signed 64-bit integer (what another
language's reader of these files would use); a larger one is corruption."""
_DIGITS_TO_9 = bytes(0x39 if 0x30 <= i <= 0x39 else 0x20 for i in range(256))
_LONG_DIGITS = b"9" * 19
"""A run of digits that may be an integer outside INT64 (2**63 has 19 digits); found
as a substring of the line with every digit made a 9 (a regex is 5x slower)."""


class TraceInputError(InputError):
    """Unusable trace input; the message is one line, ``path:line: reason``."""


class _JsonProblem(Exception):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> None:
    seen: set[str] = set()
    for k, _ in pairs:
        if k in seen:
            raise _JsonProblem(f"duplicate key {k!r} in an object")
        seen.add(k)


def _int64(text: str) -> int:
    digits = text.lstrip("-")
    if len(digits) > 19 or not INT64[0] <= int(text) <= INT64[1]:
        shown = text if len(text) <= 24 else f"{text[:20]}... ({len(digits)} digits)"
        raise _JsonProblem(f"integer {shown} is outside the 64-bit range")
    return 0


def _no_constant(name: str) -> None:
    raise _JsonProblem(f"{name} is not JSON")


def json_problem(data: bytes | str) -> str | None:
    """What is wrong with JSON text that a fast decoder accepted: what a strict reader
    refuses (bad UTF-8, a lone surrogate, NaN), a duplicate key (decoders keep the
    last) or an integer outside INT64 (decoders take any); None if nothing. Slow:
    callers use it only when ``strict_problem`` finds a line needs it."""
    try:  # orjson refuses what msgspec takes in a Raw payload (it reads that later)
        orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return f"not JSON: {one_line(exc.msg)}"
    try:
        json.loads(data, object_pairs_hook=_no_duplicate_keys, parse_int=_int64,
                   parse_constant=_no_constant)
    except _JsonProblem as exc:
        return str(exc)
    except RecursionError:
        return "nested too deeply"
    except ValueError as exc:  # JSONDecodeError, or bad UTF-8
        return f"not JSON: {one_line(str(exc))}"
    return None


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


def json_line(line: bytes, where: str) -> Any:
    """A JSON line of a history file, or a ``TraceInputError`` naming ``where``: cut short
    (no newline) or not JSON. (Callers then run ``strict_problem`` on it.)"""
    if not line.endswith(b"\n"):
        raise TraceInputError(f"{where}: last line is cut short (no newline)")
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise TraceInputError(f"{where}: not JSON: {one_line(exc.msg)}") from None


def strict_problem(line: bytes, canonical: bytes) -> str | None:
    """``json_problem`` of a line a fast decoder accepted, given its canonical
    re-encoding: the writers' lines are canonical, and a line that starts with its
    canonical form cannot hide a duplicate key. The slow check is for other lines, and
    for what a canonical line can still hide in a payload kept verbatim (``Raw``) or
    a number: bytes that are not ASCII (maybe not UTF-8), a ``\\u`` escape (maybe a
    lone surrogate), a long run of digits (maybe a huge integer)."""
    if line.startswith(canonical) and line.isascii() and b"\\u" not in line \
            and _LONG_DIGITS not in line.translate(_DIGITS_TO_9):
        return None
    return json_problem(line)


def decode_line(line: bytes, where: str) -> Any:
    """One trace line as its typed event; ``TraceInputError`` naming ``where`` if it is not."""
    try:
        ev = _DECODER.decode(line)
    except msgspec.MsgspecError as exc:
        raise TraceInputError(f"{where}: {one_line(_why(line, exc))}") from None
    except UnicodeDecodeError as exc:  # msgspec checks UTF-8 inside strings this way
        raise TraceInputError(f"{where}: not UTF-8: {exc.reason} at byte {exc.start}") from None
    except RecursionError:
        raise TraceInputError(f"{where}: not a valid trace event: nested too deeply") from None
    # The writer encodes the typed event, so its lines re-encode to themselves.
    canonical = _ENCODER.encode(ev)
    problem = strict_problem(line, canonical)
    if problem is None and not line.startswith(canonical):
        absent = _filled_in(orjson.loads(line), orjson.loads(canonical), "$")
        if absent is not None and absent != "$.real":  # real is optional (FORMAT.md)
            problem = f"not a valid trace event: required field `{absent}` missing"
    if problem is not None:
        raise TraceInputError(f"{where}: {problem}")
    return ev


def _filled_in(given: Any, typed: Any, path: str) -> str | None:
    """The first field the typed decoding filled in because ``given`` lacks it (msgspec
    fills in the tag of a message decoded outside a union), as a JSON path."""
    if isinstance(typed, dict) and isinstance(given, dict):
        for k, v in typed.items():
            if k not in given:
                return f"{path}.{k}"
            if (absent := _filled_in(given[k], v, f"{path}.{k}")) is not None:
                return absent
    elif isinstance(typed, list) and isinstance(given, list):
        for i, (g, t) in enumerate(zip(given, typed, strict=False)):
            if (absent := _filled_in(g, t, f"{path}[{i}]")) is not None:
                return absent
    return None


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


def read_lines(f: IO[bytes], source: str) -> Iterator[bytes]:
    """The lines of an open file, each at most ``MAX_LINE_BYTES`` (a longer one is an
    error at its line, read no further than the cap); read errors, a gzip stream cut
    short or corrupt among them, are errors at the line being read."""
    ln = 0
    while True:
        ln += 1
        try:
            line = f.readline(MAX_LINE_BYTES + 1)
        except EOFError:
            raise TraceInputError(f"{source}:{ln}: compressed file cut short (after "
                                  f"{ln - 1} complete lines)") from None
        except (OSError, zlib.error) as exc:
            why = getattr(exc, "strerror", None) or one_line(str(exc))
            raise TraceInputError(f"{source}:{ln}: cannot read: {why}") from None
        if not line:
            return
        if len(line) > MAX_LINE_BYTES:
            raise TraceInputError(f"{source}:{ln}: line longer than {MAX_LINE_BYTES} bytes "
                                  f"(the cap on one line; traces/FORMAT.md)")
        yield line


def open_input(path: Path) -> IO[bytes]:
    """``path`` for reading bytes (``.gz``: decompressed); ``TraceInputError`` if it cannot be."""
    try:
        if path.name.endswith(".gz"):
            return cast(IO[bytes], gzip.open(path, "rb"))
        return path.open("rb")
    except OSError as exc:
        raise TraceInputError(f"{path}:0: cannot read: {exc.strerror or exc}") from None


def read_trace_file(path: Path) -> Iterator[Located]:
    """One node's events in file order, checked line by line (streams; nothing is held),
    keys and write ops included."""
    with open_input(path) as f:
        for loc in read_trace(read_lines(f, str(path)), str(path)):
            check_payload(loc.event, loc.where)
            yield loc


def _payload_paths(types: tuple[str, ...]) -> dict[str, tuple[tuple[str, str], ...]]:
    """Per action, its params of ``types`` that hold raw JSON (typed decoding takes it
    verbatim): ``(name, type)``; a ``msg:2a`` param holds its command at ``.cmd``."""
    out: dict[str, tuple[tuple[str, str], ...]] = {}
    for a in TRACED:
        found = tuple((p.name, p.type) for p in a.params if p.type in types)
        if found:
            out[a.name] = found
    return out


_PAYLOADS = _payload_paths(("key", "write"))
"""Keys, and new client writes: these must decode (``check_payload``)."""
_LOGGED = _payload_paths(("cmd", "msg:2a"))
"""Logged commands (Phase2a, Phase2b, Apply): the replicas' copies of a write, whose
ops ``logged_op_problem`` decodes only when no checker found a violation."""
_ACTING = {a.name: a.params[0].name for a in TRACED
           if a.kind == "spec" and a.params and a.params[0].type == "replica"}
"""Per spec action, its acting replica's param: always the line's ``replica``."""
_CHECKED: set[int] = set()
"""Hashes of payloads already decoded: a write's op recurs in many lines (appended,
accepted by each follower, applied by each replica). Bounded; cleared when full."""


def _check_raw(raw: bytes, what: str, decode: Callable[[bytes], object]) -> str | None:
    h = hash((what, raw))
    if h in _CHECKED:
        return None
    try:
        decode(raw)
    except (ValueError, TypeError, KeyError, AttributeError, IndexError,
            RecursionError) as exc:
        return one_line(str(exc)) or type(exc).__name__
    if len(_CHECKED) >= 1 << 16:
        _CHECKED.clear()
    _CHECKED.add(h)
    return None


def _key(raw: bytes) -> object:
    return key_from_json(orjson.loads(raw))


def check_payload(ev: Any, where: str) -> None:
    """What typed decoding cannot see: the acting replica is the line's ``replica``;
    keys are KEYs and a client write's op an OP (traces/FORMAT.md), not any JSON."""
    act = action_of(ev)
    acting = _ACTING.get(act)
    if acting is not None and getattr(ev.args, acting) != ev.replica:
        raise TraceInputError(f"{where}: args.{acting} is {getattr(ev.args, acting)!r}, but "
                              f"the acting replica is the line's replica {ev.replica!r}")
    for name, kind in _PAYLOADS.get(act, ()):
        x = getattr(ev.args, name)
        if kind == "key":
            why = _check_raw(bytes(x), "key", _key)
        elif x.op is msgspec.UNSET:  # a configuration change: typed already
            continue
        else:
            why = _check_raw(bytes(x.op), "op", decode_op)
        if why is not None:
            field = f"args.{name}" + ("" if kind == "key" else ".op")
            raise TraceInputError(f"{where}: {field} is not a valid "
                                  f"{'KEY' if kind == 'key' else 'OP'}: {why}")


def logged_op_problem(events: Iterable[Located]) -> str | None:
    """``file:line: reason`` of the first logged command whose op is not an OP, or None.

    Not part of loading: a replica that logs a corrupt copy of a write (a WAL record
    recovered unverified, say) is wrong, and the checkers report that as a violation
    (exit 1). Only when they find none is the copy unusable input (exit 2)."""
    for loc in events:
        for name, kind in _LOGGED.get(action_of(loc.event), ()):
            x = getattr(loc.event.args, name)
            field = f"args.{name}"
            if kind == "msg:2a":
                x, field = x.cmd, f"{field}.cmd"
            if x is None or x.op is msgspec.UNSET:
                continue
            why = _check_raw(bytes(x.op), "op", decode_op)
            if why is not None:
                return f"{loc.where}: {field}.op is not a valid OP: {why}"
    return None


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
    """Trace files named by ``paths``; a directory stands for its ``trace-*.jsonl`` and
    ``trace-*.jsonl.gz`` (one file per node: both for one node is an error)."""
    items = [paths] if isinstance(paths, str | Path) else list(paths)
    out: list[Path] = []
    for p in map(Path, items):
        if p.is_dir():
            found = sorted(f for f in p.glob("trace-*.jsonl*") if node_of_file(f) is not None)
            if not found:
                raise TraceInputError(f"{p}:0: no trace-*.jsonl files")
            by_node: dict[str | None, Path] = {}
            for f in found:
                if (other := by_node.setdefault(node_of_file(f), f)) is not f:
                    raise TraceInputError(f"{f}:0: node {node_of_file(f)!r} has a second "
                                          f"trace file, {other.name}; keep one")
            out += found
        elif not p.exists():
            raise TraceInputError(f"{p}:0: no such file")
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
    if not directory.is_dir():
        raise TraceInputError(f"{directory}:0: no such directory")
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_LINE_BYTES + 1)
    except FileNotFoundError:
        raise TraceInputError(f"{path}:0: missing (is {directory} a `dynaspec simulate` "
                              f"output? A fleet directory has fleet.json)") from None
    except OSError as exc:
        raise TraceInputError(f"{path}:0: cannot read: {exc.strerror}") from None
    if len(raw) > MAX_LINE_BYTES:
        raise TraceInputError(f"{path}:0: longer than {MAX_LINE_BYTES} bytes")
    try:
        config = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise TraceInputError(f"{path}:{exc.lineno}: not JSON: {one_line(exc.msg)}") from None
    # orjson keeps the last of duplicate keys and turns a huge integer into a float.
    problem = json_problem(raw)
    if problem is not None:
        raise TraceInputError(f"{path}:1: {problem}")
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


def member_nodes(config: Mapping[str, Any], where: str = "config.json") -> dict[str, str]:
    """Every replica incarnation's node (``trace-<node>.jsonl``), by replica id."""
    kinds = member_kinds(config, where)
    members = config.get("members")
    if members is None:
        return {r: r for r in kinds}
    nodes = {m["id"]: m.get("node", m["id"]) for m in members}
    for rid, node in nodes.items():
        if not isinstance(node, str) or not node or "/" in node:
            raise TraceInputError(f"{where}:1: member {rid}'s node must be a non-empty "
                                  f"string without '/', got {node!r}")
    return nodes


def check_run_files(directory: Path, events: Iterable[Located],
                    config: Mapping[str, Any]) -> None:
    """The traces and the config describe the same run: every listed member has a trace
    file, a member (not a spare) a non-empty one, and no file or event is of a node or
    replica the config does not list. Otherwise events were lost or do not belong."""
    where = str(directory / "config.json")
    kinds = member_kinds(config, where)
    nodes = member_nodes(config, where)
    files: dict[str | None, Path] = {node_of_file(f): f for f in trace_files(directory)}
    for node, f in files.items():
        if node not in nodes.values():
            raise TraceInputError(f"{f}:0: node {node!r} is not in {where} (members: "
                                  f"{', '.join(nodes.values())})")
    seen: set[str] = set()
    for loc in events:
        if loc.event.replica not in kinds:
            raise TraceInputError(f"{loc.where}: replica {loc.event.replica!r} is not a "
                                  f"member in {where} ({', '.join(kinds)})")
        seen.add(loc.event.node)
    for rid, node in nodes.items():
        if node not in files:
            raise TraceInputError(f"{directory / f'trace-{node}.jsonl'}:0: missing, but "
                                  f"{where} lists {rid} ({kinds[rid]})")
        if node not in seen and kinds[rid] != "none":
            raise TraceInputError(f"{files[node]}:0: empty, but {where} lists {rid} as a "
                                  f"{kinds[rid]} member (a member always logs steps)")


def load_trace_dir(directory: Path) -> tuple[list[Located], dict[str, Any]]:
    """A ``dynaspec simulate`` output directory: its merged events and its config,
    checked to belong together (``check_run_files``)."""
    config = read_config(directory)
    events = load_events(directory)
    check_run_files(directory, events, config)
    return events, config


__all__ = [
    "INT64",
    "MAX_LINE_BYTES",
    "Located",
    "TraceInputError",
    "check_payload",
    "check_run_files",
    "decode_line",
    "event_from_obj",
    "event_to_obj",
    "json_problem",
    "load_events",
    "load_trace_dir",
    "logged_op_problem",
    "member_kinds",
    "member_nodes",
    "members_of",
    "open_input",
    "read_config",
    "read_lines",
    "read_trace",
    "read_trace_file",
    "strict_problem",
    "trace_files",
]
