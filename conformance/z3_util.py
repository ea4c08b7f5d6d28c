"""Helpers shared by the Z3 checks (``lease_theorem``, ``quorum_intersection``,
``trace_leases``): read exact values out of a model, ask a solver, print times."""

from __future__ import annotations

from fractions import Fraction
from typing import Any, TypeAlias

import z3

Z3Expr: TypeAlias = Any  # z3 ships no type information


def _fraction(model: Any, expr: Z3Expr) -> Fraction:
    v = model.eval(expr, model_completion=True)
    # One call for the numeral's text ("p/q" or "p"), not the four of numerator_as_long()
    # and denominator_as_long(): the fleet read check reads thousands per model.
    return Fraction(z3.Z3_get_numeral_string(v.ctx_ref(), v.as_ast()))


def _is_sat(solver: Any) -> bool:
    r = solver.check()
    if r == z3.unknown:
        raise RuntimeError(f"z3 returned unknown: {solver.reason_unknown()}")
    return bool(r == z3.sat)


def _num(x: Fraction | int) -> str:
    """A time for people: an integer when it is one, else one decimal."""
    x = Fraction(x)
    if x.denominator == 1:
        return str(x.numerator)
    return f"{float(x):.1f}"


def check3(solver: Any) -> str:
    """``sat``, ``unsat`` or ``unknown`` (a timeout or a resource limit): unlike
    ``_is_sat``, an undecided query is an answer, not an error."""
    r = solver.check()
    if r == z3.sat:
        return "sat"
    if r == z3.unsat:
        return "unsat"
    return "unknown"
