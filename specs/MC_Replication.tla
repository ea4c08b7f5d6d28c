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

(***************************************************************************)
(* Three ballots without crashes: competing leaders are deposed by higher *)
(* ballots rather than by crashing, which keeps a three-ballot search      *)
(* small enough for the standard set.                                     *)
(***************************************************************************)
NoCrashSpec == Init /\ [][ProtocolNext \/ Tick]_vars


(***************************************************************************)
(* Liveness under a stable connected quorum.  No replica crashes and no    *)
(* link fails, and the network is synchronous for the period: every       *)
(* message that can be handled is handled before real time advances.      *)
(* Elections are started by someone while no leader exists (weak fairness *)
(* on Phase1a; ballots are bounded, so the last election stands).         *)
(***************************************************************************)
Handle(r) ==
    \/ \E m \in msgs : Phase1b(r, m) \/ Phase2b(r, m) \/ LeaseGrant(r, m)
    \/ \E b \in Ballots, Q \in SUBSET Replicas : BecomeLeader(r, b, Q)
    \/ \E b \in Ballots, s \in Slots : Phase2a(r, b, s) \/ Commit(r, b, s)
    \/ Apply(r)

SyncTick == Tick /\ ~ENABLED <<\E r \in Replicas : Handle(r)>>_vars

LiveNext == ProtocolNext \/ SyncTick

LiveSpec ==
    /\ Init /\ [][LiveNext]_vars
    /\ WF_vars(SyncTick)
    /\ WF_vars(\E r \in Replicas, b \in Ballots : Phase1a(r, b))
    /\ \A r \in Replicas : WF_vars(Handle(r)) /\ WF_vars(LeaseRenew(r))

\* Eventually some leader holds a valid lease.
EventuallyLease == <>(\E r \in Replicas : HoldsLease(r))
=============================================================================
