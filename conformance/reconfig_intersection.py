"""Quorum intersection across membership changes, proved with Z3.

``prove_change_intersection``: every quorum of a configuration C and every quorum of a
configuration C' at most ``steps`` single membership changes away share a replica.
With one change at a time (``steps=1``) majority quorums always do, which is why the
group changes its membership one replica at a time; with two changes in flight they
need not (``{r1} -> {r1, r2} -> {r2}``, or Ongaro's ``{1,2,3} -> {1,2,3,4,5}``), and
``steps=2`` returns such a counterexample.  ``concrete_changes`` lists the single
changes of a concrete configuration, for checks that do not use Z3.

Single changes (a replica's kind is ``"storage"``, ``"log"`` or ``"none"``, i.e. not a
member): ``add_log`` (none -> log), ``add_storage`` (none -> storage), ``remove``
(storage or log -> none), ``promote`` (log -> storage) and, only if asked for,
``demote`` (storage -> log).  Replacing a replica by a new incarnation is two changes
(add the new one, then remove the old one).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from typing import Any

import z3

from conformance.lease_theorem import ProofResult
from conformance.quorum_intersection import QuorumCounts, QuorumRule, majority_quorum
from conformance.z3_util import Z3Expr, _is_sat

__all__ = [
    "CHANGES",
    "DEFAULT_CHANGES",
    "concrete_changes",
    "prove_change_intersection",
]

# Each single change, as the (kind before, kind after) moves of the one replica it touches.
_MOVES: dict[str, tuple[tuple[str, str], ...]] = {
    "add_log": (("none", "log"),),
    "add_storage": (("none", "storage"),),
    "remove": (("log", "none"), ("storage", "none")),
    "promote": (("log", "storage"),),
    "demote": (("storage", "log"),),
}
CHANGES: frozenset[str] = frozenset(_MOVES)
"""Every kind of single change ``prove_change_intersection`` knows."""
DEFAULT_CHANGES: frozenset[str] = frozenset({"add_log", "add_storage", "remove", "promote"})
"""The default: every change but demotion, which a design may or may not permit."""

_KINDS = ("none", "log", "storage")
_CODE = {k: i for i, k in enumerate(_KINDS)}  # kind codes in the symbolic proof


def _allowed_moves(changes: frozenset[str]) -> set[tuple[str, str]]:
    unknown = set(changes) - CHANGES
    if unknown:
        raise ValueError(f"unknown changes {sorted(unknown)}; known: {sorted(CHANGES)}")
    return {mv for c in changes for mv in _MOVES[c]}


def concrete_changes(config: Mapping[str, str], *,
                     changes: frozenset[str] = DEFAULT_CHANGES) -> list[dict[str, str]]:
    """Every configuration one single change (of the kinds in ``changes``) away from
    ``config`` (replica -> ``"storage"``/``"log"``/``"none"``).

    Only replicas named in ``config`` can be added (its ``"none"`` entries), so the
    caller picks the universe.  Changes that leave no member are listed too: whether
    such a configuration is allowed is the caller's rule (``prove_change_intersection``
    does not allow it).  No Z3, so a test can check the proof by brute force.
    """
    moves = _allowed_moves(changes)
    out: list[dict[str, str]] = []
    for r, kind in config.items():
        if kind not in _CODE:
            raise ValueError(f"replica {r!r} has unknown kind {kind!r}")
        for before, after in sorted(moves):
            if before == kind:
                out.append({**config, r: after})
    return out


def _describe(replica: str, before: str, after: str) -> str:
    if before == "none":
        return f"add {replica} as {after}"
    if after == "none":
        return f"remove {replica} ({before})"
    return f"{'promote' if after == 'storage' else 'demote'} {replica} to {after}"


def _symbolic(rule: QuorumRule, moves: set[tuple[str, str]], steps: int) -> dict[str, Any] | None:
    """A counterexample for any number of replicas, or None if there is none.

    At most ``steps`` replicas change (the "slots"); every other replica keeps its kind
    and is counted per kind in the four regions of the Venn diagram of the two groups
    (only A, only B, both, neither).  Each slot has a kind at each of the ``steps + 1``
    configurations and at most one slot moves per step, by an allowed move.  This
    describes every path of ``steps`` changes exactly, in linear integer arithmetic.
    """
    s = z3.Solver()
    regions = ("A", "B", "AB", "none")
    reg = {(k, g): z3.Int(f"u_{k}_{g}") for k in ("storage", "log") for g in regions}
    s.add(*[x >= 0 for x in reg.values()])
    kind = [[z3.Int(f"slot{j}_t{t}") for t in range(steps + 1)] for j in range(steps)]
    in_a = [z3.Bool(f"slot{j}_in_A") for j in range(steps)]
    in_b = [z3.Bool(f"slot{j}_in_B") for j in range(steps)]
    s.add(*[z3.And(x >= 0, x <= 2) for row in kind for x in row])
    for t in range(steps):
        s.add(z3.Sum([z3.If(row[t] != row[t + 1], 1, 0) for row in kind]) <= 1)
        for row in kind:
            s.add(z3.Or(row[t] == row[t + 1],
                        *[z3.And(row[t] == _CODE[b], row[t + 1] == _CODE[a]) for b, a in moves]))
    for j in range(steps):  # groups hold members of their own configuration only
        s.add(z3.Implies(in_a[j], kind[j][0] != 0), z3.Implies(in_b[j], kind[j][steps] != 0))
        s.add(z3.Not(z3.And(in_a[j], in_b[j])))  # the groups share no changed replica...
    s.add(reg["storage", "AB"] == 0, reg["log", "AB"] == 0)  # ...and no unchanged one

    def count(k: str, t: int, group: str | None = None) -> Z3Expr:
        """Members of kind k in configuration t (in group "A" or "B" if given)."""
        code = _CODE[k]
        if group is None:
            base = z3.Sum([reg[k, g] for g in regions])
            extra = [z3.If(row[t] == code, 1, 0) for row in kind]
        else:
            base = reg[k, group] + reg[k, "AB"]
            extra = [z3.If(z3.And(g, row[t] == code), 1, 0)
                     for row, g in zip(kind, in_a if group == "A" else in_b, strict=True)]
        return z3.Sum([base, *extra])

    for t in range(steps + 1):  # every configuration on the way has a member
        s.add(count("storage", t) + count("log", t) >= 1)
    s.add(rule(QuorumCounts(count("storage", 0), count("log", 0),
                            count("storage", 0, "A"), count("log", 0, "A"))))
    s.add(rule(QuorumCounts(count("storage", steps), count("log", steps),
                            count("storage", steps, "B"), count("log", steps, "B"))))
    if not _is_sat(s):
        return None
    m = s.model()

    def val(x: Z3Expr) -> Any:
        v = m.eval(x, model_completion=True)
        return bool(z3.is_true(v)) if z3.is_bool(v) else int(v.as_long())

    return {
        "unchanged": {f"{k}.{g}": val(x) for (k, g), x in reg.items()},
        "changed": [{"kinds": [_KINDS[val(x)] for x in row], "in_A": val(a), "in_B": val(b)}
                    for row, a, b in zip(kind, in_a, in_b, strict=True)],
    }


def _explicit(rule: QuorumRule, moves: set[tuple[str, str]], steps: int,
              size: int) -> dict[str, Any] | None:
    """A counterexample with at most ``size`` replicas, or None: one bit-vector query
    per number of replicas n, bit i of each vector standing for replica ``r{i+1}``.

    Configuration t is the pair of vectors (storage, log); groups A and B are vectors
    too.  A step changes at most one replica (the changed bits are 0 or a power of two)
    and only by an allowed move (the mask of each disallowed move is 0).
    """
    found: dict[str, Any] | None = None
    for n in range(1, size + 1):
        cw = n.bit_length() + 4  # counts: wide enough that rules cannot overflow

        def pop(x: Z3Expr, n: int = n, cw: int = cw) -> Z3Expr:
            return z3.Sum([z3.ZeroExt(cw - 1, z3.Extract(i, i, x)) for i in range(n)])

        st = [z3.BitVec(f"storage{n}_t{t}", n) for t in range(steps + 1)]
        lg = [z3.BitVec(f"log{n}_t{t}", n) for t in range(steps + 1)]
        mem = [a | b for a, b in zip(st, lg, strict=True)]
        ba, bb = z3.BitVec(f"A{n}", n), z3.BitVec(f"B{n}", n)
        s = z3.Solver()
        for t in range(steps + 1):
            s.add(st[t] & lg[t] == 0, mem[t] != 0)
        for t in range(steps):
            d = (st[t] ^ st[t + 1]) | (lg[t] ^ lg[t + 1])
            s.add(d & (d - 1) == 0)
            bits = {"none": [~mem[t], ~mem[t + 1]], "log": [lg[t], lg[t + 1]],
                    "storage": [st[t], st[t + 1]]}
            for b in _KINDS:
                for a in _KINDS:
                    if a != b and (b, a) not in moves:
                        s.add(bits[b][0] & bits[a][1] == 0)
        last = steps
        s.add(ba & ~mem[0] == 0, bb & ~mem[last] == 0)
        s.add(rule(QuorumCounts(pop(st[0]), pop(lg[0]), pop(ba & st[0]), pop(ba & lg[0]))))
        s.add(rule(QuorumCounts(pop(st[last]), pop(lg[last]),
                                pop(bb & st[last]), pop(bb & lg[last]))))
        s.add(ba & bb == 0)  # both are within the members, so: no member of both in common
        if found is None and not _is_sat(s):
            continue
        model = s.model() if found is None else None
        # A counterexample exists.  Prefer one that reads well: non-empty groups and a
        # configuration that really changed, looking at larger sizes for one if need be.
        s.add(ba != 0, bb != 0, z3.Or(st[0] != st[last], lg[0] != lg[last]))
        best = _is_sat(s)
        if best:
            model = s.model()
        if model is not None:
            found = _read(model, n, st, lg, ba, bb)
        if best:
            break
    return found


def _read(model: Any, n: int, st: list[Z3Expr], lg: list[Z3Expr], ba: Z3Expr,
          bb: Z3Expr) -> dict[str, Any]:
    def v(x: Z3Expr) -> int:
        return int(model.eval(x, model_completion=True).as_long())

    names = [f"r{i + 1}" for i in range(n)]
    path = [{r: ("storage" if v(s) >> i & 1 else "log" if v(lo) >> i & 1 else "none")
             for i, r in enumerate(names)} for s, lo in zip(st, lg, strict=True)]
    changes = [_describe(r, a[r], b[r]) for a, b in itertools.pairwise(path)
               for r in names if a[r] != b[r]]
    distinct = [c for i, c in enumerate(path) if i == 0 or c != path[i - 1]]
    return {"before": path[0], "after": path[-1], "path": distinct, "changes": changes,
            "A": [r for i, r in enumerate(names) if v(ba) >> i & 1],
            "B": [r for i, r in enumerate(names) if v(bb) >> i & 1]}


def prove_change_intersection(max_members: int = 9, *,
                              quorum_rule: QuorumRule = majority_quorum,
                              changes: frozenset[str] = DEFAULT_CHANGES,
                              steps: int = 1, symbolic: bool = True) -> ProofResult:
    """Prove that for every configuration C and every configuration C' reachable from
    C by at most ``steps`` single changes of the kinds in ``changes``, every quorum of
    C and every quorum of C' (``quorum_rule``, each over its own configuration's
    members) share a replica that is a member of both C and C'.

    Why: a decision made by a quorum of C (a chosen value, a lease grant) must be seen
    by whoever later assembles a quorum of C', and only a replica in both carries it.
    At most (not exactly) ``steps`` changes, so ``steps=0`` is
    ``prove_quorum_intersection`` and ``steps=1`` covers C' = C too.  Every
    configuration on the way, C and C' included, has at least one member.

    "Share": the common replica must be a member of both configurations; a member of C
    that the change removes does not count, since C''s quorum does not count its vote
    (a leader of C' need never hear from it).  Its kind may differ (promote, demote):
    it is the same process, with the same knowledge.  The verdict is the same under
    the looser readings ("any replica in both groups", "a member of C in both"):
    a rule sees only member counts, so a group and its members are quorums together,
    and two quorums that shared only a replica not a member of both would, without
    it, be two disjoint quorums.  So groups are taken within the members.

    Two proofs, as in ``prove_quorum_intersection``:

    * symbolic (``symbolic=True``): for any number of replicas, counting the unchanged
      members per kind in the regions of a Venn diagram of the two groups and following
      the at most ``steps`` replicas that change (linear integer arithmetic);
    * explicit: for every configuration of 1..``max_members`` replicas, every path of
      at most ``steps`` changes and every pair of groups, as bit-vectors, one query per size.

    A failure has ``counterexample`` with ``before`` and ``after`` (replica -> kind),
    ``path`` (the distinct configurations from C to C'), ``changes`` (in words) and the
    disjoint quorums ``A`` (of C) and ``B`` (of C'), from the explicit proof if it
    found one; and ``symbolic`` (region counts and changed replicas) if that one failed.
    """
    t0 = time.perf_counter()
    if max_members < 0:
        raise ValueError("max_members must be >= 0")
    if steps < 0:
        raise ValueError("steps must be >= 0")
    moves = _allowed_moves(changes)
    symbolic_cex = _symbolic(quorum_rule, moves, steps) if symbolic else None
    explicit_cex = _explicit(quorum_rule, moves, steps, max_members)
    seconds = time.perf_counter() - t0
    rule = quorum_rule.__name__
    allowed = ", ".join(sorted(changes)) or "no changes"
    apart = f"at most {steps} change{'' if steps == 1 else 's'} ({allowed}) apart"
    if symbolic_cex is None and explicit_cex is None:
        scope = "for any number of replicas, and checked " if symbolic else ""
        return ProofResult(True, f"quorums ({rule}) of configurations {apart} share a member"
                           f" of both: proved {scope}for every configuration of up to"
                           f" {max_members} replicas", None, seconds)
    cex: dict[str, Any] = {}
    if explicit_cex is not None:
        cex.update(explicit_cex)
        via = "; ".join(explicit_cex["changes"])
        where = (f"{explicit_cex['before']} -> {explicit_cex['after']} ({via}):"
                 f" {explicit_cex['A']} is a quorum before and {explicit_cex['B']} after,"
                 f" and they share no replica")
    else:
        where = (f"not for all sizes (symbolic counterexample {symbolic_cex});"
                 f" holds up to {max_members} replicas")
    if symbolic_cex is not None:
        cex["symbolic"] = symbolic_cex
    return ProofResult(False, f"quorums ({rule}) of configurations {apart} need not share a"
                       f" member: {where}", cex, seconds)
