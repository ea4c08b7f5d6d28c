"""Z3 proofs of quorum intersection across membership changes
(conformance/reconfig_intersection.py), checked against brute force for small groups."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Mapping
from typing import Any, Literal

import pytest

from conformance.quorum_intersection import half_rounded_down_quorum, majority_quorum, rule_holds
from conformance.reconfig_intersection import (
    CHANGES,
    DEFAULT_CHANGES,
    concrete_changes,
    prove_change_intersection,
)

# Plain-Python versions of the rules (no Z3): counts of storage and log members, and of
# storage and log members in the group.
PyRule = Callable[[int, int, int, int], bool]


def py_majority(st: int, lg: int, in_st: int, in_lg: int) -> bool:
    return 2 * (in_st + in_lg) > st + lg


def py_half_rounded_down(st: int, lg: int, in_st: int, in_lg: int) -> bool:
    return in_st + in_lg >= (st + lg) // 2


Config = tuple[str, ...]  # kind of r1, r2, ...
Share = Literal["both", "before", "any"]


def _members(c: Config) -> int:
    return sum(1 << i for i, k in enumerate(c) if k != "none")


@functools.cache
def _quorums(c: Config, rule: PyRule, within_members: bool) -> tuple[int, ...]:
    """Every group (bitmask over the replicas) that is a quorum of c."""
    n, st, lg = len(c), c.count("storage"), c.count("log")
    out = []
    for g in range(1 << n):
        if within_members and g & ~_members(c):
            continue
        in_st = sum(g >> i & 1 for i in range(n) if c[i] == "storage")
        in_lg = sum(g >> i & 1 for i in range(n) if c[i] == "log")
        if rule(st, lg, in_st, in_lg):
            out.append(g)
    return tuple(out)


def _as_dict(c: Config) -> dict[str, str]:
    return {f"r{i + 1}": k for i, k in enumerate(c)}


def _reachable(c: Config, steps: int, changes: frozenset[str]) -> set[Config]:
    """Configurations at most `steps` single changes from c, each on the way with a member."""
    seen, frontier = {c}, {c}
    for _ in range(steps):
        frontier = {tuple(d.values()) for f in frontier
                    for d in concrete_changes(_as_dict(f), changes=changes)
                    if any(k != "none" for k in d.values())}
        seen |= frontier
    return seen


def brute_force_ok(n: int, steps: int, rule: PyRule, changes: frozenset[str] = DEFAULT_CHANGES,
                   share: Share = "both") -> bool:
    """Whether quorums of configurations `steps` changes apart always share, over every
    configuration of n replicas.  share="both": groups within each configuration's
    members must meet; "before": any groups must meet in a member of C; "any": any
    groups must meet at all."""
    within = share == "both"
    for c in itertools.product(("storage", "log", "none"), repeat=n):
        if _members(c) == 0:
            continue
        for c2 in _reachable(c, steps, changes):
            mask = _members(c) if share == "before" else -1
            for a in _quorums(c, rule, within):
                for b in _quorums(c2, rule, within):
                    if not a & b & mask:
                        return False
    return True


def _is_quorum(kinds: Mapping[str, str], group: list[str], rule: PyRule) -> bool:
    assert all(kinds[r] != "none" for r in group)
    st = sum(k == "storage" for k in kinds.values())
    lg = sum(k == "log" for k in kinds.values())
    return rule(st, lg, sum(kinds[r] == "storage" for r in group),
                sum(kinds[r] == "log" for r in group))


def _check_counterexample(cex: dict[str, Any], rule: PyRule, steps: int) -> None:
    """The counterexample really is two disjoint quorums of configurations at most
    `steps` changes apart."""
    path = cex["path"]
    assert path[0] == cex["before"] and path[-1] == cex["after"]
    assert 2 <= len(path) <= steps + 1
    for c, d in itertools.pairwise(path):
        assert d in concrete_changes(c)
    assert all(any(k != "none" for k in c.values()) for c in path)
    assert len(cex["changes"]) == len(path) - 1
    a, b = cex["A"], cex["B"]
    assert a and b
    assert _is_quorum(cex["before"], a, rule)
    assert _is_quorum(cex["after"], b, rule)
    assert not set(a) & set(b)


def test_single_changes_keep_majorities_intersecting() -> None:
    r = prove_change_intersection(9)
    print(f"\n9 members, steps=1: {r.seconds:.2f} s")
    assert r.ok, r.explanation
    assert "any number of replicas" in r.explanation and "up to 9 replicas" in r.explanation
    assert r.seconds < 20
    assert prove_change_intersection(6, changes=CHANGES).ok  # demotion too
    assert prove_change_intersection(6, steps=0).ok  # one configuration


def test_two_changes_in_flight_break_intersection() -> None:
    r = prove_change_intersection(9, steps=2)
    assert not r.ok and r.counterexample is not None
    _check_counterexample(r.counterexample, py_majority, 2)
    assert r.counterexample["symbolic"]  # the any-size proof fails too
    assert "share no replica" in r.explanation
    # Ongaro's: two servers added to three, one at a time but both in flight.
    before = {"s1": "storage", "s2": "storage", "s3": "storage", "s4": "none", "s5": "none"}
    mid = {**before, "s4": "storage"}
    after = {**mid, "s5": "storage"}
    assert mid in concrete_changes(before) and after in concrete_changes(mid)
    assert _is_quorum(before, ["s1", "s2"], py_majority)
    assert _is_quorum(after, ["s3", "s4", "s5"], py_majority)


def test_half_rounded_down_fails_even_with_one_change() -> None:
    r = prove_change_intersection(9, quorum_rule=half_rounded_down_quorum)
    assert not r.ok and r.counterexample is not None
    _check_counterexample(r.counterexample, py_half_rounded_down, 1)


CHANGE_SETS = [DEFAULT_CHANGES, CHANGES, frozenset({"remove"}), frozenset({"add_storage"}),
               frozenset({"add_log", "promote"}), frozenset({"promote", "demote"})]


@pytest.mark.parametrize("steps", [1, 2])
def test_brute_force_agrees(steps: int) -> None:
    verdicts = set()
    for changes in CHANGE_SETS:
        for n in range(1, 6):
            z = prove_change_intersection(n, steps=steps, changes=changes, symbolic=False)
            ok = brute_force_ok(n, steps, py_majority, changes)
            assert z.ok == ok, (n, steps, sorted(changes))
            verdicts.add(ok)
    for n in range(1, 5):
        z = prove_change_intersection(n, steps=steps, quorum_rule=half_rounded_down_quorum,
                                      symbolic=False, changes=CHANGES)
        assert z.ok == brute_force_ok(n, steps, py_half_rounded_down, CHANGES), (n, steps)
    assert verdicts == ({True} if steps == 1 else {True, False})  # not vacuous


def test_brute_force_verdicts() -> None:
    # Removals alone: two in flight first go wrong at three replicas ({r2, r3} is a
    # quorum of {r1, r2, r3}, {r1} of {r1}).
    remove = frozenset({"remove"})
    assert brute_force_ok(2, 2, py_majority, remove)
    assert prove_change_intersection(2, steps=2, changes=remove, symbolic=False).ok
    assert not brute_force_ok(3, 2, py_majority, remove)
    r = prove_change_intersection(3, steps=2, changes=remove, symbolic=False)
    assert not r.ok and r.counterexample is not None
    assert len(r.counterexample["changes"]) == 2
    assert not brute_force_ok(2, 2, py_majority)  # {r1} -> {r1, r2} -> {r2}
    assert brute_force_ok(1, 2, py_majority)  # one replica: nothing can go wrong


@pytest.mark.parametrize("steps", [1, 2])
@pytest.mark.parametrize("rule", [py_majority, py_half_rounded_down])
def test_readings_of_share_agree(steps: int, rule: PyRule) -> None:
    # Groups within the members meeting, any groups meeting in a member of C, any groups
    # meeting at all: the same verdict (a rule sees only member counts).
    for n in range(1, 4):
        verdicts = {brute_force_ok(n, steps, rule, CHANGES, share)
                    for share in ("both", "before", "any")}
        assert len(verdicts) == 1, (n, steps, rule.__name__)


def test_plain_rules_are_the_z3_rules() -> None:
    for st, lg in itertools.product(range(5), repeat=2):
        for in_st, in_lg in itertools.product(range(st + 1), range(lg + 1)):
            counts = (st, lg, in_st, in_lg)
            assert rule_holds(majority_quorum, *counts) == py_majority(*counts)
            assert rule_holds(half_rounded_down_quorum, *counts) == py_half_rounded_down(*counts)


def test_concrete_changes() -> None:
    c = {"a": "storage", "b": "log", "c": "none"}
    got = concrete_changes(c)
    assert len(got) == 5 and all(len(d) == 3 for d in got)
    assert {"a": "storage", "b": "storage", "c": "none"} in got  # promote
    assert {"a": "storage", "b": "log", "c": "log"} in got
    assert {"a": "none", "b": "log", "c": "none"} in got
    assert {"a": "log", "b": "log", "c": "none"} not in got  # no demotion by default
    assert {"a": "log", "b": "log", "c": "none"} in concrete_changes(c, changes=CHANGES)
    assert concrete_changes(c, changes=frozenset()) == []
    with pytest.raises(ValueError):
        concrete_changes(c, changes=frozenset({"swap"}))
    with pytest.raises(ValueError):
        prove_change_intersection(3, changes=frozenset({"swap"}))
