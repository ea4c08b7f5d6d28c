"""Seeded bugs in the reference implementation, matching the spec's mutants.

Each bug replaces one seam of the reference for the duration of a ``with`` block:
a hook of ``Replica`` named after the spec's hook it mirrors (``recover``,
``new_leader_wait_us``, ``commit_quorum``, ``known_committed``), the node's WAL
writer, the WAL's record decoder, or the configuration check. Production code has
no test-only branches; the bug lives here.

| bug | spec mutant | what breaks |
|---|---|---|
| NoLeaseWait | NoLeaseWait | a new leader serves at once, beside the old lease |
| EarlyAck | EarlyAck | a write is committed (acknowledged) on the leader's vote alone |
| NoRecovery | NoRecovery | a new leader re-proposes nothing it recovered |
| NoDriftMargin | NoDriftMargin | the new leader's wait has no margin for clock drift |
| ApplyUncommitted | ApplyUncommitted | replicas apply entries nobody committed |
| NoPersist | NoPersist | promises (ballots) are not written to the WAL |
| SkipWalChecksum | (none) | WAL recovery accepts records whose checksums fail |
| GrantExpiredRequest | (none: a step) | a follower grants a lease request that has expired |
| LateGrantRenews | (none: a step) | the leader counts a grant for its latest request |
| StaleLeaseRequest | (none: liveness) | a leader re-sends an expired lease request for ever |

The last two need a late message (reference/network.py: ``late_prob``, ``hold_next``, or
a slow link), longer than the 0.5 s between lease requests or than the lease itself:
with messages on time, a grant always answers the latest request, and a request always
arrives with most of its lease left. Neither has a spec mutant: each is a step the spec
does not allow (receiving a lease message after the spec dropped it; holding a lease no
quorum granted), caught by the monitor's step checks and by trace validation
(conformance/mutation_late.py has the scenario).

StaleLeaseRequest (``LIVENESS_BUGS``) breaks no safety property: every step it takes is
one the spec allows (re-sending a message is a duplicate delivery), so no safety layer
can see it. A leader whose lease request goes unanswered until it expires (its followers
down or cut off, or their grants late) keeps re-sending that request instead of asking
again: the followers refuse it (it has expired), yet each copy resets their election
timers, so nobody else is elected either. Only ``dynaspec explore``'s liveness check
(a write must succeed within a bound of the heal) catches it.
"""

from __future__ import annotations
import __future__

import contextlib
import dataclasses
import inspect
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from reference import node as node_mod
from reference import replica as replica_mod
from reference import wal as wal_mod
from reference.messages import LeaseMsg


@dataclass(frozen=True, slots=True)
class Bug:
    name: str
    spec_mutant: str | None
    description: str
    patches: Callable[[], list[tuple[Any, str, Any]]]
    """(object, attribute, replacement) triples applied while the bug is active."""


def _no_lease_wait() -> list[tuple[Any, str, Any]]:
    return [(replica_mod.Replica, "new_leader_wait_us", lambda self: 0)]


def _early_ack() -> list[tuple[Any, str, Any]]:
    return [(replica_mod.Replica, "commit_quorum", lambda self, votes: len(votes) >= 1)]


def _no_recovery() -> list[tuple[Any, str, Any]]:
    return [(replica_mod.Replica, "recover", lambda self, reports: [])]


def _no_drift_margin() -> list[tuple[Any, str, Any]]:
    # The wait keeps no margin at all; ReplicaConfig's own check is what would refuse
    # such a configuration, so the bug bypasses the margin it enforces.
    return [(replica_mod.Replica, "new_leader_wait_us",
             lambda self: self.config.lease_dur_us)]


def _apply_uncommitted() -> list[tuple[Any, str, Any]]:
    return [(replica_mod.Replica, "known_committed", lambda self, s: True)]


def _no_persist() -> list[tuple[Any, str, Any]]:
    orig = node_mod.ReplicaNode._persist

    def persist_but_promises(self: node_mod.ReplicaNode, p: replica_mod.Persist) -> bool:
        if p.what == "ballot":
            return False
        return orig(self, p)

    return [(node_mod.ReplicaNode, "_persist", persist_but_promises)]


def _skip_wal_checksum() -> list[tuple[Any, str, Any]]:
    orig = wal_mod._decode_at

    def decode_unverified(buf: memoryview, off: int, index: int,
                          expected_seq: int | None) -> Any:
        rec = orig(buf, off, index, expected_seq)
        if isinstance(rec, wal_mod._Stop) and rec.kind == "corrupt":
            magic, length, seq = wal_mod._FIELDS.unpack(bytes(buf[off:off + wal_mod._FIELDS.size]))
            start = off + wal_mod.HEADER_SIZE
            if magic == wal_mod.MAGIC and length <= wal_mod.MAX_PAYLOAD \
                    and start + length <= len(buf):
                return wal_mod.WalRecord(seq, bytes(buf[start:start + length]), off)
        return rec

    return [(wal_mod, "_decode_at", decode_unverified)]


def _grant_expired_request() -> list[tuple[Any, str, Any]]:
    # The follower's refusal of a request that may have expired on its leader's clock
    # is gone: a late request is granted (and counts as hearing a leader).
    return [(replica_mod.Replica, "lease_grant", patched_method(
        replica_mod.Replica, "lease_grant",
        "if self.now_us >= m.start + self.config.lease_dur_us - 2 * self.config.max_drift_us:",
        "if False:"))]


