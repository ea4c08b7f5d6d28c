"""The invariant monitor under membership change, log replicas, snapshots and kills.

Hand-built event sequences (typed events from reference/trace_events.py, decoded from
the JSON shape of a trace line): a correct healing sequence passes, and each
membership rule fails, on its bug, with the property it is documented to name.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from conformance.monitor import Monitor, quorums_intersect
from conformance.trace_loader import event_from_obj
from reference.actions import ACTIONS
from reference.trace import log_digest
from reference.trace_events import FORMAT_VERSION

DUR, MARGIN = 1_000_000, 9_000
SPARE = {"r1": "storage", "r2": "storage", "r3": "storage", "r4": "none"}
WITH_LOG = {"r1": "storage", "r2": "storage", "r3": "storage", "r4": "log"}
FOUR = {"r1": "storage", "r2": "storage", "r3": "storage", "r4": "storage"}
POST = {"bal": 0, "role": "follower", "top": 0, "applied": 0, "lease": False}
KEY = {"p": {"S": "k"}}


def write(rid: str) -> dict[str, Any]:
    return {"rid": rid, "op": {"op": "put"}}


def change(op: str, who: str, kind: str | None = None) -> dict[str, Any]:
    return {"op": op, "who": who} | ({"kind": kind} if kind else {})


def change_cmd(op: str, who: str, kind: str | None = None) -> dict[str, Any]:
    return {"rid": f"{op}-{who}", "change": change(op, who, kind)}

def first_quorum(mon: Monitor, r: str, voters: list[str]) -> list[str]:
    """r and the first voters that make a quorum of r's view: the minimal quorum the
    spec's BecomeLeader takes (a reference candidate leads on the first promises)."""
    members = mon.view_members(r)
    q = [r]
    for v in voters:
        if 2 * len(members.intersection(q)) > len(members):
            break
        q.append(v)
    return sorted(q)


class Run:
    """Hand-written events; real time (= every clock) advances 10us per event."""

    def __init__(self, kinds: dict[str, str]) -> None:
        self.mon = Monitor(kinds, DUR, MARGIN)
        self.seq: dict[str, int] = {}
        self.t = 0
        self.log: dict[str, dict[int, tuple[int, str, bytes]]] = {r: {} for r in kinds}

    def __call__(self, node: str, action: str, **args: Any) -> list[str]:
        self.t += 10
        self.seq[node] = self.seq.get(node, 0) + 1
        obj = {"action": action, "v": FORMAT_VERSION, "node": node, "replica": node,
               "seq": self.seq[node], "real": self.t, "clock": self.t,
               "kind": ACTIONS[action].kind, "args": args}
        if ACTIONS[action].post:
            obj["post"] = POST  # the monitor does not read it; trace validation does
        ev = event_from_obj(obj)
        return [f"{v.prop}: {v.message}" for v in self.mon.step(ev, f"t:{self.seq[node]}")]

    # --- steps made of several events, each returning every violation found ---------

    def elect(self, r: str, b: int, voters: list[str]) -> list[str]:
        out = self(r, "Phase1a", r=r, b=b)
        for v in voters:
            out += self(v, "Phase1b", a=v, m={"type": "1a", "bal": b, "from": r})
        return out + self(r, "BecomeLeader", r=r, b=b, Q=first_quorum(self.mon, r, voters))

    def lease(self, r: str, b: int, grantors: list[str]) -> list[str]:
        start = self.t + 10
        out = self(r, "LeaseRenew", r=r, start=start)
        for g in grantors:
            out += self(g, "LeaseGrant", a=g, m={"type": "lease", "bal": b, "start": start,
                                                "from": r, "held": False})
        return out

    def vote(self, b: int, s: int, cmd: dict[str, Any] | None, leader: str,
             voters: list[str]) -> list[str]:
        out = []
        for v in voters:
            out += self(v, "Phase2b", a=v, m={"type": "2a", "bal": b, "slot": s, "cmd": cmd,
                                              "from": leader})
            self._logged(v, b, s, cmd)
        return out

    def _logged(self, r: str, b: int, s: int, cmd: dict[str, Any] | None) -> None:
        if cmd is None:
            self.log[r][s] = (b, "", b"")
        else:
            body = cmd.get("op", cmd.get("change"))
            self.log[r][s] = (b, cmd["rid"], orjson.dumps(body, option=orjson.OPT_SORT_KEYS))

    def put(self, r: str, b: int, s: int, rid: str, voters: list[str],
            commit: bool = True) -> list[str]:
        out = self(r, "ClientWrite", r=r, c=write(rid), s=s)
        self._logged(r, b, s, write(rid))
        out += self.vote(b, s, write(rid), r, voters)
        return out + (self(r, "Commit", r=r, b=b, s=s) if commit else [])

    def change(self, r: str, b: int, s: int, op: str, who: str, voters: list[str],
               kind: str | None = None, commit: bool = True) -> list[str]:
        action = {"add": "AddMember", "remove": "RemoveMember", "promote": "PromoteMember"}[op]
        out = self(r, action, r=r, c=change(op, who, kind), s=s)
        self._logged(r, b, s, change_cmd(op, who, kind))
        out += self.vote(b, s, change_cmd(op, who, kind), r, voters)
        return out + (self(r, "Commit", r=r, b=b, s=s) if commit else [])

    def apply(self, r: str, s: int, cmd: dict[str, Any] | None) -> list[str]:
        return self(r, "Apply", r=r, s=s, c=cmd)

    def digest(self, r: str, above: int = 0) -> str:
        return log_digest((s, b, rid, op) for s, (b, rid, op) in sorted(self.log[r].items())
                          if s > above)


