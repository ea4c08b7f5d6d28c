from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference.codec import (
    ClientReply,
    ClientRequest,
    CodecError,
    ProgressMsg,
    Wire,
    cmd_from_wire,
    cmd_to_json,
    cmd_to_wire,
    decode,
    encode,
    msg_to_json,
    result_to_wire,
    to_wire,
)
from reference.messages import (
    EMPTY,
    NOOP,
    Cmd,
    Command,
    CommitMsg,
    Entry,
    HandoffMsg,
    LeaseAckMsg,
    LeaseMsg,
    LeaseNotHeld,
    Message,
    NotLeader,
    NotReady,
    NotStorage,
    Phase1aMsg,
    Phase1bMsg,
    Phase2aMsg,
    Phase2bMsg,
    ProbeAckMsg,
    ProbeMsg,
    ReadResult,
    ReplyResult,
)
from reference.storage import (
    Applied,
    B,
    Bool,
    ConditionalCheckFailed,
    Delete,
    Invalid,
    Key,
    L,
    M,
    N,
    Null,
    Put,
    S,
    SetAttr,
    Update,
    encode_op,
    item_to_json,
)

K = Key(S("k"))
ITEM = M(pk=S("k"), v=N(1))
RICH = M(pk=S("k✓é"), n=N("-1.50"), b=B(b"\x00\xff"), f=Bool(True), z=Null(),
         l=L([N(1), S("x"), L()]), m=M(a=S("y")))
PUT = Command("c-1", encode_op(Put(ITEM)))
UPD = Command("c-2", encode_op(Update(K, (SetAttr("v", N(2)),))))
DEL = Command("c-3", encode_op(Delete(K)))


def roundtrip(m: Wire) -> Wire:
    return decode(encode(m))


# --- round trips ---------------------------------------------------------------------

PROTOCOL: list[Message] = [
    Phase1aMsg(3, "a"),
    Phase1bMsg(3, "b", "a", (), 0),
    Phase1bMsg(5, "b", "a", (Entry(1, PUT), EMPTY, Entry(2, NOOP), Entry(4, UPD), Entry(4, DEL)),
               1_234_567),
    Phase2aMsg(2, 7, PUT, "a"),
    Phase2aMsg(2, 8, NOOP, "a"),
    Phase2bMsg(2, 7, UPD, "b"),
    Phase2bMsg(2, 9, NOOP, "c"),
    CommitMsg(2, 7, "a"),
    LeaseMsg(2, 1_000_000, "a"),
    LeaseMsg(2, 1_000_000, "a", held=True),
    LeaseAckMsg(2, 1_000_000, "b", "a"),
    ProbeMsg("b", 1),
    ProbeAckMsg("c", "b", True, 1),
    ProbeAckMsg("c", "b", False, 7),
    HandoffMsg(4, "a", "b"),
]

DRIVER: list[Wire] = [
    ProgressMsg(2, "b", "a", 10, 8),
    ProgressMsg(2, "b", "a", 0, 0, urgent=True),
    ClientRequest("c-1", "write", encode_op(Put(RICH))),
    ClientRequest("c-2", "strong", b"", K),
    ClientRequest("c-3", "eventual", b"", Key(S("k"), N(4))),
    ClientRequest("c-4", "eventual", b"", Key(B(b"\x01"), S("s"))),
]

RESULTS: list[tuple[ReplyResult, str | None]] = [
    (Applied(None, ITEM), None),
    (Applied(ITEM, None), None),
    (Applied(ITEM, RICH), None),
    (ConditionalCheckFailed(None), None),
    (ConditionalCheckFailed(RICH), None),
    (Invalid("item is missing key attribute 'pk'"), None),
    (ReadResult(RICH), None),
    (ReadResult(None), None),
    (NotLeader(), "r2"),
    (NotLeader(), None),
    (LeaseNotHeld(), None),
    (NotReady(), None),
    (NotStorage(), None),
]

ALL: list[Wire] = [*PROTOCOL, *DRIVER, *(ClientReply("c-9", r, h) for r, h in RESULTS)]


@pytest.mark.parametrize("m", ALL, ids=repr)
def test_roundtrip(m: Wire) -> None:
    back = roundtrip(m)
    assert back == m
    assert type(back) is type(m)
    assert encode(back) == encode(m)


