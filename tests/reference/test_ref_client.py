from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from reference.client import Client, ClientConfig, HistoryRecord
from reference.codec import ClientReply, ClientRequest, decode, encode
from reference.messages import (
    LeaseNotHeld,
    NotLeader,
    NotReady,
    NotStorage,
    ReadResult,
    ReplyResult,
)
from reference.network import Network, NetworkConfig
from reference.simulator import Simulator
from reference.storage import (
    AddNumber,
    Applied,
    AttributeExists,
    ConditionalCheckFailed,
    Delete,
    Invalid,
    Key,
    M,
    N,
    Put,
    S,
    Update,
    WriteOp,
    encode_op,
    item_to_json,
    key_to_json,
)

HOP = 250  # same-AZ latency, no jitter
ATTEMPT, BACKOFF = 50_000, 5_000
REPLICAS = ["r1", "r2", "r3"]
K = Key(S("k"))
ITEM = M(pk=S("k"), v=N(1))
APPLIED = Applied(None, ITEM)
RICH = M(pk=S("k"), v=N("1.5"))

# A script answers (replica, request, how many requests that replica has seen so far)
# with a list of (delay_us, reply) to send back; [] means stay silent.
Script = Callable[[str, ClientRequest, int], list[tuple[int, ClientReply]]]


@dataclass
class Harness:
    sim: Simulator
    net: Network
    client: Client
    history: list[HistoryRecord]
    seen: list[tuple[int, str, ClientRequest]] = field(default_factory=list)
    done: list[HistoryRecord] = field(default_factory=list)

    def targets(self) -> list[str]:
        return [name for _, name, _ in self.seen]

    def rids(self) -> set[str]:
        return {req.rid for _, _, req in self.seen}


def harness(script: Script, config: ClientConfig | None = None, seed: int = 7,
            client_rng: random.Random | None = None) -> Harness:
    sim = Simulator(seed)
    net = Network(sim, sim.fork_rng(), NetworkConfig(jitter_us=0))
    history: list[HistoryRecord] = []
    client = Client(sim, net, "c", "az1", REPLICAS,
                    client_rng if client_rng is not None else sim.fork_rng(), history,
                    ATTEMPTS if config is None else config)
    h = Harness(sim, net, client, history)
    counts: dict[str, int] = {}

    def handler(dst: str, src: str, payload: bytes) -> None:
        req = decode(payload)
        assert isinstance(req, ClientRequest)
        h.seen.append((sim.now, dst, req))
        counts[dst] = counts.get(dst, 0) + 1
        for delay, reply in script(dst, req, counts[dst]):
            sim.schedule(delay, net.send, dst, src, encode(reply))

    for name in REPLICAS:
        net.add_node(name, "az1", handler)
    return h


ATTEMPTS = ClientConfig(attempt_timeout_us=ATTEMPT, op_timeout_us=3_000_000,
                        retry_backoff_us=BACKOFF, busy_retries=3)


def answer(by: dict[str, ReplyResult], hint: str | None = None) -> Script:
    """Each replica in ``by`` answers at once with its result; the rest stay silent."""

    def script(name: str, req: ClientRequest, n: int) -> list[tuple[int, ClientReply]]:
        r = by.get(name)
        return [] if r is None else [(0, ClientReply(req.rid, r, hint))]

    return script


def put(h: Harness) -> str:
    return h.client.put(ITEM, on_done=h.done.append)


# --- redirection and retries ---------------------------------------------------------


def test_not_leader_hint_is_followed_with_same_request_id() -> None:
    h = harness(answer({"r1": NotLeader(), "r3": APPLIED}, hint="r3"))
    h.sim.run(until_us=1_000)
    rid = put(h)
    h.sim.run()
    assert rid == "c-1"
    assert h.targets() == ["r1", "r3"]
    assert h.rids() == {rid}
    assert [t for t, _, _ in h.seen] == [1_000 + HOP, 1_000 + 2 * HOP + BACKOFF + HOP]
    rec = h.history[0]
    assert h.done == [rec]
    assert (rec.status, rec.result, rec.served_by, rec.attempts) == ("ok", APPLIED, "r3", 2)
    assert (rec.invoke_us, rec.complete_us) == (1_000, 1_000 + 4 * HOP + BACKOFF)
    assert h.client.leader_guess == "r3"
    assert h.client.in_flight == 0


