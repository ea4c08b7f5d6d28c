"""Z3 decides the borderline lease cases of a fleet replay, on hand-written format-4
fleets: r1 leads ballot 1 with a lease until 1_011_000us on its clock; r3 leads ballot
2 (on r2's promise) and, after its new-leader wait, holds a lease from 1_029_500us on
its clock. Clock bounds wide enough make the two leases possibly overlap on intervals;
Z3 then proves it impossible (dropped), certain (a violation at file:line), leaves it
possible (a warning with its witness), or cannot decide (a warning that says so)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fleet_fixtures import hand_event as ev
from fleet_fixtures import hand_fleet, hand_get, hand_history, hand_put

from conformance import fleet_z3
from conformance.fleet_check import GroupVerdict
from conformance.fleet_route import check_bucket
from conformance.fleet_z3 import Limits

R1_END = 1_011_000
"""r1's lease ends there on its clock (requested at 11_000)."""
R3_FROM = 1_029_500
"""r3's wait ends there on its clock (elected at 20_500: + 1_000_000 + 9_000)."""


def _lease(bal: int, start: int, src: str) -> dict[str, Any]:
    return {"type": "lease", "bal": bal, "start": start, "from": src, "held": False}


def _base() -> dict[str, list[dict[str, Any]]]:
    """The two leaderships, up to r3's first lease request (granted by r2)."""
    return {
        "n1": [ev("Phase1a", 10_000, 100, {"r": "r1", "b": 1}, bal=1, role="candidate"),
               ev("BecomeLeader", 10_500, 100, {"r": "r1", "b": 1, "Q": ["r1", "r2"]},
                  bal=1, role="leader"),
               ev("LeaseRenew", 11_000, 100, {"r": "r1", "start": 11_000}, bal=1,
                  role="leader")],
        "n2": [ev("Phase1b", 10_300, 100, {"a": "r2", "m": {"type": "1a", "bal": 1,
                                                            "from": "r1"}}, bal=1),
               ev("LeaseGrant", 11_200, 100, {"a": "r2", "m": _lease(1, 11_000, "r1")}, bal=1),
               ev("Phase1b", 20_300, 100, {"a": "r2", "m": {"type": "1a", "bal": 2,
                                                            "from": "r3"}}, bal=2),
               ev("LeaseGrant", 40_200, 100, {"a": "r2", "m": _lease(2, 40_000, "r3")}, bal=2)],
        "n3": [ev("Phase1a", 20_000, 100, {"r": "r3", "b": 2}, bal=2, role="candidate"),
               ev("BecomeLeader", 20_500, 100, {"r": "r3", "b": 2, "Q": ["r3", "r2"]},
                  bal=2, role="leader"),
               ev("LeaseRenew", 40_000, 5_000, {"r": "r3", "start": 40_000}, bal=2,
                  role="leader")],
    }


def _read(r: str, bal: int, clock: int, err: int) -> dict[str, Any]:
    return ev("StrongRead", clock, err, {"r": r, "k": {"p": {"S": "k1"}}}, bal=bal,
              role="leader", lease=True)


def _check(d: Path) -> GroupVerdict:
    (v,) = check_bucket(str(d), ["g1"])
    return v


def _old_leader_reads_late(tmp: Path, r3_next: int | None) -> Path:
    """r1 serves a read at 1_010_000us on its clock (err 15 ms): the true time may be up
    to 1_025_000us, when r3's clock (err 5 ms at its latest line) may read 1_030_000us,
    inside r3's lease. ``r3_next``: the clock of r3's next line (a lease request), if
    any."""
    lines = _base()
    lines["n1"].append(_read("r1", 1, 1_010_000, 15_000))
    if r3_next is not None:
        lines["n3"].append(ev("LeaseRenew", r3_next, 5_000, {"r": "r3", "start": r3_next},
                              bal=2, role="leader"))
    return hand_fleet(tmp, lines)


def test_an_overlap_z3_proves_impossible_is_dropped(tmp_path: Path) -> None:
    # r3's next line reads 1_020_000us, before its lease starts at 1_029_500us; while r1
    # reads (before that line), r3's clock reads at most that: no overlap.
    v = _check(_old_leader_reads_late(tmp_path / "f", r3_next=1_020_000))
    assert v.verdict == "ok", (v.violations, v.warnings)
    assert (v.z3.pairs, v.z3.dropped, v.z3.possible, v.z3.certain) == (1, 1, 0, 0)
    assert v.z3.to_json()["dropped"] == 1


