"""Gray-failure detection and lease handoff in the replica (paper §6.2): the spec
actions Suspect, AnswerProbe, ClearSuspicion, LeaseRelinquish, LinkDown/LinkUp and
the new conditions of Phase1a, LeaseRenew, LeaseGrant and BecomeLeader."""

from __future__ import annotations

from dataclasses import replace

from reference.messages import (
    HandoffMsg,
    LeaseAckMsg,
    LeaseMsg,
    LeaseNotHeld,
    Phase1aMsg,
    Phase1bMsg,
    ProbeAckMsg,
    ProbeMsg,
)
from reference.pump import Pump
from reference.replica import Broadcast, Replica, ReplicaConfig, Reply, Send
from reference.retransmit import lease_resend
from reference.storage import Key, S

DUR = 10_000
CFG = ReplicaConfig(lease_dur_us=DUR, lease_margin_us=4_000, max_drift_us=1_000,
                    renew_ahead_us=2_000, peer_confirm=True)
OFF = replace(CFG, peer_confirm=False)
MEMBERS = {"a": "storage", "b": "storage", "c": "storage"}


def rep(node: str = "a", cfg: ReplicaConfig = CFG) -> Replica:
    return Replica(node, dict(MEMBERS), cfg)  # type: ignore[arg-type]


def actions(r: Replica) -> list[str]:
    return [e.action for e in r.events]


def leader(cfg: ReplicaConfig = CFG, now: int = 0) -> Replica:
    """Replica "a" leading ballot 1 (elected by handoff-free confirmation), lease held."""
    r = rep("a", cfg)
    r.suspect(now)
    r.receive_probe_ack(ProbeAckMsg("b", "a", False, r.detector.nonce))
    assert r.phase1a(1, now)
    r.receive_promise(Phase1bMsg(1, "b", "a", (), 0))
    assert r.become_leader(1, {"a", "b"}, now)
    assert r.lease_renew(now)
    r.receive_lease_ack(LeaseAckMsg(1, now, "b", "a"))
    assert r.can_serve(now)
    return r


# --- Suspect / AnswerProbe / ClearSuspicion / Phase1a ----------------------------------


def test_phase1a_needs_a_confirmed_suspicion_with_peer_confirmation() -> None:
    r = rep()
    assert r.phase1a(1, 0) == []  # no suspicion
    effects = r.suspect(0)
    assert effects == [Send("b", ProbeMsg("a", 1)), Send("c", ProbeMsg("a", 1))]
    assert r.suspecting and actions(r) == ["Suspect"]
    assert r.suspect(0) == []  # already suspecting
    assert r.phase1a(1, 0) == []  # a alone is no quorum
    r.receive_probe_ack(ProbeAckMsg("b", "a", False, 1))
    assert r.may_elect(0)
    assert r.phase1a(1, 0)
    assert r.role == "candidate" and not r.suspecting  # the election ends the suspicion


def test_without_peer_confirmation_phase1a_needs_no_suspicion() -> None:
    r = rep(cfg=OFF)
    assert r.phase1a(1, 0)
    assert not r.may_elect(0)  # the node's timeout elects, not the pump


def test_a_healthy_answer_vetoes_the_election() -> None:
    r = rep()
    r.suspect(0)
    r.receive_probe_ack(ProbeAckMsg("c", "a", True, 1))
    r.receive_probe_ack(ProbeAckMsg("b", "a", False, 1))
    effects = Pump(r).pump(0)
    assert actions(r) == ["Suspect", "ClearSuspicion"]
    assert effects == [] and r.role == "follower" and r.detector.vetoed == 1


def test_a_late_answer_to_an_earlier_suspicion_does_not_count() -> None:
    r = rep()
    assert r.suspect(0) == [Send("b", ProbeMsg("a", 1)), Send("c", ProbeMsg("a", 1))]
    r.lease_grant(LeaseMsg(1, 0, "c", held=True), 5)  # a hears a leader again: cleared
    assert r.clear_suspicion(5) == [] and not r.suspecting
    # b answered the first probe "I do not hear a leader"; its answer arrives only now,
    # during a's second suspicion, while b (having heard c meanwhile) may well vouch.
    second = r.suspect(DUR + 5)
    assert second == [Send("b", ProbeMsg("a", 2)), Send("c", ProbeMsg("a", 2))]
    r.receive_probe_ack(ProbeAckMsg("b", "a", False, 1))
    assert not r.may_elect(DUR + 6)  # without nonces {a, b} would be a quorum
    assert Pump(r).pump(DUR + 6) == [] and r.role == "follower" and r.suspecting
    assert r.detector.stale_answers == 1
    assert r.probes() == second  # a resend repeats the nonce
    r.receive_probe_ack(ProbeAckMsg("b", "a", False, 2))
    assert r.may_elect(DUR + 7)


def test_answers_from_before_a_crash_stay_stale() -> None:
    r = rep()
    r.suspect(0)
    r.crash()
    r.suspect(1)
    assert r.detector.nonce == 2
    r.receive_probe_ack(ProbeAckMsg("b", "a", False, 1))
    assert not r.may_elect(2)


