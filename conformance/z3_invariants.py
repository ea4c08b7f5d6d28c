"""Z3 proofs of the lease and quorum invariants of specs/Replication.tla, and a Z3
check for overlapping leases in traces.

1. **Lease safety** (``prove_lease_safety``, ``check_replica_config``,
   ``require_lease_safety``): for given LeaseDur, LeaseMargin and MaxDrift there is
   no real time at which an old leader L1 still believes it holds its lease while a
   newer leader L2 serves, for every clock behaviour the clock model allows and every
   message delay.  ``prove_lease_condition`` proves the same for symbolic parameters
   under the spec's condition ``LeaseMargin >= 2 * MaxDrift``.
2. **Quorum intersection** (``prove_quorum_intersection``): any two quorums of any
   membership configuration intersect in a member, for a symbolic number of members
   of each kind and, with bit-vectors, for every explicit configuration up to a size.
   The rule is a parameter, so rules for log replicas can be checked the same way.
3. **Leases in traces** (``check_trace_leases``, ``load_trace_events``): rebuild the
   leases a leader could have believed it held and decide with Z3 whether two of
   them, of different leaders, could have overlapped in real time given only the
   drift bound, the per-node order of events and causality.

Clock models
------------
The spec (section "Time", CHOICE) bounds clocks in *offset*, not in rate: a clock
never runs backwards and ``offset[r] = clock[r] - now`` stays in ``0..MaxDrift``, so
a clock may stop, or run fast, for a while.  Only the *width* of the window matters;
in the spec it is ``MaxDrift``.  Two models are offered:

* ``"spec"``: offset in ``[0, max_drift]``, window width ``W = max_drift``: exactly
  the spec's assumption (``prove_lease_safety``'s default: it takes the spec's
  parameters);
* ``"symmetric"``: ``|local - real| <= max_drift``, window width
  ``W = 2 * max_drift``: what ``reference/clocks.py`` guarantees and
  ``traces/FORMAT.md`` promises for a trace line's ``clock`` and ``real``, so the
  default of ``check_replica_config`` and the model of ``check_trace_leases``.

Optionally (``max_rate_ppm``) the offset may also change by at most
``max_rate_ppm * 1e-6`` per unit of real time, as ``reference/clocks.py``'s clocks
do; the spec does not assume it.  Time is dense (Z3 reals); every clock is a
non-decreasing function of real time.  With no rate bound the lease theorem holds
exactly when ``LeaseMargin >= 2 * W``.

The reference is meant to call ``require_lease_safety`` at startup, so this module
imports nothing from ``reference`` at run time (``ReplicaConfig`` is duck-typed).
"""

from __future__ import annotations

import bisect
import functools
import itertools
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import orjson
import z3

if TYPE_CHECKING:
    from reference.replica import ReplicaConfig

__all__ = [
    "ClockModel",
    "LeaseConfigError",
    "LeaseOverlap",
    "ProofResult",
    "QuorumCounts",
    "QuorumRule",
    "TraceFormatError",
    "TraceLease",
    "TraceLeaseResult",
    "check_replica_config",
    "check_trace_leases",
    "half_rounded_down_quorum",
    "least_safe_margin_us",
    "load_trace_events",
    "majority_quorum",
    "prove_lease_condition",
    "prove_lease_safety",
    "prove_quorum_intersection",
    "require_lease_safety",
    "rule_holds",
    "storage_majority_quorum",
    "storage_write_quorum",
]

ClockModel: TypeAlias = Literal["spec", "symmetric"]
Z3Expr: TypeAlias = Any  # z3 ships no type information

_PPM = 1_000_000


@dataclass(frozen=True, slots=True)
class ProofResult:
    """The outcome of a proof.

    ``ok``: the property holds.  Otherwise ``counterexample`` names the values of a
    violating assignment (times are exact ``Fraction``s, in microseconds).
    ``explanation`` is one line, meant for people.
    """

    ok: bool
    explanation: str
    counterexample: dict[str, Any] | None = None
    seconds: float = 0.0


class LeaseConfigError(ValueError):
    """A lease configuration for which two leaders can hold a lease at once."""


class TraceFormatError(ValueError):
    """A trace line that cannot be read; the message is ``path:line: reason``."""


# --- helpers ---------------------------------------------------------------------------


def _fraction(model: Any, expr: Z3Expr) -> Fraction:
    v = model.eval(expr, model_completion=True)
    return Fraction(int(v.numerator_as_long()), int(v.denominator_as_long()))


def _is_sat(solver: Any) -> bool:
    r = solver.check()
    if r == z3.unknown:
        raise RuntimeError(f"z3 returned unknown: {solver.reason_unknown()}")
    return bool(r == z3.sat)


def _num(x: Fraction | int) -> str:
    """A time for people: an integer when it is one, else one decimal."""
    x = Fraction(x)
    if x.denominator == 1:
        return str(x.numerator)
    return f"{float(x):.1f}"


def _window(max_drift: Z3Expr | int, clock_model: ClockModel) -> tuple[Any, Any]:
    if clock_model == "spec":
        return 0, max_drift
    if clock_model == "symmetric":
        return -max_drift, max_drift
    raise ValueError(f"unknown clock model {clock_model!r}; use 'spec' or 'symmetric'")


def _clock_words(clock_model: ClockModel, max_rate_ppm: int | None) -> str:
    base = ("spec clocks: offset in [0, MaxDrift]" if clock_model == "spec"
            else "symmetric clocks: |local - real| <= MaxDrift")
    rate = "no rate bound" if max_rate_ppm is None else f"offset rate <= {max_rate_ppm} ppm"
    return f"{base}, non-decreasing, {rate}"


# --- 1. lease safety -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _LeaseVars:
    t_req: Z3Expr      # real time L1 sends its lease request
    off1_req: Z3Expr   # L1's offset then
    t_grant: Z3Expr    # real time the replica in both quorums grants L1's request
    t_promise: Z3Expr  # real time that replica promises L2's ballot
    who: Z3Expr        # that replica: 0 = L1 itself, 1 = L2 itself, 2 = a third replica
    t_elect: Z3Expr    # real time L2 is elected (BecomeLeader)
    off2_elect: Z3Expr
    wait: Z3Expr       # whether L2 waits (LeaseWaitNeeded)
    t_x: Z3Expr        # the real time both would hold
    off1_x: Z3Expr
    off2_x: Z3Expr