def test_an_overlap_that_stays_possible_is_a_warning_with_its_witness(tmp_path: Path) -> None:
    v = _check(_old_leader_reads_late(tmp_path / "f", r3_next=None))
    assert v.verdict == "warning", v.violations
    assert not v.violations
    (w,) = v.warnings
    assert w.startswith(f"{tmp_path}/f/trace-n1.1.jsonl:4: LeaseExclusivity in StrongRead: "
                        f"r1 (ballot 1) believes it holds a lease at its clock 1010000us")
    assert "possibly both" in w and "Z3 witness" in w
    got = re.search(r"T = (-?[0-9.]+)us for r1's StrongRead .*?, r3's clock reads "
                    r"(-?[0-9.]+)us there", w)
    assert got is not None, w
    t, c = float(got[1]), float(got[2])
    # The witness is a world: r1's read within its bounds, r3's clock inside r3's lease
    # and within the 5 ms bound of true time.
    assert 995_000 <= t <= 1_025_000
    assert R3_FROM <= c < 1_040_000 and abs(c - t) <= 5_000
    assert (v.z3.pairs, v.z3.possible, v.z3.dropped) == (1, 1, 0)


def test_an_overlap_z3_proves_certain_is_a_violation_at_file_line(tmp_path: Path) -> None:
    # r3 reads at 1_030_000us (err 15 ms) and then asks for a lease again; r1 grants that
    # request (so after r3's read) at 1_008_000us on its clock: when r3 read, r1 was still
    # in its lease state and its clock read at most 1_008_000us, inside its lease. The
    # intervals cannot tell (r1's next line may come before the read's latest time).
    lines = _base()
    lines["n1"].append(_read("r1", 1, 600_000, 10_000))
    lines["n1"].append(ev("LeaseGrant", 1_008_000, 10_000,
                          {"a": "r1", "m": _lease(2, 1_031_000, "r3")}, bal=2))
    lines["n3"].append(_read("r3", 2, 1_030_000, 15_000))
    lines["n3"].append(ev("LeaseRenew", 1_031_000, 15_000, {"r": "r3", "start": 1_031_000},
                          bal=2, role="leader", lease=True))
    d = hand_fleet(tmp_path / "f", lines)
    v = _check(d)
    assert v.verdict == "violation"
    z3_found = [x for x in v.violations if "decided by Z3" in x]
    assert len(z3_found) == 1, v.violations
    assert z3_found[0].startswith(f"{d}/trace-n3.1.jsonl:4: LeaseExclusivity in StrongRead: "
                                  f"r3 (ballot 2) believes it holds a lease")
    assert "both, for every true time the clocks' bounds allow" in z3_found[0]
    assert f"{d}/trace-n3.1.jsonl:4" in v.where
    assert v.z3.certain == 1
    assert not any("LeaseExclusivity" in w for w in v.warnings)


def test_a_case_over_the_limit_is_reported_not_decided(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fleet_z3, "DEFAULT_LIMITS", Limits(max_cases=0))
    v = _check(_old_leader_reads_late(tmp_path / "f", r3_next=1_020_000))
    assert v.verdict == "warning"
    (w,) = v.warnings
    assert "LeaseExclusivity in StrongRead" in w
    assert "possibly both (not decided:" in w and "the group's limit of 0 cases" in w
    assert (v.z3.undecided, v.z3.dropped, v.z3.cases) == (1, 0, 0)


