from __future__ import annotations

import pytest

from reference.simulator import Simulator


def _random_workload(seed: int, n_roots: int = 50) -> list[tuple[int, int]]:
    """Callbacks that reschedule themselves with rng-drawn delays; returns (time, id) trace."""
    sim = Simulator(seed)
    trace: list[tuple[int, int]] = []

    def tick(ident: int) -> None:
        trace.append((sim.now, ident))
        for _ in range(sim.rng.randint(0, 2)):
            sim.schedule(sim.rng.randint(0, 100), tick, sim.rng.randrange(1_000_000))

    for i in range(n_roots):
        sim.schedule(sim.rng.randint(0, 50), tick, i)
    sim.run(max_events=2_000)
    return trace


def test_same_seed_same_event_order() -> None:
    a, b = _random_workload(7), _random_workload(7)
    assert len(a) > 100
    assert a == b


def test_different_seed_different_event_order() -> None:
    assert _random_workload(7) != _random_workload(8)


def test_time_order_then_fifo_for_ties() -> None:
    sim = Simulator(0)
    order: list[str] = []
    sim.schedule(10, order.append, "c")
    sim.schedule(5, order.append, "a")
    sim.schedule(10, order.append, "d")
    sim.schedule_at(5, order.append, "b")
    sim.schedule(0, order.append, "first")
    assert sim.run() == 5
    assert order == ["first", "a", "b", "c", "d"]
    assert sim.now == 10


def test_now_is_event_time_inside_callback() -> None:
    sim = Simulator(0)
    seen: list[int] = []
    sim.schedule(3, lambda: seen.append(sim.now))
    sim.schedule(3, lambda: sim.schedule(4, lambda: seen.append(sim.now)))
    sim.run()
    assert seen == [3, 7]


def test_cancel_skips_event_and_reports_state() -> None:
    sim = Simulator(0)
    ran: list[int] = []
    h1 = sim.schedule(1, ran.append, 1)
    h2 = sim.schedule(2, ran.append, 2)
    h3 = sim.schedule(3, ran.append, 3)
    assert sim.pending == 3
    assert sim.cancel(h2) is True
    assert sim.cancel(h2) is False  # already cancelled
    assert sim.pending == 2
    assert sim.run() == 2
    assert ran == [1, 3]
    assert sim.cancel(h1) is False  # already ran
    assert sim.cancel(h3) is False
    assert sim.pending == 0
    assert sim.events_run == 2


def test_cancel_from_callback_same_instant() -> None:
    sim = Simulator(0)
    ran: list[str] = []
    later = sim.schedule(5, ran.append, "victim")
    sim.schedule(5, lambda: sim.cancel(later))  # scheduled after, runs after: too late
    early = sim.schedule(5, ran.append, "early-victim")
    sim.schedule_at(4, lambda: sim.cancel(early))
    sim.run()
    assert ran == ["victim"]


def test_run_until_advances_time_and_leaves_later_events() -> None:
    sim = Simulator(0)
    ran: list[int] = []
    sim.schedule(10, ran.append, 10)
    sim.schedule(30, ran.append, 30)
    assert sim.run(until_us=20) == 1
    assert sim.now == 20
    assert sim.pending == 1
    sim.schedule(5, ran.append, 25)  # relative to the end of the window
    sim.run()
    assert ran == [10, 25, 30]


def test_run_until_includes_events_at_horizon() -> None:
    sim = Simulator(0)
    ran: list[int] = []
    sim.schedule(20, ran.append, 20)
    sim.run(until_us=20)
    assert ran == [20]


def test_max_events_step_and_stop() -> None:
    sim = Simulator(0)
    ran: list[int] = []
    for i in range(5):
        sim.schedule(i, ran.append, i)
    assert sim.run(max_events=2) == 2
    assert sim.step() is True
    assert ran == [0, 1, 2]
    sim.schedule(0, sim.stop)
    assert sim.run() == 1  # the stop callback itself
    assert sim.run() == 2
    assert sim.step() is False


def test_rejects_past_and_negative() -> None:
    sim = Simulator(0)
    sim.run(until_us=100)
    with pytest.raises(ValueError):
        sim.schedule(-1, print)
    with pytest.raises(ValueError):
        sim.schedule_at(99, print)


def test_fork_rng_is_deterministic_and_independent() -> None:
    a, b = Simulator(3), Simulator(3)
    fa, fb = a.fork_rng(), b.fork_rng()
    assert [fa.random() for _ in range(5)] == [fb.random() for _ in range(5)]
    # Draws from the fork do not disturb the parent stream.
    assert a.rng.random() == b.rng.random()


def test_exception_propagates_and_counts() -> None:
    sim = Simulator(0)
    sim.schedule(1, lambda: None)

    def boom() -> None:
        raise RuntimeError("boom")

    sim.schedule(2, boom)
    sim.schedule(3, lambda: None)
    with pytest.raises(RuntimeError):
        sim.run()
    assert sim.events_run == 2
    assert sim.now == 2
    assert sim.run() == 1


def test_run_until_cut_short_does_not_jump_past_pending_events() -> None:
    sim = Simulator(0)
    seen: list[int] = []
    for t in (10, 20, 30):
        sim.schedule(t, lambda: seen.append(sim.now))
    assert sim.run(until_us=100, max_events=1) == 1
    assert sim.now == 10  # the event at 20 is still due; time must not skip it
    sim.run(until_us=100)
    assert seen == [10, 20, 30] and sim.now == 100
