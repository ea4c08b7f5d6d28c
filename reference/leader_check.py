"""Gray-failure detection before an election (paper section 6.2): the state and its rules.

A follower that stops hearing its leader may be the one with the problem (a failed
link, a slow NIC). Starting an election would depose a healthy leader, so it first
*suspects* the leader and asks its peers (``probe``) whether they still hear a leader
holding its lease; it starts an election only once a quorum confirms (itself and the
peers that answered they do not hear one either), and drops the suspicion as soon as
one peer answers that it does, or it hears such a leader again itself.

Each suspicion has a nonce (``nonce``, a per-replica counter: the spec's CHOICE "a
probe carries a fresh nonce"); its probes carry it (``n``) and an answer echoes it,
and only answers with the current suspicion's nonce count. A late answer to an
earlier suspicion (one cleared, or ended by an election) would otherwise count toward
the next: an old "I do not hear a leader" could complete a quorum while the peer now
hears one. (The spec deletes the earlier suspicion's probes and answers instead.)
The counter survives a crash (not the spec's state: only answers are told apart by
it), so an answer sent before a crash cannot count after it either.

"Hearing a leader holding its lease" is what granting a lease request with ``held``
set means: the granter remembers it for LeaseDur on its own clock (the spec's
``heardLeft[a] := LeaseDur``; here an absolute local deadline, ``heard_until``).

This module holds state transitions only (the h11 idea): no clocks of its own, no
messages, no I/O. The replica (reference/replica.py) performs the spec actions
``Suspect``, ``AnswerProbe``, ``ClearSuspicion`` and ``Phase1a`` on it; the node
(reference/node.py) sends the probes and answers and runs the election timeout.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

NEVER = -(1 << 62)
"""A local time before any clock reading (clocks may start slightly below zero)."""


@dataclass(slots=True)
class Detector:
    heard_until: int = NEVER
    """Local time until which this replica hears a leader holding its lease."""
    suspecting: bool = False
    confirmed: set[str] = field(default_factory=set)
    """Peers that answered, during this suspicion, that they do not hear such a leader."""
    healthy_answer: bool = False
    """A peer answered, during this suspicion, that it does hear such a leader."""
    handoff_bal: int = 0
    """A handoff for this ballot reached this replica (0: none)."""
    vetoed: int = 0
    """Suspicions dropped because a peer still heard the leader (elections avoided)."""
    nonce: int = 0
    """The current (or last) suspicion's nonce; each ``suspect`` takes the next one."""
    stale_answers: int = 0
    """Answers ignored because they carried an earlier suspicion's nonce."""

    # --- hearing ---------------------------------------------------------------------

    def hears(self, now_us: int) -> bool:
        return now_us < self.heard_until

    def heard(self, now_us: int, lease_dur_us: int) -> None:
        """Granted a request whose leader held its lease: ``heardLeft := LeaseDur``."""
        self.heard_until = now_us + lease_dur_us

    # --- suspicion -------------------------------------------------------------------

    def may_suspect(self, now_us: int) -> bool:
        """Suspect's condition on this state (the caller checks role and timeout)."""
        return not self.suspecting and not self.hears(now_us)

    def suspect(self) -> int:
        """Start a suspicion with a fresh nonce (returned: its probes carry it)."""
        self.suspecting = True
        self.confirmed = set()
        self.healthy_answer = False
        self.nonce += 1
        return self.nonce

    def answer(self, src: str, hears: bool, nonce: int) -> None:
        """A probe answer arrived; it counts only during a suspicion, and only if it
        answers this suspicion's probe (``nonce``)."""
        if not self.suspecting:
            return
        if nonce != self.nonce:
            self.stale_answers += 1
            return
        if hears:
            self.healthy_answer = True
        else:
            self.confirmed.add(src)

    def may_clear(self, now_us: int) -> bool:
        return self.suspecting and (self.healthy_answer or self.hears(now_us))

    def clear(self) -> None:
        """ClearSuspicion: forget the suspicion and every answer."""
        if self.healthy_answer:
            self.vetoed += 1
        self.end()

    def end(self) -> None:
        """Phase1a ends the suspicion too (answers forgotten)."""
        self.suspecting = False
        self.confirmed = set()
        self.healthy_answer = False

    def confirmed_by_quorum(self, me: str, now_us: int,
                            is_quorum: Callable[[set[str]], bool]) -> bool:
        """Phase1a's confirmation: r suspects, does not hear a held lease itself, and r
        with the peers that answered ``hears = false`` form a quorum of r's view."""
        return (self.suspecting and not self.hears(now_us)
                and is_quorum({me, *self.confirmed}))

    # --- handoff ---------------------------------------------------------------------

    def handed_off(self, bal: int) -> None:
        self.handoff_bal = max(self.handoff_bal, bal)

    def has_handoff(self, ballot: int) -> bool:
        """A handoff for the replica's current ballot arrived (Phase1a needs no more)."""
        return ballot > 0 and self.handoff_bal == ballot


def probe_targets(me: str, members: Iterable[str]) -> list[str]:
    """Suspect probes every peer of the view (members of any kind but itself)."""
    return sorted(m for m in members if m != me)


__all__ = ["NEVER", "Detector", "probe_targets"]
