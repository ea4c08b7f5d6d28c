"""Z3 proofs of quorum intersection (conformance/quorum_intersection.py)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping

from conformance.quorum_intersection import (
    half_rounded_down_quorum,
    majority_quorum,
    prove_quorum_intersection,
    rule_holds,
    storage_majority_quorum,
    storage_write_quorum,
)
from reference.replica import Replica, ReplicaConfig

D = 1_000_000  # lease duration used by the hand-made cases


def _counts(kinds: Mapping[str, str], group: list[str]) -> tuple[int, int, int, int]:
    st = sum(k == "storage" for k in kinds.values())
    lg = sum(k == "log" for k in kinds.values())
    return (st, lg, sum(kinds[a] == "storage" for a in group),
            sum(kinds[a] == "log" for a in group))


def test_quorum_intersection_holds() -> None:
    r = prove_quorum_intersection()
    assert r.ok, r.explanation
    assert "up to 9 replicas" in r.explanation
    assert prove_quorum_intersection(4).ok


def test_broken_rule_gives_a_counterexample() -> None:
    r = prove_quorum_intersection(5, quorum_rule=half_rounded_down_quorum)
    assert not r.ok and r.counterexample is not None
    kinds, a, b = r.counterexample["kinds"], r.counterexample["A"], r.counterexample["B"]
    assert a and b  # a readable one: two non-empty groups
    members = {x for x, k in kinds.items() if k != "none"}
    assert not set(a) & set(b) & members
    assert rule_holds(half_rounded_down_quorum, *_counts(kinds, a))
    assert rule_holds(half_rounded_down_quorum, *_counts(kinds, b))
    assert not rule_holds(majority_quorum, *_counts(kinds, a)) or \
        not rule_holds(majority_quorum, *_counts(kinds, b))


def test_majority_rule_is_the_implementations() -> None:
    cfg = ReplicaConfig(D, 9_000, 2_000, 0)  # valid whether margin >= 2 or 4 * drift
    for n in range(1, 5):
        names = [f"r{i}" for i in range(1, n + 1)]
        for kinds in itertools.product(("storage", "log", "none"), repeat=n):
            members = dict(zip(names, kinds, strict=True))
            rep = Replica(names[0], members, cfg)  # type: ignore[arg-type]
            for k in range(n + 1):
                for group in itertools.combinations(names, k):
                    expect = rep.is_quorum(set(group))
                    got = rule_holds(majority_quorum, *_counts(members, list(group)))
                    assert got == expect, (members, group)


def test_rules_for_log_replicas() -> None:
    # Quorums with a storage replica still intersect majorities in some member...
    assert prove_quorum_intersection(6, quorum_rule=storage_write_quorum,
                                     other_quorum_rule=majority_quorum).ok
    # ...but not necessarily in a storage replica.
    r = prove_quorum_intersection(6, quorum_rule=storage_write_quorum,
                                  other_quorum_rule=majority_quorum, need="storage")
    assert not r.ok and r.counterexample is not None
    kinds, a, b = r.counterexample["kinds"], r.counterexample["A"], r.counterexample["B"]
    assert all(kinds[x] != "storage" for x in set(a) & set(b))
    assert rule_holds(storage_write_quorum, *_counts(kinds, a))
    assert rule_holds(majority_quorum, *_counts(kinds, b))
    # A majority of the storage replicas on both sides is what that would need.
    assert prove_quorum_intersection(6, quorum_rule=storage_majority_quorum, need="storage").ok
