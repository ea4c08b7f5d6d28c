"""Jepsen register histories (EDN) as history records.

The register model: ``:f`` is ``:read``, ``:write`` or ``:cas`` (``:value [old new]``);
``:type`` is ``:invoke`` and then, from the same ``:process``, ``:ok``, ``:fail``
(certainly did not happen) or ``:info`` (unknown outcome; the process is gone). An
invocation never completed is pending. Independent keys (``jepsen.independent``)
show as ``:value [k v]`` (``[k [old new]]`` for cas); otherwise there is one
register. Operations of a non-integer process (the nemesis) are skipped.

Real time is the order of the lines: an operation's invoke and complete are the
line numbers of its two events, so ``a`` precedes ``b`` iff ``a``'s completion line
comes before ``b``'s invocation line, as in Jepsen's own checkers.

Each register is one key (``pk``, a string) whose item is ``{pk, v}``; *nil* is
absent. What a Jepsen history does not record is left unknown (SEMANTICS.md):

* write ``:ok``: ``Applied(UNKNOWN, {pk, v})``, the state it replaced unknown;
* cas ``:ok``: ``Applied({pk, old}, {pk, new})``; cas ``:fail``: a ``condfail`` with
  ``current`` unknown (the register was not ``old`` at some point of its interval);
* write or cas ``:info`` or pending: unknown outcome; ``:fail`` writes and failed or
  unknown reads are dropped (they constrain nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance.linearizability.edn import EdnError, Keyword, read_forms
from conformance.linearizability.model import UNKNOWN, HistoryFormatError
from reference.client import HistoryRecord, OpName, Status
from reference.messages import ReadResult
from reference.storage import (
    Applied,
    Compare,
    ConditionalCheckFailed,
    Key,
    M,
    N,
    Put,
    S,
    SetAttr,
    Update,
    Value,
    WriteOp,
)

DEFAULT_REGISTER = "r"


def _value(v: Any, what: str) -> Value:
    if isinstance(v, bool) or v is None:
        raise ValueError(f"{what} {v!r} is not a register value (an integer or string)")
    if isinstance(v, int):
        return N(v)
    if isinstance(v, str):
        return S(v)
    if isinstance(v, Keyword):
        return S(str(v))
    raise ValueError(f"{what} {v!r} is not a register value (an integer or string)")


def _item(key: Key, v: Any, what: str) -> M | None:
    if v is None:
        return None
    return M(pk=key.partition, v=_value(v, what))


def _key(k: Any) -> Key:
    if isinstance(k, bool) or not isinstance(k, int | str | Keyword):
        raise ValueError(f"independent key {k!r} is not an integer, string or keyword")
    return Key(S(str(k)))


@dataclass(slots=True)
class _Open:
    line: int
    f: str
    value: Any


def _split(f: str, value: Any) -> tuple[Key, Any]:
    """The register and the operation's own value (independent ``[k v]`` or not)."""
    tup = isinstance(value, tuple) and len(value) == 2
    if f == "cas":
        if tup and isinstance(value[1], tuple):
            return _key(value[0]), value[1]
        return Key(S(DEFAULT_REGISTER)), value
    if tup:
        return _key(value[0]), value[1]
    return Key(S(DEFAULT_REGISTER)), value


def _record(op: _Open, end: int, typ: str, value: Any, process: int, n: int
            ) -> HistoryRecord | None:
    """The record of one completed (``end`` -1: pending) operation, or None if dropped."""
    rid, client = f"p{process}-{n}", f"p{process}"
    key, v = _split(op.f, value if typ == "ok" and op.f == "read" else op.value)
    status: Status | None = {"ok": "ok", "info": "timeout", "": None}.get(typ, "condfail")
    if op.f == "read":
        if typ != "ok":
            return None
        return HistoryRecord(rid, client, "get", key, True, None, op.line, end, "ok",
                             ReadResult(_item(key, v, "read value")), 1, None)
    w: WriteOp
    name: OpName
    if op.f == "write":
        if typ == "fail":
            return None
        new = _item(key, v, "written value")
        if new is None:
            raise ValueError("a write of nil")
        w, name = Put(new), "put"
        result: Any = Applied(UNKNOWN, new) if typ == "ok" else None
    else:
        if not (isinstance(v, tuple) and len(v) == 2):
            raise ValueError(f"cas value {v!r} is not [old new]")
        old, new = _item(key, v[0], "cas old value"), _item(key, v[1], "cas new value")
        if old is None or new is None:
            raise ValueError("a cas from or to nil")
        w, name = Update(key, (SetAttr("v", new["v"]),), Compare("v", "=", old["v"])), \
            "update"
        result = (Applied(old, new) if typ == "ok" else
                  ConditionalCheckFailed(UNKNOWN) if typ == "fail" else None)
    return HistoryRecord(rid, client, name, key, None, w, op.line, end, status, result, 1,
                         None)


def load_jepsen(path: str | Path) -> list[HistoryRecord]:
    """Read a Jepsen register history; ``HistoryFormatError("path:line: reason")``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise HistoryFormatError(f"{path}:0: not UTF-8 ({exc.reason})") from None
    line = 0
    try:
        forms = list(read_forms(text))
        if len(forms) == 1 and isinstance(forms[0][1], tuple):
            forms = [(forms[0][0], x) for x in forms[0][1]]  # one vector of operations
        if not forms:
            raise HistoryFormatError(f"{path}:0: no operations")
        records: list[HistoryRecord] = []
        open_ops: dict[int, _Open] = {}
        count: dict[int, int] = {}
        for line, form in forms:
            if not isinstance(form, dict):
                raise ValueError("an operation must be a map")
            typ, f, process = form.get(Keyword("type")), form.get(Keyword("f")), \
                form.get(Keyword("process"))
            if not isinstance(typ, Keyword) or typ.name not in ("invoke", "ok", "fail",
                                                                  "info"):
                raise ValueError(f":type must be :invoke, :ok, :fail or :info, not {typ!r}")
            if not isinstance(process, int) or isinstance(process, bool):
                continue  # the nemesis
            if not isinstance(f, Keyword) or f.name not in ("read", "write", "cas"):
                raise ValueError(f"unsupported :f {f!r} (the register model: :read, "
                                 f":write, :cas)")
            value = form.get(Keyword("value"))
            if typ.name == "invoke":
                if process in open_ops:
                    raise ValueError(f"process {process} invokes again before its "
                                     f"operation at line {open_ops[process].line} completed")
                open_ops[process] = _Open(line, f.name, value)
                continue
            op = open_ops.pop(process, None)
            if op is None:
                raise ValueError(f"process {process} completes an operation it never "
                                 "invoked")
            if op.f != f.name:
                raise ValueError(f"process {process} invoked :{op.f} at line {op.line} "
                                 f"but completes :{f.name}")
            count[process] = count.get(process, 0) + 1
            rec = _record(op, line, typ.name, value, process, count[process])
            if rec is not None:
                records.append(rec)
        for process, op in sorted(open_ops.items(), key=lambda x: x[1].line):
            line = op.line
            count[process] = count.get(process, 0) + 1
            rec = _record(op, -1, "", op.value, process, count[process])
            if rec is not None:
                records.append(rec)
    except EdnError as exc:
        where, _, reason = str(exc).partition(": ")
        raise HistoryFormatError(f"{path}:{where}: {reason}") from None
    except (ValueError, TypeError, KeyError) as exc:
        if isinstance(exc, HistoryFormatError):
            raise
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise HistoryFormatError(f"{path}:{line}: {reason}") from None
    return records
