"""Z3 decides the borderline cases of a fleet replay (format 4): leases and strong reads.

Leases
------
conformance/fleet_leases.py judges LeaseExclusivity on clock intervals, one pair of
steps at a time, from the two lines' bounds alone: "certain" is a violation at once;
"possible" (two replicas that may both believe they hold a lease at one true time) is a
*borderline case* and comes here, with the group's lines around it. Only those reach Z3:
the hot path only keeps a ring of the group's latest lines.

The case. At its step ``e`` (true time ``T``, its clock ``c`` inside its own lease
window) replica ``r`` believes it holds a lease; the other leader ``L`` is in the state
of its latest step ``s`` the monitor folded (its next step ``n``, if it has one, not
folded yet), in which it holds a lease over ``[w0, w1)`` of its own clock. The case
claims: L's state at ``T`` is that one (``t_s <= T < t_n``) and L's clock at ``T`` reads
within ``[w0, w1)``.

A *world* gives a true time to each line included (below) and a reading ``C`` of L's
clock at ``T``, such that

* every line is within its bounds: ``lo <= t <= hi`` (``lo`` is ``clock - err`` raised
  along its node's file, ``hi`` is ``clock + err``);
* per node, seq order: ``t_u <= t_v`` for ``u`` before ``v``, strictly when their clocks
  differ (a node's clock is one function of true time: one instant, one reading);
* causality, where the trace links a receipt to its send: a 1a before its 1b, the
  promises of ``Q`` before the ``BecomeLeader`` that used them, a 2a (``ClientWrite``,
  ``Phase2a``) before its ``Phase2b``, a lease request (``LeaseRenew``) before its
  ``LeaseGrant``;
* L's clock at ``T``: within the largest error bound the fleet allows of true time,
  ``|C - T| <= E`` (``E`` = ``replica_config.max_drift_us``, which every ``err`` stays
  within, or the largest ``err`` of the lines involved if one is larger), and
  monotone: ``C >= c_u`` for every line ``u`` of L's node with ``t_u <= T`` and ``C <=
  c_u`` for every one with ``t_u >= T``. (If those lines' clocks step back, which the
  reader accepts within the bounds, only the band ``|C - T| <= E`` is kept.) L's next
  step ``n``, when it was not read within the case's window, is a free time at least
  the next line's ``lo`` the reader knew then.

Two questions, each a Z3 query with a timeout: *overlap* (a world in which
``t_s <= T < t_n`` and ``w0 <= C < w1``) and *non-overlap* (a world in which one of them
fails). Verdicts:

* overlap unsatisfiable (and the world's constraints alone satisfiable): no overlap is
  possible, the warning is **dropped** (counted: ``z3.dropped`` in the report);
* overlap satisfiable, non-overlap unsatisfiable: a **certain** violation, at ``e``'s
  ``file:line``;
* both satisfiable: it stays a **warning**, with Z3's witness (the true times of ``e``,
  ``s`` and ``n`` and L's clock then) in its text;
* a query that times out, a case over a limit (cases per pair of leaderships, cases per
  group), or constraints that contradict each other (the lines involved break their
  own bounds or causality: other findings say where): a warning that says it was **not
  decided**, and why. Never silently.

Why this is sound. Each world constraint holds in the run that wrote the lines (given
the format's guarantees: ``|clock - t| <= err <= max_drift_us``, one clock per node,
monotone), and lines left out only remove constraints: every real run is a world of
the model, so "no world overlaps" means no run can, and "no world avoids it" means
every run overlaps. A witness may rest on lines left out (it is a world of the lines
included, not necessarily of the whole file); the text says how many lines it used.
The clock between two lines is free within the band and monotone: a line's ``err``
bounds its own reading only (ClockBound's bound grows between syncs), so ``E`` is the
fleet-wide bound, not a neighbouring line's.

Which lines. The case's three (``e``, ``s``, ``n`` when read) and the group's other
lines nearest to ``e`` in true time among the ``ring`` lines before it and those read
within ``horizon`` after it, at most ``max_events`` in all (``Limits``). A case is
decided once the lines after it have been read that far, so the group's lines are
never all kept.

A pair of leaderships (r's ballot and L's) is one warning, as in fleet_leases.py:
its cases (every step of r at which the intervals allow the overlap, up to
``max_cases_per_pair``) are decided in turn; the pair's verdict is the strongest
(certain, then possible, then not decided); it is dropped only if every case of it was
decided impossible.

What is not decided here: the question is the warning's, at ``e``'s true time and in
L's latest folded state. An overlap at a true time between two steps of r, or with a
state of L the sequencer folded in another order, is judged (or missed) by
fleet_leases.py at other steps, as before.

Strong reads
------------
The linearizability check (conformance/fleet_check.py) runs on windows widened by each
router's ``err``: a precedence there holds in every world, so a violation there is
certain. What it cannot see: a precedence some world has but not every one (a strong
read that may have been invoked after a write's acknowledgement), and one that a single
router's clock fixes although the widened windows touch (its readings 1000 then 1050
with ``err`` 100: the clock is monotone, so the first was earlier).

*Borderline keys.* Every window is narrowed by twice the fleet's error bound
(``replica_config.max_drift_us``, ``narrowed``): invoked as late and completed as early
as any world allows, so that every precedence some world has, this one has (a window
that would turn inside out is its midpoint instead, which can lose a precedence of an
operation shorter than four bounds: the one place the search for borderline keys is not
complete). A key linearizable on widened windows but not on narrowed ones is borderline.

*A world* of a key: the true times of each operation's invocation and completion, each
within its router's ``err`` of the reading (read back from the router's segment:
``router_ops``), the invocation not after the completion, and each router's readings
in their order (strictly earlier where the reading is smaller). Precedences fixed by
the bounds or by one router's order hold in every world; the rest are free.

*The questions* (``decide_read_key``). A key's violation only grows with its
precedences. Z3 proposes worlds and the linearizability checker judges each one, its
operations pinned to the world's times (integers in the same order):

* possible: a world that violates. A world that does not excludes every world whose
  free precedences it includes; none left: the borderline is **dropped** (counted);
* certain: no world that does not violate. A world that violates excludes every world
  whose free precedences include its own; none left: a **violation** (at the
  operations' ``file:line``), else a **warning** with the violating world's true times.

Each query has the lease check's timeout, each question at most ``READ_MAX_ROUNDS``
worlds; a key over that, over ``READ_MAX_OPS`` operations, or beyond ``READ_MAX_KEYS``
keys in a group is a warning that says it was **not decided**. What is assumed: a
router's clock is monotone (as a node's), and every router's ``err`` is within
``max_drift_us`` (a larger one makes the search for borderline keys incomplete, never
a verdict wrong). Eventually consistent reads are not decided here.
"""

