"""Per-node trace files: one JSON line per event (format: traces/FORMAT.md).

The writer turns a step the replica recorded (the action's name and its
arguments as the replica's own values) into the typed event of
reference/trace_events.py, converting each argument by the type the catalogue
declares for it, and writes it with msgspec, so the line's fields are exactly
the struct's, in its order. A listener (the live invariant monitor) gets the
same typed event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from operator import attrgetter
from typing import IO, Any

import google_crc32c
import msgspec
import orjson

from reference.actions import ACTIONS, MESSAGES
from reference.codec import change_bytes
from reference.messages import Change, Command
from reference.messages import Cmd as LogCmd
from reference.storage import key_to_json
from reference.trace_events import (
    ARGS_TYPES,
    EVENT_TYPES,
    FORMAT_VERSION,
    MESSAGE_TYPES,
    PROD_EVENT_TYPES,
    PRODUCTION_VERSION,
    Cmd,
    PostState,
    action_of,
)
from reference.trace_events import (
    Change as ChangeArg,
)

Listener = Callable[[Any], None]


def _change(c: Change) -> ChangeArg:
    return ChangeArg(c.op, c.who, c.kind)


_CMDS: dict[Command, Cmd] = {}
"""Recently traced commands: a write's command is traced some seven times (ClientWrite,
Phase2a, the Phase2b votes, each Apply), and both sides are immutable."""
_CMDS_MAX = 4096


def _cmd(c: Any) -> Cmd | None:
    if type(c) is Command:
        typed = _CMDS.get(c)
        if typed is None:
            if len(_CMDS) >= _CMDS_MAX:
                _CMDS.clear()
            typed = _CMDS[c] = Cmd(c.request_id, msgspec.Raw(c.op))
        return typed
    if isinstance(c, Command):
        return Cmd(c.request_id, msgspec.Raw(c.op))
    if isinstance(c, Change):
        return Cmd(c.request_id, change=_change(c))
    return None


def _key(k: Any) -> msgspec.Raw:
    return msgspec.Raw(orjson.dumps(key_to_json(k), option=orjson.OPT_SORT_KEYS))


def _same(x: Any) -> Any:
    return x


def _message(mtype: str) -> Callable[[Any], Any]:
    struct = MESSAGE_TYPES[mtype]
    # The domain message and the struct both call the sender ``src`` (``from`` in JSON),
    # and both list the fields in the catalogue's order, so they pass positionally.
    plan = tuple(("src" if name == "from" else name, _converter(ptype))
                 for name, ptype in MESSAGES[mtype])
    if len(plan) > 1 and all(conv is _same for _, conv in plan):
        fields = attrgetter(*(f for f, _ in plan))
        return lambda m: struct(*fields(m))

    def convert(m: Any) -> Any:
        return struct(*[conv(getattr(m, f)) for f, conv in plan])
    return convert


_CONVERT: dict[str, Callable[[Any], Any]] = {
    "quorum": lambda q: tuple(sorted(q)),
    "cmd": _cmd,
    "write": _cmd,
    "change": _change,
    "key": _key,
}


def _converter(ptype: str) -> Callable[[Any], Any]:
    if ptype.startswith("msg:"):
        return _message(ptype[4:])
    return _CONVERT.get(ptype, _same)


# Per action: its args struct and one (name, converter) per parameter, from the catalogue.
_ARG_PLAN: dict[str, tuple[Any, tuple[tuple[str, Callable[[Any], Any]], ...]]] = {
    name: (ARGS_TYPES[name], tuple((p.name, _converter(p.type)) for p in ACTIONS[name].params))
    for name in ARGS_TYPES
}


def make_args(action: str, args: Mapping[str, Any]) -> Any:
    """The typed ``args`` of ``action`` from the replica's own values."""
    struct, plan = _ARG_PLAN[action]
    return struct(*[conv(args[name]) for name, conv in plan])


