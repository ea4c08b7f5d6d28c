"""conformance/linearizability.py: the history checker, its fast path, search and shrinker."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance.linearizability import (
    HistoryFormatError,
    LinearizabilityReport,
    check_history,
    check_key,
    history_to_jsonl,
    load_history,
)
from reference.client import HistoryRecord, OpName, Status
from reference.cluster import SimConfig, World
from reference.messages import ReadResult
from reference.replica import DEFAULT_SCHEMA
from reference.storage import (
    AddNumber,
    Applied,
    AttributeExists,
    AttributeNotExists,
    Compare,
    Condition,
    ConditionalCheckFailed,
    Delete,
    Key,
    M,
    N,
    Put,
    Result,
    S,
    SetAttr,
    StorageEngine,
    Update,
    WriteOp,
)

K = Key(S("k"))


def item(tag: str, key: str = "k", val: str = "v") -> M:
    return M(pk=S(key), w=S(tag), val=S(val))


A, B, C = item("A"), item("B"), item("C")


def name_of(op: WriteOp) -> OpName:
    return "put" if isinstance(op, Put) else "update" if isinstance(op, Update) else "delete"


def key_of(op: WriteOp) -> Key:
    return DEFAULT_SCHEMA.key_of(op.item) if isinstance(op, Put) else op.key


def rec_w(rid: str, op: WriteOp, inv: int, comp: int, status: Status | None,
          result: Result | None) -> HistoryRecord:
    if status is None:
        comp = -1
    return HistoryRecord(rid, rid.split("-")[0], name_of(op), key_of(op), None, op, inv, comp,
                         status, result, 1, "r1" if result is not None else None)


def ok_put(rid: str, inv: int, comp: int, old: M | None, new: M,
           cond: Condition | None = None) -> HistoryRecord:
    return rec_w(rid, Put(new, cond), inv, comp, "ok", Applied(old, new))


def ok_update(rid: str, inv: int, comp: int, old: M, tag: str) -> HistoryRecord:
    """A conditional version bump w: old -> tag, as the workload does."""
    w = old["w"]
    assert isinstance(w, S)
    new = old.with_changes({"w": S(tag)})
    op = Update(K, (SetAttr("w", S(tag)),), Compare("w", "=", w))
    return rec_w(rid, op, inv, comp, "ok", Applied(old, new))


def ok_delete(rid: str, inv: int, comp: int, old: M | None) -> HistoryRecord:
    return rec_w(rid, Delete(K), inv, comp, "ok", Applied(old, None))


def timeout_put(rid: str, inv: int, new: M, pending: bool = False) -> HistoryRecord:
    return rec_w(rid, Put(new), inv, inv + 3_000_000, None if pending else "timeout", None)


def get(rid: str, inv: int, comp: int, value: M | None, consistent: bool = True,
        key: Key = K) -> HistoryRecord:
    return HistoryRecord(rid, rid.split("-")[0], "get", key, consistent, None, inv, comp, "ok",
                         ReadResult(value), 1, "r1")


def verdicts(recs: Sequence[HistoryRecord]) -> tuple[str, str]:
    """(fast path verdict, search verdict) of one key's records."""
    return (check_key(recs, method="fast").verdict, check_key(recs, method="search").verdict)


def assert_linearizable(recs: Sequence[HistoryRecord]) -> LinearizabilityReport:
    rep = check_history(recs)
    assert rep.ok, [v.explanation for v in rep.violations]
    assert check_history(recs, fast_path=False).ok
    return rep


def assert_violation(recs: Sequence[HistoryRecord], *words: str) -> LinearizabilityReport:
    for fast in (True, False):
        rep = check_history(recs, fast_path=fast)
        assert not rep.ok and len(rep.violations) == 1, rep
        v = rep.violations[0]
        for word in words:
            assert word in v.explanation, v.explanation
        ids = {r.id for r in recs}
        assert v.history and {r.id for r in v.history} <= ids
        # The minimal sub-history is itself non-linearizable.
        assert not check_history(v.history).ok
    return rep


