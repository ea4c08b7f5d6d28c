from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference.wal import (
    HEADER_SIZE,
    MAX_PAYLOAD,
    Disk,
    WalCorruptionError,
    WriteAheadLog,
    encode_record,
    recover,
)

PAYLOADS = [b"", b"a", b"hello world", bytes(range(256)), b"\x00" * 40]


def _log(payloads: list[bytes], first_seq: int = 1) -> WriteAheadLog:
    wal = WriteAheadLog(first_seq=first_seq)
    for p in payloads:
        wal.append(p)
    wal.sync()
    return wal


@settings(max_examples=50, deadline=None)
@given(payloads=st.lists(st.binary(max_size=300), max_size=30), first_seq=st.integers(0, 2**40))
def test_round_trip(payloads: list[bytes], first_seq: int) -> None:
    wal = WriteAheadLog(first_seq=first_seq)
    seqs = [wal.append(p) for p in payloads]
    assert seqs == list(range(first_seq, first_seq + len(payloads)))
    wal.sync()
    assert [r.payload for r in wal.records()] == payloads
    reopened, result = WriteAheadLog.open(wal.disk)
    assert result.clean and result.truncated_bytes == 0
    assert [(r.seq, r.payload) for r in result.records] == list(zip(seqs, payloads, strict=True))
    assert result.stop_offset == len(wal.disk)
    if payloads:
        assert reopened.next_seq == seqs[-1] + 1


def test_records_from_seq_and_offsets() -> None:
    wal = _log(PAYLOADS, first_seq=10)
    assert [r.seq for r in wal.records(12)] == [12, 13, 14]
    assert list(wal.records(15)) == []
    assert wal.record_offset(10) == 0
    assert wal.record_offset(11) == HEADER_SIZE + len(PAYLOADS[0])
    with pytest.raises(KeyError):
        list(wal.records(9))
    assert (wal.first_seq, wal.last_seq, len(wal)) == (10, 14, 5)


def test_crash_truncates_to_sync_point() -> None:
    wal = _log([b"one", b"two", b"three"])
    wal.append(b"four")
    wal.append(b"five")
    wal.disk.crash()
    reopened, result = WriteAheadLog.open(wal.disk)
    assert result.clean
    assert [r.payload for r in result.records] == [b"one", b"two", b"three"]
    assert reopened.append(b"four again") == 4


def test_crash_keeping_random_unsynced_prefix_returns_a_prefix() -> None:
    rng = random.Random(3)
    kinds = set()
    for trial in range(200):
        payloads = [bytes([trial % 256]) * rng.randint(0, 50) for _ in range(10)]
        wal = WriteAheadLog()
        for i, p in enumerate(payloads):
            wal.append(p)
            if i == 3:
                wal.sync()
        wal.disk.crash(rng)
        result = recover(wal.disk)
        kinds.add(result.kind)
        got = [r.payload for r in result.records]
        assert len(got) >= 4 and got == payloads[: len(got)]
        assert result.kind in ("clean", "torn")
    assert kinds == {"clean", "torn"}


def test_torn_last_record_detected_and_dropped() -> None:
    base = _log(PAYLOADS)
    last_len = HEADER_SIZE + len(PAYLOADS[-1])
    last_off = base.record_offset(5)
    for keep in range(1, last_len):
        disk = Disk(base.disk.contents()[:last_off])
        disk.write(encode_record(5, PAYLOADS[-1]))
        assert disk.tear_last_record(keep=keep) == last_len - keep
        result = recover(disk)
        assert result.kind == "torn", keep
        assert result.reason.startswith(f"torn record at offset {last_off}")
        assert [r.payload for r in result.records] == PAYLOADS[:-1]
        assert result.stop_offset == last_off == len(disk)
        assert result.truncated_bytes == keep


def test_appends_continue_after_torn_recovery() -> None:
    wal = _log([b"a", b"b"])
    wal.append(b"c-torn")
    wal.disk.tear_last_record(rng=random.Random(0))
    wal, result = WriteAheadLog.open(wal.disk)
    assert result.kind == "torn"
    assert wal.append(b"c") == 3
    assert wal.append(b"d") == 4
    wal.sync()
    _, again = WriteAheadLog.open(wal.disk)
    assert again.clean
    expected = list(enumerate([b"a", b"b", b"c", b"d"], start=1))
    assert [(r.seq, r.payload) for r in again.records] == expected


_FLIP_BASE = _log([b"first", b"", b"x" * 70, b"last one"])
_FLIP_PAYLOADS = [r.payload for r in _FLIP_BASE.records()]


