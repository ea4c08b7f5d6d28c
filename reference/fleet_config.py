"""What a fleet run is asked for (``dynaspec fleet simulate``), and the names it uses.

A fleet is ``nodes`` storage nodes hosting the replicas of ``groups`` replication
groups (``replicas`` each, no two on one node), and ``routers`` request-router
hosts that log the groups' client histories. Every random choice of the run comes
from ``seed`` through ``derive_seed``: a stream per purpose and per name (group,
node, router), so a group's run does not depend on how many other groups there are
or on which worker ran it (traces/PRODUCTION.md).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

from reference.workload import WorkloadConfig

Compression = Literal["gz", "zst", "none"]
COMPRESSIONS: tuple[Compression, ...] = ("gz", "zst", "none")
FLEET_FAULTS = ("none", "crashes", "partitions", "mixed", "heal", "deploy")
"""Node-level fault schedules (reference/fleet_faults.py)."""

SECOND = 1_000_000


@dataclass(frozen=True, slots=True)
class ClockSettings:
    """The nodes' (and routers') clocks: ClockBound-style (reference/fleet_clock.py)."""

    sync_interval_us: int = SECOND
    """How often the time daemon syncs (the error bound drops at each sync)."""
    max_rate_ppm: int = 200
    """The clock's drift budget: how fast the offset may move between syncs."""
    max_offset_us: int = 500
    """The discipline keeps the offset within this (the daemon slews towards zero)."""
    sync_error_us: tuple[int, int] = (20, 150)
    """A sync's own uncertainty (network delay / 2 + root dispersion), drawn per sync."""

    def __post_init__(self) -> None:
        if self.sync_interval_us <= 0 or self.max_offset_us < 0:
            raise ValueError("clock sync interval must be > 0 and max offset >= 0")
        if not 0 <= self.max_rate_ppm < 1_000_000:
            raise ValueError("clock rate budget must be in [0, 1e6) ppm")
        lo, hi = self.sync_error_us
        if not 0 <= lo <= hi:
            raise ValueError("sync error range must be 0 <= low <= high")

    def max_err_us(self) -> int:
        """The largest error bound a clock can report (just before a sync)."""
        return (self.max_offset_us + self.sync_error_us[1]
                + -(-self.max_rate_ppm * self.sync_interval_us // 1_000_000) + 1)


@dataclass(frozen=True, slots=True)
class FleetConfig:
    seed: int = 1
    nodes: int = 9
    groups: int = 12
    replicas: int = 3
    azs: int = 3
    routers: int = 2
    clients: int = 2
    """Closed-loop clients per group."""
    duration_us: int = 10 * SECOND
    settle_us: int = 2 * SECOND
    faults: str = "none"
    segment_lines: int = 1_000_000
    compression: Compression = "gz"
    workload: WorkloadConfig = field(default_factory=lambda: WorkloadConfig(think_us=20_000))
    max_drift_us: int = 2_000
    """The replicas' lease assumption |clock - real| <= max_drift_us; the node clocks'
    error bound must stay within it (checked in ``__post_init__``)."""
    clock: ClockSettings = field(default_factory=ClockSettings)

    def __post_init__(self) -> None:
        if self.nodes < 1 or self.groups < 1 or self.routers < 1:
            raise ValueError("nodes, groups and routers must be >= 1")
        if not 1 <= self.replicas <= 9:
            raise ValueError("replicas must be in 1..9")
        if self.azs < 1 or self.clients < 0:
            raise ValueError("azs must be >= 1 and clients >= 0")
        if self.duration_us <= 0 or self.settle_us < 0:
            raise ValueError("duration must be > 0 and settle time >= 0")
        if self.segment_lines < 1:
            raise ValueError("segment lines must be >= 1")
        if self.compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {', '.join(COMPRESSIONS)}")
        if self.faults not in FLEET_FAULTS:
            raise ValueError(f"unknown fleet fault schedule {self.faults!r}; "
                             f"choose from {', '.join(FLEET_FAULTS)}")
        spares = self.spares_per_group()
        if self.nodes < self.replicas + spares + (1 if self.faults == "heal" else 0):
            # heal: the killed node hosts no spare, so one node more than the group needs.
            raise ValueError(f"{self.nodes} nodes cannot hold {self.replicas + spares} "
                             f"replicas of a group on distinct nodes"
                             + (" besides the node the heal schedule kills"
                                if self.faults == "heal" else ""))
        if self.clock.max_err_us() > self.max_drift_us:
            raise ValueError(f"the clocks' error bound can reach {self.clock.max_err_us()}us, "
                             f"more than max drift {self.max_drift_us}us the leases assume")

    def spares_per_group(self) -> int:
        """Spare replicas per group: one under ``heal`` (it replaces the killed one)."""
        return 1 if self.faults == "heal" else 0

    def node_ids(self) -> list[str]:
        return _names("n", self.nodes, 2)

    def group_ids(self) -> list[str]:
        return _names("g", self.groups, 4)

    def router_ids(self) -> list[str]:
        return _names("rt", self.routers, 2)


def _names(prefix: str, n: int, width: int) -> list[str]:
    # Zero-padded to a common width, so that name order is number order.
    w = max(width, len(str(n)))
    return [f"{prefix}{i:0{w}d}" for i in range(1, n + 1)]


def derive_seed(seed: int, *labels: str) -> int:
    """A 64-bit seed for one purpose and name (e.g. ``("group", "g0001")``), a pure
    function of the fleet seed: independent of group count, order and worker."""
    text = ":".join([str(seed), *labels]).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


__all__ = ["COMPRESSIONS", "FLEET_FAULTS", "ClockSettings", "Compression", "FleetConfig",
           "derive_seed"]
