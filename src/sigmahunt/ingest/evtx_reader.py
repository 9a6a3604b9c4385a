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

With the native module (``sigmahunt.native``) the records are parsed, flattened and
put into Arrow columns in Rust (``native/src/evtx_columns.rs``): bench/RESULTS.md
measured the per-record Python work (``orjson.loads``, ``normalise_evtx_json``,
``ColumnBuilder``) at ~9x the parse itself.  The Python path below stays the
reference: the native reader hands back to it every record it is not sure to render
identically, and the ledger, the Unreadable reports and frame cutting are shared.
"""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, cast

import numpy as np
import orjson
import polars as pl

from ..native import native
from .fields import CHANNEL_CANONICAL, SYSTEM_ATTRIBUTE_RENAMES, order_columns
from .formats import EVTX_MAGIC
from .frames import BuilderMark, ColumnBuilder
from .model import POSITION_COL, SOURCE_COL, TIMESTAMP_COL, Unreadable, internal_error
from .normalise import Row, ShapeError, normalise_evtx_json
from .sources import LeafData
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
    #: Records seen: ids ``first_id .. first_id + seen_count - 1`` (records come in order,
    #: nearly always), and the others in ``seen``, none of them in that run. Why not one
    #: set of every id: filling and checking it cost ~0.4 us per record, ~6% of a native
    #: read (bench/RESULTS.md, session 9).
    seen_count: int = 0
    seen: set[int] = field(default_factory=set)

    @property
    def usable(self) -> bool:
        return self.problem is None and self.last_id >= self.first_id

    def has_seen(self, record_id: int) -> bool:
        return 0 <= record_id - self.first_id < self.seen_count or record_id in self.seen

    def mark_seen(self, record_id: int) -> None:
        """Marks one id (of this chunk, not seen yet)."""
        if record_id != self.first_id + self.seen_count:
            self.seen.add(record_id)
            return
        self.seen_count += 1
        while self.first_id + self.seen_count in self.seen:  # a gap closed: the run grows
            self.seen.remove(self.first_id + self.seen_count)
            self.seen_count += 1

    def seen_ids(self) -> set[int]:
        return set(range(self.first_id, self.first_id + self.seen_count)) | self.seen


def scan_chunks(data: LeafData) -> list[ChunkInfo]:
    """Chunk slots present in (or declared by) the file, with their id ranges."""
    declared = _FILE_HEADER.unpack_from(data, 0)[-1] if len(data) >= _FILE_HEADER.size else 0
    present = max(0, -(-(len(data) - FILE_HEADER_BLOCK) // CHUNK_SIZE))
    chunks = []
    for index in range(max(declared, present)):
        chunk = _scan_chunk(data, index, declared)
        if chunk is not None:
            chunks.append(chunk)
    return chunks


def _scan_chunk(data: LeafData, index: int, declared: int) -> ChunkInfo | None:
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

    def records(self, ids: bytes) -> None:
        """:meth:`record` for each id of a native step (u64 little-endian), in bulk.

        Why: one Python call per record cost ~10% of a native read. The ids are cut into
        runs of consecutive ids; a run that continues the cursor's chunk, whose ids are all
        seen in order so far, is exactly what calling :meth:`record` on each would mark.
        Anything else (a chunk boundary, ids out of order or repeated) goes one by one.
        """
        values = np.frombuffer(ids, dtype="<u8")
        if not len(values):
            return
        breaks = np.flatnonzero(np.diff(values) != 1) + 1
        starts = np.concatenate(([0], breaks))
        counts = np.diff(np.concatenate((starts, [len(values)])))
        for first, count in zip(values[starts].tolist(), counts.tolist()):
            while count:
                taken = self._continue_cursor_chunk(first, count)
                if not taken:
                    self.record(first)
                    taken = 1
                first += taken
                count -= taken

    def _continue_cursor_chunk(self, first: int, count: int) -> int:
        """Marks the leading ids of ``first, first + 1, ...`` (``count`` of them) that
        continue the cursor chunk's in-order run; returns how many (0: none)."""
        if self.cursor >= len(self.usable):
            return 0
        chunk = self.usable[self.cursor]
        if chunk.seen or first != chunk.first_id + chunk.seen_count or first > chunk.last_id:
            return 0
        taken = min(count, chunk.last_id - first + 1)
        chunk.seen_count += taken
        return taken

    def record(self, record_id: int) -> None:
        for offset in range(self.cursor, len(self.usable)):
            chunk = self.usable[offset]
            if chunk.first_id <= record_id <= chunk.last_id and not chunk.has_seen(record_id):
                chunk.mark_seen(record_id)
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
            for record_id in range(chunk.first_id + chunk.seen_count, chunk.last_id + 1):
                if record_id not in chunk.seen:
                    yield Unreadable(source, f"record {record_id}", reason)

    @staticmethod
    def _reason(chunk: ChunkInfo, stray: str) -> str:
        if chunk.error:
            return f"unparseable record: {chunk.error}"
        if chunk.truncated:
            return f"record lost: file truncated inside chunk {chunk.index + 1}"
        return "record could not be parsed" + (f": {stray}" if stray else "")


