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

from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

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
    item_to_json,
    key_from_json,
    key_to_json,
)


class CodecError(ValueError):
    """A payload that is not a well-formed message."""


# --- driver and client messages (not in the spec) ------------------------------------

RequestKind: TypeAlias = Literal["write", "strong", "eventual"]


@dataclass(frozen=True, slots=True)
class ClientRequest:
    """A client operation. ``op`` is an encoded WriteOp for writes; ``key`` for reads."""

    rid: str
    kind: RequestKind
    op: bytes = b""
    key: Key | None = None


@dataclass(frozen=True, slots=True)
class ClientReply:
    rid: str
    result: ReplyResult
    hint: str | None = None
    """With NotLeader: the replica the sender believes leads, if it knows one."""


@dataclass(frozen=True, slots=True)
class ProgressMsg:
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


@dataclass(frozen=True, slots=True)
class SnapshotReportMsg:
    """A replica tells the leader it has installed a B-tree snapshot (driver message):
    the leader may then add it as storage, or promote it."""

    src: str
    upto: int


@dataclass(frozen=True, slots=True)
class SeedMsg:
    """Leader -> a replica that lacks slots the leader has truncated: slots 1..base are
    committed, and ``config``/``named`` are the configuration and the ids named by
    then. A replica without a B-tree (a joining log replica) starts its log after
    ``base``: the paper's "copy only the recent write-ahead logs"."""

    bal: int
    src: str
    base: int
    config: tuple[tuple[str, Kind], ...]
    named: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TruncateMsg:
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
    if isinstance(x, list) and len(x) == 2 and isinstance(x[0], str) and isinstance(x[1], str):
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


def _item(x: M | None) -> dict[str, Any] | None:
    return None if x is None else item_to_json(x)


def result_to_wire(r: ReplyResult) -> list[Any]:
    match r:
        case Applied(old, new):
            return ["applied", _item(old), _item(new)]
        case ConditionalCheckFailed(current):
            return ["condfail", _item(current)]
        case Invalid(reason):
            return ["invalid", reason]
        case ReadResult(item):
            return ["read", _item(item)]
        case NotLeader():
            return ["not_leader"]
        case LeaseNotHeld():
            return ["lease_not_held"]
        case NotReady():
            return ["not_ready"]
        case NotStorage():
            return ["not_storage"]
    raise TypeError(f"not a reply result: {r!r}")


def _opt_item(x: Any) -> M | None:
    return None if x is None else item_from_json(x)


def result_from_wire(x: Any) -> ReplyResult:
    if not isinstance(x, list) or not x or not isinstance(x[0], str):
        raise CodecError(f"bad result {x!r}")
    tag, args = x[0], x[1:]
    try:
        if tag == "applied" and len(args) == 2:
            return Applied(_opt_item(args[0]), _opt_item(args[1]))
        if tag == "condfail" and len(args) == 1:
            return ConditionalCheckFailed(_opt_item(args[0]))
        if tag == "invalid" and len(args) == 1 and isinstance(args[0], str):
            return Invalid(args[0])
        if tag == "read" and len(args) == 1:
            return ReadResult(_opt_item(args[0]))
    except DecodeError as exc:
        raise CodecError(str(exc)) from exc
    simple: dict[str, ReplyResult] = {"not_leader": NotLeader(), "lease_not_held": LeaseNotHeld(),
              "not_ready": NotReady(), "not_storage": NotStorage()}
    if tag in simple and not args:
        return simple[tag]
    raise CodecError(f"bad result {x!r}")


# --- messages ------------------------------------------------------------------------


def _entries_to_wire(log: tuple[Entry, ...]) -> list[Any]:
    return [[e.bal, cmd_to_wire(e.cmd)] for e in log]


def to_wire(m: Wire) -> list[Any]:
    match m:
        case Phase1aMsg(bal, src):
            return ["1a", bal, src]
        case Phase1bMsg(bal, src, dst, log, granted, base, base_config, base_named):
            if base or base_config or base_named:
                return ["1b", bal, src, dst, _entries_to_wire(log), granted, base,
                        [list(p) for p in base_config], list(base_named)]
            return ["1b", bal, src, dst, _entries_to_wire(log), granted]
        case Phase2aMsg(bal, slot, cmd, src):
            return ["2a", bal, slot, cmd_to_wire(cmd), src]
        case Phase2bMsg(bal, slot, cmd, src):
            return ["2b", bal, slot, cmd_to_wire(cmd), src]
        case CommitMsg(bal, slot, src):
            return ["commit", bal, slot, src]
        case LeaseMsg(bal, start, src, held):
            return ["lease", bal, start, src, True] if held else ["lease", bal, start, src]
        case LeaseAckMsg(bal, start, src, dst):
            return ["leaseAck", bal, start, src, dst]
        case ProgressMsg(bal, src, dst, have, applied, urgent, base):
            if base:
                return ["progress", bal, src, dst, have, applied, urgent, base]
            return ["progress", bal, src, dst, have, applied, urgent]
        case SnapshotReportMsg(src, upto):
            return ["snap", src, upto]
        case SeedMsg(bal, src, base, config, named):
            return ["seed", bal, src, base, [list(p) for p in config], list(named)]
        case TruncateMsg(bal, src, upto):
            return ["trunc", bal, src, upto]
        case ProbeMsg(src, nonce):
            return ["probe", src, nonce]
        case ProbeAckMsg(src, dst, hears, nonce):
            return ["probeAck", src, dst, hears, nonce]
        case HandoffMsg(bal, src, dst):
            return ["handoff", bal, src, dst]
        case ClientRequest(rid, kind, op, key):
            return ["req", rid, kind, op.decode(), None if key is None else key_to_json(key)]
        case ClientReply(rid, result, hint):
            return ["reply", rid, result_to_wire(result), hint]
    raise TypeError(f"not a message: {m!r}")


