"""The action catalogue (reference/actions.py) is the one vocabulary: every layer that
speaks it implements exactly its actions, no fewer and no more.

Layers: the spec's operators (specs/Replication.tla), its Next disjuncts, the replica's
``@spec_action`` handlers, the monitor's ``_on_<Action>`` rules, trace validation's
``TV<Action>`` rules (specs/TraceValidation.tla), the typed trace events and the
committed JSON Schema.
"""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import pytest

from conformance.monitor import Monitor
from conformance.monitor_gray import GrayRules
from reference.actions import (
    ACTIONS,
    CATALOGUE,
    SPEC_ACTION_ATTR,
    SPEC_ACTIONS,
    TRACED,
    action_of_tlc_step,
)
from reference.replica import Replica
from reference.trace_events import EVENT_TYPES, SCHEMA_PATH, json_schema

ROOT = Path(__file__).resolve().parents[1]
SPEC = (ROOT / "specs" / "Replication.tla").read_text()
TV = (ROOT / "specs" / "TraceValidation.tla").read_text()

# Operator definitions at the start of a line: ``Name(args) ==`` or ``Name ==``.
_DEF_RE = re.compile(r"^([A-Z]\w*)\s*(?:\(([^)]*)\))?\s*==", re.M)


def definitions(text: str) -> dict[str, list[str]]:
    return {m.group(1): [a.strip() for a in (m.group(2) or "").split(",") if a.strip()]
            for m in _DEF_RE.finditer(text)}


def replica_handlers(cls: type = Replica) -> dict[str, str]:
    """Catalogue action name -> method name, for every method marked @spec_action."""
    return {getattr(fn, SPEC_ACTION_ATTR): name for name, fn in inspect.getmembers(cls)
            if callable(fn) and hasattr(fn, SPEC_ACTION_ATTR)}


def monitor_rules(classes: tuple[type, ...] = (Monitor, GrayRules)) -> set[str]:
    """The monitor's ``_on_<Action>`` rules, its own and those of the rule sets it owns."""
    return {name.removeprefix("_on_") for cls in classes for name in dir(cls)
            if name.startswith("_on_")}


def tv_rules(text: str) -> set[str]:
    """Every ``TV<Name>(e)`` rule of TraceValidation.tla, by <Name>."""
    return {n.removeprefix("TV") for n, args in definitions(text).items()
            if re.fullmatch(r"TV[A-Z]\w*", n) and args == ["e"]}


def test_every_spec_action_is_an_operator_of_the_spec_with_the_catalogue_parameters() -> None:
    defs = definitions(SPEC)
    for a in CATALOGUE:
        if a.kind != "spec":
            continue
        assert a.name in defs, f"{a.name} is not an operator of Replication.tla"
        spec_params = [p.name for p in a.params if not p.extra]
        assert defs[a.name] == spec_params, (a.name, defs[a.name], spec_params)


def test_every_action_in_next_has_its_named_disjunct_and_no_other_exists() -> None:
    defs = definitions(SPEC)
    disjuncts = {n for n in defs if re.fullmatch(r"Next[A-Z]\w*", n)}
    # Tick is in Next (NextTick) though untraced: time passes between trace lines.
    expected = {a.next_operator for a in CATALOGUE if a.kind == "spec" and a.in_next}
    assert disjuncts == expected
    assert "Tick" in defs and "NextTick" in defs


def test_every_traced_spec_action_has_exactly_one_replica_handler() -> None:
    handlers = replica_handlers()
    assert set(handlers) == {a.name for a in SPEC_ACTIONS}
    for name, method in handlers.items():
        assert method == ACTIONS[name].handler


def test_every_traced_action_has_a_monitor_rule_and_no_rule_lacks_an_action() -> None:
    assert monitor_rules() == {a.name for a in TRACED}


def test_every_action_has_a_trace_validation_rule_and_no_rule_lacks_an_action() -> None:
    assert tv_rules(TV) == {a.name for a in CATALOGUE if a.traced or a.name == "Tick"}


def test_typed_events_are_exactly_the_traced_actions() -> None:
    assert set(EVENT_TYPES) == {a.name for a in TRACED}


def test_the_committed_schema_is_the_generated_one() -> None:
    committed = json.loads(SCHEMA_PATH.read_text())
    assert committed == json_schema(), "run `python -m reference.trace_events` to regenerate"


def test_tlc_step_names_map_to_actions() -> None:
    assert action_of_tlc_step("NextPhase1b") == "Phase1b"
    assert action_of_tlc_step("Phase1a") == "Phase1a"
    assert action_of_tlc_step("Tick") == "Tick"
    assert action_of_tlc_step("SyncTick") == "SyncTick"  # a model-level operator
    assert action_of_tlc_step("NextNothing") == "NextNothing"


# --- each check fails when a layer misses an action or has an extra one ------------------


def test_deleting_a_monitor_rule_breaks_the_layer_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(Monitor, "_on_Commit")
    with pytest.raises(AssertionError):
        test_every_traced_action_has_a_monitor_rule_and_no_rule_lacks_an_action()


def test_an_extra_monitor_rule_breaks_the_layer_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Monitor, "_on_Handoff", lambda *a: None, raising=False)
    with pytest.raises(AssertionError):
        test_every_traced_action_has_a_monitor_rule_and_no_rule_lacks_an_action()


def test_a_missing_spec_operator_or_handler_or_tv_rule_breaks_the_check(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(__import__(__name__, fromlist=["SPEC"]), "SPEC",
                        SPEC.replace("LeaseGrant(a, m) ==", "LeaseGranted(a, m) =="))
    with pytest.raises(AssertionError):
        test_every_spec_action_is_an_operator_of_the_spec_with_the_catalogue_parameters()
    monkeypatch.undo()
    monkeypatch.setattr(__import__(__name__, fromlist=["TV"]), "TV",
                        TV.replace("TVApply(e) ==", "TVApplied(e) =="))
    with pytest.raises(AssertionError):
        test_every_action_has_a_trace_validation_rule_and_no_rule_lacks_an_action()
    monkeypatch.undo()

    class NoApply(Replica):
        apply = None  # type: ignore[assignment]

    assert set(replica_handlers(NoApply)) != {a.name for a in SPEC_ACTIONS}