def test_leader_guess_carries_over_to_next_operation() -> None:
    h = harness(answer({"r1": NotLeader(), "r3": APPLIED}, hint="r3"))
    put(h)
    h.sim.run()
    h.seen.clear()
    put(h)
    h.client.get(K, consistent=True)
    h.sim.run()
    assert h.targets() == ["r3", "r3"]
    assert [r.attempts for r in h.history] == [2, 1, 1]


@pytest.mark.parametrize(("hint", "next_target"), [
    (None, "r2"),       # no hint: next in order
    ("r3", "r3"),       # hint followed
    ("nobody", "r2"),   # unknown hint ignored
    ("r1", "r2"),       # a replica naming itself: next in order
])
def test_not_leader_moves_to_hint_or_next(hint: str | None, next_target: str) -> None:
    h = harness(answer({"r1": NotLeader(), "r2": APPLIED, "r3": APPLIED}, hint=hint))
    put(h)
    h.sim.run()
    assert h.targets() == ["r1", next_target]
    assert h.history[0].served_by == next_target


def test_attempt_timeout_moves_on_and_reuses_request_id() -> None:
    h = harness(answer({"r2": APPLIED}))
    rid = put(h)
    h.sim.run()
    assert h.targets() == ["r1", "r2"]
    assert h.rids() == {rid}
    assert [t for t, _, _ in h.seen] == [HOP, ATTEMPT + HOP]
    rec = h.history[0]
    assert (rec.status, rec.served_by, rec.attempts, rec.complete_us) == (
        "ok", "r2", 2, ATTEMPT + 2 * HOP)
    assert h.client.leader_guess == "r2"


def test_timeouts_wrap_around_the_replica_list() -> None:
    h = harness(answer({"r1": APPLIED}))
    h.client.leader_guess = "r2"
    put(h)
    h.sim.run()
    assert h.targets() == ["r2", "r3", "r1"]
    assert h.history[0].attempts == 3


@pytest.mark.parametrize("busy", [LeaseNotHeld(), NotReady()], ids=repr)
@pytest.mark.parametrize("busy_retries", [1, 2, 3, 5])
def test_busy_leader_retried_in_place_then_left(busy: ReplyResult, busy_retries: int) -> None:
    cfg = ClientConfig(attempt_timeout_us=ATTEMPT, retry_backoff_us=BACKOFF,
                       busy_retries=busy_retries)
    h = harness(answer({"r1": busy, "r2": APPLIED}), cfg)
    rid = put(h)
    h.sim.run()
    # busy_retries answers from one replica, then the next replica
    assert h.targets() == ["r1"] * busy_retries + ["r2"]
    assert h.rids() == {rid}
    times = [t for t, _, _ in h.seen]
    assert all(b - a == 2 * HOP + BACKOFF for a, b in itertools.pairwise(times))
    rec = h.history[0]
    assert (rec.status, rec.served_by, rec.attempts) == ("ok", "r2", busy_retries + 1)


def test_busy_then_serving_stays_on_same_replica() -> None:
    def script(name: str, req: ClientRequest, n: int) -> list[tuple[int, ClientReply]]:
        r: ReplyResult = LeaseNotHeld() if n == 1 else NotReady() if n == 2 else APPLIED
        return [(0, ClientReply(req.rid, r))]

    h = harness(script)
    put(h)
    h.sim.run()
    assert h.targets() == ["r1", "r1", "r1"]
    assert h.history[0].served_by == "r1"


def test_not_storage_on_eventual_read_moves_on_without_busy_retries() -> None:
    rng = random.Random(0)
    first = random.Random(0).choice(REPLICAS)
    nxt = REPLICAS[(REPLICAS.index(first) + 1) % 3]
    h = harness(answer({first: NotStorage(), nxt: ReadResult(ITEM)}), client_rng=rng)
    h.client.get(K, consistent=False)
    h.sim.run()
    assert h.targets() == [first, nxt]
    assert h.history[0].result == ReadResult(ITEM)
    assert h.client.leader_guess == "r1"  # eventual reads never move the leader guess


