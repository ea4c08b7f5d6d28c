from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from reference.network import Network, NetworkConfig, frame, unframe
from reference.simulator import Simulator

Received = list[tuple[int, str, str, bytes]]  # (time, dst, src, payload)


def _net(config: NetworkConfig, seed: int = 1) -> tuple[Simulator, Network, Received]:
    sim = Simulator(seed)
    net = Network(sim, sim.fork_rng(), config)
    got: Received = []

    def handler(dst: str, src: str, payload: bytes) -> None:
        got.append((sim.now, dst, src, payload))

    for name, az in [("a1", "az1"), ("a2", "az1"), ("b1", "az2"), ("c1", "az3")]:
        net.add_node(name, az, handler)
    return sim, net, got


def test_same_az_faster_than_cross_az() -> None:
    cfg = NetworkConfig(same_az_latency_us=100, cross_az_latency_us=900, jitter_us=0)
    sim, net, got = _net(cfg)
    net.send("a1", "b1", b"cross")
    net.send("a1", "a2", b"same")
    sim.run()
    assert got == [(100, "a2", "a1", b"same"), (900, "b1", "a1", b"cross")]


def test_jitter_bounds_latency() -> None:
    sim, net, got = _net(NetworkConfig(same_az_latency_us=100, jitter_us=50))
    for _ in range(500):
        net.send("a1", "a2", b"x")
    sim.run()
    times = [t for t, *_ in got]
    assert min(times) >= 100 and max(times) <= 150
    assert len(set(times)) > 20


def test_large_jitter_reorders_small_jitter_does_not() -> None:
    def arrival_order(jitter: int) -> list[bytes]:
        sim, net, got = _net(NetworkConfig(jitter_us=jitter))
        for i in range(100):
            sim.schedule_at(i * 10, net.send, "a1", "b1", i.to_bytes(2, "big"))
        sim.run()
        return [p for *_, p in got]

    in_order = [i.to_bytes(2, "big") for i in range(100)]
    assert arrival_order(0) == in_order
    assert arrival_order(5) == in_order  # jitter below the 10us send gap
    reordered = arrival_order(5_000)
    assert sorted(reordered) == in_order and reordered != in_order


def test_per_link_latency_override() -> None:
    sim, net, got = _net(NetworkConfig(same_az_latency_us=100, jitter_us=0))
    net.set_link_latency("a1", "a2", 5_000)
    net.send("a1", "a2", b"slow")
    net.send("a2", "a1", b"fast")
    sim.run()
    assert [(t, p) for t, _, _, p in got] == [(100, b"fast"), (5_000, b"slow")]


def test_loss_and_duplication_rates() -> None:
    n = 20_000
    sim, net, got = _net(NetworkConfig(loss_prob=0.2, dup_prob=0.1))
    for _ in range(n):
        net.send("a1", "b1", b"m")
    sim.run()
    s = net.stats
    assert s.sent == n
    assert abs(s.dropped["loss"] / n - 0.2) < 0.015
    assert abs(s.duplicated / (n - s.dropped["loss"]) - 0.1) < 0.015
    assert s.delivered == len(got) == n - s.dropped["loss"] + s.duplicated


def test_no_faults_means_exactly_once() -> None:
    sim, net, got = _net(NetworkConfig())
    for i in range(1_000):
        net.send("a1", "c1", i.to_bytes(2, "big"))
    sim.run()
    assert sorted(p for *_, p in got) == [i.to_bytes(2, "big") for i in range(1_000)]
    assert net.stats.total_dropped == 0 and net.stats.duplicated == 0


def _all_pairs(net: Network) -> None:
    for src in net.nodes():
        for dst in net.nodes():
            if src != dst:
                net.send(src, dst, f"{src}>{dst}".encode())


def test_partition_drops_exactly_cross_group_traffic() -> None:
    sim, net, got = _net(NetworkConfig())
    net.partition(["a1", "a2"], ["b1"])
    _all_pairs(net)
    sim.run()
    delivered = {(src, dst) for _, dst, src, _ in got}
    cut = {("a1", "b1"), ("a2", "b1"), ("b1", "a1"), ("b1", "a2")}
    everything = {(s, d) for s in net.nodes() for d in net.nodes() if s != d}
    assert delivered == everything - cut
    assert net.stats.dropped["partition"] == 4
    assert not net.can_reach("b1", "a2") and net.can_reach("b1", "c1")

    net.heal()
    got.clear()
    _all_pairs(net)
    sim.run()
    assert {(src, dst) for _, dst, src, _ in got} == everything


def test_isolate_node() -> None:
    sim, net, got = _net(NetworkConfig())
    net.isolate("c1")
    _all_pairs(net)
    sim.run()
    assert all("c1" not in (src, dst) for _, dst, src, _ in got)
    assert net.stats.dropped["partition"] == 6


def test_directed_link_failure_is_one_way() -> None:
    sim, net, got = _net(NetworkConfig())
    net.fail_link("a1", "b1")
    net.send("a1", "b1", b"lost")
    net.send("b1", "a1", b"kept")
    net.send("a1", "a2", b"kept too")
    sim.run()
    assert sorted(p for *_, p in got) == [b"kept", b"kept too"]
    assert net.stats.dropped["link_down"] == 1
    net.heal()  # partitions only: the directed failure persists
    net.send("a1", "b1", b"still lost")
    net.restore_link("a1", "b1")
    net.send("a1", "b1", b"back")
    sim.run()
    assert [p for _, dst, _, p in got if dst == "b1"] == [b"back"]


def test_in_flight_message_survives_partition_started_later() -> None:
    sim, net, got = _net(NetworkConfig(jitter_us=0))
    net.send("a1", "b1", b"on the wire")
    net.partition(["a1"], ["b1"])
    sim.run()
    assert [p for *_, p in got] == [b"on the wire"]


