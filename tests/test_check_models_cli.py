"""`dynaspec check-models` end to end on tiny fixture models (needs Java)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from conformance.cli import main

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "tlc"


def write_manifest(tmp_path: Path, models: list[dict[str, object]]) -> Path:
    for name in ("Counter.tla", "Counter.cfg", "Replicas.tla", "Replicas.cfg"):
        shutil.copy(FIXTURES / name, tmp_path / name)
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"version": 1, "tlc_version": "2.15", "models": models}))
    return path


def model(name: str, kind: str, expected: str, **kw: object) -> dict[str, object]:
    spec = "Counter" if kind == "correct" else "Replicas"
    entry: dict[str, object] = dict(
        name=name, spec=f"{spec}.tla", cfg=f"{spec}.cfg", kind=kind, expected=expected,
        sets=["ci"], description="fixture", workers=1)
    entry.update(kw)
    return entry


def run(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["check-models", *args])
    return result.exit_code, result.output


@pytest.fixture
def counter_constants() -> dict[str, str]:
    return {"N": "5"}


def test_passing_models_exit_zero_and_write_results(tmp_path: Path,
                                                    counter_constants: dict[str, str]) -> None:
    manifest = write_manifest(tmp_path, [
        model("Counter", "correct", "ok", constants=counter_constants, distinct_states=5)])
    code, out = run(["--manifest", str(manifest), "--set", "ci", "--out", str(tmp_path / "b")])
    assert code == 0, out
    [row] = json.loads((tmp_path / "b" / "check-models.json").read_text())
    assert row["model"] == "Counter" and row["outcome"] == "ok" and row["distinct_states"] == 5
    assert set(row) >= {"model", "kind", "expected", "outcome", "property",
                        "distinct_states", "depth", "seconds"}


def test_changed_state_count_fails(tmp_path: Path, counter_constants: dict[str, str]) -> None:
    manifest = write_manifest(tmp_path, [
        model("Counter", "correct", "ok", constants=counter_constants, distinct_states=6)])
    code, out = run(["--manifest", str(manifest), "--out", str(tmp_path / "b"), "--set", "ci"])
    assert code == 1
    assert "distinct states changed" in out


def test_undeclared_constant_fails(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, [model("Counter", "correct", "ok", constants={})])
    code, out = run(["--manifest", str(manifest), "--out", str(tmp_path / "b"), "--set", "ci"])
    assert code == 1
    assert "constant N" in out


def test_mutant_caught_by_another_property_fails(tmp_path: Path) -> None:
    consts = json.loads(json.dumps(_replicas_constants()))
    manifest = write_manifest(tmp_path, [
        model("Mut", "mutant", "SomethingElse", constants=consts)])
    code, out = run(["--manifest", str(manifest), "--out", str(tmp_path / "b"), "--set", "ci"])
    assert code == 1
    assert "expected SomethingElse" in out
    assert (tmp_path / "b" / "Mut.counterexample.json").exists()


def test_bad_manifest_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "manifest.json"
    bad.write_text("{ not json")
    code, out = run(["--manifest", str(bad)])
    assert code == 2
    assert "invalid JSON" in out and out.count("\n") <= 2
    code, out = run(["--manifest", str(tmp_path / "missing.json")])
    assert code == 2 and "cannot read" in out


def _replicas_constants() -> dict[str, str]:
    from conformance.manifest import cfg_constants
    return cfg_constants(FIXTURES / "Replicas.cfg")


def test_two_jobs_run_every_model_and_keep_the_manifest_order(
        tmp_path: Path, counter_constants: dict[str, str]) -> None:
    manifest = write_manifest(tmp_path, [
        model("Counter", "correct", "ok", constants=counter_constants, distinct_states=5,
              seconds=1.0),
        model("Counter2", "correct", "ok", constants=counter_constants, distinct_states=5,
              seconds=9.0),
        model("Counter3", "correct", "ok", constants=counter_constants, distinct_states=6)])
    code, out = run(["--manifest", str(manifest), "--set", "ci", "--jobs", "2",
                     "--out", str(tmp_path / "b")])
    assert code == 1, out  # Counter3 pins a wrong count: a failure in one lane still counts
    rows = json.loads((tmp_path / "b" / "check-models.json").read_text())
    assert [r["model"] for r in rows] == ["Counter", "Counter2", "Counter3"]
    assert [r["outcome"] for r in rows] == ["ok", "ok", "ok"]


def test_a_finished_simulation_without_a_violation_is_ok(
        tmp_path: Path, counter_constants: dict[str, str]) -> None:
    manifest = write_manifest(tmp_path, [
        model("Counter", "correct", "ok", constants=counter_constants,
              tlc_args=["-simulate", "num=20", "-depth", "10", "-seed", "1"])])
    code, out = run(["--manifest", str(manifest), "--set", "ci", "--out", str(tmp_path / "b")])
    assert code == 0, out
    [row] = json.loads((tmp_path / "b" / "check-models.json").read_text())
    assert row["outcome"] == "ok"