# Per action: what ``emit`` needs, looked up once per line; None for arguments that go
# into the struct as they are.
_Plan = tuple[tuple[str, Callable[[Any], Any] | None], ...]
_EMIT_PLAN: dict[str, tuple[Any, str, bool, Any, _Plan]] = {
    name: (EVENT_TYPES[name], ACTIONS[name].kind, ACTIONS[name].post, struct,
           tuple((p, None if conv is _same else conv) for p, conv in plan))
    for name, (struct, plan) in _ARG_PLAN.items()
}


class TraceWriter:
    """Numbers and writes one node's events; ``sink`` None keeps only the count."""

    __slots__ = ("_encoder", "listener", "node", "replica", "seq", "sink")

    def __init__(self, node: str, replica: str, sink: IO[bytes] | None,
                 listener: Listener | None = None) -> None:
        self.node = node
        self.replica = replica
        self.sink = sink
        self.listener = listener
        """Called with every event as a typed struct (e.g. a live invariant monitor)."""
        self.seq = 0
        self._encoder = msgspec.json.Encoder()

    @property
    def wanted(self) -> bool:
        """Whether lines are looked at, so worth building."""
        return self.sink is not None or self.listener is not None

    def emit(self, clock: int, real: int | None, action: str, args: Mapping[str, Any],
             post: PostState | None = None) -> None:
        self.seq = seq = self.seq + 1
        sink, listener = self.sink, self.listener
        if sink is None and listener is None:
            return
        event_type, kind, has_post, struct, plan = _EMIT_PLAN[action]
        typed = struct(*[args[name] if conv is None else conv(args[name])
                         for name, conv in plan])
        if has_post:
            event = event_type(v=FORMAT_VERSION, node=self.node, replica=self.replica, seq=seq,
                               clock=clock, real=real, kind=kind, args=typed, post=post)
        else:
            event = event_type(v=FORMAT_VERSION, node=self.node, replica=self.replica, seq=seq,
                               clock=clock, real=real, kind=kind, args=typed)
        if sink is not None:
            sink.write(self._encoder.encode(event) + b"\n")
        if listener is not None:
            listener(event)


def to_production(event: Any, *, group: str, node: str, seq: int, err: int) -> Any:
    """The production-profile (format 4) event of a format-3 ``event``: the same action,
    replica, clock, args and post, renumbered in its ``node``'s sequence, tagged with its
    replication ``group`` and the clock's error bound ``err``, and without ``real``
    (traces/PRODUCTION.md). Generic over the catalogue: the struct's fields decide."""
    action = action_of(event)
    fields: dict[str, Any] = {"v": PRODUCTION_VERSION, "group": group, "node": node,
                              "replica": event.replica, "seq": seq, "clock": event.clock,
                              "err": err, "kind": event.kind, "args": event.args}
    if ACTIONS[action].post:
        fields["post"] = event.post
    return PROD_EVENT_TYPES[action](**fields)


def digest_fields(c: LogCmd) -> tuple[str, bytes]:
    """A command's (request id, op bytes) as ``log_digest`` takes them: ``("", b"")`` for
    NoOp; for a configuration change its rid and its canonical JSON ``{"kind"?, "op",
    "who"}`` (sorted keys)."""
    if isinstance(c, Command):
        return c.request_id, c.op
    if isinstance(c, Change):
        return c.request_id, change_bytes(c)
    return "", b""


def log_digest(entries: Iterable[tuple[int, int, str, bytes]]) -> str:
    """CRC32C (hex) of a log as (slot, ballot, request id, op bytes) in slot order.

    A restarted replica reports the digest of the log it recovered; a checker that
    followed its steps computes the same from what the steps wrote (``""`` and ``b""``
    for NoOp; ``digest_fields`` for a change), so silently corrupted entries show up
    at the restart.
    """
    crc = 0
    for s, b, rid, op in entries:
        crc = google_crc32c.extend(crc, f"{s}:{b}:{rid}:".encode() + op + b"\n")
    return f"{crc:08x}"


__all__ = ["FORMAT_VERSION", "Listener", "TraceWriter", "digest_fields", "log_digest",
           "make_args", "to_production"]
