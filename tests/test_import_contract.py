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


def _breaks(root: Path, broken: str, kept: str | None, expect: str) -> None:
    """lint-imports on ``root`` fails, contract type ``broken`` BROKEN (``kept`` KEPT),
    and the report says ``expect``."""
    result = _lint(root)
    names = _contract_names()
    assert result.returncode != 0, result.stdout
    assert f"{names[broken]} BROKEN" in result.stdout, result.stdout
    if kept is not None:
        assert f"{names[kept]} KEPT" in result.stdout, result.stdout
    assert expect in result.stdout, result.stdout


def test_an_upward_import_breaks_the_layers_contract(copy: Path) -> None:
    _append(copy / "reference" / "codec.py", "import conformance.cli  # noqa")
    _breaks(copy, "layers", "acyclic_siblings", "reference.codec -> conformance.cli")


def test_a_cycle_between_sibling_modules_breaks_the_acyclic_contract(copy: Path) -> None:
    # reference.node imports reference.simulator; the reverse closes a cycle.
    _append(copy / "reference" / "simulator.py", "import reference.node  # noqa")
    _breaks(copy, "acyclic_siblings", "layers", "No cycles are allowed in reference.")


def test_a_lazy_import_cycle_breaks_it_too(copy: Path) -> None:
    # An import inside a function is an import: it must not close a cycle either.
    _append(copy / "conformance" / "tlc_trace.py",
            "def _late() -> None:\n    import conformance.tlc_runner  # noqa")
    _breaks(copy, "acyclic_siblings", None, "No cycles are allowed in conformance.")
