"""JSON readers: a vectorised Polars fast path and a per-record slow path.

Layouts: JSON lines (positions "line N", physical 1-based line numbers),
concatenated (pretty-printed) objects and JSON arrays (positions "record N",
1-based ordinals).  A file is JSON lines when one of its first non-blank
lines is, alone, a complete JSON object.

Fast path (JSON lines of flat records, i.e. the big Security-Datasets
corpora): Polars infers the union schema, then re-reads every top-level
scalar field as a String (ints keep their exact digits); objects/arrays are
taken from the raw lines with a JSON path and re-encoded exactly as the
slow path does; the normalised columns are derived with expressions.  It
declines (returns None) whenever its output could differ from the slow
path: a bad line, any float in the schema (Polars prints ``2.0`` as ``2``
and does not always round floats correctly), escaped lone UTF-16
surrogates, non-flat record shapes, a String field that mixes strings with
objects/arrays, integers beyond 64 bits in a file with nested values, or a
row count that differs from the non-blank line count.  The caller then uses
the slow path, which reports bad lines one by one.  One known divergence
remains: a top-level field mixing floats *and* strings is inferred as
String, and a float there is printed by Polars (``2`` for ``2.0``, and
possibly a last-digit difference) rather than by ``repr``; Windows event
logs carry no floats (the OTRF corpus has none).  A key repeated inside
one object keeps its first value on the fast path and its last on the slow
path (orjson); such objects are not valid event records anyway.

Non-UTF-8 bytes are decoded with U+FFFD replacement and the record is kept:
losing a whole event to one bad byte is worse for hunting than one replaced
character.  UTF-16 files (PowerShell ``Out-File``) are transcoded first.

Under a projection, the native reader (``sigmahunt_native.project_flat_lines``,
see native/src/ndjson.rs) replaces the fast path's schema inference and
String re-read with one pass that builds the wanted columns directly; it
returns exactly the fast path's columns or declines, and the fast path then
runs as described above.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from ..native import native
from .fields import FLAT_ALIASES, FLAT_TIMESTAMP_FIELDS, canonical_channel, order_columns
from .formats import UTF16_BOMS, LogFormat, strip_bom
from .frames import ColumnBuilder
from .model import (
    POSITION_COL,
    RAW_COL,
    RAW_HITS_COL,
    RESERVED_COLUMNS,
    SOURCE_COL,
    TIMESTAMP_COL,
    Projection,
    Unreadable,
)
from .normalise import ShapeError, normalise_record, to_str
from .timestamps import iso_utc_series

if TYPE_CHECKING:
    from polars._typing import PolarsDataType

Output = pl.DataFrame | Unreadable

#: JSON lines are processed in slices of about this many bytes (cut at a
#: newline) to bound memory and to let prefetching overlap with parsing.
#: (16 MB: with the native reader and kernel, 4-5% faster than 8 MB over the benchmark
#: corpus at the same peak RSS, ~870 MiB; 4 MB was slower, 32 MB no faster. Session 2's
#: Polars reader preferred 8 MB: same speed, ~90 MB lower peak.)
CHUNK_BYTES = 16 << 20
#: Rows per frame emitted by the slow path (bounds memory on huge files).
SLOW_FRAME_ROWS = 50_000
#: Top-level keys that mean "not a flat record": such files take the
#: per-record path, which dispatches on each record's shape.
_NON_FLAT_KEYS = frozenset({"Event", "winlog", "_source"})
#: Top-level key prefixes that mean "not a flat record" (dotted Winlogbeat fields).
_NON_FLAT_PREFIXES = ("winlog.",)
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_LINE_LAYOUT_PROBE = 5
#: An integer of 20+ digits in value position (it may exceed 64 bits).
_LONG_INT = re.compile(rb"[:,\[]\s*-?[0-9]{20}")
#: The same for text, searched as it is (the pattern is ASCII, so it matches a text where it
#: matches its UTF-8 bytes); encoding each re-read line first added ~20% to the search.
_LONG_INT_TEXT = re.compile(_LONG_INT.pattern.decode(), re.ASCII)
_NON_BLANK = re.compile(rb"[^ \t\r\n]")
#: Fields the flat normalisation derives columns from: read under any projection.
_NORMALISATION_INPUTS = frozenset(
    name.lower() for target, sources in FLAT_ALIASES for name in (target, *sources)
) | frozenset(name.lower() for name in (*FLAT_TIMESTAMP_FIELDS, "Channel", "EventID"))


# --------------------------------------------------------------------------
# entry point


@dataclass
class NativeLines:
    """A JSON-lines chunk's wanted columns as the native reader read them (see :func:`native_columns`)."""

    frame: pl.DataFrame  # the wanted keys' columns, all pl.String
    lines: np.ndarray  # physical line number of each row (int64)
    offsets: np.ndarray  # rows + 1 raw-text offsets into the chunk (int64), as raw_columns makes


