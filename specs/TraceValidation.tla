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
(* the implementation.  The behavior is deterministic: a state has at most *)
(* one successor.  The cursor is in the VIEW (TraceView).                  *)
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
    CmdRid        \* CmdRid[c]: the request id of command c (an index into Ops)

VARIABLE cursor

\* The lease safety condition (see the CHOICE on leases in Replication): a trace
\* from an implementation configured without it is rejected outright.
ASSUME LeaseMargin >= 2 * MaxDrift

tvVars == <<vars, cursor>>
\* The behavior is deterministic, so the cursor alone identifies a state; keeping
\* the messages out of the fingerprint is most of trace validation's speed.
TraceView == cursor

Rid(c) == IF c = NoOp THEN "" ELSE CmdRid[c]

LogTop(r) ==
    LET used == {s \in Slots : log[r][s].bal > 0} IN IF used = {} THEN 0 ELSE Max(used)

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
    /\ offset' = off
    /\ waitLeft' = [r \in Replicas |-> Sub0(waitLeft[r], adv[r])]
    /\ msgs' = {m \in {Age(m, adv) : m \in msgs} : ~IsLeaseMsg(m) \/ m.left > 0}
    /\ UNCHANGED <<config, downLinks, durableVars, role, proposals, readBarrier, ghostVars>>

\* The item e, matched by the spec action it names.
Step(e) ==
    CASE e.kind = "tick" -> TickBy(e.d, e.off)
      [] e.action = "Phase1a" -> Phase1a(e.r, e.b)
      [] e.action = "Phase1b" -> Phase1b(e.a, [type |-> "1a", bal |-> e.bal, from |-> e.from])
      [] e.action = "BecomeLeader" -> BecomeLeader(e.r, e.b, e.Q)
      [] e.action = "ClientWrite" -> ClientWrite(e.r, e.c) /\ Len(proposals'[e.r]) = e.s
      [] e.action = "Phase2a" ->
            Phase2a(e.r, e.b, e.s) /\ Rid(proposals[e.r][e.s]) = e.rid
      [] e.action = "Phase2b" ->
            \E m \in msgs : /\ m.type = "2a" /\ m.bal = e.bal /\ m.slot = e.slot
                            /\ m.from = e.from /\ Rid(m.cmd) = e.rid
                            /\ Phase2b(e.a, m)
      [] e.action = "Commit" -> Commit(e.r, e.b, e.s)
      [] e.action = "Apply" ->
            Apply(e.r) /\ Len(applied'[e.r]) = e.s /\ Rid(applied'[e.r][e.s]) = e.rid
      [] e.action = "LeaseRenew" -> LeaseRenew(e.r)
      [] e.action = "LeaseGrant" ->
            LeaseGrant(e.a, [type |-> "lease", bal |-> e.bal, left |-> e.left, from |-> e.from])
      [] e.action = "StrongRead" -> StrongRead(e.r, e.k)
      [] e.action = "EventualRead" -> EventualRead(e.r, e.k)
      [] e.action = "Crash" -> Crash(e.r)
      \* The spec's Crash is crash and restart in one step; the restart must find
      \* exactly the durable state the spec kept.
      [] e.action = "Restart" ->
            /\ ballot[e.r] = e.ballot /\ granted[e.r] = e.granted
            /\ Len(applied[e.r]) = e.applied /\ LogTop(e.r) = e.log
            /\ UNCHANGED vars
      \* A quarantined replica takes no further step, which the spec allows.
      [] e.action = "Quarantine" -> UNCHANGED vars

TraceInit ==
    /\ offset = Offset0
    /\ Init
    /\ cursor = 1

\* A compact view of the state each item is tried in.  It is printed (PrintT) so
\* that the runner can report where matching stopped without waiting for TLC to
\* print the whole behavior, every message of every state, as its trace.
Summary == [cursor |-> cursor, role |-> role, ballot |-> ballot, granted |-> granted,
            waitLeft |-> waitLeft, readBarrier |-> readBarrier,
            proposals |-> [r \in Replicas |-> Len(proposals[r])],
            applied |-> [r \in Replicas |-> Len(applied[r])],
            logTop |-> [r \in Replicas |-> LogTop(r)]]

TraceNext ==
    /\ cursor <= Len(TraceItems)
    /\ PrintT(<<"tv-try", Summary>>)
    /\ Step(TraceItems[cursor])
    /\ cursor' = cursor + 1

TraceDone == cursor > Len(TraceItems) /\ UNCHANGED tvVars

TraceNextOrDone == TraceNext \/ TraceDone

TraceSpec == TraceInit /\ [][TraceNextOrDone]_tvVars
=============================================================================
