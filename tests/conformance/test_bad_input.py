"""Bad input to `dynaspec` (issue 11): exit 2 with exactly one line on stderr naming
``file:line`` (line 0: the file or directory as a whole), never a traceback, never
exit 0 or 1; an internal error is exit 3 with the traceback saved to a named file; a
partial check is said aloud and exits 2 unless --partial-ok (traces/FORMAT.md, "Bad
input and exit codes")."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

from conformance import cli
from conformance.trace_loader import MAX_LINE_BYTES
from reference.cluster import SimConfig
from reference.simulate import run_simulation
from reference.workload import WorkloadConfig

_ERROR = re.compile(r"error: (.+?):(\d+): (.+)")


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small clean run: three members, acknowledged writes, a few hundred lines each."""
    out = tmp_path_factory.mktemp("bad-input") / "good"
    cfg = SimConfig(seed=3, clients=2, duration_us=2_000_000, settle_us=1_000_000,
                    workload=WorkloadConfig(think_us=20_000))
    run_simulation(cfg, out, plot=False)
    return out


def copy(good: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(good, run)
    return run


def replay(*args: str) -> Result:
    return CliRunner().invoke(cli.main, ["replay", *args])


def assert_bad_input(result: Result, path: Path, line: int | None = None) -> str:
    """Exit 2, one line on stderr naming ``path`` and ``line`` (any line if None), no
    traceback anywhere; returns the reason."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "Traceback" not in result.output + result.stderr
    err = result.stderr.splitlines()
    assert len(err) == 1, result.stderr
    m = _ERROR.fullmatch(err[0])
    assert m is not None, err[0]
    assert m.group(1) == str(path), err[0]
    if line is not None:
        assert int(m.group(2)) == line, err[0]
    return m.group(3)


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def line_no(path: Path, pred: Callable[[dict[str, Any]], bool]) -> int:
    """The 1-based number of the first line of ``path`` whose object satisfies ``pred``."""
    return next(i for i, ln in enumerate(lines_of(path), start=1) if pred(orjson.loads(ln)))


def set_line(path: Path, n: int, text: bytes) -> None:
    lines = lines_of(path)
    lines[n - 1] = text
    path.write_bytes(b"\n".join(lines) + b"\n")


def edit_line(path: Path, n: int, edit: Callable[[dict[str, Any]], None]) -> None:
    obj = orjson.loads(lines_of(path)[n - 1])
    edit(obj)
    set_line(path, n, json.dumps(obj, separators=(",", ":")).encode())  # any int size


def is_action(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda ev: bool(ev["action"] == name)


def leader_trace(run: Path) -> Path:
    """The trace of the run's one leader (no faults: one election), which has its
    ClientWrite and Commit lines."""
    (path,) = [p for p in run.glob("trace-*.jsonl") if b'"ClientWrite"' in p.read_bytes()]
    return path


# --- the failures users reported ---------------------------------------------------------


def test_config_that_is_a_json_array(good: Path, tmp_path: Path) -> None:
    run = copy(good, tmp_path)
    (run / "config.json").write_bytes(b"[1, 2, 3]\n")
    assert "not a JSON object" in assert_bad_input(replay(str(run)), run / "config.json", 1)


def test_config_of_an_unknown_format_version(good: Path, tmp_path: Path) -> None:
    run = copy(good, tmp_path)
    config = orjson.loads((run / "config.json").read_bytes())
    (run / "config.json").write_bytes(orjson.dumps({**config, "format": 99}))
    why = assert_bad_input(replay(str(run)), run / "config.json", 1)
    assert "unsupported format version 99" in why


def test_config_setting_of_the_wrong_type(good: Path, tmp_path: Path) -> None:
    run = copy(good, tmp_path)
    config = orjson.loads((run / "config.json").read_bytes())
    config["replica_config"]["lease_dur_us"] = "1s"
    (run / "config.json").write_bytes(orjson.dumps(config))
    why = assert_bad_input(replay(str(run)), run / "config.json", 1)
    assert "replica_config.lease_dur_us" in why


@pytest.mark.parametrize(("edit", "reason"), [
    (lambda ev: ev.update(clock="12"), "Expected `int`, got `str` - at `$.clock`"),
    (lambda ev: ev.update(action=7), "not a valid trace event"),
    (lambda ev: ev.update(action="Phase3a"), "not a valid trace event"),
    (lambda ev: ev.pop("seq"), "missing required field `seq`"),
    (lambda ev: ev.update(v=99), "unsupported trace format version 99"),
    (lambda ev: ev.update(clock=10**30), "outside the 64-bit range"),
    (lambda ev: ev.update(clock=2**63), "outside the 64-bit range"),
], ids=["field-of-wrong-type", "action-a-number", "unknown-action", "missing-field",
        "version-99", "huge-integer", "just-past-int64"])
def test_a_bad_trace_line(good: Path, tmp_path: Path, edit: Callable[[dict[str, Any]], None],
                          reason: str) -> None:
    run = copy(good, tmp_path)
    path = run / "trace-r2.jsonl"
    edit_line(path, 3, edit)
    assert reason in assert_bad_input(replay(str(run)), path, 3)


def test_commit_without_a_ballot(good: Path, tmp_path: Path) -> None:
    run = copy(good, tmp_path)
    path = leader_trace(run)
    n = line_no(path, is_action("Commit"))
    edit_line(path, n, lambda ev: ev["args"].pop("b"))
    assert "missing required field `b`" in assert_bad_input(replay(str(run)), path, n)


def test_slot_written_as_a_string_is_not_a_durability_violation(good: Path,
                                                                 tmp_path: Path) -> None:
    run = copy(good, tmp_path)
    path = leader_trace(run)
    n = line_no(path, is_action("Commit"))
    edit_line(path, n, lambda ev: ev["args"].update(s="1"))
    result = replay(str(run))
    assert "`$.args.s`" in assert_bad_input(result, path, n)
    assert "Durability" not in result.output


def test_a_members_trace_file_is_empty(good: Path, tmp_path: Path) -> None:
    run = copy(good, tmp_path)
    (run / "trace-r2.jsonl").write_bytes(b"")
    why = assert_bad_input(replay(str(run)), run / "trace-r2.jsonl", 0)
    assert "empty" in why and "r2" in why


def test_a_members_trace_file_is_missing(good: Path, tmp_path: Path) -> None:
    run = copy(good, tmp_path)
    (run / "trace-r3.jsonl").unlink()
    assert "missing" in assert_bad_input(replay(str(run)), run / "trace-r3.jsonl", 0)


def test_an_empty_history_beside_acknowledged_writes(good: Path, tmp_path: Path) -> None:
    run = copy(good, tmp_path)
    (run / "history.jsonl").write_bytes(b"")
    path = leader_trace(run)
    why = assert_bad_input(replay(str(run)), path, line_no(path, is_action("ClientWrite")))
    assert "history.jsonl" in why and "0 operations" in why


def test_a_history_cut_short(good: Path, tmp_path: Path) -> None:
    """Lines lost at the end of the history: the traces' last writes are not in it."""
    run = copy(good, tmp_path)
    hist = lines_of(run / "history.jsonl")
    (run / "history.jsonl").write_bytes(b"\n".join(hist[: len(hist) // 2]) + b"\n")
    assert "not in" in assert_bad_input(replay(str(run)), leader_trace(run))


# --- the file as a whole -------------------------------------------------------------------


def test_a_last_line_cut_short(good: Path, tmp_path: Path) -> None:
    run = copy(good, tmp_path)
    path = run / "trace-r3.jsonl"
    data = path.read_bytes().rstrip(b"\n")
    path.write_bytes(data[: data.rfind(b"\n") + 40])  # the last line cut mid-JSON
    why = assert_bad_input(replay(str(run)), path, len(lines_of(path)))
    assert "cut short" in why


def test_non_utf8_bytes_in_a_string(good: Path, tmp_path: Path) -> None:
    run = copy(good, tmp_path)
    path = run / "trace-r1.jsonl"
    set_line(path, 2, lines_of(path)[1].replace(b'"node":"r1"', b'"node":"r\xff1"'))
    assert "not UTF-8" in assert_bad_input(replay(str(run)), path, 2)


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity(good: Path, tmp_path: Path, constant: bytes) -> None:
    run = copy(good, tmp_path)
    path = run / "trace-r1.jsonl"
    line = re.sub(rb'"clock":\d+', b'"clock":' + constant, lines_of(path)[3])
    set_line(path, 4, line)
    assert "not JSON" in assert_bad_input(replay(str(run)), path, 4)


def test_duplicate_keys_in_an_object(good: Path, tmp_path: Path) -> None:
    """JSON parsers keep the last of duplicate keys; the line is refused instead."""
    run = copy(good, tmp_path)
    path = run / "trace-r1.jsonl"
    line = lines_of(path)[4]
    set_line(path, 5, line.replace(b'"seq":5,', b'"seq":5,"seq":5,'))
    assert "duplicate key 'seq'" in assert_bad_input(replay(str(run)), path, 5)


def test_duplicate_keys_in_a_history_line(good: Path, tmp_path: Path) -> None:
    run = copy(good, tmp_path)
    path = run / "history.jsonl"
    set_line(path, 2, lines_of(path)[1].replace(b'"status":', b'"status":"ok","status":'))
    assert "duplicate key 'status'" in assert_bad_input(replay(str(run)), path, 2)


@pytest.mark.parametrize("where", ["line", "key"])
def test_nested_junk(good: Path, tmp_path: Path, where: str) -> None:
    """100 levels of nesting as a whole line, or inside a read's key (kept verbatim by
    the typed decoder, so it must be decoded as a KEY to be refused)."""
    run = copy(good, tmp_path)
    path = run / "trace-r1.jsonl"
    junk: Any = 1
    for _ in range(100):
        junk = {"a": junk}
    if where == "line":
        n = 2
        set_line(path, n, orjson.dumps(junk))
    else:
        n = line_no(path, lambda ev: ev["action"] in ("StrongRead", "EventualRead"))
        edit_line(path, n, lambda ev: ev["args"].update(k=junk))
    assert_bad_input(replay(str(run)), path, n)


def test_nesting_deeper_than_the_decoder_recurses(good: Path, tmp_path: Path) -> None:
    run = copy(good, tmp_path)
    path = run / "trace-r1.jsonl"
    n = line_no(path, lambda ev: ev["action"] in ("StrongRead", "EventualRead"))
    line = re.sub(rb'"k":\{.*?\}\}', b'"k":' + b"[" * 20_000 + b"]" * 20_000, lines_of(path)[n - 1])
    set_line(path, n, line)
    assert "nested too deeply" in assert_bad_input(replay(str(run)), path, n)


def applies_a_write(ev: dict[str, Any]) -> bool:
    return bool(ev["action"] == "Apply" and ev["args"]["c"] and "op" in ev["args"]["c"])


@pytest.mark.parametrize("spot", ["field", "verbatim-op"])
def test_a_lone_surrogate_escape(good: Path, tmp_path: Path, spot: str) -> None:
    """``\\udc00`` is JSON no strict reader (nor re-encoder) takes; in a logged op,
    kept verbatim, it used to pass loading and crash a checker (exit 3)."""
    run = copy(good, tmp_path)
    path = run / "trace-r2.jsonl"
    n = 2 if spot == "field" else line_no(path, applies_a_write)
    old = b'"node":"r2"' if spot == "field" else b'"op":"put"'
    line = lines_of(path)[n - 1]
    assert old in line
    set_line(path, n, line.replace(old, old[:-1] + b'\\udc00"'))
    assert "not JSON" in assert_bad_input(replay(str(run)), path, n)


def test_non_utf8_bytes_inside_a_verbatim_op(good: Path, tmp_path: Path) -> None:
    run = copy(good, tmp_path)
    path = run / "trace-r2.jsonl"
    n = line_no(path, applies_a_write)
    set_line(path, n, lines_of(path)[n - 1].replace(b'"op":"put"', b'"op":"p\x80t"'))
    assert "not JSON" in assert_bad_input(replay(str(run)), path, n)


def test_a_message_without_its_type_tag(good: Path, tmp_path: Path) -> None:
    """The decoder fills in a nested message's tag; the line must still carry it."""
    run = copy(good, tmp_path)
    path = next(p for p in sorted(run.glob("trace-*.jsonl")) if b'"Phase1b"' in p.read_bytes())
    n = line_no(path, is_action("Phase1b"))
    edit_line(path, n, lambda ev: ev["args"]["m"].pop("type"))
    assert "`$.args.m.type` missing" in assert_bad_input(replay(str(run)), path, n)


def test_an_acting_replica_other_than_the_lines(good: Path, tmp_path: Path) -> None:
    run = copy(good, tmp_path)
    path = run / "trace-r2.jsonl"
    edit_line(path, 3, lambda ev: ev["args"].update({next(iter(ev["args"])): "r1"}))
    assert "acting replica" in assert_bad_input(replay(str(run)), path, 3)


def test_a_logged_copy_whose_op_does_not_decode(good: Path, tmp_path: Path) -> None:
    """Junk in an Apply's copy of a write: no checker objects, so it is bad input."""
    run = copy(good, tmp_path)
    path = run / "trace-r3.jsonl"
    n = line_no(path, applies_a_write)
    edit_line(path, n, lambda ev: ev["args"]["c"].update(op={"a": {"a": 1}}))
    assert "args.c.op is not a valid OP" in assert_bad_input(replay(str(run)), path, n)


def test_a_violation_wins_over_a_corrupt_copy(good: Path, tmp_path: Path) -> None:
    """A replica that logs a corrupt copy of a write (a WAL record recovered without its
    checksum, say) is a violation, exit 1, not bad input: the monitor sees the copy
    differ from what the leader proposed."""
    run = copy(good, tmp_path)
    path = run / "trace-r3.jsonl"
    n = line_no(path, lambda ev: ev["action"] == "Phase2b" and ev["args"]["m"]["cmd"]
                is not None and "op" in ev["args"]["m"]["cmd"])
    edit_line(path, n, lambda ev: ev["args"]["m"]["cmd"].update(op={"a": 1}))
    result = replay(str(run))
    assert result.exit_code == 1, result.output
    assert f"{path}:{n}: Phase2b" in result.stdout and "Traceback" not in result.output


def test_a_50mb_line_is_refused_at_the_cap_without_reading_it_whole(good: Path,
                                                                     tmp_path: Path) -> None:
    run = copy(good, tmp_path)
    path = leader_trace(run)
    lines = lines_of(path)
    with path.open("wb") as f:
        f.write(lines[0] + b"\n" + b'{"action":"' + b"x" * (50 << 20) + b'"}\n')
        f.write(b"\n".join(lines[1:]) + b"\n")
    tracemalloc.start()
    try:
        result = replay(str(run))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert f"longer than {MAX_LINE_BYTES} bytes" in assert_bad_input(result, path, 2)
    assert peak < 2 * MAX_LINE_BYTES + (8 << 20) < 50 << 20, peak


def test_events_out_of_seq_order(good: Path, tmp_path: Path) -> None:
    run = copy(good, tmp_path)
    path = run / "trace-r2.jsonl"
    lines = lines_of(path)
    lines[5], lines[6] = lines[6], lines[5]
    path.write_bytes(b"\n".join(lines) + b"\n")
    assert "seq" in assert_bad_input(replay(str(run)), path, 6)


def test_a_clock_that_runs_backwards(good: Path, tmp_path: Path) -> None:
    run = copy(good, tmp_path)
    path = run / "trace-r2.jsonl"
    prev = orjson.loads(lines_of(path)[8])
    edit_line(path, 10, lambda ev: ev.update(clock=prev["clock"] - 1))
    assert "clock runs backwards" in assert_bad_input(replay(str(run)), path, 10)


def test_an_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert_bad_input(replay(str(tmp_path / "empty")), tmp_path / "empty" / "config.json", 0)


def test_a_directory_that_does_not_exist(tmp_path: Path) -> None:
    why = assert_bad_input(replay(str(tmp_path / "nope")), tmp_path / "nope", 0)
    assert "no such directory" in why


def test_a_history_that_is_missing(good: Path, tmp_path: Path) -> None:
    run = copy(good, tmp_path)
    (run / "history.jsonl").unlink()
    assert "missing" in assert_bad_input(replay(str(run)), run / "history.jsonl", 0)


def test_a_history_line_that_is_not_json(good: Path, tmp_path: Path) -> None:
    run = copy(good, tmp_path)
    path = run / "history.jsonl"
    set_line(path, 3, lines_of(path)[2][:25])
    assert "not JSON" in assert_bad_input(replay(str(run)), path, 3)


# --- compressed traces ---------------------------------------------------------------------


def gzip_traces(run: Path) -> None:
    for p in run.glob("trace-*.jsonl"):
        (run / f"{p.name}.gz").write_bytes(gzip.compress(p.read_bytes()))
        p.unlink()


def test_gzipped_traces_replay_like_plain_ones(good: Path, tmp_path: Path) -> None:
    run = copy(good, tmp_path)
    gzip_traces(run)
    plain, packed = replay(str(good)), replay(str(run))
    assert plain.exit_code == packed.exit_code == 0, packed.output
    # Each line without its seconds column (`ok   z3-leases   0.5s  ...`), which varies.
    def untimed(out: str) -> list[str]:
        return [re.sub(r" +[0-9.]+s  ", " ", ln, count=1) for ln in out.splitlines()]

    assert untimed(packed.stdout) == untimed(plain.stdout)


def test_a_gzip_file_cut_short(good: Path, tmp_path: Path) -> None:
    run = copy(good, tmp_path)
    gzip_traces(run)
    path = run / "trace-r1.jsonl.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert "cut short" in assert_bad_input(replay(str(run)), path)


def test_a_node_with_both_a_plain_and_a_gzipped_trace(good: Path, tmp_path: Path) -> None:
    run = copy(good, tmp_path)
    gz = run / "trace-r2.jsonl.gz"
    gz.write_bytes(gzip.compress((run / "trace-r2.jsonl").read_bytes()))
    assert "second trace file" in assert_bad_input(replay(str(run)), gz, 0)


# --- internal errors, partial checks, arguments ---------------------------------------------


@pytest.mark.parametrize("error", [RuntimeError("boom\nmore"), ValueError("no where")])
def test_an_internal_error_is_exit_3_with_the_traceback_in_a_named_file(
        good: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        error: Exception) -> None:
    """A checker that raises, even a ValueError, is a dynaspec bug, not bad input."""
    import conformance.trace_leases as tl

    def broken(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(tl, "check_trace_leases", broken)
    monkeypatch.setattr(cli, "INTERNAL_ERROR_LOG", None)
    monkeypatch.chdir(tmp_path)
    result = replay(str(good))
    assert result.exit_code == 3, result.output
    err = result.stderr.splitlines()
    assert len(err) == 1 and "Traceback" not in result.output, result.output
    m = re.fullmatch(r"internal error: \w+: .* \(a dynaspec bug; traceback in (.+)\)", err[0])
    assert m is not None, err[0]
    saved = Path(m.group(1))
    assert re.fullmatch(r"dynaspec-crash-\d{8}-\d{6}-\d+\.txt", saved.name), saved
    assert "Traceback" in (tmp_path / saved).read_text()


def test_a_tlc_event_limit_is_a_partial_check(good: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Events past --tlc-max-events are unchecked: said aloud, exit 2 unless
    --partial-ok (TLC itself is stubbed: what is checked here is the accounting)."""
    import conformance.replay as rp
    from conformance.trace_validation import TraceValidationResult

    seen: list[int] = []

    def fake_tlc(events: list[Any], *args: object, **kwargs: object) -> TraceValidationResult:
        seen.append(len(events))
        return TraceValidationResult(True, len(events), len(events), 0.0, "ok")

    monkeypatch.setattr(rp, "validate_windowed", fake_tlc)
    result = replay(str(good), "--tlc", "--tlc-max-events", "10")
    assert result.exit_code == 2 and seen == [10], result.output
    err = result.stderr.splitlines()
    assert len(err) == 1 and err[0].startswith("error: only part of the input was checked")
    assert "the first 10 of" in err[0] and "--partial-ok" in err[0]
    assert "part tlc" in result.stdout and "unchecked:" in result.stdout
    ok = replay(str(good), "--tlc", "--tlc-max-events", "10", "--partial-ok")
    assert ok.exit_code == 0 and ok.stderr == "" and "note: a partial check" in ok.stdout
    whole = replay(str(good), "--tlc", "--tlc-max-events", "1000000")
    assert whole.exit_code == 0 and "unchecked" not in whole.output


@pytest.mark.parametrize("args", [
    ["simulate", "--out", "/tmp/never-written", "--duration", "soon"],
    ["simulate", "--replicas", "0", "--out", "/tmp/never-written"],
    ["check-models", "--set", "nope"],
    ["mutation-matrix", "--bug", "NoSuchBug"],
    ["mutation-matrix", "--seeds", "0"],
    ["replay", "/tmp", "--tlc-max-events", "5"],
    ["replay"],
    ["replay", "/tmp", "--max-states", "0"],
    ["no-such-command"],
    ["--no-such-option"],
], ids=lambda a: " ".join(a))
def test_a_bad_argument_is_one_line_and_exit_2(args: list[str]) -> None:
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 2, result.output
    err = result.stderr.splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output and not Path("/tmp/never-written").exists()


def test_an_undecided_key_is_a_partial_check_not_a_violation(
        good: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A key the linearizability search could not decide was not checked: exit 2 with
    its first operation's line (was: FAIL and exit 1, with no line at all)."""
    import conformance.linearizability as lin

    real = lin.check_history

    def undecided(records: Any, **kwargs: Any) -> Any:
        rep = real(records, **kwargs)
        rep.unknown_keys.append(records[0].key)
        rep.ok = False
        return rep

    monkeypatch.setattr(lin, "check_history", undecided)
    result = replay(str(good))
    assert result.exit_code == 2, result.output
    assert "part linearizability" in result.stdout
    err = result.stderr.splitlines()
    assert len(err) == 1 and f"{good / 'history.jsonl'}:1" in err[0], result.stderr
    assert replay(str(good), "--partial-ok").exit_code == 0


def test_replay_max_states_is_the_search_budget(
        good: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`replay --max-states N` hands N to the search, and an undecided key's message names
    the option that raises the budget."""
    import conformance.linearizability as lin

    real = lin.check_history
    seen: list[Any] = []

    def budget(records: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("max_states"))
        rep = real(records, **kwargs)
        rep.unknown_keys.append(records[0].key)
        rep.ok = False
        return rep

    monkeypatch.setattr(lin, "check_history", budget)
    result = replay(str(good), "--max-states", "7")
    assert seen == [7] and result.exit_code == 2, result.output
    assert "budget of 7 states" in result.stdout and "--max-states N" in result.stdout
