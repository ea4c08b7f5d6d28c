"""The ``gray`` and ``deploy`` fault schedules (issue 10, paper §6.2), small runs.

gray: one-way link failures and a slow link around a healthy leader; with peer
confirmation its peers veto every election, without it a follower deposes it.
deploy: a rolling restart; with lease handoff the leader's restart leaves the group
unable to serve strong reads for about five one-way message delays, without it
for about a lease (after an election timeout).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reference.cluster import SimConfig, World
from reference.simulate import run_simulation
from reference.summary import serving_summary

SECOND = 1_000_000


def run(cfg: SimConfig) -> World:
    w = World(cfg)
    w.run()
    assert w.audit().ok
    return w


def leader_changes(w: World) -> int:
    return sum(n.action_counts["BecomeLeader"] for n in w.nodes.values()) - 1


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("peer_confirm", [True, False])
def test_gray_failures_depose_the_leader_only_without_peer_confirmation(
        seed: int, peer_confirm: bool) -> None:
    w = run(SimConfig(seed=seed, faults="gray", duration_us=20 * SECOND, settle_us=SECOND,
                      clients=0, peer_confirm=peer_confirm))
    assert w.faults_injected["fail_link"] and w.faults_injected["slow_link"]
    suspicions = sum(n.action_counts["Suspect"] for n in w.nodes.values())
    if peer_confirm:
        assert leader_changes(w) == 0
        assert suspicions > 0  # the followers did suspect; their peers vetoed
        assert sum(n.replica.detector.vetoed for n in w.nodes.values()) > 0
    else:
        assert leader_changes(w) > 0
        assert suspicions == 0


def max_one_way_delay_us(cfg: SimConfig) -> int:
    net = cfg.network
    return max(net.same_az_latency_us, net.cross_az_latency_us) + net.jitter_us


@pytest.mark.parametrize("seed", [1, 2])
def test_deploy_with_handoff_is_unavailable_for_about_five_message_delays(seed: int) -> None:
    cfg = SimConfig(seed=seed, faults="deploy", duration_us=13 * SECOND, settle_us=SECOND,
                    clients=1)
    w = run(cfg)
    s = serving_summary(w.serving_windows(), cfg.duration_us, w.restarts_planned)
    leads = [r for r in s["restarts"] if r["leader"]]
    assert leads and all(r["handoff"] for r in leads)
    # Five one-way delays (handoff, 1a, 1b, lease/2a, grant/2b) plus a WAL sync for each
    # of the steps that persists before it sends (Phase1a, Phase1b, Phase2a, 2b/grant).
    bound_us = 5 * max_one_way_delay_us(cfg) + 5 * cfg.node.disk_sync_us
    assert s["per_leader_restart_ms"]["max"] <= bound_us / 1000
    assert s["per_restart_ms"]["max"] <= bound_us / 1000  # a follower's restart: nothing


def test_deploy_without_handoff_is_unavailable_for_about_a_lease() -> None:
    cfg = SimConfig(seed=1, faults="deploy", duration_us=8 * SECOND, settle_us=SECOND,
                    clients=1, handoff=False)
    w = run(cfg)
    s = serving_summary(w.serving_windows(), cfg.duration_us, w.restarts_planned)
    leads = [r for r in s["restarts"] if r["leader"]]
    assert leads and not any(r["handoff"] for r in leads)
    gap_ms = s["per_leader_restart_ms"]["max"]
    lease_ms = cfg.lease_dur_us / 1000
    timeout_ms = cfg.node.election_timeout_us / 1000
    # An election timeout (T..2T from the last lease heard), then the old lease's wait.
    assert lease_ms + timeout_ms - lease_ms <= gap_ms <= lease_ms + 2 * timeout_ms + 100


def test_timeline_plot_is_deterministic_and_summary_reports_restarts(tmp_path: Path) -> None:
    cfg = SimConfig(seed=3, faults="deploy", duration_us=3 * SECOND, settle_us=SECOND // 2,
                    clients=1)
    a = run_simulation(cfg, tmp_path / "a", plot=True)
    run_simulation(cfg, tmp_path / "b", plot=True)
    png = (tmp_path / "a" / "timeline.png").read_bytes()
    assert png.startswith(b"\x89PNG") and png == (tmp_path / "b" / "timeline.png").read_bytes()
    sr = a.summary["strong_reads"]
    assert sr["per_restart_ms"]["count"] == 1 and sr["restarts"][0]["replica"] == "r1"
    assert a.summary["leader_changes"] == (1 if sr["restarts"][0]["leader"] else 0)
    assert not (tmp_path / "c").exists()
    run_simulation(cfg, tmp_path / "c")  # no plot unless asked
    assert not (tmp_path / "c" / "timeline.png").exists()

