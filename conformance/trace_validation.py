"""TLC trace validation: check that a reference trace is a behavior of Replication.

``validate_trace_dir(DIR)`` merges the per-node trace files of a ``dynaspec
simulate`` run, turns them into the items of specs/TraceValidation.tla (one per
traced step, plus a ``tick`` wherever real time advances), writes a module that
extends TraceValidation with those items, and runs TLC on it. The verdict, and on
failure the first event that could not be matched (file and line) with the spec
state at that point, come back as a ``TraceValidationResult``.

Mapping the implementation's values to the spec's:

* Replicas are strings ("r1"...); every replica is a storage member.
* Time unit: one microsecond. ``MaxDrift`` is the spec's window width, twice the
  implementation's +/- bound, and a clock's offset is ``clock - real + max_drift``.
  Between a node's events its clock is interpolated linearly (rounded down), which is
  one assignment of clock readings consistent with every event; lease messages age
  on that assignment in TLC and in the ``left`` computed here alike.
* Commands: each ClientWrite is a new command (an index into ``Ops``), even when the
  client retries a request id, because the spec's ClientWrite takes only commands no
  2a message carries; ``CmdRid`` maps indices back to request ids, which the items of
  Phase2a, Phase2b and Apply are checked against. ``Ops`` are puts; the key-value
  contents are checked by the linearizability checker, not here.
* The spec's ``RenewAhead`` becomes the implementation's ``renew_ahead_us``.
"""

from __future__ import annotations

import bisect
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from conformance.tlc_runner import build_command, find_java, find_tla2tools

SPECS = Path(__file__).resolve().parent.parent / "specs"


class TraceInputError(ValueError):
    """A trace that cannot be turned into items (``path:line: reason``)."""


@dataclass(frozen=True, slots=True)
class Located:
    event: dict[str, Any]
    where: str


@dataclass(slots=True)
class TraceValidationResult:
    ok: bool
    events: int
    items: int
    seconds: float
    message: str
    unmatched: Located | None = None
    item: dict[str, Any] | None = None
    """The spec step the unmatched event was expected to be."""
    state: dict[str, str] = field(default_factory=dict)
    """Spec variables (as TLC printed them) in the last matched state, on failure."""
    tlc_output_tail: str = ""


@dataclass(frozen=True, slots=True)
class TimingConfig:
    lease_dur_us: int
    lease_margin_us: int
    max_drift_us: int
    renew_ahead_us: int

    @classmethod
    def from_config_json(cls, obj: Mapping[str, Any]) -> TimingConfig:
        """From a run's config.json: the ``replica_config`` the replicas ran with."""
        rc = obj.get("replica_config")
        if not isinstance(rc, dict):
            raise TraceInputError("config.json has no replica_config (written by an older "
                                  "dynaspec simulate; run it again)")
        try:
            return cls(rc["lease_dur_us"], rc["lease_margin_us"], rc["max_drift_us"],
                       rc["renew_ahead_us"])
        except KeyError as exc:
            raise TraceInputError(f"config.json: replica_config lacks {exc}") from exc


# --- loading -----------------------------------------------------------------------------


def load_trace_dir(directory: Path) -> tuple[list[Located], dict[str, Any]]:
    """Every event of every ``trace-*.jsonl`` in ``directory``, merged by real time."""
    cfg_path = directory / "config.json"
    try:
        config = orjson.loads(cfg_path.read_bytes())
    except FileNotFoundError:
        raise TraceInputError(f"{cfg_path}: missing (is {directory} a simulate output?)") \
            from None
    except orjson.JSONDecodeError as exc:
        raise TraceInputError(f"{cfg_path}:1: not JSON: {exc}") from exc
    files = sorted(directory.glob("trace-*.jsonl"))
    if not files:
        raise TraceInputError(f"{directory}: no trace-*.jsonl files")
    events: list[tuple[int, int, int, Located]] = []
    for fi, path in enumerate(files):
        with path.open("rb") as f:
            for ln, line in enumerate(f, start=1):
                where = f"{path}:{ln}"
                try:
                    ev = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise TraceInputError(f"{where}: not JSON: {exc}") from exc
                if not isinstance(ev, dict) or not {"node", "seq", "clock", "action",
                                                    "args"} <= ev.keys():
                    raise TraceInputError(f"{where}: not a trace event")
                if not isinstance(ev.get("real"), int):
                    raise TraceInputError(f"{where}: no 'real' time; trace validation needs "
                                          "the simulator's real time")
                events.append((ev["real"], fi, ev["seq"], Located(ev, where)))
    events.sort(key=lambda x: x[:3])
    return [e[3] for e in events], config


# --- clocks ------------------------------------------------------------------------------


