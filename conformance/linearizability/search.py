"""The search: decide whether one key's strong operations are linearizable.

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
   preconditions the answer is exact either way. When they fail, a **witness**
   (witness.py) is tried: one linearization built greedily in linear time and
   checked operation by operation, so it can only answer "linearizable" (it does
   when reads observe writes of unknown outcome, which the chains cannot use). Both
   count as the fast path in reports. When neither answers the key falls back:
2. **Sweep** (sweep.py): the key's configurations carried along real time, with
   just-in-time unknown writes, symmetry and dominance; it decides every key the
   fast path does not. Unknown writes nothing could observe are dropped first
   (``_relevant``).
3. **Search** (``_search``, used by the shrinker, which needs removed operations
   to act freely): the Wing-Gong / Lowe algorithm over a doubly linked
   list of call/return entries, iterative (an explicit stack), with memoization of
   (linearized set, state) and one dominance rule in the spirit of Lowe's
   just-in-time linearization: an enabled operation that leaves the state as it is
   (a read, a failed condition) is linearized at once without branching, since
   linearizing it later can never help; writes of unknown outcome are tried only
   when no answered operation fits (as late as possible). Before searching, unknown
   writes whose effect no answered operation could ever observe are dropped
   (``_relevant``). ``max_states`` bounds the configurations explored; beyond it the
   key is reported ``unknown`` rather than hanging.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from conformance.linearizability.model import (
    _G,
    _INF,
    _NEG,
    _R,
    _U,
    _W,
    _X,
    APPLIED,
    PathTaken,
    Verdict,
    _classify,
    _Op,
    _States,
    _tag,
)
from conformance.linearizability.sweep import sweep
from conformance.linearizability.witness import witness
from reference.client import HistoryRecord
from reference.replica import DEFAULT_SCHEMA
from reference.storage import (
    Delete,
    Key,
    KeySchema,
    Put,
    S,
    SetAttr,
    Update,
    WriteOp,
    evaluate,
)

DEFAULT_MAX_STATES = 1_000_000
"""Search budget per key: configurations explored before the key is ``unknown``."""
_CLOSURE_CAP = 512
"""Most states one closure under removed writes may hold while shrinking."""

FastVerdict = Literal["linearizable", "violation", "not-applicable"]
Method = Literal["auto", "fast", "search"]


@dataclass(frozen=True, slots=True)
class KeyResult:
    key: Key
    path: PathTaken
    verdict: Verdict | Literal["not-applicable"]
    """``not-applicable``: only with ``method="fast"``, when its preconditions fail."""
    states: int = 0
    """Search configurations explored (0 on the fast path)."""


# --- the fast path ----------------------------------------------------------------------------


def _fast(ops: Sequence[_Op], sm: _States) -> FastVerdict:
    """Decide the key from the chain of writes when its order is determined; exact when
    it answers, ``not-applicable`` otherwise."""
    if any(o.kind == _X for o in ops):
        return "violation"
    if any(o.kind == _G for o in ops):
        return "not-applicable"  # an answer that does not record its state
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
        frees = sorted((o for o in free if o.kind == _W or (
            o.kind in (_U, _G) and o.write and o.want in (-1, APPLIED))), key=lambda o: o.inv)
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
    preserves = [o.preserves for o in ops]
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

    guard_next: dict[tuple[int, int, int], int] = {}

    def after_guard(i: int, sigma: int, avail: int) -> int:
        """The states a ``_G`` operation leaves from ``sigma`` (0: it fits none)."""
        k = (i, sigma, avail)
        out = guard_next.get(k)
        if out is None:
            o = ops[i]
            got = 0
            for s in _bits(sigma):
                t = sm.guard(o, s)
                if t >= 0:
                    got |= 1 << t
            out = guard_next[k] = cl.of_mask(got, avail) if got else 0
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
            elif k == _G:
                ns = after_guard(i, sigma, navail)
                if not ns:
                    e = nxt[e]
                    continue
                forced = preserves[i] and ns | sigma == ns
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


# --- deciding a key --------------------------------------------------------------------------


def _relevant(ops: list[_Op], sm: _States) -> list[_Op]:
    """``ops`` without the writes of unknown outcome that cannot matter.

    An unknown write matters if a state it may produce is one some answered operation
    observes, or if it may feed (satisfy the condition of, or be merged by) an unknown
    write that matters. Any other one can be dropped from every linearization: nothing
    answered ever sees its output, and what overwrites it behaves as it would have
    without it (or, having failed its condition, can be dropped too).
    """
    unknown = [o for o in ops if o.kind == _U]
    if not unknown or any(o.kind == _G for o in ops):
        return ops  # (an answer that does not record its state may observe any of them)
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
    relevant = _relevant(ops, sm)
    if method != "search":
        v = _fast(ops, sm)
        if v == "not-applicable" and witness(relevant, sm) is not None:
            v = "linearizable"  # a linearization, found greedily and checked
        if v != "not-applicable" or method == "fast":
            return "fast", v, 0
    verdict, states = sweep(relevant, sm, max_states)
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
    ops, _ = _classify(records, sm)
    path, verdict, states = _decide(ops, sm, method, max_states)
    return KeyResult(key, path, verdict, states)
