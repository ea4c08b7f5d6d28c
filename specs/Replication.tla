----------------------------- MODULE Replication -----------------------------
(***************************************************************************)
(* One DynamoDB replication group (ATC'22 paper, sections 3, 5 and 6.1-6.2).*)
(*                                                                         *)
(* Replicas run Multi-Paxos.  Any storage replica may start an election    *)
(* with a higher ballot; phase 1 covers the whole log, so the new leader   *)
(* recovers, for every slot, the value accepted in the highest ballot and  *)
(* re-proposes it.  Phase 2 runs per slot; an entry is committed once a    *)
(* quorum has persisted it.  Storage replicas apply committed entries in   *)
(* slot order to a key-value state (the B-tree of the paper's Figure 2).   *)
(*                                                                         *)
(* The leader extends its leadership with a time-based lease granted by a  *)
(* quorum.  A newly elected leader serves no write and no strongly         *)
(* consistent read until every earlier leader's lease has surely expired.  *)
(*                                                                         *)
(* Every action is a named operator with explicit parameters, e.g.        *)
(* Phase2a(r, b, s).  The reference implementation's handlers and the      *)
(* trace events they emit carry the same names and arguments, which is    *)
(* what trace validation (conformance/) relies on.                         *)
(*                                                                         *)
(* Design choices the paper leaves open are marked "CHOICE:" below.        *)
(*                                                                         *)
(* Extension points, so the next steps add actions rather than rewrite:   *)
(*  - config maps every replica to a member kind; quorums range over all  *)
(*    members, so log replicas (acceptors without a B-tree) and membership *)
(*    change add actions that change config;                              *)
(*  - downLinks holds directed pairs; every receive checks LinkUp, so gray *)
(*    failures and peer-confirmed failure detection add actions that      *)
(*    change downLinks and guard Phase1a;                                 *)
(*  - the lease is a set of grants per request, so a voluntary handoff is *)
(*    a leader action that stops renewing and tells its successor.        *)
(***************************************************************************)
EXTENDS Naturals, Integers, Sequences, FiniteSets, TLC

CONSTANTS
    Replicas,       \* replica identities (model values)
    InitConfig,     \* [Replicas -> Kinds]: initial membership and member kinds
    MaxBallot,      \* ballots are 1..MaxBallot
    MaxSlot,        \* log slots are 1..MaxSlot
    Keys,           \* keys of the key-value state
    Ops,            \* sequence of client writes; a command is an index into Ops
    LeaseDur,       \* lease length, measured on the leader's own clock
    LeaseMargin,    \* extra wait of a new leader, covering clock divergence
    MaxDrift        \* width of the window around real time clocks stay in

(***************************************************************************)
(* CHOICE: membership is a variable mapping every replica to its kind.     *)
(* Only "storage" replicas exist in this spec's models, but quorums are     *)
(* computed over all members of any kind, so log replicas (acceptors that  *)
(* keep no B-tree, paper section 3) and membership change extend this spec  *)
(* by adding actions, not by rewriting it.  "none" marks a non-member.     *)
(***************************************************************************)
Kinds == {"storage", "log", "none"}

Ballots == 1..MaxBallot
Slots   == 1..MaxSlot
Cmds    == 1..Len(Ops)        \* client writes
NoOp    == 0                  \* fills log holes found by recovery
Absent  == -1                 \* the value of a key that holds no item

ASSUME
    /\ InitConfig \in [Replicas -> Kinds]
    /\ MaxBallot \in Nat /\ MaxSlot \in Nat
    /\ \A i \in DOMAIN Ops : Ops[i].op \in {"put", "delete", "cput"}
    /\ LeaseDur \in Nat /\ LeaseMargin \in Nat /\ MaxDrift \in Nat

VARIABLES
    offset,       \* offset[r]: how far r's clock is ahead of real time, 0..MaxDrift
    config,       \* config[r] \in Kinds: the membership
    downLinks,    \* set of directed pairs <<from, to>> whose link drops messages
    msgs,         \* every message ever sent (see "Network" below)
    \* durable per-replica state: survives Crash
    ballot,       \* highest ballot promised (phase 1) or accepted
    log,          \* log[r][s] = [bal |-> b, cmd |-> c], bal = 0 for an empty slot
    granted,      \* highest ballot whose lease this replica has granted
    applied,      \* applied[r]: commands applied to r's B-tree, in slot order
    \* volatile per-replica state: lost on Crash
    role,         \* "follower", "candidate" or "leader"
    proposals,    \* leader: proposals[r][s] is its command for slot s
    readBarrier,  \* leader: slots recovered at election; reads wait for them
    waitLeft,     \* leader: local time left before it may serve
    \* ghost state for the properties; no replica reads it
    acked,        \* client writes acknowledged to the client
    precede       \* <<w1, w2>>: w1 was acknowledged before w2 was invoked

durableVars  == <<ballot, log, granted, applied>>
volatileVars == <<role, proposals, readBarrier, waitLeft>>
ghostVars    == <<acked, precede>>
envVars      == <<offset, config, downLinks>>
vars == <<envVars, msgs, durableVars, volatileVars, ghostVars>>

-----------------------------------------------------------------------------
(* Membership and quorums *)

Members   == {r \in Replicas : config[r] # "none"}
Storage   == {r \in Replicas : config[r] = "storage"}
IsQuorum(S) == 2 * Cardinality(S \cap Members) > Cardinality(Members)
Quorums   == {Q \in SUBSET Members : IsQuorum(Q)}
MinimalQuorums == {Q \in Quorums : \A a \in Q : ~IsQuorum(Q \ {a})}

(***************************************************************************)
(* CHOICE: ballots are integers, each used by at most one replica.  A real *)
(* system makes them unique as <<counter, replica id>>; here Phase1a takes *)
(* only a ballot no replica has started yet, which is the same guarantee   *)
(* without an order on replica identities (so SYMMETRY stays sound).      *)
(***************************************************************************)

-----------------------------------------------------------------------------
(* The key-value state machine *)

ApplyCmd(kv, c) ==
    IF c = NoOp THEN kv
    ELSE LET o == Ops[c] IN
         CASE o.op = "put"    -> [kv EXCEPT ![o.key] = o.val]
           [] o.op = "delete" -> [kv EXCEPT ![o.key] = Absent]
           [] o.op = "cput"   -> IF kv[o.key] = o.expect
                                 THEN [kv EXCEPT ![o.key] = o.val] ELSE kv

RECURSIVE StateOf(_)
StateOf(seq) ==
    IF seq = << >> THEN [k \in Keys |-> Absent]
    ELSE ApplyCmd(StateOf(SubSeq(seq, 1, Len(seq) - 1)), seq[Len(seq)])

Range(f) == {f[x] : x \in DOMAIN f}
Max(S) == CHOOSE x \in S : \A y \in S : y <= x

-----------------------------------------------------------------------------
(***************************************************************************)
(* Network.  msgs is the set of all messages ever sent, and receiving a    *)
(* message does not remove it.  So a message may be received any number   *)
(* of times (duplication), in any order relative to others (reordering),  *)
(* or never (loss): every safety-relevant behaviour of a lossy, duplicating *)
(* and reordering network is a behaviour of this spec.  A receiver takes  *)
(* a message only over a link that is up.                                 *)
(***************************************************************************)
Send(m) == msgs' = msgs \cup {m}
SendAll(S) == msgs' = msgs \cup S
LinkUp(from, to) == <<from, to>> \notin downLinks
Receivable(m, r) == m \in msgs /\ m.from # r /\ LinkUp(m.from, r)

-----------------------------------------------------------------------------
(* Time *)

(***************************************************************************)
(* CHOICE: clocks are bounded in offset, not only in rate.  A clock may    *)
(* run fast, run slow or stop for a while, as long as it never runs        *)
(* backwards and stays within a window of width MaxDrift around real time.*)
(* Only the width matters for safety (a symmetric +/-D bound is a window  *)
(* of width 2D), so offset[r] = clock[r] - now ranges over 0..MaxDrift.   *)
(* An interval of length d measured on one clock lasts between            *)
(* d - MaxDrift and d + MaxDrift real time.                               *)
(*                                                                         *)
(* Time is relative.  No variable holds a clock reading: the wait of a new *)
(* leader is kept as the local time left (waitLeft), and a lease message  *)
(* carries the local time left on the lease it requests (left), both      *)
(* counted down on their owner's clock by Tick and clamped at 0 (once     *)
(* expired, how long ago no longer matters).  So real time is unbounded   *)
(* while the state space stays finite: every lease may expire and be       *)
(* renewed any number of times.                                           *)
(*                                                                         *)
(* An expired lease request or grant is dropped (a message loss).  Taking *)
(* one late could only raise a replica's ballot or granted record, which   *)
(* disables steps and never enables one, so no behaviour is lost.         *)
(***************************************************************************)
Sub0(x, d) == IF x > d THEN x - d ELSE 0

\* A lease request or grant, aged by the advance of its leader's clock.
LeaseOwner(m) == IF m.type = "lease" THEN m.from ELSE m.to
IsLeaseMsg(m) == m.type \in {"lease", "leaseAck"}
Age(m, adv) ==
    IF IsLeaseMsg(m) THEN [m EXCEPT !.left = Sub0(m.left, adv[LeaseOwner(m)])] ELSE m

\* One unit of real time passes.  Each clock advances by adv[r] = 1 + new
\* offset - old offset >= 0 units, whatever keeps it within the window: it
\* may jump ahead, but it never runs backwards (the offset falls by at most
\* one unit per unit of real time).
\* Clocks end at offsets off, each having advanced by adv[r]: waits and lease
\* messages count down, and expired lease messages are dropped.
ClocksAdvance(off, adv) ==
    /\ offset' = off
    /\ waitLeft' = [r \in Replicas |-> Sub0(waitLeft[r], adv[r])]
    /\ msgs' = {m \in {Age(m, adv) : m \in msgs} : ~IsLeaseMsg(m) \/ m.left > 0}
    /\ UNCHANGED <<config, downLinks, durableVars, role, proposals, readBarrier, ghostVars>>

Tick ==
    \E off \in [Replicas -> 0..MaxDrift] :
        LET adv == [r \in Replicas |-> 1 + off[r] - offset[r]] IN
        /\ \A r \in Replicas : adv[r] >= 0
        /\ ClocksAdvance(off, adv)

-----------------------------------------------------------------------------
(* Leases *)

(***************************************************************************)
(* CHOICE: the lease is the leader's.  The leader sends a lease request   *)
(* for LeaseDur of its own clock from the moment it sends it; once a      *)
(* quorum (itself included) has granted that request, the leader holds    *)
(* the lease until the LeaseDur has run out on its clock.  A replica      *)
(* grants only for a ballot >= its promise, so after a quorum promised a   *)
(* higher ballot the old leader cannot renew: every lease of an older     *)
(* leader started before the new leader was elected.  Hence the new       *)
(* leader waits LeaseDur + LeaseMargin on its own clock from its election.*)
(* Each of the two measured intervals (the old lease, the new leader's    *)
(* wait) may be off by MaxDrift in real time, so LeaseMargin must be at   *)
(* least 2*MaxDrift.  This is the paper's "the new leader won't serve any *)
(* writes or consistent reads until the previous leader's lease expires", *)
(* without making followers refuse votes, so elections are never delayed.*)
(***************************************************************************)
NewLeaderWait == LeaseDur + LeaseMargin

(***************************************************************************)
(* CHOICE (abstraction): the leader's lease is computed from the grants    *)
(* sent to it in its current leadership, as if it learned each grant the  *)
(* moment it was sent.  A real leader learns later, so it holds its lease *)
(* during a sub-interval of the one modelled here; every lease property  *)
(* checked on the longer interval holds for the shorter one.  A crash or  *)
(* step-down ends the leadership, and ballots are never led twice, so old *)
(* grants never revive a lease.                                           *)
(***************************************************************************)
\* The grants of r's lease requests in its current ballot.
LeaseAcks(r) == {m \in msgs : m.type = "leaseAck" /\ m.bal = ballot[r] /\ m.to = r}

\* Who granted r's request with x left, among the grants acks (scanning msgs once).
GrantorsIn(acks, r, x) == {r} \cup {m.from : m \in {m \in acks : m.left = x /\ LinkUp(m.from, r)}}

LeaseGrantors(r, x) == GrantorsIn(LeaseAcks(r), r, x)

\* Local time left on r's lease (0: it holds none).
LeaseLeft(r) ==
    LET acks  == LeaseAcks(r)
        held  == {x \in {m.left : m \in acks} : IsQuorum(GrantorsIn(acks, r, x))}
    IN IF role[r] = "leader" /\ held # {} THEN Max(held) ELSE 0

HoldsLease(r) ==
    /\ role[r] = "leader"
    /\ waitLeft[r] = 0
    /\ LeaseLeft(r) > 0

-----------------------------------------------------------------------------
(* Hooks that the seeded-bug mutants override from their .cfg files. *)

\* The durable state a replica finds after a crash.
DurableBallot(r)  == ballot[r]
DurableLog(r)     == log[r]
DurableGranted(r) == granted[r]

\* Which sets of persisted copies allow a leader to commit (and acknowledge).
CommitQuorum(S) == IsQuorum(S)

\* Whether replica r knows that slot s of its log is committed.
KnownCommitted(r, s) ==
    \E m \in msgs :
        /\ m.type = "commit" /\ m.slot = s /\ m.bal = log[r][s].bal
        /\ (m.from = r \/ LinkUp(m.from, r))

-----------------------------------------------------------------------------
(* Recovery: what a new leader re-proposes *)

EmptyEntry == [bal |-> 0, cmd |-> NoOp]

\* The logs reported by the voters: 1b messages, plus the candidate's own.
Reports(r, b, Q) ==
    {log[r]} \cup {m.log : m \in {m \in msgs : m.type = "1b" /\ m.bal = b
                                           /\ m.to = r /\ m.from \in Q}}

\* For every slot up to the highest one any voter has filled, the command
\* accepted in the highest ballot; holes become no-ops.
Recover(r, b, Q) ==
    LET rep  == Reports(r, b, Q)
        used == {s \in Slots : \E l \in rep : l[s].bal > 0}
        top  == IF used = {} THEN 0 ELSE Max(used)
        best(s) == CHOOSE e \in {l[s] : l \in rep} :
                       \A l \in rep : l[s].bal <= e.bal
    IN [s \in 1..top |-> best(s).cmd]

-----------------------------------------------------------------------------
(* Protocol actions *)

Init ==
    /\ offset \in [Replicas -> 0..MaxDrift]
    /\ config = InitConfig
    /\ downLinks = {}
    /\ msgs = {}
    /\ ballot = [r \in Replicas |-> 0]
    /\ log = [r \in Replicas |-> [s \in Slots |-> EmptyEntry]]
    /\ granted = [r \in Replicas |-> 0]
    /\ applied = [r \in Replicas |-> << >>]
    /\ role = [r \in Replicas |-> "follower"]
    /\ proposals = [r \in Replicas |-> << >>]
    /\ readBarrier = [r \in Replicas |-> 0]
    /\ waitLeft = [r \in Replicas |-> 0]
    /\ acked = {}
    /\ precede = {}

\* Volatile state of a replica that is not (or no longer) leading.
StepDown(r) ==
    /\ role' = [role EXCEPT ![r] = "follower"]
    /\ proposals' = [proposals EXCEPT ![r] = << >>]
    /\ readBarrier' = [readBarrier EXCEPT ![r] = 0]
    /\ waitLeft' = [waitLeft EXCEPT ![r] = 0]

\* Storage replica r starts an election with ballot b (paper 3: "any
\* replica can trigger a round of the election").  It promises b itself.
Phase1a(r, b) ==
    /\ config[r] = "storage"
    /\ role[r] # "leader"
    /\ b > ballot[r]
    /\ ~\E m \in msgs : m.type = "1a" /\ m.bal = b
    /\ ballot' = [ballot EXCEPT ![r] = b]
    /\ role' = [role EXCEPT ![r] = "candidate"]
    /\ Send([type |-> "1a", bal |-> b, from |-> r])
    /\ UNCHANGED <<envVars, log, granted, applied, proposals, readBarrier, waitLeft,
                   ghostVars>>

\* Acceptor a promises ballot m.bal and reports its whole log.
Phase1b(a, m) ==
    /\ Receivable(m, a) /\ m.type = "1a"
    /\ a \in Members
    /\ m.bal > ballot[a]
    /\ ballot' = [ballot EXCEPT ![a] = m.bal]
    /\ StepDown(a)
    /\ Send([type |-> "1b", bal |-> m.bal, from |-> a, to |-> m.from, log |-> log[a],
             granted |-> granted[a]])
    /\ UNCHANGED <<envVars, log, granted, applied, ghostVars>>

(***************************************************************************)
(* CHOICE: every replica durably records the highest ballot whose lease it *)
(* has granted, and reports it in its promise.  An earlier leader's lease  *)
(* needed a grant from a quorum, which intersects the new leader's voters; *)
(* so if no voter ever granted a lease, no earlier lease can be valid and  *)
(* the new leader need not wait (the first election of a group, or one     *)
(* after elections that never got a lease).  An old leader among the      *)
(* voters stepped down when it promised, which ended its lease.  The      *)
(* record must be durable: a replica that forgot a grant across a restart *)
(* would let a new leader serve beside a live lease.                      *)
(***************************************************************************)
VoterGranted(r, b, Q) ==
    {granted[r]} \cup {m.granted : m \in {m \in msgs : m.type = "1b" /\ m.bal = b
                                                /\ m.to = r /\ m.from \in Q}}

LeaseWaitNeeded(r, b, Q) == \E g \in VoterGranted(r, b, Q) : g > 0

\* Candidate r has promises for b from a quorum Q: it leads, recovers the
\* log and starts waiting out any earlier lease.  CHOICE: Q is a minimal
\* quorum, the first promises to arrive; a candidate leads as soon as it
\* can, so it never waits for further reports.
BecomeLeader(r, b, Q) ==
    /\ role[r] = "candidate" /\ ballot[r] = b
    /\ Q \in MinimalQuorums /\ r \in Q
    /\ \A a \in Q \ {r} : \E m \in msgs :
          m.type = "1b" /\ m.bal = b /\ m.from = a /\ m.to = r /\ LinkUp(a, r)
    /\ LET rec == Recover(r, b, Q) IN
         /\ proposals' = [proposals EXCEPT ![r] = rec]
         /\ readBarrier' = [readBarrier EXCEPT ![r] = Len(rec)]
    /\ role' = [role EXCEPT ![r] = "leader"]
    /\ waitLeft' = [waitLeft EXCEPT ![r] =
                        IF LeaseWaitNeeded(r, b, Q) THEN NewLeaderWait ELSE 0]
    /\ UNCHANGED <<envVars, msgs, durableVars, ghostVars>>

\* Leader r may serve clients: it holds its lease, which includes having
\* waited out every earlier leader's lease.
CanServe(r) == HoldsLease(r)

(***************************************************************************)
(* CHOICE (model bound): ClientMayInvoke says which writes clients may     *)
(* have in flight.  The base spec lets every write be concurrent; a model *)
(* may restrict it to one client issuing Ops in order, each write invoked *)
(* after the previous one was acknowledged (a closed-loop client), which  *)
(* keeps real-time order between writes while shrinking the state space. *)
(***************************************************************************)
ClientMayInvoke(c) == TRUE
SequentialClient(c) == \A w \in 1..(c - 1) : w \in acked

\* Proposal sent by leader r (ballot b) for slot s, and its own 2b vote: the
\* leader persists its proposal, which counts as its phase-2b vote.
Proposal(r, b, s, c) ==
    {[type |-> "2a", bal |-> b, slot |-> s, cmd |-> c, from |-> r],
     [type |-> "2b", bal |-> b, slot |-> s, cmd |-> c, from |-> r]}

Proposed(b, s) == \E m \in msgs : m.type = "2a" /\ m.bal = b /\ m.slot = s
Committed(b, s) == \E m \in msgs : m.type = "commit" /\ m.bal = b /\ m.slot = s

\* A client write c reaches leader r (paper 3: the leader "generates a
\* write-ahead log record and sends it to its peer replicas"): r appends it
\* at the next slot, persists it and sends phase 2a, once every earlier
\* slot of its ballot has been proposed.  A command that is in no 2a
\* message and no leader's proposals may be (re)submitted: that is the
\* client retrying after its leader failed before proposing it.
ClientWrite(r, c) ==
    /\ CanServe(r)
    /\ ClientMayInvoke(c)
    /\ Len(proposals[r]) < MaxSlot
    /\ \A q \in Replicas : c \notin Range(proposals[q])
    /\ ~\E m \in msgs : m.type = "2a" /\ m.cmd = c
    /\ LET b == ballot[r]
           s == Len(proposals[r]) + 1
       IN /\ \A t \in 1..(s - 1) : Proposed(b, t)
          /\ proposals' = [proposals EXCEPT ![r] = Append(@, c)]
          /\ log' = [log EXCEPT ![r][s] = [bal |-> b, cmd |-> c]]
          /\ SendAll(Proposal(r, b, s, c))
    /\ precede' = precede \cup {<<w, c>> : w \in acked}
    /\ UNCHANGED <<envVars, ballot, granted, applied, role, readBarrier, waitLeft,
                   acked>>

\* Leader r re-proposes the command it recovered for slot s in its ballot b,
\* in slot order.
Phase2a(r, b, s) ==
    /\ role[r] = "leader" /\ ballot[r] = b
    /\ s \in 1..readBarrier[r]
    /\ ~Proposed(b, s)
    /\ \A t \in 1..(s - 1) : Proposed(b, t)
    /\ LET c == proposals[r][s] IN
         /\ log' = [log EXCEPT ![r][s] = [bal |-> b, cmd |-> c]]
         /\ SendAll(Proposal(r, b, s, c))
    /\ UNCHANGED <<envVars, ballot, granted, applied, volatileVars, ghostVars>>

(***************************************************************************)
(* Acceptor a persists the proposal (2a message m) and votes for it.       *)
(* CHOICE: a write-ahead log has no holes (paper 5.2 checks "that the log *)
(* file doesn't have any holes in the sequence numbers"), so an acceptor  *)
(* takes slot s of ballot b only after slot s-1 of the same ballot; the   *)
(* leader proposes in slot order, so a reordered proposal just waits.    *)
(***************************************************************************)
Phase2b(a, m) ==
    /\ Receivable(m, a) /\ m.type = "2a"
    /\ a \in Members
    /\ m.bal >= ballot[a]
    /\ m.slot > 1 => log[a][m.slot - 1].bal = m.bal
    /\ ballot' = [ballot EXCEPT ![a] = m.bal]
    /\ log' = [log EXCEPT ![a][m.slot] = [bal |-> m.bal, cmd |-> m.cmd]]
    /\ IF m.bal > ballot[a] THEN StepDown(a) ELSE UNCHANGED volatileVars
    /\ Send([type |-> "2b", bal |-> m.bal, slot |-> m.slot, cmd |-> m.cmd, from |-> a])
    /\ UNCHANGED <<envVars, granted, applied, ghostVars>>

\* Replicas whose phase-2b vote for (b, s) leader r has received.
Votes2b(r, b, s) ==
    {r} \cup {m.from : m \in {m \in msgs : m.type = "2b" /\ m.bal = b /\ m.slot = s
                                       /\ LinkUp(m.from, r)}}

\* Leader r learns that slot s is committed in ballot b (in slot order, as
\* a commit index), tells the others
\* and acknowledges the write to its client (paper 3: "a write is
\* acknowledged to the application once a quorum of peers persists the log
\* record to their local write-ahead logs").
(* CHOICE: a new leader re-commits recovered entries only once earlier     *)
(* leases have surely expired, since acknowledging a recovered write is    *)
(* serving it: otherwise an old leader whose lease still runs could serve  *)
(* a strong read that misses a write already acknowledged (TLC found this).*)
Commit(r, b, s) ==
    /\ role[r] = "leader" /\ ballot[r] = b
    /\ waitLeft[r] = 0
    /\ log[r][s].bal = b
    /\ ~Committed(b, s)
    /\ \A t \in 1..(s - 1) : Committed(b, t)
    /\ CommitQuorum(Votes2b(r, b, s))
    /\ Send([type |-> "commit", bal |-> b, slot |-> s, from |-> r])
    /\ acked' = IF log[r][s].cmd = NoOp THEN acked ELSE acked \cup {log[r][s].cmd}
    /\ UNCHANGED <<envVars, durableVars, volatileVars, precede>>

\* Storage replica r applies its next slot to its B-tree once it knows the
\* slot is committed with the ballot of its own copy.
Apply(r) ==
    /\ config[r] = "storage"
    /\ Len(applied[r]) < MaxSlot
    /\ LET s == Len(applied[r]) + 1 IN
         /\ log[r][s].bal > 0
         /\ KnownCommitted(r, s)
         /\ applied' = [applied EXCEPT ![r] = Append(@, log[r][s].cmd)]
    /\ UNCHANGED <<envVars, msgs, ballot, log, granted, volatileVars, ghostVars>>

\* Leader r asks for a lease of LeaseDur from now on its clock.  CHOICE: it
\* renews when at most RenewAhead of its lease is left, only if the new
\* lease would outlast the wait after its election, and with one request
\* outstanding at a time: the previous one was granted by a quorum or has
\* expired.
RenewAhead == 1
RenewDue(r) == LeaseLeft(r) <= RenewAhead
LeaseRenew(r) ==
    /\ role[r] = "leader"
    /\ LeaseDur > waitLeft[r]
    /\ RenewDue(r)
    /\ ~\E m \in msgs : m.type = "lease" /\ m.from = r /\ m.bal = ballot[r]
                        /\ m.left > LeaseLeft(r)
    /\ Send([type |-> "lease", bal |-> ballot[r], left |-> LeaseDur, from |-> r])
    /\ UNCHANGED <<envVars, durableVars, volatileVars, ghostVars>>

\* Replica a grants the lease of lease request m: it has promised no higher
\* ballot, so this grant happens before any later leader's election.
LeaseGrant(a, m) ==
    /\ Receivable(m, a) /\ m.type = "lease"
    /\ a \in Members
    /\ m.bal >= ballot[a]
    /\ ballot' = [ballot EXCEPT ![a] = m.bal]
    /\ granted' = [granted EXCEPT ![a] = m.bal]
    /\ IF m.bal > ballot[a] THEN StepDown(a) ELSE UNCHANGED volatileVars
    /\ Send([type |-> "leaseAck", bal |-> m.bal, left |-> m.left, from |-> a, to |-> m.from])
    /\ UNCHANGED <<envVars, log, applied, ghostVars>>

\* Slots leader r has committed in its own ballot.
CommittedByLeader(r) ==
    {m.slot : m \in {m \in msgs : m.type = "commit" /\ m.bal = ballot[r] /\ m.from = r}}

(***************************************************************************)
(* CHOICE: a leader serves a strong read once its applied state covers    *)
(* every recovered slot and every slot it has committed, each of which it *)
(* committed in its own ballot.  This is the paper's "committed an entry  *)
(* in its own ballot" read barrier; phase 1 covers the whole log, so the  *)
(* leader knows exactly which slots to re-commit, and when recovery found *)
(* nothing there is nothing to wait for (no extra no-op is needed).       *)
(***************************************************************************)
ReadReady(r) ==
    /\ 1..readBarrier[r] \subseteq CommittedByLeader(r)
    /\ Len(applied[r]) >= readBarrier[r]
    /\ \A s \in CommittedByLeader(r) : s <= Len(applied[r])

CanStrongRead(r) == CanServe(r) /\ ReadReady(r)

\* A strongly consistent read of key k, served by the leader from its B-tree.
\* It changes nothing; Linearizability checks every value it can return.
StrongRead(r, k) ==
    /\ CanStrongRead(r) /\ k \in Keys
    /\ UNCHANGED vars

\* An eventually consistent read of key k from any storage replica's B-tree.
\* It changes nothing; EventualReadsCommitted checks every value it can return.
EventualRead(r, k) ==
    /\ config[r] = "storage" /\ k \in Keys
    /\ UNCHANGED vars

\* Replica r crashes and restarts: volatile state is lost, the write-ahead
\* log (ballot promise, accepted entries, lease grants) and the B-tree
\* survive.  The time it spends down is modelled by its taking no steps.
\* A follower has no volatile state to lose; a leader or a candidate
\* restarts as a follower (the NoPersist mutant makes every crash lose
\* durable state).  CHOICE: a crashed candidate becomes a follower, as a
\* restarted process does; it keeps its promise, so it can only start a
\* higher ballot later.
Crash(r) ==
    /\ r \in Members
    /\ ballot' = [ballot EXCEPT ![r] = DurableBallot(r)]
    /\ log' = [log EXCEPT ![r] = DurableLog(r)]
    /\ granted' = [granted EXCEPT ![r] = DurableGranted(r)]
    /\ StepDown(r)
    /\ UNCHANGED <<envVars, msgs, applied, ghostVars>>

-----------------------------------------------------------------------------

(***************************************************************************)
(* The next-state relation.  Every disjunct is a named operator, so TLC    *)
(* names each step of a counterexample itself (etcd's etcdraft.tla does   *)
(* the same): a disjunct whose quantifiers range over constant sets is    *)
(* split by TLC down to the action, which names the step (Phase1a, ...);  *)
(* one that quantifies over msgs is named after its Next<Action> operator.*)
(* conformance/ maps both to the action of reference/actions.py.          *)
(*                                                                         *)
(* StrongRead and EventualRead change no state, so Next leaves them out;  *)
(* the invariants check every value they could return in every state.    *)
(***************************************************************************)
NextPhase1a      == \E r \in Replicas, b \in Ballots : Phase1a(r, b)
NextPhase1b      == \E a \in Replicas : \E m \in msgs : Phase1b(a, m)
NextBecomeLeader == \E r \in Replicas, b \in Ballots, Q \in SUBSET Replicas :
                        BecomeLeader(r, b, Q)
NextClientWrite  == \E r \in Replicas, c \in Cmds : ClientWrite(r, c)
NextPhase2a      == \E r \in Replicas, b \in Ballots, s \in Slots : Phase2a(r, b, s)
NextPhase2b      == \E a \in Replicas : \E m \in msgs : Phase2b(a, m)
NextCommit       == \E r \in Replicas, b \in Ballots, s \in Slots : Commit(r, b, s)
NextApply        == \E r \in Replicas : Apply(r)
NextLeaseRenew   == \E r \in Replicas : LeaseRenew(r)
NextLeaseGrant   == \E a \in Replicas : \E m \in msgs : LeaseGrant(a, m)
NextCrash        == \E r \in Replicas : Crash(r)

ProtocolNext ==
    \/ NextPhase1a \/ NextPhase1b \/ NextBecomeLeader \/ NextClientWrite
    \/ NextPhase2a \/ NextPhase2b \/ NextCommit \/ NextApply
    \/ NextLeaseRenew \/ NextLeaseGrant

FaultNext == NextCrash

Next == ProtocolNext \/ FaultNext \/ Tick

Spec == Init /\ [][Next]_vars

-----------------------------------------------------------------------------
(***************************************************************************)
(* A view for TLC that leaves out dead messages, which no property reads. *)
(*  - A promise (1b) for ballot b is dead once b's candidate is no longer  *)
(*    a candidate for b: only BecomeLeader reads promises, and a ballot is *)
(*    never started twice.  States differing only in such promises have   *)
(*    the same future.                                                    *)
(*  - A lease request or grant is dead once its leader no longer leads its *)
(*    ballot.  Taking it late can still raise a replica's ballot or        *)
(*    granted record, but that only disables steps and never enables one, *)
(*    so every state TLC skips this way is a restriction of one it keeps.  *)
(*    Which of the two it keeps depends on exploration order, so distinct *)
(*    state counts are repeatable only with one TLC worker; the manifest  *)
(*    pins single-worker counts.                                          *)
(***************************************************************************)
Dead(m) ==
    \/ /\ m.type = "1b"
       /\ ~(role[m.to] = "candidate" /\ ballot[m.to] = m.bal)
    \/ /\ IsLeaseMsg(m)
       /\ ~(role[LeaseOwner(m)] = "leader" /\ ballot[LeaseOwner(m)] = m.bal)

LiveView ==
    <<offset, config, downLinks, {m \in msgs : ~Dead(m)}, durableVars, volatileVars, ghostVars>>

-----------------------------------------------------------------------------
(* Properties *)

Entries == [bal : 0..MaxBallot, cmd : {NoOp} \cup Cmds]

TypeOK ==
    /\ offset \in [Replicas -> 0..MaxDrift]
    /\ config \in [Replicas -> Kinds]
    /\ downLinks \subseteq Replicas \X Replicas
    /\ ballot \in [Replicas -> 0..MaxBallot]
    /\ log \in [Replicas -> [Slots -> Entries]]
    /\ granted \in [Replicas -> 0..MaxBallot]
    /\ \A r \in Replicas : Len(applied[r]) <= MaxSlot
                        /\ Range(applied[r]) \subseteq ({NoOp} \cup Cmds)
    /\ role \in [Replicas -> {"follower", "candidate", "leader"}]
    /\ \A r \in Replicas : Len(proposals[r]) <= MaxSlot
                        /\ Range(proposals[r]) \subseteq ({NoOp} \cup Cmds)
    /\ readBarrier \in [Replicas -> 0..MaxSlot]
    /\ waitLeft \in [Replicas -> 0..NewLeaderWait]
    /\ \A m \in msgs : m.type \in {"1a", "1b", "2a", "2b", "commit", "lease", "leaseAck"}
    /\ acked \subseteq Cmds
    /\ precede \subseteq Cmds \X Cmds

(***************************************************************************)
(* Chosen values.  Computed once from the 2b votes in msgs; the properties *)
(* below only look values up in these sets (TLC re-evaluates definitions  *)
(* per use, so scanning msgs once per property keeps checking fast).      *)
(***************************************************************************)
\* <<b, s, c>>: command c is chosen at slot s in ballot b (a quorum voted).  Each
\* voter's 2b is looked up in msgs by its record (a set lookup), rather than
\* scanning every vote once per candidate.
ChosenTriples ==
    LET cands == {<<m.bal, m.slot, m.cmd>> : m \in {m \in msgs : m.type = "2b"}}
    IN {t \in cands :
          IsQuorum({a \in Replicas : [type |-> "2b", bal |-> t[1], slot |-> t[2],
                                       cmd |-> t[3], from |-> a] \in msgs})}

\* <<s, c>>: command c is chosen at slot s.
PairsOf(triples) == {<<t[2], t[3]>> : t \in triples}
ChosenPairs == PairsOf(ChosenTriples)

(* Each property below is written over the chosen set it reads (an *In    *)
(* operator) and then named over ChosenTriples or ChosenPairs, so that    *)
(* trace validation can compute the chosen set once per state for all.   *)

\* No slot has two chosen values: no two chosen <<s, c>> share their slot.
AgreementIn(pairs) == Cardinality({p[1] : p \in pairs}) = Cardinality(pairs)
Agreement == AgreementIn(ChosenPairs)

\* An acknowledged write is chosen, is in a quorum's durable logs now (so no
\* crash has lost it), and is proposed by every leader of a ballot at least
\* the one it was chosen in (every later leader).
DurabilityIn(chosen) ==
    LET chosenCmds == {t[3] : t \in chosen}
        \* <<s, c>> held at slot s of some durable log
        held == UNION {{<<s, log[a][s].cmd>> : s \in {s \in Slots : log[a][s].bal > 0}} :
                       a \in Replicas}
        \* commands a quorum's durable logs hold at one slot
        quorumHeld == {p[2] : p \in {p \in held :
                          IsQuorum({a \in Replicas : log[a][p[1]].cmd = p[2]
                                                     /\ log[a][p[1]].bal > 0})}}
    IN
    \A c \in acked :
        /\ c \in chosenCmds
        /\ c \in quorumHeld
        /\ \A r \in Replicas :
              (role[r] = "leader" /\ \E t \in chosen : t[3] = c /\ t[1] <= ballot[r])
                  => c \in Range(proposals[r])
Durability == DurabilityIn(ChosenTriples)

IsPrefix(p, q) == Len(p) <= Len(q) /\ p = SubSeq(q, 1, Len(p))

\* Every entry of seq is the command chosen at its slot.
AllChosen(seq, chosen) == \A i \in DOMAIN seq : <<i, seq[i]>> \in chosen

\* Applied B-tree states are prefixes of one sequence of chosen commands.
StateMachineSafetyIn(chosen) ==
    /\ \A r1, r2 \in Storage : IsPrefix(applied[r1], applied[r2]) \/ IsPrefix(applied[r2], applied[r1])
    /\ \A r \in Storage : AllChosen(applied[r], chosen)
StateMachineSafety == StateMachineSafetyIn(ChosenPairs)

\* No two replicas believe they hold a valid lease at the same real time.
LeaseExclusivity ==
    \A r1, r2 \in Replicas : r1 # r2 => ~(HoldsLease(r1) /\ HoldsLease(r2))

(***************************************************************************)
(* Linearizability of acknowledged writes and strong reads, against the   *)
(* real-time order kept in ghost state.  Writes linearize in slot order,  *)
(* a strong read at the instant it is served.  So:                        *)
(*  - a write acknowledged before another write was invoked holds a lower *)
(*    slot (precede);                                                     *)
(*  - a strong read that could be served now sees every acknowledged      *)
(*    write and only chosen commands.  A leader applies only entries it   *)
(*    committed, and commits acknowledge, so such a read sees exactly the *)
(*    acknowledged writes; since acked only grows, successive reads are   *)
(*    monotonic without further ghost state.                              *)
(***************************************************************************)
Linearizability ==
    LET chosen == ChosenPairs IN
    /\ \A p \in precede : \A x, y \in chosen :
          (x[2] = p[1] /\ y[2] = p[2]) => x[1] < y[1]
    /\ \A r \in Replicas : CanStrongRead(r) =>
          /\ acked \subseteq Range(applied[r])
          /\ AllChosen(applied[r], chosen)

\* The longest prefix of slots that are all chosen, as a command sequence.
ChosenPrefix ==
    LET chosen == ChosenPairs
        n == Max({k \in 0..MaxSlot : \A s \in 1..k : \E p \in chosen : p[1] = s})
    IN [s \in 1..n |-> CHOOSE c \in {p[2] : p \in {p \in chosen : p[1] = s}} : TRUE]

\* Every value an eventual read can return was the key's value after some
\* prefix of the committed sequence: never a value from nowhere.
EventualReadsCommitted ==
    LET prefix == ChosenPrefix
        committedValues(k) == {StateOf(SubSeq(prefix, 1, n))[k] : n \in 0..Len(prefix)}
    IN \A r \in Storage, k \in Keys : StateOf(applied[r])[k] \in committedValues(k)

=============================================================================
