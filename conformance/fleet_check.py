"""One group's check in a fleet (format 4): sequence, monitor, leases, history.

A ``GroupChecker`` is fed the group's lines node by node (in each node's file order,
by conformance/fleet_route.py), decodes them, lets the sequencer
(conformance/fleet_sequence.py) order them, and folds them into the invariant monitor
(conformance/monitor.py, built from the group's members in fleet.json and its
``replica_config``), with each step's true-time interval in place of ``real``: the
monitor's real-time lease check is replaced by conformance/fleet_leases.py, and a
receipt over a link that may have been up is a warning (monitor_gray.py). A lease case
the intervals leave possible, not certain, goes to Z3 (conformance/fleet_z3.py) with
the group's lines around it, in batches as the lines after it are read: it is dropped,
made a violation, or stays a warning with a witness (or one that says it was not
decided); ``GroupVerdict.z3`` counts them. At the end the group's history
(conformance/fleet_history.py, windows widened by ``err``) goes to the linearizability
checker: what it finds is certain. A key it passes but that fails with every window
narrowed by twice ``max_drift_us`` is borderline, and Z3 decides it over the routers'
clocks (fleet_z3.py, "Strong reads"): dropped, certain, or a warning with a witness.

Verdicts: ``ok``; ``violation`` (certain under the bounds: exit 1); ``warning``
(possible, not certain: listed, exit 0); ``input-error`` (the group's input is
unusable: exit 2; its other findings are dropped, since they rest on bad input).
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass, field
from typing import Any

from conformance.errors import one_line
from conformance.fleet_history import GroupHistory
from conformance.fleet_input import FleetSpec, NodeLine, decode_event
from conformance.fleet_leases import LeaseIntervals
from conformance.fleet_sequence import Sequencer
from conformance.fleet_z3 import LeaseBorderline, Z3Stats, decide_reads, narrowed
from conformance.monitor import Monitor
from conformance.trace_loader import Located, TraceInputError, logged_op_problem
from reference.trace_events import action_of

KEEP = 50
"""Findings kept per group and kind (the rest are counted): a broken run can have many."""


@dataclass(slots=True)
class GroupVerdict:
    group: str
    events: int = 0
    verdict: str = "ok"
    violations: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    input_error: str = ""
    seconds: float = 0.0
    where: list[str] = field(default_factory=list)
    """``path:line`` of each violation kept (for the report's context lines)."""
    z3: Z3Stats = field(default_factory=Z3Stats)
    """The borderline lease cases and read keys Z3 decided (conformance/fleet_z3.py)."""
    err_bound: int = 0
    """How far the read check narrows windows to find borderline keys (0: it does not):
    the largest clock error bound the fleet allows (``max_drift_us``)."""

    def to_json(self) -> dict[str, Any]:
        return {"group": self.group, "events": self.events, "verdict": self.verdict,
                "violations": self.violations, "warnings": self.warnings,
                "unchecked": self.unchecked, "input_error": self.input_error,
                "seconds": round(self.seconds, 3), "z3": self.z3.to_json()}


class GroupChecker:
    def __init__(self, spec: FleetSpec, group: str, history: GroupHistory | None,
                 next_lo: Any) -> None:
        g = spec.groups[group]
        rc = spec.replica_config
        self.group = group
        self.mon = Monitor(g.kinds, rc["lease_dur_us"], rc["lease_margin_us"],
                           peer_confirm=rc.get("peer_confirm"))
        self.nodes = sorted(set(g.nodes.values()))
        self._next_lo = next_lo
        self.seq = Sequencer(self.mon, self.nodes, self._step, self._group_next_lo)
        self.borderline = LeaseBorderline(int(rc.get("max_drift_us", 0)), self._group_next_lo)
        self.leases = LeaseIntervals(self.mon, self._group_next_lo, self.borderline.add)
        self.history = history
        self.verdict = GroupVerdict(group, err_bound=int(rc.get("max_drift_us", 0)))
        self.error = ""
        self.cpu = 0.0
        self._extra_violations = 0
        self._extra_warnings = 0
        self._logged: list[tuple[Any, str]] = []
        self.logged_problem = ""

    def _group_next_lo(self, node: str) -> int:
        """The ``lo`` of the group's next event on ``node`` not yet emitted (a lower bound:
        the node's next unread line, or its queued head)."""
        q = self.seq.q.get(node)
        if q:
            return q[0].nl.lo
        nxt: int = self._next_lo(node)
        return nxt

    @property
    def failed(self) -> bool:
        return bool(self.error)

    def fail_input(self, message: str) -> None:
        if not self.error:
            self.error = one_line(message)
            self.seq.q = {n: type(q)() for n, q in self.seq.q.items()}
            self.seq.queued = 0

    def add(self, node: str, nl: NodeLine) -> None:
        """A line of this group from ``node``'s file (in file order)."""
        if self.error:
            return
        t = time.perf_counter()
        try:
            ev = decode_event(nl)
            self.seq.offer(node, ev, action_of(ev), nl)
        except TraceInputError as exc:
            self.fail_input(str(exc))
        self.cpu += time.perf_counter() - t

    def retry(self, final: bool = False) -> None:
        """Try the blocked heads again (the other nodes have read further)."""
        if self.error or not self.seq.queued:
            return
        t = time.perf_counter()
        try:
            self.seq.drain(final)
        except TraceInputError as exc:
            self.fail_input(str(exc))
        self.cpu += time.perf_counter() - t

    def _step(self, ev: Any, nl: NodeLine) -> None:
        mon, where = self.mon, nl.where
        try:
            mon.step(ev, where, bounds=(nl.lo, nl.hi))
        except ValueError as exc:
            # The monitor refuses an event it cannot fold with "<where>: reason".
            if not str(exc).startswith(f"{where}: "):
                raise
            raise TraceInputError(one_line(str(exc))) from None
        self.verdict.events += 1
        act = action_of(ev)
        if act == "ClientWrite" and self.history is not None \
                and ev.args.c.rid not in self.history.line_of:
            raise TraceInputError(f"{where}: write {ev.args.c.rid!r} of group {self.group} is "
                                  f"not in its history (cut short, or a router's file lost?)")
        if act in ("Phase2a", "Phase2b", "Apply") and not self._logged:
            self._logged_check(ev, where)
        self.borderline.on_step(ev, nl)
        self.leases.after_step(ev.replica, ev.node, ev.clock, nl.lo, nl.hi, (ev, nl))
        self._trim()

    def _logged_check(self, ev: Any, where: str) -> None:
        problem = logged_op_problem([Located(ev, where)])
        if problem is not None:
            self._logged.append((ev, problem))

    def _trim(self) -> None:
        mon = self.mon
        if len(mon.violations) > KEEP:
            self._extra_violations += len(mon.violations) - KEEP
            del mon.violations[KEEP:]
        if len(mon.warnings) > KEEP:
            self._extra_warnings += len(mon.warnings) - KEEP
            del mon.warnings[KEEP:]

    def close_traces(self) -> GroupVerdict:
        """Drain what is left and take the monitor's findings into the verdict, which
        owns no monitor state: the caller drops this checker before the histories are
        loaded, so the two never take memory at once."""
        self.retry(final=True)
        v = self.verdict
        if not self.error:
            t = time.perf_counter()
            z3_violations, z3_warnings = self.borderline.finish(self.leases.certain)
            self.cpu += time.perf_counter() - t
            v.z3 = self.borderline.stats
            found = self.mon.violations + z3_violations
            warned = self.mon.warnings + z3_warnings
            for kept, extra in ((found, "_extra_violations"), (warned, "_extra_warnings")):
                if len(kept) > KEEP:
                    setattr(self, extra, getattr(self, extra) + len(kept) - KEEP)
                    del kept[KEEP:]
            v.violations = [str(x) for x in found]
            v.where = [x.where for x in found]
            v.warnings = [str(x) for x in warned]
            if self._extra_violations:
                v.violations.append(f"... and {self._extra_violations} more violations")
            if self._extra_warnings:
                v.warnings.append(f"... and {self._extra_warnings} more warnings")
        v.input_error = self.error
        v.seconds = self.cpu
        self.logged_problem = self._logged[0][1] if self._logged else ""
        return v


def finish(v: GroupVerdict, history: GroupHistory | None, logged_problem: str = "",
           history_error: str = "") -> GroupVerdict:
    """The group's verdict: its traces' findings (``close_traces``), its history's
    linearizability, and what makes its input unusable."""
    t = time.perf_counter()
    error = v.input_error or history_error
    if not error:
        _check_history(v, history)
        if not v.violations and logged_problem:
            error = logged_problem  # a corrupt logged copy that no checker flagged
    v.seconds += time.perf_counter() - t
    if error:
        v.verdict, v.input_error = "input-error", error
        v.violations, v.warnings, v.where = [], [], []
    elif v.violations:
        v.verdict = "violation"
    elif v.warnings:
        v.verdict = "warning"
    return v


def _check_history(v: GroupVerdict, h: GroupHistory | None) -> None:
    if h is None:
        v.unchecked.append("no history: linearizability not checked")
        return
    from conformance.linearizability import check_history

    lin = check_history(h.records)
    for x in lin.violations[:10]:
        where = ", ".join(h.line_of.get(r.id, "?") for r in x.history[:5])
        v.violations.append(f"{where}: Linearizability: {x.explanation}")
    if v.err_bound > 0:
        _borderline_reads(v, h, {x.key for x in lin.violations} | set(lin.unknown_keys))
    for ev in lin.eventual_violations[:10]:
        v.violations.append(f"{h.line_of.get(ev.record.id, '?')}: "
                            f"EventualReadsCommitted: {ev.explanation}")
    if lin.unknown_keys:
        v.unchecked.append(f"linearizability: {len(lin.unknown_keys)} key(s) not decided "
                           f"within the search bound")


def _borderline_reads(v: GroupVerdict, h: GroupHistory, settled: set[Any]) -> None:
    """Keys linearizable on widened windows but not in their narrowest world (every
    window narrowed by twice its ``err``: each precedence some world has, that one has)
    go to Z3 over the routers' clocks (conformance/fleet_z3.py, "Strong reads"). Only a
    key where narrowing adds a precedence is checked again (``_narrowing_matters``)."""
    from conformance.linearizability import check_history

    by_key: dict[Any, list[Any]] = {}
    for r in h.records:
        by_key.setdefault(r.key, []).append(r)
    # Each record narrowed by its own router's err where known (its narrowest world
    # exactly); by the fleet's bound otherwise (narrower than any world: still sound,
    # but flags more keys for Z3).
    err = {rid: e for rid, (_, e) in h.origin.items()}
    again = [narrowed(r, err.get(r.id, v.err_bound)) for k, rs in by_key.items()
             if k not in settled and _narrowing_matters(rs, v.err_bound) for r in rs]
    if not again:
        return
    narrow = check_history(again)
    flagged = {x.key: x.history for x in narrow.violations}
    if not flagged:
        return
    found, warned = decide_reads(h.records, h.line_of, flagged, v.z3, h.origin)
    v.violations += found
    v.warnings += warned


def _narrowing_matters(recs: list[Any], bound: int) -> bool:
    """Whether some operation completes (widened) within ``4 * bound`` after another's
    widened invocation: only then can narrowing by ``2 * bound`` each add a precedence
    (a narrowed completion is at least 2 * bound before the widened one, a narrowed
    invocation at most 2 * bound after)."""
    ends = sorted(r.complete_us for r in recs
                  if r.complete_us != -1 and r.status not in (None, "timeout"))
    for r in recs:
        i = bisect.bisect_left(ends, r.invoke_us)
        if i < len(ends) and ends[i] < r.invoke_us + 4 * bound:
            return True
    return False


__all__ = ["KEEP", "GroupChecker", "GroupVerdict", "finish"]
