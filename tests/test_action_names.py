"""Counterexample steps are named by the action taken, not by TLC's wrapper name."""

from __future__ import annotations

from pathlib import Path

from conformance.action_names import resolve_action_names
from conformance.tlc_runner import TraceStep

SPEC = """---- MODULE Demo ----
Next ==
    \\/ \\E r \\in R, m \\in msgs : Phase1b(r, m)
    \\/ Tick
====
"""


def step(action: str, line: int) -> TraceStep:
    loc = f"line {line}, col 8 to line {line}, col 40 of module Demo"
    return TraceStep(2, action, loc, {})


def test_wrapper_is_replaced_by_the_action_on_its_line(tmp_path: Path) -> None:
    (tmp_path / "Demo.tla").write_text(SPEC)
    [resolved] = resolve_action_names([step("Next", 3)], tmp_path, frozenset({"Next"}))
    assert resolved.action == "Phase1b"


def test_named_actions_and_unknown_lines_are_left_alone(tmp_path: Path) -> None:
    (tmp_path / "Demo.tla").write_text(SPEC)
    wrappers = frozenset({"Next"})
    assert resolve_action_names([step("Tick", 4)], tmp_path, wrappers)[0].action == "Tick"
    assert resolve_action_names([step("Next", 99)], tmp_path, wrappers)[0].action == "Next"
    assert resolve_action_names([step("Next", 4)], tmp_path, wrappers)[0].action == "Next"
    missing = tmp_path / "elsewhere"
    assert resolve_action_names([step("Next", 3)], missing, wrappers)[0].action == "Next"
