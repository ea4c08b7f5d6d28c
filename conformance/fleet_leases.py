"""LeaseExclusivity on clock intervals (format 4, no real time).

The simulated-trace monitor places every leader's clock on real time (its latest
event's ``real``, rate 1 after it) and reports two believers at one real time. A fleet's
lines carry a clock and its error bound instead: at true time T a node's clock reads
within ``[T - err, T + err]``. After each step of replica r at true time T in
``[lo, hi]``, where r believes (on its own clock, as the monitor's ``lease_believers``
judges) that it holds a lease, each other leader L is judged on the lease the monitor
computed for it, a clock interval ``[wait_until, end)`` of L's clock, with L's state
taken from its latest emitted step (clock ``c``, bound ``e``):

* certain: L's latest step was surely before T (its ``hi`` <= r's ``lo``), its next
  step surely after (the next line of L's node in the group has ``lo`` > r's ``hi``),
  and every clock reading L can have at any T in ``[lo, hi]``, ``[max(c, lo - e), hi +
  e]``, lies in ``[wait_until, end)``: a violation;
* possible: that reading range meets ``[wait_until, end)``: a warning.

L's clock bound at the moment its lease ends is not in any line; the bound of its
latest line stands in for it (a ClockBound bound changes slowly between readings).

With a ``borderline`` sink (conformance/fleet_check.py gives one), a possible case is not
a warning yet: it goes there as a ``LeaseCase``, with both steps' lines, and Z3
(conformance/fleet_z3.py) decides it against the lines around it: dropped, certain, or
a warning with a witness. Without one (unit tests), it is the monitor's warning. A pair
of leaderships is reported once as certain (``certain``: its keys), and once as possible
when there is no sink.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conformance.fleet_z3 import LeaseCase, LeaseKey
from conformance.monitor import Monitor, is_quorum_of

INF = 1 << 62


class LeaseIntervals:
    def __init__(self, mon: Monitor, next_lo: Callable[[str], int],
                 borderline: Callable[[LeaseCase], None] | None = None) -> None:
        self.mon = mon
        self.next_lo = next_lo
        """The ``lo`` of the next step of a node in this group not yet emitted (INF: none)."""
        self.borderline = borderline
        self.seen: dict[str, tuple[int, int, int, str, Any]] = {}
        """Replica -> its latest step's (clock, lo, hi, node, (event, line) or None)."""
        self.certain: set[LeaseKey] = set()
        self._reported: set[LeaseKey] = set()

    def _window(self, name: str) -> tuple[int, int] | None:
        """The clock interval in which the monitor has ``name`` hold its lease, if any."""
        mon = self.mon
        rep = mon.r[name]
        if rep.role != "leader" or rep.out or rep.killed or rep.relinquished:
            return None
        members = mon.view_members(name)
        end = max((t + mon.lease_dur for t, g in rep.leases.items()
                   if is_quorum_of(members, g)), default=None)
        if end is None or end <= rep.wait_until:
            return None
        return rep.wait_until, end

    def after_step(self, name: str, node: str, clock: int, lo: int, hi: int,
                   step: tuple[Any, Any] | None = None) -> None:
        """``step``: the typed event and its NodeLine (what a borderline case needs)."""
        self.seen[name] = (clock, lo, hi, node, step)
        mon = self.mon
        if mon.r[name].role != "leader" or len(mon.leaders) < 2:
            return
        mine = self._window(name)
        if mine is None or not mine[0] <= clock < mine[1] or len(mon.leaders) < 2:
            return
        for other in sorted(mon.leaders):
            if other == name or (w := self._window(other)) is None:
                continue
            s = self.seen.get(other)
            if s is None:
                continue
            s_clock, _, s_hi, s_node, s_step = s
            err = s_hi - s_clock
            first, last = max(s_clock, lo - err), hi + err
            if last < w[0] or first >= w[1]:
                continue
            key = (name, other, mon.r[name].ballot, mon.r[other].ballot)
            if key in self.certain:
                continue
            current = s_hi <= lo and self.next_lo(s_node) > hi
            text = (f"{name} (ballot {mon.r[name].ballot}) believes it holds a lease at its "
                    f"clock {clock}us (true time in [{lo}, {hi}]us) while {other} (ballot "
                    f"{mon.r[other].ballot}) holds one on its clock [{w[0]}, {w[1]})us, "
                    f"read as [{first}, {last}]us there")
            if current and first >= w[0] and last < w[1]:
                self.certain.add(key)
                mon._fail("LeaseExclusivity", f"{text}: both, for every true time the "
                                              f"clocks' bounds allow")
            elif self.borderline is not None and step is not None and s_step is not None:
                self.borderline(LeaseCase(key, text, step, other, s_step, w,
                                          self.next_lo(s_node)))
            elif key not in self._reported:
                self._reported.add(key)
                mon._warn("LeaseExclusivity", f"{text}: possibly both (the clocks' bounds "
                                              f"allow it, not certain)")


__all__ = ["LeaseIntervals"]
