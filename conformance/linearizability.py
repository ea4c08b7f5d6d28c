"""Linearizability of a client history, judged from the history alone.

``check_history`` reads only the clients' ``HistoryRecord``s (what ``history.jsonl``
holds): no log, no traces, no replica state. It checks that the strong operations
on each key are linearizable against the storage engine's sequential semantics, and
that no eventually consistent read returned a value from nowhere.

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

How a key is decided
--------------------
Keys are independent (locality, the P-compositionality of Horn and Kroening), so the
history is split per key. For each key:

1. **Fast path**, O(n log n) (``_fast``). When the items the writes produce are all
   distinct (the workload tags every item with ``w``, the writer's request id) and no
   observed item could have come from a write of unknown outcome, each acknowledged
   write's ``old`` names its predecessor, so the writes form chains ``absent -> ... ->
   absent`` (segments between deletes). If real time forces one order of the segments,
   the write order is fully determined; the earliest-point schedule of writes and
   reads is then computed greedily, placing reads of ``absent`` in the latest epoch
   of absence that still works (iterated to a fixed point). Under these
   preconditions the answer is exact either way. When they fail the key falls back:
2. **Search** (``_search``): the Wing-Gong / Lowe algorithm over a doubly linked
   list of call/return entries, iterative (an explicit stack), with memoization of
   (linearized set, state) and one dominance rule in the spirit of Lowe's
   just-in-time linearization: an enabled operation that leaves the state as it is
   (a read, a failed condition) is linearized at once without branching, since
   linearizing it later can never help; writes of unknown outcome are tried only
   when no answered operation fits (as late as possible). Before searching, unknown
   writes whose effect no answered operation could ever observe are dropped
   (``_relevant``). ``max_states`` bounds the configurations explored; beyond it the
   key is reported ``unknown`` rather than hanging.

Minimal violating sub-history
-----------------------------
For a key found non-linearizable, ``_shrink`` looks for a small subset ``S`` of its
operations that is still a violation *whatever the removed operations did*: a
removed acknowledged write may still replay its recorded transition ``old -> new``,
a removed write of unknown outcome may still apply, each any number of times but
only after its invocation; removed reads and failed writes vanish. Checking ``S``
this way (the search state becomes the set of possible states, closed under the
removed writes invoked before the frontier) makes "still failing" upward closed, so
a removal can never manufacture a violation (say, a write whose ``old`` no longer
has a producer): the subset returned fails on its own merits, and checking those
records alone also fails. Shrinking binary-searches the shortest failing prefix and
suffix (by invocation), then removes chunks of halving size, ending 1-minimal. It
is deterministic.

Eventually consistent reads
---------------------------
``consistent=False`` reads may be stale, so they are only checked for values from
nowhere: a non-absent value must be exactly (whole-item equality) an item produced
by a write to the key that did not fail (acknowledged, or of unknown outcome) and
was invoked no later than the read completed; an update of unknown outcome is
matched through the ``w`` it sets and replayed on the key's known states. Every key
starts absent, so a read of absent is always explained by the initial state.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

from reference.client import HistoryRecord, OpName, Status
from reference.messages import ReadResult
from reference.replica import DEFAULT_SCHEMA
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
    SetAttr,
    StorageEngine,
    Update,
    WriteOp,
    decode_op,
    evaluate,
    item_from_json,
    item_to_json,
    key_from_json,
    value_to_json,
)

__all__ = [
    "DEFAULT_MAX_STATES",
    "DEFAULT_SHRINK_MAX_STATES",
    "EventualViolation",
    "HistoryFormatError",
    "KeyResult",
    "LinearizabilityReport",
    "Violation",
    "check_history",
    "check_key",
    "history_to_jsonl",
    "load_history",
]

DEFAULT_MAX_STATES = 1_000_000
"""Search budget per key: configurations explored before the key is ``unknown``."""
DEFAULT_SHRINK_MAX_STATES = 20_000
"""Search budget for each check made while shrinking a violation."""
_SHRINK_TOTAL_FACTOR = 50
_CLOSURE_CAP = 512
"""Most states one closure under removed writes may hold while shrinking."""

Verdict = Literal["linearizable", "violation", "unknown"]
FastVerdict = Literal["linearizable", "violation", "not-applicable"]
PathTaken = Literal["fast", "search"]
Method = Literal["auto", "fast", "search"]

_INF = 1 << 62
_NEG = -(1 << 62)

# Operation kinds, after classification.
_R = 0  # guarded, leaves the state as it is: strong read, condfail, write with old == new
_W = 1  # guarded transition pre -> post (pre != post): an acknowledged write
_U = 2  # write of unknown outcome: may apply once at any point after invoke, or never
_X = 3  # can never be linearized (its answer contradicts the engine); ``reason`` says why


# --- report ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Violation:
    key: Key
    explanation: str
    """One line: what the minimal sub-history shows."""
    history: list[HistoryRecord]
    """A minimal violating sub-history of the key, in invocation order."""
    path: PathTaken
    """Which check found the key non-linearizable."""


@dataclass(frozen=True, slots=True)
class EventualViolation:
    key: Key
    record: HistoryRecord
    explanation: str


@dataclass(slots=True)
class LinearizabilityReport:
    ok: bool
    """No violation of either kind, and every key decided (``unknown_keys`` empty)."""
    keys_checked: int
    fast_path_keys: list[Key] = field(default_factory=list)
    """Keys the fast path decided (linearizable or not)."""
    search_keys: list[Key] = field(default_factory=list)
    """Keys the search decided."""
    unknown_keys: list[Key] = field(default_factory=list)
    """Keys the search could not decide within ``max_states``."""
    violations: list[Violation] = field(default_factory=list)
    eventual_violations: list[EventualViolation] = field(default_factory=list)
    operations: int = 0
    """Records checked."""
    states_explored: int = 0
    """Search configurations explored, over all keys (shrinking not counted)."""

    def summary(self) -> str:
        return (f"{'OK' if self.ok else 'FAIL'}: {self.operations} operations on "
                f"{self.keys_checked} keys ({len(self.fast_path_keys)} fast path, "
                f"{len(self.search_keys)} search, {len(self.unknown_keys)} unknown); "
                f"{len(self.violations)} violations, "
                f"{len(self.eventual_violations)} eventual-read violations")


@dataclass(frozen=True, slots=True)
class KeyResult:
    key: Key
    path: PathTaken
    verdict: Verdict | Literal["not-applicable"]
    """``not-applicable``: only with ``method="fast"``, when its preconditions fail."""
    states: int = 0
    """Search configurations explored (0 on the fast path)."""


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


# --- the fast path ----------------------------------------------------------------------------


def _tag(item: M | None) -> str | None:
    w = item.get("w") if item is not None else None
    return w.value if isinstance(w, S) else None


def _fast(ops: Sequence[_Op], sm: _States) -> FastVerdict:
    """Decide the key from the chain of writes when its order is determined; exact when
    it answers, ``not-applicable`` otherwise."""
    if any(o.kind == _X for o in ops):
        return "violation"
    writes = [o for o in ops if o.kind == _W]
    reads = [o for o in ops if o.kind == _R]
    # Writes of unknown outcome: what could they produce?
    unknown_items: set[int] = set()
    unknown_tags: set[str] = set()
    unknown_delete = False
    for o in ops:
        if o.kind != _U:
            continue
        w = o.write
        if isinstance(w, Delete):
            unknown_delete = True
        elif isinstance(w, Put):
            unknown_items.add(sm.intern(w.item))
            t = _tag(w.item)
            if t is not None:
                unknown_tags.add(t)
        elif isinstance(w, Update):
            tags = [a.value.value for a in w.actions
                    if isinstance(a, SetAttr) and a.name == "w" and isinstance(a.value, S)]
            if not tags:
                return "not-applicable"  # its item keeps its input's tag: anything goes
            unknown_tags.update(tags)

    def maybe_unknown(sid: int) -> bool:
        return sid != 0 and (sid in unknown_items or _tag(sm.items[sid]) in unknown_tags)

    def definite(v: FastVerdict) -> FastVerdict:
        # A write of unknown outcome that deletes can open an epoch of absence anywhere.
        return "not-applicable" if v == "violation" and unknown_delete else v

    producer: dict[int, _Op] = {}
    for o in writes:
        if o.post:
            if o.post in producer or maybe_unknown(o.post):
                return "not-applicable"  # two writes could produce this item
            producer[o.post] = o
    for o in ops:
        if o.kind in (_R, _W) and o.pre and o.pre not in producer:
            # Observed an item no acknowledged write produced.
            return "not-applicable" if maybe_unknown(o.pre) else "violation"
    succ: dict[int, _Op] = {}
    creates: list[_Op] = []
    for o in writes:
        if o.pre == 0:
            creates.append(o)
        elif o.pre in succ:
            return "violation"  # two writes replaced the same item, which exists only once
        else:
            succ[o.pre] = o
    # Segments: absent -> ... -> absent (or the final, open segment).
    segments: list[list[_Op]] = []
    seg_of: dict[int, int] = {}  # item -> segment
    for c in creates:
        chain = [c]
        while chain[-1].post and chain[-1].post in succ:
            chain.append(succ[chain[-1].post])
        for o in chain:
            if o.post:
                seg_of[o.post] = len(segments)
        segments.append(chain)
    if sum(len(s) for s in segments) != len(writes):
        return "violation"  # writes unreachable from absent: a cycle of items
    if sum(1 for s in segments if s[-1].post) > 1:
        return definite("violation")  # two items would have to outlive each other
    lo = [max(o.inv for o in s) for s in segments]
    hi = [min(o.comp for o in s) for s in segments]
    none_reads: list[_Op] = []
    for r in reads:
        if r.pre == 0:
            none_reads.append(r)
        else:
            si = seg_of[r.pre]
            lo[si] = max(lo[si], r.inv)
            hi[si] = min(hi[si], r.comp)
    # A before B needs max-invoke(A) <= min-complete(B): if lo-sorted neighbours all
    # exclude the reverse, the lo order is the only possible one.
    order = sorted(range(len(segments)), key=lambda i: (lo[i], hi[i], segments[i][0].inv))
    for a, b in itertools.pairwise(order):
        if lo[b] <= hi[a]:
            return "not-applicable"
    if order and segments[order[-1]][-1].post == 0 and any(s[-1].post for s in segments):
        return definite("violation")  # the open segment is not the last
    seq = [o for i in order for o in segments[i]]
    m = len(seq)
    epoch_of = {o.post: j + 1 for j, o in enumerate(seq) if o.post}
    fixed_max_inv = [_NEG] * (m + 1)
    fixed_min_comp = [_INF] * (m + 1)
    for r in reads:
        if r.pre:
            j = epoch_of[r.pre]
            fixed_max_inv[j] = max(fixed_max_inv[j], r.inv)
            fixed_min_comp[j] = min(fixed_min_comp[j], r.comp)
    none_epochs = [0] + [j + 1 for j, o in enumerate(seq) if o.post == 0]
    winv = [o.inv for o in seq]
    wcomp = [o.comp for o in seq]

    def schedule(extra: list[int]) -> list[int] | None:
        """Earliest linearization points of the writes (p[j]: start of epoch j)."""
        p = [_NEG] * (m + 1)
        point = _NEG
        for j in range(m + 1):
            if j:
                point = max(winv[j - 1], point)
                if point > wcomp[j - 1]:
                    return None
            p[j] = point
            if point > fixed_min_comp[j]:
                return None
            point = max(point, fixed_max_inv[j], extra[j])
        return p

    # Reads of absent go to the latest epoch of absence that starts before they
    # complete; later is weaker (it only delays the writes after it). Iterate to a
    # fixed point: assignments only move earlier, schedules only later.
    assign: list[int] | None = None
    extra = [_NEG] * (m + 1)
    for _ in range(64):
        p = schedule(extra)
        if p is None:
            return definite("violation")
        starts = [p[e] for e in none_epochs]
        new = [none_epochs[bisect.bisect_right(starts, r.comp) - 1] for r in none_reads]
        if new == assign:
            return "linearizable"
        assign = new
        extra = [_NEG] * (m + 1)
        for r, e in zip(none_reads, assign, strict=True):
            extra[e] = max(extra[e], r.inv)
    return "not-applicable"


# --- the search ------------------------------------------------------------------------------


class _Undecided(Exception):
    pass


def _bits(mask: int) -> Iterator[int]:
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


class _Closure:
    """States reachable from a state through the removed (free) writes, as a bit mask.

    A free write may act any number of times, but only after its invocation: with
    ``avail`` = how many free writes (in invocation order) were invoked by the time
    the next linearization point must come, only those count.
    """

    __slots__ = ("_cache", "edges", "funcs", "invs", "sm", "trivial")

    def __init__(self, sm: _States, free: Sequence[_Op]) -> None:
        self.sm = sm
        frees = sorted((o for o in free if o.kind == _W or (o.kind == _U and o.write)),
                       key=lambda o: o.inv)
        self.invs = [o.inv for o in frees]
        self.edges: dict[int, list[tuple[int, int]]] = {}  # pre -> [(rank, post)]
        self.funcs: list[tuple[int, WriteOp]] = []
        for rank, o in enumerate(frees):
            if o.kind == _W:
                self.edges.setdefault(o.pre, []).append((rank, o.post))
            elif o.write is not None:
                self.funcs.append((rank, o.write))
        self.trivial = not frees
        self._cache: dict[tuple[int, int], int] = {}

    def avail(self, time: int) -> int:
        """How many free writes were invoked by ``time``."""
        return bisect.bisect_right(self.invs, time) if self.invs else 0

    def of(self, sid: int, avail: int) -> int:
        if self.trivial:
            return 1 << sid
        c = self._cache.get((sid, avail))
        if c is None:
            mask, todo, count = 1 << sid, [sid], 1
            while todo:
                s = todo.pop()
                nexts = [t for rank, t in self.edges.get(s, ()) if rank < avail]
                for rank, f in self.funcs:
                    if rank < avail:
                        t = self.sm.effect(f, s)
                        if t >= 0:
                            nexts.append(t)
                for t in nexts:
                    if not mask >> t & 1:
                        mask |= 1 << t
                        todo.append(t)
                        count += 1
                        if count > _CLOSURE_CAP:
                            raise _Undecided
            c = self._cache[(sid, avail)] = mask
        return c

    def of_mask(self, mask: int, avail: int) -> int:
        if self.trivial:
            return mask
        out = 0
        for s in _bits(mask):
            out |= self.of(s, avail)
        return out


def _search(ops: Sequence[_Op], sm: _States, max_states: int,
            free: Sequence[_Op] = ()) -> tuple[Verdict, int]:
    """Wing-Gong-Lowe search over ``ops`` (in any order). The state is a set of possible
    states (a bit mask over state ids), closed under the ``free`` writes: a singleton
    unless writes of unknown outcome or free writes are about."""
    try:
        return _wgl(ops, sm, max_states, _Closure(sm, free))
    except _Undecided:
        return "unknown", max_states


def _wgl(ops: Sequence[_Op], sm: _States, max_states: int, cl: _Closure) -> tuple[Verdict, int]:
    n = len(ops)
    if not any(o.kind != _U for o in ops):
        return "linearizable", 0
    entries: list[tuple[int, int, int]] = []
    for i, o in enumerate(ops):
        entries.append((o.inv, 0, i))
        if o.kind != _U:
            entries.append((o.comp, 1, i))
    entries.sort()  # calls before returns at equal times: touching intervals overlap
    ne = len(entries)
    head, tail = ne, ne + 1
    nxt = [*range(1, ne), tail, 0, tail]
    prv = [head, *range(0, ne - 1), head, ne - 1]
    ent_op = [i for _, _, i in entries]
    ent_ret = [r == 1 for _, r, _ in entries]
    ent_time = [t for t, _, _ in entries]
    call_e = [0] * n
    ret_e = [-1] * n
    for e, (_, r, i) in enumerate(entries):
        if r:
            ret_e[i] = e
        else:
            call_e[i] = e
    kind = [o.kind for o in ops]
    pre = [o.pre for o in ops]
    post = [o.post for o in ops]
    remaining = sum(1 for o in ops if o.kind != _U)
    timed = not cl.trivial  # free writes: availability follows the frontier
    unknown_next: dict[tuple[int, int, int], int] = {}

    def after_unknown(i: int, sigma: int, avail: int) -> int:
        k = (i, sigma, avail)
        out = unknown_next.get(k)
        if out is None:
            w = ops[i].write
            assert w is not None
            grown = sigma
            for s in _bits(sigma):
                t = sm.effect(w, s)
                if t >= 0:
                    grown |= 1 << t
            out = unknown_next[k] = cl.of_mask(grown, avail) if grown != sigma else sigma
        return out

    def next_return(e: int) -> int:
        while e != tail and not ent_ret[e]:
            e = nxt[e]
        return e

    def avail_at(e: int) -> int:
        # The next linearization point comes no later than the first pending return.
        return cl.avail(ent_time[e] if e != tail else _INF) if timed else 0

    linearized = 0
    front = next_return(nxt[head])  # the first return entry still in the list
    avail = avail_at(front)
    sigma = cl.of(0, avail)
    stack: list[tuple[int, int, bool, int, int, int]] = []
    seen: set[tuple[int, int]] = set()
    explored = 0
    # Candidates are tried in two phases: answered operations first, and only when none
    # fits, writes of unknown outcome (applying those as late as possible).
    phase = 0
    unknown_left = n - remaining
    e = nxt[head]
    while remaining:
        backtrack = ent_ret[e]
        if backtrack and phase == 0 and unknown_left:
            phase = 1
            e = nxt[head]
            continue
        if not backtrack:
            i = ent_op[e]
            k = kind[i]
            if (k == _U) != (phase == 1) or k == _X or (k <= _W and not sigma >> pre[i] & 1):
                e = nxt[e]
                continue
            nfront, navail = front, avail
            if timed and ret_e[i] == front:
                nfront = next_return(nxt[front])
                navail = avail_at(nfront)
            if k == _U:
                ns = after_unknown(i, sigma, navail)
                if ns == sigma:
                    e = nxt[e]
                    continue
                forced = False
            else:
                ns = cl.of(post[i], navail)
                # A read whose state covers every current possibility: take it now.
                forced = k == _R and ns | sigma == ns
            nl = linearized | 1 << i
            conf = (nl, ns)
            if conf in seen:
                if not forced:
                    e = nxt[e]
                    continue
                backtrack = True  # dominated configuration already failed
            else:
                seen.add(conf)
                explored += 1
                if explored > max_states:
                    return "unknown", explored
                stack.append((i, sigma, forced, phase, front, avail))
                linearized, sigma, front, avail = nl, ns, nfront, navail
                c = call_e[i]
                nxt[prv[c]] = nxt[c]
                prv[nxt[c]] = prv[c]
                r = ret_e[i]
                if r >= 0:
                    nxt[prv[r]] = nxt[r]
                    prv[nxt[r]] = prv[r]
                    remaining -= 1
                else:
                    unknown_left -= 1
                phase = 0
                e = nxt[head]
                continue
        # Backtrack: undo the last choice (and the forced steps after it), try the next.
        while True:
            if not stack:
                return "violation", explored
            i, sigma, forced, phase, front, avail = stack.pop()
            linearized ^= 1 << i
            r = ret_e[i]
            if r >= 0:
                nxt[prv[r]] = r
                prv[nxt[r]] = r
                remaining += 1
            else:
                unknown_left += 1
            c = call_e[i]
            nxt[prv[c]] = c
            prv[nxt[c]] = c
            if not forced:
                break
        e = nxt[call_e[i]]
    return "linearizable", explored


# --- shrinking and explaining ------------------------------------------------------------------


def _shrink(ops: list[_Op], sm: _States, max_states: int) -> tuple[list[_Op], bool]:
    """A small subset of ``ops`` that still fails whatever the rest did (module docstring).
    Returns (subset, verified). Each check may explore ``max_states`` configurations, all
    of them together ``_SHRINK_TOTAL_FACTOR`` times that; a check over budget counts as
    not failing, so the result is always a verified violation, if perhaps not minimal."""
    n = len(ops)
    memo: dict[tuple[int, ...], bool] = {}
    budget = [max_states * _SHRINK_TOTAL_FACTOR]

    def fails(idx: Sequence[int]) -> bool:
        t = tuple(idx)
        hit = memo.get(t)
        if hit is None:
            if budget[0] <= 0:
                return False
            inside = set(t)
            sub = [ops[i] for i in t]
            free = [ops[i] for i in range(n) if i not in inside]
            verdict, states = _search(sub, sm, min(max_states, budget[0]), free)
            budget[0] -= max(states, 1)
            hit = memo[t] = verdict == "violation"
        return hit

    cur = list(range(n))
    verified = False
    # Shortest failing prefix, then the latest start that still fails.
    lo, hi = 1, n
    while lo < hi:
        mid = (lo + hi) // 2
        if fails(cur[:mid]):
            hi, verified = mid, True
        else:
            lo = mid + 1
    cur = cur[:hi]
    lo, hi = 0, len(cur) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fails(cur[mid:]):
            lo, verified = mid, True
        else:
            hi = mid - 1
    cur = cur[lo:]
    if not verified and not fails(cur):
        return ops, False
    chunk = max(1, len(cur) // 2)
    while True:
        j = 0
        while j < len(cur) and len(cur) > 1:
            cand = cur[:j] + cur[j + chunk:]
            if cand and fails(cand):
                cur = cand
            else:
                j += chunk
        if chunk == 1:
            break
        chunk //= 2
    return [ops[i] for i in cur], True


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


def _desc(o: _Op, sm: _States) -> str:
    r = o.rec
    span = f"[{r.invoke_us}..{r.complete_us}us]" if o.kind != _U else f"[{r.invoke_us}..?]"
    if o.kind == _X:
        return o.reason
    if o.kind == _U:
        what = f"{r.status or 'pending'}, outcome unknown"
    elif o.kind == _W:
        what = f"{_show(sm.items[o.pre])} -> {_show(sm.items[o.post])}"
    elif r.op == "get":
        what = f"read {_show(sm.items[o.pre])}"
    elif r.status == "condfail":
        what = f"condition failed on {_show(sm.items[o.pre])}"
    else:
        what = f"{_show(sm.items[o.pre])} -> unchanged"
    return f"{r.id} {r.op} {span} {what}"


def _observes(o: _Op) -> str:
    r = o.rec
    return "read" if r.op == "get" else ("failed its condition on" if r.status == "condfail"
                                          else "saw")


def _explain(sub: list[_Op], sm: _States, key: Key, every: Sequence[_Op]) -> str:
    """One line on why ``sub`` (a shrunk subset of ``every``) is not linearizable."""
    k = _show_key(key)
    if len(sub) == 1:
        o = sub[0]
        if o.kind == _X:
            return o.reason
        if o.pre:
            later = [w for w in every if w.kind == _W and w.post == o.pre]
            if later and all(w.inv > o.comp for w in later):
                return (f"real-time violation on {k}: {o.rec.id} {_observes(o)} "
                        f"{_show(sm.items[o.pre])} by {o.comp}us, before its writer "
                        f"{later[0].rec.id} was invoked at {later[0].inv}us")
            return (f"value from nowhere on {k}: {o.rec.id} {_observes(o)} "
                    f"{_show(sm.items[o.pre])}, which no write to the key produces")
    if len(sub) == 2:
        a, b = sub
        pairs = [(w, o) for w, o in ((a, b), (b, a)) if w.kind == _W and o.kind in (_R, _W)]
        for w, o in pairs:
            x, y = sm.items[w.pre], sm.items[w.post]
            if o.kind == _W and o.pre == w.pre:
                return (f"lost update on {k}: {w.rec.id} and {o.rec.id} both replaced "
                        f"{_show(x)} ({_show(x)} -> {_show(y)} and -> "
                        f"{_show(sm.items[o.post])})")
        for w, o in pairs:
            y = sm.items[w.post]
            if o.pre == w.post and o.comp < w.inv:
                return (f"real-time violation on {k}: {o.rec.id} {_observes(o)} {_show(y)} "
                        f"by {o.comp}us, before its writer {w.rec.id} was invoked at {w.inv}us")
        for w, o in pairs:
            y, seen = sm.items[w.post], sm.items[o.pre]
            if w.comp < o.inv and o.pre != w.post:
                what = "read" if o.rec.op == "get" else "state"
                if o.pre == w.pre:
                    return (f"stale {what} on {k}: {o.rec.id} (invoked {o.inv}us) "
                            f"{_observes(o)} {_show(seen)}, but {w.rec.id} had replaced it "
                            f"with {_show(y)} by {w.comp}us")
                return (f"stale {what} on {k}: {o.rec.id} (invoked {o.inv}us) "
                        f"{_observes(o)} {_show(seen)}, but {w.rec.id} had written "
                        f"{_show(y)} by {w.comp}us and no write leads from {_show(y)} "
                        f"back to {_show(seen)}")
        if a.kind == _R and b.kind == _R and a.comp < b.inv:
            return (f"stale read on {k}: {b.rec.id} (invoked {b.inv}us) {_observes(b)} "
                    f"{_show(sm.items[b.pre])} after {a.rec.id} had {_observes(a)} "
                    f"{_show(sm.items[a.pre])} (completed {a.comp}us), and no write leads "
                    f"back from {_show(sm.items[a.pre])} to {_show(sm.items[b.pre])}")
    return (f"no order of these {len(sub)} operations on {k} fits their results and real "
            f"time: " + "; ".join(_desc(o, sm) for o in sub))


# --- eventual reads ------------------------------------------------------------------------------


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


# --- checking ----------------------------------------------------------------------------------


def _relevant(ops: list[_Op], sm: _States) -> list[_Op]:
    """``ops`` without the writes of unknown outcome that cannot matter.

    An unknown write matters if a state it may produce is one some answered operation
    observes, or if it may feed (satisfy the condition of, or be merged by) an unknown
    write that matters. Any other one can be dropped from every linearization: nothing
    answered ever sees its output, and what overwrites it behaves as it would have
    without it (or, having failed its condition, can be dropped too).
    """
    unknown = [o for o in ops if o.kind == _U]
    if not unknown:
        return ops
    observed = {o.pre for o in ops if o.kind in (_R, _W)}
    observed_tags = {_tag(sm.items[s]) for s in observed if s}

    def out_tags(w: Update) -> list[str]:
        return [a.value.value for a in w.actions
                if isinstance(a, SetAttr) and a.name == "w" and isinstance(a.value, S)]

    def visible(w: WriteOp) -> bool:
        if isinstance(w, Put):
            return sm.intern(w.item) in observed
        if isinstance(w, Delete):
            return 0 in observed
        tags = out_tags(w)
        return not tags or any(t in observed_tags for t in tags)

    def feeds(f: WriteOp, g: WriteOp) -> bool:
        cond = g.condition
        if cond is None:
            return isinstance(g, Update)  # an update merges into whatever it finds
        if isinstance(f, Update):
            return True
        return evaluate(cond, f.item if isinstance(f, Put) else None)

    keep = [o for o in unknown if o.write is not None and visible(o.write)]
    rest = [o for o in unknown if o not in keep and o.write is not None]
    grew = True
    while grew and rest:
        grew = False
        for o in list(rest):
            assert o.write is not None
            if any(feeds(o.write, g.write) for g in keep if g.write is not None):
                keep.append(o)
                rest.remove(o)
                grew = True
    dropped = {id(o) for o in rest}
    return [o for o in ops if id(o) not in dropped] if dropped else ops


def _decide(ops: list[_Op], sm: _States, method: Method,
            max_states: int) -> tuple[PathTaken, Verdict | Literal["not-applicable"], int]:
    if method != "search":
        v = _fast(ops, sm)
        if v != "not-applicable" or method == "fast":
            return "fast", v, 0
    verdict, states = _search(_relevant(ops, sm), sm, max_states)
    return "search", verdict, states


def check_key(records: Sequence[HistoryRecord], *, method: Method = "auto",
              schema: KeySchema = DEFAULT_SCHEMA,
              max_states: int = DEFAULT_MAX_STATES) -> KeyResult:
    """Check the strong operations of one key (every record must be for the same key).

    ``method``: ``"auto"`` (fast path, else search), ``"fast"`` (fast path only; may
    answer ``not-applicable``) or ``"search"`` (search only).
    """
    if not records:
        raise ValueError("no records")
    key = records[0].key
    if any(r.key != key for r in records):
        raise ValueError("records of more than one key")
    sm = _States(schema, key)
    ops, _, _ = _classify(records, sm)
    path, verdict, states = _decide(ops, sm, method, max_states)
    return KeyResult(key, path, verdict, states)


def check_history(records: Sequence[HistoryRecord], *, schema: KeySchema = DEFAULT_SCHEMA,
                  max_states: int = DEFAULT_MAX_STATES, fast_path: bool = True,
                  shrink: bool = True,
                  shrink_max_states: int = DEFAULT_SHRINK_MAX_STATES) -> LinearizabilityReport:
    """Check a whole history (any order of records; keys in order of first appearance).

    ``max_states`` bounds the search per key; ``fast_path=False`` sends every key to the
    search; ``shrink=False`` reports a violating key's whole history unminimized.
    """
    by_key: dict[Key, list[HistoryRecord]] = {}
    for rec in records:
        by_key.setdefault(rec.key, []).append(rec)
    rep = LinearizabilityReport(ok=True, keys_checked=len(by_key), operations=len(records))
    for key, recs in by_key.items():
        sm = _States(schema, key)
        ops, eventual, failed = _classify(recs, sm)
        path, verdict, states = _decide(ops, sm, "auto" if fast_path else "search",
                                        max_states)
        rep.states_explored += states
        if verdict == "unknown":
            rep.unknown_keys.append(key)
        elif path == "fast":
            rep.fast_path_keys.append(key)
        else:
            rep.search_keys.append(key)
        if verdict == "violation":
            if shrink:
                sub, verified = _shrink(ops, sm, shrink_max_states)
            else:
                sub, verified = ops, False
            why = _explain(sub, sm, key, ops) if verified else (
                f"{_show_key(key)}: no linearization of its {len(ops)} strong operations "
                f"({'not minimized' if shrink else 'shrinking off'})")
            rep.violations.append(Violation(key, why, [o.rec for o in sub], path))
        rep.eventual_violations.extend(_check_eventual(key, eventual, ops, failed, sm))
    rep.ok = not (rep.violations or rep.eventual_violations or rep.unknown_keys)
    return rep


def history_to_jsonl(records: Sequence[HistoryRecord]) -> bytes:
    """The records as ``history.jsonl`` text (what ``dynaspec simulate`` writes)."""
    opt = orjson.OPT_APPEND_NEWLINE
    return b"".join(orjson.dumps(r.to_json(), option=opt) for r in records)

