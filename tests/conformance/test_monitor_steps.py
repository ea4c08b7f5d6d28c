"""The monitor's step checks (conformance/monitor_steps.py): for every traced action of
the spec, a short correct trace with one step altered so that the action's enabling
condition does not hold, and the violation that names the action and the step's
``file:line``.

Each trace is built from the correct steps of ``Trace``'s helpers (asserted silent) and
ends in the one forbidden step; ``forbidden`` checks that step's violation: its
property (the action's name where no property of the spec fits), its action, its
``file:line`` and a fragment of the message that only that check writes."""

from __future__ import annotations

from typing import Any

import pytest

from conformance.monitor import Monitor, Violation
from conformance.trace_loader import event_from_obj
from reference.actions import ACTIONS
from reference.trace_events import FORMAT_VERSION

DUR, MARGIN = 1_000_000, 9_000
THREE = {"r1": "storage", "r2": "storage", "r3": "storage"}
SPARE = THREE | {"r4": "none"}
WITH_LOG = THREE | {"r4": "log"}
KEY = {"p": {"S": "k"}}
POST = {"bal": 0, "role": "follower", "top": 0, "applied": 0, "lease": False}


def w(rid: str) -> dict[str, Any]:
    return {"rid": rid, "op": {"op": "put"}}


def m1a(b: int, src: str) -> dict[str, Any]:
    return {"type": "1a", "bal": b, "from": src}


def m2a(b: int, s: int, rid: str | None, src: str) -> dict[str, Any]:
    return {"type": "2a", "bal": b, "slot": s, "cmd": None if rid is None else w(rid),
            "from": src}


def mlease(b: int, start: int, src: str) -> dict[str, Any]:
    return {"type": "lease", "bal": b, "start": start, "from": src, "held": False}


class Trace:
    """Hand-written trace lines, one file per node (``trace-<node>.jsonl``, numbered from
    1); real time, and every clock, advance 10us per line unless told otherwise."""

    def __init__(self, kinds: dict[str, str] = THREE, *,
                 peer_confirm: bool | None = False) -> None:
        self.mon = Monitor(kinds, DUR, MARGIN, peer_confirm=peer_confirm)
        self.lines: dict[str, int] = {}
        self.t = 0

    def __call__(self, node: str, action: str, **args: Any) -> list[Violation]:
        self.t += 10
        self.lines[node] = self.lines.get(node, 0) + 1
        obj = {"action": action, "v": FORMAT_VERSION, "node": node, "replica": node,
               "seq": self.lines[node], "real": self.t, "clock": self.t,
               "kind": ACTIONS[action].kind, "args": args}
        if ACTIONS[action].post:
            obj["post"] = POST  # the monitor does not read it
        return self.mon.step(event_from_obj(obj), self.where(node))

    def where(self, node: str) -> str:
        return f"trace-{node}.jsonl:{self.lines[node]}"

    def ok(self, node: str, action: str, **args: Any) -> None:
        found = self(node, action, **args)
        assert found == [], [str(v) for v in found]

    # --- correct steps -------------------------------------------------------------------

    def elect(self, r: str, b: int, voters: list[str]) -> None:
        """r starts ballot b and leads it on r and ``voters`` (a minimal quorum)."""
        self.ok(r, "Phase1a", r=r, b=b)
        for v in voters:
            self.ok(v, "Phase1b", a=v, m=m1a(b, r))
        self.ok(r, "BecomeLeader", r=r, b=b, Q=sorted([r, *voters]))

    def lease(self, r: str, b: int, grantors: list[str]) -> None:
        start = self.t + 10
        self.ok(r, "LeaseRenew", r=r, start=start)
        for g in grantors:
            self.ok(g, "LeaseGrant", a=g, m=mlease(b, start, r))

    def write(self, r: str, b: int, s: int, rid: str, voters: list[str],
              commit: bool = True) -> None:
        self.ok(r, "ClientWrite", r=r, c=w(rid), s=s)
        for v in voters:
            self.ok(v, "Phase2b", a=v, m=m2a(b, s, rid, r))
        if commit:
            self.ok(r, "Commit", r=r, b=b, s=s)


def forbidden(tr: Trace, node: str, action: str, prop: str, fragment: str,
              **args: Any) -> None:
    """``node``'s step ``action`` is forbidden: the monitor reports it under ``prop``,
    naming the action and the line, with ``fragment`` in its message."""
    found = tr(node, action, **args)
    where = tr.where(node)
    hits = [v for v in found if v.prop == prop and fragment in v.message]
    assert hits, [str(v) for v in found]
    v = hits[0]
    assert v.action == action and v.where == where
    assert str(v).startswith(f"{where}: ") and action in str(v)


