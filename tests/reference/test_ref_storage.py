from __future__ import annotations

from decimal import Decimal
from typing import Any, cast

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference.storage import (
    AddNumber,
    And,
    Applied,
    AttributeExists,
    AttributeNotExists,
    B,
    Bool,
    Compare,
    CompareOp,
    Condition,
    ConditionalCheckFailed,
    DecodeError,
    Delete,
    Invalid,
    Key,
    KeySchema,
    L,
    M,
    N,
    Not,
    Null,
    Or,
    Put,
    RemoveAttr,
    S,
    SetAttr,
    StorageEngine,
    Update,
    UpdateAction,
    Value,
    WriteOp,
    decode_op,
    encode_op,
    evaluate,
)

SCHEMA = KeySchema("pk", "S", "sk", "N")


def _engine() -> StorageEngine:
    return StorageEngine(SCHEMA)


def _item(pk: str, sk: int, **attrs: Value) -> M:
    return M(pk=S(pk), sk=N(sk), **attrs)


ITEM = M(
    pk=S("p"), sk=N(1), n=N(5), s=S("m"), b=B(b"\x10"), t=Bool(True), z=Null(),
    l=L([N(1), S("x")]), m=M(inner=N(2)),
)


# --- conditions ------------------------------------------------------------------


def test_attribute_exists_and_not_exists() -> None:
    assert evaluate(AttributeExists("n"), ITEM)
    assert evaluate(AttributeExists("z"), ITEM)  # a NULL value still exists
    assert not evaluate(AttributeExists("missing"), ITEM)
    assert not evaluate(AttributeExists("pk"), None)
    assert evaluate(AttributeNotExists("missing"), ITEM)
    assert not evaluate(AttributeNotExists("n"), ITEM)
    assert evaluate(AttributeNotExists("pk"), None)


@pytest.mark.parametrize(
    ("name", "op", "value", "expected"),
    [
        ("n", "=", N(5), True), ("n", "=", N("5.000"), True), ("n", "=", N(4), False),
        ("n", "<>", N(4), True), ("n", "<>", N(5), False),
        ("n", "<", N(6), True), ("n", "<", N(5), False),
        ("n", "<=", N(5), True), ("n", "<=", N("4.99"), False),
        ("n", ">", N("4.99"), True), ("n", ">", N(5), False),
        ("n", ">=", N(5), True), ("n", ">=", N(6), False),
        ("n", "<", N(-100), False), ("n", ">", N(-100), True),
        ("s", "<", S("n"), True), ("s", ">", S("l"), True), ("s", "<", S("ma"), True),
        ("s", ">=", S("m"), True), ("s", "<", S("M"), False),
        ("b", "<", B(b"\x11"), True), ("b", ">", B(b"\x10\x00"), False),
        ("b", ">=", B(b"\x10"), True),
        # type mismatch: equality false, <> true, ordering false
        ("n", "=", S("5"), False), ("n", "<>", S("5"), True),
        ("n", "<", S("9"), False), ("n", ">=", S("0"), False),
        ("s", "<", N(1), False),
        # missing attribute
        ("missing", "=", N(1), False), ("missing", "<>", N(1), True),
        ("missing", "<", N(1), False), ("missing", ">=", N(1), False),
        # non-scalar equality is structural
        ("l", "=", L([N("1.0"), S("x")]), True), ("l", "=", L([S("x"), N(1)]), False),
        ("m", "=", M(inner=N(2)), True), ("m", "<>", M(inner=N(3)), True),
        ("t", "=", Bool(True), True), ("t", "=", N(1), False), ("z", "=", Null(), True),
    ],
)
def test_comparisons(name: str, op: CompareOp, value: Value, expected: bool) -> None:
    assert evaluate(Compare(name, op, value), ITEM) is expected


def test_comparison_on_absent_item() -> None:
    assert not evaluate(Compare("n", "=", N(5)), None)
    assert evaluate(Compare("n", "<>", N(5)), None)
    assert not evaluate(Compare("n", ">", N(5)), None)


