from __future__ import annotations

from collections.abc import Sequence

import pytest

from reference.audit import AuditReport, audit
from reference.client import HistoryRecord, OpName, Status
from reference.messages import NOOP, Cmd, Command, ReadResult
from reference.replica import DEFAULT_SCHEMA
from reference.storage import (
    Applied,
    AttributeNotExists,
    ConditionalCheckFailed,
    Delete,
    Key,
    M,
    N,
    Put,
    Result,
    S,
    SetAttr,
    Update,
    WriteOp,
    encode_op,
)

K = Key(S("k"))
OTHER = Key(S("other"))


def item(v: int, key: str = "k") -> M:
    return M(pk=S(key), v=N(v))


V1, V2, V3 = item(1), item(2), item(3)


def put(v: int, key: str = "k") -> Put:
    return Put(item(v, key))


def cmd(rid: str, op: WriteOp) -> Command:
    return Command(rid, encode_op(op))


def w(rid: str, op: WriteOp, invoke: int, complete: int, status: Status,
      result: Result | None) -> HistoryRecord:
    name: OpName = "put" if isinstance(op, Put) else "update" if isinstance(op, Update) \
        else "delete"
    key = DEFAULT_SCHEMA.key_of(op.item) if isinstance(op, Put) else op.key
    return HistoryRecord(rid, "c", name, key, None, op, invoke, complete, status, result,
                         1, None if result is None else "r1")


def g(rid: str, invoke: int, complete: int, got: M | None, consistent: bool = True,
      key: Key = K, status: Status = "ok") -> HistoryRecord:
    return HistoryRecord(rid, "c", "get", key, consistent, None, invoke, complete, status,
                         ReadResult(got) if status == "ok" else None, 1, "r1")


# The chosen log every test starts from: w1 puts v=1, a hole filled by recovery, w2 puts v=2.
CHOSEN: list[Cmd] = [cmd("w1", put(1)), NOOP, cmd("w2", put(2))]
W1 = w("w1", put(1), 0, 100, "ok", Applied(None, V1))
W2 = w("w2", put(2), 200, 300, "ok", Applied(V1, V2))


def run(*history: HistoryRecord, chosen: Sequence[Cmd] = CHOSEN,
        applied: dict[str, Sequence[Cmd]] | None = None) -> AuditReport:
    return audit(list(history), chosen, DEFAULT_SCHEMA, applied)


def assert_clean(rep: AuditReport) -> None:
    assert rep.problems() == []
    assert rep.ok


# --- a correct history passes ---------------------------------------------------------


def test_correct_history_passes_and_counts() -> None:
    rep = run(W1, W2, g("s1", 400, 450, V2), g("e1", 400, 450, V1, consistent=False),
              g("e2", 0, 10, None, consistent=False),
              g("s2", 400, 9_000, None, status="timeout"))
    assert_clean(rep)
    assert (rep.chosen_slots, rep.acked_writes, rep.strong_reads, rep.eventual_reads) == (
        3, 2, 1, 2)


@pytest.mark.parametrize("got", [V1, V2], ids=["old", "new"])
def test_strong_read_concurrent_with_write_may_return_either_value(got: M) -> None:
    assert_clean(run(W1, W2, g("s1", 250, 350, got)))


def test_read_invoked_exactly_when_write_completes_is_concurrent() -> None:
    assert_clean(run(W1, W2, g("s1", 300, 350, V1)))


def test_strong_read_before_any_ack_may_see_nothing() -> None:
    assert_clean(run(W1, W2, g("s1", 50, 60, None)))


def test_retried_request_in_two_slots_is_applied_once() -> None:
    chosen = [cmd("w1", put(1)), cmd("w2", put(2)), cmd("w1", put(1))]
    rep = run(W1, W2, g("s1", 1_000, 1_100, V2), chosen=chosen)
    assert_clean(rep)
    assert rep.chosen_slots == 3 and rep.acked_writes == 2
    # Its second slot is not a new state: v=1 after both acks would be stale.
    stale = run(W1, W2, g("s1", 1_000, 1_100, V1), chosen=chosen)
    assert [s.split(":")[0] for s in stale.stale_reads] == ["s1"]


def test_condfail_write_matching_replay_passes() -> None:
    cond = Put(V2, AttributeNotExists("pk"))
    chosen = [cmd("w1", put(1)), cmd("w2", cond)]
    w2 = w("w2", cond, 200, 300, "condfail", ConditionalCheckFailed(V1))
    rep = run(W1, w2, g("s1", 400, 450, V1), chosen=chosen)
    assert_clean(rep)
    assert rep.acked_writes == 2