@dataclass
class LineChunk:
    """A slice of a JSON lines file, cut after a newline.

    ``buffer``: the slice, as bytes or (with the native reader) a memoryview into the file's
    bytes: the native reader, Arrow and Hyperscan read it in place, where copying every
    slice out cost ~0.35 s per benchmark corpus in the planning thread, holding the GIL.
    ``data``: the same as bytes, made on first use (the Polars and per-record paths).
    """

    first_line: int
    buffer: bytes | memoryview
    newlines: int
    schema: pl.Schema | None = None  # pre-inferred: the fast path may take it
    projection: Projection | None = None  # read only these fields (fast path only)
    native: NativeLines | None = None  # read ahead by the native reader: the fast path takes it

    @property
    def data(self) -> bytes:
        if not isinstance(self.buffer, bytes):
            self.buffer = bytes(self.buffer)
        return self.buffer


@dataclass
class JsonPlan:
    """Everything about a JSON leaf that can be worked out ahead of reading.

    Planning (layout, line chunks, newline counts, the surrogate scan and
    Polars schema inference, or the native reader's whole read) runs in the
    prefetch thread while the previous leaf is being read, which keeps both
    cores busy.
    """

    source: str
    layout: str
    data: bytes | memoryview  # a line chunk's buffer (see LineChunk), else the whole leaf
    forced: LogFormat | None
    chunks: list[LineChunk] = field(default_factory=list)


def read_json(source: str, data: bytes, fmt: LogFormat, projection: Projection | None = None) -> Iterator[Output]:
    """Read one JSON leaf of any layout, yielding frames and Unreadables."""
    for plan in plan_json(source, data, fmt, projection):
        yield from execute_json(plan)


def plan_json(source: str, data: bytes, fmt: LogFormat, projection: Projection | None = None) -> Iterator[JsonPlan]:
    """Plans for a JSON leaf: one per line chunk (so that planning the next
    chunk overlaps reading this one), or one for the whole leaf.

    ``projection``: flat JSON lines taking the fast path are read into the
    projected columns plus their raw line (see :class:`Projection`)."""
    data = to_utf8(data)
    layout = "lines" if fmt is LogFormat.JSONL else detect_layout(data)
    forced = fmt if fmt in (LogFormat.EVTX_JSON, LogFormat.FLAT_JSON, LogFormat.WINLOGBEAT) else None
    if layout != "lines":
        yield JsonPlan(source, layout, data, forced)
        return
    in_place = native() is not None and projection is not None and forced in (None, LogFormat.FLAT_JSON)
    for chunk in split_line_chunks(data, CHUNK_BYTES, in_place):
        if forced in (None, LogFormat.FLAT_JSON):
            chunk.projection = projection
            chunk.native = native_columns(chunk)
            if chunk.native is None:  # declined (or no native reader): Polars infers the schema
                chunk.schema = fast_path_schema(chunk.data)
        yield JsonPlan(source, layout, chunk.buffer, forced, [chunk])


def execute_json(plan: JsonPlan) -> Iterator[Output]:
    if plan.layout == "empty":
        return
    if plan.layout == "lines":
        yield from _read_lines(plan)
    elif plan.layout == "array":
        yield from _frames(plan.source, _array_records(plan.source, plan.data), plan.forced)
    else:
        yield from _frames(plan.source, _concatenated_records(plan.source, plan.data), plan.forced)


