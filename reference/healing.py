"""Fast healing with log replicas (paper §5.1 and §6.1): what the leader changes, and when.

When a storage replica stops acknowledging for longer than
``HealConfig.unhealthy_after_us``, the leader restores a full-strength group one
membership change at a time:

with log replicas (``log_replicas=True``, the paper's way)
    1. AddMember(a log replica on a spare node, a new incarnation id). Once the
       leader has proposed adding it, it accepts the leader's 2a messages (spec
       Phase2b, Joining), from the leader's checkpoint on (a seed after a truncated
       WAL): it copies only the recent WAL, so this takes seconds. Until it has
       caught up to the change's slot, the change (and what follows it) cannot
       commit: the new configuration needs its vote.
    2. RemoveMember(the dead replica): the group is back to its full size, every
       member healthy: full strength.
    3. Meanwhile a copy of the leader's B-tree is shipped to the log replica
       (``copy_time_us``: size / bandwidth), which installs it (InstallSnapshot)
       and applies the WAL tail it already holds; then PromoteMember(it) makes the
       group all-storage again.

storage only (``log_replicas=False``)
    1. Copy the leader's B-tree to a spare node and install it (minutes at
       production sizes: the paper's "several minutes").
    2. AddMember(it, storage); it catches up the WAL tail since the snapshot; then
       RemoveMember(the dead replica): full strength.

Promotion rather than adding a second, new storage replica: the paper (§5.1) only
says healing a storage replica copies "the B-tree and write-ahead logs". The log
replica already holds the WAL tail, so promoting it only needs the B-tree copy,
takes one change fewer (3 instead of 4: add log, remove dead, promote), and the
group never grows past replicas + 1 members; a second node would copy both.

``plan`` is pure: the node (reference/node.py) feeds it the leader's view, the
unhealthy members and what the control plane (reference/cluster.py: spare nodes,
snapshot copies) reports, and carries out what it returns.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass
from typing import Literal

from reference.messages import Change, Kind

SECOND = 1_000_000


@dataclass(frozen=True, slots=True)
class HealConfig:
    enabled: bool = False
    """Heal at all (the ``heal`` fault schedule turns it on)."""
    log_replicas: bool = True
    """Restore the quorum with a log replica first (else: storage-only healing)."""
    unhealthy_after_us: int = 2 * SECOND
    """A member silent (no vote, grant or report) this long, on the leader's clock, is
    unhealthy."""
    copy_bandwidth_bps: int = 8_000
    """B-tree snapshot copy speed, bytes per second of simulated time. The simulated
    applied state (items plus the at-most-once table) is ~150 KB after the default
    30 s run, some 10^5 times smaller than a production partition (up to ~10 GB), so
    the default scales a ~1 GB/s production copy down by that factor: the copy takes
    ~20 s of simulated time, where the paper's takes minutes, and the default run
    still shows the whole healing sequence."""
    copy_setup_us: int = 200_000
    """Fixed cost of a snapshot copy (connection, metadata), simulated time."""
    compare: bool = True
    """``dynaspec simulate --faults heal`` also runs the same seed with the other
    healing mode, to report both healing times."""
    victim: Literal["follower", "leader"] = "follower"
    """Which storage replica the ``heal`` schedule kills for good."""
    kill_at_us: int = 3 * SECOND
    """When the ``heal`` schedule kills it (simulated time)."""

    def __post_init__(self) -> None:
        if self.unhealthy_after_us <= 0 or self.copy_bandwidth_bps <= 0:
            raise ValueError("unhealthy_after_us and copy_bandwidth_bps must be > 0")
        if self.copy_setup_us < 0 or self.kill_at_us < 0:
            raise ValueError("copy_setup_us and kill_at_us must be >= 0")


def copy_time_us(size_bytes: int, cfg: HealConfig) -> int:
    """Simulated time to copy a snapshot of ``size_bytes``."""
    return cfg.copy_setup_us + -(-size_bytes * SECOND // cfg.copy_bandwidth_bps)


@dataclass(frozen=True, slots=True)
class Copy:
    """Start ``dst``'s node if need be and ship it a B-tree snapshot of the leader."""

    dst: str


Step = Change | Copy


def plan(view: Mapping[str, Kind], leader: str, target: int, unhealthy: Set[str],
         snapshot_holders: Set[str], copying: Set[str], spare: str | None,
         log_replicas: bool) -> list[Step]:
    """The healing steps to take now: snapshot copies to begin, then at most one
    membership change (the last element; the caller takes it only if the leader may
    change the configuration now; adding a replica starts its node).

    ``target``: the group's full size; ``spare``: the id of the node the control
    plane would hand out next (None if none is left)."""
    members = {m: k for m, k in view.items() if k != "none"}
    dead = sorted(m for m, k in members.items() if m in unhealthy and m != leader
                  and k == "storage")
    healthy = [m for m in members if m not in unhealthy or m == leader]
    logs = sorted(m for m in healthy if members[m] == "log")
    steps: list[Step] = []
    for lr in logs:
        if lr not in snapshot_holders and lr not in copying:
            steps.append(Copy(lr))
    if dead and len(healthy) >= target:
        steps.append(Change("remove", dead[0]))
    elif dead:
        if spare is None:
            pass
        elif log_replicas:
            if not logs:
                steps.append(Change("add", spare, "log"))
        elif spare in snapshot_holders:
            steps.append(Change("add", spare, "storage"))
        elif spare not in copying:
            steps.append(Copy(spare))
    else:
        promotable = [lr for lr in logs if lr in snapshot_holders]
        if promotable:
            steps.append(Change("promote", promotable[0]))
    return steps


__all__ = ["Copy", "HealConfig", "Step", "copy_time_us", "plan"]
