"""Membership change at the replica (issue 9): views from the log, quorums over them,
and the enabling conditions of AddMember, RemoveMember, PromoteMember,
InstallSnapshot and the kinds' limits (log replicas never apply, lead or serve)."""

from __future__ import annotations

from reference.messages import (
    NOOP,
    Change,
    Command,
    CommitMsg,
    Entry,
    Kind,
    LeaseAckMsg,
    LeaseMsg,
    NotStorage,
    Phase1aMsg,
    Phase1bMsg,
    Phase2aMsg,
    Phase2bMsg,
)
from reference.replica import Persist, Replica, ReplicaConfig, Reply
from reference.storage import Key, M, N, Put, S, encode_op

CFG = ReplicaConfig(lease_dur_us=10_000, lease_margin_us=4_000, max_drift_us=1_000,
                    renew_ahead_us=2_000)
MEMBERS: dict[str, Kind] = {"a": "storage", "b": "storage", "c": "storage",
                            "d": "none", "e": "none"}
K = Key(S("k"))
ADD_D_LOG = Change("add", "d", "log")


def put(rid: str, val: int) -> Command:
    return Command(rid, encode_op(Put(M(pk=S("k"), v=N(val)))))


def rep(node: str = "a", members: dict[str, Kind] | None = None) -> Replica:
    return Replica(node, MEMBERS if members is None else members, CFG)


def lead(b: int = 1, now: int = 0, logs: dict[str, tuple[Entry, ...]] | None = None) -> Replica:
    """Replica "a" leading ballot b on promises of b and c, holding a lease."""
    r = rep("a")
    r.phase1a(b, now)
    for src, log in (logs or {"b": (), "c": ()}).items():
        r.receive_promise(Phase1bMsg(b, src, "a", log, 0))
    q = r.first_quorum()
    assert q is not None
    assert r.become_leader(b, q, now)
    grant(r, now)
    return r


def grant(r: Replica, now: int) -> None:
    r.lease_renew(now)
    for g in r.member_ids():
        r.receive_lease_ack(LeaseAckMsg(r.ballot, now, g, "a"))


def commit_next(r: Replica, now: int, voters: tuple[str, ...] = ("b",)) -> int:
    """Commit every proposed slot with ``voters``' votes; returns the last slot."""
    for s in range(r.committed_upto + 1, r.proposed_upto + 1):
        for v in voters:
            r.receive_vote(Phase2bMsg(r.ballot, s, r.entry(s).cmd, v))
        assert r.commit(r.ballot, s, now), s
    return r.committed_upto


def ready(now: int = 0) -> Replica:
    """A leader that has committed a write in its ballot: it may change the configuration."""
    r = lead(now=now)
    r.client_write(put("w1", 1), now)
    commit_next(r, now)
    return r


# --- views -------------------------------------------------------------------------


def test_a_change_takes_effect_when_appended_and_is_undone_with_its_entry() -> None:
    f = rep("b")
    assert f.members == MEMBERS
    f.phase2b(Phase2aMsg(1, 1, ADD_D_LOG, "a"))
    assert f.kind("d") == "log" and f.member_ids() == ["a", "b", "c", "d"]
    assert not f.is_quorum({"a", "b"}) and f.is_quorum({"a", "b", "d"})
    # A later ballot's leader overwrote the uncommitted change: the view follows the log.
    f.phase2b(Phase2aMsg(2, 1, NOOP, "c"))
    assert f.kind("d") == "none" and f.member_ids() == ["a", "b", "c"]


def test_the_latest_change_naming_a_replica_wins() -> None:
    f = rep("b")
    for s, c in enumerate([ADD_D_LOG, Change("promote", "d"), Change("remove", "c")], 1):
        f.phase2b(Phase2aMsg(1, s, c, "a"))
    assert f.members == {**MEMBERS, "c": "none", "d": "storage"}


# --- AddMember / RemoveMember / PromoteMember guards -------------------------------