def to_utf8(data: bytes) -> bytes:
    """Strip a UTF-8 BOM; transcode UTF-16 (with BOM) to UTF-8."""
    if data.startswith(UTF16_BOMS):
        codec = "utf-16-le" if data[:2] == b"\xff\xfe" else "utf-16-be"
        return data[2:].decode(codec, "replace").encode("utf-8")
    return strip_bom(data)


def detect_layout(data: bytes) -> str:
    """'empty', 'array', 'lines' or 'concatenated' (see module docstring)."""
    first = _NON_BLANK.search(data)
    if first is None:
        return "empty"
    start = first.start()
    if data[start : start + 1] == b"[":
        return "array"
    for _ in range(_LINE_LAYOUT_PROBE):
        end = data.find(b"\n", start)
        line = data[start:] if end < 0 else data[start:end]
        if line.strip() and type(_loads(line)[0]) is dict:
            return "lines"
        if end < 0:
            break
        start = end + 1
    return "concatenated"


# --------------------------------------------------------------------------
# decoding helpers


def _loads(raw: bytes | str) -> tuple[Any, str | None]:
    """Decode one JSON text; returns (value, None) or (None, error).

    orjson first.  Integers of 20+ digits go to the stdlib instead, which
    keeps them exact (orjson turns integers beyond 64 bits into floats).
    Invalid UTF-8 is replaced (U+FFFD) rather than dropping the record, as
    are escaped lone surrogates; raw control characters inside strings are
    tolerated (Polars tolerates them too, and the record is worth keeping).
    """
    exact = _LONG_INT.search(raw) if isinstance(raw, bytes) else _LONG_INT_TEXT.search(raw)
    error: str | None = None
    if not exact:
        try:
            return orjson.loads(raw), None
        except orjson.JSONDecodeError as exc:
            error = str(exc)
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    if not exact:
        try:
            return orjson.loads(text), None
        except orjson.JSONDecodeError:
            pass
    try:
        value = json.loads(text, strict=False)
    except (json.JSONDecodeError, RecursionError) as exc:
        return None, error or _describe(exc)
    return _scrub_surrogates(value), None


def _scrub_surrogates(value: Any) -> Any:
    """Lone surrogates (only stdlib json lets them through) become U+FFFD."""
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_scrub_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_scrub_surrogates(k): _scrub_surrogates(v) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------
# JSON lines


def _read_lines(plan: JsonPlan) -> Iterator[Output]:
    for chunk in plan.chunks:
        frame = fast_flat_frame(plan.source, chunk) if chunk.schema is not None or chunk.native is not None else None
        if frame is not None:
            yield frame
        else:
            yield from _frames(plan.source, _line_records(plan.source, chunk.data, chunk.first_line), plan.forced)


def split_line_chunks(data: bytes, size: int, in_place: bool = False) -> Iterator[LineChunk]:
    """Slices of about ``size`` bytes cut after a newline (no copy if one; ``in_place``:
    memoryviews into ``data``, never a copy)."""
    start, line = 0, 1
    view = memoryview(data) if in_place else None
    while start < len(data):
        end = data.find(b"\n", start + size) if start + size < len(data) else -1
        stop = len(data) if end < 0 else end + 1
        if start == 0 and stop == len(data):
            chunk: bytes | memoryview = data
        else:
            chunk = view[start:stop] if view is not None else data[start:stop]
        newlines = count_newlines(chunk)
        yield LineChunk(line, chunk, newlines)
        line += newlines
        start = stop


def count_newlines(data: bytes | memoryview) -> int:
    """``data.count(b"\\n")``, natively when possible: CPython's count compares byte by
    byte, a CPU-second over the benchmark corpus; the native one is 4x faster."""
    module = native()
    if module is not None:
        return int(module.count_newlines(data))
    return (data if isinstance(data, bytes) else bytes(data)).count(b"\n")


def _line_records(source: str, chunk: bytes, first_line: int) -> Iterator[tuple[str, Any]]:
    for number, line in enumerate(chunk.split(b"\n"), start=first_line):
        if not line.strip():
            continue
        value, error = _loads(line)
        position = f"line {number}"
        if error is None:
            yield position, value
        else:
            yield position, Unreadable(source, position, f"invalid JSON: {error}")


