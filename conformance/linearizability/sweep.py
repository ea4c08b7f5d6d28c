"""Deciding a key by a sweep over real time: every partial linearization at once.

The search of ``search.py`` (Wing-Gong-Lowe, depth first) can wander deep into a wrong
order of concurrent writes and pay for it in backtracking; writes of unknown outcome,
open from their invocation to the end, multiply that. This procedure instead walks
the key's call and return events in time order (calls first at equal times: touching
intervals overlap) and keeps the set of **configurations** a linearization of
everything so far can be in: the state, the answered operations still open that are
already linearized, and how many writes of unknown outcome it has used.

* A call adds the operation to the open ones and extends every configuration by it
  (and by whatever that then enables); a return keeps the configurations in which
  the operation is linearized, and forgets it. The history is correct iff a
  configuration survives the last event. This is the rule of SEMANTICS.md: between
  two events every order of the open operations is tried.
* **Just in time**: a write of unknown outcome is applied only immediately before
  the answered operation that observes its effect (any linearization can be
  rearranged so: moving it later, up to that operation, changes nothing anyone saw),
  so configurations never end with one; unknown writes nobody observes cost nothing.
* **Symmetry**: unknown writes with the same operation are interchangeable once
  invoked, so a configuration records how many of each such class it used (the
  earliest invoked), not which.
* **Symmetry of answered operations**: of open operations with the same transition
  (the same ``pre -> post``, or the same write and answer), only the one that
  returns first is linearized next: any linearization placing another one of them
  there can swap the two (they do the same; the other's deadline is no earlier).
* **Dominance**: a read, a failed condition or an invalid write (state-preserving)
  enabled in a configuration's state is linearized at once, without branching. Of
  two configurations with the same state and the same state-changing operations
  linearized, one is dropped if it linearized only a subset of the other's
  state-preserving ones and used at least as many unknown writes of every class:
  whatever the dropped one can still do, the other can (a state-preserving
  operation linearized later changes nothing; an unknown write never used may stay
  unused).

``max_states`` bounds the configurations created; beyond it the key is undecided.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from conformance.linearizability.model import _G, _U, _X, Verdict, _Op, _States

_Counts = tuple[int, ...]
Mode = Literal["exact", "one", "reuse"]
_Configs = dict[tuple[int, int], list[tuple[int, _Counts]]]
"""(state, state-changing operations linearized) -> [(state-preserving ones, unknown
writes used per class)]: the open operations only, as bit masks over ``ops``."""


TRACE = False


class _Budget(Exception):
    pass


def sweep(ops: Sequence[_Op], sm: _States, max_states: int) -> tuple[Verdict, int]:
    """Decide ``ops`` (one key's operations, none removed) by the sweep above.

    With writes of unknown outcome, cheap bounds come first. Finding only real
    linearizations, so answering "linearizable" when they find one: keeping one vector
    of unknown writes used per configuration (the fewest), and letting an unknown write
    act only within a window after its invocation (the longest answered operation of
    the key, then 8 times that: "bound the concurrency window"; a write that times out
    mostly takes effect soon, if at all). Finding every real linearization and more,
    so answering "violation" when they find none: letting each unknown write act any
    number of times. Only when none answers does the exact sweep run."""
    if any(o.kind == _X for o in ops):
        return "violation", 0
    spent = 0
    if any(o.kind == _U for o in ops):
        longest = max((o.comp - o.inv for o in ops if o.kind != _U and not o.eventual),
                      default=0)
        tries: list[tuple[Mode, int | None, Verdict]] = [
            ("one", longest, "linearizable"), ("one", 8 * longest + 1, "linearizable"),
            ("reuse", None, "violation")]
        for mode, window, decisive in tries:
            try:
                verdict, n = _Sweep(ops, sm, max_states, mode, window).run()
            except _Budget:
                verdict, n = "unknown", max_states
            spent += n
            if verdict == decisive:
                return verdict, spent
    try:
        verdict, n = _Sweep(ops, sm, max_states).run()
        return verdict, spent + n
    except _Budget:
        return "unknown", spent + max_states


class _Sweep:
    def __init__(self, ops: Sequence[_Op], sm: _States, max_states: int,
                 mode: Mode = "exact", window: int | None = None) -> None:
        self.mode = mode
        self.window = window
        self.ops = ops
        self.sm = sm
        self.max_states = max_states
        self.created = 0
        # Unknown writes by class (equal operations), each class in invocation order.
        cls_of: dict[object, int] = {}
        self.members: list[list[int]] = []
        self.cls: dict[int, int] = {}
        for i, o in enumerate(ops):
            if o.kind == _U and o.write is not None:
                try:
                    # With a window, each expires at its own time: a class of its own.
                    c = cls_of.setdefault(o.write if window is None else i, len(cls_of))
                except TypeError:  # an unhashable operation: a class of its own
                    c = cls_of.setdefault(id(o.write), len(cls_of))
                if c == len(self.members):
                    self.members.append([])
                self.members[c].append(i)
                self.cls[i] = c
        self.cls_op = [ops[m[0]].write for m in self.members]
        self.invoked = [0] * len(self.members)  # members invoked so far, per class
        self.preserving = [o.preserves for o in ops]
        self.tclass: list[object] = [
            (o.kind, o.pre, o.post) if o.kind != _G else (o.kind, o.want, o.post, id(o.write))
            for o in ops]
        self.rank = [(o.comp, i) for i, o in enumerate(ops)]
        self.open_class: dict[object, set[int]] = {}
        self.pres_bits = sum(1 << i for i, p in enumerate(self.preserving) if p)
        # Open answered operations not state-guarded statically (``_G``), and the
        # guarded ones by the state they need.
        self.open_g: set[int] = set()
        self.open_by_pre: dict[int, set[int]] = {}
        self._reach: dict[tuple[int, _Counts, tuple[int, ...]], list[tuple[int, _Counts]]] = {}

    # --- transitions ---------------------------------------------------------------------

    def enabled(self, i: int, s: int) -> int:
        """The state answered operation ``i`` leaves if linearized in ``s``; -1 if not."""
        o = self.ops[i]
        if o.kind == _G:
            return self.sm.guard(o, s)
        return o.post if s == o.pre else -1

    def reach(self, s: int, used: _Counts) -> list[tuple[int, _Counts]]:
        """``(state, used)`` reachable from ``s`` by unknown writes still available,
        ``(s, used)`` first; for each state only the minimal ``used`` vectors."""
        if not self.members:
            return [(s, used)]
        key = (s, used, tuple(self.invoked))
        hit = self._reach.get(key)
        if hit is not None:
            return hit
        out: dict[int, list[_Counts]] = {s: [used]}
        todo = [(s, used)]
        reuse, one = self.mode == "reuse", self.mode == "one"
        while todo:
            st, u = todo.pop()
            for c, op in enumerate(self.cls_op):
                if (self.invoked[c] == 0 if reuse else u[c] >= self.invoked[c]) or op is None:
                    continue
                t = self.sm.effect(op, st)
                if t < 0:
                    continue  # no change: as if never applied
                u2 = u if reuse else (*u[:c], u[c] + 1, *u[c + 1:])
                have = out.setdefault(t, [])
                if reuse or one:
                    if have and (reuse or sum(have[0]) <= sum(u2)):
                        continue
                    have[:] = [u2]
                else:
                    if any(all(a <= b for a, b in zip(x, u2, strict=True)) for x in have):
                        continue
                    have[:] = [x for x in have if not all(a <= b for a, b in
                                                          zip(u2, x, strict=True))]
                    have.append(u2)
                todo.append((t, u2))
                self.created += 1
                if self.created > self.max_states:
                    raise _Budget
        res = [(st, u) for st, us in out.items() for u in us]
        self._reach[key] = res
        return res

    def candidates(self, s: int, mask: int) -> list[int]:
        """Open answered operations not yet linearized that may fit in state ``s``."""
        out = [i for i in self.open_by_pre.get(s, ()) if not mask >> i & 1]
        out += [i for i in self.open_g if not mask >> i & 1]
        return out

    # --- configurations ------------------------------------------------------------------

    def settle(self, s: int, mask: int) -> int:
        """Linearize every open state-preserving operation enabled in ``s`` (dominance)."""
        for i in self.candidates(s, mask):
            if self.preserving[i] and self.enabled(i, s) >= 0:
                mask |= 1 << i
        return mask

    def add(self, configs: _Configs, s: int, mask: int, used: _Counts,
            new: bool = True) -> bool:
        """Add a configuration unless one there dominates it (dropping those it
        dominates); whether it was added."""
        pres = mask & self.pres_bits
        have = configs.setdefault((s, mask ^ pres), [])
        if self.mode == "one":  # one vector: the smallest (an under-approximation)
            total = sum(used)
            if any(pres & ~p == 0 and sum(u) <= total for p, u in have):
                return False
            have[:] = [(p, u) for p, u in have if not (p & ~pres == 0 and sum(u) >= total)]
            have.append((pres, used))
            return self.count(new)
        for p, u in have:
            if pres & ~p == 0 and all(a <= b for a, b in zip(u, used, strict=True)):
                return False
        have[:] = [(p, u) for p, u in have
                   if not (p & ~pres == 0 and all(a <= b for a, b in zip(used, u, strict=True)))]
        have.append((pres, used))
        return self.count(new)

    def count(self, new: bool) -> bool:
        if new:  # (not a configuration carried over from the event before)
            self.created += 1
            if self.created > self.max_states:
                raise _Budget
        return True

    def close(self, configs: _Configs, todo: list[tuple[int, int, _Counts]]) -> None:
        """Add ``todo``'s configurations, and everything they enable, to ``configs``."""
        while todo:
            s, mask, used = todo.pop()
            mask = self.settle(s, mask)
            if self.add(configs, s, mask, used):
                self.expand(s, mask, used, todo)

    def expand(self, s: int, mask: int, used: _Counts, todo: list[tuple[int, int, _Counts]],
               only: int = -1) -> None:
        for s2, u2 in self.reach(s, used):
            first: dict[object, int] = {}  # transition class -> its member returning first
            for i in ([only] if only >= 0 else self.candidates(s2, mask)):
                if mask >> i & 1:
                    continue
                c = self.tclass[i]
                j = first.get(c)
                if j is None or self.rank[i] < self.rank[j]:
                    first[c] = i
            for i in first.values():
                if only >= 0 and self.first_open(self.tclass[i], mask) != i:
                    continue  # another open one of its class returns first
                t = self.enabled(i, s2)
                if t >= 0:
                    todo.append((t, mask | 1 << i, u2))

    def first_open(self, c: object, mask: int) -> int:
        """The open, not yet linearized member of transition class ``c`` returning first."""
        best = -1
        for i in self.open_class.get(c, ()):
            if not mask >> i & 1 and (best < 0 or self.rank[i] < self.rank[best]):
                best = i
        return best

    @staticmethod
    def each(configs: _Configs) -> list[tuple[int, int, _Counts]]:
        return [(s, np | p, u) for (s, np), have in configs.items() for p, u in have]

    def run(self) -> tuple[Verdict, int]:
        ops = self.ops
        events: list[tuple[int, int, int]] = []
        for i, o in enumerate(ops):
            events.append((o.inv, 0, i))
            if o.kind != _U:
                events.append((o.comp, 1, i))
            elif self.window is not None:
                events.append((o.inv + self.window, 2, i))
        events.sort()
        zero: _Counts = (0,) * len(self.members)
        configs: _Configs = {(0, 0): [(0, zero)]}
        for _, ret, i in events:
            o = ops[i]
            if ret == 2:  # the window of an unknown write closes
                self.invoked[self.cls[i]] = 0
                continue
            if ret:
                bit = 1 << i
                kept: _Configs = {}
                for s, mask, u in self.each(configs):
                    if mask & bit:
                        self.add(kept, s, mask ^ bit, u, new=False)
                if not kept:
                    return "violation", self.created
                configs = kept
                if o.kind == _G:
                    self.open_g.discard(i)
                else:
                    self.open_by_pre[o.pre].discard(i)
                self.open_class[self.tclass[i]].discard(i)
                continue
            todo: list[tuple[int, int, _Counts]] = []
            if o.kind == _U:
                self.invoked[self.cls[i]] += 1
                # Its effect may enable any open operation, in any configuration.
                for s, mask, u in self.each(configs):
                    self.expand(s, mask, u, todo)
                self.close(configs, todo)
                continue
            if o.kind == _G:
                self.open_g.add(i)
            else:
                self.open_by_pre.setdefault(o.pre, set()).add(i)
            self.open_class.setdefault(self.tclass[i], set()).add(i)
            nxt: _Configs = {}
            for s, mask, u in self.each(configs):
                if self.preserving[i] and self.enabled(i, s) >= 0:
                    # Linearized at once (dominance): the configuration is replaced, and
                    # what it enabled is enabled again after the new operation.
                    todo.append((s, mask | 1 << i, u))
                    continue
                self.add(nxt, s, mask, u, new=False)
                self.expand(s, mask, u, todo, only=i)
            configs = nxt
            self.close(configs, todo)
            if TRACE:
                ev = self.each(configs)
                print(i, ops[i].rec.id, ops[i].kind, len(ev), self.created,
                      len({c[0] for c in ev}), len({c[1] & ~self.pres_bits for c in ev}),
                      len({c[1] & self.pres_bits for c in ev}), len({c[2] for c in ev}),
                      len(configs))
        return ("linearizable" if configs else "violation"), self.created


__all__ = ["sweep"]
