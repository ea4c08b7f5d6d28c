"""The monitor's gray-failure rules (conformance/monitor_gray.py): link faults, peer-
confirmed failure detection and lease handoff.

Hand-built event sequences (typed events decoded from the JSON shape of a trace line):
a correct run with suspicion, a vetoed suspicion, a confirmed election, link faults and
a handoff passes; each rule rejects its bug, with the property it names.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_monitor_membership import first_quorum  # one helper for both test files

from conformance.monitor import Monitor
from conformance.trace_loader import event_from_obj
from reference.actions import ACTIONS
from reference.trace_events import FORMAT_VERSION

DUR, MARGIN = 1_000_000, 9_000
KEY = {"p": {"S": "k"}}


def names(n: int) -> list[str]:
    return [f"r{i}" for i in range(1, n + 1)]



class Run:
    """Hand-written events; every clock reads real time unless told otherwise."""

    def __init__(self, n: int = 3, peer_confirm: bool | None = True,
                 kinds: dict[str, str] | None = None) -> None:
        members: Any = kinds if kinds is not None else names(n)
        self.mon = Monitor(members, DUR, MARGIN, peer_confirm=peer_confirm)
        self.seq: dict[str, int] = {}

    def __call__(self, node: str, action: str, t: int, *, lease: bool = False,
                 role: str = "follower", **args: Any) -> list[str]:
        self.seq[node] = self.seq.get(node, 0) + 1
        obj = {"action": action, "v": FORMAT_VERSION, "node": node, "replica": node,
               "seq": self.seq[node], "real": t, "clock": t,
               "kind": ACTIONS[action].kind, "args": args}
        if ACTIONS[action].post:
            obj["post"] = {"bal": 0, "role": role, "top": 0, "applied": 0, "lease": lease}
        ev = event_from_obj(obj)
        return [f"{v.prop}: {v.message}" for v in self.mon.step(ev, f"t:{self.seq[node]}")]

    # --- steps made of several events; each returns every violation found ----------------

    def suspect(self, r: str, t: int, answers: dict[str, bool]) -> list[str]:
        out = self(r, "Suspect", t, r=r)
        for a, hears in answers.items():
            out += self.answer(a, r, t + 1, hears)
        return out

    def answer(self, a: str, r: str, t: int, hears: bool) -> list[str]:
        return self(a, "AnswerProbe", t, a=a, m={"type": "probe", "from": r, "n": 1}, hears=hears)

    def elect(self, r: str, b: int, voters: list[str], t: int) -> list[str]:
        out = self(r, "Phase1a", t, r=r, b=b)
        for v in voters:
            out += self(v, "Phase1b", t + 1, a=v, m={"type": "1a", "bal": b, "from": r})
        return out + self(r, "BecomeLeader", t + 2, r=r, b=b, Q=first_quorum(self.mon, r, voters))

    def renew(self, r: str, b: int, t: int, grantors: list[str], held: bool) -> list[str]:
        out = self(r, "LeaseRenew", t, r=r, start=t)
        for g in grantors:
            out += self.grant(g, r, b, t, t + 1, held)
        return out

    def grant(self, g: str, r: str, b: int, start: int, t: int, held: bool) -> list[str]:
        return self(g, "LeaseGrant", t, a=g, m={"type": "lease", "bal": b, "start": start,
                                                  "from": r, "held": held})

    def link(self, src: str, dst: str, t: int, up: bool) -> list[str]:
        return self(src, "LinkUp" if up else "LinkDown", t, **{"from": src, "to": dst})


def props(found: list[str]) -> list[str]:
    return [v.split(":")[0] for v in found]


def leading(run: Run | None = None, n: int = 3) -> Run:
    """r1 suspects at start-up, r2 confirms, r1 leads ballot 1 and holds a lease granted
    by every other replica, renewed once with ``held`` (t = 1000)."""
    run = run or Run(n)
    others = names(n)[1:]
    assert run.suspect("r1", 10, dict.fromkeys(others, False)) == []
    assert run.elect("r1", 1, others, 20) == []
    assert run.renew("r1", 1, 30, others, held=False) == []
    assert run.renew("r1", 1, 1000, others, held=True) == []
    return run


# --- a correct run ----------------------------------------------------------------------


def test_a_correct_run_with_suspicions_link_faults_and_a_handoff_passes() -> None:
    run = leading()
    # The link r1 -> r2 fails: r2 stops hearing r1 once LeaseDur has passed since its last
    # grant of a held request (at 1001), suspects, and r3, which still hears r1, vetoes.
    assert run.link("r1", "r2", 1100, up=False) == []
    assert run.renew("r1", 1, 2000, ["r3"], held=True) == []
    assert run.suspect("r2", 1001 + DUR, {"r3": True}) == []
    assert run("r2", "ClearSuspicion", 1003 + DUR, r="r2") == []
    assert run.link("r1", "r2", 1004 + DUR, up=True) == []
    assert run.grant("r2", "r1", 1, 2000, 1005 + DUR, held=True) == []
    # A leader holding its lease vouches for itself.
    assert run.answer("r1", "r2", 1006 + DUR, True) == []
    # r1 hands off to r3, which elects at once and skips the wait: every grant its
    # voters report is of ballot 1, the ballot handed off.
    t = 1100 + DUR
    assert run.renew("r1", 1, t, ["r2", "r3"], held=True) == []
    assert run("r1", "LeaseRelinquish", t + 10, r="r1", s="r3") == []
    assert run.elect("r3", 2, ["r2"], t + 20) == []
    assert run.renew("r3", 2, t + 30, ["r2"], held=False) == []
    assert run("r3", "StrongRead", t + 40, lease=True, role="leader", r="r3", k=KEY) == []
    assert run.mon.violations == []


def test_an_election_confirmed_by_a_quorum_of_five_passes() -> None:
    run = Run(5)
    assert run.suspect("r1", 10, {"r2": False, "r3": False}) == []
    assert run("r1", "Phase1a", 20, r="r1", b=1) == []


def test_a_quorum_of_denials_elects_even_beside_one_answer_that_hears() -> None:
    """The spec's Confirmed counts the ``hears = false`` answers only; whether a
    ``hears = true`` answer arrived cannot be seen (it may be lost)."""
    run = leading(Run(5), n=5)
    # r1 loses its links to r2, r3 and r5; only r4 still hears it (and vouches).
    for x in ("r2", "r3", "r5"):
        assert run.link("r1", x, 1100, up=False) == []
    assert run.renew("r1", 1, 2000, ["r4"], held=True) == []
    assert run.suspect("r2", 1001 + DUR, {"r3": False, "r5": False, "r4": True}) == []
    assert run("r2", "Phase1a", 1010 + DUR, r="r2", b=2) == []


def test_without_peer_confirmation_any_election_passes() -> None:
    run = Run(peer_confirm=False)
    assert run.elect("r1", 1, ["r2"], 10) == []


def test_peer_confirmation_is_inferred_from_the_first_detection_event() -> None:
    run = Run(peer_confirm=None)
    assert run.elect("r1", 1, ["r2"], 10) == []  # unknown yet: not checked
    run2 = Run(peer_confirm=None)
    run2("r3", "Suspect", 5, r="r3")
    found = run2("r1", "Phase1a", 10, r="r1", b=1)
    assert props(found) == ["NoNeedlessElection"]


# --- Suspect ------------------------------------------------------------------------------


def test_suspect_while_hearing_a_leader_that_holds_its_lease() -> None:
    run = leading()
    # r2 granted a held request at 1001: it hears r1 until 1001 + DUR.
    found = run("r2", "Suspect", 1000 + DUR, r="r2")
    assert props(found) == ["NoNeedlessElection"]
    assert "at 1001us" in found[0]


def test_suspect_once_the_lease_duration_has_passed() -> None:
    run = leading()
    assert run("r2", "Suspect", 1001 + DUR, r="r2") == []


def test_suspect_twice_or_as_leader() -> None:
    run = Run()
    run("r1", "Suspect", 10, r="r1")
    assert props(run("r1", "Suspect", 11, r="r1")) == ["NoNeedlessElection"]
    run = leading()
    found = run("r1", "Suspect", 2 * DUR, r="r1")
    assert props(found) == ["NoNeedlessElection"] and "while leader" in found[0]


def test_a_crash_forgets_what_a_replica_heard() -> None:
    run = leading()
    run("r2", "Crash", 1100, r="r2")
    run("r2", "Restart", 1200, ballot=1, granted=1, applied=0, log=0, wal="clean",
        truncated=0, digest="00000000")
    assert run("r2", "Suspect", 1300, r="r2") == []


# --- AnswerProbe -----------------------------------------------------------------------------


def test_answer_that_nobody_is_heard_while_hearing_a_leader() -> None:
    run = leading()
    run("r3", "Crash", 1050, r="r3")  # r3 forgets that it heard r1
    run("r3", "Restart", 1060, ballot=1, granted=1, applied=0, log=0, wal="clean",
        truncated=0, digest="00000000")
    run("r3", "Suspect", 1100, r="r3")
    # r2 granted r1's held request at 1001 and hears it until 1001 + DUR.
    found = run.answer("r2", "r3", 1200, False)
    assert props(found) == ["NoNeedlessElection"]


def test_answer_that_a_leader_is_heard_without_hearing_one() -> None:
    run = Run()
    run("r1", "Suspect", 10, r="r1")
    found = run.answer("r2", "r1", 11, True)
    assert props(found) == ["EventuallyConnectedLease"]


def test_a_leader_without_a_lease_does_not_vouch_for_itself() -> None:
    run = Run()
    run.suspect("r1", 10, {"r2": False})
    run.elect("r1", 1, ["r2"], 20)
    run("r3", "Suspect", 30, r="r3")
    assert props(run.answer("r1", "r3", 31, True)) == ["EventuallyConnectedLease"]


# --- Phase1a: NoNeedlessElection ---------------------------------------------------------


def test_election_without_suspicion() -> None:
    run = Run()
    found = run("r1", "Phase1a", 10, r="r1", b=1)
    assert props(found) == ["NoNeedlessElection"] and "without suspecting" in found[0]


def test_election_confirmed_by_a_minority() -> None:
    run = Run(5)
    run.suspect("r1", 10, {"r2": False})
    found = run("r1", "Phase1a", 20, r="r1", b=1)
    assert props(found) == ["NoNeedlessElection"]
    assert "['r1', 'r2'] only" in found[0]


def test_election_against_an_answer_that_hears_the_leader() -> None:
    """r2's answer is that it hears a leader: it does not confirm, so r1 alone is left."""
    run = Run()
    run.suspect("r1", 10, {"r2": True})
    found = run("r1", "Phase1a", 20, r="r1", b=1)
    assert props(found) == ["NoNeedlessElection"] and "r2 answered that they hear one" in found[0]