def test_ordering_comparison_requires_scalar_operand() -> None:
    with pytest.raises(ValueError):
        Compare("t", "<", Bool(True))
    with pytest.raises(ValueError):
        Compare("n", "~", N(1))  # type: ignore[arg-type]


def test_boolean_combinators() -> None:
    yes, no = AttributeExists("n"), AttributeExists("missing")
    assert evaluate(And(yes, yes), ITEM) and not evaluate(And(yes, no), ITEM)
    assert evaluate(Or(no, yes), ITEM) and not evaluate(Or(no, no), ITEM)
    assert evaluate(Not(no), ITEM) and not evaluate(Not(yes), ITEM)
    nested = And(Or(no, Compare("n", ">", N(1))), Not(Compare("s", "=", S("x"))))
    assert evaluate(nested, ITEM)
    assert not evaluate(Not(nested), ITEM)
    with pytest.raises(ValueError):
        And()


def test_failed_condition_changes_nothing() -> None:
    eng = _engine()
    eng.apply(Put(_item("a", 1, v=N(1))))
    before = eng.checksum()
    ops: list[WriteOp] = [
        Put(_item("a", 1, v=N(2)), AttributeNotExists("pk")),
        Update(Key(S("a"), N(1)), (SetAttr("v", N(9)),), Compare("v", "=", N(0))),
        Delete(Key(S("a"), N(1)), Compare("v", ">", N(1))),
        Put(_item("new", 1), AttributeExists("pk")),
    ]
    for op in ops:
        result = eng.apply(op)
        assert isinstance(result, ConditionalCheckFailed) and not result.ok
    assert eng.checksum() == before and len(eng) == 1
    assert eng.get(Key(S("a"), N(1))) == _item("a", 1, v=N(1))


# --- write operations --------------------------------------------------------------


def test_version_checked_conditional_writes() -> None:
    eng = _engine()
    key = Key(S("acct"), N(0))
    create = Put(_item("acct", 0, version=N(1), bal=N(100)), AttributeNotExists("pk"))
    assert eng.apply(create).ok
    assert not eng.apply(create).ok  # second create loses

    def bump(expected: int, bal: int) -> WriteOp:
        return Update(
            key,
            (SetAttr("version", N(expected + 1)), SetAttr("bal", N(bal))),
            Compare("version", "=", N(expected)),
        )

    r = eng.apply(bump(1, 90))
    assert isinstance(r, Applied) and r.old is not None and r.new is not None
    assert r.old["version"] == N(1) and r.new["version"] == N(2)
    stale = eng.apply(bump(1, 50))  # a writer that read version 1 lost the race
    assert isinstance(stale, ConditionalCheckFailed)
    assert stale.current == _item("acct", 0, version=N(2), bal=N(90))
    overwrite = Put(_item("acct", 0, version=N(3), bal=N(0)), Compare("version", "=", N(2)))
    assert eng.apply(overwrite).ok
    assert eng.get(key) == _item("acct", 0, version=N(3), bal=N(0))


def test_put_replaces_whole_item() -> None:
    eng = _engine()
    eng.apply(Put(_item("a", 1, x=N(1), y=N(2))))
    r = eng.apply(Put(_item("a", 1, y=N(3))))
    assert isinstance(r, Applied) and r.old == _item("a", 1, x=N(1), y=N(2))
    assert eng.get(Key(S("a"), N(1))) == _item("a", 1, y=N(3))


def test_delete() -> None:
    eng = _engine()
    key = Key(S("a"), N(1))
    eng.apply(Put(_item("a", 1, v=N(1))))
    eng.apply(Put(_item("a", 2)))
    r = eng.apply(Delete(key, Compare("v", "=", N(1))))
    assert isinstance(r, Applied) and r.old == _item("a", 1, v=N(1)) and r.new is None
    assert eng.get(key) is None and len(eng) == 1
    again = eng.apply(Delete(key))  # deleting an absent item succeeds and changes nothing
    assert isinstance(again, Applied) and again.old is None and len(eng) == 1


