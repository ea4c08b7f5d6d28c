"""The TLC runner: the output parser on canned output, then real TLC runs on fixtures."""

from __future__ import annotations

import functools
import importlib.util
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance import tlc_runner
from conformance.tla_values import ModelValue, Record
from conformance.tlc_runner import (
    Progress,
    TLCOutputParser,
    TLCResult,
    ToolchainError,
    build_command,
    find_java,
    find_tla2tools,
    parse_tlc_output,
    run_tlc,
)

FIXTURES = Path(__file__).parent / "fixtures" / "tlc"
MV = ModelValue
OUTCOMES = {"ok", "invariant_violated", "property_violated", "deadlock", "error", "timeout"}


def msg(code: int, body: str, cls: int = 0) -> str:
    return f"@!@!@STARTMSG {code}:{cls} @!@!@\n{body}\n@!@!@ENDMSG {code} @!@!@\n"


def lines(*chunks: str) -> list[str]:
    return "".join(chunks).splitlines()


# Verbatim TLC 2.15 -tool output for Replicas.cfg (header messages trimmed).
REPLICAS_OUTPUT = (
    msg(2262, "TLC2 Version 2.15 of Day Month 20?? (rev: d5b5a7f)")
    + msg(2220, "Starting SANY...")
    + "Parsing file /work/main/tests/fixtures/tlc/Replicas.tla\n"
    + "Semantic processing of module Replicas\n"
    + msg(2219, "SANY finished.")
    + msg(2185, "Starting... (2026-11-23 17:19:58)")
    + msg(2189, "Computing initial states...")
    + msg(2190, "Finished computing initial states: 1 distinct state generated at 2026-11-23.")
    + msg(2110, "Invariant ShortLogs is violated.", 1)
    + msg(2121, "The behavior up to this point is:", 1)
    + msg(
        2217,
        "1: <Initial predicate>\n"
        '/\\ meta = [term |-> 0, voters |-> {}, note |-> "a \\"quoted\\" note"]\n'
        "/\\ leader = r1\n"
        "/\\ log = (r1 :> <<>> @@ r2 :> <<>>)\n",
        4,
    )
    + msg(
        2217,
        "2: <AddEntry line 16, col 5 to line 17, col 33 of module Replicas>\n"
        '/\\ meta = [term |-> 0, voters |-> {}, note |-> "a \\"quoted\\" note"]\n'
        "/\\ leader = r1\n"
        "/\\ log = (r1 :> <<[term |-> 0, val |-> -1]>> @@ r2 :> <<>>)\n",
        4,
    )
    + msg(
        2200,
        "Progress(3) at 2026-11-23 17:19:58: 1,008 states generated (1,032 s/min), "
        "8 distinct states found (1,032 ds/min), 5 states left on queue.",
    )
    + msg(2199, "1,008 states generated, 8 distinct states found, 5 states left on queue.")
    + msg(2194, "The depth of the complete state graph search is 3.")
    + msg(2186, "Finished in 470ms at (2026-11-23 17:19:58)")
)

SUCCESS_OUTPUT = (
    msg(2185, "Starting... (2026-11-23 17:19:42)")
    + msg(2193, "Model checking completed. No error has been found.")
    + msg(2199, "6 states generated, 5 distinct states found, 0 states left on queue.")
    + msg(2194, "The depth of the complete state graph search is 5.")
    + msg(2186, "Finished in 403ms at (2026-11-23 17:19:43)")
)


# --- Output parser (pure, no Java) -------------------------------------------------------


def test_parses_invariant_violation_transcript() -> None:
    result = parse_tlc_output(lines(REPLICAS_OUTPUT), exit_code=12, seconds=1.5)
    assert result.outcome == "invariant_violated"
    assert result.property == "ShortLogs"
    assert (result.states_generated, result.distinct_states, result.depth) == (1008, 8, 3)
    assert result.seconds == 1.5 and result.exit_code == 12 and result.errors == []
    assert [s.index for s in result.trace] == [1, 2]
    assert [s.action for s in result.trace] == ["Init", "AddEntry"]
    assert result.trace[0].location is None
    assert result.trace[1].location == "line 16, col 5 to line 17, col 33 of module Replicas"
    assert result.trace[1].state["log"][MV("r1")] == (Record(term=0, val=-1),)
    assert result.trace[1].raw.startswith("/\\ meta = ")
    assert "Invariant ShortLogs is violated." in result.raw_output


