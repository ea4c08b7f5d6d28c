"""An independent oracle for the history checker: brute force, obviously correct, slow.

It reads conformance/linearizability/SEMANTICS.md directly, sharing nothing with the
checker but the storage engine (the sequential model) and ``UNKNOWN``:

* every answered operation is placed once, in its interval; a write of unknown
  outcome (``timeout``, pending) is placed once after its invocation, or not at all;
* an eventual read's interval is ``(-inf, complete]``; failed reads are ignored;
* ``a`` must precede ``b`` iff ``a.complete < b.invoke``;
* run in that order from an absent key, the engine must give each answer: a read the
  state, ``ok`` ``Applied`` (with the recorded ``old``/``new``), ``condfail`` a failed
  condition (on the recorded ``current``), ``invalid`` ``Invalid``.

A depth-first search over every order (no memoisation, no pruning beyond real time)
answers whether one exists. Also: a random history generator, linearizable by
construction and then perturbed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from conformance.linearizability.model import UNKNOWN
from reference.client import HistoryRecord, Status
from reference.messages import ReadResult
from reference.replica import DEFAULT_SCHEMA
from reference.storage import (
    AddNumber,
    Applied,
    AttributeExists,
    AttributeNotExists,
    Compare,
    Condition,
    ConditionalCheckFailed,
    Delete,
    Invalid,
    Key,
    M,
    N,
    Put,
    Result,
    S,
    SetAttr,
    StorageEngine,
    Update,
    WriteOp,
)

INF = float("inf")


@dataclass(frozen=True)
class _Op:
    rec: HistoryRecord
    inv: float
    comp: float
    optional: bool


def _run(engine: StorageEngine, key: Key, state: M | None, w: WriteOp) -> Result:
    engine.apply(Delete(key) if state is None else Put(state))
    return engine.apply(w)


def _fits(op: _Op, engine: StorageEngine, key: Key, state: M | None
          ) -> tuple[bool, M | None]:
    """Does ``op``'s answer fit at a point where the key is ``state``; the state after."""
    r = op.rec
    if r.op == "get":
        assert isinstance(r.result, ReadResult)
        return r.result.item == state, state
    assert r.write is not None
    got = _run(engine, key, state, r.write)
    after = got.new if isinstance(got, Applied) else state
    if op.optional:
        return True, after
    if r.status == "ok":
        want = r.result
        if not isinstance(got, Applied):
            return False, state
        if isinstance(want, Applied):
            if want.old is not UNKNOWN and want.old != got.old:
                return False, state
            if want.new is not UNKNOWN and want.new != got.new:
                return False, state
        return True, after
    if r.status == "condfail":
        want = r.result
        if not isinstance(got, ConditionalCheckFailed):
            return False, state
        if isinstance(want, ConditionalCheckFailed) and want.current is not UNKNOWN:
            return want.current == got.current, state
        return True, state
    assert r.status == "invalid"
    return isinstance(got, Invalid), state


def oracle_key(recs: list[HistoryRecord]) -> bool:
    """Is this one key's history correct under SEMANTICS.md?"""
    key = recs[0].key
    ops: list[_Op] = []
    for r in recs:
        if r.op == "get":
            if r.status == "ok":
                ops.append(_Op(r, r.invoke_us if r.consistent else -INF, r.complete_us, False))
        elif r.status in (None, "timeout"):
            ops.append(_Op(r, r.invoke_us, INF, True))
        else:
            ops.append(_Op(r, r.invoke_us, r.complete_us, False))
    engine = StorageEngine(DEFAULT_SCHEMA)

    def dfs(left: list[_Op], state: M | None) -> bool:
        if all(o.optional for o in left):
            return True  # the writes of unknown outcome left never took effect
        for b in left:
            if any(a.comp < b.inv for a in left if a is not b):
                continue  # something not yet placed must come before b
            ok, after = _fits(b, engine, key, state)
            if ok and dfs([o for o in left if o is not b], after):
                return True
        return False

    return dfs(ops, None)


def oracle(records: list[HistoryRecord]) -> dict[Key, bool]:
    by_key: dict[Key, list[HistoryRecord]] = {}
    for r in records:
        by_key.setdefault(r.key, []).append(r)
    return {k: oracle_key(rs) for k, rs in by_key.items()}


# --- a random history generator ---------------------------------------------------------


def _item(key: Key, v: int | str) -> M:
    assert isinstance(key.partition, S)
    return M(pk=key.partition, v=N(v) if isinstance(v, int) else S(v))


def _random_write(rng: random.Random, key: Key) -> WriteOp:
    """Few values (no unique versions): items repeat, conditions matter."""
    cond: Condition | None = rng.choice([
        None, None, AttributeExists("pk"), AttributeNotExists("pk"),
        Compare("v", "=", N(rng.randrange(3))), Compare("v", "<", N(rng.randrange(1, 3)))])
    roll = rng.random()
    if roll < 0.45:
        v: int | str = rng.randrange(3) if rng.random() < 0.9 else "s"
        return Put(_item(key, v), cond)
    if roll < 0.8:
        action = (AddNumber("v", N(1)) if rng.random() < 0.6
                  else SetAttr("v", N(rng.randrange(3))))
        return Update(key, (action,), cond)
    return Delete(key, cond)


