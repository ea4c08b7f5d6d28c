from __future__ import annotations

import random
from typing import Any

import pytest

from reference.messages import (
    EMPTY,
    NOOP,
    Command,
    CommitMsg,
    Entry,
    Kind,
    LeaseAckMsg,
    LeaseMsg,
    LeaseNotHeld,
    Message,
    NotLeader,
    NotReady,
    NotStorage,
    Phase1aMsg,
    Phase1bMsg,
    Phase2aMsg,
    Phase2bMsg,
    ReadResult,
)
from reference.pump import Pump
from reference.replica import (
    Apply,
    Broadcast,
    Effect,
    Persist,
    Replica,
    ReplicaConfig,
    Reply,
    Send,
    SetTimer,
)
from reference.retransmit import catch_up, have, lease_resend, resend_uncommitted
from reference.storage import Applied, Key, M, N, Put, S, encode_op
from reference.trace_events import PostState

DUR, MARGIN, DRIFT, AHEAD = 10_000, 4_000, 1_000, 2_000
CFG = ReplicaConfig(lease_dur_us=DUR, lease_margin_us=MARGIN, max_drift_us=DRIFT,
                    renew_ahead_us=AHEAD)
MEMBERS: dict[str, Kind] = {"a": "storage", "b": "storage", "c": "storage"}
K = Key(S("k"))


def put(rid: str, val: int) -> Command:
    return Command(rid, encode_op(Put(M(pk=S("k"), v=N(val)))))


def rep(node: str = "a", members: dict[str, Kind] | None = None) -> Replica:
    return Replica(node, MEMBERS if members is None else members, CFG)


def set_log(r: Replica, log: dict[int, Entry]) -> None:
    """Give ``r`` this durable log (its ``top`` too, as recovery would)."""
    r.log = dict(log)
    r.top = max(log, default=0)


def write_entry(r: Replica, s: int, e: Entry) -> None:
    """Write one entry of ``r``'s durable log (its ``top`` too, as recovery would)."""
    r.log[s] = e
    r.top = max(r.top, s)


def steps(r: Replica) -> list[tuple[str, dict[str, Any]]]:
    """The recorded steps without their post-states."""
    return [(e.action, e.args) for e in r.events]


def snapshot(r: Replica) -> Any:
    return (r.durable_state(), r.top, r.role, list(r.proposals), r.read_barrier, r.wait_until,
            r.proposed_upto, r.committed_upto, {t: set(g) for t, g in r.lease_grants.items()},
            len(r.events), r.store.checksum(), dict(r.results))


def unchanged(r: Replica, effects: list[Effect], before: Any) -> bool:
    return effects == [] and snapshot(r) == before


def candidate(node: str = "a", b: int = 1) -> Replica:
    r = rep(node)
    r.phase1a(b, 0)
    return r


def promise(b: int, src: str, dst: str = "a", log: tuple[Entry, ...] = (),
            granted: int = 0) -> Phase1bMsg:
    return Phase1bMsg(b, src, dst, log, granted)


def leader(b: int = 1, now: int = 0, granted: int = 0) -> Replica:
    """Replica "a" leading ballot b, holding a lease started at ``now``."""
    r = candidate("a", b)
    r.receive_promise(promise(b, "b", granted=granted))
    assert r.become_leader(b, {"a", "b"}, now)
    assert r.lease_renew(max(now, r.wait_until - DUR + 1))
    start = max(r.lease_grants)
    r.receive_lease_ack(LeaseAckMsg(b, start, "b", "a"))
    return r


# --- configuration --------------------------------------------------------------------


def test_config_rejects_margin_below_twice_the_drift_window() -> None:
    with pytest.raises(ValueError, match="4 \\* max_drift_us"):
        ReplicaConfig(lease_dur_us=10, lease_margin_us=4 * 3 - 1, max_drift_us=3,
                      renew_ahead_us=1)
    ok = ReplicaConfig(lease_dur_us=20, lease_margin_us=12, max_drift_us=3, renew_ahead_us=1)
    assert ok.lease_margin_us == 12


@pytest.mark.parametrize("dur,ahead", [(0, 0), (10, 10), (10, -1)])
def test_config_rejects_bad_lease_timing(dur: int, ahead: int) -> None:
    with pytest.raises(ValueError):
        ReplicaConfig(lease_dur_us=dur, lease_margin_us=0, max_drift_us=0, renew_ahead_us=ahead)


def test_replica_must_be_listed_in_members() -> None:
    with pytest.raises(ValueError):
        Replica("z", MEMBERS, CFG)


def test_next_ballot_is_above_current_and_unique_per_replica() -> None:
    seen: set[int] = set()
    for node in MEMBERS:
        r = rep(node)
        for _ in range(5):
            b = r.next_ballot()
            assert b > r.ballot
            assert b not in seen
            seen.add(b)
            r.ballot = b
    assert len(seen) == 15


# --- Phase1a / Phase1b -----------------------------------------------------------------


def test_phase1a_starts_an_election() -> None:
    r = rep()
    effects = r.phase1a(4, 0)
    assert effects == [Persist("ballot"), Broadcast(Phase1aMsg(4, "a"))]
    assert (r.ballot, r.role) == (4, "candidate")
    assert steps(r) == [("Phase1a", {"r": "a", "b": 4})]
    assert r.events[-1].post == PostState(bal=4, role="candidate", top=0, applied=0, lease=False)


