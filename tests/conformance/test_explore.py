"""``dynaspec explore`` (issue 12): fault mixes, the swarm's draw, one seed's checks,
the liveness probe, shrinking, the sweep in process and on Dask, the CLI, and the
mutation matrix's explore layer. Short runs (1-2 s simulated) keep it fast."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from conformance import explore_mix, mutants
from conformance import mutation_matrix as mm
from conformance.cli import main
from conformance.explore import sweep
from conformance.explore_mix import LATE, LATER_KINDS, Options, draw
from conformance.explore_run import run_seed
from conformance.explore_shrink import shrink
from reference.cluster import SimConfig, World
from reference.faults import FAULT_KINDS, format_mix, parse_faults
from reference.simulate import config_to_json

SECOND = 1_000_000


def _opts(**kw: Any) -> Options:
    base = Options(seed=1, duration_us=1 * SECOND, liveness_us=5 * SECOND, faults="none",
                   late_messages=0.0, replicas=3, clients=2, keys=4, read_fraction=0.5,
                   consistent_fraction=0.5, think_us=10_000, peer_confirm=True, handoff=True)
    return replace(base, **kw)


# --- fault mixes (reference/faults.py, reference/cluster.py) ---------------------------


def test_fault_mixes_parse_and_refuse() -> None:
    assert parse_faults("none") == []
    assert parse_faults("crashes") == [("crashes", 1.0)]
    assert parse_faults("crashes:2+partitions:0.5") == [("crashes", 2.0), ("partitions", 0.5)]
    assert format_mix(parse_faults("gray:3+heal")) == "gray:3+heal:1"
    for bad in ("bogus", "crashes+crashes", "crashes:0", "crashes:x", "crashes:11", "none+gray"):
        with pytest.raises(ValueError):
            SimConfig(faults=bad)
    SimConfig(faults="crashes:2+partitions:0.5")  # accepted


def test_a_mix_composes_the_kinds_adjustments() -> None:
    one = SimConfig(faults="flaky-network").effective()
    assert SimConfig(faults="flaky-network:1").effective().network == one.network
    assert SimConfig(faults="flaky-network:2").effective().network.loss_prob == 0.1
    both = SimConfig(faults="heal:1+deploy:1+clock-drift:1").effective()
    assert both.spares == 1 and both.node.heal.enabled
    assert both.node.checkpoint_every == SimConfig(faults="heal").effective().node.checkpoint_every
    assert both.max_drift_us == SimConfig(faults="clock-drift").effective().max_drift_us


def _fault_times(faults: str, what: str) -> list[int]:
    world = World(SimConfig(seed=3, clients=0, duration_us=30 * SECOND, settle_us=0,
                            faults=faults))
    world.run()
    return [t for t, w in world.fault_log if w.startswith(what)]


def test_rates_scale_a_kind_and_dropping_a_kind_keeps_the_others_faults() -> None:
    slow, fast = _fault_times("crashes:0.5", "crash"), _fault_times("crashes:3", "crash")
    assert len(fast) > 2 * len(slow) > 0
    # Each kind of a mix has its own stream: without partitions, the crashes come when
    # they came with them (explore's shrinking relies on it).
    assert _fault_times("crashes:1+partitions:1", "crash") == _fault_times("crashes:1", "crash")
    assert _fault_times("crashes:1+partitions:1", "isolate") or \
        _fault_times("crashes:1+partitions:1", "fail_link")


# --- the kinds only mixes use: membership changes, late grants ---------------------------


def _run(faults: str, bug: str | None = None, seed: int = 1, peer_confirm: bool = True,
         **kw: Any) -> Any:
    from conformance import mutation_matrix  # noqa: F401  (registers the membership bugs)

    o = _opts(seed=seed, faults=faults, duration_us=5 * SECOND, liveness_us=10 * SECOND,
              clients=3, peer_confirm=peer_confirm, **kw)
    return run_seed(o, mutants.BUGS[bug] if bug else None)


def test_the_membership_kind_replaces_a_replica_and_the_correct_group_stays_clean() -> None:
    cfg = SimConfig(seed=1, clients=2, duration_us=5 * SECOND, faults="membership")
    assert cfg.effective().spares >= 2
    world = World(cfg)
    world.run()
    ops = [w.split(" ")[1] for _, w in world.fault_log if w.startswith("operator ")]
    assert {"add", "remove", "promote"} <= set(ops), world.fault_log
    last = world.config_log[-1][2]
    assert sum(k == "storage" for k in last.values()) == 3 and "log" not in last.values()
    assert world.audit().ok
    for pc in (True, False):
        r = _run("membership:2", seed=4, peer_confirm=pc)
        assert r.ok, r.failures


def test_the_operator_asks_again_for_an_add_lost_with_its_leader() -> None:
    # Seed 65: the victim is the leader, restarted at once with the add still in flight.
    o = _opts(seed=65, faults="membership:1", duration_us=10 * SECOND, clients=1, keys=1)
    world = World(o.sim_config())
    world.run()
    adds = [t for t, w in world.fault_log if w.startswith("operator add ")]
    assert len(adds) == 2, world.fault_log
    last = world.config_log[-1][2]
    assert sorted(m for m, k in last.items() if k == "storage") == ["r1", "r3", "r4"]


@pytest.mark.parametrize(("bug", "seed", "peer_confirm", "what"), [
    ("TwoChangesInFlight", 5, True, "two changes in flight"),
    ("RemovedVoteCounts", 4, True, "not a quorum of its view"),
    # Peer confirmation refuses a log replica's election before its own guard does.
    ("LogReplicaLeads", 1, False, "log replica"),
])
def test_the_membership_kind_exposes_the_membership_bugs(bug: str, seed: int,
                                                         peer_confirm: bool, what: str) -> None:
    r = _run("membership:2", bug, seed, peer_confirm)
    assert what in r.failures.get("monitor", ""), r.failures


def test_late_grants_expose_late_grant_renews_and_the_correct_leader_stops_serving() -> None:
    assert _run("late-grants:1").ok
    r = _run("late-grants:1", "LateGrantRenews")
    assert "without a lease" in r.failures.get("monitor", ""), r.failures


def test_only_the_liveness_check_catches_a_leader_stuck_on_a_stale_lease_request() -> None:
    r = _run("late-grants:1", "StaleLeaseRequest")
    assert list(r.failures) == ["liveness"], r.failures
    assert _run("late-grants:1").ok


# --- the liveness probe ----------------------------------------------------------------


def test_the_liveness_probe_tells_a_stuck_group_from_a_live_one() -> None:
    cfg = SimConfig(seed=2, clients=1, duration_us=1 * SECOND, settle_us=0, liveness_us=2 * SECOND)
    live = World(cfg)
    live.run()
    verdict = live.liveness()
    assert verdict is not None and not verdict["stuck"] and verdict["write_after_s"] < 0.1
    stuck = World(cfg)
    # Cut off again right after the heal (a fault nothing heals: what a liveness bug
    # looks like to the probe).
    for name in ("r1", "r2"):
        stuck.sim.schedule_at(cfg.duration_us + 1, stuck.isolate, name)
    stuck.run()
    verdict = stuck.liveness()
    assert verdict is not None and verdict["stuck"] and verdict["write_after_s"] is None
    lost = World(cfg)
    # Two of three replicas gone for good (settling restarts crashed ones, not killed
    # ones): more than the group tolerates, so no write is owed.
    lost.sim.schedule_at(500_000, lost.kill, "r1")
    lost.sim.schedule_at(500_000, lost.kill, "r2")
    lost.run()
    verdict = lost.liveness()
    assert verdict is not None and verdict["beyond_budget"] and not verdict["stuck"]
    assert verdict["write_after_s"] is None
    assert World(replace(cfg, liveness_us=0)).liveness() is None


# --- the swarm's draw --------------------------------------------------------------------


def test_a_seeds_draw_depends_on_the_seed_alone_and_the_swarm_varies() -> None:
    draws = [draw(s, 10 * SECOND, 10 * SECOND) for s in range(1, 301)]
    assert draws == [draw(s, 10 * SECOND, 10 * SECOND) for s in range(1, 301)]
    kinds = {k for o in draws for k in o.kinds()}
    assert kinds == {*FAULT_KINDS, LATE}
    assert {len(o.kinds()) for o in draws} == {0, 1, 2, 3}
    assert len({(o.clients, o.keys, o.think_us, o.replicas) for o in draws}) > 50
    for o in draws:
        o.sim_config()  # every draw is a valid configuration


def test_the_later_kinds_leave_the_earlier_draw_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    with_later = [draw(s, 5 * SECOND, 10 * SECOND) for s in range(1, 201)]
    monkeypatch.setattr(explore_mix, "LATER_PROB", 0.0)
    without = [draw(s, 5 * SECOND, 10 * SECOND) for s in range(1, 201)]
    changed = 0
    for a, b in zip(with_later, without, strict=True):
        first = a
        for k in LATER_KINDS:
            first = first.without(k)
        if "membership" in a.faults:
            first = replace(first, peer_confirm=b.peer_confirm)
        assert first == b  # the earlier kinds and the workload as drawn before
        changed += a != b
    assert 0 < changed < 100


def test_the_reproduction_line_runs_exactly_the_drawn_configuration(tmp_path: Path) -> None:
    o = replace(draw(7, SECOND, 3 * SECOND), faults="crashes:2+gray:0.5", late_messages=0.01)
    line = o.command("EarlyAck", ["monitor"])
    assert "&& dynaspec replay" in line and "--bug EarlyAck" in line
    args = shlex.split(line.split(" && ")[0])[2:]
    args[args.index("--out") + 1] = str(tmp_path)
    res = CliRunner().invoke(main, ["simulate", *args, "--no-plot"])
    assert res.exit_code in (0, 1), res.output
    written = orjson.loads((tmp_path / "config.json").read_bytes())
    assert written == orjson.loads(orjson.dumps(config_to_json(o.sim_config())))
    assert "&& dynaspec replay" not in o.command(None, ["audit", "liveness"])


# --- one seed, and shrinking -------------------------------------------------------------


def test_a_correct_seed_passes_every_check() -> None:
    r = run_seed(_opts(faults="crashes:3+partitions:2", late_messages=0.01,
                       duration_us=2 * SECOND))
    assert r.ok, r.failures
    assert r.ops > 50 and r.events > r.ops


def test_a_seeded_bug_fails_and_shrinks_to_fewer_clients_kinds_and_seconds() -> None:
    bug = mutants.BUGS["EarlyAck"]
    failed = run_seed(_opts(faults="crashes:1+partitions:1", late_messages=0.01, clients=4,
                            duration_us=2 * SECOND), bug)
    assert "monitor" in failed.failures, failed.failures
    small = shrink(failed, bug, max_runs=12)
    assert small.options.kinds() == [] and small.options.clients == 1
    assert small.options.duration_us == 1 * SECOND
    assert "monitor" in small.failures
    assert not run_seed(small.options, bug).ok  # the shrunk options fail when re-run
    assert run_seed(small.options).ok  # ... because of the bug


# --- the sweep: in process and on Dask ---------------------------------------------------


@pytest.fixture(scope="module")
def dask_scheduler() -> Iterator[str]:
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,  # type: ignore[no-untyped-call]
                      dashboard_address=None, memory_limit=0) as cluster:
        yield cluster.scheduler_address


def _rows(res: Any) -> list[dict[str, Any]]:
    out = []
    for row in res.to_json()["rows"]:
        row = {k: v for k, v in row.items() if k != "seconds"}
        if row.get("shrunk"):
            row["shrunk"] = {k: v for k, v in row["shrunk"].items() if k != "seconds"}
        out.append(row)
    return out


def test_dask_gives_the_in_process_results(dask_scheduler: str) -> None:
    kw: dict[str, Any] = dict(duration_us=1 * SECOND, liveness_us=3 * SECOND)
    clean = [sweep(range(1, 5), workers=1, **kw),
             sweep(range(1, 5), scheduler=dask_scheduler, **kw)]
    assert clean[1].mode.startswith("scheduler") and clean[1].workers == 2
    assert _rows(clean[0]) == _rows(clean[1])
    assert not clean[0].failed and clean[0].ops > 0
    bug = mutants.BUGS["ApplyUncommitted"]
    found = [sweep(range(1, 5), workers=1, bug=bug, max_failures=2, shrink_runs=3, **kw),
             sweep(range(1, 5), scheduler=dask_scheduler, bug=bug, max_failures=2,
                   shrink_runs=3, **kw)]
    assert _rows(found[0]) == _rows(found[1])
    # max_failures keeps the lowest failing seeds, whichever finished first.
    assert [r.options.seed for r in found[1].failed] == [r.options.seed for r in
                                                        found[0].failed][:2]
    assert found[0].seeds_to_detection() == found[0].failed[0].options.seed
    assert all(r["shrunk"] for r in _rows(found[1]) if r["verdict"] == "fail")


# --- the command line --------------------------------------------------------------------


def test_explore_cli_exit_codes_rows_and_reproductions(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "explore.json"
    base = ["explore", "--seeds", "2", "--duration", "1s", "--workers", "1", "--out", str(out)]
    res = runner.invoke(main, base)
    assert res.exit_code == 0, res.output
    report = orjson.loads(out.read_bytes())
    assert [r["seed"] for r in report["rows"]] == [1, 2]
    assert {"options", "verdict", "failures", "ops", "seconds"} <= set(report["rows"][0])
    res = runner.invoke(main, [*base, "--bug", "EarlyAck", "--max-failures", "1",
                               "--shrink-runs", "4"])
    assert res.exit_code == 1, res.output
    assert "reproduce: dynaspec simulate --seed 1 " in res.output
    assert "shrunk (" in res.output and "--bug EarlyAck" in res.output
    for bad in (["--bug", "Nope"], ["--scheduler", "tcp://127.0.0.1:1"]):
        assert runner.invoke(main, [*base, *bad]).exit_code == 2
    assert runner.invoke(main, ["simulate", "--out", str(tmp_path / "s"), "--faults",
                                "crashes:0"]).exit_code == 2


# --- the mutation matrix's explore layer -------------------------------------------------


def test_the_matrix_runs_explore_only_when_asked_and_requires_it_to_find_bugs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert "explore" in mm.LAYERS and "explore" not in mm.DEFAULT_LAYERS

    ran: list[str | None] = []

    def fake_explore(bug: str | None) -> mm.Row:
        ran.append(bug)
        return mm.Row(bug or "none", "explore", True, 0.0, "seed 1", "swarm")

    monkeypatch.setattr(mm, "explore_row", fake_explore)
    monkeypatch.setattr(mm, "_scenario_rows", lambda *a: [])
    monkeypatch.setattr(mm, "_hypothesis", lambda bug, profile: (True, 0.0, "caught"))
    rows = mm.run_matrix(["EarlyAck"], mm.LAYERS)  # every layer: the default set
    assert [r.layer for r in rows] == ["hypothesis"] and ran == []
    rows = mm.run_matrix([None, "EarlyAck"], ("explore",))
    assert [r.layer for r in rows] == ["explore", "explore"] and ran == [None, "EarlyAck"]
    assert mm.verdict([mm.Row("EarlyAck", "explore", False, 1.0, "no failing seed")],
                      min_layers=0) == ["EarlyAck not found by the explore sweep: no "
                                        "failing seed"]


def test_a_liveness_bug_needs_the_explore_layer_alone() -> None:
    missed = [mm.Row("StaleLeaseRequest", layer, False, 0.0) for layer in mm.DEFAULT_LAYERS]
    assert mm.verdict(missed) == []
    assert mm.verdict([*missed, mm.Row("StaleLeaseRequest", "explore", False, 1.0, "none")])
    assert mm.verdict([mm.Row("EarlyAck", "monitor", True, 0.0)]) != []


def test_the_explore_row_records_seeds_to_detection_and_the_shrunk_reproduction(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mm, "EXPLORE_DURATION_US", 1 * SECOND)
    row = mm.explore_row("EarlyAck", seeds=3, workers=1)
    assert row.caught and row.layer == "explore" and row.data is not None
    assert row.data["seeds_to_detection"] == 1
    assert "--duration 1s" in row.data["shrunk_command"]
    assert mm.verdict([row], min_layers=0) == []