def _lease_model(dur: Z3Expr, margin: Z3Expr, lo: Z3Expr, hi: Z3Expr, *,
                 max_delay: int | None, rate: Fraction | None) -> tuple[list[Z3Expr], _LeaseVars]:
    """Constraints whose solutions are exactly the lease-safety violations.

    The argument of the spec's CHOICE comment on leases, with nothing assumed beyond
    the spec's rules:

    * L1 asks for a lease at real ``t_req``, its clock reading ``s1``; it believes it
      holds the lease while its clock is below ``s1 + LeaseDur`` (the spec's
      abstraction: from the moment it asks, as if every grant arrived at once) and
      while it leads.
    * L1's lease needs a quorum of grants (L1 itself included) and L2's election a
      quorum of promises (L2 included).  Two quorums intersect
      (``prove_quorum_intersection``), so one replica ``who`` did both: L1, L2 or a
      third replica.  A replica grants only for a ballot >= its promise and L2's
      ballot is higher, so that replica granted before it promised:
      ``t_req <= t_grant <= t_promise <= t_elect`` (message delays >= 0, and at most
      ``max_delay`` if given).  If it is L1, L1 stepped down when it promised, which
      ended its lease.
    * LeaseWaitNeeded: if that replica is not L1 it reports a grant, so L2 waits;
      otherwise L2 may or may not wait (``wait`` is free).
    * L2 serves once its clock has advanced LeaseDur + LeaseMargin since its election
      (with the wait), or from its election (without).
    * Each clock is non-decreasing and its offset stays in ``[lo, hi]`` (and changes
      at most ``rate`` per unit of real time, if given).  Offsets are only pinned at
      the instants named here; a clock through those points exists whenever these
      constraints hold (interpolate, clamped to the window), so every solution is a
      real behaviour.

    Times are shifted so that ``t_req = 0`` (everything is invariant under a shift).
    """
    R = z3.Real
    v = _LeaseVars(
        t_req=R("t_req"), off1_req=R("off1_req"), t_grant=R("t_grant"),
        t_promise=R("t_promise"), who=z3.Int("who"), t_elect=R("t_elect"),
        off2_elect=R("off2_elect"), wait=z3.Bool("wait"), t_x=R("t_x"),
        off1_x=R("off1_x"), off2_x=R("off2_x"))
    s1 = v.t_req + v.off1_req             # L1's clock when it asks
    e2 = v.t_elect + v.off2_elect         # L2's clock at its election
    c1 = v.t_x + v.off1_x                 # L1's clock at t_x
    c2 = v.t_x + v.off2_x                 # L2's clock at t_x
    cs: list[Z3Expr] = [v.t_req == 0]
    cs += [z3.And(lo <= o, o <= hi) for o in (v.off1_req, v.off1_x, v.off2_elect, v.off2_x)]
    # the replica in both quorums: its grant precedes its promise
    cs += [
        z3.And(v.who >= 0, v.who <= 2),
        z3.If(v.who == 0, v.t_grant == v.t_req, v.t_grant >= v.t_req),
        v.t_grant <= v.t_promise,
        v.t_promise <= v.t_elect,
        z3.Implies(v.who == 0, v.t_x < v.t_promise),  # L1 promised: stepped down
        z3.Implies(v.who != 0, v.wait),                # a voter reports a grant
    ]
    if max_delay is not None:
        cs += [z3.Implies(v.who != 0, v.t_grant - v.t_req <= max_delay),
               z3.Implies(v.who != 1, v.t_elect - v.t_promise <= max_delay)]
    # L1 believes it holds its lease at t_x; L2 serves at t_x
    cs += [v.t_x >= v.t_req, c1 >= s1, c1 < s1 + dur,
           v.t_x >= v.t_elect, c2 >= e2, c2 >= e2 + z3.If(v.wait, dur + margin, 0)]
    if rate is not None:
        r = z3.RealVal(rate)
        cs += [v.off1_x - v.off1_req <= r * (v.t_x - v.t_req),
               v.off1_req - v.off1_x <= r * (v.t_x - v.t_req),
               v.off2_x - v.off2_elect <= r * (v.t_x - v.t_elect),
               v.off2_elect - v.off2_x <= r * (v.t_x - v.t_elect)]
    return cs, v


_WHO = {0: "L1 itself", 1: "L2 itself", 2: "a third replica"}


def _lease_counterexample(model: Any, v: _LeaseVars, dur: int, margin: int) -> dict[str, Any]:
    f = functools.partial(_fraction, model)
    t_req, t_x, t_e = f(v.t_req), f(v.t_x), f(v.t_elect)
    o1r, o1x, o2e, o2x = f(v.off1_req), f(v.off1_x), f(v.off2_elect), f(v.off2_x)
    wait = bool(z3.is_true(model.eval(v.wait, model_completion=True)))
    who = int(model.eval(v.who, model_completion=True).as_long())
    s1, e2 = t_req + o1r, t_e + o2e
    return {
        "L1.request.real": t_req, "L1.request.local": s1, "L1.offset@request": o1r,
        "L1.lease_until.local": s1 + dur,
        "intersection": _WHO[who], "grant.real": f(v.t_grant), "promise.real": f(v.t_promise),
        "L2.election.real": t_e, "L2.election.local": e2, "L2.offset@election": o2e,
        "wait_needed": wait, "L2.serves_from.local": e2 + (dur + margin if wait else 0),
        "overlap.real": t_x, "L1.local@overlap": t_x + o1x, "L1.offset@overlap": o1x,
        "L2.local@overlap": t_x + o2x, "L2.offset@overlap": o2x,
    }


def _describe_lease_cex(c: Mapping[str, Any]) -> str:
    n = {k: _num(v) for k, v in c.items() if isinstance(v, Fraction)}
    return (f"L1 asks at real {n['L1.request.real']} (its clock {n['L1.request.local']},"
            f" lease until {n['L1.lease_until.local']}); {c['intersection']} grants it at real"
            f" {n['grant.real']} and promises L2's ballot at real {n['promise.real']};"
            f" L2 is elected at real {n['L2.election.real']} (its clock"
            f" {n['L2.election.local']}) and serves from its clock {n['L2.serves_from.local']};"
            f" at real {n['overlap.real']} L2's clock reads {n['L2.local@overlap']}"
            f" while L1's reads {n['L1.local@overlap']}")


@functools.lru_cache(maxsize=256)
def _prove_lease(dur: int, margin: int, drift: int, max_delay: int | None,
                 clock_model: ClockModel,
                 max_rate_ppm: int | None) -> tuple[bool, dict[str, Any] | None]:
    lo, hi = _window(drift, clock_model)
    rate = None if max_rate_ppm is None else Fraction(max_rate_ppm, _PPM)
    cs, v = _lease_model(z3.RealVal(dur), z3.RealVal(margin), z3.RealVal(lo), z3.RealVal(hi),
                         max_delay=max_delay, rate=rate)
    s = z3.Solver()
    s.add(*cs)
    if not _is_sat(s):
        return True, None
    return False, _lease_counterexample(s.model(), v, dur, margin)


def _check_lease_args(dur: int, margin: int, drift: int, max_delay: int | None,
                      max_rate_ppm: int | None) -> None:
    if dur <= 0:
        raise ValueError("lease_dur_us must be > 0")
    if margin < 0 or drift < 0:
        raise ValueError("lease_margin_us and max_drift_us must be >= 0")
    if max_delay is not None and max_delay < 0:
        raise ValueError("max_delay_us must be >= 0")
    if max_rate_ppm is not None and not 0 <= max_rate_ppm < _PPM:
        raise ValueError("max_rate_ppm must be in [0, 1e6)")


