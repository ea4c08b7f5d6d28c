"""TLC trace validation: check that a reference trace is a behavior of Replication.

``validate_trace_dir(DIR)`` merges the per-node trace files of a ``dynaspec
simulate`` run (conformance/trace_loader.py), turns them into the items of
specs/TraceValidation.tla (one per traced step, plus a ``Tick`` wherever real
time advances), writes a module that extends TraceValidation with those items
and with the dispatch from an item's action to its ``TV<Action>`` rule, both
derived from the action catalogue (reference/actions.py), and runs TLC on it.
Every item's arguments are rendered by their catalogue type, and every step's
post-state summary is checked, as are the safety invariants in every state. The verdict, and on
failure the first event that could not be matched (file and line) with the spec
state at that point, come back as a ``TraceValidationResult``.

Mapping the implementation's values to the spec's:

* Replicas are strings, as config.json's ``members`` names them, each with its kind at
  the start (storage, log, or none for a spare); membership changes are commands.
* Time unit: one microsecond. ``MaxDrift`` is the spec's window width, twice the
  implementation's +/- bound, and a clock's offset is ``clock - real + max_drift``.
  Between a node's events its clock is interpolated linearly (rounded down), which is
  one assignment of clock readings consistent with every event; lease messages age
  on that assignment in TLC and in the ``left`` computed here alike.
* Commands: each ClientWrite is a new command (an index into ``Ops``), even when the
  client retries a request id, because the spec's ClientWrite takes only commands no
  2a message carries; ``CmdRid`` maps indices back to request ids, which the items of
  Phase2a, Phase2b and Apply are checked against. ``Ops`` are puts; the key-value
  contents are checked by the linearizability checker, not here.
* The spec's ``RenewAhead`` becomes the implementation's ``renew_ahead_us``.
* The spec's feature hooks follow the run's configuration (config.json, read into
  ``TimingConfig``): ``PeerConfirm`` is ``replica_config.peer_confirm`` (the replicas
  confirm a suspicion with their peers before an election; lease requests carry
  ``held``), ``HandoffsOn`` is the top-level ``handoff`` (a leader may relinquish its
  lease to a successor), and ``MaxDownLinks`` is the number of replicas squared (no
  bound: every LinkDown the trace has is allowed). A configuration that does not say
  (a run from before these features) is taken to have them off, unless its trace has
  their events, which is an error. ``held`` and ``hears`` are TLA+ booleans.
* ``Counted`` (which messages a replica reads without a step of its own: grants,
  votes, promises, ...) counts every message sent, whatever the link's state now: the
  trace does not say when such a message arrived.
"""

from __future__ import annotations

import bisect
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from conformance.tlc_runner import build_command, find_java, find_tla2tools
from conformance.trace_loader import (
    Located,
    TraceInputError,
    load_trace_dir,
    member_kinds,
)
from reference.actions import ACTIONS, CATALOGUE, MESSAGES
from reference.messages import Change
from reference.trace_events import action_of

SPECS = Path(__file__).resolve().parent.parent / "specs"

# The safety invariants of Replication checked in every state of a validated trace;
# TraceSafety checks them all (Agreement, Durability, StateMachineSafety,
# LeaseExclusivity) and prints the first that fails.
TRACE_INVARIANTS = ("TraceSafety",)
_VIOLATED_RE = re.compile(rb'<<\s*"tv-violated",\s*"(\w+)"\s*>>')


@dataclass(slots=True)
class TraceValidationResult:
    ok: bool
    events: int
    items: int
    seconds: float
    message: str
    unmatched: Located | None = None
    item: dict[str, Any] | None = None
    """The spec step the unmatched event was expected to be."""
    state: dict[str, str] = field(default_factory=dict)
    """Spec variables (as TLC printed them) in the last matched state, on failure."""
    tlc_output_tail: str = ""


