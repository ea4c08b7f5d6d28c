"""Parsing TLA+ values and states as TLC prints them."""

from __future__ import annotations

import copy
import pickle
import time
from typing import Any

import pytest

from conformance.tla_values import (
    ModelValue,
    Record,
    TLAFunction,
    TLAParseError,
    parse_state,
    parse_value,
)

MV = ModelValue


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("42", 42),
        ("-17", -17),
        ("123456789012345678901234567890", 123456789012345678901234567890),
        ("TRUE", True),
        ("FALSE", False),
        ("r1", MV("r1")),
        ("_x9", MV("_x9")),
        ("1a", MV("1a")),  # TLA+ identifiers may start with a digit
        ('""', ""),
        ('"plain"', "plain"),
        ('"a \\"quoted\\" note"', 'a "quoted" note'),
        ('"back\\\\slash"', "back\\slash"),
        ('"tab\\there\\nnl"', "tab\there\nnl"),
        ("<<>>", ()),
        ("<< >>", ()),  # TLC's spelling of a function with an empty domain
        ("<<1, -2, r1>>", (1, -2, MV("r1"))),
        ("{}", frozenset()),
        ("{1, 2, 2}", frozenset({1, 2})),
        ("1..3", frozenset({1, 2, 3})),
        ("-1..1", frozenset({-1, 0, 1})),
        ("3..1", frozenset()),
        ("[a |-> 1, b |-> TRUE]", Record(a=1, b=True)),
        ("[]", Record()),
        ("(r1 :> 0)", TLAFunction({MV("r1"): 0})),
        ("(0 :> 0 @@ 1 :> -1 @@ 2 :> -2)", TLAFunction({0: 0, 1: -1, 2: -2})),
        ("(7)", 7),
    ],
)
def test_scalars_and_flat_collections(text: str, expected: Any) -> None:
    value = parse_value(text)
    assert value == expected
    assert type(value) is type(expected)


def test_nested_values() -> None:
    text = '[k |-> {<<1, [z |-> {}]>>}, j |-> <<>>, f |-> (<<r1, 2>> :> {"x"} @@ [a |-> 1] :> 3)]'
    value = parse_value(text)
    assert value == Record(
        k=frozenset({(1, Record(z=frozenset()))}),
        j=(),
        f=TLAFunction({(MV("r1"), 2): frozenset({"x"}), Record(a=1): 3}),
    )
    assert value.f[Record(a=1)] == 3
    assert value["k"] == frozenset({(1, Record(z=frozenset()))})


def test_deep_nesting() -> None:
    depth = 200
    value = parse_value("<<" * depth + "1" + ">>" * depth)
    for _ in range(depth):
        assert isinstance(value, tuple) and len(value) == 1
        value = value[0]
    assert value == 1


def test_whitespace_and_line_wrapping_anywhere() -> None:
    wrapped = """<< [id |-> 1, name |-> "replica",
       flags |-> {FALSE, TRUE}],
   [ id |-> 2 ,
     name |-> "replica" , flags |->
       { } ] >>"""
    assert parse_value(wrapped) == (
        Record(id=1, name="replica", flags=frozenset({False, True})),
        Record(id=2, name="replica", flags=frozenset()),
    )
    assert parse_value("\n  (r1 :> <<>> @@\n  r2 :> <<1>> )\n") == TLAFunction(
        {MV("r1"): (), MV("r2"): (1,)}
    )


def test_record_behaves_as_immutable_hashable_mapping() -> None:
    rec = parse_value("[term |-> 0, voters |-> {r1}]")
    assert rec.term == 0 and rec["voters"] == frozenset({MV("r1")})
    assert list(rec) == ["term", "voters"] and len(rec) == 2
    assert dict(rec) == {"term": 0, "voters": frozenset({MV("r1")})}
    # Field order does not matter for equality or hashing.
    same = parse_value("[voters |-> {r1}, term |-> 0]")
    assert rec == same and hash(rec) == hash(same)
    assert rec != parse_value("[term |-> 1, voters |-> {r1}]")
    assert len({rec, same}) == 1
    with pytest.raises(AttributeError):
        rec.missing  # noqa: B018
    with pytest.raises(KeyError):
        rec["missing"]
    with pytest.raises(AttributeError):
        rec.term = 5
    with pytest.raises(TypeError):
        rec["term"] = 5
    assert copy.deepcopy(rec) == rec
    assert pickle.loads(pickle.dumps(rec)) == rec


