"""Failing examples the Hypothesis machine found (conformance/stateful.py), replayed as
fixed rule sequences: the CI profile draws new examples each run, so a bug it found once
is pinned here."""

from __future__ import annotations

from typing import Any

import pytest

import conformance.stateful as stateful
from conformance.stateful import ReplicationMachine


class Draws:
    """Stands in for Hypothesis's ``data`` object: hands out the recorded draws."""

    def __init__(self, *values: Any) -> None:
        self.values = list(values)

    def draw(self, strategy: Any, label: str | None = None) -> Any:
        return self.values.pop(0)


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch) -> ReplicationMachine:
    # event() and target() report to Hypothesis, which is not running here.
    monkeypatch.setattr(stateful, "hypothesis_event", lambda name: None)
    monkeypatch.setattr(stateful, "target", lambda *a, **k: None)
    return ReplicationMachine()


def check(m: ReplicationMachine) -> None:
    m.monitor_finds_nothing()
    m.one_lease_at_a_time()


def test_a_snapshot_is_reported_only_once_durable(machine: ReplicationMachine) -> None:
    """A joining replica told the leader it had a B-tree as soon as the copy arrived,
    before the B-tree's sync: the leader added it as a storage replica, and a crash then
    would leave a storage member without a B-tree (LogReplicaNeverServes in AddMember)."""
    m = machine
    m.setup(seed=0, swarm=[False] * 7, drift=2000, election_ms=200, membership=True,
            peer_confirm=False, handoff=False)
    check(m)
    m.get(c=0, consistent=False, k="a")
    check(m)
    for draws in (("remove", "r2"), ("add storage",), ("kill", "r1"), ("kill", "r4"),
                  ("add log",)):
        m.membership_change(Draws(*draws))  # type: ignore[arg-type]
        check(m)
    m.teardown()


def test_a_relinquished_leader_lets_the_others_elect(machine: ReplicationMachine) -> None:
    """The leader handed off to a replica that was down, then answered probes that it
    heard a leader (itself) though it had relinquished its lease: nobody could elect."""
    m = machine
    m.setup(seed=0, swarm=[False, False, False, False, True, True, False], drift=2000,
            election_ms=200, membership=True, peer_confirm=True, handoff=True)
    check(m)
    for _ in range(4):
        m.advance(300)
        check(m)
    m.deploy_restart(Draws("r1"))  # type: ignore[arg-type]
    check(m)
    m.advance(100_000)
    check(m)
    m.fault(Draws("corrupt", "r1", 0))  # type: ignore[arg-type]
    check(m)
    for name in ("r3", "r2"):
        m.deploy_restart(Draws(name))  # type: ignore[arg-type]
        check(m)
    m.teardown()


def test_a_lone_leader_does_not_vouch_for_itself(machine: ReplicationMachine) -> None:
    """Removals left r1 the only member; re-elected after a restart, it asked for its first
    lease with ``held`` true: its own grant of that very request, a quorum of one, was
    counted before it asked. The spec's held is HoldsLease as it asks, so the storage
    replica added next vouched for a leader without a lease (EventuallyConnectedLease)."""
    m = machine
    m.setup(seed=298965, election_ms=200, swarm=[True, True, False, False, True, True, False],
            membership=True, peer_confirm=True, handoff=False, drift=2000)
    check(m)
    for op in ("cput", "advance", "cput", "advance", "advance"):
        if op == "cput":
            m.conditional_update(c=0, k="a", v=0)
        else:
            m.advance(us=300)
        check(m)
    for who in ("r2", "r3"):
        m.membership_change(Draws("remove", who))  # type: ignore[arg-type]
        check(m)
    m.advance(us=5000)
    check(m)
    m.deploy_restart(Draws("r1"))  # type: ignore[arg-type]
    check(m)
    m.advance(us=400000)
    check(m)
    m.get(c=0, consistent=True, k="c")
    check(m)
    m.deploy_restart(Draws("r2"))  # type: ignore[arg-type]
    check(m)
    for draws in (("replace",), ("remove",), ("add storage",)):
        m.membership_change(Draws(*draws))  # type: ignore[arg-type]
        check(m)
    m.teardown()


def _readd_as_storage(m: ReplicationMachine) -> None:
    """make test, 2026-12-03: a spare added as a log replica (the add lost with its
    leader) was added again as a storage replica under the same command id, ``add-r4``;
    the monitor took the second command for the first and reported a log replica
    leading (HandoffGap, LogReplicaNeverLeads)."""
    def after(_: object) -> None:  # the invariants, after each rule
        check(m)

    after(m.setup(seed=2722, peer_confirm=True, drift=2000, membership=True,
                  swarm=[False, False, True, False, False, True, False], election_ms=1500,
                  handoff=True))
    after(m.get(c=0, consistent=True, k="a"))
    after(m.delete(c=2, k="a"))
    after(m.advance(us=20000))
    after(m.delete(c=0, k="a"))
    for _ in range(2):
        after(m.put(c=0, k="a", v=0))
    after(m.deploy_restart(data=Draws("r2")))
    for _ in range(3):
        after(m.advance(us=300))
    after(m.advance(us=100000))
    after(m.fault(data=Draws("deploy")))
    for _ in range(2):
        after(m.advance(us=300))
    after(m.get(c=0, consistent=False, k="a"))
    after(m.advance(us=5000))
    after(m.deploy_restart(data=Draws("r2")))
    after(m.delete(c=1, k="a"))
    after(m.membership_change(data=Draws("add log")))
    after(m.delete(c=0, k="a"))
    after(m.deploy_restart(data=Draws("r1")))
    for _ in range(8):
        after(m.advance(us=300))
    after(m.fault(data=Draws("link", "r1", "r2")))
    after(m.advance(us=300))
    after(m.membership_change(data=Draws("add storage")))
    for _ in range(7):
        after(m.advance(us=300))
    after(m.deploy_restart(data=Draws("r3")))
    after(m.deploy_restart(data=Draws("r1")))
    m.teardown()


class _AnyKind(dict[str, str]):
    """``added_as`` of an operator that re-adds an id as another kind (the old rule)."""

    def get(self, key: str, default: Any = None) -> Any:
        return default


def test_an_add_is_not_asked_again_as_the_other_kind(machine: ReplicationMachine) -> None:
    _readd_as_storage(machine)


def test_the_monitor_rejects_one_id_for_two_changes(machine: ReplicationMachine) -> None:
    m = machine
    setup = m.setup

    def setup_then_forget_kinds(**kw: Any) -> None:
        setup(**kw)
        m.added_as = _AnyKind()

    m.setup = setup_then_forget_kinds  # type: ignore[method-assign]
    with pytest.raises(AssertionError, match="two different configuration commands carry "
                                             "the id 'add-r4'"):
        _readd_as_storage(m)
