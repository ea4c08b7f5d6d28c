"""The monitor's rules for gray failures: link faults, peer-confirmed failure detection
and lease handoff (specs/Replication.tla, "Gray failures: link faults and peer-confirmed
failure detection", LeaseRelinquish, and the CHOICE on lease handoff at BecomeLeader).

``GrayRules`` is owned by the invariant monitor (conformance/monitor.py), which
dispatches the catalogue actions LinkDown, LinkUp, Suspect, AnswerProbe,
ClearSuspicion and LeaseRelinquish to it, and calls it from its own rules for
Phase1a, the receives (Phase1b, Phase2b, LeaseGrant), LeaseRenew, BecomeLeader's
lease wait, and after every step. Its one job: what these features promise, checked
on the trace under the spec's property names.

* ``LinkDelivery`` (the spec's ``Receivable``: a receiver takes a message only over
  a link that is up): no Phase1b, Phase2b, LeaseGrant or AnswerProbe receives a
  message from ``m.from`` while the directed link ``m.from -> receiver`` is down
  (LinkDown .. LinkUp, traced by the link's sender). The link events themselves are
  held to the spec's guards: a LinkDown of a link that is down, a LinkUp of one that is
  up, or a link of a replica to itself is a violation named after the action.
* ``NoNeedlessElection``: with peer confirmation on, a replica suspects only as a
  storage follower, not already suspecting, that has heard no leader holding its
  lease for LeaseDur of its own clock (it granted no request with ``held`` in that
  time: the spec's ``heardLeft``); it starts an election (Phase1a) only on a handoff
  of its current ballot, or when it suspects, still hears no such leader, and it
  together with the peers that answered ``hears = false`` in this suspicion is a
  quorum of its view (the spec's ``Confirmed``); an answer ``hears = false`` comes
  only from a replica that does not hear such a leader.
* ``EventuallyConnectedLease`` (what vouching for a leader without a lease breaks:
  the mutant VouchWithoutLease): an answer ``hears = true`` comes only from a replica
  that granted a ``held`` request within LeaseDur, or is a leader holding its lease;
  a lease request says ``held`` only if its leader held its lease when it asked; a
  suspicion is dropped (ClearSuspicion) only on a ``hears = true`` answer of this
  suspicion or when the replica hears a leader again itself.
* ``LeaseExclusivity``: a leader relinquishes only a lease it holds, once; after it,
  in that ballot, it neither serves a strong read (checked in the monitor's
  StrongRead rule: "served after relinquishing") nor renews ("renewed after
  relinquishing"), and it holds no lease (``Monitor.holds_lease``). A new leader skips
  the wait for earlier leases only if every lease grant its voters reported is of a
  ballot at most the highest ballot handed off to it (the spec's ``HandoffBal`` and
  ``LeaseWaitNeeded``; the monitor sets the wait that way): a skip it does not allow
  shows as a lease request during the wait (the spec's LeaseRenew needs
  ``LeaseDur > waitLeft``) or a post-state that reports a lease during it.
* ``HandoffGap``: a leader hands off only to a storage member of its view other than
  itself (any other successor cannot take over).

What the monitor cannot see it over-approximates, so that a violation is real: a
message counts as received if it was sent while its link was up, or the link has come
up since (a message sent over a down link is lost, as in the spec, where it may still
arrive after a LinkUp); the leader's lease is the monitor's (grants known when sent).
Whether an answer ``hears = true`` reached the suspecting replica cannot be known (it
may be lost), and the spec's ``Confirmed`` does not ask: an election on a quorum of
``hears = false`` answers stands even if some peer also answered ``hears = true``.

Peer confirmation: the monitor is told (``Monitor(..., peer_confirm=)``) or, when not,
takes it to be on from the first Suspect, AnswerProbe, ClearSuspicion or ``held``
request (a run without it has none) and checks Phase1a only from then on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


# What these rules read of the monitor that owns them and of its replicas (structural
# types, so that this module does not import conformance/monitor.py, which imports it).
class _Replica(Protocol):
    @property
    def role(self) -> str: ...
    @property
    def ballot(self) -> int: ...
    @property
    def wait_until(self) -> int: ...
    relinquished: bool


class Monitor(Protocol):
    @property
    def r(self) -> Mapping[str, Any]: ...
    @property
    def lease_dur(self) -> int: ...
    @property
    def _where(self) -> str: ...
    @property
    def _event(self) -> Any: ...
    @property
    def bounds(self) -> tuple[int, int] | None: ...
    def _fail(self, prop: str, message: str) -> None: ...
    def _warn(self, prop: str, message: str) -> None: ...
    def holds_lease(self, name: str, clock: int) -> bool: ...
    def view_members(self, name: str) -> Any: ...
    def view(self, name: str) -> Mapping[str, str]: ...
    def is_storage(self, name: str) -> bool: ...
    def _kind_text(self, name: str) -> str: ...

Link = tuple[str, str]

NEVER = -(1 << 62)
"""A local time before any clock reading."""


def _is_quorum(members: frozenset[str], group: Iterable[str]) -> bool:
    return 2 * len(members.intersection(group)) > len(members)


@dataclass(frozen=True, slots=True)
class _Sent:
    """A message the monitor saw sent over link ``src -> dst``, and whether it could have
    been delivered: the link was up then, or has come up since (``ups``: how many
    LinkUps of it there had been)."""

    src: str
    dst: str
    up: bool
    ups: int


@dataclass(slots=True)
class _Detect:
    """A replica's failure-detection state, as the spec's ``heardLeft`` and its probes."""

    heard_until: int = NEVER
    """Local time until which it hears a leader holding its lease (spec heardLeft > 0)."""
    heard_at: int | None = None
    """When it last granted a ``held`` request (local time), for messages."""
    suspecting: bool = False
    answers: list[tuple[_Sent, bool]] = field(default_factory=list)
    """This suspicion's answers: (the probeAck sent, its ``hears``)."""


