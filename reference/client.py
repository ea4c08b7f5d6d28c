"""A client of the replication group, and the history of what it saw.

Each operation gets a request id (``<client>-<n>``) that every retry reuses, so a
write that a failed leader already committed is applied at most once (the
replicas keep the outcome per request id). Writes and strong reads go to the
replica the client believes leads; ``NotLeader`` carries a hint, a timeout or a
leader that cannot serve moves the client on to the next replica. Eventual reads
go to a random replica. An operation that gets no answer within ``op_timeout_us``
completes with status ``timeout``: for a write that means *unknown*, it may still
take effect.

The history (one ``HistoryRecord`` per operation, with invoke and complete times
in simulated real time) is what linearizability checking reads.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from reference.codec import (
    ClientReply,
    ClientRequest,
    CodecError,
    RequestKind,
    Wire,
    decode,
    encode,
)
from reference.messages import (
    LeaseNotHeld,
    NotLeader,
    NotReady,
    NotStorage,
    ReadResult,
    ReplyResult,
)
from reference.network import Network
from reference.replica import DEFAULT_SCHEMA
from reference.simulator import EventHandle, Simulator
from reference.storage import (
    Applied,
    Condition,
    ConditionalCheckFailed,
    Delete,
    Invalid,
    Key,
    KeySchema,
    M,
    Put,
    Update,
    UpdateAction,
    WriteOp,
    encode_op,
    item_to_json,
    key_to_json,
)

OpName = Literal["put", "update", "delete", "get"]
Status = Literal["ok", "condfail", "invalid", "timeout"]


@dataclass(frozen=True, slots=True)
class ClientConfig:
    attempt_timeout_us: int = 50_000
    """Give up on one replica after this long without a reply."""
    op_timeout_us: int = 3_000_000
    """Give up on the operation (status ``timeout``)."""
    retry_backoff_us: int = 5_000
    """Wait before retrying after an error reply."""
    busy_retries: int = 3
    """``LeaseNotHeld``/``NotReady`` answers from one replica before trying another."""


@dataclass(slots=True)
class HistoryRecord:
    id: str
    client: str
    op: OpName
    key: Key
    consistent: bool | None
    write: WriteOp | None
    invoke_us: int
    complete_us: int = -1
    status: Status | None = None
    result: ReplyResult | None = None
    attempts: int = 0
    served_by: str | None = None

    @property
    def done(self) -> bool:
        return self.status is not None

    @property
    def succeeded(self) -> bool:
        """The service gave a definite answer (a failed condition is an answer)."""
        return self.status in ("ok", "condfail")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, "client": self.client, "op": self.op, "key": key_to_json(self.key),
            "invoke": self.invoke_us, "complete": self.complete_us, "status": self.status,
            "attempts": self.attempts, "replica": self.served_by,
        }
        if self.consistent is not None:
            out["consistent"] = self.consistent
        if self.write is not None:
            out["args"] = encode_op(self.write).decode()
        r = self.result
        if isinstance(r, ReadResult):
            out["value"] = None if r.item is None else item_to_json(r.item)
        elif isinstance(r, Applied):
            out["old"] = None if r.old is None else item_to_json(r.old)
            out["new"] = None if r.new is None else item_to_json(r.new)
        elif isinstance(r, ConditionalCheckFailed):
            out["current"] = None if r.current is None else item_to_json(r.current)
        elif isinstance(r, Invalid):
            out["reason"] = r.reason
        return out


Callback = Callable[[HistoryRecord], None]


@dataclass(slots=True)
class _Pending:
    rec: HistoryRecord
    request: ClientRequest
    kind: RequestKind
    target: str
    on_done: Callback | None
    busy: int = 0
    timer: EventHandle | None = None
    deadline: int = 0
    tried: list[str] = field(default_factory=list)


class Client:
    def __init__(self, sim: Simulator, net: Network, name: str, az: str, replicas: list[str],
                 rng: random.Random, history: list[HistoryRecord],
                 config: ClientConfig | None = None, schema: KeySchema = DEFAULT_SCHEMA) -> None:
        self.sim = sim
        self.schema = schema
        self.net = net
        self.name = name
        self.replicas = list(replicas)
        self.rng = rng
        self.history = history
        self.config = config if config is not None else ClientConfig()
        self.leader_guess = self.replicas[0]
        self._n = 0
        self._pending: dict[str, _Pending] = {}
        net.add_node(name, az, self._on_frame, self._on_message)

    # --- operations --------------------------------------------------------------------

    def put(self, item: M, cond: Condition | None = None, on_done: Callback | None = None) -> str:
        key = self.schema.key_of(item)
        return self.write("put", key, lambda rid: Put(item, cond), on_done)

    def update(self, key: Key, actions: tuple[UpdateAction, ...], cond: Condition | None = None,
               on_done: Callback | None = None) -> str:
        return self.write("update", key, lambda rid: Update(key, actions, cond), on_done)

    def delete(self, key: Key, cond: Condition | None = None,
               on_done: Callback | None = None) -> str:
        return self.write("delete", key, lambda rid: Delete(key, cond), on_done)

    def write(self, op: OpName, key: Key, build: Callable[[str], WriteOp],
              on_done: Callback | None = None) -> str:
        """Issue the write ``build(request_id)`` (the op may record its own request id)."""
        rid = self._next_id()
        w = build(rid)
        rec = HistoryRecord(rid, self.name, op, key, None, w, self.sim.now)
        req = ClientRequest(rid, "write", encode_op(w))
        self._start(rec, req, "write", self.leader_guess, on_done)
        return rid

    def get(self, key: Key, consistent: bool, on_done: Callback | None = None) -> str:
        rid = self._next_id()
        rec = HistoryRecord(rid, self.name, "get", key, consistent, None, self.sim.now)
        kind: RequestKind = "strong" if consistent else "eventual"
        target = self.leader_guess if consistent else self.rng.choice(self.replicas)
        self._start(rec, ClientRequest(rid, kind, b"", key), kind, target, on_done)
        return rid

    def _next_id(self) -> str:
        self._n += 1
        return f"{self.name}-{self._n}"

    # --- the retry loop ----------------------------------------------------------------

    def _start(self, rec: HistoryRecord, request: ClientRequest, kind: RequestKind, target: str,
               on_done: Callback | None) -> None:
        self.history.append(rec)
        p = _Pending(rec, request, kind, target, on_done,
                     deadline=self.sim.now + self.config.op_timeout_us)
        self._pending[rec.id] = p
        self.sim.schedule(self.config.op_timeout_us, self._on_deadline, rec.id)
        self._attempt(p)

    def _attempt(self, p: _Pending) -> None:
        if self.sim.now >= p.deadline:
            self._finish(p, "timeout", None, None)
            return
        p.rec.attempts += 1
        p.tried.append(p.target)
        self.net.send_msg(self.name, p.target, p.request, encode)
        p.timer = self.sim.schedule(self.config.attempt_timeout_us, self._on_timeout, p.rec.id,
                                    p.rec.attempts)

    def _on_deadline(self, rid: str) -> None:
        p = self._pending.get(rid)
        if p is not None:
            self._finish(p, "timeout", None, None)

    def _on_timeout(self, rid: str, attempt: int) -> None:
        p = self._pending.get(rid)
        if p is None or p.rec.attempts != attempt:
            return
        self._move_on(p, None)
        self._attempt(p)

    def _move_on(self, p: _Pending, hint: str | None) -> None:
        """Pick the next replica to try: the hint if any, else the next in order."""
        p.busy = 0
        if hint is not None and hint in self.replicas and hint != p.target:
            p.target = hint
        else:
            i = self.replicas.index(p.target)
            p.target = self.replicas[(i + 1) % len(self.replicas)]
        if p.kind != "eventual":
            self.leader_guess = p.target

    def _retry_later(self, p: _Pending) -> None:
        if p.timer is not None:
            self.sim.cancel(p.timer)
        p.timer = self.sim.schedule(self.config.retry_backoff_us, self._retry, p.rec.id,
                                    p.rec.attempts)

    def _retry(self, rid: str, attempt: int) -> None:
        p = self._pending.get(rid)
        if p is not None and p.rec.attempts == attempt:
            self._attempt(p)

    def _on_frame(self, dst: str, src: str, payload: bytes) -> None:
        try:
            m = decode(payload)
        except CodecError:
            self.net.stats.dropped["undecodable"] += 1
            return
        self._on_message(dst, src, m)

    def _on_message(self, dst: str, src: str, m: Wire) -> None:
        """A message arrived (decoded, or sent as an object and delivered intact)."""
        if not isinstance(m, ClientReply):
            return
        p = self._pending.get(m.rid)
        if p is None:
            return  # a late duplicate answer
        r = m.result
        if isinstance(r, NotLeader | NotStorage | LeaseNotHeld | NotReady):
            if src != p.target:
                return  # an earlier attempt's complaint; the current one is still out
            if isinstance(r, LeaseNotHeld | NotReady) and p.busy + 1 < self.config.busy_retries:
                p.busy += 1
            else:
                self._move_on(p, m.hint if isinstance(r, NotLeader) else None)
            self._retry_later(p)
            return
        if p.kind != "eventual":
            self.leader_guess = src
        if isinstance(r, Applied | ReadResult):
            self._finish(p, "ok", r, src)
        elif isinstance(r, ConditionalCheckFailed):
            self._finish(p, "condfail", r, src)
        else:
            self._finish(p, "invalid", r, src)

    def _finish(self, p: _Pending, status: Status, r: ReplyResult | None,
                src: str | None) -> None:
        del self._pending[p.rec.id]
        if p.timer is not None:
            self.sim.cancel(p.timer)
        rec = p.rec
        rec.status, rec.result, rec.served_by = status, r, src
        rec.complete_us = self.sim.now
        if p.on_done is not None:
            p.on_done(rec)

    @property
    def in_flight(self) -> int:
        return len(self._pending)
