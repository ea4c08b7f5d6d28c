"""A small EDN reader: the subset Jepsen histories use.

Maps, vectors, lists, sets, keywords, symbols, strings, integers, floats, ``nil``,
``true``/``false``, comments (``;``) and ``#_`` discards; tagged literals (``#inst
"..."``) read as their value. Keywords read as ``Keyword``, symbols as ``Symbol``,
maps as ``dict`` (keys must be hashable: keywords, strings, numbers), vectors and
lists as ``tuple``, sets as ``frozenset``. Each top-level form comes with the line it
starts on, so errors can say ``path:line``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


class EdnError(ValueError):
    """Malformed EDN; the message is ``line: reason`` (the caller adds the path)."""


@dataclass(frozen=True, slots=True)
class Keyword:
    name: str

    def __str__(self) -> str:
        return f":{self.name}"


@dataclass(frozen=True, slots=True)
class Symbol:
    name: str


_TOKEN = re.compile(r'''
    (?P<ws>[\s,]+) | (?P<comment>;[^\n]*) |
    (?P<str>"(?:[^"\\]|\\.)*") |
    (?P<open>\#\{|[\[({]) | (?P<close>[\])}]) |
    (?P<discard>\#_) | (?P<tag>\#[A-Za-z][^\s,\[\](){}"]*) |
    (?P<atom>[^\s,\[\](){}"]+)
''', re.VERBOSE | re.DOTALL)
_INT = re.compile(r"[+-]?\d+N?")
_FLOAT = re.compile(r"[+-]?\d+(\.\d*)?([eE][+-]?\d+)?M?")
_CLOSE = {"[": "]", "(": ")", "{": "}", "#{": "}"}
_ESC = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r"}


def _tokens(text: str) -> Iterator[tuple[str, str, int]]:
    line, pos = 1, 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise EdnError(f"{line}: cannot read {text[pos:pos + 20]!r}")
        kind = m.lastgroup
        assert kind is not None
        tok = m.group()
        if kind not in ("ws", "comment"):
            yield kind, tok, line
        line += tok.count("\n")
        pos = m.end()


def _atom(tok: str, line: int) -> Any:
    if tok == "nil":
        return None
    if tok in ("true", "false"):
        return tok == "true"
    if tok.startswith(":") and len(tok) > 1:
        return Keyword(tok[1:])
    if _INT.fullmatch(tok):
        return int(tok.rstrip("N"))
    if _FLOAT.fullmatch(tok):
        return float(tok.rstrip("M"))
    if tok[0].isdigit() or (tok[0] in "+-" and len(tok) > 1 and tok[1].isdigit()):
        raise EdnError(f"{line}: not a number: {tok!r}")
    return Symbol(tok)


def _string(tok: str, line: int) -> str:
    out, i, body = [], 0, tok[1:-1]
    while i < len(body):
        c = body[i]
        if c == "\\":
            nxt = body[i + 1:i + 2]
            if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", body[i + 2:i + 6]):
                out.append(chr(int(body[i + 2:i + 6], 16)))
                i += 6
                continue
            if nxt not in _ESC:
                raise EdnError(f"{line}: bad escape in a string: \\{nxt}")
            out.append(_ESC[nxt])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def read_forms(text: str) -> Iterator[tuple[int, Any]]:
    """Each top-level form of ``text`` with the line it starts on."""
    toks = _tokens(text)
    stack: list[tuple[str, int, list[Any]]] = []  # (opener, line, items)
    pending_tags: list[int] = []  # discards (#_) waiting for their form, by stack depth

    def finish(value: Any, line: int) -> tuple[int, Any] | None:
        if pending_tags and pending_tags[-1] == len(stack):
            pending_tags.pop()
            return None  # discarded by #_
        if stack:
            stack[-1][2].append(value)
            return None
        return line, value

    for kind, tok, line in toks:
        if kind == "open":
            stack.append((tok, line, []))
            continue
        if kind == "discard":
            pending_tags.append(len(stack))
            continue
        if kind == "tag":
            continue  # #inst "..." and the like: the value alone
        if kind == "close":
            if not stack or _CLOSE[stack[-1][0]] != tok:
                raise EdnError(f"{line}: unexpected {tok!r}")
            opener, start, items = stack.pop()
            value: Any
            if opener == "{":
                if len(items) % 2:
                    raise EdnError(f"{start}: a map with an odd number of forms")
                try:
                    value = dict(zip(items[::2], items[1::2], strict=True))
                except TypeError as exc:
                    raise EdnError(f"{start}: a map key that cannot be one: {exc}") from None
                if len(value) != len(items) // 2:
                    raise EdnError(f"{start}: a map with a duplicate key")
            elif opener == "#{":
                try:
                    value = frozenset(items)
                except TypeError as exc:
                    raise EdnError(f"{start}: a set element that cannot be one: {exc}") \
                        from None
            else:
                value = tuple(items)
            out = finish(value, start)
        elif kind == "str":
            out = finish(_string(tok, line), line)
        else:
            out = finish(_atom(tok, line), line)
        if out is not None:
            yield out
    if stack:
        raise EdnError(f"{stack[-1][1]}: {stack[-1][0]!r} is never closed")