class _Clock:
    """A node's clock as a function of real time, interpolated between its events."""

    def __init__(self, samples: list[tuple[int, int]]) -> None:
        self.reals = [t for t, _ in samples]
        self.clocks = [c for _, c in samples]

    def at(self, t: int) -> int:
        reals, clocks = self.reals, self.clocks
        i = bisect.bisect_right(reals, t)
        if i == 0:
            return clocks[0] + (t - reals[0])
        if i == len(reals):
            return clocks[-1] + (t - reals[-1])
        t0, t1, c0, c1 = reals[i - 1], reals[i], clocks[i - 1], clocks[i]
        if t1 == t0:
            return c1
        return c0 + ((c1 - c0) * (t - t0)) // (t1 - t0)


# --- items -------------------------------------------------------------------------------


@dataclass(slots=True)
class Items:
    items: list[dict[str, Any]]
    origin: list[Located | None]  # the event behind each item (None for ticks)
    replicas: list[str]
    offset0: dict[str, int]
    cmd_rids: list[str]
    cmd_keys: list[str]
    keys: dict[str, str]
    max_ballot: int
    max_slot: int


def _rid(c: Any) -> str:
    return "" if c is None else str(c["rid"])


def _key_of_op(c: Any) -> Any:
    op = c["op"]
    if isinstance(op, (bytes, str)):
        op = orjson.loads(op)
    if "item" in op:
        return {"p": op["item"]["pk"]}
    return op["key"]


def build_items(events: Sequence[Located], timing: TimingConfig,
                replicas: Sequence[str] | None = None) -> Items:
    nodes = sorted({e.event["node"] for e in events} | set(replicas or ()))
    samples: dict[str, list[tuple[int, int]]] = {n: [] for n in nodes}
    for loc in events:
        ev = loc.event
        s = samples[ev["node"]]
        if s and ev["real"] == s[-1][0]:
            continue
        s.append((ev["real"], ev["clock"]))
    for n, s in samples.items():
        if not s:
            raise TraceInputError(f"replica {n} has no events")
    clocks = {n: _Clock(s) for n, s in samples.items()}
    d = timing.max_drift_us

    def offsets(t: int, where: str) -> dict[str, int]:
        out = {}
        for n in nodes:
            off = clocks[n].at(t) - t + d
            if not 0 <= off <= 2 * d:
                raise TraceInputError(f"{where}: {n}'s clock is {off - d}us off real time, "
                                      f"beyond the drift bound {d}us")
            out[n] = off
        return out

    keys: dict[str, str] = {}

    def key(k: Any) -> str:
        text = orjson.dumps(k, option=orjson.OPT_SORT_KEYS).decode()
        return keys.setdefault(text, f"k{len(keys) + 1}")

    items: list[dict[str, Any]] = []
    origin: list[Located | None] = []
    cmd_rids: list[str] = []
    cmd_keys: list[str] = []
    max_ballot = max_slot = 0
    if not events:
        raise TraceInputError("the trace has no events")
    now = events[0].event["real"]
    offset0 = offsets(now, events[0].where)
    for loc in events:
        ev = loc.event
        try:
            a = ev["args"]
            t = ev["real"]
            act = ev["action"]
            if t > now and act in TIME_DEPENDENT:
                items.append({"kind": "tick", "d": t - now, "off": offsets(t, loc.where)})
                origin.append(loc)
                now = t
            item = _item_of(act, a, ev, key, cmd_rids, cmd_keys, clocks, timing, t)
        except (KeyError, TypeError, IndexError) as exc:
            raise TraceInputError(f"{loc.where}: malformed {ev.get('action')} event: "
                                  f"{type(exc).__name__} {exc}") from exc
        if item is None:
            raise TraceInputError(f"{loc.where}: unknown action {ev.get('action')!r}")
        if act in ("ClientWrite", "Phase2a"):
            max_slot = max(max_slot, item["s"])
        for f in ("b", "bal"):
            if isinstance(item.get(f), int):
                max_ballot = max(max_ballot, item[f])
        items.append(item)
        origin.append(loc)
    return Items(items, origin, nodes, offset0, cmd_rids, cmd_keys, keys,
                 max(max_ballot, 1), max_slot + 1)


# Actions whose enabling or effect reads the clocks, the wait or lease messages' time
# left. Time passing commutes with every other action (Tick changes only offsets,
# waitLeft and lease messages), so real time is advanced only right before these:
# far fewer items, and the same behavior up to reordering commuting steps.
TIME_DEPENDENT = frozenset({"ClientWrite", "Commit", "StrongRead", "LeaseRenew", "LeaseGrant",
                            "BecomeLeader"})


