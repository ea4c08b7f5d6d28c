"""Types shared by ``tlc_runner`` (which builds them from TLC's output) and ``tlc_trace``
(which prints them).  They live here so that ``tlc_trace`` need not import ``tlc_runner``,
which imports ``tlc_trace``: no import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["TraceStep"]


@dataclass(frozen=True)
class TraceStep:
    """One state of a counterexample.

    ``index`` is TLC's 1-based state number. A liveness counterexample ends either with a
    ``stuttering`` step (the last state repeats forever; ``state`` is that state again) or a
    step with ``back_to_state = N`` (the action leads back to state N; ``state`` is state N).
    ``raw`` is the state text exactly as TLC printed it.
    """

    index: int
    action: str | None
    location: str | None
    state: dict[str, Any]
    stuttering: bool = False
    back_to_state: int | None = None
    raw: str = ""

    @property
    def is_loop(self) -> bool:
        return self.stuttering or self.back_to_state is not None
