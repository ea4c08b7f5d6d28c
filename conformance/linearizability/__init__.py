"""Linearizability of a client history, judged from the history alone.

``check_history`` reads only the clients' ``HistoryRecord``s (what ``history.jsonl``
holds, or a Jepsen register history): no log, no traces, no replica state. It checks
each key against SEMANTICS.md (beside this file): one linearization of its
operations, strong and eventual reads, conditional writes, unknown outcomes and
unrecorded ``old``/``new``/``current`` included. Each key is ok, a violation, or
undecided (``unknown_keys``: the search budget ran out), never a violation for that.

This package only re-exports the public names; the work is done in its modules, each
of which documents its part of the semantics:

* ``model``: loading ``history.jsonl``, one key's states and the sequential model,
  classifying records as operations;
* ``search``: deciding a key (the unique-version fast path, else the sweep),
  ``check_key``; the Wing-Gong/Lowe search, which the shrinker uses;
* ``witness``: a greedy linearization, checked, that proves a key linearizable in
  linear time where the fast path's chain analysis does not apply;
* ``sweep``: the sweep over real time that decides a key the fast path cannot;
* ``explain``: shrinking a violation to a minimal sub-history and explaining it;
* ``eventual``: wording a violation that only the eventual reads cause;
* ``edn``, ``jepsen``: reading Jepsen register histories;
* ``check``: ``check_history``, which runs all of the above over a whole history.

Dependencies point one way: ``model`` <- ``sweep``, ``witness`` <- ``search`` <- ``explain`` <-
``check``, with ``eventual`` and ``jepsen`` needing only ``model``.
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
