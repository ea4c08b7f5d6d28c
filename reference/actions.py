"""The protocol vocabulary, declared once.

Every action of specs/Replication.tla and every environment event a node traces is
declared here: its name, its parameters with their types, which parameters are
*extra* (traced for the checkers' convenience, not parameters of the spec
action), and the shape of the messages it carries. Everything that speaks the
vocabulary derives from this table instead of restating it:

* the typed trace events and the JSON Schema in traces/ (reference/trace_events.py);
* the trace writer's field order (reference/trace.py) and the one trace loader
  (conformance/trace_loader.py);
* the replica's handlers (``@spec_action`` in reference/replica.py), the
  monitor's rules (conformance/monitor.py) and trace validation's per-action
  rules (``TV<Name>`` in specs/TraceValidation.tla, dispatched by
  conformance/trace_validation.py);
* how a TLC counterexample step is named (``action_of_tlc_step``).

tests/test_catalogue.py fails when any of those layers lacks an action declared
here, or has one that is not.

This module imports nothing from the project, so every layer may import it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

ActionKind = Literal["spec", "env"]

# A parameter's type says how it is written in a trace line and how trace validation
# renders it for TLC:
#   replica  a replica id (string)             ballot  an integer >= 1
#   count    an integer >= 0                   slot    an integer >= 1
#   clock    a node's local clock reading, us  quorum  a set of replica ids (sorted array)
#   cmd      a logged command: null (NoOp), a write {"rid", "op"} or a membership
#            change {"rid", "change"} (``change`` as below)
#   write    a client's write command {"rid", "op"}: a new command in the spec's Ops
#   key      an item key {"p", "s"?}
#   wal      how WAL recovery ended: "clean" or "torn"
#   digest   CRC32C of a log, 8 hex digits     text    free text, not checked
#   change   a membership change command {"op": "add"|"remove"|"promote", "who", "kind"?}
#            (kind "storage" or "log", for "add" only): a new command in the spec's Ops
#   flag     a boolean (true/false)
#   msg:<t>  a message of type <t> (MESSAGES)
ParamType = str


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    type: ParamType
    doc: str
    extra: bool = False
    """Not a parameter of the spec action; a checker may hold it against its state."""


@dataclass(frozen=True, slots=True)
class Action:
    name: str
    kind: ActionKind
    params: tuple[Param, ...]
    doc: str
    reads_time: bool = False
    """Its enabling condition or effect reads clocks, the new-leader wait or a lease's
    time left, so trace validation brings real time up to date before it."""
    traced: bool = True
    """It writes a trace line (Tick does not: time passes between lines)."""
    in_next: bool = True
    """It is a disjunct of the spec's Next (reads change no state, so they are not)."""
    post: bool = True
    """Its line carries the replica's state summary after the step."""

    @property
    def handler(self) -> str:
        """The replica method that performs a spec action: ``BecomeLeader`` -> ``become_leader``."""
        return snake_case(self.name)

    @property
    def tv_rule(self) -> str:
        """The TraceValidation.tla operator that matches one traced step of this action."""
        return "TV" + self.name

    @property
    def next_operator(self) -> str:
        """The spec's Next disjunct for this action (etcd's NextRequestVote convention)."""
        return "Next" + self.name


def snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


# Message shapes, as the spec's records (``from`` is the sender).
MESSAGES: dict[str, tuple[tuple[str, ParamType], ...]] = {
    "1a": (("bal", "ballot"), ("from", "replica")),
    "2a": (("bal", "ballot"), ("slot", "slot"), ("cmd", "cmd"), ("from", "replica")),
    # ``start`` (the leader's clock when it asked) instead of the spec's relative
    # ``left``: the granter cannot know the leader's clock; a checker derives ``left``.
    # ``held``: the leader held its lease (time left > 0, not relinquished) when it asked;
    # always false without peer confirmation (gray-failure detection, paper section 6.2).
    "lease": (("bal", "ballot"), ("start", "clock"), ("from", "replica"), ("held", "flag")),
    # A suspecting follower asks a peer whether it still hears a leader holding its lease.
    # ``n``: the suspicion's nonce (a per-replica counter), echoed by the answer, which
    # counts only for that suspicion (the spec deletes an earlier suspicion's probes and
    # answers instead: its CHOICE "a probe carries a fresh nonce").
    "probe": (("from", "replica"), ("n", "count")),
    "probeAck": (("from", "replica"), ("to", "replica"), ("hears", "flag"), ("n", "count")),
    # A leader that relinquished its lease hands its ballot's leadership to ``to``.
    "handoff": (("bal", "ballot"), ("from", "replica"), ("to", "replica")),
}

