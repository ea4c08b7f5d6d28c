"""The gray-failure check's rules (reference/leader_check.py, paper section 6.2)."""

from __future__ import annotations

from reference.leader_check import LeaderCheck

TIMEOUT = 1_000


def test_a_new_check_runs_for_no_ballot_and_has_vetoed_nothing() -> None:
    c = LeaderCheck()
    assert (c.ballot, c.healthy_votes, c.vetoed) == (-1, 0, 0)
    assert c.may_elect()
    assert c.vetoed == 0


def test_start_asks_about_a_ballot_and_forgets_earlier_answers() -> None:
    c = LeaderCheck()
    c.start(3)
    c.answer(3, True)
    assert (c.ballot, c.healthy_votes) == (3, 1)
    c.start(4)
    assert (c.ballot, c.healthy_votes) == (4, 0)


def test_only_healthy_answers_for_the_ballot_or_a_later_one_count() -> None:
    c = LeaderCheck()
    c.start(5)
    c.answer(5, False)  # that peer does not hear the leader either
    c.answer(4, True)  # about an older ballot: stale
    assert c.healthy_votes == 0
    c.answer(5, True)
    c.answer(6, True)  # the peer is in a later ballot and hears its leader
    assert c.healthy_votes == 2


def test_may_elect_only_if_no_peer_hears_the_leader_and_counts_vetoes() -> None:
    c = LeaderCheck()
    c.start(2)
    c.answer(2, False)
    assert c.may_elect()
    assert c.vetoed == 0
    c.start(2)
    c.answer(2, True)
    assert not c.may_elect()
    assert c.vetoed == 1
    assert not c.may_elect()  # each refusal is counted
    assert c.vetoed == 2
    c.start(3)  # a new check starts clean but the count of vetoes stays
    assert c.may_elect()
    assert c.vetoed == 2


def test_hears_leader_within_half_an_election_timeout() -> None:
    c = LeaderCheck()
    assert not c.hears_leader(0, TIMEOUT)  # never heard it
    c.heard_leader(100)
    assert c.last_heard_leader == 100
    assert c.hears_leader(100, TIMEOUT)
    assert c.hears_leader(100 + TIMEOUT // 2 - 1, TIMEOUT)
    assert not c.hears_leader(100 + TIMEOUT // 2, TIMEOUT)
    c.heard_leader(900)
    assert c.hears_leader(900 + TIMEOUT // 2 - 1, TIMEOUT)
