"""The lease-overlap check on traces (conformance/trace_leases.py)."""

from __future__ import annotations

import io
import types
from pathlib import Path
from typing import Any

import orjson
import pytest

from conformance.trace_leases import (
    TraceLeaseResult,
    check_trace_leases,
)
from conformance.trace_loader import event_to_obj, load_events
from reference.cluster import SimConfig, World
from reference.replica import ReplicaConfig

SAMPLE = Path(__file__).resolve().parents[2] / "traces" / "samples" / "crashes-seed7"
D = 1_000_000  # lease duration used by the hand-made cases


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
                     {"a": a, "m": {"type": "lease", "bal": b, "start": start, "held": False,
                                    "from": r}})


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


def handoff_trace(successor: str = "r3", relinquish_real: int = 50_000,
                  renew_after_election: int = 100) -> TraceBuilder:
    """r1 leads ballot 1 with a lease granted by r2 and hands off to ``successor`` at
    ``relinquish_real``; r3 is elected by r2 right after and renews at once."""
    t = TraceBuilder()
    t.elect("r1", 1, ["r2"], 0)
    t.lease("r1", 1, 10_000, ["r2"])
    t.add("r1", relinquish_real, "LeaseRelinquish", {"r": "r1", "s": successor})
    t.elect("r3", 3, ["r2"], 50_200)
    t.lease("r3", 3, 50_500 + renew_after_election, ["r2"])
    return t


def test_handoff_orders_the_relinquish_before_the_successors_election() -> None:
    # r1's lease ends at its relinquish, 600 us on the clock before r3's lease starts:
    # within 2 * max_drift, so the clocks alone cannot order them; the handoff does.
    ok = check_trace_leases(handoff_trace().events, D, 2_000, lease_margin_us=5_000)
    assert ok.ok and ok.pairs_checked == 1, ok.explanation
    r3 = [x for x in ok.leases if x.replica == "r3"]
    assert r3 and r3[0].held_from == r3[0].start  # the handoff removed the wait
    r1 = [x for x in ok.leases if x.replica == "r1"]
    assert r1[0].ended_by == "LeaseRelinquish"
    # without recorded real times the handoff's order is assumed (no receive step)
    no_real = [{k: v for k, v in e.items() if k != "real"} for e in handoff_trace().events]
    assert check_trace_leases(no_real, D, 2_000, lease_margin_us=5_000).ok


@pytest.mark.parametrize("case", ["other successor", "relinquished after the election",
                                  "no relinquish"])
def test_wait_skipped_without_a_handoff_is_flagged(case: str) -> None:
    if case == "other successor":
        t = handoff_trace(successor="r2")
    elif case == "relinquished after the election":
        t = handoff_trace(relinquish_real=50_450)
    else:
        t = handoff_trace()
        t.events = [e for e in t.events if e["action"] != "LeaseRelinquish"]
    # r3 serves at once, so its leases count from there: it did not keep the wait
    renew = next(x for x in t.events if x["action"] == "LeaseRenew" and x["node"] == "r3")
    t.add("r3", renew["real"] + 10, "StrongRead", {"r": "r3", "k": {"p": {"S": "k1"}}})
    res = check_trace_leases(t.events, D, 2_000, lease_margin_us=5_000)
    assert not res.ok, res.explanation
    recheck_witness(res, t.events, 2_000)


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
    events = [event_to_obj(loc.event) for loc in load_events(SAMPLE)]
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



