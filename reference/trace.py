"""Per-node trace files: one JSON line per event (format: traces/FORMAT.md).

A line is ``{"v", "node", "replica", "seq", "clock", "real", "kind", "action", "args"}``:
``seq`` counts the node's events from 1, ``clock`` is the node's local clock and
``real`` the simulator's real time (both microseconds; ``real`` is what a
production log would not have). ``kind`` is ``"spec"`` for a step of an action of
specs/Replication.tla, named as there with the spec's parameter names in
``args``, and ``"env"`` for what the environment did to the node (restart, WAL
recovery, quarantine).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import IO, Any

import google_crc32c
import orjson

from reference.codec import cmd_to_json, msg_to_json
from reference.messages import Command, NoOp
from reference.storage import Key, key_to_json

FORMAT_VERSION = 1



def _arg_to_json(x: Any) -> Any:
    if isinstance(x, int | str) or x is None:
        return x
    if isinstance(x, frozenset | set):
        return sorted(x)
    if isinstance(x, Command | NoOp):
        return cmd_to_json(x)
    if isinstance(x, Key):
        return key_to_json(x)
    return msg_to_json(x)


def args_to_json(args: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _arg_to_json(v) for k, v in args.items()}


class TraceWriter:
    """Numbers and writes one node's events; ``sink`` None keeps only the count."""

    __slots__ = ("_dumps_opt", "listener", "node", "replica", "seq", "sink")

    def __init__(self, node: str, replica: str, sink: IO[bytes] | None,
                 listener: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.node = node
        self.replica = replica
        self.sink = sink
        self.listener = listener
        """Called with every line as a dict (e.g. a live invariant monitor)."""
        self.seq = 0
        self._dumps_opt = orjson.OPT_APPEND_NEWLINE

    @property
    def wanted(self) -> bool:
        """Whether lines are looked at, so worth building."""
        return self.sink is not None or self.listener is not None

    def emit(self, clock: int, real: int, kind: str, action: str, args: dict[str, Any]) -> None:
        self.seq += 1
        if self.sink is None and self.listener is None:
            return
        line = {"v": FORMAT_VERSION, "node": self.node, "replica": self.replica, "seq": self.seq,
                "clock": clock, "real": real, "kind": kind, "action": action, "args": args}
        if self.sink is not None:
            self.sink.write(orjson.dumps(line, option=self._dumps_opt))
        if self.listener is not None:
            self.listener(line)


def log_digest(entries: Iterable[tuple[int, int, str, bytes]]) -> str:
    """CRC32C (hex) of a log as (slot, ballot, request id, op bytes) in slot order.

    A restarted replica reports the digest of the log it recovered; a checker that
    followed its steps computes the same from what the steps wrote (``""`` and ``b""``
    for NoOp), so silently corrupted entries show up at the restart.
    """
    crc = 0
    for s, b, rid, op in entries:
        crc = google_crc32c.extend(crc, f"{s}:{b}:{rid}:".encode() + op + b"\n")
    return f"{crc:08x}"
