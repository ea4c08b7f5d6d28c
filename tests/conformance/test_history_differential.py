"""The history checker against the brute-force oracle (history_oracle.py), key by key.

CI runs ``CI_HISTORIES`` random histories; the deep profile (``DYNASPEC_DEEP_HISTORY=N``,
``make deep-history``) runs N. Every disagreement found is kept below as a regression
test, minimised.
"""

from __future__ import annotations

import os
import random
import time

import pytest
from history_oracle import oracle, perturb, random_key_history

from conformance.linearizability import check_history, check_key
from conformance.linearizability.model import UNKNOWN, _classify, _States
from conformance.linearizability.witness import witness
from reference.client import HistoryRecord
from reference.messages import ReadResult
from reference.replica import DEFAULT_SCHEMA
from reference.storage import (
    AddNumber,
    Applied,
    Compare,
    ConditionalCheckFailed,
    Key,
    M,
    N,
    Put,
    S,
    SetAttr,
    Update,
)

CI_HISTORIES = 300
DEEP = int(os.environ.get("DYNASPEC_DEEP_HISTORY", "0"))
KEYS = (Key(S("a")), Key(S("b")))


def random_history(seed: int) -> list[HistoryRecord]:
    """Two keys, each linearizable by construction, then (mostly) perturbed."""
    rng = random.Random(seed)
    recs: list[HistoryRecord] = []
    for j, key in enumerate(KEYS):
        one = random_key_history(rng, key, rng.randrange(1, 8), prefix=f"k{j}",
                                 blank=rng.choice([0.0, 0.3, 1.0]))
        for _ in range(rng.choice([0, 1, 1, 2])):
            one = perturb(rng, one)
        recs += one
    return recs


def checker_verdicts(recs: list[HistoryRecord]) -> dict[Key, str]:
    rep = check_history(recs)
    out = {r.key: "ok" for r in recs}
    for v in rep.violations:
        out[v.key] = "violation"
    for ev in rep.eventual_violations:
        out[ev.key] = "violation"
    for k in rep.unknown_keys:
        out[k] = "undecided"
    return out


def disagreements(recs: list[HistoryRecord]) -> list[str]:
    """Every way the checker and the oracle differ on ``recs`` (empty: they agree)."""
    want = {k: "ok" if v else "violation" for k, v in oracle(recs).items()}
    got = checker_verdicts(recs)
    out = [f"{k}: checker {got[k]}, oracle {want[k]}" for k in want if got[k] != want[k]]
    for k in want:
        one = [r for r in recs if r.key == k]
        search = check_key(one, method="search").verdict
        verdict = "ok" if search == "linearizable" else search
        if verdict != want[k]:
            out.append(f"{k}: search alone {search}, oracle {want[k]}")
        # The greedy witness answers only with a linearization it checked: never on a
        # violation, whichever path check_history took.
        sm = _States(DEFAULT_SCHEMA, k)
        ops, _ = _classify(one, sm)
        if witness(ops, sm) is not None and want[k] != "ok":
            out.append(f"{k}: witness found a linearization, oracle {want[k]}")
    rep = check_history(recs)
    for v in rep.violations:
        # The minimal sub-history fails on its own.
        if oracle(v.history)[v.key]:
            out.append(f"{v.key}: minimal sub-history {[r.id for r in v.history]} passes")
    return out


def run(count: int, first_seed: int = 0) -> tuple[int, dict[str, int]]:
    seen = {"ok": 0, "violation": 0}
    for seed in range(first_seed, first_seed + count):
        recs = random_history(seed)
        bad = disagreements(recs)
        assert not bad, (seed, bad, [r.to_json() for r in recs])
        for v in oracle(recs).values():
            seen["ok" if v else "violation"] += 1
    return count, seen


def test_checker_agrees_with_oracle_on_random_histories() -> None:
    _, seen = run(CI_HISTORIES)
    # Not vacuous: both verdicts are common.
    assert seen["ok"] > CI_HISTORIES // 4 and seen["violation"] > CI_HISTORIES // 4, seen


@pytest.mark.skipif(not DEEP, reason="deep profile: DYNASPEC_DEEP_HISTORY=N (make deep-history)")
def test_checker_agrees_with_oracle_deep() -> None:
    t = time.perf_counter()
    n, seen = run(DEEP, first_seed=1_000_000)
    print(f"\ndeep differential: {n} histories ({seen}) in {time.perf_counter() - t:.1f} s")


# --- minimised disagreements, kept ----------------------------------------------------------

B = Key(S("b"))


def _item(v: int) -> M:
    return M(pk=S("b"), v=N(v))


def test_regression_sweep_eager_read_keeps_what_the_old_configuration_enabled() -> None:
    # Found by the differential test (seed 3): the sweep linearized the condfail at
    # once on absent, replacing its configuration, but never re-expanded the new one,
    # losing "condfail on absent, then the put".
    put = HistoryRecord("k1c3-2", "k1c3", "put", B, None, Put(_item(1)), 9, 446, "ok",
                        Applied(UNKNOWN, UNKNOWN), 1, "r1")
    cas = HistoryRecord("k1c0-1", "k1c0", "update", B, None,
                        Update(B, (SetAttr("v", N(2)),), Compare("v", "=", N(1))), 90, 177,
                        "condfail", ConditionalCheckFailed(UNKNOWN), 1, "r1")
    assert oracle([put, cas]) == {B: True}
    assert not disagreements([put, cas])
    assert check_key([put, cas], method="search").verdict == "linearizable"


def test_regression_unbounded_bound_does_not_eat_the_budget() -> None:
    # Found by the deep profile (seed 1000025): with a pending ADD, the sweep's
    # over-approximation (every unknown write acting any number of times) counts up
    # without end; given the whole budget it spent 1,000,000 configurations (a minute)
    # before the exact sweep decided the key in a dozen.
    a = Key(S("a"))

    def item(v: int) -> M:
        return M(pk=S("a"), v=N(v))

    recs = [
        HistoryRecord("k0c1-1", "k0c1", "get", a, False, None, -147, 194, "ok",
                      ReadResult(None), 1, "r2"),
        HistoryRecord("k0c3-2", "k0c3", "put", a, None, Put(item(0), Compare("v", "=", N(0))),
                      117, 352, "condfail", ConditionalCheckFailed(None), 1, "r1"),
        HistoryRecord("k0c3-3", "k0c3", "update", a, None, Update(a, (AddNumber("v", N(1)),)),
                      186, -1, None, None, 1, None),
        HistoryRecord("k0c0-4", "k0c0", "update", a, None,
                      Update(a, (AddNumber("v", N(1)),), Compare("v", "=", N(2))), 243, 603,
                      "condfail", ConditionalCheckFailed(None), 1, "r1"),
        HistoryRecord("k0c3-5", "k0c3", "get", a, False, None, 343, 737, "ok",
                      ReadResult(item(2)), 1, "r2"),
    ]
    assert oracle(recs) == {a: False}  # one pending ADD cannot make v = 2
    assert not disagreements(recs)
    res = check_key(recs, method="search")
    assert res.verdict == "violation"
    assert res.states < 100_000, res.states
