"""A bug in dynaspec itself is exit 3 with one line, never a traceback or exit 1."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from conformance import cli


def test_an_internal_error_is_exit_3_with_the_traceback_in_a_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import conformance.mutation_matrix as mm

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(mm, "run_matrix", broken)
    monkeypatch.setattr(cli, "INTERNAL_ERROR_LOG", tmp_path / "internal-error.txt")
    result = CliRunner().invoke(cli.main, ["mutation-matrix", "--bug", "none"])
    assert result.exit_code == 3
    lines = result.output.strip().splitlines()
    assert lines == [f"internal error: RuntimeError: boom (a dynaspec bug; traceback in "
                     f"{tmp_path / 'internal-error.txt'})"]
    assert "Traceback" in (tmp_path / "internal-error.txt").read_text()


def test_usage_errors_stay_exit_2() -> None:
    result = CliRunner().invoke(cli.main, ["mutation-matrix", "--bug", "NoSuchBug"])
    assert result.exit_code == 2


def test_heal_flags_reach_the_simulation_and_bad_values_are_exit_2(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import conformance.cli as c

    seen: list[object] = []

    def capture(cfg: object, *args: object, **kwargs: object) -> None:
        seen.append(cfg)
        raise ValueError("stop here")

    monkeypatch.setattr(c, "run_simulation", capture)
    result = CliRunner().invoke(cli.main, [
        "simulate", "--faults", "heal", "--out", str(tmp_path / "o"), "--copy-bandwidth",
        "50000", "--unhealthy-after", "500ms", "--storage-only"])
    assert result.exit_code == 2 and "stop here" in result.output
    heal = seen[0].node.heal  # type: ignore[attr-defined]
    assert (heal.copy_bandwidth_bps, heal.unhealthy_after_us, heal.log_replicas) == \
        (50_000, 500_000, False)
    for bad in (["--copy-bandwidth", "0"], ["--unhealthy-after", "soon"]):
        result = CliRunner().invoke(cli.main, ["simulate", "--out", str(tmp_path / "o"), *bad])
        assert result.exit_code == 2, bad