def test_update_set_remove_add() -> None:
    eng = _engine()
    key = Key(S("a"), N(1))
    r = eng.apply(Update(key, (SetAttr("x", S("hi")), AddNumber("count", N(2)))))
    assert isinstance(r, Applied) and r.old is None  # upsert created the item
    assert eng.get(key) == _item("a", 1, x=S("hi"), count=N(2))
    eng.apply(Update(key, (RemoveAttr("x"), AddNumber("count", N("-0.5")), RemoveAttr("nope"))))
    assert eng.get(key) == _item("a", 1, count=N("1.5"))


def test_update_invalid_cases_change_nothing() -> None:
    eng = _engine()
    key = Key(S("a"), N(1))
    eng.apply(Put(_item("a", 1, s=S("x"), big=N("9" * 38), huge=N("9E+125"))))
    before = eng.checksum()
    cases: list[tuple[UpdateAction, ...]] = [
        (SetAttr("pk", S("b")),),
        (RemoveAttr("sk"),),
        (SetAttr("v", N(1)), RemoveAttr("v")),
        (SetAttr("ok", N(1)), AddNumber("s", N(1))),
        (AddNumber("big", N("0.1")),),  # would need 39 significant digits
        (AddNumber("huge", N("9E+125")),),  # 1.8E+126 is out of range
    ]
    for actions in cases:
        assert isinstance(eng.apply(Update(key, actions)), Invalid), actions
    assert eng.checksum() == before


def test_invalid_keys() -> None:
    eng = _engine()
    assert isinstance(eng.apply(Put(M(pk=S("a")))), Invalid)  # missing sort key
    assert isinstance(eng.apply(Put(M(pk=N(1), sk=N(1)))), Invalid)  # wrong type
    assert isinstance(eng.apply(Put(M(pk=S(""), sk=N(1)))), Invalid)  # empty string key
    assert isinstance(eng.apply(Delete(Key(S("a")))), Invalid)
    no_sort = StorageEngine(KeySchema("id", "B"))
    assert isinstance(no_sort.apply(Delete(Key(B(b"k"), N(1)))), Invalid)
    assert no_sort.apply(Put(M(id=B(b"k")))).ok
    with pytest.raises(ValueError):
        eng.get(Key(S("a")))
    assert len(eng) == 0


# --- ordering and query --------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(keys=st.lists(st.tuples(st.text(min_size=1, max_size=4), st.integers(-50, 50)),
                     max_size=60))
def test_items_iterate_in_key_order(keys: list[tuple[str, int]]) -> None:
    eng = _engine()
    for pk, sk in keys:
        eng.apply(Put(_item(pk, sk)))
    got = [(i["pk"], i["sk"]) for i in eng.items()]
    expected = sorted(set(keys), key=lambda k: (k[0].encode("utf-8"), k[1]))
    assert got == [(S(pk), N(sk)) for pk, sk in expected]


def test_query_ranges() -> None:
    eng = _engine()
    for pk in ("a", "b", "c"):
        for sk in (5, -3, 10, 0, 7):
            eng.apply(Put(_item(pk, sk)))

    def q(**kw: Any) -> list[int]:
        return [int(cast(N, i["sk"]).value) for i in eng.query(S("b"), **kw)]

    assert q() == [-3, 0, 5, 7, 10]
    assert q(lower=N(0), upper=N(7)) == [0, 5, 7]
    assert q(lower=N(0), upper=N(7), lower_inclusive=False, upper_inclusive=False) == [5]
    assert q(lower=N(6)) == [7, 10]
    assert q(upper=N(0), upper_inclusive=False) == [-3]
    assert q(reverse=True, limit=2) == [10, 7]
    assert q(lower=N(100)) == []
    assert eng.query(S("zz")) == []
    assert all(i["pk"] == S("b") for i in eng.query(S("b")))
    with pytest.raises(ValueError):
        eng.query(S("b"), lower=S("x"))


def test_query_without_sort_key() -> None:
    eng = StorageEngine(KeySchema("id", "N"))
    for i in range(5):
        eng.apply(Put(M(id=N(i), v=N(i * i))))
    assert eng.query(N(3)) == [M(id=N(3), v=N(9))]
    assert [i["id"] for i in eng.items()] == [N(i) for i in range(5)]


