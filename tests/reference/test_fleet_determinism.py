"""A fleet's files are a function of its configuration: the same bytes on 1 or 2 Dask
workers, and the same as the tasks run one by one in this process."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from distributed import LocalCluster
from test_fleet_output import run_in_process

from reference.fleet_config import SECOND, FleetConfig
from reference.fleet_run import WORK_DIR, run_fleet
from reference.workload import WorkloadConfig

CONFIG = FleetConfig(seed=5, nodes=4, groups=6, clients=2, duration_us=3 * SECOND,
                     settle_us=SECOND // 2, faults="mixed", segment_lines=300,
                     compression="zst", workload=WorkloadConfig(think_us=30_000))


def _files(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """Two in-process workers (threads: quick to start; process workers are the
    default, used by the test below)."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,  # type: ignore[no-untyped-call]
                      dashboard_address=":0", silence_logs=logging.ERROR) as c:
        yield c


def _workers(cluster: LocalCluster) -> int:
    return len(cluster.scheduler_info["workers"])


def test_one_and_two_workers_write_the_same_bytes(cluster: LocalCluster,
                                                  tmp_path: Path) -> None:
    assert _workers(cluster) == 2
    two = run_fleet(CONFIG, tmp_path / "two", scheduler=cluster.scheduler_address)
    cluster.scale(1)
    deadline = time.monotonic() + 10
    while _workers(cluster) != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _workers(cluster) == 1
    one = run_fleet(CONFIG, tmp_path / "one", scheduler=cluster.scheduler_address)
    a, b = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert a == b
    assert one.fleet == two.fleet and one.events > 1_000 and one.segments > 6
    assert not (tmp_path / "one" / WORK_DIR).exists()  # intermediate files removed
    # The same segments as the tasks run one after the other, without Dask.
    run_in_process(CONFIG, tmp_path / "local")
    local = _files(tmp_path / "local")
    assert {k: v for k, v in local.items() if k != "fleet.json"} == \
        {k: v for k, v in a.items() if k != "fleet.json"}


def test_a_rerun_into_the_same_directory_leaves_no_stale_segments(tmp_path: Path) -> None:
    """Also the default cluster: local worker processes."""
    long = dataclasses.replace(CONFIG, segment_lines=50, compression="none", groups=3)
    run_in_process(long, tmp_path)
    stale = {p.name for p in tmp_path.glob("trace-*")}
    short = dataclasses.replace(long, segment_lines=100_000)
    result = run_fleet(short, tmp_path, workers=1)
    left = {p.name for p in tmp_path.glob("trace-*")}
    assert len(stale) > len(left)
    assert left == {s for h in result.fleet["nodes"] for s in h["segments"]}
