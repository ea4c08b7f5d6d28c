"""The history model: history records, one key's states, and operations on them.

Loads ``history.jsonl`` (``load_history``), interns one key's states and runs the
storage engine on them (``_States``), and classifies each record as an operation
(``_classify``): the vocabulary the search, the shrinker and the explanations share.

Sequential model
----------------
One key's state is ``M | None`` (an item, or absent; initially absent). A write's
effect is what ``reference.storage.StorageEngine.apply`` does on a store holding just
that state (the engine itself is run, so condition and update semantics are the
engine's, not a re-implementation):

* a write answered ``ok`` must, applied to the state at its linearization point,
  give exactly ``Applied(old, new)`` as recorded, so ``old`` *is* the state there;
* ``condfail`` must see ``ConditionalCheckFailed(current)``: the state is ``current``
  and the condition is false on it; nothing changes;
* ``invalid`` writes changed nothing and are ignored, as are reads that failed;
* a ``timeout`` or still pending (status ``None``) write has an unknown outcome: it
  may take effect at any point after its invocation, with no upper bound, or never;
* a strong read (``get``, ``consistent=True``, ``ok``) returns the state at its point.

Operation ``a`` precedes ``b`` in real time iff ``a.complete_us < b.invoke_us``;
operations whose times touch are concurrent.

Because every operation that is answered fixes the state at its linearization point
(``old``, ``current`` or the value read), each one is a guarded transition
``state == pre -> state := post`` that can be checked once, statically, against the
engine (``_classify``). Only writes of unknown outcome need the engine during search.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

from reference.client import HistoryRecord, OpName, Status
from reference.messages import ReadResult
from reference.storage import (
    Applied,
    ConditionalCheckFailed,
    DecodeError,
    Delete,
    Invalid,
    Key,
    KeySchema,
    M,
    Put,
    Result,
    S,
    StorageEngine,
    Update,
    WriteOp,
    decode_op,
    item_from_json,
    item_to_json,
    key_from_json,
    value_to_json,
)

Verdict = Literal["linearizable", "violation", "unknown"]
PathTaken = Literal["fast", "search"]

_INF = 1 << 62

# Operation kinds, after classification.
_R = 0  # guarded, leaves the state as it is: strong read, condfail, write with old == new
_W = 1  # guarded transition pre -> post (pre != post): an acknowledged write
_U = 2  # write of unknown outcome: may apply once at any point after invoke, or never
_X = 3  # can never be linearized (its answer contradicts the engine); ``reason`` says why


# --- loading history.jsonl -----------------------------------------------------------------


class HistoryFormatError(ValueError):
    """A malformed ``history.jsonl`` line; the message is ``path:line: reason``."""


_OPS: tuple[OpName, ...] = ("put", "update", "delete", "get")
_STATUSES: tuple[Status | None, ...] = ("ok", "condfail", "invalid", "timeout", None)
_OP_NAME = {Put: "put", Update: "update", Delete: "delete"}


def _field(obj: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in obj:
        raise ValueError(f"missing field {name!r}")
    v = obj[name]
    if not isinstance(v, kind) or (isinstance(v, bool) and kind is int):
        raise ValueError(f"field {name!r} has the wrong type: {v!r}")
    return v


def _item_field(obj: dict[str, Any], name: str, cache: dict[bytes, M]) -> M | None:
    if name not in obj:
        raise ValueError(f"missing field {name!r}")
    raw = obj[name]
    if raw is None:
        return None
    # The same item recurs (as a write's new, the next write's old, reads' values):
    # decode each text once, which also lets equal items share one object.
    text = orjson.dumps(raw)
    item = cache.get(text)
    if item is None:
        try:
            item = cache[text] = item_from_json(raw)
        except DecodeError as exc:
            raise ValueError(f"bad item in {name!r}: {exc}") from exc
    return item


def _record_from_json(obj: Any, cache: dict[bytes, M]) -> HistoryRecord:
    if not isinstance(obj, dict):
        raise ValueError("a history line must be a JSON object")
    rid = _field(obj, "id", str)
    client = _field(obj, "client", str)
    op = _field(obj, "op", str)
    if op not in _OPS:
        raise ValueError(f"unknown op {op!r}")
    try:
        key = key_from_json(_field(obj, "key", dict))
    except DecodeError as exc:
        raise ValueError(f"bad key: {exc}") from exc
    invoke = _field(obj, "invoke", int)
    complete = _field(obj, "complete", int)
    if "status" not in obj:
        raise ValueError("missing field 'status'")
    status = obj["status"]
    if status not in _STATUSES:
        raise ValueError(f"unknown status {status!r}")
    attempts = _field(obj, "attempts", int) if "attempts" in obj else 0
    replica = obj.get("replica")
    if replica is not None and not isinstance(replica, str):
        raise ValueError(f"field 'replica' has the wrong type: {replica!r}")
    if status is None:
        if complete != -1:
            raise ValueError("a pending operation (status null) must have complete -1")
    elif complete < invoke:
        raise ValueError(f"completes at {complete} before it is invoked at {invoke}")
    consistent: bool | None = None
    write: WriteOp | None = None
    if op == "get":
        consistent = _field(obj, "consistent", bool)
        if status in ("condfail", "invalid"):
            raise ValueError(f"a get cannot have status {status!r}")
    else:
        try:
            write = decode_op(_field(obj, "args", str).encode())
        except DecodeError as exc:
            raise ValueError(f"bad args: {exc}") from exc
        if _OP_NAME[type(write)] != op:
            raise ValueError(f"op is {op!r} but args hold a {_OP_NAME[type(write)]}")
    result: Any = None
    if status == "ok":
        if op == "get":
            result = ReadResult(_item_field(obj, "value", cache))
        else:
            result = Applied(_item_field(obj, "old", cache), _item_field(obj, "new", cache))
    elif status == "condfail":
        result = ConditionalCheckFailed(_item_field(obj, "current", cache))
    elif status == "invalid":
        result = Invalid(_field(obj, "reason", str))
    return HistoryRecord(rid, client, op, key, consistent, write, invoke, complete, status,
                         result, attempts, replica)


def load_history(path: str | Path) -> list[HistoryRecord]:
    """Read ``history.jsonl``; raises ``HistoryFormatError("path:line: reason")``."""
    path = Path(path)
    records: list[HistoryRecord] = []
    cache: dict[bytes, M] = {}
    with path.open("rb") as f:
        for lineno, line in enumerate(f, start=1):
            try:
                if not line.strip():
                    raise ValueError("empty line")
                try:
                    obj = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise ValueError(f"not JSON: {exc}") from exc
                records.append(_record_from_json(obj, cache))
            except (ValueError, TypeError, KeyError) as exc:
                reason = " ".join(str(exc).split()) or type(exc).__name__
                raise HistoryFormatError(f"{path}:{lineno}: {reason}") from exc
    return records


# --- one key's states and the engine ---------------------------------------------------------


class _States:
    """The states of one key, interned: 0 is absent, items get 1, 2, ... as first seen.

    ``apply`` runs the real ``StorageEngine`` on a store holding just one state.
    """

    __slots__ = ("_effects", "_engine", "_engine_state", "_fits", "_ids", "items", "key",
                 "schema")

    def __init__(self, schema: KeySchema, key: Key) -> None:
        self.schema = schema
        self.key = key
        self.items: list[M | None] = [None]
        self._ids: dict[M, int] = {}
        self._fits: dict[int, bool] = {0: True}
        self._engine = StorageEngine(schema)
        self._engine_state = 0  # the state the engine holds; -1: not known
        self._effects: dict[tuple[int, int], int] = {}

    def intern(self, item: M | None) -> int:
        if item is None:
            return 0
        sid = self._ids.get(item)
        if sid is None:
            sid = self._ids[item] = len(self.items)
            self.items.append(item)
        return sid

    def fits(self, sid: int) -> bool:
        """Can the store hold this state at this key (an item with this key)?"""
        fits = self._fits.get(sid)
        if fits is None:
            item = self.items[sid]
            try:
                fits = item is None or self.schema.key_of(item) == self.key
            except KeyError:
                fits = False
            self._fits[sid] = fits
        return fits

    def apply(self, op: WriteOp, sid: int) -> Result | None:
        """The engine's answer to ``op`` with the key in state ``sid``; None if that state
        cannot be stored at the key."""
        eng = self._engine
        if self._engine_state != sid:
            if not self.fits(sid):
                return None
            item = self.items[sid]
            setup = eng.apply(Delete(self.key) if item is None else Put(item))
            if not isinstance(setup, Applied):
                self._engine_state = -1
                return None
            self._engine_state = sid
        res = eng.apply(op)
        if isinstance(res, Applied):
            self._engine_state = 0 if res.new is None else -1
        return res

    def holds(self, sid: int) -> None:
        """The caller checked that the engine's item now equals state ``sid``."""
        self._engine_state = sid

    def effect(self, op: WriteOp, sid: int) -> int:
        """The state ``op`` leaves if applied in state ``sid`` (-1: no change). Cached."""
        k = (id(op), sid)
        out = self._effects.get(k)
        if out is None:
            res = self.apply(op, sid)
            out = self.intern(res.new) if isinstance(res, Applied) else -1
            if out > 0:
                self._engine_state = out
            if out == sid:
                out = -1
            self._effects[k] = out
        return out