@dataclass(frozen=True, slots=True)
class TimingConfig:
    """What the replicas ran with: lease timing, and the features that set the spec's
    hooks (None: not known; see ``run_flags``)."""

    lease_dur_us: int
    lease_margin_us: int
    max_drift_us: int
    renew_ahead_us: int
    peer_confirm: bool | None = None
    """Peer-confirmed failure detection (config.json ``replica_config.peer_confirm``)."""
    handoff: bool | None = None
    """Lease handoff before a planned restart (config.json ``handoff``)."""

    @classmethod
    def from_config_json(cls, obj: Mapping[str, Any]) -> TimingConfig:
        """From a run's config.json: the ``replica_config`` the replicas ran with, and
        the run's ``handoff``."""
        rc = obj.get("replica_config")
        if not isinstance(rc, dict):
            raise TraceInputError("config.json has no replica_config (written by an older "
                                  "dynaspec simulate; run it again)")
        flags = {"replica_config.peer_confirm": rc.get("peer_confirm"),
                 "handoff": obj.get("handoff")}
        for name, flag in flags.items():
            if flag is not None and not isinstance(flag, bool):
                raise TraceInputError(f"config.json: {name} must be true or false, got "
                                      f"{flag!r}")
        try:
            return cls(rc["lease_dur_us"], rc["lease_margin_us"], rc["max_drift_us"],
                       rc["renew_ahead_us"], rc.get("peer_confirm"), obj.get("handoff"))
        except KeyError as exc:
            raise TraceInputError(f"config.json: replica_config lacks {exc}") from exc


DETECTION_ACTIONS = ("Suspect", "AnswerProbe", "ClearSuspicion")
"""Actions only a run with peer-confirmed failure detection takes."""


def _needs_peer_confirm(ev: Any, act: str) -> bool:
    return act in DETECTION_ACTIONS or (act == "LeaseGrant" and ev.args.m.held)


def run_flags(events: Sequence[Located], timing: TimingConfig) -> tuple[bool, bool]:
    """(PeerConfirm, HandoffsOn) for the trace: the configuration's, or off when it does
    not say and the trace has no event of the feature; ``TraceInputError`` when it does
    not say and the trace has one."""
    peer, handoff = timing.peer_confirm, timing.handoff
    if peer is None:
        first = next((loc for loc in events if _needs_peer_confirm(loc.event,
                                                                   action_of(loc.event))),
                     None)
        if first is not None:
            raise TraceInputError(
                f"{first.where}: {action_of(first.event)} (peer-confirmed failure detection) "
                f"in a run whose configuration does not say whether peer confirmation was "
                f"on: config.json needs replica_config.peer_confirm (TimingConfig "
                f"peer_confirm)")
        peer = False
    if handoff is None:
        first = next((loc for loc in events if action_of(loc.event) == "LeaseRelinquish"),
                     None)
        if first is not None:
            raise TraceInputError(
                f"{first.where}: LeaseRelinquish in a run whose configuration does not say "
                f"whether leaders hand off: config.json needs handoff (TimingConfig handoff)")
        handoff = False
    return peer, handoff


# --- clocks ------------------------------------------------------------------------------


class _Clock:
    """A node's clock as a function of real time, interpolated between its events."""

    def __init__(self, samples: list[tuple[int, int]]) -> None:
        self.reals = [t for t, _ in samples]
        self.clocks = [c for _, c in samples]

    def at(self, t: int) -> int:
        reals, clocks = self.reals, self.clocks
        i = bisect.bisect_right(reals, t)
        if i == 0:
            return clocks[0] + (t - reals[0])
        if i == len(reals):
            return clocks[-1] + (t - reals[-1])
        t0, t1, c0, c1 = reals[i - 1], reals[i], clocks[i - 1], clocks[i]
        if t1 == t0:
            return c1
        return c0 + ((c1 - c0) * (t - t0)) // (t1 - t0)


# --- items -------------------------------------------------------------------------------


@dataclass(slots=True)
class Items:
    items: list[dict[str, Any]]
    origin: list[Located | None]  # the event behind each item
    replicas: list[str]
    offset0: dict[str, int]
    cmd_rids: list[str]
    ops: list[str]
    """The spec's Ops, one TLA+ record per command (a put per write; a change as is)."""
    keys: dict[str, str]
    max_ballot: int
    max_slot: int
    peer_confirm: bool = False
    """The spec's PeerConfirm for this run (``run_flags``)."""
    handoffs: bool = False
    """The spec's HandoffsOn for this run."""