def _blank(rec: HistoryRecord, rng: random.Random, p: float) -> HistoryRecord:
    """Drop what a real client may not record (``old``, ``new``, ``current``)."""
    res = rec.result
    if isinstance(res, Applied):
        old = UNKNOWN if rng.random() < p else res.old
        new = UNKNOWN if rng.random() < p else res.new
        rec.result = Applied(old, new)
    elif isinstance(res, ConditionalCheckFailed) and rng.random() < p:
        rec.result = ConditionalCheckFailed(UNKNOWN)
    return rec


def random_key_history(rng: random.Random, key: Key, n: int, *, prefix: str = "",
                       blank: float = 0.3, spread: int = 250) -> list[HistoryRecord]:
    """``n`` operations of one key, linearizable by construction: a sequential run at
    points 100, 200, ..., each operation's interval drawn around its point (eventual
    reads read a state no later than their completion)."""
    engine = StorageEngine(DEFAULT_SCHEMA)
    recs: list[HistoryRecord] = []
    states: list[tuple[int, M | None]] = [(-1, None)]  # (point it began, state)
    for i in range(n):
        point = 100 * (i + 1)
        inv = point - rng.randrange(0, spread)
        comp = point + rng.randrange(0, spread)
        rid = f"{prefix}c{rng.randrange(4)}-{i + 1}"
        client = rid.split("-")[0]
        roll = rng.random()
        if roll < 0.2:
            recs.append(HistoryRecord(rid, client, "get", key, True, None, inv, comp, "ok",
                                      ReadResult(engine.get(key)), 1, "r1"))
            continue
        if roll < 0.35:
            # An eventual read: a state that began by its completion.
            seen = [s for t, s in states if t <= comp]
            recs.append(HistoryRecord(rid, client, "get", key, False, None, inv, comp, "ok",
                                      ReadResult(rng.choice(seen)), 1, "r2"))
            continue
        w = _random_write(rng, key)
        op = "put" if isinstance(w, Put) else "update" if isinstance(w, Update) else "delete"
        if rng.random() < 0.15:
            if rng.random() < 0.5:
                engine.apply(w)  # it took effect, at its point
                states.append((point, engine.get(key)))
            pending = rng.random() < 0.3
            recs.append(HistoryRecord(rid, client, op, key, None, w, inv,
                                      -1 if pending else comp + 3_000_000,
                                      None if pending else "timeout", None, 1, None))
            continue
        res = engine.apply(w)
        status: Status = ("ok" if isinstance(res, Applied) else "condfail"
                          if isinstance(res, ConditionalCheckFailed) else "invalid")
        if isinstance(res, Applied):
            states.append((point, res.new))
        recs.append(_blank(HistoryRecord(rid, client, op, key, None, w, inv, comp, status,
                                         res, 1, "r1"), rng, blank))
    return recs


def perturb(rng: random.Random, recs: list[HistoryRecord]) -> list[HistoryRecord]:
    """One random change: a value read, an interval moved, an answer changed."""
    out = [HistoryRecord(r.id, r.client, r.op, r.key, r.consistent, r.write, r.invoke_us,
                         r.complete_us, r.status, r.result, r.attempts, r.served_by)
           for r in recs]
    if not out:
        return out
    r = rng.choice(out)
    key = r.key
    values: list[M | None] = [None, *(_item(key, v) for v in (0, 1, 2, 3, "s"))]
    roll = rng.random()
    if roll < 0.35 and r.op == "get" and r.status == "ok":
        r.result = ReadResult(rng.choice(values))
    elif roll < 0.6:
        shift = rng.randrange(-400, 400)
        r.invoke_us += shift
        if r.complete_us != -1:
            r.complete_us = max(r.invoke_us, r.complete_us + shift + rng.randrange(-100, 100))
    elif r.op != "get" and r.status == "ok" and isinstance(r.result, Applied):
        if rng.random() < 0.5:
            r.result = Applied(rng.choice(values), r.result.new)
        else:
            r.status, r.result = "condfail", ConditionalCheckFailed(
                rng.choice([UNKNOWN, *values]))
    elif r.op != "get" and r.status == "condfail":
        r.status, r.result = rng.choice([
            ("ok", Applied(UNKNOWN, UNKNOWN)), ("invalid", Invalid("?")),
            ("condfail", ConditionalCheckFailed(rng.choice(values)))])
    elif r.op != "get" and r.status in (None, "timeout"):
        r.status, r.complete_us = "ok", r.invoke_us + rng.randrange(0, 300)
        r.result = Applied(UNKNOWN, UNKNOWN)
    elif r.op == "get" and r.status == "ok":
        r.consistent = not r.consistent
    return out
