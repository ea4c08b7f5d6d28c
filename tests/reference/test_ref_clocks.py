from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference.clocks import LocalClock
from reference.simulator import Simulator


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    max_drift_us=st.integers(0, 5_000),
    max_rate_ppm=st.sampled_from([0, 1, 100, 1_000, 50_000, 999_999]),
    segment_us=st.integers(1, 2_000_000),
    steps=st.lists(st.integers(0, 3_000_000), min_size=1, max_size=200),
)
def test_drift_bounded_and_monotonic(
    seed: int, max_drift_us: int, max_rate_ppm: int, segment_us: int, steps: list[int]
) -> None:
    sim = Simulator(seed)
    clock = LocalClock(
        sim, max_drift_us, sim.fork_rng(), max_rate_ppm=max_rate_ppm, segment_us=segment_us
    )
    last = clock.now_us()
    for step in steps:
        sim.run(until_us=sim.now + step)
        local = clock.now_us()
        assert abs(local - sim.now) <= max_drift_us
        assert local >= last
        lo, hi = clock.real_time_bounds()
        assert lo <= sim.now <= hi
        last = local


def test_long_run_hits_both_bounds_and_stays_inside() -> None:
    # Fast drift over an hour of simulated time: the offset must wander to both
    # extremes (so the model really drifts) without ever crossing them.
    sim = Simulator(1)
    drift = 2_000
    clock = LocalClock(sim, drift, sim.fork_rng(), max_rate_ppm=5_000, segment_us=100_000)
    offsets = []
    last = clock.now_us()
    for _ in range(36_000):
        sim.run(until_us=sim.now + 100_000)
        now = clock.now_us()
        assert now >= last
        last = now
        offsets.append(clock.offset_us())
    assert max(offsets) == drift
    assert min(offsets) == -drift
    assert len(set(offsets)) > 1_000


def test_reading_pattern_does_not_change_readings() -> None:
    sims = [Simulator(0), Simulator(0)]
    clocks = [LocalClock(s, 1_000, random.Random(42), segment_us=10_000) for s in sims]
    sparse: dict[int, int] = {}
    dense: dict[int, int] = {}
    for t in range(0, 1_000_000, 997):
        sims[1].run(until_us=t)
        dense[t] = clocks[1].now_us()
        if t % 7 == 0:
            sims[0].run(until_us=t)
            sparse[t] = clocks[0].now_us()
    assert sparse and all(dense[t] == v for t, v in sparse.items())


def test_same_rng_seed_same_clock_different_seed_different() -> None:
    def readings(seed: int) -> list[int]:
        sim = Simulator(0)
        clock = LocalClock(sim, 1_000, random.Random(seed), segment_us=1_000)
        out = []
        for _ in range(100):
            sim.run(until_us=sim.now + 10_000)
            out.append(clock.now_us())
        return out

    assert readings(5) == readings(5)
    assert readings(5) != readings(6)


def test_zero_drift_is_real_time() -> None:
    sim = Simulator(0)
    clock = LocalClock(sim, 0, random.Random(1))
    sim.run(until_us=12_345_678)
    assert clock.now_us() == sim.now


def test_invalid_parameters() -> None:
    sim = Simulator(0)
    rng = random.Random(0)
    with pytest.raises(ValueError):
        LocalClock(sim, -1, rng)
    with pytest.raises(ValueError):
        LocalClock(sim, 10, rng, max_rate_ppm=1_000_000)
    with pytest.raises(ValueError):
        LocalClock(sim, 10, rng, segment_us=0)
    with pytest.raises(ValueError):
        LocalClock(sim, 10, rng, initial_offset_us=11)
    assert LocalClock(sim, 10, rng, initial_offset_us=-10).offset_us() == -10
