"""The history model: history records, one key's states, and operations on them.

Loads ``history.jsonl`` (``load_history``), interns one key's states and runs the
storage engine on them (``_States``), and classifies each record as an operation
(``_classify``): the vocabulary the search, the shrinker and the explanations share.

The exact semantics are in SEMANTICS.md (beside this module); in short:

Sequential model
----------------
One key's state is ``M | None`` (an item, or absent; initially absent). A write's
effect is what ``reference.storage.StorageEngine.apply`` does on a store holding just
that state (the engine itself is run, so condition and update semantics are the
engine's, not a re-implementation):

* a write answered ``ok`` must, applied to the state at its linearization point,
  give ``Applied(old, new)``, where a recorded ``old``/``new`` must match and a
  missing one (``UNKNOWN``) is whatever the engine gives there;
* ``condfail`` must see ``ConditionalCheckFailed``: the condition is false on the
  state at its point (which is ``current`` if recorded); nothing changes;
* ``invalid`` must see the engine answer ``Invalid`` at its point; nothing changes;
* a ``timeout`` or still pending (status ``None``) write has an unknown outcome: it
  may take effect at any point after its invocation, with no upper bound, or never;
* a strong read (``get``, ``consistent=True``, ``ok``) returns the state at its point;
* an eventual read (``consistent=False``, ``ok``) returns the state at a point of the
  same linearization no later than its completion: a read over ``(-inf, complete]``;
* reads that failed (``timeout``, pending) are ignored.

Operation ``a`` precedes ``b`` in real time iff ``a.complete_us < b.invoke_us``;
operations whose times touch are concurrent.

An answered operation that records the state at its linearization point (``old``,
``current`` or the value read) is a guarded transition ``state == pre -> state :=
post``, checked once, statically, against the engine (``_classify``). The others
(``ok`` without ``old``, ``condfail`` without ``current``, ``invalid``; writes of
unknown outcome) run the engine during the search.
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
_G = 4  # answered, state not recorded: the engine's outcome at its point must be ``want``
_NEG = -(1 << 62)
"""The invocation time of an eventual read: it may see any state up to its completion."""

# What a ``_G`` operation's answer claims the engine gave.
APPLIED, CONDFAIL, INVALID = 0, 1, 2


class _Unknown(M):
    """The type of ``UNKNOWN``: compared by identity only."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: M = _Unknown()
"""An ``old``, ``new`` or ``current`` the history does not record (a real client gets
them only when it asks): ``Applied(UNKNOWN, new)``, ``ConditionalCheckFailed(UNKNOWN)``.
Never a state: the search constrains it by the order it finds."""


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


def _item_field(obj: dict[str, Any], name: str, cache: dict[bytes, M],
                optional: bool = False) -> M | None:
    if name not in obj:
        if optional:
            return UNKNOWN
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
            result = Applied(_item_field(obj, "old", cache, True),
                             _item_field(obj, "new", cache, True))
    elif status == "condfail":
        result = ConditionalCheckFailed(_item_field(obj, "current", cache, True))
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


_ANSWERS_PROBE = 100
"""Distinct (write, state) pairs after which ``_States.answer`` keeps its cache only if
at least a quarter of the lookups so far hit."""