def props(found: list[str]) -> set[str]:
    return {f.split(":", 1)[0] for f in found}


def leading(kinds: dict[str, str] = SPARE, voters: tuple[str, ...] = ("r2",)) -> Run:
    """r1 leads ballot 1 with a lease and has committed (and applied) w1 at slot 1."""
    run = Run(kinds)
    assert run.elect("r1", 1, list(voters)) == []
    assert run.lease("r1", 1, list(voters)) == []
    assert run.put("r1", 1, 1, "w1", list(voters)) == []
    assert run.apply("r1", 1, write("w1")) == []
    return run


# --- the constructor --------------------------------------------------------------------


def test_constructor_takes_kinds_or_plain_ids() -> None:
    mon = Monitor(SPARE, DUR, MARGIN)
    assert mon.members == ["r1", "r2", "r3", "r4"]
    assert mon.chosen_members == {"r1", "r2", "r3"}
    assert not mon.r["r4"].tree and mon.r["r1"].tree
    plain = Monitor(["b", "a", "c"], DUR, MARGIN)
    assert plain.initial == {"a": "storage", "b": "storage", "c": "storage"}
    with pytest.raises(ValueError, match="kind must be one of"):
        Monitor({"r1": "witness"}, DUR, MARGIN)
    with pytest.raises(ValueError, match="needs members"):
        Monitor({"r1": "none"}, DUR, MARGIN)


def test_quorums_intersect() -> None:
    a, b, c, d, e = "abcde"
    assert quorums_intersect(frozenset({a, b, c}), frozenset({a, b, c, d}))
    assert quorums_intersect(frozenset({a, b, c, d}), frozenset({a, b, d}))
    assert not quorums_intersect(frozenset({a, b, c}), frozenset({a, b, d}))
    assert not quorums_intersect(frozenset({a, b, c}), frozenset({c, d, e}))
    assert quorums_intersect(frozenset({a, b, c, d, e}), frozenset({a, b, c, d}))


# --- correct sequences ------------------------------------------------------------------