def encode(m: Wire) -> bytes:
    return orjson.dumps(to_wire(m))


def _ints(*xs: Any) -> bool:
    return all(type(x) is int for x in xs)


def _strs(*xs: Any) -> bool:
    return all(type(x) is str for x in xs)


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


def from_wire(x: Any) -> Wire:
    if not isinstance(x, list) or not x:
        raise CodecError("message must be a non-empty array")
    t, a = x[0], x[1:]
    n = len(a)
    if t == "1a" and n == 2 and _ints(a[0]) and _strs(a[1]):
        return Phase1aMsg(a[0], a[1])
    if t == "1b" and n == 5 and _ints(a[0], a[4]) and _strs(a[1], a[2]):
        return Phase1bMsg(a[0], a[1], a[2], _entries_from_wire(a[3]), a[4])
    if t == "1b" and n == 8 and _ints(a[0], a[4], a[5]) and _strs(a[1], a[2]) \
            and isinstance(a[7], list) and _strs(*a[7]):
        return Phase1bMsg(a[0], a[1], a[2], _entries_from_wire(a[3]), a[4], a[5],
                          config_from_wire(a[6]), tuple(a[7]))
    if t in ("2a", "2b") and n == 4 and _ints(a[0], a[1]) and _strs(a[3]):
        cls = Phase2aMsg if t == "2a" else Phase2bMsg
        return cls(a[0], a[1], cmd_from_wire(a[2]), a[3])
    if t == "commit" and n == 3 and _ints(a[0], a[1]) and _strs(a[2]):
        return CommitMsg(a[0], a[1], a[2])
    if t == "lease" and n == 3 and _ints(a[0], a[1]) and _strs(a[2]):
        return LeaseMsg(a[0], a[1], a[2])
    if t == "lease" and n == 4 and _ints(a[0], a[1]) and _strs(a[2]) and a[3] is True:
        return LeaseMsg(a[0], a[1], a[2], True)  # held (false is the 3-field form)
    if t == "leaseAck" and n == 4 and _ints(a[0], a[1]) and _strs(a[2], a[3]):
        return LeaseAckMsg(a[0], a[1], a[2], a[3])
    if t == "progress" and n == 6 and _ints(a[0], a[3], a[4]) and _strs(a[1], a[2]) \
            and type(a[5]) is bool:
        return ProgressMsg(a[0], a[1], a[2], a[3], a[4], a[5])
    if t == "progress" and n == 7 and _ints(a[0], a[3], a[4], a[6]) and _strs(a[1], a[2]) \
            and type(a[5]) is bool:
        return ProgressMsg(a[0], a[1], a[2], a[3], a[4], a[5], a[6])
    if t == "snap" and n == 2 and _strs(a[0]) and _ints(a[1]):
        return SnapshotReportMsg(a[0], a[1])
    if t == "seed" and n == 5 and _ints(a[0], a[2]) and _strs(a[1]) \
            and isinstance(a[4], list) and _strs(*a[4]):
        return SeedMsg(a[0], a[1], a[2], config_from_wire(a[3]), tuple(a[4]))
    if t == "trunc" and n == 3 and _ints(a[0], a[2]) and _strs(a[1]):
        return TruncateMsg(a[0], a[1], a[2])
    if t == "probe" and n == 2 and _strs(a[0]) and _ints(a[1]):
        return ProbeMsg(a[0], a[1])
    if t == "probeAck" and n == 4 and _strs(a[0], a[1]) and type(a[2]) is bool \
            and _ints(a[3]):
        return ProbeAckMsg(a[0], a[1], a[2], a[3])
    if t == "handoff" and n == 3 and _ints(a[0]) and _strs(a[1], a[2]):
        return HandoffMsg(a[0], a[1], a[2])
    if t == "req" and n == 4 and _strs(a[0], a[1], a[2]) \
            and a[1] in ("write", "strong", "eventual"):
        try:
            key = None if a[3] is None else key_from_json(a[3])
        except DecodeError as exc:
            raise CodecError(str(exc)) from exc
        return ClientRequest(a[0], a[1], a[2].encode(), key)
    if t == "reply" and n == 3 and _strs(a[0]) and (a[2] is None or _strs(a[2])):
        return ClientReply(a[0], result_from_wire(a[1]), a[2])
    raise CodecError(f"bad {t!r} message")


def decode(data: bytes) -> Wire:
    try:
        x = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CodecError(f"not JSON: {exc}") from exc
    return from_wire(x)


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
