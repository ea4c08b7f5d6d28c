"""Command-line parameter types shared by the ``dynaspec`` commands (cli.py, cli_fleet.py)."""

from __future__ import annotations

from typing import ClassVar

import click


class Duration(click.ParamType):  # type: ignore[type-arg]
    """A simulated duration: ``30s``, ``500ms``, ``2m`` or plain seconds; in microseconds."""

    name = "duration"
    _UNITS: ClassVar[dict[str, int]] = {"us": 1, "ms": 1_000, "s": 1_000_000, "m": 60_000_000}

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().lower()
        unit = next((u for u in ("us", "ms", "s", "m") if text.endswith(u)), "")
        try:
            us = round(float(text[: len(text) - len(unit)]) * self._UNITS.get(unit, 1_000_000))
        except ValueError:
            self.fail(f"{value!r} is not a duration (e.g. 30s, 500ms, 2m)", param, ctx)
        if us <= 0:
            self.fail(f"{value!r} must be positive", param, ctx)
        return us