_R = Param("r", "replica", "the acting replica")
_A = Param("a", "replica", "the acting acceptor")

CATALOGUE: tuple[Action, ...] = (
    Action("Phase1a", "spec", (_R, Param("b", "ballot", "the new ballot")),
           "storage replica r starts an election with ballot b: with peer confirmation, "
           "once a quorum (r with the peers that answered it does not hear a leader holding "
           "its lease either) confirms r's suspicion, or on a handoff for its ballot",
           reads_time=True),
    Action("Phase1b", "spec", (_A, Param("m", "msg:1a", "the 1a message received")),
           "acceptor a promises m.bal and reports its log"),
    Action("BecomeLeader", "spec",
           (_R, Param("b", "ballot", "the ballot won"),
            Param("Q", "quorum", "the minimal quorum (with r) whose promises were used")),
           "candidate r leads ballot b on the promises of Q", reads_time=True),
    Action("ClientWrite", "spec",
           (_R, Param("c", "write", "the client's command"),
            Param("s", "slot", "the slot it was appended at", extra=True)),
           "leader r appends a client write and proposes it", reads_time=True),
    Action("Phase2a", "spec",
           (_R, Param("b", "ballot", "r's ballot"), Param("s", "slot", "the slot"),
            Param("c", "cmd", "the recovered command, the spec's proposals[r][s]", extra=True)),
           "leader r re-proposes the command it recovered for slot s"),
    Action("Phase2b", "spec", (_A, Param("m", "msg:2a", "the 2a message accepted")),
           "acceptor a persists proposal m and votes for it"),
    Action("Commit", "spec",
           (_R, Param("b", "ballot", "r's ballot"), Param("s", "slot", "the slot")),
           "leader r learns slot s is committed and tells the others", reads_time=True),
    Action("Apply", "spec",
           (_R, Param("s", "slot", "the slot applied", extra=True),
            Param("c", "cmd", "its command", extra=True)),
           "storage replica r applies its next committed slot"),
    Action("LeaseRenew", "spec",
           (_R, Param("start", "clock", "r's clock when it asked; lasts LeaseDur from it",
                      extra=True),),
           "leader r asks a quorum for a lease", reads_time=True),
    Action("LeaseGrant", "spec", (_A, Param("m", "msg:lease", "the lease request granted")),
           "replica a grants lease request m (one with m.held: a heard a leader holding "
           "its lease, for LeaseDur on its own clock)", reads_time=True),
    Action("Suspect", "spec", (_R,),
           "follower r, which no longer hears a leader holding its lease and whose election "
           "timeout fired, suspects the leader and probes the peers of its view",
           reads_time=True),
    Action("AnswerProbe", "spec",
           (_A, Param("m", "msg:probe", "the probe answered"),
            Param("hears", "flag", "a hears a leader holding its lease", extra=True)),
           "member a tells m.from whether it hears a leader holding its lease",
           reads_time=True),
    Action("ClearSuspicion", "spec", (_R,),
           "r drops its suspicion: a peer answered that it hears the leader, or r hears a "
           "leader holding its lease again", reads_time=True),
    Action("LeaseRelinquish", "spec",
           (_R, Param("s", "replica", "the successor: a storage member of r's view")),
           "leader r, holding its lease, stops serving and renewing it and hands its "
           "ballot off to s (before a deployment restarts r)", reads_time=True),
    Action("StrongRead", "spec", (_R, Param("k", "key", "the key read")),
           "leader r serves a strongly consistent read", reads_time=True, in_next=False),
    Action("EventualRead", "spec", (_R, Param("k", "key", "the key read")),
           "storage replica r serves an eventually consistent read", in_next=False),
    Action("AddMember", "spec",
           (_R, Param("c", "change", "the change: add c.who as a c.kind member"),
            Param("s", "slot", "the slot it was appended at", extra=True)),
           "leader r appends a configuration command adding a new incarnation",
           reads_time=True),
    Action("RemoveMember", "spec",
           (_R, Param("c", "change", "the change: remove member c.who"),
            Param("s", "slot", "the slot it was appended at", extra=True)),
           "leader r appends a configuration command removing a member", reads_time=True),
    Action("PromoteMember", "spec",
           (_R, Param("c", "change", "the change: log replica c.who becomes storage"),
            Param("s", "slot", "the slot it was appended at", extra=True)),
           "leader r appends a configuration command promoting a log replica that "
           "has installed a B-tree snapshot", reads_time=True),
    Action("InstallSnapshot", "spec",
           (Param("x", "replica", "the replica that installs the snapshot"),
            Param("src", "replica", "the storage replica it was copied from"),
            Param("upto", "count", "slots the snapshot's B-tree covers", extra=True)),
           "replica x, which has no B-tree, installs a copy of src's B-tree"),
    Action("Crash", "spec", (_R,), "replica r crashes, losing its volatile state"),
    Action("LinkDown", "spec",
           (Param("from", "replica", "the link's sender (the node that traces it)"),
            Param("to", "replica", "the link's receiver")),
           "the directed link from -> to starts dropping every message"),
    Action("LinkUp", "spec",
           (Param("from", "replica", "the link's sender (the node that traces it)"),
            Param("to", "replica", "the link's receiver")),
           "the directed link from -> to stops dropping messages"),
    Action("Tick", "spec", (), "real time advances; clocks drift within their window",
           traced=False, post=False),
    Action("Restart", "env",
           (Param("ballot", "count", "recovered ballot"),
            Param("granted", "count", "recovered lease-grant ballot"),
            Param("applied", "count", "recovered applied slots"),
            Param("log", "count", "highest recovered log slot (0: none)"),
            Param("wal", "wal", "recovery read to the end (clean) or stopped at a torn record"),
            Param("truncated", "count", "bytes cut off the WAL's tail"),
            Param("digest", "digest", "CRC32C of the recovered log (reference/trace.py)")),
           "a new process recovered the node's WAL and restarts as a follower"),
    Action("Kill", "env", (),
           "the node is gone for good (its disk with it); a replacement is a new incarnation",
           post=False),
    Action("Checkpoint", "env",
           (Param("upto", "count", "the B-tree checkpoint covers slots 1..upto"),
            Param("truncated", "count", "WAL slots dropped: the log now starts after them")),
           "a storage replica checkpointed its B-tree and truncated its WAL up to it"),
    Action("Quarantine", "env", (Param("reason", "text", "what recovery found"),),
           "recovery found a corrupt WAL; the node stays out of the protocol", post=False),
)

