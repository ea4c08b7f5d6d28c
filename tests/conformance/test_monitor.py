"""The invariant monitor: silent on correct runs, and each property fires on its bug."""

from __future__ import annotations

from typing import Any

import pytest

from conformance.monitor import Monitor
from conformance.trace_loader import event_from_obj
from reference.actions import ACTIONS
from reference.cluster import SimConfig, World
from reference.trace_events import FORMAT_VERSION

DUR, MARGIN = 1_000_000, 9_000
R = ["r1", "r2", "r3"]


class Events:
    """Hand-written trace events with per-node sequence numbers."""

    def __init__(self) -> None:
        self.mon = Monitor(R, DUR, MARGIN)
        self.seq = dict.fromkeys(R, 0)

    def __call__(self, node: str, action: str, real: int = 0, clock: int | None = None,
                 **args: Any) -> list[str]:
        self.seq[node] += 1
        if action == "Restart":
            args.setdefault("digest", "00000000")
        obj = {"action": action, "v": FORMAT_VERSION, "node": node, "replica": node,
               "seq": self.seq[node], "real": real, "clock": real if clock is None else clock,
               "kind": ACTIONS[action].kind, "args": args}
        if ACTIONS[action].post:
            obj["post"] = POST  # the monitor does not read it; trace validation does
        ev = event_from_obj(obj)
        return [f"{v.prop}: {v.message}" for v in self.mon.step(ev, f"t:{self.seq[node]}")]


POST = {"bal": 0, "role": "follower", "top": 0, "applied": 0, "lease": False}


def cmd(rid: str) -> dict[str, Any]:
    return {"rid": rid, "op": {"op": "put"}}


def m2a(b: int, s: int, rid: str | None, src: str) -> dict[str, Any]:
    return {"type": "2a", "bal": b, "slot": s, "cmd": None if rid is None else cmd(rid),
            "from": src}


def elect(e: Events, r: str = "r1", b: int = 1, real: int = 0) -> None:
    e(r, "Phase1a", real, r=r, b=b)
    other = next(x for x in R if x != r)
    e(other, "Phase1b", real, a=other, m={"type": "1a", "bal": b, "from": r})
    e(r, "BecomeLeader", real, r=r, b=b, Q=[r, other])


def lease(e: Events, r: str = "r1", b: int = 1, real: int = 0) -> None:
    e(r, "LeaseRenew", real, r=r, start=real)
    other = next(x for x in R if x != r)
    e(other, "LeaseGrant", real, a=other, m={"type": "lease", "bal": b, "start": real,
                                               "from": r, "held": False})


@pytest.mark.parametrize("faults", ["crashes", "partitions", "clock-drift"])
def test_correct_runs_have_no_violation(faults: str) -> None:
    cfg = SimConfig(seed=2, faults=faults, duration_us=6_000_000, settle_us=2_000_000)
    rc = cfg.effective().replica_config()
    mon = Monitor(R, rc.lease_dur_us, rc.lease_margin_us)
    World(cfg, listener=mon.step).run()
    assert mon.events > 5_000 and len(mon.acked) > 100
    assert not mon.violations, [str(v) for v in mon.violations[:3]]


def test_a_normal_write_passes() -> None:
    e = Events()
    elect(e)
    lease(e)
    assert e("r1", "ClientWrite", 10, r="r1", c=cmd("w"), s=1) == []
    assert e("r2", "Phase2b", 20, a="r2", m=m2a(1, 1, "w", "r1")) == []
    assert e("r1", "Commit", 30, r="r1", b=1, s=1) == []
    assert e("r1", "Apply", 31, r="r1", s=1, c=cmd("w")) == []
    assert e("r1", "StrongRead", 32, r="r1", k={"p": {"S": "k"}}) == []


def test_durability_commit_without_a_quorum() -> None:
    e = Events()
    elect(e)
    lease(e)
    e("r1", "ClientWrite", 10, r="r1", c=cmd("w"), s=1)
    assert any(v.startswith("Durability") for v in e("r1", "Commit", 11, r="r1", b=1, s=1))


def test_durability_restart_must_recover_what_was_durable() -> None:
    e = Events()
    e("r2", "Phase1b", 0, a="r2", m={"type": "1a", "bal": 4, "from": "r1"})
    e("r2", "Crash", 1, r="r2")
    found = e("r2", "Restart", 2, ballot=0, granted=0, applied=0, log=0, wal="clean",
              truncated=0)
    assert found and found[0].startswith("Durability") and "(0, 0, 0, 0)" in found[0]


def test_agreement_two_commands_chosen_at_one_slot() -> None:
    e = Events()
    e("r1", "Phase2b", 0, a="r1", m=m2a(1, 1, "x", "r3"))
    e("r2", "Phase2b", 0, a="r2", m=m2a(1, 1, "x", "r3"))
    e("r2", "Phase2b", 1, a="r2", m=m2a(2, 1, "y", "r1"))
    assert any(v.startswith("Agreement") for v in
               e("r3", "Phase2b", 2, a="r3", m=m2a(2, 1, "y", "r1")))


