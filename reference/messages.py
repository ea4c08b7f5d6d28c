"""Commands, log entries, protocol messages and handler effects of a replica.

Message classes carry the field names of the spec's message records
(specs/Replication.tla) with ``from``/``to`` spelled ``src``/``dst``. Lease
messages carry ``start``, the leader's local clock reading when it asked for the
lease, instead of the spec's relative ``left``: on the leader's clock at local
time ``now`` the spec's ``left`` is ``max(0, start + LeaseDur - now)``.

Everything here is immutable so a message can be delivered (or duplicated) to
several receivers without aliasing their state. The classes are frozen
``msgspec.Struct``s rather than dataclasses: a run builds millions of them, and a
frozen dataclass's ``__init__`` costs several times as much.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

import msgspec

from reference.storage import M, Result

Kind: TypeAlias = Literal["storage", "log", "none"]
"""A member's kind, as the spec's ``Kinds``; ``"none"`` marks a non-member."""

MemberKind: TypeAlias = Literal["storage", "log"]

Role: TypeAlias = Literal["follower", "candidate", "leader"]

# --- commands and log entries ------------------------------------------------------


class NoOp(msgspec.Struct, frozen=True):
    """The spec's ``NoOp``: fills log holes found by recovery."""

    def __repr__(self) -> str:
        return "NOOP"


NOOP = NoOp()


class Command(msgspec.Struct, frozen=True):
    """A client write: an encoded storage ``WriteOp`` tagged with the client's request id.

    The request id lets a retried write (the same id submitted again after a leader
    failed) be applied at most once, whatever slots it ends up chosen in.
    """

    request_id: str
    op: bytes


ChangeOp: TypeAlias = Literal["add", "remove", "promote"]


class Change(msgspec.Struct, frozen=True):
    """A configuration command: one member at a time (the spec's change records).

    ``add`` makes ``who`` (a fresh incarnation id) a member of kind ``kind``
    (``"storage"`` or ``"log"``); ``remove`` makes it ``"none"``; ``promote`` turns a
    log replica into a storage replica. Its request id is ``"<op>-<who>"``: ids are
    never reused, so each (op, who) is logged at most once by a correct leader.
    """

    op: ChangeOp
    who: str
    kind: MemberKind | None = None

    def __post_init__(self) -> None:
        if self.op not in ("add", "remove", "promote"):
            raise ValueError(f"bad change op {self.op!r}")
        if not self.who:
            raise ValueError("a change names a replica")
        if (self.op == "add") != (self.kind in ("storage", "log")):
            raise ValueError("kind ('storage' or 'log') is given for add, and only for add")

    @property
    def request_id(self) -> str:
        return f"{self.op}-{self.who}"

    @property
    def new_kind(self) -> Kind:
        """``who``'s kind once the change takes effect."""
        if self.kind is not None:
            return self.kind
        return "none" if self.op == "remove" else "storage"


Cmd: TypeAlias = Command | Change | NoOp


class Entry(msgspec.Struct, frozen=True):
    """One log slot: ``[bal |-> b, cmd |-> c]``; ``bal = 0`` means empty."""

    bal: int
    cmd: Cmd


EMPTY = Entry(0, NOOP)
"""The spec's ``EmptyEntry``."""

# --- protocol messages -------------------------------------------------------------


class Phase1aMsg(msgspec.Struct, frozen=True):
    bal: int
    src: str


class Phase1bMsg(msgspec.Struct, frozen=True):
    bal: int
    src: str
    dst: str
    log: tuple[Entry, ...]
    """The acceptor's log above its checkpoint, slot ``base + 1`` first, up to its
    highest filled slot."""
    granted: int
    base: int = 0
    """The acceptor's checkpoint point: slots 1..base are committed and truncated."""
    base_config: tuple[tuple[str, Kind], ...] = ()
    """The configuration at slot ``base`` (sorted (id, kind) pairs); empty when base = 0."""
    base_named: tuple[str, ...] = ()
    """Ids named by a configuration command at or below ``base`` (never to be re-added)."""


class Phase2aMsg(msgspec.Struct, frozen=True):
    bal: int
    slot: int
    cmd: Cmd
    src: str


class Phase2bMsg(msgspec.Struct, frozen=True):
    bal: int
    slot: int
    cmd: Cmd
    src: str


class CommitMsg(msgspec.Struct, frozen=True):
    bal: int
    slot: int
    src: str


class LeaseMsg(msgspec.Struct, frozen=True):
    bal: int
    start: int
    """Leader's local clock when it sent the request; the lease runs to start + LeaseDur."""
    src: str
    held: bool = False
    """The leader held its lease when it asked (peer confirmation only; else false)."""


class LeaseAckMsg(msgspec.Struct, frozen=True):
    bal: int
    start: int
    src: str
    dst: str


class ProbeMsg(msgspec.Struct, frozen=True):
    """A suspecting follower asks: do you hear a leader holding its lease?"""

    src: str
    n: int
    """The suspicion's nonce (reference/leader_check.py); the answer echoes it."""


class ProbeAckMsg(msgspec.Struct, frozen=True):
    src: str
    dst: str
    hears: bool
    """The sender hears a leader holding its lease (its ``heard_until`` is ahead)."""
    n: int
    """The nonce of the probe answered: the answer counts only for that suspicion."""


class HandoffMsg(msgspec.Struct, frozen=True):
    """Leader ``src`` relinquished its lease in ballot ``bal``: ``dst``, take over."""

    bal: int
    src: str
    dst: str


Message: TypeAlias = (
    Phase1aMsg | Phase1bMsg | Phase2aMsg | Phase2bMsg | CommitMsg | LeaseMsg | LeaseAckMsg
    | ProbeMsg | ProbeAckMsg | HandoffMsg
)

# --- client replies ----------------------------------------------------------------


class NotLeader(msgspec.Struct, frozen=True):
    """This replica does not lead; the client should try another."""


class LeaseNotHeld(msgspec.Struct, frozen=True):
    """This replica leads but may not serve yet (waiting out old leases, or no lease)."""


class NotReady(msgspec.Struct, frozen=True):
    """The leader holds its lease but is still re-proposing or re-committing recovered slots."""


class NotStorage(msgspec.Struct, frozen=True):
    """This replica keeps no B-tree (a log replica or a non-member), so it cannot read."""


class ReadResult(msgspec.Struct, frozen=True):
    item: M | None


ClientError: TypeAlias = NotLeader | LeaseNotHeld | NotReady | NotStorage
ReplyResult: TypeAlias = Result | ReadResult | ClientError