def prove_lease_safety(lease_dur_us: int, lease_margin_us: int, max_drift_us: int, *,
                       max_delay_us: int | None = None, clock_model: ClockModel = "spec",
                       max_rate_ppm: int | None = None) -> ProofResult:
    """Prove that no old leader still believes its lease while a newer leader serves.

    For every clock behaviour of ``clock_model`` (see the module docstring; default:
    the spec's), every message delay >= 0 (at most ``max_delay_us`` if given), and
    every pair of quorums.  On failure the counterexample names the real and local
    times of the lease request, the grant and promise of the replica in both quorums,
    the election, and the instant both hold, with the clock offsets.
    """
    _check_lease_args(lease_dur_us, lease_margin_us, max_drift_us, max_delay_us, max_rate_ppm)
    t0 = time.perf_counter()
    ok, cex = _prove_lease(lease_dur_us, lease_margin_us, max_drift_us, max_delay_us,
                           clock_model, max_rate_ppm)
    params = (f"lease_dur_us={lease_dur_us}, lease_margin_us={lease_margin_us},"
              f" max_drift_us={max_drift_us}"
              + ("" if max_delay_us is None else f", max_delay_us={max_delay_us}")
              + f" ({_clock_words(clock_model, max_rate_ppm)})")
    if ok:
        text = (f"lease safety holds for {params}: no real time at which an old leader still"
                f" holds its lease while a newer leader serves")
        return ProofResult(True, text, None, time.perf_counter() - t0)
    assert cex is not None
    need = least_safe_margin_us(lease_dur_us, max_drift_us, clock_model=clock_model,
                                max_rate_ppm=max_rate_ppm, max_delay_us=max_delay_us)
    text = (f"lease safety fails for {params}; it needs lease_margin_us >= {need};"
            f" counterexample: {_describe_lease_cex(cex)}")
    return ProofResult(False, text, dict(cex), time.perf_counter() - t0)


def least_safe_margin_us(lease_dur_us: int, max_drift_us: int, *,
                         clock_model: ClockModel = "spec", max_rate_ppm: int | None = None,
                         max_delay_us: int | None = None) -> int:
    """The least integer LeaseMargin (µs) for which ``prove_lease_safety`` succeeds.

    Safety is monotone in the margin (a longer wait only removes overlaps) and a
    margin of twice the window width always suffices, so this is a binary search.
    """
    _check_lease_args(lease_dur_us, 0, max_drift_us, max_delay_us, max_rate_ppm)
    width = max_drift_us if clock_model == "spec" else 2 * max_drift_us
    lo, hi = -1, 2 * width  # lo: unsafe (or impossible), hi: safe

    def safe(m: int) -> bool:
        return _prove_lease(lease_dur_us, m, max_drift_us, max_delay_us, clock_model,
                            max_rate_ppm)[0]

    if not safe(hi):  # cannot happen: the theorem's own bound
        raise AssertionError("a margin of twice the window width must be safe")
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if safe(mid):
            hi = mid
        else:
            lo = mid
    return hi


def prove_lease_condition(clock_model: ClockModel = "spec", *,
                          max_rate_ppm: int | None = None) -> ProofResult:
    """Prove the theorem for symbolic parameters: for all LeaseDur > 0, MaxDrift >= 0
    and LeaseMargin >= 2 * W (W the window width of ``clock_model``: MaxDrift for the
    spec's clocks, 2 * MaxDrift for symmetric ones), no two leaders hold at once."""
    t0 = time.perf_counter()
    dur, margin, drift = z3.Reals("LeaseDur LeaseMargin MaxDrift")
    lo, hi = _window(drift, clock_model)
    rate = None if max_rate_ppm is None else Fraction(max_rate_ppm, _PPM)
    cs, _ = _lease_model(dur, margin, lo, hi, max_delay=None, rate=rate)
    s = z3.Solver()
    s.add(dur > 0, drift >= 0, margin >= 2 * (hi - lo), *cs)
    width = "MaxDrift" if clock_model == "spec" else "2 * MaxDrift"
    if not _is_sat(s):
        return ProofResult(True, f"for all LeaseDur > 0, MaxDrift >= 0 and LeaseMargin >= 2 *"
                           f" {width} ({_clock_words(clock_model, max_rate_ppm)}) no two"
                           f" leaders hold at once", None, time.perf_counter() - t0)
    m = s.model()
    cex = {"LeaseDur": _fraction(m, dur), "LeaseMargin": _fraction(m, margin),
           "MaxDrift": _fraction(m, drift)}
    return ProofResult(False, f"the condition LeaseMargin >= 2 * {width} does not suffice: {cex}",
                       cex, time.perf_counter() - t0)


def check_replica_config(cfg: ReplicaConfig, *, clock_model: ClockModel = "symmetric",
                         max_rate_ppm: int | None = None,
                         max_delay_us: int | None = None) -> ProofResult:
    """``prove_lease_safety`` for a ``reference.replica.ReplicaConfig``.

    A ``ReplicaConfig``'s ``max_drift_us`` bounds ``|local - real|``
    (``reference/clocks.py``), a window of width ``2 * max_drift_us``, hence the
    default ``clock_model="symmetric"``; the spec's ``MaxDrift`` is that width.
    ``max_rate_ppm`` adds the clocks' rate bound, which the spec does not assume.
    """
    return prove_lease_safety(cfg.lease_dur_us, cfg.lease_margin_us, cfg.max_drift_us,
                              max_delay_us=max_delay_us, clock_model=clock_model,
                              max_rate_ppm=max_rate_ppm)


def require_lease_safety(cfg: ReplicaConfig, *, clock_model: ClockModel = "symmetric",
                         max_rate_ppm: int | None = None) -> None:
    """Raise ``LeaseConfigError`` (one line, with the counterexample) unless the lease
    configuration is safe.  Results are cached, so calling it per replica is cheap."""
    r = check_replica_config(cfg, clock_model=clock_model, max_rate_ppm=max_rate_ppm)
    if not r.ok:
        raise LeaseConfigError(r.explanation)


# --- 2. quorum intersection -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuorumCounts:
    """What a quorum rule may look at: member counts per kind (Z3 integer terms).

    Rules are symmetric in replica identities (they see counts, not names), which is
    what lets one rule be proved for a symbolic number of members.  Non-members
    (kind ``"none"``) never count, as in the spec's ``IsQuorum``.  The counts are
    Z3 integers in the symbolic proof and small non-negative bit-vectors in the
    explicit one, so a rule should use only ``+``, ``*``, ``/`` by constants,
    comparisons and ``z3.And``/``Or``/``Not``, which mean the same on both.
    """

    storage: Z3Expr     # storage members of the configuration
    log: Z3Expr         # log members
    in_storage: Z3Expr  # storage members in the candidate quorum
    in_log: Z3Expr      # log members in the candidate quorum

    @property
    def members(self) -> Z3Expr:
        return self.storage + self.log

    @property
    def in_members(self) -> Z3Expr:
        return self.in_storage + self.in_log