# --------------------------------------------------------------------------
# concatenated objects and arrays (small files: stdlib raw_decode)


def _concatenated_records(source: str, data: bytes) -> Iterator[tuple[str, Any]]:
    """Concatenated objects, as evtx_dump writes them.

    A top-level object starts with ``{`` at the start of a line (nested ones
    are indented, and JSON strings cannot hold raw newlines), so the text is
    cut there and each piece goes to orjson; a piece that does not decode
    as one value (odd formatting or damage) is walked with ``raw_decode``.
    """
    ordinal = 0
    pieces = data.split(b"\n{")
    for index, piece in enumerate(pieces):
        if index:
            piece = b"{" + piece
        elif not piece.strip():
            continue
        value, error = _loads(piece)
        if error is None:
            ordinal += 1
            yield f"record {ordinal}", value
            continue
        for value in _raw_decode_all(source, piece.decode("utf-8", "replace")):
            ordinal += 1
            if isinstance(value, Unreadable):
                value = Unreadable(source, f"record {ordinal}", value.reason)
            yield f"record {ordinal}", value


def _raw_decode_all(source: str, text: str) -> Iterator[Any]:
    """Values of a text holding several JSON values; stops at damage."""
    decoder = json.JSONDecoder()
    pos = 0
    while True:
        pos = _skip_blank(text, pos)
        if pos >= len(text):
            return
        try:
            value, pos = decoder.raw_decode(text, pos)
        except (json.JSONDecodeError, RecursionError) as exc:
            yield Unreadable(source, "", f"invalid JSON: {_describe(exc)}")
            return
        yield _scrub_surrogates(value)


def _array_records(source: str, data: bytes) -> Iterator[tuple[str, Any]]:
    value, error = _loads(data)
    if error is None:
        if type(value) is not list:  # e.g. "[1] [2]" never decodes; "[...]" does
            yield "record 1", value
            return
        for ordinal, item in enumerate(value, start=1):
            yield f"record {ordinal}", item
        return
    yield from _array_records_incremental(source, data.decode("utf-8", "replace"))


def _array_records_incremental(source: str, text: str) -> Iterator[tuple[str, Any]]:
    """A damaged array: keep the elements before (and after) the damage."""
    decoder = json.JSONDecoder()
    pos = _skip_blank(text, 0) + 1  # past "["
    indent = _element_indent(text, pos)
    ordinal = 0
    while True:
        pos = _skip_blank(text, pos)
        if pos >= len(text):
            reason = "JSON array is truncated (no closing ']'): elements after the cut, if any, are lost"
            yield "file", Unreadable(source, "file", reason)
            return
        if text[pos] == "]":
            return
        ordinal += 1
        position = f"record {ordinal}"
        try:
            value, pos = decoder.raw_decode(text, pos)
        except (json.JSONDecodeError, RecursionError) as exc:
            yield position, Unreadable(source, position, f"invalid JSON array element: {_describe(exc)}")
            match = re.compile(r"\n" + re.escape(indent) + r"\{").search(text, pos + 1) if indent is not None else None
            if match is None:
                return
            pos = match.start() + 1
            continue
        yield position, _scrub_surrogates(value)
        pos = _skip_blank(text, pos)
        if pos < len(text) and text[pos] == ",":
            pos += 1


def _element_indent(text: str, pos: int) -> str | None:
    """Indentation of the first element when the array is pretty-printed."""
    match = re.compile(r"[ \t]*\n([ \t]*)\{").match(text, pos)
    return match.group(1) if match else None