# --- values and encoding -----------------------------------------------------------------


def test_number_canonical_form() -> None:
    assert N("1.50") == N("1.5") == N(Decimal("1.500"))
    assert str(N("1E+2").value) == "100" and N("-0.00") == N(0)
    assert str(N("0.1230").value) == "0.123"
    big = "12345678901234567890123456789012345.678"
    assert str(N(big).value) == big  # no rounding to the default 28 digits
    assert encode_op(Put(_item("a", 1, v=N("2.50")))) == encode_op(Put(_item("a", 1, v=N("2.5"))))
    assert str(N(10**40).value) == "1" + "0" * 40  # 1 significant digit
    assert N(Decimal("1E+125")) == N(10**125) and N("1E-130").value == Decimal("1E-130")
    assert str(N("-000123").value) == "-123" and N("-0") == N(0)
    for bad in ("NaN", "Infinity", "abc", "1E+126", "1E-131", "1" * 39, "1." + "1" * 38):
        with pytest.raises(ValueError):
            N(bad)
    with pytest.raises(TypeError):
        N(True)
    with pytest.raises(TypeError):
        N(1.5)  # type: ignore[arg-type]


def test_value_validation() -> None:
    with pytest.raises(ValueError):
        S("\ud800")
    with pytest.raises(ValueError):
        M({"": N(1)})
    with pytest.raises(TypeError):
        M(x=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        L([3])  # type: ignore[list-item]


def test_m_is_an_immutable_sorted_mapping() -> None:
    m = M({"b": N(1)}, a=S("x"))
    assert list(m) == ["a", "b"] and len(m) == 2 and "a" in m and m.get("c") is None
    assert hash(m) == hash(M(a=S("x"), b=N("1.0")))
    assert m != {"a": S("x"), "b": N(1)}
    assert m.with_changes({"c": Null()}, ["a"]) == M(b=N(1), c=Null())
    assert m == M(a=S("x"), b=N(1))  # with_changes did not mutate


_names = st.text(alphabet="abcxyz", min_size=1, max_size=3)
_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=8)
_numbers = st.one_of(
    st.integers(-(10**38) + 1, 10**38 - 1),
    st.decimals(-(10**30), 10**30, allow_nan=False, allow_infinity=False, places=5),
    st.builds(lambda m, e: Decimal(m).scaleb(e), st.integers(-(10**9), 10**9),
              st.integers(-120, 110)),
)
_scalars = st.one_of(
    _text.map(S), _numbers.map(N), st.binary(max_size=8).map(B), st.booleans().map(Bool),
    st.just(Null()),
)
_values: st.SearchStrategy[Value] = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(L),
        st.dictionaries(_names, inner, max_size=3).map(M),
    ),
    max_leaves=8,
)
_keys = st.builds(Key, st.text("pq", min_size=1, max_size=3).map(S), st.integers(0, 9).map(N))
_conditions: st.SearchStrategy[Condition] = st.recursive(
    st.one_of(
        _names.map(AttributeExists),
        _names.map(AttributeNotExists),
        st.builds(Compare, _names, st.sampled_from(["=", "<>"]), _values),
        st.builds(Compare, _names, st.sampled_from(["<", "<=", ">", ">="]),
                  st.one_of(_text.map(S), _numbers.map(N))),
    ),
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(lambda cs: And(*cs)),
        st.lists(inner, min_size=1, max_size=3).map(lambda cs: Or(*cs)),
        inner.map(Not),
    ),
    max_leaves=6,
)
_actions = st.one_of(
    st.builds(SetAttr, _names, _values),
    st.builds(RemoveAttr, _names),
    st.builds(AddNumber, _names, _numbers.map(N)),
)
_items = st.builds(
    lambda key, attrs: M({**attrs, "pk": key.partition, "sk": key.sort}),
    _keys, st.dictionaries(_names, _values, max_size=4),
)
_ops: st.SearchStrategy[WriteOp] = st.one_of(
    st.builds(Put, _items, st.none() | _conditions),
    st.builds(Update, _keys, st.lists(_actions, max_size=4).map(tuple), st.none() | _conditions),
    st.builds(Delete, _keys, st.none() | _conditions),
)