def test_election_on_answers_of_a_previous_suspicion() -> None:
    run = Run()
    run.suspect("r1", 10, {"r2": False, "r3": True})
    assert run("r1", "ClearSuspicion", 20, r="r1") == []  # r3 vetoed
    assert run("r1", "Suspect", 30, r="r1") == []
    found = run("r1", "Phase1a", 40, r="r1", b=1)
    assert props(found) == ["NoNeedlessElection"] and "['r1'] only" in found[0]


def test_election_on_answers_given_before_suspecting_again() -> None:
    """A second Suspect (itself a violation) is a new probe: earlier answers are dropped."""
    run = Run()
    run.suspect("r1", 10, {"r2": False})
    assert props(run("r1", "Suspect", 20, r="r1")) == ["NoNeedlessElection"]
    found = run("r1", "Phase1a", 30, r="r1", b=1)
    assert props(found) == ["NoNeedlessElection"] and "['r1'] only" in found[0]


def test_a_deposed_leader_that_relinquished_leads_again_afresh() -> None:
    run = leading()
    run("r1", "LeaseRelinquish", 1100, r="r1", s="r2")
    assert run.elect("r2", 2, ["r1"], 1200) == []  # r1 promises ballot 2: it steps down
    t = 3 * DUR
    assert run.suspect("r1", t, {"r3": False}) == []
    assert run.elect("r1", 3, ["r3"], t + 10) == []
    first = t + 12 + MARGIN + 1
    assert run.renew("r1", 3, first, ["r3"], held=False) == []
    read = t + 12 + DUR + MARGIN  # the wait is over; the lease from ``first`` runs
    assert run("r1", "StrongRead", read, lease=True, role="leader", r="r1", k=KEY) == []