class _Render:
    """Renders one event's arguments as a TLA+ item, by their catalogue types."""

    def __init__(self, clocks: Mapping[str, _Clock], timing: TimingConfig) -> None:
        self.clocks = clocks
        self.timing = timing
        self.keys: dict[str, str] = {}
        self.cmd_rids: list[str] = []
        self.ops: list[str] = []
        self.t = 0
        self.max_ballot = 0
        self.max_slot = 0

    def key(self, raw: Any) -> str:
        text = bytes(raw).decode()
        return self.keys.setdefault(text, f"k{len(self.keys) + 1}")

    def value(self, ptype: str, x: Any) -> Any:
        if ptype == "ballot":
            self.max_ballot = max(self.max_ballot, x)
        elif ptype == "slot":
            self.max_slot = max(self.max_slot, x)
        elif ptype == "quorum":
            return set(x)
        elif ptype == "cmd":
            return "" if x is None else x.rid
        elif ptype == "write":
            # Every client write is a new command of the spec (an index into Ops), even a
            # retry of a request id: the spec's ClientWrite takes only fresh commands.
            self.cmd_rids.append(x.rid)
            key = self.key(_op_key(x.op))
            self.ops.append(f'[op |-> "put", key |-> {_tla(key)}, val |-> {len(self.ops) + 1}, '
                            f'expect |-> Absent]')
            return len(self.cmd_rids)
        elif ptype == "change":
            # A membership change is a new command too: Ops holds it as the spec's record.
            self.cmd_rids.append(_change_rid(x))
            fields = f'op |-> {_tla(x.op)}, who |-> {_tla(x.who)}'
            if x.op == "add":
                fields += f", kind |-> {_tla(x.kind)}"
            self.ops.append(f"[{fields}]")
            return len(self.cmd_rids)
        elif ptype == "key":
            return self.key(x)
        elif ptype.startswith("msg:"):
            return self.message(ptype[4:], x)
        return x

    def message(self, mtype: str, m: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        sender = m.src
        for name, ptype in MESSAGES[mtype]:
            x = getattr(m, "src" if name == "from" else name)
            if ptype == "clock":
                # A clock reading on the sender's clock becomes the spec's relative time
                # left on it (the spec's lease message carries ``left``).
                now = self.clocks[sender].at(self.t)
                out["left"] = max(0, x + self.timing.lease_dur_us - now)
            else:
                out[name] = self.value(ptype, x)
        return out

    def item(self, event: Any, action: str) -> dict[str, Any]:
        item: dict[str, Any] = {"kind": "act", "action": action, "rep": event.replica}
        for p in ACTIONS[action].params:
            if p.type != "text":
                item[p.name] = self.value(p.type, getattr(event.args, p.name))
        post = getattr(event, "post", None)
        if post is not None:
            item["post"] = {"bal": post.bal, "role": post.role, "top": post.top,
                            "applied": post.applied, "lease": post.lease}
        return item


def _change_rid(change: Any) -> str:
    """The request id a change command carries in the log (its ``cmd`` form's rid)."""
    return Change(change.op, change.who, change.kind).request_id


def _op_key(op: Any) -> Any:
    obj = orjson.loads(bytes(op))
    key = {"p": obj["item"]["pk"]} if "item" in obj else obj["key"]
    return orjson.dumps(key, option=orjson.OPT_SORT_KEYS)


def build_items(events: Sequence[Located], timing: TimingConfig,
                replicas: Sequence[str] | None = None) -> Items:
    if not events:
        raise TraceInputError("the trace has no events")
    peer_confirm, handoffs = run_flags(events, timing)
    nodes = sorted({e.event.node for e in events} | set(replicas or ()))
    samples: dict[str, list[tuple[int, int]]] = {n: [] for n in nodes}
    for loc in events:
        ev = loc.event
        if ev.real is None:
            raise TraceInputError(f"{loc.where}: no 'real' time; trace validation needs the "
                                  "simulator's real time")
        s = samples[ev.node]
        if s and ev.real == s[-1][0]:
            continue
        s.append((ev.real, ev.clock))
    first = events[0].event.real
    for s in samples.values():
        if not s:
            # A spare that never joined (or joined after the window) takes no step: any
            # clock within the window will do, so give it a perfect one.
            s.append((first, first))
    clocks = {n: _Clock(s) for n, s in samples.items()}
    d = timing.max_drift_us

    def offsets(t: int, where: str) -> dict[str, int]:
        out = {}
        for n in nodes:
            off = clocks[n].at(t) - t + d
            if not 0 <= off <= 2 * d:
                raise TraceInputError(f"{where}: {n}'s clock is {off - d}us off real time, "
                                      f"beyond the drift bound {d}us")
            out[n] = off
        return out

    render = _Render(clocks, timing)
    items: list[dict[str, Any]] = []
    origin: list[Located | None] = []
    now = events[0].event.real
    offset0 = offsets(now, events[0].where)
    for loc in events:
        ev = loc.event
        t = ev.real
        act = action_of(ev)
        post = getattr(ev, "post", None)
        # Time passing commutes with every action that does not read it, so real time
        # is brought up to date only before those that do, and before a step whose
        # replica reports a lease (PostOK compares it at the step's time).
        if t > now and (ACTIONS[act].reads_time or (post is not None and post.lease)):
            items.append({"kind": "tick", "action": "Tick", "d": t - now,
                          "off": offsets(t, loc.where)})
            origin.append(loc)
            now = t
        render.t = t
        try:
            items.append(render.item(ev, act))
        except KeyError as exc:
            raise TraceInputError(f"{loc.where}: {act} names unknown replica {exc}") from None
        origin.append(loc)
    return Items(items, origin, nodes, offset0, render.cmd_rids, render.ops, render.keys,
                 max(render.max_ballot, 1), render.max_slot + 1, peer_confirm, handoffs)


# --- rendering -----------------------------------------------------------------------------


def _tla(x: Any) -> str:
    if isinstance(x, bool):
        return "TRUE" if x else "FALSE"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, str):
        if '"' in x or "\\" in x:
            raise TraceInputError(f"cannot write {x!r} as a TLA+ string")
        return f'"{x}"'
    if isinstance(x, set | frozenset):
        return "{" + ", ".join(_tla(v) for v in sorted(x)) + "}"
    raise TypeError(f"no TLA+ form for {x!r}")