def test_fast_healing_sequence_passes() -> None:
    """A log replica joins, installs a snapshot, is promoted; the dead member is killed
    and removed; a checkpoint, a restart after it, and a new leader of the new group."""
    run = leading(SPARE, ("r2", "r3"))
    assert run.change("r1", 1, 2, "add", "r4", ["r2"], kind="log", commit=False) == []
    # The joiner catches up from the leader's 2a messages, slot 1 first (no WAL holes).
    assert run.vote(1, 1, write("w1"), "r1", ["r4"]) == []
    assert run.vote(1, 2, change_cmd("add", "r4", "log"), "r1", ["r4"]) == []
    assert run("r1", "Commit", r="r1", b=1, s=2) == []
    assert run.mon.chosen_members == {"r1", "r2", "r3", "r4"}
    assert run.apply("r1", 2, change_cmd("add", "r4", "log")) == []
    assert run("r4", "InstallSnapshot", x="r4", src="r1", upto=2) == []
    assert run.mon.r["r4"].applied == ["w1", "add-r4"]
    assert run.change("r1", 1, 3, "promote", "r4", ["r2", "r4"]) == []
    assert run("r3", "Kill") == []
    assert run.change("r1", 1, 4, "remove", "r3", ["r2", "r4"]) == []
    assert run.mon.chosen_members == {"r1", "r2", "r4"}
    assert run.put("r1", 1, 5, "w2", ["r2", "r4"]) == []
    for s, cmd in [(3, change_cmd("promote", "r4")), (4, change_cmd("remove", "r3")),
                   (5, write("w2"))]:
        assert run.apply("r1", s, cmd) == []
        assert run.apply("r4", s, cmd) == []
    assert run("r4", "EventualRead", r="r4", k=KEY) == []
    assert run("r1", "StrongRead", r="r1", k=KEY) == []
    # r1 checkpoints its B-tree and truncates its WAL, crashes and recovers the rest.
    assert run("r1", "Checkpoint", upto=3, truncated=3) == []
    assert run("r1", "Crash", r="r1") == []
    assert run("r1", "Restart", ballot=1, granted=0, applied=5, log=5, wal="clean",
               truncated=0, digest=run.digest("r1", above=3)) == []
    # r4, now a storage replica with a B-tree, leads the new group {r1, r2, r4}.
    assert run.elect("r4", 2, ["r2"]) == []
    run.t += DUR + MARGIN  # r2 granted ballot 1's lease: r4 waits it out before it commits
    for s in range(2, 6):
        cmd = {2: change_cmd("add", "r4", "log"), 3: change_cmd("promote", "r4"),
               4: change_cmd("remove", "r3"), 5: write("w2")}[s]
        if s == 2:
            assert run("r4", "Phase2a", r="r4", b=2, s=1, c=write("w1")) == []
        assert run("r4", "Phase2a", r="r4", b=2, s=s, c=cmd) == []
    assert run.vote(2, 1, write("w1"), "r4", ["r2"]) == []
    assert run("r4", "Commit", r="r4", b=2, s=1) == []
    assert not run.mon.violations


def test_restart_after_a_seeded_checkpoint_checks_the_log_above_it() -> None:
    """A joining log replica starts its log at the leader's checkpoint (a seed); its
    restart reports the log above the checkpoint, which is what the monitor checks."""
    run = leading(SPARE, ("r2", "r3"))
    assert run.put("r1", 1, 2, "w2", ["r2", "r3"]) == []
    assert run.change("r1", 1, 3, "add", "r4", ["r2"], kind="log", commit=False) == []
    assert run("r4", "Checkpoint", upto=2, truncated=0) == []  # the seed
    assert run.mon.view("r4")["r4"] == "none"  # until it appends its addition
    assert run.vote(1, 3, change_cmd("add", "r4", "log"), "r1", ["r4"]) == []
    assert run("r1", "Commit", r="r1", b=1, s=3) == []
    assert run.mon.view("r4")["r4"] == "log"
    assert run.put("r1", 1, 4, "w3", ["r2", "r4"]) == []
    assert run("r4", "Crash", r="r4") == []
    assert run("r4", "Restart", ballot=1, granted=0, applied=0, log=4, wal="clean",
               truncated=0, digest=run.digest("r4", above=2)) == []
    found = run("r4", "Crash", r="r4") + run(
        "r4", "Restart", ballot=1, granted=0, applied=0, log=2, wal="clean", truncated=0,
        digest=run.digest("r4", above=4))
    assert props(found) == {"Durability"} and "(1, 0, 0, 2)" in found[0]


def test_a_vote_counts_once_a_later_configuration_of_its_ballot_makes_it_a_quorum() -> None:
    """ChosenTriples: a command is chosen when its voters are a quorum of the ballot's
    configuration through some proposed slot n >= s, not only through s."""
    run = leading(FOUR, ("r2", "r3"))
    assert run.put("r1", 1, 2, "w2", ["r2"], commit=False) == []
    assert 2 not in run.mon.chosen  # {r1, r2} is not a majority of four
    assert run.change("r1", 1, 3, "remove", "r4", [], commit=False) == []
    assert run.mon.chosen[2] == ("w2", 1)  # ... but is one of {r1, r2, r3}


