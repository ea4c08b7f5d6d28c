"""The mutation matrix: which checking layer catches which seeded bug, and how fast.

For every bug of conformance/mutants.py (and the correct implementation, which no
layer may flag) it runs:

* ``hypothesis``: the state machine of conformance/stateful.py under the CI profile
  (generation only: the time is time to detection, not to a shrunk example);
* a scripted scenario (``scenario_config``/``script``), then over its traces and
  history: ``monitor`` (the invariant monitor, as ``dynaspec replay`` runs it),
  ``linearizability``, ``z3-leases`` (could the logged leases have overlapped?) and
  ``tlc`` (trace validation of the first ``TLC_EVENTS`` events).

The membership bugs (``MEMBERSHIP_BUGS``, issue 9: log replicas, membership change,
healing) run on a second scenario, ``heal`` (``heal_config``/``heal_script``): a
follower is killed for good and the leader heals the group with a spare, and the
script adds the two situations healing alone does not reach (a log replica trying to
lead, and a change proposed while another cannot commit). The correct implementation
runs on both scenarios; the Hypothesis layer is not run for membership bugs (a
missed bug costs a whole CI-profile run).

``StaleLeaseRequest`` (``mutants.LIVENESS_BUGS``) is a liveness bug: every step it takes
is one the spec allows, so the safety layers miss it by design (their rows say so) and
the two-layer rule does not apply to it; the explore layer's liveness check must find it.

The scenario is one run per seed, repeated with the next seed while some layer has
not caught the bug (up to ``seeds``); a layer's seconds add up the scenario runs and
its own checking until it first caught the bug.

The ``explore`` layer (``explore_row``) runs only when named (``--layer explore``;
``make explore-bugs`` writes build/mutation-matrix-explore.json): ``dynaspec explore``'s
seed sweep with the bug seeded, each seed its own fault mix, until a seed fails; that
seed is shrunk, and the row records seeds-to-detection and both reproductions. A sweep
per bug takes minutes, past ``make test``'s budget, so the default matrix leaves it out.

Rows: ``{bug, layer, caught, seconds, detail, scenario}`` (explore rows add their
figures); written to build/mutation-matrix.json.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hypothesis import Phase
from hypothesis.stateful import run_state_machine_as_test

from conformance import mutants
from conformance.history_vs_trace import history_vs_trace_layer
from conformance.lease_theorem import require_lease_safety
from conformance.monitor import Monitor
from conformance.mutation_gray import (
    GRAY_BUGS,
    GRAY_SCENARIO_OF,
    gray_config,
    gray_script,
    handoff_config,
    handoff_script,
)
from conformance.mutation_late import LATE_SCENARIO_OF, late_config, late_script
from conformance.stateful import PROFILES, ReplicationMachine
from conformance.trace_loader import Located, event_to_obj, read_trace
from conformance.trace_validation import TimingConfig, validate_events
from reference import replica as replica_mod
from reference.client import HistoryRecord
from reference.cluster import SimConfig, World
from reference.healing import HealConfig
from reference.messages import Change
from reference.node import NodeConfig
from reference.workload import WorkloadConfig

LAYERS = ("hypothesis", "monitor", "linearizability", "z3-leases", "history-vs-trace", "tlc",
          "explore")
DEFAULT_LAYERS = LAYERS[:-1]
"""What the matrix runs unless layers are named: all but ``explore``, a seed sweep per
bug too long for ``make test`` (``make explore-bugs`` runs it)."""
# The explore layer: `dynaspec explore` (conformance/explore.py) with the bug seeded,
# seeds 1, 2... until one fails (then shrunk), up to EXPLORE_SEEDS; the correct
# implementation must pass EXPLORE_CLEAN_SEEDS. Short runs: most bugs show in seconds.
EXPLORE_SEEDS = 60
EXPLORE_CLEAN_SEEDS = 30
EXPLORE_DURATION_US = 5_000_000
EXPLORE_LIVENESS_US = 10_000_000
# TLC validates a scenario run's first events only: its cost grows faster than the
# trace, and every seeded bug shows by item ~1,050 (the matrix's rows name the item),
# while the correct runs pay for every event, three seeds by four scenarios.
TLC_EVENTS = 1200
# The correct implementation's Hypothesis row: pytest's test_stateful already runs the
# CI profile on it (random examples); here a fixed, smaller derandomized set.
CORRECT_EXAMPLES = 100
SECOND = 1_000_000


@dataclass(slots=True)
class Row:
    bug: str
    layer: str
    caught: bool
    seconds: float
    detail: str = ""
    scenario: str = "lease"
    """The scripted scenario the scenario layers ran ("lease" or "heal"; ``swarm``: the
    explore layer's seed sweep)."""
    data: dict[str, Any] | None = None
    """The explore layer's figures: seeds to detection, the reproduction, shrunk."""

    def to_json(self) -> dict[str, Any]:
        return {"bug": self.bug, "layer": self.layer, "caught": self.caught,
                "seconds": round(self.seconds, 2), "detail": self.detail,
                "scenario": self.scenario, **(self.data or {})}


def scenario_config(seed: int) -> SimConfig:
    """A small group with fast elections (so the lease wait is what keeps leases apart),
    drifting clocks, and light load (so TLC can validate the whole interesting part)."""
    # Elections on timeout alone (no peer confirmation): the scripted cut must depose the
    # leader at once, and these bugs are about leases, not failure detection.
    return SimConfig(seed=seed, clients=2, duration_us=5 * SECOND, settle_us=2 * SECOND,
                     peer_confirm=False,
                     max_drift_us=10_000, max_rate_ppm=20_000, renew_ahead_us=900_000,
                     workload=WorkloadConfig(keys=4, think_us=20_000),
                     node=NodeConfig(election_timeout_us=200_000, disk_sync_us=500))


def script(world: World) -> None:
    """Scripted faults: the leader is cut off from the other replicas (clients still
    reach it), then the new leader crashes (and a bit of its WAL rots), then a follower
    crashes."""
    sim = world.sim

    def cut_leader() -> None:
        leader = world.leader()
        if leader is not None:
            others = [n for n in world.nodes if n != leader]
            world.note(f"partition {leader} from {others}")
            world.net.partition([leader], others)

    def crash_leader() -> None:
        leader = world.leader()
        if leader is not None:
            world.crash(leader)
            # Rot in the newest records, the ones recovery is most likely to depend on.
            world.nodes[leader].flip_wal_bit(within_last=400)
            world.note(f"flip_bit {leader}")
            sim.schedule(400_000, world.restart, leader)

    def crash_follower() -> None:
        leader = world.leader()
        up = [n for n in world.up_nodes() if n != leader]
        if up:
            world.crash(up[0])
            sim.schedule(500_000, world.restart, up[0])

    sim.schedule_at(800_000, cut_leader)
    sim.schedule_at(2_000_000, world.heal)
    sim.schedule_at(2_300_000, crash_leader)
    sim.schedule_at(3_300_000, crash_follower)


# --- membership bugs (issue 9) ---------------------------------------------------------
#
# Seeded the way conformance/mutants.py seeds its bugs (a seam of ``Replica`` replaced
# for the duration of ``mutants.active``), registered in ``mutants.BUGS`` on import so
# that ``mutants.active`` and ``dynaspec mutation-matrix --bug`` know them. They run on
# the ``heal`` scenario (``heal_config``/``heal_script``), not the lease scenario.


def _patched_method(name: str, old: str, new: str) -> Any:
    """``Replica.<name>`` with ``old`` replaced by ``new`` (see mutants.patched_method)."""
    return mutants.patched_method(replica_mod.Replica, name, old, new)


def _two_changes_in_flight() -> list[tuple[Any, str, Any]]:
    # change_refusal (which may_change is built on) without "every configuration command
    # proposed is committed".
    return [(replica_mod.Replica, "change_refusal", _patched_method(
        "change_refusal", 'return "a change in flight"', "pass"))]


def _removed_vote_counts() -> list[tuple[Any, str, Any]]:
    # Every vote counts, a removed (or never added) replica's too: the numerator is no
    # longer restricted to the deciding view's members (spec CountAllVotes).
    def commit_quorum(self: replica_mod.Replica, votes: set[str]) -> bool:
        return 2 * len(votes) > len(self._quorum_members())

    return [(replica_mod.Replica, "commit_quorum", commit_quorum)]


def _log_replica_leads() -> list[tuple[Any, str, Any]]:
    # Any member (a log replica too) may start an election and win it (spec
    # AnyMemberLeads); a B-tree is still needed to lead.
    return [
        (replica_mod.Replica, "phase1a", _patched_method(
            "phase1a", 'self.kind() != "storage"', 'self.kind() == "none"')),
        (replica_mod.Replica, "election", _patched_method(
            "election", 'cfg.get(self.node_id) != "storage"', 'cfg.get(self.node_id) == "none"')),
    ]


def _snapshot_misses_slot() -> list[tuple[Any, str, Any]]:
    # The installer takes the copy to cover one slot more than it does (as if cut at
    # the commit index before the B-tree caught up): that slot is never applied there.
    # (A trace carries no snapshot contents, so the slot numbers are what can tell.)
    return [(replica_mod.Replica, "install_snapshot", _patched_method(
        "install_snapshot", "self.applied = snap.upto", "self.applied = snap.upto + 1"))]


MEMBERSHIP_BUGS: dict[str, mutants.Bug] = mutants.register(
    mutants.Bug("TwoChangesInFlight", "TwoChangesInFlight",
                "a leader proposes a change while another is uncommitted",
                _two_changes_in_flight),
    mutants.Bug("RemovedVoteCounts", "RemovedVoteCounts",
                "votes of replicas the configuration removed still count", _removed_vote_counts),
    mutants.Bug("LogReplicaLeads", "LogReplicaLeads",
                "a log replica may start an election and lead", _log_replica_leads),
    mutants.Bug("SnapshotMissesSlot", "SnapshotMissesSlot",
                "a snapshot copy misses the last slot it claims to cover",
                _snapshot_misses_slot),
)


def heal_config(seed: int) -> SimConfig:
    """A follower is killed for good at 1 s; the leader heals the group with a log
    replica on the spare (add, remove the dead one, snapshot, promote) by ~3.5 s. Light
    load and a short run keep TLC's trace validation of the whole run short."""
    heal = HealConfig(kill_at_us=HEAL_KILL_AT_US, unhealthy_after_us=1 * SECOND)
    # No peer confirmation: the LogReplicaLeads bug is shown by forcing a log replica's
    # election (log_replica_elects), which confirmation would refuse first.
    return SimConfig(seed=seed, faults="heal", clients=1, duration_us=HEAL_KILL_AT_US + 4 * SECOND,
                     settle_us=500_000, peer_confirm=False,
                     workload=WorkloadConfig(keys=4, think_us=300_000),
                     node=NodeConfig(heal=heal))


HEAL_KILL_AT_US = 1 * SECOND


def heal_script(world: World) -> None:
    """On top of the healing: while the new replica is a log replica holding a B-tree
    (between its snapshot and its promotion) it tries once to start an election (a
    correct replica refuses); after healing, the leader removes a live follower while
    the link to the remaining one is down (so only the removed one's vote could commit
    the change) and, 100 ms later, the one behind the cut link too (a second change in
    flight); the link comes back 1 s after the cut."""
    sim = world.sim
    tried: set[str] = set()

    def log_replica_elects() -> None:
        for name, node in world.nodes.items():
            r = node.replica
            if node.state == "up" and name not in tried and r.has_btree and r.kind() == "log":
                tried.add(name)
                world.note(f"{name} (log replica) tries an election")
                node._step(r.phase1a(r.next_ballot(), node.now()))
        if sim.now < HEAL_KILL_AT_US + 3 * SECOND:
            sim.schedule(1_000, log_replica_elects)

    def remove_a_live_follower() -> None:
        leader = world.leader()
        if leader is None:
            return
        r = world.nodes[leader].replica
        view = r.leader_view
        others = sorted(m for m, k in view.items() if k == "storage" and m != leader
                        and world.nodes[m].state == "up")
        if len(others) < 2:
            return
        keep, drop = others[-1], others[0]
        world.note(f"cut {leader}-{keep}; remove {drop}")
        world.net.partition([leader], [keep])
        world.nodes[leader].propose_change(Change("remove", drop))
        # A second change while the first cannot commit (a correct leader refuses it).
        sim.schedule(100_000, world.nodes[leader].propose_change, Change("remove", keep))
        sim.schedule(1_000_000, world.heal)

    sim.schedule_at(HEAL_KILL_AT_US + 1 * SECOND, log_replica_elects)
    sim.schedule_at(HEAL_KILL_AT_US + 3 * SECOND, remove_a_live_follower)


@dataclass(slots=True)
class ScenarioRun:
    events: list[Located]
    history: list[HistoryRecord]
    timing: TimingConfig
    replicas: list[str]
    seconds: float
    kinds: dict[str, str]
    """Every replica id of the run (spares too) and its kind at the start."""


SCENARIOS: dict[str, tuple[Callable[[int], SimConfig], Callable[[World], None]]] = {
    "lease": (scenario_config, script),
    "heal": (heal_config, heal_script),
    "gray": (gray_config, gray_script),
    "handoff": (handoff_config, handoff_script),
    "late": (late_config, late_script),
}


def scenario_of(bug: str | None) -> str:
    if bug in GRAY_SCENARIO_OF:
        return GRAY_SCENARIO_OF[bug]
    if bug in LATE_SCENARIO_OF:
        return LATE_SCENARIO_OF[bug]
    return "heal" if bug in MEMBERSHIP_BUGS else "lease"


def run_scenario(seed: int, bug: str | None, scenario: str | None = None) -> ScenarioRun:
    make_config, make_script = SCENARIOS[scenario or scenario_of(bug)]
    cfg = make_config(seed).effective()
    names = cfg.ids()  # spares write traces too
    kinds: dict[str, str] = dict(cfg.initial_members())
    sinks = {n: io.BytesIO() for n in names}
    started = time.perf_counter()
    with mutants.active(bug):
        world = World(cfg, sinks, check_config=require_lease_safety)  # type: ignore[arg-type]
        make_script(world)
        world.run()
    seconds = time.perf_counter() - started
    merged: list[tuple[int, int, int, Located]] = []
    for i, n in enumerate(names):
        sinks[n].seek(0)
        for loc in read_trace(sinks[n], f"trace-{n}.jsonl"):
            merged.append((loc.event.real, i, loc.event.seq, loc))
    merged.sort(key=lambda x: x[:3])
    rc = cfg.replica_config()
    timing = TimingConfig(rc.lease_dur_us, rc.lease_margin_us, rc.max_drift_us,
                          rc.renew_ahead_us, peer_confirm=rc.peer_confirm, handoff=cfg.handoff)
    return ScenarioRun([m[3] for m in merged], world.history, timing, names, seconds, kinds)


# --- layers over a scenario run ---------------------------------------------------------


def _monitor(run: ScenarioRun) -> tuple[bool, str]:
    mon = Monitor(run.kinds, run.timing.lease_dur_us, run.timing.lease_margin_us)
    for loc in run.events:
        mon.step(loc.event, loc.where)
        if mon.violations:
            return True, str(mon.violations[0])
    return False, f"{len(run.events)} events, no violation"


def _linearizability(run: ScenarioRun) -> tuple[bool, str]:
    from conformance.linearizability import check_history

    rep = check_history(run.history)
    if rep.ok:
        return False, f"{rep.operations} operations linearizable"
    first = rep.violations[0].explanation if rep.violations else \
        rep.eventual_violations[0].explanation
    return True, first


def _z3_leases(run: ScenarioRun) -> tuple[bool, str]:
    from conformance.trace_leases import check_trace_leases

    res = check_trace_leases([event_to_obj(loc.event) for loc in run.events],
                             run.timing.lease_dur_us,
                             run.timing.max_drift_us,
                             lease_margin_us=run.timing.lease_margin_us)
    return (not res.ok), res.explanation[:300]


def _tlc(run: ScenarioRun) -> tuple[bool, str]:
    res = validate_events(run.events[:TLC_EVENTS], run.timing, replicas=list(run.kinds),
                          kinds=run.kinds)
    return (not res.ok), res.message


SCENARIO_LAYERS: dict[str, Callable[[ScenarioRun], tuple[bool, str]]] = {
    "monitor": _monitor,
    "linearizability": _linearizability,
    "z3-leases": _z3_leases,
    # The client history held against the traces (conformance/history_vs_trace.py).
    "history-vs-trace": history_vs_trace_layer,
    "tlc": _tlc,
}


def _hypothesis(bug: str | None, profile: str) -> tuple[bool, float, str]:
    settings = PROFILES[profile]
    # Generation only (time to detection, not to a shrunk example), derandomized so the
    # matrix is the same run after run.
    settings = type(settings)(settings, phases=[Phase.explicit, Phase.generate],
                              report_multiple_bugs=False, derandomize=True)
    if bug is None:
        settings = type(settings)(settings, max_examples=CORRECT_EXAMPLES)
    started = time.perf_counter()
    try:
        with mutants.active(bug):
            run_state_machine_as_test(ReplicationMachine, settings=settings)
    except Exception as exc:  # any failure of the machine counts as caught
        text = " ".join(str(exc).split())
        return True, time.perf_counter() - started, f"{type(exc).__name__}: {text[:300]}"
    return False, time.perf_counter() - started, "no failure found"


def run_matrix(bugs: Sequence[str | None], layers: Sequence[str] = LAYERS, *,
               seeds: int = 3, profile: str = "ci",
               log: Callable[[str], None] | None = None) -> list[Row]:
    """Every bug on its scenario (membership bugs: ``heal``; the others: ``lease``); the
    correct implementation on both. The Hypothesis layer runs for the bugs of
    conformance/mutants.py only (a membership bug's row says it was not run: a full CI
    profile per bug would double the matrix's time)."""
    rows: list[Row] = []
    if tuple(layers) == LAYERS:  # every layer: the default set (explore only when named)
        layers = DEFAULT_LAYERS

    def emit(row: Row) -> None:
        rows.append(row)
        if log:
            where = "" if row.scenario == "lease" else f" [{row.scenario}]"
            log(f"{row.bug:<18} {row.layer:<16} {'CAUGHT' if row.caught else 'missed'} "
                f"{row.seconds:6.1f}s{where} {row.detail[:100]}")

    for bug in bugs:
        label = bug or "none"
        if "hypothesis" in layers:
            if bug in MEMBERSHIP_BUGS or bug in GRAY_BUGS or bug in LATE_SCENARIO_OF:
                emit(Row(label, "hypothesis", False, 0.0,
                         "not run (membership, gray-failure or late-message bug)",
                         scenario_of(bug)))
            elif bug in mutants.LIVENESS_BUGS:
                emit(Row(label, "hypothesis", False, 0.0,
                         "not run (a liveness bug: the machine checks safety only)",
                         scenario_of(bug)))
            else:
                caught, secs, detail = _hypothesis(bug, profile)
                emit(Row(label, "hypothesis", caught, secs, detail))
        scenarios = list(SCENARIOS) if bug is None else [scenario_of(bug)]
        bug_layers, bug_seeds = layers, seeds
        if bug in mutants.LIVENESS_BUGS:
            # Every step such a bug takes is the spec's: one scenario run shows the safety
            # layers pass it, and TLC (a minute of trace validation) cannot see it at all.
            bug_layers, bug_seeds = [x for x in layers if x != "tlc"], 1
            if "tlc" in layers:
                emit(Row(label, "tlc", False, 0.0, "not run (a liveness bug: every step "
                         "it takes is one the spec allows)", scenario_of(bug)))
        for scenario in scenarios:
            for row in _scenario_rows(bug, label, scenario, bug_layers, bug_seeds):
                emit(row)
        if "explore" in layers:
            emit(explore_row(bug))
    return rows


def explore_row(bug: str | None, seeds: int | None = None, workers: int | None = None) -> Row:
    """The explore layer: a seed sweep with ``bug`` seeded, stopped at the first failing
    seed (shrunk); for the correct implementation, every seed must pass."""
    from conformance.explore import sweep

    label = bug or "none"
    n = seeds or (EXPLORE_CLEAN_SEEDS if bug is None else EXPLORE_SEEDS)
    res = sweep(range(1, n + 1), duration_us=EXPLORE_DURATION_US,
                liveness_us=EXPLORE_LIVENESS_US,
                bug=mutants.BUGS[bug] if bug is not None else None, workers=workers,
                max_failures=None if bug is None else 1)
    first = res.failed[0] if res.failed else None
    if first is None:
        return Row(label, "explore", False, res.seconds,
                   f"no failing seed in {len(res.rows)} seeds ({res.ops:,} ops)", "swarm",
                   {"seeds_run": len(res.rows), "ops": res.ops})
    check, what = next(iter(first.failures.items()))
    shrunk = res.shrunk.get(first.options.seed)
    data: dict[str, Any] = {"seeds_to_detection": res.seeds_to_detection(),
                            "failing_seed": first.options.seed, "check": check,
                            "command": first.options.command(bug, first.failures)}
    if shrunk is not None:
        data["shrunk_command"] = shrunk.options.command(bug, shrunk.failures)
        data["shrink_runs"] = shrunk.runs
    return Row(label, "explore", True, res.seconds,
               f"seed {first.options.seed} ({res.seeds_to_detection()} seeds to detection), "
               f"{check}: {what}", "swarm", data)


def _scenario_rows(bug: str | None, label: str, scenario: str, layers: Sequence[str],
                   seeds: int) -> list[Row]:
    wanted = [x for x in layers if x in SCENARIO_LAYERS]
    spent = dict.fromkeys(wanted, 0.0)
    found: dict[str, Row] = {}
    for seed in range(1, seeds + 1):
        if all(x in found for x in wanted):
            break
        run = run_scenario(seed, bug, scenario)
        for layer in wanted:
            if layer in found:
                continue
            started = time.perf_counter()
            caught, detail = SCENARIO_LAYERS[layer](run)
            spent[layer] += run.seconds + time.perf_counter() - started
            if caught:
                found[layer] = Row(label, layer, True, spent[layer], f"seed {seed}: {detail}",
                                   scenario)
    return [found.get(layer) or Row(label, layer, False, spent[layer],
                                    f"not caught in {seeds} scenario run" + "s" * (seeds != 1),
                                    scenario)
            for layer in wanted]


def verdict(rows: Sequence[Row], min_layers: int = 2) -> list[str]:
    """Problems: a bug caught by fewer than ``min_layers`` layers (a liveness bug of
    ``mutants.LIVENESS_BUGS``: exempt), or not found by an explore row, or the correct
    implementation flagged by any."""
    problems = []
    by_bug: dict[str, list[Row]] = {}
    for r in rows:
        by_bug.setdefault(r.bug, []).append(r)
    for bug, rs in by_bug.items():
        caught = [r.layer for r in rs if r.caught]
        if bug == "none":
            problems += [f"the correct implementation was flagged by {r.layer}: {r.detail}"
                         for r in rs if r.caught]
            continue
        # The explore layer runs only when asked for: then it must find every bug.
        problems += [f"{bug} not found by the explore sweep: {r.detail}"
                     for r in rs if r.layer == "explore" and not r.caught]
        # A liveness bug takes only steps the spec allows: the safety layers cannot see
        # it, and the explore layer (its liveness check) is the one layer that can.
        if len(caught) < min_layers and bug not in mutants.LIVENESS_BUGS:
            problems.append(f"{bug} caught by {len(caught)} layer(s) {caught}, "
                            f"fewer than {min_layers}")
    return problems


__all__ = ["DEFAULT_LAYERS", "GRAY_BUGS", "LAYERS", "MEMBERSHIP_BUGS", "Row", "explore_row",
           "heal_config", "heal_script", "run_matrix", "run_scenario", "verdict"]