# --- hand-written histories ------------------------------------------------------------------


def test_concurrent_write_and_read_either_order() -> None:
    w = ok_put("c1-1", 0, 10, None, A)
    assert verdicts([w, get("c2-1", 5, 15, None)]) == ("linearizable", "linearizable")
    assert verdicts([w, get("c2-1", 5, 15, A)]) == ("linearizable", "linearizable")
    # Touching intervals are concurrent too.
    assert verdicts([w, get("c2-1", 10, 15, None)]) == ("linearizable", "linearizable")
    assert_linearizable([w, get("c2-1", 5, 15, A), get("c3-1", 6, 16, None)])


def test_read_order_between_two_concurrent_reads_is_checked() -> None:
    # Two reads, both after the write started, the first completing before the second
    # starts: new then old is not allowed.
    recs = [ok_put("c1-1", 0, 100, None, A), get("c2-1", 10, 20, A), get("c3-1", 30, 40, None)]
    assert verdicts(recs) == ("violation", "violation")
    assert_violation(recs, "stale")
    ok = [ok_put("c1-1", 0, 100, None, A), get("c2-1", 10, 20, None), get("c3-1", 30, 40, A)]
    assert verdicts(ok) == ("linearizable", "linearizable")


def test_stale_read_after_acked_write_fails() -> None:
    recs = [ok_put("c1-1", 0, 10, None, A), ok_update("c1-2", 20, 30, A, "B"),
            get("c2-1", 40, 50, A)]
    assert verdicts(recs) == ("violation", "violation")
    rep = assert_violation(recs, "stale read", "c2-1", "c1-2")
    assert {r.id for r in rep.violations[0].history} == {"c1-2", "c2-1"}
    # Absent after an acknowledged create is stale too.
    assert_violation([ok_put("c1-1", 0, 10, None, A), get("c2-1", 20, 30, None)], "stale")


def test_read_of_value_never_written_fails() -> None:
    recs = [ok_put("c1-1", 0, 10, None, A), get("c2-1", 20, 30, item("nowhere"))]
    assert verdicts(recs) == ("violation", "violation")
    rep = assert_violation(recs, "value from nowhere", "w=nowhere")
    assert [r.id for r in rep.violations[0].history] == ["c2-1"]


def test_write_whose_old_was_never_written_fails() -> None:
    recs = [ok_put("c1-1", 0, 10, None, A), ok_put("c2-1", 20, 30, item("ghost"), B)]
    assert verdicts(recs) == ("violation", "violation")
    assert_violation(recs, "value from nowhere")


def test_condfail_consistent_and_inconsistent() -> None:
    create = ok_put("c1-1", 0, 10, None, A)
    cond = Compare("w", "=", S("X"))
    fail_on_a = rec_w("c2-1", Update(K, (SetAttr("w", S("c2-1")),), cond), 20, 30, "condfail",
                      ConditionalCheckFailed(A))
    assert verdicts([create, fail_on_a]) == ("linearizable", "linearizable")
    assert_linearizable([create, fail_on_a])
    # Not-exists put failing on A, concurrent with the create: fine.
    nx = rec_w("c3-1", Put(item("c3-1"), AttributeNotExists("pk")), 5, 8, "condfail",
               ConditionalCheckFailed(A))
    assert_linearizable([create, nx])
    # Failing on absent after A was acknowledged: stale.
    stale = rec_w("c2-1", Put(item("c2-1"), AttributeExists("pk")), 20, 30, "condfail",
                  ConditionalCheckFailed(None))
    assert_linearizable([create, rec_w("c2-1", Put(item("c2-1"), AttributeExists("nope")),
                                       20, 30, "condfail", ConditionalCheckFailed(A))])
    assert verdicts([create, stale]) == ("violation", "violation")
    assert_violation([create, stale], "stale")
    # Failing on A although the condition holds on A: impossible in any order.
    wrong = rec_w("c2-1", Update(K, (SetAttr("w", S("c2-1")),), Compare("w", "=", S("A"))),
                  20, 30, "condfail", ConditionalCheckFailed(A))
    assert verdicts([create, wrong]) == ("violation", "violation")
    rep = assert_violation([create, wrong], "failed its condition on w=A")
    assert [r.id for r in rep.violations[0].history] == ["c2-1"]


