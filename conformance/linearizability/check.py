"""Checking a whole history: split it per key, decide each key, shrink and explain its
violations, check its eventual reads, and assemble the report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson

from conformance.linearizability.eventual import EventualViolation, _explain_lone_read
from conformance.linearizability.explain import (
    DEFAULT_SHRINK_MAX_STATES,
    _explain,
    _shrink,
)
from conformance.linearizability.model import (
    UNKNOWN,
    PathTaken,
    _classify,
    _Op,
    _show_key,
    _States,
)
from conformance.linearizability.search import DEFAULT_MAX_STATES, Method, _decide
from reference.client import HistoryRecord
from reference.replica import DEFAULT_SCHEMA
from reference.storage import Applied, ConditionalCheckFailed, Key, KeySchema

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
    """Keys the search could not decide within ``max_states``: undecided, which is
    neither linearizable nor a violation."""
    violations: list[Violation] = field(default_factory=list)
    eventual_violations: list[EventualViolation] = field(default_factory=list)
    operations: int = 0
    """Records checked."""
    states_explored: int = 0
    """Search configurations explored, over all keys (shrinking not counted)."""
    max_states: int = DEFAULT_MAX_STATES
    """The search budget per key this check ran with."""

    def summary(self) -> str:
        return (f"{'OK' if self.ok else 'FAIL'}: {self.operations} operations on "
                f"{self.keys_checked} keys ({len(self.fast_path_keys)} fast path, "
                f"{len(self.search_keys)} search, {len(self.unknown_keys)} undecided); "
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
    rep = LinearizabilityReport(ok=True, keys_checked=len(by_key), operations=len(records),
                                max_states=max_states)
    method: Method = "auto" if fast_path else "search"
    for key, recs in by_key.items():
        sm = _States(schema, key)
        ops, failed = _classify(recs, sm)
        path, verdict, states = _decide(ops, sm, method, max_states)
        blame = ops
        eventual_only = False
        if verdict == "violation" and any(o.eventual for o in ops):
            # Is it the strong operations, or only the eventual reads on top of them?
            strong = [o for o in ops if not o.eventual]
            path2, strong_verdict, more = _decide(strong, sm, method, max_states)
            states += more
            if strong_verdict == "violation":
                path, blame = path2, strong
            eventual_only = strong_verdict == "linearizable"
        rep.states_explored += states
        if verdict == "unknown":
            rep.unknown_keys.append(key)
        elif path == "fast":
            rep.fast_path_keys.append(key)
        else:
            rep.search_keys.append(key)
        if verdict != "violation":
            continue
        if shrink:
            sub, verified = _shrink(blame, sm, shrink_max_states)
        else:
            sub, verified = blame, False
        if eventual_only:
            rep.eventual_violations.append(_eventual_violation(key, sub, verified, ops,
                                                               failed, sm))
            continue
        why = _explain(sub, sm, key, blame) if verified else (
            f"{_show_key(key)}: no linearization of its {len(blame)} operations "
            f"({'not minimized' if shrink else 'shrinking off'})")
        rep.violations.append(Violation(key, why, [o.rec for o in sub], path))
    rep.ok = not (rep.violations or rep.eventual_violations or rep.unknown_keys)
    return rep


def _eventual_violation(key: Key, sub: list[_Op], verified: bool, ops: list[_Op],
                        failed: list[HistoryRecord], sm: _States) -> EventualViolation:
    """The key's strong operations are linearizable, but no linearization also places
    its eventual reads: blame the first eventual read of the minimal sub-history."""
    reads = [o for o in sub if o.eventual] or [o for o in ops if o.eventual]
    rec = reads[0].rec
    if verified and len(sub) == 1:
        return EventualViolation(key, rec, _explain_lone_read(key, rec, ops, failed, sm))
    what = _explain(sub, sm, key, ops) if verified else (
        f"no linearization of the {len(ops)} operations on {_show_key(key)} also places "
        "its eventual reads (not minimized)")
    return EventualViolation(key, rec, f"eventual read {rec.id}: {what}")


def history_to_jsonl(records: Sequence[HistoryRecord]) -> bytes:
    """The records as ``history.jsonl`` text (what ``dynaspec simulate`` writes)."""
    opt = orjson.OPT_APPEND_NEWLINE
    return b"".join(orjson.dumps(_to_json(r), option=opt) for r in records)


def _to_json(rec: HistoryRecord) -> dict[str, object]:
    """``rec.to_json()``, without the ``old``/``new``/``current`` it does not record."""
    out = rec.to_json()
    res = rec.result
    if isinstance(res, Applied):
        for name, v in (("old", res.old), ("new", res.new)):
            if v is UNKNOWN:
                del out[name]
    elif isinstance(res, ConditionalCheckFailed) and res.current is UNKNOWN:
        del out["current"]
    return out