def test_phase1a_disabled() -> None:
    r = rep()
    r.ballot = 5
    before = snapshot(r)
    assert unchanged(r, r.phase1a(5, 0), before)  # b must exceed the promise
    log_replica = rep("c", {"a": "storage", "b": "storage", "c": "log"})
    before = snapshot(log_replica)
    assert unchanged(log_replica, log_replica.phase1a(1, 0), before)  # storage replicas only
    lead = leader()
    before = snapshot(lead)
    assert unchanged(lead, lead.phase1a(9, 0), before)  # a leader does not re-elect


def test_phase1b_promises_and_reports_log_and_grant() -> None:
    r = rep("b")
    write_entry(r, 1, Entry(1, put("w1", 1)))
    r.granted = 1
    effects = r.phase1b(Phase1aMsg(3, "a"))
    assert effects == [Persist("ballot"), Send("a", Phase1bMsg(3, "b", "a", (r.log[1],), 1))]
    assert r.ballot == 3
    assert r.events[-1].action == "Phase1b"
    assert r.events[-1].post == PostState(bal=3, role="follower", top=1, applied=0, lease=False)


def test_phase1b_steps_a_leader_down() -> None:
    r = leader()
    r.phase1b(Phase1aMsg(2, "c"))
    assert (r.role, r.proposals, r.lease_grants) == ("follower", [], {})
    assert not r.holds_lease(1)
    assert (r.events[-1].post.role, r.events[-1].post.lease) == ("follower", False)


def test_phase1b_disabled() -> None:
    r = rep("b")
    r.ballot = 3
    before = snapshot(r)
    assert unchanged(r, r.phase1b(Phase1aMsg(3, "a")), before)
    assert unchanged(r, r.phase1b(Phase1aMsg(2, "a")), before)
    assert unchanged(r, r.phase1b(Phase1aMsg(9, "b")), before)  # its own message
    outsider = rep("c", {"a": "storage", "b": "storage", "c": "none"})
    before = snapshot(outsider)
    assert unchanged(outsider, outsider.phase1b(Phase1aMsg(9, "a")), before)


# --- BecomeLeader ----------------------------------------------------------------------


def test_become_leader_recovers_highest_ballot_and_fills_holes() -> None:
    five: dict[str, Kind] = {n: "storage" for n in "abcde"}
    r = Replica("a", five, CFG)
    x, y, z = put("x", 1), put("y", 2), put("z", 3)
    set_log(r, {1: Entry(1, x), 2: Entry(1, y)})
    r.phase1a(5, 0)
    r.receive_promise(promise(5, "b", log=(Entry(1, x), Entry(2, z))))
    r.receive_promise(promise(5, "c", log=(Entry(1, x), EMPTY, EMPTY, Entry(3, y))))
    assert r.become_leader(5, {"a", "b", "c"}, 100)
    assert r.proposals == [x, z, NOOP, y]
    assert r.read_barrier == 4
    assert r.role == "leader"
    assert r.wait_until == 100  # nobody ever granted a lease
    assert r.events[-1][:2] == ("BecomeLeader", {"r": "a", "b": 5, "Q": frozenset("abc")})
    # No lease yet: a lease needs LeaseRenew and a quorum of grants.
    assert r.events[-1].post == PostState(bal=5, role="leader", top=2, applied=0, lease=False)


@pytest.mark.parametrize("own,reported", [(1, 0), (0, 1)])
def test_become_leader_waits_if_any_voter_granted(own: int, reported: int) -> None:
    r = rep()
    r.granted = own
    r.phase1a(2, 0)
    r.receive_promise(promise(2, "b", granted=reported))
    effects = r.become_leader(2, {"a", "b"}, 50)
    assert r.wait_until == 50 + DUR + MARGIN
    assert SetTimer("wait_over", 50 + DUR + MARGIN) in effects
    assert SetTimer("lease_renew", 50 + MARGIN + 1) in effects  # first lease to outlast it
    assert r.wait_left(50) == DUR + MARGIN
    assert r.wait_left(10**9) == 0


def test_become_leader_disabled() -> None:
    follower = rep()
    before = snapshot(follower)
    assert unchanged(follower, follower.become_leader(0, {"a", "b"}, 0), before)
    r = candidate("a", 1)
    r.receive_promise(promise(1, "b"))
    r.receive_promise(promise(1, "c"))
    before = snapshot(r)
    assert unchanged(r, r.become_leader(2, {"a", "b"}, 0), before)  # not its ballot
    assert unchanged(r, r.become_leader(1, {"a", "b", "c"}, 0), before)  # not minimal
    assert unchanged(r, r.become_leader(1, {"b", "c"}, 0), before)  # without itself
    assert unchanged(r, r.become_leader(1, {"a"}, 0), before)  # not a quorum
    r2 = candidate("a", 1)
    r2.receive_promise(promise(2, "b"))  # a promise for another ballot
    r2.receive_promise(promise(1, "c", dst="b"))  # addressed to someone else
    before = snapshot(r2)
    assert unchanged(r2, r2.become_leader(1, {"a", "b"}, 0), before)
    assert unchanged(r2, r2.become_leader(1, {"a", "c"}, 0), before)