def test_granting_a_held_lease_means_hearing_for_a_lease_duration() -> None:
    r = rep("b")
    r.lease_grant(LeaseMsg(1, 0, "a", held=False), 100)
    assert not r.detector.hears(100)
    r.lease_grant(LeaseMsg(1, 50, "a", held=True), 200)
    assert r.detector.hears(200 + DUR - 1) and not r.detector.hears(200 + DUR)
    assert r.suspect(500) == []  # it hears: no suspicion
    assert r.suspect(200 + DUR)
    # hearing a held lease again clears the suspicion
    r.lease_grant(LeaseMsg(1, 200 + DUR, "a", held=True), 200 + DUR + 5)
    assert r.clear_suspicion(200 + DUR + 5) == [] and not r.suspecting
    assert actions(r)[-1] == "ClearSuspicion"


def test_answer_probe_tells_whether_it_hears() -> None:
    r = rep("b")
    assert r.answer_probe(ProbeMsg("a", 3), 0) == [Send("a", ProbeAckMsg("b", "a", False, 3))]
    r.lease_grant(LeaseMsg(1, 0, "c", held=True), 10)
    assert r.answer_probe(ProbeMsg("a", 4), 20) == [Send("a", ProbeAckMsg("b", "a", True, 4))]
    assert r.events[-1].args["hears"] is True
    assert r.answer_probe(ProbeMsg("b", 1), 20) == []  # its own
    lead = leader()  # a leader holding its lease vouches for itself
    assert lead.answer_probe(ProbeMsg("b", 1), 1) == [Send("b", ProbeAckMsg("a", "b", True, 1))]


def test_only_a_storage_follower_suspects() -> None:
    r = leader()
    assert r.suspect(10 * DUR) == []
    c = rep()
    c.suspect(0)
    c.receive_probe_ack(ProbeAckMsg("b", "a", False, 1))
    c.phase1a(1, 0)
    assert c.suspect(0) == []  # a candidate does not


def test_lease_requests_carry_held() -> None:
    r = leader()
    assert not r.lease_request_held(0)  # the first: no lease held yet
    t = DUR - 2_000
    effects = r.lease_renew(t)
    assert Broadcast(LeaseMsg(1, t, "a", held=True)) in effects
    assert lease_resend(r, t + 1) == [Broadcast(LeaseMsg(1, t, "a", True))]
    off = leader(OFF)
    assert Broadcast(LeaseMsg(1, t, "a", held=False)) in off.lease_renew(t)


def test_crash_forgets_hearing_and_suspicion() -> None:
    r = rep("b")
    r.lease_grant(LeaseMsg(1, 0, "a", held=True), 0)
    r.crash()
    assert not r.detector.hears(1)


# --- LeaseRelinquish and handoff -------------------------------------------------------


def test_relinquish_stops_serving_and_renewing_and_hands_off() -> None:
    r = leader()
    assert r.lease_relinquish("a", 1) == []  # not to itself
    assert r.lease_relinquish("x", 1) == []  # not a member
    effects = r.lease_relinquish("b", 1)
    assert effects == [Send("b", HandoffMsg(1, "a", "b"))]
    assert actions(r)[-1] == "LeaseRelinquish" and r.events[-1].args == {"r": "a", "s": "b"}
    assert r.role == "leader" and r.relinquished
    assert r.holds_lease(1) and not r.can_serve(1)
    assert r.strong_read(Key(S("k")), 2, "q") == [Reply("q", LeaseNotHeld())]
    assert r.lease_renew(DUR - 1) == []
    assert lease_resend(r, 2) == []
    assert r.lease_relinquish("c", 3) == []  # once


def test_the_handoff_is_resent_until_a_later_ballot_deposes_the_leader() -> None:
    r = leader()
    assert r.handoff_again() == []  # nothing relinquished
    assert lease_resend(r, 1) == []  # the lease reached its quorum
    r.lease_relinquish("b", 1)
    assert r.handoff_again() == [Send("b", HandoffMsg(1, "a", "b"))]
    assert actions(r)[-1] == "LeaseRelinquish"  # a resend is no new step
    r.phase1b(Phase1aMsg(2, "b"))  # deposed by its successor's ballot
    assert r.role == "follower" and r.handoff_again() == []


def test_relinquish_needs_a_held_lease() -> None:
    r = leader()
    assert r.lease_relinquish("b", DUR + 1) == []


def test_handoff_starts_an_election_without_confirmation_and_skips_the_wait() -> None:
    s = rep("b")
    s.lease_grant(LeaseMsg(1, 0, "a", held=True), 0)  # granted = 1
    s.receive_handoff(HandoffMsg(2, "a", "b"))  # not its ballot: ignored
    assert not s.may_elect(1)
    s.receive_handoff(HandoffMsg(1, "a", "c"))  # not to it
    assert not s.may_elect(1)
    s.receive_handoff(HandoffMsg(1, "a", "b"))
    assert s.may_elect(1)  # though it hears the (relinquished) leader's lease
    effects = Pump(s).pump(1)
    b = s.ballot
    assert Broadcast(Phase1aMsg(b, "b")) in effects and s.role == "candidate"
    s.receive_promise(Phase1bMsg(b, "a", "b", (), 1))  # the old leader granted nothing newer
    assert s.become_leader(b, {"a", "b"}, 10)
    assert s.wait_until == 10  # no new-leader wait: every grant is <= the handed-off ballot


