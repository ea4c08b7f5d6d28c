from __future__ import annotations

from typing import Any

import pytest

from reference.audit import AuditReport
from reference.client import HistoryRecord, Status
from reference.messages import ReadResult
from reference.storage import Applied, ConditionalCheckFailed, Invalid, Key, M, Put, S
from reference.summary import percentile, summarize, unavailable_periods

K = Key(S("k"))
ITEM = M(pk=S("k"))
SEC = 1_000_000
_RESULT: dict[str | None, Any] = {
    "ok": Applied(None, ITEM), "condfail": ConditionalCheckFailed(ITEM), "invalid": Invalid("bad"),
    "timeout": None, None: None}


def write(invoke: int, complete: int = -1, status: Status | None = None,
          rid: str = "w") -> HistoryRecord:
    return HistoryRecord(rid, "c", "put", K, None, Put(ITEM), invoke, complete, status,
                         _RESULT[status], 1, None if status in (None, "timeout") else "r1")


def read(invoke: int, complete: int, consistent: bool, status: Status = "ok") -> HistoryRecord:
    return HistoryRecord("g", "c", "get", K, consistent, None, invoke, complete, status,
                         ReadResult(ITEM) if status == "ok" else None, 1, "r1")


# --- percentile ----------------------------------------------------------------------


@pytest.mark.parametrize(("xs", "q", "expected"), [
    ([], 50, None),
    ([7], 0, 7), ([7], 50, 7), ([7], 100, 7),
    # nearest rank: the ceil(n*q/100)-th smallest (Wikipedia's example set)
    ([15, 20, 35, 40, 50], 5, 15),
    ([15, 20, 35, 40, 50], 30, 20),
    ([15, 20, 35, 40, 50], 40, 20),
    ([15, 20, 35, 40, 50], 50, 35),
    ([15, 20, 35, 40, 50], 100, 50),
    (list(range(1, 11)), 0, 1),
    (list(range(1, 11)), 10, 1),
    (list(range(1, 11)), 11, 2),
    (list(range(1, 11)), 50, 5),
    (list(range(1, 11)), 90, 9),
    (list(range(1, 11)), 90.5, 10),
    (list(range(1, 11)), 99, 10),
    (list(range(1, 101)), 99, 99),
    (list(range(1, 101)), 99.9, 100),
    (list(range(1, 1001)), 99.9, 999),
    ([3, 3, 3, 9], 75, 3),
    ([3, 3, 3, 9], 76, 9),
])
def test_percentile_nearest_rank(xs: list[int], q: float, expected: int | None) -> None:
    assert percentile(xs, q) == expected


def test_percentile_returns_an_element() -> None:
    xs = [1, 10, 100, 1_000]
    assert {percentile(xs, q) for q in range(101)} == set(xs)


# --- availability --------------------------------------------------------------------


def test_availability_buckets_by_completion_time_default_interval() -> None:
    history = [
        write(0, 500_000, "ok"),                 # interval 0
        write(100_000, 700_000, "timeout"),      # interval 0
        write(900_000, 2_100_000, "ok"),         # invoked in 0, completes in 2
        write(3_000_000, 3_200_000, "condfail"),  # interval 3
        write(11_000_000, 11_999_999, "invalid"),  # interval 11
        write(11_500_000),                       # pending: not counted
    ]
    s = summarize(history, duration_us=12 * SEC, leader_changes=0)
    av = s["availability"]
    assert av["interval_s"] == 1.0
    intervals = av["intervals"]
    assert len(intervals) == 12
    assert [i["start_s"] for i in intervals] == [float(i) for i in range(12)]
    assert [(i["requests"], i["succeeded"]) for i in intervals] == [
        (2, 1), (0, 0), (1, 1), (1, 1), *[(0, 0)] * 7, (1, 0)]
    assert [i["availability"] for i in intervals] == [
        0.5, None, 1.0, 1.0, *[None] * 7, 0.0]
    assert av["overall"] == 0.6  # 3 of 5 completed succeeded
    assert av["min_interval"] == 0.0


@pytest.mark.parametrize(("duration", "interval_s", "n"), [
    (60 * SEC, 5.0, 12), (1_200_000, 0.1, 12), (13, 1e-6, 13), (5, 1e-6, 5)])
def test_default_interval_is_duration_over_twelve(duration: int, interval_s: float,
                                                 n: int) -> None:
    s = summarize([write(0, 1, "ok")], duration_us=duration, leader_changes=0)
    assert s["availability"]["interval_s"] == interval_s
    assert len(s["availability"]["intervals"]) == n


def test_explicit_interval() -> None:
    s = summarize([write(0, 2_500_000, "ok")], duration_us=10 * SEC, leader_changes=0,
                  interval_us=2 * SEC)
    av = s["availability"]
    assert av["interval_s"] == 2.0 and len(av["intervals"]) == 5
    assert av["intervals"][1]["requests"] == 1


def test_completion_at_end_goes_in_last_interval_and_overrun_adds_intervals() -> None:
    s = summarize([write(0, 12 * SEC, "ok")], duration_us=12 * SEC, leader_changes=0)
    assert s["availability"]["intervals"][-1]["requests"] == 1
    assert len(s["availability"]["intervals"]) == 12
    s = summarize([write(0, 13_500_000, "ok")], duration_us=12 * SEC, leader_changes=0)
    assert len(s["availability"]["intervals"]) == 14
    assert s["availability"]["intervals"][13]["requests"] == 1