def test_a_query_that_times_out_is_reported_not_decided(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # Z3 answers "unknown" on a timeout; no small query takes that long, so answer it.
    monkeypatch.setattr(fleet_z3, "check3", lambda solver: "unknown")
    v = _check(_old_leader_reads_late(tmp_path / "f", r3_next=1_020_000))
    assert v.verdict == "warning"
    (w,) = v.warnings
    assert "possibly both (not decided: Z3 gave no answer within 2000 ms" in w
    assert (v.z3.undecided, v.z3.dropped) == (1, 0)


# --- strong reads: a put acknowledged, then (maybe) a strong read that misses it ----------


def _reads(tmp: Path, put: tuple[int, int], get: tuple[int, int], same_router: bool) -> Path:
    """Group g1 (no trace lines): a put of k1 over ``put`` on rt1's clock, a strong read of
    k1 that finds it absent over ``get`` on rt1's clock (``same_router``) or rt2's; both
    routers' bounds 100us (max_drift_us 2000)."""
    d = hand_fleet(tmp, {})
    p, g = hand_put("c1-1", *put, "a"), hand_get("c2-1", *get)
    if same_router:
        return hand_history(d, "rt1", [p, g], err=100)
    hand_history(d, "rt1", [p], err=100)
    return hand_history(d, "rt2", [g], err=100)


def test_a_stale_read_one_routers_clock_orders_is_certain(tmp_path: Path) -> None:
    # Widened by 100us the two windows touch, but one clock read 1000 then 1050: the
    # read was invoked after the put was acknowledged, for certain.
    d = _reads(tmp_path / "f", (0, 1000), (1050, 1200), same_router=True)
    v = _check(d)
    assert v.verdict == "violation", v.warnings
    (x,) = v.violations
    assert x.startswith(f"{d}/history-rt1.1.jsonl:1, {d}/history-rt1.1.jsonl:2: "
                        f"Linearizability: stale read")
    assert "certain under the routers' clock bounds: decided by Z3" in x
    assert (v.z3.read_keys, v.z3.read_certain) == (1, 1)


def test_a_stale_read_two_routers_may_order_is_a_warning_with_its_witness(
        tmp_path: Path) -> None:
    d = _reads(tmp_path / "f", (0, 1000), (1050, 1200), same_router=False)
    v = _check(d)
    assert v.verdict == "warning", v.violations
    (w,) = v.warnings
    assert w.startswith(f"{d}/history-rt")
    assert "Linearizability: possibly stale read" in w and "not certain" in w
    got = re.search(r"c1-1 \[(-?\d+)\.\.(-?\d+)\]us; c2-1 \[(-?\d+)\.\.(-?\d+)\]us", w) or \
        re.search(r"c2-1 \[(-?\d+)\.\.(-?\d+)\]us; c1-1 \[(-?\d+)\.\.(-?\d+)\]us", w)
    assert got is not None, w
    assert "Z3 witness" in w
    assert (v.z3.read_keys, v.z3.read_possible) == (1, 1)


def test_a_stale_read_the_bounds_rule_out_is_dropped(tmp_path: Path) -> None:
    # Narrowed by max_drift_us (2 ms) the read would start after the put's end; by the
    # routers' own 100us it starts before it, always. Each record is narrowed by its own
    # router's err, so the key never reaches Z3 (it did when every window was narrowed by
    # the fleet's bound: a 1.1 M-event fleet sent hundreds of such keys to Z3).
    v = _check(_reads(tmp_path / "f", (0, 10_000), (9_700, 12_000), same_router=False))
    assert v.verdict == "ok", (v.violations, v.warnings)
    assert v.z3.read_keys == 0


def test_a_read_key_over_the_limit_is_reported_not_decided(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fleet_z3, "READ_MAX_KEYS", 0)
    v = _check(_reads(tmp_path / "f", (0, 1000), (1050, 1200), same_router=True))
    assert v.verdict == "warning"
    (w,) = v.warnings
    assert "Linearizability: possibly not linearizable (not decided: this key and 0 more are " \
           "over the limit of 0 keys per group)" in w
    assert v.z3.read_undecided == 1


def test_router_readings_from_the_index_match_the_files(tmp_path: Path) -> None:
    """``router_ops`` from the records' (router, err) equals reading their lines back."""
    from fleet_fixtures import make_fleet

    from conformance.fleet_history import load_histories
    from conformance.fleet_input import read_fleet_spec
    from conformance.fleet_z3 import router_ops

    d = make_fleet(tmp_path / "f", copies=1, nodes=4, spread_us=300, slack_us=700)
    spec = read_fleet_spec(d)
    hist = load_histories(spec, list(spec.groups))
    h = next(iter(hist.groups.values()))
    recs = h.records[:200]
    assert recs and h.origin
    fast = router_ops(recs, h.line_of, h.origin)
    slow = router_ops(recs, h.line_of)
    key = sorted((o.rec.id, o.where, o.router, o.invoke, o.complete, o.err) for o in fast)
    assert key == sorted((o.rec.id, o.where, o.router, o.invoke, o.complete, o.err)
                         for o in slow)