def leading(kinds: dict[str, str] = THREE, voters: tuple[str, ...] = ("r2",)) -> Trace:
    """r1 leads ballot 1 on r1 and ``voters``, holds their lease, and committed w1 at
    slot 1 (r1 applied it)."""
    tr = Trace(kinds)
    tr.elect("r1", 1, list(voters))
    tr.lease("r1", 1, list(voters))
    tr.write("r1", 1, 1, "w1", list(voters))
    tr.ok("r1", "Apply", r="r1", s=1, c=w("w1"))
    return tr


def takeover(writes: int = 1) -> Trace:
    """r1 leads ballot 1 and proposes ``writes`` writes that r2 accepts but r1 does not
    commit; r2 then leads ballot 2 on r2 and r3, recovers them, and (having granted
    ballot 1's lease) must wait LeaseDur + LeaseMargin before it commits or serves."""
    tr = Trace()
    tr.elect("r1", 1, ["r2"])
    tr.lease("r1", 1, ["r2"])
    for s in range(1, writes + 1):
        tr.write("r1", 1, s, f"w{s}", ["r2"], commit=False)
    tr.elect("r2", 2, ["r3"])
    return tr


def after_wait(tr: Trace) -> None:
    """r2's new-leader wait is over, and it holds a lease granted by r3."""
    tr.t += DUR + MARGIN
    tr.lease("r2", 2, ["r3"])


# --- the correct trace the others alter ----------------------------------------------------


def test_the_correct_trace_is_silent() -> None:
    tr = takeover()
    tr.ok("r2", "Phase2a", r="r2", b=2, s=1, c=w("w1"))
    tr.ok("r3", "Phase2b", a="r3", m=m2a(2, 1, "w1", "r2"))
    after_wait(tr)
    tr.ok("r2", "Commit", r="r2", b=2, s=1)
    tr.ok("r2", "Apply", r="r2", s=1, c=w("w1"))
    tr.ok("r2", "StrongRead", r="r2", k=KEY)
    tr.ok("r3", "Apply", r="r3", s=1, c=w("w1"))
    tr.ok("r3", "EventualRead", r="r3", k=KEY)
    tr.write("r2", 2, 2, "w2", ["r3"])
    tr.ok("r1", "Phase2b", a="r1", m=m2a(2, 1, "w1", "r2"))  # r1 catches up: it steps down
    tr.ok("r1", "Phase2b", a="r1", m=m2a(2, 1, "w1", "r2"))  # a retransmitted copy
    tr.ok("r1", "Phase2b", a="r1", m=m2a(2, 2, "w2", "r2"))
    assert not tr.mon.violations


def test_crash_is_always_enabled() -> None:
    """The spec's Crash has no guard: a leader, a candidate and a follower may crash."""
    tr = leading()
    tr.ok("r3", "Phase1a", r="r3", b=2)
    for r in ("r1", "r2", "r3"):
        tr.ok(r, "Crash", r=r)


# --- Phase1a -------------------------------------------------------------------------------


def test_phase1a_by_a_leader() -> None:
    forbidden(leading(), "r1", "Phase1a", "Phase1a", "while it leads ballot 1", r="r1", b=4)


def test_phase1a_not_above_the_ballot_promised() -> None:
    tr = Trace()
    tr.ok("r1", "Phase1a", r="r1", b=5)
    tr.ok("r2", "Phase1b", a="r2", m=m1a(5, "r1"))
    forbidden(tr, "r2", "Phase1a", "Phase1a", "not above its ballot 5", r="r2", b=2)


def test_phase1a_of_a_ballot_started_already() -> None:
    tr = Trace()
    tr.ok("r1", "Phase1a", r="r1", b=1)
    forbidden(tr, "r2", "Phase1a", "Agreement", "which r1 started already", r="r2", b=1)


# --- Phase1b -------------------------------------------------------------------------------


def test_phase1b_of_a_1a_never_sent() -> None:
    forbidden(Trace(), "r2", "Phase1b", "Phase1b", "to r1, which sent no 1a of it",
              a="r2", m=m1a(3, "r1"))