def _item_of(act: str, a: Mapping[str, Any], ev: Mapping[str, Any], key: Any,
             cmd_rids: list[str], cmd_keys: list[str], clocks: Mapping[str, _Clock],
             timing: TimingConfig, t: int) -> dict[str, Any] | None:
    item: dict[str, Any] = {"kind": "act", "action": act}
    if act == "Phase1a":
        item.update(r=a["r"], b=a["b"])
    elif act == "Phase1b":
        item.update(a=a["a"], bal=a["m"]["bal"], **{"from": a["m"]["from"]})
    elif act == "BecomeLeader":
        item.update(r=a["r"], b=a["b"], Q=set(a["Q"]))
    elif act == "ClientWrite":
        cmd_rids.append(_rid(a["c"]))
        cmd_keys.append(key(_key_of_op(a["c"])))
        item.update(r=a["r"], c=len(cmd_rids), s=a["s"])
    elif act == "Phase2a":
        item.update(r=a["r"], b=a["b"], s=a["s"], rid=_rid(a["c"]))
    elif act == "Phase2b":
        m = a["m"]
        item.update(a=a["a"], bal=m["bal"], slot=m["slot"], rid=_rid(m["cmd"]),
                    **{"from": m["from"]})
    elif act == "Commit":
        item.update(r=a["r"], b=a["b"], s=a["s"])
    elif act == "Apply":
        item.update(r=a["r"], s=a["s"], rid=_rid(a["c"]))
    elif act in ("LeaseRenew", "Crash", "Quarantine"):
        item.update(r=a.get("r", ev["node"]))
    elif act == "LeaseGrant":
        m = a["m"]
        left = max(0, m["start"] + timing.lease_dur_us - clocks[m["from"]].at(t))
        item.update(a=a["a"], bal=m["bal"], left=left, **{"from": m["from"]})
    elif act in ("StrongRead", "EventualRead"):
        item.update(r=a["r"], k=key(a["k"]))
    elif act == "Restart":
        item.update(r=ev["node"], ballot=a["ballot"], granted=a["granted"],
                    applied=a["applied"], log=a["log"])
    else:
        return None
    return item


# --- rendering -----------------------------------------------------------------------------


def _tla(x: Any) -> str:
    if isinstance(x, bool):
        return "TRUE" if x else "FALSE"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, str):
        if '"' in x or "\\" in x:
            raise TraceInputError(f"cannot write {x!r} as a TLA+ string")
        return f'"{x}"'
    if isinstance(x, set | frozenset):
        return "{" + ", ".join(_tla(v) for v in sorted(x)) + "}"
    raise TypeError(f"no TLA+ form for {x!r}")


def _fn(m: Mapping[str, int]) -> str:
    return "(" + " @@ ".join(f"{_tla(k)} :> {v}" for k, v in sorted(m.items())) + ")"


def _item(it: Mapping[str, Any]) -> str:
    parts = []
    for k, v in it.items():
        parts.append(f"{k} |-> {_fn(v) if k == 'off' else _tla(v)}")
    return "[" + ", ".join(parts) + "]"


def render(items: Items, timing: TimingConfig, module: str) -> tuple[str, str]:
    ops = ", ".join(f'[op |-> "put", key |-> {_tla(k)}, val |-> {i}, expect |-> Absent]'
                    for i, k in enumerate(items.cmd_keys, start=1))
    body = ",\n    ".join(_item(it) for it in items.items)
    tla = f"""---- MODULE {module} ----
EXTENDS TraceValidation
TVReplicas == {_tla(set(items.replicas))}
TVInitConfig == [r \\in TVReplicas |-> "storage"]
TVKeys == {_tla(set(items.keys.values()) or {"k0"})}
TVOps == << {ops} >>
TVCmdRid == << {", ".join(_tla(r) for r in items.cmd_rids)} >>
TVOffset0 == {_fn(items.offset0)}
TVRenewAhead == {timing.renew_ahead_us}
TVItems == <<
    {body}
>>
====
"""
    cfg = f"""INIT TraceInit
NEXT TraceNextOrDone
VIEW TraceView
CONSTANTS
    Replicas <- TVReplicas
    InitConfig <- TVInitConfig
    MaxBallot = {items.max_ballot}
    MaxSlot = {items.max_slot}
    Keys <- TVKeys
    Ops <- TVOps
    LeaseDur = {timing.lease_dur_us}
    LeaseMargin = {timing.lease_margin_us}
    MaxDrift = {2 * timing.max_drift_us}
    TraceItems <- TVItems
    Offset0 <- TVOffset0
    CmdRid <- TVCmdRid
    RenewAhead <- TVRenewAhead
"""
    return tla, cfg


# --- running TLC ------------------------------------------------------------------------

_TRY_RE = re.compile(rb'<<\s*"tv-try",\s*(\[.*?\])\s*>>', re.S)
_STATS_RE = re.compile(rb"([\d,]+) states generated, ([\d,]+) distinct states found")