def _late_grant_renews() -> list[tuple[Any, str, Any]]:
    def receive_lease_ack(self: replica_mod.Replica, m: Any) -> None:
        v = self._v
        if v.role == "leader" and m.bal == self.ballot and m.dst == self.node_id \
                and v.lease_grants:
            # Counted for the latest request, whichever request the grant answers.
            v.lease_grants[max(v.lease_grants)].add(m.src)

    return [(replica_mod.Replica, "receive_lease_ack", receive_lease_ack)]


def _stale_lease_request() -> list[tuple[Any, str, Any]]:
    # "One request outstanding at a time", with outstanding meaning "not yet granted by a
    # quorum" rather than "granted by none and not expired": an unanswered request
    # blocks every later one for good, and the retransmission keeps it alive.
    def lease_resend(r: replica_mod.Replica, now_us: int) -> list[replica_mod.Effect]:
        if r.role != "leader" or r.relinquished:
            return []
        return [replica_mod.Broadcast(LeaseMsg(r.ballot, t, r.node_id, r.lease_request_held(t)))
                for t, g in sorted(r.lease_grants.items()) if not r.is_quorum(g)]

    return [
        (replica_mod.Replica, "lease_renew", patched_method(
            replica_mod.Replica, "lease_renew",
            "blocking = [t + dur for t in v.lease_grants if t + dur - now_us > left]",
            "blocking = [t + dur for t, g in v.lease_grants.items() "
            "if t + dur - now_us > left or not self.is_quorum(g)]")),
        (node_mod, "lease_resend", lease_resend),
    ]


BUGS: dict[str, Bug] = {b.name: b for b in (
    Bug("NoLeaseWait", "NoLeaseWait", "the new leader does not wait out the old lease",
        _no_lease_wait),
    Bug("EarlyAck", "EarlyAck", "writes are acknowledged before a quorum persisted them",
        _early_ack),
    Bug("NoRecovery", "NoRecovery", "a new leader does not recover accepted values",
        _no_recovery),
    Bug("NoDriftMargin", "NoDriftMargin", "the new leader's wait has no clock-drift margin",
        _no_drift_margin),
    Bug("ApplyUncommitted", "ApplyUncommitted", "replicas apply uncommitted entries",
        _apply_uncommitted),
    Bug("NoPersist", "NoPersist", "promises are not persisted", _no_persist),
    Bug("SkipWalChecksum", None, "WAL recovery skips checksum verification",
        _skip_wal_checksum),
    Bug("GrantExpiredRequest", None, "a follower grants a lease request that expired on "
        "its way (a late message)", _grant_expired_request),
    Bug("LateGrantRenews", None, "the leader counts a late grant for its latest lease "
        "request", _late_grant_renews),
    Bug("StaleLeaseRequest", None, "a leader re-sends an unanswered lease request after it "
        "expired, and asks for no new lease (a liveness bug)", _stale_lease_request),
)}
LIVENESS_BUGS = frozenset({"StaleLeaseRequest"})
"""Bugs no safety check can see: only a liveness check (``dynaspec explore``) catches them."""


def patched_method(cls: type, name: str, old: str, new: str) -> Any:
    """``cls.<name>`` with the source text ``old`` replaced by ``new`` (exactly once, so
    that a change to the reference that moves the seam fails loudly here)."""
    src = textwrap.dedent(inspect.getsource(getattr(cls, name)))
    if src.count(old) != 1:
        raise RuntimeError(f"seeded bug: {cls.__name__}.{name} no longer contains {old!r} once")
    src = src.replace(old, new)
    namespace: dict[str, Any] = {}
    # In the defining module's globals (its decorators and names), with its postponed
    # annotations.
    exec(compile(src, f"<seeded {cls.__name__}.{name}>", "exec",
                 flags=__future__.annotations.compiler_flag, dont_inherit=True),
         vars(sys.modules[cls.__module__]), namespace)
    return namespace[name]


def register(*bugs: Bug) -> dict[str, Bug]:
    """``bugs`` by name, each also known to ``active`` and ``dynaspec mutation-matrix
    --bug`` (a module of further seeded bugs registers them on import)."""
    table = {b.name: b for b in bugs}
    for b in bugs:
        BUGS.setdefault(b.name, b)
    return table


@contextlib.contextmanager
def active(name: str | None) -> Iterator[None]:
    """Run the block with bug ``name`` seeded (``None``: the correct implementation)."""
    if name is None:
        yield
        return
    bug = BUGS.get(name)
    if bug is None:
        raise KeyError(f"unknown bug {name!r}; choose from {', '.join(BUGS)}")
    saved = []
    try:
        for obj, attr, new in bug.patches():
            saved.append((obj, attr, obj.__dict__[attr] if isinstance(obj, type)
                          else getattr(obj, attr)))
            setattr(obj, attr, new)
        replica_mod.decode_write.cache_clear()
        yield
    finally:
        for obj, attr, old in reversed(saved):
            setattr(obj, attr, old)


def as_dict(bug: Bug) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(bug).items() if k != "patches"}