def read_evtx(source: str, data: LeafData) -> Iterator[pl.DataFrame | Unreadable]:
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
        module = native()
        self._builder: ColumnBuilder | NativeColumns
        if module is not None:
            self._builder = NativeColumns(module)
        else:
            self._builder = ColumnBuilder()

    def read(self, source: str, data: LeafData) -> Iterator[pl.DataFrame | Unreadable]:
        """:meth:`read_files` of one file."""
        return self.read_files([(source, data)])

    def read_files(self, files: Sequence[tuple[str, LeafData]]) -> Iterator[pl.DataFrame | Unreadable]:
        """Add the files' rows in order; yield their Unreadable reports and every frame
        that fills up.

        A file whose reading fails with an exception (a bug) is reported as unreadable
        (:func:`internal_error`) and its rows still in the builder are dropped, since before
        packing such a file's unfinished frame was lost with it; its rows in a frame already
        handed on stay.  A consumer that stops inside a file leaves the builder as it was
        before that file (rows of frames handed on aside).
        """
        if isinstance(self._builder, NativeColumns):
            yield from _NativeUnit(self._builder, files, self.frame_rows).read()
            return
        for index, (source, data) in enumerate(files):
            file = _UnitFile(index, source, data, self._builder.mark())
            try:
                yield from _python_rows(self._builder, file, self.frame_rows)
            except Exception as exc:
                self._builder.rollback(file.mark)
                yield internal_error(source, exc)
            except BaseException:
                self._builder.rollback(file.mark)
                raise

    def flush(self) -> Iterator[pl.DataFrame]:
        """The rows read so far as one frame, if any."""
        if self._builder.height:
            yield self._builder.take()


class NativeColumns:
    """:class:`ColumnBuilder`'s interface over the native ``EvtxColumns``.

    Rows the native reader renders go in directly; rows of records it hands back (and of
    files it declines) are added through :meth:`add`, so that one builder keeps input order.
    """

    def __init__(self, module: ModuleType, hand_back_every: int = 0) -> None:
        """``hand_back_every``: tests only, the native reader hands every n-th record back."""
        self.module = module
        self.columns = module.EvtxColumns(CHANNEL_CANONICAL, SYSTEM_ATTRIBUTE_RENAMES, hand_back_every)

    @property
    def height(self) -> int:
        return int(self.columns.height)

    def add(self, row: Row) -> None:
        self.columns.add_row(row)

    def take(self) -> pl.DataFrame:
        """The rows as a frame (columns in canonical order, all ``pl.String``); start afresh.

        The columns come as one Arrow struct array of ``string_view`` columns, through the
        Arrow PyCapsule interface, which Polars adopts without converting or copying them
        (``large_string`` ones cost it ~11 ns per value; a ``pyarrow`` array per column
        and a table cost ~0.9 ms per frame: bench/RESULTS.md, session 11).
        """
        exported = self.columns.take()
        names = exported.names
        if not names:
            return pl.DataFrame(height=exported.height)
        index = {name: position for position, name in enumerate(names)}
        exported.reorder([index[name] for name in order_columns(names)])
        return pl.DataFrame(exported)

    def mark(self) -> BuilderMark:
        return BuilderMark(*self.columns.mark())

    def rollback(self, mark: BuilderMark) -> None:
        self.columns.rollback(mark.height, mark.width)


Builder = ColumnBuilder | NativeColumns


@dataclass
class _UnitFile:
    """A file of :meth:`EvtxPacker.read_files` while it is read."""

    index: int
    source: str
    data: LeafData
    #: Where the builder stood when the file's rows began (or after the last frame taken).
    mark: BuilderMark
    #: Record ids of the rows added natively, kept until the file needs a ledger.
    ids: list[bytes] = field(default_factory=list)
    ledger: _Ledger | None = None
    errors_in_a_row: int = 0

    def add_ids(self, ids: bytes) -> None:
        if not ids:
            return
        self.errors_in_a_row = 0
        if self.ledger is None:
            self.ids.append(ids)
        else:
            self.ledger.records(ids)

    def need_ledger(self) -> _Ledger:
        """The file's ledger, made (and given the ids so far) on first need: a file whose
        records all came as its chunk headers promise never needs one."""
        if self.ledger is None:
            self.ledger = _Ledger(scan_chunks(self.data))
            for ids in self.ids:
                self.ledger.records(ids)
            self.ids = []
        return self.ledger