def test_parses_success() -> None:
    result = parse_tlc_output(lines(SUCCESS_OUTPUT), exit_code=0)
    assert result.ok and result.outcome == "ok"
    assert (result.states_generated, result.distinct_states, result.depth) == (6, 5, 5)
    assert result.trace == [] and result.errors == [] and result.property is None


def test_success_with_nonzero_exit_is_an_error() -> None:
    result = parse_tlc_output(lines(SUCCESS_OUTPUT), exit_code=3)
    assert result.outcome == "error"
    assert any("exited with status 3" in e for e in result.errors)


def test_action_property_violation_despite_exit_status_zero() -> None:
    # TLC 2.15 exits 0 after reporting 2112, so the outcome must come from the messages.
    output = msg(2112, "Action property Mono is violated.", 1) + msg(2186, "Finished in 1ms")
    result = parse_tlc_output(lines(output), exit_code=0)
    assert (result.outcome, result.property) == ("property_violated", "Mono")


def test_violation_of_initial_state_carries_the_state() -> None:
    output = msg(
        2107,
        "Invariant InitInv is violated by the initial state:\n/\\ f = <<1, 2>>\n/\\ x = 0\n",
        1,
    ) + msg(2186, "Finished in 431ms")
    result = parse_tlc_output(lines(output), exit_code=12)
    assert (result.outcome, result.property) == ("invariant_violated", "InitInv")
    assert len(result.trace) == 1
    assert result.trace[0].action == "Init" and result.trace[0].state == {"f": (1, 2), "x": 0}


def test_liveness_lasso_and_stuttering() -> None:
    header = msg(2116, "Temporal properties were violated.\n", 1) + msg(
        2264, "The following behavior constitutes a counter-example:", 1
    )
    s1 = msg(2217, "1: <Initial predicate>\n/\\ done = FALSE\n/\\ x = 0\n", 4)
    s2 = msg(2217, "2: <Toggle line 8, col 11 to line 8, col 38 of module Liveness>\nx = 1", 4)
    back = msg(2122, "1: Back to state: <Toggle line 8, col 11 to line 8, col 38 of module L>", 4)
    end = msg(2186, "Finished in 467ms")
    lasso = parse_tlc_output(lines(header, s1, s2, back, end), exit_code=13)
    assert lasso.outcome == "property_violated" and lasso.property is None
    last = lasso.trace[-1]
    assert (last.index, last.action, last.back_to_state, last.stuttering) == (3, "Toggle", 1, False)
    assert last.state == lasso.trace[0].state and last.is_loop

    stutter = parse_tlc_output(lines(header, s1, msg(2218, "2: Stuttering", 4), end))
    last = stutter.trace[-1]
    assert last.stuttering and last.index == 2 and last.action is None
    assert last.state == {"done": False, "x": 0}


def test_deadlock() -> None:
    output = (
        msg(2114, "Deadlock reached.", 1)
        + msg(2121, "The behavior up to this point is:", 1)
        + msg(2217, "1: <Initial predicate>\nx = 0\n", 4)
        + msg(2186, "Finished")
    )
    result = parse_tlc_output(lines(output), exit_code=11)
    assert result.outcome == "deadlock" and result.property is None
    assert result.trace[0].state == {"x": 0}