from __future__ import annotations

import bisect
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import orjson
import z3

from conformance.monitor import Violation
from conformance.z3_util import Z3Expr, _fraction, _num, check3
from reference.client import HistoryRecord
from reference.trace_events import action_of

INF = 1 << 62
LeaseKey = tuple[str, str, int, int]
"""(r, L, r's ballot, L's ballot): one pair of leaderships."""


@dataclass(frozen=True, slots=True)
class Limits:
    timeout_ms: int = 2000
    """Per Z3 query."""
    max_events: int = 48
    """Lines per case (the case's own three always count)."""
    max_cases_per_pair: int = 16
    max_cases: int = 400
    """Cases decided per group; the rest are reported not decided."""
    ring: int = 128
    """Lines of the group kept before a case."""
    after: int = 256
    """Lines read after a case at most before it is decided."""
    horizon_errs: int = 4
    """A case is decided once a line with ``lo`` beyond its own ``hi`` plus this many
    error bounds is read (or ``after`` lines, or the group's end)."""


DEFAULT_LIMITS = Limits()


# --- lines and their causal links --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Line:
    """One trace line as the model sees it."""

    node: str
    replica: str
    seq: int
    clock: int
    lo: int
    hi: int
    action: str
    where: str
    sends: tuple[tuple[Any, ...], ...]
    receives: tuple[tuple[Any, ...], ...]

    @property
    def label(self) -> str:
        return f"{self.replica}'s {self.action} ({self.where})"


def _ballot(ev: Any) -> int:
    post = getattr(ev, "post", None)
    return -1 if post is None else int(post.bal)


def messages(ev: Any, action: str) -> tuple[tuple[tuple[Any, ...], ...],
                                            tuple[tuple[Any, ...], ...]]:
    """(messages the step sends, messages it receives), each a key both sides share."""
    a, r = ev.args, ev.replica
    if action == "Phase1a":
        return ((("1a", a.b, r),), ())
    if action == "Phase1b":
        m = a.m
        return ((("1b", m.bal, r, m.src),), (("1a", m.bal, m.src),))
    if action == "BecomeLeader":
        return ((), tuple(("1b", a.b, q, r) for q in a.Q if q != r))
    if action == "ClientWrite":
        return ((("2a", _ballot(ev), a.s, r),), ())
    if action == "Phase2a":
        return ((("2a", a.b, a.s, r),), ())
    if action == "Phase2b":
        m = a.m
        return ((), (("2a", m.bal, m.slot, m.src),))
    if action == "LeaseRenew":
        return ((("lease", _ballot(ev), a.start, r),), ())
    if action == "LeaseGrant":
        m = a.m
        return ((), (("lease", m.bal, m.start, m.src),))
    return ((), ())


