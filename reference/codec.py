"""Wire encoding of protocol and client messages, and their JSON form in traces.

On the wire a message is an orjson array whose first element is the spec's
message type (``"1a"``, ``"2b"``, ``"lease"``...) or a client/driver tag; the
network frames it with a CRC32C (reference/network.py). ``decode`` rejects
anything malformed with ``CodecError``, so a corrupt frame that slipped past the
checksum still cannot reach a handler.

``msg_to_json``/``cmd_to_json`` give every message the spec's record field names
(``type``, ``bal``, ``from``, ``to``, ``slot``, ``cmd``...). Trace lines no longer
use them: the trace writer (reference/trace.py) builds typed events from the
action catalogue.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeAlias

import msgspec
import orjson

from reference.messages import (
    NOOP,
    Change,
    Cmd,
    Command,
    CommitMsg,
    Entry,
    HandoffMsg,
    Kind,
    LeaseAckMsg,
    LeaseMsg,
    LeaseNotHeld,
    Message,
    NotLeader,
    NotReady,
    NotStorage,
    Phase1aMsg,
    Phase1bMsg,
    Phase2aMsg,
    Phase2bMsg,
    ProbeAckMsg,
    ProbeMsg,
    ReadResult,
    ReplyResult,
)
from reference.storage import (
    Applied,
    ConditionalCheckFailed,
    DecodeError,
    Invalid,
    Key,
    M,
    item_from_json,
    item_json_bytes,
    key_from_json,
    key_to_json,
)


class CodecError(ValueError):
    """A payload that is not a well-formed message."""


# --- driver and client messages (not in the spec) ------------------------------------

RequestKind: TypeAlias = Literal["write", "strong", "eventual"]


class ClientRequest(msgspec.Struct, frozen=True):
    """A client operation. ``op`` is an encoded WriteOp for writes; ``key`` for reads."""

    rid: str
    kind: RequestKind
    op: bytes = b""
    key: Key | None = None


class ClientReply(msgspec.Struct, frozen=True):
    rid: str
    result: ReplyResult
    hint: str | None = None
    """With NotLeader: the replica the sender believes leads, if it knows one."""


class ProgressMsg(msgspec.Struct, frozen=True):
    """Follower -> leader catch-up report (not a spec message; it changes no spec state).

    ``have``: highest slot holding an entry of ballot ``bal``; ``applied``: the
    follower's applied index. The leader answers by re-sending the 2a and commit
    messages the follower lacks; re-delivering a message is a step the spec allows,
    since its ``msgs`` is never consumed.
    """

    bal: int
    src: str
    dst: str
    have: int
    applied: int
    urgent: bool = False
    """Sent at once because a 2a arrived ahead of a missing slot."""
    base: int = 0
    """The follower's checkpoint point (its log starts after it)."""


class SnapshotReportMsg(msgspec.Struct, frozen=True):
    """A replica tells the leader it has installed a B-tree snapshot (driver message):
    the leader may then add it as storage, or promote it."""

    src: str
    upto: int


class SeedMsg(msgspec.Struct, frozen=True):
    """Leader -> a replica that lacks slots the leader has truncated: slots 1..base are
    committed, and ``config``/``named`` are the configuration and the ids named by
    then. A replica without a B-tree (a joining log replica) starts its log after
    ``base``: the paper's "copy only the recent write-ahead logs"."""

    bal: int
    src: str
    base: int
    config: tuple[tuple[str, Kind], ...]
    named: tuple[str, ...]


class TruncateMsg(msgspec.Struct, frozen=True):
    """Leader -> members: every member of its view has persisted slots 1..upto, all
    committed; each may truncate its WAL up to there (once applied, with a B-tree)."""

    bal: int
    src: str
    upto: int


Wire: TypeAlias = (
    Message | ClientRequest | ClientReply | ProgressMsg
    | SnapshotReportMsg | SeedMsg | TruncateMsg
)

# --- commands ------------------------------------------------------------------------


def change_to_json(c: Change) -> dict[str, str]:
    """``{"op", "who", "kind"?}``: the wire, WAL and trace form of a configuration change."""
    out = {"op": c.op, "who": c.who}
    if c.kind is not None:
        out["kind"] = c.kind
    return out