def test_ok_write_must_match_engine_semantics() -> None:
    # An update that claims to have produced something other than what it computes.
    op = Update(K, (SetAttr("w", S("B")), AddNumber("n", N(1))))
    bad = rec_w("c2-1", op, 20, 30, "ok", Applied(A, item("B")))  # n is missing
    good = rec_w("c2-1", op, 20, 30, "ok", Applied(A, A.with_changes({"w": S("B"),
                                                                     "n": N(1)})))
    create = ok_put("c1-1", 0, 10, None, A)
    assert_linearizable([create, good])
    assert_violation([create, bad], "acknowledged w=A -> {", 'the write gives {"n":{"N":"1"}')
    # The state a write saw must be an item of the write's key.
    foreign = ok_put("c3-1", 40, 50, item("A", key="other"), C)
    assert_violation([create, foreign], "old w=A is not an item of this key")


def test_timeout_write_that_later_appears_is_linearizable() -> None:
    recs = [ok_put("c1-1", 0, 10, None, A), timeout_put("c2-1", 20, B),
            get("c3-1", 5_000_000, 5_000_010, B)]
    # B has no acknowledged writer, so the chain analysis steps aside; the greedy
    # witness (placing c2-1 just before the read, then checked) decides it.
    assert verdicts(recs) == ("linearizable", "linearizable")
    rep = assert_linearizable(recs)
    assert rep.fast_path_keys == [K]
    # ... even when a later acknowledged write builds on it.
    more = [*recs, ok_update("c4-1", 6_000_000, 6_000_010, B, "C"),
            get("c5-1", 7_000_000, 7_000_010, item("C").with_changes({"w": S("C")}))]
    assert_linearizable(more)
    # Pending at the end of the run behaves the same.
    assert_linearizable([ok_put("c1-1", 0, 10, None, A), timeout_put("c2-1", 20, B, True),
                         get("c3-1", 50, 60, B)])


def test_timeout_write_that_never_appears_is_linearizable() -> None:
    recs = [ok_put("c1-1", 0, 10, None, A), timeout_put("c2-1", 20, B),
            get("c3-1", 5_000_000, 5_000_010, A), ok_update("c4-1", 6_000_000, 6_000_010, A, "C")]
    assert verdicts(recs) == ("linearizable", "linearizable")
    assert_linearizable(recs)
    assert_linearizable([ok_put("c1-1", 0, 10, None, A), timeout_put("c2-1", 20, B, True)])


def test_timeout_write_cannot_take_effect_before_its_invocation() -> None:
    recs = [get("c3-1", 0, 10, B), timeout_put("c2-1", 20, B)]
    assert verdicts(recs)[1] == "violation"
    assert_violation(recs, "c3-1")


def test_lost_update_fails() -> None:
    recs = [ok_put("c1-1", 0, 10, None, A), ok_update("c2-1", 20, 30, A, "B"),
            ok_update("c3-1", 25, 40, A, "C")]
    assert verdicts(recs) == ("violation", "violation")
    rep = assert_violation(recs, "lost update", "c2-1", "c3-1")
    assert {r.id for r in rep.violations[0].history} == {"c2-1", "c3-1"}


def test_real_time_violation_of_write_order_fails() -> None:
    # c2-1 replaced A, and was done, before A's writer was even invoked.
    recs = [ok_put("c2-1", 0, 10, A, B), ok_put("c1-1", 50, 60, None, A)]
    assert verdicts(recs) == ("violation", "violation")
    assert_violation(recs, "real-time violation", "c2-1", "c1-1")
    # Overlapping, the same two writes are fine.
    assert_linearizable([ok_put("c2-1", 0, 55, A, B), ok_put("c1-1", 50, 60, None, A)])
    # A read can see a write only once it has been invoked.
    assert_violation([get("c3-1", 0, 10, A), ok_put("c1-1", 50, 60, None, A)],
                     "real-time violation")


