"""Settled slots (conformance/monitor.py ``Monitor._settle``): the monitor keeps little per
settled slot, and answers exactly as it did without settling, on correct runs and on
seeded bugs alike."""

from __future__ import annotations

import random
from functools import cache
from pathlib import Path

import pytest

from conformance import monitor as monitor_mod
from conformance import mutants
from conformance.monitor import Monitor, _Archive, _Log, _Runs
from conformance.monitor_steps import SlotSet
from conformance.trace_loader import Located, load_trace_dir, member_kinds
from reference.cluster import SimConfig
from reference.simulate import run_simulation
from reference.workload import WorkloadConfig

RUNS = [("crashes", None), ("partitions", None), ("heal", None), ("gray", None),
        ("disk-faults", None), ("clock-drift", None), ("crashes", "EarlyAck"),
        ("clock-drift", "NoRecovery"), ("partitions", "ApplyUncommitted"),
        ("clock-drift", "NoPersist"), ("clock-drift", "NoDriftMargin")]


@cache
def _run(tmp: Path, faults: str, bug: str | None) -> tuple[list[Located], dict[str, str],
                                                            int, int]:
    out = tmp / f"{faults}-{bug or 'ok'}"
    cfg = SimConfig(seed=3, faults=faults, clients=3, duration_us=12_000_000,
                    settle_us=1_000_000, workload=WorkloadConfig(think_us=10_000))
    with mutants.active(bug):
        run_simulation(cfg, out, plot=False)
    events, config = load_trace_dir(out)
    rc = cfg.replica_config()
    return events, member_kinds(config), rc.lease_dur_us, rc.lease_margin_us


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("settle")


def _monitor(run: tuple[list[Located], dict[str, str], int, int]) -> Monitor:
    events, kinds, dur, margin = run
    mon = Monitor(kinds, dur, margin)
    for loc in events:
        mon.step(loc.event, loc.where)
    return mon


@pytest.mark.parametrize(("faults", "bug"), RUNS)
def test_settling_changes_no_finding(sim_dir: Path, faults: str, bug: str | None,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    run = _run(sim_dir, faults, bug)
    monkeypatch.setattr(monitor_mod, "SETTLE_BATCH", 1 << 60)  # never settles
    whole = _monitor(run)
    monkeypatch.setattr(monitor_mod, "SETTLE_BATCH", 1)  # settles every chosen slot at once
    monkeypatch.setattr(monitor_mod, "SETTLE_LAG", 0)
    monkeypatch.setattr(monitor_mod, "SETTLE_EVERY", 1)
    settled = _monitor(run)
    assert whole.arch.top == 0 and settled.arch.top == settled.prefix > 50
    assert [str(v) for v in settled.violations] == [str(v) for v in whole.violations]
    assert [str(v) for v in settled.warnings] == [str(v) for v in whole.warnings]
    if bug is None:
        assert not whole.violations, whole.violations[0]
    # Every slot-indexed structure reads the same ...
    for s in range(1, whole.prefix + 1):
        assert settled.chosen.get(s) == whole.chosen.get(s)
        assert settled.acked_slots.get(s) == whole.acked_slots.get(s)
        for name in whole.r:
            assert settled.r[name].log.get(s) == whole.r[name].log.get(s), (name, s)
            assert settled.r[name].log.op(s) == whole.r[name].log.op(s)
    for name in whole.r:
        assert list(settled.r[name].applied) == list(whole.r[name].applied)
        assert set(settled.r[name].applied_set) == set(whole.r[name].applied_set)
    for b, bal in whole.ballots.items():
        other = settled.ballots[b]
        assert list(other.prop.items()) == list(bal.prop.items())
        assert list(other.rec.items()) == list(bal.rec.items())
    # ... and keeps far less: the votes of committed slots are gone, the logs are ballots.
    assert len(settled.votes) < len(whole.votes) / 4
    assert all(not x.log.tail for x in settled.r.values())
    if bug is None:  # (applied past the last settling: not folded yet)
        assert all(len(x.applied.rest) < settled.prefix / 10 for x in settled.r.values())


def test_slot_sets_are_sets() -> None:
    rnd = random.Random(5)
    for _ in range(200):
        runs, plain = SlotSet(), set()
        for _ in range(60):
            s = rnd.randrange(1, 40)
            if rnd.random() < 0.7:
                runs.add(s)
                plain.add(s)
            else:
                runs.discard(s)
                plain.discard(s)
            assert all((x in runs) == (x in plain) for x in range(0, 42))
        assert list(runs) == sorted(plain) and len(runs) == len(plain)
        assert all(lo <= hi < lo2 - 1 for lo, hi, lo2 in zip(runs.los, runs.his,
                                                             runs.los[1:], strict=False))


def test_runs_are_lists() -> None:
    rnd = random.Random(6)
    for _ in range(200):
        runs, plain = _Runs(), []
        for _ in range(80):
            if not plain or rnd.random() < 0.4:
                v = rnd.choice((1, 1, 2, 3))
                runs.append(v)
                plain.append(v)
            else:
                i, v = rnd.randrange(len(plain)), rnd.choice((1, 2, 3))
                runs[i] = v
                plain[i] = v
            assert [runs[i] for i in range(len(plain))] == plain and len(runs) == len(plain)
            assert all(a != b for a, b in zip(runs.vals, runs.vals[1:], strict=False))
            assert [v for f, e, v in runs.runs(0) for _ in range(f, e)] == plain


def test_a_log_reads_as_the_dict_it_replaces() -> None:
    """Entries written before and after their slots settle, other commands and ops at
    settled slots, odd slots (0, negative), and reports' copies above a checkpoint."""
    rnd = random.Random(7)
    for _ in range(100):
        arch = _Archive()
        log, plain, ops = _Log(arch), {}, {}
        for _ in range(120):
            x = rnd.random()
            if x < 0.15 and arch.top < 40:
                s = arch.top + 1
                arch.add(f"c{s}", b"op%d" % s)
                log.settle(s)
            else:
                s = rnd.randrange(-2, 45)
                c = f"c{s}" if rnd.random() < 0.8 else f"x{s}"
                op = b"op%d" % s if rnd.random() < 0.9 else b"other"
                b = rnd.choice((1, 2, 3))
                log.put(s, b, c, op)
                plain[s], ops[s] = (b, c), op
            for s in range(-3, 47):
                assert log.get(s) == plain.get(s) and log.op(s) == ops.get(s, b"")
            assert list(log.entries()) == [(s, b, c) for s, (b, c) in sorted(plain.items())]
            assert log.top() == max(plain, default=None)
            floor = rnd.randrange(-1, 45)
            copy = log.snapshot(floor)
            above = {s: e for s, e in plain.items() if s > floor}
            assert [copy.get(s) for s in range(-3, 47)] == [above.get(s) for s in range(-3, 47)]
            assert copy.top() == max(above, default=None)
            assert log.count(floor, floor + 7) == sum(1 for s in plain if floor < s <= floor + 7)
