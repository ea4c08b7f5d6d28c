"""Benchmark: the issue-10 measurement table (gray failures and lease handoff, paper 6.2).

Runs, for each seed, the ``gray`` schedule with peer confirmation on and off (leader
changes: elections won after the first leader; strong-read unavailable time) and the
``deploy`` schedule with lease handoff on and off (strong-read unavailable time per
planned restart: max and mean over the leader's restarts and over all restarts), and
prints one table, then checks the issue's Done-when against it:

* gray, confirmation on: 0 leader changes for every seed; off: not 0;
* deploy, handoff on: unavailable time per restart <= the bound (``bound_us``);
  off: about a lease (an election timeout, then the new leader's lease wait).

A benchmark, not a test: 60 s runs take a minute or two of wall time each.

Usage: .venv/bin/python benchmarks/gray_deploy_table.py [--seeds 1-5] [--duration 60]
       [--clients 2] [--jobs 2] [--schedule gray|deploy|both] [--feature on|off|both]
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from reference.cluster import SimConfig, World
from reference.summary import serving_summary

SECOND = 1_000_000


@dataclass(frozen=True)
class Case:
    faults: str
    on: bool
    seed: int
    duration_s: int
    clients: int

    def config(self) -> SimConfig:
        gray = self.faults == "gray"
        return SimConfig(seed=self.seed, faults=self.faults, clients=self.clients,
                         duration_us=self.duration_s * SECOND, settle_us=SECOND,
                         peer_confirm=self.on or not gray, handoff=self.on or gray)


def bound_us(cfg: SimConfig) -> int:
    """HandoffGap's 5 message delays (specs/Replication.tla: handoff, 1a, 1b, lease
    request + 2a, grant + 2b), each at most the largest one-way delay the simulated
    network draws (max(same-AZ, cross-AZ base latency) + the whole jitter), plus one
    WAL sync for each step on the path that persists before it sends (Phase1a at the
    successor, Phase1b at a voter, the successor's re-proposals (Phase2a), the voter's
    LeaseGrant/Phase2b) and one for the old leader's LeaseRelinquish, which may wait
    behind a client write's sync in flight (a node completes its steps in order)."""
    net = cfg.network
    delay = max(net.same_az_latency_us, net.cross_az_latency_us) + net.jitter_us
    return 5 * delay + 5 * cfg.node.disk_sync_us


def run(case: Case) -> dict[str, Any]:
    cfg = case.config()
    started = time.perf_counter()
    w = World(cfg)
    w.run()
    wall = time.perf_counter() - started
    won = sum(n.action_counts["BecomeLeader"] for n in w.nodes.values())
    sr = serving_summary(w.serving_windows(), cfg.duration_us, w.restarts_planned)
    return {"case": case, "leader_changes": max(0, won - 1), "sr": sr, "wall": wall,
            "audit_ok": w.audit().ok,
            "suspicions": sum(n.action_counts["Suspect"] for n in w.nodes.values()),
            "vetoed": sum(n.replica.detector.vetoed for n in w.nodes.values())}


def _seeds(text: str) -> list[int]:
    if "-" in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(x) for x in text.split(",")]


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="1-5")
    ap.add_argument("--duration", type=int, default=60, help="simulated seconds under load")
    ap.add_argument("--clients", type=int, default=SimConfig().clients)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--schedule", choices=("gray", "deploy", "both"), default="both",
                    help="run only this schedule (the checks of the other pass vacuously)")
    ap.add_argument("--feature", choices=("on", "off", "both"), default="both",
                    help="run only with the feature (confirmation/handoff) on or off")
    args = ap.parse_args()
    schedules = ("gray", "deploy") if args.schedule == "both" else (args.schedule,)
    features = (True, False) if args.feature == "both" else (args.feature == "on",)
    cases = [Case(f, on, s, args.duration, args.clients)
             for f in schedules for on in features for s in _seeds(args.seeds)]
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(run, cases))
    cfg = cases[0].config()
    bound_ms = bound_us(cfg) / 1000
    lease_ms = cfg.lease_dur_us / 1000
    print(f"{args.duration} s simulated per run, {args.clients} clients, seeds {args.seeds}")
    print(f"bound (deploy, handoff): 5 x {bound_us(cfg) // 5 - cfg.node.disk_sync_us} us "
          f"one-way + 5 x {cfg.node.disk_sync_us} us sync = {bound_ms:g} ms; "
          f"lease {lease_ms:g} ms, election timeout {cfg.node.election_timeout_us / 1000:g}"
          f"-{2 * cfg.node.election_timeout_us / 1000:g} ms")
    print()
    print(f"{'schedule':<8} {'feature':<18} {'seed':>4} {'leader':>7} {'unavail':>10} "
          f"{'restarts':>8} {'leader restarts: max':>20} {'mean':>9} {'all: max':>9} "
          f"{'mean':>9} {'audit':>5} {'wall s':>7}")
    print(f"{'':<8} {'':<18} {'':>4} {'changes':>7} {'ms':>10} {'(lead)':>8} "
          f"{'ms':>20} {'ms':>9} {'ms':>9} {'ms':>9}")
    ok = True
    for res in results:
        c: Case = res["case"]
        sr = res["sr"]
        feature = ("confirm " if c.faults == "gray" else "handoff ") + ("on" if c.on else "off")
        if c.faults == "deploy":
            a, b = sr["per_restart_ms"], sr["per_leader_restart_ms"]
            rst = f"{a['count']} ({b['count']})"
            cols = f"{_f(b['max']):>20} {_f(b['mean']):>9} {_f(a['max']):>9} {_f(a['mean']):>9}"
        else:
            rst, cols = "-", f"{'-':>20} {'-':>9} {'-':>9} {'-':>9}"
        print(f"{c.faults:<8} {feature:<18} {c.seed:>4} {res['leader_changes']:>7} "
              f"{sr['unavailable_ms']:>10.3f} {rst:>8} {cols} "
              f"{'ok' if res['audit_ok'] else 'FAIL':>5} {res['wall']:>7.1f}")
        ok &= res["audit_ok"]
    print()
    gray_on = [r for r in results if r["case"].faults == "gray" and r["case"].on]
    gray_off = [r for r in results if r["case"].faults == "gray" and not r["case"].on]
    dep_on = [r for r in results if r["case"].faults == "deploy" and r["case"].on]
    dep_off = [r for r in results if r["case"].faults == "deploy" and not r["case"].on]
    checks = [
        ("gray + confirmation: 0 leader changes, every seed",
         all(r["leader_changes"] == 0 for r in gray_on)),
        ("gray without confirmation: leader changes, every seed",
         all(r["leader_changes"] > 0 for r in gray_off)),
        (f"deploy + handoff: every restart <= {bound_ms:g} ms",
         all((r["sr"]["per_restart_ms"]["max"] or 0) <= bound_ms for r in dep_on)),
        (f"deploy without handoff: leader restarts ~ a lease ({lease_ms:g} ms) or more",
         all((r["sr"]["per_leader_restart_ms"]["max"] or lease_ms) >= lease_ms
             for r in dep_off)),
    ]
    for what, good in checks:
        print(f"[{'ok' if good else 'MISS'}] {what}")
        ok &= good
    if dep_off:
        means = [r["sr"]["per_leader_restart_ms"]["mean"] for r in dep_off
                 if r["sr"]["per_leader_restart_ms"]["mean"] is not None]
        if means:
            print(f"deploy without handoff: mean unavailable per leader restart "
                  f"{min(means):.1f}-{max(means):.1f} ms over the seeds")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