QuorumRule: TypeAlias = Callable[[QuorumCounts], Z3Expr]


def majority_quorum(c: QuorumCounts) -> Z3Expr:
    """The spec's ``IsQuorum`` and ``Replica.is_quorum``: a strict majority of all
    members, whatever their kind."""
    return 2 * c.in_members > c.members


def half_rounded_down_quorum(c: QuorumCounts) -> Z3Expr:
    """A deliberately broken rule: half the members, rounded down."""
    return c.in_members >= c.members / 2  # integer division on Z3 Ints


def storage_write_quorum(c: QuorumCounts) -> Z3Expr:
    """A possible rule once log replicas exist: a majority that includes at least one
    storage replica (so every acknowledged write reaches a B-tree)."""
    return z3.And(majority_quorum(c), c.in_storage >= 1)


def storage_majority_quorum(c: QuorumCounts) -> Z3Expr:
    """A majority of all members that is also a majority of the storage replicas."""
    return z3.And(majority_quorum(c), 2 * c.in_storage > c.storage)


def rule_holds(rule: QuorumRule, storage: int, log: int, in_storage: int, in_log: int) -> bool:
    """Evaluate ``rule`` on concrete counts (e.g. to compare it with the implementation)."""
    c = QuorumCounts(z3.IntVal(storage), z3.IntVal(log), z3.IntVal(in_storage), z3.IntVal(in_log))
    return bool(z3.is_true(z3.simplify(rule(c))))


def _names(mask: int, width: int) -> list[str]:
    return [f"r{i + 1}" for i in range(width) if mask >> i & 1]


def prove_quorum_intersection(max_members: int | None = None, *,
                              quorum_rule: QuorumRule = majority_quorum,
                              other_quorum_rule: QuorumRule | None = None,
                              need: Literal["member", "storage"] = "member") -> ProofResult:
    """Prove that every quorum of ``quorum_rule`` and every quorum of
    ``other_quorum_rule`` (default: the same rule) share a member (``need="member"``)
    or a storage replica (``need="storage"``), in every membership configuration.

    Two proofs:

    * symbolic: for any numbers of storage and log members (cardinality reasoning over
      the regions of a Venn diagram, in linear integer arithmetic), so for every group
      size at once;
    * explicit: for every configuration of 1..``max_members`` replicas (default 9, the
      largest group ``SimConfig`` builds), each replica ``storage``, ``log`` or
      ``none``, and every pair of groups of members, as bit-vectors (one query per
      size covers all ``3**n`` configurations and ``4**n`` pairs of groups).

    A configuration has at least one member (with none there is nothing to agree on).

    With two rules this states what a future rule needs, e.g. write quorums
    (``storage_write_quorum``) against recovery quorums (``majority_quorum``).
    """
    t0 = time.perf_counter()
    other = quorum_rule if other_quorum_rule is None else other_quorum_rule
    size = 9 if max_members is None else max_members
    if size < 0:
        raise ValueError("max_members must be >= 0")
    kinds = ("storage", "log")
    need_kinds = kinds if need == "member" else ("storage",)
    if need not in ("member", "storage"):
        raise ValueError("need must be 'member' or 'storage'")

    # symbolic: regions per kind: only in A, only in B, in both, in neither
    s = z3.Solver()
    reg = {(k, r): z3.Int(f"{k}_{r}") for k in kinds for r in ("A", "B", "AB", "none")}
    s.add(*[x >= 0 for x in reg.values()])
    tot = {k: reg[k, "A"] + reg[k, "B"] + reg[k, "AB"] + reg[k, "none"] for k in kinds}
    qa = QuorumCounts(tot["storage"], tot["log"], reg["storage", "A"] + reg["storage", "AB"],
                      reg["log", "A"] + reg["log", "AB"])
    qb = QuorumCounts(tot["storage"], tot["log"], reg["storage", "B"] + reg["storage", "AB"],
                      reg["log", "B"] + reg["log", "AB"])
    s.add(tot["storage"] + tot["log"] >= 1)  # a configuration has at least one member
    s.add(quorum_rule(qa), other(qb), z3.Sum([reg[k, "AB"] for k in need_kinds]) == 0)
    symbolic_cex: dict[str, Any] | None = None
    if _is_sat(s):
        m = s.model()
        symbolic_cex = {f"{k}.{r}": int(m.eval(x, model_completion=True).as_long())
                        for (k, r), x in reg.items()}

    # explicit: bit-vectors, one query per group size.  Counts are bit-vectors too (wide
    # enough that the rules' arithmetic cannot overflow), so the query stays in
    # bit-vector logic.
    explicit_cex: dict[str, Any] | None = None
    for n in range(1, size + 1):
        cw = n.bit_length() + 4
        bs, bl, ba, bb = (z3.BitVec(f"{x}{n}", n) for x in ("storage", "log", "A", "B"))
        members = bs | bl

        def pop(x: Z3Expr, n: int = n, cw: int = cw) -> Z3Expr:
            return z3.Sum([z3.ZeroExt(cw - 1, z3.Extract(i, i, x)) for i in range(n)])

        s = z3.Solver()
        s.add(bs & bl == 0, ba & ~members == 0, bb & ~members == 0)
        ps, pl = pop(bs), pop(bl)
        s.add(quorum_rule(QuorumCounts(ps, pl, pop(ba & bs), pop(ba & bl))))
        s.add(other(QuorumCounts(ps, pl, pop(bb & bs), pop(bb & bl))))
        s.add(members != 0)  # a configuration has at least one member
        s.add(ba & bb & (members if need == "member" else bs) == 0)
        if explicit_cex is None and not _is_sat(s):
            continue
        model = s.model() if explicit_cex is None else None
        # A counterexample exists.  Prefer one whose two quorums are non-empty (it reads
        # better), looking at larger sizes for one if need be.
        s.add(ba != 0, bb != 0)
        if _is_sat(s):
            model = s.model()
        if model is not None:
            val = {x: int(model.eval(x, model_completion=True).as_long())
                   for x in (bs, bl, ba, bb)}
            explicit_cex = {
                "kinds": {f"r{i + 1}": ("storage" if val[bs] >> i & 1 else
                                        "log" if val[bl] >> i & 1 else "none")
                          for i in range(n)},
                "A": _names(val[ba], n), "B": _names(val[bb], n)}
            if val[ba] and val[bb]:
                break
    seconds = time.perf_counter() - t0
    what = "a member" if need == "member" else "a storage replica"
    rules = (quorum_rule.__name__ if other_quorum_rule is None
             else f"{quorum_rule.__name__} and {other.__name__}")
    if symbolic_cex is None and explicit_cex is None:
        return ProofResult(True, f"any two quorums ({rules}) share {what}: proved for any number"
                           f" of storage and log members, and checked for every configuration of"
                           f" up to {size} replicas", None, seconds)
    cex: dict[str, Any] = {}
    if explicit_cex is not None:
        cex.update(explicit_cex)
        where = (f"with kinds {explicit_cex['kinds']}, groups {explicit_cex['A']} and"
                 f" {explicit_cex['B']} are both quorums and share no {what[2:]}")
    else:
        where = f"not for all sizes (symbolic counterexample {symbolic_cex}); holds up to {size}"
    if symbolic_cex is not None:
        cex["symbolic"] = symbolic_cex
    return ProofResult(False, f"quorums ({rules}) need not share {what}: {where}", cex, seconds)


