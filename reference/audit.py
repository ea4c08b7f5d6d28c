"""End-of-run audit of a client history against the chosen log.

This is the simulator's own sanity check (the conformance layer's linearizability
checker is stricter). It replays the chosen commands through a fresh storage
engine, once per request id as the replicas do, and checks:

* no acknowledged write is lost: every write answered ``ok`` or ``condfail`` is
  in the chosen log, and the answer equals the outcome of replaying it;
* no strong read is stale: a strong read returns the key's state after some slot
  at or after the slot of every write to that key acknowledged before the read
  was invoked;
* eventual reads return a committed state of the key, never a value from nowhere;
* replicas agree: their applied prefixes are prefixes of one sequence.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from reference.client import HistoryRecord
from reference.messages import Cmd, Command, ReadResult
from reference.storage import (
    Applied,
    ConditionalCheckFailed,
    DecodeError,
    Invalid,
    Key,
    KeySchema,
    M,
    Put,
    Result,
    StorageEngine,
    decode_op,
)


@dataclass(slots=True)
class AuditReport:
    chosen_slots: int = 0
    acked_writes: int = 0
    strong_reads: int = 0
    eventual_reads: int = 0
    lost_writes: list[str] = field(default_factory=list)
    wrong_results: list[str] = field(default_factory=list)
    stale_reads: list[str] = field(default_factory=list)
    phantom_reads: list[str] = field(default_factory=list)
    divergence: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost_writes or self.wrong_results or self.stale_reads
                    or self.phantom_reads or self.divergence)

    def problems(self) -> list[str]:
        return [*self.lost_writes, *self.wrong_results, *self.stale_reads,
                *self.phantom_reads, *self.divergence]


def _replay(chosen: Sequence[Cmd], schema: KeySchema) -> tuple[
        dict[str, int], dict[str, Result], dict[Key, tuple[list[int], list[M | None]]]]:
    engine = StorageEngine(schema)
    slot_of: dict[str, int] = {}
    result_of: dict[str, Result] = {}
    history: dict[Key, tuple[list[int], list[M | None]]] = {}
    for s, cmd in enumerate(chosen, start=1):
        if not isinstance(cmd, Command) or cmd.request_id in slot_of:
            continue
        slot_of[cmd.request_id] = s
        try:
            op = decode_op(cmd.op)
        except DecodeError as exc:
            result_of[cmd.request_id] = Invalid(f"undecodable operation: {exc}")
            continue
        res = engine.apply(op)
        result_of[cmd.request_id] = res
        if isinstance(res, Applied):
            key = schema.key_of(op.item) if isinstance(op, Put) else op.key
            slots, states = history.setdefault(key, ([0], [None]))
            slots.append(s)
            states.append(res.new)
    return slot_of, result_of, history


def _same(a: Result, b: Result) -> bool:
    if isinstance(a, Applied) and isinstance(b, Applied):
        return a.old == b.old and a.new == b.new
    if isinstance(a, ConditionalCheckFailed) and isinstance(b, ConditionalCheckFailed):
        return a.current == b.current
    return False


def audit(history: Sequence[HistoryRecord], chosen: Sequence[Cmd], schema: KeySchema,
          applied_logs: Mapping[str, Sequence[Cmd]] | None = None) -> AuditReport:
    rep = AuditReport(chosen_slots=len(chosen))
    slot_of, result_of, states = _replay(chosen, schema)
    acked_by_key: dict[Key, list[tuple[int, int]]] = {}  # key -> [(complete_us, slot)]
    for h in history:
        if h.write is None or not h.succeeded:
            continue
        rep.acked_writes += 1
        slot = slot_of.get(h.id)
        if slot is None:
            rep.lost_writes.append(f"{h.id}: acknowledged {h.status} at {h.complete_us}us "
                                   f"but not in the {len(chosen)} chosen slots")
            continue
        assert h.result is not None
        if not _same(h.result, result_of[h.id]):  # type: ignore[arg-type]
            rep.wrong_results.append(f"{h.id}: answered {h.result} but slot {slot} "
                                     f"gives {result_of[h.id]}")
        acked_by_key.setdefault(h.key, []).append((h.complete_us, slot))
    for lst in acked_by_key.values():
        lst.sort()
    last_index: dict[Key, dict[M | None, int]] = {}  # key -> state -> last position
    for h in history:
        if h.op != "get" or h.status != "ok" or not isinstance(h.result, ReadResult):
            continue
        slots, values = states.get(h.key, ([0], [None]))
        last_at = last_index.get(h.key)
        if last_at is None:
            last_at = last_index[h.key] = {v: i for i, v in enumerate(values)}
        got = h.result.item
        if h.consistent:
            rep.strong_reads += 1
            acked = acked_by_key.get(h.key, [])
            before = acked[:bisect.bisect_left(acked, (h.invoke_us, -1))]
            need = max((s for _, s in before), default=0)
            first = bisect.bisect_right(slots, need) - 1  # state in force at slot `need`
            if last_at.get(got, -1) < first:
                rep.stale_reads.append(
                    f"{h.id}: strong read of {h.key} at {h.invoke_us}us returned {got}, "
                    f"not a state at or after slot {need}")
        else:
            rep.eventual_reads += 1
            if got not in last_at:
                rep.phantom_reads.append(
                    f"{h.id}: eventual read of {h.key} returned {got}, never a committed state")
    for name, log in sorted((applied_logs or {}).items()):
        n = min(len(log), len(chosen))
        for s in range(n):
            if log[s] != chosen[s]:
                rep.divergence.append(f"{name}: slot {s + 1} applied {log[s]}, "
                                      f"chosen {chosen[s]}")
                break
    return rep
