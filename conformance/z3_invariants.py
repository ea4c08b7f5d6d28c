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
a clock may stop, or run at up to twice real speed, for a while.  Only the *width* of
the window matters; in the spec it is ``MaxDrift``.  Two models are offered:

* ``"spec"``: offset in ``[0, max_drift]``, window width ``W = max_drift``: exactly
  the spec's assumption, and the meaning ``ReplicaConfig`` documents for
  ``max_drift_us`` (it requires ``lease_margin_us >= 2 * max_drift_us``);
* ``"symmetric"``: ``|local - real| <= max_drift``, window width
  ``W = 2 * max_drift``: what ``reference/clocks.py`` guarantees and
  ``traces/FORMAT.md`` promises for a trace line's ``clock`` and ``real``.

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
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
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
    return (f"L1 asks at real {_num(c['L1.request.real'])} (its clock {_num(c['L1.request.local'])},"
            f" lease until {_num(c['L1.lease_until.local'])}); {c['intersection']} grants it at real"
            f" {_num(c['grant.real'])} and promises L2's ballot at real {_num(c['promise.real'])};"
            f" L2 is elected at real {_num(c['L2.election.real'])} (its clock"
            f" {_num(c['L2.election.local'])}) and serves from its clock"
            f" {_num(c['L2.serves_from.local'])}; at real {_num(c['overlap.real'])} L2's clock reads"
            f" {_num(c['L2.local@overlap'])} while L1's reads {_num(c['L1.local@overlap'])}")


@functools.lru_cache(maxsize=256)
def _prove_lease(dur: int, margin: int, drift: int, max_delay: int | None,
                 clock_model: ClockModel, max_rate_ppm: int | None) -> tuple[bool, dict[str, Any] | None]:
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
    lo_off, hi_off = _window(max_drift_us, clock_model)
    lo, hi = -1, 2 * (hi_off - lo_off)  # lo: unsafe (or impossible), hi: safe

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


def check_replica_config(cfg: ReplicaConfig, *, clock_model: ClockModel = "spec",
                         max_rate_ppm: int | None = None,
                         max_delay_us: int | None = None) -> ProofResult:
    """``prove_lease_safety`` for a ``reference.replica.ReplicaConfig``.

    The default clock model is the spec's, the meaning ``ReplicaConfig`` documents for
    ``max_drift_us``; pass ``clock_model="symmetric"`` (and ``max_rate_ppm``) to check
    against the clocks of ``reference/clocks.py``.
    """
    return prove_lease_safety(cfg.lease_dur_us, cfg.lease_margin_us, cfg.max_drift_us,
                              max_delay_us=max_delay_us, clock_model=clock_model,
                              max_rate_ppm=max_rate_ppm)