def change_from_json(x: Any) -> Change:
    if not isinstance(x, dict) or not set(x) <= {"op", "who", "kind"} \
            or not _strs(x.get("op"), x.get("who")) \
            or x.get("kind", "") not in ("", "storage", "log"):
        raise CodecError(f"bad change {x!r}")
    try:
        return Change(x["op"], x["who"], x.get("kind"))
    except ValueError as exc:
        raise CodecError(f"bad change {x!r}: {exc}") from exc


def change_bytes(c: Change) -> bytes:
    """Canonical bytes of a change (sorted keys), e.g. for log digests."""
    return orjson.dumps(change_to_json(c), option=orjson.OPT_SORT_KEYS)


def cmd_to_wire(c: Cmd) -> list[str] | dict[str, str] | None:
    """NoOp: ``null``; a write: ``[rid, op]``; a change: ``{"op", "who", "kind"?}``."""
    if isinstance(c, Command):
        return [c.request_id, c.op.decode()]
    if isinstance(c, Change):
        return change_to_json(c)
    return None


def cmd_from_wire(x: Any) -> Cmd:
    if x is None:
        return NOOP
    if type(x) is list and len(x) == 2 and type(x[0]) is str and type(x[1]) is str:
        return Command(x[0], x[1].encode())
    if isinstance(x, dict):
        return change_from_json(x)
    raise CodecError(f"bad command {x!r}")


def cmd_to_json(c: Cmd) -> dict[str, Any] | None:
    """Trace form: the op is embedded as JSON (it is canonical JSON already)."""
    if isinstance(c, Command):
        return {"rid": c.request_id, "op": orjson.Fragment(c.op)}
    if isinstance(c, Change):
        return {"rid": c.request_id, "change": change_to_json(c)}
    return None


# --- results -------------------------------------------------------------------------


def _item(x: M | None) -> orjson.Fragment | None:
    # A stored item is sent in many replies: its JSON is computed once (item_json_bytes).
    return None if x is None else orjson.Fragment(item_json_bytes(x))


_SIMPLE_RESULTS: dict[type, str] = {NotLeader: "not_leader", LeaseNotHeld: "lease_not_held",
                                    NotReady: "not_ready", NotStorage: "not_storage"}
_SIMPLE_BY_TAG: dict[str, ReplyResult] = {
    "not_leader": NotLeader(), "lease_not_held": LeaseNotHeld(), "not_ready": NotReady(),
    "not_storage": NotStorage()}


def result_to_wire(r: ReplyResult) -> list[Any]:
    t = type(r)
    if t is Applied:
        return ["applied", _item(r.old), _item(r.new)]  # type: ignore[union-attr]
    if t is ReadResult:
        return ["read", _item(r.item)]  # type: ignore[union-attr]
    if t is ConditionalCheckFailed:
        return ["condfail", _item(r.current)]  # type: ignore[union-attr]
    if t is Invalid:
        return ["invalid", r.reason]  # type: ignore[union-attr]
    simple = _SIMPLE_RESULTS.get(t)
    if simple is not None:
        return [simple]
    raise TypeError(f"not a reply result: {r!r}")


def _opt_item(x: Any) -> M | None:
    return None if x is None else item_from_json(x)


def result_from_wire(x: Any) -> ReplyResult:
    if type(x) is not list or not x or type(x[0]) is not str:
        raise CodecError(f"bad result {x!r}")
    tag, n = x[0], len(x) - 1
    try:
        if tag == "applied" and n == 2:
            return Applied(_opt_item(x[1]), _opt_item(x[2]))
        if tag == "read" and n == 1:
            return ReadResult(_opt_item(x[1]))
        if tag == "condfail" and n == 1:
            return ConditionalCheckFailed(_opt_item(x[1]))
        if tag == "invalid" and n == 1 and type(x[1]) is str:
            return Invalid(x[1])
    except DecodeError as exc:
        raise CodecError(str(exc)) from exc
    if tag in _SIMPLE_BY_TAG and not n:
        return _SIMPLE_BY_TAG[tag]
    raise CodecError(f"bad result {x!r}")