def test_pump_becomes_leader_on_first_minimal_quorum() -> None:
    r = candidate("a", 1)
    pump = Pump(r)
    assert pump.pump(0) == []
    effects = pump.receive(promise(1, "c"), 0)
    assert r.role == "leader"
    assert r.events[1].action == "BecomeLeader"
    assert r.events[1].args["Q"] == frozenset({"a", "c"})
    assert r.events[1].post.role == "leader"
    assert Broadcast(LeaseMsg(1, 0, "a")) in effects


# --- ClientWrite / Phase2a -------------------------------------------------------------


def test_client_write_proposes_at_next_slot() -> None:
    r = leader()
    effects = r.client_write(put("w1", 1), 10)
    assert effects == [Persist("log", 1), Broadcast(Phase2aMsg(1, 1, put("w1", 1), "a"))]
    assert r.log[1] == Entry(1, put("w1", 1))
    assert r.proposals == [put("w1", 1)]
    assert r.events[-1][:2] == ("ClientWrite", {"r": "a", "c": put("w1", 1), "s": 1})
    assert r.events[-1].post == PostState(bal=1, role="leader", top=1, applied=0, lease=True)
    r.client_write(put("w2", 2), 11)
    assert r.log[2] == Entry(1, put("w2", 2))
    assert r.events[-1].post.top == 2


def test_client_write_errors() -> None:
    follower = rep()
    assert follower.client_write(put("w", 1), 0) == [Reply("w", NotLeader())]
    waiting = candidate("a", 1)
    waiting.receive_promise(promise(1, "b", granted=1))
    waiting.become_leader(1, {"a", "b"}, 0)
    assert waiting.client_write(put("w", 1), 5) == [Reply("w", LeaseNotHeld())]
    recovering = candidate("a", 1)
    recovering.receive_promise(promise(1, "b", log=(Entry(0, NOOP), Entry(0, NOOP))))
    recovering.receive_promise(promise(1, "c", log=(Entry(1, put("x", 1)),)))
    recovering.become_leader(1, {"a", "c"}, 0)
    recovering.lease_renew(0)
    recovering.receive_lease_ack(LeaseAckMsg(1, 0, "c", "a"))
    assert recovering.holds_lease(1)
    before = snapshot(recovering)
    assert recovering.client_write(put("w", 1), 1) == [Reply("w", NotReady())]
    assert snapshot(recovering) == before
    expired = leader()
    assert expired.client_write(put("w", 1), DUR) == [Reply("w", LeaseNotHeld())]
    assert expired.log == {}


def test_client_write_at_most_once() -> None:
    r = leader()
    r.client_write(put("w1", 1), 1)
    before = snapshot(r)
    assert unchanged(r, r.client_write(put("w1", 1), 2), before)  # already in flight
    r.results["w9"] = Applied(None, None)
    assert r.client_write(put("w9", 1), 2) == [Reply("w9", Applied(None, None))]
    assert len(r.proposals) == 1


def test_phase2a_reproposes_recovered_slots_in_order() -> None:
    r = candidate("a", 2)
    x, y = put("x", 1), put("y", 2)
    r.receive_promise(promise(2, "b", log=(Entry(1, x), Entry(1, y))))
    r.become_leader(2, {"a", "b"}, 0)
    before = snapshot(r)
    assert unchanged(r, r.phase2a(2, 2), before)  # slot 1 first
    assert unchanged(r, r.phase2a(1, 1), before)  # not its ballot
    assert unchanged(r, r.phase2a(2, 3), before)  # beyond the read barrier
    assert r.phase2a(2, 1) == [Persist("log", 1), Broadcast(Phase2aMsg(2, 1, x, "a"))]
    assert r.log[1] == Entry(2, x)
    assert r.events[-1][:2] == ("Phase2a", {"r": "a", "b": 2, "s": 1, "c": x})
    assert r.events[-1].post == PostState(bal=2, role="leader", top=1, applied=0, lease=False)
    before = snapshot(r)
    assert unchanged(r, r.phase2a(2, 1), before)  # already proposed
    assert r.phase2a(2, 2)
    follower = rep()
    before = snapshot(follower)
    assert unchanged(follower, follower.phase2a(0, 1), before)


# --- Phase2b ---------------------------------------------------------------------------


def test_phase2b_accepts_and_votes() -> None:
    r = rep("b")
    m = Phase2aMsg(3, 1, put("w", 1), "a")
    assert r.phase2b(m) == [Persist("ballot"), Persist("log", 1),
                            Send("a", Phase2bMsg(3, 1, put("w", 1), "b"))]
    assert (r.ballot, r.log[1]) == (3, Entry(3, put("w", 1)))
    assert steps(r) == [("Phase2b", {"a": "b", "m": m})]
    assert r.events[-1].post == PostState(bal=3, role="follower", top=1, applied=0, lease=False)
    assert r.phase2b(Phase2aMsg(3, 2, NOOP, "a"))
    assert r.log[2] == Entry(3, NOOP)


def test_phase2b_higher_ballot_steps_down() -> None:
    r = leader(b=1)
    r.phase2b(Phase2aMsg(4, 1, NOOP, "c"))
    assert (r.role, r.ballot) == ("follower", 4)
    assert (r.events[-1].post.bal, r.events[-1].post.role) == (4, "follower")


