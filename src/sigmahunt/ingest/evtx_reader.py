"""EVTX reader on top of the ``evtx`` package (Rust evtx-rs).

The parser skips silently what it cannot reach: a file cut in the middle of
a chunk simply yields fewer records.  To lose nothing we read the 64 KiB
chunk headers ourselves (each declares its first/last record id), match the
records the parser produced against them, and report every missing record
as :class:`Unreadable` (position ``"record <id>"``), a chunk whose header is
unreadable as ``"chunk <n>"`` (1-based), and a non-EVTX file as ``"file"``.

Positions are ``"record <event_record_id>"`` (the record header id, which
is unique within a file); the ``EventRecordID`` column carries the id from
Event/System (the same number unless the file was re-exported).
"""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
import polars as pl

from .formats import EVTX_MAGIC
from .frames import ColumnBuilder
from .model import POSITION_COL, SOURCE_COL, TIMESTAMP_COL, Unreadable
from .normalise import Row, ShapeError, normalise_evtx_json
from .timestamps import iso_utc

FILE_HEADER_BLOCK = 4096
CHUNK_SIZE = 65536
CHUNK_MAGIC = b"ElfChnk\x00"
_FILE_HEADER = struct.Struct("<8sQQQIHHHH")  # ... header block size, chunk count
_CHUNK_IDS = struct.Struct("<8sQQQQ")  # magic, first/last record number, first/last record id
#: A 64 KiB chunk cannot hold more records than this (records are > 24 bytes).
_MAX_RECORDS_PER_CHUNK = CHUNK_SIZE // 24
#: Stop asking the parser for more after this many consecutive errors.
_MAX_CONSECUTIVE_ERRORS = 10_000
FRAME_ROWS = 50_000

_ERROR_ID_RANGE = re.compile(r"record IDs (\d+)\.\.(\d+)")
_ERROR_CHUNK_NO = re.compile(r"chunk number (\d+)")


@dataclass
class ChunkInfo:
    """What a chunk header promises, and what the parser delivered."""

    index: int  # 0-based slot in the file
    first_id: int = 0
    last_id: int = -1
    problem: str | None = None  # set when the whole chunk is unusable
    truncated: bool = False
    error: str | None = None  # parser error attributed to this chunk
    seen: set[int] = field(default_factory=set)

    @property
    def usable(self) -> bool:
        return self.problem is None and self.last_id >= self.first_id