def test_stale_error_from_earlier_attempt_is_ignored() -> None:
    # r1 complains late (after the client moved on to r2); r2 answers slowly.
    def script(name: str, req: ClientRequest, n: int) -> list[tuple[int, ClientReply]]:
        if name == "r1":
            return [(ATTEMPT + 10_000, ClientReply(req.rid, NotLeader(), "r3"))]
        if name == "r2":
            return [(20_000, ClientReply(req.rid, APPLIED))]
        return [(0, ClientReply(req.rid, APPLIED))]

    h = harness(script)
    put(h)
    h.sim.run()
    assert h.targets() == ["r1", "r2"]
    rec = h.history[0]
    assert (rec.served_by, rec.attempts, rec.complete_us) == (
        "r2", 2, ATTEMPT + 2 * HOP + 20_000)


def test_success_from_earlier_attempt_completes_operation() -> None:
    def script(name: str, req: ClientRequest, n: int) -> list[tuple[int, ClientReply]]:
        return [(ATTEMPT + 1_000, ClientReply(req.rid, APPLIED))] if name == "r1" else []

    h = harness(script)
    put(h)
    h.sim.run()
    rec = h.history[0]
    assert (rec.status, rec.served_by, rec.attempts) == ("ok", "r1", 2)
    assert rec.complete_us == ATTEMPT + 1_000 + 2 * HOP
    assert h.client.leader_guess == "r1"


# --- giving up -------------------------------------------------------------------------


def test_op_timeout_ends_with_status_timeout() -> None:
    cfg = ClientConfig(attempt_timeout_us=ATTEMPT, op_timeout_us=4 * ATTEMPT)
    h = harness(answer({}), cfg)
    h.sim.run(until_us=1_000)
    rid = put(h)
    h.sim.run()
    assert h.targets() == ["r1", "r2", "r3", "r1"]
    assert h.rids() == {rid}
    rec = h.history[0]
    assert h.done == [rec]
    assert (rec.status, rec.result, rec.served_by) == ("timeout", None, None)
    assert (rec.attempts, rec.invoke_us, rec.complete_us) == (4, 1_000, 1_000 + 4 * ATTEMPT)
    assert rec.done and not rec.succeeded
    assert h.client.in_flight == 0
    assert h.sim.pending == 0


