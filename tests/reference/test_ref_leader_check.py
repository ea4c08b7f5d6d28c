"""Gray-failure detection's state transitions (reference/leader_check.py, paper §6.2),
pure: no clocks, no messages."""

from __future__ import annotations

from collections.abc import Callable

from reference.leader_check import NEVER, Detector, probe_targets


def majority_of(members: set[str]) -> Callable[[set[str]], bool]:
    return lambda group: 2 * len(group & members) > len(members)


ABC = majority_of({"a", "b", "c"})


def test_hearing_lasts_a_lease_duration_on_the_local_clock() -> None:
    d = Detector()
    assert d.heard_until == NEVER and not d.hears(-5_000)
    d.heard(100, 1_000)
    assert d.hears(100) and d.hears(1_099) and not d.hears(1_100)
    d.heard(500, 1_000)  # heardLeft := LeaseDur: from the latest grant
    assert d.hears(1_499) and not d.hears(1_500)


def test_suspect_only_when_not_hearing_and_not_already_suspecting() -> None:
    d = Detector()
    d.heard(0, 1_000)
    assert not d.may_suspect(999)
    assert d.may_suspect(1_000)
    d.suspect()
    assert d.suspecting and not d.may_suspect(2_000)


def test_a_quorum_of_confirmations_counting_itself_enables_the_election() -> None:
    d = Detector()
    assert not d.confirmed_by_quorum("a", 0, ABC)  # not suspecting
    d.suspect()
    assert not d.confirmed_by_quorum("a", 0, ABC)  # a alone is no majority of three
    d.answer("b", False, d.nonce)
    assert d.confirmed_by_quorum("a", 0, ABC)
    d.heard(0, 10)  # ...unless it hears a held lease itself
    assert not d.confirmed_by_quorum("a", 5, ABC)
    assert d.confirmed_by_quorum("a", 10, ABC)


def test_a_healthy_answer_clears_and_forgets_every_answer() -> None:
    d = Detector()
    d.suspect()
    d.answer("b", False, d.nonce)
    assert not d.may_clear(0)
    d.answer("c", True, d.nonce)
    assert d.may_clear(0)
    d.clear()
    assert not d.suspecting and d.confirmed == set() and not d.healthy_answer
    assert d.vetoed == 1
    d.suspect()
    assert d.confirmed == set()  # the old answers do not count for a new suspicion


def test_hearing_again_clears_without_counting_a_veto() -> None:
    d = Detector()
    d.suspect()
    d.heard(0, 100)
    assert d.may_clear(50)
    d.clear()
    assert d.vetoed == 0 and not d.suspecting


def test_answers_outside_a_suspicion_are_ignored() -> None:
    d = Detector()
    d.answer("b", False, d.nonce)
    d.answer("c", True, d.nonce)
    d.suspect()
    assert d.confirmed == set() and not d.healthy_answer


def test_election_ends_the_suspicion() -> None:
    d = Detector()
    d.suspect()
    d.answer("b", False, d.nonce)
    d.end()
    assert not d.suspecting and d.confirmed == set() and d.vetoed == 0


def test_handoff_is_for_one_ballot() -> None:
    d = Detector()
    assert not d.has_handoff(0) and not d.has_handoff(3)
    d.handed_off(3)
    assert d.has_handoff(3) and not d.has_handoff(4)
    d.handed_off(2)  # an older one does not replace it
    assert d.has_handoff(3)


def test_probe_targets_are_the_other_members() -> None:
    assert probe_targets("b", ["c", "a", "b"]) == ["a", "c"]
    assert probe_targets("a", ["a"]) == []


def test_each_suspicion_takes_a_fresh_nonce() -> None:
    d = Detector()
    assert d.suspect() == 1 and d.nonce == 1
    d.end()
    assert d.suspect() == 2


def test_a_late_answer_to_an_earlier_suspicion_does_not_count() -> None:
    d = Detector()
    first = d.suspect()
    d.heard(0, 100)  # the leader is heard again: the suspicion is dropped
    d.clear()
    second = d.suspect()
    d.answer("b", False, first)  # b's answer to the first probe, delivered late
    assert d.confirmed == set() and not d.confirmed_by_quorum("a", 200, ABC)
    assert d.stale_answers == 1
    d.answer("c", True, first)  # a stale veto does not count either
    assert not d.healthy_answer and not d.may_clear(200)
    d.answer("b", False, second)
    assert d.confirmed_by_quorum("a", 200, ABC)
