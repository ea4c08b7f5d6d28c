"""Deterministic discrete-event simulator.

Virtual time is an ``int`` number of microseconds. Events live in a binary heap
ordered by ``(time, seq)``; ``seq`` is a global counter, so events scheduled for
the same instant run in the order they were scheduled and the whole run is a pure
function of the seed and the scheduled callbacks. The simulator owns the only
random source (``sim.rng``); components take it (or a stream forked from it)
explicitly. No wall clock, no global ``random``, no threads.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVarTuple

Ts = TypeVarTuple("Ts")


class EventHandle(NamedTuple):
    """A scheduled event. It *is* the heap entry, so scheduling allocates one tuple."""

    time: int
    seq: int
    callback: Callable[..., object]
    args: tuple[Any, ...]


# tuple.__new__ skips NamedTuple's Python-level __new__ (measurably faster on the hot path).
_new_handle = tuple.__new__
_heappush = heapq.heappush


class Simulator:
    """Single-threaded event loop over virtual time."""

    __slots__ = ("_cancelled", "_events_run", "_last_seq", "_last_time", "_queue", "_seq",
                 "_stopped", "now", "rng")

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.now = 0
        """Current virtual time in microseconds. Read it, never set it: only ``run``
        advances it. (A plain attribute, not a property: it is read a few times per event.)"""
        self._seq = 0
        self._queue: list[EventHandle] = []
        # seqs of cancelled-but-still-queued events; removed when popped, so it never leaks.
        self._cancelled: set[int] = set()
        # (time, seq) of the last event popped. Pops are monotonic in this key, so any
        # handle whose key is <= it has already run or been discarded.
        self._last_time = -1
        self._last_seq = -1
        self._events_run = 0
        self._stopped = False

    @property
    def events_run(self) -> int:
        """Total callbacks executed so far."""
        return self._events_run

    @property
    def pending(self) -> int:
        """Events still queued and not cancelled."""
        return len(self._queue) - len(self._cancelled)

    def fork_rng(self) -> random.Random:
        """A new deterministic stream seeded from ``rng``.

        Giving each component its own stream keeps its randomness independent of how
        often other components draw, which makes behaviour easier to reason about.
        """
        return random.Random(self.rng.getrandbits(64))

    def schedule(
        self, delay_us: int, callback: Callable[[*Ts], object], *args: *Ts
    ) -> EventHandle:
        """Run ``callback(*args)`` after ``delay_us`` (>= 0) microseconds."""
        if delay_us < 0:
            raise ValueError(f"negative delay {delay_us}")
        self._seq = seq = self._seq + 1
        handle: EventHandle = _new_handle(EventHandle, (self.now + delay_us, seq, callback, args))
        _heappush(self._queue, handle)
        return handle

    def schedule_at(
        self, time_us: int, callback: Callable[[*Ts], object], *args: *Ts
    ) -> EventHandle:
        """Run ``callback(*args)`` at absolute virtual time ``time_us`` (>= now)."""
        if time_us < self.now:
            raise ValueError(f"cannot schedule in the past: {time_us} < now {self.now}")
        self._seq = seq = self._seq + 1
        handle: EventHandle = _new_handle(EventHandle, (time_us, seq, callback, args))
        _heappush(self._queue, handle)
        return handle

    def cancel(self, handle: EventHandle) -> bool:
        """Cancel a pending event. Returns False if it already ran or was cancelled."""
        if (handle.time, handle.seq) <= (self._last_time, self._last_seq) or (
            handle.seq in self._cancelled
        ):
            return False
        if handle.seq > self._seq:
            raise ValueError("handle does not belong to this simulator")
        self._cancelled.add(handle.seq)
        return True

    def stop(self) -> None:
        """Make the current ``run`` return after the running callback finishes."""
        self._stopped = True

    def step(self) -> bool:
        """Run the next non-cancelled event. Returns False if the queue is empty."""
        return self.run(max_events=1) == 1

    def run(self, until_us: int | None = None, max_events: int | None = None) -> int:
        """Run events in order; returns how many callbacks ran.

        Stops when the queue is empty, the next event is later than ``until_us``,
        ``max_events`` callbacks have run, or ``stop()`` was called. When ``until_us``
        is given and no event at or before it remains, time advances to ``until_us``
        so that a later ``schedule`` is relative to the end of the window.
        """
        queue = self._queue
        cancelled = self._cancelled
        pop = heapq.heappop
        limit = -1 if max_events is None else max_events
        horizon = until_us
        ran = 0
        self._stopped = False
        try:
            while queue and ran != limit:
                head = queue[0]
                if horizon is not None and head[0] > horizon:
                    break
                pop(queue)
                time, seq, callback, args = head
                self._last_time = time
                self._last_seq = seq
                if cancelled and seq in cancelled:
                    cancelled.discard(seq)
                    continue
                self.now = time
                ran += 1
                callback(*args)
                if self._stopped:
                    break
        finally:
            self._events_run += ran
        if (
            horizon is not None
            and horizon > self.now
            and not self._stopped
            and (not queue or queue[0].time > horizon)
        ):
            self.now = horizon
        return ran
