"""Random access to the lines of big JSONL files, plain or gzip-compressed, without reading them whole.

:func:`scan_lines` streams a file once and yields every non-blank line with its byte offset in the
(uncompressed) text; a reader keeps only those offsets. :class:`ByteReader` then reads the bytes
at an offset: a plain file seeks; a ``.gz`` file cannot seek cheaply, so the scan also keeps a
*checkpoint* every :data:`CHECKPOINT_BYTES` of output — a copy of the zlib decompressor's state
with the compressed and uncompressed positions it stands at — and a read starts from the nearest
checkpoint before the wanted offset (at most that many bytes are decompressed for nothing). This is
the idea of zlib's ``zran.c`` example, done with ``zlib.decompressobj().copy()``. Files made of
several gzip members (``cat a.gz b.gz``) are read across member boundaries.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

CHUNK = 1 << 20
"""Bytes of a plain file read per step of a scan."""
GZIP_CHUNK = 1 << 16
"""Compressed bytes read per step of a ``.gz`` file."""
STEP = 1 << 16
"""At most this many uncompressed bytes come out of one call of the decompressor."""
CHECKPOINT_BYTES = 1 << 20
"""Uncompressed bytes between two checkpoints of a ``.gz`` file."""


def is_gzip(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(2) == b"\x1f\x8b"


@dataclass
class _Checkpoint:
    compressed: int
    """File position of the next compressed byte to feed."""
    plain: int
    """Uncompressed offset the decompressor stands at."""
    state: Any
    """The ``zlib`` decompressor as it stood there (copied before use; ``zlib`` has no type for it)."""


@dataclass
class ByteReader:
    """Reads byte ranges of the uncompressed text of ``path`` (see the module docstring)."""

    path: Path
    gzip: bool
    checkpoint_bytes: int = CHECKPOINT_BYTES
    _checkpoints: list[_Checkpoint] = field(default_factory=list)

    @classmethod
    def open(cls, path: str | Path, checkpoint_bytes: int = CHECKPOINT_BYTES) -> ByteReader:
        p = Path(path)
        return cls(p, is_gzip(p), checkpoint_bytes)

    def blocks(self, *, record: bool = False) -> Iterator[bytes]:
        """The whole uncompressed text in blocks, in order; ``record=True`` (the index's scan)
        replaces the checkpoints of a ``.gz`` file with the ones this pass sees."""
        with self.path.open("rb") as f:
            if not self.gzip:
                while block := f.read(CHUNK):
                    yield block
                return
            first = _Checkpoint(0, 0, zlib.decompressobj(wbits=31))
            if record:
                self._checkpoints = [first]
            yield from self._inflate(f, first.state, 0, record=record)

    def _inflate(self, f: BinaryIO, state: Any, plain: int, *, record: bool) -> Iterator[bytes]:
        """Decompress from ``f``'s position on with (a copy of) decompressor ``state``."""
        d = state.copy()
        last = plain
        while chunk := f.read(GZIP_CHUNK):
            pending = chunk
            while True:
                out = d.decompress(pending, STEP)  # bounded output: checkpoints land every STEP bytes
                pending = d.unconsumed_tail
                if out:
                    plain += len(out)
                    yield out
                if d.eof:
                    pending, d = d.unused_data, zlib.decompressobj(wbits=31)  # the next member
                    if pending and not pending.strip(b"\x00"):  # zero padding ends the file
                        return
                    if not pending:
                        break
                    continue
                if record and plain - last >= self.checkpoint_bytes:
                    self._checkpoints.append(_Checkpoint(f.tell() - len(pending), plain, d.copy()))
                    last = plain
                if not pending and len(out) < STEP:
                    break

    def read(self, offset: int, length: int) -> bytes:
        """``length`` bytes of the uncompressed text from ``offset``."""
        with self.path.open("rb") as f:
            if not self.gzip:
                f.seek(offset)
                return f.read(length)
            start = max((c for c in self._checkpoints if c.plain <= offset), key=lambda c: c.plain)
            f.seek(start.compressed)
            out = bytearray()
            position = start.plain
            for block in self._inflate(f, start.state, start.plain, record=False):
                end = position + len(block)
                if end > offset:
                    out += block[max(offset - position, 0) :]
                    if len(out) >= length:
                        break
                position = end
            return bytes(out[:length])


def scan_lines(reader: ByteReader, *, record: bool = False) -> Iterator[tuple[int, bytes]]:
    """``(offset, line)`` for every non-blank line of ``reader``'s text (without its newline);
    ``record=True`` makes this scan the one whose ``.gz`` checkpoints later reads use."""
    position = 0
    tail = b""
    for block in reader.blocks(record=record):
        data = tail + block
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            line = data[start:end]
            if line.strip():
                yield position + start, line
            start = end + 1
        position += start
        tail = data[start:]
    if tail.strip():
        yield position, tail