def test_election_counting_an_answer_sent_over_a_down_link() -> None:
    run = Run()
    run.link("r2", "r1", 5, up=False)
    run.suspect("r1", 10, {"r2": False})
    assert props(run("r1", "Phase1a", 20, r="r1", b=1)) == ["NoNeedlessElection"]


def test_an_answer_sent_over_a_down_link_counts_once_the_link_is_up_again() -> None:
    """The spec's message stays in msgs and may arrive after the LinkUp."""
    run = Run()
    run.link("r2", "r1", 5, up=False)
    run.suspect("r1", 10, {"r2": False})
    run.link("r2", "r1", 15, up=True)
    assert run("r1", "Phase1a", 20, r="r1", b=1) == []


def test_election_while_hearing_the_leader_itself() -> None:
    run = leading()
    run.suspect("r2", 1001 + DUR, {"r3": False})
    run.grant("r2", "r1", 1, 1000, 1002 + DUR, held=True)  # heard again (held request)
    found = run("r2", "Phase1a", 1003 + DUR, r="r2", b=2)
    assert props(found) == ["NoNeedlessElection"] and "while it hears" in found[0]


def test_election_on_a_handoff_of_another_ballot() -> None:
    run = leading()
    run("r1", "LeaseRelinquish", 1100, r="r1", s="r2")
    # r2 moves on to ballot 3 (a 2a of a later leader), then starts an election: the
    # handoff was of ballot 1, not of r2's ballot.
    run("r2", "Phase2b", 1200, a="r2", m={"type": "2a", "bal": 3, "slot": 1, "cmd": None,
                                          "from": "r3"})
    found = run("r2", "Phase1a", 1300, r="r2", b=4)
    assert props(found) == ["NoNeedlessElection"]


