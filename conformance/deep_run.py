"""The deep profile for a long time: ``python -m conformance.deep_run --minutes 60``.

Runs the Hypothesis state machine (conformance/stateful.py) in batches under the
``deep`` profile (longer rule sequences) with fresh random seeds until the time is
up, printing one line per batch. Exits 1 with the shrunk failing example on the
first failure, 0 if none was found.
"""

from __future__ import annotations

import argparse
import sys
import time

from hypothesis.stateful import run_state_machine_as_test

from conformance.stateful import EVENT_COUNTS, PROFILES, ReplicationMachine


class _Counted(ReplicationMachine):
    examples = 0

    def __init__(self) -> None:
        super().__init__()
        type(self).examples += 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    args = ap.parse_args(argv)
    if args.minutes <= 0:
        ap.error("--minutes must be positive")
    deadline = time.monotonic() + args.minutes * 60
    started = time.monotonic()
    batch = 0
    while time.monotonic() < deadline:
        batch += 1
        try:
            run_state_machine_as_test(_Counted, settings=PROFILES["deep"])
        except Exception as exc:  # the failure is the result: show it and stop
            print(f"batch {batch}: FAILED after {_Counted.examples} examples, "
                  f"{time.monotonic() - started:.0f}s", flush=True)
            print(exc, flush=True)
            # Hypothesis attaches the failing steps (and its @seed line) as notes.
            for note in getattr(exc, "__notes__", ()):
                print(note, flush=True)
            return 1
        print(f"batch {batch}: ok, {_Counted.examples} examples so far, "
              f"{time.monotonic() - started:.0f}s", flush=True)
    print(f"deep profile: {_Counted.examples} examples in {batch} batches, "
          f"{time.monotonic() - started:.0f}s, no failure", flush=True)
    for name, n in sorted(EVENT_COUNTS.items()):
        print(f"  {n:8d}  {name}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
