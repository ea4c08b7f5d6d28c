"""Checking a whole history: split it per key, decide each key, shrink and explain its
violations, check its eventual reads, and assemble the report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson

from conformance.linearizability.eventual import EventualViolation, _check_eventual
from conformance.linearizability.explain import (
    DEFAULT_SHRINK_MAX_STATES,
    _explain,
    _shrink,
)
from conformance.linearizability.model import PathTaken, _classify, _show_key, _States
from conformance.linearizability.search import DEFAULT_MAX_STATES, _decide
from reference.client import HistoryRecord
from reference.replica import DEFAULT_SCHEMA
from reference.storage import Key, KeySchema

# --- report ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Violation:
    key: Key
    explanation: str
    """One line: what the minimal sub-history shows."""
    history: list[HistoryRecord]
    """A minimal violating sub-history of the key, in invocation order."""
    path: PathTaken
    """Which check found the key non-linearizable."""


@dataclass(slots=True)
class LinearizabilityReport:
    ok: bool
    """No violation of either kind, and every key decided (``unknown_keys`` empty)."""
    keys_checked: int
    fast_path_keys: list[Key] = field(default_factory=list)
    """Keys the fast path decided (linearizable or not)."""
    search_keys: list[Key] = field(default_factory=list)
    """Keys the search decided."""
    unknown_keys: list[Key] = field(default_factory=list)
    """Keys the search could not decide within ``max_states``."""
    violations: list[Violation] = field(default_factory=list)
    eventual_violations: list[EventualViolation] = field(default_factory=list)
    operations: int = 0
    """Records checked."""
    states_explored: int = 0
    """Search configurations explored, over all keys (shrinking not counted)."""

    def summary(self) -> str:
        return (f"{'OK' if self.ok else 'FAIL'}: {self.operations} operations on "
                f"{self.keys_checked} keys ({len(self.fast_path_keys)} fast path, "
                f"{len(self.search_keys)} search, {len(self.unknown_keys)} unknown); "
                f"{len(self.violations)} violations, "
                f"{len(self.eventual_violations)} eventual-read violations")


# --- checking ----------------------------------------------------------------------------------


def check_history(records: Sequence[HistoryRecord], *, schema: KeySchema = DEFAULT_SCHEMA,
                  max_states: int = DEFAULT_MAX_STATES, fast_path: bool = True,
                  shrink: bool = True,
                  shrink_max_states: int = DEFAULT_SHRINK_MAX_STATES) -> LinearizabilityReport:
    """Check a whole history (any order of records; keys in order of first appearance).

    ``max_states`` bounds the search per key; ``fast_path=False`` sends every key to the
    search; ``shrink=False`` reports a violating key's whole history unminimized.
    """
    by_key: dict[Key, list[HistoryRecord]] = {}
    for rec in records:
        by_key.setdefault(rec.key, []).append(rec)
    rep = LinearizabilityReport(ok=True, keys_checked=len(by_key), operations=len(records))
    for key, recs in by_key.items():
        sm = _States(schema, key)
        ops, eventual, failed = _classify(recs, sm)
        path, verdict, states = _decide(ops, sm, "auto" if fast_path else "search",
                                        max_states)
        rep.states_explored += states
        if verdict == "unknown":
            rep.unknown_keys.append(key)
        elif path == "fast":
            rep.fast_path_keys.append(key)
        else:
            rep.search_keys.append(key)
        if verdict == "violation":
            if shrink:
                sub, verified = _shrink(ops, sm, shrink_max_states)
            else:
                sub, verified = ops, False
            why = _explain(sub, sm, key, ops) if verified else (
                f"{_show_key(key)}: no linearization of its {len(ops)} strong operations "
                f"({'not minimized' if shrink else 'shrinking off'})")
            rep.violations.append(Violation(key, why, [o.rec for o in sub], path))
        rep.eventual_violations.extend(_check_eventual(key, eventual, ops, failed, sm))
    rep.ok = not (rep.violations or rep.eventual_violations or rep.unknown_keys)
    return rep


def history_to_jsonl(records: Sequence[HistoryRecord]) -> bytes:
    """The records as ``history.jsonl`` text (what ``dynaspec simulate`` writes)."""
    opt = orjson.OPT_APPEND_NEWLINE
    return b"".join(orjson.dumps(r.to_json(), option=opt) for r in records)
