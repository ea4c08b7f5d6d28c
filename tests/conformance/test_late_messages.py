"""Late messages (issue 12): the network holds messages back longer than an election
timeout and the lease margin; correct runs stay clean under every fault schedule, and
the two seeded bugs that only late messages expose are caught by the monitor and by
trace validation (conformance/mutation_late.py)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from conformance.cli import main
from conformance.mutation_late import LATE_BUGS
from conformance.mutation_matrix import SCENARIO_LAYERS, run_scenario
from reference.cluster import FAULT_SCHEDULES, SimConfig
from reference.network import Network, NetworkConfig
from reference.simulator import Simulator


def _net(config: NetworkConfig | None = None) -> tuple[Simulator, Network, list[int]]:
    sim = Simulator(seed=1)
    net = Network(sim, random.Random(7), config or NetworkConfig(jitter_us=0))
    arrived: list[int] = []
    net.add_node("a", "az1", lambda dst, src, p: None)
    net.add_node("b", "az1", lambda dst, src, p: arrived.append(sim.now))
    return sim, net, arrived


def test_hold_next_delays_exactly_the_next_messages_on_that_link() -> None:
    sim, net, arrived = _net()
    net.hold_next("a", "b", 2_000_000)
    net.hold_next("b", "a", 9)  # another link: untouched by the a -> b sends
    for _ in range(3):
        net.send("a", "b", b"x")
    sim.run(until_us=5_000_000)
    assert sorted(arrived) == [250, 250, 2_000_250]
    assert net.stats.late == 1


def test_late_messages_are_later_than_an_election_timeout_and_the_margin() -> None:
    cfg = SimConfig(network=NetworkConfig(late_prob=0.5)).effective()
    et = cfg.node.election_timeout_us
    assert cfg.network.late_min_us > max(et, cfg.replica_config().lease_margin_us)
    assert cfg.network.late_max_us >= 2 * et
    sim, net, arrived = _net(cfg.network)
    for _ in range(200):
        net.send("a", "b", b"x")
    sim.run(until_us=10**8)
    late = [t for t in arrived if t > 10_000]  # (on time: 250us plus <= 200us of jitter)
    assert 60 < len(late) < 140 and net.stats.late == len(late)
    jitter = cfg.network.jitter_us
    assert all(cfg.network.late_min_us <= t - 250 <= cfg.network.late_max_us + jitter
               for t in late)


def test_runs_without_late_messages_draw_nothing_more() -> None:
    # late_prob 0 draws no random number: every existing seed still gives the same run.
    a, b = _net()[1], _net()[1]
    b.config = NetworkConfig(jitter_us=0, late_prob=0.0, late_min_us=5, late_max_us=9)
    for net in (a, b):
        for _ in range(10):
            net.send("a", "b", b"x")
    assert a.rng.random() == b.rng.random()


@pytest.mark.parametrize("schedule", FAULT_SCHEDULES)
def test_every_schedule_replays_clean_with_late_messages(tmp_path: Path,
                                                         schedule: str) -> None:
    out = tmp_path / schedule
    sim = CliRunner().invoke(main, [
        "simulate", "--seed", "5", "--out", str(out), "--duration", "6s", "--faults",
        schedule, "--clients", "3", "--think", "20ms", "--late-messages", "0.05",
        "--no-plot"])
    assert sim.exit_code == 0, sim.output
    assert json.loads((out / "summary.json").read_text())["network"]["late"] > 20
    replay = CliRunner().invoke(main, ["replay", str(out)])
    assert replay.exit_code == 0, replay.output


@pytest.mark.parametrize("bug", sorted(LATE_BUGS))
def test_each_late_bug_is_caught_by_the_monitor_at_its_step(bug: str) -> None:
    run = run_scenario(1, bug)
    caught, detail = SCENARIO_LAYERS["monitor"](run)
    assert caught, detail
    assert {"GrantExpiredRequest": "LeaseGrant", "LateGrantRenews": "without a lease"}[bug] \
        in detail
    assert detail.startswith("trace-r")


def test_the_late_scenario_is_clean_without_a_bug() -> None:
    run = run_scenario(1, None, "late")
    for layer in ("monitor", "linearizability", "z3-leases"):
        caught, detail = SCENARIO_LAYERS[layer](run)
        assert not caught, f"{layer}: {detail}"