def test_deletes_on_the_fast_path() -> None:
    recs = [ok_put("c1-1", 0, 10, None, A), get("c2-1", 12, 14, A), ok_delete("c1-2", 20, 30, A),
            get("c2-2", 25, 35, None), ok_put("c1-3", 40, 50, None, B), get("c2-3", 45, 60, None),
            ok_delete("c3-1", 70, 80, B), ok_put("c1-4", 90, 100, None, C),
            get("c2-4", 110, 120, C)]
    rep = assert_linearizable(recs)
    assert rep.fast_path_keys == [K] and rep.search_keys == []
    # A read of absent that fits no epoch of absence.
    bad = [*recs[:5], get("c2-3", 52, 60, None), *recs[6:]]
    assert verdicts(bad) == ("violation", "violation")
    rep = assert_violation(bad, "stale read", "c2-3", "c1-3")
    assert {r.id for r in rep.violations[0].history} == {"c1-3", "c2-3"}
    # A delete of an absent item is a read of absent.
    assert_linearizable([ok_delete("c1-1", 0, 10, None), ok_put("c2-1", 20, 30, None, A)])
    assert verdicts([ok_put("c2-1", 0, 10, None, A), ok_delete("c1-1", 20, 30, None)]) == \
        ("violation", "violation")


def test_two_live_items_at_the_end_fail() -> None:
    recs = [ok_put("c1-1", 0, 10, None, A), ok_put("c2-1", 20, 30, None, B)]
    assert verdicts(recs) == ("violation", "violation")


def test_unknown_delete_can_explain_absence() -> None:
    recs = [ok_put("c1-1", 0, 10, None, A),
            rec_w("c2-1", Delete(K), 20, 3_000_020, "timeout", None),
            get("c3-1", 4_000_000, 4_000_010, None)]
    # (The chain analysis steps aside; the greedy witness places the delete.)
    assert verdicts(recs) == ("linearizable", "linearizable")
    assert verdicts([*recs[:2], get("c3-1", 5, 15, None),
                     get("c4-1", 12, 18, A)]) == ("linearizable", "linearizable")


def test_budget_reports_unknown_instead_of_hanging() -> None:
    # Many concurrent writes of unknown outcome, each seen later, then a read none of
    # them explains: every subset of them may have been applied before the first read.
    n = 24
    recs = [ok_put("c0-1", 0, 10, None, A)]
    recs += [timeout_put(f"c{i}-1", 20 + i, item(f"t{i}")) for i in range(1, n)]
    recs += [get(f"r{i}-1", 1000 * i, 1000 * i + 10, item(f"t{i}")) for i in range(1, n)]
    recs.append(get("r99-1", 9_000_000, 9_000_010, A))
    # The sweep decides it (every t_i was applied, so A never comes back) ...
    rep = check_history(recs, max_states=2000)
    assert [v.key for v in rep.violations] == [K] and not rep.unknown_keys
    # ... but a budget too small leaves it undecided, never a violation.
    rep = check_history(recs, max_states=3)
    assert rep.unknown_keys == [K] and not rep.ok and not rep.violations
    assert K not in rep.search_keys and K not in rep.fast_path_keys
    assert check_key(recs, max_states=3).verdict == "unknown"
    # Without the bad read it is linearizable (and quick: apply each just before its read).
    assert check_history(recs[:-1], max_states=2000).ok


def test_unobserved_unknown_writes_are_pruned_from_the_search() -> None:
    recs = [ok_put("c0-1", 0, 10, None, A)]
    recs += [timeout_put(f"c{i}-1", 20 + i, item(f"t{i}")) for i in range(1, 40)]
    recs.append(get("r9-1", 9_000_000, 9_000_010, item("nowhere")))
    assert check_key(recs, method="search", max_states=1000).verdict == "violation"
    assert check_key(recs[:-1], method="search", max_states=1000).verdict == "linearizable"


