"""The fleet sequencer and the interval lease check, on hand-written format-4 lines: a
receipt whose clock reads earlier than its send is put after it; a cause that never
comes is a violation at the waiting event; a vote surely after the commit it would
justify does not justify it; leases that overlap for certain, or only possibly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from conformance.fleet_check import GroupVerdict
from conformance.fleet_leases import LeaseIntervals
from conformance.fleet_route import check_bucket
from conformance.fleet_sequence import INF
from conformance.monitor import Monitor

POST = {"bal": 0, "role": "follower", "top": 0, "applied": 0, "lease": False}
LEASE = 1_000_000


def fleet(tmp: Path, lines: dict[str, list[dict[str, Any]]]) -> Path:
    """One group g1 of r1, r2, r3 on n1, n2, n3; ``lines``: node -> its events."""
    tmp.mkdir()
    members = [{"id": f"r{i}", "node": f"n{i}", "incarnation": 1, "kind": "storage"}
               for i in (1, 2, 3)]
    spec = {"format": 4, "seed": 1, "duration_us": 1, "nodes": [{"id": f"n{i}"} for i in
                                                                  (1, 2, 3)],
            "groups": [{"id": "g1", "members": members, "clients": []}],
            "replica_config": {"lease_dur_us": LEASE, "lease_margin_us": 9000,
                               "max_drift_us": 2000, "renew_ahead_us": 500_000,
                               "peer_confirm": False},
            "faults": [], "segments": {"max_lines": 0, "compression": "none"}}
    (tmp / "fleet.json").write_bytes(orjson.dumps(spec))
    for i in (1, 2, 3):
        out = []
        for seq, ev in enumerate(lines.get(f"n{i}", []), start=1):
            obj = {"action": ev["action"], "v": 4, "group": "g1", "node": f"n{i}",
                   "replica": f"r{i}", "seq": seq, "clock": ev["clock"], "err": ev["err"],
                   "kind": "spec", "args": ev["args"], "post": {**POST, **ev.get("post", {})}}
            out.append(orjson.dumps(obj) + b"\n")
        (tmp / f"trace-n{i}.1.jsonl").write_bytes(b"".join(out))
    return tmp


def ev(action: str, clock: int, err: int, args: dict[str, Any], **post: Any) -> dict[str, Any]:
    return {"action": action, "clock": clock, "err": err, "args": args, "post": post}


def check(d: Path) -> GroupVerdict:
    (v,) = check_bucket(str(d), ["g1"])
    return v


def election(r: str, b: int, clock: int) -> list[dict[str, Any]]:
    return [ev("Phase1a", clock, 100, {"r": r, "b": b}, bal=b, role="candidate")]


def promise(a: str, src: str, b: int, clock: int, err: int = 100) -> dict[str, Any]:
    return ev("Phase1b", clock, err, {"a": a, "m": {"type": "1a", "bal": b, "from": src}},
              bal=b)


def test_a_receipt_read_earlier_than_its_send_is_put_after_it(tmp_path: Path) -> None:
    # n2's clock reads its promise before n1's 1a was sent; their intervals overlap.
    d = fleet(tmp_path / "f", {
        "n1": [*election("r1", 1, 10_000),
               ev("BecomeLeader", 10_500, 100, {"r": "r1", "b": 1, "Q": ["r1", "r2"]},
                  bal=1, role="leader")],
        "n2": [promise("r2", "r1", 1, 9_950, err=400)],
    })
    v = check(d)
    assert v.verdict == "ok", v.violations
    assert v.events == 3


def test_a_cause_that_never_comes_is_a_violation_at_the_waiting_event(tmp_path: Path) -> None:
    d = fleet(tmp_path / "f", {
        "n1": election("r1", 1, 10_000),
        "n2": [promise("r2", "r1", 1, 10_300), promise("r2", "r1", 2, 20_000)],
        "n3": [promise("r3", "r1", 1, 10_400)],
    })
    v = check(d)
    assert v.verdict == "violation"
    assert v.violations[0].startswith(f"{d}/trace-n2.1.jsonl:2: Phase1b: r2 promises ballot 2 "
                                      f"to r1, which sent no 1a")
    assert v.events == 4  # nothing lost behind the waiting event


def test_an_election_on_promises_that_surely_came_later_is_a_violation(tmp_path: Path) -> None:
    d = fleet(tmp_path / "f", {
        "n1": [*election("r1", 1, 10_000),
               ev("BecomeLeader", 10_500, 100, {"r": "r1", "b": 1, "Q": ["r1", "r2"]},
                  bal=1, role="leader")],
        "n2": [promise("r2", "r1", 1, 50_000)],  # 40 ms after the election, for certain
    })
    v = check(d)
    assert v.verdict == "violation"
    assert "trace-n1.1.jsonl:2: Agreement in BecomeLeader" in v.violations[0]


def test_a_cycle_is_broken_and_judged(tmp_path: Path) -> None:
    # Each node's first line waits on the other's second: no correct run does that.
    d = fleet(tmp_path / "f", {
        "n1": [promise("r1", "r2", 2, 10_000), *election("r1", 1, 10_100)],
        "n2": [promise("r2", "r1", 1, 10_000), *election("r2", 2, 10_100)],
    })
    v = check(d)
    assert v.verdict == "violation" and v.events == 4


def _two_leaders(err: int, gap: int) -> tuple[Monitor, LeaseIntervals]:
    """r1 holds a lease on its clock until 1_010_000 (seen at clock 500_000); r3 holds one
    from ``1_010_000 + gap`` on; each node's clock within ``err``."""
    mon = Monitor({"r1": "storage", "r2": "storage", "r3": "storage"}, LEASE, 9000)
    nxt = {"n1": INF, "n2": INF, "n3": INF}
    li = LeaseIntervals(mon, nxt.__getitem__)
    for name, b, start in (("r1", 1, 10_000), ("r3", 2, 1_010_000 + gap)):
        rep = mon.r[name]
        rep.role, rep.ballot, rep.wait_until = "leader", b, start
        rep.leases = {start: {name, "r2"}}
        mon.leaders.add(name)
    li.after_step("r1", "n1", 500_000, 500_000 - err, 500_000 + err)
    return mon, li


