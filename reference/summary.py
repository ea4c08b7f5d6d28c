"""The run summary written by ``dynaspec simulate`` (summary.json) and printed.

Availability follows the paper (§6.3): per interval, the share of requests that
succeed. The paper's interval is 5 minutes; a simulated run is treated as an hour
of twelve such intervals, so by default the interval is ``duration / 12``. A
request is one client operation however many retries it took; it succeeds if the
service gave a definite answer (``ok``, or ``condfail`` for a failed condition)
and fails on ``timeout`` or ``invalid``. It counts in the interval it completed in.

An unavailable period is a stretch of at least ``unavailable_min_us`` in which no
request succeeded although requests were outstanding.

Healing (``--faults heal``): ``healing`` is the run's healing timeline
(``World.healing``: seconds from the kill to a full-strength group, and to an
all-storage one, the copy bandwidth and every snapshot copy and committed
configuration), and ``healing_compare`` the same seed run with the other healing
mode (log replicas vs storage-only), so the summary shows both healing times.

Strong reads (``strong_reads``, ``serving_summary``): the windows in which some
replica could serve a strong read, measured from the replicas' state (a leader
holding its lease, not relinquished, reads ready), not from client requests; the
unavailable time, and for ``--faults deploy`` the unavailable time per restart.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from reference.audit import AuditReport
from reference.client import HistoryRecord


def percentile(sorted_xs: Sequence[int], q: float) -> int | None:
    """Nearest-rank percentile of an ascending sequence (None if empty)."""
    if not sorted_xs:
        return None
    rank = max(1, -(-len(sorted_xs) * q // 100))  # ceil(n * q / 100)
    return sorted_xs[int(rank) - 1]


def _ms(us: int | None) -> float | None:
    return None if us is None else round(us / 1000, 3)


def _kind(h: HistoryRecord) -> str:
    if h.op != "get":
        return "write"
    return "strong_read" if h.consistent else "eventual_read"


def unavailable_periods(history: Sequence[HistoryRecord], end_us: int,
                        min_us: int) -> list[tuple[int, int]]:
    spans = sorted((h.invoke_us, h.complete_us if h.done else end_us) for h in history)
    ok_times = sorted(h.complete_us for h in history if h.succeeded)
    out: list[tuple[int, int]] = []
    marks = [0, *ok_times, end_us]
    for a, b in itertools.pairwise(marks):
        if b - a < min_us:
            continue
        # The gap is unavailable from when a request was first left waiting in it.
        waiting = [s for s, e in spans if s < b and e > a]
        if waiting:
            start = max(a, min(waiting))
            if b - start >= min_us:
                out.append((start, b))
    return out


def summarize(history: Sequence[HistoryRecord], *, duration_us: int,
              leader_changes: int, audit: AuditReport | None = None,
              interval_us: int | None = None, unavailable_min_us: int = 1_000_000,
              extra: dict[str, Any] | None = None) -> dict[str, Any]:
    interval = interval_us if interval_us else max(1, duration_us // 12)
    statuses = Counter(h.status or "pending" for h in history)
    lat: dict[str, list[int]] = {}
    for h in history:
        if h.succeeded:
            lat.setdefault(_kind(h), []).append(h.complete_us - h.invoke_us)
    all_lat = sorted(x for xs in lat.values() for x in xs)
    by_kind = {k: {"count": len(v), "p50_ms": _ms(percentile(sorted(v), 50)),
                   "p99_ms": _ms(percentile(sorted(v), 99))} for k, v in sorted(lat.items())}
    end = max([duration_us, *(h.complete_us for h in history)])
    buckets: list[list[int]] = [[0, 0] for _ in range(max(1, -(-end // interval)))]
    for h in history:
        if h.done:
            b = buckets[min(h.complete_us // interval, len(buckets) - 1)]
            b[0] += 1
            b[1] += h.succeeded
    availability = [
        {"start_s": i * interval / 1e6, "requests": n, "succeeded": ok,
         "availability": round(ok / n, 6) if n else None}
        for i, (n, ok) in enumerate(buckets)
    ]
    done = [h for h in history if h.done]
    succeeded = sum(h.succeeded for h in done)
    periods = unavailable_periods(history, end, unavailable_min_us)
    out: dict[str, Any] = {
        "operations": {
            "invoked": len(history),
            "completed": len(done),
            "succeeded": succeeded,
            "by_status": dict(sorted(statuses.items())),
            "by_kind": {k: v["count"] for k, v in by_kind.items()},
        },
        "latency": {"p50_ms": _ms(percentile(all_lat, 50)),
                    "p99_ms": _ms(percentile(all_lat, 99)), "by_kind": by_kind},
        "leader_changes": leader_changes,
        "unavailable_periods": [{"start_s": a / 1e6, "end_s": b / 1e6, "seconds": (b - a) / 1e6}
                                for a, b in periods],
        "availability": {
            "interval_s": interval / 1e6,
            "overall": round(succeeded / len(done), 6) if done else None,
            "min_interval": min((a["availability"] for a in availability
                                 if a["availability"] is not None), default=None),
            "intervals": availability,
        },
    }
    if audit is not None:
        out["audit"] = {
            "ok": audit.ok, "chosen_slots": audit.chosen_slots,
            "acked_writes": audit.acked_writes, "strong_reads": audit.strong_reads,
            "eventual_reads": audit.eventual_reads,
            "lost_writes": audit.lost_writes, "wrong_results": audit.wrong_results,
            "stale_reads": audit.stale_reads, "phantom_reads": audit.phantom_reads,
            "divergence": audit.divergence,
        }
    if extra:
        out.update(extra)
    return out


def healing_lines(s: dict[str, Any]) -> list[str]:
    """The printed lines for a summary's healing timelines (none without a kill)."""
    lines = []
    for key in ("healing", "healing_compare"):
        h = s.get(key)
        if h:
            lines.append(
                f"healing ({h['mode']}): {h['killed']} killed at {h['killed_at_s']:g}s; full "
                f"strength after {h['full_strength_s']}s, all storage after "
                f"{h['all_storage_s']}s (copy bandwidth {h['copy_bandwidth_bps']} B/s"
                + "".join(f", copy {c['bytes']} B in {c['seconds']:g}s" for c in h["copies"])
                + ")")
    return lines


