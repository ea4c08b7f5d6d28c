"""The manifest, the .cfg files it names, and how check_models judges a run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance.check_models import check_constants, judge
from conformance.manifest import ManifestError, ModelEntry, cfg_constants, load_manifest
from conformance.tlc_runner import TLCResult, TraceStep

SPECS = Path(__file__).resolve().parent.parent / "specs"
MANIFEST = load_manifest(SPECS / "manifest.json")


def entry(kind: str = "correct", expected: str = "ok", **kw: object) -> ModelEntry:
    base = dict(name="M", spec="MC.tla", cfg="MC.cfg", kind=kind, expected=expected,
                sets=["ci"], description="d", constants={})
    base.update(kw)
    return ModelEntry(**base)  # type: ignore[arg-type]


def test_every_model_declares_exactly_its_cfg_constants() -> None:
    for model in MANIFEST.models:
        assert check_constants(MANIFEST, model) == [], model.name


def test_each_mutant_is_its_base_model_plus_overrides() -> None:
    by_name = {m.name: m for m in MANIFEST.models}
    for model in MANIFEST.models:
        if model.kind == "correct":
            continue
        assert model.base in by_name, model.name
        base = cfg_constants(SPECS / by_name[model.base].cfg)
        mine = cfg_constants(SPECS / model.cfg)
        changed = {k for k in mine if base.get(k) != mine[k]}
        assert changed, f"{model.name} does not alter {model.base}"
        assert set(base) <= set(mine), f"{model.name} drops constants of {model.base}"
        # A mutant changes hooks (overrides) or a margin, never the model's size.
        for size in ("MaxBallot", "MaxSlot", "Ops", "Keys", "Replicas"):
            assert size not in changed, f"{model.name} changes {size}"
        # Everything but the constants is the same text, except that a mutant may check a
        # subset of its base's invariants (to show each property catches a bug alone).
        mine_text = (SPECS / model.cfg).read_text().partition("INVARIANTS")
        base_text = (SPECS / by_name[model.base].cfg).read_text().partition("INVARIANTS")

        def skeleton(text: str) -> list[str]:
            return [ln for ln in text.splitlines() if not ln.startswith(("    ", "\\*"))]
        assert skeleton(mine_text[0]) == skeleton(base_text[0]), model.name
        assert set(mine_text[2].split()) <= set(base_text[2].split()), model.name


def test_every_claimed_property_is_caught_by_some_mutant_in_ci() -> None:
    caught = {m.expected for m in MANIFEST.select("ci") if m.kind == "mutant"}
    spec = (SPECS / "Replication.tla").read_text()
    for prop in ("Agreement", "Durability", "StateMachineSafety", "LeaseExclusivity",
                 "Linearizability", "EventualReadsCommitted", "EventuallyLease",
                 "ConfigSafety", "LogReplicaNeverLeads", "LogReplicaNeverServes",
                 "AckedSurvivesReplacement", "NoNeedlessElection", "HandoffGap"):
        assert prop in caught, prop
        assert prop in spec or prop in (SPECS / "MC_Replication.tla").read_text()


def test_every_seeded_bug_of_the_issue_has_a_mutant_in_ci() -> None:
    ci_mutants = {m.name for m in MANIFEST.select("ci") if m.kind == "mutant"}
    assert ci_mutants >= {
        "Mutant_NoLeaseWait", "Mutant_NoDriftMargin", "Mutant_EarlyAck",
        "Mutant_NoRecovery", "Mutant_ApplyUncommitted", "Mutant_NoPersist",
        "Mutant_RenewOnlyHeld", "Mutant_TwoChangesInFlight", "Mutant_LogReplicaLeads",
        "Mutant_LogReplicaServes", "Mutant_SnapshotMissesSlot"}


def test_three_ballots_and_membership_bugs_have_mutants_in_the_standard_set() -> None:
    standard = {m.name: m for m in MANIFEST.select("standard")}
    assert standard["Mutant_RecoverLowestBallot"].constants["MaxBallot"] == "3"
    assert {"Reconfig", "Mutant_RemovedVoteCounts", "Mutant_RecoverLowestBallot",
            "Mutant_ReaddOldIncarnation", "Equivalent_ChangeBeforeOwnCommit"} <= set(standard)
    assert standard["Equivalent_ChangeBeforeOwnCommit"].kind == "equivalent"
    # A simulation in the standard set is seeded and bounded, so it is deterministic.
    for m in standard.values():
        if "-simulate" in m.tlc_args:
            assert "-seed" in m.tlc_args and "-depth" in m.tlc_args, m.name
            assert any(a.startswith("num=") for a in m.tlc_args), m.name


def test_state_constraints_in_a_cfg_are_rejected(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{}")
    cfg = tmp_path / "MC.cfg"
    cfg.write_text("CONSTANTS\n    A = 2\nSPECIFICATION Spec\nCONSTRAINT Small\n")
    manifest = type(MANIFEST)(tmp_path / "manifest.json", "2.15", [])
    problems = check_constants(manifest, entry(constants={"A": "2"}))
    assert problems == ["MC.cfg: undeclared CONSTRAINT Small: state bounds go in constants"]


def test_cfg_constants_reads_assignments_and_overrides(tmp_path: Path) -> None:
    cfg = tmp_path / "x.cfg"
    cfg.write_text("\\* comment\nCONSTANTS\n    A = 2\n    B <- Op  \\* why\nSPECIFICATION Spec\n")
    assert cfg_constants(cfg) == {"A": "2", "B": "<- Op"}


def test_cfg_constants_names_file_and_line_on_garbage(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.cfg"
    cfg.write_text("CONSTANTS\n    A = 2\n    what is this\n")
    with pytest.raises(ManifestError, match=r"bad.cfg:3"):
        cfg_constants(cfg)


@pytest.mark.parametrize("text, message", [
    ("{", "invalid JSON"),
    ('{"models": 3}', "'models' list"),
    ('{"models": [{"name": "x"}]}', "lacks"),
    ('{"models": [{"name": "x", "spec": "a", "cfg": "b", "kind": "odd", "expected": "ok",'
     ' "sets": [], "description": "", "constants": {}}]}', "kind"),
    ('{"models": [{"name": "x", "spec": "a", "cfg": "b", "kind": "mutant", "expected": "ok",'
     ' "sets": [], "description": "", "constants": {}}]}', "expect"),
])
def test_malformed_manifest_is_a_one_line_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(text)
    with pytest.raises(ManifestError, match=message) as info:
        load_manifest(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_manifest_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text((SPECS / "manifest.json").read_text())
    loaded = load_manifest(path)
    loaded.save()
    assert load_manifest(path).models == MANIFEST.models
    assert json.loads(path.read_text())["models"][0]["name"] == MANIFEST.models[0].name


def result(outcome: str, prop: str | None = None, distinct: int = 10, depth: int = 5,
           steps: int = 0) -> TLCResult:
    trace = [TraceStep(i, "A", None, {}) for i in range(1, steps + 1)]
    return TLCResult(outcome=outcome, property=prop, distinct_states=distinct,  # type: ignore[arg-type]
                     depth=depth, trace=trace)


def test_judge_correct_model() -> None:
    e = entry(distinct_states=10, depth=5)
    assert judge(e, result("ok")) == []
    assert "distinct states changed" in judge(e, result("ok", distinct=11))[0]
    assert "depth changed" in judge(e, result("ok", depth=6))[0]
    assert judge(e, result("ok", distinct=11), compare_counts=False) == []
    assert "correct model failed" in judge(e, result("invariant_violated", "Agreement"))[0]
    assert "time limit" in judge(e, result("timeout"))[0]


def test_judge_mutant() -> None:
    e = entry("mutant", "Agreement", depth=4)
    assert judge(e, result("invariant_violated", "Agreement", steps=4)) == []
    assert "not caught" in judge(e, result("ok"))[0]
    assert "expected Agreement" in judge(e, result("invariant_violated", "Durability", steps=4))[0]
    assert "length changed" in judge(e, result("invariant_violated", "Agreement", steps=7))[0]
    live = entry("mutant", "Live", depth=4)
    assert judge(live, result("property_violated", "Live", steps=9)) == []


def test_judge_equivalent_mutant() -> None:
    """An equivalent mutant (a guard claimed redundant) must pass, like a correct model;
    if TLC catches it, the claim is false and the message says so."""
    e = entry("equivalent", "ok", base="Base")
    assert judge(e, result("ok")) == []
    problem = judge(e, result("invariant_violated", "ConfigSafety"))[0]
    assert "equivalent mutant caught" in problem and "not redundant" in problem


def test_an_equivalent_mutant_names_its_base(tmp_path: Path) -> None:
    p = tmp_path / "m.json"
    p.write_text('{"models": [{"name": "x", "spec": "a", "cfg": "b", "kind": "equivalent",'
                 ' "expected": "ok", "sets": [], "description": "d", "constants": {}}]}')
    with pytest.raises(ManifestError, match="names its base"):
        load_manifest(p)
    p.write_text(p.read_text().replace('"expected": "ok"', '"expected": "Agreement"'))
    with pytest.raises(ManifestError, match="expect 'ok'"):
        load_manifest(p)


def test_gray_failure_and_handoff_mutants_are_in_the_standard_set() -> None:
    standard = {m.name: m for m in MANIFEST.select("standard")}
    expected = {"Mutant_NoPeerConfirm": "NoNeedlessElection",
                "Mutant_VouchWithoutLease": "EventuallyConnectedLease",
                "Mutant_SkipWaitWithoutHandoff": "LeaseExclusivity",
                "Mutant_ServeAfterRelinquish": "LeaseExclusivity",
                "Mutant_RenewAfterRelinquish": "LeaseExclusivity",
                "Mutant_NoHandoffSkip": "HandoffGap"}
    for name, prop in expected.items():
        assert standard[name].kind == "mutant" and standard[name].expected == prop, name
    for name in ("Gray", "GrayLiveness", "Handoff", "HandoffGap"):
        assert standard[name].kind == "correct", name