def test_function_equality_and_hashing() -> None:
    f = parse_value("(r1 :> 1 @@ r2 :> 2)")
    g = parse_value("(r2 :> 2 @@ r1 :> 1)")
    assert f == g and hash(f) == hash(g)
    assert f != parse_value("(r1 :> 1 @@ r2 :> 3)")
    assert f[MV("r2")] == 2
    assert {f: "usable as a key"}[g] == "usable as a key"
    # A function with string keys equals the record with the same fields, as in TLA+.
    assert TLAFunction({"a": 1}) == Record(a=1)
    assert hash(TLAFunction({"a": 1})) == hash(Record(a=1))
    # ...but model values are not strings.
    assert TLAFunction({MV("a"): 1}) != Record(a=1)


def test_model_value_is_distinct_from_string() -> None:
    assert parse_value("r1") != parse_value('"r1"')
    assert str(MV("r1")) == "r1"


def test_parse_state_conjunction_form() -> None:
    text = """/\\ meta = [term |-> 0, voters |-> {}, note |-> "a \\"quoted\\" note"]
/\\ leader = r1
/\\ log = (r1 :> <<[term |-> 0, val |-> -1]>> @@ r2 :> <<>>)
"""
    state = parse_state(text)
    assert list(state) == ["meta", "leader", "log"]
    assert state["meta"].note == 'a "quoted" note'
    assert state["leader"] == MV("r1")
    assert state["log"][MV("r1")] == (Record(term=0, val=-1),)
    assert state["log"][MV("r2")] == ()


def test_parse_state_single_variable_and_empty() -> None:
    assert parse_state("x = 3\n") == {"x": 3}
    assert parse_state("  ") == {}
    assert parse_state("/\\ x = 1") == {"x": 1}


def test_parse_state_values_wrapped_across_lines() -> None:
    text = "/\\ big = << [id |-> 1],\n   [id |-> 2] >>\n/\\ ps = {{}, {1}, {2}, {1, 2}}\n"
    state = parse_state(text)
    assert state["big"] == (Record(id=1), Record(id=2))
    assert len(state["ps"]) == 4


@pytest.mark.parametrize(
    ("text", "fragment", "offset"),
    [
        ("<<1, 2", "expected ',' or '>>'", 6),
        ("{1 2}", "expected ',' or '}'", 3),
        ("[a |-> ]", "expected a value", 7),
        ("[a = 1]", "expected '|->'", 3),
        ("[1 |-> 2]", "expected an identifier", 1),
        ("(a :> 1 @@ b)", "expected ':>'", 12),
        ('"unterminated', "unterminated string", 0),
        ("1 2", "expected end of value", 2),
        ("@", "expected a value", 0),
        ("1..x", "expected an integer", 3),
        ("", "expected a value", 0),
        ("<<1,,2>>", "expected a value", 4),
    ],
)
def test_malformed_values_raise_with_position(text: str, fragment: str, offset: int) -> None:
    with pytest.raises(TLAParseError) as info:
        parse_value(text)
    assert fragment in str(info.value)
    assert info.value.pos == offset


def test_error_position_reports_line_and_column() -> None:
    with pytest.raises(TLAParseError) as info:
        parse_state("/\\ x = 1\n/\\ y = <<1,\n  2,, 3>>")
    assert (info.value.line, info.value.column) == (3, 5)
    assert "line 3, column 5" in str(info.value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("/\\ x = 1\n/\\ x = 2", "duplicate variable 'x'"),
        ("/\\ x 1", "expected '='"),
        ("x = 1 /\\ y = 2", "expected end of value"),
        ("/\\ = 1", "expected an identifier"),
    ],
)
def test_malformed_states(text: str, fragment: str) -> None:
    with pytest.raises(TLAParseError, match=fragment):
        parse_state(text)


def test_parses_a_megabyte_state_quickly() -> None:
    entry = '[term |-> {t}, val |-> -{t}, key |-> "k{t}", ok |-> TRUE, ids |-> {{{t}, 9}}]'
    seq = "<<" + ", ".join(entry.format(t=t) for t in range(40)) + ">>"
    log = "(" + " @@\n ".join(f"r{i} :> {seq}" for i in range(360)) + ")"
    text = f"/\\ log = {log}\n/\\ n = 3\n"
    assert len(text) > 1_000_000
    start = time.perf_counter()
    state = parse_state(text)
    elapsed = time.perf_counter() - start
    assert state["log"][MV("r359")][39] == Record(
        term=39, val=-39, key="k39", ok=True, ids=frozenset({39, 9})
    )
    # A guard against quadratic parsing (minutes), not a benchmark: loose enough for a
    # shared 2-core CI machine, where 1 s flaked.
    assert elapsed < 5.0, f"parsing 1 MB took {elapsed:.2f}s"