def test_phase2b_disabled() -> None:
    r = rep("b")
    r.ballot = 3
    write_entry(r, 1, Entry(2, NOOP))
    before = snapshot(r)
    assert unchanged(r, r.phase2b(Phase2aMsg(2, 1, NOOP, "a")), before)  # below promise
    assert unchanged(r, r.phase2b(Phase2aMsg(3, 2, NOOP, "a")), before)  # slot 1 not in b=3
    assert unchanged(r, r.phase2b(Phase2aMsg(3, 3, NOOP, "a")), before)  # hole at slot 2
    assert unchanged(r, r.phase2b(Phase2aMsg(5, 1, NOOP, "b")), before)  # its own message
    # A non-member accepts only once the ballot's leader has proposed adding it
    # (spec Joining; tests/reference/test_ref_membership.py).
    outsider = rep("c", {"a": "storage", "b": "storage", "c": "none"})
    before = snapshot(outsider)
    assert unchanged(outsider, outsider.phase2b(Phase2aMsg(5, 1, NOOP, "a")), before)


# --- Commit / Apply --------------------------------------------------------------------


def test_commit_needs_quorum_of_votes_in_slot_order() -> None:
    r = leader()
    r.client_write(put("w1", 1), 1)
    r.client_write(put("w2", 2), 1)
    before = snapshot(r)
    assert unchanged(r, r.commit(1, 1, 2), before)  # only its own vote
    r.receive_vote(Phase2bMsg(1, 2, put("w2", 2), "b"))
    assert r.votes == {1: {"a"}, 2: {"a", "b"}}
    assert unchanged(r, r.commit(1, 2, 2), before)  # slot 1 first
    r.receive_vote(Phase2bMsg(1, 1, put("w1", 1), "b"))
    assert unchanged(r, r.commit(0, 1, 2), before)  # not its ballot
    assert unchanged(r, r.commit(1, 3, 2), before)  # nothing proposed there
    assert r.commit(1, 1, 2) == [Broadcast(CommitMsg(1, 1, "a"))]
    assert r.events[-1][:2] == ("Commit", {"r": "a", "b": 1, "s": 1})
    assert r.events[-1].post == PostState(bal=1, role="leader", top=2, applied=0, lease=True)
    assert r.commit(1, 1, 2) == []  # committed once
    assert r.commit(1, 2, 2)
    assert r.committed_upto == 2
    assert r.votes == {}  # counted votes of committed slots are dropped


def test_pump_reproposes_at_most_a_pipeline_of_recovered_slots() -> None:
    r = candidate("a", 2)
    n = Pump.PIPELINE + 5
    pump = Pump(r)
    pump.receive(promise(2, "b", log=tuple(Entry(1, NOOP) for _ in range(n))), 0)
    assert r.role == "leader" and r.read_barrier == n
    assert (r.proposed_upto, r.committed_upto) == (Pump.PIPELINE, 0)
    pump.receive(Phase2bMsg(2, 1, NOOP, "b"), 1)
    assert r.committed_upto == 1
    pump.pump(2)  # slot 1 committed: one more may go out
    assert (r.proposed_upto, r.committed_upto) == (Pump.PIPELINE + 1, 1)


def test_commit_waits_out_old_leases() -> None:
    r = candidate("a", 2)
    r.receive_promise(promise(2, "b", log=(Entry(1, put("x", 1)),), granted=1))
    r.become_leader(2, {"a", "b"}, 0)
    r.phase2a(2, 1)
    r.receive_vote(Phase2bMsg(2, 1, put("x", 1), "b"))
    before = snapshot(r)
    assert unchanged(r, r.commit(2, 1, DUR + MARGIN - 1), before)
    assert r.commit(2, 1, DUR + MARGIN)


def test_apply_needs_known_commit_of_own_entry_in_order() -> None:
    r = rep("b")
    set_log(r, {1: Entry(1, put("w1", 1)), 2: Entry(1, put("w2", 2))})
    r.receive_commit(CommitMsg(1, 2, "a"))
    before = snapshot(r)
    assert unchanged(r, r.apply(), before)  # slot 1 first
    r.receive_commit(CommitMsg(2, 1, "a"))
    assert unchanged(r, r.apply(), before)  # committed in a ballot other than its copy's
    r.receive_commit(CommitMsg(1, 1, "a"))
    assert r.apply() == [Apply(1, put("w1", 1)), Persist("applied")]
    assert r.events[-1].action == "Apply" and r.events[-1].args["r"] == "b"
    assert r.events[-1].post == PostState(bal=0, role="follower", top=2, applied=1, lease=False)
    assert r.apply()
    assert r.applied == 2
    assert r.events[-1].post.applied == 2
    got = r.store.get(K)
    assert got is not None and got["v"] == N(2)
    assert r.apply() == []


def test_apply_skips_a_retried_write_already_applied() -> None:
    r = rep("b")
    set_log(r, {1: Entry(1, put("w1", 1)), 2: Entry(1, put("w2", 2)), 3: Entry(1, put("w1", 1))})
    for s in (1, 2, 3):
        r.receive_commit(CommitMsg(1, s, "a"))
        assert r.apply()
    assert r.applied == 3
    got = r.store.get(K)
    assert got is not None and got["v"] == N(2)  # w1's second copy changed nothing