def line_of(ev: Any, nl: Any) -> Line:
    action = action_of(ev)
    sends, receives = messages(ev, action)
    return Line(nl.header.node, ev.replica, nl.header.seq, nl.header.clock, nl.lo, nl.hi,
                action, nl.where, sends, receives)


# --- one case ------------------------------------------------------------------------------


@dataclass(slots=True)
class LeaseCase:
    """A borderline case of fleet_leases.py: ``r`` (at ``line``) and ``other`` (in the
    state of ``other_step``) may both believe they hold a lease."""

    key: LeaseKey
    text: str
    """fleet_leases.py's description of the two leases (no verdict)."""
    step: tuple[Any, Any]
    """r's step: (typed event, NodeLine)."""
    other: str
    other_step: tuple[Any, Any]
    """L's latest folded step: (typed event, NodeLine)."""
    window: tuple[int, int]
    """L's lease, ``[w0, w1)`` of its clock."""
    next_lo: int
    """A lower bound of L's next step's true time (INF: it has none)."""
    before: list[tuple[Any, Any]] = field(default_factory=list)
    after: list[tuple[Any, Any]] = field(default_factory=list)
    horizon: int = INF


@dataclass(frozen=True, slots=True)
class Outcome:
    verdict: str
    """``impossible``, ``certain``, ``possible`` or ``undecided``."""
    detail: str
    events: int
    seconds: float
    queries: int


def _select(case: LeaseCase, max_events: int) -> tuple[list[Line], Line, Line, Line | None]:
    """The lines of the case's world: (all, e, s, n)."""
    ev, nl = case.step
    oev, onl = case.other_step
    e, s = line_of(ev, nl), line_of(oev, onl)
    seen = {id(nl), id(onl)}
    pool: list[tuple[Any, Any]] = []
    for pair in (*case.before, *case.after):
        if id(pair[1]) not in seen:
            seen.add(id(pair[1]))
            pool.append(pair)
    n = None
    other_node = onl.header.node
    for oe, o in case.after:
        if oe.replica == case.other and o.header.node == other_node \
                and o.header.seq > onl.header.seq:
            n = line_of(oe, o)
            pool = [p for p in pool if p[1] is not o]
            break
    chosen = [e, s] + ([n] if n is not None else [])

    def distance(p: tuple[Any, Any]) -> int:
        o = p[1]
        return int(max(0, o.lo - e.hi, e.lo - o.hi))

    room = max(0, max_events - len(chosen))
    chosen += [line_of(*p) for p in sorted(pool, key=distance)[:room]]
    return chosen, e, s, n