def test_nested_messages_fold_into_the_enclosing_error() -> None:
    # A failed Assert: message 2132 starts mid-line inside the 1000 message.
    output = (
        "@!@!@STARTMSG 1000:1 @!@!@\n"
        "TLC threw an unexpected exception.\n"
        "This was probably caused by an error in the spec or model.\n"
        "See the User Output or TLC Console for clues to what happened.\n"
        "The exception was a tlc2.tool.EvalException\n"
        ": @!@!@STARTMSG 2132:0 @!@!@\n"
        "The first argument of Assert evaluated to FALSE; the second argument was:\n"
        '"x got too big"\n'
        "@!@!@ENDMSG 2132 @!@!@\n"
        "@!@!@ENDMSG 1000 @!@!@\n"
        + msg(2103, "The error occurred when TLC was evaluating the nested\n0. Line 7 in Misc", 1)
        + msg(2186, "Finished in 421ms")
    )
    result = parse_tlc_output(lines(output), exit_code=75)
    assert result.outcome == "error"
    assert result.errors[0].startswith("The first argument of Assert evaluated to FALSE")
    assert '"x got too big"' in result.errors[0]
    assert "TLC threw" not in result.errors[0]  # boilerplate removed
    assert "Line 7 in Misc" in result.errors[1]


def test_sany_parse_error_details_are_extracted() -> None:
    sany = (
        "Parsing file /specs/Broken.tla\n"
        "***Parse Error***\n"
        'Encountered "====" at line 6, column 1 and token "=" \n'
        "\n"
        "Residual stack trace follows:\n"
        "Definition starting at line 5, column 1.\n"
        "\n"
        "Fatal errors while parsing TLA+ spec in file Broken\n"
        "\n"
        "tla2sany.semantic.AbortException\n"
        "*** Abort messages: 1\n"
        "\n"
        "In module Broken\n"
        "\n"
        "Could not parse module Broken from file Broken.tla\n"
        "\n\n"
    )
    output = (
        msg(2220, "Starting SANY...")
        + sany
        + msg(2219, "SANY finished.")
        + msg(3002, "Parsing or semantic analysis failed.", 1)
        + msg(2186, "Finished in 289ms")
    )
    result = parse_tlc_output(lines(output), exit_code=150)
    assert result.outcome == "error"
    assert result.errors == [
        'Parse error in Broken.tla: Encountered "====" at line 6, column 1 and token "="',
        "In module Broken: Could not parse module Broken from file Broken.tla",
        "Parsing or semantic analysis failed.",
    ]


def test_sany_semantic_errors_are_extracted_with_locations() -> None:
    sany = (
        "Semantic processing of module Replicas\n"
        "Semantic errors:\n\n*** Errors: 2\n\n"
        "line 15, col 1 to line 17, col 33 of module Replicas\n\n"
        "Operator Append already defined or declared.\n\n\n"
        "line 25, col 34 to line 25, col 34 of module Replicas\n\n"
        "Could not find declaration or definition of symbol '-.'.\n\n\n"
        "*** Warnings: 1\n\n"
        "line 15, col 1 to line 17, col 33 of module Replicas\n\n"
        "Multiple declarations or definitions for symbol Append.\n"
    )
    output = msg(2220, "Starting SANY...") + sany + msg(2219, "SANY finished.")
    output += msg(3002, "Parsing or semantic analysis failed.", 1)
    result = parse_tlc_output(lines(output), exit_code=150)
    assert result.errors[:2] == [
        "line 15, col 1 to line 17, col 33 of module Replicas: "
        "Operator Append already defined or declared.",
        "line 25, col 34 to line 25, col 34 of module Replicas: "
        "Could not find declaration or definition of symbol '-.'.",
    ]
    assert not any("Multiple declarations" in e for e in result.errors)  # only a warning


def test_output_truncated_mid_message_is_an_error() -> None:
    text = lines(REPLICAS_OUTPUT)
    cut = next(i for i, line in enumerate(text) if line.startswith("/\\ leader")) + 1
    result = parse_tlc_output(text[:cut], exit_code=-9)
    assert result.outcome == "error"
    assert any("ended inside message 2217" in e for e in result.errors)
    assert result.trace == []  # the half-printed state is not reported as a step


def test_garbage_output_is_an_error() -> None:
    result = parse_tlc_output(["hello", "@!@!@STARTMSG nonsense", "", "x = {{{"], exit_code=1)
    assert result.outcome == "error"
    assert result.errors[0] == "TLC exited with status 1 without finishing its run"
    assert "x = {{{" in result.errors[-1]