def test_log_replica_does_not_apply() -> None:
    r = rep("c", {"a": "storage", "b": "storage", "c": "log"})
    write_entry(r, 1, Entry(1, NOOP))
    r.receive_commit(CommitMsg(1, 1, "a"))
    before = snapshot(r)
    assert unchanged(r, r.apply(), before)
    assert r.eventual_read(K, "q") == [Reply("q", NotStorage())]


def test_leader_replies_when_it_applies_its_commit() -> None:
    r = leader()
    r.client_write(put("w1", 1), 1)
    r.receive_vote(Phase2bMsg(1, 1, put("w1", 1), "b"))
    effects = Pump(r).pump(2)
    assert Broadcast(CommitMsg(1, 1, "a")) in effects
    assert Reply("w1", Applied(None, M(pk=S("k"), v=N(1)))) in effects


# --- leases ----------------------------------------------------------------------------


def test_lease_needs_quorum_and_expires() -> None:
    r = candidate("a", 1)
    r.receive_promise(promise(1, "b"))
    r.become_leader(1, {"a", "b"}, 100)
    assert r.lease_renew(100) == [Broadcast(LeaseMsg(1, 100, "a")),
                                  SetTimer("lease_renew", 100 + DUR - AHEAD)]
    assert r.events[-1].action == "LeaseRenew" and r.events[-1].args["r"] == "a"
    assert r.events[-1].post.lease is False
    assert not r.holds_lease(100)  # only itself so far
    r.receive_lease_ack(LeaseAckMsg(1, 100, "c", "b"))  # addressed to another replica
    r.receive_lease_ack(LeaseAckMsg(0, 100, "c", "a"))  # another ballot
    r.receive_lease_ack(LeaseAckMsg(1, 99, "c", "a"))  # a request it never made
    assert not r.holds_lease(100)
    r.receive_lease_ack(LeaseAckMsg(1, 100, "c", "a"))
    assert r.holds_lease(100)
    assert r.lease_left(150) == DUR - 50
    assert r.holds_lease(100 + DUR - 1)
    assert not r.holds_lease(100 + DUR)


def test_lease_renew_disabled() -> None:
    follower = rep()
    before = snapshot(follower)
    assert unchanged(follower, follower.lease_renew(0), before)
    r = leader(now=0)
    before = snapshot(r)
    assert unchanged(r, r.lease_renew(DUR - AHEAD - 1), before)  # not due yet
    assert r.lease_renew(DUR - AHEAD)
    before = snapshot(r)
    # one outstanding: no step, only a timer for when it expires (once)
    assert r.lease_renew(DUR - AHEAD + 1) == [SetTimer("lease_renew", 2 * DUR - AHEAD)]
    assert snapshot(r) == before
    assert unchanged(r, r.lease_renew(DUR - AHEAD + 2), before)
    assert r.lease_renew(2 * DUR)  # the outstanding one expired
    waiting = candidate("a", 1)
    waiting.receive_promise(promise(1, "b", granted=1))
    waiting.become_leader(1, {"a", "b"}, 0)
    before = snapshot(waiting)
    assert unchanged(waiting, waiting.lease_renew(MARGIN), before)  # would end in the wait
    assert waiting.lease_renew(MARGIN + 1)


def test_lease_grant() -> None:
    r = rep("b")
    m = LeaseMsg(2, 777, "a")
    assert r.lease_grant(m) == [Persist("ballot"), Persist("granted"),
                                Send("a", LeaseAckMsg(2, 777, "b", "a"))]
    assert (r.ballot, r.granted) == (2, 2)
    assert steps(r) == [("LeaseGrant", {"a": "b", "m": m})]
    assert r.events[-1].post == PostState(bal=2, role="follower", top=0, applied=0, lease=False)
    before = snapshot(r)
    assert unchanged(r, r.lease_grant(LeaseMsg(1, 800, "c")), before)  # older ballot
    assert unchanged(r, r.lease_grant(LeaseMsg(5, 800, "b")), before)  # its own message
    lead = leader(b=1)
    lead.lease_grant(LeaseMsg(3, 5, "c"))
    assert (lead.role, lead.granted) == ("follower", 3)


# --- reads -----------------------------------------------------------------------------


def test_strong_read_needs_lease_and_read_barrier() -> None:
    assert rep().strong_read(K, 0, "q") == [Reply("q", NotLeader())]
    r = candidate("a", 2)
    r.receive_promise(promise(2, "b", log=(Entry(1, put("x", 7)),)))
    r.become_leader(2, {"a", "b"}, 0)
    assert r.strong_read(K, 0, "q") == [Reply("q", LeaseNotHeld())]
    r.lease_renew(0)
    r.receive_lease_ack(LeaseAckMsg(2, 0, "b", "a"))
    assert r.strong_read(K, 1, "q") == [Reply("q", NotReady())]  # slot 1 not re-committed
    r.phase2a(2, 1)
    r.receive_vote(Phase2bMsg(2, 1, put("x", 7), "b"))
    r.commit(2, 1, 2)
    assert r.strong_read(K, 3, "q") == [Reply("q", NotReady())]  # committed, not applied
    r.apply()
    assert r.strong_read(K, 4, "q") == [Reply("q", ReadResult(M(pk=S("k"), v=N(7))))]
    r.client_write(put("y", 8), 5)
    r.receive_vote(Phase2bMsg(2, 2, put("y", 8), "b"))
    r.commit(2, 2, 6)
    n = len(r.events)
    assert r.strong_read(K, 7, "q") == [Reply("q", NotReady())]  # its own commit unapplied
    assert len(r.events) == n  # reads change nothing, so record nothing


