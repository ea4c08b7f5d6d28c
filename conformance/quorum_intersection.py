"""Quorum intersection, proved with Z3.

``prove_quorum_intersection``: any two quorums of any membership configuration
intersect in a member, for a symbolic number of members of each kind and, with
bit-vectors, for every explicit configuration up to a size.  The rule is a parameter
(``majority_quorum``, the spec's ``IsQuorum``, and others), so rules for log replicas
can be checked the same way; ``rule_holds`` evaluates a rule on concrete counts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import z3

from conformance.lease_theorem import ProofResult
from conformance.z3_util import Z3Expr, _is_sat

__all__ = [
    "QuorumCounts",
    "QuorumRule",
    "half_rounded_down_quorum",
    "majority_quorum",
    "prove_quorum_intersection",
    "rule_holds",
    "storage_majority_quorum",
    "storage_write_quorum",
]


@dataclass(frozen=True, slots=True)
class QuorumCounts:
    """What a quorum rule may look at: member counts per kind (Z3 integer terms).

    Rules are symmetric in replica identities (they see counts, not names), which is
    what lets one rule be proved for a symbolic number of members.  Non-members
    (kind ``"none"``) never count, as in the spec's ``IsQuorum``.  The counts are
    Z3 integers in the symbolic proof and small non-negative bit-vectors in the
    explicit one, so a rule should use only ``+``, ``*``, ``/`` by constants,
    comparisons and ``z3.And``/``Or``/``Not``, which mean the same on both.
    """

    storage: Z3Expr     # storage members of the configuration
    log: Z3Expr         # log members
    in_storage: Z3Expr  # storage members in the candidate quorum
    in_log: Z3Expr      # log members in the candidate quorum

    @property
    def members(self) -> Z3Expr:
        return self.storage + self.log

    @property
    def in_members(self) -> Z3Expr:
        return self.in_storage + self.in_log


QuorumRule: TypeAlias = Callable[[QuorumCounts], Z3Expr]


def majority_quorum(c: QuorumCounts) -> Z3Expr:
    """The spec's ``IsQuorum`` and ``Replica.is_quorum``: a strict majority of all
    members, whatever their kind."""
    return 2 * c.in_members > c.members


def half_rounded_down_quorum(c: QuorumCounts) -> Z3Expr:
    """A deliberately broken rule: half the members, rounded down."""
    return c.in_members >= c.members / 2  # integer division on Z3 Ints


def storage_write_quorum(c: QuorumCounts) -> Z3Expr:
    """A possible rule once log replicas exist: a majority that includes at least one
    storage replica (so every acknowledged write reaches a B-tree)."""
    return z3.And(majority_quorum(c), c.in_storage >= 1)


def storage_majority_quorum(c: QuorumCounts) -> Z3Expr:
    """A majority of all members that is also a majority of the storage replicas."""
    return z3.And(majority_quorum(c), 2 * c.in_storage > c.storage)


def rule_holds(rule: QuorumRule, storage: int, log: int, in_storage: int, in_log: int) -> bool:
    """Evaluate ``rule`` on concrete counts (e.g. to compare it with the implementation)."""
    c = QuorumCounts(z3.IntVal(storage), z3.IntVal(log), z3.IntVal(in_storage), z3.IntVal(in_log))
    return bool(z3.is_true(z3.simplify(rule(c))))


def _names(mask: int, width: int) -> list[str]:
    return [f"r{i + 1}" for i in range(width) if mask >> i & 1]


def prove_quorum_intersection(max_members: int | None = None, *,
                              quorum_rule: QuorumRule = majority_quorum,
                              other_quorum_rule: QuorumRule | None = None,
                              need: Literal["member", "storage"] = "member") -> ProofResult:
    """Prove that every quorum of ``quorum_rule`` and every quorum of
    ``other_quorum_rule`` (default: the same rule) share a member (``need="member"``)
    or a storage replica (``need="storage"``), in every membership configuration.

    Two proofs:

    * symbolic: for any numbers of storage and log members (cardinality reasoning over
      the regions of a Venn diagram, in linear integer arithmetic), so for every group
      size at once;
    * explicit: for every configuration of 1..``max_members`` replicas (default 9, the
      largest group ``SimConfig`` builds), each replica ``storage``, ``log`` or
      ``none``, and every pair of groups of members, as bit-vectors (one query per
      size covers all ``3**n`` configurations and ``4**n`` pairs of groups).

    A configuration has at least one member (with none there is nothing to agree on).

    With two rules this states what a future rule needs, e.g. write quorums
    (``storage_write_quorum``) against recovery quorums (``majority_quorum``).
    """
    t0 = time.perf_counter()
    other = quorum_rule if other_quorum_rule is None else other_quorum_rule
    size = 9 if max_members is None else max_members
    if size < 0:
        raise ValueError("max_members must be >= 0")
    kinds = ("storage", "log")
    need_kinds = kinds if need == "member" else ("storage",)
    if need not in ("member", "storage"):
        raise ValueError("need must be 'member' or 'storage'")

    # symbolic: regions per kind: only in A, only in B, in both, in neither
    s = z3.Solver()
    reg = {(k, r): z3.Int(f"{k}_{r}") for k in kinds for r in ("A", "B", "AB", "none")}
    s.add(*[x >= 0 for x in reg.values()])
    tot = {k: reg[k, "A"] + reg[k, "B"] + reg[k, "AB"] + reg[k, "none"] for k in kinds}
    qa = QuorumCounts(tot["storage"], tot["log"], reg["storage", "A"] + reg["storage", "AB"],
                      reg["log", "A"] + reg["log", "AB"])
    qb = QuorumCounts(tot["storage"], tot["log"], reg["storage", "B"] + reg["storage", "AB"],
                      reg["log", "B"] + reg["log", "AB"])
    s.add(tot["storage"] + tot["log"] >= 1)  # a configuration has at least one member
    s.add(quorum_rule(qa), other(qb), z3.Sum([reg[k, "AB"] for k in need_kinds]) == 0)
    symbolic_cex: dict[str, Any] | None = None
    if _is_sat(s):
        m = s.model()
        symbolic_cex = {f"{k}.{r}": int(m.eval(x, model_completion=True).as_long())
                        for (k, r), x in reg.items()}

    # explicit: bit-vectors, one query per group size.  Counts are bit-vectors too (wide
    # enough that the rules' arithmetic cannot overflow), so the query stays in
    # bit-vector logic.
    explicit_cex: dict[str, Any] | None = None
    for n in range(1, size + 1):
        cw = n.bit_length() + 4
        bs, bl, ba, bb = (z3.BitVec(f"{x}{n}", n) for x in ("storage", "log", "A", "B"))
        members = bs | bl

        def pop(x: Z3Expr, n: int = n, cw: int = cw) -> Z3Expr:
            return z3.Sum([z3.ZeroExt(cw - 1, z3.Extract(i, i, x)) for i in range(n)])

        s = z3.Solver()
        s.add(bs & bl == 0, ba & ~members == 0, bb & ~members == 0)
        ps, pl = pop(bs), pop(bl)
        s.add(quorum_rule(QuorumCounts(ps, pl, pop(ba & bs), pop(ba & bl))))
        s.add(other(QuorumCounts(ps, pl, pop(bb & bs), pop(bb & bl))))
        s.add(members != 0)  # a configuration has at least one member
        s.add(ba & bb & (members if need == "member" else bs) == 0)
        if explicit_cex is None and not _is_sat(s):
            continue
        model = s.model() if explicit_cex is None else None
        # A counterexample exists.  Prefer one whose two quorums are non-empty (it reads
        # better), looking at larger sizes for one if need be.
        s.add(ba != 0, bb != 0)
        if _is_sat(s):
            model = s.model()
        if model is not None:
            val = {x: int(model.eval(x, model_completion=True).as_long())
                   for x in (bs, bl, ba, bb)}
            explicit_cex = {
                "kinds": {f"r{i + 1}": ("storage" if val[bs] >> i & 1 else
                                        "log" if val[bl] >> i & 1 else "none")
                          for i in range(n)},
                "A": _names(val[ba], n), "B": _names(val[bb], n)}
            if val[ba] and val[bb]:
                break
    seconds = time.perf_counter() - t0
    what = "a member" if need == "member" else "a storage replica"
    rules = (quorum_rule.__name__ if other_quorum_rule is None
             else f"{quorum_rule.__name__} and {other.__name__}")
    if symbolic_cex is None and explicit_cex is None:
        return ProofResult(True, f"any two quorums ({rules}) share {what}: proved for any number"
                           f" of storage and log members, and checked for every configuration of"
                           f" up to {size} replicas", None, seconds)
    cex: dict[str, Any] = {}
    if explicit_cex is not None:
        cex.update(explicit_cex)
        where = (f"with kinds {explicit_cex['kinds']}, groups {explicit_cex['A']} and"
                 f" {explicit_cex['B']} are both quorums and share no {what[2:]}")
    else:
        where = f"not for all sizes (symbolic counterexample {symbolic_cex}); holds up to {size}"
    if symbolic_cex is not None:
        cex["symbolic"] = symbolic_cex
    return ProofResult(False, f"quorums ({rules}) need not share {what}: {where}", cex, seconds)
