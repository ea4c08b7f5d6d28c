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
(* Membership is carried in the log: configuration commands add a member *)
(* (a storage replica or a log replica: paper section 3's acceptor that   *)
(* keeps the write-ahead log but no B-tree), promote a log replica that    *)
(* installed a B-tree snapshot, or remove a member, one member at a time. *)
(* Each replica sees the configuration its own log implies.               *)
(*                                                                         *)
(* Gray failures and deployments (paper section 6.2): directed links fail *)
(* and recover (LinkDown, LinkUp on downLinks); a follower that stops     *)
(* hearing a leader that holds its lease suspects it, probes its peers    *)
(* and starts an election only when a quorum confirms (Suspect,           *)
(* AnswerProbe, ClearSuspicion, guarding Phase1a); a leader about to be   *)
(* restarted hands its lease off (LeaseRelinquish).  NoNeedlessElection   *)
(* and HandoffGap state what these buy; each is off (a hook) in the       *)
(* models that do not check them, which leaves their state spaces as     *)
(* they were.                                                             *)
(***************************************************************************)
EXTENDS Naturals, Integers, Sequences, FiniteSets, TLC

CONSTANTS
    Replicas,       \* replica incarnations (model values); see "Incarnations"
    InitConfig,     \* [Replicas -> Kinds]: initial membership and member kinds
    MaxBallot,      \* ballots are 1..MaxBallot
    MaxSlot,        \* log slots are 1..MaxSlot
    Keys,           \* keys of the key-value state
    Ops,            \* sequence of client writes; a command is an index into Ops
    LeaseDur,       \* lease length, measured on the leader's own clock
    LeaseMargin,    \* extra wait of a new leader, covering clock divergence
    MaxDrift        \* width of the window around real time clocks stay in

(***************************************************************************)
(* A configuration maps every replica to its kind: "storage" (write-ahead *)
(* log and B-tree: may lead, applies, serves reads), "log" (write-ahead   *)
(* log only: votes in phase 1 and phase 2 and grants leases, but never     *)
(* leads, applies or serves) or "none" (not a member).                    *)
(***************************************************************************)
Kinds == {"storage", "log", "none"}

Ballots == 1..MaxBallot
Slots   == 1..MaxSlot
NoOp    == 0                  \* fills log holes found by recovery
Absent  == -1                 \* the value of a key that holds no item

(***************************************************************************)
(* Commands.  A command is an index into Ops.  Ops holds client writes     *)
(* (put, delete, cput) and membership changes:                            *)
(*   [op |-> "add", who |-> x, kind |-> "storage" or "log"]               *)
(*   [op |-> "remove", who |-> x]   [op |-> "promote", who |-> x]          *)
(* CHOICE (model bound): like client writes, the changes a model may make  *)
(* are listed in Ops; each command is proposed at most once, so each      *)
(* change names one incarnation once.                                     *)
(***************************************************************************)
Cmds       == 1..Len(Ops)
WriteCmds  == {c \in Cmds : Ops[c].op \in {"put", "delete", "cput"}}
ChangeCmds == Cmds \ WriteCmds

ASSUME
    /\ InitConfig \in [Replicas -> Kinds]
    /\ MaxBallot \in Nat /\ MaxSlot \in Nat
    /\ \A i \in DOMAIN Ops :
          \/ Ops[i].op \in {"put", "delete", "cput"}
          \/ Ops[i].op = "add" /\ Ops[i].who \in Replicas /\ Ops[i].kind \in {"storage", "log"}
          \/ Ops[i].op \in {"remove", "promote"} /\ Ops[i].who \in Replicas
    /\ LeaseDur \in Nat /\ LeaseMargin \in Nat /\ MaxDrift \in Nat

VARIABLES
    offset,       \* offset[r]: how far r's clock is ahead of real time, 0..MaxDrift
    downLinks,    \* set of directed pairs <<from, to>> whose link drops messages
    msgs,         \* every message ever sent (see "Network" below)
    fresh,        \* messages sent since real time last advanced (RoundNet only)
    \* durable per-replica state: survives Crash
    ballot,       \* highest ballot promised (phase 1) or accepted
    log,          \* log[r][s] = [bal |-> b, cmd |-> c], bal = 0 for an empty slot
    granted,      \* highest ballot whose lease this replica has granted
    applied,      \* applied[r]: commands applied to r's B-tree, in slot order
    hasTree,      \* hasTree[r]: r keeps a B-tree (a storage replica, or a snapshot installed)
    \* volatile per-replica state: lost on Crash
    role,         \* "follower", "candidate" or "leader"
    proposals,    \* leader: proposals[r][s] is its command for slot s
    readBarrier,  \* leader: slots recovered at election; reads wait for them
    waitLeft,     \* leader: local time left before it may serve
    relinquished, \* leader: it handed its lease off (LeaseRelinquish)
    heardLeft,    \* local time left on the last lease-holding leader r heard of
    \* ghost state for the properties; no replica reads it
    acked,        \* client writes acknowledged to the client
    precede,      \* <<w1, w2>>: w1 was acknowledged before w2 was invoked
    \* ghost state kept by the Next wrapper (GhostStep), not by the actions
    window,       \* window[r]: <<leader, quorum>> pairs healthy since r began suspecting
    gap           \* handoff timer: -1 before one, n >= 0 ticks without a reader, -2 after

durableVars  == <<ballot, log, granted, applied, hasTree>>
\* what StepDown resets
stepVars     == <<role, proposals, readBarrier, waitLeft, relinquished>>
volatileVars == <<stepVars, heardLeft>>
ghostVars    == <<acked, precede>>
envVars      == <<offset, downLinks>>
netVars      == <<msgs, fresh>>
wrapVars     == <<window, gap>>
vars == <<envVars, netVars, durableVars, volatileVars, ghostVars, wrapVars>>

-----------------------------------------------------------------------------
(* Membership and quorums *)

Range(f) == {f[x] : x \in DOMAIN f}
Max(S) == CHOOSE x \in S : \A y \in S : y <= x

MembersOf(C) == {x \in Replicas : C[x] # "none"}

\* S holds a majority of the members of configuration C.  The properties use
\* this; the protocol counts through IsQuorumOf, which a mutant may break.
QuorumOf(C, S) == 2 * Cardinality(S \cap MembersOf(C)) > Cardinality(MembersOf(C))
MinimalQuorumsOf(C) ==
    {Q \in SUBSET MembersOf(C) : QuorumOf(C, Q) /\ \A a \in Q : ~QuorumOf(C, Q \ {a})}

\* The votes a replica counts for configuration C: its members' (a hook: the
\* mutant RemovedVoteCounts also counts replicas C has removed).
CountedVotes(C, S) == S \cap MembersOf(C)

\* Whether a replica deciding in configuration C counts S as a quorum.
IsQuorumOf(C, S) == 2 * Cardinality(CountedVotes(C, S)) > Cardinality(MembersOf(C))

\* The kind of configuration change command c gives its replica.
NewKind(c) == CASE Ops[c].op = "add"     -> Ops[c].kind
                [] Ops[c].op = "remove"  -> "none"
                [] Ops[c].op = "promote" -> "storage"

(***************************************************************************)
(* CHOICE: a configuration takes effect on append, as in Raft's single-   *)
(* server changes (etcd's etcdraft.tla): a replica uses the configuration *)
(* of the latest change commands in its own log, committed or not; a      *)
(* leader, that of its proposals (what it recovered plus what it added).  *)
(* On commit would leave a window in which the new member is needed but   *)
(* not counted; at slot s + alpha would stall proposals alpha slots behind *)
(* each change.  On append is safe provided (a) changes are one member at *)
(* a time, so the majorities of consecutive configurations intersect       *)
(* (conformance/reconfig_intersection.py proves it for up to 9 members),   *)
(* (b) a leader proposes a change only when every change in its log is     *)
(* committed, and (c) elections count promises against the committed      *)
(* configuration as well as the recovered one (BecomeLeader).  The        *)
(* configuration "that applies at slot s" is the leader's at the time it  *)
(* commits s, which includes every change up to s.                        *)
(***************************************************************************)
CfgOf(seq) ==
    IF ChangeCmds = {} THEN InitConfig
    ELSE [x \in Replicas |->
            LET at == {i \in DOMAIN seq : seq[i] \in ChangeCmds /\ Ops[seq[i]].who = x}
            IN IF at = {} THEN InitConfig[x] ELSE NewKind(seq[Max(at)])]

\* The commands of a log's filled slots (logs have no holes: see Phase2b).
LogCmds(l) == [s \in {t \in Slots : l[t].bal > 0} |-> l[s].cmd]

\* Replica r's view of the configuration: a leader's, of its proposals; any
\* other replica's, of its log.
View(r) == IF role[r] = "leader" THEN CfgOf(proposals[r]) ELSE CfgOf(LogCmds(log[r]))

\* Whether r counts itself a member, and a storage replica with a B-tree.
IsMember(r)  == View(r)[r] # "none"
IsStorage(r) == View(r)[r] = "storage" /\ hasTree[r]

(***************************************************************************)
(* Incarnations.  A replica identity is one incarnation of a node: a node  *)
(* whose disk is lost comes back, if at all, under a new identity, and an *)
(* identity that was ever a member is never added again (Fresh).  A       *)
(* process with an empty disk under an old identity could forget promises *)
(* and votes it made and break Agreement (Vanlightly's raft-tlaplus shows  *)
(* the split brain); the spec never lets one exist.  A permanently failed *)
(* node is a replica that takes no more steps, which every behaviour       *)
(* already allows, so it needs no action.                                 *)
(***************************************************************************)
EverNamed(seq, x) == InitConfig[x] # "none" \/ \E i \in DOMAIN seq : seq[i] \in ChangeCmds /\ Ops[seq[i]].who = x
Fresh(r, x) == ~EverNamed(proposals[r], x)

\* The durable state a newly added incarnation starts with: its own, since
\* a fresh identity's disk holds only what it accepted as a non-member (a
\* hook: the mutant ReaddOldIncarnation re-adds an old identity with an
\* empty disk).
JoinBallot(x)  == ballot[x]
JoinLog(x)     == log[x]
JoinGranted(x) == granted[x]

(***************************************************************************)
(* CHOICE: ballots are integers, each used by at most one replica.  A real *)
(* system makes them unique as <<counter, replica id>>; here Phase1a takes *)
(* only a ballot no replica has started yet, which is the same guarantee   *)
(* without an order on replica identities (so SYMMETRY stays sound).      *)
(***************************************************************************)

-----------------------------------------------------------------------------
(* The key-value state machine *)

ApplyCmd(kv, c) ==
    IF c = NoOp \/ c \in ChangeCmds THEN kv
    ELSE LET o == Ops[c] IN
         CASE o.op = "put"    -> [kv EXCEPT ![o.key] = o.val]
           [] o.op = "delete" -> [kv EXCEPT ![o.key] = Absent]
           [] o.op = "cput"   -> IF kv[o.key] = o.expect
                                 THEN [kv EXCEPT ![o.key] = o.val] ELSE kv

RECURSIVE StateOf(_)
StateOf(seq) ==
    IF seq = << >> THEN [k \in Keys |-> Absent]
    ELSE ApplyCmd(StateOf(SubSeq(seq, 1, Len(seq) - 1)), seq[Len(seq)])

-----------------------------------------------------------------------------
(***************************************************************************)
(* Network.  msgs is the set of all messages ever sent, and receiving a    *)
(* message does not remove it.  So a message may be received any number   *)
(* of times (duplication), in any order relative to others (reordering),  *)
(* or never (loss): every safety-relevant behaviour of a lossy, duplicating *)
(* and reordering network is a behaviour of this spec.  A receiver takes  *)
(* a message only over a link that is up.                                 *)
(***************************************************************************)
(***************************************************************************)
(* The network.  msgs holds every message ever sent; a receiver may take   *)
(* a message any number of times, in any order, or never (loss), unless   *)
(* the link from its sender is down.  RoundNet (a hook, FALSE but in the  *)
(* HandoffGap model) makes one Tick one message delay: a message sent     *)
(* since the last Tick (in fresh) is not delivered before the next one.   *)
(***************************************************************************)
RoundNet == FALSE
Send(m) ==
    /\ msgs' = msgs \cup {m}
    /\ fresh' = IF RoundNet THEN fresh \cup {m} ELSE fresh
SendAll(S) ==
    /\ msgs' = msgs \cup S
    /\ fresh' = IF RoundNet THEN fresh \cup S ELSE fresh
\* Send m and forget the messages D (see Suspect: r ignores them from now on).
SendDropping(D, m) ==
    /\ msgs' = (msgs \ D) \cup {m}
    /\ fresh' = IF RoundNet THEN (fresh \ D) \cup {m} ELSE fresh \ D
Drop(D) ==
    /\ msgs' = msgs \ D
    /\ fresh' = fresh \ D
LinkOk(from, to) == <<from, to>> \notin downLinks
\* Message m (sent by another replica) can have reached r.
Delivered(m, r) == LinkOk(m.from, r) /\ m \notin fresh
Receivable(m, r) == m \in msgs /\ m.from # r /\ Delivered(m, r)

(***************************************************************************)
(* CHOICE (abstraction): the messages a replica reads rather than receives *)
(* in a step of its own (lease grants, 2b votes, promises, commits, probe  *)
(* answers, handoffs) count for it while their link is up now.  A real     *)
(* replica keeps what arrived before its link failed; the model forgets    *)
(* it, which only makes leaders hold fewer leases and commit less.  Trace  *)
(* validation cannot tell when such a message arrived (its receipt is no  *)
(* step of the trace), so it overrides this hook and counts what was sent *)
(* (and not since the last tick in a RoundNet model); the receiving steps *)
(* themselves (Receivable) are held to the link's state either way.       *)
(***************************************************************************)
Counted(m, r) == Delivered(m, r)

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
    /\ heardLeft' = [r \in Replicas |-> Sub0(heardLeft[r], adv[r])]
    /\ msgs' = {m \in {Age(m, adv) : m \in msgs} : ~IsLeaseMsg(m) \/ m.left > 0}
    /\ fresh' = {}
    /\ UNCHANGED <<downLinks, durableVars, role, proposals, readBarrier, relinquished,
                   ghostVars>>

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
GrantorsIn(acks, r, x) == {r} \cup {m.from : m \in {m \in acks : m.left = x /\ Counted(m, r)}}

LeaseGrantors(r, x) == GrantorsIn(LeaseAcks(r), r, x)

(***************************************************************************)
(* CHOICE: log replicas grant leases.  A lease is safe because every lease *)
(* quorum intersects every election quorum, and election quorums count log *)
(* replicas (they vote in phase 1).  Counting them for leases too keeps    *)
(* the two kinds of quorum the same majorities of the same view, so the   *)
(* existing argument (and conformance/lease_theorem.py) carries over; a   *)
(* storage-only lease quorum would have to be re-proved against every mix *)
(* of kinds, and would leave a group with a dead storage replica and a    *)
(* new log replica unable to hold a lease at all.                         *)
(***************************************************************************)
\* Local time left on r's lease (0: it holds none), by r's current view.
LeaseLeft(r) ==
    LET acks  == LeaseAcks(r)
        cfg   == View(r)
        held  == {x \in {m.left : m \in acks} : IsQuorumOf(cfg, GrantorsIn(acks, r, x))}
    IN IF role[r] = "leader" /\ held # {} THEN Max(held) ELSE 0

\* Whether r has handed its lease off (a hook: the mutant ServeAfterRelinquish
\* forgets it, so the relinquished lease still counts).
Relinquished(r) == relinquished[r]

HoldsLease(r) ==
    /\ role[r] = "leader"
    /\ waitLeft[r] = 0
    /\ LeaseLeft(r) > 0
    /\ ~Relinquished(r)

-----------------------------------------------------------------------------
(* Hooks that the seeded-bug mutants override from their .cfg files. *)

\* The durable state a replica finds after a crash.
DurableBallot(r)  == ballot[r]
DurableLog(r)     == log[r]
DurableGranted(r) == granted[r]

\* Which sets of persisted copies allow a leader in configuration C to commit
\* (and acknowledge).
CommitQuorum(C, S) == IsQuorumOf(C, S)

\* Whether replica r knows that slot s of its log is committed.
KnownCommitted(r, s) ==
    \E m \in msgs :
        /\ m.type = "commit" /\ m.slot = s /\ m.bal = log[r][s].bal
        /\ (m.from = r \/ Counted(m, r))

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

(***************************************************************************)
(* CHOICE (abstraction): snapshots and truncated logs.  The spec keeps    *)
(* every log entry.  The reference truncates its write-ahead log after a  *)
(* B-tree checkpoint, so a 1b reports the reporter's checkpoint point n   *)
(* and the entries above it; every slot <= n is committed, so the new      *)
(* leader does not re-propose it (and installs a snapshot first if its own *)
(* B-tree is behind n).  Keeping the entries, as here, means the leader   *)
(* re-proposes a committed slot's chosen value, which changes nothing.    *)
(* A snapshot is a copy of another replica's B-tree (applied), which is a *)
(* committed prefix; the copying time and the log tail that follows it are *)
(* the reference's business (and Apply's).                                *)
(* The abstraction is sound only while a slot below a checkpoint, which    *)
(* then survives only in B-trees, survives as an entry would: in a quorum. *)
(* So every change keeps storage replicas a majority of the members       *)
(* (KeepsStorageMajority, in MayChange).  Healing never needs more: a     *)
(* group of three storage replicas, one failed, adds one log replica.     *)
(* The Hypothesis machine found the reference losing acknowledged writes  *)
(* without it: {r1} plus two log replicas, r1 killed, and the slots below *)
(* r1's checkpoint were in no other replica.                              *)
(***************************************************************************)
\* The first n slots of src's B-tree (a copy may be of an earlier state of it:
\* the copy takes time, and src keeps applying meanwhile).
SnapshotOf(src, n) == SubSeq(applied[src], 1, n)

-----------------------------------------------------------------------------
(* Protocol actions *)

Init ==
    /\ offset \in [Replicas -> 0..MaxDrift]
    /\ downLinks = {}
    /\ msgs = {}
    /\ fresh = {}
    /\ ballot = [r \in Replicas |-> 0]
    /\ log = [r \in Replicas |-> [s \in Slots |-> EmptyEntry]]
    /\ granted = [r \in Replicas |-> 0]
    /\ applied = [r \in Replicas |-> << >>]
    /\ hasTree = [r \in Replicas |-> InitConfig[r] = "storage"]
    /\ role = [r \in Replicas |-> "follower"]
    /\ proposals = [r \in Replicas |-> << >>]
    /\ readBarrier = [r \in Replicas |-> 0]
    /\ waitLeft = [r \in Replicas |-> 0]
    /\ relinquished = [r \in Replicas |-> FALSE]
    /\ heardLeft = [r \in Replicas |-> 0]
    /\ acked = {}
    /\ precede = {}
    /\ window = [r \in Replicas |-> {}]
    /\ gap = -1

\* Volatile state of a replica that is not (or no longer) leading.
StepDown(r) ==
    /\ role' = [role EXCEPT ![r] = "follower"]
    /\ proposals' = [proposals EXCEPT ![r] = << >>]
    /\ readBarrier' = [readBarrier EXCEPT ![r] = 0]
    /\ waitLeft' = [waitLeft EXCEPT ![r] = 0]
    /\ relinquished' = [relinquished EXCEPT ![r] = FALSE]

\* Whether a replica of kind k in its view, with a B-tree or not, may lead
\* (a hook: the mutant LogReplicaLeads lets log replicas lead).
MayLead(k, tree) == k = "storage" /\ tree

\* Which replica may start which ballot: any (a hook, so that a model can
\* fix a plan of elections, a scenario bound that, unlike a CONSTRAINT,
\* leaves every state it reaches a real state of the spec).
MayStartBallot(r, b) == TRUE

-----------------------------------------------------------------------------
(* Gray failures: link faults and peer-confirmed failure detection *)

(***************************************************************************)
(* Directed links fail and recover: the environment's actions on          *)
(* downLinks.  MaxDownLinks bounds how many are down at once (0: links     *)
(* never fail, as in the models that do not check gray failures);         *)
(* MayLinkFail and MayLinkRecover let a model restrict which fail and      *)
(* whether they recover (the liveness model lets the faults settle).      *)
(***************************************************************************)
MaxDownLinks == 0
MayLinkFail(from, to) == TRUE
MayLinkRecover == TRUE

LinkDown(from, to) ==
    /\ from # to /\ LinkOk(from, to)
    /\ Cardinality(downLinks) < MaxDownLinks
    /\ MayLinkFail(from, to)
    /\ downLinks' = downLinks \cup {<<from, to>>}
    /\ UNCHANGED <<offset, netVars, durableVars, volatileVars, ghostVars>>

LinkUp(from, to) ==
    /\ ~LinkOk(from, to)
    /\ MayLinkRecover
    /\ downLinks' = downLinks \ {<<from, to>>}
    /\ UNCHANGED <<offset, netVars, durableVars, volatileVars, ghostVars>>

(***************************************************************************)
(* Peer-confirmed failure detection (paper 6.2: "the follower that wants  *)
(* to trigger a failover sends a message to other replicas in the         *)
(* replication group asking if they can communicate with the leader.  If *)
(* replicas respond with a healthy leader message, the follower drops its *)
(* attempt to trigger a leader election").  PeerConfirm (a hook) turns it *)
(* on; off, any storage replica may start an election at any time, the   *)
(* most adversarial elections, which the safety models check against.   *)
(*                                                                         *)
(* Hearing.  A lease request says whether its leader held its lease when  *)
(* it asked (held); a replica that grants such a request has heard a      *)
(* healthy leader, and believes so for LeaseDur of its own clock          *)
(* (heardLeft).  CHOICE: the lease requests are the heartbeats, so a      *)
(* leader that cannot hear a quorum (its grants do not reach it) loses    *)
(* its lease, stops claiming one, and its followers stop vouching for it *)
(* within a lease; a follower that merely receives the leader's messages *)
(* is not enough (mutant VouchWithoutLease: then a leader cut off from    *)
(* its quorum's answers, whose requests still go out, is vouched for     *)
(* forever and nobody is elected).                                        *)
(*                                                                         *)
(* CHOICE: the confirmation quorum.  A suspecting follower r elects only  *)
(* when the peers that answered "I do not hear a healthy leader",        *)
(* together with r, are a quorum of r's view, and r still hears none.    *)
(* A leader holding its lease with working links to a quorum Q has every  *)
(* member of Q vouching for it, and every quorum of answers meets Q, so   *)
(* one of them would have vouched (NoNeedlessElection).  Fewer (say one   *)
(* peer) would let two followers cut off from the leader depose it while *)
(* it still serves the rest; all peers would leave a group with one dead  *)
(* follower unable to replace a dead leader.  A healthy answer ends the   *)
(* suspicion (the paper's "drops its attempt").  Answers count in r's     *)
(* own view: with membership changes a stale follower may count them in  *)
(* a configuration that no longer meets the leader's quorum, which costs *)
(* a needless election, never safety; NoNeedlessElection is checked       *)
(* without membership changes.                                            *)
(*                                                                         *)
(* CHOICE (abstraction): a probe carries a fresh nonce, so answers to an  *)
(* earlier suspicion are ignored; the model deletes that suspicion's      *)
(* probe and answers instead of keeping a counter (ProbeMsgs), which      *)
(* keeps the state space finite.                                          *)
(***************************************************************************)
PeerConfirm == FALSE

\* (Without PeerConfirm no probe is ever sent, Suspect requiring it: the guards
\* spare TLC a scan of msgs at every crash, election and answer.)
ProbeMsgs(r) ==
    IF ~PeerConfirm THEN {}
    ELSE {m \in msgs : \/ m.type = "probe" /\ m.from = r
                       \/ m.type = "probeAck" /\ m.to = r}

Suspecting(r) == PeerConfirm /\ \E m \in msgs : m.type = "probe" /\ m.from = r

\* What replica a answers a probe: whether it hears a healthy leader (a leader
\* holding its lease vouches for itself).
Hears(a) == heardLeft[a] > 0 \/ HoldsLease(a)

\* Follower r, a storage replica that has heard no healthy leader for a lease,
\* suspects the leader and asks its peers (the election timeout fired).  (A
\* replica with no ballot left to start, a model bound, does not bother.)
Suspect(r) ==
    /\ PeerConfirm
    /\ MayLead(View(r)[r], hasTree[r])
    /\ role[r] = "follower"
    /\ \E b \in Ballots : b > ballot[r] /\ MayStartBallot(r, b)
    /\ ~Suspecting(r)
    /\ heardLeft[r] = 0
    /\ SendDropping(ProbeMsgs(r), [type |-> "probe", from |-> r])
    /\ UNCHANGED <<envVars, durableVars, volatileVars, ghostVars>>

\* Member a answers probe m, once, with whether it hears a healthy leader.
AnswerProbe(a, m) ==
    /\ m.type = "probe" /\ Receivable(m, a)
    /\ IsMember(a)
    /\ ~\E k \in msgs : k.type = "probeAck" /\ k.from = a /\ k.to = m.from
    /\ Send([type |-> "probeAck", from |-> a, to |-> m.from, hears |-> Hears(a)])
    /\ UNCHANGED <<envVars, durableVars, volatileVars, ghostVars>>

\* The answers that reached r.
ProbeAcks(r) == {m \in msgs : m.type = "probeAck" /\ m.to = r /\ Counted(m, r)}

\* r drops its suspicion: a peer vouched for a leader, or r hears one again.
ClearSuspicion(r) ==
    /\ Suspecting(r)
    /\ heardLeft[r] > 0 \/ \E m \in ProbeAcks(r) : m.hears
    /\ Drop(ProbeMsgs(r))
    /\ UNCHANGED <<envVars, durableVars, volatileVars, ghostVars>>

\* A quorum of r's view, r included, confirms that nobody hears a healthy leader.
Confirmed(r) ==
    /\ Suspecting(r)
    /\ heardLeft[r] = 0
    /\ IsQuorumOf(View(r), {r} \cup {m.from : m \in {m \in ProbeAcks(r) : ~m.hears}})

\* Which suspicion elects (a hook: the mutant NoPeerConfirm elects on
\* suspicion alone).
ElectionConfirmed(r) == Confirmed(r)

\* The leader of r's ballot handed its lease off to r (see LeaseRelinquish).
HandedOff(r) ==
    \E m \in msgs : m.type = "handoff" /\ m.to = r /\ m.bal = ballot[r] /\ Counted(m, r)

MayElect(r) == ~PeerConfirm \/ ElectionConfirmed(r) \/ HandedOff(r)

\* Storage replica r starts an election with ballot b (paper 3: "any
\* replica can trigger a round of the election").  It promises b itself,
\* and its suspicion, if any, has served its purpose.
Phase1a(r, b) ==
    /\ MayLead(View(r)[r], hasTree[r])
    /\ MayStartBallot(r, b)
    /\ role[r] # "leader"
    /\ b > ballot[r]
    /\ ~\E m \in msgs : m.type = "1a" /\ m.bal = b
    /\ MayElect(r)
    /\ ballot' = [ballot EXCEPT ![r] = b]
    /\ role' = [role EXCEPT ![r] = "candidate"]
    /\ SendDropping(ProbeMsgs(r), [type |-> "1a", bal |-> b, from |-> r])
    /\ UNCHANGED <<envVars, log, granted, applied, hasTree, proposals, readBarrier, waitLeft,
                   relinquished, heardLeft, ghostVars>>

\* Acceptor a, a member in its own view, promises ballot m.bal and reports
\* its whole log.
Phase1b(a, m) ==
    /\ m.type = "1a" /\ Receivable(m, a)
    /\ IsMember(a)
    /\ m.bal > ballot[a]
    /\ ballot' = [ballot EXCEPT ![a] = m.bal]
    /\ StepDown(a)
    /\ Send([type |-> "1b", bal |-> m.bal, from |-> a, to |-> m.from, log |-> log[a],
             granted |-> granted[a]])
    /\ UNCHANGED <<envVars, log, granted, applied, hasTree, heardLeft, ghostVars>>

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

(***************************************************************************)
(* CHOICE: lease handoff.  A leader that relinquished ballot h's lease     *)
(* never serves with it again (Relinquished), so its successor need not   *)
(* wait out a lease of ballot h; any other earlier lease it still waits   *)
(* out.  It can tell which: every lease needed a quorum of grants, which   *)
(* meets its voters, and each voter reports the highest ballot it granted.*)
(* So the wait is skipped iff every reported grant is of a ballot <= h.   *)
(* A lease of a ballot below h had expired before h's leader served, as  *)
(* it waited for it: so LeaseRelinquish requires HoldsLease.              *)
(***************************************************************************)
\* The highest ballot whose lease was handed off to r (0: none); a hook, the
\* mutant SkipWaitWithoutHandoff skips the wait as if every lease had been.
HandoffBal(r) ==
    LET hs == {m.bal : m \in {m \in msgs : m.type = "handoff" /\ m.to = r /\ Counted(m, r)}}
    IN IF hs = {} THEN 0 ELSE Max(hs)

LeaseWaitNeeded(r, b, Q) == \E g \in VoterGranted(r, b, Q) : g > HandoffBal(r)

\* Candidate r has promises for b from a quorum Q: it leads, recovers the
\* log and starts waiting out any earlier lease.  CHOICE: Q is a minimal
\* quorum, the first promises to arrive; a candidate leads as soon as it
\* can, so it never waits for further reports.
(***************************************************************************)
(* CHOICE: which promises elect.  Q must be a quorum of every             *)
(* configuration of the RECOVERED log from the end of the prefix the       *)
(* candidate knows to be committed on: the committed configuration and    *)
(* the at most one change recovered after it.  Not the candidate's own    *)
(* view, which may be stale, and not only the recovered log's latest      *)
(* configuration (Raft's rule): Raft is saved there by refusing votes to  *)
(* candidates with older logs, which Multi-Paxos recovery does not do.    *)
(* Ongaro's scenario shows it (MC_Ongaro.tla, mutant RaftStyleElection):  *)
(* {r1..r4}; r1 commits a write, appends "add r5" (held by r1, r5); r2 is *)
(* elected by r2..r4, commits the write again and "remove r4" with r2, r3; *)
(* r1's promises from r4, r5 recover the write and "add r5", a majority of *)
(* that five-member configuration, disjoint from {r2, r3}: ConfigSafety    *)
(* fails.  Here {r1, r4, r5} is no quorum of {r1..r4}, the committed one.  *)
(* (Found by hand; the counterexample is 34 steps deep, beyond a search   *)
(* that fits our budget.)  The candidate waits for promises                *)
(* until this holds (a fixpoint: the configurations Q's reports imply     *)
(* have Q as a quorum), and leads only if it stays a storage replica.     *)
(***************************************************************************)
\* Slots 1..k that r knows to be committed (a commit message reached it).
KnownPrefix(r) ==
    Max({k \in 0..MaxSlot :
           \A s \in 1..k : \E m \in msgs : m.type = "commit" /\ m.slot = s
                                         /\ (m.from = r \/ Counted(m, r))})

\* The configurations candidate r's election quorum must be a quorum of.
ElectionConfigs(r, rec) ==
    LET k == IF KnownPrefix(r) < Len(rec) THEN KnownPrefix(r) ELSE Len(rec)
    IN {CfgOf(SubSeq(rec, 1, n)) : n \in k..Len(rec)}

IsQuorumOfAll(cfgs, Q) == \A C \in cfgs : IsQuorumOf(C, Q)

BecomeLeader(r, b, Q) ==
    /\ role[r] = "candidate" /\ ballot[r] = b
    /\ r \in Q
    \* (redundant without changes: filters before recovery, for TLC's speed)
    /\ ChangeCmds = {} => IsQuorumOf(InitConfig, Q)
    /\ \A a \in Q \ {r} : \E m \in msgs :
          m.type = "1b" /\ m.bal = b /\ m.from = a /\ m.to = r /\ Counted(m, r)
    /\ LET rec  == Recover(r, b, Q)
           cfgs == ElectionConfigs(r, rec)
       IN /\ IsQuorumOfAll(cfgs, Q)
          /\ \A a \in Q : ~IsQuorumOfAll(cfgs, Q \ {a})
          /\ MayLead(CfgOf(rec)[r], hasTree[r])
          /\ proposals' = [proposals EXCEPT ![r] = rec]
          /\ readBarrier' = [readBarrier EXCEPT ![r] = Len(rec)]
    /\ role' = [role EXCEPT ![r] = "leader"]
    /\ waitLeft' = [waitLeft EXCEPT ![r] =
                        IF LeaseWaitNeeded(r, b, Q) THEN NewLeaderWait ELSE 0]
    /\ UNCHANGED <<envVars, netVars, durableVars, relinquished, heardLeft, ghostVars>>

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

(***************************************************************************)
(* CHOICE: a leader need not re-propose, nor re-commit, a slot it has      *)
(* applied.  The slot is committed (Apply needs KnownCommitted), so its    *)
(* value is chosen and proposing it again would change nothing.  This is  *)
(* the other half of the abstraction of snapshots and truncated logs (see *)
(* Recover): the reference's new leader skips every slot at or below its  *)
(* checkpoint, since its write-ahead log no longer holds those entries,   *)
(* only its B-tree, and re-proposes the rest.  Reads are then ready once   *)
(* the leader has applied every recovered slot: each acknowledged write is *)
(* in the recovered log (a quorum reported it) at a slot it has applied.  *)
(* An acceptor likewise takes the first slot after one it has applied     *)
(* without that slot in the same ballot (Phase2b's no-holes rule), as the *)
(* reference's does right after its checkpoint.                           *)
(* SkipApplied is a hook: off in the models that predate it, on in trace   *)
(* validation and in the model SkipApplied, which checks the safety       *)
(* properties with it.                                                    *)
(* Safety does not rest on the skip: each slot is its own Paxos instance, *)
(* and a replica applies only slots it knows are committed, so reads wait *)
(* for any slot a leader wrongly skipped.  A wrong skip costs progress    *)
(* only; the model SkipOneMore (one slot too many skipped) keeps every    *)
(* invariant, and check-models requires it to (an equivalent mutant).     *)
(***************************************************************************)
SkipApplied == FALSE

\* The slots r may skip: those it has applied (none without SkipApplied).
\* A hook, so that a mutant can skip one slot too many (an off-by-one at the
\* checkpoint point: the first unapplied slot taken as applied).
SkipBound(r) == IF SkipApplied THEN Len(applied[r]) ELSE 0

\* Leader r of ballot b owes slot t no proposal: proposed in b, or applied.
\* (IF, not \/: within an action TLC takes each true disjunct as a separate
\* successor, so a disjunction under \A t multiplies identical successors.)
ProposedOrApplied(r, b, t) == IF t <= SkipBound(r) THEN TRUE ELSE Proposed(b, t)
\* ... nor a commit: committed in b, or applied.
CommittedOrApplied(r, b, t) == IF t <= SkipBound(r) THEN TRUE ELSE Committed(b, t)

\* A client write c reaches leader r (paper 3: the leader "generates a
\* write-ahead log record and sends it to its peer replicas"): r appends it
\* at the next slot, persists it and sends phase 2a, once every earlier
\* slot of its ballot has been proposed.  A command that is in no 2a
\* message and no leader's proposals may be (re)submitted: that is the
\* client retrying after its leader failed before proposing it.
\* Whether leader r may append command c at its next slot: c is new (see
\* above), and every earlier slot of r's ballot has been proposed.
MayAppend(r, c) ==
    /\ CanServe(r)
    /\ ClientMayInvoke(c)
    /\ Len(proposals[r]) < MaxSlot
    /\ \A q \in Replicas : c \notin Range(proposals[q])
    /\ ~\E m \in msgs : m.type = "2a" /\ m.cmd = c
    /\ \A t \in 1..Len(proposals[r]) : ProposedOrApplied(r, ballot[r], t)

\* Leader r appends c at its next slot, persists it and proposes it.
AppendCmd(r, c) ==
    LET b == ballot[r]
        s == Len(proposals[r]) + 1
    IN /\ proposals' = [proposals EXCEPT ![r] = Append(@, c)]
       /\ log' = [log EXCEPT ![r][s] = [bal |-> b, cmd |-> c]]
       /\ SendAll(Proposal(r, b, s, c))

\* precede after write c is invoked: every write acknowledged so far came before
\* it (a hook: trace validation, which checks no property that reads precede,
\* keeps it empty rather than growing it with the square of the writes).
PrecedeAfter(c) == precede \cup {<<w, c>> : w \in acked}

ClientWrite(r, c) ==
    /\ c \in WriteCmds
    /\ MayAppend(r, c)
    /\ AppendCmd(r, c)
    /\ precede' = PrecedeAfter(c)
    /\ UNCHANGED <<envVars, ballot, granted, applied, hasTree, role, readBarrier, waitLeft,
                   relinquished, heardLeft, acked>>

-----------------------------------------------------------------------------
(* Membership changes *)

(***************************************************************************)
(* CHOICE: a leader proposes a membership change only when               *)
(*  - it has committed an entry of its own ballot (Ongaro's fix for Raft, *)
(*    raft-dev 2015: a new leader may hold, unknowingly, a configuration  *)
(*    that an earlier leader's uncommitted change has moved away from;    *)
(*    committing in its own ballot first supersedes that change), and     *)
(*  - every change in its log is committed, so at most one is in flight   *)
(*    and consecutive configurations differ in one member.               *)
(* Both are hooks, each replaced by a mutant.  A leader never removes      *)
(* itself: it would first hand its leadership off.                        *)
(*                                                                         *)
(* The first guard is redundant here, given the election rule (see        *)
(* BecomeLeader): every election quorum is a quorum of the configuration  *)
(* C its candidate knows committed, and every change pending after C is   *)
(* one member away from C (the second guard), so every phase-1 quorum     *)
(* meets every earlier ballot's phase-2 quorum at each later slot, and two *)
(* competing changes at one slot are settled by Paxos like any two values. *)
(* Raft needs the guard because its leader keeps its own log rather than  *)
(* merging promises slot by slot.  So ChangeBeforeOwnCommit is an         *)
(* equivalent mutant: check-models runs it on Ongaro's scenario           *)
(* (MC_Ongaro.tla) and requires it to pass.  We keep the guard: a new     *)
(* leader commits in its ballot before it serves anyway (the read         *)
(* barrier), so it costs nothing, and it keeps the rule Raft readers know. *)
(***************************************************************************)
OwnBallotCommitted(r) == \E s \in Slots : Committed(ballot[r], s)
NoChangePending(r) ==
    \A s \in DOMAIN proposals[r] :
        proposals[r][s] \in ChangeCmds => CommittedOrApplied(r, ballot[r], s)

\* Storage replicas are a majority of the members of configuration C.
StorageMajority(C) ==
    2 * Cardinality({x \in MembersOf(C) : C[x] = "storage"}) > Cardinality(MembersOf(C))

\* The configuration after leader r appends change c keeps a storage majority.
KeepsStorageMajority(r, c) == StorageMajority(CfgOf(Append(proposals[r], c)))

MayChange(r, c, op) ==
    /\ c \in ChangeCmds /\ Ops[c].op = op
    /\ KeepsStorageMajority(r, c)
    /\ MayAppend(r, c)
    /\ OwnBallotCommitted(r)
    /\ NoChangePending(r)

\* Leader r adds a fresh incarnation as a log replica (no B-tree needed: the
\* fast way to restore a full quorum, paper section 3) or as a storage
\* replica that has installed a B-tree snapshot.
AddMember(r, c) ==
    /\ MayChange(r, c, "add")
    /\ LET x == Ops[c].who
           b == ballot[r]
           s == Len(proposals[r]) + 1
       IN /\ View(r)[x] = "none" /\ Fresh(r, x)
          /\ Ops[c].kind = "storage" => hasTree[x]
          /\ proposals' = [proposals EXCEPT ![r] = Append(@, c)]
          /\ log' = [[log EXCEPT ![x] = JoinLog(x)] EXCEPT ![r][s] = [bal |-> b, cmd |-> c]]
          /\ ballot' = [ballot EXCEPT ![x] = JoinBallot(x)]
          /\ granted' = [granted EXCEPT ![x] = JoinGranted(x)]
          /\ SendAll(Proposal(r, b, s, c))
    /\ UNCHANGED <<envVars, applied, hasTree, role, readBarrier, waitLeft, relinquished,
                   heardLeft, ghostVars>>

\* Leader r removes member Ops[c].who (a failed replica, or a log replica no
\* longer needed once a storage replica replaced it).
RemoveMember(r, c) ==
    /\ MayChange(r, c, "remove")
    /\ LET x == Ops[c].who IN View(r)[x] # "none" /\ x # r
    /\ AppendCmd(r, c)
    /\ UNCHANGED <<envVars, ballot, granted, applied, hasTree, role, readBarrier, waitLeft,
                   relinquished, heardLeft, ghostVars>>

\* Leader r promotes log replica Ops[c].who, which has installed a B-tree
\* snapshot and keeps applying the log tail, to a storage replica.
PromoteMember(r, c) ==
    /\ MayChange(r, c, "promote")
    /\ LET x == Ops[c].who IN View(r)[x] = "log" /\ hasTree[x]
    /\ AppendCmd(r, c)
    /\ UNCHANGED <<envVars, ballot, granted, applied, hasTree, role, readBarrier, waitLeft,
                   relinquished, heardLeft, ghostVars>>

\* Replica x, which keeps no B-tree, installs a copy of storage replica
\* src's B-tree (a committed prefix of the log); it then applies the log's
\* later committed slots itself.  x is a log replica (to be promoted) or a
\* non-member that a change command would add as a storage replica.  The
\* copy is of src's B-tree as it was at some point: its first n slots.
SnapshotTarget(x) ==
    \/ View(x)[x] = "log"
    \/ \E c \in ChangeCmds : Ops[c].op = "add" /\ Ops[c].who = x /\ Ops[c].kind = "storage"

InstallSnapshot(x, src) ==
    /\ x # src
    /\ ~hasTree[x] /\ hasTree[src]
    /\ SnapshotTarget(x)
    /\ LinkOk(src, x)
    /\ \E n \in 0..Len(applied[src]) : applied' = [applied EXCEPT ![x] = SnapshotOf(src, n)]
    /\ hasTree' = [hasTree EXCEPT ![x] = TRUE]
    /\ UNCHANGED <<envVars, netVars, ballot, log, granted, volatileVars, ghostVars>>

-----------------------------------------------------------------------------

\* Leader r re-proposes the command it recovered for slot s in its ballot b,
\* in slot order.
Phase2a(r, b, s) ==
    /\ role[r] = "leader" /\ ballot[r] = b
    /\ s \in 1..readBarrier[r]
    /\ ~Proposed(b, s)
    /\ \A t \in 1..(s - 1) : ProposedOrApplied(r, b, t)
    /\ LET c == proposals[r][s] IN
         /\ log' = [log EXCEPT ![r][s] = [bal |-> b, cmd |-> c]]
         /\ SendAll(Proposal(r, b, s, c))
    /\ UNCHANGED <<envVars, ballot, granted, applied, hasTree, volatileVars, ghostVars>>

(***************************************************************************)
(* Acceptor a persists the proposal (2a message m) and votes for it.       *)
(* CHOICE: a write-ahead log has no holes (paper 5.2 checks "that the log *)
(* file doesn't have any holes in the sequence numbers"), so an acceptor  *)
(* takes slot s of ballot b only after slot s-1 of the same ballot; the   *)
(* leader proposes in slot order, so a reordered proposal just waits.    *)
(* A replica that is not a member in its own view votes too once the     *)
(* ballot's leader has proposed adding it: that is how a joining replica  *)
(* catches up (its votes count once the leader's view includes it).       *)
(***************************************************************************)
Joining(a, b) ==
    \E m \in msgs : m.type = "2a" /\ m.bal = b /\ m.cmd \in ChangeCmds
                   /\ Ops[m.cmd].op = "add" /\ Ops[m.cmd].who = a

Phase2b(a, m) ==
    /\ m.type = "2a" /\ Receivable(m, a)
    /\ IF IsMember(a) THEN TRUE ELSE Joining(a, m.bal)
    /\ m.bal >= ballot[a]
    /\ m.slot > 1 =>
          IF m.slot - 1 <= SkipBound(a) THEN TRUE  \* after a skipped slot
          ELSE log[a][m.slot - 1].bal = m.bal
    /\ ballot' = [ballot EXCEPT ![a] = m.bal]
    /\ log' = [log EXCEPT ![a][m.slot] = [bal |-> m.bal, cmd |-> m.cmd]]
    /\ IF m.bal > ballot[a] THEN StepDown(a) ELSE UNCHANGED stepVars
    /\ Send([type |-> "2b", bal |-> m.bal, slot |-> m.slot, cmd |-> m.cmd, from |-> a])
    /\ UNCHANGED <<envVars, granted, applied, hasTree, heardLeft, ghostVars>>

\* Replicas whose phase-2b vote for (b, s) leader r has received.
Votes2b(r, b, s) ==
    {r} \cup {m.from : m \in {m \in msgs : m.type = "2b" /\ m.bal = b /\ m.slot = s
                                       /\ Counted(m, r)}}

\* Leader r learns that slot s is committed in ballot b (in slot order, as
\* a commit index), tells the others
\* and acknowledges the write to its client (paper 3: "a write is
\* acknowledged to the application once a quorum of peers persists the log
\* record to their local write-ahead logs").
(* CHOICE: a new leader re-commits recovered entries only once earlier     *)
(* leases have surely expired, since acknowledging a recovered write is    *)
(* serving it: otherwise an old leader whose lease still runs could serve  *)
(* a strong read that misses a write already acknowledged (TLC found this).*)
(* CHOICE: a leader whose recovered log holds a change it has not yet     *)
(* re-proposed does not commit: its view already includes that change, so *)
(* its view at every commit is the configuration of what it has proposed *)
(* in its ballot (which ChosenTriples relies on).                         *)
Commit(r, b, s) ==
    /\ role[r] = "leader" /\ ballot[r] = b
    /\ waitLeft[r] = 0
    /\ log[r][s].bal = b
    /\ ~Committed(b, s)
    /\ \A t \in 1..(s - 1) : CommittedOrApplied(r, b, t)
    /\ \A t \in 1..readBarrier[r] : proposals[r][t] \in ChangeCmds => ProposedOrApplied(r, b, t)
    /\ CommitQuorum(View(r), Votes2b(r, b, s))
    /\ Send([type |-> "commit", bal |-> b, slot |-> s, from |-> r])
    /\ acked' = IF log[r][s].cmd = NoOp THEN acked ELSE acked \cup {log[r][s].cmd}
    /\ UNCHANGED <<envVars, durableVars, volatileVars, precede>>

\* A replica with a B-tree applies its next slot to it once it knows the
\* slot is committed with the ballot of its own copy.  Membership changes
\* leave the key-value state as it is.
Apply(r) ==
    /\ hasTree[r]
    /\ Len(applied[r]) < MaxSlot
    /\ LET s == Len(applied[r]) + 1 IN
         /\ log[r][s].bal > 0
         /\ KnownCommitted(r, s)
         /\ applied' = [applied EXCEPT ![r] = Append(@, log[r][s].cmd)]
    /\ UNCHANGED <<envVars, netVars, ballot, log, granted, hasTree, volatileVars, ghostVars>>

\* Leader r asks for a lease of LeaseDur from now on its clock.  CHOICE: it
\* renews when at most RenewAhead of its lease is left, only if the new
\* lease would outlast the wait after its election, and with one request
\* outstanding at a time: the previous one was granted by a quorum or has
\* expired.
RenewAhead == 1
RenewDue(r) == LeaseLeft(r) <= RenewAhead
\* A relinquished leader never renews (a hook: the mutant RenewAfterRelinquish
\* forgets this, and its renewal re-arms the lease, as a renewal timer that
\* nobody cancelled would).
MayRenew(r) == ~relinquished[r]

LeaseRenew(r) ==
    /\ role[r] = "leader"
    /\ MayRenew(r)
    /\ LeaseDur > waitLeft[r]
    /\ RenewDue(r)
    /\ ~\E m \in msgs : m.type = "lease" /\ m.from = r /\ m.bal = ballot[r]
                        /\ m.left > LeaseLeft(r)
    /\ Send([type |-> "lease", bal |-> ballot[r], left |-> LeaseDur,
             held |-> PeerConfirm /\ HoldsLease(r), from |-> r])
    /\ relinquished' = [relinquished EXCEPT ![r] = FALSE]
    /\ UNCHANGED <<envVars, durableVars, role, proposals, readBarrier, waitLeft, heardLeft,
                   ghostVars>>

\* Whether granting request m means hearing a healthy leader (a hook: the
\* mutant VouchWithoutLease counts any request).
Vouches(m) == m.held

\* Replica a grants the lease of lease request m: it has promised no higher
\* ballot, so this grant happens before any later leader's election.  A
\* request from a leader holding its lease is a heartbeat (see Hears).
LeaseGrant(a, m) ==
    /\ m.type = "lease" /\ Receivable(m, a)
    /\ IsMember(a)
    /\ m.bal >= ballot[a]
    /\ ballot' = [ballot EXCEPT ![a] = m.bal]
    /\ granted' = [granted EXCEPT ![a] = m.bal]
    /\ IF m.bal > ballot[a] THEN StepDown(a) ELSE UNCHANGED stepVars
    /\ heardLeft' = IF PeerConfirm /\ Vouches(m) THEN [heardLeft EXCEPT ![a] = LeaseDur]
                    ELSE heardLeft
    /\ Send([type |-> "leaseAck", bal |-> m.bal, left |-> m.left, from |-> a, to |-> m.from])
    /\ UNCHANGED <<envVars, log, applied, hasTree, ghostVars>>

(***************************************************************************)
(* Lease handoff (paper 6: a deployment restarts every replica's process; *)
(* the leader hands its leadership off first).  Leader r, holding its     *)
(* lease, stops serving and renewing (Relinquished: its lease is void     *)
(* from now on) and tells successor s, a storage replica of its view,     *)
(* which ballot's lease it gave up.  s starts an election at once, with no *)
(* peer confirmation (HandedOff), and need not wait out that lease (see    *)
(* the CHOICE on handoff at BecomeLeader).  r leads on, without serving,   *)
(* until s's ballot deposes it.  HandoffsOn (a hook) enables it.          *)
(***************************************************************************)
HandoffsOn == FALSE

\* Which leader may hand off to which successor: any (a hook, a scenario
\* bound like MayStartBallot: the HandoffGap model hands off to the replica
\* that has a ballot left to start).
MayRelinquish(r, s) == TRUE

LeaseRelinquish(r, s) ==
    /\ HandoffsOn
    /\ MayRelinquish(r, s)
    /\ HoldsLease(r)
    /\ s # r /\ View(r)[s] = "storage"
    /\ relinquished' = [relinquished EXCEPT ![r] = TRUE]
    /\ Send([type |-> "handoff", bal |-> ballot[r], from |-> r, to |-> s])
    /\ UNCHANGED <<envVars, durableVars, role, proposals, readBarrier, waitLeft, heardLeft,
                   ghostVars>>

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
    /\ LET done == CommittedByLeader(r) IN
          \A t \in 1..readBarrier[r] :
              IF t <= SkipBound(r) THEN TRUE ELSE t \in done
    /\ Len(applied[r]) >= readBarrier[r]
    /\ \A s \in CommittedByLeader(r) : s <= Len(applied[r])

CanStrongRead(r) == CanServe(r) /\ ReadReady(r)

\* A strongly consistent read of key k, served by the leader from its B-tree.
\* It changes nothing; Linearizability checks every value it can return.
StrongRead(r, k) ==
    /\ CanStrongRead(r) /\ k \in Keys
    /\ UNCHANGED vars

\* Whether r serves eventually consistent reads (a hook: the mutant
\* LogReplicaServes lets a log replica holding a snapshot serve them).
MayServeEventual(r) == IsStorage(r)

\* An eventually consistent read of key k from any storage replica's B-tree.
\* It changes nothing; EventualReadsCommitted checks every value it can return.
EventualRead(r, k) ==
    /\ MayServeEventual(r) /\ k \in Keys
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
    /\ ballot' = [ballot EXCEPT ![r] = DurableBallot(r)]
    /\ log' = [log EXCEPT ![r] = DurableLog(r)]
    /\ granted' = [granted EXCEPT ![r] = DurableGranted(r)]
    /\ StepDown(r)
    /\ heardLeft' = [heardLeft EXCEPT ![r] = 0]
    /\ Drop(ProbeMsgs(r))
    /\ UNCHANGED <<envVars, applied, hasTree, ghostVars>>

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
(***************************************************************************)
(* Ghost state for NoNeedlessElection and HandoffGap, kept by GhostStep,  *)
(* which every Next disjunct conjoins (so no action has to); both are     *)
(* constant unless PeerConfirm or HandoffsOn is on.                       *)
(*                                                                         *)
(* A leader L is healthy via quorum Q (L in Q) while it holds its lease   *)
(* and every other member of Q has working links to and from it           *)
(* (downLinks) and hears it (heardLeft: the links delivered its           *)
(* heartbeat).  window[r] holds the pairs <<L, Q>> healthy in every state *)
(* since r began suspecting: an election r starts while it is not empty   *)
(* is needless.  (Healthy in the state the election starts from alone is *)
(* not enough to blame the follower: the answers it counted were given   *)
(* earlier, when the leader may not have been.)                           *)
(*                                                                         *)
(* gap counts the Ticks (real time) after a LeaseRelinquish during which  *)
(* no replica could serve a strong read; it stops at the first state in    *)
(* which one can, and just past HandoffBound (so the state space stays     *)
(* finite).  Only a model with a bounded message delay (RoundNet) keeps it.*)
(***************************************************************************)
\* (derived at HandoffGap below)
HandoffBound == 5

HealthyVia(L, Q) ==
    /\ L \in Q /\ IsQuorumOf(View(L), Q)
    /\ HoldsLease(L)
    /\ \A q \in Q \ {L} : LinkOk(L, q) /\ LinkOk(q, L) /\ heardLeft[q] > 0

\* Whether GhostStep keeps window (a hook: a model that does not check
\* NoNeedlessElection turns it off, since the ghost multiplies its states).
TrackNeedless == PeerConfirm

GhostStep(isTick) ==
    /\ window' =
          IF ~TrackNeedless THEN window
          ELSE LET H == {p \in Replicas \X SUBSET Replicas : HealthyVia(p[1], p[2])}
               IN [r \in Replicas |->
                     IF Suspecting(r) THEN (IF window[r] = {} THEN {} ELSE window[r] \cap H)
                     ELSE IF \E m \in msgs' : m.type = "probe" /\ m.from = r THEN H
                     ELSE {}]
    /\ gap' =
          IF ~(HandoffsOn /\ RoundNet) THEN gap
          ELSE CASE gap = -1 /\ \E r \in Replicas : relinquished'[r] /\ ~relinquished[r] -> 0
                 [] gap >= 0 /\ \E r \in Replicas : CanStrongRead(r) -> -2
                 [] gap >= 0 /\ isTick -> IF gap > HandoffBound THEN gap ELSE gap + 1
                 [] OTHER -> gap

(***************************************************************************)
(* The next-state relation.  Every disjunct is a named operator, so TLC    *)
(* names each step of a counterexample itself (etcd's etcdraft.tla does   *)
(* the same): Next<Action> (conformance/ maps it to the action of         *)
(* reference/actions.py).  A receiving action scans msgs once, filtered   *)
(* by the message type it takes, before trying each receiver: the same    *)
(* steps, with a third of the work (the search is the standard set's      *)
(* critical path).                                                        *)
(*                                                                         *)
(* StrongRead and EventualRead change no state, so Next leaves them out;  *)
(* the invariants check every value they could return in every state.    *)
(***************************************************************************)
NextPhase1a ==
    /\ \E r \in Replicas, b \in Ballots : Phase1a(r, b)
    /\ GhostStep(FALSE)
NextPhase1b ==
    /\ \E m \in msgs : m.type = "1a" /\ \E a \in Replicas : Phase1b(a, m)
    /\ GhostStep(FALSE)
NextBecomeLeader ==
    \* (b is r's ballot and r a candidate, as BecomeLeader requires: tested before
    \* Q is enumerated, for TLC's speed)
    /\ \E r \in Replicas : role[r] = "candidate" /\
                             \E Q \in SUBSET Replicas : BecomeLeader(r, ballot[r], Q)
    /\ GhostStep(FALSE)
NextClientWrite ==
    /\ \E r \in Replicas, c \in Cmds : ClientWrite(r, c)
    /\ GhostStep(FALSE)
NextPhase2a ==
    /\ \E r \in Replicas, b \in Ballots, s \in Slots : Phase2a(r, b, s)
    /\ GhostStep(FALSE)
NextPhase2b ==
    /\ \E m \in msgs : m.type = "2a" /\ \E a \in Replicas : Phase2b(a, m)
    /\ GhostStep(FALSE)
NextCommit ==
    /\ \E r \in Replicas, b \in Ballots, s \in Slots : Commit(r, b, s)
    /\ GhostStep(FALSE)
NextApply ==
    /\ \E r \in Replicas : Apply(r)
    /\ GhostStep(FALSE)
NextAddMember ==
    /\ \E r \in Replicas, c \in ChangeCmds : AddMember(r, c)
    /\ GhostStep(FALSE)
NextRemoveMember ==
    /\ \E r \in Replicas, c \in ChangeCmds : RemoveMember(r, c)
    /\ GhostStep(FALSE)
NextPromoteMember ==
    /\ \E r \in Replicas, c \in ChangeCmds : PromoteMember(r, c)
    /\ GhostStep(FALSE)
NextInstallSnapshot ==
    /\ \E x, src \in Replicas : InstallSnapshot(x, src)
    /\ GhostStep(FALSE)
NextLeaseRenew ==
    /\ \E r \in Replicas : LeaseRenew(r)
    /\ GhostStep(FALSE)
NextLeaseGrant ==
    /\ \E m \in msgs : m.type = "lease" /\ \E a \in Replicas : LeaseGrant(a, m)
    /\ GhostStep(FALSE)
NextLeaseRelinquish ==
    /\ \E r, s \in Replicas : LeaseRelinquish(r, s)
    /\ GhostStep(FALSE)
NextSuspect ==
    /\ \E r \in Replicas : Suspect(r)
    /\ GhostStep(FALSE)
NextAnswerProbe ==
    /\ \E m \in msgs : m.type = "probe" /\ \E a \in Replicas : AnswerProbe(a, m)
    /\ GhostStep(FALSE)
NextClearSuspicion ==
    /\ \E r \in Replicas : ClearSuspicion(r)
    /\ GhostStep(FALSE)
NextCrash ==
    /\ \E r \in Replicas : Crash(r)
    /\ GhostStep(FALSE)
NextLinkDown ==
    /\ \E from, to \in Replicas : LinkDown(from, to)
    /\ GhostStep(FALSE)
NextLinkUp ==
    /\ \E from, to \in Replicas : LinkUp(from, to)
    /\ GhostStep(FALSE)
NextTick ==
    /\ Tick
    /\ GhostStep(TRUE)

ProtocolNext ==
    \/ NextPhase1a \/ NextPhase1b \/ NextBecomeLeader \/ NextClientWrite
    \/ NextPhase2a \/ NextPhase2b \/ NextCommit \/ NextApply
    \/ NextLeaseRenew \/ NextLeaseGrant
    \/ NextAddMember \/ NextRemoveMember \/ NextPromoteMember \/ NextInstallSnapshot
    \/ NextSuspect \/ NextAnswerProbe \/ NextClearSuspicion \/ NextLeaseRelinquish

FaultNext == NextCrash \/ NextLinkDown \/ NextLinkUp

Next == ProtocolNext \/ FaultNext \/ NextTick

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
(*    (Except a heartbeat, a request that says its leader held its lease, *)
(*    while failure detection is on: granting one makes its granter vouch *)
(*    for a leader, which enables steps.)                                 *)
(*    Which of the two it keeps depends on exploration order, so distinct *)
(*    state counts are repeatable only with one TLC worker; the manifest  *)
(*    pins single-worker counts.                                          *)
(***************************************************************************)
Dead(m) ==
    \/ /\ m.type = "1b"
       /\ ~(role[m.to] = "candidate" /\ ballot[m.to] = m.bal)
    \/ /\ IsLeaseMsg(m)
       /\ ~(role[LeaseOwner(m)] = "leader" /\ ballot[LeaseOwner(m)] = m.bal)
       /\ ~(PeerConfirm /\ m.type = "lease" /\ m.held)

LiveView ==
    <<offset, downLinks, {m \in msgs : ~Dead(m)}, fresh, durableVars, volatileVars, ghostVars,
      wrapVars>>

-----------------------------------------------------------------------------
(* Properties *)

Entries == [bal : 0..MaxBallot, cmd : {NoOp} \cup Cmds]

TypeOK ==
    /\ offset \in [Replicas -> 0..MaxDrift]
    /\ hasTree \in [Replicas -> BOOLEAN]
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
    /\ \A m \in msgs : m.type \in {"1a", "1b", "2a", "2b", "commit", "lease", "leaseAck",
                                    "probe", "probeAck", "handoff"}
    /\ fresh \subseteq msgs
    /\ relinquished \in [Replicas -> BOOLEAN]
    /\ heardLeft \in [Replicas -> 0..LeaseDur]
    /\ acked \subseteq Cmds
    /\ precede \subseteq Cmds \X Cmds
    /\ window \in [Replicas -> SUBSET (Replicas \X SUBSET Replicas)]
    /\ gap \in Int

(***************************************************************************)
(* Chosen values.  Computed once from the 2b votes in msgs; the properties *)
(* below only look values up in these sets (TLC re-evaluates definitions  *)
(* per use, so scanning msgs once per property keeps checking fast).      *)
(***************************************************************************)
\* The commands ballot b proposed, in slot order (a leader proposes slots in
\* order, so they are a prefix 1..k of the log).
ProposedSeq(b) ==
    LET ps == {m \in msgs : m.type = "2a" /\ m.bal = b}
    IN [s \in 1..Cardinality(ps) |-> (CHOOSE m \in ps : m.slot = s).cmd]

(***************************************************************************)
(* <<b, s, c>>: command c is chosen at slot s in ballot b: the voters form *)
(* a quorum of a configuration ballot b's leader decided with once it had *)
(* proposed s, i.e. of its proposals up to any slot n >= s (on-append:    *)
(* a change counts from its own slot on, and Commit makes the leader's    *)
(* view that of what it proposed).  Each voter's 2b is looked up in msgs  *)
(* by its record (a set lookup), rather than scanning every vote.         *)
(***************************************************************************)
ChosenTriples ==
    LET cands == {<<m.bal, m.slot, m.cmd>> : m \in {m \in msgs : m.type = "2b"}}
        voters(t) == {a \in Replicas : [type |-> "2b", bal |-> t[1], slot |-> t[2],
                                          cmd |-> t[3], from |-> a] \in msgs}
    IN IF ChangeCmds = {}
       THEN {t \in cands : QuorumOf(InitConfig, voters(t))}
       ELSE LET seqs == [b \in {t[1] : t \in cands} |-> ProposedSeq(b)]
            IN {t \in cands :
                  \E n \in t[2]..Len(seqs[t[1]]) :
                      QuorumOf(CfgOf(SubSeq(seqs[t[1]], 1, n)), voters(t))}

\* <<s, c>>: command c is chosen at slot s.
PairsOf(triples) == {<<t[2], t[3]>> : t \in triples}
ChosenPairs == PairsOf(ChosenTriples)

(* Each property below is written over the chosen set it reads (an *In    *)
(* operator) and then named over ChosenTriples or ChosenPairs, so that    *)
(* trace validation can compute the chosen set once per state for all.   *)

\* No slot has two chosen values: no two chosen <<s, c>> share their slot.
AgreementIn(pairs) == Cardinality({p[1] : p \in pairs}) = Cardinality(pairs)
Agreement == AgreementIn(ChosenPairs)

\* The longest prefix of slots that are all in pairs, as a command sequence.
PrefixOf(pairs) ==
    LET n == Max({k \in 0..MaxSlot : \A s \in 1..k : \E p \in pairs : p[1] = s})
    IN [s \in 1..n |-> CHOOSE c \in {p[2] : p \in {p \in pairs : p[1] = s}} : TRUE]

\* The configuration the chosen prefix of the log implies.
ChosenConfigIn(chosen) == CfgOf(PrefixOf(PairsOf(chosen)))

\* Replicas whose durable log holds command c at slot s.
Holders(s, c) == {a \in Replicas : log[a][s].cmd = c /\ log[a][s].bal > 0}

\* No quorum of configuration C lacks a copy: every quorum of C meets holders H.
\* (For an odd number of members this is "H is a quorum"; with an even number a
\* half of the members suffices.  A leader commits on append, so right after it
\* appends a change, a write may be held by a quorum of its new view that is
\* only half of the chosen configuration: still, every election quorum, which
\* must be a quorum of the chosen configuration, meets it.)
MeetsEveryQuorum(C, H) == ~QuorumOf(C, MembersOf(C) \ H)

\* An acknowledged write is chosen, no quorum of the chosen configuration
\* lacks it in its durable logs now (so no crash and no membership change has
\* lost it), and it is proposed by every leader of a ballot at least the one
\* it was chosen in (every later leader).
DurabilityIn(chosen) ==
    LET chosenCmds == {t[3] : t \in chosen}
        cfg == ChosenConfigIn(chosen)
        \* <<s, c>> held at slot s of some durable log
        held == UNION {{<<s, log[a][s].cmd>> : s \in {s \in Slots : log[a][s].bal > 0}} :
                       a \in Replicas}
        \* commands a quorum's durable logs hold at one slot
        quorumHeld == {p[2] : p \in {p \in held : MeetsEveryQuorum(cfg, Holders(p[1], p[2]))}}
    IN
    /\ \A c \in acked : c \in chosenCmds /\ c \in quorumHeld
    \* (each leader's proposals and the commands chosen at or below its ballot are
    \* computed once, not once per acknowledged write: the same condition, linear
    \* rather than quadratic in the log, which trace validation feels)
    /\ \A r \in Replicas :
          role[r] = "leader" =>
              LET upTo == {t[3] : t \in {t \in chosen : t[1] <= ballot[r]}}
              IN acked \cap upTo \subseteq Range(proposals[r])
Durability == DurabilityIn(ChosenTriples)

IsPrefix(p, q) == Len(p) <= Len(q) /\ p = SubSeq(q, 1, Len(p))

\* Every entry of seq is the command chosen at its slot.
AllChosen(seq, chosen) == \A i \in DOMAIN seq : <<i, seq[i]>> \in chosen

\* Replicas that keep a B-tree.
Trees == {r \in Replicas : hasTree[r]}

\* Applied B-tree states are prefixes of one sequence of chosen commands.
StateMachineSafetyIn(chosen) ==
    /\ \A r1, r2 \in Trees : IsPrefix(applied[r1], applied[r2]) \/ IsPrefix(applied[r2], applied[r1])
    /\ \A r \in Trees : AllChosen(applied[r], chosen)
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
LinearizabilityIn(chosen) ==
    /\ \A p \in precede : \A x, y \in chosen :
          (x[2] = p[1] /\ y[2] = p[2]) => x[1] < y[1]
    /\ \A r \in Replicas : CanStrongRead(r) =>
          /\ acked \subseteq Range(applied[r])
          /\ AllChosen(applied[r], chosen)
Linearizability == LinearizabilityIn(ChosenPairs)

\* The longest prefix of slots that are all chosen, as a command sequence.
ChosenPrefix == PrefixOf(ChosenPairs)

\* Every value an eventual read can return was the key's value after some
\* prefix of the committed sequence: never a value from nowhere.
EventualReadsCommittedIn(pairs) ==
    LET prefix == PrefixOf(pairs)
        committedValues(k) == {StateOf(SubSeq(prefix, 1, n))[k] : n \in 0..Len(prefix)}
    IN \A r \in Trees, k \in Keys : StateOf(applied[r])[k] \in committedValues(k)
EventualReadsCommitted == EventualReadsCommittedIn(ChosenPairs)

-----------------------------------------------------------------------------
(* Membership properties *)

\* Every quorum of C1 and every quorum of C2 share a replica.
QuorumsIntersect(C1, C2) ==
    \A Q \in MinimalQuorumsOf(C1) : ~QuorumOf(C2, MembersOf(C2) \ Q)

\* Leader r's ballot can still gather a quorum of its view: enough of the
\* view's members have promised no higher ballot.
CanDecide(r) ==
    /\ role[r] = "leader"
    /\ QuorumOf(View(r), {a \in Replicas : ballot[a] <= ballot[r]})

(***************************************************************************)
(* ConfigSafety: two configurations that can both form quorums in         *)
(* overlapping ballots intersect.  The configurations that can form       *)
(* quorums now are the views of the leaders whose ballots can still        *)
(* gather a quorum, and the configuration of the chosen log (which every  *)
(* future leader starts from): every two of them must have intersecting   *)
(* quorums, or two leaders could choose different values for one slot.    *)
(***************************************************************************)
ConfigSafetyIn(chosen) ==
    LET live == {r \in Replicas : CanDecide(r)}
        cfgs == {View(r) : r \in live} \cup {ChosenConfigIn(chosen)}
    IN \A C1, C2 \in cfgs : QuorumsIntersect(C1, C2)
ConfigSafety == ConfigSafetyIn(ChosenTriples)

\* A log replica never leads: every leader is a storage replica of its own
\* view, with a B-tree.
LogReplicaNeverLeads == \A r \in Replicas : role[r] = "leader" => IsStorage(r)

\* A log replica never serves a read: whoever can serve a strong or an
\* eventual read is a storage replica of its own view, with a B-tree.
LogReplicaNeverServes ==
    \A r \in Replicas : (CanStrongRead(r) \/ MayServeEventual(r)) => IsStorage(r)

(***************************************************************************)
(* An acknowledged write survives the replacement of any one member.  A   *)
(* replacement is two changes through the log: a new incarnation joins    *)
(* (as a log replica, or as a storage replica built from a snapshot) and  *)
(* the old member leaves.  So: no quorum of the chosen configuration      *)
(* lacks the write in its durable logs (each change is decided by such a  *)
(* quorum, whose members then hold every earlier slot), and every B-tree  *)
(* that has reached the write's slot, however it was built (from a        *)
(* snapshot included), holds it there.  Not the stronger "every quorum    *)
(* left after losing any one member": that holds only once the changes    *)
(* catch up, not in every state (a leader commits on append).  Implied by *)
(* Durability and StateMachineSafety; stated on its own because it is the *)
(* paper's claim for healing, and the mutant SnapshotMissesSlot targets it.*)
(***************************************************************************)
AckedSurvivesReplacementIn(chosen) ==
    LET cfg == ChosenConfigIn(chosen)
        slotsOf(c) == {t[2] : t \in {t \in chosen : t[3] = c}}
    IN \A c \in acked \cap WriteCmds : \A s \in slotsOf(c) :
         /\ MeetsEveryQuorum(cfg, Holders(s, c))
         /\ \A r \in Trees : Len(applied[r]) >= s => applied[r][s] = c
AckedSurvivesReplacement == AckedSurvivesReplacementIn(ChosenTriples)

-----------------------------------------------------------------------------
(* Gray failures and handoff *)

(***************************************************************************)
(* NoNeedlessElection: no replica starts an election while the leader     *)
(* has been healthy (holding its lease, with working links to and from a  *)
(* quorum that hears it) throughout the follower's suspicion; see          *)
(* GhostStep.  An invariant over ghost state, so TLC checks it in every    *)
(* reachable state, not only along fair behaviours.  (It says nothing     *)
(* when PeerConfirm is off: there is no suspicion to blame.)              *)
(***************************************************************************)
NoNeedlessElection == \A r \in Replicas : role[r] = "candidate" => window[r] = {}

(***************************************************************************)
(* HandoffGap: after a LeaseRelinquish, with no faults and a network that  *)
(* delivers every message within one message delay (RoundNet, a Tick per  *)
(* delay), some replica can serve strong reads again within HandoffBound  *)
(* delays.  The bound, counted along the critical path:                   *)
(*   1 handoff   old leader -> successor (which starts its election)     *)
(*   2 1a        successor -> voters                                     *)
(*   3 1b        voters -> successor, which leads (no lease wait: the    *)
(*               only lease its voters granted was handed off)            *)
(*   4 lease request and 2a of the recovered slots -> voters             *)
(*   5 grant and 2b -> successor, which holds its lease, commits and      *)
(*               applies the recovered slots: it serves.                  *)
(* Without the handoff the successor would wait a whole NewLeaderWait     *)
(* (LeaseDur + LeaseMargin) after step 3: the mutant NoHandoffSkip shows  *)
(* HandoffGap failing then.  A real network's delay bound d and the       *)
(* processing and timer delays on the path turn this into 5 d plus those *)
(* (reference/: the deploy schedule's measured gap).                      *)
(***************************************************************************)
HandoffGap == gap <= HandoffBound

=============================================================================