def test_phase1b_of_its_own_1a() -> None:
    tr = Trace()
    tr.ok("r1", "Phase1a", r="r1", b=1)
    forbidden(tr, "r1", "Phase1b", "Phase1b", "on its own 1a", a="r1", m=m1a(1, "r1"))


def test_phase1b_not_above_the_ballot_promised() -> None:
    tr = Trace()
    tr.ok("r1", "Phase1a", r="r1", b=1)
    tr.ok("r3", "Phase1a", r="r3", b=2)
    tr.ok("r2", "Phase1b", a="r2", m=m1a(2, "r3"))
    # A reordered 1a of a lower ballot: the acceptor must ignore it.
    forbidden(tr, "r2", "Phase1b", "Phase1b", "not above its ballot 2", a="r2",
              m=m1a(1, "r1"))


def test_phase1b_by_a_non_member() -> None:
    tr = Trace(SPARE)
    tr.ok("r1", "Phase1a", r="r1", b=1)
    forbidden(tr, "r4", "Phase1b", "Phase1b", "while not a member", a="r4", m=m1a(1, "r1"))


# --- BecomeLeader --------------------------------------------------------------------------


def test_become_leader_of_a_ballot_it_did_not_start() -> None:
    tr = Trace()
    tr.ok("r1", "Phase1a", r="r1", b=1)
    tr.ok("r2", "Phase1b", a="r2", m=m1a(1, "r1"))
    forbidden(tr, "r3", "BecomeLeader", "BecomeLeader", "not its candidate", r="r3", b=1,
              Q=["r2", "r3"])


def test_become_leader_on_a_quorum_without_itself() -> None:
    tr = Trace()
    tr.ok("r1", "Phase1a", r="r1", b=1)
    tr.ok("r2", "Phase1b", a="r2", m=m1a(1, "r1"))
    tr.ok("r3", "Phase1b", a="r3", m=m1a(1, "r1"))
    forbidden(tr, "r1", "BecomeLeader", "BecomeLeader", "a quorum without itself", r="r1",
              b=1, Q=["r2", "r3"])


def test_become_leader_on_a_quorum_that_is_not_minimal() -> None:
    tr = Trace()
    tr.ok("r1", "Phase1a", r="r1", b=1)
    tr.ok("r2", "Phase1b", a="r2", m=m1a(1, "r1"))
    tr.ok("r3", "Phase1b", a="r3", m=m1a(1, "r1"))
    forbidden(tr, "r1", "BecomeLeader", "BecomeLeader", "not a minimal quorum", r="r1", b=1,
              Q=["r1", "r2", "r3"])


# --- ClientWrite ---------------------------------------------------------------------------


def test_client_write_skipping_a_slot() -> None:
    tr = Trace()
    tr.elect("r1", 1, ["r2"])
    tr.lease("r1", 1, ["r2"])
    forbidden(tr, "r1", "ClientWrite", "ClientWrite", "its next slot in ballot 1 is 1",
              r="r1", c=w("w1"), s=2)


def test_client_write_before_the_recovered_slots_are_reproposed() -> None:
    tr = takeover()
    after_wait(tr)
    forbidden(tr, "r2", "ClientWrite", "ClientWrite", "before re-proposing recovered slot 1",
              r="r2", c=w("w9"), s=2)


# --- Phase2a -------------------------------------------------------------------------------


def test_phase2a_by_a_follower() -> None:
    forbidden(Trace(), "r1", "Phase2a", "Phase2a", "while follower of ballot 0", r="r1", b=1,
              s=1, c=None)


def test_phase2a_of_a_slot_it_did_not_recover() -> None:
    tr = Trace()
    tr.elect("r1", 1, ["r2"])
    forbidden(tr, "r1", "Phase2a", "Phase2a", "not one of the slots 1..0 it recovered",
              r="r1", b=1, s=1, c=None)


def test_phase2a_out_of_slot_order() -> None:
    tr = takeover(writes=2)
    forbidden(tr, "r2", "Phase2a", "Phase2a", "out of slot order", r="r2", b=2, s=2,
              c=w("w2"))


def test_phase2a_of_a_slot_twice() -> None:
    tr = takeover()
    tr.ok("r2", "Phase2a", r="r2", b=2, s=1, c=w("w1"))
    forbidden(tr, "r2", "Phase2a", "Phase2a", "re-proposes slot 1 in ballot 2 again", r="r2",
              b=2, s=1, c=w("w1"))