class GrayRules:
    def __init__(self, mon: Monitor, peer_confirm: bool | None) -> None:
        self.mon = mon
        self.peer_confirm = peer_confirm
        self.down: set[Link] = set()
        self.down_since: dict[Link, int] = {}
        """Real time of each down link's LinkDown (receipts are judged by real time)."""
        self.ups: Counter[Link] = Counter()
        self.d: dict[str, _Detect] = {n: _Detect() for n in mon.r}
        self.handoffs: dict[str, list[tuple[int, _Sent]]] = {}
        """Successor -> (ballot, the handoff message) for every LeaseRelinquish seen."""
        self.held: dict[str, dict[tuple[int, int], bool]] = {}
        """Leader -> (ballot, request start) -> whether it held its lease when it asked."""

    # --- links -----------------------------------------------------------------------

    def _sent(self, src: str, dst: str) -> _Sent:
        link = (src, dst)
        return _Sent(src, dst, link not in self.down, self.ups[link])

    def _deliverable(self, m: _Sent) -> bool:
        return m.up or self.ups[(m.src, m.dst)] > m.ups

    def _link_event(self, node: str, a: Any, up: bool) -> None:
        src, dst = getattr(a, "from"), a.to
        what = "LinkUp" if up else "LinkDown"
        where = self.mon._where or "event"
        if src != node:
            raise ValueError(f"{where}: {what} of link {src}->{dst} on {node}'s line (the "
                             f"link's sender traces it)")
        if dst not in self.mon.r:
            raise ValueError(f"{where}: {what} names link {src}->{dst}, not a link between "
                             f"two replicas of the run")
        # The spec's guards (from # to; LinkDown of a link that is up, LinkUp of one that
        # is down): a step it does not take, so a violation, and the step changes nothing.
        link = (src, dst)
        if src == dst:
            self.mon._fail(what, f"{node} takes link {src}->{dst} {'up' if up else 'down'}: "
                                 f"a replica has no link to itself")
        elif up:
            if link not in self.down:
                self.mon._fail(what, f"link {src}->{dst} comes up, but it is not down")
                return
            self.down.discard(link)
            self.down_since.pop(link, None)
            self.ups[link] += 1
        else:
            if link in self.down:
                self.mon._fail(what, f"link {src}->{dst} goes down, but it is down already")
                return
            self.down.add(link)
            real = getattr(self.mon._event, "real", None)
            if real is not None:
                self.down_since[link] = real
            elif self.mon.bounds is not None:  # format 4: the latest it can have gone down
                self.down_since[link] = self.mon.bounds[1]

    def _on_LinkDown(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        self._link_event(node, a, up=False)

    def _on_LinkUp(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        self._link_event(node, a, up=True)

    def receive(self, node: str, src: str, action: str) -> None:
        """``node`` takes (in ``action``) a message ``src`` sent: the link must be up.
        By real time, not by the order events reach the monitor: a step is traced once
        its WAL sync is done, so a receipt from before a LinkDown can arrive after it."""
        ev = self.mon._event
        real = getattr(ev, "real", None)
        since = self.down_since.get((src, node))
        if real is not None and since is not None and real <= since:
            return
        bounds = self.mon.bounds
        if bounds is not None and since is not None and bounds[0] <= since \
                and src != node and (src, node) in self.down:
            # Format 4: the receipt may have come before the LinkDown (their true-time
            # intervals overlap): possible, not certain.
            self.mon._warn("LinkDelivery", f"{node} may have received {src}'s message "
                                           f"({action}) after the link {src}->{node} went down "
                                           f"(their clock intervals overlap)")
            return
        if src != node and (src, node) in self.down:
            self.mon._fail("LinkDelivery", f"{node} receives {src}'s message ({action}) while "
                                           f"the link {src}->{node} is down")

    # --- hearing a leader ------------------------------------------------------------

    def _confirming(self) -> bool | None:
        """Whether peer confirmation is on; None while unknown."""
        return self.peer_confirm

    def _seen_gray(self) -> None:
        if self.peer_confirm is None:
            self.peer_confirm = True

    def hears(self, node: str, clock: int) -> bool:
        """The spec's heardLeft[node] > 0, on node's clock."""
        return clock < self.d[node].heard_until

    def _heard_text(self, node: str) -> str:
        at = self.d[node].heard_at
        return ("it has granted no request of a leader holding its lease" if at is None
                else f"it granted a request of a leader holding its lease at {at}us, within "
                     f"LeaseDur ({self.mon.lease_dur}us)")

    def renew(self, node: str, rep: _Replica, start: int, clock: int) -> None:
        """LeaseRenew: not after relinquishing, not during the new-leader wait; remember
        whether the leader held its lease as it asked (the request's ``held``)."""
        if rep.role == "leader" and rep.relinquished:
            self.mon._fail("LeaseExclusivity", f"{node} asks for a lease in ballot "
                                               f"{rep.ballot} after relinquishing it "
                                               f"(renewed after relinquishing)")
        elif rep.role == "leader" and rep.wait_until - clock >= self.mon.lease_dur:
            self.mon._fail("LeaseExclusivity",
                           f"{node} asks for a lease {rep.wait_until - clock}us before the end "
                           f"of its new-leader wait, which it may only once less than "
                           f"LeaseDur is left: it skipped the wait for an earlier lease "
                           f"that was not handed off to it")
        mine = self.held.setdefault(node, {})
        dur = self.mon.lease_dur
        for k in [k for k in mine if k[0] != rep.ballot or k[1] + dur <= clock]:
            del mine[k]
        mine[(rep.ballot, start)] = self.mon.holds_lease(node, clock)

    def grant(self, node: str, m: Any, clock: int) -> None:
        """LeaseGrant of request m: over a working link; ``held`` only if its leader held
        its lease when it asked; a ``held`` request means node hears a leader."""
        self.receive(node, m.src, "LeaseGrant")
        if not m.held:
            return
        self._seen_gray()
        if self.peer_confirm is False:
            self.mon._fail("EventuallyConnectedLease",
                           f"{node} grants {m.src}'s lease request (ballot {m.bal}) that says "
                           f"held, in a run without peer confirmation (held is always false)")
        asked = self.held.get(m.src, {}).get((m.bal, m.start))
        if asked is False:
            self.mon._fail("EventuallyConnectedLease",
                           f"{m.src}'s lease request of ballot {m.bal} (start {m.start}us) says "
                           f"held, but {m.src} did not hold its lease when it asked: {node} "
                           f"vouches for a leader without a lease")
        d = self.d[node]
        d.heard_until = clock + self.mon.lease_dur
        d.heard_at = clock

    # --- suspicion and confirmation ----------------------------------------------------

    def _on_Suspect(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        self._seen_gray()
        d = self.d[node]
        mon = self.mon
        if not mon.is_storage(node):
            mon._fail("LogReplicaNeverLeads", f"{node} suspects the leader while "
                                              f"{mon._kind_text(node)}")
        if rep.role != "follower":
            mon._fail("NoNeedlessElection", f"{node} suspects the leader while {rep.role}")
        if d.suspecting:
            mon._fail("NoNeedlessElection", f"{node} suspects the leader while it already "
                                            f"suspects it")
        if self.hears(node, clock):
            mon._fail("NoNeedlessElection", f"{node} suspects the leader at {clock}us while it "
                                            f"hears a leader holding its lease "
                                            f"({self._heard_text(node)})")
        d.suspecting = True
        d.answers = []  # a new probe: the answers of any earlier suspicion do not count

    def _expected_hears(self, node: str, clock: int) -> tuple[bool, bool]:
        """What ``node`` can answer a probe: (surely hears, may hear). The lease the
        monitor computes over-approximates the leader's own (it counts grants when they
        are sent), so a leader's lease only allows ``hears = true``."""
        heard = self.hears(node, clock)
        return heard, heard or self.mon.holds_lease(node, clock)

    def _on_AnswerProbe(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        self._seen_gray()
        r = a.m.src
        mon = self.mon
        self.receive(node, r, "AnswerProbe")
        if r not in mon.r:
            raise ValueError(f"{mon._where or 'event'}: AnswerProbe of a probe from {r!r}, not "
                             f"a replica of the run")
        if mon.view(node).get(node, "none") == "none":
            mon._fail("NoNeedlessElection", f"{node} answers {r}'s probe while not a member of "
                                            f"its view")
        surely, maybe = self._expected_hears(node, clock)
        if a.hears and not maybe:
            mon._fail("EventuallyConnectedLease",
                      f"{node} answers {r}'s probe that it hears a leader holding its lease, "
                      f"but {self._heard_text(node)} and holds no lease itself")
        elif not a.hears and surely:
            mon._fail("NoNeedlessElection",
                      f"{node} answers {r}'s probe that it hears no leader holding its lease, "
                      f"but {self._heard_text(node)}")
        d = self.d[r]
        if d.suspecting:
            d.answers.append((self._sent(node, r), a.hears))

    def _on_ClearSuspicion(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        self._seen_gray()
        d = self.d[node]
        if not d.suspecting:
            self.mon._fail("EventuallyConnectedLease", f"{node} drops a suspicion it does not "
                                                       f"have")
        elif not self.hears(node, clock) and not any(
                h and self._deliverable(m) for m, h in d.answers):
            self.mon._fail("EventuallyConnectedLease",
                           f"{node} drops its suspicion with no answer of this suspicion that "
                           f"a peer hears a leader holding its lease, and hears none itself: "
                           f"a leader cut off from it would never be replaced")
        self._end_suspicion(node)

    def _end_suspicion(self, node: str) -> None:
        d = self.d[node]
        d.suspecting = False
        d.answers = []

    def handoff_for(self, node: str, ballot: int) -> bool:
        """A handoff of ``ballot`` to ``node`` that can have reached it (HandedOff)."""
        return any(b == ballot and self._deliverable(m) for b, m in self.handoffs.get(node, ()))

    def handoff_bal(self, node: str) -> int:
        """The spec's HandoffBal: the highest ballot handed off to ``node`` (0: none)."""
        return max((b for b, m in self.handoffs.get(node, ()) if self._deliverable(m)),
                   default=0)

    def phase1a(self, node: str, rep: _Replica, b: int, clock: int) -> None:
        """Phase1a (before the monitor records it): with peer confirmation, the spec's
        MayElect; then the suspicion ends."""
        if self._confirming() and not self.handoff_for(node, rep.ballot):
            d = self.d[node]
            members = self.mon.view_members(node)
            confirmed = {node} | {m.src for m, h in d.answers
                                  if not h and self._deliverable(m)}
            why = ""
            if not d.suspecting:
                why = "without suspecting the leader and without a handoff of its ballot"
            elif self.hears(node, clock):
                why = f"while it hears a leader holding its lease ({self._heard_text(node)})"
            elif not _is_quorum(members, confirmed):
                vouched = sorted({m.src for m, h in d.answers if h})
                why = (f"confirmed by {sorted(confirmed & members)} only (it and the peers that "
                       f"answered, in this suspicion, that they hear no leader), not a quorum "
                       f"of its view {sorted(members)}"
                       + (f"; {', '.join(vouched)} answered that they hear one" if vouched
                          else ""))
            if why:
                self.mon._fail("NoNeedlessElection", f"{node} starts an election (ballot {b}) "
                                                     f"{why}")
        self._end_suspicion(node)

    # --- handoff -------------------------------------------------------------------------

    def _on_LeaseRelinquish(self, node: str, rep: _Replica, a: Any, clock: int) -> None:
        s = a.s
        mon = self.mon
        if rep.role == "leader" and rep.relinquished:
            mon._fail("LeaseExclusivity", f"{node} relinquishes its lease of ballot "
                                          f"{rep.ballot} again")
        elif not mon.holds_lease(node, clock):
            mon._fail("LeaseExclusivity",
                      f"{node} relinquishes a lease it does not hold (while {rep.role}"
                      + (", in its new-leader wait" if rep.role == "leader"
                         and clock < rep.wait_until else "")
                      + f"): its successor would skip the wait for a lease of ballot "
                        f"{rep.ballot} or older that may still run")
        if s == node or mon.view(node).get(s, "none") != "storage":
            what = "itself" if s == node else (
                f"{s}, {mon.view(node).get(s, 'not a member')} in its view"
                if s in mon.r else f"{s!r}, not a replica of the run")
            mon._fail("HandoffGap", f"{node} hands its ballot {rep.ballot} off to {what}: only "
                                    f"a storage member of its view can take over")
        rep.relinquished = True
        if s in mon.r:
            self.handoffs.setdefault(s, []).append((rep.ballot, self._sent(node, s)))

    # --- after every step -------------------------------------------------------------------

    def crash(self, node: str) -> None:
        """Crash (and the restart that follows): the volatile detection state is gone."""
        self.d[node] = _Detect()

    def after_step(self, node: str, rep: _Replica, post: Any, clock: int) -> None:
        """A leader that reports a lease during its new-leader wait skipped the wait."""
        if post is not None and post.lease and rep.role == "leader" and clock < rep.wait_until:
            self.mon._fail("LeaseExclusivity",
                           f"{node} believes it holds a lease {rep.wait_until - clock}us before "
                           f"the end of its new-leader wait: it skipped the wait for an "
                           f"earlier lease that was not handed off to it")


__all__ = ["GrayRules"]