def decide(case: LeaseCase, max_drift: int, limits: Limits | None = None) -> Outcome:
    """Decide one case (module docstring)."""
    limits = limits or DEFAULT_LIMITS
    t0 = time.perf_counter()
    lines, e, s, n = _select(case, limits.max_events)
    w0, w1 = case.window
    other_node = s.node
    on_node = sorted((x for x in lines if x.node == other_node), key=lambda x: x.seq)
    bound = max([max_drift, *(x.hi - x.clock for x in on_node)])  # hi is clock + err

    solver = z3.Solver()
    solver.set("timeout", limits.timeout_ms)
    t: dict[int, Z3Expr] = {}
    for i, x in enumerate(lines):
        v = t[id(x)] = z3.Real(f"t{i}")
        solver.add(v >= x.lo, v <= x.hi)
    by_node: dict[str, list[Line]] = {}
    for x in lines:
        by_node.setdefault(x.node, []).append(x)
    for xs in by_node.values():
        xs.sort(key=lambda x: x.seq)
        for u, v in itertools.pairwise(xs):
            solver.add(t[id(u)] < t[id(v)] if u.clock != v.clock else t[id(u)] <= t[id(v)])
    sends: dict[tuple[Any, ...], list[Line]] = {}
    for x in lines:
        for k in x.sends:
            sends.setdefault(k, []).append(x)
    for x in lines:
        for k in x.receives:
            us = sends.get(k, [])
            if us:
                solver.add(z3.Or(*(t[id(u)] <= t[id(x)] for u in us)))
    tx, cx = t[id(e)], z3.Real("C")
    solver.add(cx - tx <= bound, tx - cx <= bound)
    monotone = all(u.clock <= v.clock for u, v in itertools.pairwise(on_node))
    if monotone:
        for u in on_node:
            solver.add(z3.Implies(t[id(u)] <= tx, cx >= u.clock),
                       z3.Implies(t[id(u)] >= tx, cx <= u.clock))
    ts = t[id(s)]
    tn: Z3Expr | None = None
    if n is not None:
        tn = t[id(n)]
    elif case.next_lo < INF:
        tn = z3.Real("t_next")
        solver.add(tn >= case.next_lo, tn >= ts)
    holds = [ts <= tx, cx >= w0, cx < w1]
    if tn is not None:
        holds.append(tx < tn)
    queries = 0

    def ask(extra: Z3Expr | None) -> str:
        nonlocal queries
        queries += 1
        solver.push()
        if extra is not None:
            solver.add(extra)
        r = check3(solver)
        if r != "sat":
            solver.pop()
        return r

    used = (f"{len(lines)} lines, {len(by_node)} nodes"
            + ("" if monotone else f"; {other_node}'s clock steps back among them"))

    def done(verdict: str, detail: str) -> Outcome:
        return Outcome(verdict, detail, len(lines), time.perf_counter() - t0, queries)

    over = ask(z3.And(*holds))
    if over == "unknown":
        return done("undecided", f"Z3 gave no answer within {limits.timeout_ms} ms ({used})")
    if over == "unsat":
        base = ask(None)
        if base == "sat":
            solver.pop()
            return done("impossible", f"no true times of the {used} allow it")
        if base == "unknown":
            return done("undecided", f"Z3 gave no answer within {limits.timeout_ms} ms "
                                     f"({used})")
        return done("undecided", f"the {used} contradict their own bounds, order or "
                                 f"causality")
    m = solver.model()
    solver.pop()

    def at(x: Z3Expr) -> str:
        return _num(_fraction(m, x))

    witness = (f"T = {at(tx)}us for {e.label}, {case.other}'s clock reads {at(cx)}us "
               f"there; {s.label} at {at(ts)}us")
    if n is not None:
        witness += f", {n.label} at {at(t[id(n)])}us"
    elif tn is not None:
        witness += f", its next step after {at(tn)}us"
    nonover = ask(z3.Or(*(z3.Not(h) for h in holds)))
    if nonover == "sat":
        solver.pop()
        return done("possible", f"Z3 witness over {used}: {witness}")
    if nonover == "unknown":
        return done("undecided", f"Z3 found the overlap possible ({witness}) but gave no "
                                 f"answer on its certainty within {limits.timeout_ms} ms "
                                 f"({used})")
    return done("certain", f"no true times of the {used} avoid it (e.g. {witness})")


# --- a group's cases -------------------------------------------------------------------------


@dataclass(slots=True)
class Z3Stats:
    pairs: int = 0
    """Borderline pairs of leaderships: the warnings fleet_leases.py would give alone."""
    cases: int = 0
    queries: int = 0
    dropped: int = 0
    """Warnings dropped: every case of the pair impossible."""
    certain: int = 0
    possible: int = 0
    undecided: int = 0
    seconds: float = 0.0
    max_seconds: float = 0.0
    """The slowest case or key (its queries together)."""
    read_keys: int = 0
    """Keys whose strong operations are linearizable on widened windows but not in their
    narrowest world (module docstring, "Strong reads")."""
    read_dropped: int = 0
    read_certain: int = 0
    read_possible: int = 0
    read_undecided: int = 0
    read_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"pairs": self.pairs, "cases": self.cases, "queries": self.queries,
                "dropped": self.dropped, "certain": self.certain, "possible": self.possible,
                "undecided": self.undecided, "seconds": round(self.seconds, 3),
                "max_seconds": round(self.max_seconds, 3),
                "reads": {"keys": self.read_keys, "dropped": self.read_dropped,
                          "certain": self.read_certain, "possible": self.read_possible,
                          "undecided": self.read_undecided,
                          "seconds": round(self.read_seconds, 3)}}


@dataclass(slots=True)
class _Pair:
    first: LeaseCase
    cases: int = 0
    impossible: int = 0
    over_pair: int = 0
    over_group: int = 0
    certain: tuple[LeaseCase, Outcome] | None = None
    possible: tuple[LeaseCase, Outcome] | None = None
    undecided: tuple[LeaseCase, Outcome] | None = None