def test_a_leader_owes_a_slot_it_applied_no_proposal_and_no_commit() -> None:
    """The spec's SkipApplied (on in trace validation): r2 applied slot 1 before it was
    elected, so it may append at slot 2 and serve reads without re-proposing slot 1."""
    tr = Trace()
    tr.elect("r1", 1, ["r2"])
    tr.lease("r1", 1, ["r2"])
    tr.write("r1", 1, 1, "w1", ["r2"])
    tr.ok("r2", "Apply", r="r2", s=1, c=w("w1"))
    tr.elect("r2", 2, ["r3"])
    after_wait(tr)
    tr.ok("r2", "StrongRead", r="r2", k=KEY)
    tr.ok("r2", "ClientWrite", r="r2", c=w("w2"), s=2)


def test_phase2a_of_another_command_than_the_recovered_one() -> None:
    tr = takeover()
    forbidden(tr, "r2", "Phase2a", "Agreement", "but it recovered 'w1' there", r="r2", b=2,
              s=1, c=w("w9"))


# --- Phase2b -------------------------------------------------------------------------------


def test_phase2b_of_a_2a_never_sent() -> None:
    tr = Trace()
    tr.elect("r1", 1, ["r2"])
    forbidden(tr, "r3", "Phase2b", "Phase2b", "from r1, which proposed nothing there",
              a="r3", m=m2a(1, 1, "w1", "r1"))


def test_phase2b_of_another_command_than_the_one_sent() -> None:
    tr = Trace()
    tr.elect("r1", 1, ["r2"])
    tr.lease("r1", 1, ["r2"])
    tr.ok("r1", "ClientWrite", r="r1", c=w("w1"), s=1)
    forbidden(tr, "r3", "Phase2b", "Phase2b", "but r1 proposed 'w1' there", a="r3",
              m=m2a(1, 1, "w2", "r1"))


def test_phase2b_of_its_own_2a() -> None:
    tr = Trace()
    tr.elect("r1", 1, ["r2"])
    tr.lease("r1", 1, ["r2"])
    tr.ok("r1", "ClientWrite", r="r1", c=w("w1"), s=1)
    forbidden(tr, "r1", "Phase2b", "Phase2b", "accepts its own 2a", a="r1",
              m=m2a(1, 1, "w1", "r1"))


def test_phase2b_below_the_ballot_promised() -> None:
    tr = Trace()
    tr.elect("r1", 1, ["r2"])
    tr.lease("r1", 1, ["r2"])
    tr.ok("r1", "ClientWrite", r="r1", c=w("w1"), s=1)
    tr.ok("r3", "Phase1a", r="r3", b=2)
    tr.ok("r2", "Phase1b", a="r2", m=m1a(2, "r3"))
    forbidden(tr, "r2", "Phase2b", "Phase2b", "after promising ballot 2", a="r2",
              m=m2a(1, 1, "w1", "r1"))


def test_phase2b_by_a_non_member_nobody_adds() -> None:
    tr = leading(SPARE)
    forbidden(tr, "r4", "Phase2b", "Phase2b", "not a member of its view, and no 2a", a="r4",
              m=m2a(1, 1, "w1", "r1"))


def test_phase2b_below_the_recovered_checkpoint_is_a_catch_up_not_a_forgery() -> None:
    """r2 checkpointed slots 1..2; r3, elected on r2's promise, does not re-propose them,
    but its catch-up re-sends them in its ballot (the reference does): no violation.
    Above the checkpoint a 2a it never sent is still one."""
    tr = Trace()
    tr.elect("r1", 1, ["r2"])
    tr.lease("r1", 1, ["r2"])
    for s in (1, 2):
        tr.write("r1", 1, s, f"w{s}", ["r2", "r3"])
        tr.ok("r2", "Apply", r="r2", s=s, c=w(f"w{s}"))
    tr.ok("r2", "Checkpoint", upto=2, truncated=2)
    tr.elect("r3", 2, ["r2"])
    tr.ok("r1", "Phase2b", a="r1", m=m2a(2, 1, "w1", "r3"))
    tr.ok("r1", "Phase2b", a="r1", m=m2a(2, 2, "w2", "r3"))
    forbidden(tr, "r1", "Phase2b", "Phase2b", "from r3, which proposed nothing there",
              a="r1", m=m2a(2, 3, "w3", "r3"))


# --- Commit --------------------------------------------------------------------------------


