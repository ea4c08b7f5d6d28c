"""A linear-time attempt to prove a key linearizable: build one linearization greedily,
then check it.

The sweep (sweep.py) carries every partial linearization along; on a linearizable key
that is mostly wasted work when a simple rule finds one. The rule here walks the
key's call and return events in time order (calls first at equal times) with one
state, and:

* linearizes a state-preserving operation (a read, a failed condition) as soon as it
  is open and enabled (the sweep's dominance rule: doing so never hurts);
* linearizes a state-changing answered operation as late as possible: at its return,
  after the shortest sequence of open writes (answered ones first; writes of unknown
  outcome only when those cannot do it) that leads to a state where it is enabled.
  A read that returns unlinearized is handled the same way;
* applies a write of unknown outcome only when such a sequence needs it (just in time).

Nothing here is trusted: the sequence built is checked against SEMANTICS.md by
``_valid`` (real time, and the engine's answer to each operation in the state it
finds), so the answer is exact whenever it is given. It answers only
"linearizable": when the rule gets stuck, or the check fails, the key goes to the
sweep. With unique versions (each item names its writer) the sequence each return
needs is determined, so the rule decides such keys even when reads observe writes of
unknown outcome, which the chain analysis of ``search._fast`` cannot use.
"""

from __future__ import annotations

from collections.abc import Sequence

from conformance.linearizability.model import _G, _INF, _R, _U, _W, APPLIED, _Op, _States

_DEPTH = 32
"""Most writes one return may need applied first."""
_NODES = 400
"""Most (state, writes used) nodes one such search may visit."""


def witness(ops: Sequence[_Op], sm: _States) -> list[int] | None:
    """A linearization of ``ops`` (indices into it, unknown writes left out where not
    placed) that ``_valid`` accepts; None if the greedy rule finds none."""
    order = _build(ops, sm)
    if order is None or not _valid(ops, sm, order):
        return None
    return order


def _step(o: _Op, sm: _States, s: int) -> int:
    """The state ``o`` leaves when linearized in ``s``; -1 if it cannot be (an unknown
    write that changes nothing counts as not applicable: it would be of no use)."""
    k = o.kind
    if k in (_R, _W):
        return o.post if s == o.pre else -1
    if k == _G:
        return sm.guard(o, s)
    if k == _U and o.write is not None:
        what, t = sm.outcome(o.write, s)
        return t if what == APPLIED and t != s else -1
    return -1


def _build(ops: Sequence[_Op], sm: _States) -> list[int] | None:
    n = len(ops)
    if any(o.kind not in (_R, _W, _G, _U) for o in ops):
        return None
    events: list[tuple[int, int, int]] = []
    for i, o in enumerate(ops):
        events.append((o.inv, 0, i))
        if o.kind != _U:
            events.append((o.comp, 1, i))
    events.sort()
    done = [False] * n
    out: list[int] = []
    cur = 0
    reads: dict[int, list[int]] = {}  # open unlinearized reads, by the state they need
    g_pres: list[int] = []  # open state-preserving ``_G``s not yet linearized
    by_pre: dict[int, list[int]] = {}  # open answered ``_W``s, by the state they need
    g_apply: list[int] = []  # open state-changing ``_G``s
    unknown: list[int] = []  # invoked writes of unknown outcome, not applied

    def place(i: int, t: int) -> None:
        """Linearize ``i`` (leaving state ``t``), then every open preserving operation
        enabled there."""
        nonlocal cur
        done[i] = True
        out.append(i)
        o = ops[i]
        if o.kind == _W:
            by_pre[o.pre].remove(i)
        elif o.kind == _G and not o.preserves:
            g_apply.remove(i)
        elif o.kind == _U:
            unknown.remove(i)
        if t == cur:
            return
        cur = t
        for j in reads.pop(t, ()):
            if not done[j]:
                done[j] = True
                out.append(j)
        if g_pres:
            for j in g_pres:
                if not done[j] and sm.guard(ops[j], t) >= 0:
                    done[j] = True
                    out.append(j)
            g_pres[:] = [j for j in g_pres if not done[j]]

    def path_to(i: int, mode: int) -> list[int] | None:
        """The shortest sequence of open writes from ``cur`` after which ``i`` is
        enabled. ``mode`` 0: answered writes only; 1: also writes of unknown outcome,
        just in time (into a state an open operation needs: ``i``, an answered write
        or a read), and not out of a state an open answered write still needs (with
        unique versions, leaving it would strand that write); 2: unknown writes
        anywhere."""
        if _step(ops[i], sm, cur) >= 0:
            return []
        frontier: list[tuple[int, int, list[int]]] = [(cur, 0, [])]
        seen = {(cur, 0)}
        for _ in range(_DEPTH):
            nxt: list[tuple[int, int, list[int]]] = []
            for s, used, path in frontier:
                cands = [j for j in by_pre.get(s, ()) if j != i]
                if g_apply:
                    cands += [j for j in g_apply if j != i]
                answered = len(cands)
                if mode == 2 or (mode == 1 and not cands):
                    cands += unknown
                for n, j in enumerate(cands):
                    if used >> j & 1:
                        continue
                    t = _step(ops[j], sm, s)
                    if t < 0:
                        continue
                    if mode == 1 and n >= answered and not (
                            by_pre.get(t) or t in reads or _step(ops[i], sm, t) >= 0):
                        continue
                    u = used | 1 << j
                    if (t, u) in seen:
                        continue
                    seen.add((t, u))
                    p = [*path, j]
                    if _step(ops[i], sm, t) >= 0:
                        return p
                    if len(seen) > _NODES:
                        return None
                    nxt.append((t, u, p))
            if not nxt:
                return None
            frontier = nxt
        return None

    for _, ret, i in events:
        o = ops[i]
        if not ret:
            if o.kind == _U:
                unknown.append(i)
            elif o.preserves:
                if _step(o, sm, cur) >= 0:
                    done[i] = True
                    out.append(i)
                elif o.kind == _R:
                    reads.setdefault(o.pre, []).append(i)
                else:
                    g_pres.append(i)
            elif o.kind == _W:
                by_pre.setdefault(o.pre, []).append(i)
            else:
                g_apply.append(i)
            continue
        if done[i]:
            continue
        path = path_to(i, 0)
        for mode in (1, 2) if unknown else ():
            if path is not None:
                break
            path = path_to(i, mode)
        if path is None:
            return None
        for j in path:
            place(j, _step(ops[j], sm, cur))
        if not done[i]:  # (a read the path's last state enabled is placed already)
            place(i, _step(ops[i], sm, cur))
    return out


def _valid(ops: Sequence[_Op], sm: _States, order: Sequence[int]) -> bool:
    """Is ``order`` a linearization of ``ops`` under SEMANTICS.md? Every answered
    operation exactly once, each unknown write at most once; real time (no operation
    after one that was invoked after it completed); each answer the engine's in the
    state it finds."""
    placed = [False] * len(ops)
    latest_inv = -_INF  # the latest invocation among the operations placed so far
    s = 0
    for i in order:
        if placed[i]:
            return False
        placed[i] = True
        o = ops[i]
        if latest_inv > o.comp:
            return False
        latest_inv = max(latest_inv, o.inv)
        if o.kind == _U:
            if o.write is None:
                return False
            s = sm.outcome(o.write, s)[1]  # whatever the engine does there
            continue
        t = _step(o, sm, s)
        if t < 0:
            return False
        s = t
    return all(placed[i] or o.kind == _U for i, o in enumerate(ops))
