"""``dynaspec fleet simulate``: arguments, exit codes and the summary line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from conformance import cli


@pytest.mark.parametrize(("args", "message"), [
    (["--nodes", "2"], "2 nodes cannot hold 3 replicas"),
    (["--groups", "0"], "Invalid value for '--groups'"),
    (["--duration", "soon"], "is not a duration"),
    (["--faults", "meteor"], "Invalid value for '--faults'"),
    (["--compression", "lz4"], "Invalid value for '--compression'"),
    (["--workers", "1", "--scheduler", "tcp://127.0.0.1:1"], "exclude each other"),
])
def test_bad_arguments_are_one_line_and_exit_2(tmp_path: Path, args: list[str],
                                               message: str) -> None:
    result = CliRunner().invoke(cli.main, ["fleet", "simulate", "--out", str(tmp_path), *args])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert not (tmp_path / "fleet.json").exists()


def test_a_small_fleet_runs_and_prints_its_summary(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli.main, [
        "fleet", "simulate", "--out", str(tmp_path), "--nodes", "3", "--groups", "2",
        "--duration", "1s", "--settle", "500ms", "--clients", "1", "--workers", "1",
        "--compression", "none", "--segment-lines", "100"])
    assert result.exit_code == 0, result.output
    fleet = json.loads((tmp_path / "fleet.json").read_text())
    assert result.output.startswith(f"fleet: 2 groups on 3 nodes, {fleet['events']:,} events")
    assert "events/s" in result.output
    assert [n["id"] for n in fleet["nodes"]] == ["n01", "n02", "n03"]