def test_commit_by_a_follower() -> None:
    tr = Trace()
    tr.elect("r1", 1, ["r2"])
    tr.lease("r1", 1, ["r2"])
    tr.write("r1", 1, 1, "w1", ["r2"], commit=False)
    forbidden(tr, "r2", "Commit", "Commit", "while follower of ballot 1", r="r2", b=1, s=1)


def test_commit_during_the_new_leader_wait() -> None:
    tr = takeover()
    tr.ok("r2", "Phase2a", r="r2", b=2, s=1, c=w("w1"))
    tr.ok("r3", "Phase2b", a="r3", m=m2a(2, 1, "w1", "r2"))
    forbidden(tr, "r2", "Commit", "Linearizability", "before the end of its new-leader wait",
              r="r2", b=2, s=1)


def test_commit_twice() -> None:
    forbidden(leading(), "r1", "Commit", "Commit", "commits slot 1 of ballot 1 again", r="r1",
              b=1, s=1)


def test_commit_out_of_slot_order() -> None:
    tr = Trace()
    tr.elect("r1", 1, ["r2"])
    tr.lease("r1", 1, ["r2"])
    tr.write("r1", 1, 1, "w1", ["r2"], commit=False)
    tr.write("r1", 1, 2, "w2", ["r2"], commit=False)
    forbidden(tr, "r1", "Commit", "Commit", "before slot 1 (committed in the ballot, or "
                                            "applied)", r="r1", b=1, s=2)


# --- Apply ---------------------------------------------------------------------------------


def test_apply_of_a_slot_its_log_does_not_hold() -> None:
    forbidden(leading(), "r3", "Apply", "Apply", "where its log holds nothing", r="r3", s=1,
              c=w("w1"))


def test_apply_of_a_slot_nobody_committed() -> None:
    tr = Trace()
    tr.elect("r1", 1, ["r2"])
    tr.lease("r1", 1, ["r2"])
    tr.write("r1", 1, 1, "w1", ["r2"], commit=False)  # chosen, but no commit message
    forbidden(tr, "r2", "Apply", "Apply", "which no leader has committed", r="r2", s=1,
              c=w("w1"))


# --- leases --------------------------------------------------------------------------------


def test_lease_renew_while_a_request_is_outstanding() -> None:
    tr = Trace()
    tr.elect("r1", 1, ["r2"])
    tr.ok("r1", "LeaseRenew", r="r1", start=tr.t + 10)
    forbidden(tr, "r1", "LeaseRenew", "LeaseRenew", "one request at a time", r="r1",
              start=tr.t + 10)


def test_lease_grant_of_a_request_never_sent() -> None:
    tr = Trace()
    tr.elect("r1", 1, ["r2"])
    forbidden(tr, "r2", "LeaseGrant", "LeaseGrant", "that r1 never sent", a="r2",
              m=mlease(1, 5, "r1"))


def test_lease_grant_of_its_own_request() -> None:
    tr = Trace()
    tr.elect("r1", 1, ["r2"])
    start = tr.t + 10
    tr.ok("r1", "LeaseRenew", r="r1", start=start)
    forbidden(tr, "r1", "LeaseGrant", "LeaseGrant", "its own lease request", a="r1",
              m=mlease(1, start, "r1"))


def test_lease_grant_below_the_ballot_promised() -> None:
    tr = Trace()
    tr.elect("r1", 1, ["r2"])
    start = tr.t + 10
    tr.ok("r1", "LeaseRenew", r="r1", start=start)
    tr.ok("r3", "Phase1a", r="r3", b=2)
    tr.ok("r2", "Phase1b", a="r2", m=m1a(2, "r3"))
    forbidden(tr, "r2", "LeaseGrant", "LeaseExclusivity", "after promising ballot 2", a="r2",
              m=mlease(1, start, "r1"))


def test_lease_grant_by_a_non_member() -> None:
    tr = Trace(SPARE)
    tr.elect("r1", 1, ["r2"])
    start = tr.t + 10
    tr.ok("r1", "LeaseRenew", r="r1", start=start)
    forbidden(tr, "r4", "LeaseGrant", "LeaseGrant", "while not a member", a="r4",
              m=mlease(1, start, "r1"))


def test_lease_relinquish_without_the_lease() -> None:
    tr = Trace()
    tr.elect("r1", 1, ["r2"])
    forbidden(tr, "r1", "LeaseRelinquish", "LeaseExclusivity", "a lease it does not hold",
              r="r1", s="r2")


# --- reads ---------------------------------------------------------------------------------