def scan_chunks(data: bytes) -> list[ChunkInfo]:
    """Chunk slots present in (or declared by) the file, with their id ranges."""
    declared = _FILE_HEADER.unpack_from(data, 0)[-1] if len(data) >= _FILE_HEADER.size else 0
    present = max(0, -(-(len(data) - FILE_HEADER_BLOCK) // CHUNK_SIZE))
    chunks = []
    for index in range(max(declared, present)):
        chunk = _scan_chunk(data, index, declared)
        if chunk is not None:
            chunks.append(chunk)
    return chunks


def _scan_chunk(data: bytes, index: int, declared: int) -> ChunkInfo | None:
    offset = FILE_HEADER_BLOCK + index * CHUNK_SIZE
    info = ChunkInfo(index)
    if offset >= len(data):
        info.problem = f"chunk missing: file truncated (header declares {declared} chunks)"
        return info
    head = data[offset : offset + _CHUNK_IDS.size]
    if len(head) < _CHUNK_IDS.size:
        info.problem = "chunk header truncated: file cut short"
        return info
    magic, _, _, first_id, last_id = _CHUNK_IDS.unpack(head)
    if magic != CHUNK_MAGIC:
        if not data[offset : offset + 512].strip(b"\x00"):
            return None  # never-used, zero-filled slot
        info.problem = "chunk header is corrupt (bad 'ElfChnk' signature); its records are lost"
        return info
    if last_id < first_id or last_id - first_id >= _MAX_RECORDS_PER_CHUNK:
        info.problem = f"chunk header is corrupt (impossible record id range {first_id}..{last_id})"
        return info
    info.first_id, info.last_id = first_id, last_id
    info.truncated = offset + CHUNK_SIZE > len(data)
    return info


class _Ledger:
    """Assigns parsed records and parser errors to chunks, in file order."""

    def __init__(self, chunks: list[ChunkInfo]) -> None:
        self.chunks = chunks
        self.usable = [c for c in chunks if c.usable]
        self.cursor = 0
        self.stray_errors: list[str] = []

    def record(self, record_id: int) -> None:
        for offset in range(self.cursor, len(self.usable)):
            chunk = self.usable[offset]
            if chunk.first_id <= record_id <= chunk.last_id and record_id not in chunk.seen:
                chunk.seen.add(record_id)
                self.cursor = offset
                return

    def error(self, message: str) -> None:
        """Attribute a parser error; a whole-chunk failure moves past it."""
        chunk = self._chunk_for_error(message)
        if chunk is None:
            self.stray_errors.append(message)
            return
        if chunk.error is None:
            chunk.error = message
        if chunk in self.usable:  # its records will not come: the next ones are later
            self.cursor = max(self.cursor, self.usable.index(chunk) + 1)

    def _chunk_for_error(self, message: str) -> ChunkInfo | None:
        ids = _ERROR_ID_RANGE.search(message)
        if ids:
            first, last = int(ids.group(1)), int(ids.group(2))
            for chunk in self.usable[self.cursor :]:
                if (chunk.first_id, chunk.last_id) == (first, last) and chunk.error is None:
                    return chunk
        number = _ERROR_CHUNK_NO.search(message)
        if number:
            index = int(number.group(1))
            return next((c for c in self.chunks if c.index == index), None)
        return None

    def missing(self, source: str) -> Iterator[Unreadable]:
        stray = "; ".join(dict.fromkeys(self.stray_errors))[:500]
        for chunk in self.chunks:
            if chunk.problem is not None:
                reason = chunk.problem + (f" ({chunk.error})" if chunk.error else "")
                yield Unreadable(source, f"chunk {chunk.index + 1}", reason)
                continue
            reason = self._reason(chunk, stray)
            for record_id in range(chunk.first_id, chunk.last_id + 1):
                if record_id not in chunk.seen:
                    yield Unreadable(source, f"record {record_id}", reason)

    @staticmethod
    def _reason(chunk: ChunkInfo, stray: str) -> str:
        if chunk.error:
            return f"unparseable record: {chunk.error}"
        if chunk.truncated:
            return f"record lost: file truncated inside chunk {chunk.index + 1}"
        return "record could not be parsed" + (f": {stray}" if stray else "")


def read_evtx(source: str, data: bytes) -> Iterator[pl.DataFrame | Unreadable]:
    """Read one EVTX file (in memory), reporting whatever cannot be read."""
    packer = EvtxPacker()
    yield from packer.read(source, data)
    yield from packer.flush()


class EvtxPacker:
    """Reads EVTX files into one shared :class:`ColumnBuilder`, so small files share frames.

    Why: a frame costs a ``pl.Series`` per column (~110 sparse ones for Sysmon) however
    few its rows, and a hunt over many small EVTX files (SigmaHQ samples, per-host
    collections) spent ~70% of its ingest building one frame per file and concatenating
    them again.  Rows of consecutive files go into one builder instead; a frame is handed
    on when it holds ``frame_rows`` rows (which bounds memory, as ``FRAME_ROWS`` does for
    one file) or when the caller calls :meth:`flush` - before any other reader's frame, so
    that rows stay in input order, and at the end.  Frames then hold the union of their
    files' columns (absent fields null), as the batcher's diagonal concatenation did.
    """

    def __init__(self, frame_rows: int = FRAME_ROWS) -> None:
        if frame_rows < 1:
            raise ValueError("frame_rows must be at least 1")
        self.frame_rows = frame_rows
        self._builder = ColumnBuilder()

    def read(self, source: str, data: bytes) -> Iterator[pl.DataFrame | Unreadable]:
        """Add one file's rows; yield its Unreadable reports and every frame that fills up.

        If reading fails (an exception: a bug, which the caller reports as the file being
        unreadable), the file's rows still in the builder are dropped, since before
        packing such a file's unfinished frame was lost with it.  Its rows in a frame
        already handed on stay, as before; only where that frame was cut differs (here
        at ``frame_rows`` rows of the shared builder, before at ``FRAME_ROWS`` of the file).
        """
        builder = self._builder
        mark = builder.mark()
        try:
            for item in _file_rows(source, data):
                if isinstance(item, Unreadable):
                    yield item
                    continue
                builder.add(item)
                if builder.height >= self.frame_rows:
                    yield builder.take()
                    mark = builder.mark()
        except BaseException:
            builder.rollback(mark)
            raise

    def flush(self) -> Iterator[pl.DataFrame]:
        """The rows read so far as one frame, if any."""
        if self._builder.height:
            yield self._builder.take()


def _file_rows(source: str, data: bytes) -> Iterator[Row | Unreadable]:
    """One file's rows, its records' Unreadables in line, then the records it lacks."""
    if not data.startswith(EVTX_MAGIC):
        yield Unreadable(source, "file", "not an EVTX file (missing 'ElfFile' signature)")
        return
    try:
        records = PyEvtxRecords(data)
    except (OSError, RuntimeError, ValueError) as exc:
        yield Unreadable(source, "file", f"unreadable EVTX file: {exc}")
        return
    ledger = _Ledger(scan_chunks(data))
    for item in records:
        if isinstance(item, str):
            ledger.error(item)
            continue
        ledger.record(item["event_record_id"])
        yield _row(source, item)
    yield from ledger.missing(source)


def _row(source: str, item: dict[str, Any]) -> Row | Unreadable:
    record_id = item["event_record_id"]
    position = f"record {record_id}"
    try:
        row = normalise_evtx_json(orjson.loads(item["data"]))
    except (orjson.JSONDecodeError, ShapeError) as exc:
        return Unreadable(source, position, f"record JSON is invalid: {exc}")
    if row.get("EventRecordID") is None:
        row["EventRecordID"] = str(record_id)
    if row.get(TIMESTAMP_COL) is None:
        row[TIMESTAMP_COL] = iso_utc(item.get("timestamp"))
    row[SOURCE_COL] = source
    row[POSITION_COL] = position
    return row


class PyEvtxRecords:
    """Iterate ``records_json`` turning per-chunk exceptions into messages.

    The ``evtx`` iterator raises for a broken chunk and then carries on with
    the next one; a string item is such an error message.
    """

    def __init__(self, data: bytes) -> None:
        from evtx import PyEvtxParser

        self._iterator = PyEvtxParser(io.BytesIO(data)).records_json()

    def __iter__(self) -> Iterator[dict[str, Any] | str]:
        errors_in_a_row = 0
        while errors_in_a_row < _MAX_CONSECUTIVE_ERRORS:
            try:
                item = next(self._iterator)
            except StopIteration:
                return
            except (RuntimeError, OSError, ValueError) as exc:
                errors_in_a_row += 1
                yield str(exc)
                continue
            errors_in_a_row = 0
            yield cast(dict[str, Any], item)
