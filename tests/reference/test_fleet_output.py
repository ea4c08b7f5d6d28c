"""The production-profile files a fleet writes (traces/PRODUCTION.md).

The fleet here runs its tasks in this process, one after the other (the same task
functions Dask runs; test_fleet_determinism.py runs them on Dask), keeping the
intermediate files so the tests can check each line against the real time it was
taken at.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
from jsonschema import Draft202012Validator

from reference.fleet_clock import HostClock
from reference.fleet_config import COMPRESSIONS, SECOND, Compression, FleetConfig, derive_seed
from reference.fleet_group import GroupResult, run_group
from reference.fleet_merge import (
    ClockGuaranteeError,
    MergeInput,
    MergeTask,
    merge_node,
    merge_router,
)
from reference.fleet_plan import FleetPlan
from reference.fleet_segments import segment_lines
from reference.trace_events import PROD_EVENT_TYPES, ProdTraceEvent
from reference.workload import WorkloadConfig

ROOT = Path(__file__).resolve().parents[2]
TRACE_SCHEMA = Draft202012Validator(
    json.loads((ROOT / "traces" / "trace-event-v4.schema.json").read_text()))
HISTORY_SCHEMA = Draft202012Validator(
    json.loads((ROOT / "traces" / "history-v4.schema.json").read_text()))

SCHEMA_SAMPLE = 25
"""Lines per action (history: per op and status) checked against the JSON Schemas."""

# Mixed faults, seed 145: node n05 crashes at 2.9 s (restarts at 4.0 s), and the link
# n01 -> n02 fails at 6.2 s (it heals at the end of the load, 7 s).
CONFIG = FleetConfig(seed=145, nodes=5, groups=6, clients=2, duration_us=7 * SECOND,
                     settle_us=SECOND, faults="mixed", segment_lines=400,
                     workload=WorkloadConfig(think_us=40_000))


def run_in_process(cfg: FleetConfig, out: Path) -> dict[str, Any]:
    """The fleet's tasks, run here in plan order; returns fleet.json (also written)."""
    out.mkdir(parents=True, exist_ok=True)
    plan = FleetPlan.build(cfg, out, out / ".fleet-work")
    groups = [run_group(t) for t in plan.group_tasks()]
    fleet = plan.fleet_json(groups, [merge_node(t) for t in plan.node_tasks()],
                            [merge_router(t) for t in plan.router_tasks()])
    (out / "fleet.json").write_bytes(orjson.dumps(fleet))
    return fleet


def _result(g: Any) -> GroupResult:
    return g if isinstance(g, GroupResult) else GroupResult(**g)