def test_timeout_write_absent_from_log_is_not_lost() -> None:
    w3 = w("w3", put(3), 400, 5_000, "timeout", None)
    rep = run(W1, W2, w3, g("s1", 6_000, 6_100, V2))
    assert_clean(rep)
    assert rep.acked_writes == 2


def test_timeout_write_that_took_effect_may_be_read() -> None:
    w3 = w("w3", put(3), 400, 5_000, "timeout", None)
    chosen = [*CHOSEN, cmd("w3", put(3))]
    assert_clean(run(W1, W2, w3, g("s1", 6_000, 6_100, V3),
                     g("e1", 6_000, 6_100, V3, consistent=False), chosen=chosen))


def test_invalid_answer_is_not_an_acknowledged_write() -> None:
    bad = Update(K, (SetAttr("pk", S("x")),))
    rep = run(W1, W2, w("w3", bad, 400, 500, "invalid", None))
    assert_clean(rep)
    assert rep.acked_writes == 2


def test_update_and_delete_are_replayed() -> None:
    v5 = M(pk=S("k"), v=N(5))
    upd, dele = Update(K, (SetAttr("v", N(5)),)), Delete(K)
    chosen = [cmd("w1", put(1)), cmd("w2", upd), cmd("w3", dele)]
    history = [W1, w("w2", upd, 200, 300, "ok", Applied(V1, v5)),
               w("w3", dele, 400, 500, "ok", Applied(v5, None))]
    assert_clean(run(*history, g("s1", 600, 700, None), chosen=chosen))
    stale = run(*history, g("s1", 600, 700, v5), chosen=chosen)
    assert len(stale.stale_reads) == 1 and stale.ok is False


def test_value_that_recurs_later_is_not_stale() -> None:
    chosen = [*CHOSEN, cmd("w3", put(1))]
    assert_clean(run(W1, W2, g("s1", 400, 450, V1), chosen=chosen))


def test_writes_to_other_keys_do_not_constrain_reads() -> None:
    chosen = [cmd("w1", put(1)), cmd("o1", put(7, "other"))]
    o1 = w("o1", put(7, "other"), 200, 300, "ok", Applied(None, item(7, "other")))
    assert_clean(run(W1, o1, g("s1", 400, 450, V1), g("s2", 400, 450, item(7, "other"),
                                                         key=OTHER), chosen=chosen))


def test_lagging_replica_is_not_divergent() -> None:
    assert_clean(run(W1, W2, applied={"r1": CHOSEN, "r2": CHOSEN[:1], "r3": []}))


def test_empty_everything() -> None:
    rep = run(chosen=[])
    assert_clean(rep)
    assert rep == AuditReport()


# --- each violation is detected ---------------------------------------------------------


@pytest.mark.parametrize(("status", "result"), [
    ("ok", Applied(V2, V3)), ("condfail", ConditionalCheckFailed(V2))])
def test_lost_acknowledged_write(status: Status, result: Result) -> None:
    w3 = w("w3", put(3), 400, 500, status, result)
    rep = run(W1, W2, w3)
    assert rep.lost_writes == [
        f"w3: acknowledged {status} at 500us but not in the 3 chosen slots"]
    assert not rep.ok and rep.problems() == rep.lost_writes
    assert rep.acked_writes == 3
    assert rep.wrong_results == []


@pytest.mark.parametrize("answered", [
    Applied(None, V2),                   # wrong old
    Applied(V1, V3),                     # wrong new
    Applied(V1, None),
    ConditionalCheckFailed(V1),          # replay applied it
], ids=repr)
def test_wrong_result_for_acknowledged_write(answered: Result) -> None:
    status: Status = "condfail" if isinstance(answered, ConditionalCheckFailed) else "ok"
    w2 = w("w2", put(2), 200, 300, status, answered)
    rep = run(W1, w2)
    assert len(rep.wrong_results) == 1
    msg = rep.wrong_results[0]
    assert msg.startswith(f"w2: answered {answered} but slot 3 gives ")
    assert msg.endswith(str(Applied(V1, V2)))
    assert rep.lost_writes == [] and not rep.ok


def test_condfail_answer_differing_from_replay_current() -> None:
    cond = Put(V2, AttributeNotExists("pk"))
    chosen = [cmd("w1", put(1)), cmd("w2", cond)]
    rep = run(W1, w("w2", cond, 200, 300, "condfail", ConditionalCheckFailed(None)),
              chosen=chosen)
    assert [s.split(":")[0] for s in rep.wrong_results] == ["w2"]


def test_undecodable_chosen_command_gives_wrong_result() -> None:
    chosen: list[Cmd] = [Command("w1", b"not an op")]
    rep = run(W1, chosen=chosen)
    assert len(rep.wrong_results) == 1
    assert "undecodable operation" in rep.wrong_results[0]


