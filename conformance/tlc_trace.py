"""Present TLC counterexamples: compact TLA+ text for people, JSON for tools.

``format_trace`` prints each step's action and only what changed since the previous state,
narrowed to the changed entries of functions/records/sequences (``log[r2][1] = ...``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from conformance.tla_values import ModelValue, Record
from conformance.tlc_types import TraceStep

__all__ = ["format_trace", "format_value", "trace_to_json", "value_to_json"]

_IDENT_RE = re.compile(r"[0-9]*[A-Za-z_][A-Za-z0-9_]*")
_LOCATION_RE = re.compile(r"line (\d+), col \d+ to line \d+, col \d+ of module (\S+)")
_STRING_ESCAPES = str.maketrans(
    {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r", "\f": "\\f"}
)


def _order_key(value: Any) -> tuple[int, int, str]:
    """A total order over mixed values, for printing sets deterministically."""
    if isinstance(value, bool):
        return (1, int(value), "")
    if isinstance(value, int):
        return (0, value, "")
    if isinstance(value, str):
        return (2, 0, value)
    if isinstance(value, ModelValue):
        return (3, 0, value.name)
    return (4, 0, format_value(value))


def format_value(value: Any) -> str:
    """Print a parsed value back in TLC's syntax (the inverse of ``parse_value``)."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | ModelValue):
        return str(value)
    if isinstance(value, str):
        return '"' + value.translate(_STRING_ESCAPES) + '"'
    if isinstance(value, tuple | list):
        return "<<" + ", ".join(format_value(v) for v in value) + ">>"
    if isinstance(value, frozenset | set):
        return "{" + ", ".join(format_value(v) for v in sorted(value, key=_order_key)) + "}"
    if isinstance(value, Mapping):
        if _is_record(value):
            return "[" + ", ".join(f"{k} |-> {format_value(v)}" for k, v in value.items()) + "]"
        if not value:
            return "<< >>"  # how TLC prints a function with an empty domain
        pairs = (f"{format_value(k)} :> {format_value(v)}" for k, v in value.items())
        return "(" + " @@ ".join(pairs) + ")"
    return repr(value)


def _is_record(value: Mapping[Any, Any]) -> bool:
    if isinstance(value, Record):
        return True
    return bool(value) and all(isinstance(k, str) and _IDENT_RE.fullmatch(k) for k in value)


def _accessor(container: Any, key: Any) -> str:
    if isinstance(container, Mapping) and _is_record(container):
        return f".{key}"
    return f"[{format_value(key)}]"


def _entries(value: Any) -> dict[Any, Any] | None:
    """Key -> entry for values that can be diffed entrywise; sequences are 1-indexed."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple):
        return {i: v for i, v in enumerate(value, start=1)}
    return None


def _diff(path: str, old: Any, new: Any, out: list[str]) -> None:
    """Append ``path = value`` lines describing how ``old`` became ``new``."""
    if old == new:
        return
    before, after = _entries(old), _entries(new)
    if before is not None and after is not None and before.keys() == after.keys():
        changed = [k for k in after if before[k] != after[k]]
        # Narrow only when that says less than reprinting the whole value.
        if len(after) > 1 and len(changed) < len(after):
            for key in changed:
                _diff(path + _accessor(new, key), before[key], after[key], out)
            return
    if isinstance(old, frozenset) and isinstance(new, frozenset):
        added, removed = new - old, old - new
        if len(added) + len(removed) < len(new):
            parts = [f"added {format_value(added)}"] if added else []
            parts += [f"removed {format_value(removed)}"] if removed else []
            out.append(f"{path}: " + ", ".join(parts))
            return
    out.append(f"{path} = {format_value(new)}")


def _step_title(step: TraceStep) -> str:
    if step.stuttering:
        return f"Step {step.index}: (stuttering: nothing changes from here on)"
    title = f"Step {step.index}: {step.action or '?'}"
    if step.location and (m := _LOCATION_RE.search(step.location)):
        title += f" ({m.group(2)}.tla:{m.group(1)})"
    elif step.location:
        title += f" ({step.location})"
    if step.back_to_state is not None:
        title += f" -> back to state {step.back_to_state} (the behavior loops)"
    return title


def format_trace(trace: Sequence[TraceStep]) -> str:
    """Human-readable counterexample: all variables first, then only the changes."""
    lines: list[str] = []
    previous: dict[str, Any] | None = None
    for step in trace:
        lines.append(_step_title(step))
        if step.raw and not step.state:  # state text we could not parse: show it verbatim
            lines.extend("  " + line for line in step.raw.splitlines())
            continue
        changes: list[str] = []
        for name in sorted(step.state):
            if previous is None or name not in previous:
                changes.append(f"{name} = {format_value(step.state[name])}")
            else:
                _diff(name, previous[name], step.state[name], changes)
        changes += [f"{name} removed" for name in sorted((previous or {}).keys() - step.state)]
        if not changes and previous is not None and not step.stuttering:
            changes.append("(no variable changed)")
        lines.extend(f"  /\\ {change}" for change in changes)
        previous = step.state
    return "\n".join(lines)


def value_to_json(value: Any) -> Any:
    """A JSON-safe rendering: sets become sorted lists, model values their names, records
    dicts, functions dicts when keyed by strings/model values, else [key, value] pairs."""
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, ModelValue):
        return value.name
    if isinstance(value, tuple | list):
        return [value_to_json(v) for v in value]
    if isinstance(value, frozenset | set):
        return [value_to_json(v) for v in sorted(value, key=_order_key)]
    if isinstance(value, Mapping):
        keys = sorted(value, key=_order_key)
        names = [k.name if isinstance(k, ModelValue) else k for k in keys]
        if all(isinstance(n, str) for n in names) and len(set(names)) == len(names):
            return {n: value_to_json(value[k]) for n, k in zip(names, keys, strict=True)}
        return [[value_to_json(k), value_to_json(value[k])] for k in keys]
    return repr(value)


def trace_to_json(trace: Sequence[TraceStep]) -> list[dict[str, Any]]:
    """The counterexample as JSON-safe dicts, one per step."""
    return [
        {
            "index": step.index,
            "action": step.action,
            "location": step.location,
            "stuttering": step.stuttering,
            "back_to_state": step.back_to_state,
            "state": {name: value_to_json(v) for name, v in sorted(step.state.items())},
        }
        for step in trace
    ]
