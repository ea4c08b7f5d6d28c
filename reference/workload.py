"""The simulated clients' workload: closed-loop logical clients on a small key space.

Every item is ``{pk, val, w, n}``: ``w`` is the request id of the write that
produced it, so any value read names the write it came from, and conditional
updates and deletes check ``w`` against the last writer the client saw (a
version check with unique versions). ``n`` counts updates.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from reference.client import Client, HistoryRecord
from reference.messages import ReadResult
from reference.simulator import Simulator
from reference.storage import (
    AddNumber,
    Applied,
    AttributeNotExists,
    Compare,
    Condition,
    ConditionalCheckFailed,
    Delete,
    Key,
    M,
    N,
    Put,
    S,
    SetAttr,
    Update,
)


@dataclass(frozen=True, slots=True)
class WorkloadConfig:
    keys: int = 16
    value_size: int = 32
    read_fraction: float = 0.5
    consistent_fraction: float = 0.5
    think_us: int = 2_000
    """Mean pause between one operation's completion and the client's next."""

    def __post_init__(self) -> None:
        if self.keys < 1:
            raise ValueError("keys must be >= 1")
        if self.value_size < 0:
            raise ValueError("value size must be >= 0")
        for name in ("read_fraction", "consistent_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]")
        if self.think_us < 0:
            raise ValueError("think time must be >= 0")


_N0, _N1 = N(0), N(1)  # immutable: shared by every operation


def key_name(i: int) -> str:
    return f"k{i:04d}"


class Workload:
    """Drives each client in a closed loop until ``stop_us``."""

    def __init__(self, sim: Simulator, clients: list[Client], rng: random.Random,
                 config: WorkloadConfig, stop_us: int) -> None:
        self.sim = sim
        self.clients = clients
        self.rng = rng
        self.config = config
        self.stop_us = stop_us
        self._seen: dict[tuple[str, str], str | None] = {}
        self._keys: dict[int, tuple[str, Key]] = {}
        """Key index -> (name, key), built once per key (both immutable)."""

    def start(self) -> None:
        for c in self.clients:
            self.sim.schedule(self._think(), self._next, c)

    def _think(self) -> int:
        mean = self.config.think_us
        return int(self.rng.expovariate(1.0 / mean)) if mean else 0

    def _next(self, c: Client) -> None:
        if self.sim.now >= self.stop_us:
            return
        cfg, rng = self.config, self.rng
        i = rng.randrange(cfg.keys)
        named = self._keys.get(i)
        if named is None:
            named = self._keys[i] = (key_name(i), Key(S(key_name(i))))
        name, key = named

        def done(rec: HistoryRecord) -> None:
            self._observe(c.name, name, rec)
            self.sim.schedule(self._think(), self._next, c)

        if rng.random() < cfg.read_fraction:
            c.get(key, rng.random() < cfg.consistent_fraction, done)
            return
        value = S(format(rng.getrandbits(4 * cfg.value_size), f"0{cfg.value_size}x")
                  if cfg.value_size else "")
        seen = self._seen.get((c.name, name))
        cond: Condition = Compare("w", "=", S(seen)) if seen else AttributeNotExists("pk")
        roll = rng.random()
        if roll < 0.5:
            c.write("put", key, lambda rid: Put(M(pk=key.partition, val=value, w=S(rid), n=_N0)),
                    done)
        elif roll < 0.85:
            c.write("update", key, lambda rid: Update(
                key, (SetAttr("val", value), SetAttr("w", S(rid)), AddNumber("n", _N1)), cond),
                done)
        else:
            c.write("delete", key, lambda rid: Delete(key, cond if roll < 0.92 else None), done)

    def _observe(self, client: str, name: str, rec: HistoryRecord) -> None:
        """Remember the last writer of the key this client saw, for version checks."""
        r = rec.result
        item: M | None
        if isinstance(r, ReadResult):
            item = r.item
        elif isinstance(r, Applied):
            item = r.new
        elif isinstance(r, ConditionalCheckFailed):
            item = r.current
        else:
            return
        w = item.get("w") if item is not None else None
        self._seen[(client, name)] = w.value if isinstance(w, S) else None
