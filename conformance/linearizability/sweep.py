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

Representation (the sweep is Python, so constant factors decide the issue 13 goal):
every set of operations is an int bit mask over ``ops``, the unknown writes used
included; the open reads are a mask per state, so linearizing all those enabled is
one ``|``. A return only filters: the surviving configurations all hold the bit, so
neither dominance among them nor their keys change, and none is re-checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from conformance.linearizability.model import _G, _R, _U, _W, _X, Verdict, _Op, _States
from reference.storage import WriteOp

Mode = Literal["exact", "one", "reuse"]
_Configs = dict[tuple[int, int], list[tuple[int, int]]]
"""(state, state-changing operations linearized) -> [(state-preserving ones, unknown
writes used)]: bit masks over ``ops`` (the open answered operations only; the unknown
writes used, a prefix of each class)."""


TRACE = False
_TRIAL_BASE = 1_000
_TRIAL_PER_OP = 50
"""Budget of each cheap bound: ``_TRIAL_BASE + _TRIAL_PER_OP`` per operation (the
synthetic benchmark's keys need 2 to 7 configurations per operation)."""


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
    number of times. Only when none answers does the exact sweep run.

    Each bound gets a budget proportional to the key's size (``_TRIAL_PER_OP``), not
    the whole ``max_states``: a bound that runs out decides nothing, and the last one
    can be infinite (an ADD of unknown outcome, applied again and again, counts up
    without end), which with the full budget cost a minute on an 8-operation key."""
    if any(o.kind == _X for o in ops):
        return "violation", 0
    spent = 0
    if any(o.kind == _U for o in ops):
        longest = max((o.comp - o.inv for o in ops if o.kind != _U and not o.eventual),
                      default=0)
        tries: list[tuple[Mode, int | None, Verdict]] = [
            ("one", longest, "linearizable"), ("one", 8 * longest + 1, "linearizable"),
            ("reuse", None, "violation")]
        trial = min(max_states, _TRIAL_BASE + _TRIAL_PER_OP * len(ops))
        for mode, window, decisive in tries:
            try:
                verdict, n = _Sweep(ops, sm, trial, mode, window).run()
            except _Budget:
                verdict, n = "unknown", trial
            spent += n
            if verdict == decisive:
                return verdict, spent
    try:
        verdict, n = _Sweep(ops, sm, max_states).run()
        return verdict, spent + n
    except _Budget:
        return "unknown", spent + max_states


class _Sweep:
    """One sweep. Unknown writes used are a bit mask over ``ops`` (an int: cheap to hash
    and compare): of a class, the earliest invoked members are the ones used, so the
    mask holds a prefix of each class and "used at most as many of every class" is
    mask inclusion."""

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
        members: list[list[int]] = []
        for i in sorted(range(len(ops)), key=lambda i: ops[i].inv):
            o = ops[i]
            if o.kind == _U and o.write is not None:
                try:
                    # With a window, each expires at its own time: a class of its own.
                    c = cls_of.setdefault(o.write if window is None else i, len(cls_of))
                except TypeError:  # an unhashable operation: a class of its own
                    c = cls_of.setdefault(id(o.write), len(cls_of))
                if c == len(members):
                    members.append([])
                members[c].append(i)
        self.member_bits = [[1 << i for i in m] for m in members]
        self.cls_mask = [sum(b) for b in self.member_bits]
        self.cls_op: list[WriteOp] = [w for m in members if (w := ops[m[0]].write) is not None]
        self.cls = {i: c for c, m in enumerate(members) for i in m}
        self.invoked = [0] * len(members)  # members invoked so far, per class
        self.active: list[int] = []  # classes with a member invoked (and not expired)
        self.pre = [o.pre for o in ops]
        self.post = [o.post for o in ops]
        self.guarded = [o.kind == _G for o in ops]
        self.preserving = [o.preserves for o in ops]
        self.tclass: list[object] = [
            (o.kind, o.pre, o.post) if o.kind != _G else (o.kind, o.want, o.post, id(o.write))
            for o in ops]
        self.rank = [(o.comp, i) for i, o in enumerate(ops)]
        self.open_class: dict[object, set[int]] = {}
        self.pres_bits = sum(1 << i for i, p in enumerate(self.preserving) if p)
        # Open answered operations: those the search runs the engine for (``_G``), the
        # state-changing ones by the state they need, the reads as a mask per state.
        self.open_g: set[int] = set()
        self.open_w: dict[int, set[int]] = {}
        self.open_r: dict[int, int] = {}
        # reach() by (state, used); valid while ``invoked`` does not change.
        self._reach: dict[tuple[int, int], list[tuple[int, int]]] = {}

    # --- transitions ---------------------------------------------------------------------

    def enabled(self, i: int, s: int) -> int:
        """The state answered operation ``i`` leaves if linearized in ``s``; -1 if not."""
        if self.guarded[i]:
            return self.sm.guard(self.ops[i], s)
        return self.post[i] if s == self.pre[i] else -1

    def invoke_class(self, c: int, delta: int) -> None:
        """A member of class ``c`` is invoked (+1), or its window closes (-1: the class,
        of one member, is spent)."""
        self.invoked[c] = self.invoked[c] + 1 if delta > 0 else 0
        self.active = [c for c, k in enumerate(self.invoked) if k]
        self._reach.clear()

    def reach(self, s: int, used: int) -> list[tuple[int, int]]:
        """``(state, used)`` reachable from ``s`` by unknown writes still available,
        ``(s, used)`` first; for each state only the minimal ``used`` masks."""
        if not self.active:
            return [(s, used)]
        key = (s, used)
        hit = self._reach.get(key)
        if hit is not None:
            return hit
        out: dict[int, list[int]] = {s: [used]}
        todo = [(s, used)]
        reuse, one = self.mode == "reuse", self.mode == "one"
        effect = self.sm.effect
        while todo:
            st, u = todo.pop()
            for c in self.active:
                if reuse:
                    u2 = u
                else:
                    k = (u & self.cls_mask[c]).bit_count()
                    if k >= self.invoked[c]:
                        continue
                    u2 = u | self.member_bits[c][k]
                t = effect(self.cls_op[c], st)
                if t < 0:
                    continue  # no change: as if never applied
                have = out.setdefault(t, [])
                if reuse or one:
                    if have and (reuse or have[0].bit_count() <= u2.bit_count()):
                        continue
                    have[:] = [u2]
                else:
                    if any(x & ~u2 == 0 for x in have):
                        continue
                    have[:] = [x for x in have if u2 & ~x != 0]
                    have.append(u2)
                todo.append((t, u2))
                self.created += 1
                if self.created > self.max_states:
                    raise _Budget
        res = [(st, u) for st, us in out.items() for u in us]
        self._reach[key] = res
        return res

    # --- configurations ------------------------------------------------------------------

    def settle(self, s: int, mask: int) -> int:
        """Linearize every open state-preserving operation enabled in ``s`` (dominance)."""
        mask |= self.open_r.get(s, 0)
        for i in self.open_g:
            if self.preserving[i] and not mask >> i & 1 and self.sm.guard(self.ops[i], s) >= 0:
                mask |= 1 << i
        return mask

    def add(self, configs: _Configs, s: int, mask: int, used: int) -> bool:
        """Add a configuration unless one there dominates it (dropping those it
        dominates); whether it was added."""
        pres = mask & self.pres_bits
        key = (s, mask ^ pres)
        have = configs.get(key)
        if have is None:
            configs[key] = [(pres, used)]
        elif self.mode == "one":  # one vector: the smallest (an under-approximation)
            total = used.bit_count()
            for p, u in have:
                if pres & ~p == 0 and u.bit_count() <= total:
                    return False
            have[:] = [(p, u) for p, u in have
                       if not (p & ~pres == 0 and u.bit_count() >= total)]
            have.append((pres, used))
        else:
            for p, u in have:
                if pres & ~p == 0 and u & ~used == 0:
                    return False
            have[:] = [(p, u) for p, u in have if not (p & ~pres == 0 and used & ~u == 0)]
            have.append((pres, used))
        self.created += 1
        if self.created > self.max_states:
            raise _Budget
        return True

    def close(self, configs: _Configs, todo: list[tuple[int, int, int]]) -> None:
        """Add ``todo``'s configurations, and everything they enable, to ``configs``."""
        while todo:
            s, mask, used = todo.pop()
            mask = self.settle(s, mask)
            if self.add(configs, s, mask, used):
                self.expand(s, mask, used, todo)

    def expand(self, s: int, mask: int, used: int, todo: list[tuple[int, int, int]]) -> None:
        """Push every one-operation extension of a settled configuration."""
        rank, tclass, post, open_w, open_g = (self.rank, self.tclass, self.post, self.open_w,
                                              self.open_g)
        for s2, u2 in self.reach(s, used) if self.active else ((s, used),):
            if s2 != s:
                m2 = self.settle(s2, mask)
                if m2 != mask:
                    # Reads enabled there: that configuration, once added, is expanded
                    # itself, and its extensions dominate those from ``mask``.
                    todo.append((s2, m2, u2))
                    continue
            ws = open_w.get(s2)
            if not open_g:
                if not ws:
                    continue
                if len(ws) == 1:  # (the common case: no class to pick a member of)
                    for i in ws:
                        if not mask >> i & 1:
                            todo.append((post[i], mask | 1 << i, u2))
                    continue
            first: dict[object, int] = {}  # transition class -> its member returning first
            for i in ws or ():
                if not mask >> i & 1:
                    c = tclass[i]
                    j = first.get(c)
                    if j is None or rank[i] < rank[j]:
                        first[c] = i
            for i in open_g:
                if not mask >> i & 1 and not self.preserving[i]:
                    c = tclass[i]
                    j = first.get(c)
                    if j is None or rank[i] < rank[j]:
                        first[c] = i
            for i in first.values():
                # An open ``_W`` is enabled in the state it needs; a ``_G`` runs the engine.
                t = self.sm.guard(self.ops[i], s2) if self.guarded[i] else post[i]
                if t >= 0:
                    todo.append((t, mask | 1 << i, u2))

    def expand_by(self, i: int, s: int, mask: int, used: int,
                  todo: list[tuple[int, int, int]]) -> None:
        """Push the extensions of a settled configuration by the new operation ``i``
        (after unknown writes, and the reads these enable)."""
        for s2, u2 in self.reach(s, used):
            t = self.enabled(i, s2)
            if t >= 0:
                m2 = mask if s2 == s else self.settle(s2, mask)
                todo.append((t, m2 | 1 << i, u2))

    @staticmethod
    def each(configs: _Configs) -> list[tuple[int, int, int]]:
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
        configs: _Configs = {(0, 0): [(0, 0)]}
        for _, ret, i in events:
            o = ops[i]
            if ret == 2:  # the window of an unknown write closes
                self.invoke_class(self.cls[i], -1)
                continue
            if ret:
                # Keep the configurations that linearized it, and forget it. Dominance
                # among them is unchanged (the bit is in all of them), and no two
                # merge: the (state, state-changing) keys stay distinct.
                bit = 1 << i
                if self.preserving[i]:
                    kept = {k: h for k, have in configs.items()
                            if (h := [(p ^ bit, u) for p, u in have if p & bit])}
                else:
                    kept = {(s, np ^ bit): have for (s, np), have in configs.items()
                            if np & bit}
                if not kept:
                    return "violation", self.created
                configs = kept
                if o.kind == _G:
                    self.open_g.discard(i)
                elif o.kind == _R:
                    self.open_r[o.pre] &= ~bit
                else:
                    self.open_w[o.pre].discard(i)
                self.open_class[self.tclass[i]].discard(i)
                continue
            todo: list[tuple[int, int, int]] = []
            if o.kind == _U:
                if i in self.cls:
                    self.invoke_class(self.cls[i], 1)
                # Its effect may enable any open operation, in any configuration.
                for s, mask, u in self.each(configs):
                    self.expand(s, mask, u, todo)
                self.close(configs, todo)
                continue
            if o.kind == _G:
                self.open_g.add(i)
            elif o.kind == _R:
                self.open_r[o.pre] = self.open_r.get(o.pre, 0) | 1 << i
            else:
                self.open_w.setdefault(o.pre, set()).add(i)
            self.open_class.setdefault(self.tclass[i], set()).add(i)
            if self.preserving[i]:
                # Linearized at once where enabled (dominance): those configurations are
                # replaced, and what they enabled is enabled again after it. The others
                # stay as they were (still undominated among themselves).
                nxt: _Configs = {}
                for (s, np), have in configs.items():
                    if self.enabled(i, s) >= 0:
                        todo += [(s, np | p | 1 << i, u) for p, u in have]
                    else:
                        nxt[(s, np)] = have
                configs = nxt
            # Where another open one of its class that returns first is not linearized,
            # that one goes first (symmetry).
            earlier = 0
            for j in self.open_class[self.tclass[i]]:
                if self.rank[j] < self.rank[i]:
                    earlier |= 1 << j
            if self.active:
                for (s, np), have in configs.items():
                    for p, u in have:
                        mask = np | p
                        if earlier & ~mask == 0:
                            self.expand_by(i, s, mask, u, todo)
            elif o.kind == _W:
                # No unknown write can act: only the configurations in its state.
                pi, ti, bit = o.pre, o.post, 1 << i
                for (s, np), have in configs.items():
                    if s == pi:
                        for p, u in have:
                            mask = np | p
                            if earlier & ~mask == 0:
                                todo.append((ti, mask | bit, u))
            elif not self.preserving[i]:
                for (s, np), have in configs.items():
                    t = self.enabled(i, s)
                    if t >= 0:
                        for p, u in have:
                            mask = np | p
                            if earlier & ~mask == 0:
                                todo.append((t, mask | 1 << i, u))
            # (A state-preserving one was linearized wherever it is enabled, above.)
            self.close(configs, todo)
            if TRACE:
                ev = self.each(configs)
                print(i, ops[i].rec.id, ops[i].kind, len(ev), self.created,
                      len({c[0] for c in ev}), len({c[1] & ~self.pres_bits for c in ev}),
                      len({c[1] & self.pres_bits for c in ev}), len({c[2] for c in ev}),
                      len(configs))
        return ("linearizable" if configs else "violation"), self.created


__all__ = ["sweep"]
