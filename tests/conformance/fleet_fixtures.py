"""Fleet fixtures for the test_fleet_* files: format-3 runs simulated once per session
(clocks without rate error, so that conformance/fleet_convert.py can move each node to
one clock), turned into fleet directories."""

from __future__ import annotations

import shutil
import tempfile
from functools import cache
from pathlib import Path

from conformance import mutants
from conformance.fleet_convert import convert
from reference.cluster import SimConfig
from reference.simulate import run_simulation
from reference.workload import WorkloadConfig

SCHEDULES = ("none", "crashes", "gray")


@cache
def _root() -> Path:
    return Path(tempfile.mkdtemp(prefix="fleet-fixtures-"))


@cache
def v3_run(faults: str, bug: str | None = None, seed: int = 4) -> Path:
    out = _root() / f"run-{faults}-{bug or 'ok'}-{seed}"
    cfg = SimConfig(seed=seed, faults=faults, clients=2, duration_us=3_000_000,
                    settle_us=1_000_000, max_rate_ppm=0, workload=WorkloadConfig(think_us=20_000))
    with mutants.active(bug):
        run_simulation(cfg, out, plot=False)
    return out


def make_fleet(out: Path, runs: list[Path] | None = None, **kw: object) -> Path:
    """A fleet of the SCHEDULES' runs (twice: 6 groups) on 6 nodes, 2 routers,
    segments of 300 lines, unless ``kw`` says otherwise."""
    opts: dict[str, object] = {"nodes": 6, "copies": 2, "max_lines": 300}
    opts.update(kw)
    convert(runs or [v3_run(s) for s in SCHEDULES], out, **opts)  # type: ignore[arg-type]
    return out


def copy_fleet(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# --- hand-written fleets ----------------------------------------------------------------

HAND_POST = {"bal": 0, "role": "follower", "top": 0, "applied": 0, "lease": False}


def hand_fleet(tmp: Path, lines: dict[str, list[dict[str, object]]], *,
               lease_dur_us: int = 1_000_000, lease_margin_us: int = 9000,
               max_drift_us: int = 2000) -> Path:
    """One group g1 of r1, r2, r3 on n1, n2, n3 (no routers); ``lines``: node -> its
    events, each ``{"action", "clock", "err", "args", "post"?}`` (``hand_event``)."""
    import orjson

    tmp.mkdir()
    members = [{"id": f"r{i}", "node": f"n{i}", "incarnation": 1, "kind": "storage"}
               for i in (1, 2, 3)]
    spec = {"format": 4, "seed": 1, "duration_us": 1,
            "nodes": [{"id": f"n{i}"} for i in (1, 2, 3)],
            "groups": [{"id": "g1", "members": members, "clients": []}],
            "replica_config": {"lease_dur_us": lease_dur_us, "lease_margin_us": lease_margin_us,
                               "max_drift_us": max_drift_us, "renew_ahead_us": 500_000,
                               "peer_confirm": False},
            "faults": [], "segments": {"max_lines": 0, "compression": "none"}}
    (tmp / "fleet.json").write_bytes(orjson.dumps(spec))
    for i in (1, 2, 3):
        out = []
        for seq, ev in enumerate(lines.get(f"n{i}", []), start=1):
            post = ev.get("post") or {}
            assert isinstance(post, dict)
            obj = {"action": ev["action"], "v": 4, "group": "g1", "node": f"n{i}",
                   "replica": f"r{i}", "seq": seq, "clock": ev["clock"], "err": ev["err"],
                   "kind": "spec", "args": ev["args"], "post": {**HAND_POST, **post}}
            out.append(orjson.dumps(obj) + b"\n")
        (tmp / f"trace-n{i}.1.jsonl").write_bytes(b"".join(out))
    return tmp


def hand_event(action: str, clock: int, err: int, args: dict[str, object],
               **post: object) -> dict[str, object]:
    return {"action": action, "clock": clock, "err": err, "args": args, "post": post}


def hand_history(d: Path, router: str, recs: list[dict[str, object]], err: int) -> Path:
    """Write router ``router``'s history of group g1 (``recs``: format-3 records, in the
    router's completion order) to the hand-written fleet ``d``."""
    import orjson

    lines = [orjson.dumps({**r, "v": 4, "group": "g1", "router": router, "seq": i,
                           "err": err}) + b"\n" for i, r in enumerate(recs, start=1)]
    (d / f"history-{router}.1.jsonl").write_bytes(b"".join(lines))
    return d


def hand_put(rid: str, invoke: int, complete: int, value: str) -> dict[str, object]:
    """A put of key k1 acknowledged with ``value`` (the key was absent)."""
    item = {"pk": {"S": "k1"}, "val": {"S": value}}
    return {"id": rid, "client": rid.rsplit("-", 1)[0], "op": "put", "key": {"p": {"S": "k1"}},
            "invoke": invoke, "complete": complete, "status": "ok", "attempts": 1,
            "replica": "r1", "args": '{"item":{"pk":{"S":"k1"},"val":{"S":"' + value
            + '"}},"op":"put"}', "old": None, "new": item}


def hand_get(rid: str, invoke: int, complete: int) -> dict[str, object]:
    """A strong read of key k1 that found it absent."""
    return {"id": rid, "client": rid.rsplit("-", 1)[0], "op": "get", "key": {"p": {"S": "k1"}},
            "invoke": invoke, "complete": complete, "status": "ok", "attempts": 1,
            "replica": "r1", "consistent": True, "value": None}