def require_lease_safety(cfg: ReplicaConfig, *, clock_model: ClockModel = "spec",
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
    (kind ``"none"``) never count, as in the spec's ``IsQuorum``.
    """

    storage: Z3Expr     # storage members of the group configuration
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


def _popcount(bv: Z3Expr, width: int) -> Z3Expr:
    return z3.Sum([z3.If(z3.Extract(i, i, bv) == 1, 1, 0) for i in range(width)])


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
      ``none``, and every pair of groups, as bit-vectors (one query per size covers
      all ``3**n`` configurations and ``4**n`` pairs of groups).

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
    s.add(quorum_rule(qa), other(qb), z3.Sum([reg[k, "AB"] for k in need_kinds]) == 0)
    symbolic_cex: dict[str, Any] | None = None
    if _is_sat(s):
        m = s.model()
        symbolic_cex = {f"{k}.{r}": int(m.eval(x, model_completion=True).as_long())
                        for (k, r), x in reg.items()}

    # explicit: bit-vectors, one query per group size
    explicit_cex: dict[str, Any] | None = None
    for n in range(1, size + 1):
        bs, bl, ba, bb = (z3.BitVec(f"{x}{n}", n) for x in ("storage", "log", "A", "B"))
        members = bs | bl
        s = z3.Solver()
        s.add(bs & bl == 0, ba & ~members == 0, bb & ~members == 0)
        ps, pl = _popcount(bs, n), _popcount(bl, n)
        s.add(quorum_rule(QuorumCounts(ps, pl, _popcount(ba & bs, n), _popcount(ba & bl, n))))
        s.add(other(QuorumCounts(ps, pl, _popcount(bb & bs, n), _popcount(bb & bl, n))))
        s.add(ba & bb & (members if need == "member" else bs) == 0)
        if _is_sat(s):
            m = s.model()
            val = {x: int(m.eval(x, model_completion=True).as_long()) for x in (bs, bl, ba, bb)}
            explicit_cex = {
                "kinds": {f"r{i + 1}": ("storage" if val[bs] >> i & 1 else
                                        "log" if val[bl] >> i & 1 else "none")
                          for i in range(n)},
                "A": _names(val[ba], n), "B": _names(val[bb], n)}
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
        end = "" if self.ended_seq is None else f", led until {self.ended_by} at seq {self.ended_seq}"
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
    election: _Ev | None
    end: _Ev | None = None  # the step that ended the leadership


# Actions that end a leadership whatever their ballot (a leader takes none of them
# while leading: it has stepped down, crashed or restarted).
_ENDS_LEADERSHIP = {"Crash", "Phase1a", "Phase1b", "BecomeLeader", "Restart", "Quarantine"}


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
    (``LeaseWaitNeeded``); it then trusts that r kept the wait.  Without it every
    granted lease counts from its start, which is stricter.

    Real times: each event's real time ``t`` satisfies ``|clock - t| <= max_drift_us``;
    per node, real time does not decrease along ``seq`` and the clock is a
    non-decreasing function of it; a ``LeaseGrant`` happens after its ``LeaseRenew``,
    a ``Phase1b`` after its ``Phase1a``, a ``BecomeLeader`` after the promises of its
    ``Q``.  Z3 decides, for each pair of leases of different leaders whose local
    intervals come within ``2 * max_drift_us`` of each other, whether some such
    assignment and some instant have both held.  Events that constrain no lease are
    left out of the model; that is exact, because between two events of a node any
    event can be placed within its drift window.

    Raises ``ValueError`` if a node's clock decreases along ``seq``, if a recorded
    ``real`` is more than ``max_drift_us`` from its ``clock``, or if the trace's
    constraints have no solution at all (the trace contradicts the drift bound).
    """
    t0 = time.perf_counter()
    if lease_dur_us <= 0 or max_drift_us < 0:
        raise ValueError("lease_dur_us must be > 0 and max_drift_us >= 0")
    d = max_drift_us

    # --- per-node event lists --------------------------------------------------------
    raw: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    names: set[str] = set()
    replica_of: dict[str, str] = {}
    for e in events:
        raw[e["node"]].append(e)
        replica_of.setdefault(e["node"], e["replica"])
        if members is None:
            names |= _ids_in(e)
    member_set = frozenset(members) if members is not None else frozenset(names)
    node_of = {r: n for n, r in replica_of.items()}
    by_node: dict[str, list[_Ev]] = {}
    has_real = True
    for node, evs in raw.items():
        evs = sorted(evs, key=lambda e: int(e["seq"]))
        out: list[_Ev] = []
        for i, e in enumerate(evs):
            ev = _Ev(node, i, int(e["seq"]), int(e["clock"]), e.get("real"), str(e["action"]),
                     dict(e.get("args") or {}))
            if out and ev.seq == out[-1].seq:
                raise ValueError(f"node {node} has seq {ev.seq} twice")
            if out and ev.clock < out[-1].clock:
                raise ValueError(f"node {node} seq {ev.seq}: clock goes back from"
                                 f" {out[-1].clock} to {ev.clock}")
            if ev.real is None:
                has_real = False
            elif abs(ev.clock - ev.real) > d:
                raise ValueError(f"node {node} seq {ev.seq}: clock {ev.clock} is more than"
                                 f" {d} from real {ev.real}")
            out.append(ev)
        by_node[node] = out
    clocks = {n: [e.clock for e in evs] for n, evs in by_node.items()}

    def is_quorum(group: set[str]) -> bool:
        return 2 * len(group & member_set) > len(member_set)

    # --- pass 1: grants, promises, elections -------------------------------------------
    grants: dict[tuple[str, int, int], list[_Ev]] = defaultdict(list)  # (from, start, bal)
    phase1a: dict[tuple[str, int], _Ev] = {}                           # (from, bal)
    promises: dict[tuple[str, int, str], tuple[_Ev, bool]] = {}        # (a, bal, to)
    for node, evs in by_node.items():
        granted = False
        for e in evs:
            m = _msg(e)
            if e.action == "LeaseGrant":
                grants[m.get("from", ""), m.get("start", -1), m.get("bal", -1)].append(e)
                granted = True
            elif e.action == "Restart" and int(e.args.get("granted", 0)) > 0:
                granted = True
            elif e.action == "Phase1a":
                phase1a[replica_of[node], int(e.args.get("b", -1))] = e
            elif e.action == "Phase1b":
                promises[replica_of[node], m.get("bal", -1), m.get("from", "")] = (e, granted)

    # --- pass 2: leaderships and their leases ------------------------------------------
    leases: list[_Lease] = []
    requests = 0
    elections: list[tuple[_Ev, list[_Ev]]] = []  # BecomeLeader and the promises it used
    for node, evs in by_node.items():
        r = replica_of[node]
        granted = False
        ballot: int | None = None
        election: _Ev | None = None
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
            if e.action == "LeaseGrant":
                granted = True
            elif e.action == "Restart" and int(e.args.get("granted", 0)) > 0:
                granted = True
            elif e.action == "BecomeLeader":
                ballot, election = int(e.args["b"]), e
                quorum = [str(a) for a in e.args.get("Q", [])]
                used = [promises[a, ballot, r] for a in quorum if (a, ballot, r) in promises]
                elections.append((e, [p for p, _ in used]))
                # LeaseWaitNeeded; a promise missing from the trace counts as "no grant",
                # which only lengthens the leases checked.
                wait = granted or any(g for _, g in used)
                wait_end = (e.clock + lease_dur_us + lease_margin_us
                            if wait and lease_margin_us is not None else None)
            elif e.action == "LeaseRenew":
                requests += 1
                start = int(e.args.get("start", e.clock))
                cands = [g for (frm, st, bal), gs in grants.items()
                         if frm == r and st == start and (ballot is None or bal == ballot)
                         for g in gs] if ballot is None else grants.get((r, start, ballot), [])
                who = {r} | {replica_of[g.node] for g in cands}
                if not is_quorum(who):
                    continue
                held_from = start if wait_end is None else max(start, wait_end)
                lease = _Lease(r, node, ballot, start, held_from, e, list(cands), who, election)
                if held_from < start + lease_dur_us:
                    leases.append(lease)
                    current.append(lease)
    del node_of

    # --- the model: real times of the events that matter -------------------------------
    tvar: dict[tuple[str, int], Z3Expr] = {}

    def t(e: _Ev) -> Z3Expr:
        k = (e.node, e.pos)
        if k not in tvar:
            tvar[k] = z3.Real(f"t_{e.node}_{e.seq}")
        return tvar[k]

    def first_at_or_after(node: str, after: int, clock: int) -> _Ev | None:
        """The node's first event after position ``after`` whose clock is >= ``clock``."""
        i = bisect.bisect_left(clocks[node], clock, lo=after + 1)
        return by_node[node][i] if i < len(by_node[node]) else None

    def last_before(node: str, clock: int) -> _Ev | None:
        """The node's last event whose clock is < ``clock``."""
        i = bisect.bisect_left(clocks[node], clock)
        return by_node[node][i - 1] if i > 0 else None

    causal: list[tuple[_Ev, _Ev]] = []  # (earlier, later)
    bounds: dict[int, tuple[_Ev | None, _Ev | None]] = {}  # lease id -> (last before, first after)
    for i, lease in enumerate(leases):
        t(lease.renew)
        for g in lease.grants:
            causal.append((lease.renew, g))
        if lease.end is not None:
            t(lease.end)
        after = first_at_or_after(lease.node, lease.renew.pos, lease.start + lease_dur_us)
        before = last_before(lease.node, lease.held_from) if lease.held_from > lease.start else None
        for b in (after, before):
            if b is not None:
                t(b)
        bounds[i] = (before, after)
    for e, used in elections:
        t(e)
        for p in used:
            causal.append((p, e))
            pm = _msg(p)
            a1 = phase1a.get((pm.get("from", ""), pm.get("bal", -1)))
            if a1 is not None:
                causal.append((a1, p))
    for a, b in causal:
        t(a)
        t(b)
    solver = z3.Solver()
    per_node: dict[str, list[_Ev]] = defaultdict(list)
    for node, pos in tvar:
        per_node[node].append(by_node[node][pos])
    for node, evs in per_node.items():
        evs.sort(key=lambda e: e.pos)
        for e in evs:
            solver.add(t(e) >= e.clock - d, t(e) <= e.clock + d)
        for x, y in zip(evs, evs[1:], strict=False):
            solver.add(t(x) <= t(y))
    for a, b in causal:
        solver.add(t(a) <= t(b))
    if not _is_sat(solver):
        raise ValueError(f"the trace contradicts a drift bound of {d} us: no real times satisfy"
                         f" per-node order and causality")

    # --- candidate pairs: local windows within 2 * max_drift ------------------------------
    def window(i: int) -> tuple[int, int]:
        lease = leases[i]
        hi = lease.start + lease_dur_us
        if lease.end is not None:
            hi = min(hi, lease.end.clock)
        return lease.held_from - d, hi + d

    order = sorted(range(len(leases)), key=lambda i: window(i)[0])
    candidates: list[tuple[int, int]] = []
    active: list[int] = []
    for i in order:
        lo_i, hi_i = window(i)
        active = [j for j in active if window(j)[1] >= lo_i]
        candidates += [(j, i) for j in active if leases[j].replica != leases[i].replica]
        if hi_i >= lo_i:
            active.append(i)

    def holds(lease_id: int, t_x: Z3Expr, c: Z3Expr) -> list[Z3Expr]:
        """Constraints: the lease's leader believes it holds it at real t_x, clock c."""
        lease = leases[lease_id]
        before, after = bounds[lease_id]
        cs = [c >= lease.held_from, c < lease.start + lease_dur_us,
              c >= t_x - d, c <= t_x + d, t_x >= t(lease.renew)]
        if after is not None:
            cs.append(t_x < t(after))   # its clock has reached the lease's end by then
        if before is not None:
            cs.append(t_x > t(before))  # its clock had not reached held_from by then
        if lease.end is not None:
            cs.append(t_x < t(lease.end))
        # the clock is non-decreasing through the modelled events of the node
        for e in per_node[lease.node]:
            if lease.held_from - 2 * d <= e.clock <= lease.start + lease_dur_us + 2 * d:
                cs += [z3.Implies(t(e) <= t_x, e.clock <= c), z3.Implies(t(e) >= t_x, e.clock >= c)]
        return cs

    def pair(i: int, j: int, pin: bool) -> LeaseOverlap | None:
        solver.push()
        try:
            t_x, c1, c2 = z3.Reals("t_overlap c_first c_second")
            solver.add(*holds(i, t_x, c1), *holds(j, t_x, c2))
            if pin:
                for (node, pos), v in tvar.items():
                    solver.add(v == by_node[node][pos].real)
            if not _is_sat(solver):
                return None
            m = solver.model()
            keys: list[_Ev] = []
            for lid in (i, j):
                lease = leases[lid]
                keys += [lease.renew, *lease.grants]
                if lease.election is not None:
                    keys.append(lease.election)
                    keys += next((u for e, u in elections if e is lease.election), [])
            return LeaseOverlap(leases and _public(leases[i], lease_dur_us),
                                _public(leases[j], lease_dur_us), _fraction(m, t_x),
                                _fraction(m, c1), _fraction(m, c2),
                                {e.key: _fraction(m, t(e)) for e in keys})
        finally:
            solver.pop()

    overlaps: list[LeaseOverlap] = []
    actual: list[LeaseOverlap] = []
    for i, j in candidates:
        w = pair(i, j, pin=False)
        if w is None:
            continue
        overlaps.append(w)
        if has_real:
            a = pair(i, j, pin=True)
            if a is not None:
                actual.append(a)
    public = tuple(_public(lease, lease_dur_us) for lease in leases)
    seconds = time.perf_counter() - t0
    if overlaps:
        text = (f"{len(overlaps)} pair(s) of leases of different leaders could overlap in real"
                f" time; e.g. {overlaps[0].describe()}")
        if has_real:
            text += ("; with the recorded real times: "
                     + ("still possible" if actual else "ruled out"))
    else:
        text = (f"no two of {len(leases)} leases of different leaders can overlap in real time"
                f" ({len(candidates)} pair(s) within 2 * max_drift checked with Z3)")
    return TraceLeaseResult(
        ok=not overlaps, explanation=text, leases=public, requests=requests,
        pairs_checked=len(candidates), overlaps=tuple(overlaps),
        actual_overlap=(bool(actual) if has_real else None), actual_overlaps=tuple(actual),
        seconds=seconds)


def _public(lease: _Lease, dur: int) -> TraceLease:
    return TraceLease(
        replica=lease.replica, node=lease.node, ballot=lease.ballot, start=lease.start,
        until=lease.start + dur, held_from=lease.held_from, grantors=tuple(sorted(lease.grantors)),
        seq=lease.renew.seq, ended_seq=None if lease.end is None else lease.end.seq,
        ended_by=None if lease.end is None else lease.end.action)


def _unused(_: Sequence[Any]) -> None:  # pragma: no cover - keeps Sequence imported for typing
    return None
