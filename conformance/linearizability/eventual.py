"""Eventually consistent reads: check that none returned a value from nowhere.

``consistent=False`` reads may be stale, so they are only checked for values from
nowhere: a non-absent value must be exactly (whole-item equality) an item produced
by a write to the key that did not fail (acknowledged, or of unknown outcome) and
was invoked no later than the read completed; an update of unknown outcome is
matched through the ``w`` it sets and replayed on the key's known states. Every key
starts absent, so a read of absent is always explained by the initial state.
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
from reference.storage import Applied, Key, Put, S, SetAttr, Update


@dataclass(frozen=True, slots=True)
class EventualViolation:
    key: Key
    record: HistoryRecord
    explanation: str


def _check_eventual(key: Key, reads: list[HistoryRecord], ops: list[_Op],
                    failed: list[HistoryRecord], sm: _States) -> list[EventualViolation]:
    if not reads:
        return []
    first_write: dict[int, tuple[int, str]] = {}  # item -> (earliest invoke, writer id)
    unknown: list[_Op] = []
    for o in ops:
        rec = o.rec
        if o.kind == _U:
            unknown.append(o)
            if not isinstance(o.write, Put):
                continue
            sid = sm.intern(o.write.item)
        elif rec.op == "get" or rec.status != "ok":
            continue
        elif o.kind != _X:
            sid = o.post
        elif isinstance(rec.result, Applied):
            sid = sm.intern(rec.result.new)
        else:
            continue
        if sid and (sid not in first_write or o.inv < first_write[sid][0]):
            first_write[sid] = (o.inv, rec.id)
    out: list[EventualViolation] = []
    for rec in reads:
        assert isinstance(rec.result, ReadResult)
        item = rec.result.item
        sid = sm.intern(item)
        if sid == 0:
            continue  # every key starts absent
        head = f"eventual read {rec.id} of {_show_key(key)} [{rec.invoke_us}..{rec.complete_us}us]"
        hit = first_write.get(sid)
        if hit is not None and hit[0] <= rec.complete_us:
            continue
        if _unknown_update_produces(sid, rec.complete_us, unknown, sm):
            continue
        if hit is not None:
            why = (f"{head} returned {_show(item)}, but its writer {hit[1]} was invoked only "
                   f"at {hit[0]}us")
        else:
            assert item is not None
            by_failed = [f.id for f in failed
                         if isinstance(f.write, Put) and f.write.item == item]
            tag = _tag(item)
            same_tag = [sm.items[s] for s in first_write if _tag(sm.items[s]) == tag]
            if by_failed:
                why = (f"{head} returned {_show(item)}, written only by the failed write "
                       f"{by_failed[0]}")
            elif tag is not None and same_tag:
                why = (f"{head} returned {_json(item)}, but the write tagged w={tag} "
                       f"produced {_json(same_tag[0])}")
            else:
                why = f"{head} returned {_json(item)}, which no write to the key produced"
        out.append(EventualViolation(key, rec, why))
    return out


def _unknown_update_produces(sid: int, before: int, unknown: list[_Op], sm: _States) -> bool:
    """Could some write of unknown outcome (an update) invoked by ``before`` produce it?"""
    cands = [o for o in unknown if isinstance(o.write, Update) and o.inv <= before]
    if not cands:
        return False
    tag = _tag(sm.items[sid])
    for o in cands:
        assert isinstance(o.write, Update)
        sets = [a.value.value for a in o.write.actions
                if isinstance(a, SetAttr) and a.name == "w" and isinstance(a.value, S)]
        if sets and tag not in sets:
            continue
        for s in range(len(sm.items)):
            if sm.fits(s) and sm.effect(o.write, s) == sid:
                return True
    return False
