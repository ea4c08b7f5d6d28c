"""The one trace loader: typed decoding is validation, and every bad line is one
``TraceInputError`` naming its file and line."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest

from conformance.trace_loader import (
    TraceInputError,
    event_from_obj,
    event_to_obj,
    load_events,
    load_trace_dir,
    member_kinds,
    members_of,
    read_config,
)
from reference.trace_events import FORMAT_VERSION, action_of

POST = {"bal": 1, "role": "follower", "top": 0, "applied": 0, "lease": False}
GOOD: dict[str, Any] = {"action": "Phase1a", "v": FORMAT_VERSION, "node": "r1",
                        "replica": "r1", "seq": 1, "clock": 5, "real": 6, "kind": "spec",
                        "args": {"r": "r1", "b": 1},
                        "post": {**POST, "role": "candidate"}}
SAMPLE = Path(__file__).resolve().parents[2] / "traces" / "samples" / "crashes-seed7"


def second(**changes: Any) -> bytes:
    ev = copy.deepcopy(GOOD)
    ev["seq"] = 2
    for k, v in changes.items():
        if v is ...:
            del ev[k]
        else:
            ev[k] = v
    return orjson.dumps(ev)


def write(tmp_path: Path, lines: list[bytes], name: str = "trace-r1.jsonl") -> Path:
    p = tmp_path / name
    p.write_bytes(b"".join(line + b"\n" for line in lines))
    return p


@pytest.mark.parametrize(("line", "reason"), [
    (b"{not json", "not JSON"),
    (b"[1, 2]", "not a valid trace event"),
    (b"\xff\xfe", "not JSON"),
    (second(v=1), "unsupported trace format version 1"),
    (second(v=99), "unsupported trace format version 99"),
    (second(action="Phase3a"), "not a valid trace event"),
    (second(action=7), "not a valid trace event"),
    (second(clock=...), "not a valid trace event"),
    (second(clock="7"), "not a valid trace event"),
    (second(clock=1.5), "not a valid trace event"),
    (second(args={"r": "r1", "b": "1"}), "not a valid trace event"),
    (second(args={"r": "r1", "b": 1, "x": 2}), "not a valid trace event"),
    (second(kind="env"), "not a valid trace event"),
    (second(post=...), "not a valid trace event"),
    (second(seq=3), "seq 3 follows 1"),
    (second(clock=4), "clock runs backwards"),
    (second(real=5), "real time runs backwards"),
    (second(node="r2", replica="r2"), "event of node 'r2' in trace-r1.jsonl"),
    (b'{"a":' * 100 + b"1" + b"}" * 100, "not a valid trace event"),
])
def test_a_bad_line_names_file_and_line(tmp_path: Path, line: bytes, reason: str) -> None:
    p = write(tmp_path, [orjson.dumps(GOOD), line])
    with pytest.raises(TraceInputError) as exc:
        load_events([p])
    msg = str(exc.value)
    assert msg.startswith(f"{p}:2: ") and reason in msg, msg
    assert "\n" not in msg


def test_a_last_line_cut_short_is_named(tmp_path: Path) -> None:
    p = tmp_path / "trace-r1.jsonl"
    p.write_bytes(orjson.dumps(GOOD) + b"\n" + second()[:30])
    with pytest.raises(TraceInputError, match=r"trace-r1.jsonl:2: last line is cut short"):
        load_events([p])


def test_config_must_be_an_object_of_a_known_version(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_bytes(b"[1]")
    with pytest.raises(TraceInputError, match="not a JSON object"):
        read_config(tmp_path)
    (tmp_path / "config.json").write_bytes(b'{"format": 1}')
    with pytest.raises(TraceInputError, match="unsupported format version 1"):
        read_config(tmp_path)
    with pytest.raises(TraceInputError, match="no trace-"):
        (tmp_path / "config.json").write_bytes(b'{"format": %d}' % FORMAT_VERSION)
        load_trace_dir(tmp_path)


def test_events_merge_by_real_time_and_round_trip(tmp_path: Path) -> None:
    write(tmp_path, [orjson.dumps(GOOD), second(real=20, clock=20)])
    other = {**GOOD, "node": "r2", "replica": "r2", "real": 10, "args": {"r": "r2", "b": 2}}
    write(tmp_path, [orjson.dumps(other)], "trace-r2.jsonl")
    evs = load_events(tmp_path)
    assert [(e.event.node, e.event.real) for e in evs] == [("r1", 6), ("r2", 10), ("r1", 20)]
    assert evs[1].where.endswith("trace-r2.jsonl:1")
    assert event_to_obj(evs[0].event) == GOOD
    assert action_of(event_from_obj(GOOD)) == "Phase1a"


def test_the_committed_sample_loads() -> None:
    events, config = load_trace_dir(SAMPLE)
    lines = sum(len(p.read_bytes().splitlines()) for p in SAMPLE.glob("trace-*.jsonl"))
    assert len(events) == lines and config["format"] == FORMAT_VERSION


def test_member_kinds_read_members_and_fall_back_to_replicas() -> None:
    cfg = {"members": [{"id": "r1", "node": "n1", "incarnation": 1, "kind": "storage"},
                       {"id": "x9", "node": "n2", "incarnation": 2, "kind": "log"},
                       {"id": "r4", "node": "n4", "incarnation": 1, "kind": "none"}]}
    assert member_kinds(cfg) == {"r1": "storage", "x9": "log", "r4": "none"}
    assert members_of(cfg) == ["r1", "x9", "r4"]
    assert member_kinds({"replicas": 2}) == {"r1": "storage", "r2": "storage"}


@pytest.mark.parametrize(("members", "reason"), [
    ("r1", "must be a list"),
    ([{"id": "r1", "kind": "leader"}], "kind must be one of"),
    ([{"id": "", "kind": "storage"}], "non-empty string"),
    ([{"id": "r1", "kind": "storage"}, {"id": "r1", "kind": "log"}], "listed twice"),
    ([{"id": "a", "node": "n1", "incarnation": 1, "kind": "storage"},
      {"id": "b", "node": "n1", "incarnation": 1, "kind": "storage"}], "both incarnation"),
    ([{"id": "r1", "kind": "none"}], "has no member"),
])
def test_member_kinds_reject_bad_members(members: Any, reason: str) -> None:
    with pytest.raises(TraceInputError, match=reason):
        member_kinds({"members": members})