def test_op_timeout_under_constant_busy_answers() -> None:
    cfg = ClientConfig(attempt_timeout_us=ATTEMPT, op_timeout_us=100_000,
                       retry_backoff_us=BACKOFF, busy_retries=2)
    h = harness(answer({r: LeaseNotHeld() for r in REPLICAS}), cfg)
    put(h)
    h.sim.run()
    rec = h.history[0]
    assert rec.status == "timeout"
    step = 2 * HOP + BACKOFF
    assert rec.attempts == -(-100_000 // step)
    assert h.targets()[:5] == ["r1", "r1", "r2", "r2", "r3"]
    assert 100_000 <= rec.complete_us < 100_000 + step


def test_answer_after_op_timeout_is_not_accepted() -> None:
    op_timeout = 120_000

    def script(name: str, req: ClientRequest, n: int) -> list[tuple[int, ClientReply]]:
        # r3 (tried at 100ms) answers 25ms later: after the 120ms deadline.
        return [(25_000, ClientReply(req.rid, APPLIED))] if name == "r3" else []

    h = harness(script, ClientConfig(attempt_timeout_us=ATTEMPT, op_timeout_us=op_timeout))
    put(h)
    h.sim.run()
    rec = h.history[0]
    assert rec.status == "timeout"
    assert rec.complete_us == op_timeout


def test_zero_op_timeout_times_out_without_sending() -> None:
    h = harness(answer({"r1": APPLIED}), ClientConfig(op_timeout_us=0))
    put(h)
    h.sim.run()
    assert h.seen == []
    assert (h.history[0].status, h.history[0].attempts) == ("timeout", 0)


# --- replies after completion, junk ------------------------------------------------------


def test_late_duplicate_reply_after_completion_is_ignored() -> None:
    def script(name: str, req: ClientRequest, n: int) -> list[tuple[int, ClientReply]]:
        return [(0, ClientReply(req.rid, APPLIED)),
                (10_000, ClientReply(req.rid, ConditionalCheckFailed(ITEM))),
                (20_000, ClientReply(req.rid, NotLeader(), "r3"))]

    h = harness(script)
    put(h)
    h.sim.run()
    rec = h.history[0]
    assert h.done == [rec]
    assert (rec.status, rec.result, rec.complete_us) == ("ok", APPLIED, 2 * HOP)
    assert h.client.leader_guess == "r1"
    assert h.targets() == ["r1"]


def test_reply_for_unknown_request_and_garbage_are_dropped() -> None:
    h = harness(answer({}))
    h.net.send("r1", "c", encode(ClientReply("c-99", APPLIED)))
    h.net.send("r1", "c", b"\x00garbage")
    h.net.send("r1", "c", encode(ClientRequest("x", "strong", b"", K)))  # not a reply
    h.sim.run()
    assert h.history == []
    assert h.net.stats.dropped["undecodable"] == 1


@pytest.mark.parametrize(("result", "status"), [
    (APPLIED, "ok"),
    (ConditionalCheckFailed(ITEM), "condfail"),
    (Invalid("bad"), "invalid"),
])
def test_final_result_sets_status(result: ReplyResult, status: str) -> None:
    h = harness(answer({"r1": result}))
    put(h)
    h.sim.run()
    rec = h.history[0]
    assert (rec.status, rec.result, rec.attempts) == (status, result, 1)
    assert rec.succeeded is (status != "invalid")


# --- requests and reads --------------------------------------------------------------------


def test_write_requests_carry_encoded_ops() -> None:
    h = harness(answer({"r1": APPLIED}))
    cond = AttributeExists("v")
    h.client.put(ITEM, cond)
    h.client.update(K, (AddNumber("v", N(2)),))
    h.client.delete(K, cond)
    h.sim.run()
    expected: list[WriteOp] = [Put(ITEM, cond), Update(K, (AddNumber("v", N(2)),)), Delete(K, cond)]
    reqs = [req for _, _, req in h.seen]
    assert [r.rid for r in reqs] == ["c-1", "c-2", "c-3"]
    assert [(r.kind, r.op, r.key) for r in reqs] == [
        ("write", encode_op(w), None) for w in expected]
    assert [(r.op, r.key, r.write, r.consistent) for r in h.history] == [
        ("put", K, expected[0], None), ("update", K, expected[1], None),
        ("delete", K, expected[2], None)]


def test_strong_read_goes_to_leader_guess() -> None:
    h = harness(answer({"r2": ReadResult(ITEM)}))
    h.client.leader_guess = "r2"
    h.client.get(K, consistent=True)
    h.sim.run()
    [(_, target, req)] = h.seen
    assert (target, req.kind, req.key, req.op) == ("r2", "strong", K, b"")
    rec = h.history[0]
    assert (rec.op, rec.consistent, rec.write, rec.result) == ("get", True, None,
                                                               ReadResult(ITEM))


def test_eventual_reads_use_client_rng() -> None:
    n = 30
    h = harness(answer({r: ReadResult(None) for r in REPLICAS}), client_rng=random.Random(42))
    expect = random.Random(42)
    for _ in range(n):
        h.client.get(K, consistent=False)
    h.sim.run()
    by_rid = {req.rid: target for _, target, req in h.seen}
    assert [by_rid[f"c-{i}"] for i in range(1, n + 1)] == [
        expect.choice(REPLICAS) for _ in range(n)]
    assert len(h.seen) == n and set(by_rid.values()) == set(REPLICAS)
    assert all(req.kind == "eventual" for _, _, req in h.seen)
    assert [r.served_by for r in h.history] == [by_rid[r.id] for r in h.history]
    assert h.client.leader_guess == "r1"


def test_strong_reads_and_writes_do_not_draw_from_rng() -> None:
    rng = random.Random(5)
    h = harness(answer({"r1": APPLIED}), client_rng=rng)
    state = rng.getstate()
    put(h)
    h.client.get(K, consistent=True)
    h.sim.run()
    assert rng.getstate() == state


# --- history -----------------------------------------------------------------------------


def test_history_records_invoke_order_and_simulated_times() -> None:
    def script(name: str, req: ClientRequest, n: int) -> list[tuple[int, ClientReply]]:
        delay = 3_000 if req.rid == "c-1" else 0
        return [(delay, ClientReply(req.rid, APPLIED if req.kind == "write"
                                    else ReadResult(ITEM)))]

    h = harness(script)
    h.sim.run(until_us=500)
    put(h)
    h.sim.run(until_us=700)
    h.client.get(K, consistent=True)
    h.sim.run()
    assert [r.id for r in h.history] == ["c-1", "c-2"]
    assert [(r.invoke_us, r.complete_us) for r in h.history] == [
        (500, 500 + 2 * HOP + 3_000), (700, 700 + 2 * HOP)]
    assert [r.id for r in h.done] == ["c-1"]  # put(h) registers on_done; the get does not
    assert all(r.done for r in h.history)


def test_on_done_called_once_per_operation() -> None:
    h = harness(answer({"r1": APPLIED}))
    calls: list[str] = []
    h.client.put(ITEM, on_done=lambda r: calls.append(r.id))
    h.client.get(K, True, on_done=lambda r: calls.append(r.id))
    assert h.client.in_flight == 2
    h.sim.run()
    assert calls == ["c-1", "c-2"]


@pytest.mark.parametrize(("rec", "extra"), [
    (HistoryRecord("c-1", "c", "put", K, None, Put(RICH), 10, 20, "ok",
                   Applied(ITEM, RICH), 2, "r2"),
     {"args": encode_op(Put(RICH)).decode(), "old": item_to_json(ITEM),
      "new": item_to_json(RICH)}),
    (HistoryRecord("c-2", "c", "delete", K, None, Delete(K), 10, 20, "ok",
                   Applied(None, None), 1, "r1"),
     {"args": encode_op(Delete(K)).decode(), "old": None, "new": None}),
    (HistoryRecord("c-3", "c", "put", K, None, Put(RICH, AttributeExists("v")), 10, 20,
                   "condfail", ConditionalCheckFailed(ITEM), 1, "r1"),
     {"args": encode_op(Put(RICH, AttributeExists("v"))).decode(),
      "current": item_to_json(ITEM)}),
    (HistoryRecord("c-4", "c", "put", K, None, Put(RICH), 10, 20, "invalid",
                   Invalid("nope"), 1, "r1"),
     {"args": encode_op(Put(RICH)).decode(), "reason": "nope"}),
    (HistoryRecord("c-5", "c", "put", K, None, Put(RICH), 10, 20, "timeout", None, 7, None),
     {"args": encode_op(Put(RICH)).decode()}),
    (HistoryRecord("c-6", "c", "get", K, True, None, 10, 20, "ok", ReadResult(RICH), 1, "r1"),
     {"consistent": True, "value": item_to_json(RICH)}),
    (HistoryRecord("c-7", "c", "get", K, False, None, 10, 20, "ok", ReadResult(None), 1, "r3"),
     {"consistent": False, "value": None}),
    (HistoryRecord("c-8", "c", "get", K, False, None, 10), {"consistent": False}),
], ids=lambda x: x.id if isinstance(x, HistoryRecord) else "")
def test_history_record_to_json(rec: HistoryRecord, extra: dict[str, object]) -> None:
    base = {"id": rec.id, "client": "c", "op": rec.op, "key": key_to_json(K),
            "invoke": 10, "complete": rec.complete_us, "status": rec.status,
            "attempts": rec.attempts, "replica": rec.served_by}
    assert rec.to_json() == {**base, **extra}


def test_pending_record_flags() -> None:
    rec = HistoryRecord("c-1", "c", "get", K, True, None, 0)
    assert (rec.done, rec.succeeded, rec.complete_us, rec.attempts) == (False, False, -1, 0)
    assert rec.to_json()["complete"] == -1 and rec.to_json()["status"] is None


def test_client_record_to_json_after_redirect() -> None:
    h = harness(answer({"r1": NotLeader(), "r2": APPLIED}, hint="r2"))
    put(h)
    h.sim.run()
    out = h.history[0].to_json()
    assert out == {"id": "c-1", "client": "c", "op": "put", "key": key_to_json(K),
                   "invoke": 0, "complete": 4 * HOP + BACKOFF, "status": "ok", "attempts": 2,
                   "replica": "r2", "args": encode_op(Put(ITEM)).decode(), "old": None,
                   "new": item_to_json(ITEM)}