@dataclass(slots=True, eq=False)
class _Op:
    rec: HistoryRecord
    kind: int
    inv: int
    comp: int
    pre: int = -1
    post: int = -1
    write: WriteOp | None = None
    reason: str = ""


def _op_key(schema: KeySchema, w: WriteOp) -> Key | None:
    if isinstance(w, Put):
        try:
            return schema.key_of(w.item)
        except (KeyError, TypeError):
            return None
    return w.key


def _classify(recs: Sequence[HistoryRecord], sm: _States
              ) -> tuple[list[_Op], list[HistoryRecord], list[HistoryRecord]]:
    """Strong operations as ``_Op``s (in invocation order), eventual reads, and the writes
    that failed (condfail/invalid, kept for explanations)."""
    ops: list[_Op] = []
    eventual: list[HistoryRecord] = []
    failed: list[HistoryRecord] = []
    for rec in sorted(recs, key=lambda r: r.invoke_us):
        st, res = rec.status, rec.result
        inv, comp = rec.invoke_us, rec.complete_us
        if rec.op == "get":
            if st != "ok":
                continue
            if not rec.consistent:
                if isinstance(res, ReadResult):
                    eventual.append(rec)
                continue
            if not isinstance(res, ReadResult) or comp < inv:
                why = ("completes before it is invoked" if comp < inv else
                       f"status ok without a read result ({res!r})")
                ops.append(_Op(rec, _X, inv, comp, reason=f"{rec.id} get "
                               f"[{inv}..{comp}us]: {why}"))
                continue
            v = sm.intern(res.item)  # an item of another key is just never produced
            ops.append(_Op(rec, _R, inv, comp, v, v))
            continue
        w = rec.write
        if st == "invalid":
            failed.append(rec)
            continue
        if st is None or st == "timeout":
            if w is not None and _op_key(sm.schema, w) == sm.key:
                ops.append(_Op(rec, _U, inv, _INF, write=w))
            continue
        if st == "condfail":
            failed.append(rec)
        elif st != "ok":
            ops.append(_Op(rec, _X, inv, comp, reason=f"{rec.id}: unknown status {st!r}"))
            continue
        ops.append(_static(rec, w, sm))
    return ops, eventual, failed


