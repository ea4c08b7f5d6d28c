"""`dynaspec replay FLEET_DIR`: correct fleets pass whatever their nodes' clock offsets,
a seeded bug is a violation named by file:line with its neighbours, the report has a
row per group, and a Dask local cluster gives the in-process verdicts."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from fleet_fixtures import make_fleet, v3_run

from conformance.cli import main
from conformance.fleet_input import read_fleet_spec
from conformance.fleet_replay import FleetResult, plan_buckets, replay_fleet


@pytest.mark.parametrize(("spread", "slack"), [(0, 20), (20_000, 5_000), (0, 300_000)])
def test_correct_runs_pass_under_any_clock_offsets(tmp_path: Path, spread: int,
                                                   slack: int) -> None:
    # Offsets of 20 ms and bounds of 300 ms put receipts before their sends by clock
    # (and clock order says nothing): the sequencer must still find a causal order.
    d = make_fleet(tmp_path / "f", copies=1, nodes=4, spread_us=spread, slack_us=slack)
    result = replay_fleet(d, workers=1)
    assert [v.violations for v in result.verdicts] == [[]] * 3
    # Bounds of several ms make some reads *possibly* stale (a world the bounds allow
    # orders them after a write they missed): warnings, never violations.
    tight = slack <= 1_000
    assert {v.verdict for v in result.verdicts} <= ({"ok"} if tight else {"ok", "warning"})
    assert all("possibly" in w for v in result.verdicts for w in v.warnings)


def test_a_seeded_bug_is_a_violation_with_file_line_and_neighbours(tmp_path: Path) -> None:
    runs = [v3_run("none"), v3_run("crashes", "EarlyAck")]
    d = make_fleet(tmp_path / "f", runs, copies=1, nodes=4, spread_us=0, slack_us=20)
    report = tmp_path / "report.json"
    result = CliRunner().invoke(main, ["replay", str(d), "--workers", "1", "--report",
                                       str(report)])
    assert result.exit_code == 1, result.output
    rows = {r["group"]: r for r in orjson.loads(report.read_bytes())["groups"]}
    assert rows["g0001"]["verdict"] == "ok"
    bad = rows["g0002"]
    assert bad["verdict"] == "violation"
    assert bad["violations"][0].startswith(f"{d}/trace-n0")
    assert "Durability in Commit" in bad["violations"][0]
    ctx = bad["context"]
    target = int(ctx["where"].rpartition(":")[2])
    assert [x["line"] for x in ctx["lines"]] == list(range(max(1, target - 3), target + 4))
    assert f"the first violation at {ctx['where']}" in result.output
    assert "1 ok" in result.output and "1 violation" in result.output


def test_buckets_cover_every_group_once(tmp_path: Path) -> None:
    spec = read_fleet_spec(make_fleet(tmp_path / "f"))
    for n in (1, 2, 5, 50):
        buckets = plan_buckets(spec, n)
        assert sorted(g for b in buckets for g in b) == sorted(spec.groups)
        assert len(buckets) == min(n, len(spec.groups))


def test_a_local_dask_cluster_gives_the_in_process_verdicts(tmp_path: Path) -> None:
    runs = [v3_run("none"), v3_run("crashes", "EarlyAck"), v3_run("gray")]
    d = make_fleet(tmp_path / "f", runs, copies=2, nodes=5, spread_us=0, slack_us=20)
    (d / "trace-n04.2.jsonl").unlink()  # an input error too (g0002 to g0004)
    alone = replay_fleet(d, workers=1)
    dask = replay_fleet(d, workers=2)
    assert dask.mode == "local-cluster"
    key = [(v.group, v.verdict, v.events, v.violations, v.input_error) for v in alone.verdicts]
    assert key == [(v.group, v.verdict, v.events, v.violations, v.input_error)
                   for v in dask.verdicts]
    assert {v.verdict for v in alone.verdicts} == {"ok", "violation", "input-error"}


def test_a_simulated_fleet_replays_clean(tmp_path: Path) -> None:
    """`dynaspec fleet simulate`'s own output (written by the reference, not converted)."""
    if "fleet" not in main.commands:
        pytest.skip("no `dynaspec fleet simulate` in this tree")
    out = tmp_path / "fleet"
    sim = CliRunner().invoke(main, ["fleet", "simulate", "--out", str(out), "--nodes", "4",
                                    "--groups", "3", "--duration", "2s", "--settle", "1s",
                                    "--faults", "crashes", "--workers", "1",
                                    "--segment-lines", "300"])
    assert sim.exit_code == 0, sim.output
    result = replay_fleet(out, workers=1)
    assert [v.verdict for v in result.verdicts] == ["ok"] * 3, \
        [v.violations[:2] or v.input_error for v in result.verdicts]
    assert result.events > 1000