def test_search_is_iterative_on_long_histories() -> None:
    recs: list[HistoryRecord] = []
    state: M | None = None
    t = 0
    for i in range(6000):
        rid = f"c{i % 7}-{i}"
        new = item(rid)
        recs.append(ok_put(rid, t, t + 15, state, new))
        recs.append(get(f"r{i % 5}-{i}", t + 1, t + 30, state if i % 2 else new))
        state = new
        t += 20
    rep = check_history(recs, fast_path=False)
    assert rep.ok and rep.search_keys == [K]
    assert check_history(recs).fast_path_keys == [K]


def test_report_separates_keys_and_paths() -> None:
    k2 = Key(S("k2"))
    a2 = item("A2", "k2")
    k3 = Key(S("k3"))
    recs = [ok_put("c1-1", 0, 10, None, A), ok_put("c2-1", 0, 10, None, a2),
            timeout_put("c3-1", 5, item("T")), get("c4-1", 20, 30, item("T")),
            get("c5-1", 20, 30, None, key=k2),
            # Read before its only possible writer was invoked: only the search decides.
            get("c6-1", 0, 3, item("T3", "k3"), key=k3), timeout_put("c7-1", 5, item("T3", "k3"))]
    rep = check_history(recs)
    assert rep.keys_checked == 3
    assert rep.search_keys == [k3] and rep.fast_path_keys == [K, k2]
    assert [v.key for v in rep.violations] == [k2, k3]
    assert [v.path for v in rep.violations] == ["fast", "search"]
    assert not rep.ok and "FAIL" in rep.summary()


def test_check_key_wants_one_key() -> None:
    with pytest.raises(ValueError, match="more than one key"):
        check_key([get("c1-1", 0, 1, None), get("c1-2", 0, 1, None, key=Key(S("x")))])
    with pytest.raises(ValueError, match="no records"):
        check_key([])


# --- eventual reads ----------------------------------------------------------------------------


def test_eventual_reads_may_be_stale_but_not_from_nowhere() -> None:
    base = [ok_put("c1-1", 0, 10, None, A), ok_update("c1-2", 20, 30, A, "B")]
    stale = get("c2-1", 40, 50, A, consistent=False)
    absent = get("c2-2", 40, 50, None, consistent=False)
    rep = check_history([*base, stale, absent])
    assert rep.ok and not rep.eventual_violations
    nowhere = get("c2-3", 40, 50, item("zz"), consistent=False)
    rep = check_history([*base, nowhere])
    assert [v.record.id for v in rep.eventual_violations] == ["c2-3"]
    assert "no write to the key produced" in rep.eventual_violations[0].explanation
    assert not rep.ok and not rep.violations
    # Same writer tag, different contents: matched on the whole item, not just w.
    forged = get("c2-4", 40, 50, A.with_changes({"val": S("forged")}), consistent=False)
    rep = check_history([*base, forged])
    assert [v.record.id for v in rep.eventual_violations] == ["c2-4"]
    assert "but the write tagged w=A produced" in rep.eventual_violations[0].explanation


def test_eventual_read_cannot_precede_its_writer() -> None:
    early = get("c2-1", 0, 5, A, consistent=False)
    rep = check_history([early, ok_put("c1-1", 10, 20, None, A)])
    assert len(rep.eventual_violations) == 1
    assert "invoked only at 10us" in rep.eventual_violations[0].explanation
    # Concurrent with the write is fine.
    assert check_history([get("c2-1", 0, 15, A, consistent=False),
                          ok_put("c1-1", 10, 20, None, A)]).ok