def test_java_crash_with_stack_trace_is_an_error() -> None:
    # Verbatim: two TLC runs started in the same second with the same -metadir.
    output = [
        'Exception in thread "main" util.Assert$TLCRuntimeException: @!@!@STARTMSG 2162:0 @!@!@',
        "TLC writes its files to a directory whose name is generated from the current time.",
        "This directory should be /tmp/md_v/26-11-23-17-21-50, but that directory already exists.",
        "@!@!@ENDMSG 2162 @!@!@",
        "\tat util.Assert.check(Assert.java:90)",
        "\tat tlc2.TLC.main(TLC.java:243)",
    ]
    result = parse_tlc_output(output, exit_code=1)
    assert result.outcome == "error"
    joined = "\n".join(result.errors)
    assert "already exists" in joined
    assert 'Exception in thread "main"' in joined


def test_unmatched_end_marker_is_an_error() -> None:
    result = parse_tlc_output(lines(SUCCESS_OUTPUT, "@!@!@ENDMSG 2217 @!@!@\n"), exit_code=0)
    assert result.outcome == "error"
    assert any("ENDMSG 2217 without STARTMSG" in e for e in result.errors)


def test_unparsable_state_keeps_the_violation_and_the_raw_text() -> None:
    output = (
        msg(2110, "Invariant Inv is violated.", 1)
        + msg(2217, "1: <Initial predicate>\n/\\ x = SomeLazyValue(1, 2)\n", 4)
        + msg(2186, "Finished")
    )
    result = parse_tlc_output(lines(output), exit_code=12)
    assert (result.outcome, result.property) == ("invariant_violated", "Inv")
    assert result.errors[0].startswith("could not parse state 1 of the trace")
    assert result.trace[0].state == {}
    assert result.trace[0].raw == "/\\ x = SomeLazyValue(1, 2)"


def test_timeout_keeps_stats_seen_so_far() -> None:
    partial = lines(
        msg(2190, "Finished computing initial states: 1 distinct state generated at now."),
        msg(
            2200,
            "Progress(148) at 2026-11-23 17:20:24: 1,591,079 states generated (1,591,079 "
            "s/min), 541,282 distinct states found (541,282 ds/min), 10,922 states left on "
            "queue.",
        ),
        "@!@!@STARTMSG 2200:0 @!@!@",
    )
    result = parse_tlc_output(partial, exit_code=-9, timed_out=True, seconds=2.1)
    assert result.outcome == "timeout"
    assert (result.states_generated, result.distinct_states, result.depth) == (
        1591079,
        541282,
        148,
    )


def test_feed_reports_progress_including_simulation_unknowns() -> None:
    parser = TLCOutputParser()
    reports = [
        parser.feed(line, elapsed=3.0)
        for line in lines(
            msg(
                2209,
                "Progress(-1) at 2026-11-23 17:21:21: 195971673 states generated, "
                "-1 distinct states found, -1 states left on queue.",
            )
        )
    ]
    assert reports[:2] == [None, None]
    assert reports[2] == Progress(195971673, None, None, None, 3.0)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_parser_never_raises_on_damaged_output(data: st.DataObject) -> None:
    text = lines(REPLICAS_OUTPUT)
    cut = data.draw(st.integers(0, len(text)))
    junk = data.draw(st.lists(st.text(max_size=30), max_size=5))
    where = data.draw(st.integers(0, cut))
    damaged = text[:where] + junk + text[where:cut]
    result = parse_tlc_output(damaged, exit_code=data.draw(st.sampled_from([0, 1, 12, None])))
    assert result.outcome in OUTCOMES
    if result.outcome == "error":
        assert result.errors


# --- Toolchain discovery ----------------------------------------------------------------


def test_missing_jar_raises_toolchain_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DYNASPEC_TLA2TOOLS", "/nonexistent/tla2tools.jar")
    with pytest.raises(ToolchainError, match=r"tla2tools\.jar not found") as info:
        find_tla2tools()
    assert "\n" not in str(info.value)


def test_jar_not_installed_raises_toolchain_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DYNASPEC_TLA2TOOLS", raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ToolchainError, match="make venv"):
        find_tla2tools()


