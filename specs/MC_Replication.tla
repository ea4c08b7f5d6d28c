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
MCKeys == {"k"}

Symmetry == Permutations(MCReplicas)

(***************************************************************************)
(* Seeded bugs.  Each mutant .cfg replaces one hook of the base spec with  *)
(* one of these; the base spec itself is never copied.                    *)
(***************************************************************************)

\* EarlyAck: the leader commits and acknowledges once it alone persisted.
AckWithoutQuorum(S) == S # {}

\* ApplyUncommitted: a replica applies whatever its log holds.
AppliesAnything(r, s) == TRUE

\* NoPersist: promises and accepted entries are lost on restart.
LostBallot(r) == 0
LostLog(r) == [s \in Slots |-> EmptyEntry]

\* NoRecovery: a new leader ignores the accepted values it was sent.
RecoverNothing(r, b, Q) == << >>

\* NoLeaseWait: a new leader serves as soon as it holds its own lease.
NoWait == 0

\* (NoPersist, continued) lease grants are forgotten too.
LostGranted(r) == 0


=============================================================================