def _static(rec: HistoryRecord, w: WriteOp | None, sm: _States) -> _Op:
    """An answered write as a guarded transition, checked once against the engine."""
    inv, comp, res = rec.invoke_us, rec.complete_us, rec.result
    head = f"{rec.id} {rec.op} [{inv}..{comp}us]"
    if comp < inv:
        return _Op(rec, _X, inv, comp, reason=f"{head} completes before it is invoked")
    if w is None:
        return _Op(rec, _X, inv, comp, reason=f"{head}: answered {rec.status} but no "
                   "operation is recorded")
    if _op_key(sm.schema, w) != sm.key:
        return _Op(rec, _X, inv, comp, reason=f"{head}: the operation is for another key")
    if rec.status == "ok":
        if not isinstance(res, Applied):
            return _Op(rec, _X, inv, comp, reason=f"{head}: status ok but result {res!r}")
        pre, post = sm.intern(res.old), sm.intern(res.new)
        got = sm.apply(w, pre)
        if got is None:
            return _Op(rec, _X, inv, comp, reason=f"{head}: reported old {_show(res.old)} "
                       "is not an item of this key")
        # got.old is the installed state, equal to res.old by construction.
        if isinstance(got, Applied) and got.new == res.new:
            sm.holds(post)
        else:
            gives = _json(got.new) if isinstance(got, Applied) else _show_result(got)
            return _Op(rec, _X, inv, comp, reason=f"{head} acknowledged {_show(res.old)} -> "
                       f"{_json(res.new)}, but applied to {_show(res.old)} the write gives "
                       f"{gives}")
        return _Op(rec, _R if pre == post else _W, inv, comp, pre, post)
    if not isinstance(res, ConditionalCheckFailed):
        return _Op(rec, _X, inv, comp, reason=f"{head}: status condfail but result {res!r}")
    cur = sm.intern(res.current)
    got = sm.apply(w, cur)
    if got is None:
        return _Op(rec, _X, inv, comp, reason=f"{head}: reported current "
                   f"{_show(res.current)} is not an item of this key")
    if not isinstance(got, ConditionalCheckFailed):  # got.current is res.current
        return _Op(rec, _X, inv, comp, reason=f"{head} failed its condition on "
                   f"{_show(res.current)}, but there the write gives {_show_result(got)}")
    return _Op(rec, _R, inv, comp, cur, cur)


# --- showing states (in reasons and explanations) ------------------------------------------


def _tag(item: M | None) -> str | None:
    w = item.get("w") if item is not None else None
    return w.value if isinstance(w, S) else None


def _show(item: M | None) -> str:
    if item is None:
        return "absent"
    tag = _tag(item)
    if tag is not None:
        return f"w={tag}"
    return _json(item, 80)


def _json(item: M | None, limit: int = 200) -> str:
    """The whole item (where ``_show``'s tag alone would hide a difference)."""
    if item is None:
        return "absent"
    text = orjson.dumps(item_to_json(item), option=orjson.OPT_SORT_KEYS).decode()
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _show_result(r: Result | None) -> str:
    if isinstance(r, Applied):
        return f"{_show(r.old)} -> {_show(r.new)}"
    if isinstance(r, ConditionalCheckFailed):
        return f"a failed condition on {_show(r.current)}"
    if isinstance(r, Invalid):
        return f"invalid ({r.reason})"
    return "nothing"


def _show_key(key: Key) -> str:
    parts = [key.partition] if key.sort is None else [key.partition, key.sort]
    out = []
    for v in parts:
        out.append(v.value if isinstance(v, S) else orjson.dumps(value_to_json(v)).decode())
    return "/".join(out)