@settings(max_examples=300, deadline=None)
@given(op=_ops)
def test_encode_decode_round_trip(op: WriteOp) -> None:
    data = encode_op(op)
    back = decode_op(data)
    assert back == op
    assert encode_op(back) == data  # canonical: re-encoding is byte-identical


def test_encoding_is_stable_canonical_json() -> None:
    # A golden value: WAL payloads written today must decode tomorrow.
    op = Update(Key(S("a"), N("1.50")), (SetAttr("v", B(b"\x00")), RemoveAttr("w")),
                Not(Compare("v", ">=", N(3))))
    assert encode_op(op) == (
        b'{"actions":[{"set":["v",{"B":"AA=="}]},{"remove":"w"}],'
        b'"cond":{"not":{"cmp":["v",">=",{"N":"3"}]}},'
        b'"key":{"p":{"S":"a"},"s":{"N":"1.5"}},"op":"update"}'
    )
    shuffled = b'{"op":"delete","key":{"s":{"N":"2.0"},"p":{"S":"a"}}}'
    assert encode_op(decode_op(shuffled)) == b'{"key":{"p":{"S":"a"},"s":{"N":"2"}},"op":"delete"}'


@settings(max_examples=30, deadline=None)
@given(ops=st.lists(_ops, max_size=40))
def test_apply_is_deterministic_and_snapshot_round_trips(ops: list[WriteOp]) -> None:
    a, b = _engine(), _engine()
    results_a = [a.apply(op) for op in ops]
    results_b = [b.apply(decode_op(encode_op(op))) for op in ops]  # as a follower would
    assert results_a == results_b
    assert list(a.items()) == list(b.items()) and a.checksum() == b.checksum()
    restored = StorageEngine.from_snapshot(a.snapshot())
    assert list(restored.items()) == list(a.items())
    assert restored.checksum() == a.checksum()


def test_checksum_tracks_content() -> None:
    a, b = _engine(), _engine()
    a.apply(Put(_item("a", 1, v=N(1))))
    b.apply(Put(_item("a", 1, v=N(2))))
    assert a.checksum() != b.checksum()
    b.apply(Put(_item("a", 1, v=N("1.0"))))
    assert a.checksum() == b.checksum()


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[]",
        b'{"op":"put"}',
        b'{"op":"explode","key":{"p":{"S":"a"}}}',
        b'{"op":"delete","key":{"p":{"S":"a"}},"extra":1}',
        b'{"op":"delete","key":{"p":{"BOOL":true}}}',
        b'{"op":"delete","key":{"p":{"S":"a"}},"cond":{"cmp":["a","<",{"BOOL":true}]}}',
        b'{"op":"delete","key":{"p":{"S":"a"}},"cond":{"and":[]}}',
        b'{"op":"put","item":{"pk":{"N":"NaN"}}}',
        b'{"op":"put","item":{"pk":{"B":"!!"}}}',
        b'{"op":"put","item":{"pk":{"S":"a","N":"1"}}}',
        b'{"op":"update","key":{"p":{"S":"a"}},"actions":[{"add":["x",{"S":"1"}]}]}',
        b'{"op":"update","key":{"p":{"S":"a"}},"actions":{}}',
    ],
)
def test_decode_rejects_malformed(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_op(data)


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from(
        ["", "a", "S", "N", "B", "M", "L", "1", "put", "update", "delete", "set", "<", "="]
    ),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(
        st.sampled_from(["op", "item", "key", "actions", "cond", "p", "s", "S", "N", "B", "L",
                         "M", "BOOL", "NULL", "set", "remove", "add", "cmp", "and", "not", "a"]),
        inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(obj=_json)
def test_decode_of_arbitrary_json_fails_only_with_decode_error(obj: Any) -> None:
    try:
        op = decode_op(orjson.dumps(obj))
    except DecodeError:
        return
    assert decode_op(encode_op(op)) == op
