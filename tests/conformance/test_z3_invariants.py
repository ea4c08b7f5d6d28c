"""Z3 proofs of the lease and quorum invariants, and the lease-overlap check on traces."""

from __future__ import annotations

import io
import itertools
import types
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

import orjson
import pytest

from conformance.z3_invariants import (
    LeaseConfigError,
    TraceFormatError,
    TraceLeaseResult,
    check_replica_config,
    check_trace_leases,
    half_rounded_down_quorum,
    least_safe_margin_us,
    load_trace_events,
    majority_quorum,
    prove_lease_condition,
    prove_lease_safety,
    prove_quorum_intersection,
    require_lease_safety,
    rule_holds,
    storage_majority_quorum,
    storage_write_quorum,
)
from reference.cluster import SimConfig, World
from reference.replica import Replica, ReplicaConfig

SAMPLE = Path(__file__).resolve().parents[2] / "traces" / "samples" / "crashes-seed7"
D = 1_000_000  # lease duration used by the hand-made cases

# --- 1. lease safety -------------------------------------------------------------------


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


# --- 2. quorum intersection -------------------------------------------------------------


def _counts(kinds: Mapping[str, str], group: list[str]) -> tuple[int, int, int, int]:
    st = sum(k == "storage" for k in kinds.values())
    lg = sum(k == "log" for k in kinds.values())
    return (st, lg, sum(kinds[a] == "storage" for a in group),
            sum(kinds[a] == "log" for a in group))


def test_quorum_intersection_holds() -> None:
    r = prove_quorum_intersection()
    assert r.ok, r.explanation
    assert "up to 9 replicas" in r.explanation
    assert prove_quorum_intersection(4).ok


def test_broken_rule_gives_a_counterexample() -> None:
    r = prove_quorum_intersection(5, quorum_rule=half_rounded_down_quorum)
    assert not r.ok and r.counterexample is not None
    kinds, a, b = r.counterexample["kinds"], r.counterexample["A"], r.counterexample["B"]
    assert a and b  # a readable one: two non-empty groups
    members = {x for x, k in kinds.items() if k != "none"}
    assert not set(a) & set(b) & members
    assert rule_holds(half_rounded_down_quorum, *_counts(kinds, a))
    assert rule_holds(half_rounded_down_quorum, *_counts(kinds, b))
    assert not rule_holds(majority_quorum, *_counts(kinds, a)) or \
        not rule_holds(majority_quorum, *_counts(kinds, b))


def test_majority_rule_is_the_implementations() -> None:
    cfg = ReplicaConfig(D, 9_000, 2_000, 0)  # valid whether margin >= 2 or 4 * drift
    for n in range(1, 5):
        names = [f"r{i}" for i in range(1, n + 1)]
        for kinds in itertools.product(("storage", "log", "none"), repeat=n):
            members = dict(zip(names, kinds, strict=True))
            rep = Replica(names[0], members, cfg)  # type: ignore[arg-type]
            for k in range(n + 1):
                for group in itertools.combinations(names, k):
                    expect = rep.is_quorum(set(group))
                    got = rule_holds(majority_quorum, *_counts(members, list(group)))
                    assert got == expect, (members, group)


def test_rules_for_log_replicas() -> None:
    # Quorums with a storage replica still intersect majorities in some member...
    assert prove_quorum_intersection(6, quorum_rule=storage_write_quorum,
                                     other_quorum_rule=majority_quorum).ok
    # ...but not necessarily in a storage replica.
    r = prove_quorum_intersection(6, quorum_rule=storage_write_quorum,
                                  other_quorum_rule=majority_quorum, need="storage")
    assert not r.ok and r.counterexample is not None
    kinds, a, b = r.counterexample["kinds"], r.counterexample["A"], r.counterexample["B"]
    assert all(kinds[x] != "storage" for x in set(a) & set(b))
    assert rule_holds(storage_write_quorum, *_counts(kinds, a))
    assert rule_holds(majority_quorum, *_counts(kinds, b))
    # A majority of the storage replicas on both sides is what that would need.
    assert prove_quorum_intersection(6, quorum_rule=storage_majority_quorum, need="storage").ok


# --- 3. leases in traces ------------------------------------------------------------------


