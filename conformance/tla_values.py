"""Parse TLA+ values as TLC prints them (in traces and state dumps) into Python values.

Mapping of TLC's printed forms:

    42, -1                      -> int
    "a \\"b\\""                 -> str (escapes decoded)
    TRUE / FALSE                -> bool
    r1                          -> ModelValue("r1")
    <<1, 2>>, <<>>, << >>       -> tuple (TLC prints every 1..n-domain function this way,
                                   and the empty function as ``<< >>``)
    {1, 2}                      -> frozenset
    1..3                        -> frozenset({1, 2, 3}) (TLC prints intervals lazily)
    [a |-> 1, b |-> 2]          -> Record
    (r1 :> 1 @@ r2 :> 2)        -> TLAFunction

Values are hashable all the way down, so they can be set members and function keys.
The parser is a regex tokenizer plus recursive descent; it is linear in the input.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

__all__ = [
    "ModelValue",
    "Record",
    "TLAFunction",
    "TLAParseError",
    "parse_state",
    "parse_value",
]


class TLAParseError(ValueError):
    """Malformed TLA+ value text. ``pos`` is the 0-based offset; line/column are 1-based."""

    def __init__(self, message: str, text: str, pos: int) -> None:
        self.pos = pos
        self.line = text.count("\n", 0, pos) + 1
        self.column = pos - (text.rfind("\n", 0, pos) + 1) + 1
        snippet = text[pos : pos + 30].split("\n", 1)[0]
        super().__init__(
            f"{message} at line {self.line}, column {self.column} (offset {pos}): {snippet!r}"
        )


@dataclass(frozen=True, slots=True)
class ModelValue:
    """A TLC model value (an uninterpreted constant such as ``r1``)."""

    name: str

    def __str__(self) -> str:
        return self.name


class _FrozenMapping(Mapping[Any, Any]):
    """Immutable, hashable mapping. Equality is by contents, as for TLA+ functions."""

    __slots__ = ("_hash", "_items")
    _items: dict[Any, Any]
    _hash: int | None

    def __init__(self, items: Mapping[Any, Any] | None = None, /, **kwargs: Any) -> None:
        data: dict[Any, Any] = dict(items or {})
        data.update(kwargs)
        object.__setattr__(self, "_items", data)
        object.__setattr__(self, "_hash", None)

    def __getitem__(self, key: Any) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        if self._hash is None:
            object.__setattr__(self, "_hash", hash(frozenset(self._items.items())))
        assert self._hash is not None
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _FrozenMapping):
            return bool(self._items == other._items)
        return bool(super().__eq__(other))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._items!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuild through __init__: copy/pickle cannot set slots on an immutable object.
        return (type(self), (self._items,))


class Record(_FrozenMapping):
    """A TLA+ record: string keys, accessible as ``rec["f"]`` or ``rec.f``.

    Fields named like Mapping methods (``keys``, ``items``, ``get``, ...) need ``rec["f"]``.
    """

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails, so slots/methods still win.
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._items[name]
        except KeyError:
            raise AttributeError(name) from None


class TLAFunction(_FrozenMapping):
    """A TLA+ function with arbitrary hashable keys, printed by TLC as ``(k :> v @@ ...)``."""

    __slots__ = ()


# One alternative per token kind; ``\S`` last catches stray characters (and a lone ``"``
# of an unterminated string) so that they fail in the parser with a position.
_TOKEN_RE = re.compile(
    r"""
    "(?:[^"\\]|\\.)*"                  # string
    |[0-9]*[A-Za-z_][A-Za-z0-9_]*          # identifier (TLA+ allows a leading digit)
    |-?[0-9]+                              # integer
    |<<|>>|\|->|:>|@@|\.\.|/\\|[{}\[\](),=]  # punctuation
    |\S
    """,
    re.VERBOSE | re.DOTALL,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", '"': '"', "\\": "\\"}
_ESCAPE_RE = re.compile(r"\\(.)", re.DOTALL)
_EOF = ""  # sentinel token


_IDENT_START = frozenset(string.ascii_letters + string.digits + "_")


def _is_ident(token: str) -> bool:
    # Tokens starting with a letter, digit or underscore are identifiers or integers.
    return token[:1] in _IDENT_START and not token.isdigit()


class _Parser:
    """Recursive descent over plain token strings.

    Tokens are bare strings from one ``findall`` (fast for megabyte states); offsets are
    only recomputed when reporting an error.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[str] = _TOKEN_RE.findall(text)
        self.tokens.append(_EOF)
        self.i = 0

    def fail(self, message: str) -> NoReturn:
        token = self.tokens[self.i]
        if token == '"':
            message = "unterminated string"
        found = "end of input" if token == _EOF else repr(token)
        offsets = [m.start() for m in _TOKEN_RE.finditer(self.text)] + [len(self.text)]
        raise TLAParseError(f"{message}, found {found}", self.text, offsets[self.i])

    def peek(self) -> str:
        return self.tokens[self.i]

    def expect(self, token: str) -> None:
        if self.tokens[self.i] != token:
            self.fail(f"expected {token!r}")
        self.i += 1

    def ident(self) -> str:
        token = self.tokens[self.i]
        if not _is_ident(token):
            self.fail("expected an identifier")
        self.i += 1
        return token

    def at_end(self) -> None:
        if self.tokens[self.i] != _EOF:
            self.fail("expected end of value")

    def value(self) -> Any:
        token = self.tokens[self.i]
        if token == "<<":
            self.i += 1
            return tuple(self.items(">>", self.value))
        if token == "{":
            self.i += 1
            return frozenset(self.items("}", self.value))
        if token == "[":
            self.i += 1
            return Record(dict(self.items("]", self.field)))
        if token == "(":
            return self.function()
        first = token[:1]
        if first == '"' and len(token) > 1:
            self.i += 1
            return _ESCAPE_RE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(1)), token[1:-1])
        if token.isdigit() or (first == "-" and token[1:].isdigit()):
            self.i += 1
            if self.tokens[self.i] == "..":
                self.i += 1
                low, high = int(token), self.integer()
                return frozenset(range(low, high + 1))
            return int(token)
        if _is_ident(token):
            self.i += 1
            if token == "TRUE":
                return True
            if token == "FALSE":
                return False
            return ModelValue(token)
        self.fail("expected a value")

    def integer(self) -> int:
        token = self.tokens[self.i]
        if not (token.isdigit() or (token[:1] == "-" and token[1:].isdigit())):
            self.fail("expected an integer")
        self.i += 1
        return int(token)

    def items(self, close: str, item: Callable[[], Any]) -> list[Any]:
        """Comma-separated ``item``s up to ``close`` (the opener is already consumed)."""
        out: list[Any] = []
        tokens = self.tokens
        if tokens[self.i] == close:
            self.i += 1
            return out
        while True:
            out.append(item())
            token = tokens[self.i]
            if token == ",":
                self.i += 1
            elif token == close:
                self.i += 1
                return out
            else:
                self.fail(f"expected ',' or {close!r}")

    def field(self) -> tuple[str, Any]:
        name = self.ident()
        self.expect("|->")
        return name, self.value()

    def function(self) -> Any:
        self.expect("(")
        first = self.value()
        if self.peek() == ")":  # plain parenthesised value
            self.i += 1
            return first
        pairs: dict[Any, Any] = {}
        key = first
        while True:
            self.expect(":>")
            pairs[key] = self.value()
            if self.peek() == ")":
                self.i += 1
                return TLAFunction(pairs)
            self.expect("@@")
            key = self.value()


def parse_value(text: str) -> Any:
    """Parse one TLA+ value as TLC prints it. Raises TLAParseError on malformed input."""
    parser = _Parser(text)
    result = parser.value()
    parser.at_end()
    return result


def parse_state(text: str) -> dict[str, Any]:
    """Parse a TLC state: ``/\\ x = v`` conjuncts, or a bare ``x = v`` for one variable.

    Blank input (a spec with no variables) gives an empty dict.
    """
    parser = _Parser(text)
    state: dict[str, Any] = {}
    if parser.peek() == _EOF:
        return state
    conjunction = parser.peek() == "/\\"
    while True:
        if conjunction:
            parser.expect("/\\")
        name = parser.ident()
        if name in state:
            parser.i -= 1
            parser.fail(f"duplicate variable {name!r}")
        parser.expect("=")
        state[name] = parser.value()
        if not conjunction or parser.peek() == _EOF:
            break
    parser.at_end()
    return state
