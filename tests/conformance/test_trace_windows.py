"""TLC trace validation in windows (conformance/trace_windows.py)."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from conformance.trace_loader import load_trace_dir, member_kinds
from conformance.trace_validation import (
    SPECS,
    Items,
    TimingConfig,
    build_items,
    render,
    top_from,
)
from conformance.trace_windows import killed_in, validate_windowed, window_bounds
from reference.cluster import SimConfig
from reference.simulate import run_simulation
from reference.workload import WorkloadConfig

SECOND = 1_000_000


def _declared_variables() -> list[str]:
    text = (SPECS / "Replication.tla").read_text()
    block = text.split("\nVARIABLES", 1)[1].split("\n\n", 1)[0]
    return re.findall(r"^\s+(\w+),?\s*\\\*", block, re.M)


def test_the_state_record_names_every_variable_of_the_spec() -> None:
    """A window starts from StateRec as the previous one printed it: a variable left
    out would start at whatever TraceInitAt did not say, and the chain would no longer
    be one behaviour of the spec."""
    declared = _declared_variables()
    assert len(declared) >= 19 and "msgs" in declared and "gap" in declared
    tv = (SPECS / "TraceValidation.tla").read_text()
    rec = tv.split("StateRec ==", 1)[1].split("\n\n", 1)[0]
    init = tv.split("TraceInitAt(S) ==", 1)[1].split("\n\n", 1)[0]
    assert sorted(re.findall(r"(\w+) \|->", rec)) == sorted(declared)
    assert sorted(re.findall(r"(\w+) = S\.(\w+)", init)) == sorted((v, v) for v in declared)


def test_windows_are_consecutive_and_cover_every_item() -> None:
    assert window_bounds(7, 3) == [(0, 3), (3, 6), (6, 7)]
    assert window_bounds(6, 3) == [(0, 3), (3, 6)]
    assert window_bounds(2, 10) == [(0, 2)]
    with pytest.raises(ValueError):
        window_bounds(5, 0)


def test_a_replica_killed_in_an_earlier_window_stays_dead() -> None:
    items = Items([{"kind": "act", "action": "Phase1a", "rep": "r1"},
                   {"kind": "act", "action": "Kill", "rep": "r2"},
                   {"kind": "act", "action": "Phase2b", "rep": "r3"}],
                  [None, None, None], ["r1", "r2", "r3"], {}, [], [], {}, 1, 1)
    assert killed_in(items, 1) == [] and killed_in(items, 2) == ["r2"]
    timing = TimingConfig(1000, 200, 50, 100)
    tla, cfg = render(items, timing, "M", killed_before=["r2"], start="[x |-> 1]",
                      print_end=True)
    assert 'TVKilledBefore == {"r2"}' in tla and "KilledBefore <- TVKilledBefore" in cfg
    assert "TVInit == TraceInitAt(TVStart)" in tla and "TraceEnd" in tla
    first, _ = render(items, timing, "M")
    assert "TVInit == TraceInit\n" in first and "TVKilledBefore == {}" in first


def test_the_log_search_starts_at_the_highest_slot_an_item_names() -> None:
    """TopFrom: slots are filled only by items naming them (s, or a 2b's m.slot); a
    replica named s (LeaseRelinquish's successor) is no slot."""
    items = Items([{"kind": "act", "action": "ClientWrite", "rep": "r1", "s": 7},
                   {"kind": "act", "action": "Phase2b", "rep": "r2", "m": {"slot": 9}},
                   {"kind": "act", "action": "LeaseRelinquish", "rep": "r1", "s": "r2"}],
                  [None, None, None], ["r1", "r2"], {}, [], [], {}, 1, 20)
    assert top_from(items) == 9
    timing = TimingConfig(1000, 200, 50, 100)
    assert "TopFrom = 9\n" in render(items, timing, "M")[1]
    assert "TopFrom = 12\n" in render(items, timing, "M", top_floor=12)[1]
    assert "TopFrom = 20\n" in render(items, timing, "M", top_floor=99)[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tw") / "run"
    cfg = SimConfig(seed=5, clients=2, duration_us=3 * SECOND, settle_us=SECOND,
                    workload=WorkloadConfig(think_us=20_000))
    run_simulation(cfg, out)
    return out


def _validate(run: Path, n: int, window: int):  # type: ignore[no-untyped-def]
    events, config = load_trace_dir(run)
    kinds = member_kinds(config)
    return validate_windowed(events[:n], TimingConfig.from_config_json(config),
                             replicas=list(kinds), kinds=kinds, window=window)


def test_a_trace_validated_in_windows_is_matched_whole(run: Path) -> None:
    result = _validate(run, 700, 200)
    assert result.ok, result.message
    events, config = load_trace_dir(run)
    n = len(build_items(events[:700], TimingConfig.from_config_json(config)).items)
    assert result.items == n and f"in {-(-n // 200)} TLC windows" in result.message


def test_a_wrong_step_in_a_later_window_is_reported_at_its_line(run: Path,
                                                                tmp_path: Path) -> None:
    """A post-state edited by hand deep in the trace: found by the window that holds
    it, reported at its file:line, after every earlier window matched."""
    edited = tmp_path / "edited"
    edited.mkdir()
    for f in run.iterdir():
        (edited / f.name).write_bytes(f.read_bytes())
    events, _ = load_trace_dir(edited)
    target = next(loc for loc in events[550:] if getattr(loc.event, "post", None) is not None
                  and loc.event.post.applied > 0)
    path, line = target.where.rsplit(":", 1)
    lines = Path(path).read_bytes().splitlines()
    ev = orjson.loads(lines[int(line) - 1])
    ev["post"]["applied"] -= 1
    lines[int(line) - 1] = orjson.dumps(ev)
    Path(path).write_bytes(b"\n".join(lines) + b"\n")
    result = _validate(edited, 700, 200)
    assert not result.ok
    assert result.message.startswith(f"{target.where}: post-state differs"), result.message
    m = re.search(r"\(item (\d+) of (\d+)\) \[TLC window (\d+) of (\d+), items (\d+)\.\.(\d+);",
                  result.message)
    assert m, result.message
    item, total, k, windows, first, last = map(int, m.groups())
    assert total == result.items and windows == -(-total // 200) and k >= 3
    assert first == 200 * (k - 1) + 1 and first <= item <= last
