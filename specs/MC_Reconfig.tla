----------------------------- MODULE MC_Reconfig -----------------------------
(***************************************************************************)
(* Bounds Replication's membership change for TLC: three storage replicas *)
(* and one spare incarnation r4 (or r4 already a log replica), change      *)
(* commands listed in Ops, and the seeded bugs of issue 9.  The hooks of   *)
(* MC_Replication (EarlyAck, NoRecovery, ...) stay available.              *)
(***************************************************************************)
EXTENDS MC_Replication

CONSTANT r4

RCReplicas == {r1, r2, r3, r4}

\* r1..r3 storage replicas, r4 a spare node (a fresh incarnation).
RCInitSpare == [r \in RCReplicas |-> IF r = r4 THEN "none" ELSE "storage"]
\* r1..r3 storage replicas, r4 a log replica (a group already healing).
RCInitLog == [r \in RCReplicas |-> IF r = r4 THEN "log" ELSE "storage"]

Put      == [op |-> "put", key |-> "k", val |-> 1, expect |-> Absent]
AddLog4  == [op |-> "add", who |-> r4, kind |-> "log"]
Promote4 == [op |-> "promote", who |-> r4]
Remove1  == [op |-> "remove", who |-> r1]
Remove3  == [op |-> "remove", who |-> r3]
Remove4  == [op |-> "remove", who |-> r4]
Readd3   == [op |-> "add", who |-> r3, kind |-> "log"]
Put2     == [op |-> "put", key |-> "k", val |-> 2, expect |-> Absent]

\* A write, then log replica r4 is promoted once it has a snapshot.
RCOpsPromote == << Put, Promote4 >>
\* The whole healing sequence of reference/healing.py: a write; storage
\* replica r3 has failed, so spare r4 joins as a log replica (full strength
\* again), r3 is removed, and r4 is promoted once it has a B-tree snapshot.
RCOpsHealFull == << Put, AddLog4, Remove3, Promote4 >>
\* Two changes that, both in flight, leave the majorities of the old and
\* the new configuration disjoint: {r1,r2,r3} -> +r4 -> -r1.
RCOpsTwoChanges == << Put, AddLog4, Remove1 >>
\* Two competing removals from a 4-member group (ReconfigCompeting, and the
\* equivalent mutant ChangeBeforeOwnCommit on it).
RCOpsCompeting == << Put, Remove3, Remove4 >>
\* A write, then r3 leaves a group with log replica r4.
RCOpsRemove == << Put, Remove3 >>
\* Remove r3, then add it back under the same identity (which the spec
\* refuses: an id names one incarnation).  Two writes, so that a second
\* leader can commit one of its own ballot before it changes anything,
\* while the first leader's proposal of the other is still in flight.
RCOpsReadd == << Put, Put2, Remove3, Readd3 >>
\* Its client and operator: Put2 once Put is proposed, then each change once the
\* command before it is acknowledged.
ReaddClient(c) ==
    IF c = 2 THEN \E m \in msgs : m.type = "2a" /\ m.cmd = 1
    ELSE c > 2 => c - 1 \in acked

\* Election plans (MayStartBallot, PlanR1R2 and PlanR1R2R1 of MC_Replication.tla):
\* scenarios whose bug needs a particular sequence of leaders, which a full search
\* could not reach in minutes.

\* Symmetry: r1, r2 and r3 play the same part when the changes name only r4;
\* r1 and r2 when they name r3 and r4 only.
RCSymmetry3 == Permutations({r1, r2, r3})
RCSymmetry == Permutations({r1, r2})
\* r2 and r3, when a change names r1 (RCOpsTwoChanges).
RCSymmetry23 == Permutations({r2, r3})

\* Reachability probes for the simulation runs (an invariant that fails once a
\* model reaches the state it names, to show a run got there); run by hand, as
\* in the issue-9 note, not by check-models.
NotPromotedYet == \A r \in Replicas : ~(IsStorage(r) /\ ~InitConfig[r] = "storage")
NotJoinedYet == \A r \in Replicas : InitConfig[r] = "none" => ~IsMember(r)
NotRemovedYet == \A r \in Replicas : InitConfig[r] = "storage" => IsMember(r)

(***************************************************************************)
(* Seeded bugs of membership change.                                      *)
(***************************************************************************)
\* TwoChangesInFlight: a leader proposes a change while another is pending.
AnyChangePending(r) == TRUE

\* ChangeBeforeOwnCommit: a new leader proposes a change before committing
\* anything in its own ballot (the bug Ongaro reported for Raft in 2015).
NoOwnCommitNeeded(r) == TRUE

\* ReaddOldIncarnation: a removed identity may be added again, and comes back
\* with an empty disk (a reprovisioned node reusing its old name).
FreshIfNotMember(r, x) == View(r)[x] = "none"
EmptyBallot(x)  == 0
EmptyLog(x)     == [s \in Slots |-> EmptyEntry]
EmptyGranted(x) == 0

\* RemovedVoteCounts: votes of replicas the configuration removed still count.
CountAllVotes(C, S) == S

\* LogReplicaLeads: a log replica (with or without a B-tree) may lead.
AnyMemberLeads(k, tree) == k # "none"

\* LogReplicaServes: a log replica that holds a snapshot serves eventual reads.
TreeServes(r) == hasTree[r]

\* SnapshotMissesSlot: the snapshot copied to a new storage replica misses
\* the last slot it covers (a no-op in its place, as if the copy
\* were cut at the commit index before the B-tree caught up).
SnapshotWithHole(src, n) ==
    IF n = 0 THEN << >>
    ELSE [SubSeq(applied[src], 1, n) EXCEPT ![n] = NoOp]

\* RaftStyleElection: promises are counted against the recovered log's latest
\* configuration only, as Raft does (Raft is saved by its vote restriction).
LatestConfigOnly(r, rec) == {CfgOf(rec)}
=============================================================================