# --- each rule, on its bug ----------------------------------------------------------------


def test_two_changes_in_flight() -> None:
    """Mutant TwoChangesInFlight: the rule, and the configurations it leaves (the chosen
    {r1, r2, r3} and the leader's {r1, r2, r4}) whose majorities are disjoint."""
    run = leading(SPARE, ("r2", "r3"))
    assert run.change("r1", 1, 2, "add", "r4", [], kind="log", commit=False) == []
    found = run.change("r1", 1, 3, "remove", "r3", [], commit=False)
    assert props(found) == {"ConfigSafety"}
    assert any("two changes in flight" in f for f in found)
    assert any("can both form quorums" in f for f in found)


def test_change_before_the_leader_committed_in_its_ballot() -> None:
    """Mutant ChangeBeforeOwnCommit (Ongaro's single-server change bug)."""
    run = Run(SPARE)
    run.elect("r1", 1, ["r2"])
    run.lease("r1", 1, ["r2"])
    found = run.change("r1", 1, 1, "add", "r4", [], kind="log", commit=False)
    assert props(found) == {"ConfigSafety"} and "before committing" in found[0]


def test_a_change_without_the_lease() -> None:
    run = leading()
    run.t += DUR
    found = run.change("r1", 1, 2, "add", "r4", [], kind="log", commit=False)
    assert props(found) == {"LeaseExclusivity"}


def test_a_removed_members_vote_counted_toward_a_commit() -> None:
    """Mutant RemovedVoteCounts: r4's vote no longer counts once r1's view removed it."""
    run = leading(FOUR, ("r2", "r3", "r4"))
    # r4's own vote for its removal (it votes no more once its log removed it: Phase2b).
    found = run.change("r1", 1, 2, "remove", "r4", ["r4"])
    assert props(found) == {"Durability"}
    assert "not a quorum of its view ['r1', 'r2', 'r3']" in found[0]


def test_invalid_changes_in_the_leaders_view() -> None:
    run = leading(WITH_LOG, ("r2", "r3"))
    found = run.change("r1", 1, 2, "add", "r2", [], kind="log", commit=False)
    assert props(found) == {"ConfigSafety"} and "already a storage member" in found[0]
    run = leading(WITH_LOG, ("r2", "r3"))
    assert props(run.change("r1", 1, 2, "remove", "r1", [], commit=False)) == {"ConfigSafety"}
    run = leading(SPARE, ("r2", "r3"))
    found = run.change("r1", 1, 2, "remove", "r4", [], commit=False)
    assert props(found) == {"ConfigSafety"} and "not a member" in found[0]
    run = leading(WITH_LOG, ("r2", "r3"))
    found = run.change("r1", 1, 2, "promote", "r2", [], commit=False)
    assert props(found) == {"ConfigSafety"} and "not a log replica" in found[0]


def test_promoting_a_log_replica_without_a_snapshot() -> None:
    run = leading(WITH_LOG, ("r2", "r3"))
    found = run.change("r1", 1, 2, "promote", "r4", ["r2", "r3"])
    assert props(found) == {"LogReplicaNeverServes"}
    assert "has not installed a B-tree snapshot" in found[0]


def test_readding_a_removed_incarnation() -> None:
    """Mutant ReaddOldIncarnation: a removed id comes back (with an empty disk)."""
    run = leading(SPARE, ("r2", "r3"))
    assert run.change("r1", 1, 2, "remove", "r3", ["r2"]) == []
    found = run.change("r1", 1, 3, "add", "r3", [], kind="log", commit=False)
    assert props(found) == {"Agreement"} and "old incarnation" in found[0]


def test_adding_a_spare_that_was_killed_before_it_ever_joined_is_not_a_readd() -> None:
    """The leader cannot know a spare died; adding that (fresh) id is useless, not unsafe.
    Re-adding an id that was a member is the old-incarnation bug (tested above)."""
    run = leading(SPARE, ("r2", "r3"))
    assert run("r4", "Kill") == []
    assert run.change("r1", 1, 2, "add", "r4", [], kind="log", commit=False) == []


