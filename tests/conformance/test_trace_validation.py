"""TLC trace validation of real simulated traces (specs/TraceValidation.tla)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import orjson
import pytest

from conformance import mutants
from conformance.trace_loader import TraceInputError, load_trace_dir, member_kinds
from conformance.trace_validation import (
    TimingConfig,
    build_items,
    render,
    validate_events,
    validate_trace_dir,
)
from reference.actions import ACTIONS
from reference.cluster import SimConfig, World
from reference.simulate import run_simulation
from reference.trace_events import action_of
from reference.workload import WorkloadConfig

SECOND = 1_000_000


def crash_leader_early(world: World) -> None:
    """The leader crashes at 1 s and restarts at 1.6 s: a failover early in the trace."""
    def crash() -> None:
        leader = world.leader()
        if leader is not None:
            world.crash(leader)
            world.sim.schedule(600_000, world.restart, leader)

    world.sim.schedule_at(SECOND, crash)


def simulate(out: Path, *, seed: int = 7, bug: str | None = None,
             duration_s: float = 7.0) -> Path:
    # Elections on timeout alone: the seeded-bug test needs the seed-7 timing in which
    # EarlyAck's commit precedes every follower's vote (with peer confirmation the first
    # election comes later, and in that run the votes happen to be sent first).
    cfg = SimConfig(seed=seed, clients=2, duration_us=int(duration_s * SECOND),
                    settle_us=SECOND, workload=WorkloadConfig(think_us=20_000),
                    peer_confirm=False)
    with mutants.active(bug):
        run_simulation(cfg, out, script=crash_leader_early)
    return out


def copy_run(run: Path, to: Path) -> Path:
    """A copy of a simulated run's directory, to edit by hand."""
    to.mkdir()
    for f in run.iterdir():
        (to / f.name).write_bytes(f.read_bytes())
    return to


@pytest.fixture(scope="module")
def crash_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulate(tmp_path_factory.mktemp("tv") / "run")


def test_a_simulated_trace_with_a_failover_is_a_behavior_of_the_spec(crash_trace: Path) -> None:
    events, _ = load_trace_dir(crash_trace)
    assert any(action_of(e.event) == "Crash" for e in events[:1000])
    assert sum(action_of(e.event) == "BecomeLeader" for e in events[:1000]) >= 2
    result = validate_trace_dir(crash_trace, max_events=1000)
    assert result.ok, (result.message, result.state)
    assert result.events == 1000 and "all 1000 events matched" in result.message


def test_the_committed_sample_validates() -> None:
    sample = Path(__file__).resolve().parents[2] / "traces" / "samples" / "crashes-seed7"
    result = validate_trace_dir(sample, max_events=800)
    assert result.ok, (result.message, result.state)


def test_a_seeded_bug_is_reported_at_its_first_unmatched_event(tmp_path: Path) -> None:
    run = simulate(tmp_path / "early-ack", bug="EarlyAck", duration_s=1.0)
    result = validate_trace_dir(run)
    assert not result.ok
    assert result.unmatched is not None and result.item is not None
    assert result.item["action"] == "Commit"
    path, line = result.unmatched.where.rsplit(":", 1)
    recorded = orjson.loads(Path(path).read_bytes().splitlines()[int(line) - 1])
    assert recorded["action"] == "Commit"
    assert result.message.startswith(result.unmatched.where)
    assert "cursor" in result.state and "ballot" in result.state


def test_a_configuration_without_the_drift_margin_is_rejected(crash_trace: Path) -> None:
    events, config = load_trace_dir(crash_trace)
    timing = TimingConfig.from_config_json(config)
    bad = dataclasses.replace(timing, lease_margin_us=4 * timing.max_drift_us - 1)
    result = validate_events(events[:50], bad)
    assert not result.ok and "LeaseMargin >= 2 * MaxDrift" in result.message


def test_time_advances_only_before_time_dependent_steps(crash_trace: Path) -> None:
    events, config = load_trace_dir(crash_trace)
    items = build_items(events[:400], TimingConfig.from_config_json(config))
    kinds = [it["kind"] for it in items.items]
    for i, it in enumerate(items.items):
        if it["kind"] == "tick":
            nxt = items.items[i + 1]
            # before a step that reads time, or one whose replica reports a lease
            assert ACTIONS[nxt["action"]].reads_time or nxt["post"]["lease"]
            assert it["d"] > 0
            assert all(v >= 0 for v in it["off"].values())
    assert kinds.count("act") == 400
    grants = [it for it in items.items if it.get("action") == "LeaseGrant"]
    assert grants and all(0 < g["m"]["left"] <= 1_000_000 for g in grants)


