"""The lease theorem of specs/Replication.tla, proved with Z3.

``prove_lease_safety``, ``check_replica_config``, ``require_lease_safety``: for given
LeaseDur, LeaseMargin and MaxDrift there is no real time at which an old leader L1
still believes it holds its lease while a newer leader L2 serves, for every clock
behaviour the clock model allows and every message delay.  ``prove_lease_condition``
proves the same for symbolic parameters under the spec's condition
``LeaseMargin >= 2 * MaxDrift``; ``least_safe_margin_us`` finds the least safe margin.

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
  default of ``check_replica_config`` and the model of
  ``conformance.trace_leases.check_trace_leases``.

Optionally (``max_rate_ppm``) the offset may also change by at most
``max_rate_ppm * 1e-6`` per unit of real time, as ``reference/clocks.py``'s clocks
do; the spec does not assume it.  Time is dense (Z3 reals); every clock is a
non-decreasing function of real time.  With no rate bound the lease theorem holds
exactly when ``LeaseMargin >= 2 * W``.

The reference is meant to call ``require_lease_safety`` at startup, so this module
imports nothing from ``reference`` at run time (``ReplicaConfig`` is duck-typed).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import z3

from conformance.z3_util import Z3Expr, _fraction, _is_sat, _num

if TYPE_CHECKING:
    from reference.replica import ReplicaConfig

__all__ = [
    "ClockModel",
    "LeaseConfigError",
    "ProofResult",
    "check_replica_config",
    "least_safe_margin_us",
    "prove_lease_condition",
    "prove_lease_safety",
    "require_lease_safety",
]

ClockModel: TypeAlias = Literal["spec", "symmetric"]

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


# --- helpers ---------------------------------------------------------------------------


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


# --- the theorem -----------------------------------------------------------------------


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