def test_missing_java_raises_toolchain_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JAVA", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ToolchainError, match="java not found on PATH"):
        find_java()
    with pytest.raises(ToolchainError):
        run_tlc(FIXTURES / "Counter.tla", FIXTURES / "Counter.cfg")


def test_cli_prints_one_line_on_toolchain_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DYNASPEC_TLA2TOOLS", "/nonexistent/tla2tools.jar")
    code = tlc_runner.main([str(FIXTURES / "Counter.tla"), str(FIXTURES / "Counter.cfg")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: tla2tools.jar not found")


def test_build_command() -> None:
    cmd = build_command(
        "java",
        Path("/x/tla2tools.jar"),
        Path("/specs/Foo.tla"),
        Path("/specs/Foo.cfg"),
        metadir=Path("/tmp/m"),
        tmpdir=Path("/tmp/t"),
        workers=4,
        simulate=True,
        depth=50,
        seed=7,
        extra_args=["-nowarning"],
        java_opts=["-Xss16m"],
    )
    assert cmd[:2] == ["java", "-Xss16m"]
    assert "-Djava.io.tmpdir=/tmp/t" in cmd
    assert cmd[cmd.index("-cp") + 1] == "/x/tla2tools.jar"
    assert "-deadlock" not in cmd  # deadlock checking stays on
    for flag, value in [("-config", "/specs/Foo.cfg"), ("-workers", "4"), ("-metadir", "/tmp/m")]:
        assert cmd[cmd.index(flag) + 1] == value
    assert cmd[cmd.index("-depth") + 1] == "50" and cmd[cmd.index("-seed") + 1] == "7"
    assert {"-tool", "-cleanup", "-simulate"} <= set(cmd)
    assert cmd[-2:] == ["-nowarning", "Foo.tla"]


def test_cfg_property_names(tmp_path: Path) -> None:
    cfg = tmp_path / "M.cfg"
    cfg.write_text(
        "\\* PROPERTY Commented\nSPECIFICATION Spec\nPROPERTIES\n  Live (* Hidden *)\n"
        "  Safe\nINVARIANT TypeOK\n"
    )
    assert tlc_runner._cfg_properties(cfg) == ["Live", "Safe"]


# --- Real TLC runs ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def toolchain() -> Iterator[None]:
    try:
        find_java()
        find_tla2tools()
    except ToolchainError as exc:
        pytest.skip(str(exc))
    yield


@functools.cache
def run_fixture(module: str, cfg: str) -> TLCResult:
    """Each fixture is model-checked once per session (TLC start-up dominates the time)."""
    return run_tlc(FIXTURES / f"{module}.tla", FIXTURES / f"{cfg}.cfg", timeout=60)


@pytest.mark.usefixtures("toolchain")
class TestRealTLC:
    def test_passing_spec(self) -> None:
        seen: list[Progress] = []
        result = run_tlc(
            FIXTURES / "Counter.tla", FIXTURES / "Counter.cfg", timeout=60, on_progress=seen.append
        )
        assert result.outcome == "ok", result.errors
        assert (result.states_generated, result.distinct_states, result.depth) == (6, 5, 5)
        assert result.trace == [] and result.errors == [] and result.exit_code == 0
        assert seen and seen[-1].distinct_states == 5 and seen[-1].queue == 0
        assert 0 < result.seconds < 60
        assert not (FIXTURES / "states").exists()  # the metadir went to a temp dir

    def test_invariant_violation(self) -> None:
        result = run_fixture("Replicas", "Replicas")
        assert (result.outcome, result.property) == ("invariant_violated", "ShortLogs")
        assert [s.action for s in result.trace] == ["Init", "AddEntry", "AddEntry"]
        assert [s.index for s in result.trace] == [1, 2, 3]
        assert result.trace[1].location is not None
        assert result.trace[1].location.endswith("of module Replicas")
        final = result.trace[-1].state
        assert set(final) == {"log", "leader", "meta"}
        assert final["log"][MV("r1")] == (Record(term=0, val=-1),) * 2
        assert final["log"][MV("r2")] == ()
        assert final["meta"].note == 'a "quoted" note'
        assert result.depth == 3 and result.distinct_states == 8

    def test_deadlock(self) -> None:
        result = run_fixture("Deadlock", "Deadlock")
        assert result.outcome == "deadlock"
        assert [s.state["x"] for s in result.trace] == [0, 1, 2, 3]
        assert [s.action for s in result.trace] == ["Init", "Step", "Step", "Step"]

    def test_temporal_violation_with_lasso(self) -> None:
        result = run_fixture("Liveness", "Liveness")
        assert result.outcome == "property_violated"
        assert result.property == "EventuallyDone"  # the cfg's only PROPERTY
        last = result.trace[-1]
        assert last.back_to_state == 1 and last.action == "Toggle"
        assert last.state == result.trace[0].state

    def test_temporal_violation_with_stuttering(self) -> None:
        result = run_fixture("Liveness", "Stutter")
        assert result.outcome == "property_violated"
        assert len(result.trace) == 2 and result.trace[-1].stuttering
        assert result.trace[-1].state == {"x": 0, "done": False}

    def test_parse_error(self) -> None:
        result = run_fixture("Broken", "Broken")
        assert result.outcome == "error"
        assert "Broken" in result.errors[0] and "line 6" in result.errors[0]

    def test_runtime_error_keeps_the_trace(self) -> None:
        result = run_fixture("Misc", "MiscEval")
        assert result.outcome == "error"
        assert "not in the domain of the function" in result.errors[0]
        assert [s.state["x"] for s in result.trace] == [0, 1, 2]

    def test_invariant_false_initially(self) -> None:
        result = run_fixture("Misc", "MiscInitInv")
        assert (result.outcome, result.property) == ("invariant_violated", "InitInv")
        assert [s.state for s in result.trace] == [{"f": (1, 2), "x": 0}]

    def test_config_error(self) -> None:
        result = run_fixture("Misc", "MiscCfgErr")
        assert result.outcome == "error"
        assert "NoSuchOp" in result.errors[0]

    def test_missing_spec_is_an_error_not_an_exception(self, tmp_path: Path) -> None:
        result = run_tlc(tmp_path / "Nope.tla", FIXTURES / "Counter.cfg")
        assert result.outcome == "error" and "Nope.tla" in result.errors[0]

    def test_timeout_kills_tlc_promptly(self) -> None:
        start = time.monotonic()
        result = run_tlc(FIXTURES / "Huge.tla", FIXTURES / "Huge.cfg", timeout=2)
        elapsed = time.monotonic() - start
        assert result.outcome == "timeout"
        assert 2 <= result.seconds < 4 and elapsed < 5
        assert result.exit_code is not None and result.exit_code < 0  # killed by a signal
        assert not (FIXTURES / "states").exists()

    def test_cli_exit_status(self, capsys: pytest.CaptureFixture[str]) -> None:
        code = tlc_runner.main([str(FIXTURES / "Deadlock.tla"), str(FIXTURES / "Deadlock.cfg")])
        out = capsys.readouterr().out
        assert code == 1
        assert out.splitlines()[0] == "deadlock"
        assert "Step 4: Step (Deadlock.tla:6)" in out


def test_no_stray_states_directory_in_fixtures() -> None:
    assert not any(p.name == "states" for p in FIXTURES.iterdir()), os.listdir(FIXTURES)


def test_only_the_first_counterexample_is_kept_with_continue() -> None:
    first = msg(2110, "Invariant A is violated.", 1) + msg(2217, "1: <Initial predicate>\nx = 0", 4)
    second = msg(2110, "Invariant B is violated.", 1) + msg(
        2217, "1: <Initial predicate>\nx = 9", 4
    )
    result = parse_tlc_output(lines(first, second, msg(2186, "Finished")), exit_code=12)
    assert (result.outcome, result.property) == ("invariant_violated", "A")
    assert [s.state for s in result.trace] == [{"x": 0}]


def test_java_env_var_that_is_not_executable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVA", "/nonexistent/bin/java")
    with pytest.raises(ToolchainError, match="JAVA=/nonexistent/bin/java"):
        find_java()