def test_no_change_before_an_entry_of_the_ballot_is_committed() -> None:
    r = lead()
    assert r.add_member(ADD_D_LOG, 0) == []  # nothing committed in ballot 1 yet
    r.client_write(put("w1", 1), 0)
    assert r.add_member(ADD_D_LOG, 0) == []  # proposed, not committed
    commit_next(r, 0)
    effects = r.add_member(ADD_D_LOG, 0)
    assert effects[0] == Persist("log", 2)
    assert r.entry(2).cmd == ADD_D_LOG and r.leader_view["d"] == "log"
    assert r.events[-1].action == "AddMember" and r.events[-1].args["s"] == 2


def test_only_one_change_in_flight() -> None:
    r = ready()
    assert r.add_member(ADD_D_LOG, 0)
    assert r.remove_member(Change("remove", "c"), 0) == []
    # The add counts d: committing slot 2 needs 3 votes of a, b, c, d.
    r.receive_vote(Phase2bMsg(1, 2, ADD_D_LOG, "b"))
    assert r.commit(1, 2, 0) == []
    r.receive_vote(Phase2bMsg(1, 2, ADD_D_LOG, "d"))
    assert r.commit(1, 2, 0)
    assert r.remove_member(Change("remove", "c"), 0)


def test_changes_need_the_lease() -> None:
    r = ready()
    assert r.add_member(ADD_D_LOG, CFG.lease_dur_us + 1) == []  # the lease ran out
    assert r.add_member(ADD_D_LOG, 1)


def test_a_follower_does_not_change_the_configuration() -> None:
    assert rep("b").add_member(ADD_D_LOG, 0) == []


def test_add_only_a_fresh_incarnation() -> None:
    r = ready()
    assert r.add_member(Change("add", "b", "log"), 0) == []  # a member
    assert r.add_member(Change("add", "x", "log"), 0)  # an id never seen: fine
    commit_next(r, 0, ("b", "x"))
    assert r.remove_member(Change("remove", "x"), 0)
    commit_next(r, 0, ("b",))
    assert r.add_member(Change("add", "x", "log"), 0) == []  # removed ids never come back
    assert r.remove_member(Change("remove", "c"), 0)
    commit_next(r, 0, ("b",))
    assert r.add_member(Change("add", "c", "log"), 0) == []  # an initial member's id either


def test_add_storage_needs_an_installed_snapshot() -> None:
    r = ready()
    c = Change("add", "d", "storage")
    assert r.add_member(c, 0) == []
    r.receive_snapshot_report("d")
    assert r.add_member(c, 0)


def test_remove_a_member_other_than_the_leader() -> None:
    r = ready()
    assert r.remove_member(Change("remove", "a"), 0) == []  # itself
    assert r.remove_member(Change("remove", "d"), 0) == []  # not a member
    assert r.remove_member(Change("remove", "c"), 0)
    assert r.leader_view["c"] == "none" and r.is_quorum({"a", "b"})


def test_promote_a_log_replica_that_has_a_snapshot() -> None:
    r = ready()
    promote = Change("promote", "d")
    assert r.promote_member(promote, 0) == []  # not a member
    r.add_member(ADD_D_LOG, 0)
    commit_next(r, 0, ("b", "d"))
    assert r.promote_member(promote, 0) == []  # no snapshot yet
    assert r.promote_member(Change("promote", "b"), 0) == []  # already storage
    r.receive_snapshot_report("d")
    assert r.promote_member(promote, 0)
    assert r.leader_view["d"] == "storage"


def test_a_handler_refuses_a_change_of_another_op() -> None:
    r = ready()
    assert r.remove_member(ADD_D_LOG, 0) == [] and r.promote_member(ADD_D_LOG, 0) == []


# --- elections over the recovered configuration ------------------------------------


