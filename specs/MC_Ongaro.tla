------------------------------- MODULE MC_Ongaro -------------------------------
(***************************************************************************)
(* Ongaro's single-server membership-change scenario (raft-dev, 2015),   *)
(* played in Multi-Paxos: four storage replicas r1..r4 and a spare r5.    *)
(* Leader r1 (ballot 1) adds r5 as a log replica, but the change reaches  *)
(* few replicas; r2 (ballot 2) is elected without it and removes r4; r1   *)
(* runs again (ballot 3).  The added and the removed configuration are    *)
(* two changes apart, their majorities disjoint ({r1,r4,r5} of five and  *)
(* {r2,r3} of three).  The election plan r1, r2, r1 is a scenario bound:  *)
(* every state reached is a state of the spec.                            *)
(*                                                                         *)
(* Status: with Raft's election rule (ElectionConfigs <- LatestConfigOnly) *)
(* the counterexample worked out in Replication's CHOICE on elections is  *)
(* about 34 steps deep; breadth-first search passed 350,000 states at     *)
(* depth 20 and random simulation found nothing in minutes, so no model   *)
(* of the manifest uses this module yet.                                  *)
(***************************************************************************)
EXTENDS MC_Reconfig

CONSTANT r5

OGReplicas == {r1, r2, r3, r4, r5}
\* r1..r4 storage replicas, r5 a spare node (a fresh incarnation).
OGInitConfig == [r \in OGReplicas |-> IF r = r5 THEN "none" ELSE "storage"]

AddLog5 == [op |-> "add", who |-> r5, kind |-> "log"]
\* A write (so that each leader has something of its own ballot to commit
\* before it changes anything), then the two competing changes.
OGOps == << Put, AddLog5, Remove4 >>
=============================================================================