def _skip_blank(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n\ufeff":
        pos += 1
    return pos


def _describe(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    return "nesting too deep"


# --------------------------------------------------------------------------
# slow path: records -> frames


def _frames(source: str, records: Iterator[tuple[str, Any]], forced: LogFormat | None) -> Iterator[Output]:
    """Normalise decoded records one by one into frames of bounded size."""
    builder = ColumnBuilder()
    for position, value in records:
        if isinstance(value, Unreadable):
            yield value
            continue
        try:
            row = normalise_record(value, forced)
        except ShapeError as exc:
            yield Unreadable(source, position, str(exc))
            continue
        row[SOURCE_COL] = source
        row[POSITION_COL] = position
        builder.add(row)
        if builder.height >= SLOW_FRAME_ROWS:
            yield builder.take()
    if builder.height:
        yield builder.take()


# --------------------------------------------------------------------------
# fast path


def fast_path_schema(chunk: bytes) -> pl.Schema | None:
    """The union schema of a chunk when the fast path can take it, else None."""
    if _SURROGATE_ESCAPE.search(chunk):  # Polars mangles escaped lone surrogates
        return None
    try:
        schema = pl.scan_ndjson(io.BytesIO(chunk), infer_schema_length=None).collect_schema()
    except (pl.exceptions.PolarsError, ValueError, OverflowError):
        return None
    return schema if _fast_path_schema(schema) else None


def native_columns(chunk: LineChunk) -> NativeLines | None:
    """The chunk's projected columns read by the native reader, or None: no projection,
    no native reader, or it declined (then the Polars fast path decides, as without it).

    The native reader skips Polars' schema inference and String re-read (most of the
    fast path's CPU), and parses without the GIL. It declines wherever the Polars path
    would decline and wherever its output could differ (native/src/ndjson.rs lists them).
    """
    module = native()
    if module is None or chunk.projection is None:
        return None
    wanted, refused = _native_names(chunk.projection.fields)
    result = module.project_flat_lines(chunk.buffer, wanted, refused, list(_NON_FLAT_PREFIXES), chunk.first_line)
    if isinstance(result, str):  # the reason it declined
        return None
    names, buffers, rows, lines, offsets = result
    text = pa.py_buffer(chunk.buffer)
    columns = [_string_view_series(name, rows, text, *column) for name, column in zip(names, buffers, strict=True)]
    frame = pl.DataFrame(columns) if columns else pl.DataFrame(height=rows)
    return NativeLines(frame, np.frombuffer(lines, dtype=np.int64), np.frombuffer(offsets, dtype=np.int64))


@lru_cache(maxsize=8)
def _native_names(fields: frozenset[str]) -> tuple[list[str], list[str]]:
    """The native reader's wanted names (what the fast path reads: the projection and
    the normalisation inputs, lowercased) and refused names (see ``_fast_path_schema``)."""
    return sorted(fields | _NORMALISATION_INPUTS), sorted(_NON_FLAT_KEYS | RESERVED_COLUMNS)


def _string_view_series(
    name: str, rows: int, text: pa.Buffer, validity: bytes | None, views: bytes, decoded: bytes
) -> pl.Series:
    """An Arrow string_view column from the native reader's buffers, as a pl.String Series:
    Polars' own string layout, so neither pyarrow nor Polars copies the strings. The views
    point into the chunk's text (buffer 0) or, for values with escapes, ``decoded``."""
    bitmap = None if validity is None else pa.py_buffer(validity)
    buffers = [bitmap, pa.py_buffer(views), text, pa.py_buffer(decoded)]
    return pl.Series(name, pa.Array.from_buffers(pa.string_view(), rows, buffers))


def fast_flat_frame(source: str, chunk: LineChunk | bytes, first_line: int = 1) -> pl.DataFrame | None:
    """Vectorised read of flat JSON lines, or None when it must decline."""
    if isinstance(chunk, bytes):
        chunk = LineChunk(first_line, chunk, chunk.count(b"\n"), fast_path_schema(chunk))
    if chunk.native is not None:
        extra = raw_columns_at(chunk, chunk.native.offsets)
        return normalise_flat_frame(chunk.native.frame, source, chunk.native.lines, extra)
    if chunk.schema is None:
        return None
    schema = chunk.schema
    if chunk.projection is not None:
        wants = chunk.projection.wants
        schema = pl.Schema({name: dtype for name, dtype in schema.items()
                            if wants(name) or name.lower() in _NORMALISATION_INPUTS})
    nested = [name for name, dtype in schema.items() if dtype.is_nested()]
    scalars = {name: pl.String for name, dtype in schema.items() if not dtype.is_nested()}
    try:
        # bytes, not a BytesIO: Polars then parses without holding the GIL (a file object
        # is read through Python), so the hunt's matching runs on meanwhile.
        frame = pl.read_ndjson(chunk.data, schema=scalars or {"\x00none": pl.String})
    except (pl.exceptions.PolarsError, ValueError, OverflowError):
        return None
    lines = nonblank_line_numbers(chunk, frame.height)
    if lines is None or _hides_nested_values(frame, schema, chunk.data):
        return None
    if nested:
        base = frame.select(list(scalars)) if scalars else pl.DataFrame(height=frame.height)
        with_nested = _with_nested_columns(base, chunk, nested)
        if with_nested is None:
            return None
        frame = with_nested
    names = schema.names()
    frame = frame.select(names) if names else pl.DataFrame(height=frame.height)
    if chunk.projection is not None:
        frame = frame.with_columns(raw_columns(chunk, lines))
    return normalise_flat_frame(frame, source, lines)


def raw_columns(chunk: LineChunk, lines: np.ndarray) -> list[pl.Series]:
    """The raw text of the chunk's records (row i: line ``lines[i]``), without a copy,
    and the projection's raw-line scan of them, if it has a scanner.

    Each string runs from its line's start to the next record's start, so it may end
    with a newline and blank lines: harmless to a JSON decoder and to a literal scan.
    (Schema inference, or the native reader, parsed every value of the chunk and declines
    invalid UTF-8, so the text is valid UTF-8.)
    """
    starts = np.asarray(line_starts(chunk.data), dtype=np.int64)
    return raw_columns_at(chunk, np.append(starts[lines - chunk.first_line], len(chunk.data)))


def raw_columns_at(chunk: LineChunk, offsets: np.ndarray) -> list[pl.Series]:
    """:func:`raw_columns` for rows ``chunk.data[offsets[i]:offsets[i + 1]]`` (int64)."""
    array = pa.LargeStringArray.from_buffers(len(offsets) - 1, pa.py_buffer(offsets), pa.py_buffer(chunk.buffer))
    columns = [pl.Series(RAW_COL, array)]
    scanner = chunk.projection.raw_scanner if chunk.projection is not None else None
    if scanner is not None:
        columns.append(pl.Series(RAW_HITS_COL, scanner.scan(chunk.buffer, offsets), dtype=pl.UInt64))
    return columns


def line_starts(data: bytes) -> list[int]:
    """Offsets at which the lines of ``data`` start. (A ``bytes.find`` loop runs at memchr
    speed: ~10x faster here than NumPy's ``flatnonzero(data == 10)``, which builds and
    scans a byte-sized mask.)"""
    starts = [0]
    append, find = starts.append, data.find
    position = find(b"\n")
    while position >= 0:
        append(position + 1)
        position = find(b"\n", position + 1)
    return starts


def complete_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """The same rows with every field: those read under a projection are re-read from
    their raw line by the per-record reader (the fast path's reference), the others
    are complete already. Meant for a few rows: keyword candidates, detections.

    A raw line the per-record reader cannot decode (Polars read it, so this should not
    happen) keeps its projected fields rather than losing the event."""
    if RAW_COL not in frame.columns:
        return frame
    raw = frame.get_column(RAW_COL)
    if raw.null_count() == raw.len():
        return frame.drop(RAW_COL, RAW_HITS_COL, strict=False)
    builder = ColumnBuilder()
    for record in complete_records(frame):
        builder.add(record)
    return builder.frame()


def complete_records(frame: pl.DataFrame) -> list[dict[str, str | None]]:
    """:func:`complete_rows` as one dict per row (its fields only, no nulls), without
    building a frame: what detection records are made of (a frame of every field of a few
    rows, read back row by row, cost more than the re-read itself)."""
    if RAW_COL not in frame.columns:
        return [{k: v for k, v in record.items() if v is not None} for record in frame.iter_rows(named=True)]
    # Only the raw line and where it comes from are read row by row: a projected JSON batch
    # has hundreds of columns, and a dict of them all per row was built for two of them.
    lines, sources, positions = (frame.get_column(c).to_list() for c in (RAW_COL, SOURCE_COL, POSITION_COL))
    out = []
    for index, line in enumerate(lines):
        row = _complete_row(line, sources[index], positions[index]) if line is not None else None
        if row is None:  # keep the projected fields rather than lose the event
            record = frame.row(index, named=True)
            row = {k: v for k, v in record.items() if v is not None and k not in (RAW_COL, RAW_HITS_COL)}
        out.append(row)
    return out


def _complete_row(line: str, source: str, position: str) -> dict[str, str | None] | None:
    value, error = _loads(line)
    if error is not None:
        return None
    try:
        row = normalise_record(value, LogFormat.FLAT_JSON)
    except ShapeError:
        return None
    row[SOURCE_COL] = source
    row[POSITION_COL] = position
    return row


def _with_nested_columns(frame: pl.DataFrame, chunk: LineChunk, nested: list[str]) -> pl.DataFrame | None:
    """Objects and arrays, as compact JSON identical to the slow path's.

    Polars' own String rendering of nested values does not escape strings
    (``C:\\temp`` would come back with a tab), so each nested field is taken
    from the raw line with a JSON path, then re-encoded like the slow path
    does; nested values repeat a lot (``tags``), so only distinct ones are.
    """
    if any("'" in name or "\\" in name for name in nested):
        return None
    raw = [line for line in chunk.data.split(b"\n") if line.strip()]
    try:
        lines = pl.Series(raw, dtype=pl.Binary).cast(pl.String)
    except pl.exceptions.PolarsError:
        return None
    if lines.len() != frame.height or lines.str.contains(_LONG_INT.pattern.decode()).any():
        return None  # JSON paths turn integers beyond 64 bits into floats
    columns = []
    for name in nested:
        values = lines.str.json_path_match(f"$['{name}']")
        mapping = {}
        for text in values.drop_nulls().unique().to_list():
            value, error = _loads(text)
            if error is not None or _contains_float(value):  # Polars' floats may be off
                return None
            mapping[text] = to_str(value)
        columns.append(values.replace_strict(mapping, default=None, return_dtype=pl.String).alias(name))
    return frame.with_columns(columns)


def _fast_path_schema(schema: pl.Schema) -> bool:
    names = list(schema)
    if any(name in _NON_FLAT_KEYS or name.startswith(_NON_FLAT_PREFIXES) for name in names):
        return False
    if any(name in RESERVED_COLUMNS for name in names):
        return False
    # Polars prints a float 2.0 read as String as "2", and its float parsing
    # is not always correctly rounded: any float goes the slow way.
    return not any(_has_float(dtype) for dtype in schema.values())


def _has_float(dtype: PolarsDataType) -> bool:
    if dtype.is_float() or dtype.is_decimal():
        return True
    if isinstance(dtype, pl.Struct):
        return any(_has_float(field.dtype) for field in dtype.fields)
    if isinstance(dtype, (pl.List, pl.Array)):
        return _has_float(dtype.inner)
    return False


def _contains_float(value: Any) -> bool:
    if type(value) is float:
        return True
    if type(value) is list:
        return any(_contains_float(v) for v in value)
    if type(value) is dict:
        return any(_contains_float(v) for v in value.values())
    return False


def _hides_nested_values(frame: pl.DataFrame, schema: pl.Schema, data: bytes) -> bool:
    """True when a String column may mix strings with objects/arrays.

    Polars infers String for such a mix and prints the nested values as
    spaced JSON, indistinguishable from strings that look like JSON.  Only
    when a String column has a value starting like rendered JSON are the
    raw bytes checked for that key followed by an object or array.
    """
    strings = [name for name, dtype in schema.items() if dtype == pl.String]
    if not strings:
        return False
    looks_nested = frame.select(pl.col(strings).str.contains(r'^(?:\[|\{"|\{\}$)').any()).row(0, named=True)
    for name, suspicious in looks_nested.items():
        if not suspicious:
            continue
        if not (name.isascii() and name.isprintable()) or '"' in name or "\\" in name:
            return True
        if re.search(rb'"' + re.escape(name.encode()) + rb'"\s*:\s*[\[{]', data):
            return True
    return False


def nonblank_line_numbers(chunk: LineChunk, rows: int) -> np.ndarray | None:
    """Physical line numbers of the ``rows`` records Polars read, or None.

    Polars skips blank lines, so when it read as many rows as there are
    lines, row i is line ``first_line + i``; otherwise the blank lines are
    located (rare).  A count that still disagrees means Polars and the line
    reader see different records: the caller must decline.
    """
    count = chunk.newlines + (0 if chunk.data.endswith(b"\n") else 1)
    if rows == count:
        return np.arange(chunk.first_line, chunk.first_line + count, dtype=np.int64)
    lines = chunk.data.split(b"\n")
    numbers = [n for n, line in enumerate(lines, start=chunk.first_line) if line.strip()]
    return np.asarray(numbers, dtype=np.int64) if len(numbers) == rows else None


def normalise_flat_frame(
    frame: pl.DataFrame, source: str, lines: np.ndarray, extra: Sequence[pl.Series] = ()
) -> pl.DataFrame:
    """Vectorised twin of :func:`normalise.normalise_flat` (``extra``: columns to add as they are).

    Assembled from Series rather than with ``with_columns``/``select``: on these wide frames
    each of those runs Polars' lazy engine (~1 ms a call), which over the benchmark corpus
    was a quarter of the reading thread's Python time, all of it holding the GIL the hunting
    thread needs.
    """
    present = set(frame.columns)
    columns = {series.name: series for series in (*frame.get_columns(), *extra)}
    columns[SOURCE_COL] = pl.Series(SOURCE_COL, [source], dtype=pl.String).new_from_index(0, frame.height)
    columns[POSITION_COL] = _position_series(lines)
    columns[TIMESTAMP_COL] = _timestamp_series(frame).alias(TIMESTAMP_COL)
    for target, sources in FLAT_ALIASES:
        found = [frame.get_column(s) for s in sources if s in present]
        if not found:
            continue
        if target in present or len(found) > 1:
            current = [frame.get_column(target)] if target in present else []
            columns[target] = pl.select(pl.coalesce(current + found)).to_series().alias(target)  # rare
        else:  # zero-copy
            columns[target] = found[0].alias(target)
    if "Channel" in present:
        columns["Channel"] = _canonical_channels(frame.get_column("Channel"))
    return pl.DataFrame([columns[name] for name in order_columns(list(columns))])


def _position_series(lines: np.ndarray) -> pl.Series:
    """``"line N"`` per row (Arrow's element-wise join: no lazy query)."""
    numbers = pa.array(lines, type=pa.int64()).cast(pa.string())
    return pl.Series(POSITION_COL, pc.binary_join_element_wise("line ", numbers, ""), dtype=pl.String)


def _timestamp_series(frame: pl.DataFrame) -> pl.Series:
    """First parseable of FLAT_TIMESTAMP_FIELDS, as in ``first_timestamp``."""
    result: pl.Series | None = None
    for name in FLAT_TIMESTAMP_FIELDS:
        if name not in frame.columns:
            continue
        if result is not None and result.null_count() == 0:
            break
        values = frame.get_column(name)
        if result is not None:  # only rows still missing a timestamp
            values = values.zip_with(result.is_null(), pl.Series([None], dtype=pl.String))
        parsed = iso_utc_series(values)
        result = parsed if result is None else result.fill_null(parsed)
    if result is None:
        return pl.Series(TIMESTAMP_COL, [None] * frame.height, dtype=pl.String)
    return result


def _canonical_channels(channel: pl.Series) -> pl.Series:
    """Canonical channel case, decided on the distinct values only (a handful per chunk)."""
    encoded = pc.dictionary_encode(channel.to_arrow())
    values = encoded.dictionary.to_pylist()
    canonical = [canonical_channel(value) for value in values]
    if canonical == values:
        return channel
    mapped = pa.DictionaryArray.from_arrays(encoded.indices, pa.array(canonical, type=pa.string()))
    return pl.Series("Channel", mapped.cast(pa.string()), dtype=pl.String)
