"""The client history held against the replicas' traces: do they tell the same story?

``dynaspec replay`` checks the history (conformance/linearizability) and the traces
(the monitor, Z3, TLC) each on its own; a history could claim what the traces
contradict. This layer checks, by request id and real time:

* **replica**: every operation's ``replica`` is a replica of the run (config.json);
* **ok writes**: a write answered ``ok`` was logged (a ``ClientWrite`` with its
  ``rid``), chosen, and committed, both no later than it was acknowledged (real
  time, the operation's ``complete``). Chosen: a majority of the run's voting
  members (config.json) accepted it in one ballot and slot, the proposer by its
  ``ClientWrite``/``Phase2a``, the others by ``Phase2b``. Committed: the first
  ``Commit`` of a slot holding it (the committing leader's proposal there) or
  ``Apply`` of it (applying needs the slot committed);
* **strong reads**: each ``ok`` strong read was served by its ``replica`` in a
  ``StrongRead`` of its key while that replica held its lease (``post.lease``), at a
  real time within the operation's interval; one trace line serves one read
  (matched greedily by completion, which finds a matching whenever one exists);
* **eventual reads**: each ``ok`` eventual read's value is a state its replica had
  applied by the read's completion: the key's state after slot ``j`` of that
  replica's log, for some ``j`` up to the most slots it had applied by then (0:
  absent). The log is the replica's own ``Apply`` lines, and another replica's for a
  slot it got by snapshot.

Each disagreement is one line naming the history line and the trace line (or
config.json, or the trace file where a line is missing).
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec
import orjson

from conformance.trace_loader import Located
from reference.client import HistoryRecord
from reference.messages import ReadResult
from reference.replica import DEFAULT_SCHEMA
from reference.storage import (
    Applied,
    DecodeError,
    Key,
    M,
    Put,
    StorageEngine,
    WriteOp,
    decode_op,
    key_from_json,
)
from reference.trace_events import action_of


@dataclass(frozen=True, slots=True)
class Disagreement:
    history: str
    """``history.jsonl:LINE`` of the operation."""
    trace: str
    """``trace-<node>.jsonl:LINE`` (or config.json, or a trace file as a whole)."""
    what: str

    def __str__(self) -> str:
        return f"{self.history}: {self.what} ({self.trace})"


@dataclass(slots=True)
class HistoryTraceResult:
    disagreements: list[Disagreement] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)
    """Operations checked, by rule."""

    @property
    def ok(self) -> bool:
        return not self.disagreements

    def summary(self) -> str:
        parts = ", ".join(f"{n} {what}" for what, n in self.checked.items())
        return f"{parts}; {len(self.disagreements)} disagreements"


def _file_of(where: str) -> str:
    return where.rsplit(":", 1)[0]


def _key(raw: Any) -> Key | None:
    try:
        return key_from_json(orjson.loads(bytes(raw)))
    except (DecodeError, orjson.JSONDecodeError, TypeError, ValueError):
        return None


def _op(cmd: Any) -> WriteOp | None:
    raw = getattr(cmd, "op", None)
    if not isinstance(raw, msgspec.Raw):
        return None  # NoOp or a configuration command
    try:
        return decode_op(bytes(raw))
    except (DecodeError, TypeError, ValueError):
        return None  # a corrupt logged copy: replay refuses it apart


def _op_key(op: WriteOp) -> Key:
    return DEFAULT_SCHEMA.key_of(op.item) if isinstance(op, Put) else op.key


def _rid(cmd: Any) -> str | None:
    return None if cmd is None else getattr(cmd, "rid", None)


class _Trace:
    """What the checks need from the traces, indexed once."""

    def __init__(self, events: Sequence[Located], quorum: int) -> None:
        self.logged: dict[str, Located] = {}  # rid -> first ClientWrite
        self.committed: dict[str, tuple[int, Located]] = {}  # rid -> first commit/apply
        self.reads: dict[tuple[str, Key], list[tuple[int, bool, bool, Located]]] = {}
        # replica -> [(real, applied so far, line)], in order
        self.progress: dict[str, list[tuple[int, int, Located]]] = {}
        self.applied: dict[str, dict[int, Any]] = {}  # replica -> slot -> its command
        self.chosen: dict[int, Any] = {}  # slot -> the first command applied there
        self.last_line: dict[str, Located] = {}
        self.chosen_at: dict[str, tuple[int, Located]] = {}  # rid -> when a quorum had it
        proposals: dict[str, dict[int, str | None]] = {}
        votes: dict[tuple[int, int, str], set[str]] = {}  # (ballot, slot, rid) -> voters
        for loc in events:
            ev = loc.event
            act = action_of(ev)
            real = ev.real if ev.real is not None else 0
            rep = ev.replica
            self.last_line[rep] = loc
            post = getattr(ev, "post", None)
            if post is not None:
                prog = self.progress.setdefault(rep, [])
                top = max(post.applied, prog[-1][1] if prog else 0)
                prog.append((real, top, loc))
            a = ev.args
            vote: tuple[int, int, str | None] | None = None
            if act == "ClientWrite":
                self.logged.setdefault(a.c.rid, loc)
                proposals.setdefault(rep, {})[a.s] = a.c.rid
                vote = (post.bal if post is not None else 0, a.s, a.c.rid)
            elif act == "Phase2a":
                proposals.setdefault(rep, {})[a.s] = _rid(a.c)
                vote = (a.b, a.s, _rid(a.c))
            elif act == "Phase2b":
                vote = (a.m.bal, a.m.slot, _rid(a.m.cmd))
            elif act == "Commit":
                rid = proposals.get(rep, {}).get(a.s)
                if rid is not None:
                    self._commit(rid, real, loc)
            elif act == "Apply":
                self.applied.setdefault(rep, {})[a.s] = a.c
                self.chosen.setdefault(a.s, a.c)
                rid = _rid(a.c)
                if rid is not None:
                    self._commit(rid, real, loc)
            elif act in ("StrongRead", "EventualRead"):
                k = _key(a.k)
                if k is not None:
                    lease = bool(post.lease) if post is not None else False
                    self.reads.setdefault((rep, k), []).append(
                        (real, act == "StrongRead", lease, loc))
            if vote is not None and (rid := vote[2]) is not None:
                voters = votes.setdefault((vote[0], vote[1], rid), set())
                voters.add(rep)
                if len(voters) == quorum and rid not in self.chosen_at:
                    self.chosen_at[rid] = (real, loc)

    def _commit(self, rid: str, real: int, loc: Located) -> None:
        seen = self.committed.get(rid)
        if seen is None or real < seen[0]:
            self.committed[rid] = (real, loc)

    def applied_by(self, replica: str, t: int) -> tuple[int, Located | None]:
        """The most slots ``replica`` had applied by real time ``t``, and its line then."""
        prog = self.progress.get(replica, [])
        i = bisect.bisect_right(prog, t, key=lambda x: x[0])
        return (prog[i - 1][1], prog[i - 1][2]) if i else (0, None)


class _States:
    """A key's states along one replica's log: (slot, state after it), in slot order."""

    def __init__(self, trace: _Trace) -> None:
        self.trace = trace
        self._by_replica: dict[str, dict[Key, list[tuple[int, M | None]]]] = {}

    def of(self, replica: str, key: Key) -> list[tuple[int, M | None]]:
        per = self._by_replica.get(replica)
        if per is None:
            per = self._by_replica[replica] = self._replay(replica)
        return per.get(key, [])

    def _replay(self, replica: str) -> dict[Key, list[tuple[int, M | None]]]:
        own = self.trace.applied.get(replica, {})
        top = max(own, default=0)
        engine = StorageEngine(DEFAULT_SCHEMA)
        out: dict[Key, list[tuple[int, M | None]]] = {}
        for s in range(1, top + 1):
            op = _op(own[s] if s in own else self.trace.chosen.get(s))
            if op is None:
                continue
            res = engine.apply(op)
            if isinstance(res, Applied):
                out.setdefault(_op_key(op), []).append((s, res.new))
        return out


def check_history_vs_trace(events: Sequence[Located], records: Sequence[HistoryRecord],
                           replicas: Mapping[str, str], *,
                           history_where: Mapping[str, str],
                           config_where: str = "config.json") -> HistoryTraceResult:
    """The four checks of the module docstring. ``history_where``: request id ->
    ``history.jsonl:LINE``; ``replicas``: every replica id of the run and its kind at
    the start (``storage``, ``log``; ``none`` for a spare)."""
    voting = [r for r, kind in replicas.items() if kind != "none"] \
        if isinstance(replicas, Mapping) else list(replicas)
    trace = _Trace(events, len(voting) // 2 + 1)
    states = _States(trace)
    out = HistoryTraceResult(checked={"operations": 0, "ok writes": 0, "strong reads": 0,
                                      "eventual reads": 0})
    bad = out.disagreements
    known = set(replicas)
    strong_reads: dict[tuple[str, Key], list[HistoryRecord]] = {}
    for rec in records:
        h = history_where.get(rec.id, rec.id)
        out.checked["operations"] += 1
        rep = rec.served_by
        if rep is not None and rep not in known:
            bad.append(Disagreement(h, config_where, f"{rec.id} was answered by replica "
                                    f"{rep!r}, which the run does not have"))
            continue
        if rec.status != "ok" or rep is None:
            continue
        if rec.op != "get":
            out.checked["ok writes"] += 1
            _check_write(rec, h, trace, bad)
        elif rec.consistent:
            out.checked["strong reads"] += 1
            strong_reads.setdefault((rep, rec.key), []).append(rec)
        else:
            out.checked["eventual reads"] += 1
            _check_eventual(rec, h, rep, trace, states, bad)
    for (rep, key), recs in strong_reads.items():
        _match_strong(rep, key, recs, history_where, trace, bad)
    return out


def _check_write(rec: HistoryRecord, h: str, trace: _Trace, bad: list[Disagreement]) -> None:
    logged = trace.logged.get(rec.id)
    if logged is None:
        files = sorted({_file_of(loc.where) for loc in trace.last_line.values()})
        bad.append(Disagreement(h, ", ".join(files) or "the traces", f"write {rec.id} "
                                f"was acknowledged ok at {rec.complete_us}us, but no replica "
                                "logged it (no ClientWrite of that rid)"))
        return
    chosen = trace.chosen_at.get(rec.id)
    if chosen is None:
        bad.append(Disagreement(h, logged.where, f"write {rec.id} was acknowledged ok at "
                                f"{rec.complete_us}us; it was logged but a quorum never "
                                "accepted it"))
        return
    if chosen[0] > rec.complete_us:
        bad.append(Disagreement(h, chosen[1].where, f"write {rec.id} was acknowledged ok "
                                f"at {rec.complete_us}us, before a quorum had accepted it "
                                f"(at {chosen[0]}us)"))
        return
    done = trace.committed.get(rec.id)
    if done is None:
        bad.append(Disagreement(h, logged.where, f"write {rec.id} was acknowledged ok at "
                                f"{rec.complete_us}us; it was logged but never committed"))
    elif done[0] > rec.complete_us:
        bad.append(Disagreement(h, done[1].where, f"write {rec.id} was acknowledged ok at "
                                f"{rec.complete_us}us, before it was first committed at "
                                f"{done[0]}us"))


def _match_strong(rep: str, key: Key, recs: list[HistoryRecord],
                  history_where: Mapping[str, str], trace: _Trace,
                  bad: list[Disagreement]) -> None:
    lines = trace.reads.get((rep, key), [])
    good = [(t, loc) for t, strong, lease, loc in lines if strong and lease]
    times = [t for t, _ in good]
    used: set[int] = set()
    for rec in sorted(recs, key=lambda r: (r.complete_us, r.invoke_us)):
        i = bisect.bisect_left(times, rec.invoke_us)
        while i < len(good) and times[i] <= rec.complete_us and i in used:
            i += 1
        if i < len(good) and times[i] <= rec.complete_us:
            used.add(i)
            continue
        h = history_where.get(rec.id, rec.id)
        span = f"[{rec.invoke_us}..{rec.complete_us}us]"
        near = [(t, strong, lease, loc) for t, strong, lease, loc in lines
                if rec.invoke_us <= t <= rec.complete_us]
        if near:
            _, strong, lease, loc = near[0]
            why = ("served only an eventual read (EventualRead) of the key then" if not strong
                   else "served a StrongRead without holding its lease" if not lease
                   else "served fewer strong reads of the key then than the history has")
            bad.append(Disagreement(h, loc.where, f"strong read {rec.id} {span} answered by "
                                    f"{rep}, whose trace {why}"))
        else:
            last = trace.last_line.get(rep)
            where = _file_of(last.where) if last is not None else f"trace-{rep}.jsonl"
            bad.append(Disagreement(h, where, f"strong read {rec.id} {span} answered by "
                                    f"{rep}, whose trace shows no read of the key within "
                                    "its interval"))


def _check_eventual(rec: HistoryRecord, h: str, rep: str, trace: _Trace, states: _States,
                    bad: list[Disagreement]) -> None:
    assert isinstance(rec.result, ReadResult)
    value = rec.result.item
    if value is None:
        return  # every key starts absent: slot 0
    upto, line = trace.applied_by(rep, rec.complete_us)
    if any(s <= upto and state == value for s, state in states.of(rep, rec.key)):
        return
    where = line.where if line is not None else f"trace-{rep}.jsonl"
    bad.append(Disagreement(h, where, f"eventual read {rec.id} returned a value {rep} had "
                            f"not applied by {rec.complete_us}us (it had applied {upto} "
                            "slots, and no state of the key after any of them is that value)"))


class _Run(Protocol):
    events: list[Located]
    history: list[HistoryRecord]
    kinds: dict[str, str]


def history_vs_trace_layer(run: _Run) -> tuple[bool, str]:
    """The mutation matrix's layer (a ScenarioRun): (caught, detail)."""
    where = {r.id: f"history.jsonl:{n}" for n, r in enumerate(run.history, start=1)}
    res = check_history_vs_trace(run.events, run.history, run.kinds, history_where=where)
    if res.ok:
        return False, res.summary()
    return True, str(res.disagreements[0])


__all__ = ["Disagreement", "HistoryTraceResult", "check_history_vs_trace",
           "history_vs_trace_layer"]