class LeaseBorderline:
    """One group's borderline lease cases: a ring of its latest lines (``on_step``, for
    every line the monitor folds), the cases (``add``, from fleet_leases.py), decided in
    batches as the lines after them come in, and the findings (``finish``)."""

    def __init__(self, max_drift: int, next_lo: Callable[[str], int],
                 limits: Limits | None = None) -> None:
        self.max_drift = max_drift
        self.next_lo = next_lo
        self.limits = limits or DEFAULT_LIMITS
        self.ring: deque[tuple[Any, Any]] = deque(maxlen=self.limits.ring)
        self.open: list[LeaseCase] = []
        self.pairs: dict[LeaseKey, _Pair] = {}
        self.stats = Z3Stats()

    def on_step(self, ev: Any, nl: Any) -> None:
        self.ring.append((ev, nl))
        if self.open:
            self._feed(ev, nl)

    def _feed(self, ev: Any, nl: Any) -> None:
        ready = []
        for c in self.open:
            c.after.append((ev, nl))
            if nl.lo > c.horizon or len(c.after) >= self.limits.after:
                ready.append(c)
        if ready:
            self.open = [c for c in self.open if all(c is not r for r in ready)]
            self._decide(ready)

    def add(self, case: LeaseCase) -> None:
        p = self.pairs.get(case.key)
        if p is None:
            p = self.pairs[case.key] = _Pair(case)
        if p.certain is not None:
            return
        if p.cases >= self.limits.max_cases_per_pair:
            p.over_pair += 1
            return
        if self.stats.cases >= self.limits.max_cases:
            p.over_group += 1
            return
        p.cases += 1
        self.stats.cases += 1
        case.before = list(self.ring)
        nl, onl = case.step[1], case.other_step[1]
        err = max(self.max_drift, nl.hi - nl.header.clock, onl.hi - onl.header.clock)
        case.horizon = max(nl.hi, onl.hi) + self.limits.horizon_errs * err
        self.open.append(case)

    def _decide(self, cases: Iterable[LeaseCase]) -> None:
        for c in cases:
            p = self.pairs[c.key]
            if p.certain is not None:
                continue
            onl = c.other_step[1]
            if c.next_lo < INF and not any(oe.replica == c.other
                                           and o.header.node == onl.header.node
                                           for oe, o in c.after):
                # L's next step is still to come: the reader knows more of it now.
                c.next_lo = max(c.next_lo, self.next_lo(onl.header.node))
            try:
                out = decide(c, self.max_drift, self.limits)
            except z3.Z3Exception as exc:
                out = Outcome("undecided", f"Z3 failed: {exc}", 0, 0.0, 0)
            self.stats.queries += out.queries
            self.stats.seconds += out.seconds
            self.stats.max_seconds = max(self.stats.max_seconds, out.seconds)
            if out.verdict == "impossible":
                p.impossible += 1
            elif out.verdict == "certain":
                p.certain = (c, out)
            elif out.verdict == "possible":
                p.possible = p.possible or (c, out)
            elif p.undecided is None:
                p.undecided = (c, out)
            c.before, c.after = [], []

    def finish(self, certain_keys: set[LeaseKey]) -> tuple[list[Violation], list[Violation]]:
        """Decide what is left; (violations, warnings). ``certain_keys``: pairs that
        fleet_leases.py found certain on intervals alone (already violations)."""
        if self.open:
            left, self.open = self.open, []
            self._decide(left)
        violations: list[Violation] = []
        warnings: list[Violation] = []
        st = self.stats
        for key, p in self.pairs.items():
            if key in certain_keys:
                continue
            st.pairs += 1
            if p.certain is not None:
                c, out = p.certain
                st.certain += 1
                violations.append(_finding(c, f"{c.text}: both, for every true time the "
                                              f"clocks' bounds allow (decided by Z3: "
                                              f"{out.detail})"))
                continue
            skipped = p.over_pair + p.over_group
            note = ""
            if skipped:
                why = (f"the limit of {self.limits.max_cases_per_pair} per pair"
                       if p.over_pair else
                       f"the group's limit of {self.limits.max_cases} cases")
                note = (f"; {skipped} more step(s) of this pair over {why} were not "
                        f"decided")
            if p.possible is not None:
                c, out = p.possible
                st.possible += 1
                warnings.append(_finding(c, f"{c.text}: possibly both (the clocks' bounds "
                                            f"allow it, not certain; {out.detail}{note})"))
            elif p.undecided is not None:
                c, out = p.undecided
                st.undecided += 1
                warnings.append(_finding(c, f"{c.text}: possibly both (not decided: "
                                            f"{out.detail}{note})"))
            elif skipped:
                st.undecided += 1
                c = p.first
                warnings.append(_finding(c, f"{c.text}: possibly both (not decided: "
                                            f"{p.impossible} step(s) of this pair "
                                            f"decided impossible by Z3{note})"))
            else:
                st.dropped += 1
        return violations, warnings


def _finding(c: LeaseCase, message: str) -> Violation:
    ev, nl = c.step
    return Violation("LeaseExclusivity", message, ev, nl.where, action_of(ev))


# --- strong reads: linearizability over the routers' clocks --------------------------------


READ_MAX_KEYS = 20
"""Keys per group whose borderline is decided; the rest are reported not decided."""
READ_MAX_OPS = 2000
"""Operations of one key at most in a Z3 problem."""
READ_MAX_ROUNDS = 24
"""Worlds tried per key and question (each a Z3 query and a linearizability check)."""


