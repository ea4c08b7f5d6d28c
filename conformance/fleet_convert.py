"""Fleet fixtures from single-group runs: format-3 ``dynaspec simulate`` outputs turned
into a format-4 fleet directory (for tests and benchmarks, until ``dynaspec fleet
simulate`` writes fleets itself).

Each run (repeated ``copies`` times) becomes one group ``g0001``, ``g0002``, ...; its
replicas keep their ids (unique within a group only, as in a fleet) and are placed on
distinct shared nodes ``n01``, ``n02``, ... round robin, so every node hosts replicas of
many groups and its file interleaves them, by the simulator's real time. A node has one
clock: ``real + offset`` (the offset fixed per node), and ``err`` is ``|offset|`` plus a
slack; ``real`` is dropped. A leader's lease ``start`` (its clock when it asked) is
rewritten the same way. Durations on a node's clock stay exact only if the runs' clocks
had no rate error: simulate them with ``max_rate_ppm=0`` (their offset then is
constant, and the rewrite preserves every clock difference the replicas acted on).

Histories go to routers ``rt1``, ``rt2``, ... by client, in completion order
(outstanding operations last), with the router's clock likewise.
"""

from __future__ import annotations

import gzip
import heapq
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import orjson


@dataclass(frozen=True, slots=True)
class _Run:
    directory: Path
    config: dict[str, Any]
    members: list[dict[str, Any]]


def _offset(i: int, spread: int) -> int:
    """A node's (router's) fixed clock offset in [-spread, spread], spread out."""
    return ((i * 7919) % (2 * spread + 1)) - spread if spread else 0


class _Sink:
    """One node's (router's) rotation: segments of ``max_lines`` lines."""

    def __init__(self, out: Path, kind: str, name: str, max_lines: int,
                 compression: str) -> None:
        self.out, self.kind, self.name = out, kind, name
        self.max_lines, self.compression = max_lines, compression
        self.n, self.lines, self.f = 0, 0, None  # type: tuple[int, int, IO[bytes] | None]
        self.seq = 0

    def _open(self) -> IO[bytes]:
        self.n += 1
        ext = {"none": "", "gz": ".gz", "zst": ".zst"}[self.compression]
        path = self.out / f"{self.kind}-{self.name}.{self.n}.jsonl{ext}"
        if self.compression == "gz":
            return cast(IO[bytes], gzip.open(path, "wb", compresslevel=1))
        if self.compression == "zst":
            import zstandard

            return cast(IO[bytes], zstandard.ZstdCompressor(level=1).stream_writer(
                path.open("wb")))
        return path.open("wb", buffering=1 << 16)

    def write(self, line: bytes) -> None:
        if self.f is None or (self.max_lines and self.lines >= self.max_lines):
            self.close()
            self.f, self.lines = self._open(), 0
        self.f.write(line)
        self.lines += 1

    def close(self) -> None:
        if self.f is not None:
            self.f.close()
            self.f = None


