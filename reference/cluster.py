"""A simulated replication group: replicas in availability zones, clients, workload, faults.

``World(SimConfig(...)).run()`` builds everything from one seed, runs the workload
for ``duration_us`` of simulated time under the named fault schedule, then heals
every fault, restarts crashed replicas and lets the group settle for
``settle_us`` so that the final state can be audited.

Membership (issue 9): ``spares`` extra nodes wait unstarted, with replica ids
after the group's (``r4``... for three replicas); the group's initial
configuration names them ``"none"``. The ``World`` is also the control plane the
healing leader uses (reference/node.py ``ControlPlane``): it hands out spare
nodes, times snapshot copies (size / ``HealConfig.copy_bandwidth_bps``) and keeps
the archive of truncated WAL entries (the paper's S3 archive, §5.1), from which
the final audit reads the chosen prefix a checkpoint dropped.

Randomness: one ``random.Random(seed)`` in the simulator; every component gets its
own stream forked from it in a fixed order, so adding draws in one component does
not perturb the others, and the same configuration gives byte-identical traces.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import IO, Any

from reference.audit import AuditReport, audit
from reference.client import Client, ClientConfig, HistoryRecord
from reference.clocks import LocalClock
from reference.faults import MEMBERSHIP_COPY_BPS, membership_spares, parse_faults
from reference.faults import install as install_faults
from reference.healing import copy_time_us
from reference.messages import NOOP, Cmd, Kind
from reference.network import Network, NetworkConfig
from reference.node import NodeConfig, ReplicaNode
from reference.replica import DEFAULT_SCHEMA, ReplicaConfig, Snapshot
from reference.simulator import Simulator
from reference.storage import Key, M, N, Put, S
from reference.trace import Listener, TraceWriter
from reference.workload import Workload, WorkloadConfig, key_name

_SECOND = 1_000_000
FAULT_SCHEDULES = ("none", "crashes", "partitions", "flaky-network", "clock-drift", "disk-faults",
                   "heal", "gray", "deploy")


@dataclass(frozen=True, slots=True)
class SimConfig:
    seed: int = 1
    replicas: int = 3
    azs: int = 3
    clients: int = 8
    duration_us: int = 30_000_000
    settle_us: int = 5_000_000
    faults: str = "none"
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    lease_dur_us: int = 1_000_000
    renew_ahead_us: int = 500_000
    max_drift_us: int = 2_000
    max_rate_ppm: int = 200
    lease_margin_us: int | None = None
    """Default: 4 * max_drift_us + 1 ms, the least the lease safety condition allows plus slack."""
    network: NetworkConfig = field(default_factory=NetworkConfig)
    node: NodeConfig = field(default_factory=NodeConfig)
    client: ClientConfig = field(default_factory=ClientConfig)
    spares: int = 0
    """Spare nodes healing may bring in (each joins under a new replica id)."""
    peer_confirm: bool = True
    """Gray-failure detection (paper §6.2): a follower that stops hearing the leader
    suspects it and elects only once a quorum of its peers confirms."""
    handoff: bool = True
    """Lease handoff: before a deployment restarts the leader, it relinquishes its lease
    and hands its ballot to an up-to-date follower (``deploy`` schedule)."""
    liveness_us: int = 0
    """A liveness probe (0: none): once the faults heal, a probe client writes until a
    write succeeds; ``World.liveness`` says whether one did within this bound. The group
    then settles for at least this long."""

    def __post_init__(self) -> None:
        if not 1 <= self.replicas <= 9:
            raise ValueError("replicas must be in 1..9")
        if not 0 <= self.spares <= 9:
            raise ValueError("spares must be in 0..9")
        if self.azs < 1 or self.clients < 0:
            raise ValueError("azs must be >= 1 and clients >= 0")
        if self.duration_us <= 0 or self.settle_us < 0:
            raise ValueError("duration must be > 0 and settle time >= 0")
        renew_every = self.lease_dur_us - self.renew_ahead_us
        if self.node.election_timeout_us <= renew_every:
            # Lease requests are the leader's heartbeat: rarer ones than the followers'
            # timeout would have them depose a healthy leader over and over.
            raise ValueError(f"election timeout ({self.node.election_timeout_us}us) must "
                             f"exceed the lease renewal interval, lease_dur - renew_ahead "
                             f"({renew_every}us)")
        if self.faults not in FAULT_SCHEDULES:
            parse_faults(self.faults)  # a mix, or a ValueError naming what is wrong
        if self.liveness_us < 0:
            raise ValueError("the liveness bound must be >= 0")

    def replica_config(self) -> ReplicaConfig:
        margin = self.lease_margin_us
        if margin is None:
            margin = 4 * self.max_drift_us + 1_000
        return ReplicaConfig(lease_dur_us=self.lease_dur_us, lease_margin_us=margin,
                             max_drift_us=self.max_drift_us, renew_ahead_us=self.renew_ahead_us,
                             peer_confirm=self.peer_confirm)

    def effective(self) -> SimConfig:
        """The configuration the fault schedule actually runs with."""
        net = self.network
        if net.late_prob and not net.late_max_us:
            # CHOICE: late means later than any randomized election timeout (up to 2x) and
            # than the lease margin, so that a reply can outlive its ballot and a lease
            # request or grant its time: from one election timeout to two and a half.
            et = self.node.election_timeout_us
            late_min = max(et, self.replica_config().lease_margin_us) + 1_000
            net = replace(net, late_min_us=late_min, late_max_us=2 * et + et // 2)
            return replace(self, network=net).effective()
        cfg = self
        for kind, rate in parse_faults(self.faults):
            cfg = cfg._adjusted_for(kind, rate)
        return cfg

    def _adjusted_for(self, kind: str, rate: float) -> SimConfig:
        """The configuration fault ``kind`` needs (idempotent: ``effective`` may be
        applied to its own result)."""
        if kind == "flaky-network":
            # (times 1.0 is exact: the named schedule's probabilities are unchanged)
            return replace(self, network=replace(
                self.network, loss_prob=max(self.network.loss_prob, min(0.5, 0.05 * rate)),
                dup_prob=max(self.network.dup_prob, min(0.5, 0.02 * rate)),
                jitter_us=max(self.network.jitter_us, 3_000),
                corrupt_prob=max(self.network.corrupt_prob, min(0.5, 0.01 * rate))))
        if kind == "crashes":
            # WAL truncation: without it a new leader's phase 1 and re-proposal cover the
            # whole log and a restart replays the whole WAL, so each crash costs more the
            # longer the run (a 120 s run had a quarter of a 30 s run's ops/s). Every 256
            # slots, as ``heal``; a mix with ``deploy`` keeps deploy's shorter period.
            deploy = any(k == "deploy" for k, _ in parse_faults(self.faults))
            every = DEPLOY_CHECKPOINT_EVERY if deploy else HEAL_CHECKPOINT_EVERY
            node = replace(self.node, checkpoint_every=self.node.checkpoint_every or every)
            return replace(self, node=node)
        if kind == "clock-drift":
            drift = max(self.max_drift_us, 50_000)
            return replace(self, max_drift_us=drift, max_rate_ppm=max(self.max_rate_ppm, 50_000))
        if kind == "heal":
            # Healing on, a spare to heal with, and WAL truncation, so that a log replica
            # copies only the WAL tail.
            node = replace(self.node, heal=replace(self.node.heal, enabled=True),
                           checkpoint_every=self.node.checkpoint_every or HEAL_CHECKPOINT_EVERY)
            return replace(self, spares=max(self.spares, 1), node=node)
        if kind == "deploy":
            # WAL truncation keeps a new leader's recovered tail (what it must re-commit in
            # its ballot before it serves reads) within one re-proposal window.
            node = replace(self.node, checkpoint_every=self.node.checkpoint_every
                           or DEPLOY_CHECKPOINT_EVERY)
            return replace(self, node=node)
        if kind == "membership":
            # A spare per replacement, and copies that finish within a short run.
            heal = self.node.heal
            node = replace(self.node, heal=replace(heal, copy_bandwidth_bps=max(
                heal.copy_bandwidth_bps, MEMBERSHIP_COPY_BPS)))
            return replace(self, spares=max(self.spares, membership_spares(self.duration_us, rate)),
                           node=node)
        return self

    def ids(self) -> list[str]:
        """Every replica id of the group: the replicas, then the spares."""
        return replica_names(self.replicas + self.spares)

    def initial_members(self) -> dict[str, Kind]:
        """The initial configuration: the replicas are storage members, spares none."""
        return {n: ("storage" if i < self.replicas else "none")
                for i, n in enumerate(self.ids())}


HEAL_CHECKPOINT_EVERY = 256
"""WAL truncation period (slots) the ``heal`` schedule uses unless one is set."""
DEPLOY_CHECKPOINT_EVERY = 32
"""WAL truncation period (slots) the ``deploy`` schedule uses unless one is set: the
slots above the last checkpoint, which a new leader re-commits before it serves reads,
then fit in one re-proposal window (reference/pump.py ``PIPELINE``)."""


def replica_names(n: int) -> list[str]:
    return [f"r{i}" for i in range(1, n + 1)]


class World:
    """The group.  ``check_config``, if given, is called once with the replicas'
    ``ReplicaConfig`` before the replicas are built and may refuse it by raising (the
    ``dynaspec simulate`` command passes the Z3 lease proof,
    ``conformance.lease_theorem.require_lease_safety``).  Without it only
    ``ReplicaConfig``'s own arithmetic check applies."""

    def __init__(self, config: SimConfig, trace_sinks: dict[str, IO[bytes]] | None = None,
                 listener: Listener | None = None, *,
                 check_config: Callable[[ReplicaConfig], None] | None = None) -> None:
        self.requested = config
        self.config = cfg = config.effective()
        self.sim = sim = Simulator(cfg.seed)
        self.net = Network(sim, sim.fork_rng(), cfg.network)
        names = replica_names(cfg.replicas)
        members: dict[str, Kind] = cfg.initial_members()
        rcfg = cfg.replica_config()
        if check_config is not None:
            check_config(rcfg)
        self.nodes: dict[str, ReplicaNode] = {}

        def add_node(i: int, name: str, *, spare: bool = False) -> None:
            # Forks two random streams (clock, node), in this order, per node.
            clock = LocalClock(sim, cfg.max_drift_us, sim.fork_rng(),
                               max_rate_ppm=cfg.max_rate_ppm)
            sink = trace_sinks.get(name) if trace_sinks is not None else None
            self.nodes[name] = ReplicaNode(sim, self.net, name, f"az{i % cfg.azs + 1}", members,
                                           rcfg, clock, sim.fork_rng(),
                                           TraceWriter(name, name, sink, listener), cfg.node,
                                           self, spare=spare)

        for i, name in enumerate(names):
            add_node(i, name)
        self.history: list[HistoryRecord] = []
        # Clients know every id (a promoted spare may come to lead) when there are spares.
        targets = cfg.ids()
        self.clients = [
            Client(sim, self.net, f"c{i + 1}", f"az{i % cfg.azs + 1}", targets, sim.fork_rng(),
                   self.history, cfg.client)
            for i in range(cfg.clients)
        ]
        self.workload = Workload(sim, self.clients, sim.fork_rng(), cfg.workload,
                                 stop_us=cfg.duration_us)
        self.fault_rng = sim.fork_rng()
        self.faults_injected: Counter[str] = Counter()
        self.fault_log: list[tuple[int, str]] = []
        # Spare nodes last, so that the streams forked above do not depend on them.
        for i, name in enumerate(cfg.ids()[cfg.replicas:], start=cfg.replicas):
            add_node(i, name, spare=True)
        self.killed: dict[str, int] = {}
        """Replica id -> simulated time it was killed."""
        self.config_log: list[tuple[int, str, dict[str, Kind]]] = []
        """(time, leader, its view) each time a leader committed a configuration command."""
        self.copies: list[dict[str, Any]] = []
        """Snapshot copies: src, dst, bytes, start and end times, installed."""
        self.archive: dict[int, Cmd] = {}
        """Slot -> command of every WAL entry a checkpoint truncated (the S3 archive)."""
        self.archive_conflicts: list[str] = []
        self._copying: set[str] = set()
        self._joined: set[str] = set()
        self._slow: set[tuple[str, str]] = set()
        self.restarts_planned: list[dict[str, Any]] = []
        """Deployment restarts (``deploy``): replica, whether it led, handoff, times (us)."""
        # The liveness probe's client is forked last, so that a run with the probe draws
        # what the same run without it draws.
        self.probe: Client | None = None
        if cfg.liveness_us:
            self.probe = Client(sim, self.net, "probe", "az1", targets, sim.fork_rng(),
                                self.history, cfg.client)
        self.healed_at_us: int | None = None
        self.probe_committed_us: int | None = None
        """When the probe's first write after the heal succeeded (None: none did)."""

    # --- observation ---------------------------------------------------------------------

    def leader(self) -> str | None:
        """The up replica that leads the highest ballot, if any."""
        best: tuple[int, str] | None = None
        for name, node in self.nodes.items():
            r = node.replica
            if node.state == "up" and r.role == "leader" and (best is None or r.ballot > best[0]):
                best = (r.ballot, name)
        return None if best is None else best[1]

    def up_nodes(self) -> list[str]:
        return [n for n, node in self.nodes.items() if node.state == "up"]

    def serving_windows(self) -> dict[str, list[tuple[int, int]]]:
        """Per replica, the simulated-time windows it could serve strong reads in."""
        return {n: [(a, b) for a, b in node.serving if b > a] for n, node in self.nodes.items()}

    def can_serve_strong(self) -> bool:
        """Whether some up replica could serve a strong read now."""
        return any(node.can_serve_strong() for node in self.nodes.values())

    def note(self, what: str) -> None:
        self.faults_injected[what.split(" ")[0]] += 1
        self.fault_log.append((self.sim.now, what))

    # --- faults (also used by tests and the Hypothesis state machines) -------------------

    def crash(self, name: str) -> None:
        if self.nodes[name].state == "up":
            self.note(f"crash {name}")
            self.nodes[name].crash()

    def kill(self, name: str) -> None:
        """The node is gone for good (its disk too); healing replaces it."""
        if self.nodes[name].state in ("up", "down", "quarantined"):
            self.note(f"kill {name}")
            self.killed[name] = self.sim.now
            self.nodes[name].kill()

    def restart(self, name: str) -> None:
        if self.nodes[name].state == "down":
            self.note(f"restart {name}")
            self.nodes[name].restart()

    def isolate(self, name: str) -> None:
        self.note(f"isolate {name}")
        self.net.isolate(name)

    def fail_link(self, src: str, dst: str) -> None:
        """The directed link src -> dst fails (the spec's LinkDown, traced by src)."""
        if (src, dst) in self.net.failed_links():
            return
        self.note(f"fail_link {src}->{dst}")
        self.net.fail_link(src, dst)
        self.nodes[src].link_event(dst, up=False)

    def restore_link(self, src: str, dst: str) -> None:
        """The directed link src -> dst works again (LinkUp, traced by src)."""
        if (src, dst) not in self.net.failed_links():
            return
        self.note(f"restore_link {src}->{dst}")
        self.net.restore_link(src, dst)
        self.nodes[src].link_event(dst, up=True)

    def slow_link(self, src: str, dst: str, latency_us: int | None) -> None:
        """Every message src -> dst takes ``latency_us`` (None: back to normal). Not a
        spec event: the spec's messages may take any time."""
        if latency_us is None:
            if (src, dst) not in self._slow:
                return
            self._slow.discard((src, dst))
            self.note(f"fast_link {src}->{dst}")
        else:
            self._slow.add((src, dst))
            self.note(f"slow_link {src}->{dst} {latency_us // 1000}ms")
        self.net.set_link_latency(src, dst, latency_us)

    def heal(self) -> None:
        self.note("heal")
        self.net.heal()
        for a, b in self.net.failed_links():
            self.restore_link(a, b)

    # --- running ---------------------------------------------------------------------------

    def run(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Run the workload, then settle; ``progress(now_us, end_us)`` is called each
        simulated second."""
        install_faults(self)
        self.workload.start()
        end = self.config.duration_us + self.config.settle_us
        if progress is None:
            self.sim.run(until_us=self.config.duration_us)
        else:
            for t in range(_SECOND, self.config.duration_us + _SECOND, _SECOND):
                self.sim.run(until_us=min(t, self.config.duration_us))
                progress(self.sim.now, end)
        self.settle()
        if progress is not None:
            progress(end, end)

    def settle(self) -> None:
        """Heal, restart, and let the group finish in-flight work without new load."""
        self.heal()
        for src, dst in sorted(self._slow):
            self.slow_link(src, dst, None)
        for name in self.nodes:
            self.restart(name)
        self.healed_at_us = self.sim.now
        if self.probe is not None:
            self._probe_write()
        self.sim.run(until_us=self.sim.now + max(self.config.settle_us,
                                                  self.config.liveness_us))

    def _probe_write(self) -> None:
        """One probe write; another as soon as one fails (until one succeeds, or the bound
        has passed: after it the verdict is in)."""
        assert self.probe is not None and self.healed_at_us is not None
        if self.sim.now > self.healed_at_us + self.config.liveness_us:
            return
        name = key_name(0)

        def done(rec: HistoryRecord) -> None:
            if rec.status == "ok":
                self.probe_committed_us = rec.complete_us
            else:  # a timeout (outcome unknown), or refused: try again
                self.sim.schedule(10_000, self._probe_write)

        self.probe.write("put", Key(S(name)), lambda rid: Put(M(
            pk=S(name), val=S("probe"), w=S(rid), n=N(0))), done)

    def liveness(self) -> dict[str, Any] | None:
        """The probe's verdict (None: no probe): ``stuck`` if no write succeeded within
        ``liveness_us`` of the heal, unless more replicas were lost for good (killed, or
        quarantined with a corrupt WAL) than the group tolerates, a minority: then no
        write is owed (``beyond_budget``)."""
        if self.probe is None or self.healed_at_us is None:
            return None
        took = None if self.probe_committed_us is None \
            else self.probe_committed_us - self.healed_at_us
        lost = sorted(n for n, node in self.nodes.items()
                      if node.state in ("killed", "quarantined"))
        beyond = len(lost) > (self.config.replicas - 1) // 2
        return {"bound_s": self.config.liveness_us / 1e6, "healed_at_s": self.healed_at_us / 1e6,
                "write_after_s": _s(took), "lost": lost, "beyond_budget": beyond,
                "stuck": not beyond and (took is None or took > self.config.liveness_us)}

    # --- the control plane (reference/node.py ControlPlane) ----------------------------

    def spare(self) -> str | None:
        free = self.spares()
        return free[0] if free else None

    def spares(self) -> list[str]:
        """Nodes never yet in a committed configuration that are still usable."""
        return [name for name in self.config.ids()[self.config.replicas:]
                if name not in self._joined and self.nodes[name].state in ("spare", "up")]

    def claim(self, who: str) -> None:
        node = self.nodes.get(who)
        if node is not None and node.state == "spare":
            self.note(f"claim {who}")
            node.activate()

    def copying(self) -> set[str]:
        return set(self._copying)

    def copy_snapshot(self, src: str, dst: str) -> None:
        if dst in self._copying or dst not in self.nodes:
            return
        if self.nodes[src].state != "up":
            return  # a copy needs a live source (healing asks again)
        if self.nodes[src]._pending_syncs:
            # Steps waiting for a sync have not been traced yet (their lines follow the
            # sync), so a copy now could hold an apply no trace shows: copy once they are.
            self.sim.schedule(1_000, self.copy_snapshot, src, dst)
            return
        snap = self.nodes[src].replica.take_snapshot()
        if snap is None:
            return
        took = copy_time_us(snap.size_bytes, self.config.node.heal)
        self._copying.add(dst)
        self.copies.append({"src": src, "dst": dst, "bytes": snap.size_bytes, "upto": snap.upto,
                            "start_us": self.sim.now, "end_us": self.sim.now + took,
                            "installed": False})
        self.note(f"copy {src}->{dst} {snap.size_bytes} bytes")
        self.sim.schedule(took, self._copy_done, dst, snap, len(self.copies) - 1)

    def _copy_done(self, dst: str, snap: Snapshot, i: int) -> None:
        self._copying.discard(dst)
        src = self.nodes[self.copies[i]["src"]]
        if src.state == "killed":
            # The source died during the copy: the copy is lost with it (and may hold
            # applies whose trace lines died with it); healing asks for another.
            self.copies[i]["failed"] = "source killed"
            return
        self.copies[i]["installed"] = self.nodes[dst].install_snapshot(snap)

    def config_committed(self, leader: str, view: Mapping[str, Kind]) -> None:
        self.config_log.append((self.sim.now, leader, dict(view)))
        self._joined |= {m for m, k in view.items() if k != "none"}

    def archive_entries(self, entries: Mapping[int, Cmd]) -> None:
        for s, c in entries.items():
            old = self.archive.setdefault(s, c)
            if old != c:
                self.archive_conflicts.append(f"slot {s}: archived {old!r}, then {c!r}")

    # --- healing timeline ------------------------------------------------------------------

    def healing(self) -> dict[str, Any] | None:
        """When the group was back to full strength after the first kill: ``full_strength``
        (a committed configuration of ``replicas`` members, none of them killed) and
        ``all_storage`` (the same, all of them storage replicas)."""
        if not self.killed:
            return None
        name, t0 = min(self.killed.items(), key=lambda kv: kv[1])
        target = self.config.replicas

        def first(all_storage: bool) -> int | None:
            for t, _, view in self.config_log:
                members = {m: k for m, k in view.items() if k != "none"}
                if t >= t0 and len(members) == target and not set(members) & set(self.killed) \
                        and (not all_storage or set(members.values()) == {"storage"}):
                    return t - t0
            return None

        heal = self.config.node.heal
        return {
            "mode": "log-replicas" if heal.log_replicas else "storage-only",
            "killed": name, "killed_at_s": t0 / 1e6,
            "full_strength_s": _s(first(False)), "all_storage_s": _s(first(True)),
            "copy_bandwidth_bps": heal.copy_bandwidth_bps,
            "copies": [{**c, "seconds": (c["end_us"] - c["start_us"]) / 1e6}
                       for c in self.copies],
            "changes": [{"t_s": t / 1e6, "leader": lead,
                         "members": {m: k for m, k in sorted(v.items()) if k != "none"}}
                        for t, lead, v in self.config_log],
        }

    def chosen_log(self) -> list[Cmd]:
        """The applied prefix of the most advanced up replica: commands chosen, in order
        (the archive supplies the slots its checkpoint truncated)."""
        best = max((self.nodes[n].replica for n in self.up_nodes()
                    if self.nodes[n].replica.has_btree),
                   key=lambda r: r.applied, default=None)
        if best is None:
            return []
        return [self._cmd_at(best, s) for s in range(1, best.applied + 1)]

    def _cmd_at(self, r: Any, s: int) -> Cmd:
        e = r.log.get(s)
        if e is not None:
            return e.cmd  # type: ignore[no-any-return]
        return self.archive.get(s, NOOP)

    def applied_logs(self) -> dict[str, list[Cmd]]:
        """Each up replica's applied prefix. Slots it holds no entry for (truncated, or
        covered by an installed snapshot) come from the archive or the chosen log."""
        out = {}
        chosen = self.chosen_log()
        for n in self.up_nodes():
            r = self.nodes[n].replica
            if not r.has_btree:
                continue
            out[n] = [r.log[s].cmd if s in r.log
                      else self.archive.get(s, chosen[s - 1] if s <= len(chosen) else NOOP)
                      for s in range(1, r.applied + 1)]
        return out

    def audit(self) -> AuditReport:
        report = audit(self.history, self.chosen_log(), DEFAULT_SCHEMA, self.applied_logs())
        report.divergence.extend(self.archive_conflicts)
        return report


def _s(us: int | None) -> float | None:
    return None if us is None else us / 1e6