@dataclass(frozen=True, slots=True)
class RouterOp:
    """One history record as its router logged it (not widened)."""

    rec: HistoryRecord
    """As loaded (fleet_history.py widened its window by ``err``)."""
    where: str
    router: str
    invoke: int
    complete: int
    """-1: outstanding."""
    err: int

    @property
    def predecessor(self) -> bool:
        """It can precede another operation (the checker takes a write of unknown outcome,
        a timeout, as never completing)."""
        return self.complete != -1 and self.rec.status not in (None, "timeout")


def router_ops(recs: list[HistoryRecord], line_of: dict[str, str],
               origin: dict[str, tuple[str, int]] | None = None) -> list[RouterOp]:
    """The records as their routers logged them: from ``origin`` (request id -> router,
    ``err``: the widened window less ``err`` is the router's reading), or else read back
    from their routers' segments (a few keys' records, never a whole history)."""
    from conformance.fleet_input import segment_lines

    if origin is not None and all(r.id in origin for r in recs):
        got = []
        for r in recs:
            router, err = origin[r.id]
            got.append(RouterOp(r, line_of[r.id], router, r.invoke_us + err,
                                r.complete_us - err if r.complete_us != -1 else -1, err))
        return got

    want: dict[str, dict[int, HistoryRecord]] = {}
    for r in recs:
        path, _, num = line_of[r.id].rpartition(":")
        want.setdefault(path, {})[int(num)] = r
    out: list[RouterOp] = []
    for path, lines in want.items():
        last = max(lines)
        for ln, line in enumerate(segment_lines(Path(path)), start=1):
            rec = lines.get(ln)
            if rec is not None:
                obj = orjson.loads(line)
                out.append(RouterOp(rec, f"{path}:{ln}", str(obj["router"]), int(obj["invoke"]),
                                    int(obj["complete"]), int(obj["err"])))
            if ln >= last:
                break
    if len(out) != len(recs):
        raise ValueError(f"{len(recs) - len(out)} history line(s) could not be read back")
    return out


def narrowed(rec: HistoryRecord, bound: int) -> HistoryRecord:
    """``rec`` (widened by its ``err`` <= ``bound``) in its narrowest world: invoked as late
    and completed as early as ``bound`` allows, so that every precedence some world has,
    it has (a window that would turn inside out is its midpoint instead)."""
    inv = rec.invoke_us + 2 * bound
    if rec.complete_us == -1:
        return replace(rec, invoke_us=inv)
    comp = rec.complete_us - 2 * bound
    if comp < inv:
        inv = comp = (rec.invoke_us + rec.complete_us) // 2
    return replace(rec, invoke_us=inv, complete_us=comp)


@dataclass(frozen=True, slots=True)
class ReadOutcome:
    verdict: str
    """``impossible``, ``certain``, ``possible`` or ``undecided``."""
    where: str
    """``path:line`` of the violating operations (up to 5)."""
    explanation: str
    detail: str
    seconds: float
    queries: int


def _pin(ops: list[RouterOp], m: Any, ti: list[Z3Expr], tc: list[Z3Expr | None]
         ) -> tuple[list[HistoryRecord], list[int], list[int]]:
    """The world of model ``m`` as a history: integer times in the same order as the
    world's (equal stays equal), near its times."""
    vals: list[tuple[Fraction, int, int]] = []
    for i in range(len(ops)):
        vals.append((_fraction(m, ti[i]), i, 0))
        x = tc[i]
        if x is not None:
            vals.append((_fraction(m, x), i, 1))
    vals.sort()
    inv = [0] * len(ops)
    comp = [-1] * len(ops)
    prev_v: Fraction | None = None
    prev_p = 0
    for v, i, which in vals:
        if prev_v is None or v != prev_v:
            p = int(v) if prev_v is None else max(int(v), prev_p + 1)
            prev_v, prev_p = v, p
        if which:
            comp[i] = prev_p
        else:
            inv[i] = prev_p
    recs = [replace(o.rec, invoke_us=inv[i],
                    complete_us=comp[i] if o.complete != -1 else -1)
            for i, o in enumerate(ops)]
    return recs, inv, comp