class TraceBuilder:
    """Trace lines as the reference writes them; every clock equals real time unless
    an offset is given."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.seq: dict[str, int] = {}

    def add(self, node: str, real: int, action: str, args: dict[str, Any],
            offset: int = 0, kind: str = "spec") -> dict[str, Any]:
        self.seq[node] = self.seq.get(node, 0) + 1
        e = {"v": 1, "node": node, "replica": node, "seq": self.seq[node], "clock": real + offset,
             "real": real, "kind": kind, "action": action, "args": args}
        self.events.append(e)
        return e

    def elect(self, r: str, b: int, voters: list[str], real: int) -> None:
        self.add(r, real, "Phase1a", {"r": r, "b": b})
        for i, a in enumerate(voters, 1):
            self.add(a, real + 100 * i, "Phase1b", {"a": a, "m": {"type": "1a", "bal": b,
                                                                  "from": r}})
        self.add(r, real + 100 * (len(voters) + 1), "BecomeLeader",
                 {"r": r, "b": b, "Q": sorted([r, *voters])})

    def lease(self, r: str, b: int, start: int, grantors: list[str]) -> None:
        self.add(r, start, "LeaseRenew", {"r": r, "start": start})
        for i, a in enumerate(grantors, 1):
            self.add(a, start + 100 * i, "LeaseGrant",
                     {"a": a, "m": {"type": "lease", "bal": b, "start": start, "from": r}})


def overlapping_trace(renew_after_election: int = 1_000) -> TraceBuilder:
    """r1 leads ballot 1 and holds a lease from 10_000; r3 is elected (with r2, which
    granted r1's lease) at ~100_000 and renews right away, without the wait."""
    t = TraceBuilder()
    t.elect("r1", 1, ["r2"], 0)
    t.lease("r1", 1, 10_000, ["r2"])
    t.elect("r3", 3, ["r2"], 100_000)
    t.lease("r3", 3, 100_300 + renew_after_election, ["r2"])
    return t


def recheck_witness(res: TraceLeaseResult, events: list[dict[str, Any]], drift: int) -> None:
    w = res.witness
    assert w is not None
    assert w.first.replica != w.second.replica
    for lease, local in ((w.first, w.local_first), (w.second, w.local_second)):
        assert lease.held_from <= local < lease.until
        assert abs(local - w.real) <= drift
    clock = {f"{e['node']}#{e['seq']} {e['action']}": e["clock"] for e in events}
    for key, real in w.event_real.items():
        assert abs(clock[key] - real) <= drift, key
    renews = {k: v for k, v in w.event_real.items() if k.endswith("LeaseRenew")}
    assert all(w.real >= v for v in renews.values())


def test_handmade_overlap_is_flagged_with_a_witness() -> None:
    t = overlapping_trace()
    res = check_trace_leases(t.events, D, 2_000)
    assert not res.ok
    assert {res.witness.first.replica, res.witness.second.replica} == {"r1", "r3"}  # type: ignore[union-attr]
    assert "could overlap" in res.explanation
    recheck_witness(res, t.events, 2_000)
    assert res.actual_overlap is True  # the recorded real times overlap too
    assert res.actual_overlaps


def test_handmade_trace_without_quorum_or_real() -> None:
    t = overlapping_trace()
    # without r2's grant r3 holds no lease: nothing to overlap
    no_grant = [e for e in t.events if not (e["action"] == "LeaseGrant"
                                            and e["args"]["m"]["from"] == "r3")]
    assert check_trace_leases(no_grant, D, 2_000).ok
    # without real times the check still finds the overlap, and says nothing about reals
    no_real = [{k: v for k, v in e.items() if k != "real"} for e in t.events]
    res = check_trace_leases(no_real, D, 2_000)
    assert not res.ok and res.actual_overlap is None


def test_new_leader_wait_is_modelled_with_a_margin() -> None:
    # The reference's new leader asks for its first lease at e + margin + 1 (it may,
    # since the lease outlasts its wait) and holds it only once the wait is over.
    margin = 5_000
    t = overlapping_trace(renew_after_election=margin + 1)
    e = next(x["clock"] for x in t.events if x["action"] == "BecomeLeader" and x["node"] == "r3")
    strict = check_trace_leases(t.events, D, 2_000)
    assert not strict.ok  # counted from its start, the lease overlaps r1's
    res = check_trace_leases(t.events, D, 2_000, lease_margin_us=margin)
    assert res.ok, res.explanation
    r3 = [x for x in res.leases if x.replica == "r3"]
    assert r3 and r3[0].held_from == e + D + margin
    # too short a margin for the drift: overlap possible
    res = check_trace_leases(t.events, D, 200_000, lease_margin_us=margin)
    assert not res.ok


@pytest.mark.parametrize(("gap", "overlap"), [(4_000, False), (3_999, True)])
def test_drift_arithmetic_is_exact(gap: int, overlap: bool) -> None:
    # r3 asks for its lease `gap` after r1's lease ends on r1's clock.  Each real time is
    # within 2 ms of its clock, so they can overlap exactly when gap < 2 * 2 ms.
    t = TraceBuilder()
    t.elect("r1", 1, ["r2"], 0)
    t.lease("r1", 1, 10_000, ["r2"])
    until = 10_000 + D
    t.elect("r3", 3, ["r2"], until - 10_000)
    t.lease("r3", 3, until + gap, ["r2"])
    res = check_trace_leases(t.events, D, 2_000)
    assert res.pairs_checked == 1
    assert res.ok is not overlap, res.explanation
    if overlap:
        recheck_witness(res, t.events, 2_000)
        # with real = clock recorded, r1's clock has passed its lease end by then
        assert res.actual_overlap is False
    # with a wider drift bound the tighter case overlaps too
    assert not check_trace_leases(t.events, D, 2_001).ok


def test_quorums_follow_the_membership() -> None:
    t = overlapping_trace()
    assert len(check_trace_leases(t.events, D, 2_000).leases) == 2
    # among five members, a leader and one grant are no quorum
    res = check_trace_leases(t.events, D, 2_000, members=["r1", "r2", "r3", "r4", "r5"])
    assert res.ok and not res.leases and res.requests == 2


def test_serving_during_the_wait_is_flagged() -> None:
    # With a margin the check trusts the wait, unless the new leader is seen serving
    # before it is over: then its leases count from there.
    t = overlapping_trace()
    assert check_trace_leases(t.events, D, 2_000, lease_margin_us=5_000).ok
    renew = next(x for x in t.events if x["action"] == "LeaseRenew" and x["node"] == "r3")
    t.add("r3", renew["real"] + 500, "StrongRead", {"r": "r3", "k": {"p": {"S": "k1"}}})
    res = check_trace_leases(t.events, D, 2_000, lease_margin_us=5_000)
    assert not res.ok
    assert res.witness is not None and res.witness.second.held_from == renew["clock"] + 500
    recheck_witness(res, t.events, 2_000)


def test_wait_not_needed_when_no_voter_granted() -> None:
    # r1 holds a lease granted by r3 only; r2 is elected by r2 and r1 (r1 steps down when
    # it promises), and no voter ever granted: LeaseWaitNeeded is false.
    t = TraceBuilder()
    t.elect("r1", 1, ["r3"], 0)
    t.lease("r1", 1, 10_000, ["r3"])
    t.elect("r2", 2, ["r1"], 100_000)
    t.lease("r2", 2, 100_500, ["r1"])
    res = check_trace_leases(t.events, D, 2_000, lease_margin_us=5_000)
    r2 = [x for x in res.leases if x.replica == "r2"]
    assert r2 and r2[0].held_from == 100_500  # no wait
    assert res.ok, res.explanation  # r1's promise ended its lease before r2's election
    r1 = [x for x in res.leases if x.replica == "r1"]
    assert r1[0].ended_by == "Phase1b"


def test_trace_contradicting_the_drift_bound_is_refused() -> None:
    t = TraceBuilder()
    t.elect("r1", 1, ["r2"], 0)
    t.lease("r1", 1, 500_000, ["r2"])
    t.events[-1]["clock"] = 10_000  # r2 grants 490 ms before the request, on its clock
    del t.events[-1]["real"]
    with pytest.raises(ValueError, match="contradicts"):
        check_trace_leases(t.events, D, 2_000)
    t.events[-1]["real"] = 500_100  # and a recorded real time must be within the drift
    with pytest.raises(ValueError, match="more than"):
        check_trace_leases(t.events, D, 2_000)
    # recorded real times must respect causality even where the drift would allow it
    t.events[-1].update(clock=499_000, real=499_500)  # granted before it was asked
    with pytest.raises(ValueError, match="recorded real times contradict"):
        check_trace_leases(t.events, D, 2_000)
    for e in t.events:
        e.pop("real", None)
    assert check_trace_leases(t.events, D, 2_000).ok  # the clocks alone are consistent


def test_committed_sample_is_safe() -> None:
    cfg = types.SimpleNamespace(**orjson.loads((SAMPLE / "config.json").read_bytes()))
    events = load_trace_events(SAMPLE)
    lines = sum(len(p.read_bytes().splitlines()) for p in SAMPLE.glob("trace-*.jsonl"))
    assert len(events) == lines
    # null: SimConfig's default; assuming the least one it ever had only lengthens leases
    margin = cfg.lease_margin_us or 2 * cfg.max_drift_us + 1_000
    for m in (None, margin):
        res = check_trace_leases(events, cfg.lease_dur_us, cfg.max_drift_us, lease_margin_us=m)
        assert res.ok, res.explanation
        assert len(res.leases) >= 10
        assert len({x.replica for x in res.leases}) >= 2  # the sample changes leader
        assert res.actual_overlap is False


@pytest.fixture(scope="module")
def clock_drift_run() -> tuple[list[dict[str, Any]], ReplicaConfig]:
    sinks = {f"r{i}": io.BytesIO() for i in (1, 2, 3)}
    w = World(SimConfig(seed=3, faults="clock-drift", duration_us=8_000_000), sinks)  # type: ignore[arg-type]
    w.run()
    events = [orjson.loads(line) for s in sinks.values() for line in s.getvalue().splitlines()]
    return events, w.config.replica_config()


def test_clock_drift_simulation_is_safe(
        clock_drift_run: tuple[list[dict[str, Any]], ReplicaConfig]) -> None:
    events, cfg = clock_drift_run
    assert cfg.max_drift_us == 50_000
    for m in (None, cfg.lease_margin_us):
        res = check_trace_leases(events, cfg.lease_dur_us, cfg.max_drift_us, lease_margin_us=m)
        assert res.ok, res.explanation
        assert len({x.replica for x in res.leases}) >= 2
        assert res.actual_overlap is False


def test_scales_to_thousands_of_leases() -> None:
    t = TraceBuilder()
    t.elect("r1", 1, ["r2"], 0)
    n = 3_000
    for k in range(n):
        t.lease("r1", 1, 10_000 + k * 500_000, ["r2", "r3"])
    end = 10_000 + n * 500_000
    # r2 takes over with r1's promise (r1 steps down) and asks for a lease at once,
    # within 2 * max_drift of r1's step-down, then leads for a while
    t.elect("r2", 2, ["r1"], end - 400_000)
    for k in range(50):
        t.lease("r2", 2, end - 399_000 + k * 500_000, ["r1", "r3"])
    res = check_trace_leases(t.events, D, 2_000)
    assert res.ok, res.explanation
    assert len(res.leases) == n + 50
    assert 1 <= res.pairs_checked <= 4  # only the handover is asked of Z3


def _write(tmp_path: Path, lines: list[bytes]) -> Path:
    p = tmp_path / "trace-r1.jsonl"
    p.write_bytes(b"".join(line + b"\n" for line in lines))
    return p


GOOD = {"v": 1, "node": "r1", "replica": "r1", "seq": 1, "clock": 5, "real": 6, "kind": "spec",
        "action": "Crash", "args": {"r": "r1"}}


@pytest.mark.parametrize(("second", "reason"), [
    (b"{not json", "not JSON"),
    (b"[1, 2]", "not a JSON object"),
    (orjson.dumps({**GOOD, "seq": 2, "v": 2}), "format version"),
    (orjson.dumps({k: v for k, v in GOOD.items() if k != "clock"} | {"seq": 2}), "'clock'"),
    (orjson.dumps({**GOOD, "seq": 2, "args": []}), "'args'"),
    (orjson.dumps({**GOOD, "seq": 2, "real": "7"}), "'real'"),
    (orjson.dumps(GOOD), "seq 1 of node r1 after seq 1"),
    (orjson.dumps({**GOOD, "seq": 2, "clock": 4}), "clock of node r1 goes back"),
    (orjson.dumps({**GOOD, "seq": 2, "real": 5}), "real time of node r1 goes back"),
])
def test_load_trace_events_names_file_and_line(tmp_path: Path, second: bytes, reason: str) -> None:
    p = _write(tmp_path, [orjson.dumps(GOOD), second])
    with pytest.raises(TraceFormatError) as exc:
        load_trace_events([p])
    assert str(exc.value).startswith(f"{p}:2: ")
    assert reason in str(exc.value)


def test_load_trace_events_merges_and_orders(tmp_path: Path) -> None:
    a = tmp_path / "trace-r1.jsonl"
    b = tmp_path / "trace-r2.jsonl"
    a.write_bytes(orjson.dumps(GOOD) + b"\n" + orjson.dumps({**GOOD, "seq": 2}) + b"\n")
    b.write_bytes(orjson.dumps({**GOOD, "node": "r2", "replica": "r2"}) + b"\n")
    events = load_trace_events(tmp_path)  # a directory: its trace-*.jsonl
    assert [(e["node"], e["seq"]) for e in events] == [("r1", 1), ("r1", 2), ("r2", 1)]
    dup = tmp_path / "other.jsonl"
    dup.write_bytes(orjson.dumps(GOOD) + b"\n")
    with pytest.raises(TraceFormatError, match=r"other\.jsonl:1: node r1 seq 1 also at"):
        load_trace_events([a, dup])
