-------------------------- MODULE TraceValidation --------------------------
(***************************************************************************)
(* Trace validation: is a trace of the reference implementation a behavior *)
(* of Replication?  conformance/trace_validation.py turns the per-node     *)
(* trace files into TraceItems, a sequence with one item per traced step   *)
(* and one "tick" item wherever real time advances, and writes a module    *)
(* that EXTENDS this one with the items and the constants.                 *)
(*                                                                         *)
(* Each item is matched by exactly the base spec's action with the item's *)
(* arguments (Phase2b(a, m) with the 2a message m of the item's ballot and *)
(* slot, ...), so every enabling condition of the spec is checked against *)
(* the implementation.  The rule for action A is the operator TV<A> below; *)
(* the runner generates the dispatch on an item's action from the action   *)
(* catalogue (reference/actions.py), and a test checks that every          *)
(* catalogue action has its TV rule here and no rule lacks an action.     *)
(*                                                                         *)
(* After each step the acting replica's state in the spec must match the  *)
(* summary its trace line carries (PostOK, as etcd's Traceetcdraft.tla    *)
(* validates post-states), and the generated config also checks the      *)
(* safety invariants in every state of the behavior.                      *)
(* The behavior is deterministic: a state has at most one successor.  The *)
(* cursor is in the VIEW (TraceView).                                     *)
(*                                                                         *)
(* Verdict.  When the item at cursor cannot be matched the state has no   *)
(* successor and TLC reports a deadlock: the last state of its trace is   *)
(* the spec state at the first unmatched item.  Once every item is matched *)
(* the behavior stutters (TraceDone), so "model checking completed" with  *)
(* Len(TraceItems) + 1 distinct states means the whole trace was matched. *)
(* (The usual form, an invariant "cursor <= Len(TraceItems)" that fails at *)
(* the end, is equivalent, but TLC 2.15 has no ALIAS to shorten the       *)
(* counterexample it would print: every state with every message.)        *)
(***************************************************************************)
EXTENDS Replication

CONSTANTS
    TraceItems,   \* the items, in merged real-time order
    Offset0,      \* every clock's offset (0..MaxDrift) at the first item
    CmdRid,       \* CmdRid[c]: the request id of command c (an index into Ops)
    KilledBefore, \* replicas killed before the first item (in an earlier window)
    TopFrom       \* no log slot above it is filled before the last item (see LogTop)

VARIABLE cursor

\* The lease safety condition (see the CHOICE on leases in Replication): a trace
\* from an implementation configured without it is rejected outright.
ASSUME LeaseMargin >= 2 * MaxDrift

tvVars == <<vars, cursor>>
\* The behavior is deterministic, so the cursor alone identifies a state; keeping
\* the messages out of the fingerprint is most of trace validation's speed.
TraceView == cursor

\* TLC evaluates a constant that the config overrides with a definition
\* (TraceItems <- TVItems) anew at every reference, building every item each time;
\* a zero-arity definition of it is evaluated once.  So steps read these.
Items == TraceItems
Rids == CmdRid

Rid(c) == IF c = NoOp THEN "" ELSE Rids[c]

\* The highest slot of log l holding an entry (0: none), searching down from s; it is
\* close to the top, so this is quick where Max over the used slots is quadratic.
RECURSIVE TopOf(_, _)
TopOf(l, s) == IF s = 0 THEN 0 ELSE IF l[s].bal > 0 THEN s ELSE TopOf(l, s - 1)

\* A log slot is filled only by a step whose item names the slot (ClientWrite, a
\* change, Phase2a, Phase2b), so no slot above the highest slot the items up to
\* this window's last name (TopFrom, computed by the runner) is filled in any state
\* of the window, and the search may start there rather than at MaxSlot, which
\* is the whole trace's: an early window of a long trace would otherwise search
\* down through every slot the trace will ever use, at every step.
ASSUME TopFrom \in 0..MaxSlot
LogTop(r) == TopOf(log[r], TopFrom)

(***************************************************************************)
(* d units of real time pass and the clocks end at offsets off.  This is  *)
(* d Tick steps.  A Tick may move an offset anywhere in 0..MaxDrift as     *)
(* long as the clock does not run backwards (adv = 1 + new - old >= 0),   *)
(* i.e. an offset rises by any amount but falls by at most one per step.  *)
(* So d steps reach off from offset iff every clock's total advance        *)
(* d + off[r] - offset[r] is >= 0: raise the offset in one step, or lower *)
(* it one unit per step (the clock standing still).  Sub0 composes         *)
(* (Sub0(Sub0(x, a), b) = Sub0(x, a + b)), and a lease message dropped at *)
(* 0 on the way would be 0 at the end too, so the result is exactly the    *)
(* composition.                                                            *)
(***************************************************************************)
TickBy(d, off) ==
    LET adv == [r \in Replicas |-> d + off[r] - offset[r]] IN
    /\ d >= 1
    /\ \A r \in Replicas : off[r] \in 0..MaxDrift /\ adv[r] >= 0
    /\ ClocksAdvance(off, adv)

(***************************************************************************)
(* One rule per action of the catalogue: the item e, matched by the spec  *)
(* action it names, with the item's arguments.                           *)
(***************************************************************************)
TVTick(e) == TickBy(e.d, e.off)
TVPhase1a(e) == Phase1a(e.r, e.b)
TVPhase1b(e) == Phase1b(e.a, [type |-> "1a", bal |-> e.m.bal, from |-> e.m.from])
TVBecomeLeader(e) == BecomeLeader(e.r, e.b, e.Q)
TVClientWrite(e) == ClientWrite(e.r, e.c) /\ Len(proposals'[e.r]) = e.s
TVPhase2a(e) == Phase2a(e.r, e.b, e.s) /\ Rid(proposals[e.r][e.s]) = e.c
TVPhase2b(e) ==
    \E m \in msgs : /\ m.type = "2a" /\ m.bal = e.m.bal /\ m.slot = e.m.slot
                    /\ m.from = e.m.from /\ Rid(m.cmd) = e.m.cmd
                    /\ Phase2b(e.a, m)
TVCommit(e) == Commit(e.r, e.b, e.s)
TVApply(e) == Apply(e.r) /\ Len(applied'[e.r]) = e.s /\ Rid(applied'[e.r][e.s]) = e.c
TVLeaseRenew(e) == LeaseRenew(e.r)
TVLeaseGrant(e) ==
    LeaseGrant(e.a, [type |-> "lease", bal |-> e.m.bal, left |-> e.m.left, held |-> e.m.held,
                     from |-> e.m.from])
TVLeaseRelinquish(e) == LeaseRelinquish(e.r, e.s)
TVSuspect(e) == Suspect(e.r)
\* The answer the implementation sent must be the one the spec's replica gives.
TVAnswerProbe(e) ==
    /\ AnswerProbe(e.a, [type |-> "probe", from |-> e.m.from])
    /\ Hears(e.a) = e.hears
TVClearSuspicion(e) == ClearSuspicion(e.r)
TVLinkDown(e) == LinkDown(e.from, e.to)
TVLinkUp(e) == LinkUp(e.from, e.to)
TVStrongRead(e) == StrongRead(e.r, e.k)
TVEventualRead(e) == EventualRead(e.r, e.k)
TVAddMember(e) == AddMember(e.r, e.c) /\ Len(proposals'[e.r]) = e.s
TVRemoveMember(e) == RemoveMember(e.r, e.c) /\ Len(proposals'[e.r]) = e.s
TVPromoteMember(e) == PromoteMember(e.r, e.c) /\ Len(proposals'[e.r]) = e.s
TVInstallSnapshot(e) == InstallSnapshot(e.x, e.src) /\ Len(applied'[e.x]) = e.upto
TVCrash(e) == Crash(e.r)
\* The spec's Crash is crash and restart in one step; the restart must find
\* exactly the durable state the spec kept.
TVRestart(e) ==
    /\ ballot[e.rep] = e.ballot /\ granted[e.rep] = e.granted
    /\ Len(applied[e.rep]) = e.applied /\ LogTop(e.rep) = e.log
    /\ UNCHANGED vars
\* A quarantined replica takes no further step, which the spec allows.
TVQuarantine(e) == UNCHANGED vars
\* A killed node takes no further step either (KilledAt below rejects any item of
\* its after its Kill); its identity is never reused, which Fresh in the spec enforces.
TVKill(e) == UNCHANGED vars

\* KilledAt[r]: the index of r's Kill item (beyond the last item if none).  A
\* constant, so TLC computes it once.
KilledAt ==
    [r \in Replicas |->
        LET ks == {j \in DOMAIN Items : Items[j].action = "Kill" /\ Items[j].rep = r}
        IN IF ks = {} THEN Len(Items) + 1 ELSE CHOOSE j \in ks : \A k \in ks : j <= k]

\* Item i is not a step of a replica killed before it (Tick items name none).
AliveFor(i) ==
    "rep" \in DOMAIN Items[i] =>
        Items[i].rep \notin KilledBefore /\ i <= KilledAt[Items[i].rep]
\* The spec keeps every log entry (see the CHOICE on snapshots and truncated logs):
\* a checkpoint changes nothing, but may only cover slots its replica has applied.
TVCheckpoint(e) == e.upto <= Len(applied[e.rep]) /\ e.truncated <= e.upto /\ UNCHANGED vars

(***************************************************************************)
(* The acting replica's state after the step, as its trace line reports   *)
(* it.  The implementation learns a lease grant when it arrives, the spec *)
(* when it is sent (see LeaseGrantors), so a lease the implementation     *)
(* believes it holds must be one the spec's replica holds, not conversely.*)
(***************************************************************************)
PostSummary(r) == [bal |-> ballot[r], role |-> role[r], top |-> LogTop(r),
                   applied |-> Len(applied[r]), lease |-> HoldsLease(r)]

\* (r and q are bound by \E so that priming HoldsLease primes only the state, not
\* the cursor that selects the item; the lease is evaluated only when reported.)
PostOK(e) ==
    "post" \in DOMAIN e =>
        \E r \in {e.rep}, q \in {e.post} :
            /\ ballot'[r] = q.bal /\ role'[r] = q.role
            /\ TopOf(log'[r], TopFrom) = q.top
            /\ Len(applied'[r]) = q.applied
            /\ q.lease => HoldsLease(r)'

TraceInit ==
    /\ offset = Offset0
    /\ Init
    /\ cursor = 1

(***************************************************************************)
(* Windows (conformance/trace_windows.py).  A long trace is validated in   *)
(* consecutive windows; each after the first starts in the state the one  *)
(* before it ended in, which TLC prints (TraceEnd) as the record StateRec *)
(* of every variable of vars, and the runner pastes into the next window  *)
(* as S (TraceInitAt).  A test checks that StateRec names every variable  *)
(* Replication declares.                                                   *)
(***************************************************************************)
StateRec ==
    [offset |-> offset, downLinks |-> downLinks, msgs |-> msgs, fresh |-> fresh,
     ballot |-> ballot, log |-> log, granted |-> granted, applied |-> applied,
     hasTree |-> hasTree, role |-> role, proposals |-> proposals,
     readBarrier |-> readBarrier, waitLeft |-> waitLeft, relinquished |-> relinquished,
     heardLeft |-> heardLeft, acked |-> acked, precede |-> precede, window |-> window,
     gap |-> gap]

TraceInitAt(S) ==
    /\ offset = S.offset /\ downLinks = S.downLinks /\ msgs = S.msgs /\ fresh = S.fresh
    /\ ballot = S.ballot /\ log = S.log /\ granted = S.granted /\ applied = S.applied
    /\ hasTree = S.hasTree /\ role = S.role /\ proposals = S.proposals
    /\ readBarrier = S.readBarrier /\ waitLeft = S.waitLeft
    /\ relinquished = S.relinquished /\ heardLeft = S.heardLeft /\ acked = S.acked
    /\ precede = S.precede /\ window = S.window /\ gap = S.gap
    /\ cursor = 1

\* A compact view of the state each item is tried in.  It is printed (PrintT) so
\* that the runner can report where matching stopped without waiting for TLC to
\* print the whole behavior, every message of every state, as its trace.
Summary == [cursor |-> cursor, role |-> role, ballot |-> ballot, granted |-> granted,
            waitLeft |-> waitLeft, readBarrier |-> readBarrier,
            proposals |-> [r \in Replicas |-> Len(proposals[r])],
            applied |-> [r \in Replicas |-> Len(applied[r])],
            logTop |-> [r \in Replicas |-> LogTop(r)]]

\* Step(e) is the dispatch on e.action to the TV rules above, generated from the
\* action catalogue by conformance/trace_validation.py.  "tv-matched" tells the
\* runner that the action matched, so a deadlock after it is a post-state that
\* differs, printed as "tv-post".
TraceNextVia(Step(_)) ==
    /\ cursor <= Len(Items)
    /\ PrintT(<<"tv-try", Summary>>)
    /\ AliveFor(cursor)
    /\ Step(Items[cursor])
    /\ UNCHANGED wrapVars  \* the ghosts of NoNeedlessElection and HandoffGap: not checked here
    /\ PrintT(<<"tv-matched", cursor>>)
    /\ IF PostOK(Items[cursor]) THEN TRUE
       ELSE /\ \E r \in {Items[cursor].rep}, c \in {cursor} :
                  PrintT(<<"tv-post", c, PostSummary(r)'>>)
            /\ FALSE
    /\ cursor' = cursor + 1

TraceDone == cursor > Len(Items) /\ UNCHANGED tvVars

\* TraceDone for a window with another after it: prints the state it ends in.
TraceEnd ==
    /\ cursor > Len(Items)
    /\ PrintT(<<"tv-end", StateRec, "tv-end-done">>)  \* one line: nothing interleaves
    /\ UNCHANGED tvVars

(***************************************************************************)
(* The safety invariants of Replication, checked in every state of the   *)
(* trace: Agreement, Durability, StateMachineSafety, LeaseExclusivity,    *)
(* ConfigSafety and LogReplicaNeverLeads, with the chosen set computed    *)
(* once per state for all that read it                                    *)
(* (the base spec's *In operators).  The first that fails is printed.    *)
(***************************************************************************)
Holds(name, cond) == cond \/ (PrintT(<<"tv-violated", name>>) /\ FALSE)

TraceSafety ==
    LET triples == ChosenTriples
        pairs   == PairsOf(triples)
    IN /\ Holds("Agreement", AgreementIn(pairs))
       /\ Holds("Durability", DurabilityIn(triples))
       /\ Holds("StateMachineSafety", StateMachineSafetyIn(pairs))
       /\ Holds("LeaseExclusivity", LeaseExclusivity)
       /\ Holds("ConfigSafety", ConfigSafetyIn(triples))
       /\ Holds("LogReplicaNeverLeads", LogReplicaNeverLeads)

TraceNextOrDoneVia(Step(_)) == TraceNextVia(Step) \/ TraceDone
=============================================================================