@pytest.mark.parametrize(("status", "succeeded"), [
    ("ok", True), ("condfail", True), ("timeout", False), ("invalid", False)])
def test_success_classification(status: Status, succeeded: bool) -> None:
    s = summarize([write(0, SEC, status)], duration_us=12 * SEC, leader_changes=0)
    assert s["operations"]["succeeded"] == int(succeeded)
    assert s["availability"]["overall"] == float(succeeded)
    assert s["operations"]["by_status"] == {status: 1}


def test_operation_counts_and_latency() -> None:
    history = [
        write(0, 2_000, "ok", "w1"), write(0, 4_000, "condfail", "w2"),
        write(0, 9_000_000, "timeout", "w3"), write(10, -1, None, "w4"),
        read(0, 1_000, True), read(0, 3_000, False), read(0, 5_000, False),
    ]
    s = summarize(history, duration_us=12 * SEC, leader_changes=0)
    ops = s["operations"]
    assert ops == {"invoked": 7, "completed": 6, "succeeded": 5,
                   "by_status": {"condfail": 1, "ok": 4, "pending": 1, "timeout": 1},
                   "by_kind": {"eventual_read": 2, "strong_read": 1, "write": 2}}
    lat = s["latency"]
    assert (lat["p50_ms"], lat["p99_ms"]) == (3.0, 5.0)  # timeouts excluded
    assert lat["by_kind"] == {
        "eventual_read": {"count": 2, "p50_ms": 3.0, "p99_ms": 5.0},
        "strong_read": {"count": 1, "p50_ms": 1.0, "p99_ms": 1.0},
        "write": {"count": 2, "p50_ms": 2.0, "p99_ms": 4.0},
    }


def test_empty_history() -> None:
    s = summarize([], duration_us=12 * SEC, leader_changes=0)
    assert s["availability"]["overall"] is None
    assert s["availability"]["min_interval"] is None
    assert s["latency"]["p50_ms"] is None
    assert s["unavailable_periods"] == []
    assert s["operations"]["invoked"] == 0


@pytest.mark.parametrize("n", [0, 1, 7])
def test_leader_changes_passthrough(n: int) -> None:
    assert summarize([], duration_us=SEC, leader_changes=n)["leader_changes"] == n


def test_audit_section_and_extra() -> None:
    rep = AuditReport(chosen_slots=9, acked_writes=4, strong_reads=2, eventual_reads=1,
                      stale_reads=["g: stale"])
    s = summarize([], duration_us=SEC, leader_changes=0, audit=rep, extra={"seed": 3})
    assert s["audit"] == {"ok": False, "chosen_slots": 9, "acked_writes": 4, "strong_reads": 2,
                          "eventual_reads": 1, "lost_writes": [], "wrong_results": [],
                          "stale_reads": ["g: stale"], "phantom_reads": [], "divergence": []}
    assert s["seed"] == 3
    assert "audit" not in summarize([], duration_us=SEC, leader_changes=0)


# --- unavailable periods -------------------------------------------------------------


def test_gap_with_outstanding_requests_is_unavailable() -> None:
    history = [
        write(0, 100_000, "ok"),
        write(100_000, 3_100_000, "timeout"),  # outstanding for the whole gap
        write(3_100_000, 4_000_000, "ok"),
        write(4_000_000, 4_200_000, "ok"),
    ]
    assert unavailable_periods(history, 5 * SEC, SEC) == [(100_000, 4_000_000)]
    s = summarize(history, duration_us=5 * SEC, leader_changes=0)
    assert s["unavailable_periods"] == [{"start_s": 0.1, "end_s": 4.0, "seconds": 3.9}]


def test_short_gap_is_not_reported() -> None:
    history = [write(0, 100_000, "ok"), write(100_000, 1_000_000, "timeout"),
               write(1_000_000, 1_099_999, "ok")]
    assert unavailable_periods(history, 1_099_999, SEC) == []
    assert unavailable_periods(history, 1_099_999, 999_999) == [(100_000, 1_099_999)]


def test_pending_request_is_outstanding_until_end() -> None:
    history = [write(0, 100_000, "ok"), write(500_000)]
    # Unavailable from when the request was left waiting, not from the last success.
    assert unavailable_periods(history, 5 * SEC, SEC) == [(500_000, 5 * SEC)]


def test_leading_gap_counts_from_zero() -> None:
    history = [write(0, 2_000_000, "ok")]
    assert unavailable_periods(history, 2_000_000, SEC) == [(0, 2_000_000)]


def test_idle_tail_is_not_unavailable() -> None:
    history = [write(0, 100_000, "ok"), write(200_000, 300_000, "ok")]
    assert unavailable_periods(history, 10 * SEC, SEC) == []


def test_failed_requests_do_not_end_a_gap() -> None:
    history = [write(0, 100_000, "ok"), write(100_000, 1_500_000, "invalid"),
               write(1_500_000, 3_000_000, "timeout"), write(3_000_000)]
    assert unavailable_periods(history, 4 * SEC, SEC) == [(100_000, 4 * SEC)]


def test_idle_gap_between_successes_is_not_unavailable() -> None:
    # Nothing is outstanding from 0.1s to 5.0s; the next request takes 100ms.
    history = [write(0, 100_000, "ok"), write(5_000_000, 5_100_000, "ok")]
    assert unavailable_periods(history, 6 * SEC, SEC) == []


def test_zero_duration_with_completion_at_zero() -> None:
    s = summarize([write(0, 0, "timeout")], duration_us=0, leader_changes=0)
    assert s["availability"]["overall"] == 0.0
