"""Trace and history lines of simulated runs match traces/*.schema.json (traces/FORMAT.md).

One short run per fault schedule; every trace line and every history record is
validated, and the per-node numbering and ordering guarantees are checked. The
negative tests show that the schemas reject malformed lines.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import gzip
import io
import itertools
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from reference import actions
from reference.cluster import FAULT_SCHEDULES, SimConfig, World
from reference.healing import HealConfig
from reference.workload import WorkloadConfig

ROOT = Path(__file__).resolve().parents[2]
TRACES = ROOT / "traces"

# A light load keeps each run to a few thousand lines, so validating every line stays
# fast. With seed 4 the crash schedules crash a replica (the leader, for crashes and
# clock-drift) within the run, so leadership changes and recovery (Phase2a) happen,
# and disk-faults quarantines the replica whose WAL rotted.
CONFIG = SimConfig(seed=4, clients=4, workload=WorkloadConfig(think_us=20_000),
                   duration_us=5_000_000, settle_us=2_000_000)

SPEC_ACTIONS = {a.name for a in actions.SPEC_ACTIONS}
ENV_ACTIONS = {a.name for a in actions.ENV_EVENTS}


def _schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((TRACES / name).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return schema


TRACE_SCHEMA = _schema("trace-event.schema.json")
HISTORY_SCHEMA = _schema("history.schema.json")
TRACE = Draft202012Validator(TRACE_SCHEMA)
HISTORY = Draft202012Validator(HISTORY_SCHEMA)
# A history line's "args" is the write operation as JSON text; check its content too.
OP = Draft202012Validator({"$ref": "#/$defs/op", "$defs": HISTORY_SCHEMA["$defs"]})


@dataclasses.dataclass(frozen=True)
class Run:
    traces: dict[str, list[dict[str, Any]]]
    history: list[dict[str, Any]]

    def actions(self) -> set[str]:
        return {line["action"] for lines in self.traces.values() for line in lines}


# heal: kill early, notice soon and copy fast, so that the short run shows the whole
# healing sequence (add a log replica, remove the dead one, snapshot, promote).
HEAL = HealConfig(kill_at_us=1_500_000, unhealthy_after_us=1_000_000,
                  copy_bandwidth_bps=200_000, compare=False)


@functools.cache
def _run(schedule: str) -> Run:
    config = dataclasses.replace(CONFIG, faults=schedule)
    if schedule == "heal":
        config = dataclasses.replace(config, node=dataclasses.replace(config.node, heal=HEAL))
    if schedule == "gray":  # long enough for the first link failure's suspicion to clear
        config = dataclasses.replace(config, duration_us=6_000_000)
    sinks = {name: io.BytesIO() for name in config.effective().ids()}
    world = World(config, sinks)
    world.run()
    traces = {}
    for name, sink in sinks.items():
        data = sink.getvalue()
        assert data.endswith(b"\n"), f"trace-{name}.jsonl does not end with a newline"
        traces[name] = [json.loads(line) for line in data.split(b"\n")[:-1]]
    history = [json.loads(orjson.dumps(rec.to_json())) for rec in world.history]
    return Run(traces, history)


def _check(validator: Draft202012Validator, instance: Any, where: str) -> None:
    if not validator.is_valid(instance):
        error = best_match(validator.iter_errors(instance))
        pytest.fail(f"{where}: {error.message} (at {error.json_path})\n{instance}")


# --- every line of real runs --------------------------------------------------------


@pytest.mark.parametrize("schedule", FAULT_SCHEDULES)
def test_every_trace_line_matches_the_schema(schedule: str) -> None:
    run = _run(schedule)
    assert sum(map(len, run.traces.values())) > 1000
    for node, lines in run.traces.items():
        for line in lines:
            _check(TRACE, line, f"{schedule}: trace-{node}.jsonl seq {line.get('seq')}")


@pytest.mark.parametrize("schedule", FAULT_SCHEDULES)
def test_trace_lines_are_numbered_and_ordered(schedule: str) -> None:
    for node, lines in _run(schedule).traces.items():
        assert [line["seq"] for line in lines] == list(range(1, len(lines) + 1)), node
        assert {(line["node"], line["replica"]) for line in lines} == {(node, node)}
        for prev, line in itertools.pairwise(lines):
            assert prev["clock"] <= line["clock"], (node, line["seq"])
            assert prev["real"] <= line["real"], (node, line["seq"])
        for line in lines:
            args = line["args"]
            if line["kind"] == "spec":  # the acting replica is the one writing the line
                acting = args.get("r", args.get("a", args.get("x", args.get("from"))))
                assert acting == line["replica"], line
            if line["action"] == "LeaseRenew":
                assert args["start"] == line["clock"], line


@pytest.mark.parametrize("schedule", FAULT_SCHEDULES)
def test_every_history_line_matches_the_schema(schedule: str) -> None:
    history = _run(schedule).history
    assert len(history) > 100
    for rec in history:
        where = f"{schedule}: history {rec.get('id')}"
        _check(HISTORY, rec, where)
        assert rec["id"].startswith(rec["client"] + "-"), where
        if "args" in rec:
            _check(OP, json.loads(rec["args"]), where + " args")


def test_runs_cover_every_action() -> None:
    seen = set().union(*(_run(schedule).actions() for schedule in FAULT_SCHEDULES))
    missing = (SPEC_ACTIONS | ENV_ACTIONS) - seen
    assert not missing, f"no run exercised {sorted(missing)}"
    assert seen <= SPEC_ACTIONS | ENV_ACTIONS


# --- the schema against the catalogue ------------------------------------------------
# (tests/test_catalogue.py holds the code and the spec to the catalogue, and checks that
# the committed schema is the one generated from it.)


def test_schema_names_every_action_of_the_catalogue() -> None:
    tags = set(TRACE_SCHEMA["discriminator"]["mapping"])
    assert tags == SPEC_ACTIONS | ENV_ACTIONS


# --- malformed lines are rejected ----------------------------------------------------

GOOD_LINE: dict[str, Any] = {
    "v": 3, "node": "r2", "replica": "r2", "seq": 7, "clock": 2366604, "real": 2368303,
    "kind": "spec", "action": "Phase2b",
    "args": {"a": "r2", "m": {"type": "2a", "bal": 1, "slot": 3, "from": "r1", "cmd": {
        "rid": "c6-2", "op": {"op": "put", "item": {"pk": {"S": "k0006"}, "n": {"N": "0"}}}}}},
    "post": {"bal": 1, "role": "follower", "top": 3, "applied": 2, "lease": False},
}


RESTART_LINE: dict[str, Any] = {
    **GOOD_LINE, "kind": "env", "action": "Restart",
    "args": {"ballot": 4, "granted": 4, "applied": 10, "log": 12, "wal": "torn", "truncated": 17,
             "digest": "0badc0de"},
}


GOOD_RECORD: dict[str, Any] = {
    "id": "c5-2", "client": "c5", "op": "update", "key": {"p": {"S": "k0004"}},
    "invoke": 2377384, "complete": 2380718, "status": "condfail", "attempts": 1,
    "replica": "r2",
    "args": '{"actions":[{"add":["n",{"N":"1"}]}],"cond":{"not_exists":"pk"},'
            '"key":{"p":{"S":"k0004"}},"op":"update"}',
    "current": {"n": {"N": "0"}, "pk": {"S": "k0004"}},
}


def _mutated(base: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """``base`` with the field at ``path`` set to ``value`` (deleted if value is ...)."""
    out = copy.deepcopy(base)
    target = out
    for part in path[:-1]:
        target = target[part]
    if value is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return out


def test_good_lines_are_accepted() -> None:
    assert TRACE.is_valid(GOOD_LINE)
    assert TRACE.is_valid(RESTART_LINE)
    assert HISTORY.is_valid(GOOD_RECORD)


@pytest.mark.parametrize(("path", "value"), [
    (("v",), 1),
    (("action",), "Phase3a"),
    (("post",), ...),
    (("post", "role"), "boss"),
    (("post", "lease"), 0),
    (("kind",), "env"),
    (("seq",), 0),
    (("extra",), True),
    (("args", "a"), ...),
    (("args", "b"), 1),
    (("args", "m", "type"), "2b"),
    (("args", "m", "cmd", "op", "op"), "upsert"),
    (("args", "m", "cmd", "op", "item", "n"), {"N": 1}),
    (("args", "m", "cmd", "op", "item", "n"), {"N": "1", "S": "1"}),
])
def test_malformed_trace_line_is_rejected(path: tuple[str, ...], value: Any) -> None:
    assert not TRACE.is_valid(_mutated(GOOD_LINE, path, value))


@pytest.mark.parametrize(("path", "value"), [
    (("kind",), "spec"),
    (("args", "wal"), "corrupt"),
    (("args", "truncated"), -1),
    (("args", "log"), ...),
    (("args",), {"reason": "WAL corrupt at byte 0"}),
])
def test_malformed_env_line_is_rejected(path: tuple[str, ...], value: Any) -> None:
    assert not TRACE.is_valid(_mutated(RESTART_LINE, path, value))


@pytest.mark.parametrize(("path", "value"), [
    (("status",), "maybe"),
    (("key",), ...),
    (("args",), ...),
    (("current",), "x"),
    (("old",), None),
    (("consistent",), True),
    (("status",), "timeout"),
    (("status",), None),
    (("complete",), -2),
    (("key", "p"), {"BOOL": True}),
])
def test_malformed_history_line_is_rejected(path: tuple[str, ...], value: Any) -> None:
    assert not HISTORY.is_valid(_mutated(GOOD_RECORD, path, value))


def test_old_new_and_current_are_optional() -> None:
    """A real client learns the replaced item only with ReturnValues, and the item that
    failed a condition only when it asks: absent means unknown (SEMANTICS.md)."""
    assert HISTORY.is_valid(_mutated(GOOD_RECORD, ("current",), ...))
    ok_put = {**_mutated(GOOD_RECORD, ("current",), ...), "status": "ok", "op": "put",
              "args": '{"item":{"pk":{"S":"k0004"}},"op":"put"}'}
    assert HISTORY.is_valid(ok_put)
    assert HISTORY.is_valid({**ok_put, "old": None, "new": {"pk": {"S": "k0004"}}})
    assert not HISTORY.is_valid({**ok_put, "current": None})


SAMPLES = Path(__file__).resolve().parents[2] / "traces" / "samples"


SIMULATED = sorted(p.name for p in SAMPLES.iterdir() if (p / "config.json").is_file())
FLEETS = sorted(p.name for p in SAMPLES.iterdir() if (p / "fleet.json").is_file())


def test_every_sample_is_a_run_or_a_fleet() -> None:
    assert sorted(SIMULATED + FLEETS) == sorted(p.name for p in SAMPLES.iterdir() if p.is_dir())
    assert SIMULATED and FLEETS


@pytest.mark.parametrize("sample", SIMULATED)
def test_committed_samples_match_the_schemas(sample: str) -> None:
    files = sorted((SAMPLES / sample).glob("trace-*.jsonl"))
    assert files, f"no traces in {sample}"
    for f in [*files, SAMPLES / sample / "history.jsonl"]:
        validator = HISTORY if f.name == "history.jsonl" else TRACE
        for i, line in enumerate(f.read_bytes().splitlines(), start=1):
            _check(validator, orjson.loads(line), f"{f.name}:{i}")


@pytest.mark.parametrize("sample", FLEETS)
def test_committed_fleet_samples_match_the_production_schemas(sample: str) -> None:
    trace = Draft202012Validator(_schema("trace-event-v4.schema.json"))
    history = Draft202012Validator(_schema("history-v4.schema.json"))
    files = sorted((SAMPLES / sample).glob("*.jsonl.gz"))
    assert any(f.name.startswith("trace-") for f in files), f"no traces in {sample}"
    for f in files:
        validator = history if f.name.startswith("history-") else trace
        for i, line in enumerate(gzip.decompress(f.read_bytes()).splitlines(), start=1):
            _check(validator, orjson.loads(line), f"{f.name}:{i}")
