"""``dynaspec explore``: one seed's run and verdict, in memory (nothing written).

The checks are ``dynaspec replay``'s without TLC, over the same events: the traces are
written to memory and read back by the trace loader, merged by real time as
conformance/mutation_matrix.py ``run_scenario`` merges them. Then:

* ``audit``: the simulator's own end-of-run audit (reference/audit.py);
* ``monitor``: the invariant monitor (conformance/monitor.py);
* ``linearizability``: the history (conformance/linearizability);
* ``z3-leases``: could the logged leases have overlapped? (conformance/trace_leases.py);
* ``liveness``: after the faults heal, a probe write must succeed within the bound
  (``SimConfig.liveness_us``), or the seed is stuck;
* ``exception``: the run itself raised (a reference bug, or a seeded one).
"""

from __future__ import annotations

import io
import time
import traceback
from dataclasses import dataclass, field
from typing import IO, Any

from conformance import mutants
from conformance.errors import one_line
from conformance.explore_mix import Options
from conformance.lease_theorem import require_lease_safety
from conformance.monitor import Monitor
from conformance.trace_loader import Located, event_to_obj, read_trace
from reference.cluster import World

CHECKS = ("exception", "audit", "monitor", "linearizability", "z3-leases", "liveness")


@dataclass(slots=True)
class SeedResult:
    options: Options
    failures: dict[str, str] = field(default_factory=dict)
    """Check -> its first problem, for every check that failed."""
    ops: int = 0
    """Client operations invoked (the probe's too)."""
    events: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    """What was left unchecked (keys the linearizability search could not decide)."""

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        return {"seed": self.options.seed, "options": self.options.to_json(),
                "verdict": "pass" if self.ok else "fail", "failures": self.failures,
                "ops": self.ops, "events": self.events, "seconds": round(self.seconds, 3),
                "notes": self.notes}


def run_seed(options: Options, bug: mutants.Bug | None = None) -> SeedResult:
    """Run ``options`` (with ``bug`` seeded) and check it. ``bug`` is the object rather
    than its name: a Dask worker unpickles it from the module that defines it, which
    registers the module's bugs there too."""
    started = time.perf_counter()
    result = SeedResult(options)
    try:
        _run_and_check(options, bug, result)
    except Exception as exc:
        where = traceback.extract_tb(exc.__traceback__)[-1]
        result.failures["exception"] = one_line(
            f"{type(exc).__name__}: {exc} (at {where.filename}:{where.lineno})")[:500]
    result.seconds = time.perf_counter() - started
    return result


def _run_and_check(options: Options, bug: mutants.Bug | None, result: SeedResult) -> None:
    cfg = options.sim_config().effective()
    names = cfg.ids()
    sinks: dict[str, IO[bytes]] = {n: io.BytesIO() for n in names}
    if bug is not None:
        mutants.register(bug)
    with mutants.active(bug.name if bug is not None else None):
        # The same configuration check `dynaspec simulate` makes, so that a seed the
        # command would refuse is not reported as reproducible by it.
        world = World(cfg, sinks, check_config=require_lease_safety)
        world.run()
    result.ops = len(world.history)
    report = world.audit()
    if not report.ok:
        result.failures["audit"] = one_line(report.problems()[0])[:500]
    live = world.liveness()
    if live is not None and live["beyond_budget"]:
        result.notes.append(f"liveness: not owed, {live['lost']} lost for good")
    if live is not None and live["stuck"]:
        result.failures["liveness"] = (
            f"no write succeeded within {live['bound_s']:g}s of the heal at "
            f"{live['healed_at_s']:g}s" + ("" if live["write_after_s"] is None
                                            else f" (the first after {live['write_after_s']}s)"))
    events = _merged(sinks, names)
    result.events = len(events)
    kinds: dict[str, str] = dict(cfg.initial_members())
    rc = cfg.replica_config()
    mon = Monitor(kinds, rc.lease_dur_us, rc.lease_margin_us)
    for loc in events:
        mon.step(loc.event, loc.where)
        if mon.violations:
            result.failures["monitor"] = one_line(str(mon.violations[0]))[:500]
            break

    from conformance.linearizability import check_history

    lin = check_history(world.history)
    if lin.violations or lin.eventual_violations:
        first = lin.violations[0].explanation if lin.violations else \
            lin.eventual_violations[0].explanation
        result.failures["linearizability"] = one_line(first)[:500]
    if lin.unknown_keys:
        result.notes.append(f"linearizability: {len(lin.unknown_keys)} key(s) undecided "
                            f"within the search bound")

    from conformance.trace_leases import check_trace_leases

    z3 = check_trace_leases([event_to_obj(loc.event) for loc in events], rc.lease_dur_us,
                            rc.max_drift_us, lease_margin_us=rc.lease_margin_us)
    if not z3.ok:
        result.failures["z3-leases"] = one_line(z3.explanation)[:500]


def _merged(sinks: dict[str, IO[bytes]], names: list[str]) -> list[Located]:
    merged: list[tuple[int, int, int, Located]] = []
    for i, n in enumerate(names):
        sinks[n].seek(0)
        for loc in read_trace(sinks[n], f"trace-{n}.jsonl"):
            merged.append((loc.event.real, i, loc.event.seq, loc))
    merged.sort(key=lambda x: x[:3])
    return [m[3] for m in merged]


__all__ = ["CHECKS", "SeedResult", "run_seed"]