def test_the_generated_module_dispatches_every_traced_action_and_checks_safety(
        crash_trace: Path) -> None:
    events, config = load_trace_dir(crash_trace)
    timing = TimingConfig.from_config_json(config)
    tla, cfg = render(build_items(events[:20], timing), timing, "M")
    for a in ACTIONS.values():
        if a.traced or a.name == "Tick":
            assert f'e.action = "{a.name}" -> TV{a.name}(e)' in tla
    assert "INVARIANTS\n    TraceSafety" in cfg


@pytest.mark.parametrize(("field", "edit"), [("top", 1), ("bal", 1), ("applied", -1),
                                             ("lease", True)])
def test_a_hand_edited_post_state_is_rejected_at_its_line(
        tmp_path: Path, crash_trace: Path, field: str, edit: int | bool) -> None:
    """One field of one line's state summary, edited by hand: rejected with file:line.
    (A lease claimed by a follower: the spec's replica holds none.)"""
    edited = copy_run(crash_trace, tmp_path / "edited")
    path = edited / "trace-r2.jsonl"
    lines = path.read_bytes().splitlines()
    target = next(i for i, ln in enumerate(lines) if i >= 40
                  and orjson.loads(ln)["post"]["applied"] > 0
                  and orjson.loads(ln)["post"]["role"] == "follower")
    ev = orjson.loads(lines[target])
    if isinstance(edit, bool):
        ev["post"][field] = edit
    else:
        ev["post"][field] += edit
    lines[target] = orjson.dumps(ev)
    path.write_bytes(b"\n".join(lines) + b"\n")
    result = validate_trace_dir(edited, max_events=1000)
    assert not result.ok
    assert result.message.startswith(f"{path}:{target + 1}: post-state differs"), result.message