def test_the_quorum_is_one_of_the_recovered_configuration() -> None:
    # b's and c's logs hold "add d": the recovered configuration has 4 members, so a
    # and b (or c) alone are no quorum, although they are one of a's own view.
    r = rep("a")
    r.phase1a(1, 0)
    r.receive_promise(Phase1bMsg(1, "b", "a", (Entry(1, ADD_D_LOG),), 0))
    assert r.is_quorum({"a", "b"}) and r.first_quorum() is None
    assert r.become_leader(1, {"a", "b"}, 0) == []
    r.receive_promise(Phase1bMsg(1, "c", "a", (Entry(1, ADD_D_LOG),), 0))
    assert r.first_quorum() == {"a", "b", "c"}
    assert r.become_leader(1, {"a", "b", "c"}, 0)
    assert r.leader_view["d"] == "log"


def test_a_candidate_removed_by_the_recovered_log_does_not_lead() -> None:
    r = rep("a")
    r.phase1a(1, 0)
    r.receive_promise(Phase1bMsg(1, "b", "a", (Entry(1, Change("remove", "a")),), 0))
    assert r.first_quorum() is None
    assert r.become_leader(1, {"a", "b"}, 0) == []
    # c never saw the removal: recovered from a and c, a is still a storage member.
    r.receive_promise(Phase1bMsg(1, "c", "a", (), 0))
    assert r.first_quorum() == {"a", "c"}


def test_no_commit_before_recovered_configuration_is_reproposed() -> None:
    log = (Entry(1, NOOP), Entry(1, ADD_D_LOG))
    r = lead(logs={"b": log, "c": log})
    assert r.read_barrier == 2
    r.phase2a(1, 1)
    r.receive_vote(Phase2bMsg(1, 1, NOOP, "b"))
    r.receive_vote(Phase2bMsg(1, 1, NOOP, "c"))
    assert r.commit(1, 1, 0) == []  # slot 2's change is recovered, not yet re-proposed
    r.phase2a(1, 2)
    assert r.commit(1, 1, 0)


# --- log replicas and non-members ----------------------------------------------------


LOGGY: dict[str, Kind] = {"a": "storage", "b": "storage", "l": "log"}


def test_a_log_replica_votes_grants_but_never_leads_applies_or_reads() -> None:
    lr = rep("l", LOGGY)
    assert not lr.has_btree
    assert lr.phase1a(3, 0) == []
    assert lr.phase1b(Phase1aMsg(1, "a"))  # it votes in phase 1
    assert lr.phase2b(Phase2aMsg(1, 1, put("w", 1), "a"))  # and phase 2
    lr.receive_commit(CommitMsg(1, 1, "a"))
    assert lr.apply() == [] and lr.applied == 0
    assert lr.lease_grant(LeaseMsg(1, 0, "a"))
    assert lr.eventual_read(K, "q") == [Reply("q", NotStorage())]


def test_a_non_member_promises_and_grants_nothing_and_accepts_once_joining() -> None:
    x = rep("d")
    assert x.phase1b(Phase1aMsg(1, "a")) == []
    assert x.lease_grant(LeaseMsg(1, 0, "a")) == []
    assert x.phase1a(5, 0) == []
    assert x.phase2b(Phase2aMsg(1, 1, NOOP, "a")) == []  # nobody proposed adding it
    # The 2a adding it arrives ahead of slot 1 (it waits in the reorder buffer), but it
    # tells d that ballot 1's leader is adding it: d now accepts ballot 1's proposals.
    x.observe_2a(Phase2aMsg(1, 2, ADD_D_LOG, "a"))
    assert x.phase2b(Phase2aMsg(2, 1, NOOP, "c")) == []  # not in ballot 2
    assert x.phase2b(Phase2aMsg(1, 1, NOOP, "a"))
    assert not x.is_member()
    assert x.phase2b(Phase2aMsg(1, 2, ADD_D_LOG, "a"))
    assert x.is_member() and x.kind() == "log"


# --- snapshots ---------------------------------------------------------------------


