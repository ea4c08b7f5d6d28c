"""Explaining an eventually consistent read that no linearization can place.

An eventual read is checked with everything else on its key (SEMANTICS.md): it reads
the state at some point of the key's one linearization no later than its completion.
When the key fails only because of its eventual reads, ``check_history`` shrinks the
failure and reports it as an ``EventualViolation`` of the first eventual read in the
minimal sub-history; this module words the common case, a read that fails alone (a
value no write invoked in time could produce).
"""

from __future__ import annotations

from dataclasses import dataclass

from conformance.linearizability.model import (
    _U,
    _X,
    _json,
    _Op,
    _show,
    _show_key,
    _States,
    _tag,
)
from reference.client import HistoryRecord
from reference.messages import ReadResult
from reference.storage import Applied, Key, Put


@dataclass(frozen=True, slots=True)
class EventualViolation:
    key: Key
    record: HistoryRecord
    explanation: str


def _explain_lone_read(key: Key, rec: HistoryRecord, ops: list[_Op],
                       failed: list[HistoryRecord], sm: _States) -> str:
    """Why the eventual read ``rec`` fails even with every other operation free."""
    assert isinstance(rec.result, ReadResult)
    item = rec.result.item
    head = f"eventual read {rec.id} of {_show_key(key)} [{rec.invoke_us}..{rec.complete_us}us]"
    first_write: dict[int, tuple[int, str]] = {}  # item -> (earliest invoke, writer id)
    for o in ops:
        r = o.rec
        if o.kind == _U and isinstance(o.write, Put):
            sid = sm.intern(o.write.item)
        elif r.op != "get" and r.status == "ok" and o.kind != _X and o.post > 0:
            sid = o.post
        elif r.op != "get" and isinstance(r.result, Applied) and r.result.new is not None:
            sid = sm.intern(r.result.new)
        else:
            continue
        if sid and (sid not in first_write or o.inv < first_write[sid][0]):
            first_write[sid] = (o.inv, r.id)
    hit = first_write.get(sm.intern(item))
    if hit is not None and hit[0] > rec.complete_us:
        return (f"{head} returned {_show(item)}, but its writer {hit[1]} was invoked only "
                f"at {hit[0]}us")
    by_failed = [f.id for f in failed if isinstance(f.write, Put) and f.write.item == item]
    tag = _tag(item)
    same_tag = [sm.items[s] for s in first_write if _tag(sm.items[s]) == tag]
    if by_failed:
        return (f"{head} returned {_show(item)}, written only by the failed write "
                f"{by_failed[0]}")
    if hit is None and tag is not None and same_tag:
        return (f"{head} returned {_json(item)}, but the write tagged w={tag} "
                f"produced {_json(same_tag[0])}")
    if hit is None:
        return f"{head} returned {_json(item)}, which no write to the key produced"
    return (f"{head} returned {_show(item)}, which no order of the key's writes invoked "
            f"by {rec.complete_us}us produces")