def _fn(m: Mapping[str, int]) -> str:
    return "(" + " @@ ".join(f"{_tla(k)} :> {v}" for k, v in sorted(m.items())) + ")"


def _record(it: Mapping[str, Any]) -> str:
    parts = []
    for k, v in it.items():
        if k == "off":
            parts.append(f"{k} |-> {_fn(v)}")
        elif isinstance(v, Mapping):
            parts.append(f"{k} |-> {_record(v)}")
        else:
            parts.append(f"{k} |-> {_tla(v)}")
    return "[" + ", ".join(parts) + "]"


SLOT_ARGS = (("s",), ("m", "slot"))
"""Where an item names a log slot it may fill (ClientWrite, changes, Phase2a: ``s``;
Phase2b: its 2a message's ``slot``)."""


def top_from(items: Items) -> int:
    """TraceValidation's TopFrom: the highest slot the items name (at most MaxSlot).
    Every filled slot was filled by an item naming it, and a window's items are the
    trace's up to its last (``Items.max_slot`` counts the whole trace)."""
    top = 0
    for it in items.items:
        for path in SLOT_ARGS:
            x: Any = it
            for key in path:
                x = x.get(key) if isinstance(x, dict) else None
            if isinstance(x, int) and not isinstance(x, bool):
                top = max(top, x)
    return min(top, items.max_slot)


def dispatch() -> str:
    """TVStep: an item's action to its TV rule, for every action of the catalogue."""
    cases = "\n  [] ".join(f'e.action = "{a.name}" -> {a.tv_rule}(e)'
                          for a in CATALOGUE if a.traced or a.name == "Tick")
    return f"TVStep(e) ==\n  CASE {cases}"