def test_an_event_after_kill() -> None:
    run = leading(SPARE, ("r2", "r3"))
    assert run("r3", "Kill") == []
    found = run.put("r1", 1, 2, "w2", ["r3"], commit=False)
    assert props(found) == {"Agreement"} and "after it was killed" in found[0]


def test_a_log_replica_leading() -> None:
    """Mutant LogReplicaLeads: r4 is a log replica; it starts an election and leads."""
    run = Run(WITH_LOG)
    found = run.elect("r4", 1, ["r2", "r3"])
    assert props(found) == {"LogReplicaNeverLeads"} and len(found) == 2
    assert "starts an election while a log replica" in found[0]
    assert "leads ballot 1 while a log replica" in found[1]


def test_a_log_replica_serving_reads() -> None:
    """Mutant LogReplicaServes: a log replica holding a snapshot serves an eventual read."""
    run = leading(WITH_LOG, ("r2", "r3"))
    assert props(run("r4", "EventualRead", r="r4", k=KEY)) == {"LogReplicaNeverServes"}
    assert run("r4", "InstallSnapshot", x="r4", src="r1", upto=1) == []
    found = run("r4", "EventualRead", r="r4", k=KEY)
    assert props(found) == {"LogReplicaNeverServes"} and "a log replica in its view" in found[0]


def test_a_hole_in_an_acceptors_wal() -> None:
    """Phase2b's no-holes rule (paper 5.2): slot s of ballot b only after slot s-1 of b,
    or right after the checkpoint."""
    run = leading(SPARE, ("r2",))
    assert run.put("r1", 1, 2, "w2", ["r2"]) == []
    found = run.vote(1, 2, write("w2"), "r1", ["r3"])
    assert props(found) == {"Durability"} and "a hole in its WAL" in found[0]


def test_a_log_replica_applying() -> None:
    run = leading(WITH_LOG, ("r2", "r4"))
    found = run.apply("r4", 1, write("w1"))
    assert props(found) == {"StateMachineSafety"} and "without a B-tree" in found[0]


def test_a_snapshot_that_misses_a_committed_slot() -> None:
    """Mutant SnapshotMissesSlot: the copy claims a slot its source had not applied."""
    run = leading(SPARE, ("r2", "r3"))
    assert run.put("r1", 1, 2, "w2", ["r2", "r3"]) == []
    # r4 catches up once the add is proposed (the spec's Joining), slot 1 first.
    assert run.change("r1", 1, 3, "add", "r4", ["r2"], kind="log", commit=False) == []
    assert run.vote(1, 1, write("w1"), "r1", ["r4"]) == []
    assert run.vote(1, 2, write("w2"), "r1", ["r4"]) == []
    assert run.vote(1, 3, change_cmd("add", "r4", "log"), "r1", ["r4"]) == []
    assert run("r1", "Commit", r="r1", b=1, s=3) == []
    found = run("r4", "InstallSnapshot", x="r4", src="r1", upto=2)
    assert props(found) == {"AckedSurvivesReplacement"} and "'w2' (slot 2)" in found[0]
    # r4's B-tree now lacks w2 at slot 2 (it goes on applying the log after it).
    assert run.apply("r4", 3, change_cmd("add", "r4", "log")) == []
    assert run.mon.r["r4"].applied[1] != "w2"


def test_a_snapshot_behind_the_seeded_log() -> None:
    """The joiner's log starts after the checkpoint at 2; a snapshot up to 1 leaves slot
    2 (an acknowledged write) in neither, and the next apply skips it."""
    run = leading(SPARE, ("r2", "r3"))
    assert run.put("r1", 1, 2, "w2", ["r2", "r3"]) == []
    assert run.apply("r1", 2, write("w2")) == []
    assert run.change("r1", 1, 3, "add", "r4", ["r2"], kind="log", commit=False) == []
    assert run("r4", "Checkpoint", upto=2, truncated=0) == []  # the seed
    assert run.vote(1, 3, change_cmd("add", "r4", "log"), "r1", ["r4"]) == []
    assert run("r1", "Commit", r="r1", b=1, s=3) == []
    found = run("r4", "InstallSnapshot", x="r4", src="r1", upto=1)
    assert props(found) == {"AckedSurvivesReplacement"}
    found = run.apply("r4", 3, change_cmd("add", "r4", "log"))
    assert props(found) == {"StateMachineSafety"} and "applies slot 3 after 1" in found[0]