def test_eventual_read_on_any_storage_replica() -> None:
    r = rep("c")
    assert r.eventual_read(K, "q") == [Reply("q", ReadResult(None))]
    write_entry(r, 1, Entry(1, put("w", 3)))
    r.receive_commit(CommitMsg(1, 1, "a"))
    r.apply()
    assert r.eventual_read(K) == [Reply("", ReadResult(M(pk=S("k"), v=N(3))))]


# --- Crash -----------------------------------------------------------------------------


def test_crash_keeps_durable_state_and_loses_volatile() -> None:
    r = leader(b=1)
    r.client_write(put("w", 1), 1)
    r.receive_vote(Phase2bMsg(1, 1, put("w", 1), "b"))
    Pump(r).pump(2)
    r.granted = 1
    durable = r.durable_state()
    assert r.crash() == []
    assert r.durable_state() == durable
    assert r.store.get(K) is not None
    assert (r.role, r.proposals, r.read_barrier, r.wait_until, r.lease_grants) == (
        "follower", [], 0, 0, {})
    assert r.events[-1][:2] == ("Crash", {"r": "a"})
    assert r.events[-1].post == PostState(bal=1, role="follower", top=1, applied=1, lease=False)
    assert r.client_write(put("v", 1), 3) == [Reply("v", NotLeader())]


def test_crash_of_candidate_makes_it_a_follower_that_keeps_its_promise() -> None:
    r = candidate()
    r.crash()
    assert r.role == "follower" and r.ballot == 1
    assert r.events[-1][:2] == ("Crash", {"r": "a"})
    assert (r.events[-1].post.bal, r.events[-1].post.role) == (1, "follower")
    assert r.phase1a(1, 0) == []  # its own ballot cannot be started again


# --- a three-replica scenario driven by hand ----------------------------------------------


class Cluster:
    def __init__(self) -> None:
        self.r = {n: Replica(n, MEMBERS, CFG) for n in MEMBERS}
        self.pumps = {n: Pump(r) for n, r in self.r.items()}
        self.down: set[str] = set()
        self.queue: list[tuple[str, Message]] = []
        self.replies: list[Reply] = []

    def emit(self, src: str, effects: list[Effect]) -> None:
        for e in effects:
            if isinstance(e, Send):
                self.queue.append((e.dst, e.msg))
            elif isinstance(e, Broadcast):
                self.queue += [(d, e.msg) for d in self.r if d != src]
            elif isinstance(e, Reply):
                self.replies.append(e)

    def run(self, now: int) -> None:
        """Deliver everything queued (dropping messages to down replicas) until quiet."""
        while self.queue:
            dst, m = self.queue.pop(0)
            if dst not in self.down:
                self.emit(dst, self.pumps[dst].receive(m, now))

    def pump(self, node: str, now: int) -> None:
        self.emit(node, self.pumps[node].pump(now))
        self.run(now)

    def crash(self, node: str) -> None:
        """Crash ``node``: its volatile state goes, 2a messages held for later included."""
        self.r[node].crash()
        self.pumps[node] = Pump(self.r[node])


def test_three_replicas_failover() -> None:
    c = Cluster()
    a, b, rc = c.r["a"], c.r["b"], c.r["c"]
    # Election of a: nobody granted a lease before, so it need not wait.
    c.emit("a", a.phase1a(a.next_ballot(), 0))
    c.run(0)
    assert a.role == "leader" and a.wait_until == 0
    assert a.holds_lease(0)
    assert b.granted == rc.granted == a.ballot

    # c is down: the write commits on the quorum {a, b} and is acknowledged.
    c.down = {"c"}
    w = put("w1", 42)
    c.emit("a", a.client_write(w, 100))
    c.run(100)
    assert c.replies == [Reply("w1", Applied(None, M(pk=S("k"), v=N(42))))]
    assert a.committed_upto == 1 and b.applied == 1
    assert rc.log == {}

    # a crashes; c returns; b is elected with c's promise and recovers the write.
    old_lease_end = max(a.lease_grants) + DUR
    c.crash("a")
    c.down = {"a"}
    c.queue.clear()
    c.emit("b", b.phase1a(b.next_ballot(), 300))
    c.run(300)
    assert b.role == "leader"
    assert b.proposals == [w]
    assert rc.log[1] == Entry(b.ballot, w)  # re-proposed in b's ballot
    # b must wait out a's lease (granted by b and c) plus the margin.
    assert b.wait_until == 300 + DUR + MARGIN
    assert b.wait_until - old_lease_end >= 2 * DRIFT
    for t in (300, old_lease_end, b.wait_until - 1):
        c.pump("b", t)
        assert b.committed_upto == 0  # the recovered write is not re-acknowledged yet
        assert b.strong_read(K, t, "r") == [Reply("r", LeaseNotHeld())]
        assert b.client_write(put("w2", 1), t) == [Reply("w2", LeaseNotHeld())]
    assert b.lease_grants  # its lease request went out once it could outlast the wait

    c.pump("b", b.wait_until)
    assert b.holds_lease(b.wait_until)
    assert b.committed_upto == 1 and rc.applied == 1
    assert b.strong_read(K, b.wait_until, "r") == [
        Reply("r", ReadResult(M(pk=S("k"), v=N(42))))]
    assert rc.eventual_read(K, "e") == [Reply("e", ReadResult(M(pk=S("k"), v=N(42))))]
    # The write was applied once, though committed in two ballots.
    assert b.applied == 1 and a.applied == 1
    assert a.durable_state()[1] == {1: Entry(a.ballot, w)}  # a's durable log survived its crash
    names = [e.action for e in a.events]
    assert names[:2] == ["Phase1a", "BecomeLeader"] and names[-1] == "Crash"
    assert a.events[1].post.role == "leader" and a.events[-1].post.role == "follower"


