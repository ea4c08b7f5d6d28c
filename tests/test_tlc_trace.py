"""Printing values and counterexamples (no Java needed)."""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from conformance.tla_values import ModelValue, Record, TLAFunction, parse_state, parse_value
from conformance.tlc_runner import TraceStep
from conformance.tlc_trace import format_trace, format_value, trace_to_json, value_to_json

MV = ModelValue

_names = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True).filter(
    lambda s: s not in ("TRUE", "FALSE")
)
_scalars = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20),
    st.text(max_size=8),
    st.booleans(),
    _names.map(ModelValue),
)
# Sets mix ints and booleans only at the Python level (True == 1), which TLC never prints,
# so set members are drawn from one scalar kind at a time.
_set_members = st.one_of(
    st.integers(-5, 5), st.text(max_size=3), _names.map(ModelValue), st.booleans()
)


def _compound(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=4).map(tuple),
        st.frozensets(_set_members, max_size=4),
        st.dictionaries(_names, children, max_size=4).map(Record),
        st.dictionaries(
            st.one_of(st.integers(-3, 3), _names.map(ModelValue)), children, min_size=1, max_size=4
        ).map(TLAFunction),
        st.frozensets(st.lists(st.integers(0, 3), max_size=2).map(tuple), max_size=3),
    )


_values = st.recursive(_scalars, _compound, max_leaves=25)


@given(_values)
def test_format_value_round_trips_through_parse_value(value: Any) -> None:
    assert parse_value(format_value(value)) == value


@given(st.dictionaries(_names, _values, max_size=5))
def test_states_round_trip(state: dict[str, Any]) -> None:
    text = "\n".join(f"/\\ {name} = {format_value(v)}" for name, v in state.items())
    assert parse_state(text) == state


def test_format_value_examples() -> None:
    assert format_value(-3) == "-3"
    assert format_value(True) == "TRUE"
    assert format_value('say "hi"\n\\') == '"say \\"hi\\"\\n\\\\"'
    assert format_value(MV("r1")) == "r1"
    assert format_value(()) == "<<>>"
    assert format_value((1, "a")) == '<<1, "a">>'
    # Sets print sorted: numbers numerically, then booleans, strings, model values.
    assert format_value(frozenset({10, 2, -1})) == "{-1, 2, 10}"
    assert format_value(frozenset({MV("b"), MV("a")})) == "{a, b}"
    assert format_value(Record(a=1, b=frozenset())) == "[a |-> 1, b |-> {}]"
    assert format_value(TLAFunction({MV("r1"): 0, MV("r2"): 1})) == "(r1 :> 0 @@ r2 :> 1)"
    assert format_value(TLAFunction({})) == "<< >>"


def _step(index: int, action: str | None, state: dict[str, Any], **kw: Any) -> TraceStep:
    return TraceStep(index, action, kw.pop("location", None), state, **kw)


def test_format_trace_shows_all_then_only_changes() -> None:
    s1 = parse_state("/\\ x = 0\n/\\ y = <<>>\n/\\ z = TRUE")
    s2 = parse_state("/\\ x = 1\n/\\ y = <<>>\n/\\ z = TRUE")
    s3 = dict(s2)
    loc = "line 16, col 5 to line 17, col 33 of module Replicas"
    text = format_trace(
        [_step(1, "Init", s1), _step(2, "Inc", s2, location=loc), _step(3, "Noop", s3)]
    )
    assert text.splitlines() == [
        "Step 1: Init",
        "  /\\ x = 0",
        "  /\\ y = <<>>",
        "  /\\ z = TRUE",
        "Step 2: Inc (Replicas.tla:16)",
        "  /\\ x = 1",
        "Step 3: Noop",
        "  /\\ (no variable changed)",
    ]