# --- messages ------------------------------------------------------------------------
# One encoder per message class and one decoder per wire tag (dispatch, not a chain of
# pattern matches: every message of a run goes through here twice).


def _entries_to_wire(log: tuple[Entry, ...]) -> list[Any]:
    return [[e.bal, cmd_to_wire(e.cmd)] for e in log]


def _1b_to_wire(m: Phase1bMsg) -> list[Any]:
    if m.base or m.base_config or m.base_named:
        return ["1b", m.bal, m.src, m.dst, _entries_to_wire(m.log), m.granted, m.base,
                [list(p) for p in m.base_config], list(m.base_named)]
    return ["1b", m.bal, m.src, m.dst, _entries_to_wire(m.log), m.granted]


def _progress_to_wire(m: ProgressMsg) -> list[Any]:
    if m.base:
        return ["progress", m.bal, m.src, m.dst, m.have, m.applied, m.urgent, m.base]
    return ["progress", m.bal, m.src, m.dst, m.have, m.applied, m.urgent]


def _request_to_wire(m: ClientRequest) -> list[Any]:
    return ["req", m.rid, m.kind, m.op.decode(), None if m.key is None else key_to_json(m.key)]


_TO_WIRE: dict[type, Callable[[Any], list[Any]]] = {
    Phase1aMsg: lambda m: ["1a", m.bal, m.src],
    Phase1bMsg: _1b_to_wire,
    Phase2aMsg: lambda m: ["2a", m.bal, m.slot, cmd_to_wire(m.cmd), m.src],
    Phase2bMsg: lambda m: ["2b", m.bal, m.slot, cmd_to_wire(m.cmd), m.src],
    CommitMsg: lambda m: ["commit", m.bal, m.slot, m.src],
    LeaseMsg: lambda m: (["lease", m.bal, m.start, m.src, True] if m.held
                         else ["lease", m.bal, m.start, m.src]),
    LeaseAckMsg: lambda m: ["leaseAck", m.bal, m.start, m.src, m.dst],
    ProgressMsg: _progress_to_wire,
    SnapshotReportMsg: lambda m: ["snap", m.src, m.upto],
    SeedMsg: lambda m: ["seed", m.bal, m.src, m.base, [list(p) for p in m.config],
                        list(m.named)],
    TruncateMsg: lambda m: ["trunc", m.bal, m.src, m.upto],
    ProbeMsg: lambda m: ["probe", m.src, m.n],
    ProbeAckMsg: lambda m: ["probeAck", m.src, m.dst, m.hears, m.n],
    HandoffMsg: lambda m: ["handoff", m.bal, m.src, m.dst],
    ClientRequest: _request_to_wire,
    ClientReply: lambda m: ["reply", m.rid, result_to_wire(m.result), m.hint],
}


def to_wire(m: Wire) -> list[Any]:
    convert = _TO_WIRE.get(type(m))
    if convert is None:
        convert = next((f for cls, f in _TO_WIRE.items() if isinstance(m, cls)), None)
        if convert is None:
            raise TypeError(f"not a message: {m!r}")
    return convert(m)


def encode(m: Wire) -> bytes:
    return orjson.dumps(to_wire(m))


def _ints(*xs: Any) -> bool:
    for x in xs:  # noqa: SIM110 (a loop is faster than all(genexpr); runs per field)
        if type(x) is not int:
            return False
    return True


def _strs(*xs: Any) -> bool:
    for x in xs:  # noqa: SIM110
        if type(x) is not str:
            return False
    return True


def _entries_from_wire(x: Any) -> tuple[Entry, ...]:
    if not isinstance(x, list):
        raise CodecError("1b log must be a list")
    out = []
    for e in x:
        if not (isinstance(e, list) and len(e) == 2 and _ints(e[0])):
            raise CodecError(f"bad log entry {e!r}")
        out.append(Entry(e[0], cmd_from_wire(e[1])))
    return tuple(out)