# --- ClearSuspicion --------------------------------------------------------------------------


def test_clear_without_an_answer_that_hears_or_hearing_again() -> None:
    run = Run()
    run.suspect("r1", 10, {"r2": False})
    found = run("r1", "ClearSuspicion", 20, r="r1")
    assert props(found) == ["EventuallyConnectedLease"]


def test_clear_on_a_vouch_of_a_previous_suspicion() -> None:
    run = Run()
    run.suspect("r1", 10, {"r3": True})
    run("r1", "ClearSuspicion", 20, r="r1")
    run("r1", "Suspect", 30, r="r1")
    assert props(run("r1", "ClearSuspicion", 40, r="r1")) == ["EventuallyConnectedLease"]


def test_clear_without_suspecting() -> None:
    run = Run()
    found = run("r1", "ClearSuspicion", 20, r="r1")
    assert props(found) == ["EventuallyConnectedLease"] and "does not have" in found[0]


def test_clear_on_hearing_the_leader_again() -> None:
    run = leading()
    run.suspect("r2", 1001 + DUR, {"r3": False})
    run.grant("r2", "r1", 1, 1000, 1002 + DUR, held=True)
    assert run("r2", "ClearSuspicion", 1003 + DUR, r="r2") == []


# --- lease requests' held -------------------------------------------------------------------


def test_held_on_a_request_of_a_leader_that_held_no_lease() -> None:
    run = Run()
    run.suspect("r1", 10, {"r2": False})
    run.elect("r1", 1, ["r2"], 20)
    found = run.renew("r1", 1, 30, ["r2"], held=True)
    assert props(found) == ["EventuallyConnectedLease"]


