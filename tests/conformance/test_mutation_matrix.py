"""The membership bugs of the mutation matrix (issue 9), on the ``heal`` scenario.

The full matrix (``make mutation-matrix``, part of ``make test``) requires each of them
to be caught by at least two layers (the monitor and TLC trace validation); these are
the fast checks: the seams they patch still exist, the correct implementation passes
the heal scenario's monitor and linearizability check, and the monitor catches each
bug with the property the spec's mutant breaks.
"""

from __future__ import annotations

import pytest

from conformance import mutants
from conformance.mutation_matrix import (
    MEMBERSHIP_BUGS,
    SCENARIO_LAYERS,
    Row,
    run_scenario,
    scenario_of,
    verdict,
)


def test_membership_bugs_are_registered_and_patch_existing_seams() -> None:
    assert len(MEMBERSHIP_BUGS) >= 4
    for name, bug in MEMBERSHIP_BUGS.items():
        assert mutants.BUGS[name] is bug
        assert scenario_of(name) == "heal"
        with mutants.active(name):  # raises if a patched source text moved
            pass


def test_the_correct_implementation_passes_the_heal_scenario() -> None:
    run = run_scenario(1, None, "heal")
    actions = {type(loc.event.args).__name__ for loc in run.events}
    assert actions  # the run traced something
    assert set(run.kinds) == {"r1", "r2", "r3", "r4"}
    assert run.kinds["r4"] == "none"
    for layer in ("monitor", "linearizability"):
        caught, detail = SCENARIO_LAYERS[layer](run)
        assert not caught, f"{layer}: {detail}"


@pytest.mark.parametrize(("bug", "prop"), [
    ("TwoChangesInFlight", "ConfigSafety"),
    ("RemovedVoteCounts", "Durability"),
    ("LogReplicaLeads", "LogReplicaNeverLeads"),
    ("SnapshotMissesSlot", "StateMachineSafety"),
])
def test_the_monitor_catches_each_membership_bug(bug: str, prop: str) -> None:
    caught, detail = SCENARIO_LAYERS["monitor"](run_scenario(1, bug))
    assert caught and prop in detail, detail


def test_verdict_wants_two_layers_per_bug() -> None:
    rows = [Row("TwoChangesInFlight", "monitor", True, 0.1),
            Row("TwoChangesInFlight", "tlc", False, 1.0),
            Row("none", "tlc", False, 1.0, scenario="heal")]
    assert verdict(rows) == ["TwoChangesInFlight caught by 1 layer(s) ['monitor'], fewer "
                             "than 2"]