def test_eventual_read_of_failed_write_or_unknown_write() -> None:
    failed = rec_w("c1-1", Put(A, AttributeNotExists("pk")), 0, 10, "condfail",
                   ConditionalCheckFailed(B))
    rep = check_history([ok_put("c0-1", 0, 5, None, B), failed,
                         get("c2-1", 20, 30, A, consistent=False)])
    assert len(rep.eventual_violations) == 1
    assert "failed write c1-1" in rep.eventual_violations[0].explanation
    # A write of unknown outcome may be what the read saw.
    rep = check_history([timeout_put("c1-1", 0, A), get("c2-1", 20, 30, A, consistent=False)])
    assert not rep.eventual_violations
    # So may an update of unknown outcome, matched by its w tag and full item.
    upd = Update(K, (SetAttr("w", S("U")),), Compare("w", "=", S("A")))
    recs = [ok_put("c0-1", 0, 5, None, A), rec_w("c1-1", upd, 10, -1, None, None)]
    assert check_history([*recs, get("c2-1", 20, 30, A.with_changes({"w": S("U")}),
                                     consistent=False)]).eventual_violations == []
    wrong = A.with_changes({"w": S("U"), "val": S("other")})
    assert len(check_history([*recs, get("c2-1", 20, 30, wrong, consistent=False)])
               .eventual_violations) == 1


# --- minimal sub-histories ----------------------------------------------------------------------


def test_minimal_sub_history_of_a_buried_stale_read() -> None:
    rng = random.Random(5)
    recs: list[HistoryRecord] = []
    states: list[M | None] = [None]
    t = 0
    while len(recs) < 199:
        i = len(recs)
        if rng.random() < 0.5:
            new = item(f"c{i % 9}-{i}")
            recs.append(ok_put(f"c{i % 9}-{i}", t, t + rng.randrange(5, 40), states[-1], new))
            states.append(new)
        else:
            recs.append(get(f"c{i % 9}-{i}", t, t + rng.randrange(5, 40), states[-1]))
        t += 50
    assert check_history(recs).ok
    # A read in the middle returns the state of ten writes earlier.
    t = recs[100].invoke_us
    stale = get("x-1", t + 1, t + 2, states[len(states) // 2 - 10])
    rep = check_history([*recs, stale])
    assert len(rep.violations) == 1
    sub = rep.violations[0].history
    assert len(sub) <= 3 and "x-1" in {r.id for r in sub}
    assert "stale read" in rep.violations[0].explanation
    # Deterministic.
    again = check_history([*recs, stale])
    assert [r.id for r in again.violations[0].history] == [r.id for r in sub]
    assert again.violations[0].explanation == rep.violations[0].explanation


def test_shrinking_never_blames_a_removed_producer() -> None:
    # Plain greedy removal would keep just c3-1 (its old, B, would have no producer).
    recs = [ok_put("c1-1", 0, 10, None, A), ok_update("c2-1", 20, 30, A, "B"),
            ok_update("c3-1", 40, 50, B.with_changes({"val": S("v")}), "C"),
            get("c4-1", 60, 70, A)]
    rep = check_history(recs)
    sub = {r.id for r in rep.violations[0].history}
    assert "c4-1" in sub and len(sub) == 2, rep.violations[0]


def test_shrink_off_reports_whole_key() -> None:
    recs = [ok_put("c1-1", 0, 10, None, A), get("c9-1", 11, 12, A),
            ok_update("c1-2", 20, 30, A, "B"), get("c2-1", 40, 50, A)]
    rep = check_history(recs, shrink=False)
    assert len(rep.violations[0].history) == 4
    assert "shrinking off" in rep.violations[0].explanation


# --- random histories: fast path against search --------------------------------------------------


@dataclass
class Gen:
    """A random sequential execution of one key, then random intervals around it."""

    rng: random.Random
    recs: list[HistoryRecord] = field(default_factory=list)
    states: list[M | None] = field(default_factory=list)
    read_idx: list[int] = field(default_factory=list)


def random_history(rng: random.Random, n: int, unknown: bool = True) -> Gen:
    g = Gen(rng)
    engine = StorageEngine(DEFAULT_SCHEMA)
    tags: list[str] = []
    g.states.append(None)
    for i in range(n):
        point = 100 * (i + 1)
        inv = point - rng.randrange(0, 260)
        comp = point + rng.randrange(0, 260)
        rid = f"c{rng.randrange(4)}-{i + 1}"
        cur = engine.get(K)
        roll = rng.random()
        if roll < 0.35:
            g.read_idx.append(len(g.recs))
            g.recs.append(get(rid, inv, comp, cur))
            continue
        seen = rng.choice(tags) if tags and rng.random() < 0.7 else None
        cond: Condition | None = (Compare("w", "=", S(seen)) if seen is not None
                                  else AttributeNotExists("pk") if rng.random() < 0.5 else None)
        if roll < 0.6:
            op: WriteOp = Put(item(rid, val=str(i)), cond if rng.random() < 0.5 else None)
        elif roll < 0.85:
            op = Update(K, (SetAttr("w", S(rid)), AddNumber("n", N(1))), cond)
        else:
            op = Delete(K, cond)
        if unknown and rng.random() < 0.12:
            if rng.random() < 0.5:
                engine.apply(op)  # it took effect, at its point
            g.recs.append(rec_w(rid, op, inv, comp + 3_000_000,
                                "timeout" if rng.random() < 0.7 else None, None))
        else:
            res = engine.apply(op)
            status: Status = "ok" if isinstance(res, Applied) else "condfail"
            g.recs.append(rec_w(rid, op, inv, comp, status, res))
        tags.append(rid)
        g.states.append(engine.get(K))
    return g


def perturb(g: Gen) -> list[HistoryRecord] | None:
    if not g.read_idx:
        return None
    i = g.rng.choice(g.read_idx)
    old = g.recs[i]
    assert isinstance(old.result, ReadResult)
    others = [s for s in g.states if s != old.result.item]
    if not others:
        return None
    recs = list(g.recs)
    recs[i] = get(old.id, old.invoke_us, old.complete_us, g.rng.choice(others))
    return recs


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32), n=st.integers(1, 14), unknown=st.booleans())
def test_fast_path_and_search_agree_on_random_histories(seed: int, n: int,
                                                        unknown: bool) -> None:
    g = random_history(random.Random(seed), n, unknown)
    fast, search = verdicts(g.recs)
    assert search == "linearizable"
    assert fast in ("linearizable", "not-applicable")
    assert check_history(g.recs).ok
    bad = perturb(g)
    if bad is not None:
        fast, search = verdicts(bad)
        assert search in ("linearizable", "violation")
        assert fast in (search, "not-applicable")
        assert check_history(bad).ok == (search == "linearizable")