def config_from_wire(x: Any) -> tuple[tuple[str, Kind], ...]:
    """A configuration as sorted ``[[id, kind], ...]`` pairs."""
    if not isinstance(x, list):
        raise CodecError("a configuration must be a list")
    out: list[tuple[str, Kind]] = []
    for p in x:
        if not (isinstance(p, list) and len(p) == 2 and _strs(*p)
                and p[1] in ("storage", "log", "none")):
            raise CodecError(f"bad configuration pair {p!r}")
        out.append((p[0], p[1]))
    return tuple(out)


# Each decoder takes the fields after the tag; None means they do not fit the tag.
_Fields = list[Any]


def _1b_from_wire(a: _Fields) -> Wire | None:
    n = len(a)
    if n == 5 and _ints(a[0], a[4]) and _strs(a[1], a[2]):
        return Phase1bMsg(a[0], a[1], a[2], _entries_from_wire(a[3]), a[4])
    if n == 8 and _ints(a[0], a[4], a[5]) and _strs(a[1], a[2]) \
            and isinstance(a[7], list) and _strs(*a[7]):
        return Phase1bMsg(a[0], a[1], a[2], _entries_from_wire(a[3]), a[4], a[5],
                          config_from_wire(a[6]), tuple(a[7]))
    return None


def _2a_from_wire(a: _Fields) -> Wire | None:
    if len(a) == 4 and type(a[0]) is int and type(a[1]) is int and type(a[3]) is str:
        return Phase2aMsg(a[0], a[1], cmd_from_wire(a[2]), a[3])
    return None


def _2b_from_wire(a: _Fields) -> Wire | None:
    if len(a) == 4 and type(a[0]) is int and type(a[1]) is int and type(a[3]) is str:
        return Phase2bMsg(a[0], a[1], cmd_from_wire(a[2]), a[3])
    return None


def _commit_from_wire(a: _Fields) -> Wire | None:
    if len(a) == 3 and type(a[0]) is int and type(a[1]) is int and type(a[2]) is str:
        return CommitMsg(a[0], a[1], a[2])
    return None


def _lease_from_wire(a: _Fields) -> Wire | None:
    n = len(a)
    if n in (3, 4) and _ints(a[0], a[1]) and _strs(a[2]):
        if n == 3:
            return LeaseMsg(a[0], a[1], a[2])
        if a[3] is True:
            return LeaseMsg(a[0], a[1], a[2], True)  # held (false is the 3-field form)
    return None


def _progress_from_wire(a: _Fields) -> Wire | None:
    n = len(a)
    if n == 6 and _ints(a[0], a[3], a[4]) and _strs(a[1], a[2]) and type(a[5]) is bool:
        return ProgressMsg(a[0], a[1], a[2], a[3], a[4], a[5])
    if n == 7 and _ints(a[0], a[3], a[4], a[6]) and _strs(a[1], a[2]) \
            and type(a[5]) is bool:
        return ProgressMsg(a[0], a[1], a[2], a[3], a[4], a[5], a[6])
    return None


def _seed_from_wire(a: _Fields) -> Wire | None:
    if len(a) == 5 and _ints(a[0], a[2]) and _strs(a[1]) \
            and isinstance(a[4], list) and _strs(*a[4]):
        return SeedMsg(a[0], a[1], a[2], config_from_wire(a[3]), tuple(a[4]))
    return None


def _request_from_wire(a: _Fields) -> Wire | None:
    if len(a) == 4 and _strs(a[0], a[1], a[2]) and a[1] in ("write", "strong", "eventual"):
        try:
            key = None if a[3] is None else key_from_json(a[3])
        except DecodeError as exc:
            raise CodecError(str(exc)) from exc
        return ClientRequest(a[0], a[1], a[2].encode(), key)
    return None


def _reply_from_wire(a: _Fields) -> Wire | None:
    if len(a) == 3 and _strs(a[0]) and (a[2] is None or _strs(a[2])):
        return ClientReply(a[0], result_from_wire(a[1]), a[2])
    return None


