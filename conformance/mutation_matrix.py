"""The mutation matrix: which checking layer catches which seeded bug, and how fast.

For every bug of conformance/mutants.py (and the correct implementation, which no
layer may flag) it runs:

* ``hypothesis``: the state machine of conformance/stateful.py under the CI profile
  (generation only: the time is time to detection, not to a shrunk example);
* a scripted scenario (``scenario_config``/``script``), then over its traces and
  history: ``monitor`` (the invariant monitor, as ``dynaspec replay`` runs it),
  ``linearizability``, ``z3-leases`` (could the logged leases have overlapped?) and
  ``tlc`` (trace validation of the first ``TLC_EVENTS`` events).

The scenario is one run per seed, repeated with the next seed while some layer has
not caught the bug (up to ``seeds``); a layer's seconds add up the scenario runs and
its own checking until it first caught the bug.

Rows: ``{bug, layer, caught, seconds, detail}``; written to build/mutation-matrix.json.
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
from conformance.lease_theorem import require_lease_safety
from conformance.monitor import Monitor
from conformance.stateful import PROFILES, ReplicationMachine
from conformance.trace_loader import Located, event_to_obj, read_trace
from conformance.trace_validation import TimingConfig, validate_events
from reference.client import HistoryRecord
from reference.cluster import SimConfig, World, replica_names
from reference.node import NodeConfig
from reference.workload import WorkloadConfig

LAYERS = ("hypothesis", "monitor", "linearizability", "z3-leases", "tlc")
TLC_EVENTS = 2000
SECOND = 1_000_000


@dataclass(slots=True)
class Row:
    bug: str
    layer: str
    caught: bool
    seconds: float
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"bug": self.bug, "layer": self.layer, "caught": self.caught,
                "seconds": round(self.seconds, 2), "detail": self.detail}


def scenario_config(seed: int) -> SimConfig:
    """A small group with fast elections (so the lease wait is what keeps leases apart),
    drifting clocks, and light load (so TLC can validate the whole interesting part)."""
    return SimConfig(seed=seed, clients=2, duration_us=5 * SECOND, settle_us=2 * SECOND,
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


@dataclass(slots=True)
class ScenarioRun:
    events: list[Located]
    history: list[HistoryRecord]
    timing: TimingConfig
    replicas: list[str]
    seconds: float


def run_scenario(seed: int, bug: str | None) -> ScenarioRun:
    cfg = scenario_config(seed)
    names = replica_names(cfg.replicas)
    sinks = {n: io.BytesIO() for n in names}
    started = time.perf_counter()
    with mutants.active(bug):
        world = World(cfg, sinks, check_config=require_lease_safety)  # type: ignore[arg-type]
        script(world)
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
                          rc.renew_ahead_us)
    return ScenarioRun([m[3] for m in merged], world.history, timing, names, seconds)


# --- layers over a scenario run ---------------------------------------------------------


def _monitor(run: ScenarioRun) -> tuple[bool, str]:
    mon = Monitor(run.replicas, run.timing.lease_dur_us, run.timing.lease_margin_us)
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
    res = validate_events(run.events[:TLC_EVENTS], run.timing, replicas=run.replicas)
    return (not res.ok), res.message


SCENARIO_LAYERS: dict[str, Callable[[ScenarioRun], tuple[bool, str]]] = {
    "monitor": _monitor,
    "linearizability": _linearizability,
    "z3-leases": _z3_leases,
    "tlc": _tlc,
}


def _hypothesis(bug: str | None, profile: str) -> tuple[bool, float, str]:
    settings = PROFILES[profile]
    # Generation only (time to detection, not to a shrunk example), derandomized so the
    # matrix is the same run after run.
    settings = type(settings)(settings, phases=[Phase.explicit, Phase.generate],
                              report_multiple_bugs=False, derandomize=True)
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
    rows: list[Row] = []
    for bug in bugs:
        label = bug or "none"
        if "hypothesis" in layers:
            caught, secs, detail = _hypothesis(bug, profile)
            rows.append(Row(label, "hypothesis", caught, secs, detail))
            if log:
                log(f"{label:<17} hypothesis       {'CAUGHT' if caught else 'missed'} "
                    f"{secs:6.1f}s {detail[:100]}")
        wanted = [x for x in layers if x in SCENARIO_LAYERS]
        spent = dict.fromkeys(wanted, 0.0)
        found: dict[str, Row] = {}
        for seed in range(1, seeds + 1):
            if all(x in found for x in wanted):
                break
            run = run_scenario(seed, bug)
            for layer in wanted:
                if layer in found:
                    continue
                started = time.perf_counter()
                caught, detail = SCENARIO_LAYERS[layer](run)
                spent[layer] += run.seconds + time.perf_counter() - started
                if caught:
                    found[layer] = Row(label, layer, True, spent[layer],
                                       f"seed {seed}: {detail}")
        for layer in wanted:
            row = found.get(layer) or Row(label, layer, False, spent[layer],
                                          f"not caught in {seeds} scenario runs")
            rows.append(row)
            if log:
                log(f"{label:<17} {layer:<16} {'CAUGHT' if row.caught else 'missed'} "
                    f"{row.seconds:6.1f}s {row.detail[:100]}")
    return rows


def verdict(rows: Sequence[Row], min_layers: int = 2) -> list[str]:
    """Problems: a bug caught by fewer than ``min_layers`` layers, or the correct
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
        elif len(caught) < min_layers:
            problems.append(f"{bug} caught by {len(caught)} layer(s) {caught}, "
                            f"fewer than {min_layers}")
    return problems


__all__ = ["LAYERS", "Row", "run_matrix", "run_scenario", "verdict"]