def test_fast_path_decides_most_random_histories_both_ways() -> None:
    """The agreement above is not vacuous: the fast path answers, in both directions."""
    decided = {"linearizable": 0, "violation": 0, "not-applicable": 0}
    for seed in range(400):
        g = random_history(random.Random(seed), 12, unknown=False)
        bad = perturb(g)
        for recs in (g.recs, bad):
            if recs is None:
                continue
            fast, search = verdicts(recs)
            assert fast in (search, "not-applicable"), seed
            decided[fast] += 1
    assert decided["linearizable"] > 300 and decided["violation"] > 100, decided
    assert decided["not-applicable"] < decided["linearizable"] + decided["violation"], decided


def test_shrunk_sub_histories_of_random_violations_are_minimal() -> None:
    for seed in range(60):
        g = random_history(random.Random(1000 + seed), 10)
        bad = perturb(g)
        if bad is None:
            continue
        rep = check_history(bad)
        if rep.ok:
            continue
        sub = rep.violations[0].history
        assert not check_history(sub).ok, seed
        assert len(sub) <= len(bad)


# --- load_history --------------------------------------------------------------------------------


def test_load_history_round_trips_a_simulation(tmp_path: Path) -> None:
    world = World(SimConfig(seed=3, faults="crashes", duration_us=2_000_000))
    world.run()
    path = tmp_path / "history.jsonl"
    path.write_bytes(history_to_jsonl(world.history))
    loaded = load_history(path)
    assert [r.to_json() for r in loaded] == [r.to_json() for r in world.history]
    assert check_history(loaded).ok


