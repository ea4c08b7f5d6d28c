"""Trace validation of gray failures and lease handoff: the runner sets the spec's hooks
(PeerConfirm, HandoffsOn, MaxDownLinks) from the run's configuration, and simulated
traces with link faults, suspicions, probes and a handoff are behaviors of the spec.

The runs have no clients (only elections, leases and the faults), so their traces are
short: about a hundred events each.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import orjson
import pytest

from conformance.trace_loader import Located, TraceInputError, load_trace_dir, member_kinds
from conformance.trace_validation import (
    TimingConfig,
    build_items,
    render,
    run_flags,
    validate_events,
    validate_trace_dir,
)
from reference.cluster import SimConfig
from reference.simulate import run_simulation
from reference.trace_events import action_of

SECOND = 1_000_000
DETECTION = {"Suspect", "AnswerProbe", "ClearSuspicion", "LinkDown", "LinkUp"}


def simulate(out: Path, faults: str) -> Path:
    cfg = SimConfig(seed=1, faults=faults, clients=0, duration_us=8 * SECOND)
    run_simulation(cfg, out)
    return out


@pytest.fixture(scope="module")
def deploy_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulate(tmp_path_factory.mktemp("tv-gray") / "deploy", "deploy")


@pytest.fixture(scope="module")
def gray_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulate(tmp_path_factory.mktemp("tv-gray") / "gray", "gray")


def edit_config(run: Path, to: Path, **changes: object) -> Path:
    """A copy of a run whose config.json has ``changes`` (``replica_config.x`` for a field
    of replica_config)."""
    to.mkdir()
    for f in run.iterdir():
        (to / f.name).write_bytes(f.read_bytes())
    config = orjson.loads((to / "config.json").read_bytes())
    for k, v in changes.items():
        if k.startswith("replica_config."):
            config["replica_config"][k.split(".", 1)[1]] = v
        else:
            config[k] = v
    (to / "config.json").write_bytes(orjson.dumps(config))
    return to


def relinquished_posts_corrected(run: Path, to: Path) -> Path:
    """A copy of a run in which a leader that relinquished its lease reports holding
    none from then on (until it crashes): the spec's HoldsLease includes
    ~Relinquished(r). See ``test_the_reference_reports_a_relinquished_lease``."""
    to.mkdir()
    for f in run.iterdir():
        if not f.name.startswith("trace-"):
            (to / f.name).write_bytes(f.read_bytes())
            continue
        out = []
        relinquished = False
        for line in f.read_bytes().splitlines():
            obj = orjson.loads(line)
            post = obj.get("post")
            if obj["action"] == "LeaseRelinquish":
                relinquished = True
            if post is not None and post["role"] != "leader":
                relinquished = False
            if relinquished and post is not None and post["lease"]:
                post["lease"] = False
            out.append(orjson.dumps(obj))
        (to / f.name).write_bytes(b"\n".join(out) + b"\n")
    return to


# --- the hooks, as rendered ------------------------------------------------------------------


def test_the_hooks_follow_the_run_configuration(deploy_run: Path) -> None:
    events, config = load_trace_dir(deploy_run)
    timing = TimingConfig.from_config_json(config)
    assert (timing.peer_confirm, timing.handoff) == (True, True)
    tla, cfg = render(build_items(events, timing), timing, "M", member_kinds(config))
    assert "TVPeerConfirm == TRUE" in tla and "TVHandoffsOn == TRUE" in tla
    assert "TVMaxDownLinks == 9" in tla  # three replicas: every directed link may fail
    for hook in ("PeerConfirm <- TVPeerConfirm", "HandoffsOn <- TVHandoffsOn",
                 "MaxDownLinks <- TVMaxDownLinks"):
        assert hook in cfg
    assert "held |-> TRUE" in tla and "hears |-> FALSE" in tla  # TLA+ booleans
    off = dataclasses.replace(timing, peer_confirm=False, handoff=False)
    tla_off, _ = render(build_items(events, off), off, "M")
    assert "TVPeerConfirm == FALSE" in tla_off and "TVHandoffsOn == FALSE" in tla_off


def test_a_configuration_that_does_not_say_is_refused_only_with_the_events(
        deploy_run: Path) -> None:
    events, config = load_trace_dir(deploy_run)
    timing = TimingConfig.from_config_json(config)
    unknown = dataclasses.replace(timing, peer_confirm=None, handoff=None)
    with pytest.raises(TraceInputError, match=r"Suspect .*replica_config\.peer_confirm"):
        run_flags(events, unknown)
    without = [e for e in events if action_of(e.event) not in DETECTION
               and not (action_of(e.event) == "LeaseGrant" and e.event.args.m.held)]
    with pytest.raises(TraceInputError, match=r"LeaseRelinquish .*needs handoff"):
        run_flags(without, unknown)
    plain = [e for e in without if action_of(e.event) != "LeaseRelinquish"]
    assert run_flags(plain, unknown) == (False, False)
    with pytest.raises(TraceInputError, match="must be true or false"):
        TimingConfig.from_config_json({**config, "handoff": "yes"})


# --- TLC ------------------------------------------------------------------------------------


def test_a_handoff_trace_is_a_behavior_of_the_spec(deploy_run: Path, tmp_path: Path) -> None:
    events, _ = load_trace_dir(deploy_run)
    acts = [action_of(e.event) for e in events]
    assert "LeaseRelinquish" in acts and "Suspect" in acts and "AnswerProbe" in acts
    i = acts.index("LeaseRelinquish")
    # The successor elects on the handoff and leads without waiting out the lease.
    assert "Phase1a" in acts[i:] and "BecomeLeader" in acts[i:]
    run = relinquished_posts_corrected(deploy_run, tmp_path / "run")
    result = validate_trace_dir(run)
    assert result.ok, (result.message, result.state)


def test_without_handoffs_in_the_configuration_the_relinquish_is_rejected(
        deploy_run: Path, tmp_path: Path) -> None:
    run = relinquished_posts_corrected(deploy_run, tmp_path / "fixed")
    off = edit_config(run, tmp_path / "off", handoff=False)
    result = validate_trace_dir(off)
    assert not result.ok and result.item is not None
    assert result.item["action"] == "LeaseRelinquish", result.message


def test_the_reference_reports_a_relinquished_lease(deploy_run: Path) -> None:
    result = validate_trace_dir(deploy_run)
    assert result.ok, result.message


def _before_a_late_grant(events: list[Located], timing: TimingConfig) -> int:
    """How many events come before the first grant of a lease request that had expired
    on its leader's clock (the spec has dropped it: lease messages live while left > 0)."""
    items = build_items(events, timing)
    for it, loc in zip(items.items, items.origin, strict=True):
        if it["action"] == "LeaseGrant" and it["m"]["left"] == 0:
            assert loc is not None
            return next(i for i, e in enumerate(events) if e is loc)
    return len(events)


def test_a_gray_failure_trace_is_a_behavior_of_the_spec(gray_run: Path) -> None:
    events, config = load_trace_dir(gray_run)
    timing = TimingConfig.from_config_json(config)
    kinds = member_kinds(config)
    n = _before_a_late_grant(events, timing)
    acts = {action_of(e.event) for e in events[:n]}
    assert acts >= DETECTION, acts
    result = validate_events(events[:n], timing, replicas=list(kinds), kinds=kinds)
    assert result.ok, (result.message, result.state)


def test_without_peer_confirmation_in_the_configuration_a_suspicion_is_rejected(
        gray_run: Path, tmp_path: Path) -> None:
    off = edit_config(gray_run, tmp_path / "off", **{"replica_config.peer_confirm": False})
    result = validate_trace_dir(off, max_events=10)
    assert not result.ok and result.item is not None
    assert result.item["action"] == "Suspect", result.message


def test_the_whole_gray_failure_trace(gray_run: Path) -> None:
    result = validate_trace_dir(gray_run)
    assert result.ok, result.message
