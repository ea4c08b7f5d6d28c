"""Configuration commands on the wire, in the WAL and in trace lines; checkpointed WALs."""

from __future__ import annotations

import msgspec
import orjson
import pytest

from reference.codec import (
    CodecError,
    ProgressMsg,
    SeedMsg,
    SnapshotReportMsg,
    TruncateMsg,
    cmd_from_wire,
    cmd_to_json,
    cmd_to_wire,
    decode,
    encode,
)
from reference.messages import NOOP, Change, Command, Entry, Phase1bMsg, Phase2aMsg
from reference.trace import digest_fields, make_args
from reference.trace_events import EVENT_TYPES, Cmd
from reference.wal import Disk, WriteAheadLog
from reference.wal_records import (
    WalRecordError,
    applied_record,
    ballot_record,
    checkpoint_record,
    durable_and_checkpoint,
    durable_from_wal,
    log_record,
)

CHANGES = [Change("add", "r4", "log"), Change("add", "r5", "storage"),
           Change("remove", "r2"), Change("promote", "r4")]
CFG = (("r1", "storage"), ("r2", "none"), ("r4", "log"))


@pytest.mark.parametrize("c", CHANGES)
def test_a_change_round_trips_on_the_wire_and_in_the_wal(c: Change) -> None:
    assert cmd_from_wire(cmd_to_wire(c)) == c
    assert decode(encode(Phase2aMsg(3, 7, c, "r1"))) == Phase2aMsg(3, 7, c, "r1")
    assert durable_from_wal([log_record(7, 3, c)])[1] == {7: Entry(3, c)}


def test_the_change_command_json_forms() -> None:
    c = Change("add", "r4", "log")
    assert cmd_to_wire(c) == {"op": "add", "who": "r4", "kind": "log"}
    assert cmd_to_wire(Change("remove", "r2")) == {"op": "remove", "who": "r2"}
    assert cmd_to_json(c) == {"rid": "add-r4", "change": {"op": "add", "who": "r4",
                                                          "kind": "log"}}
    assert digest_fields(c) == ("add-r4", b'{"kind":"log","op":"add","who":"r4"}')
    assert digest_fields(NOOP) == ("", b"")


@pytest.mark.parametrize("bad", [
    {"op": "add", "who": "r4"},  # add needs a kind
    {"op": "remove", "who": "r4", "kind": "log"},  # only add has one
    {"op": "grow", "who": "r4"}, {"op": "remove", "who": ""}, {"op": "remove"},
    {"op": "remove", "who": "r4", "extra": 1}, {"op": "add", "who": "r4", "kind": "none"},
])
def test_malformed_changes_are_refused(bad: object) -> None:
    with pytest.raises(CodecError):
        cmd_from_wire(bad)
    with pytest.raises(WalRecordError):
        durable_from_wal([orjson.dumps(["l", 1, 1, bad])])


def test_trace_lines_carry_changes_in_both_forms() -> None:
    c = Change("add", "r4", "log")
    args = make_args("AddMember", {"r": "r1", "c": c, "s": 5})
    enc = msgspec.json.encode(args)
    assert enc == b'{"r":"r1","c":{"op":"add","who":"r4","kind":"log"},"s":5}'
    apply = msgspec.json.encode(make_args("Apply", {"r": "r1", "s": 5, "c": c}))
    assert apply == b'{"r":"r1","s":5,"c":{"rid":"add-r4","change":{"op":"add","who":"r4",' \
                    b'"kind":"log"}}}'
    write = msgspec.json.encode(make_args("Apply", {"r": "r1", "s": 5,
                                                    "c": Command("c1-1", b'{"op":"x"}')}))
    assert write == b'{"r":"r1","s":5,"c":{"rid":"c1-1","op":{"op":"x"}}}'
    event = EVENT_TYPES["RemoveMember"]
    line = (b'{"action":"RemoveMember","v":3,"node":"r1","replica":"r1","seq":1,"clock":0,'
            b'"real":0,"kind":"spec","args":{"r":"r1","c":{"op":"remove","who":"r3"},"s":9},'
            b'"post":{"bal":1,"role":"leader","top":9,"applied":8,"lease":true}}')
    assert msgspec.json.decode(line, type=event).args.c.who == "r3"
    for bad in (b'{"rid":"x"}', b'{"rid":"x","op":{},"change":{"op":"remove","who":"a"}}',
                b'{"rid":"x","change":{"op":"promote","who":"a","kind":"log"}}'):
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(bad, type=Cmd)


def test_driver_messages_and_checkpointed_promises_round_trip() -> None:
    for m in (Phase1bMsg(4, "r2", "r1", (Entry(3, NOOP),), 2, 17, CFG, ("r4",)),
              Phase1bMsg(4, "r2", "r1", (), 0), ProgressMsg(4, "r4", "r1", 20, 20, True, 17),
              ProgressMsg(4, "r4", "r1", 20, 20), SnapshotReportMsg("r4", 30),
              SeedMsg(4, "r1", 17, CFG, ("r4",)), TruncateMsg(4, "r1", 256)):
        assert decode(encode(m)) == m
    # Without a checkpoint the encoding is the one before issue 9.
    assert orjson.loads(encode(Phase1bMsg(4, "r2", "r1", (), 0))) == ["1b", 4, "r2", "r1", [], 0]


def test_a_checkpointed_wal_recovers_from_its_checkpoint() -> None:
    wal = WriteAheadLog(Disk(), first_seq=40)
    for rec in (checkpoint_record(10, CFG, ("r4",)), ballot_record(3), applied_record(11),
                log_record(10, 2, NOOP), log_record(11, 3, Change("promote", "r4"))):
        wal.append(rec)
    wal.sync()
    reopened, result = WriteAheadLog.open(wal.disk)
    assert result.kind == "clean" and reopened.first_seq == 40
    durable, cp = durable_and_checkpoint([r.payload for r in result.records])
    assert durable == (3, {11: Entry(3, Change("promote", "r4"))}, 0, 11)
    assert cp == (10, CFG, ("r4",))