def test_strong_read_before_the_recovered_slots_are_applied() -> None:
    tr = takeover()
    tr.ok("r2", "Phase2a", r="r2", b=2, s=1, c=w("w1"))
    after_wait(tr)
    forbidden(tr, "r2", "StrongRead", "Linearizability", "before applying recovered slot 1",
              r="r2", k=KEY)


def test_strong_read_before_applying_what_it_committed() -> None:
    tr = Trace()
    tr.elect("r1", 1, ["r2"])
    tr.lease("r1", 1, ["r2"])
    tr.write("r1", 1, 1, "w1", ["r2"])
    forbidden(tr, "r1", "StrongRead", "Linearizability", "before applying slot 1, which it "
                                                         "committed", r="r1", k=KEY)


def test_eventual_read_by_a_log_replica() -> None:
    forbidden(Trace(WITH_LOG), "r4", "EventualRead", "LogReplicaNeverServes",
              "a log replica in its view", r="r4", k=KEY)


# --- membership ----------------------------------------------------------------------------


@pytest.mark.parametrize(("action", "change"), [
    ("AddMember", {"op": "add", "who": "r4", "kind": "log"}),
    ("RemoveMember", {"op": "remove", "who": "r3"}),
])
def test_a_change_skipping_a_slot(action: str, change: dict[str, str]) -> None:
    forbidden(leading(SPARE), "r1", action, action, "its next slot in ballot 1 is 2", r="r1",
              c=change, s=3)


def test_promote_member_skipping_a_slot() -> None:
    tr = leading(WITH_LOG, ("r2", "r3"))
    tr.ok("r4", "InstallSnapshot", x="r4", src="r1", upto=1)
    forbidden(tr, "r1", "PromoteMember", "PromoteMember", "its next slot in ballot 1 is 2",
              r="r1", c={"op": "promote", "who": "r4"}, s=7)


def test_install_snapshot_over_a_b_tree() -> None:
    forbidden(leading(), "r2", "InstallSnapshot", "StateMachineSafety",
              "over the B-tree it has", x="r2", src="r1", upto=1)


# --- failure detection and links ------------------------------------------------------------


def confirmed_leader() -> Trace:
    """Peer confirmation on: r1 suspects, r2 confirms, r1 leads ballot 1."""
    tr = Trace(peer_confirm=True)
    tr.ok("r1", "Suspect", r="r1")
    tr.ok("r2", "AnswerProbe", a="r2", m={"type": "probe", "from": "r1", "n": 1}, hears=False)
    tr.elect("r1", 1, ["r2"])
    return tr


def test_suspect_by_a_leader() -> None:
    forbidden(confirmed_leader(), "r1", "Suspect", "NoNeedlessElection", "while leader",
              r="r1")


def test_answer_probe_of_a_probe_never_sent() -> None:
    forbidden(confirmed_leader(), "r3", "AnswerProbe", "AnswerProbe",
              "a probe of r2, which never sent one", a="r3",
              m={"type": "probe", "from": "r2", "n": 1}, hears=False)


def test_answer_probe_of_its_own_probe() -> None:
    tr = Trace(peer_confirm=True)
    tr.ok("r1", "Suspect", r="r1")
    forbidden(tr, "r1", "AnswerProbe", "AnswerProbe", "answers its own probe", a="r1",
              m={"type": "probe", "from": "r1", "n": 1}, hears=False)


def test_clear_suspicion_without_suspecting() -> None:
    forbidden(confirmed_leader(), "r2", "ClearSuspicion", "EventuallyConnectedLease",
              "a suspicion it does not have", r="r2")


def test_link_down_of_a_link_that_is_down() -> None:
    tr = Trace()
    tr.ok("r1", "LinkDown", **{"from": "r1", "to": "r2"})
    forbidden(tr, "r1", "LinkDown", "LinkDown", "down already", **{"from": "r1", "to": "r2"})


def test_link_down_of_a_link_to_itself() -> None:
    forbidden(Trace(), "r1", "LinkDown", "LinkDown", "no link to itself",
              **{"from": "r1", "to": "r1"})


def test_link_up_of_a_link_that_is_up() -> None:
    tr = Trace()
    tr.ok("r1", "LinkDown", **{"from": "r1", "to": "r2"})
    tr.ok("r1", "LinkUp", **{"from": "r1", "to": "r2"})
    forbidden(tr, "r1", "LinkUp", "LinkUp", "but it is not down", **{"from": "r1", "to": "r2"})