# --- strong-read availability (who could serve) ---------------------------------------


def union_windows(windows: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """The union of [start, end) windows, as sorted disjoint windows."""
    out: list[list[int]] = []
    for a, b in sorted(windows):
        if b <= a:
            continue
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def uncovered_us(union: Sequence[tuple[int, int]], lo: int, hi: int) -> int:
    """Time in [lo, hi) that no window of ``union`` (disjoint) covers."""
    if hi <= lo:
        return 0
    return hi - lo - sum(max(0, min(b, hi) - max(a, lo)) for a, b in union)


def serving_summary(serving: Mapping[str, Sequence[tuple[int, int]]], duration_us: int,
                    restarts: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """Strong-read availability: when some replica could serve a strong read (a leader
    holding its lease, not relinquished, reads ready), from each replica's windows.

    ``unavailable_ms``: time in [first serve, duration) no replica could serve (the
    first election, ``startup_ms``, is reported apart). ``restarts`` (``deploy``): per
    planned restart, the unavailable time from its start to the next one's (or the end),
    with max and mean over all restarts and over the leader's."""
    union = union_windows(w for ws in serving.values() for w in ws)
    first = union[0][0] if union else duration_us
    out: dict[str, Any] = {
        "startup_ms": _ms(min(first, duration_us)),
        "unavailable_ms": _ms(uncovered_us(union, first, duration_us)),
        "serving": {r: [[_ms(a), _ms(b)] for a, b in ws] for r, ws in sorted(serving.items())},
    }
    if restarts:
        rows = []
        for i, rec in enumerate(restarts):
            end = restarts[i + 1]["start_us"] if i + 1 < len(restarts) else duration_us
            rows.append({"replica": rec["replica"], "start_s": rec["start_us"] / 1e6,
                         "leader": rec["leader"], "handoff": rec.get("handoff"),
                         "unavailable_ms": _ms(uncovered_us(union, rec["start_us"], end))})
        out["restarts"] = rows
        out["per_restart_ms"] = _max_mean([r["unavailable_ms"] for r in rows])
        out["per_leader_restart_ms"] = _max_mean(
            [r["unavailable_ms"] for r in rows if r["leader"]])
    return out


def _max_mean(xs: Sequence[float]) -> dict[str, float | None]:
    if not xs:
        return {"max": None, "mean": None, "count": 0}
    return {"max": max(xs), "mean": round(sum(xs) / len(xs), 3), "count": len(xs)}


def serving_lines(s: dict[str, Any]) -> list[str]:
    """The printed lines for ``strong_reads`` (see ``serving_summary``)."""
    sv = s.get("strong_reads")
    if not sv:
        return []
    lines = [f"strong reads: unavailable {sv['unavailable_ms']} ms after the first leader "
             f"served (first election {sv['startup_ms']} ms)"]
    if "per_restart_ms" in sv:
        a, b = sv["per_restart_ms"], sv["per_leader_restart_ms"]
        lines.append(f"restarts: {a['count']}, unavailable per restart max {a['max']} ms, "
                     f"mean {a['mean']} ms; leader restarts: {b['count']}, max {b['max']} ms, "
                     f"mean {b['mean']} ms")
    return lines
