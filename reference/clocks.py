"""Per-node local clocks with bounded drift from simulated real time.

Drift model (piecewise-linear rate drift with clamping):

* Real time is ``sim.now``. A clock's offset is ``offset(t) = local(t) - t``.
* The initial offset is drawn uniformly from ``[-max_drift_us, max_drift_us]``
  (or given explicitly).
* Real time is cut into segments of ``segment_us``. In each segment the clock
  runs at rate ``1 + r`` with ``r`` drawn uniformly from
  ``[-max_rate_ppm, +max_rate_ppm]`` parts per million, so the offset moves
  linearly by ``r * elapsed``. If that would leave ``[-max_drift_us, max_drift_us]``
  the offset is clamped at the bound (the clock runs at real rate, like a clock
  that has been disciplined back) until the segment ends.
* Offsets are continuous across segments, and with ``max_rate_ppm < 10**6``
  the local rate is positive everywhere, so

      |local(t) - t| <= max_drift_us   and   local(t) is non-decreasing in t,

  which is the spec's assumption "each replica's local clock advances with
  bounded divergence from real time": ``|clock - now| <= MaxDrift``.

Segments are evaluated lazily on read; no simulator events are scheduled. Each
segment draws exactly one rate from ``rng`` in segment order, so if the clock
owns its ``rng`` (e.g. ``sim.fork_rng()``) the reading at time ``t`` is a pure
function of the seed, independent of when or how often the clock is read.
"""

from __future__ import annotations

import random

from reference.simulator import Simulator

_PPM = 1_000_000


class LocalClock:
    """A node's local clock: ``now_us()`` = real time + bounded, wandering offset."""

    __slots__ = ("_memo_at", "_memo_offset", "_offset0", "_rate_ppm", "_seg_start", "_sim",
                 "max_drift_us", "max_rate_ppm", "rng", "segment_us")

    def __init__(
        self,
        sim: Simulator,
        max_drift_us: int,
        rng: random.Random,
        *,
        max_rate_ppm: int = 1_000,
        segment_us: int = 1_000_000,
        initial_offset_us: int | None = None,
    ) -> None:
        if max_drift_us < 0:
            raise ValueError("max_drift_us must be >= 0")
        if not 0 <= max_rate_ppm < _PPM:
            raise ValueError("max_rate_ppm must be in [0, 1e6) so the clock never runs backwards")
        if segment_us <= 0:
            raise ValueError("segment_us must be > 0")
        self._sim = sim
        self.max_drift_us = max_drift_us
        self.max_rate_ppm = max_rate_ppm
        self.segment_us = segment_us
        self.rng = rng
        if initial_offset_us is None:
            initial_offset_us = rng.randint(-max_drift_us, max_drift_us)
        elif abs(initial_offset_us) > max_drift_us:
            raise ValueError("initial offset exceeds max_drift_us")
        # Current segment: starts at real time _seg_start with offset _offset0, rate _rate_ppm.
        self._seg_start = sim.now
        self._offset0 = initial_offset_us
        self._rate_ppm = self._draw_rate()
        # The offset at one simulated instant, memoised: a step reads the clock many times.
        self._memo_at: int | None = None
        self._memo_offset = 0

    def _draw_rate(self) -> int:
        return self.rng.randint(-self.max_rate_ppm, self.max_rate_ppm)

    def _offset_in_segment(self, elapsed: int) -> int:
        # Floor division keeps t + offset non-decreasing: it equals
        # floor((1e6 + r) * elapsed / 1e6) + const with 1e6 + r > 0.
        off = self._offset0 + (self._rate_ppm * elapsed) // _PPM
        bound = self.max_drift_us
        return bound if off > bound else -bound if off < -bound else off

    def offset_us(self) -> int:
        """``local - real`` at the current simulated instant."""
        now = self._sim.now
        if now == self._memo_at:
            return self._memo_offset
        seg = self.segment_us
        while now - self._seg_start >= seg:
            self._offset0 = self._offset_in_segment(seg)
            self._seg_start += seg
            self._rate_ppm = self._draw_rate()
        off = self._offset_in_segment(now - self._seg_start)
        self._memo_at, self._memo_offset = now, off
        return off

    def skew(self, rate_ppm: int) -> None:
        """Run at ``1 + rate_ppm / 1e6`` for the next segment, starting now (fault
        injection: a clock going bad). Continuous, and still within the bounds."""
        if not -self.max_rate_ppm <= rate_ppm <= self.max_rate_ppm:
            raise ValueError(f"rate must be within +/-{self.max_rate_ppm} ppm")
        self._offset0 = self.offset_us()
        self._seg_start = self._sim.now
        self._rate_ppm = rate_ppm
        self._memo_at = None

    def now_us(self) -> int:
        """The node's reading of the time, in microseconds."""
        now = self._sim.now
        if now == self._memo_at:
            return now + self._memo_offset
        return now + self.offset_us()

    def real_time_bounds(self) -> tuple[int, int]:
        """An interval guaranteed to contain real time, as a node could compute it.

        Lease logic uses this (ClockBound-style): a lease that expires at real time
        ``T`` has certainly expired once the lower bound passes ``T``.
        """
        local = self.now_us()
        return local - self.max_drift_us, local + self.max_drift_us