def _line(**over: object) -> bytes:
    base: dict[str, object] = {
        "id": "c1-1", "client": "c1", "op": "get", "key": {"p": {"S": "k"}}, "invoke": 1,
        "complete": 2, "status": "ok", "attempts": 1, "replica": "r1", "consistent": True,
        "value": None}
    base.update(over)
    return orjson.dumps({k: v for k, v in base.items() if v != "DROP"}) + b"\n"


@pytest.mark.parametrize(("bad", "reason"), [
    (b"{not json\n", "not JSON"),
    (b"\n", "empty line"),
    (b"[1, 2]\n", "JSON object"),
    (_line(status="DROP"), "missing field 'status'"),
    (_line(status="maybe"), "unknown status"),
    (_line(invoke="1"), "field 'invoke' has the wrong type"),
    (_line(key={"x": 1}), "bad key"),
    (_line(value={"a": {"Q": "1"}}), "bad item in 'value'"),
    (_line(op="put", consistent="DROP", args="{\"op\":\"nope\"}"), "bad args"),
    (_line(op="delete", consistent="DROP",
           args="{\"op\":\"put\",\"item\":{\"pk\":{\"S\":\"k\"}}}"), "args hold a put"),
    (_line(status=None, complete=5), "complete -1"),
    (_line(complete=0), "before it is invoked"),
])
def test_load_history_errors_name_file_and_line(tmp_path: Path, bad: bytes, reason: str) -> None:
    path = tmp_path / "history.jsonl"
    path.write_bytes(_line() + _line(id="c1-2") + bad + _line(id="c1-3"))
    with pytest.raises(HistoryFormatError) as info:
        load_history(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}:3: "), msg
    assert reason in msg and "\n" not in msg
    assert isinstance(info.value, ValueError)


# --- real simulations -----------------------------------------------------------------------------


@pytest.mark.parametrize(("faults", "seed"), [("crashes", 1), ("partitions", 2), ("none", 4)])
def test_simulated_histories_are_linearizable(faults: str, seed: int) -> None:
    world = World(SimConfig(seed=seed, faults=faults, duration_us=4_000_000))
    world.run()
    rep = check_history(world.history)
    assert rep.ok, (rep.summary(), [v.explanation for v in rep.violations],
                    [v.explanation for v in rep.eventual_violations])
    assert rep.keys_checked >= 10 and rep.operations == len(world.history) > 1000
    strong = sum(1 for h in world.history if h.op == "get" and h.consistent)
    assert strong > 100
    assert check_history(world.history, fast_path=False).ok


def test_a_corrupted_simulated_history_is_caught() -> None:
    world = World(SimConfig(seed=6, faults="crashes", duration_us=3_000_000))
    world.run()
    history = list(world.history)
    # Make one strong read return the value its key had before the previous write.
    prev: dict[Key, tuple[M | None, M | None]] = {}
    target = None
    for i, h in enumerate(history):
        if h.status == "ok" and isinstance(h.result, Applied) and h.result.new is not None:
            prev[h.key] = (h.result.old, h.result.new)
        elif (h.op == "get" and h.consistent and h.status == "ok"
              and isinstance(h.result, ReadResult) and h.key in prev and i > len(history) // 2
              and h.result.item == prev[h.key][1] and prev[h.key][0] is not None):
            target = i
            break
    assert target is not None
    h = history[target]
    history[target] = get(h.id, h.invoke_us, h.complete_us, prev[h.key][0], key=h.key)
    rep = check_history(history)
    assert [v.key for v in rep.violations] == [h.key]
    sub = rep.violations[0].history
    assert h.id in {r.id for r in sub} and len(sub) <= 3, rep.violations[0].explanation
