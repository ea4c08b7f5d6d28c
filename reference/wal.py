"""Write-ahead log of checksummed records on a fault-injectable in-memory disk.

Record layout (big-endian, 24-byte header, then the payload)::

    offset  size  field
    0       4     magic 0x44574C31 ("DWL1")
    4       4     payload length
    8       8     sequence number
    16      4     header CRC32C over bytes 0..16
    20      4     record CRC32C over bytes 0..16 followed by the payload
    24      len   payload

The record CRC covers the header fields and the payload (paper §5.2). The extra
header CRC is checked before the length is trusted: a flipped length bit is then
reported as corruption instead of being mistaken for a torn tail, and every
single-bit flip anywhere in a record is caught deterministically (CRCs detect all
single-bit errors) rather than with probability 1 - 2^-32.

Recovery scans from offset 0 and stops at the FIRST record that is

* torn: fewer than 24 bytes left, or a valid header whose payload runs past the
  end of the disk (a write cut short by a crash);
* corrupt: bad magic, header CRC mismatch, or record CRC mismatch;
* out of sequence: its sequence number is not previous + 1 (or not the expected
  first sequence number);

and truncates the disk there, so nothing after a bad record is ever returned and
later appends continue cleanly from the last good record.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import google_crc32c

MAGIC = 0x44574C31
_FIELDS = struct.Struct(">IIQ")  # magic, length, seq: the bytes both CRCs cover
_CRCS = struct.Struct(">II")  # header crc, record crc
HEADER_SIZE = _FIELDS.size + _CRCS.size
MAX_PAYLOAD = 16 * 1024 * 1024


class Disk:
    """Append-only byte storage with explicit durability and fault injection (sans-IO).

    ``sync()`` makes everything written so far durable; ``crash()`` loses what was
    not synced. Truncation is treated as immediately durable.
    """

    __slots__ = ("_data", "_last_write", "_synced_len")

    def __init__(self, data: bytes = b"") -> None:
        self._data = bytearray(data)
        self._synced_len = len(data)
        self._last_write: tuple[int, int] | None = None  # (offset, length)

    def __len__(self) -> int:
        return len(self._data)

    @property
    def synced_len(self) -> int:
        return self._synced_len

    def contents(self) -> bytes:
        return bytes(self._data)

    def view(self) -> memoryview:
        """Zero-copy read-only view; invalid after the next mutation."""
        return memoryview(self._data).toreadonly()

    def write(self, data: bytes) -> int:
        """Append ``data`` as one write; returns its offset."""
        offset = len(self._data)
        self._data += data
        self._last_write = (offset, len(data))
        return offset

    def sync(self, upto: int | None = None) -> None:
        """Make the first ``upto`` bytes (default: all written so far) durable."""
        end = len(self._data) if upto is None else min(upto, len(self._data))
        self._synced_len = max(self._synced_len, end)

    def truncate(self, size: int) -> None:
        if not 0 <= size <= len(self._data):
            raise ValueError(f"cannot truncate {len(self._data)}-byte disk to {size}")
        del self._data[size:]
        self._synced_len = min(self._synced_len, size)
        if self._last_write is not None and self._last_write[0] + self._last_write[1] > size:
            self._last_write = None

    # --- fault injection ------------------------------------------------------

    def crash(self, rng: random.Random | None = None) -> None:
        """Lose unsynced data. With ``rng``, a random prefix of it survives instead,
        which may leave a torn record at the tail."""
        keep = self._synced_len
        if rng is not None:
            keep += rng.randint(0, len(self._data) - self._synced_len)
        self.truncate(keep)
        self._synced_len = len(self._data)

    def tear_last_record(self, keep: int | None = None, rng: random.Random | None = None) -> int:
        """Cut the last write partway, keeping ``keep`` of its bytes (1 <= keep < len);
        random if ``rng`` is given, else half. Returns the number of bytes removed."""
        if self._last_write is None:
            raise ValueError("no intact last write to tear")
        offset, length = self._last_write
        if length < 2:
            raise ValueError("last write too short to tear")
        if keep is None:
            keep = rng.randint(1, length - 1) if rng is not None else length // 2
        if not 1 <= keep < length:
            raise ValueError(f"keep must be in [1, {length - 1}]")
        self.truncate(offset + keep)
        return length - keep

    def flip_bit(self, offset: int, bit: int = 0) -> None:
        """Silently corrupt one stored bit (bit rot, §5.3)."""
        if not 0 <= bit < 8:
            raise ValueError("bit must be in [0, 8)")
        self._data[offset] ^= 1 << bit


@dataclass(frozen=True, slots=True)
class WalRecord:
    seq: int
    payload: bytes
    offset: int


StopKind = Literal["clean", "torn", "corrupt", "sequence"]


@dataclass(frozen=True, slots=True)
class RecoveryResult:
    records: list[WalRecord]
    stop_offset: int
    """Byte offset where the scan stopped; the disk is truncated to this length."""
    kind: StopKind
    reason: str
    truncated_bytes: int

    @property
    def clean(self) -> bool:
        return self.kind == "clean"


@dataclass(frozen=True, slots=True)
class _Stop:
    kind: StopKind
    reason: str


class WalCorruptionError(Exception):
    """A record that the log itself wrote no longer verifies."""


def encode_record(seq: int, payload: bytes) -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    fields = _FIELDS.pack(MAGIC, len(payload), seq)
    header_crc: int = google_crc32c.value(fields)
    record_crc: int = google_crc32c.extend(header_crc, payload)
    return fields + _CRCS.pack(header_crc, record_crc) + payload


def _decode_at(
    buf: memoryview, off: int, index: int, expected_seq: int | None
) -> WalRecord | _Stop:
    """Decode the record at ``off``; ``index`` is its ordinal, used only in messages."""
    size = len(buf)
    if off == size:
        return _Stop("clean", f"clean end of log at offset {off}")
    if size - off < HEADER_SIZE:
        return _Stop("torn", f"torn record at offset {off}: {size - off}-byte header fragment")
    fields = bytes(buf[off : off + _FIELDS.size])  # google_crc32c wants bytes, not a view
    magic, length, seq = _FIELDS.unpack(fields)
    header_crc, record_crc = _CRCS.unpack_from(buf, off + _FIELDS.size)
    if magic != MAGIC:
        return _Stop("corrupt", f"bad magic in record {index} at offset {off}")
    if google_crc32c.value(fields) != header_crc:
        return _Stop("corrupt", f"header checksum mismatch in record {index} at offset {off}")
    start = off + HEADER_SIZE
    if length > MAX_PAYLOAD:
        return _Stop("corrupt", f"impossible length {length} in record {index} at offset {off}")
    if start + length > size:
        return _Stop(
            "torn",
            f"torn record at offset {off}: header claims {length} payload bytes, "
            f"{size - start} present",
        )
    payload = bytes(buf[start : start + length])
    if google_crc32c.extend(header_crc, payload) != record_crc:
        return _Stop("corrupt", f"checksum mismatch in record {index} at offset {off}")
    if expected_seq is not None and seq != expected_seq:
        return _Stop(
            "sequence",
            f"out-of-sequence record {index} at offset {off}: expected seq {expected_seq}, "
            f"found {seq}",
        )
    return WalRecord(seq, payload, off)


def _scan(disk: Disk, expected_first_seq: int | None) -> tuple[list[WalRecord], int, _Stop]:
    buf = disk.view()
    records: list[WalRecord] = []
    off = 0
    expected = expected_first_seq
    try:
        while True:
            rec = _decode_at(buf, off, len(records), expected)
            if isinstance(rec, _Stop):
                return records, off, rec
            records.append(rec)
            off += HEADER_SIZE + len(rec.payload)
            expected = rec.seq + 1
    finally:
        buf.release()


def recover(disk: Disk, expected_first_seq: int | None = None) -> RecoveryResult:
    """Verify ``disk`` front to back, truncate it after the last good record, and sync.

    ``expected_first_seq`` pins the first record's sequence number; by default the
    first record's own number is accepted and each later one must be previous + 1.
    """
    records, stop, why = _scan(disk, expected_first_seq)
    removed = len(disk) - stop
    disk.truncate(stop)
    disk.sync()
    return RecoveryResult(records, stop, why.kind, why.reason, removed)


class WriteAheadLog:
    """Append-only log of payloads numbered first_seq, first_seq + 1, ...

    After ``disk.crash()`` the in-memory object is stale: reopen with ``open``.
    """

    __slots__ = ("_first_seq", "_next_seq", "_offsets", "disk")

    def __init__(self, disk: Disk | None = None, *, first_seq: int = 1) -> None:
        disk = disk if disk is not None else Disk()
        if len(disk):
            raise ValueError("disk is not empty; use WriteAheadLog.open to recover it")
        if first_seq < 0:
            raise ValueError("first_seq must be >= 0")
        self.disk = disk
        self._first_seq = first_seq
        self._next_seq = first_seq
        self._offsets: list[int] = []  # record i (seq first_seq + i) starts at _offsets[i]

    @classmethod
    def open(
        cls, disk: Disk, *, first_seq: int | None = None
    ) -> tuple[WriteAheadLog, RecoveryResult]:
        """Recover ``disk`` and return a log positioned after its last good record."""
        result = recover(disk, first_seq)
        if result.records:
            base = result.records[0].seq
        else:
            base = first_seq if first_seq is not None else 1
        wal = cls.__new__(cls)
        wal.disk = disk
        wal._first_seq = base
        wal._next_seq = base + len(result.records)
        wal._offsets = [r.offset for r in result.records]
        return wal, result

    @property
    def first_seq(self) -> int:
        return self._first_seq

    @property
    def next_seq(self) -> int:
        return self._next_seq

    @property
    def last_seq(self) -> int | None:
        return self._next_seq - 1 if self._offsets else None

    def __len__(self) -> int:
        return len(self._offsets)

    def append(self, payload: bytes) -> int:
        """Write one record (not yet durable: call ``sync``); returns its sequence number."""
        seq = self._next_seq
        self._offsets.append(self.disk.write(encode_record(seq, payload)))
        self._next_seq = seq + 1
        return seq

    def sync(self, upto: int | None = None) -> None:
        """Make the log durable up to byte ``upto`` (default: everything appended)."""
        self.disk.sync(upto)

    def record_offset(self, seq: int) -> int:
        return self._offsets[self._index(seq)]

    def records(self, start_seq: int | None = None) -> Iterator[WalRecord]:
        """Yield records from ``start_seq`` (default: first; past the end: none),
        re-verifying each.

        Raises WalCorruptionError if a record rotted since it was written.
        """
        i = 0 if start_seq is None else start_seq - self._first_seq
        if i < 0:
            raise KeyError(f"seq {start_seq} precedes the log start {self._first_seq}")
        while i < len(self._offsets):
            buf = self.disk.view()
            try:
                rec = _decode_at(buf, self._offsets[i], i, self._first_seq + i)
            finally:
                buf.release()
            if isinstance(rec, _Stop):
                raise WalCorruptionError(rec.reason)
            yield rec
            i += 1

    def truncate_after(self, seq: int) -> int:
        """Drop every record with sequence number > ``seq`` (e.g. an uncommitted suffix
        being replaced). Returns how many records were removed."""
        if seq < self._first_seq - 1:
            raise ValueError(f"seq {seq} precedes the log start {self._first_seq}")
        keep = min(seq - self._first_seq + 1, len(self._offsets))
        removed = len(self._offsets) - keep
        if removed:
            self.disk.truncate(self._offsets[keep])
            del self._offsets[keep:]
            self._next_seq = self._first_seq + keep
        return removed

    def _index(self, seq: int) -> int:
        i = seq - self._first_seq
        if not 0 <= i < len(self._offsets):
            raise KeyError(f"seq {seq} not in log [{self._first_seq}, {self._next_seq})")
        return i