def decide_read_key(ops: list[RouterOp], hint: list[HistoryRecord],
                    timeout_ms: int | None = None, rounds: int = READ_MAX_ROUNDS
                    ) -> ReadOutcome:
    """Decide one key whose history is linearizable on widened windows but not in its
    narrowest world (``hint``: the checker's minimal violating sub-history there).

    A world: true times ``ti``, ``tc`` of each operation's invocation and completion,
    each within its router's ``err`` of its reading, ``ti <= tc``, and one router's
    readings in their order (a clock is monotone: a smaller reading is an earlier
    time). Non-linearizability only grows with precedence (``tc_a < ti_b``), so Z3
    proposes worlds and the checker judges each one, pinned to its times: *possible*
    if some world violates (a world that does not is excluded with every world whose
    precedences it includes); *certain* if none does not (a violating world's minimal
    sub-history excludes every world with its precedences)."""
    from conformance.linearizability import check_history

    t0 = time.perf_counter()
    ms = timeout_ms or DEFAULT_LIMITS.timeout_ms
    n = len(ops)
    ti = [z3.Real(f"i{k}") for k in range(n)]
    tc: list[Z3Expr | None] = [z3.Real(f"c{k}") if o.complete != -1 else None
                               for k, o in enumerate(ops)]
    base: list[Z3Expr] = []
    readings: dict[str, list[tuple[int, Z3Expr]]] = {}
    for k, o in enumerate(ops):
        base += [ti[k] >= o.invoke - o.err, ti[k] <= o.invoke + o.err]
        readings.setdefault(o.router, []).append((o.invoke, ti[k]))
        c = tc[k]
        if c is not None:
            base += [c >= o.complete - o.err, c <= o.complete + o.err, ti[k] <= c]
            readings[o.router].append((o.complete, c))
    for rs in readings.values():
        rs.sort(key=lambda x: x[0])
        runs: list[list[tuple[int, Z3Expr]]] = []
        for x in rs:
            if runs and runs[-1][0][0] == x[0]:
                runs[-1].append(x)
            else:
                runs.append([x])
        for lo_run, hi_run in itertools.pairwise(runs):
            base += [a < b for _, a in lo_run for _, b in hi_run]
    # Precedences some world may have and some may not (the others are fixed): b's
    # invocation reading within both errors of a's completion reading.
    index = {o.rec.id: k for k, o in enumerate(ops)}
    by_invoke = sorted(range(n), key=lambda k: ops[k].invoke)
    invokes = [ops[k].invoke for k in by_invoke]
    widest = max((o.err for o in ops), default=0)
    free: dict[tuple[int, int], Z3Expr] = {}
    for a, oa in enumerate(ops):
        if not oa.predecessor:
            continue
        lo = bisect.bisect_right(invokes, oa.complete - oa.err - widest)
        hi = bisect.bisect_right(invokes, oa.complete + oa.err + widest)
        for b in by_invoke[lo:hi]:
            ob = ops[b]
            if a == b or oa.complete - oa.err >= ob.invoke + ob.err:
                continue  # never
            if oa.complete + oa.err < ob.invoke - ob.err or (
                    oa.router == ob.router and oa.complete < ob.invoke):
                continue  # always
            c = tc[a]
            assert c is not None
            free[a, b] = c < ti[b]
    queries = 0

    def world(s: Any) -> tuple[str, Any]:
        nonlocal queries
        queries += 1
        r = check3(s)
        return r, (s.model() if r == "sat" else None)

    def judge(m: Any) -> tuple[Any, list[HistoryRecord], list[int], list[int]]:
        recs, inv, comp = _pin(ops, m, ti, tc)
        return check_history(recs), recs, inv, comp

    def present(inv: list[int], comp: list[int]) -> list[Z3Expr]:
        """The free precedences the pinned world has. A key's violation only grows with
        them (its minimal sub-history alone may not: it counts on the other operations'
        invocations too), so every world that has them all violates as well."""
        return [e for (a, b), e in free.items() if comp[a] < inv[b]]

    def done(verdict: str, where: str = "", explanation: str = "", detail: str = ""
             ) -> ReadOutcome:
        return ReadOutcome(verdict, where, explanation, detail, time.perf_counter() - t0,
                           queries)

    used = f"{n} operations, {len(readings)} router(s)"
    # Possible: a world that violates.
    s = z3.Solver()
    s.set("timeout", ms)
    s.add(*base)
    first = [free[index[a.id], index[b.id]] for a in hint for b in hint
             if a.id in index and b.id in index and (index[a.id], index[b.id]) in free
             and a.complete_us != -1 and a.complete_us < b.invoke_us]
    s.push()
    s.add(*first)
    r, m = world(s)
    s.pop()
    if r != "sat":
        r, m = world(s)
    bad = None
    for _ in range(rounds):
        if r == "unknown":
            return done("undecided", detail=f"Z3 gave no answer within {ms} ms ({used})")
        if r == "unsat":
            return done("impossible", detail=f"no true times of the {used} make it "
                                             f"non-linearizable")
        lin, _, inv, comp = judge(m)
        if lin.violations:
            bad = (lin.violations[0], inv, comp)
            break
        absent = [e for (a, b), e in free.items() if not comp[a] < inv[b]]
        s.add(z3.Or(*absent) if absent else z3.BoolVal(False))
        r, m = world(s)
    if bad is None:
        return done("undecided", detail=f"{rounds} worlds of the {used} tried, none "
                                        f"violates, more remain")
    v, inv, comp = bad
    where = ", ".join(ops[index[x.id]].where for x in v.history[:5])
    shown = "; ".join(f"{x.id} [{inv[index[x.id]]}.."
                      f"{comp[index[x.id]] if comp[index[x.id]] != -1 else '?'}]us"
                      for x in v.history[:5])
    witness = f"Z3 witness over {used}: true times {shown}"
    # Certain: no world that does not violate.
    s2 = z3.Solver()
    s2.set("timeout", ms)
    s2.add(*base)
    s2.add(z3.Not(z3.And(*present(inv, comp))))
    for _ in range(rounds):
        r, m = world(s2)
        if r == "unknown":
            return done("undecided", where, v.explanation,
                        f"possible ({witness}), but Z3 gave no answer on its certainty "
                        f"within {ms} ms")
        if r == "unsat":
            return done("certain", where, v.explanation,
                        f"no true times of the {used} make it linearizable")
        lin, _, inv2, comp2 = judge(m)
        if not lin.violations:
            return done("possible", where, v.explanation, witness)
        s2.add(z3.Not(z3.And(*present(inv2, comp2))))
    return done("undecided", where, v.explanation,
                f"possible ({witness}); {rounds} worlds tried for its certainty, each "
                f"violates, more remain")