def test_retried_request_answered_with_second_application_is_wrong() -> None:
    chosen = [cmd("w1", put(1)), cmd("w2", put(2)), cmd("w1", put(1))]
    w1 = w("w1", put(1), 0, 1_000, "ok", Applied(V2, V1))  # as if applied again at slot 3
    rep = run(w1, W2, chosen=chosen)
    assert [s.split(":")[0] for s in rep.wrong_results] == ["w1"]
    assert "slot 1" in rep.wrong_results[0]


@pytest.mark.parametrize("got", [V1, None], ids=["previous", "initial"])
def test_stale_strong_read(got: M | None) -> None:
    rep = run(W1, W2, g("s1", 400, 450, got))
    assert rep.stale_reads == [
        f"s1: strong read of {K} at 400us returned {got}, not a state at or after slot 3"]
    assert not rep.ok and rep.strong_reads == 1
    assert rep.phantom_reads == []


def test_stale_after_condfail_ack_uses_its_slot() -> None:
    # w3's failed condition was decided at slot 4, after w2's put: v=1 is stale.
    cond = Put(V3, AttributeNotExists("pk"))
    chosen = [*CHOSEN, cmd("w3", cond)]
    w2 = w("w2", put(2), 200, 9_000, "timeout", None)
    w3 = w("w3", cond, 400, 500, "condfail", ConditionalCheckFailed(V2))
    rep = run(W1, w2, w3, g("s1", 600, 700, V1), chosen=chosen)
    assert [s.split(":")[0] for s in rep.stale_reads] == ["s1"]
    assert "slot 4" in rep.stale_reads[0]


def test_strong_read_of_never_committed_value_is_reported() -> None:
    rep = run(W1, W2, g("s1", 400, 450, item(99)))
    assert [s.split(":")[0] for s in rep.stale_reads] == ["s1"]


def test_eventual_reads_are_not_held_to_recency() -> None:
    assert_clean(run(W1, W2, g("e1", 400, 450, None, consistent=False),
                     g("e2", 400, 450, V1, consistent=False)))


@pytest.mark.parametrize("got", [item(99), item(1, "other"), M(pk=S("k"))], ids=repr)
def test_phantom_eventual_read(got: M) -> None:
    rep = run(W1, W2, g("e1", 400, 450, got, consistent=False))
    assert rep.phantom_reads == [
        f"e1: eventual read of {K} returned {got}, never a committed state"]
    assert rep.stale_reads == [] and not rep.ok and rep.eventual_reads == 1


def test_phantom_eventual_read_of_uncommitted_timeout_write() -> None:
    w3 = w("w3", put(3), 400, 5_000, "timeout", None)
    rep = run(W1, W2, w3, g("e1", 6_000, 6_100, V3, consistent=False))
    assert [s.split(":")[0] for s in rep.phantom_reads] == ["e1"]


def test_divergent_applied_log() -> None:
    fork: list[Cmd] = [cmd("w1", put(1)), cmd("w9", put(9)), cmd("w8", put(8))]
    rep = run(W1, W2, applied={"r1": CHOSEN, "r2": fork, "r3": CHOSEN[:1]})
    assert rep.divergence == [f"r2: slot 2 applied {fork[1]}, chosen {NOOP}"]  # first only
    assert not rep.ok and rep.problems() == rep.divergence


def test_divergence_reported_per_replica_in_name_order() -> None:
    a: list[Cmd] = [cmd("x", put(5))]
    b: list[Cmd] = [*CHOSEN[:2], cmd("y", put(6))]
    rep = run(applied={"zz": a, "aa": b})
    assert [d.split(":")[0] for d in rep.divergence] == ["aa", "zz"]
    assert "slot 3" in rep.divergence[0] and "slot 1" in rep.divergence[1]


def test_problems_lists_every_class() -> None:
    w3 = w("w3", put(3), 400, 500, "ok", Applied(V2, V3))
    w2 = w("w2", put(2), 200, 300, "ok", Applied(None, V2))
    rep = run(W1, w2, w3, g("s1", 400, 450, V1), g("e1", 0, 1, item(42), consistent=False),
              applied={"r2": [NOOP]})
    assert [len(x) for x in (rep.lost_writes, rep.wrong_results, rep.stale_reads,
                             rep.phantom_reads, rep.divergence)] == [1, 1, 1, 1, 1]
    assert rep.problems() == [*rep.lost_writes, *rep.wrong_results, *rep.stale_reads,
                              *rep.phantom_reads, *rep.divergence]