def test_phase1b_log_keeps_noop_empty_and_commands_in_order() -> None:
    m = PROTOCOL[2]
    back = roundtrip(m)
    assert isinstance(back, Phase1bMsg)
    assert [e.bal for e in back.log] == [1, 0, 2, 4, 4]
    assert back.log[1] == EMPTY and back.log[2] == Entry(2, NOOP)
    assert [e.cmd for e in back.log if isinstance(e.cmd, Command)] == [PUT, UPD, DEL]
    assert back.granted == 1_234_567


def test_wire_form_is_tagged_array() -> None:
    assert orjson.loads(encode(Phase2aMsg(2, 7, NOOP, "a"))) == ["2a", 2, 7, None, "a"]
    assert orjson.loads(encode(Phase2bMsg(2, 7, PUT, "b"))) == [
        "2b", 2, 7, ["c-1", PUT.op.decode()], "b"]
    assert orjson.loads(encode(ClientReply("c-1", NotLeader(), "r3"))) == [
        "reply", "c-1", ["not_leader"], "r3"]
    assert orjson.loads(encode(ProgressMsg(1, "b", "a", 3, 2, True))) == [
        "progress", 1, "b", "a", 3, 2, True]


@pytest.mark.parametrize("c", [NOOP, PUT, Command("", b""), Command("r-✓", "é".encode())])
def test_cmd_wire_roundtrip(c: Cmd) -> None:
    assert cmd_from_wire(orjson.loads(orjson.dumps(cmd_to_wire(c)))) == c


_int64 = st.integers(min_value=-(2**63), max_value=2**64 - 1)
_cmd = st.one_of(st.just(NOOP), st.builds(Command, st.text(),
                                          st.text().map(lambda s: s.encode())))


@settings(max_examples=300, deadline=None)
@given(bal=_int64, slot=_int64, cmd=_cmd, src=st.text(), second=st.booleans())
def test_phase2_roundtrip_property(bal: int, slot: int, cmd: Cmd, src: str,
                                   second: bool) -> None:
    m = Phase2bMsg(bal, slot, cmd, src) if second else Phase2aMsg(bal, slot, cmd, src)
    back = roundtrip(m)
    assert back == m and type(back) is type(m)
    assert isinstance(back, Phase2aMsg | Phase2bMsg)
    assert type(back.bal) is int and type(back.slot) is int


def test_integer_beyond_64_bits_cannot_be_encoded() -> None:
    with pytest.raises(TypeError, match="64-bit"):
        encode(Phase2aMsg(2**64, 1, NOOP, "a"))


# --- rejection -----------------------------------------------------------------------