def test_handoff_still_waits_for_a_newer_lease() -> None:
    s = rep("b")
    s.lease_grant(LeaseMsg(1, 0, "a"), 0)
    s.receive_handoff(HandoffMsg(1, "a", "b"))
    Pump(s).pump(1)
    b = s.ballot
    s.receive_promise(Phase1bMsg(b, "c", "b", (), 4))  # c granted a later ballot's lease
    assert s.become_leader(b, {"b", "c"}, 10)
    assert s.wait_until == 10 + s.new_leader_wait_us()


def test_a_plain_election_waits_as_before() -> None:
    r = rep()
    r.lease_grant(LeaseMsg(3, 0, "c"), 0)
    r.suspect(DUR)
    r.receive_probe_ack(ProbeAckMsg("b", "a", False, 1))
    assert r.phase1a(r.next_ballot(), DUR)
    r.receive_promise(Phase1bMsg(r.ballot, "b", "a", (), 0))
    assert r.become_leader(r.ballot, {"a", "b"}, DUR)
    assert r.wait_until == DUR + r.new_leader_wait_us()


def test_link_events_are_traced_by_the_sender() -> None:
    r = rep()
    assert r.link_down("b") == [] and r.link_up("b") == []
    assert [(e.action, e.args) for e in r.events] == [
        ("LinkDown", {"from": "a", "to": "b"}), ("LinkUp", {"from": "a", "to": "b"})]


def test_the_post_state_after_relinquish_reports_no_lease() -> None:
    """The spec's HoldsLease includes "not relinquished": a trace line's post.lease must
    be false once the leader relinquished (trace validation's PostOK)."""
    r = leader()
    assert r.summary().lease is True
    r.lease_relinquish("b", 1)
    assert r.holds_lease(1)  # the lease itself is still there ...
    assert r.events[-1].post.lease is False  # ... but the spec's HoldsLease is false
    assert r.summary().lease is False


def test_a_lease_request_that_may_have_expired_on_its_leaders_clock_is_refused() -> None:
    """The spec drops a lease message once its time left, counted on the leader's clock,
    reaches 0; the grantor refuses (a loss) once start + LeaseDur - 2 * max_drift_us is
    reached on its own clock, clocks being within +/- max_drift_us of real time."""
    last = DUR - 2 * CFG.max_drift_us - 1
    ok = rep("b")
    assert ok.lease_grant(LeaseMsg(1, 0, "a", held=True), last)
    assert ok.events[-1].action == "LeaseGrant" and ok.granted == 1
    late = rep("b")
    assert late.lease_grant(LeaseMsg(1, 0, "a", held=True), last + 1) == []
    assert late.events == [] and late.ballot == 0 and late.granted == 0
    assert not late.detector.hears(last + 1)


def test_a_leader_that_hears_nobody_keeps_asking_without_held() -> None:
    """Its renewal goes unanswered (a deaf leader): it asks again once that request has
    expired, saying held = false, since its lease has lapsed by then; the followers that
    still hear its requests must not take them for a healthy leader's."""
    from reference.replica import SetTimer

    r = leader()
    renew_at = DUR - CFG.renew_ahead_us
    sent = r.lease_renew(renew_at)  # nobody answers this one
    held = [e.msg.held for e in sent if isinstance(e, Broadcast)]
    assert held == [True]
    # blocked until it expires: one timer for then, not one per pump
    assert r.lease_renew(renew_at + 1) == [SetTimer("lease_renew", renew_at + DUR)]
    assert r.lease_renew(renew_at + 2) == []
    assert not r.can_serve(DUR)  # the lease has lapsed
    again = r.lease_renew(renew_at + DUR)
    assert [e.msg.held for e in again if isinstance(e, Broadcast)] == [False]
    b = rep("b")
    b.lease_grant(LeaseMsg(1, renew_at + DUR, "a", held=False), renew_at + DUR)
    assert not b.detector.hears(renew_at + DUR)  # a grant, but no healthy leader heard


def test_a_relinquished_leader_does_not_vouch_for_itself() -> None:
    """Spec Hears: a leader holding its lease vouches for itself, but HoldsLease is false
    once it relinquished; had it vouched, a handoff to a successor that never took over
    (crashed, cut off) would keep everyone else from electing (the Hypothesis machine's
    deep profile found it: deploy restarts while a replica was down)."""
    r = leader()
    assert r.answer_probe(ProbeMsg("b", 1), 1)[0].msg.hears is True  # type: ignore[union-attr]
    r.lease_relinquish("c", 1)
    assert r.holds_lease(2)
    assert r.answer_probe(ProbeMsg("b", 2), 2)[0].msg.hears is False  # type: ignore[union-attr]
    assert r.events[-1].action == "AnswerProbe" and r.events[-1].args["hears"] is False