def decide_reads(records: list[HistoryRecord], line_of: dict[str, str],
                 flagged: dict[Any, list[HistoryRecord]], stats: Z3Stats,
                 origin: dict[str, tuple[str, int]] | None = None
                 ) -> tuple[list[str], list[str]]:
    """(violations, warnings) for the keys ``flagged`` (key -> the narrowest world's
    violating sub-history); counts in ``stats``."""
    by_key: dict[Any, list[HistoryRecord]] = {}
    for r in records:
        if r.key in flagged:
            by_key.setdefault(r.key, []).append(r)
    violations: list[str] = []
    warnings: list[str] = []
    over: list[str] = []
    for i, (key, hint) in enumerate(flagged.items()):
        recs = by_key.get(key, [])
        stats.read_keys += 1
        head = ", ".join(line_of.get(r.id, "?") for r in hint[:5])
        if i >= READ_MAX_KEYS:
            stats.read_undecided += 1
            over.append(head)
            continue
        if len(recs) > READ_MAX_OPS:
            stats.read_undecided += 1
            warnings.append(f"{head}: Linearizability: possibly not linearizable (not "
                            f"decided: {len(recs)} operations on the key, over the limit "
                            f"of {READ_MAX_OPS})")
            continue
        try:
            ops = router_ops(recs, line_of, origin)
        except (ValueError, KeyError, OSError, orjson.JSONDecodeError) as exc:
            stats.read_undecided += 1
            warnings.append(f"{head}: Linearizability: possibly not linearizable (not "
                            f"decided: {exc})")
            continue
        try:
            out = decide_read_key(ops, hint)
        except z3.Z3Exception as exc:
            out = ReadOutcome("undecided", "", "", f"Z3 failed: {exc}", 0.0, 0)
        stats.queries += out.queries
        stats.read_seconds += out.seconds
        stats.max_seconds = max(stats.max_seconds, out.seconds)
        where = out.where or head
        if out.verdict == "impossible":
            stats.read_dropped += 1
        elif out.verdict == "certain":
            stats.read_certain += 1
            violations.append(f"{where}: Linearizability: {out.explanation} (certain under "
                              f"the routers' clock bounds: decided by Z3, {out.detail})")
        elif out.verdict == "possible":
            stats.read_possible += 1
            warnings.append(f"{where}: Linearizability: possibly {out.explanation} (the "
                            f"routers' clock bounds allow it, not certain; {out.detail})")
        else:
            stats.read_undecided += 1
            warnings.append(f"{where}: Linearizability: possibly not linearizable (not "
                            f"decided: {out.detail})")
    if over:
        warnings.append(f"{over[0]}: Linearizability: possibly not linearizable (not "
                        f"decided: this key and {len(over) - 1} more are over the limit of "
                        f"{READ_MAX_KEYS} keys per group)")
    return violations, warnings


__all__ = ["DEFAULT_LIMITS", "LeaseBorderline", "LeaseCase", "Limits", "Line", "Outcome",
           "RouterOp", "Z3Stats", "decide", "decide_read_key", "decide_reads", "line_of",
           "messages", "narrowed", "router_ops"]