BAD: list[tuple[bytes, str]] = [
    # not JSON
    (b"", "not JSON"),
    (b"not json", "not JSON"),
    (b"\xff\xfe[]", "not JSON"),
    (b'["1a", 1, "a"', "not JSON"),
    # not a non-empty array
    (b"[]", "non-empty array"),
    (b"{}", "non-empty array"),
    (b'{"type": "1a"}', "non-empty array"),
    (b'"1a"', "non-empty array"),
    (b"null", "non-empty array"),
    (b"42", "non-empty array"),
    # unknown tag
    (b'["zz", 1, "a"]', "bad 'zz' message"),
    (b'["1A", 1, "a"]', "bad '1A' message"),
    (b'[1, 1, "a"]', "bad 1 message"),
    (b'[null]', "bad None message"),
    # wrong arity
    (b'["1a", 1]', "bad '1a' message"),
    (b'["1a", 1, "a", "b"]', "bad '1a' message"),
    (b'["1b", 1, "b", "a", []]', "bad '1b' message"),
    (b'["2a", 1, 2, null]', "bad '2a' message"),
    (b'["2b", 1, 2, null, "a", "b"]', "bad '2b' message"),
    (b'["commit", 1, 2]', "bad 'commit' message"),
    (b'["lease", 1, 2]', "bad 'lease' message"),
    (b'["lease", 1, 2, "a", false]', "bad 'lease' message"),  # held false: 3-field form only
    (b'["lease", 1, 2, "a", 1]', "bad 'lease' message"),
    (b'["probe"]', "bad 'probe' message"),
    (b'["probe", 1]', "bad 'probe' message"),
    (b'["probeAck", "a", "b", 1]', "bad 'probeAck' message"),
    (b'["probeAck", "a", "b"]', "bad 'probeAck' message"),
    (b'["handoff", 1, "a"]', "bad 'handoff' message"),
    (b'["handoff", true, "a", "b"]', "bad 'handoff' message"),
    (b'["check", 1, "a"]', "bad 'check' message"),  # the old leader check is gone
    (b'["leaseAck", 1, 2, "b"]', "bad 'leaseAck' message"),
    (b'["progress", 1, "b", "a", 2, 1]', "bad 'progress' message"),
    (b'["req", "r", "write", ""]', "bad 'req' message"),
    (b'["reply", "r", ["not_leader"]]', "bad 'reply' message"),
    # wrong types (bool is an int subclass in Python; the codec rejects it as an int)
    (b'["1a", "1", "a"]', "bad '1a' message"),
    (b'["1a", 1.0, "a"]', "bad '1a' message"),
    (b'["1a", true, "a"]', "bad '1a' message"),
    (b'["1a", 1, 2]', "bad '1a' message"),
    (b'["1a", 1, null]', "bad '1a' message"),
    (b'["1b", 1, "b", "a", [], true]', "bad '1b' message"),
    (b'["1b", false, "b", "a", [], 0]', "bad '1b' message"),
    (b'["2a", 1, false, null, "a"]', "bad '2a' message"),
    (b'["2b", 1, 2, null, 3]', "bad '2b' message"),
    (b'["commit", 1, true, "a"]', "bad 'commit' message"),
    (b'["lease", 1, 2.5, "a"]', "bad 'lease' message"),
    (b'["leaseAck", 1, 2, "b", null]', "bad 'leaseAck' message"),
    (b'["progress", 1, "b", "a", 2, 1, 1]', "bad 'progress' message"),
    (b'["progress", 1, "b", "a", true, 1, false]', "bad 'progress' message"),
    (b'["check", 1]', "bad 'check' message"),
    (b'["check", true, "b"]', "bad 'check' message"),
    (b'["checkReply", 1, "b"]', "bad 'checkReply' message"),
    (b'["checkReply", 1, "b", 1]', "bad 'checkReply' message"),
    (b'["checkReply", 1, "b", null]', "bad 'checkReply' message"),
    (b'["req", 1, "write", "", null]', "bad 'req' message"),
    (b'["req", "r", "read", "", null]', "bad 'req' message"),
    (b'["req", "r", "write", null, null]', "bad 'req' message"),
    (b'["reply", 1, ["not_leader"], null]', "bad 'reply' message"),
    (b'["reply", "r", ["not_leader"], 5]', "bad 'reply' message"),
    # bad commands and logs
    (b'["2a", 1, 2, ["r"], "a"]', "bad command"),
    (b'["2a", 1, 2, ["r", {}], "a"]', "bad command"),
    (b'["2a", 1, 2, "noop", "a"]', "bad command"),
    (b'["2b", 1, 2, [1, "op"], "a"]', "bad command"),
    (b'["1b", 1, "b", "a", {}, 0]', "1b log must be a list"),
    (b'["1b", 1, "b", "a", [[true, null]], 0]', "bad log entry"),
    (b'["1b", 1, "b", "a", [[1]], 0]', "bad log entry"),
    (b'["1b", 1, "b", "a", [[1, 2]], 0]', "bad command"),
    # bad results
    (b'["reply", "r", [], null]', "bad result"),
    (b'["reply", "r", "applied", null]', "bad result"),
    (b'["reply", "r", [3], null]', "bad result"),
    (b'["reply", "r", ["nope"], null]', "bad result"),
    (b'["reply", "r", ["applied", null], null]', "bad result"),
    (b'["reply", "r", ["condfail"], null]', "bad result"),
    (b'["reply", "r", ["invalid", 3], null]', "bad result"),
    (b'["reply", "r", ["read"], null]', "bad result"),
    (b'["reply", "r", ["not_leader", null], null]', "bad result"),
    (b'["reply", "r", ["not_storage", "x"], null]', "bad result"),
    (b'["reply", "r", ["read", 5], null]', "bad item"),
    (b'["reply", "r", ["read", {"pk": {"S": 1}}], null]', "bad S value"),
    (b'["reply", "r", ["read", {"pk": {"N": "NaN"}}], null]', "bad N value"),
    (b'["reply", "r", ["applied", null, {"pk": {"X": 1}}], null]', "bad value"),
    (b'["reply", "r", ["condfail", {"pk": {"B": "!!"}}], null]', "bad B value"),
    # bad keys
    (b'["req", "r", "strong", "", {"p": {"BOOL": true}}]', "key values are S, N or B"),
    (b'["req", "r", "strong", "", {"q": {"S": "k"}}]', "bad key"),
    (b'["req", "r", "strong", "", "k"]', "bad key"),
]


@pytest.mark.parametrize(("payload", "match"), BAD, ids=[p.decode("latin-1") for p, _ in BAD])
def test_decode_rejects(payload: bytes, match: str) -> None:
    with pytest.raises(CodecError, match=match.replace("[", r"\[")):
        decode(payload)


