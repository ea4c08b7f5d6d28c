"""Fleet fixtures for the test_fleet_* files: format-3 runs simulated once per session
(clocks without rate error, so that conformance/fleet_convert.py can move each node to
one clock), turned into fleet directories."""

from __future__ import annotations

import shutil
import tempfile
from functools import cache
from pathlib import Path

from conformance import mutants
from conformance.fleet_convert import convert
from reference.cluster import SimConfig
from reference.simulate import run_simulation
from reference.workload import WorkloadConfig

SCHEDULES = ("none", "crashes", "gray")


@cache
def _root() -> Path:
    return Path(tempfile.mkdtemp(prefix="fleet-fixtures-"))


@cache
def v3_run(faults: str, bug: str | None = None, seed: int = 4) -> Path:
    out = _root() / f"run-{faults}-{bug or 'ok'}-{seed}"
    cfg = SimConfig(seed=seed, faults=faults, clients=2, duration_us=3_000_000,
                    settle_us=1_000_000, max_rate_ppm=0, workload=WorkloadConfig(think_us=20_000))
    with mutants.active(bug):
        run_simulation(cfg, out, plot=False)
    return out


def make_fleet(out: Path, runs: list[Path] | None = None, **kw: object) -> Path:
    """A fleet of the SCHEDULES' runs (twice: 6 groups) on 6 nodes, 2 routers,
    segments of 300 lines, unless ``kw`` says otherwise."""
    opts: dict[str, object] = {"nodes": 6, "copies": 2, "max_lines": 300}
    opts.update(kw)
    convert(runs or [v3_run(s) for s in SCHEDULES], out, **opts)  # type: ignore[arg-type]
    return out


def copy_fleet(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
