"""The storage engine state machine: what a storage replica's B-tree holds.

Items live in a ``SortedDict`` keyed by primary key ``(partition key, sort key)``
in value order (strings by code point, which equals UTF-8 byte order; numbers
numerically; binary bytewise). One engine holds one partition's key range, so
partition keys are ordered by value rather than by hash.

Values are small immutable types named after DynamoDB's type descriptors:
``S`` string, ``N`` number (exact ``Decimal`` within DynamoDB's 38 digits and
1E-130..1E+126, canonicalised so equal numbers have one representation), ``B``
binary, ``Bool``, ``Null``, ``L`` list and ``M`` map. ``M`` is also the item type.

Write operations (``Put``, ``Update``, ``Delete``) are frozen data with a
canonical JSON encoding (``encode_op``/``decode_op``), so they can be WAL payloads
and replicated log entries; ``StorageEngine.apply`` is deterministic and either
applies the whole operation or changes nothing.

Condition semantics (top-level attribute names only):

* an absent item has no attributes;
* ``=`` needs the attribute to exist with an equal value of the same type;
  ``<>`` is its negation (so it holds for a missing attribute);
* ``<``, ``<=``, ``>``, ``>=`` are defined on S, N and B; they are false when the
  attribute is missing or of a different type.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Context, Decimal, Inexact, InvalidOperation, Overflow, Underflow
from itertools import islice
from typing import Any, ClassVar, Literal, TypeAlias, cast, get_args

import google_crc32c
import orjson
from sortedcontainers import SortedDict

# --- attribute values ----------------------------------------------------------


def _check_utf8(text: str, what: str) -> None:
    # Lone surrogates cannot be encoded, and everything must survive encode_op.
    if text.isascii():  # O(1) in CPython: the common case needs no encoding
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{what} is not valid UTF-8 text") from exc


@dataclass(frozen=True, slots=True)
class S:
    value: str

    def __post_init__(self) -> None:
        value = self.value
        if type(value) is str and value.isascii():
            return
        if not isinstance(value, str):
            raise TypeError("S holds a str")
        _check_utf8(value, "S value")


_MAX_DIGITS = 38  # DynamoDB: 38 significant digits, magnitude 1E-130 .. <1E+126
_ZERO = Decimal(0)
_INT_LIMIT = 10**_MAX_DIGITS


def _canonical_number(value: int | Decimal | str) -> Decimal:
    """One Decimal per numeric value: no trailing fractional zeros, integers without
    exponent, no negative zero; out-of-range or over-precise numbers are rejected."""
    # Fast paths: small ints and plain integer strings are already canonical.
    if type(value) is int and -_INT_LIMIT < value < _INT_LIMIT:
        return Decimal(value)
    if type(value) is str:
        body = value[1:] if value[:1] == "-" else value
        if 0 < len(body) <= _MAX_DIGITS and body.isascii() and body.isdigit():
            return Decimal(int(value))
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise TypeError(f"N takes int, Decimal or str, not {type(value).__name__}")
    try:
        d = Decimal(value)
    except ArithmeticError as exc:
        raise ValueError(f"not a number: {value!r}") from exc
    if not d.is_finite():
        raise ValueError("N must be finite")
    sign, digits, exp = d.as_tuple()
    assert isinstance(exp, int)
    # Strip trailing zeros by hand: Decimal.normalize would round to the context precision.
    end = len(digits)
    while end > 1 and digits[end - 1] == 0:
        end -= 1
    exp += len(digits) - end
    digits = digits[:end]
    if digits == (0,):
        return _ZERO
    if len(digits) > _MAX_DIGITS:
        raise ValueError(f"N has more than {_MAX_DIGITS} significant digits: {value!r}")
    if not -130 <= exp + len(digits) - 1 <= 125:
        raise ValueError(f"N out of range: {value!r}")
    if exp > 0:  # an integer: spell out its zeros so it prints without an exponent
        return Decimal((sign, digits + (0,) * exp, 0))
    return Decimal((sign, digits, exp))


# Arithmetic (AddNumber) uses this fixed context, never the thread's global one, so
# results cannot depend on ambient settings; 38 digits is DynamoDB's precision.
_ARITH = Context(prec=38, traps=[Inexact, InvalidOperation, Overflow, Underflow])


@dataclass(frozen=True, slots=True, init=False)
class N:
    """A number, stored as an exact canonical Decimal (1.50 and 1.5 are the same N)."""

    value: Decimal

    def __init__(self, value: int | Decimal | str) -> None:
        object.__setattr__(self, "value", _canonical_number(value))


@dataclass(frozen=True, slots=True)
class B:
    value: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.value, bytes):
            raise TypeError("B holds bytes")


@dataclass(frozen=True, slots=True)
class Bool:
    value: bool

    def __post_init__(self) -> None:
        if not isinstance(self.value, bool):
            raise TypeError("Bool holds a bool")


@dataclass(frozen=True, slots=True)
class Null:
    pass


@dataclass(frozen=True, slots=True, init=False)
class L:
    items: tuple[Value, ...]

    def __init__(self, items: Iterable[Value] = ()) -> None:
        items = tuple(items)
        for v in items:
            if not isinstance(v, _VALUE_TYPES):
                raise TypeError(f"L element {v!r} is not a Value")
        object.__setattr__(self, "items", items)


class M(Mapping[str, "Value"]):
    """Immutable, hashable map from attribute name to Value; iterates in name order.

    Used both for map-typed attributes and for whole items.
    """

    __slots__ = ("_d", "_hash", "_wire")

    def __init__(self, entries: Mapping[str, Value] | None = None, /, **kw: Value) -> None:
        merged = {**(entries or {}), **kw}
        for name, v in merged.items():
            if (type(name) is not str and not isinstance(name, str)) or not name:
                raise ValueError(f"attribute name must be a non-empty str, got {name!r}")
            if not name.isascii():
                _check_utf8(name, "attribute name")
            if type(v) not in _VALUE_TYPE_SET and not isinstance(v, _VALUE_TYPES):
                raise TypeError(f"attribute {name!r}: {v!r} is not a Value")
        self._d: dict[str, Value] = dict(sorted(merged.items()))
        self._hash: int | None = None
        self._wire: bytes | None = None
        """``item_to_json``'s JSON bytes, once asked for (the map is immutable)."""

    def __getitem__(self, name: str) -> Value:
        return self._d[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __contains__(self, name: object) -> bool:
        return name in self._d

    def __eq__(self, other: object) -> bool:
        if isinstance(other, M):
            return self._d == other._d
        return NotImplemented

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(tuple(self._d.items()))
        return self._hash

    def __repr__(self) -> str:
        return f"M({self._d!r})"

    def with_changes(self, set_: Mapping[str, Value], remove: Iterable[str] = ()) -> M:
        d = dict(self._d)
        for name in remove:
            d.pop(name, None)
        d.update(set_)
        return M(d)


Value: TypeAlias = S | N | B | Bool | Null | L | M
KeyValue: TypeAlias = S | N | B
_VALUE_TYPES = (S, N, B, Bool, Null, L, M)
_VALUE_TYPE_SET = frozenset(_VALUE_TYPES)
Item: TypeAlias = M

# --- keys and schema -------------------------------------------------------------

KeyType = Literal["S", "N", "B"]
_KEY_CLASSES: dict[str, type[KeyValue]] = {"S": S, "N": N, "B": B}
_RawKey = str | Decimal | bytes


@dataclass(frozen=True, slots=True)
class Key:
    partition: KeyValue
    sort: KeyValue | None = None


@dataclass(frozen=True, slots=True)
class KeySchema:
    partition_name: str
    partition_type: KeyType = "S"
    sort_name: str | None = None
    sort_type: KeyType | None = None

    def __post_init__(self) -> None:
        if (self.sort_name is None) != (self.sort_type is None):
            raise ValueError("sort_name and sort_type go together")
        for t in (self.partition_type, self.sort_type):
            if t is not None and t not in _KEY_CLASSES:
                raise ValueError(f"key type must be S, N or B, not {t!r}")

    def key_of(self, item: M) -> Key:
        """The primary key of ``item`` (raises KeyError if a key attribute is missing)."""
        pk = item[self.partition_name]
        sk = item[self.sort_name] if self.sort_name is not None else None
        return Key(cast(KeyValue, pk), cast(KeyValue | None, sk))

    def key_error(self, key: Key) -> str | None:
        """Why ``key`` does not fit this schema, or None if it does."""
        err = _key_part_error(self.partition_name, self.partition_type, key.partition)
        if err:
            return err
        if self.sort_type is None:
            return None if key.sort is None else "table has no sort key"
        return _key_part_error(cast(str, self.sort_name), self.sort_type, key.sort)

    def to_json(self) -> dict[str, Any]:
        return {"pk": [self.partition_name, self.partition_type],
                "sk": None if self.sort_name is None else [self.sort_name, self.sort_type]}

    @staticmethod
    def from_json(obj: Any) -> KeySchema:
        try:
            pk, sk = obj["pk"], obj["sk"]
            return KeySchema(pk[0], pk[1], *(sk if sk is not None else (None, None)))
        except (KeyError, TypeError, IndexError, ValueError) as exc:
            raise DecodeError(f"bad key schema: {obj!r}") from exc


def _key_part_error(name: str, type_: str, value: Value | None) -> str | None:
    if value is None:
        return f"missing key attribute {name!r}"
    if not isinstance(value, _KEY_CLASSES[type_]):
        return f"key attribute {name!r} must be of type {type_}"
    if isinstance(value, S | B) and not value.value:
        return f"key attribute {name!r} must not be empty"
    return None


def _raw(key: Key) -> tuple[_RawKey, _RawKey | None]:
    return (key.partition.value, None if key.sort is None else key.sort.value)


class _Top:
    """Sorts after every raw sort-key value; closes an open-ended range scan."""

    __slots__ = ()

    def __lt__(self, other: object) -> bool:
        return False

    def __gt__(self, other: object) -> bool:
        return other is not self


_TOP = _Top()

# --- conditions ------------------------------------------------------------------

CompareOp = Literal["=", "<>", "<", "<=", ">", ">="]
_COMPARE_OPS = frozenset(get_args(CompareOp))
_ORDERED_OPS = frozenset(("<", "<=", ">", ">="))


@dataclass(frozen=True, slots=True)
class AttributeExists:
    name: str


@dataclass(frozen=True, slots=True)
class AttributeNotExists:
    name: str


@dataclass(frozen=True, slots=True)
class Compare:
    name: str
    op: CompareOp
    value: Value

    def __post_init__(self) -> None:
        if self.op not in _COMPARE_OPS:
            raise ValueError(f"unknown comparison {self.op!r}")
        if self.op in _ORDERED_OPS and not isinstance(self.value, S | N | B):
            raise ValueError(f"{self.op} compares only S, N or B values")


@dataclass(frozen=True, slots=True, init=False)
class And:
    conditions: tuple[Condition, ...]

    def __init__(self, *conditions: Condition) -> None:
        if not conditions:
            raise ValueError("And needs at least one condition")
        object.__setattr__(self, "conditions", conditions)


@dataclass(frozen=True, slots=True, init=False)
class Or:
    conditions: tuple[Condition, ...]

    def __init__(self, *conditions: Condition) -> None:
        if not conditions:
            raise ValueError("Or needs at least one condition")
        object.__setattr__(self, "conditions", conditions)


@dataclass(frozen=True, slots=True)
class Not:
    condition: Condition


Condition: TypeAlias = AttributeExists | AttributeNotExists | Compare | And | Or | Not


def evaluate(cond: Condition, item: M | None) -> bool:
    """Evaluate ``cond`` against ``item`` (None: the item does not exist)."""
    match cond:
        case AttributeExists(name):
            return item is not None and name in item
        case AttributeNotExists(name):
            return item is None or name not in item
        case Compare(name, op, value):
            current = item.get(name) if item is not None else None
            if op == "=":
                return current == value
            if op == "<>":
                return current != value
            if type(current) is not type(value):
                return False
            a, b = cast(KeyValue, current).value, cast(KeyValue, value).value
            if op == "<":
                return a < b  # type: ignore[operator]  # same S/N/B type checked above
            if op == "<=":
                return a <= b  # type: ignore[operator]
            if op == ">":
                return a > b  # type: ignore[operator]
            return a >= b  # type: ignore[operator]
        case And(conditions):
            return all(evaluate(c, item) for c in conditions)
        case Or(conditions):
            return any(evaluate(c, item) for c in conditions)
        case Not(inner):
            return not evaluate(inner, item)
    raise TypeError(f"not a condition: {cond!r}")


# --- write operations ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetAttr:
    name: str
    value: Value


@dataclass(frozen=True, slots=True)
class RemoveAttr:
    name: str


@dataclass(frozen=True, slots=True)
class AddNumber:
    """``name = name + delta``; a missing attribute counts as 0 (DynamoDB's ADD)."""

    name: str
    delta: N


UpdateAction: TypeAlias = SetAttr | RemoveAttr | AddNumber


@dataclass(frozen=True, slots=True)
class Put:
    item: M
    condition: Condition | None = None


@dataclass(frozen=True, slots=True)
class Update:
    """Modify attributes of the item at ``key``, creating it if absent (an upsert)."""

    key: Key
    actions: tuple[UpdateAction, ...]
    condition: Condition | None = None


@dataclass(frozen=True, slots=True)
class Delete:
    key: Key
    condition: Condition | None = None


WriteOp: TypeAlias = Put | Update | Delete


@dataclass(frozen=True, slots=True)
class Applied:
    old: M | None
    """The item before the write (None if it did not exist)."""
    new: M | None
    """The item after the write (None if it no longer exists)."""
    ok: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class ConditionalCheckFailed:
    current: M | None
    ok: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class Invalid:
    """The operation is malformed for this table or item; nothing changed."""

    reason: str
    ok: ClassVar[bool] = False


Result: TypeAlias = Applied | ConditionalCheckFailed | Invalid

# --- the engine ----------------------------------------------------------------


class StorageEngine:
    """Ordered item store; ``apply`` is the replicated state machine's transition."""

    __slots__ = ("_items", "schema")

    def __init__(self, schema: KeySchema) -> None:
        self.schema = schema
        self._items: SortedDict = SortedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Key) -> M | None:
        err = self.schema.key_error(key)
        if err:
            raise ValueError(err)
        item: M | None = self._items.get(_raw(key))
        return item

    def items(self) -> Iterator[M]:
        """All items in primary-key order."""
        return iter(self._items.values())

    def query(
        self,
        partition: KeyValue,
        *,
        lower: KeyValue | None = None,
        upper: KeyValue | None = None,
        lower_inclusive: bool = True,
        upper_inclusive: bool = True,
        reverse: bool = False,
        limit: int | None = None,
    ) -> list[M]:
        """Items with this partition key and sort key within [lower, upper], in sort order."""
        err = _key_part_error(self.schema.partition_name, self.schema.partition_type, partition)
        if err:
            raise ValueError(err)
        for bound in (lower, upper):
            if bound is not None and (
                self.schema.sort_type is None
                or not isinstance(bound, _KEY_CLASSES[self.schema.sort_type])
            ):
                raise ValueError("sort-key bounds must match the table's sort key type")
        pk = partition.value
        lo = (pk,) if lower is None else (pk, lower.value)
        hi = (pk, _TOP) if upper is None else (pk, upper.value)
        keys = self._items.irange(
            lo, hi, inclusive=(lower_inclusive or lower is None, upper_inclusive), reverse=reverse
        )
        return [self._items[k] for k in islice(keys, limit)]

    def install(self, key: Key, item: M | None) -> None:
        """Store ``item`` at ``key`` (None: remove it) without a write's checks: for a
        caller that already knows the item is valid at that key (the history checker
        sets a key's state before asking the engine for a write's answer)."""
        if item is None:
            self._items.pop(_raw(key), None)
        else:
            self._items[_raw(key)] = item

    def apply(self, op: WriteOp) -> Result:
        """Apply one write. Deterministic; on any non-Applied result nothing changes."""
        schema = self.schema
        if isinstance(op, Put):
            if not isinstance(op.item, M):
                return Invalid("Put.item must be an M")
            for name in filter(None, (schema.partition_name, schema.sort_name)):
                if name not in op.item:
                    return Invalid(f"item is missing key attribute {name!r}")
            key = schema.key_of(op.item)
        elif isinstance(op, Update | Delete):
            key = op.key
        else:
            return Invalid(f"not a write operation: {type(op).__name__}")
        err = schema.key_error(key)
        if err:
            return Invalid(err)
        raw = _raw(key)
        old: M | None = self._items.get(raw)
        if op.condition is not None and not evaluate(op.condition, old):
            return ConditionalCheckFailed(old)
        if isinstance(op, Put):
            self._items[raw] = op.item
            return Applied(old, op.item)
        if isinstance(op, Delete):
            if old is not None:
                del self._items[raw]
            return Applied(old, None)
        new = self._updated(key, old, op.actions)
        if isinstance(new, Invalid):
            return new
        self._items[raw] = new
        return Applied(old, new)

    def _updated(self, key: Key, old: M | None, actions: tuple[UpdateAction, ...]) -> M | Invalid:
        schema = self.schema
        key_names = {schema.partition_name, schema.sort_name}
        base = old if old is not None else _key_item(schema, key)
        sets: dict[str, Value] = {}
        removes: list[str] = []
        touched: set[str] = set()
        for action in actions:
            name = action.name
            if name in key_names:
                return Invalid(f"cannot update key attribute {name!r}")
            if name in touched:
                return Invalid(f"two actions on attribute {name!r}")
            touched.add(name)
            if isinstance(action, SetAttr):
                sets[name] = action.value
            elif isinstance(action, RemoveAttr):
                removes.append(name)
            elif isinstance(action, AddNumber):
                current = base.get(name, N(0))
                if not isinstance(current, N):
                    return Invalid(f"ADD on non-number attribute {name!r}")
                try:
                    sets[name] = N(_ARITH.add(current.value, action.delta.value))
                except (ArithmeticError, ValueError):
                    return Invalid(f"ADD on {name!r} leaves DynamoDB's number range")
            else:
                return Invalid(f"unknown update action {action!r}")
        try:
            return base.with_changes(sets, removes)
        except (TypeError, ValueError) as exc:
            return Invalid(str(exc))

    def checksum(self) -> int:
        """CRC32C over the canonical encoding of all items in key order.

        Equal item sets give equal checksums, so replicas can be compared cheaply
        (the scrub process of paper §5.3).
        """
        crc = 0
        for item in self._items.values():
            crc = google_crc32c.extend(crc, _dumps(item_to_json(item)))  # self-delimiting
        return int(crc)

    def snapshot(self) -> bytes:
        return _dumps(
            {"schema": self.schema.to_json(), "items": [item_to_json(i) for i in self.items()]}
        )

    @classmethod
    def from_snapshot(cls, data: bytes) -> StorageEngine:
        obj = _loads(data)
        if not isinstance(obj, dict) or not isinstance(obj.get("items"), list):
            raise DecodeError("bad snapshot")
        engine = cls(KeySchema.from_json(obj.get("schema")))
        for raw_item in obj["items"]:
            result = engine.apply(Put(item_from_json(raw_item)))
            if not isinstance(result, Applied):
                raise DecodeError(f"bad snapshot item: {result}")
        return engine