def render(items: Items, timing: TimingConfig, module: str,
           kinds: Mapping[str, str] | None = None, *, start: str | None = None,
           killed_before: Sequence[str] = (), print_end: bool = False,
           top_floor: int = 0) -> tuple[str, str]:
    """The trace module and its config.  ``kinds``: each replica's kind at the start
    (config.json's members); a replica it does not name is a storage replica.

    A window of a longer trace (conformance/trace_windows.py) starts from ``start``,
    the spec state TLC printed at the end of the previous window (a ``StateRec``
    record, as TLC prints it, which is TLA+ text), and not from ``Init``;
    ``killed_before`` are the replicas killed in earlier windows, ``top_floor`` the
    highest slot their items named; ``print_end`` makes TLC print the state it ends
    in, for the next window."""
    ops = ", ".join(items.ops)
    start_def = ("TVInit == TraceInit" if start is None
                 else f"TVStart ==\n{start}\nTVInit == TraceInitAt(TVStart)")
    body = ",\n    ".join(_record(it) for it in items.items)
    init_config = " @@ ".join(f"{_tla(r)} :> {_tla((kinds or {}).get(r, 'storage'))}"
                              for r in sorted(items.replicas))
    tla = f"""---- MODULE {module} ----
EXTENDS TraceValidation
TVReplicas == {_tla(set(items.replicas))}
TVInitConfig == ({init_config})
TVKeys == {_tla(set(items.keys.values()) or {"k0"})}
TVOps == << {ops} >>
TVCmdRid == << {", ".join(_tla(r) for r in items.cmd_rids)} >>
TVOffset0 == {_fn(items.offset0)}
TVRenewAhead == {timing.renew_ahead_us}
TVPeerConfirm == {_tla(items.peer_confirm)}
TVHandoffsOn == {_tla(items.handoffs)}
TVMaxDownLinks == {len(items.replicas) ** 2}
\\* The reference's new leader skips the slots at or below its checkpoint.
TVSkipApplied == TRUE
\\* A message read rather than received (a grant, a vote, ...) counts once sent: its
\\* receipt is no step of the trace (see the CHOICE at Counted).
TVCounted(m, r) == m \\notin fresh
\\* No property checked here reads precede (the history's checker judges real-time
\\* order); left empty, it does not grow with the square of the writes.
TVPrecedeAfter(c) == precede
TVItems == <<
    {body}
>>
TVKilledBefore == {_tla(set(killed_before))}
{start_def}
{dispatch()}
TVNext == TraceNextVia(TVStep) \\/ {"TraceEnd" if print_end else "TraceDone"}
====
"""
    invariants = "\n".join(f"    {i}" for i in TRACE_INVARIANTS)
    # MaxBallot: one above the trace's highest, so that a replica at that ballot may
    # still suspect (Suspect asks for a ballot left to start, a model bound).
    cfg = f"""INIT TVInit
NEXT TVNext
VIEW TraceView
INVARIANTS
{invariants}
CONSTANTS
    Replicas <- TVReplicas
    InitConfig <- TVInitConfig
    MaxBallot = {items.max_ballot + 1}
    MaxSlot = {items.max_slot}
    Keys <- TVKeys
    Ops <- TVOps
    LeaseDur = {timing.lease_dur_us}
    LeaseMargin = {timing.lease_margin_us}
    MaxDrift = {2 * timing.max_drift_us}
    TraceItems <- TVItems
    Offset0 <- TVOffset0
    CmdRid <- TVCmdRid
    KilledBefore <- TVKilledBefore
    TopFrom = {max(top_from(items), min(top_floor, items.max_slot))}
    RenewAhead <- TVRenewAhead
    PeerConfirm <- TVPeerConfirm
    HandoffsOn <- TVHandoffsOn
    MaxDownLinks <- TVMaxDownLinks
    SkipApplied <- TVSkipApplied
    Counted <- TVCounted
    PrecedeAfter <- TVPrecedeAfter
"""
    return tla, cfg


# --- running TLC ------------------------------------------------------------------------

_TRY_RE = re.compile(rb'<<\s*"tv-try",\s*(\[.*?\])\s*>>', re.S)
_MATCHED_RE = re.compile(rb'<<\s*"tv-matched",\s*(\d+)\s*>>')
_POST_RE = re.compile(rb'<<\s*"tv-post",\s*(\d+),\s*(\[.*?\])\s*>>', re.S)
_INVARIANT_RE = re.compile(rb"Invariant (\w+) is violated")
_STATS_RE = re.compile(rb"([\d,]+) states generated, ([\d,]+) distinct states found")


