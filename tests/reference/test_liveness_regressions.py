"""Seeds `dynaspec explore` found stuck on the correct implementation, kept as regressions.

Each is the reproduction line explore printed (options spelled out), run through the
command a user would run: it must audit clean and commit a write within the liveness
bound after the heal.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from conformance.cli import main

CASES = {
    # A candidate with peer confirmation whose promise was lost: a candidate may not
    # suspect (spec Suspect: followers only), so it waited forever; it now sends its 1a
    # again and the acceptor re-sends the same promise.
    "candidate-lost-promise": [
        "--seed", "331", "--duration", "10s", "--liveness-bound", "10s",
        "--faults", "partitions:3+flaky-network:3+disk-faults:2", "--replicas", "3",
        "--clients", "4", "--keys", "4", "--read-fraction", "0.5",
        "--consistent-fraction", "0.5", "--think", "10ms", "--peer-confirm",
        "--no-handoff", "--late-messages", "0"],
    # A follower persisted slots but never learnt their commits (the old leader's WAL was
    # then corrupted): the new leader had truncated them, and a seed may not skip slots a
    # B-tree has not applied. Truncation now waits for every member to have applied.
    "truncated-before-applied": [
        "--seed", "486", "--duration", "3s", "--liveness-bound", "10s",
        "--faults", "flaky-network:1+disk-faults:3+deploy:1", "--clients", "6",
        "--keys", "16", "--read-fraction", "0.9", "--consistent-fraction", "1",
        "--think", "2ms", "--peer-confirm", "--handoff"],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_explore_stuck_seed_now_live(name: str, tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["simulate", *CASES[name], "--out", str(tmp_path)])
    assert "audit: ok" in res.output, res.output
    assert "liveness: ok" in res.output, res.output
    assert res.exit_code == 0, res.output
