"""Fleet input (format 4): each kind of bad input is one line `path:line: reason`, makes
the groups it touches input errors (exit 2), and leaves the other groups' verdicts."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from fleet_fixtures import copy_fleet, make_fleet

from conformance.cli import main
from conformance.fleet_input import read_fleet_spec, read_node, segments
from conformance.fleet_replay import replay_fleet
from conformance.trace_loader import TraceInputError

ON_N02 = {"g0001", "g0002", "g0006"}
"""The groups with a replica on n02 in make_fleet's layout; the others are not."""


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_fleet(tmp_path_factory.mktemp("fleet") / "f")


@pytest.fixture
def broken(fleet: Path, tmp_path: Path) -> Path:
    return copy_fleet(fleet, tmp_path / "broken")


def verdicts(d: Path) -> dict[str, tuple[str, str]]:
    return {v.group: (v.verdict, v.input_error) for v in replay_fleet(d, workers=1).verdicts}


def rewrite(path: Path, edit: object) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(edit(lines)))  # type: ignore[operator]


def assert_n02_bad(d: Path, reason: str) -> str:
    got = verdicts(d)
    for g, (verdict, why) in got.items():
        if g in ON_N02:
            assert verdict == "input-error", (g, verdict)
            assert reason in why, why
        else:
            assert verdict == "ok", (g, verdict, why)
    return got["g0001"][1]


def test_a_clean_fleet_is_ok_and_every_line_is_read(fleet: Path) -> None:
    spec = read_fleet_spec(fleet)
    rot = segments(fleet, "trace")
    assert len(rot["n01"].paths) > 1  # rotated
    lines = sum(1 for n, r in rot.items() for _ in read_node(spec, n, r.paths))
    result = replay_fleet(fleet, workers=1)
    assert {v.verdict for v in result.verdicts} == {"ok"}
    assert result.events == lines


def test_a_missing_segment_in_a_rotation(broken: Path) -> None:
    (broken / "trace-n02.2.jsonl").unlink()
    why = assert_n02_bad(broken, "missing segment 2 of n02's rotation")
    assert why.startswith(f"{broken}/trace-n02.2.jsonl:0: ")


def test_a_seq_gap_is_lost_lines(broken: Path) -> None:
    rewrite(broken / "trace-n02.2.jsonl", lambda ls: ls[:10] + ls[11:])
    why = assert_n02_bad(broken, "lines lost")
    assert f"{broken}/trace-n02.2.jsonl:11: seq " in why


def test_seq_out_of_order(broken: Path) -> None:
    rewrite(broken / "trace-n02.1.jsonl", lambda ls: [*ls[:5], ls[6], ls[5], *ls[7:]])
    assert_n02_bad(broken, "trace-n02.1.jsonl:6: seq")


def _edit_line(path: Path, index: int, **fields: object) -> None:
    def edit(ls: list[bytes]) -> list[bytes]:
        obj = orjson.loads(ls[index])
        obj.update(fields)
        ls[index] = orjson.dumps(obj) + b"\n"
        return ls
    rewrite(path, edit)


def test_a_group_fleet_json_does_not_have(broken: Path) -> None:
    _edit_line(broken / "trace-n02.1.jsonl", 3, group="g9999")
    assert_n02_bad(broken, "trace-n02.1.jsonl:4: group 'g9999' is not in")


def test_a_replica_the_group_does_not_have(broken: Path) -> None:
    _edit_line(broken / "trace-n02.1.jsonl", 3, replica="r9")
    assert_n02_bad(broken, "replica 'r9' of group")


def test_a_clock_running_backwards_beyond_its_bound(broken: Path) -> None:
    first = orjson.loads((broken / "trace-n02.1.jsonl").read_bytes().splitlines()[20])
    _edit_line(broken / "trace-n02.1.jsonl", 21, clock=first["clock"] - 10 * first["err"] - 1)
    assert_n02_bad(broken, "trace-n02.1.jsonl:22: clock runs backwards beyond its bound")