def test_held_without_peer_confirmation() -> None:
    run = Run(peer_confirm=False)
    run.elect("r1", 1, ["r2"], 10)
    run.renew("r1", 1, 20, ["r2"], held=False)
    assert props(run.renew("r1", 1, 1000, ["r2"], held=True)) == ["EventuallyConnectedLease"]


# --- LeaseRelinquish and what follows ----------------------------------------------------------


def test_relinquished_leader_serves_a_read() -> None:
    run = leading()
    assert run("r1", "LeaseRelinquish", 1100, r="r1", s="r2") == []
    found = run("r1", "StrongRead", 1200, role="leader", r="r1", k=KEY)
    assert props(found) == ["LeaseExclusivity"] and "served after relinquishing" in found[0]


def test_relinquished_leader_renews() -> None:
    run = leading()
    run("r1", "LeaseRelinquish", 1100, r="r1", s="r2")
    found = run("r1", "LeaseRenew", 900 + DUR, r="r1", start=900 + DUR)
    assert props(found) == ["LeaseExclusivity"] and "renewed after relinquishing" in found[0]


def test_relinquished_leader_takes_a_write() -> None:
    run = leading()
    run("r1", "LeaseRelinquish", 1100, r="r1", s="r2")
    found = run("r1", "ClientWrite", 1200, r="r1", c={"rid": "w", "op": {"op": "put"}}, s=1)
    assert props(found) == ["LeaseExclusivity"]


def test_relinquish_without_holding_the_lease() -> None:
    run = Run()
    run.suspect("r1", 10, {"r2": False})
    run.elect("r1", 1, ["r2"], 20)
    found = run("r1", "LeaseRelinquish", 30, r="r1", s="r2")
    assert props(found) == ["LeaseExclusivity"] and "does not hold" in found[0]


def test_relinquish_twice() -> None:
    run = leading()
    run("r1", "LeaseRelinquish", 1100, r="r1", s="r2")
    found = run("r1", "LeaseRelinquish", 1200, r="r1", s="r3")
    assert props(found) == ["LeaseExclusivity"] and "again" in found[0]


@pytest.mark.parametrize("successor", ["r1", "r4"])
def test_handoff_to_itself_or_a_log_replica(successor: str) -> None:
    kinds = {"r1": "storage", "r2": "storage", "r3": "storage", "r4": "log"}
    run = leading(Run(kinds=kinds), n=4)
    found = run("r1", "LeaseRelinquish", 1100, r="r1", s=successor)
    assert props(found) == ["HandoffGap"]


# --- the new leader's wait ------------------------------------------------------------------


def test_successor_skips_the_wait_without_a_handoff() -> None:
    run = leading()
    run.suspect("r2", 1001 + DUR, {"r3": False})
    t = 1100 + DUR
    assert run.elect("r2", 2, ["r3"], t) == []
    found = run("r2", "LeaseRenew", t + 10, r="r2", start=t + 10)
    assert props(found) == ["LeaseExclusivity"] and "skipped the wait" in found[0]


def test_successor_waits_without_a_handoff() -> None:
    run = leading()
    run.suspect("r2", 1001 + DUR, {"r3": False})
    t = 1100 + DUR
    run.elect("r2", 2, ["r3"], t)
    first = t + 2 + MARGIN + 1  # LeaseDur > waitLeft from here on
    assert run("r2", "LeaseRenew", first, r="r2", start=first) == []