def random_run(seed: int, steps: int = 600) -> Cluster:
    """Random delivery order, loss, duplication, crashes and elections on clocks that
    are offset from real time by up to MaxDrift; checks lease exclusivity throughout."""
    rng = random.Random(seed)
    c = Cluster()
    offset = {n: rng.randint(0, DRIFT) for n in MEMBERS}
    now = 0  # real time; replica n reads now + offset[n]
    for i in range(steps):
        now += rng.randint(0, 300)
        choice = rng.random()
        node = rng.choice(sorted(MEMBERS))
        local = now + offset[node]
        if choice < 0.006:
            c.emit(node, c.r[node].phase1a(c.r[node].next_ballot(), local))
        elif choice < 0.01:
            c.crash(node)
        elif choice < 0.06:
            # Clients find a leader (any replica that thinks it leads), as after NotLeader.
            leads = [n for n, r in c.r.items() if r.role == "leader"] or [node]
            node = rng.choice(leads)
            local = now + offset[node]
            c.emit(node, c.r[node].client_write(put(f"w{i % 60}", i), local))
        elif choice < 0.15:
            c.emit(node, c.pumps[node].pump(local))
        elif c.queue:
            dst, m = c.queue.pop(rng.randrange(len(c.queue)))
            if rng.random() < 0.9:
                c.emit(dst, c.pumps[dst].receive(m, now + offset[dst]))
            if rng.random() < 0.1:
                c.queue.append((dst, m))
        holders = [n for n, r in c.r.items() if r.holds_lease(now + offset[n])]
        assert len(holders) <= 1, (seed, i, holders)
    return c


def test_random_schedules_keep_replicas_consistent() -> None:
    total_applied = 0
    for seed in range(80):
        c = random_run(seed)
        cmds = {n: [r.log[s].cmd for s in range(1, r.applied + 1)] for n, r in c.r.items()}
        longest = max(cmds.values(), key=len)
        for seq in cmds.values():
            assert seq == longest[: len(seq)]  # applied sequences are prefixes of one
        # Replicas that applied the same prefix hold the same B-tree.
        by_len: dict[int, int] = {}
        for n, r in c.r.items():
            assert by_len.setdefault(r.applied, r.store.checksum()) == r.store.checksum(), n
        total_applied += len(longest)
    assert total_applied > 300  # the schedules do make progress


# --- reads are recorded (the trace checks their enabling conditions) -------------------


def test_served_reads_are_recorded() -> None:
    r = leader(b=1)
    assert r.strong_read(K, 1, "q") == [Reply("q", ReadResult(None))]
    assert r.events[-1][:2] == ("StrongRead", {"r": "a", "k": K})
    assert r.events[-1].post == PostState(bal=1, role="leader", top=0, applied=0, lease=True)
    f = rep("c")
    f.eventual_read(K, "e")
    assert steps(f) == [("EventualRead", {"r": "c", "k": K})]
    assert f.events[-1].post == PostState(bal=0, role="follower", top=0, applied=0, lease=False)


def test_eventual_read_judges_the_lease_at_the_time_given() -> None:
    r = leader(b=1, now=0)
    r.eventual_read(K, "e", now_us=1)
    assert r.events[-1].action == "EventualRead" and r.events[-1].post.lease is True
    r.eventual_read(K, "e", now_us=DUR)  # the lease started at 0 has run out
    assert r.events[-1].post.lease is False


# --- retransmission: re-sends of messages the spec already has -------------------------


def test_ballot_owner_matches_next_ballot() -> None:
    for node in MEMBERS:
        r = rep(node)
        for _ in range(5):
            r.ballot = r.next_ballot()
            assert r.ballot_owner() == node
    assert rep().ballot_owner(0) is None


def test_have_is_highest_slot_of_current_ballot() -> None:
    r = rep("b")
    assert have(r) == 0
    r.phase2b(Phase2aMsg(3, 1, NOOP, "a"))
    r.phase2b(Phase2aMsg(3, 2, NOOP, "a"))
    write_entry(r, 3, Entry(1, NOOP))  # a stale entry from an older ballot
    assert r.top == 3
    assert have(r) == 2


