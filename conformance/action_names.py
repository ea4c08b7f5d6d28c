"""Name each counterexample step by the spec action it took.

TLC 2.15 names a step after the operator it split ``Next`` into.  A disjunct that
quantifies over a state-dependent set, such as ``\\E r \\in Replicas, m \\in msgs :
Phase1b(r, m)``, is not split further, so TLC names it after the enclosing definition
(``ProtocolNext``) and gives the disjunct's source position.  The action is the last
operator applied on that source line, which is what we report instead.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path

from conformance.tlc_runner import TraceStep

_LOCATION_RE = re.compile(r"line (\d+), col \d+ to line \d+, col \d+ of module (\w+)")
_CALL_RE = re.compile(r"\b([A-Z]\w*)\s*\(")


def _action_on_line(spec_dir: Path, module: str, line_no: int) -> str | None:
    path = spec_dir / f"{module}.tla"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    if not 0 < line_no <= len(lines):
        return None
    calls = _CALL_RE.findall(lines[line_no - 1])
    return calls[-1] if calls else None


def resolve_action_names(
    trace: Sequence[TraceStep], spec_dir: Path, wrappers: frozenset[str]
) -> list[TraceStep]:
    """Replace wrapper names (e.g. ``ProtocolNext``) with the action called on that line."""
    resolved: list[TraceStep] = []
    for step in trace:
        name = step.action
        if name in wrappers and step.location:
            m = _LOCATION_RE.search(step.location)
            if m:
                found = _action_on_line(spec_dir, m.group(2), int(m.group(1)))
                if found:
                    step = dataclasses.replace(step, action=found)
        resolved.append(step)
    return resolved
