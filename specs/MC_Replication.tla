--------------------------- MODULE MC_Replication ---------------------------
(***************************************************************************)
(* Bounds Replication for TLC.  The .cfg files name the constants; this   *)
(* module holds the values a .cfg cannot write (functions, records), the  *)
(* symmetry set, the bounds, and the seeded-bug overrides the mutant       *)
(* .cfg files substitute for the base spec's hooks.                       *)
(***************************************************************************)
EXTENDS Replication

CONSTANTS r1, r2, r3

MCReplicas == {r1, r2, r3}
MCInitConfig == [r \in MCReplicas |-> "storage"]

\* Client writes over one key: a put, a version-checked conditional put
\* and a delete, so replayed or reordered commands change the outcome.
MCOpsPutCput == << [op |-> "put", key |-> "k", val |-> 1, expect |-> Absent],
                   [op |-> "cput", key |-> "k", val |-> 2, expect |-> 1] >>
MCOpsPut == << [op |-> "put", key |-> "k", val |-> 1, expect |-> Absent] >>
MCOpsNone == << >>
MCKeys == {"k"}

Symmetry == Permutations(MCReplicas)

(***************************************************************************)
(* Seeded bugs.  Each mutant .cfg replaces one hook of the base spec with  *)
(* one of these; the base spec itself is never copied.                    *)
(***************************************************************************)

\* EarlyAck: the leader commits and acknowledges once it alone persisted.
AckWithoutQuorum(C, S) == S # {}

\* ApplyUncommitted: a replica applies whatever its log holds.
AppliesAnything(r, s) == TRUE

\* NoPersist: promises and accepted entries are lost on restart.
LostBallot(r) == 0
LostLog(r) == [s \in Slots |-> EmptyEntry]

\* NoRecovery: a new leader ignores the accepted values it was sent.
RecoverNothing(r, b, Q) == << >>

\* RenewOnlyHeld (liveness): the leader only extends a lease it already
\* holds, so it never acquires its first one.
RenewOnlyHeld(r) == LeaseLeft(r) > 0 /\ LeaseLeft(r) <= RenewAhead

\* NoLeaseWait: a new leader serves as soon as it holds its own lease.
NoWait == 0

\* (NoPersist, continued) lease grants are forgotten too.
LostGranted(r) == 0

\* RecoverLowestBallot: a new leader recovers each slot's value from the
\* LOWEST ballot that any voter accepted there, instead of the highest.  With
\* two ballots it behaves exactly like the correct spec (a new leader's own
\* ballot is the only higher one); it takes three to go wrong.
RecoverLowest(r, b, Q) ==
    LET rep  == Reports(r, b, Q)
        used == {s \in Slots : \E l \in rep : l[s].bal > 0}
        top  == IF used = {} THEN 0 ELSE Max(used)
        worst(s) == CHOOSE e \in {l[s] : l \in {l \in rep : l[s].bal > 0}} :
                        \A l \in rep : l[s].bal > 0 => e.bal <= l[s].bal
    IN [s \in 1..top |-> IF \E l \in rep : l[s].bal > 0 THEN worst(s).cmd ELSE NoOp]

\* SkipOneMore (with SkipApplied on): the checkpoint point off by one, so a
\* replica also skips the first slot it has not applied.  A new leader then
\* owes that slot nothing; it still cannot apply past it, so reads wait and
\* safety holds (an equivalent mutant: it breaks progress only).
SkipOneMore(r) == Len(applied[r]) + 1

(***************************************************************************)
(* Three ballots without crashes: competing leaders are deposed by higher *)
(* ballots rather than by crashing, which keeps a three-ballot search      *)
(* small enough for the standard set.                                     *)
(***************************************************************************)
NoCrashSpec == Init /\ [][ProtocolNext \/ NextTick]_vars


(***************************************************************************)
(* Liveness under a stable connected quorum.  No replica crashes and no    *)
(* link fails, and the network is synchronous for the period: every       *)
(* message that can be handled is handled before real time advances.      *)
(* Elections are started by someone while no leader exists (weak fairness *)
(* on Phase1a; ballots are bounded, so the last election stands).         *)
(***************************************************************************)
Handle(r) ==
    /\ \/ \E m \in msgs : Phase1b(r, m) \/ Phase2b(r, m) \/ LeaseGrant(r, m)
       \/ \E b \in Ballots, Q \in SUBSET Replicas : BecomeLeader(r, b, Q)
       \/ \E b \in Ballots, s \in Slots : Phase2a(r, b, s) \/ Commit(r, b, s)
       \/ Apply(r)
    /\ GhostStep(FALSE)
SyncTick == NextTick /\ ~ENABLED <<\E r \in Replicas : Handle(r)>>_vars

LiveNext == ProtocolNext \/ SyncTick

LiveSpec ==
    /\ Init /\ [][LiveNext]_vars
    /\ WF_vars(SyncTick)
    /\ WF_vars(NextPhase1a)
    /\ \A r \in Replicas : WF_vars(Handle(r)) /\ WF_vars(LeaseRenew(r) /\ GhostStep(FALSE))

\* Eventually some leader holds a valid lease.
EventuallyLease == <>(\E r \in Replicas : HoldsLease(r))

(***************************************************************************)
(* Gray failures and lease handoff (issue 10).  Switches for the hooks of  *)
(* the base spec, and the seeded bugs.                                     *)
(***************************************************************************)
On == TRUE
TwoDownLinks == 2
\* Election plans (MayStartBallot): ballot b may be started only by the b-th
\* replica listed (MC_Reconfig.tla uses them too).
PlanR1R2(r, b) == r = << r1, r2 >>[b]
PlanR1R2R1(r, b) == r = << r1, r2, r1 >>[b]
\* Hand-offs by plan: r1 hands its lease to r2, which has a ballot left.
HandR1R2(r, s) == r = r1 /\ s = r2
\* The HandoffGap scenario's elections: r1 first, then r2 once handed the lease.
\* (With every step forced before time advances, r1 and r2 would otherwise start
\* their elections in the same round, and the higher ballot would always win.)
PlanHandoff(r, b) == (b = 1 /\ r = r1) \/ (b = 2 /\ r = r2 /\ HandedOff(r2))

\* NoPeerConfirm: a suspicion alone starts an election.
SuspicionAlone(r) == Suspecting(r)
\* VouchWithoutLease: a replica vouches for any leader whose requests it hears.
VouchAny(m) == TRUE
\* SkipWaitWithoutHandoff: a new leader skips the wait as if handed every lease.
HandedEverything(r) == MaxBallot
\* ServeAfterRelinquish: the relinquished lease still counts.
NeverRelinquished(r) == FALSE
\* RenewAfterRelinquish: a relinquished leader renews (and so re-arms) its lease.
RenewsAnyway(r) == TRUE
\* NoHandoffSkip: the successor waits out the handed-off lease anyway.
NoHandoffSkip(r) == 0

(***************************************************************************)
(* Liveness under gray failure: the links into r1 (the first leader by    *)
(* the plan) may fail and stay down: r1 goes deaf, so it loses its lease   *)
(* while the others still hear its requests.  Nothing else fails, and the *)
(* network is synchronous for the period (as LiveSpec): whatever can be   *)
(* handled, failure detection included, is handled before time advances. *)
(* If r1 is cut off from a quorum, someone else must lead.               *)
(***************************************************************************)
\* (r2's link first, then r3's: the order does not matter to r1's deafness.)
R1Deaf(from, to) == to = r1 /\ (from = r2 \/ <<r2, r1>> \in downLinks)
Off == FALSE
\* What replica r does before time advances: Handle(r), and failure detection's
\* answers, clearing and elections (a suspicion itself may wait: the election
\* timeout takes time).
Detect(r) ==
    /\ \/ \E m \in msgs : AnswerProbe(r, m)
       \/ \E b \in Ballots : Phase1a(r, b)
       \/ ClearSuspicion(r)
    /\ GhostStep(FALSE)
GrayHandle(r) == Handle(r) \/ Detect(r)
GraySyncTick == NextTick /\ ~ENABLED <<\E r \in Replicas : GrayHandle(r)>>_vars
GrayLiveNext == ProtocolNext \/ NextLinkDown \/ GraySyncTick
\* Fairness.  Time advances strongly fairly, and only once nothing is left to
\* handle (GraySyncTick), so every replica handles whatever it can within the
\* instant; weak fairness on handling, and separately on failure detection (so
\* that rounds of suspicion cannot starve a lease grant), rules out stopping
\* short.  A
\* follower that suspects, is told the leader is fine, and suspects again,
\* forever within one instant (a Zeno behaviour) would keep every lease alive:
\* time is enabled after each such round, so strong fairness makes it pass.
\* Suspicion (the election timeout) and renewal are not forced before time
\* advances; each is weakly fair.
GrayLiveSpec ==
    /\ Init /\ [][GrayLiveNext]_vars
    /\ SF_vars(GraySyncTick)
    /\ WF_vars(\E r \in Replicas : Handle(r))
    /\ WF_vars(\E r \in Replicas : Detect(r))
    /\ \A r \in Replicas : /\ WF_vars(Suspect(r) /\ GhostStep(FALSE))
                           /\ WF_vars(LeaseRenew(r) /\ GhostStep(FALSE))
\* Infinitely often some leader holds its lease with working links to and from a
\* quorum (a cut-off leader's lease does not count: it has to be replaced).
ConnectedLeader(r) ==
    /\ HoldsLease(r)
    /\ \E Q \in SUBSET Replicas :
          r \in Q /\ IsQuorumOf(View(r), Q) /\ \A q \in Q \ {r} : LinkOk(r, q) /\ LinkOk(q, r)
EventuallyConnectedLease == []<>(\E r \in Replicas : ConnectedLeader(r))

(***************************************************************************)
(* HandoffGap: no faults, one message delay per Tick (RoundNet), and every *)
(* step that can be taken is taken before time advances, except the        *)
(* hand-off itself, which may come at any time.                           *)
(***************************************************************************)
RoundForced ==
    \/ NextPhase1a \/ NextPhase1b \/ NextBecomeLeader \/ NextPhase2a \/ NextPhase2b
    \/ NextCommit \/ NextApply \/ NextLeaseRenew \/ NextLeaseGrant
    \/ NextSuspect \/ NextAnswerProbe \/ NextClearSuspicion
RoundTick == NextTick /\ ~ENABLED <<RoundForced>>_vars
RoundSpec == Init /\ [][ProtocolNext \/ RoundTick]_vars
=============================================================================