@pytest.fixture(scope="module")
def fleets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One simulation, merged three times: gz, zst and uncompressed segments."""
    work = tmp_path_factory.mktemp("fleet")
    plan = FleetPlan.build(CONFIG, work, work / ".fleet-work")
    for t in plan.group_tasks():
        r = run_group(t)
        (work / f"group-{r.group}.json").write_bytes(orjson.dumps(
            {"group": r.group, "events": r.events, "operations": r.operations,
             "routers": r.routers, "audit_ok": r.audit_ok}))
    out = {}
    for c in COMPRESSIONS:
        d = tmp_path_factory.mktemp(c)
        plan = FleetPlan.build(dataclasses.replace(CONFIG, compression=c), d, work / ".fleet-work")
        groups = [_result(orjson.loads((work / f"group-{t.placement.group}.json").read_bytes()))
                  for t in plan.group_tasks()]
        fleet = plan.fleet_json(groups, [merge_node(t) for t in plan.node_tasks()],
                                [merge_router(t) for t in plan.router_tasks()])
        (d / "fleet.json").write_bytes(orjson.dumps(fleet))
        (d / "work").symlink_to(work / ".fleet-work")
        out[c] = d
    return out


def host_lines(out: Path, fleet: dict[str, Any], kind: str, host: str) -> Iterator[bytes]:
    entry = next(h for h in fleet[kind] if h["id"] == host)
    for name in entry["segments"]:
        yield from segment_lines(out / name)


def test_plan_has_the_faults_the_tests_rely_on() -> None:
    ops = [f.op for f in FleetPlan.build(CONFIG, Path("x"), Path("y")).faults]
    assert "crash" in ops and "link_down" in ops


@pytest.mark.parametrize("compression", ["gz", "zst", "none"])
def test_segments_rotate_and_each_compression_reads_back(compression: Compression,
                                                         fleets: dict[str, Path]) -> None:
    out = fleets[compression]
    fleet = json.loads((out / "fleet.json").read_text())
    suffix = {"gz": ".jsonl.gz", "zst": ".jsonl.zst", "none": ".jsonl"}[compression]
    assert fleet["segments"] == {"max_lines": 400, "compression": compression}
    rotated = 0
    for kind, prefix in (("nodes", "trace"), ("routers", "history")):
        for h in fleet[kind]:
            names = h["segments"]
            assert names == [f"{prefix}-{h['id']}.{n}{suffix}" for n in range(1, len(names) + 1)]
            counts = [sum(1 for _ in segment_lines(out / n)) for n in names]
            assert (all(c == 400 for c in counts[:-1]) and 0 < counts[-1] <= 400) or counts == [0]
            assert sum(counts) == h["lines"]
            rotated += len(names) > 1
    assert rotated >= 3
    # Every compression holds the same lines.
    if compression != "none":
        plain = fleets["none"]
        plain_fleet = json.loads((plain / "fleet.json").read_text())
        for h in fleet["nodes"]:
            assert list(host_lines(out, fleet, "nodes", h["id"])) == \
                list(host_lines(plain, plain_fleet, "nodes", h["id"]))


def test_seq_counts_every_line_of_a_host_across_segments(fleets: dict[str, Path]) -> None:
    out = fleets["gz"]
    fleet = json.loads((out / "fleet.json").read_text())
    for kind in ("nodes", "routers"):
        for h in fleet[kind]:
            seqs = [orjson.loads(line)["seq"] for line in host_lines(out, fleet, kind, h["id"])]
            assert seqs == list(range(1, len(seqs) + 1))
    assert fleet["events"] == sum(g["events"] for g in fleet["groups"])


def test_every_trace_line_is_a_v4_event_and_matches_the_schema(fleets: dict[str, Path]) -> None:
    out = fleets["zst"]
    fleet = json.loads((out / "fleet.json").read_text())
    decoder = msgspec.json.Decoder(ProdTraceEvent)
    encoder = msgspec.json.Encoder()
    members = {(g["id"], m["id"]): m["node"] for g in fleet["groups"] for m in g["members"]}
    actions = set()
    seen: Counter[str] = Counter()
    for h in fleet["nodes"]:
        for line in host_lines(out, fleet, "nodes", h["id"]):
            ev = decoder.decode(line)
            assert type(ev) is PROD_EVENT_TYPES[ev.__struct_config__.tag]
            assert encoder.encode(ev) + b"\n" == line  # compact, in the struct's field order
            assert line.startswith(b'{"action":')
            obj = orjson.loads(line)
            assert list(obj)[:8] == ["action", "v", "group", "node", "replica", "seq", "clock",
                                     "err"] and "real" not in obj
            # The structs decode (so validate) every line; the schema, a sample of each
            # action (jsonschema takes milliseconds a line over the 30-way union).
            seen[ev.__struct_config__.tag] += 1
            if seen[ev.__struct_config__.tag] <= SCHEMA_SAMPLE:
                errors = list(TRACE_SCHEMA.iter_errors(obj))
                assert not errors, (line, errors[0].message)
            assert members[(ev.group, ev.replica)] == ev.node == h["id"]
            actions.add(ev.__struct_config__.tag)
    assert {"Crash", "Restart", "LinkDown", "LinkUp", "ClientWrite", "Commit"} <= actions


def test_history_lines_match_the_schema_and_come_in_completion_order(
        fleets: dict[str, Path]) -> None:
    out = fleets["gz"]
    fleet = json.loads((out / "fleet.json").read_text())
    ids = set()
    seen: Counter[tuple[str, str | None]] = Counter()
    for h in fleet["routers"]:
        last, outstanding = None, False
        for line in host_lines(out, fleet, "routers", h["id"]):
            rec = orjson.loads(line)
            seen[(rec["op"], rec["status"])] += 1
            if seen[(rec["op"], rec["status"])] <= SCHEMA_SAMPLE:
                errors = list(HISTORY_SCHEMA.iter_errors(rec))
                assert not errors, (line, errors[0].message)
            assert rec["router"] == h["id"] and rec["client"] in h["clients"]
            assert rec["client"].startswith(rec["group"] + "-")
            assert list(rec)[:5] == ["v", "group", "router", "seq", "id"]
            if rec["complete"] == -1:
                outstanding = True
            else:
                assert not outstanding, "a completed operation after an outstanding one"
                assert last is None or rec["complete"] >= last
                last = rec["complete"]
            assert (rec["group"], rec["id"]) not in ids
            ids.add((rec["group"], rec["id"]))
    assert len(ids) == fleet["operations"] == sum(g["operations"] for g in fleet["groups"])


def _intermediate(out: Path, group: str, replica: str) -> list[dict[str, Any]]:
    path = out / "work" / group / f"trace-{replica}.jsonl"
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_lines_are_in_real_time_order_and_clocks_are_within_err(
        fleets: dict[str, Path]) -> None:
    """Rebuild each node's order from the intermediate files (which keep ``real``):
    the node's lines must be exactly those, sorted by (real, group, replica seq), with
    |clock - real| <= err and the clock never decreasing."""
    out = fleets["none"]
    fleet = json.loads((out / "fleet.json").read_text())
    for h in fleet["nodes"]:
        node = h["id"]
        taken = sorted((e["real"], g["id"], e["seq"], e)
                       for g in fleet["groups"] for m in g["members"] if m["node"] == node
                       for e in _intermediate(out, g["id"], m["id"]))
        lines = [orjson.loads(x) for x in host_lines(out, fleet, "nodes", node)]
        assert len(lines) == len(taken)
        host = HostClock(CONFIG.clock, derive_seed(CONFIG.seed, "clock", node))
        last = None
        for line, (real, group, _, e) in zip(lines, taken, strict=True):
            assert (line["group"], line["replica"], line["action"]) == \
                (group, e["replica"], e["action"])
            assert line["args"] == e["args"]
            assert abs(line["clock"] - real) <= line["err"]
            assert (line["clock"], line["err"]) == host.reading(real)
            assert last is None or line["clock"] >= last
            last = line["clock"]


def test_a_line_off_its_hosts_clock_is_refused(fleets: dict[str, Path],
                                                tmp_path: Path) -> None:
    out = fleets["none"]
    fleet = json.loads((out / "fleet.json").read_text())
    g = fleet["groups"][0]
    m = g["members"][0]
    lines = (out / "work" / g["id"] / f"trace-{m['id']}.jsonl").read_bytes().splitlines()
    bad = orjson.loads(lines[0])
    bad["clock"] = bad["real"] + 5_000  # beyond any error bound
    path = tmp_path / "bad.jsonl"
    path.write_bytes(orjson.dumps(bad) + b"\n")
    task = MergeTask(CONFIG, m["node"], (MergeInput(g["id"], m["id"], str(path)),),
                     str(tmp_path))
    with pytest.raises(ClockGuaranteeError, match="host clock"):
        merge_node(task)
