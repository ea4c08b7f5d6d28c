"""Linearizability of a client history, judged from the history alone.

``check_history`` reads only the clients' ``HistoryRecord``s (what ``history.jsonl``
holds): no log, no traces, no replica state. It checks that the strong operations
on each key are linearizable against the storage engine's sequential semantics, and
that no eventually consistent read returned a value from nowhere.

This package only re-exports the public names; the work is done in its modules, each
of which documents its part of the semantics:

* ``model``: loading ``history.jsonl``, one key's states and the sequential model,
  classifying records as operations;
* ``search``: deciding a key (the unique-version fast path, the Wing-Gong/Lowe
  search), ``check_key``;
* ``explain``: shrinking a violation to a minimal sub-history and explaining it;
* ``eventual``: checking eventually consistent reads for values from nowhere;
* ``check``: ``check_history``, which runs all of the above over a whole history.

Dependencies point one way: ``model`` <- ``search`` <- ``explain`` <- ``check``, with
``eventual`` needing only ``model``.
"""

from conformance.linearizability.check import (
    LinearizabilityReport,
    Violation,
    check_history,
    history_to_jsonl,
)
from conformance.linearizability.eventual import EventualViolation
from conformance.linearizability.explain import DEFAULT_SHRINK_MAX_STATES
from conformance.linearizability.model import (
    HistoryFormatError,
    load_history,
)
from conformance.linearizability.model import PathTaken as PathTaken
from conformance.linearizability.model import Verdict as Verdict
from conformance.linearizability.search import DEFAULT_MAX_STATES, KeyResult, check_key
from conformance.linearizability.search import Method as Method

__all__ = [
    "DEFAULT_MAX_STATES",
    "DEFAULT_SHRINK_MAX_STATES",
    "EventualViolation",
    "HistoryFormatError",
    "KeyResult",
    "LinearizabilityReport",
    "Violation",
    "check_history",
    "check_key",
    "history_to_jsonl",
    "load_history",
]