def test_snapshot_preconditions() -> None:
    run = leading(WITH_LOG, ("r2", "r3"))
    found = run("r2", "InstallSnapshot", x="r2", src="r1", upto=1)
    assert props(found) == {"StateMachineSafety"} and "over the B-tree" in found[0]
    found = run("r4", "InstallSnapshot", x="r4", src="r4", upto=0)
    assert props(found) == {"StateMachineSafety"} and "no B-tree" in found[0]


def test_an_election_quorum_of_the_latest_configuration_only() -> None:
    """Mutant RaftStyleElection: {r1, r2} is a quorum of the recovered log's latest
    configuration (r4 removed at slot 2, not chosen) but not of the chosen one."""
    run = leading(FOUR, ("r2", "r3"))
    assert run.change("r1", 1, 2, "remove", "r4", [], commit=False) == []
    assert run("r1", "Crash", r="r1") == []
    found = run.elect("r2", 2, ["r1"])
    assert props(found) == {"Agreement"}
    assert "not a quorum of the recovered configuration ['r1', 'r2', 'r3', 'r4']" in found[0]


def test_an_election_on_a_promise_never_made() -> None:
    run = Run(SPARE)
    run("r1", "Phase1a", r="r1", b=1)
    found = run("r1", "BecomeLeader", r="r1", b=1, Q=["r1", "r2"])
    assert props(found) == {"Agreement"} and "did not promise" in found[0]


def test_a_new_leader_that_did_not_recover_an_acknowledged_write() -> None:
    """Durability: the election quorum misses every copy of w2 (a configuration bug let
    {r3, r4} elect while the chosen configuration is {r1, r2, r3})."""
    run = leading(SPARE, ("r2",))
    assert run.put("r1", 1, 2, "w2", ["r2"]) == []
    found = run.elect("r3", 2, ["r4"])
    assert "Durability" in props(found)
    assert any("acknowledged write 'w1' was chosen" in f for f in found)


def test_checkpoints_only_a_chosen_applied_prefix() -> None:
    run = leading(SPARE, ("r2", "r3"))
    assert run.put("r1", 1, 2, "w2", ["r2", "r3"]) == []
    found = run("r1", "Checkpoint", upto=2, truncated=2)
    assert props(found) == {"Durability"} and "applied only 1" in found[0]
    found = run("r2", "Checkpoint", upto=3, truncated=2)
    assert props(found) == {"Durability"}
    assert any("only slots 1..2 are chosen" in f for f in found)


def test_config_safety_between_a_stale_leader_and_the_chosen_configuration() -> None:
    """The ConfigSafety invariant on its own: r1 still leads ballot 1 in {r1, r2, r3},
    and can decide (no one promised higher), while the chosen configuration moved to
    {r3, r4, r5} (a leader of another ballot that skipped the rules)."""
    kinds = SPARE | {"r5": "none"}
    run = Run(kinds)
    run.elect("r1", 1, ["r2"])
    # Ballot 2's proposals, seen only through its acceptors' votes: add r4, add r5,
    # remove r1, remove r2, each chosen by the configuration it creates.
    for s, (op, who, kind) in enumerate([("add", "r4", "log"), ("add", "r5", "log"),
                                         ("remove", "r1", None), ("remove", "r2", None)], 1):
        run.vote(2, s, change_cmd(op, who, kind), "r3", ["r3", "r4", "r5"])
    assert run.mon.chosen_members == {"r3", "r4", "r5"}
    assert run.mon.r["r1"].ballot == 1 and run.mon.can_decide("r1")
    assert any(v.prop == "ConfigSafety" and "can both form quorums" in v.message
               for v in run.mon.violations)


def test_a_change_that_leaves_storage_replicas_a_minority() -> None:
    """KeepsStorageMajority: {r1, r2, log r4} minus r2 would leave one B-tree of two
    members, and slots below its checkpoint in no other replica."""
    run = leading(WITH_LOG, ("r2", "r3"))
    assert run.change("r1", 1, 2, "remove", "r3", ["r2"]) == []
    found = run.change("r1", 1, 3, "remove", "r2", [], commit=False)
    assert props(found) == {"AckedSurvivesReplacement"}
    assert "leaves 1 storage replicas of 2 members" in found[0]