def _last_tried(output: bytes, items: Items
                ) -> tuple[int, str, Located | None, dict[str, Any] | None]:
    """The cursor TLC tried last, its printed state summary, and the item and event there."""
    tries = _TRY_RE.findall(output)
    last = tries[-1].decode(errors="replace") if tries else ""
    m = re.search(r"cursor \|-> (\d+)", last)
    cursor = int(m.group(1)) if m else 1
    loc = items.origin[cursor - 1] if cursor - 1 < len(items.origin) else None
    item = items.items[cursor - 1] if cursor - 1 < len(items.items) else None
    return cursor, last, loc, item


def _violated_name(output: bytes, invariant: bytes) -> str:
    named = _VIOLATED_RE.findall(output)
    return (named[-1] if named else invariant).decode()


def _summary_state(text: str) -> dict[str, str]:
    """The fields of a printed ``Summary`` record: the state the failing item met."""
    out: dict[str, str] = {}
    body = " ".join(text.split()).strip("[]")
    for m in re.finditer(r"(\w+) \|-> (\[[^\]]*\]|[^,\]]+)", body):
        out[m.group(1)] = m.group(2)
    return out


def _run_tlc_streaming(cmd: list[str], cwd: Path, timeout: float) -> tuple[bytes, int | None]:
    """Run TLC; stop it as soon as it reports a deadlock (an unmatched item).

    What follows a deadlock is TLC printing the whole behavior, every state with
    every message, which for a long trace takes minutes; the PrintT lines before it
    already say which item failed and in what state.
    """
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    with subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            chunks.append(line)
            if b"Deadlock reached" in line or b"is violated" in line \
                    or time.monotonic() > deadline:
                proc.kill()
                break
        proc.wait()
        timed_out = time.monotonic() > deadline
    return b"".join(chunks), (None if timed_out else proc.returncode)


class TLCFailure(RuntimeError):
    """TLC ended without a verdict (neither matched, deadlocked nor violated)."""


@dataclass(slots=True)
class WindowRun:
    """One TLC run over ``items`` (the whole trace, or one window of it)."""

    result: TraceValidationResult
    end_state: str | None
    """With ``print_end``: the spec state TLC ended in (``StateRec``, TLA+ text)."""


_END_RE = re.compile(rb'<<\s*"tv-end",\s*(.*?),\s*"tv-end-done"\s*>>', re.S)


def run_items(items: Items, timing: TimingConfig, *, events: int,
              kinds: Mapping[str, str] | None = None, start: str | None = None,
              killed_before: Sequence[str] = (), print_end: bool = False, base: int = 0,
              top_floor: int = 0, total: int | None = None, workdir: Path | None = None,
              timeout: float = 600.0, keep: bool = False) -> WindowRun:
    """Run TLC on ``items``; ``base``: how many items of the trace precede them, and
    ``total``: how many it has (so the item numbers reported are the trace's)."""
    started = time.perf_counter()
    module = "TV_Trace"
    tla, cfg = render(items, timing, module, kinds, start=start,
                      killed_before=killed_before, print_end=print_end, top_floor=top_floor)
    tmp_ctx = tempfile.TemporaryDirectory(prefix="dynaspec-tv-")
    work = Path(tmp_ctx.name) if workdir is None else workdir
    work.mkdir(parents=True, exist_ok=True)
    try:
        for name in ("Replication.tla", "TraceValidation.tla"):
            shutil.copy(SPECS / name, work / name)
        (work / f"{module}.tla").write_text(tla)
        (work / f"{module}.cfg").write_text(cfg)
        cmd = build_command(find_java(), find_tla2tools(), work / f"{module}.tla",
                            work / f"{module}.cfg", metadir=work / "states", tmpdir=work,
                            workers=1, simulate=False, depth=None, seed=None, extra_args=(),
                            java_opts=("-XX:+UseParallelGC", "-Xss16m"))
        output, code = _run_tlc_streaming(cmd, work, timeout)
        (work / "tlc.out").write_bytes(output)
    finally:
        if not keep and workdir is None:
            tmp_ctx.cleanup()
    result = _verdict(output, code, items, events, time.perf_counter() - started, timing,
                      timeout, base, len(items.items) + base if total is None else total)
    end = None
    if result.ok and print_end:
        m = _END_RE.search(output)
        if m is None:
            raise RuntimeError("TLC matched the window but printed no end state")
        end = m.group(1).decode()
    return WindowRun(result, end)