@settings(max_examples=300, deadline=None)
@given(offset=st.integers(0, len(_FLIP_BASE.disk) - 1), bit=st.integers(0, 7))
def test_bit_flip_anywhere_is_detected(offset: int, bit: int) -> None:
    disk = Disk(_FLIP_BASE.disk.contents())
    disk.flip_bit(offset, bit)
    hit = max(i for i in range(len(_FLIP_PAYLOADS)) if _FLIP_BASE.record_offset(i + 1) <= offset)
    result = recover(disk)
    # Exactly the records before the damaged one survive; nothing corrupt comes back.
    assert [r.payload for r in result.records] == _FLIP_PAYLOADS[:hit]
    assert result.kind == "corrupt"
    assert result.stop_offset == _FLIP_BASE.record_offset(hit + 1)
    assert f"record {hit} at offset {result.stop_offset}" in result.reason


def test_checksum_mismatch_reason_names_record_and_offset() -> None:
    wal = _log(PAYLOADS)
    off = wal.record_offset(3)
    wal.disk.flip_bit(off + HEADER_SIZE + 2)  # inside record 2's payload
    result = recover(wal.disk)
    assert result.reason == f"checksum mismatch in record 2 at offset {off}"
    assert len(wal.disk) == off


def test_records_iterator_raises_on_rot() -> None:
    wal = _log(PAYLOADS)
    wal.disk.flip_bit(wal.record_offset(4) + 5)
    it = wal.records()
    assert [next(it).seq for _ in range(3)] == [1, 2, 3]
    with pytest.raises(WalCorruptionError, match="record 3"):
        next(it)


def test_sequence_gap_detected() -> None:
    disk = Disk(b"".join(encode_record(s, b"p%d" % s) for s in (1, 2, 4, 5)))
    result = recover(disk)
    assert result.kind == "sequence"
    assert [r.seq for r in result.records] == [1, 2]
    assert "expected seq 3, found 4" in result.reason


def test_duplicate_and_backwards_sequence_detected() -> None:
    for seqs in [(7, 8, 8), (7, 8, 6)]:
        result = recover(Disk(b"".join(encode_record(s, b"") for s in seqs)))
        assert result.kind == "sequence" and [r.seq for r in result.records] == [7, 8]


def test_expected_first_seq_enforced() -> None:
    disk = Disk(b"".join(encode_record(s, b"") for s in (5, 6)))
    assert recover(Disk(disk.contents()), expected_first_seq=5).clean
    result = recover(disk, expected_first_seq=1)
    assert result.kind == "sequence" and result.records == []


def test_garbage_after_log_is_corrupt_not_returned() -> None:
    wal = _log([b"ok"])
    wal.disk.write(b"\xff" * 100)
    result = recover(wal.disk)
    assert result.kind == "corrupt" and "bad magic" in result.reason
    assert [r.payload for r in result.records] == [b"ok"]


def test_truncate_after() -> None:
    wal = _log(PAYLOADS)
    assert wal.truncate_after(2) == 3
    assert wal.next_seq == 3
    assert wal.append(b"new") == 3
    wal.sync()
    _, result = WriteAheadLog.open(wal.disk)
    assert [r.payload for r in result.records] == [PAYLOADS[0], PAYLOADS[1], b"new"]
    assert wal.truncate_after(10) == 0
    assert wal.truncate_after(0) == 3 and len(wal) == 0 and len(wal.disk) == 0
    with pytest.raises(ValueError):
        wal.truncate_after(-1)


def test_disk_fault_api() -> None:
    disk = Disk()
    with pytest.raises(ValueError):
        disk.tear_last_record()
    disk.write(b"abcd")
    disk.sync()
    disk.write(b"efgh")
    assert disk.synced_len == 4
    assert disk.tear_last_record() == 2
    assert disk.contents() == b"abcdef"
    with pytest.raises(ValueError):
        disk.tear_last_record()  # the last write is no longer intact
    disk.flip_bit(0, 1)
    assert disk.contents()[:1] == b"c"
    disk.crash()
    assert disk.contents() == b"cbcd"


def test_open_requires_recovery_for_nonempty_disk() -> None:
    with pytest.raises(ValueError):
        WriteAheadLog(Disk(b"x"))


def test_oversized_payload_rejected() -> None:
    with pytest.raises(ValueError):
        encode_record(1, bytes(MAX_PAYLOAD + 1))


@settings(max_examples=200, deadline=None)
@given(prefix_records=st.integers(0, 4), garbage=st.binary(min_size=1, max_size=80))
def test_recovery_of_arbitrary_tail_never_raises(prefix_records: int, garbage: bytes) -> None:
    wal = _log(PAYLOADS[:prefix_records])
    good_end = len(wal.disk)
    wal.disk.write(garbage)
    result = recover(wal.disk)
    assert [r.payload for r in result.records] == PAYLOADS[:prefix_records]
    assert result.kind in ("torn", "corrupt")
    assert len(wal.disk) == result.stop_offset == good_end