def test_format_trace_narrows_to_changed_entries() -> None:
    s1 = parse_state(
        "/\\ log = (r1 :> <<[t |-> 1], [t |-> 2]>> @@ r2 :> <<[t |-> 1], [t |-> 1]>>)\n"
        '/\\ meta = [term |-> 0, voters |-> {r1, r2, r3}, note |-> "n"]\n'
        "/\\ msgs = {1, 2, 3, 4}"
    )
    s2 = parse_state(
        "/\\ log = (r1 :> <<[t |-> 1], [t |-> 2]>> @@ r2 :> <<[t |-> 1], [t |-> 5]>>)\n"
        '/\\ meta = [term |-> 1, voters |-> {r1, r2}, note |-> "n"]\n'
        "/\\ msgs = {1, 2, 3, 5}"
    )
    lines = format_trace([_step(1, "Init", s1), _step(2, "Write", s2)]).splitlines()
    assert lines[-5:] == [
        "Step 2: Write",
        "  /\\ log[r2][2] = [t |-> 5]",
        "  /\\ meta.term = 1",
        "  /\\ meta.voters: removed {r3}",
        "  /\\ msgs: added {5}, removed {4}",
    ]


def test_format_trace_prints_whole_value_when_everything_changed() -> None:
    s1 = parse_state("/\\ f = (r1 :> 0 @@ r2 :> 0)\n/\\ s = <<1>>")
    s2 = parse_state("/\\ f = (r1 :> 1 @@ r2 :> 1)\n/\\ s = <<1, 2>>")
    lines = format_trace([_step(1, "Init", s1), _step(2, "Both", s2)]).splitlines()
    assert lines[-2:] == ["  /\\ f = (r1 :> 1 @@ r2 :> 1)", "  /\\ s = <<1, 2>>"]


def test_format_trace_liveness_loops() -> None:
    s1 = {"x": 0}
    s2 = {"x": 1}
    lasso = [
        _step(1, "Init", s1),
        _step(2, "Toggle", s2),
        _step(3, "Toggle", s1, back_to_state=1),
    ]
    lines = format_trace(lasso).splitlines()
    assert lines[-2:] == [
        "Step 3: Toggle -> back to state 1 (the behavior loops)",
        "  /\\ x = 0",
    ]
    stutter = format_trace([_step(1, "Init", s1), _step(2, None, dict(s1), stuttering=True)])
    assert stutter.splitlines()[-1] == "Step 2: (stuttering: nothing changes from here on)"


def test_format_trace_shows_unparsed_state_verbatim() -> None:
    step = TraceStep(2, "Weird", None, {}, raw="/\\ x = SomethingOdd(1)")
    assert format_trace([step]).splitlines() == ["Step 2: Weird", "  /\\ x = SomethingOdd(1)"]


def test_trace_to_json_is_json_safe() -> None:
    state = parse_state(
        "/\\ log = (r2 :> <<[t |-> 1]>> @@ r1 :> <<>>)\n"
        "/\\ votes = {r2, r1}\n"
        '/\\ byint = (2 :> "b" @@ 0 :> "a")\n'
        "/\\ bytuple = (<<1, 2>> :> TRUE)\n"
        "/\\ n = -4"
    )
    trace = [
        _step(1, "Init", state),
        _step(2, None, dict(state), stuttering=True),
    ]
    data = trace_to_json(trace)
    assert json.loads(json.dumps(data)) == data
    assert orjson.loads(orjson.dumps(data)) == data
    first = data[0]
    assert first["action"] == "Init" and first["index"] == 1
    assert first["stuttering"] is False and data[1]["stuttering"] is True
    assert first["state"] == {
        "byint": [[0, "a"], [2, "b"]],
        "bytuple": [[[1, 2], True]],
        "log": {"r1": [], "r2": [{"t": 1}]},
        "n": -4,
        "votes": ["r1", "r2"],
    }


def test_value_to_json_falls_back_to_pairs_when_names_collide() -> None:
    f = TLAFunction({"a": 1, MV("a"): 2})
    assert value_to_json(f) == [["a", 1], ["a", 2]]