_FROM_WIRE: dict[str, Callable[[_Fields], Wire | None]] = {
    "1a": lambda a: Phase1aMsg(a[0], a[1])
    if len(a) == 2 and _ints(a[0]) and _strs(a[1]) else None,
    "1b": _1b_from_wire,
    "2a": _2a_from_wire,
    "2b": _2b_from_wire,
    "commit": _commit_from_wire,
    "lease": _lease_from_wire,
    "leaseAck": lambda a: LeaseAckMsg(a[0], a[1], a[2], a[3])
    if len(a) == 4 and _ints(a[0], a[1]) and _strs(a[2], a[3]) else None,
    "progress": _progress_from_wire,
    "snap": lambda a: SnapshotReportMsg(a[0], a[1])
    if len(a) == 2 and _strs(a[0]) and _ints(a[1]) else None,
    "seed": _seed_from_wire,
    "trunc": lambda a: TruncateMsg(a[0], a[1], a[2])
    if len(a) == 3 and _ints(a[0], a[2]) and _strs(a[1]) else None,
    "probe": lambda a: ProbeMsg(a[0], a[1])
    if len(a) == 2 and _strs(a[0]) and _ints(a[1]) else None,
    "probeAck": lambda a: ProbeAckMsg(a[0], a[1], a[2], a[3])
    if len(a) == 4 and _strs(a[0], a[1]) and type(a[2]) is bool and _ints(a[3]) else None,
    "handoff": lambda a: HandoffMsg(a[0], a[1], a[2])
    if len(a) == 3 and _ints(a[0]) and _strs(a[1], a[2]) else None,
    "req": _request_from_wire,
    "reply": _reply_from_wire,
}


def from_wire(x: Any) -> Wire:
    if not isinstance(x, list) or not x:
        raise CodecError("message must be a non-empty array")
    t = x[0]
    convert = _FROM_WIRE.get(t) if type(t) is str else None
    m = convert(x[1:]) if convert is not None else None
    if m is None:
        raise CodecError(f"bad {t!r} message")
    return m


_DECODED: dict[bytes, Wire] = {}
"""Recently decoded payloads: a broadcast (or a re-sent message) arrives as the same
bytes at several nodes, and messages are immutable, so one decoding serves them all."""
_DECODED_MAX = 1024


def decode(data: bytes) -> Wire:
    m = _DECODED.get(data) if type(data) is bytes else None
    if m is not None:
        return m
    try:
        x = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CodecError(f"not JSON: {exc}") from exc
    m = from_wire(x)
    if type(data) is bytes:
        if len(_DECODED) >= _DECODED_MAX:
            _DECODED.clear()
        _DECODED[data] = m
    return m


# --- trace form ----------------------------------------------------------------------


def msg_to_json(m: Message) -> dict[str, Any]:
    """The message as the spec's record (``from``/``to`` for ``src``/``dst``)."""
    match m:
        case Phase1aMsg(bal, src):
            return {"type": "1a", "bal": bal, "from": src}
        case Phase1bMsg(bal, src, dst, log, granted, base, _, _):
            return {"type": "1b", "bal": bal, "from": src, "to": dst,
                    "log": [[e.bal, cmd_to_json(e.cmd)] for e in log], "granted": granted,
                    **({"base": base} if base else {})}
        case Phase2aMsg(bal, slot, cmd, src):
            return {"type": "2a", "bal": bal, "slot": slot, "cmd": cmd_to_json(cmd), "from": src}
        case Phase2bMsg(bal, slot, cmd, src):
            return {"type": "2b", "bal": bal, "slot": slot, "cmd": cmd_to_json(cmd), "from": src}
        case CommitMsg(bal, slot, src):
            return {"type": "commit", "bal": bal, "slot": slot, "from": src}
        case LeaseMsg(bal, start, src, held):
            return {"type": "lease", "bal": bal, "start": start, "from": src, "held": held}
        case LeaseAckMsg(bal, start, src, dst):
            return {"type": "leaseAck", "bal": bal, "start": start, "from": src, "to": dst}
        case ProbeMsg(src, nonce):
            return {"type": "probe", "from": src, "n": nonce}
        case ProbeAckMsg(src, dst, hears, nonce):
            return {"type": "probeAck", "from": src, "to": dst, "hears": hears, "n": nonce}
        case HandoffMsg(bal, src, dst):
            return {"type": "handoff", "bal": bal, "from": src, "to": dst}
    raise TypeError(f"not a protocol message: {m!r}")
