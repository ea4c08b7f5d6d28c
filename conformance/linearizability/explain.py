"""Explaining a violation: shrink it to a minimal witness and say what that shows.

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
"""

from __future__ import annotations

from collections.abc import Sequence

from conformance.linearizability.model import (
    _G,
    _R,
    _U,
    _W,
    _X,
    APPLIED,
    CONDFAIL,
    INVALID,
    _Op,
    _show,
    _show_key,
    _States,
)
from conformance.linearizability.search import _search
from reference.storage import Key

DEFAULT_SHRINK_MAX_STATES = 20_000
"""Search budget for each check made while shrinking a violation."""
_SHRINK_TOTAL_FACTOR = 50


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
        what = f"{'eventual ' if o.eventual else ''}read {_show(sm.items[o.pre])}"
    elif o.kind == _G:
        what = {APPLIED: "applied", CONDFAIL: "condition failed", INVALID: "invalid"}[o.want]
        what += f" (state not recorded{'' if o.post < 0 else ', new ' + _show(sm.items[o.post])})"
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