def _summary_state(text: str) -> dict[str, str]:
    """The fields of a printed ``Summary`` record: the state the failing item met."""
    out: dict[str, str] = {}
    body = " ".join(text.split()).strip("[]")
    for m in re.finditer(r"(\w+) \|-> (\[[^\]]*\]|[^,\]]+)", body):
        out[m.group(1)] = m.group(2)
    return out


def _run_tlc_streaming(cmd: list[str], cwd: Path, timeout: float) -> tuple[bytes, int | None]:
    """Run TLC; stop it as soon as it reports a deadlock (an unmatched item).

    What follows a deadlock is TLC printing the whole behavior, every state with
    every message, which for a long trace takes minutes; the PrintT lines before it
    already say which item failed and in what state.
    """
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    with subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            chunks.append(line)
            if b"Deadlock reached" in line or time.monotonic() > deadline:
                proc.kill()
                break
        proc.wait()
        timed_out = time.monotonic() > deadline
    return b"".join(chunks), (None if timed_out else proc.returncode)


def validate_events(events: Sequence[Located], timing: TimingConfig, *,
                    replicas: Sequence[str] | None = None, workdir: Path | None = None,
                    timeout: float = 600.0, keep: bool = False) -> TraceValidationResult:
    started = time.perf_counter()
    items = build_items(events, timing, replicas)
    module = "TV_Trace"
    tla, cfg = render(items, timing, module)
    tmp_ctx = tempfile.TemporaryDirectory(prefix="dynaspec-tv-")
    work = Path(tmp_ctx.name) if workdir is None else workdir
    work.mkdir(parents=True, exist_ok=True)
    try:
        for name in ("Replication.tla", "TraceValidation.tla"):
            shutil.copy(SPECS / name, work / name)
        (work / f"{module}.tla").write_text(tla)
        (work / f"{module}.cfg").write_text(cfg)
        cmd = build_command(find_java(), find_tla2tools(), work / f"{module}.tla",
                            work / f"{module}.cfg", metadir=work / "states", tmpdir=work,
                            workers=1, simulate=False, depth=None, seed=None, extra_args=(),
                            java_opts=("-XX:+UseParallelGC", "-Xss16m"))
        output, code = _run_tlc_streaming(cmd, work, timeout)
        (work / "tlc.out").write_bytes(output)
    finally:
        if not keep and workdir is None:
            tmp_ctx.cleanup()
    seconds = time.perf_counter() - started
    n = len(items.items)
    tail = output[-3000:].decode(errors="replace")
    if code is None:
        return TraceValidationResult(False, len(events), n, seconds,
                                     f"TLC timed out after {timeout:.0f}s", tlc_output_tail=tail)
    stats = _STATS_RE.findall(output)
    distinct = int(stats[-1][1].replace(b",", b"")) if stats else None
    if b"No error has been found" in output and distinct == n + 1:
        return TraceValidationResult(True, len(events), n, seconds,
                                     f"all {len(events)} events matched ({n} items, "
                                     f"{distinct} states)")
    if b"Assumption line" in output or (b"assumption" in output.lower() and b"false" in output):
        return TraceValidationResult(
            False, len(events), n, seconds,
            f"the configuration violates the spec's lease assumption LeaseMargin >= "
            f"2 * MaxDrift: margin {timing.lease_margin_us}us, clock window "
            f"{2 * timing.max_drift_us}us", tlc_output_tail=tail)
    if b"Deadlock reached" in output:
        tries = _TRY_RE.findall(output)
        last = tries[-1].decode(errors="replace") if tries else ""
        m = re.search(r"cursor \|-> (\d+)", last)
        cursor = int(m.group(1)) if m else 1
        loc = items.origin[cursor - 1] if cursor - 1 < len(items.origin) else None
        item = items.items[cursor - 1] if cursor - 1 < n else None
        what = f"{loc.where}: " if loc else ""
        desc = (f"tick of {item['d']}us before it" if item and item["kind"] == "tick"
                else f"{item['action'] if item else '?'}")
        return TraceValidationResult(
            False, len(events), n, seconds,
            f"{what}event not matched by the spec ({desc}; item {cursor} of {n})",
            unmatched=loc, item=item, state=_summary_state(last), tlc_output_tail=tail)
    return TraceValidationResult(False, len(events), n, seconds,
                                 "TLC failed: " + " ".join(tail.split())[-800:],
                                 tlc_output_tail=tail)


def validate_trace_dir(directory: Path, *, max_events: int | None = None,
                       workdir: Path | None = None, timeout: float = 600.0,
                       keep: bool = False) -> TraceValidationResult:
    events, config = load_trace_dir(directory)
    if max_events is not None:
        events = events[:max_events]
    timing = TimingConfig.from_config_json(config)
    replicas = [f"r{i}" for i in range(1, int(config.get("replicas", 3)) + 1)]
    return validate_events(events, timing, replicas=replicas, workdir=workdir,
                           timeout=timeout, keep=keep)