def test_codec_error_is_value_error() -> None:
    assert issubclass(CodecError, ValueError)


def test_true_ballot_is_encoded_but_never_decoded_as_int() -> None:
    # encode does not validate: a bool ballot goes out as JSON ``true`` ...
    data = encode(Phase1aMsg(True, "a"))
    assert data == b'["1a",true,"a"]'
    # ... and decode refuses it, so a handler never sees a bool where it expects an int.
    with pytest.raises(CodecError):
        decode(data)
    with pytest.raises(CodecError):
        decode(encode(Phase1bMsg(1, "b", "a", (Entry(True, NOOP),), 0)))
    back = decode(b'["1a",1,"a"]')
    assert isinstance(back, Phase1aMsg) and type(back.bal) is int


def test_decoder_accepts_bool_only_for_progress_urgent() -> None:
    m = decode(b'["progress",1,"b","a",2,1,true]')
    assert m == ProgressMsg(1, "b", "a", 2, 1, True)


@pytest.mark.parametrize("x", [None, "x", 1, ProgressMsg(1, "a", "b", 0, 0)])
def test_result_to_wire_rejects_non_results(x: Any) -> None:
    with pytest.raises(TypeError, match="not a reply result"):
        result_to_wire(x)


@pytest.mark.parametrize("x", [None, "x", NOOP, PUT, NotLeader()])
def test_to_wire_rejects_non_messages(x: Any) -> None:
    with pytest.raises(TypeError, match="not a message"):
        to_wire(x)


# --- trace form ----------------------------------------------------------------------

OP_JSON = orjson.loads(PUT.op)


def _plain(m: Message) -> Any:
    return orjson.loads(orjson.dumps(msg_to_json(m)))


@pytest.mark.parametrize(("m", "expected"), [
    (Phase1aMsg(3, "a"), {"type": "1a", "bal": 3, "from": "a"}),
    (Phase1bMsg(3, "b", "a", (Entry(1, PUT), Entry(2, NOOP)), 77),
     {"type": "1b", "bal": 3, "from": "b", "to": "a",
      "log": [[1, {"rid": "c-1", "op": OP_JSON}], [2, None]], "granted": 77}),
    (Phase2aMsg(2, 7, PUT, "a"),
     {"type": "2a", "bal": 2, "slot": 7, "cmd": {"rid": "c-1", "op": OP_JSON}, "from": "a"}),
    (Phase2bMsg(2, 7, NOOP, "b"), {"type": "2b", "bal": 2, "slot": 7, "cmd": None, "from": "b"}),
    (CommitMsg(2, 7, "a"), {"type": "commit", "bal": 2, "slot": 7, "from": "a"}),
    (LeaseMsg(2, 500, "a"),
     {"type": "lease", "bal": 2, "start": 500, "from": "a", "held": False}),
    (LeaseMsg(2, 500, "a", True),
     {"type": "lease", "bal": 2, "start": 500, "from": "a", "held": True}),
    (ProbeMsg("b", 2), {"type": "probe", "from": "b", "n": 2}),
    (ProbeAckMsg("a", "b", True, 2),
     {"type": "probeAck", "from": "a", "to": "b", "hears": True, "n": 2}),
    (HandoffMsg(3, "a", "b"), {"type": "handoff", "bal": 3, "from": "a", "to": "b"}),
    (LeaseAckMsg(2, 500, "b", "a"),
     {"type": "leaseAck", "bal": 2, "start": 500, "from": "b", "to": "a"}),
], ids=lambda x: type(x).__name__ if not isinstance(x, dict) else "")
def test_msg_to_json_uses_spec_field_names(m: Message, expected: dict[str, Any]) -> None:
    assert _plain(m) == expected
    assert "src" not in msg_to_json(m) and "dst" not in msg_to_json(m)


def test_msg_to_json_rejects_driver_messages() -> None:
    with pytest.raises(TypeError, match="not a protocol message"):
        msg_to_json(ProgressMsg(1, "b", "a", 0, 0))  # type: ignore[arg-type]


def test_cmd_to_json() -> None:
    assert cmd_to_json(NOOP) is None
    c = Command("c-5", encode_op(Put(RICH)))
    out = orjson.dumps(cmd_to_json(c))
    assert orjson.loads(out) == {"rid": "c-5", "op": orjson.loads(c.op)}
    assert orjson.loads(out)["op"]["item"] == item_to_json(RICH)
    assert c.op in out  # embedded verbatim, not re-serialised as a string