def test_two_leases_overlapping_for_certain_are_a_violation() -> None:
    mon, li = _two_leaders(err=100, gap=-600_000)  # r3's lease from 410_000 on
    li.after_step("r3", "n3", 700_000, 699_900, 700_100)
    assert [v.prop for v in mon.violations] == ["LeaseExclusivity"]
    assert "for every true time" in mon.violations[0].message
    assert not mon.warnings


def test_leases_that_may_overlap_within_the_bounds_are_a_warning() -> None:
    mon, li = _two_leaders(err=5_000, gap=1_000)  # r3's from 1 ms after r1's end
    li.after_step("r3", "n3", 1_012_000, 1_007_000, 1_017_000)
    assert not mon.violations
    assert [v.prop for v in mon.warnings] == ["LeaseExclusivity"]
    assert "possibly" in mon.warnings[0].message


def test_leases_apart_by_more_than_the_bounds_are_fine() -> None:
    mon, li = _two_leaders(err=100, gap=1_000)
    li.after_step("r3", "n3", 1_012_000, 1_011_900, 1_012_100)
    assert not mon.violations and not mon.warnings


# --- histories: windows widened by the routers' clock bounds ------------------------------


def _history_fleet(tmp: Path, err: int) -> Path:
    """A put acknowledged at 1000us and a strong read invoked at 1050us that still sees
    nothing, by router clocks within ``err``."""
    d = fleet(tmp, {})
    item = {"pk": {"S": "k1"}, "val": {"S": "a"}}
    recs = [
        {"id": "c1-1", "client": "c1", "op": "put", "key": {"p": {"S": "k1"}}, "invoke": 0,
         "complete": 1000, "status": "ok", "attempts": 1, "replica": "r1",
         "args": '{"item":{"pk":{"S":"k1"},"val":{"S":"a"}},"op":"put"}', "old": None,
         "new": item},
        {"id": "c2-1", "client": "c2", "op": "get", "key": {"p": {"S": "k1"}},
         "invoke": 1050, "complete": 1200, "status": "ok", "attempts": 1, "replica": "r1",
         "consistent": True, "value": None},
    ]
    lines = [orjson.dumps({**r, "v": 4, "group": "g1", "router": "rt1", "seq": i,
                           "err": err}) + b"\n" for i, r in enumerate(recs, start=1)]
    (d / "history-rt1.1.jsonl").write_bytes(b"".join(lines))
    return d


def test_a_stale_read_is_a_violation_only_when_certain(tmp_path: Path) -> None:
    from conformance.fleet_check import finish
    from conformance.fleet_history import load_histories
    from conformance.fleet_input import read_fleet_spec

    for err, verdict in ((10, "violation"), (100, "ok")):
        d = _history_fleet(tmp_path / f"h{err}", err)
        hist = load_histories(read_fleet_spec(d), ["g1"])
        v = finish(GroupVerdict("g1"), hist.groups["g1"])
        assert v.verdict == verdict, (err, v.violations)
        if verdict == "violation":
            assert v.violations[0].startswith(f"{d}/history-rt1.1.jsonl:")
