"""The import contracts of pyproject.toml ([tool.importlinter]) hold, and really bite: a copy
of the packages with an upward import, or with a cycle between sibling modules, fails them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _contract_names() -> dict[str, str]:
    """Contract type -> name, as configured."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {c["type"]: c["name"] for c in config["contracts"]}


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports on the packages under ``root``, with ``root``'s pyproject.toml."""
    assert LINT_IMPORTS.exists(), f"{LINT_IMPORTS} missing: install the dev extras"
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """reference/, conformance/ and pyproject.toml copied to a fresh directory."""
    for package in ("reference", "conformance"):
        shutil.copytree(REPO / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _append(path: Path, line: str) -> None:
    with path.open("a") as f:
        f.write(f"\n{line}\n")


def test_the_contracts_hold() -> None:
    result = _lint(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in _contract_names().values():
        assert f"{name} KEPT" in result.stdout


def test_an_upward_import_breaks_the_layers_contract(copy: Path) -> None:
    _append(copy / "reference" / "codec.py", "import conformance.cli  # noqa")
    result = _lint(copy)
    names = _contract_names()
    assert result.returncode != 0, result.stdout
    assert f"{names['layers']} BROKEN" in result.stdout, result.stdout
    assert f"{names['acyclic_siblings']} KEPT" in result.stdout, result.stdout
    assert "reference.codec -> conformance.cli" in result.stdout, result.stdout


def test_a_cycle_between_sibling_modules_breaks_the_acyclic_contract(copy: Path) -> None:
    # reference.node imports reference.simulator; the reverse closes a cycle.
    _append(copy / "reference" / "simulator.py", "import reference.node  # noqa")
    result = _lint(copy)
    names = _contract_names()
    assert result.returncode != 0, result.stdout
    assert f"{names['acyclic_siblings']} BROKEN" in result.stdout, result.stdout
    assert f"{names['layers']} KEPT" in result.stdout, result.stdout
    assert "No cycles are allowed in reference." in result.stdout, result.stdout


def test_a_lazy_import_cycle_breaks_it_too(copy: Path) -> None:
    # An import inside a function is an import: it must not close a cycle either.
    _append(copy / "conformance" / "tlc_trace.py",
            "def _late() -> None:\n    import conformance.tlc_runner  # noqa")
    result = _lint(copy)
    assert result.returncode != 0, result.stdout
    assert f"{_contract_names()['acyclic_siblings']} BROKEN" in result.stdout, result.stdout
    assert "No cycles are allowed in conformance." in result.stdout, result.stdout
