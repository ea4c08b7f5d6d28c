"""``dynaspec simulate``: run a simulated group and write its traces, history and summary.

Output directory layout (format: traces/FORMAT.md)::

    trace-<replica>.jsonl   one JSON event per line, per node
    history.jsonl           one client operation per line
    config.json             the configuration that ran (enough to re-run it)
    summary.json            operations, latency, leader changes, availability, audit
    timeline.png            with ``plot``: roles, leases, faults and availability over time
                            (reference/timeline_plot.py, from the files above)

Everything written is a function of the configuration alone (wall-clock figures
are printed, never written), so two runs with the same seed give identical bytes.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

import orjson

from reference.cluster import SimConfig, World
from reference.replica import ReplicaConfig
from reference.summary import healing_lines, serving_lines, serving_summary, summarize
from reference.trace import FORMAT_VERSION


def config_to_json(cfg: SimConfig) -> dict[str, Any]:
    """The configuration as asked for, plus ``replica_config``: the lease timing the
    replicas actually ran with (after the fault schedule's adjustments), which the
    checkers read instead of re-deriving it, and ``members``: every replica id of the
    group as it started, ``{"id", "node", "incarnation", "kind"}`` (kind ``"storage"``,
    ``"log"`` or ``"none"`` for a spare; the simulator runs one replica per node and
    never reuses a node, so ``node`` equals ``id`` and ``incarnation`` is 1)."""
    eff = cfg.effective()
    members = [{"id": r, "node": r, "incarnation": 1, "kind": k}
               for r, k in eff.initial_members().items()]
    return {"format": FORMAT_VERSION, **dataclasses.asdict(cfg),
            "replica_config": dataclasses.asdict(eff.replica_config()),
            "members": members}


@dataclasses.dataclass(slots=True)
class SimulationResult:
    world: World
    summary: dict[str, Any]
    wall_seconds: float


def run_simulation(cfg: SimConfig, out_dir: Path | None,
                   availability_interval_us: int | None = None,
                   progress: Callable[[int, int], None] | None = None,
                   script: Callable[[World], None] | None = None, *,
                   check_config: Callable[[ReplicaConfig], None] | None = None,
                   plot: bool = False) -> SimulationResult:
    """Run ``cfg``; with ``out_dir``, write the files listed in the module docstring
    (``timeline.png`` only with ``plot``).

    ``script(world)`` may schedule extra faults before the run starts (tests do).
    ``check_config`` is passed to ``World``: it may refuse the replicas' configuration
    by raising before the run starts.
    """
    with ExitStack() as stack:
        sinks: dict[str, IO[bytes]] | None = None
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            sinks = {}
            for name in cfg.effective().ids():
                sinks[name] = stack.enter_context(
                    (out_dir / f"trace-{name}.jsonl").open("wb", buffering=1 << 20))
        started = time.perf_counter()
        world = World(cfg, sinks, check_config=check_config)
        if script is not None:
            script(world)
        world.run(progress)
        wall = time.perf_counter() - started
    report = world.audit()
    elections_won = sum(n.action_counts["BecomeLeader"] for n in world.nodes.values())
    # Leader changes: elections won after the group's first leader.
    leader_changes = max(0, elections_won - 1)
    extra = {
        "seed": cfg.seed,
        "faults": cfg.faults,
        "replicas": cfg.replicas,
        "duration_s": cfg.duration_us / 1e6,
        "faults_injected": dict(sorted(world.faults_injected.items())),
        "fault_log": [{"t_s": t / 1e6, "what": w} for t, w in world.fault_log],
        "quarantined": {n: node.quarantine_reason for n, node in world.nodes.items()
                        if node.state == "quarantined"},
        "network": {"sent": world.net.stats.sent, "delivered": world.net.stats.delivered,
                    "duplicated": world.net.stats.duplicated,
                    # (only with late messages on: runs without them keep their bytes)
                    **({"late": world.net.stats.late} if world.net.stats.late else {}),
                    "dropped": dict(sorted(world.net.stats.dropped.items()))},
        "events": world.sim.events_run,
        "elections_won": elections_won,
        "peer_confirm": cfg.peer_confirm,
        "handoff": cfg.handoff,
        "strong_reads": serving_summary(world.serving_windows(), cfg.duration_us,
                                        world.restarts_planned),
    }
    healing = world.healing()
    if healing is not None:
        extra["healing"] = healing
        heal = world.config.node.heal
        if heal.compare:
            extra["healing_compare"] = compare_healing(cfg, not heal.log_replicas)
    summary = summarize(world.history, duration_us=cfg.duration_us,
                        leader_changes=leader_changes, audit=report,
                        interval_us=availability_interval_us, extra=extra)
    if out_dir is not None:
        opt = orjson.OPT_APPEND_NEWLINE
        with (out_dir / "history.jsonl").open("wb") as f:
            for h in world.history:
                f.write(orjson.dumps(h.to_json(), option=opt))
        (out_dir / "config.json").write_bytes(
            orjson.dumps(config_to_json(cfg), option=orjson.OPT_INDENT_2 | opt))
        (out_dir / "summary.json").write_bytes(
            orjson.dumps(summary, option=orjson.OPT_INDENT_2 | opt))
        if plot:
            from reference.timeline_plot import write_timeline  # matplotlib: only if asked
            write_timeline(out_dir)
    return SimulationResult(world, summary, wall)


def compare_healing(cfg: SimConfig, log_replicas: bool) -> dict[str, Any] | None:
    """The same run (same seed, no output) with the other healing mode: its timeline."""
    eff = cfg.effective()
    heal = dataclasses.replace(eff.node.heal, log_replicas=log_replicas, compare=False)
    other = dataclasses.replace(cfg, node=dataclasses.replace(cfg.node, heal=heal))
    world = World(other)
    world.run()
    return world.healing()


def render_summary(s: dict[str, Any], wall_seconds: float) -> list[str]:
    ops, lat, av = s["operations"], s["latency"], s["availability"]
    lines = [
        f"seed {s['seed']}  faults {s['faults']}  replicas {s['replicas']}  "
        f"simulated {s['duration_s']:g}s  wall {wall_seconds:.2f}s  "
        f"({ops['invoked'] / max(wall_seconds, 1e-9):,.0f} ops/s)",
        f"operations: {ops['invoked']} invoked, {ops['completed']} completed, "
        f"{ops['succeeded']} succeeded  {ops['by_status']}",
        f"latency: p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms  "
        + "  ".join(f"{k} p50 {v['p50_ms']}/p99 {v['p99_ms']} ms"
                    for k, v in lat["by_kind"].items()),
        f"leader changes: {s['leader_changes']}   unavailable periods: "
        + (", ".join(f"{p['start_s']:.2f}-{p['end_s']:.2f}s" for p in s["unavailable_periods"])
           or "none"),
        f"availability per {av['interval_s']:g}s interval: overall {av['overall']}, "
        f"worst {av['min_interval']}",
        f"faults injected: {s['faults_injected'] or 'none'}"
        + (f"   quarantined: {s['quarantined']}" if s["quarantined"] else ""),
    ]
    lines += serving_lines(s)
    lines += healing_lines(s)
    audit = s.get("audit")
    if audit is not None:
        verdict = "ok" if audit["ok"] else "VIOLATION"
        lines.append(
            f"audit: {verdict}: {audit['acked_writes']} acknowledged writes in "
            f"{audit['chosen_slots']} chosen slots, {audit['strong_reads']} strong and "
            f"{audit['eventual_reads']} eventual reads checked")
        for key in ("lost_writes", "wrong_results", "stale_reads", "phantom_reads", "divergence"):
            lines += [f"  {key}: {p}" for p in audit[key][:5]]
    return lines
