"""``dynaspec explore``: what one seed runs (swarm testing: each seed its own mix).

Swarm testing (Groce et al., ISSTA 2012): rather than every run enabling every fault
kind at a fixed rate, each seed switches a few kinds on, each at its own rate, with
its own workload. A fault kind that masks another (crashes keep a partitioned leader
from ever serving a stale read) is then off in some runs, and the sweep reaches
corners one fixed mix never does.

Determinism: ``draw(seed, ...)`` reads only ``random.Random(f"explore:{seed}")`` and,
for the kinds added later (``LATER_KINDS``), ``random.Random(f"explore:{seed}:later")``
(a str seed is hashed with SHA-512: the same stream in every process and under any
``PYTHONHASHSEED``), and the run is ``SimConfig(seed=seed, ...)``, whose randomness
all forks from that seed (reference/cluster.py). Nothing depends on the worker a seed
runs on, on how many there are, or on the order seeds finish in.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from typing import Any

from reference.cluster import SimConfig
from reference.faults import FAULT_KINDS, format_mix, parse_faults
from reference.network import NetworkConfig
from reference.workload import WorkloadConfig

SECOND = 1_000_000
LATE = "late"
"""The late-message kind (``NetworkConfig.late_prob``): not a schedule of
reference/faults.py, but drawn, shrunk and spelled out like one."""

LATER_KINDS = ("membership", "late-grants")
"""Kinds added after the first sweeps: each is switched on by a stream of its own
(``LATER_PROB``), and only while the seed has room for it (``MAX_KINDS``), so that a
seed with none of them on draws what it always drew, and the seeds reported before (the
known failures, the matrix's seeds-to-detection) still run the same mix."""
LATER_PROB = 0.2
MAX_KINDS = 3
"""Kinds on at once, at most (late messages count): more and they mask each other."""
_FIRST_KINDS = tuple(k for k in FAULT_KINDS if k not in LATER_KINDS)
_KIND_COUNTS = (0, 1, 1, 2, 2, 2, 3, 3)
"""How many of the first kinds a seed switches on (drawn uniformly from this tuple)."""
_RATES = (0.5, 1.0, 2.0, 3.0)
_LATE_PROBS = (0.002, 0.01, 0.05)
_THINK_US = (1_000, 2_000, 10_000, 50_000)


@dataclass(frozen=True, slots=True)
class Options:
    """Everything a seed's run depends on; each field is a ``dynaspec simulate`` option."""

    seed: int
    duration_us: int
    liveness_us: int
    faults: str
    """``none`` or a mix ``KIND:RATE+...`` (reference/faults.py)."""
    late_messages: float
    replicas: int
    clients: int
    keys: int
    read_fraction: float
    consistent_fraction: float
    think_us: int
    peer_confirm: bool
    handoff: bool

    def sim_config(self) -> SimConfig:
        return SimConfig(seed=self.seed, replicas=self.replicas, clients=self.clients,
                         duration_us=self.duration_us, faults=self.faults,
                         peer_confirm=self.peer_confirm, handoff=self.handoff,
                         liveness_us=self.liveness_us,
                         network=NetworkConfig(late_prob=self.late_messages),
                         workload=WorkloadConfig(keys=self.keys, read_fraction=self.read_fraction,
                                                 consistent_fraction=self.consistent_fraction,
                                                 think_us=self.think_us))

    def kinds(self) -> list[str]:
        """The fault kinds on (late messages too)."""
        return [k for k, _ in parse_faults(self.faults)] + ([LATE] if self.late_messages else [])

    def without(self, kind: str) -> Options:
        if kind == LATE:
            return replace(self, late_messages=0.0)
        return replace(self, faults=format_mix([(k, r) for k, r in parse_faults(self.faults)
                                                if k != kind]))

    def command(self, bug: str | None = None, failures: Iterable[str] = ()) -> str:
        """The ``dynaspec simulate`` line that runs exactly this (every option spelled
        out, so that a change of a default does not change the reproduction), followed by
        ``dynaspec replay`` unless ``simulate`` itself fails on every check in ``failures``
        (its audit, its liveness probe, or an exception)."""
        out = f"build/explore/seed-{self.seed}"
        args = [
            "dynaspec simulate", f"--seed {self.seed}", f"--out {out}",
            f"--duration {_duration(self.duration_us)}",
            f"--liveness-bound {_duration(self.liveness_us)}", f"--faults {self.faults}",
            f"--late-messages {self.late_messages:g}", f"--replicas {self.replicas}",
            f"--clients {self.clients}", f"--keys {self.keys}",
            f"--read-fraction {self.read_fraction:g}",
            f"--consistent-fraction {self.consistent_fraction:g}",
            f"--think {_duration(self.think_us)}",
            "--peer-confirm" if self.peer_confirm else "--no-peer-confirm",
            "--handoff" if self.handoff else "--no-handoff",
        ]
        if bug is not None:
            args.append(f"--bug {bug}")
        line = " ".join(args)
        if not set(failures) <= {"audit", "liveness", "exception"}:
            line += f" && dynaspec replay {out}"
        return line

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Options:
        return cls(**obj)


def _duration(us: int) -> str:
    """``us`` in the largest unit that keeps it exact (Duration reads it back)."""
    for unit, scale in (("s", SECOND), ("ms", 1_000)):
        if us % scale == 0:
            return f"{us // scale}{unit}"
    return f"{us}us"


def draw(seed: int, duration_us: int, liveness_us: int) -> Options:
    """Seed ``seed``'s mix: which fault kinds, at what rates, under which workload."""
    rng = random.Random(f"explore:{seed}")
    kinds = rng.sample((*_FIRST_KINDS, LATE), rng.choice(_KIND_COUNTS))
    # A fixed order (the kinds' own), so that the mix text does not depend on the draw order.
    mix = [(k, 1.0 if k == "heal" else rng.choice(_RATES)) for k in _FIRST_KINDS if k in kinds]
    late = rng.choice(_LATE_PROBS) if LATE in kinds else 0.0
    options = Options(
        seed=seed, duration_us=duration_us, liveness_us=liveness_us, faults=format_mix(mix),
        late_messages=late, replicas=rng.choice((3, 3, 3, 5)), clients=rng.randint(1, 8),
        keys=rng.choice((1, 2, 4, 16, 64)), read_fraction=rng.choice((0.1, 0.5, 0.9)),
        consistent_fraction=rng.choice((0.0, 0.5, 1.0)), think_us=rng.choice(_THINK_US),
        peer_confirm=rng.random() < 0.9, handoff=rng.random() < 0.9)
    later = random.Random(f"explore:{seed}:later")
    drawn = [(k, later.choice(_RATES)) for k in LATER_KINDS if later.random() < LATER_PROB]
    extra = drawn[:max(0, MAX_KINDS - len(kinds))]
    if not extra:
        return options
    peer_confirm = options.peer_confirm
    if any(k == "membership" for k, _ in extra):
        # Peer confirmation refuses a log replica's election before the replica's own
        # guard is asked (it never suspects): half of the membership seeds go without it,
        # so that guard is tested too (swarm testing: a feature masking another is off).
        peer_confirm = later.random() < 0.5
    parts = parse_faults(options.faults) + extra
    ordered = [(k, r) for kind in FAULT_KINDS for k, r in parts if k == kind]
    return replace(options, faults=format_mix(ordered), peer_confirm=peer_confirm)


__all__ = ["LATE", "LATER_KINDS", "MAX_KINDS", "Options", "draw"]