def _key_item(schema: KeySchema, key: Key) -> M:
    attrs: dict[str, Value] = {schema.partition_name: key.partition}
    if schema.sort_name is not None and key.sort is not None:
        attrs[schema.sort_name] = key.sort
    return M(attrs)


# --- canonical encoding ----------------------------------------------------------


class DecodeError(ValueError):
    pass


def _dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def _loads(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(str(exc)) from exc


def value_to_json(v: Value) -> dict[str, Any]:
    """DynamoDB-JSON-like form: {"S": "x"}, {"N": "1.5"}, {"B": base64}, ..."""
    t = type(v)  # the common scalars without the class patterns' isinstance calls
    if t is S:
        return {"S": v.value}  # type: ignore[union-attr]
    if t is N:
        return {"N": str(v.value)}  # type: ignore[union-attr]
    match v:
        case S(s):
            return {"S": s}
        case N(d):
            return {"N": str(d)}
        case B(b):
            return {"B": base64.b64encode(b).decode("ascii")}
        case Bool(b):
            return {"BOOL": b}
        case Null():
            return {"NULL": True}
        case L(items):
            return {"L": [value_to_json(x) for x in items]}
        case M():
            return {"M": item_to_json(v)}
    raise TypeError(f"not a Value: {v!r}")


def _n_from_json(x: Any) -> N:
    if not isinstance(x, str):
        raise TypeError("N is encoded as a string")
    return N(x)


def _b_from_json(x: Any) -> B:
    if not isinstance(x, str):
        raise TypeError("B is encoded as a base64 string")
    return B(base64.b64decode(x, validate=True))


def _null_from_json(x: Any) -> Null:
    if x is not True:
        raise TypeError("NULL is encoded as true")
    return Null()


def _l_from_json(x: Any) -> L:
    if not isinstance(x, list):
        raise TypeError("L is encoded as a list")
    return L(value_from_json(e) for e in x)


_VALUE_DECODERS: dict[str, Callable[[Any], Value]] = {
    "S": S, "N": _n_from_json, "B": _b_from_json, "BOOL": Bool, "NULL": _null_from_json,
    "L": _l_from_json, "M": lambda x: item_from_json(x),
}


def value_from_json(obj: Any) -> Value:
    if type(obj) is not dict or len(obj) != 1:
        raise DecodeError(f"bad value: {obj!r}")
    ((tag, x),) = obj.items()
    if tag == "S" and type(x) is str:
        return S(x)  # the common case, without the generic dispatch
    decode = _VALUE_DECODERS.get(tag)
    if decode is None:
        raise DecodeError(f"bad value: {obj!r}")
    try:
        return decode(x)
    except DecodeError:
        raise
    except (ValueError, TypeError) as exc:
        raise DecodeError(f"bad {tag} value: {x!r}") from exc


def item_to_json(item: M) -> dict[str, Any]:
    return {name: value_to_json(v) for name, v in item._d.items()}


def item_json_bytes(item: M) -> bytes:
    """``item_to_json(item)`` as JSON bytes (names in order), computed once per item:
    a stored item is sent in many replies."""
    wire = item._wire
    if wire is None:
        wire = item._wire = orjson.dumps(item_to_json(item))
    return wire


def item_from_json(obj: Any) -> M:
    if not isinstance(obj, dict):
        raise DecodeError(f"bad item: {obj!r}")
    try:
        return M({name: value_from_json(v) for name, v in obj.items()})
    except (ValueError, TypeError) as exc:
        raise DecodeError(str(exc)) from exc


def _key_to_json(key: Key) -> dict[str, Any]:
    out = {"p": value_to_json(key.partition)}
    if key.sort is not None:
        out["s"] = value_to_json(key.sort)
    return out


def _key_part_from_json(obj: Any) -> KeyValue:
    v = value_from_json(obj)
    if not isinstance(v, S | N | B):
        raise DecodeError(f"key values are S, N or B, not {obj!r}")
    return v


def _key_from_json(obj: Any) -> Key:
    if not isinstance(obj, dict) or "p" not in obj or not set(obj) <= {"p", "s"}:
        raise DecodeError(f"bad key: {obj!r}")
    sort = _key_part_from_json(obj["s"]) if "s" in obj else None
    return Key(_key_part_from_json(obj["p"]), sort)


def condition_to_json(c: Condition) -> dict[str, Any]:
    match c:
        case AttributeExists(name):
            return {"exists": name}
        case AttributeNotExists(name):
            return {"not_exists": name}
        case Compare(name, op, value):
            return {"cmp": [name, op, value_to_json(value)]}
        case And(conds):
            return {"and": [condition_to_json(x) for x in conds]}
        case Or(conds):
            return {"or": [condition_to_json(x) for x in conds]}
        case Not(inner):
            return {"not": condition_to_json(inner)}
    raise TypeError(f"not a condition: {c!r}")


def condition_from_json(obj: Any) -> Condition:
    if not isinstance(obj, dict) or len(obj) != 1:
        raise DecodeError(f"bad condition: {obj!r}")
    ((tag, x),) = obj.items()
    try:
        if tag == "exists" and isinstance(x, str):
            return AttributeExists(x)
        if tag == "not_exists" and isinstance(x, str):
            return AttributeNotExists(x)
        if tag == "cmp" and isinstance(x, list) and len(x) == 3 and isinstance(x[0], str):
            return Compare(x[0], x[1], value_from_json(x[2]))
        if tag in ("and", "or") and isinstance(x, list) and x:
            parts = [condition_from_json(e) for e in x]
            return And(*parts) if tag == "and" else Or(*parts)
        if tag == "not":
            return Not(condition_from_json(x))
    except (ValueError, TypeError) as exc:
        raise DecodeError(f"bad condition: {obj!r}") from exc
    raise DecodeError(f"bad condition: {obj!r}")


def _action_to_json(a: UpdateAction) -> dict[str, Any]:
    match a:
        case SetAttr(name, value):
            return {"set": [name, value_to_json(value)]}
        case RemoveAttr(name):
            return {"remove": name}
        case AddNumber(name, delta):
            return {"add": [name, value_to_json(delta)]}
    raise TypeError(f"not an update action: {a!r}")


def _action_from_json(obj: Any) -> UpdateAction:
    if isinstance(obj, dict) and len(obj) == 1:
        ((tag, x),) = obj.items()
        if tag == "remove" and isinstance(x, str):
            return RemoveAttr(x)
        if tag in ("set", "add") and isinstance(x, list) and len(x) == 2 and isinstance(x[0], str):
            value = value_from_json(x[1])
            if tag == "set":
                return SetAttr(x[0], value)
            if isinstance(value, N):
                return AddNumber(x[0], value)
    raise DecodeError(f"bad update action: {obj!r}")


def encode_op(op: WriteOp) -> bytes:
    """Canonical bytes for ``op``: equal operations encode identically."""
    out: dict[str, Any]
    if isinstance(op, Put):
        out = {"op": "put", "item": item_to_json(op.item)}
    elif isinstance(op, Update):
        out = {"op": "update", "key": _key_to_json(op.key),
               "actions": [_action_to_json(a) for a in op.actions]}
    elif isinstance(op, Delete):
        out = {"op": "delete", "key": _key_to_json(op.key)}
    else:
        raise TypeError(f"not a write operation: {op!r}")
    if op.condition is not None:
        out["cond"] = condition_to_json(op.condition)
    return _dumps(out)


_OP_FIELDS = {"put": {"item"}, "update": {"key", "actions"}, "delete": {"key"}}


def decode_op(data: bytes) -> WriteOp:
    obj = _loads(data)
    if not isinstance(obj, dict):
        raise DecodeError("operation must be a JSON object")
    kind = obj.get("op")
    allowed = _OP_FIELDS.get(kind) if isinstance(kind, str) else None
    if allowed is None or set(obj) - {"op", "cond"} != allowed:
        raise DecodeError(f"bad operation fields: {sorted(obj)}")
    cond = condition_from_json(obj["cond"]) if "cond" in obj else None
    if kind == "put":
        return Put(item_from_json(obj["item"]), cond)
    key = _key_from_json(obj["key"])
    if kind == "delete":
        return Delete(key, cond)
    actions = obj["actions"]
    if not isinstance(actions, list):
        raise DecodeError("actions must be a list")
    return Update(key, tuple(_action_from_json(a) for a in actions), cond)


def key_to_json(key: Key) -> dict[str, Any]:
    """``{"p": <value>, "s": <value>}`` (``s`` only with a sort key)."""
    return _key_to_json(key)


def key_from_json(obj: Any) -> Key:
    return _key_from_json(obj)
