"""`dynaspec replay`: exit codes, and violations named by file and line."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from conformance import mutants
from conformance.cli import main
from reference.cluster import SimConfig
from reference.simulate import run_simulation
from reference.workload import WorkloadConfig


def simulate(out: Path, bug: str | None = None) -> Path:
    cfg = SimConfig(seed=4, faults="crashes", clients=2, duration_us=5_000_000,
                    settle_us=1_000_000, workload=WorkloadConfig(think_us=20_000))
    with mutants.active(bug):
        run_simulation(cfg, out)
    return out


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulate(tmp_path_factory.mktemp("replay") / "good")


def test_a_correct_run_replays_clean(good: Path) -> None:
    result = CliRunner().invoke(main, ["replay", str(good)])
    assert result.exit_code == 0, result.output
    for layer in ("monitor", "linearizability", "z3-leases"):
        assert f"ok   {layer}" in result.output


def test_a_seeded_bug_fails_and_names_file_and_line(tmp_path: Path) -> None:
    run = simulate(tmp_path / "bad", bug="EarlyAck")
    result = CliRunner().invoke(main, ["replay", str(run)])
    assert result.exit_code == 1, result.output
    assert "FAIL monitor" in result.output
    assert f"{run}/trace-r" in result.output and ".jsonl:" in result.output
    assert "Durability" in result.output


def test_malformed_input_is_one_line_and_exit_2(tmp_path: Path, good: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in good.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    lines = (broken / "trace-r2.jsonl").read_bytes().splitlines()
    lines[4] = b'{"node": "r2", truncated'
    (broken / "trace-r2.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    result = CliRunner().invoke(main, ["replay", str(broken)])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0
    assert "trace-r2.jsonl:5: not JSON" in result.output
    missing = CliRunner().invoke(main, ["replay", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "no such directory" in missing.output