def test_down_nodes_drop_traffic() -> None:
    sim, net, got = _net(NetworkConfig(jitter_us=0))
    net.send("a1", "b1", b"in flight")
    net.set_node_up("b1", False)
    net.send("a1", "b1", b"to down node")
    net.send("b1", "a1", b"from down node")
    sim.run()
    assert got == []
    assert net.stats.dropped["dst_down"] == 2
    assert net.stats.dropped["src_down"] == 1
    net.set_node_up("b1", True)
    net.send("a1", "b1", b"up again")
    sim.run()
    assert [p for *_, p in got] == [b"up again"]


def test_unknown_destination_counted() -> None:
    _, net, _ = _net(NetworkConfig())
    net.send("a1", "nobody", b"x")
    assert net.stats.dropped["unknown_dst"] == 1


def test_corrupt_frames_never_reach_handler() -> None:
    n = 5_000
    sim, net, got = _net(NetworkConfig(corrupt_prob=0.3, dup_prob=0.05))
    for i in range(n):
        net.send("a1", "b1", b"payload-%d" % i)
    sim.run()
    s = net.stats
    copies = n + s.duplicated
    assert all(p.startswith(b"payload-") and int(p[8:]) < n for *_, p in got)
    assert s.corrupt_dropped == s.dropped["corrupt"]
    assert abs(s.corrupt_dropped / copies - 0.3) < 0.03
    assert s.delivered + s.corrupt_dropped == copies


def test_all_frames_corrupt() -> None:
    sim, net, got = _net(NetworkConfig(corrupt_prob=1.0))
    for _ in range(100):
        net.send("a1", "b1", b"x" * 10)
    sim.run()
    assert got == [] and net.stats.corrupt_dropped == 100


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=64), data=st.data())
def test_any_single_bit_flip_in_frame_detected(payload: bytes, data: st.DataObject) -> None:
    wire = bytearray(frame(payload))
    assert unframe(bytes(wire)) == payload
    bit = data.draw(st.integers(0, len(wire) * 8 - 1))
    wire[bit // 8] ^= 1 << (bit % 8)
    assert unframe(bytes(wire)) is None


def test_short_frame_rejected() -> None:
    assert unframe(b"\x00\x01") is None


def test_same_seed_same_delivery_trace() -> None:
    def trace(seed: int) -> Received:
        cfg = NetworkConfig(jitter_us=2_000, loss_prob=0.1, dup_prob=0.1, corrupt_prob=0.05)
        sim, net, got = _net(cfg, seed)
        for i in range(300):
            net.send("a1", ["a2", "b1", "c1"][i % 3], i.to_bytes(2, "big"))
        sim.run()
        return got

    assert trace(11) == trace(11)
    assert trace(11) != trace(12)


def test_in_flight_message_is_lost_when_its_link_goes_down() -> None:
    """The spec's Receivable: nothing is received over a link that is down (LinkDown)."""
    sim, net, got = _net(NetworkConfig(jitter_us=0))
    net.send("a1", "b1", b"cut")
    net.send("b1", "a1", b"other direction")
    net.fail_link("a1", "b1")
    sim.run()
    assert [p for *_, p in got] == [b"other direction"]
    assert net.stats.dropped["link_down"] == 1
    # A link back up by the time the message arrives delivers it.
    net.restore_link("a1", "b1")
    net.send("a1", "b1", b"flaps")
    net.fail_link("a1", "b1")
    net.restore_link("a1", "b1")
    sim.run()
    assert [p for *_, p in got][-1] == b"flaps"


def _fates(as_object: bool) -> tuple[list[tuple[int, str, str, object]], object]:
    """Deliveries and stats of 399 broadcasts over a lossy, duplicating, corrupting,
    jittery, late network: as objects (``broadcast_msg``) or as encoded bytes."""
    from reference.codec import decode, encode
    from reference.messages import Phase1aMsg

    cfg = NetworkConfig(same_az_latency_us=100, cross_az_latency_us=700, jitter_us=300,
                        loss_prob=0.1, dup_prob=0.1, corrupt_prob=0.15, late_prob=0.05,
                        late_min_us=5_000, late_max_us=9_000)
    sim = Simulator(3)
    net = Network(sim, sim.fork_rng(), cfg)
    got: list[tuple[int, str, str, object]] = []

    def on_bytes(dst: str, src: str, payload: bytes) -> None:
        got.append((sim.now, dst, src, decode(payload)))

    def on_msg(dst: str, src: str, msg: object) -> None:
        got.append((sim.now, dst, src, msg))

    for name, az in [("a1", "az1"), ("a2", "az1"), ("b1", "az2")]:
        net.add_node(name, az, on_bytes, on_msg if as_object else None)
    net.hold_next("a1", "b1", 50_000)
    for b in range(1, 400):
        m = Phase1aMsg(b, "a1")
        if as_object:
            net.broadcast_msg("a1", ["a2", "b1"], m, encode)
        else:
            net.broadcast("a1", ["a2", "b1"], encode(m))
    sim.run()
    return got, net.stats


def test_send_msg_has_the_fate_of_send_of_its_bytes() -> None:
    """``send_msg`` (the object travels; bytes only for a bit flip) draws, drops,
    duplicates, corrupts, delays and delivers exactly as ``send`` of the encoded message
    with the receiver decoding it: the same seed gives the same deliveries and stats."""
    bytes_got, bytes_stats = _fates(False)
    obj_got, obj_stats = _fates(True)
    assert obj_got == bytes_got
    assert obj_stats == bytes_stats
    assert bytes_stats.corrupt_dropped and bytes_stats.duplicated  # type: ignore[attr-defined]
    assert bytes_stats.late  # type: ignore[attr-defined]