class _States:
    """The states of one key, interned: 0 is absent, items get 1, 2, ... as first seen.

    ``apply`` runs the real ``StorageEngine`` on a store holding just one state.
    """

    __slots__ = ("_answers", "_engine", "_engine_state", "_fits", "_hits", "_ids", "_outcomes",
                 "_valid_key", "items", "key", "schema")

    def __init__(self, schema: KeySchema, key: Key) -> None:
        self.schema = schema
        self.key = key
        self.items: list[M | None] = [None]
        self._ids: dict[M, int] = {}
        self._fits: dict[int, bool] = {0: True}
        self._engine = StorageEngine(schema)
        self._engine_state = 0  # the state the engine holds; -1: not known
        self._outcomes: dict[tuple[int, int], tuple[int, int]] = {}
        self._answers: dict[tuple[WriteOp, int], object] | None = {}
        self._hits = 0
        # The engine's own key for this key, if the key is valid in the schema (else
        # states are installed through the engine, which then answers Invalid).
        self._valid_key = schema.key_error(key) is None

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
                fits = item is None or (isinstance(item, M)
                                        and self.schema.key_of(item) == self.key)
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
            if self._valid_key:
                # What the engine's own Put(item) / Delete(key) would store, without
                # re-running the checks fits() made once for this state: the setup was
                # half of all engine time on issue 13's histories.
                eng.install(self.key, item)
            else:
                setup = eng.apply(Delete(self.key) if item is None else Put(item))
                if not isinstance(setup, Applied):
                    self._engine_state = -1
                    return None
            self._engine_state = sid
        res = eng.apply(op)
        if isinstance(res, Applied):
            self._engine_state = 0 if res.new is None else -1
        return res

    def answer(self, op: WriteOp, sid: int) -> Result | None:
        """``apply``, cached by the operation's value: without unique versions the same
        write recurs on the same state (over half the answered writes of issue 13's
        history). Hashing a write costs too: the cache turns itself off for a key
        where it rarely hits (unique versions)."""
        cache = self._answers
        if cache is None:
            return self.apply(op, sid)
        k = (op, sid)
        try:
            hit = cache.get(k, self)
        except TypeError:  # an unhashable operation
            return self.apply(op, sid)
        if hit is self:
            hit = cache[k] = self.apply(op, sid)
            if len(cache) == _ANSWERS_PROBE and self._hits * 4 < _ANSWERS_PROBE:
                self._answers = None
        else:
            self._hits += 1
        return hit  # type: ignore[return-value]

    def outcome(self, op: WriteOp, sid: int) -> tuple[int, int]:
        """``(what, state)``: the engine's answer to ``op`` in state ``sid`` (``APPLIED``,
        ``CONDFAIL`` or ``INVALID``; -1 if that state cannot be stored at the key) and
        the state it leaves. Cached."""
        k = (id(op), sid)
        out = self._outcomes.get(k)
        if out is None:
            res = self.apply(op, sid)
            if isinstance(res, Applied):
                t = self.intern(res.new)
                self._engine_state = t
                out = (APPLIED, t)
            elif isinstance(res, ConditionalCheckFailed):
                out = (CONDFAIL, sid)
            elif isinstance(res, Invalid):
                out = (INVALID, sid)
            else:
                out = (-1, sid)
            self._outcomes[k] = out  # by id: the operations outlive this object
        return out

    def effect(self, op: WriteOp, sid: int) -> int:
        """The state ``op`` leaves if applied in state ``sid`` (-1: no change)."""
        what, t = self.outcome(op, sid)
        return t if what == APPLIED and t != sid else -1

    def guard(self, o: _Op, sid: int) -> int:
        """The state a ``_G`` operation leaves when linearized in state ``sid``; -1 if
        its answer does not fit there."""
        assert o.write is not None
        what, t = self.outcome(o.write, sid)
        if what != o.want or (o.post >= 0 and t != o.post):
            return -1
        return t


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
    want: int = -1
    """``_G``: the engine's answer its status claims (``APPLIED``, ``CONDFAIL``, ...)."""
    eventual: bool = False
    """An eventual read: a ``_R`` with ``inv`` at ``_NEG`` (it may see any earlier state)."""

    @property
    def preserves(self) -> bool:
        """Leaves the state as it is wherever it fits (a read, a failed write)."""
        return self.kind == _R or (self.kind == _G and self.want != APPLIED)


def _op_key(schema: KeySchema, w: WriteOp) -> Key | None:
    if isinstance(w, Put):
        try:
            return schema.key_of(w.item)
        except (KeyError, TypeError):
            return None
    return w.key


def _classify(recs: Sequence[HistoryRecord], sm: _States
              ) -> tuple[list[_Op], list[HistoryRecord]]:
    """Every operation the semantics constrain, as ``_Op``s in invocation order (eventual
    reads included, flagged ``eventual``), and the writes that failed (condfail,
    invalid; kept for explanations)."""
    ops: list[_Op] = []
    failed: list[HistoryRecord] = []
    for rec in sorted(recs, key=lambda r: r.invoke_us):
        st, res = rec.status, rec.result
        inv, comp = rec.invoke_us, rec.complete_us
        if rec.op == "get":
            if st != "ok":
                continue  # a read that failed observed nothing
            if not isinstance(res, ReadResult) or comp < inv or res.item is UNKNOWN:
                why = ("completes before it is invoked" if comp < inv else
                       f"status ok without a read result ({res!r})")
                ops.append(_Op(rec, _X, inv, comp, reason=f"{rec.id} get "
                               f"[{inv}..{comp}us]: {why}"))
                continue
            v = sm.intern(res.item)  # an item of another key is just never produced
            if rec.consistent:
                ops.append(_Op(rec, _R, inv, comp, v, v))
            else:
                ops.append(_Op(rec, _R, _NEG, comp, v, v, eventual=True))
            continue
        w = rec.write
        if st is None or st == "timeout":
            if w is not None and _op_key(sm.schema, w) == sm.key:
                ops.append(_Op(rec, _U, inv, _INF, write=w))
            continue
        if st in ("condfail", "invalid"):
            failed.append(rec)
        if st not in ("ok", "condfail", "invalid"):
            ops.append(_Op(rec, _X, inv, comp, reason=f"{rec.id}: unknown status {st!r}"))
            continue
        op = _static(rec, w, sm)
        if op is not None:
            ops.append(op)
    return ops, failed


