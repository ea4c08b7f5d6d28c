"""Fleet host clocks (reference/fleet_clock.py): ClockBound's guarantee, |clock - real| <= err."""

from __future__ import annotations

import random

import pytest

from reference.fleet_clock import HostClock, SimHostClock
from reference.fleet_config import ClockSettings
from reference.simulator import Simulator

SETTINGS = ClockSettings()


@pytest.mark.parametrize("seed", range(6))
def test_the_error_bound_holds_and_the_clock_never_runs_backwards(seed: int) -> None:
    clock = HostClock(SETTINGS, seed)
    last = None
    for t in range(0, 20_000_000, 997):
        c, err = clock.reading(t)
        assert abs(c - t) <= err <= SETTINGS.max_err_us()
        assert last is None or c >= last
        last = c


def test_extreme_settings_keep_the_guarantee() -> None:
    s = ClockSettings(sync_interval_us=10_000, max_rate_ppm=900_000, max_offset_us=3_000,
                      sync_error_us=(0, 0))
    clock = HostClock(s, 3)
    last = None
    for t in range(0, 2_000_000, 7):
        c, err = clock.reading(t)
        assert abs(c - t) <= err <= s.max_err_us()
        assert last is None or c >= last
        last = c


def test_the_bound_grows_between_syncs_and_drops_at_each() -> None:
    clock = HostClock(SETTINGS, 1)
    interval = SETTINGS.sync_interval_us
    sync = clock.phase + 3 * interval
    before = clock.reading(sync - 1)[1]
    at = clock.reading(sync)[1]
    later = clock.reading(sync + interval // 2)[1]
    assert at < before
    assert later - at == pytest.approx(SETTINGS.max_rate_ppm * interval // 2 / 1e6, abs=1)


def test_readings_are_a_pure_function_of_seed_and_time() -> None:
    times = list(range(0, 30_000_000, 12_345))
    forward = HostClock(SETTINGS, 9)
    expected = [forward.reading(t) for t in times]
    shuffled = list(zip(times, expected, strict=True))
    random.Random(0).shuffle(shuffled)
    other = HostClock(SETTINGS, 9)
    for t, want in shuffled:
        assert other.reading(t) == want
    assert HostClock(SETTINGS, 10).reading(times[405]) != expected[405]


def test_a_replica_node_clock_reads_its_host() -> None:
    sim = Simulator(1)
    host = HostClock(SETTINGS, 4)
    clock = SimHostClock(sim, host, 2_000)
    for t in (0, 1, 1_234_567, 9_999_999):
        sim.schedule_at(t, lambda: None)
        sim.run(max_events=1)
        assert clock.now_us() == host.reading(t)[0]
    with pytest.raises(NotImplementedError):
        clock.skew(10)
