"""Rotated, compressed log segments: ``<stem>.<n>.jsonl[.gz|.zst]``, n = 1, 2, 3, ...

A segment holds at most ``max_lines`` lines; the writer opens the next one when a
line would exceed that. Compression is byte-deterministic, so equal input gives
equal files: gzip without a file name and with mtime 0 (level 6), zstd level 3 with
a content checksum (a corrupt or cut-short segment fails to decompress) and no
worker threads. A stream that writes no line still gets segment 1, empty, so every
node and router has at least one file.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

import zstandard

from reference.fleet_config import Compression

SUFFIX: dict[Compression, str] = {"gz": ".jsonl.gz", "zst": ".jsonl.zst", "none": ".jsonl"}
_FLUSH_LINES = 4096
"""Lines joined into one write: fewer calls into the compressor."""


class _Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...

    def close(self) -> None: ...


def segment_name(stem: str, n: int, compression: Compression) -> str:
    return f"{stem}.{n}{SUFFIX[compression]}"


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    name: str
    lines: int


class SegmentWriter:
    """Writes lines (each ending in ``\\n``) to rotated segments of ``directory``."""

    def __init__(self, directory: Path, stem: str, max_lines: int,
                 compression: Compression) -> None:
        self.directory = directory
        self.stem = stem
        self.max_lines = max_lines
        self.compression = compression
        self.segments: list[SegmentInfo] = []
        self.lines = 0
        self._raw: IO[bytes] | None = None
        self._out: _Sink | None = None
        self._in_segment = 0
        self._buffer: list[bytes] = []

    def write(self, line: bytes) -> None:
        if self._out is None or self._in_segment == self.max_lines:
            self._rotate()
        self._buffer.append(line)
        self._in_segment += 1
        self.lines += 1
        if len(self._buffer) >= _FLUSH_LINES:
            self._flush()

    def _flush(self) -> None:
        if self._buffer and self._out is not None:
            self._out.write(b"".join(self._buffer))
            self._buffer.clear()

    def _rotate(self) -> None:
        self._close_segment()
        name = segment_name(self.stem, len(self.segments) + 1, self.compression)
        self._raw = raw = (self.directory / name).open("wb")
        if self.compression == "gz":
            self._out = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                                      compresslevel=6)
        elif self.compression == "zst":
            cctx = zstandard.ZstdCompressor(level=3, write_checksum=True, threads=0)
            self._out = cctx.stream_writer(raw, closefd=False)
        else:
            self._out = raw
        self.segments.append(SegmentInfo(name, 0))

    def _close_segment(self) -> None:
        if self._out is None or self._raw is None:
            return
        self._flush()
        self._out.close()
        if self._out is not self._raw:
            self._raw.close()
        self.segments[-1] = SegmentInfo(self.segments[-1].name, self._in_segment)
        self._out = self._raw = None
        self._in_segment = 0

    def close(self) -> list[SegmentInfo]:
        """Finish the last segment (segment 1, empty, if nothing was written)."""
        if not self.segments:
            self._rotate()
        self._close_segment()
        return list(self.segments)


def segment_lines(path: Path) -> Iterator[bytes]:
    """A segment's lines, decompressed by its suffix (tests and tools)."""
    if path.name.endswith(".gz"):
        with gzip.open(path, "rb") as f:
            yield from f
    elif path.name.endswith(".zst"):
        raw = zstandard.ZstdDecompressor().stream_reader(path.open("rb"), closefd=True)
        # The zstd reader does not split lines itself; a buffered reader over it does.
        with io.BufferedReader(raw) as f:
            yield from f
    else:
        with path.open("rb") as f:
            yield from f


__all__ = ["SUFFIX", "SegmentInfo", "SegmentWriter", "segment_lines", "segment_name"]
