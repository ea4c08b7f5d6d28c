"""Z3 proofs of the lease theorem (conformance/lease_theorem.py)."""

from __future__ import annotations

import types
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import pytest

from conformance.lease_theorem import (
    LeaseConfigError,
    check_replica_config,
    least_safe_margin_us,
    prove_lease_condition,
    prove_lease_safety,
    require_lease_safety,
)
from reference.cluster import SimConfig
from reference.replica import ReplicaConfig

D = 1_000_000  # lease duration used by the hand-made cases


def recheck_lease_counterexample(c: Mapping[str, Any], dur: int, margin: int, lo: int, hi: int,
                                 *, rate: Fraction | None = None,
                                 max_delay: int | None = None) -> None:
    """Re-derive, in plain Python, that the counterexample is a behaviour the spec
    allows and that both leaders hold at its instant."""
    t_req, s1 = c["L1.request.real"], c["L1.request.local"]
    t_e, e2 = c["L2.election.real"], c["L2.election.local"]
    t_x, c1, c2 = c["overlap.real"], c["L1.local@overlap"], c["L2.local@overlap"]
    offsets = {"L1@request": s1 - t_req, "L1@overlap": c1 - t_x,
               "L2@election": e2 - t_e, "L2@overlap": c2 - t_x}
    for name, off in offsets.items():
        assert lo <= off <= hi, (name, off)
    # clocks never run backwards
    assert t_x >= t_req and c1 >= s1
    assert t_x >= t_e and c2 >= e2
    if rate is not None:
        assert abs(offsets["L1@overlap"] - offsets["L1@request"]) <= rate * (t_x - t_req)
        assert abs(offsets["L2@overlap"] - offsets["L2@election"]) <= rate * (t_x - t_e)
    # causality: the replica in both quorums granted before it promised
    assert t_req <= c["grant.real"] <= c["promise.real"] <= t_e
    if max_delay is not None and c["intersection"] != "L1 itself":
        assert c["grant.real"] - t_req <= max_delay
    if c["intersection"] == "L1 itself":
        assert t_x < c["promise.real"]  # L1 had not yet stepped down
    else:
        assert c["wait_needed"]  # that replica reported its grant
    # the violation itself
    assert c1 < s1 + dur, "L1 still holds its lease"
    wait = dur + margin if c["wait_needed"] else 0
    assert c2 >= e2 + wait, "L2 serves"
    assert c["L1.lease_until.local"] == s1 + dur
    assert c["L2.serves_from.local"] == e2 + wait


def test_lease_theorem_holds_for_reference_defaults() -> None:
    cfg = SimConfig().replica_config()
    # against the reference's clocks, |local - real| <= max_drift_us (the default)...
    r = check_replica_config(cfg)
    assert r.ok, r.explanation
    assert r.counterexample is None
    require_lease_safety(cfg)  # does not raise
    # ...and a fortiori against the spec's narrower window
    assert check_replica_config(cfg, clock_model="spec").ok


def test_lease_theorem_holds_for_clock_drift_schedule() -> None:
    cfg = SimConfig(faults="clock-drift").effective().replica_config()
    assert cfg.max_drift_us == 50_000  # the schedule's drift, not the default
    r = check_replica_config(cfg)
    assert r.ok, r.explanation
    require_lease_safety(cfg)
    assert check_replica_config(cfg, clock_model="spec").ok


@pytest.mark.parametrize(("dur", "margin", "drift", "max_delay"), [
    (1_000_000, 3_999, 2_000, None),
    (1_000_000, 0, 2_000, None),
    (1_000_000, 99_999, 50_000, None),
    (10, 3, 2, None),
    (1_000_000, 3_000, 2_000, 500),
])
def test_margin_below_twice_drift_fails_with_a_real_counterexample(
        dur: int, margin: int, drift: int, max_delay: int | None) -> None:
    # ReplicaConfig refuses margin < 2 * drift, so the raw numbers are used
    with pytest.raises(ValueError):
        ReplicaConfig(dur, margin, drift, 0)
    r = prove_lease_safety(dur, margin, drift, max_delay_us=max_delay)
    assert not r.ok
    assert r.counterexample is not None
    assert "counterexample" in r.explanation and "\n" not in r.explanation
    recheck_lease_counterexample(r.counterexample, dur, margin, 0, drift, max_delay=max_delay)


def test_theorem_is_tight_at_twice_the_window() -> None:
    assert prove_lease_safety(D, 4_000, 2_000).ok
    assert not prove_lease_safety(D, 3_999, 2_000).ok
    assert least_safe_margin_us(D, 2_000) == 4_000
    # the reference's clocks (|local - real| <= drift) have a window twice as wide
    assert least_safe_margin_us(D, 2_000, clock_model="symmetric") == 8_000
    assert prove_lease_safety(D, 0, 0).ok  # perfect clocks need no margin


def test_symmetric_clocks_need_four_times_the_drift() -> None:
    drift = 50_000
    margin = 2 * drift + 1_000  # what SimConfig picks by default
    r = prove_lease_safety(D, margin, drift, clock_model="symmetric")
    assert not r.ok and r.counterexample is not None
    recheck_lease_counterexample(r.counterexample, D, margin, -drift, drift)
    assert prove_lease_safety(D, 4 * drift, drift, clock_model="symmetric").ok


def test_rate_bounded_clocks() -> None:
    # A rate bound narrows what drift can do within one lease.
    assert prove_lease_safety(D, 5_000, 2_000, clock_model="symmetric", max_rate_ppm=200).ok
    # but 5% over a 1 s lease is about 50 ms per clock: 101 ms of margin is short
    r = prove_lease_safety(D, 101_000, 50_000, clock_model="symmetric", max_rate_ppm=50_000)
    assert not r.ok and r.counterexample is not None
    recheck_lease_counterexample(r.counterexample, D, 101_000, -50_000, 50_000,
                                 rate=Fraction(50_000, 1_000_000))


def test_symbolic_condition() -> None:
    for model in ("spec", "symmetric"):
        r = prove_lease_condition(model)
        assert r.ok, r.explanation
    assert prove_lease_condition("spec", max_rate_ppm=1_000).ok


def test_require_lease_safety_raises_one_line_with_counterexample() -> None:
    # duck-typed: ReplicaConfig itself refuses such margins
    bad = types.SimpleNamespace(lease_dur_us=D, lease_margin_us=5_000, max_drift_us=2_000,
                                renew_ahead_us=0)
    with pytest.raises(LeaseConfigError) as exc:
        require_lease_safety(bad)  # type: ignore[arg-type]
    text = str(exc.value)
    assert isinstance(exc.value, ValueError)
    assert "\n" not in text
    # +/- 2 ms is a 4 ms window: twice that is needed
    assert "counterexample" in text and "needs lease_margin_us >= 8000" in text
    require_lease_safety(bad, clock_model="spec")  # type: ignore[arg-type]  # 4 ms suffices
    bad.lease_margin_us = 3_999
    with pytest.raises(LeaseConfigError, match="needs lease_margin_us >= 4000"):
        require_lease_safety(bad, clock_model="spec")  # type: ignore[arg-type]
