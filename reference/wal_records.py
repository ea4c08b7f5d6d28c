"""The WAL's record codec: what a replica writes to its write-ahead log, and how
recovery folds the records back into its durable state.

Records are small JSON arrays: ``["b", ballot]``, ``["g", granted]``,
``["a", applied]`` and ``["l", slot, ballot, cmd]``; a later record of a kind
supersedes an earlier one (per slot for ``l``). The WAL itself
(reference/wal.py) frames, checksums and sequences them.
"""

from __future__ import annotations

from typing import Any

import orjson

from reference.codec import CodecError, cmd_from_wire, cmd_to_wire
from reference.messages import Cmd, Entry

DurableState = tuple[int, dict[int, Entry], int, int]
"""(ballot, log, granted, applied): the spec's durable variables of one replica."""


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


def durable_from_wal(payloads: list[bytes]) -> DurableState:
    """Fold WAL records into (ballot, log, granted, applied); later records win."""
    ballot = granted = applied = 0
    log: dict[int, Entry] = {}
    for i, p in enumerate(payloads):
        try:
            rec = orjson.loads(p)
            kind = rec[0]
            if kind == "b":
                ballot = int(rec[1])
            elif kind == "g":
                granted = int(rec[1])
            elif kind == "a":
                applied = int(rec[1])
            elif kind == "l":
                log[int(rec[1])] = Entry(int(rec[2]), cmd_from_wire(rec[3]))
            else:
                raise WalRecordError(f"unknown WAL record kind {kind!r}")
        except (orjson.JSONDecodeError, IndexError, TypeError, ValueError, CodecError) as exc:
            raise WalRecordError(f"WAL record {i + 1}: {exc}") from exc
    return ballot, log, granted, applied


__all__ = ["DurableState", "WalRecordError", "applied_record", "ballot_record",
           "durable_from_wal", "granted_record", "log_record"]
