"""Exit codes and the error for unusable input, shared by every ``dynaspec`` command.

The rules (traces/FORMAT.md, "Bad input and exit codes"): bad input is one line,
``path:line: reason``, never a traceback; line 0 means the file (or directory) as a
whole. A check that covered only part of its input says so and, unless the user
passed ``--partial-ok``, exits ``EXIT_INPUT``: an unchecked part is not a pass.
"""

from __future__ import annotations

EXIT_OK = 0
"""Everything was checked and nothing is wrong."""
EXIT_VIOLATION = 1
"""A checker found a violation (the implementation, or the run it traced, is wrong)."""
EXIT_INPUT = 2
"""Unusable input or arguments, or input left (partly) unchecked without --partial-ok."""
EXIT_INTERNAL = 3
"""A bug in dynaspec: one line on stderr, the traceback saved to a file it names."""


class InputError(ValueError):
    """Unusable input; the message is one line, ``path:line: reason``."""


def one_line(text: str) -> str:
    """``text`` on one line (an error line must be one line, whatever a library wrote)."""
    return " ".join(text.split())


__all__ = ["EXIT_INPUT", "EXIT_INTERNAL", "EXIT_OK", "EXIT_VIOLATION", "InputError", "one_line"]