def test_state_machine_safety_apply_before_chosen() -> None:
    e = Events()
    elect(e)
    lease(e)
    e("r1", "ClientWrite", 10, r="r1", c=cmd("w"), s=1)
    found = e("r1", "Apply", 11, r="r1", s=1, c=cmd("w"))
    assert found and found[0].startswith("StateMachineSafety")


def test_lease_exclusivity_two_leaders_at_once() -> None:
    e = Events()
    elect(e, "r1", 1)
    lease(e, "r1", 1, real=100)
    # r2 is elected by r3 (r1 is cut off) and, with no wait, takes a lease at once.
    e("r2", "Phase1a", 200, r="r2", b=2)
    e("r3", "Phase1b", 200, a="r3", m={"type": "1a", "bal": 2, "from": "r2"})
    e("r2", "BecomeLeader", 200, r="r2", b=2, Q=["r2", "r3"])
    e("r2", "LeaseRenew", 300, clock=300 + DUR + MARGIN, r="r2", start=300 + DUR + MARGIN)
    found = e("r3", "LeaseGrant", 300, a="r3", m={"type": "lease", "bal": 2,
                                                    "start": 300 + DUR + MARGIN, "from": "r2",
                                                    "held": False})
    assert any(v.startswith("LeaseExclusivity") for v in found)


def test_linearizability_strong_read_before_applying_acknowledged_writes() -> None:
    e = Events()
    elect(e)
    lease(e)
    e("r1", "ClientWrite", 10, r="r1", c=cmd("w"), s=1)
    e("r2", "Phase2b", 20, a="r2", m=m2a(1, 1, "w", "r1"))
    e("r1", "Commit", 30, r="r1", b=1, s=1)
    found = e("r1", "StrongRead", 31, r="r1", k={"p": {"S": "k"}})
    assert found and found[0].startswith("Linearizability")


def crash(node: str, seq: int) -> object:
    return event_from_obj({"action": "Crash", "v": FORMAT_VERSION, "node": node, "replica": node,
                           "seq": seq, "clock": 0, "kind": "spec", "args": {"r": node},
                           "post": POST})


def test_bad_events_are_errors_not_violations() -> None:
    mon = Monitor(R, DUR, MARGIN)
    with pytest.raises(ValueError, match="not a member"):
        mon.step(crash("r9", 1), "f:1")
    with pytest.raises(ValueError, match="f:2: r1 seq 2 follows 0"):
        mon.step(crash("r1", 2), "f:2")
    with pytest.raises(ValueError, match="not a trace event"):
        mon.step({"node": "r1", "seq": 1, "clock": 0, "action": "Nope", "args": {}}, "f:3")


def test_every_traced_action_has_a_rule_and_a_missing_one_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The dispatch table comes from the catalogue: deleting one rule breaks the monitor."""
    Monitor(R, DUR, MARGIN)
    monkeypatch.delattr(Monitor, "_on_LeaseGrant")
    with pytest.raises(TypeError, match="no rule for LeaseGrant"):
        Monitor(R, DUR, MARGIN)


@pytest.mark.parametrize("bug", ["EarlyAck", "NoLeaseWait"])
def test_seeded_bugs_are_caught_live(bug: str) -> None:
    from conformance.mutation_matrix import _monitor, run_scenario

    caught, detail = _monitor(run_scenario(1, bug))
    assert caught, detail


def test_eventual_reads_committed_an_unchosen_applied_state() -> None:
    """No seeded bug reaches this one first (StateMachineSafety fires at the apply), so
    it is shown here: a read from an applied state that was never chosen."""
    e = Events()
    elect(e)
    lease(e)
    e("r1", "ClientWrite", 10, r="r1", c=cmd("w"), s=1)
    e("r1", "Apply", 11, r="r1", s=1, c=cmd("w"))
    found = e("r1", "EventualRead", 12, r="r1", k={"p": {"S": "k"}})
    assert found and found[0].startswith("EventualReadsCommitted")


def test_lease_request_by_a_non_leader() -> None:
    e = Events()
    found = e("r2", "LeaseRenew", 5, r="r2", start=5)
    assert found and found[0].startswith("LeaseExclusivity")


def test_durability_restart_with_a_log_other_than_the_one_written() -> None:
    """Same (ballot, granted, applied, log top) but different entries: the digest differs."""
    e = Events()
    e("r2", "Phase2b", 0, a="r2", m=m2a(1, 1, "w", "r1"))
    e("r2", "Crash", 1, r="r2")
    found = e("r2", "Restart", 2, ballot=1, granted=0, applied=0, log=1, wal="clean",
              truncated=0, digest="00000000")
    assert found and found[0].startswith("Durability") and "digest 00000000" in found[0]