def test_bad_input_names_the_file_and_line(tmp_path: Path, crash_trace: Path) -> None:
    with pytest.raises(TraceInputError, match=r"config\.json"):
        load_trace_dir(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_bytes((crash_trace / "config.json").read_bytes())
    lines = (crash_trace / "trace-r1.jsonl").read_bytes().splitlines()
    (bad / "trace-r1.jsonl").write_bytes(b"\n".join([lines[0], b"{oops", lines[1]]) + b"\n")
    with pytest.raises(TraceInputError, match=r"trace-r1.jsonl:2: not JSON"):
        load_trace_dir(bad)
    ev = orjson.loads(lines[0])
    del ev["real"]
    (bad / "trace-r1.jsonl").write_bytes(orjson.dumps(ev) + b"\n")
    with pytest.raises(TraceInputError, match=r"trace-r1.jsonl:1: no 'real'"):
        load_trace_dir(bad)
    ev = orjson.loads(lines[0])
    ev["args"] = {}
    (bad / "trace-r1.jsonl").write_bytes(orjson.dumps(ev) + b"\n")
    with pytest.raises(TraceInputError, match=r"trace-r1.jsonl:1: not a valid trace event"):
        load_trace_dir(bad)


@pytest.mark.parametrize(("bug", "hook", "mutated", "invariant"), [
    ("EarlyAck", "CommitQuorum(C, S) == IsQuorumOf(C, S)", "CommitQuorum(C, S) == S # {}",
     "Durability"),
    ("NoLeaseWait", "NewLeaderWait == LeaseDur + LeaseMargin", "NewLeaderWait == 0",
     "LeaseExclusivity"),
])
def test_the_safety_invariants_are_checked_in_every_state(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bug: str, hook: str, mutated: str,
        invariant: str) -> None:
    """A seeded bug against a spec whose hook has the same bug: every step matches, so
    only the invariants checked in every state can object, and the bug's one does."""
    import conformance.trace_validation as tv
    from conformance.mutation_matrix import TLC_EVENTS, run_scenario

    specs = tmp_path / "specs"
    specs.mkdir()
    for f in tv.SPECS.glob("*.tla"):
        (specs / f.name).write_text(f.read_text())
    spec = (specs / "Replication.tla").read_text()
    assert spec.count(hook) == 1
    (specs / "Replication.tla").write_text(spec.replace(hook, mutated))
    monkeypatch.setattr(tv, "SPECS", specs)
    run = run_scenario(1, bug)
    result = tv.validate_events(run.events[:TLC_EVENTS], run.timing, replicas=run.replicas)
    assert not result.ok
    assert f"{invariant} is violated in the spec state after this step" in result.message, \
        result.message
    assert result.unmatched is not None and result.message.startswith(result.unmatched.where)


def test_membership_changes_and_member_kinds_are_rendered_for_the_spec(tmp_path: Path) -> None:
    """A healing run's changes become the spec's change commands, and config.json's
    member kinds its InitConfig (the spare is not a member), without assuming names."""
    cfg = SimConfig(seed=1, clients=1, faults="heal", duration_us=12 * SECOND,
                    workload=WorkloadConfig(think_us=100_000))
    run_simulation(cfg, tmp_path)
    events, config = load_trace_dir(tmp_path)
    timing = TimingConfig.from_config_json(config)
    kinds = member_kinds(config)
    assert sorted(k for k in kinds.values()) == ["none", "storage", "storage", "storage"]
    spare = next(r for r, k in kinds.items() if k == "none")
    items = build_items(events, timing, list(kinds))
    tla, _ = render(items, timing, "M", kinds)
    assert f'"{spare}" :> "none"' in tla
    assert f'[op |-> "add", who |-> "{spare}", kind |-> "log"]' in tla
    assert f'[op |-> "promote", who |-> "{spare}"]' in tla
    assert '[op |-> "remove", who |-> ' in tla
    acts = {it["action"] for it in items.items}
    assert {"AddMember", "RemoveMember", "PromoteMember", "InstallSnapshot", "Kill"} <= acts
    # Validating the prefix before the failure (the spare has no events yet) works too.
    first_kill = next(i for i, loc in enumerate(events) if action_of(loc.event) == "Kill")
    res = validate_events(events[:min(first_kill, 60)], timing, replicas=list(kinds),
                          kinds=kinds)
    assert res.ok, res.message


def test_a_step_by_a_killed_node_is_rejected_at_its_line(tmp_path: Path,
                                                          crash_trace: Path) -> None:
    """A Kill line inserted early in r2's trace: r2's next line is not a step of the spec
    (the node's disk is gone), reported at that line."""
    edited = copy_run(crash_trace, tmp_path / "killed")
    path = edited / "trace-r2.jsonl"
    lines = path.read_bytes().splitlines()
    at = 5
    before = orjson.loads(lines[at - 1])
    kill = {"action": "Kill", "v": before["v"], "node": "r2", "replica": "r2",
            "seq": before["seq"] + 1, "clock": before["clock"], "real": before["real"],
            "kind": "env", "args": {}}
    later = [orjson.loads(ln) for ln in lines[at:]]
    for ev in later:
        ev["seq"] += 1
    path.write_bytes(b"\n".join([*lines[:at], orjson.dumps(kill),
                                 *map(orjson.dumps, later)]) + b"\n")
    result = validate_trace_dir(edited, max_events=400)
    assert not result.ok
    assert result.message.startswith(f"{path}:{at + 2}: event not matched"), result.message


def test_a_checkpoint_beyond_what_its_replica_applied_is_rejected(tmp_path: Path) -> None:
    """WAL truncation: a Checkpoint line is a step only if its replica's B-tree has applied
    the slots it covers; the same line claiming more is rejected at its line."""
    from reference.node import NodeConfig

    cfg = SimConfig(seed=3, clients=2, duration_us=3 * SECOND, settle_us=SECOND,
                    node=NodeConfig(checkpoint_every=4),
                    workload=WorkloadConfig(think_us=20_000))
    run = tmp_path / "run"
    run_simulation(cfg, run)
    path = run / "trace-r1.jsonl"
    lines = path.read_bytes().splitlines()
    at = next(i for i, ln in enumerate(lines) if orjson.loads(ln)["action"] == "Checkpoint")
    events, config = load_trace_dir(run)
    timing = TimingConfig.from_config_json(config)
    upto = next(i for i, loc in enumerate(events) if loc.where == f"{path}:{at + 1}")
    assert validate_events(events[:upto + 1], timing, replicas=["r1", "r2", "r3"]).ok
    ev = orjson.loads(lines[at])
    ev["args"]["upto"] = ev["post"]["applied"] + 1 if "post" in ev else ev["args"]["upto"] + 50
    lines[at] = orjson.dumps(ev)
    path.write_bytes(b"\n".join(lines) + b"\n")
    events, _ = load_trace_dir(run)
    result = validate_events(events[:upto + 1], timing, replicas=["r1", "r2", "r3"])
    assert not result.ok
    assert result.message.startswith(f"{path}:{at + 1}: event not matched"), result.message
