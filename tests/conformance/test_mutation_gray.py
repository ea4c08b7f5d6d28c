"""The gray-failure and handoff bugs of the mutation matrix (issue 10), on the ``gray``
and ``handoff`` scenarios: the seams they patch still exist, the correct implementation
passes both scenarios' monitor, lease and linearizability checks, and the monitor
catches the bugs it is meant to (the full matrix, ``make mutation-matrix``, requires two
layers for each)."""

from __future__ import annotations

import pytest

from conformance import mutants
from conformance.mutation_matrix import GRAY_BUGS, SCENARIO_LAYERS, run_scenario, scenario_of


def test_gray_bugs_are_registered_and_patch_existing_seams() -> None:
    assert set(GRAY_BUGS) == {"NoPeerConfirm", "SkipWaitWithoutHandoff",
                              "ServeAfterRelinquish", "RenewAfterRelinquish",
                              "VouchWithoutLease"}
    for name, bug in GRAY_BUGS.items():
        assert mutants.BUGS[name] is bug
        assert scenario_of(name) in ("gray", "handoff", "lease")
        with mutants.active(name):  # raises if a patched source text moved
            pass


@pytest.mark.parametrize("scenario", ["gray", "handoff"])
def test_the_correct_implementation_passes_the_scenario(scenario: str) -> None:
    run = run_scenario(1, None, scenario)
    for layer in ("monitor", "linearizability", "z3-leases"):
        caught, detail = SCENARIO_LAYERS[layer](run)
        assert not caught, f"{scenario} {layer}: {detail}"


@pytest.mark.parametrize(("bug", "prop"), [
    ("NoPeerConfirm", "NoNeedlessElection"),
    ("VouchWithoutLease", "EventuallyConnectedLease"),
    ("ServeAfterRelinquish", "LeaseExclusivity"),
    ("RenewAfterRelinquish", "LeaseExclusivity"),
    ("SkipWaitWithoutHandoff", "LeaseExclusivity"),
])
def test_the_monitor_catches_the_bug(bug: str, prop: str) -> None:
    caught, detail = SCENARIO_LAYERS["monitor"](run_scenario(1, bug))
    assert caught and prop in detail, detail