def test_install_snapshot_then_apply_the_log_tail() -> None:
    src = lead()
    for i in (1, 2):
        src.client_write(put(f"w{i}", i), 0)
    commit_next(src, 0)
    while src.apply():
        pass
    snap = src.take_snapshot()
    assert snap is not None and snap.upto == 2
    lr = rep("l", {**LOGGY, "a": "storage"})
    for s in (1, 2, 3):
        lr.phase2b(Phase2aMsg(1, s, put(f"w{s}", s), "a"))
        lr.receive_commit(CommitMsg(1, s, "a"))
    assert rep("b").install_snapshot(snap) == []  # it has a B-tree already
    assert lr.install_snapshot(snap) == [Persist("btree"), Persist("applied")]
    assert lr.has_btree and lr.applied == 2 and lr.results == src.results
    assert lr.events[-1].args == {"x": "l", "src": "a", "upto": 2}
    assert lr.apply() and lr.applied == 3  # the WAL tail it already held
    assert lr.install_snapshot(snap) == []  # once only


def test_a_snapshot_older_than_the_checkpoint_is_refused() -> None:
    lr = rep("l", LOGGY)
    assert lr.seed(5, tuple(sorted(LOGGY.items())), ()) == 0
    src = rep("a", LOGGY)
    snap = src.take_snapshot()
    assert snap is not None and snap.upto == 0
    assert lr.install_snapshot(snap) == []


# --- checkpoints -------------------------------------------------------------------


def test_checkpoint_truncates_committed_applied_slots_and_keeps_the_view() -> None:
    f = rep("b")
    cmds = [put("w1", 1), ADD_D_LOG, put("w2", 2), put("w3", 3)]
    for s, c in enumerate(cmds, 1):
        f.phase2b(Phase2aMsg(1, s, c, "a"))
        f.receive_commit(CommitMsg(1, s, "a"))
    assert f.checkpoint(2) == 0  # not applied yet
    while f.apply():
        pass
    assert f.checkpoint(3) == 3
    assert f.base == 3 and sorted(f.log) == [4] and f.kind("d") == "log"
    assert f.base_config["d"] == "log" and f.base_named == {"d"}
    reply = f.phase1b(Phase1aMsg(2, "a"))[-1]
    assert reply.msg == Phase1bMsg(2, "b", "a", (Entry(1, put("w3", 3)),), 0, 3,
                                   tuple(sorted({**MEMBERS, "d": "log"}.items())), ("d",))


def test_a_new_leader_skips_slots_up_to_the_highest_reported_checkpoint() -> None:
    cfg = tuple(sorted(MEMBERS.items()))
    r = rep("a")
    for s in (1, 2, 3):
        r.phase2b(Phase2aMsg(1, s, put(f"w{s}", s), "c"))
    r.phase1a(2, 0)
    r.receive_promise(Phase1bMsg(2, "b", "a", (Entry(1, put("w3", 3)),), 0, 2, cfg, ()))
    assert r.become_leader(2, {"a", "b"}, 0)
    assert r.proposals_base == 2 and r.proposals == [put("w3", 3)]
    assert r.read_barrier == 3 and r.committed_upto == 2
    r.phase2a(2, 3)
    # Its own entries of slots 1..2 are committed: it applies them.
    assert r.apply() and r.apply() and r.applied == 2
    assert r.apply() == []  # slot 3 is not committed yet


def test_the_quorum_is_one_of_the_committed_configuration_too() -> None:
    # Slot 1 (add d) is committed and a knows it; slot 2 (remove c) is only recovered.
    # Q must be a quorum of both {a, b, c, d} and {a, b, d} (spec ElectionConfigs): a
    # and b are a majority of the latest configuration, but not of the committed one.
    r = rep("a")
    r.phase2b(Phase2aMsg(1, 1, ADD_D_LOG, "b"))
    r.receive_commit(CommitMsg(1, 1, "b"))
    assert r.apply() and r.known_prefix() == 1
    r.phase1a(2, 0)
    r.receive_promise(Phase1bMsg(2, "b", "a", (Entry(1, ADD_D_LOG),
                                               Entry(1, Change("remove", "c"))), 0))
    assert r.first_quorum() is None
    r.receive_promise(Phase1bMsg(2, "c", "a", (Entry(1, ADD_D_LOG),), 0))
    assert r.first_quorum() == {"a", "b", "c"}
    assert r.become_leader(2, {"a", "b", "c"}, 0)
    assert r.leader_view == {**MEMBERS, "c": "none", "d": "log"}
