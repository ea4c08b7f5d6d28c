"""The history held against the traces (conformance/history_vs_trace.py): a simulated
run agrees with its traces, and each kind of disagreement, built from that run, is
rejected by `dynaspec replay`, naming the history line and the trace line."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from conformance.cli import main
from conformance.history_vs_trace import history_vs_trace_layer
from conformance.replay import replay


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "run"
    res = CliRunner().invoke(main, ["simulate", "--seed", "5", "--faults", "crashes",
                                    "--duration", "3s", "--no-plot", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


def history(d: Path) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in (d / "history.jsonl").read_bytes().splitlines()]


def write(d: Path, lines: list[dict[str, Any]]) -> None:
    (d / "history.jsonl").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))


def copy(run_dir: Path, tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    d = tmp_path / "run"
    shutil.copytree(run_dir, d)
    return d, history(d)


def trace_lines(d: Path) -> list[tuple[str, int, dict[str, Any]]]:
    out = []
    for f in sorted(d.glob("trace-*.jsonl")):
        for n, line in enumerate(f.read_bytes().splitlines(), start=1):
            out.append((f.name, n, orjson.loads(line)))
    return out


def rejected(d: Path, history_line: int, trace_pattern: str, words: str) -> str:
    """`dynaspec replay` fails the history-vs-trace layer (exit 1) with a problem naming
    the history line and a trace line. (One replay: the CLI prints every layer's
    problems under the layer's own line.)"""
    cli = CliRunner().invoke(main, ["replay", str(d)])
    assert cli.exit_code == 1, cli.output
    out = cli.output.splitlines()
    head = next(i for i, x in enumerate(out) if x.split()[1:2] == ["history-vs-trace"])
    assert out[head].startswith("FAIL"), out[head]
    section = []
    for x in out[head + 1:]:
        if not x.startswith("     "):
            break
        section.append(x.strip())
    mine = [p for p in section if f"history.jsonl:{history_line}:" in p]
    assert mine, section
    assert re.search(trace_pattern, mine[0]) and re.search(words, mine[0]), mine[0]
    return mine[0]


def test_a_simulated_run_agrees_with_its_traces(run_dir: Path) -> None:
    res = replay(run_dir)
    layer = next(x for x in res.layers if x.layer == "history-vs-trace")
    assert layer.ok, layer.problems
    assert "0 disagreements" in layer.summary and "strong reads" in layer.summary


def test_ok_write_no_replica_logged(run_dir: Path, tmp_path: Path) -> None:
    d, lines = copy(run_dir, tmp_path)
    end = max(x["complete"] for x in lines) + 10
    item = {"pk": {"S": "fresh"}, "w": {"S": "c1-9999"}}
    lines.append({"id": "c1-9999", "client": "c1", "op": "put", "key": {"p": {"S": "fresh"}},
                  "invoke": end, "complete": end + 5, "status": "ok", "attempts": 1,
                  "replica": "r1", "args": orjson.dumps({"item": item, "op": "put"}).decode(),
                  "old": None, "new": item})
    write(d, lines)
    rejected(d, len(lines), r"trace-r\d\.jsonl", "no replica logged it")


def test_acknowledged_before_commit(run_dir: Path, tmp_path: Path) -> None:
    d, lines = copy(run_dir, tmp_path)
    commits = {ev["args"]["c"]["rid"]: ev["real"] for _, _, ev in reversed(trace_lines(d))
               if ev["action"] == "Apply" and ev["args"]["c"] and "rid" in ev["args"]["c"]}
    n, x = next((n, x) for n, x in enumerate(lines, start=1)
                if x["op"] != "get" and x["status"] == "ok" and commits[x["id"]] > x["invoke"])
    x["complete"] = x["invoke"]
    write(d, lines)
    # Acknowledged at its invocation: before a quorum accepted it (which comes first)
    # and before it was committed.
    rejected(d, n, r"trace-r\d\.jsonl:\d+",
             "before (a quorum had accepted it|it was first committed)")


def test_strong_read_served_as_eventual(run_dir: Path, tmp_path: Path) -> None:
    d, lines = copy(run_dir, tmp_path)
    reads: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for _, _, ev in trace_lines(d):
        if ev["action"] in ("StrongRead", "EventualRead"):
            k = orjson.dumps(ev["args"]["k"], option=orjson.OPT_SORT_KEYS).decode()
            reads.setdefault((ev["replica"], k), []).append((ev["real"], ev["action"]))

    def only_eventual(x: dict[str, Any]) -> bool:
        k = orjson.dumps(x["key"], option=orjson.OPT_SORT_KEYS).decode()
        near = [a for t, a in reads.get((x["replica"], k), [])
                if x["invoke"] <= t <= x["complete"]]
        return bool(near) and "StrongRead" not in near

    n, x = next((n, x) for n, x in enumerate(lines, start=1)
                if x["op"] == "get" and x["status"] == "ok" and not x["consistent"]
                and only_eventual(x))
    x["consistent"] = True
    write(d, lines)
    rejected(d, n, rf"trace-{x['replica']}\.jsonl:\d+", "served only an eventual read")


def test_eventual_read_of_a_value_never_chosen(run_dir: Path, tmp_path: Path) -> None:
    d, lines = copy(run_dir, tmp_path)
    n, x = next((n, x) for n, x in enumerate(lines, start=1)
                if x["op"] == "get" and x["status"] == "ok" and not x["consistent"]
                and x["value"] is not None)
    x["value"] = {**x["value"], "w": {"S": "never-written"}}
    write(d, lines)
    rejected(d, n, rf"trace-{x['replica']}\.jsonl:\d+", "had not applied")


def test_replica_that_does_not_exist(run_dir: Path, tmp_path: Path) -> None:
    d, lines = copy(run_dir, tmp_path)
    n, x = next((n, x) for n, x in enumerate(lines, start=1) if x["replica"])
    x["replica"] = "r9"
    write(d, lines)
    rejected(d, n, r"config\.json:1", "which the run does not have")


def test_layer_for_the_mutation_matrix() -> None:
    from conformance.mutation_matrix import run_scenario

    world_run = run_scenario(1, None)
    caught, detail = history_vs_trace_layer(world_run)
    assert not caught, detail
    world_run.history[-1].served_by = "nobody"
    caught, detail = history_vs_trace_layer(world_run)
    assert caught and "history.jsonl:" in detail and "nobody" in detail, detail