def test_out_of_order_2a_is_held_until_the_gap_fills() -> None:
    r = rep("b")
    pump = Pump(r)
    m1, m2, m3 = (Phase2aMsg(3, s, put(f"w{s}", s), "a") for s in (1, 2, 3))
    assert pump.receive(m3, 0) == [] and pump.receive(m2, 0) == []
    assert pump.has_gap and 2 not in r.log
    effects = pump.receive(m1, 0)
    votes = [e for e in effects if isinstance(e, Send)]
    assert votes == [Send("a", Phase2bMsg(3, s, put(f"w{s}", s), "b")) for s in (1, 2, 3)]
    assert not pump.has_gap
    assert [r.log[s].bal for s in (1, 2, 3)] == [3, 3, 3]
    assert [e.action for e in r.events] == ["Phase2b"] * 3
    assert [e.post.top for e in r.events] == [1, 2, 3]


def test_held_2a_of_an_old_ballot_is_dropped() -> None:
    r = rep("b")
    pump = Pump(r)
    pump.receive(Phase2aMsg(3, 2, NOOP, "a"), 0)  # held: slot 1 missing
    pump.receive(Phase2aMsg(4, 1, NOOP, "c"), 0)  # ballot 4 overtakes it
    pump.receive(Phase2aMsg(4, 2, put("x", 1), "c"), 0)
    assert r.log[2] == Entry(4, put("x", 1)) and not pump.has_gap


def test_catch_up_resends_missing_2a_and_commits() -> None:
    r = leader(b=1)
    for i in range(3):
        r.client_write(put(f"w{i}", i), 1)
    r.receive_vote(Phase2bMsg(1, 1, put("w0", 0), "b"))
    r.commit(1, 1, 1)
    effects = catch_up(r, "c", 1, have=1, applied=0)
    assert effects == [Send("c", Phase2aMsg(1, 2, put("w1", 1), "a")),
                       Send("c", Phase2aMsg(1, 3, put("w2", 2), "a")),
                       Send("c", CommitMsg(1, 1, "a"))]
    # A follower in an older ballot gets the ballot's log from slot 1.
    older = catch_up(r, "c", 0, have=3, applied=1)
    assert older == [Send("c", Phase2aMsg(1, s, put(f"w{s - 1}", s - 1), "a"))
                     for s in (1, 2, 3)]  # no commit: it applied the only one
    assert catch_up(r, "c", 1, have=1, applied=0, window=1) == [
        Send("c", Phase2aMsg(1, 2, put("w1", 1), "a")), Send("c", CommitMsg(1, 1, "a"))]
    before = snapshot(r)
    assert catch_up(r, "c", 2, have=0, applied=0) == []  # a newer ballot: not ours to serve
    assert catch_up(rep("b"), "c", 1, 0, 0) == []  # only a leader answers
    assert snapshot(r) == before  # re-sending changes nothing


def test_resend_uncommitted_rebroadcasts_oldest_pending_2a() -> None:
    r = leader(b=1)
    assert resend_uncommitted(r, 1) == []
    r.client_write(put("x", 1), 1)
    r.client_write(put("y", 2), 1)
    assert resend_uncommitted(r, 1, window=1) == [Broadcast(Phase2aMsg(1, 1, put("x", 1), "a"))]
    assert len(resend_uncommitted(r, 1)) == 2
    r.receive_vote(Phase2bMsg(1, 2, put("y", 2), "b"))  # slot 2 has its quorum
    assert resend_uncommitted(r, 1) == [Broadcast(Phase2aMsg(1, 1, put("x", 1), "a"))]
    assert resend_uncommitted(rep("b"), 1) == []
    # A new leader waiting out an old lease cannot commit yet: re-sending is pointless.
    w = candidate("a", 4)
    w.receive_promise(promise(4, "b", log=(Entry(1, put("x", 1)),), granted=3))
    w.become_leader(4, {"a", "b"}, 0)
    assert w.phase2a(4, 1)
    assert resend_uncommitted(w, w.wait_until - 1) == []
    assert resend_uncommitted(w, w.wait_until) == [Broadcast(Phase2aMsg(4, 1, put("x", 1), "a"))]


def test_lease_resend_repeats_only_unanswered_live_requests() -> None:
    r = leader(b=1, now=0)
    assert lease_resend(r, 1) == []  # the only request has a quorum
    t = DUR - AHEAD  # renewal is due
    assert r.lease_renew(t)
    assert lease_resend(r, t + 1) == [Broadcast(LeaseMsg(1, t, "a"))]
    assert lease_resend(r, t + DUR) == []  # expired: it can never count again
    r.receive_lease_ack(LeaseAckMsg(1, t, "c", "a"))
    assert lease_resend(r, t + 1) == []
    assert lease_resend(rep("b"), 0) == []


def test_restore_rebuilds_the_btree_from_applied_slots() -> None:
    log = {1: Entry(2, put("x", 1)), 2: Entry(2, NOOP), 3: Entry(2, put("x", 1)),
           4: Entry(2, put("y", 5))}
    r = Replica.restore("b", MEMBERS, CFG, (3, log, 2, 3))
    assert (r.ballot, r.granted, r.applied, r.role) == (3, 2, 3, "follower")
    assert r.top == 4
    assert r.store.get(K) == M(pk=S("k"), v=N(1))
    assert set(r.results) == {"x"}  # slot 3 retried x: applied once; slot 4 not yet applied
    assert r.log == log and r.log is not log