def test_buckets_hold_at_most_their_share_of_groups(tmp_path: Path) -> None:
    # What bounds a check task's memory: a bigger fleet is more tasks, not bigger ones.
    spec = read_fleet_spec(make_fleet(tmp_path / "f", copies=2))
    for per_task in (1, 2, 4):
        buckets = plan_buckets(spec, 1, per_task)
        assert sorted(g for b in buckets for g in b) == sorted(spec.groups)
        assert max(len(b) for b in buckets) <= per_task
        assert len(buckets) == -(-len(spec.groups) // per_task)


def test_routing_to_one_group_per_task_changes_no_verdict(tmp_path: Path) -> None:
    """Each check task reads only its groups' spilled lines (conformance/fleet_spill.py):
    with one group per task every node's lines are split across tasks, and a node's bad
    line still reaches each of its groups, wherever they are checked."""
    runs = [v3_run("none"), v3_run("crashes", "EarlyAck"), v3_run("gray")]
    d = make_fleet(tmp_path / "f", runs, copies=2, nodes=5, spread_us=0, slack_us=20)
    seg = d / "trace-n03.1.jsonl"
    lines = seg.read_bytes().splitlines(keepends=True)
    lines[len(lines) // 2] = b'{"v": 4, "oops": \n'  # a bad line mid-file: n03's groups fail
    seg.write_bytes(b"".join(lines))
    spill = tmp_path / "spill"
    spill.mkdir()
    one_task = replay_fleet(d, workers=1, spill_dir=spill)
    per_group = replay_fleet(d, workers=1, spill_dir=spill, per_task=1)
    # (An input-error group's count of events checked before its node failed depends on
    # where the failure falls among the other nodes' lines: not compared.)
    def key(r: FleetResult) -> list[tuple[object, ...]]:
        return [(v.group, v.verdict, v.input_error or v.events, v.violations)
                for v in r.verdicts]

    assert key(one_task) == key(per_group)
    bad = {v.group for v in one_task.verdicts if v.verdict == "input-error"}
    spec = read_fleet_spec(d)
    assert bad == set(spec.groups_on("n03"))
    assert all(f"{seg}:{len(lines) // 2 + 1}:" in v.input_error
               for v in one_task.verdicts if v.group in bad)
    assert {v.verdict for v in one_task.verdicts} >= {"ok", "violation", "input-error"}
    assert list(spill.iterdir()) == []  # the spills are removed


def test_sigterm_removes_the_route_spills(tmp_path: Path) -> None:
    """A replay ended by SIGTERM (a CI timeout, `kill`) exits 143 and removes its route
    spills, as Ctrl-C does. The check is made to hang once the spill directory exists,
    so the signal always lands mid-replay."""
    import signal
    import subprocess
    import sys
    import time

    sample = Path(__file__).resolve().parents[2] / "traces" / "samples" / "fleet-crashes-seed1"
    spills = tmp_path / "spills"
    spills.mkdir()
    code = (
        "import sys, time\n"
        "import conformance.fleet_replay as fr\n"
        "fr._in_process = lambda *a, **k: time.sleep(120)\n"
        "from conformance.cli import main\n"
        f"sys.argv = ['dynaspec', 'replay', {str(sample)!r}, '--workers', '1',"
        f" '--spill-dir', {str(spills)!r}, '--report', {str(tmp_path / 'r.json')!r}]\n"
        "main()\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not any(spills.iterdir()):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no spill directory appeared"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, (out, err)
    assert b"Traceback" not in err, err
    assert not any(spills.iterdir())