def _static(rec: HistoryRecord, w: WriteOp | None, sm: _States) -> _Op | None:
    """An answered write: a guarded transition checked once against the engine where its
    answer records the state, else a ``_G`` the search runs the engine for. None: it
    constrains nothing (invalid in every state)."""
    inv, comp, res = rec.invoke_us, rec.complete_us, rec.result
    head = f"{rec.id} {rec.op} [{inv}..{comp}us]"
    if comp < inv:
        return _Op(rec, _X, inv, comp, reason=f"{head} completes before it is invoked")
    if w is None:
        return _Op(rec, _X, inv, comp, reason=f"{head}: answered {rec.status} but no "
                   "operation is recorded")
    wkey = _op_key(sm.schema, w)
    if rec.status == "invalid":
        if not isinstance(res, Invalid | None):
            return _Op(rec, _X, inv, comp, reason=f"{head}: status invalid but result {res!r}")
        if not isinstance(w, Update):
            # A put or delete is invalid or not whatever the state (its item or key alone
            # decide); only an update's actions can fail on what they find.
            if wkey is not None and wkey != sm.key:
                return _Op(rec, _X, inv, comp, reason=f"{head}: the operation is for "
                           "another key")
            if isinstance(sm.apply(w, 0), Invalid):
                return None
            return _Op(rec, _X, inv, comp, reason=f"{head} was answered invalid, but the "
                       "write is valid in every state")
    if wkey != sm.key:
        return _Op(rec, _X, inv, comp, reason=f"{head}: the operation is for another key")
    if rec.status == "invalid":
        return _Op(rec, _G, inv, comp, write=w, want=INVALID)
    if rec.status == "ok":
        if res is None:
            return _Op(rec, _G, inv, comp, write=w, want=APPLIED)
        if not isinstance(res, Applied):
            return _Op(rec, _X, inv, comp, reason=f"{head}: status ok but result {res!r}")
        if res.old is UNKNOWN:
            post = -1
            if res.new is not UNKNOWN and not sm.fits(post := sm.intern(res.new)):
                return _Op(rec, _X, inv, comp, reason=f"{head}: reported new "
                           f"{_show(res.new)} is not an item of this key")
            return _Op(rec, _G, inv, comp, write=w, want=APPLIED, post=post)
        pre = sm.intern(res.old)
        got = sm.answer(w, pre)
        if got is None:
            return _Op(rec, _X, inv, comp, reason=f"{head}: reported old {_show(res.old)} "
                       "is not an item of this key")
        # got.old is the installed state, equal to res.old by construction.
        if isinstance(got, Applied) and (res.new is UNKNOWN or got.new == res.new):
            post = sm.intern(got.new)  # (the engine may not hold it: answers are cached)
        else:
            gives = _json(got.new) if isinstance(got, Applied) else _show_result(got)
            return _Op(rec, _X, inv, comp, reason=f"{head} acknowledged {_show(res.old)} -> "
                       f"{_show_new(res.new)}, but applied to {_show(res.old)} the write "
                       f"gives {gives}")
        return _Op(rec, _R if pre == post else _W, inv, comp, pre, post)
    if res is None or (isinstance(res, ConditionalCheckFailed) and res.current is UNKNOWN):
        return _Op(rec, _G, inv, comp, write=w, want=CONDFAIL)
    if not isinstance(res, ConditionalCheckFailed):
        return _Op(rec, _X, inv, comp, reason=f"{head}: status condfail but result {res!r}")
    cur = sm.intern(res.current)
    got = sm.answer(w, cur)
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


def _show_new(item: M | None) -> str:
    return "?" if item is UNKNOWN else _json(item)


def _show(item: M | None) -> str:
    if item is UNKNOWN:
        return "?"
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