# --- 3. leases in traces ------------------------------------------------------------------

_REQUIRED: tuple[tuple[str, type], ...] = (
    ("node", str), ("replica", str), ("seq", int), ("clock", int), ("kind", str),
    ("action", str), ("args", dict))


def _expand(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    items = [paths] if isinstance(paths, str | Path) else list(paths)
    out: list[Path] = []
    for p in map(Path, items):
        out += sorted(p.glob("trace-*.jsonl")) if p.is_dir() else [p]
    return out


def load_trace_events(paths: str | Path | Iterable[str | Path]) -> list[dict[str, Any]]:
    """Read trace files (traces/FORMAT.md; a directory stands for its ``trace-*.jsonl``)
    into one list of events, ordered by node and ``seq``.

    Raises ``TraceFormatError("path:line: reason")`` for a line that is not a JSON
    object with the fields a trace line needs, for a node whose ``seq`` does not
    increase or whose ``clock`` or ``real`` decreases, and for a (node, seq) seen twice.
    """
    events: list[dict[str, Any]] = []
    seen: dict[tuple[str, int], str] = {}
    for path in _expand(paths):
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise TraceFormatError(f"{path}:0: cannot read: {exc.strerror}") from exc
        last: dict[str, tuple[int, int, int | None]] = {}
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        for lineno, raw in enumerate(lines, 1):
            where = f"{path}:{lineno}"
            try:
                e = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise TraceFormatError(f"{where}: not JSON: {exc}") from exc
            if not isinstance(e, dict):
                raise TraceFormatError(f"{where}: not a JSON object")
            if e.get("v") != 1:
                raise TraceFormatError(f"{where}: unsupported format version {e.get('v')!r}")
            for name, typ in _REQUIRED:
                x = e.get(name)
                if not isinstance(x, typ) or (typ is int and isinstance(x, bool)):
                    raise TraceFormatError(f"{where}: field {name!r} missing or not {typ.__name__}")
            real = e.get("real")
            if real is not None and (not isinstance(real, int) or isinstance(real, bool)):
                raise TraceFormatError(f"{where}: field 'real' is not an integer")
            node, seq, clock = e["node"], e["seq"], e["clock"]
            if node in last:
                pseq, pclock, preal = last[node]
                if seq <= pseq:
                    raise TraceFormatError(f"{where}: seq {seq} of node {node} after seq {pseq}")
                if clock < pclock:
                    raise TraceFormatError(f"{where}: clock of node {node} goes back from"
                                           f" {pclock} to {clock}")
                if real is not None and preal is not None and real < preal:
                    raise TraceFormatError(f"{where}: real time of node {node} goes back from"
                                           f" {preal} to {real}")
            if (node, seq) in seen:
                raise TraceFormatError(f"{where}: node {node} seq {seq} also at {seen[node, seq]}")
            seen[node, seq] = where
            last[node] = (seq, clock, real)
            events.append(e)
    events.sort(key=lambda e: (e["node"], e["seq"]))
    return events


@dataclass(frozen=True, slots=True)
class TraceLease:
    """A lease a leader could have believed it held, on its own clock.

    Requested at ``start`` (``LeaseRenew``, node ``node`` event ``seq``) in ballot
    ``ballot`` and granted by ``grantors`` (a quorum, the leader included).  It is held
    while the leader's clock is in ``[held_from, until)`` and the leader still leads:
    ``ended_seq`` is the leader's step that ended its leadership (a crash, a promise
    to a higher ballot, ...), if the trace has one.  ``held_from`` is ``start``, or the
    end of the new-leader wait when the check models it.
    """

    replica: str
    node: str
    ballot: int | None
    start: int
    until: int
    held_from: int
    grantors: tuple[str, ...]
    seq: int
    ended_seq: int | None
    ended_by: str | None

    def describe(self) -> str:
        b = "?" if self.ballot is None else self.ballot
        end = ("" if self.ended_seq is None
               else f", led until {self.ended_by} at seq {self.ended_seq}")
        return (f"{self.replica} ballot {b} lease requested at local {self.start} (seq {self.seq}),"
                f" held on its clock over [{self.held_from}, {self.until}),"
                f" granted by {','.join(self.grantors)}{end}")


@dataclass(frozen=True, slots=True)
class LeaseOverlap:
    """Two leases of different leaders held at one real time, and an assignment of
    real times that shows it: ``real`` is the instant, ``local_first``/``local_second``
    the two leaders' clocks then, ``event_real`` the real times of the events that
    matter (keyed ``"node#seq Action"``)."""

    first: TraceLease
    second: TraceLease
    real: Fraction
    local_first: Fraction
    local_second: Fraction
    event_real: dict[str, Fraction]

    def describe(self) -> str:
        return (f"at real {_num(self.real)}: {self.first.replica}'s clock reads"
                f" {_num(self.local_first)} ({self.first.describe()}) and"
                f" {self.second.replica}'s reads {_num(self.local_second)}"
                f" ({self.second.describe()})")


@dataclass(frozen=True, slots=True)
class TraceLeaseResult:
    """``ok``: no two leases of different leaders can have overlapped in real time.

    ``overlaps``: every pair that could have (``witness`` is the first), each with a
    real-time assignment consistent with the drift bound, per-node order and
    causality.  ``actual_overlap``: with every event pinned at its recorded ``real``
    (``None`` when the trace has no ``real``), whether an overlap is still possible;
    only the clocks between events are then free (within the drift bound), since the
    instant a lease runs out is not itself an event.
    """

    ok: bool
    explanation: str
    leases: tuple[TraceLease, ...]
    requests: int
    pairs_checked: int
    overlaps: tuple[LeaseOverlap, ...]
    actual_overlap: bool | None
    actual_overlaps: tuple[LeaseOverlap, ...]
    seconds: float

    @property
    def witness(self) -> LeaseOverlap | None:
        return self.overlaps[0] if self.overlaps else None


@dataclass(slots=True)
class _Ev:
    node: str
    pos: int  # index in the node's events
    seq: int
    clock: int
    real: int | None
    action: str
    args: dict[str, Any]

    @property
    def key(self) -> str:
        return f"{self.node}#{self.seq} {self.action}"


@dataclass(slots=True)
class _Lease:
    replica: str
    node: str
    ballot: int | None
    start: int
    held_from: int
    renew: _Ev
    grants: list[_Ev]
    grantors: set[str]
    election: _Election | None
    end: _Ev | None = None     # the step that ended the leadership
    after: _Ev | None = None   # the leader's first event at or past the lease's end
    before: _Ev | None = None  # its last event before held_from (if after start)


# Actions that end a leadership whatever their ballot (a leader takes none of them
# while leading: it has stepped down, crashed or restarted).
_ENDS_LEADERSHIP = {"Crash", "Phase1a", "Phase1b", "BecomeLeader", "Restart", "Quarantine"}


# Steps a leader takes only while it holds its lease (CanServe) or once its wait is
# over (Commit): evidence of what it believed.
_SERVES = {"ClientWrite", "Commit", "StrongRead"}


def _msg(e: _Ev) -> dict[str, Any]:
    m = e.args.get("m")
    return m if isinstance(m, dict) else {}


def _ids_in(e: Mapping[str, Any]) -> set[str]:
    args = e.get("args") or {}
    out = {e["replica"]}
    for k in ("r", "a"):
        if isinstance(args.get(k), str):
            out.add(args[k])
    m = args.get("m")
    if isinstance(m, dict) and isinstance(m.get("from"), str):
        out.add(m["from"])
    q = args.get("Q")
    if isinstance(q, list):
        out.update(x for x in q if isinstance(x, str))
    return out


@dataclass(slots=True)
class _Trace:
    by_node: dict[str, list[_Ev]]
    clocks: dict[str, list[int]]
    replica_of: dict[str, str]
    members: frozenset[str]
    has_real: bool

    def is_quorum(self, group: set[str]) -> bool:
        return 2 * len(group & self.members) > len(self.members)

    def first_at_or_after(self, node: str, after: int, clock: int) -> _Ev | None:
        """The node's first event after position ``after`` whose clock is >= ``clock``."""
        i = bisect.bisect_left(self.clocks[node], clock, lo=after + 1)
        evs = self.by_node[node]
        return evs[i] if i < len(evs) else None

    def last_before(self, node: str, clock: int) -> _Ev | None:
        """The node's last event whose clock is < ``clock``."""
        i = bisect.bisect_left(self.clocks[node], clock)
        return self.by_node[node][i - 1] if i > 0 else None


def _index_trace(events: Iterable[Mapping[str, Any]], d: int,
                 members: Iterable[str] | None) -> _Trace:
    raw: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    names: set[str] = set()
    replica_of: dict[str, str] = {}
    for line in events:
        raw[line["node"]].append(line)
        replica_of.setdefault(line["node"], line["replica"])
        if members is None:
            names |= _ids_in(line)
    by_node: dict[str, list[_Ev]] = {}
    has_real = True
    for node, lines in raw.items():
        out: list[_Ev] = []
        for i, line in enumerate(sorted(lines, key=lambda x: int(x["seq"]))):
            ev = _Ev(node, i, int(line["seq"]), int(line["clock"]), line.get("real"),
                     str(line["action"]), dict(line.get("args") or {}))
            if out and ev.seq == out[-1].seq:
                raise ValueError(f"node {node} has seq {ev.seq} twice")
            if out and ev.clock < out[-1].clock:
                raise ValueError(f"node {node} seq {ev.seq}: clock goes back from"
                                 f" {out[-1].clock} to {ev.clock}")
            if ev.real is None:
                has_real = False
            elif abs(ev.clock - ev.real) > d:
                raise ValueError(f"node {node} seq {ev.seq}: clock {ev.clock} is more than"
                                 f" {d} us from real {ev.real}")
            out.append(ev)
        by_node[node] = out
    return _Trace(by_node, {n: [e.clock for e in evs] for n, evs in by_node.items()},
                  replica_of, frozenset(names if members is None else members), has_real)


@dataclass(slots=True)
class _Election:
    event: _Ev            # BecomeLeader
    promises: list[_Ev]   # the Phase1b steps of the members of Q (other than the leader)


@dataclass(slots=True)
class _Found:
    leases: list[_Lease]
    elections: list[_Election]
    phase1a: dict[tuple[str, int], _Ev]  # (from, bal) -> Phase1a
    requests: int


def _find_leases(tr: _Trace, dur: int, margin: int | None) -> _Found:
    # pass 1: grants by request, Phase1a by ballot, promises with "had granted before"
    grants: dict[tuple[str, int, int], list[_Ev]] = defaultdict(list)  # (from, start, bal)
    phase1a: dict[tuple[str, int], _Ev] = {}
    promises: dict[tuple[str, int, str], tuple[_Ev, bool]] = {}        # (a, bal, to)
    for node, evs in tr.by_node.items():
        granted = False
        for e in evs:
            m = _msg(e)
            if e.action == "LeaseGrant":
                grants[m.get("from", ""), m.get("start", -1), m.get("bal", -1)].append(e)
            elif e.action == "Phase1a":
                phase1a[tr.replica_of[node], int(e.args.get("b", -1))] = e
            elif e.action == "Phase1b":
                promises[tr.replica_of[node], m.get("bal", -1), m.get("from", "")] = (e, granted)
            granted = granted or _grants(e)
    # pass 2: leaderships and their leases
    found = _Found([], [], phase1a, 0)
    for node, evs in tr.by_node.items():
        r = tr.replica_of[node]
        granted = False
        ballot: int | None = None
        election: _Election | None = None
        wait_end: int | None = None
        current: list[_Lease] = []
        for e in evs:
            m = _msg(e)
            ends = e.action in _ENDS_LEADERSHIP or (
                e.action in ("LeaseGrant", "Phase2b") and ballot is not None
                and int(m.get("bal", 0)) > ballot)
            if ends and ballot is not None:
                for lease in current:
                    lease.end = e
                current, ballot, election, wait_end = [], None, None, None
            if e.action == "BecomeLeader":
                ballot = int(e.args["b"])
                used = [promises[a, ballot, r] for a in map(str, e.args.get("Q", []))
                        if (a, ballot, r) in promises]
                election = _Election(e, [p for p, _ in used])
                found.elections.append(election)
                # LeaseWaitNeeded.  A promise missing from the trace counts as "no grant",
                # which can only lengthen the leases checked.
                if margin is not None and (granted or any(g for _, g in used)):
                    wait_end = e.clock + dur + margin
            elif e.action == "LeaseRenew":
                found.requests += 1
                start = int(e.args.get("start", e.clock))
                if ballot is None:  # a request outside a known leadership: any ballot
                    cands = [g for (frm, st, _), gs in grants.items()
                             if frm == r and st == start for g in gs]
                else:
                    cands = grants.get((r, start, ballot), [])
                who = {r} | {tr.replica_of[g.node] for g in cands}
                held_from = start if wait_end is None else max(start, wait_end)
                if tr.is_quorum(who):
                    lease = _Lease(r, node, ballot, start, held_from, e, list(cands), who,
                                   election)
                    found.leases.append(lease)
                    current.append(lease)
            elif e.action in _SERVES and wait_end is not None and e.clock < wait_end:
                # It served before its wait was over: it did not keep the wait, so its
                # leases count from here on.
                wait_end = e.clock
                for lease in current:
                    lease.held_from = max(lease.start, wait_end)
            granted = granted or _grants(e)
    found.leases = [x for x in found.leases if x.held_from < x.start + dur]
    return found


def _grants(e: _Ev) -> bool:
    """Whether the step leaves the replica with ``granted > 0`` (durable)."""
    return e.action == "LeaseGrant" or (
        e.action == "Restart" and int(e.args.get("granted", 0)) > 0)


_Key: TypeAlias = tuple[str, int]  # (node, position in the node's events)


class _LeaseSolver:
    """The real times of the events that matter, constrained by the drift bound
    (``clock - d <= t <= clock + d``), per-node order and causality (``t_u <= t_v``).

    An order constraint between events whose clocks are at least ``2 * d`` apart
    follows from the bounds, so it is dropped; what remains falls apart into small
    independent components (events close in time).  Independent components do not
    constrain each other, so each question about a pair of leases goes to a Z3 solver
    holding only the components it touches: exact, and small however long the trace.
    """

    def __init__(self, tr: _Trace, found: _Found, dur: int, d: int) -> None:
        self.tr, self.dur, self.d = tr, dur, d
        ev: dict[_Key, _Ev] = {}

        def use(e: _Ev) -> _Ev:
            ev[e.node, e.pos] = e
            return e

        causal: list[tuple[_Ev, _Ev]] = []  # (earlier, later)
        for lease in found.leases:
            use(lease.renew)
            causal += [(lease.renew, use(g)) for g in lease.grants]
            lease.after = tr.first_at_or_after(lease.node, lease.renew.pos, lease.start + dur)
            if lease.held_from > lease.start:
                lease.before = tr.last_before(lease.node, lease.held_from)
            for b in (lease.end, lease.after, lease.before):
                if b is not None:
                    use(b)
        for el in found.elections:
            use(el.event)
            for p in el.promises:
                causal.append((use(p), el.event))
                pm = _msg(p)
                a1 = found.phase1a.get((pm.get("from", ""), pm.get("bal", -1)))
                if a1 is not None:
                    causal.append((use(a1), p))
        per_node: dict[str, list[_Ev]] = defaultdict(list)
        for e in ev.values():
            per_node[e.node].append(e)
        edges = list(causal)
        for evs in per_node.values():
            evs.sort(key=lambda e: e.pos)
            edges += itertools.pairwise(evs)
        self.per_node = dict(per_node)
        self.per_node_clocks = {n: [e.clock for e in evs] for n, evs in per_node.items()}
        # keep the edges the bounds do not imply; group events into components
        self.all_edges = edges
        self.edges = [(u, v) for u, v in edges if v.clock - u.clock < 2 * d]
        parent: dict[_Key, _Key] = {k: k for k in ev}

        def find(k: _Key) -> _Key:
            while parent[k] != k:
                parent[k] = parent[parent[k]]
                k = parent[k]
            return k

        for u, v in self.edges:
            ru, rv = find((u.node, u.pos)), find((v.node, v.pos))
            if ru != rv:
                parent[ru] = rv
        self.comp = {k: find(k) for k in ev}
        self.members: dict[_Key, list[_Ev]] = defaultdict(list)
        for k, e in ev.items():
            self.members[self.comp[k]].append(e)
        self.comp_edges: dict[_Key, list[tuple[_Ev, _Ev]]] = defaultdict(list)
        for u, v in self.edges:
            self.comp_edges[self.comp[u.node, u.pos]].append((u, v))

    def inconsistency(self) -> str | None:
        """Why no real times satisfy every bound and order constraint, or None.

        With recorded real times: whether they satisfy the order constraints (the
        bounds were checked on reading).  Otherwise, as difference constraints: raise
        lower bounds along the edges to a fixpoint (no edge has a positive weight, so
        this terminates); they are satisfiable iff no lower bound then exceeds its
        upper bound, and the raised bounds are then a solution.
        """
        if self.tr.has_real:
            for u, v in self.all_edges:
                assert u.real is not None and v.real is not None
                if u.real > v.real:
                    return (f"recorded real times contradict the order of {u.key}"
                            f" (real {u.real}) and {v.key} (real {v.real})")
            return None
        d = self.d
        low = {k: e.clock - d for k, e in self._events()}
        out: dict[_Key, list[_Key]] = defaultdict(list)
        for u, v in self.edges:
            out[u.node, u.pos].append((v.node, v.pos))
        work = list(low)
        while work:
            k = work.pop()
            for w in out.get(k, ()):
                if low[w] < low[k]:
                    low[w] = low[k]
                    work.append(w)
        for k, e in self._events():
            if low[k] > e.clock + d:
                return (f"no real time within {d} us of its clock {e.clock} for {e.key} is"
                        f" after every event it must follow")
        return None

    def _events(self) -> Iterable[tuple[_Key, _Ev]]:
        for evs in self.members.values():
            for e in evs:
                yield (e.node, e.pos), e

    def holds(self, lease: _Lease, t_x: Z3Expr, c: Z3Expr,
              t: Callable[[_Ev], Z3Expr]) -> tuple[list[Z3Expr], list[_Ev]]:
        """The lease's leader believes it holds the lease at real ``t_x``, its clock ``c``
        (constraints, and the events they mention).

        Exact: such a clock value exists iff ``t_x`` is after the request, before the
        leader's first event at or past the lease's end and before its leadership
        ended, after its last event before ``held_from``, and within the drift window.
        """
        d, until = self.d, lease.start + self.dur
        used = [lease.renew]
        cs = [c >= lease.held_from, c < until, c >= t_x - d, c <= t_x + d, t_x >= t(lease.renew)]
        if lease.after is not None:
            cs.append(t_x < t(lease.after))
            used.append(lease.after)
        if lease.before is not None:
            cs.append(t_x > t(lease.before))
            used.append(lease.before)
        if lease.end is not None:
            cs.append(t_x < t(lease.end))
            used.append(lease.end)
        # Keep c consistent with the modelled events nearby, so the witness is a clock
        # reading (events further than 2 * max_drift on the clock are ordered anyway).
        evs, cks = self.per_node[lease.node], self.per_node_clocks[lease.node]
        lo = bisect.bisect_left(cks, lease.held_from - 2 * d)
        hi = bisect.bisect_right(cks, until + 2 * d)
        for e in evs[lo:hi]:
            cs += [z3.Implies(t(e) <= t_x, e.clock <= c), z3.Implies(t(e) >= t_x, e.clock >= c)]
            used.append(e)
        return cs, used

    def overlap(self, a: _Lease, b: _Lease, *, pin: bool) -> LeaseOverlap | None:
        tvar: dict[_Key, Z3Expr] = {}

        def t(e: _Ev) -> Z3Expr:
            v = tvar.get((e.node, e.pos))
            if v is None:
                v = tvar[e.node, e.pos] = z3.Real(f"t_{e.node}_{e.seq}")
            return v

        t_x, c1, c2 = z3.Reals("t_overlap c_first c_second")
        cs1, used1 = self.holds(a, t_x, c1, t)
        cs2, used2 = self.holds(b, t_x, c2, t)
        keys: list[_Ev] = []
        for lease in (a, b):
            keys += [lease.renew, *lease.grants]
            if lease.election is not None:
                keys += [lease.election.event, *lease.election.promises]
        s = z3.Solver()
        s.add(*cs1, *cs2)
        d = self.d
        for root in {self.comp[e.node, e.pos] for e in (*used1, *used2, *keys)}:
            for e in self.members[root]:
                s.add(t(e) >= e.clock - d, t(e) <= e.clock + d)
                if pin:
                    s.add(t(e) == e.real)
            for u, v in self.comp_edges.get(root, ()):
                s.add(t(u) <= t(v))
        if not _is_sat(s):
            return None
        m = s.model()
        return LeaseOverlap(_public(a, self.dur), _public(b, self.dur), _fraction(m, t_x),
                            _fraction(m, c1), _fraction(m, c2),
                            {e.key: _fraction(m, t(e)) for e in keys})


def _candidate_pairs(leases: list[_Lease], dur: int, d: int) -> list[tuple[int, int]]:
    """Pairs of leases of different leaders whose real-time windows meet: a lease held
    over ``[held_from, min(until, end clock))`` on its clock lies within ``max_drift`` of
    that in real time.  A sweep over windows sorted by start."""
    def window(i: int) -> tuple[int, int]:
        lease = leases[i]
        hi = lease.start + dur
        if lease.end is not None:
            hi = min(hi, lease.end.clock)
        return lease.held_from - d, hi + d

    wins = [window(i) for i in range(len(leases))]
    pairs: list[tuple[int, int]] = []
    active: list[int] = []
    for i in sorted(range(len(leases)), key=lambda i: wins[i][0]):
        lo = wins[i][0]
        active = [j for j in active if wins[j][1] >= lo]
        pairs += [(j, i) for j in active if leases[j].replica != leases[i].replica]
        if wins[i][1] >= lo:
            active.append(i)
    return pairs


def check_trace_leases(events: Iterable[Mapping[str, Any]], lease_dur_us: int,
                       max_drift_us: int, *, lease_margin_us: int | None = None,
                       members: Iterable[str] | None = None) -> TraceLeaseResult:
    """Decide whether two leases of different leaders in a trace could have overlapped.

    ``events``: trace lines as dicts (traces/FORMAT.md), from any number of nodes in
    any order; each node's lines are ordered by ``seq``.

    Leases: every ``LeaseRenew{r, start}`` in r's current ballot (its last
    ``BecomeLeader``) that a quorum granted: r itself plus every replica with a
    ``LeaseGrant`` whose ``m`` is ``{bal, start, from: r}``; quorums are strict
    majorities of ``members`` (default: every replica the trace names).  A lease is
    held while r's clock is in ``[start, start + lease_dur_us)`` and r still leads
    (until its next crash, restart or step-down line).  With ``lease_margin_us`` the
    check also models the new-leader wait: a lease counts only once r's clock is
    ``lease_dur_us + lease_margin_us`` past its ``BecomeLeader``, when some voter
    (r, or a member of ``Q`` in its promise) had granted a lease before
    (``LeaseWaitNeeded``); it trusts that r kept the wait unless the trace shows r
    serving (``ClientWrite``, ``Commit``, ``StrongRead``) earlier, in which case its
    leases count from then.  Without ``lease_margin_us`` every granted lease counts
    from its start, which is stricter: the reference asks for its first lease
    ``lease_margin_us`` after its election, before the wait is over.

    Real times: each event's real time ``t`` satisfies ``|clock - t| <= max_drift_us``;
    per node, real time does not decrease along ``seq`` and the clock is a
    non-decreasing function of it; a ``LeaseGrant`` happens after its ``LeaseRenew``,
    a ``Phase1b`` after its ``Phase1a``, a ``BecomeLeader`` after the promises of its
    ``Q``.  Z3 decides, for each pair of leases of different leaders whose local
    intervals come within ``2 * max_drift_us`` of each other, whether some such
    assignment and some instant have both held.  Events that constrain no lease are
    left out of the model; that is exact, because between two events of a node any
    event can be placed within its drift window.  Each question goes to a small
    solver holding only the events near the two leases (see ``_LeaseSolver``), so
    the cost grows with the number of leader changes, not with the trace's length.

    Raises ``ValueError`` if a node's clock decreases along ``seq``, if a recorded
    ``real`` is more than ``max_drift_us`` from its ``clock``, or if the constraints
    have no solution at all (the trace contradicts the drift bound, or its recorded
    real times contradict per-node order or causality).
    """
    t0 = time.perf_counter()
    if lease_dur_us <= 0 or max_drift_us < 0:
        raise ValueError("lease_dur_us must be > 0 and max_drift_us >= 0")
    if lease_margin_us is not None and lease_margin_us < 0:
        raise ValueError("lease_margin_us must be >= 0")
    tr = _index_trace(events, max_drift_us, members)
    found = _find_leases(tr, lease_dur_us, lease_margin_us)
    model = _LeaseSolver(tr, found, lease_dur_us, max_drift_us)
    why = model.inconsistency()
    if why is not None:
        raise ValueError(f"the trace contradicts a drift bound of {max_drift_us} us, per-node"
                         f" order and causality: {why}")
    leases = found.leases
    pairs = _candidate_pairs(leases, lease_dur_us, max_drift_us)
    overlaps: list[LeaseOverlap] = []
    actual: list[LeaseOverlap] = []
    for i, j in pairs:
        w = model.overlap(leases[i], leases[j], pin=False)
        if w is None:
            continue
        overlaps.append(w)
        if tr.has_real:
            a = model.overlap(leases[i], leases[j], pin=True)
            if a is not None:
                actual.append(a)
    if overlaps:
        text = (f"{len(overlaps)} pair(s) of leases of different leaders could overlap in real"
                f" time; e.g. {overlaps[0].describe()}")
        if tr.has_real:
            text += "; with the recorded real times: " + ("still possible" if actual
                                                          else "ruled out")
    else:
        text = (f"no two of {len(leases)} leases of different leaders can overlap in real time"
                f" ({len(pairs)} pair(s) within 2 * max_drift checked with Z3)")
    return TraceLeaseResult(
        ok=not overlaps, explanation=text, leases=tuple(_public(x, lease_dur_us) for x in leases),
        requests=found.requests, pairs_checked=len(pairs), overlaps=tuple(overlaps),
        actual_overlap=bool(actual) if tr.has_real else None, actual_overlaps=tuple(actual),
        seconds=time.perf_counter() - t0)


def _public(lease: _Lease, dur: int) -> TraceLease:
    return TraceLease(
        replica=lease.replica, node=lease.node, ballot=lease.ballot, start=lease.start,
        until=lease.start + dur, held_from=lease.held_from, grantors=tuple(sorted(lease.grantors)),
        seq=lease.renew.seq, ended_seq=None if lease.end is None else lease.end.seq,
        ended_by=None if lease.end is None else lease.end.action)
