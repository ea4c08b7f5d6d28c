"""``dynaspec check-history FILE``: a client history checked on its own.

Reads ``history.jsonl`` (traces/FORMAT.md, "History lines") or, with ``--format
jepsen``, a Jepsen register history (EDN), and checks it against
conformance/linearizability/SEMANTICS.md key by key. Each key is ok, a violation or
undecided (the search budget ran out); an undecided key is input left unchecked:
exit 2 unless ``--partial-ok``, never 1.

Registered on the main ``dynaspec`` group (conformance/cli.py), whose error handling
applies: bad input is one line on stderr and exit 2, an internal error exit 3.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import NoReturn

import click

from conformance.errors import EXIT_INPUT, EXIT_OK, EXIT_VIOLATION, one_line
from conformance.linearizability import (
    DEFAULT_MAX_STATES,
    HistoryFormatError,
    check_history,
    load_history,
)
from conformance.linearizability.jepsen import load_jepsen
from conformance.linearizability.model import _show_key
from reference.client import HistoryRecord


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {one_line(message)}", err=True)
    sys.exit(EXIT_INPUT)


@click.command("check-history")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["dynaspec", "jepsen"]),
              default="dynaspec", show_default=True,
              help="dynaspec: history.jsonl; jepsen: a Jepsen register history (EDN: "
                   "read, write, cas with :invoke, :ok, :fail, :info).")
@click.option("--max-states", type=click.IntRange(1), default=DEFAULT_MAX_STATES,
              show_default=True,
              help="Search budget per key: configurations explored before the key is "
                   "undecided.")
@click.option("--partial-ok", is_flag=True,
              help="Accept undecided keys (still reported): exit 0 instead of 2.")
@click.option("--no-shrink", is_flag=True,
              help="Report a violating key's whole history, not a minimal sub-history.")
def check_history_cmd(file: Path, fmt: str, max_states: int, partial_ok: bool,
                      no_shrink: bool) -> None:
    """Check a client history alone: linearizability of strong operations, eventual
    reads within it (conformance/linearizability/SEMANTICS.md).

    Exit codes: 0 every key ok; 1 a violation; 2 bad input, or a key undecided within
    --max-states (unless --partial-ok)."""
    if not file.is_file():
        _fail(f"{file}:0: no such file")
    try:
        records = load_jepsen(file) if fmt == "jepsen" else load_history(file)
    except HistoryFormatError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"{file}:0: {exc.strerror or exc}")
    line_of = _lines(file, records, fmt)
    t = time.perf_counter()
    rep = check_history(records, max_states=max_states, shrink=not no_shrink)
    seconds = time.perf_counter() - t
    click.echo(f"{rep.summary()} in {seconds:.2f} s")
    for v in rep.violations:
        where = ", ".join(line_of.get(r.id, r.id) for r in v.history[:8])
        click.echo(f"  violation: {v.explanation}")
        click.echo(f"    minimal sub-history: {where}")
    for ev in rep.eventual_violations:
        click.echo(f"  eventual-read violation ({line_of.get(ev.record.id, ev.record.id)}): "
                   f"{ev.explanation}")
    if rep.violations or rep.eventual_violations:
        sys.exit(EXIT_VIOLATION)
    if rep.unknown_keys:
        keys = ", ".join(_show_key(k) for k in rep.unknown_keys[:5])
        note = (f"{len(rep.unknown_keys)} key(s) undecided within the search budget of "
                f"{max_states:,} states per key ({keys}); raise it with --max-states")
        if not partial_ok:
            _fail(f"only part of the input was checked: {note}; pass --partial-ok to accept "
                  f"a partial check")
        click.echo(f"note: a partial check, accepted by --partial-ok: {note}")
    sys.exit(EXIT_OK)


def _lines(file: Path, records: list[HistoryRecord], fmt: str) -> dict[str, str]:
    """Request id -> ``file:line``: history.jsonl has one record per line, in order; a
    Jepsen operation is named by the line of its invocation."""
    if fmt == "jepsen":
        return {r.id: f"{file}:{r.invoke_us}" for r in records}
    return {r.id: f"{file}:{n}" for n, r in enumerate(records, start=1)}