def validate_events(events: Sequence[Located], timing: TimingConfig, *,
                    replicas: Sequence[str] | None = None,
                    kinds: Mapping[str, str] | None = None, workdir: Path | None = None,
                    timeout: float = 600.0, keep: bool = False) -> TraceValidationResult:
    """The whole of ``events`` in one TLC run (conformance/trace_windows.py runs a
    longer trace in windows)."""
    items = build_items(events, timing, replicas)
    return run_items(items, timing, events=len(events), kinds=kinds, workdir=workdir,
                     timeout=timeout, keep=keep).result


def _verdict(output: bytes, code: int | None, items: Items, events: int, seconds: float,
             timing: TimingConfig, timeout: float, base: int,
             total: int) -> TraceValidationResult:
    """TLC's output on ``items`` read as a verdict; item numbers are ``base`` + local."""
    n = len(items.items)
    tail = output[-3000:].decode(errors="replace")
    if code is None:
        return TraceValidationResult(False, events, n, seconds,
                                     f"TLC timed out after {timeout:.0f}s", tlc_output_tail=tail)
    stats = _STATS_RE.findall(output)
    distinct = int(stats[-1][1].replace(b",", b"")) if stats else None
    if b"No error has been found" in output and distinct == n + 1:
        return TraceValidationResult(True, events, n, seconds,
                                     f"all {events} events matched ({n} items, "
                                     f"{distinct} states)")
    if b"Assumption line" in output or (b"assumption" in output.lower() and b"false" in output):
        return TraceValidationResult(
            False, events, n, seconds,
            f"the configuration violates the spec's lease assumption LeaseMargin >= "
            f"2 * MaxDrift: margin {timing.lease_margin_us}us, clock window "
            f"{2 * timing.max_drift_us}us", tlc_output_tail=tail)
    violated = _INVARIANT_RE.search(output)
    if violated:
        # The state that breaks it was reached by the item at the last cursor tried.
        cursor, last, loc, item = _last_tried(output, items)
        what = f"{loc.where}: " if loc else ""
        return TraceValidationResult(
            False, events, n, seconds,
            f"{what}{_violated_name(output, violated.group(1))} is violated in the spec state "
            f"after this step ({item['action'] if item else '?'}; item {base + cursor} of "
            f"{total})",
            unmatched=loc, item=item, state=_summary_state(last), tlc_output_tail=tail)
    if b"Deadlock reached" in output:
        cursor, last, loc, item = _last_tried(output, items)
        what = f"{loc.where}: " if loc else ""
        desc = (f"tick of {item['d']}us before it" if item and item["kind"] == "tick"
                else f"{item['action'] if item else '?'}")
        matched = [int(x) for x in _MATCHED_RE.findall(output)]
        posts = {int(c): t.decode(errors="replace") for c, t in _POST_RE.findall(output)}
        if matched and matched[-1] == cursor and item is not None and "post" in item:
            spec_post = " ".join(posts.get(cursor, "?").split())
            want = ", ".join(f"{k} |-> {_tla(v)}" for k, v in item["post"].items())
            return TraceValidationResult(
                False, events, n, seconds,
                f"{what}post-state differs: after {desc} the spec's {item['rep']} is "
                f"{spec_post}, the trace says [{want}] (item {base + cursor} of {total})",
                unmatched=loc, item=item, state=_summary_state(last), tlc_output_tail=tail)
        return TraceValidationResult(
            False, events, n, seconds,
            f"{what}event not matched by the spec ({desc}; item {base + cursor} of {total})",
            unmatched=loc, item=item, state=_summary_state(last), tlc_output_tail=tail)
    # Neither a verdict nor a known refusal: a bug of ours (a module TLC rejects) or of
    # the toolchain, never a finding about the trace (exit 3, not 1).
    raise TLCFailure("TLC gave no verdict on the trace: " + " ".join(tail.split())[-800:])


def validate_trace_dir(directory: Path, *, max_events: int | None = None,
                       workdir: Path | None = None, timeout: float = 600.0,
                       keep: bool = False) -> TraceValidationResult:
    events, config = load_trace_dir(directory)
    if max_events is not None:
        events = events[:max_events]
    timing = TimingConfig.from_config_json(config)
    kinds = member_kinds(config)
    return validate_events(events, timing, replicas=list(kinds), kinds=kinds, workdir=workdir,
                           timeout=timeout, keep=keep)