def test_successor_skips_the_wait_on_a_handoff_below_a_voters_grant() -> None:
    """r3 granted ballot 2's lease (r2's); r1 hands ballot 1 off to r4: r4 must wait."""
    run = Run(5)
    run.suspect("r1", 10, {"r2": False, "r3": False})
    run.elect("r1", 1, ["r2", "r3"], 20)
    run.renew("r1", 1, 30, ["r2", "r3", "r4", "r5"], held=False)
    run.renew("r1", 1, 1000, ["r2", "r3", "r4", "r5"], held=True)
    # r1 hands ballot 1 off to r4, while r2 (cut off earlier) leads ballot 2 with r3's
    # and r5's grants ... as far as r3 reports.
    assert run("r1", "LeaseRelinquish", 1100, r="r1", s="r4") == []
    run("r3", "Phase1b", 1200, a="r3", m={"type": "1a", "bal": 2, "from": "r2"})
    run("r3", "LeaseGrant", 1300, a="r3", m={"type": "lease", "bal": 2, "start": 1300,
                                              "from": "r2", "held": False})
    # r4 elects on the handoff of its ballot (1) with r3's and r5's promises.
    assert run.elect("r4", 3, ["r3", "r5"], 1400) == []
    found = run("r4", "LeaseRenew", 1500, r="r4", start=1500)
    assert props(found) == ["LeaseExclusivity"] and "skipped the wait" in found[0]


def test_successor_believes_it_holds_a_lease_during_its_wait() -> None:
    run = leading()
    run.suspect("r2", 1001 + DUR, {"r3": False})
    t = 1100 + DUR
    run.elect("r2", 2, ["r3"], t)
    found = run("r2", "EventualRead", t + 10, lease=True, role="leader", r="r2", k=KEY)
    assert props(found) == ["LeaseExclusivity"] and "skipped the wait" in found[0]


# --- links -----------------------------------------------------------------------------------


@pytest.mark.parametrize("receive", ["Phase1b", "Phase2b", "LeaseGrant", "AnswerProbe"])
def test_receive_over_a_down_link(receive: str) -> None:
    run = Run(peer_confirm=False)
    run.link("r1", "r2", 5, up=False)
    msgs: dict[str, tuple[str, dict[str, Any]]] = {
        "Phase1b": ("Phase1b", {"m": {"type": "1a", "bal": 1, "from": "r1"}}),
        "Phase2b": ("Phase2b", {"m": {"type": "2a", "bal": 1, "slot": 1, "cmd": None,
                                      "from": "r1"}}),
        "LeaseGrant": ("LeaseGrant", {"m": {"type": "lease", "bal": 1, "start": 0,
                                            "from": "r1", "held": False}}),
        "AnswerProbe": ("AnswerProbe", {"m": {"type": "probe", "from": "r1", "n": 1},
                                        "hears": False}),
    }
    action, args = msgs[receive]
    found = run("r2", action, 10, a="r2", **args)
    assert "LinkDelivery" in props(found)
    run.link("r1", "r2", 15, up=True)
    args2 = dict(args)
    if receive == "Phase1b":
        args2["m"] = {"type": "1a", "bal": 2, "from": "r1"}
    assert "LinkDelivery" not in props(run("r2", action, 20, a="r2", **args2))


def test_link_events_must_make_sense() -> None:
    """A LinkDown of a down link or a LinkUp of an up one is a step the spec does not
    take (a violation); a line traced by another node than the link's sender is not a
    trace line at all (an error)."""
    run = Run()
    run.link("r1", "r2", 5, up=False)
    found = run.link("r1", "r2", 6, up=False)
    assert props(found) == ["LinkDown"] and "down already" in found[0]
    found = run.link("r2", "r1", 7, up=True)
    assert props(found) == ["LinkUp"] and "not down" in found[0]
    with pytest.raises(ValueError, match="sender traces it"):
        run("r3", "LinkDown", 8, **{"from": "r1", "to": "r3"})


def test_a_log_replica_suspects() -> None:
    run = Run(kinds={"r1": "storage", "r2": "storage", "r3": "storage", "r4": "log"})
    assert props(run("r4", "Suspect", 10, r="r4")) == ["LogReplicaNeverLeads"]


def test_a_spare_answers_a_probe() -> None:
    run = Run(kinds={"r1": "storage", "r2": "storage", "r3": "storage", "r4": "none"})
    run("r1", "Suspect", 10, r="r1")
    found = run.answer("r4", "r1", 11, False)
    assert props(found) == ["NoNeedlessElection"] and "not a member" in found[0]
