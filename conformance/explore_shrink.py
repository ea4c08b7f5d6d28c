"""``dynaspec explore``: shrink a failing seed by re-running it.

Greedy, one dimension at a time, until a pass changes nothing (or the re-runs run
out): drop each fault kind (late messages too); then the fewest clients, trying
1, 2, 3... below the current count; then the shortest duration, trying 1 s, 2 s,
3 s, 5 s, 7 s... below the current one. A candidate is kept if it still fails one of
the checks the original failed (a run that fails differently is another bug, not a
smaller copy of this one). The seed stays: it is what makes the run.

Each re-run is deterministic (conformance/explore_mix.py), so the shrunk options fail
whenever they are run, and ``Options.command`` reproduces them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from conformance import mutants
from conformance.explore_mix import SECOND, Options
from conformance.explore_run import SeedResult, run_seed

DEFAULT_RUNS = 24
"""Re-runs one shrink may spend."""
_DURATIONS_US = (1 * SECOND, 2 * SECOND, 3 * SECOND, 5 * SECOND, 7 * SECOND, 10 * SECOND,
                 15 * SECOND, 20 * SECOND, 30 * SECOND)


@dataclass(slots=True)
class Shrunk:
    original: Options
    options: Options
    failures: dict[str, str]
    """What the shrunk run fails (a subset of the checks the original failed, at least one)."""
    runs: int
    seconds: float

    def to_json(self, bug: str | None) -> dict[str, Any]:
        return {"options": self.options.to_json(), "failures": self.failures,
                "runs": self.runs, "seconds": round(self.seconds, 2),
                "command": self.options.command(bug, self.failures)}


def _candidates(o: Options) -> Iterator[Options]:
    for kind in o.kinds():
        yield o.without(kind)
    for n in range(1, o.clients):
        yield replace(o, clients=n)
    for d in _DURATIONS_US:
        if d < o.duration_us:
            yield replace(o, duration_us=d)


def shrink(failed: SeedResult, bug: mutants.Bug | None = None, max_runs: int = DEFAULT_RUNS,
           run: Callable[[Options, mutants.Bug | None], SeedResult] = run_seed) -> Shrunk:
    """The smallest options found that still fail as ``failed`` did."""
    assert not failed.ok, "only a failing seed shrinks"
    wanted = set(failed.failures)
    best, failures = failed.options, dict(failed.failures)
    runs, seconds = 0, 0.0
    tried: set[Options] = set()
    changed = True
    while changed and runs < max_runs:
        changed = False
        for cand in _candidates(best):
            if runs >= max_runs:
                break
            if cand in tried:  # passed (or failed otherwise) already: still would
                continue
            tried.add(cand)
            res = run(cand, bug)
            runs += 1
            seconds += res.seconds
            if wanted & set(res.failures):
                best, failures = cand, {k: v for k, v in res.failures.items() if k in wanted}
                changed = True
                break  # the candidates of the smaller options next
    return Shrunk(failed.options, best, failures, runs, seconds)


__all__ = ["DEFAULT_RUNS", "Shrunk", "shrink"]