def test_a_clock_stepping_back_within_its_bound_is_accepted(broken: Path) -> None:
    first = orjson.loads((broken / "trace-n02.1.jsonl").read_bytes().splitlines()[20])
    second = orjson.loads((broken / "trace-n02.1.jsonl").read_bytes().splitlines()[21])
    _edit_line(broken / "trace-n02.1.jsonl", 21, clock=first["clock"] - first["err"] // 2,
               err=second["err"] + (second["clock"] - first["clock"]))
    assert set(v for v, _ in verdicts(broken).values()) <= {"ok", "warning"}


def test_a_gzip_segment_cut_short(fleet: Path, tmp_path: Path) -> None:
    d = copy_fleet(fleet, tmp_path / "gz")
    seg = d / "trace-n02.1.jsonl"
    with gzip.open(d / "trace-n02.1.jsonl.gz", "wb") as f:
        f.write(seg.read_bytes())
    seg.unlink()
    data = (d / "trace-n02.1.jsonl.gz").read_bytes()
    (d / "trace-n02.1.jsonl.gz").write_bytes(data[: len(data) // 2])
    assert_n02_bad(d, "trace-n02.1.jsonl.gz:")


def test_zstd_and_gzip_segments_read_as_plain_ones(tmp_path: Path) -> None:
    for comp in ("gz", "zst"):
        d = make_fleet(tmp_path / comp, compression=comp)
        assert any(p.name.endswith(f".jsonl.{comp}") for p in d.iterdir())
        assert {v.verdict for v in replay_fleet(d, workers=1).verdicts} == {"ok"}


def test_an_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(main, ["replay", str(tmp_path / "empty")])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0
    # Neither fleet.json nor config.json: the single-group reader's message, which
    # names both.
    assert f"{tmp_path / 'empty' / 'config.json'}:0: missing" in result.output
    assert "fleet.json" in result.output


def test_a_fleet_without_trace_files(fleet: Path, tmp_path: Path) -> None:
    d = tmp_path / "bare"
    d.mkdir()
    (d / "fleet.json").write_bytes((fleet / "fleet.json").read_bytes())
    got = verdicts(d)
    assert {v for v, _ in got.values()} == {"input-error"}
    assert "no trace-<node>.<n>.jsonl segments" in got["g0001"][1]


def test_a_bad_fleet_json_is_one_line_exit_2(broken: Path) -> None:
    (broken / "fleet.json").write_bytes(b'{"format": 4, "format": 4}')
    with pytest.raises(TraceInputError, match=r"fleet\.json:1: duplicate key"):
        read_fleet_spec(broken)
    result = CliRunner().invoke(main, ["replay", str(broken)])
    assert result.exit_code == 2 and "fleet.json:1: duplicate key" in result.output


def test_the_cli_reports_the_other_groups_and_exits_2(broken: Path, tmp_path: Path) -> None:
    (broken / "trace-n02.2.jsonl").unlink()
    report = tmp_path / "report.json"
    result = CliRunner().invoke(main, ["replay", str(broken), "--workers", "1",
                                       "--report", str(report)])
    assert result.exit_code == 2, result.output
    assert "missing segment 2 of n02's rotation" in result.output
    rows = {r["group"]: r for r in orjson.loads(report.read_bytes())["groups"]}
    assert {g for g, r in rows.items() if r["verdict"] == "ok"} == {"g0003", "g0004", "g0005"}
    assert all(rows[g]["verdict"] == "input-error" for g in ON_N02)
    assert all(rows[g]["events"] > 0 for g in ("g0003", "g0004", "g0005"))


def test_a_bad_history_line_loses_the_groups_it_may_have_served(broken: Path) -> None:
    first = [orjson.loads(x)["group"] for x in
             [x for i, x in enumerate((broken / "history-rt1.1.jsonl").read_bytes()
              .splitlines()) if i in (0, 1, 3)]]
    rewrite(broken / "history-rt1.1.jsonl", lambda ls: ls[:2] + ls[3:])
    got = verdicts(broken)
    for g in first:  # served by the router up to the line after the gap
        assert got[g][0] == "input-error" and "history-rt1.1.jsonl:3: seq" in got[g][1]
    for verdict, why in got.values():  # the rest: what the router lost shows, or nothing
        assert verdict == "ok" or "history-rt1.1.jsonl:3: seq" in why \
            or "is not in its history" in why


def test_a_lost_last_segment_shows_in_the_line_count(tmp_path: Path) -> None:
    """No seq gap shows a lost last segment; fleet.json's per-node line count does."""
    if "fleet" not in main.commands:
        pytest.skip("no `dynaspec fleet simulate` in this tree")
    out = tmp_path / "fleet"
    sim = CliRunner().invoke(main, ["fleet", "simulate", "--out", str(out), "--nodes", "4",
                                    "--groups", "3", "--duration", "2s", "--settle", "1s",
                                    "--workers", "1", "--segment-lines", "300"])
    assert sim.exit_code == 0, sim.output
    node = next(n for n, r in segments(out, "trace").items() if len(r.paths) > 1)
    segments(out, "trace")[node].paths[-1].unlink()
    got = verdicts(out)
    spec = read_fleet_spec(out)
    for g in spec.groups_on(node):
        assert got[g][0] == "input-error" and "a lost last segment" in got[g][1]


def test_a_segment_cut_short_before_its_rotation_ends(broken: Path) -> None:
    rewrite(broken / "trace-n02.1.jsonl", lambda ls: ls[:-1])
    # Its last line lost: the next segment's first seq shows the gap first, at its line 1,
    # or the count of the segment shows it; either names n02's files.
    assert_n02_bad(broken, "trace-n02.")


def test_request_ids_map_exactly() -> None:
    """The compact index answers as a dict would, whatever the ids look like."""
    import random

    from conformance.fleet_history import RequestIds

    rnd = random.Random(3)
    paths = ["h-rt1.1.jsonl", "h-rt1.2.jsonl"]
    ids, plain = RequestIds(paths), {}
    shapes = ["{c}-{n}", "{c}-{n}", "{c}-{n}", "{c}-0{n}", "{c}{n}", "{c}-{n}-x", "-{n}",
              "{c}-", "{c}-{n}".replace("-", "_"), "{c}-\u0661{n}"]
    for _ in range(3000):
        c = rnd.choice(["g1-c1", "g1-c2", "g1-c3"])
        n = rnd.choice([rnd.randrange(1, 200), rnd.randrange(1, 10**9)])
        rid = rnd.choice(shapes).format(c=c, n=n)
        client = c if rnd.random() < 0.9 else "g1-c9"
        k, ln = rnd.randrange(2), rnd.randrange(1, 10**6)
        first = ids.add(rid, client, k, ln)
        assert first == plain.get(rid)
        plain.setdefault(rid, f"{paths[k]}:{ln}")
    for rid in [*plain, "g1-c1-0", "g1-c1-201", "g1-c4-1", "nope", "g1-c1-1x"]:
        assert (rid in ids) == (rid in plain) and ids.get(rid) == plain.get(rid)
    assert len(ids) == len(plain) and sorted(ids) == sorted(plain)
    assert dict(ids.items()) == plain


def test_a_history_record_that_does_not_decode(broken: Path) -> None:
    """Found once the traces are checked: its group, and every group its router served
    up to it, are input errors; the router's other groups keep their histories."""
    path = broken / "history-rt1.1.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    k = 2  # (the routers serve every group within their first lines)
    obj = orjson.loads(lines[k])
    obj["op"] = "frobnicate"  # valid JSON, a valid line header: not a valid record
    lines[k] = orjson.dumps(obj) + b"\n"
    path.write_bytes(b"".join(lines))
    served = {orjson.loads(x)["group"] for x in lines[: k + 1]}
    later = {orjson.loads(x)["group"] for x in lines[k + 1:]} - served
    assert served and later
    got = verdicts(broken)
    for g in served:
        assert got[g][0] == "input-error", (g, got[g])
        assert got[g][1] == f"{path}:{k + 1}: unknown op 'frobnicate'"
    for g in later:
        assert got[g][0] == "ok", (g, got[g])
