"""Simulated datagram network between named nodes placed in availability zones.

A message is a ``bytes`` payload. ``send(src, dst, payload)`` frames it as
``crc32c(payload) (4 bytes, big-endian) || payload`` (paper §5.2: every message
carries a checksum verified by the receiver), decides its fate with the network's
rng, and schedules delivery on the simulator. On delivery the receiver verifies the
checksum and drops (and counts) corrupt frames before calling the node's handler
``handler(dst, src, payload)``.

``send_msg(src, dst, msg, encode)`` sends a message object instead: the same fate and
the same rng draws as ``send(src, dst, encode(msg))``, but a copy that arrives intact
reaches the receiver's ``on_msg(dst, src, msg)`` as the object itself (messages are
immutable, and decoding the frame would give an equal one), so it is never encoded,
checksummed or decoded; only a bit flip encodes it, to flip a bit of the real frame.

Fault model, all deterministic given the rng:

* latency = base (same-AZ or cross-AZ, or a per-link override) + uniform jitter in
  ``[0, jitter_us]``; jitter larger than the gap between two sends reorders them;
* loss with ``loss_prob`` and duplication with ``dup_prob`` (the copy gets its own
  latency, so it may arrive first);
* a bit flip in the frame with ``corrupt_prob`` per delivered copy;
* symmetric partitions, checked at send time (a message already in flight when a
  partition starts still arrives, as on a real wire);
* directed link failures, checked at send time and again at delivery: a message in
  flight when its link goes down is lost unless the link is back up by the time it
  arrives (the spec's Receivable: nothing is received over a down link, LinkDown);
* a down node neither sends nor receives; the receiver's state is checked at
  delivery time, so in-flight messages to a node that crashes are lost;
* late messages: with ``late_prob`` a copy is held back ``late_min_us`` to
  ``late_max_us`` more (``SimConfig.effective`` makes that longer than an election
  timeout and than the lease margin), and ``hold_next(src, dst, extra_us)`` holds back
  the next message on one link (the Hypothesis machine's ``late`` fault). The spec lets
  a message wait in ``msgs`` for ever, so a late one must change no verdict; replies
  from a ballot the sender has left, and lease requests and grants past their time,
  arrive only this way (a jittered copy is late by milliseconds, never by an election).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import google_crc32c

from reference.simulator import Simulator

Handler = Callable[[str, str, bytes], None]
"""Called as ``handler(dst, src, payload)`` when a verified message arrives."""
MsgHandler = Callable[[str, str, Any], None]
"""Called as ``on_msg(dst, src, msg)`` with a message sent by ``send_msg`` that arrives
intact: what decoding its frame would give (messages are immutable)."""

CHECKSUM_BYTES = 4


def frame(payload: bytes) -> bytes:
    """Prefix ``payload`` with its CRC32C."""
    crc: int = google_crc32c.value(payload)
    return crc.to_bytes(CHECKSUM_BYTES, "big") + payload


def unframe(data: bytes) -> bytes | None:
    """The payload of a frame, or None if the frame is short or its checksum fails."""
    if len(data) < CHECKSUM_BYTES:
        return None
    payload = data[CHECKSUM_BYTES:]
    crc: int = google_crc32c.value(payload)
    if crc.to_bytes(CHECKSUM_BYTES, "big") != data[:CHECKSUM_BYTES]:
        return None
    return payload


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    same_az_latency_us: int = 250
    cross_az_latency_us: int = 1_000
    jitter_us: int = 200
    loss_prob: float = 0.0
    dup_prob: float = 0.0
    corrupt_prob: float = 0.0
    late_prob: float = 0.0
    """Per delivered copy: held back ``late_min_us``..``late_max_us`` more."""
    late_min_us: int = 0
    late_max_us: int = 0

    def __post_init__(self) -> None:
        for name in ("same_az_latency_us", "cross_az_latency_us", "jitter_us", "late_min_us",
                     "late_max_us"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        for name in ("loss_prob", "dup_prob", "corrupt_prob", "late_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability")
        if self.late_max_us < self.late_min_us:
            raise ValueError("late_max_us must be >= late_min_us")


@dataclass(slots=True)
class NetworkStats:
    sent: int = 0
    delivered: int = 0
    duplicated: int = 0
    corrupt_dropped: int = 0
    late: int = 0
    """Copies held back (``late_prob`` or ``hold_next``)."""
    dropped: Counter[str] = field(default_factory=Counter)
    """Drops by reason: loss, partition, link_down, src_down, dst_down, unknown_dst, corrupt."""

    @property
    def total_dropped(self) -> int:
        return sum(self.dropped.values())


@dataclass(slots=True)
class _Node:
    az: str
    handler: Handler
    up: bool = True
    on_msg: MsgHandler | None = None


class Network:
    def __init__(
        self, sim: Simulator, rng: random.Random, config: NetworkConfig | None = None
    ) -> None:
        self._sim = sim
        self.rng = rng
        self.config = config if config is not None else NetworkConfig()
        self.stats = NetworkStats()
        self._nodes: dict[str, _Node] = {}
        self._partitioned: set[tuple[str, str]] = set()
        self._failed_links: set[tuple[str, str]] = set()
        self._latency_override: dict[tuple[str, str], int] = {}
        self._held: dict[tuple[str, str], list[int]] = {}

    # --- topology -------------------------------------------------------------

    def add_node(self, name: str, az: str, handler: Handler,
                 on_msg: MsgHandler | None = None) -> None:
        """``handler`` takes verified payloads; ``on_msg``, if given, takes the messages
        ``send_msg`` sends that arrive intact (else they are encoded for ``handler``)."""
        if name in self._nodes:
            raise ValueError(f"node {name!r} already registered")
        self._nodes[name] = _Node(az, handler, on_msg=on_msg)

    def set_handler(self, name: str, handler: Handler) -> None:
        """Replace a node's handler (e.g. a restarted process with fresh state)."""
        self._nodes[name].handler = handler

    def nodes(self) -> list[str]:
        return list(self._nodes)

    def az_of(self, name: str) -> str:
        return self._nodes[name].az

    def set_node_up(self, name: str, up: bool) -> None:
        self._nodes[name].up = up

    def is_up(self, name: str) -> bool:
        return self._nodes[name].up

    def set_link_latency(self, src: str, dst: str, base_us: int | None) -> None:
        """Override the base latency of the directed link src->dst (None clears it)."""
        if base_us is None:
            self._latency_override.pop((src, dst), None)
        elif base_us < 0:
            raise ValueError("latency must be >= 0")
        else:
            self._latency_override[(src, dst)] = base_us

    # --- faults ---------------------------------------------------------------

    def hold_next(self, src: str, dst: str, extra_us: int) -> None:
        """Hold back the next message sent src -> dst by ``extra_us`` more (several calls
        hold several messages, in order); one the link refuses does not use it up."""
        if extra_us < 0:
            raise ValueError("extra_us must be >= 0")
        self._held.setdefault((src, dst), []).append(extra_us)

    def partition(self, group_a: Iterable[str], group_b: Iterable[str]) -> None:
        """Cut every link between the two groups, both directions. Partitions accumulate."""
        a, b = list(group_a), list(group_b)
        for x in a:
            for y in b:
                if x != y:
                    self._partitioned.add((x, y))
                    self._partitioned.add((y, x))

    def isolate(self, name: str) -> None:
        """Partition one node from every other node."""
        self.partition([name], [n for n in self._nodes if n != name])

    def heal(self) -> None:
        """Remove all partitions. Directed link failures stay until ``restore_link``."""
        self._partitioned.clear()

    def fail_link(self, src: str, dst: str) -> None:
        """Drop messages src->dst only; dst->src is unaffected."""
        self._failed_links.add((src, dst))

    def restore_link(self, src: str, dst: str) -> None:
        self._failed_links.discard((src, dst))

    def failed_links(self) -> list[tuple[str, str]]:
        """The directed links currently failed, sorted."""
        return sorted(self._failed_links)

    def can_reach(self, src: str, dst: str) -> bool:
        """Whether a message sent now from src would be allowed onto the wire to dst."""
        link = (src, dst)
        return link not in self._partitioned and link not in self._failed_links

    # --- data path ------------------------------------------------------------

    def latency_us(self, src: str, dst: str) -> int:
        """Draw one message latency for src->dst."""
        cfg = self.config
        base = self._latency_override.get((src, dst))
        if base is None:
            same = self._nodes[src].az == self._nodes[dst].az
            base = cfg.same_az_latency_us if same else cfg.cross_az_latency_us
        if cfg.jitter_us:
            base += int(self.rng.random() * (cfg.jitter_us + 1))
        return base

    def send(self, src: str, dst: str, payload: bytes) -> None:
        self._send(src, dst, payload, None, None)

    def send_msg(self, src: str, dst: str, msg: Any, encode: Callable[[Any], bytes]) -> None:
        """Send message object ``msg``, whose payload is ``encode(msg)``: the same fate,
        draws and delivery as ``send(src, dst, encode(msg))``. A copy that arrives intact
        reaches the receiver's ``on_msg`` as the object itself (what decoding would give),
        so it is encoded only for a bit flip, and checksummed and decoded never."""
        self._send(src, dst, None, msg, encode)

    def _send(self, src: str, dst: str, payload: bytes | None, msg: Any,
              encode: Callable[[Any], bytes] | None) -> None:
        stats = self.stats
        stats.sent += 1
        nodes = self._nodes
        if not nodes[src].up:
            stats.dropped["src_down"] += 1
            return
        target = nodes.get(dst)
        if target is None:
            stats.dropped["unknown_dst"] += 1
            return
        link = (src, dst)
        if link in self._partitioned:
            stats.dropped["partition"] += 1
            return
        if link in self._failed_links:
            stats.dropped["link_down"] += 1
            return
        cfg = self.config
        rng = self.rng
        if cfg.loss_prob and rng.random() < cfg.loss_prob:
            stats.dropped["loss"] += 1
            return
        # The frame is built only when bytes are needed: a payload sent as bytes, or a
        # bit flip (CRC32C catches every single-bit error, so a flipped frame never
        # reaches a handler, but its length decides the rng's draw).
        data = frame(payload) if payload is not None else None
        if msg is not None and target.on_msg is None:
            assert encode is not None
            data = frame(encode(msg))
            msg = None
        copies = 1
        if cfg.dup_prob and rng.random() < cfg.dup_prob:
            stats.duplicated += 1
            copies = 2
        extra = 0
        if self._held:
            held = self._held.get(link)
            if held:
                extra = held.pop(0)
                if not held:
                    del self._held[link]
                stats.late += 1
        latency = self._latency_override.get(link)
        if latency is None:
            latency = (cfg.same_az_latency_us if nodes[src].az == target.az
                       else cfg.cross_az_latency_us)
        latency += extra
        jitter = cfg.jitter_us
        schedule = self._sim.schedule
        for _ in range(copies):
            wire, obj = data, msg
            if cfg.corrupt_prob and rng.random() < cfg.corrupt_prob:
                if wire is None:
                    assert encode is not None
                    wire = frame(encode(msg))
                wire, obj = _flip_random_bit(wire, rng), None
            # latency_us inlined (one jitter draw per copy, after the corruption draw).
            delay = latency + int(rng.random() * (jitter + 1)) if jitter else latency
            if cfg.late_prob and rng.random() < cfg.late_prob:
                delay += cfg.late_min_us + int(rng.random() * (cfg.late_max_us
                                                               - cfg.late_min_us + 1))
                stats.late += 1
            schedule(delay, self._deliver, src, dst, wire, obj)

    def broadcast(self, src: str, dsts: Iterable[str], payload: bytes) -> None:
        for dst in dsts:
            if dst != src:
                self._send(src, dst, payload, None, None)

    def broadcast_msg(self, src: str, dsts: Iterable[str], msg: Any,
                      encode: Callable[[Any], bytes]) -> None:
        for dst in dsts:
            if dst != src:
                self._send(src, dst, None, msg, encode)

    def _deliver(self, src: str, dst: str, wire: bytes | None, msg: Any) -> None:
        node = self._nodes[dst]
        stats = self.stats
        if not node.up:
            stats.dropped["dst_down"] += 1
            return
        if self._failed_links and (src, dst) in self._failed_links:
            # Down now: the spec receives nothing over a down link (no rng drawn, so a
            # seed still gives the same run).
            stats.dropped["link_down"] += 1
            return
        if wire is None:
            # An intact send_msg copy: the object is what unframing and decoding give.
            stats.delivered += 1
            node.on_msg(dst, src, msg)  # type: ignore[misc]
            return
        payload = unframe(wire)
        if payload is None:
            stats.corrupt_dropped += 1
            stats.dropped["corrupt"] += 1
            return
        stats.delivered += 1
        node.handler(dst, src, payload)


def _flip_random_bit(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    bit = rng.randrange(len(buf) * 8)
    buf[bit >> 3] ^= 1 << (bit & 7)
    return bytes(buf)
