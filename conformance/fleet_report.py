"""A fleet replay's report: ``build/replay-report.json``, the summary, the exit code.

The JSON has one row per group, ``{group, events, verdict, violations, warnings,
unchecked, input_error, seconds}``, plus ``context`` for a group with violations: its
first violating event's neighbours, 3 lines before and after it in the same node
segment, each ``{line, text}``. The summary prints every group that is not ``ok`` (its
first finding, and the context of a violation) and a count per verdict.

Exit codes (traces/FORMAT.md, "Bad input and exit codes"): 1 if some group has a
violation (certain under the clocks' bounds), else 2 if some group's input is unusable
(the others were still checked and reported) or, without ``partial_ok``, a check left
part of a group unchecked, else 0. Warnings never change the exit code.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from conformance.errors import EXIT_INPUT, EXIT_OK, EXIT_VIOLATION
from conformance.fleet_input import node_context
from conformance.fleet_replay import FleetResult

CONTEXT = 3


def context_of(where: str) -> list[dict[str, Any]]:
    return [{"line": ln, "text": text} for ln, text in node_context(where, CONTEXT)]


def report_json(result: FleetResult) -> dict[str, Any]:
    groups = []
    for v in result.verdicts:
        row = v.to_json()
        if v.where and v.where[0]:
            row["context"] = {"where": v.where[0], "lines": context_of(v.where[0])}
        groups.append(row)
    counts = Counter(v.verdict for v in result.verdicts)
    return {"format": 4, "directory": str(result.directory), "mode": result.mode,
            "workers": result.workers, "seconds": round(result.seconds, 3),
            "events": result.events, "verdicts": dict(sorted(counts.items())),
            "groups": groups}


def write_report(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))


def exit_code(result: FleetResult, partial_ok: bool) -> int:
    verdicts = [v.verdict for v in result.verdicts]
    if "violation" in verdicts:
        return EXIT_VIOLATION
    if "input-error" in verdicts:
        return EXIT_INPUT
    if not partial_ok and any(v.unchecked for v in result.verdicts):
        return EXIT_INPUT
    return EXIT_OK


def render(report: dict[str, Any], console: Console, echo: Callable[[str], None]) -> None:
    """Every group that is not ok (a table on ``console``), the context of each violation and
    the totals (plain lines, ``echo``: a log keeps them whole)."""
    table = Table(title=f"fleet replay: {len(report['groups'])} groups, {report['events']} "
                        f"events, {report['seconds']:.1f}s ({report['mode']}, "
                        f"{report['workers']} workers)")
    for col in ("group", "events", "verdict", "first finding"):
        table.add_column(col, overflow="fold")
    shown = 0
    for row in report["groups"]:
        if row["verdict"] == "ok" and not row["unchecked"]:
            continue
        first = (row["input_error"] or (row["violations"] or row["warnings"]
                                        or row["unchecked"] or [""])[0])
        table.add_row(row["group"], str(row["events"]), row["verdict"], first)
        shown += 1
    if shown:
        console.print(table)
    for row in report["groups"]:
        ctx = row.get("context")
        if ctx:
            echo(f"{row['group']}: the first violation at {ctx['where']}, with its neighbours "
                 f"in that file:")
            target = int(ctx["where"].rpartition(":")[2])
            for x in ctx["lines"]:
                mark = ">" if x["line"] == target else " "
                text = x["text"] if len(x["text"]) <= 160 else x["text"][:157] + "..."
                echo(f"  {mark}{x['line']:>7}  {text}")
    echo("groups: " + ", ".join(f"{n} {k}" for k, n in report["verdicts"].items()))


__all__ = ["exit_code", "render", "report_json", "write_report"]