def _events(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as f:
        for line in f:
            yield orjson.loads(line)


def convert(runs: Sequence[Path], out: Path, *, nodes: int = 4, copies: int = 1,
            routers: int = 2, max_lines: int = 0, compression: str = "none",
            spread_us: int = 1000, slack_us: int = 200) -> dict[str, Any]:
    """Write the fleet directory ``out`` from format-3 runs; returns its fleet.json."""
    loaded = []
    for d in runs:
        cfg = orjson.loads((d / "config.json").read_bytes())
        loaded.append(_Run(d, cfg, cfg["members"]))
    width = max(len(r.members) for r in loaded)
    if nodes < width:
        raise ValueError(f"{nodes} nodes cannot host {width} replicas of one group apart")
    node_ids = [f"n{i:02d}" for i in range(1, nodes + 1)]
    off = {n: _offset(i + 1, spread_us) for i, n in enumerate(node_ids)}
    groups: list[dict[str, Any]] = []
    placed: list[tuple[str, _Run, dict[str, str]]] = []
    for _ in range(copies):
        for r in loaded:
            gi = len(groups)
            gid = f"g{gi + 1:04d}"
            where = {m["id"]: node_ids[(gi + j) % nodes] for j, m in enumerate(r.members)}
            groups.append({"id": gid, "members": [{**m, "node": where[m["id"]]}
                                                   for m in r.members],
                           "clients": [f"c{i}" for i in range(1, r.config["clients"] + 1)]})
            placed.append((gid, r, where))
    first = loaded[0].config
    fleet = {"format": 4, "seed": first.get("seed", 1),
             "duration_us": max(r.config["duration_us"] for r in loaded),
             "nodes": [{"id": n} for n in node_ids], "groups": groups,
             "replica_config": first["replica_config"], "faults": [],
             "segments": {"max_lines": max_lines, "compression": compression}}
    out.mkdir(parents=True, exist_ok=True)
    (out / "fleet.json").write_bytes(orjson.dumps(fleet, option=orjson.OPT_INDENT_2))
    # Lease starts: (run, leader, old start) -> real time of its LeaseRenew.
    starts: dict[tuple[Path, str, int], int] = {}
    for r in loaded:
        for m in r.members:
            p = r.directory / f"trace-{m['node']}.jsonl"
            if p.exists():
                for ev in _events(p):
                    if ev["action"] == "LeaseRenew":
                        starts[(r.directory, ev["replica"], ev["args"]["start"])] = ev["real"]
    for n in node_ids:
        streams = []
        for gid, r, where in placed:
            for m in r.members:
                p = r.directory / f"trace-{m['node']}.jsonl"
                if where[m["id"]] == n and p.exists():
                    streams.append(_group_stream(gid, r, p, n, where, off, starts, slack_us))
        sink = _Sink(out, "trace", n, max_lines, compression)
        for _, line in heapq.merge(*streams, key=lambda x: x[0]):
            sink.seq += 1
            sink.write(line.replace(b'"seq":0,', b'"seq":%d,' % sink.seq, 1))
        sink.close()
    _histories(placed, out, routers, max_lines, compression, spread_us, slack_us)
    return fleet


def _group_stream(gid: str, r: _Run, path: Path, node: str, where: dict[str, str],
                  off: dict[str, int], starts: dict[tuple[Path, str, int], int],
                  slack: int) -> Iterator[tuple[tuple[int, str, int], bytes]]:
    o = off[node]
    for ev in _events(path):
        real = ev["real"]
        args = ev["args"]
        if ev["action"] == "LeaseRenew":
            args["start"] = real + o
        elif ev["action"] == "LeaseGrant":
            m = args["m"]
            t = starts.get((r.directory, m["from"], m["start"]))
            if t is not None:
                m["start"] = t + off[where[m["from"]]]
        obj = {"action": ev["action"], "v": 4, "group": gid, "node": node,
               "replica": ev["replica"], "seq": 0, "clock": real + o,
               "err": abs(o) + slack, "kind": ev["kind"], "args": args}
        if "post" in ev:
            obj["post"] = ev["post"]
        yield (real, gid, ev["seq"]), orjson.dumps(obj) + b"\n"


def _histories(placed: list[tuple[str, _Run, dict[str, str]]], out: Path, routers: int,
               max_lines: int, compression: str, spread: int, slack: int) -> None:
    names = [f"rt{i}" for i in range(1, routers + 1)]
    off = {n: _offset(i + 101, spread) for i, n in enumerate(names)}
    by_run: dict[Path, list[dict[str, Any]]] = {}  # one run's records, completion order
    for _, r, _ in placed:
        if r.directory not in by_run:
            recs = [orjson.loads(x) for x in (r.directory / "history.jsonl").read_bytes()
                    .splitlines()]
            recs.sort(key=lambda x: (x["complete"] == -1, x["complete"]))
            by_run[r.directory] = recs

    def stream(gid: str, run: Path, rt: str) -> Iterator[tuple[int, bytes]]:
        o = off[rt]
        for rec in by_run[run]:
            if names[int(rec["client"].lstrip("c") or 0) % routers] != rt:
                continue
            done = rec["complete"] != -1
            new = {**rec, "invoke": rec["invoke"] + o,
                   "complete": rec["complete"] + o if done else -1,
                   "v": 4, "group": gid, "router": rt, "err": abs(o) + slack}
            yield (new["complete"] if done else 1 << 62), orjson.dumps(new)

    for rt in names:
        sink = _Sink(out, "history", rt, max_lines, compression)
        for _, body in heapq.merge(*(stream(gid, r.directory, rt) for gid, r, _ in placed),
                                   key=lambda x: x[0]):
            sink.seq += 1
            sink.write(body[:-1] + b',"seq":%d}\n' % sink.seq)
        sink.close()


__all__ = ["convert"]
