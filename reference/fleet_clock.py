"""A fleet host's clock and its error bound, as AWS ClockBound reports them.

Model (a pure function of the host's seed and real time ``t``, so every group a node
hosts, simulated in its own process, reads the same clock):

* The time daemon syncs at ``t_k = phase + k * I`` (``I`` the sync interval, the
  phase drawn per host). At a sync it measures the offset ``o_k`` (within
  ``+-max_offset_us``: the daemon keeps the clock disciplined) with an uncertainty
  ``u_k`` (a range of ``ClockSettings.sync_error_us``).
* Between syncs the clock slews linearly from ``o_k`` to ``o_{k+1}``; the two differ
  by at most the drift budget, ``max_rate_ppm * I``. There are no steps, and the rate
  stays positive, so the clock never runs backwards.
* The error bound, as ClockBound computes it: what the last sync knew (``|o_k| +
  u_k``) plus the drift budget times the time since that sync (rounded up, plus 1 us
  for the integer rounding of the clock). It grows between syncs and drops at each.

Hence ``|clock(t) - t| <= err(t)`` at every ``t``, the guarantee every production
trace line carries (traces/PRODUCTION.md), and ``err(t) <= max_err_us()``.
"""

from __future__ import annotations

import random

from reference.clocks import LocalClock
from reference.fleet_config import ClockSettings
from reference.simulator import Simulator

_PPM = 1_000_000


class HostClock:
    """One host's clock: ``reading(t)`` -> (clock, err), both in µs, for real time ``t``."""

    __slots__ = ("_err0", "_offsets", "_rng", "phase", "settings")

    def __init__(self, settings: ClockSettings, seed: int) -> None:
        self.settings = settings
        self._rng = random.Random(seed)
        self.phase = self._rng.randrange(settings.sync_interval_us)
        # Sync k >= -1 (the one before time 0 included) at index k + 1, drawn in order.
        self._offsets: list[int] = []
        self._err0: list[int] = []
        self._draw_sync()

    def _draw_sync(self) -> None:
        s, rng = self.settings, self._rng
        cap = s.max_offset_us
        if not self._offsets:
            off = rng.randint(-cap, cap)
        else:
            step = s.max_rate_ppm * s.sync_interval_us // _PPM
            prev = self._offsets[-1]
            off = rng.randint(max(prev - step, -cap), min(prev + step, cap))
        self._offsets.append(off)
        self._err0.append(abs(off) + rng.randint(*s.sync_error_us))

    def _sync_index(self, t: int) -> int:
        i = (t - self.phase) // self.settings.sync_interval_us + 1
        if i < 0:
            raise ValueError(f"real time {t} is before the clock's first sync")
        while len(self._offsets) <= i + 1:
            self._draw_sync()
        return i

    def reading(self, t: int) -> tuple[int, int]:
        """The clock and its error bound at real time ``t`` (µs, ``t >= 0``)."""
        s = self.settings
        i = self._sync_index(t)
        since = t - (self.phase + (i - 1) * s.sync_interval_us)
        o0, o1 = self._offsets[i], self._offsets[i + 1]
        # Floor division: the clock is floor((I + d) * since / I) + const with I + d > 0,
        # so non-decreasing, and it lands on o1 exactly at the next sync.
        clock = t + o0 + (o1 - o0) * since // s.sync_interval_us
        err = self._err0[i] + -(-s.max_rate_ppm * since // _PPM) + 1
        return clock, err


class SimHostClock(LocalClock):
    """A replica node's ``LocalClock`` that reads its host's clock, so that every group
    on a host runs on that host's one clock. Not skewable (fault injection of single
    groups only)."""

    __slots__ = ("host",)

    def __init__(self, sim: Simulator, host: HostClock, max_drift_us: int) -> None:
        if host.settings.max_offset_us > max_drift_us:
            raise ValueError("host clock offset may exceed the replicas' max drift")
        super().__init__(sim, max_drift_us, random.Random(0), max_rate_ppm=0,
                         initial_offset_us=0)
        self.host = host

    def offset_us(self) -> int:
        now = self._sim.now
        return self.host.reading(now)[0] - now

    def skew(self, rate_ppm: int) -> None:
        raise NotImplementedError("a fleet host's clock is not skewed by fault injection")


__all__ = ["HostClock", "SimHostClock"]