def _python_rows(builder: Builder, file: _UnitFile, frame_rows: int) -> Iterator[pl.DataFrame | Unreadable]:
    """One file read by the Python reader (:func:`_file_rows`) into ``builder``."""
    for item in _file_rows(file.source, file.data):
        if isinstance(item, Unreadable):
            yield item
            continue
        builder.add(item)
        if builder.height >= frame_rows:
            yield _take(builder, file)


def _take(builder: Builder, file: _UnitFile) -> pl.DataFrame:
    """The full builder's frame; ``file``'s rows in it are handed on, so its mark moves."""
    frame = builder.take()
    file.mark = builder.mark()
    return frame


class _NativeUnit:
    """:meth:`EvtxPacker.read_files` with the native reader (``EvtxUnit``).

    The native unit reads on across files until a frame is full or Python is needed (a
    parser error, a record it hands back, a file it refuses); Python keeps each file's
    ledger only when its records did not all come as promised, and renders the records
    handed back and the files refused with the reference reader, in order.
    """

    def __init__(self, builder: NativeColumns, files: Sequence[tuple[str, LeafData]], frame_rows: int) -> None:
        self.builder = builder
        self.files = list(files)
        self.frame_rows = frame_rows
        module = builder.module
        self.module = module
        self.unit = module.EvtxUnit(self.files)
        self.opened: dict[int, _UnitFile] = {}
        #: Files finish in order: the first one not finished.
        self.first_open = 0
        #: The file the event being handled belongs to.
        self.current: _UnitFile | None = None

    def read(self) -> Iterator[pl.DataFrame | Unreadable]:
        while self.first_open < len(self.files):
            try:
                yield from self._step()
            except Exception as exc:
                file = self.current
                if file is None:
                    raise
                self.builder.rollback(file.mark)
                yield internal_error(file.source, exc)
                self.unit.restart_at(file.index + 1)  # later files' rows went with the rollback
                self.opened.clear()
                self.first_open = file.index + 1
            except BaseException:
                if self.current is not None:
                    self.builder.rollback(self.current.mark)
                raise

    def _file(self, index: int, mark: BuilderMark | None = None) -> _UnitFile:
        file = self.opened.get(index)
        if file is None:
            source, data = self.files[index]
            file = self.opened[index] = _UnitFile(index, source, data, mark or self.builder.mark())
        self.current = file
        return file

    def _finished(self, file: _UnitFile) -> None:
        del self.opened[file.index]
        self.first_open = file.index + 1
        self.current = None

    def _step(self) -> Iterator[pl.DataFrame | Unreadable]:
        module, builder = self.module, self.builder
        self._file(self.first_open)  # what a failing step is blamed on
        segments, kind, payload = self.unit.step(builder.columns, self.frame_rows)
        for index, height, width, ids, finished, complete in segments:
            if finished and complete:  # all its records came as promised: nothing to report
                # (what _file, add_ids and _finished would do; ~3 us of Python a file, and
                # a folder of small files is mostly these)
                self.opened.pop(index, None)
                self.first_open, self.current = index + 1, None
                continue
            segment_file = self._file(index, BuilderMark(height, width))
            segment_file.add_ids(ids)
            if finished:
                if not complete:
                    yield from segment_file.need_ledger().missing(segment_file.source)
                self._finished(segment_file)
        file = self.current  # the file the event belongs to (None between files)
        if kind == module.EVTX_STEP_FULL:
            yield builder.take() if file is None else _take(builder, file)
        elif kind == module.EVTX_STEP_ERROR:
            assert file is not None
            ledger = file.need_ledger()
            file.errors_in_a_row += 1
            ledger.error(payload)
            if file.errors_in_a_row >= _MAX_CONSECUTIVE_ERRORS:  # stop asking the parser
                self.unit.skip()
                yield from ledger.missing(file.source)
                self._finished(file)
        elif kind == module.EVTX_STEP_RECORD:
            assert file is not None
            file.errors_in_a_row = 0
            record_id, timestamp, text = payload
            file.need_ledger().record(record_id)
            row = _row(file.source, {"event_record_id": record_id, "timestamp": timestamp, "data": text})
            if isinstance(row, Unreadable):
                yield row
            else:
                builder.add(row)
                if builder.height >= self.frame_rows:
                    yield _take(builder, file)
        elif kind == module.EVTX_STEP_REFUSED:
            # the parser refuses the file (or it is not EVTX): the Python reader words the report
            refused = self._file(payload)
            yield from _python_rows(builder, refused, self.frame_rows)
            self._finished(refused)


def _file_rows(source: str, data: LeafData) -> Iterator[Row | Unreadable]:
    """One file's rows, its records' Unreadables in line, then the records it lacks."""
    if data[: len(EVTX_MAGIC)] != EVTX_MAGIC:
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

    def __init__(self, data: LeafData) -> None:
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
