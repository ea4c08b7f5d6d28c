"""``timeline.png``: a run's timeline, drawn from the files ``dynaspec simulate`` wrote.

One row per replica: its role over time (follower, candidate, leader) from the
``post.role`` of its trace lines, with a thin bar under it while it could serve
strong reads (its lease held, not relinquished: ``summary.json`` ``strong_reads``),
and markers for the environment's faults: a directed link going down or up
(LinkDown/LinkUp, on the sender's row), crashes and restarts, and handoffs
(LeaseRelinquish); slow links (``fault_log``) are shaded on the sender's row. The
bottom row is availability per interval (100 ms by default): the fraction of each
interval during which some replica could serve a strong read.

The model (reference/replica.py), the checkers (conformance/) and this picture are
separate (the porcupine idea): this module reads the run's output files only, never
the simulator. It is cheap on long runs: trace lines are scanned as bytes, and only
the few that change a role or mark a fault are decoded. Deterministic: the Agg
backend and no timestamp or software version in the PNG's metadata.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from reference.summary import union_windows

ROLES = (b"follower", b"candidate", b"leader")
ROLE_COLOURS = {"follower": "#d9d9d9", "candidate": "#f4a261", "leader": "#2a6f97"}
MARKERS: dict[str, tuple[str, str, str]] = {
    # action -> (marker, colour, legend label)
    "LinkDown": ("v", "#c1121f", "link down (from this replica)"),
    "LinkUp": ("^", "#2d6a4f", "link up"),
    "Crash": ("X", "black", "crash"),
    "Restart": ("o", "black", "restart"),
    "LeaseRelinquish": ("*", "#7b2cbf", "handoff (lease relinquished)"),
}
_MARKED = tuple(f'{{"action":"{a}"'.encode() for a in MARKERS)


@dataclass(slots=True)
class ReplicaTimeline:
    roles: list[tuple[int, int, str]] = field(default_factory=list)
    """(start, end, role) spans in simulated us."""
    marks: list[tuple[int, str]] = field(default_factory=list)
    """(time, action) of fault markers."""


def read_trace(path: Path, end_us: int) -> ReplicaTimeline:
    """Role spans and fault markers of one replica's trace file."""
    tl = ReplicaTimeline()
    role, since = "follower", 0
    role_tag = b'"role":"follower"'
    with path.open("rb") as f:
        for line in f:
            marked = line.startswith(_MARKED)
            if role_tag in line and not marked:
                continue  # the common case: same role, nothing to mark
            ev = orjson.loads(line)
            t = ev.get("real") or 0
            action = ev["action"]
            if action in MARKERS:
                tl.marks.append((t, action))
            post = ev.get("post")
            new = post["role"] if post else role
            if action == "Crash":
                new = "down"
            if new != role:
                if t > since:
                    tl.roles.append((since, t, role))
                role, since = new, t
                role_tag = f'"role":"{role}"'.encode()
    if end_us > since:
        tl.roles.append((since, end_us, role))
    tl.roles = [s for s in tl.roles if s[2] != "down"]
    return tl


def availability(serving: Iterable[tuple[int, int]], end_us: int,
                 interval_us: int) -> list[float]:
    """Per interval of [0, end), the fraction some window of ``serving`` covers."""
    n = max(1, -(-end_us // interval_us))
    covered = [0] * n
    for a, b in union_windows(serving):
        i = a // interval_us
        while i < n and i * interval_us < b:
            lo, hi = max(a, i * interval_us), min(b, (i + 1) * interval_us)
            covered[i] += max(0, hi - lo)
            i += 1
    return [c / interval_us for c in covered]


def write_timeline(out_dir: Path, interval_us: int = 100_000,
                   name: str = "timeline.png") -> Path:
    """Draw ``out_dir``'s run into ``out_dir/name`` and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    summary: dict[str, Any] = orjson.loads((out_dir / "summary.json").read_bytes())
    config: dict[str, Any] = orjson.loads((out_dir / "config.json").read_bytes())
    end = int(config["duration_us"])
    replicas = [m["id"] for m in config["members"]]
    strong = summary.get("strong_reads", {})
    serving = {r: [(int(a * 1000), int(b * 1000)) for a, b in ws]
               for r, ws in strong.get("serving", {}).items()}
    lines = {r: read_trace(out_dir / f"trace-{r}.jsonl", end) for r in replicas
             if (out_dir / f"trace-{r}.jsonl").exists()}

    s = 1e-6  # us -> s
    fig, ax = plt.subplots(figsize=(12, 1.2 + 0.7 * (len(replicas) + 1.5)))
    ys = {r: len(replicas) - i for i, r in enumerate(replicas)}
    for r, tl in lines.items():
        y = ys[r]
        for role in ROLE_COLOURS:
            spans = [(a * s, (b - a) * s) for a, b, x in tl.roles if x == role]
            ax.broken_barh(spans, (y - 0.05, 0.4), facecolors=ROLE_COLOURS[role])
        ax.broken_barh([(a * s, (b - a) * s) for a, b in serving.get(r, [])],
                       (y - 0.3, 0.15), facecolors="#52b788")
        for action, (marker, colour, _) in MARKERS.items():
            xs = [t * s for t, a in tl.marks if a == action]
            if xs:
                ax.scatter(xs, [y + 0.42] * len(xs), marker=marker, color=colour, s=28,
                           zorder=3, linewidths=0.5)
    for f in summary.get("fault_log", []):
        what = f["what"].split(" ")
        if what[0] == "slow_link":
            src = what[1].split("->")[0]
            end_s = next((g["t_s"] for g in summary["fault_log"]
                          if g["t_s"] >= f["t_s"] and g["what"] == f"fast_link {what[1]}"),
                         end * s)
            if src in ys:
                ax.axvspan(f["t_s"], end_s, ymin=0, ymax=1, color="#e9c46a", alpha=0.25, lw=0)
                ax.text(f["t_s"], ys[src] + 0.62, f"slow {what[1]}", fontsize=7)
    av = availability((w for ws in serving.values() for w in ws), end, interval_us)
    av.append(av[-1])  # the last interval's right edge, for the step drawing
    xs = [i * interval_us * s for i in range(len(av))]
    ax.fill_between(xs, [-0.9] * len(av), [-0.9 + 0.9 * a for a in av], step="post",
                    color="#52b788", lw=0)
    ax.axhline(-0.9, color="grey", lw=0.5)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_yticks([*ys.values(), -0.45])
    ax.set_yticklabels([*ys.keys(), f"available\n(per {interval_us / 1000:g} ms)"])
    ax.set_xlim(0, end * s)
    ax.set_ylim(-1.1, len(replicas) + 1)
    ax.set_xlabel("simulated time (s)")
    flags = f"peer_confirm={summary.get('peer_confirm')} handoff={summary.get('handoff')}"
    ax.set_title(f"seed {summary.get('seed')}  faults {summary.get('faults')}  {flags}  "
                 f"leader changes {summary.get('leader_changes')}  strong reads unavailable "
                 f"{strong.get('unavailable_ms')} ms", fontsize=9)
    handles: list[Any] = [Patch(color=c, label=r) for r, c in ROLE_COLOURS.items()]
    handles.append(Patch(color="#52b788", label="can serve strong reads"))
    handles.append(Patch(color="#e9c46a", alpha=0.4, label="slow link"))
    handles += [Line2D([], [], marker=m, color=c, ls="", label=lab)
                for m, c, lab in MARKERS.values()]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=5,
              fontsize=7, frameon=False)
    fig.tight_layout()
    path = out_dir / name
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return path


__all__ = ["ReplicaTimeline", "availability", "read_trace", "write_timeline"]