ACTIONS: dict[str, Action] = {a.name: a for a in CATALOGUE}
TRACED: tuple[Action, ...] = tuple(a for a in CATALOGUE if a.traced)
SPEC_ACTIONS: tuple[Action, ...] = tuple(a for a in TRACED if a.kind == "spec")
ENV_EVENTS: tuple[Action, ...] = tuple(a for a in TRACED if a.kind == "env")
_BY_NEXT_OPERATOR: dict[str, str] = {a.next_operator: a.name for a in CATALOGUE}
_BY_HANDLER: dict[str, str] = {a.handler: a.name for a in SPEC_ACTIONS}


def action_of_tlc_step(name: str) -> str:
    """The catalogue action a TLC counterexample step named ``name`` took.

    TLC names a step after the innermost operator it split ``Next`` into: the action
    itself when every quantifier ranges over a constant set, else the ``Next<Action>``
    disjunct that quantifies over messages. Other names (model-level wrappers) are
    returned unchanged.
    """
    if name in ACTIONS:
        return name
    return _BY_NEXT_OPERATOR.get(name, name)


F = TypeVar("F", bound=Callable[..., object])

SPEC_ACTION_ATTR = "__spec_action__"


def spec_action(fn: F) -> F:
    """Mark a replica method as the handler of the spec action named after it."""
    name = _BY_HANDLER.get(fn.__name__)
    if name is None:
        raise ValueError(f"{fn.__name__}: no spec action in the catalogue has this handler")
    setattr(fn, SPEC_ACTION_ATTR, name)
    return fn


__all__ = [
    "ACTIONS",
    "CATALOGUE",
    "ENV_EVENTS",
    "MESSAGES",
    "SPEC_ACTIONS",
    "TRACED",
    "Action",
    "Param",
    "action_of_tlc_step",
    "snake_case",
    "spec_action",
]
