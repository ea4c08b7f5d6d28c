"""The WAL's record codec: what a replica writes to its write-ahead log, and how
recovery folds the records back into its durable state.

Records are small JSON arrays: ``["b", ballot]``, ``["g", granted]``,
``["a", applied]`` and ``["l", slot, ballot, cmd]``; a later record of a kind
supersedes an earlier one (per slot for ``l``). ``cmd`` is the wire form of
reference/codec.py: ``null`` (NoOp), ``[rid, op]`` (a write) or ``{"op", "who",
"kind"?}`` (a configuration change). A WAL that was truncated after a B-tree
checkpoint starts with ``["c", base, [[id, kind], ...], [id, ...]]``: slots
1..base are committed and gone from the WAL, the pairs are the configuration at
slot ``base`` and the ids are those a configuration command named by then; log
records at or below ``base`` are ignored. The WAL itself (reference/wal.py)
frames, checksums and sequences them.
"""

from __future__ import annotations

from typing import Any

import orjson

from reference.codec import CodecError, cmd_from_wire, cmd_to_wire, config_from_wire
from reference.messages import Cmd, Entry, Kind

DurableState = tuple[int, dict[int, Entry], int, int]
"""(ballot, log, granted, applied): the spec's durable variables of one replica."""

Checkpoint = tuple[int, tuple[tuple[str, Kind], ...], tuple[str, ...]]
"""(base, configuration at base, ids named by then): where a truncated WAL starts."""


class WalRecordError(ValueError):
    """A WAL record that verified but does not decode (a bug, or a forged record)."""


def _record(kind: str, *fields: Any) -> bytes:
    return orjson.dumps([kind, *fields])


def ballot_record(ballot: int) -> bytes:
    return _record("b", ballot)


def granted_record(granted: int) -> bytes:
    return _record("g", granted)


def applied_record(applied: int) -> bytes:
    return _record("a", applied)


def log_record(slot: int, bal: int, cmd: Cmd) -> bytes:
    return _record("l", slot, bal, cmd_to_wire(cmd))


def checkpoint_record(base: int, config: tuple[tuple[str, Kind], ...],
                      named: tuple[str, ...] = ()) -> bytes:
    return _record("c", base, [list(p) for p in config], list(named))


def durable_from_wal(payloads: list[bytes]) -> DurableState:
    """Fold WAL records into (ballot, log, granted, applied); later records win."""
    return durable_and_checkpoint(payloads)[0]


def durable_and_checkpoint(payloads: list[bytes]) -> tuple[DurableState, Checkpoint]:
    """As ``durable_from_wal``, and the checkpoint the WAL starts from ((0, ()) if none)."""
    ballot = granted = applied = 0
    log: dict[int, Entry] = {}
    base = 0
    config: tuple[tuple[str, Kind], ...] = ()
    named: tuple[str, ...] = ()
    for i, p in enumerate(payloads):
        try:
            rec = orjson.loads(p)
            kind = rec[0]
            if kind == "c":
                base, config = int(rec[1]), config_from_wire(rec[2])
                named = tuple(str(x) for x in rec[3])
                log = {s: e for s, e in log.items() if s > base}
            elif kind == "b":
                ballot = int(rec[1])
            elif kind == "g":
                granted = int(rec[1])
            elif kind == "a":
                applied = int(rec[1])
            elif kind == "l":
                if int(rec[1]) > base:
                    log[int(rec[1])] = Entry(int(rec[2]), cmd_from_wire(rec[3]))
            else:
                raise WalRecordError(f"unknown WAL record kind {kind!r}")
        except (orjson.JSONDecodeError, IndexError, TypeError, ValueError, CodecError) as exc:
            raise WalRecordError(f"WAL record {i + 1}: {exc}") from exc
    return (ballot, log, granted, applied), (base, config, named)


__all__ = ["Checkpoint", "DurableState", "WalRecordError", "applied_record", "ballot_record",
           "checkpoint_record", "durable_and_checkpoint", "durable_from_wal",
           "granted_record", "log_record"]
