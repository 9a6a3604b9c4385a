"""The native EVTX reader (``native/src/evtx_columns.rs``) against the Python one.

The Python reader is the reference: with the native module, ``EvtxPacker`` must yield the
same frames (columns, order, values, nulls) and the same Unreadable reports (positions,
reasons), in the same order, as with ``SIGMAHUNT_NATIVE=off``.  Inputs: every EVTX file
in tests/fixtures and ../shared/sigma/regression_data (skipped where absent), dense files
packed from them, and damaged variants built as tests/test_ingest.py builds them, plus
seeded random damage (truncations, overwritten bytes) that drives the parser's error paths.

Skipped when the native module is absent, unless ``SIGMAHUNT_REQUIRE_NATIVE=1`` (then a
missing module fails).
"""

from __future__ import annotations

import gc
import os
import random
import struct
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from polars.testing import assert_frame_equal

from sigmahunt.ingest import evtx_reader
from sigmahunt.ingest.frames import ColumnBuilder
from sigmahunt.ingest.model import Unreadable
from sigmahunt.native import native

FIXTURES = Path(__file__).parent / "fixtures"
SHARED = Path(__file__).resolve().parents[2] / "shared"
REGRESSION = SHARED / "sigma" / "regression_data"

needs_shared = pytest.mark.skipif(not REGRESSION.is_dir(), reason="../shared is absent")

Item = pl.DataFrame | Unreadable
Input = tuple[str, bytes]


@pytest.fixture(autouse=True)
def _native_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip (or fail, with SIGMAHUNT_REQUIRE_NATIVE=1) without the native EVTX reader."""
    monkeypatch.delenv("SIGMAHUNT_NATIVE", raising=False)
    module = native()
    if module is None or not hasattr(module, "EvtxUnit"):
        if os.environ.get("SIGMAHUNT_REQUIRE_NATIVE") == "1":
            pytest.fail("SIGMAHUNT_REQUIRE_NATIVE=1 but the native EVTX reader is not available")
        pytest.skip("native module absent")


def evtx_inputs() -> list[Input]:
    paths = sorted(FIXTURES.rglob("*.evtx"))
    if REGRESSION.is_dir():
        paths += sorted(REGRESSION.rglob("*.evtx"))
    return [(str(p), p.read_bytes()) for p in paths]


def make_packer(use_native: bool, frame_rows: int, hand_back_every: int = 0) -> evtx_reader.EvtxPacker:
    previous = os.environ.pop("SIGMAHUNT_NATIVE", None)
    if not use_native:
        os.environ["SIGMAHUNT_NATIVE"] = "off"
    try:
        packer = evtx_reader.EvtxPacker(frame_rows)
    finally:
        os.environ.pop("SIGMAHUNT_NATIVE", None)
        if previous is not None:
            os.environ["SIGMAHUNT_NATIVE"] = previous
    assert isinstance(packer._builder, evtx_reader.NativeColumns) is use_native
    if hand_back_every:
        packer._builder = evtx_reader.NativeColumns(packer._builder.module, hand_back_every)
    return packer


def packed_read(
    inputs: Sequence[Input], *, use_native: bool, frame_rows: int, hand_back_every: int = 0, one_unit: bool = True
) -> list[Item]:
    """Everything one ``EvtxPacker`` yields for the inputs, in order: read as one unit
    (``read_files``, as a hunt reads a folder), or file by file (``read``)."""
    packer = make_packer(use_native, frame_rows, hand_back_every)
    items: list[Item] = []
    if one_unit:
        items += packer.read_files(inputs)
    else:
        for source, data in inputs:
            items += packer.read(source, data)
    items += packer.flush()
    return items


def assert_same_items(
    inputs: Sequence[Input], frame_rows: int = evtx_reader.FRAME_ROWS, hand_back_every: int = 0, one_unit: bool = True
) -> tuple[int, int]:
    """Native == Python reader on the inputs; returns (rows, unreadables) compared."""
    expected = packed_read(inputs, use_native=False, frame_rows=frame_rows, one_unit=False)
    actual = packed_read(
        inputs, use_native=True, frame_rows=frame_rows, hand_back_every=hand_back_every, one_unit=one_unit
    )
    assert_equal_items(actual, expected)
    return count_items(expected)


def count_items(items: Sequence[Item]) -> tuple[int, int]:
    """(rows, unreadables) in the items."""
    return sum(i.height for i in items if isinstance(i, pl.DataFrame)), sum(isinstance(i, Unreadable) for i in items)


def assert_equal_items(actual: Sequence[Item], expected: Sequence[Item]) -> None:
    assert [type(i).__name__ for i in actual] == [type(i).__name__ for i in expected]
    for got, want in zip(actual, expected, strict=True):
        if isinstance(want, Unreadable):
            assert got == want
            continue
        assert isinstance(got, pl.DataFrame)
        assert got.columns == want.columns
        assert got.dtypes == want.dtypes
        assert_frame_equal(got, want)


@pytest.mark.parametrize("one_unit", [True, False])
def test_no_fixture_or_regression_evtx_differs(one_unit: bool) -> None:
    inputs = evtx_inputs()
    if not inputs:
        pytest.skip("no EVTX file in tests/fixtures and ../shared is absent")
    rows, _ = assert_same_items(inputs, one_unit=one_unit)
    assert rows > 0


@needs_shared
@pytest.mark.parametrize("frame_rows", [1, 7, 50])
def test_frames_cut_at_the_same_rows(frame_rows: int) -> None:
    rows, _ = assert_same_items(evtx_inputs()[:20], frame_rows)
    assert rows > 0


@needs_shared
def test_dense_packed_files() -> None:
    """Thousands of records per file (many chunks): the shape the benchmark measures."""
    chunks = [c for _, data in evtx_inputs() for c in _chunks(data)]
    template = evtx_inputs()[0][1]
    dense = _evtx_with_chunks(chunks * 3, template)
    rows, problems = assert_same_items([("dense.evtx", dense)], 1000)
    assert rows > 100 and problems == 0


def _chunks(data: bytes) -> Iterator[bytes]:
    for offset in range(4096, len(data) - 65535, 65536):
        chunk = data[offset : offset + 65536]
        if chunk.startswith(b"ElfChnk\x00"):
            yield chunk


def _evtx_with_chunks(chunks: list[bytes], template: bytes) -> bytes:
    """An EVTX file made of the given 64 KiB chunks (header from template), as test_ingest."""
    header = bytearray(template[:4096])
    struct.pack_into("<Q", header, 16, len(chunks) - 1)
    struct.pack_into("<H", header, 42, len(chunks))
    struct.pack_into("<I", header, 124, zlib.crc32(bytes(header[:120])))
    return bytes(header) + b"".join(chunks)


def damaged_inputs() -> list[Input]:
    """The damage tests/test_ingest.py and test_evtx_packing.py apply, on three chunks."""
    files = [data for _, data in evtx_inputs()]
    chunks = [next(_chunks(d)) for d in files[:3]]
    whole = _evtx_with_chunks(chunks, files[0])
    broken = bytearray(whole)
    broken[4096 + 65536 : 4096 + 65536 + 8] = b"XXXXXXXX"
    damaged = bytearray(whole)
    damaged[4096 + 65536 + 600 : 4096 + 65536 + 900] = b"\xff" * 300
    scrambled = bytearray(whole)
    scrambled[8:40] = b"\xff" * 32
    never_used = bytes(65536)  # a preallocated slot: the parser skips it
    gaps = _evtx_with_chunks([chunks[0], never_used, chunks[1], chunks[2], never_used], files[0])
    return [
        ("gaps.evtx", gaps),
        ("whole.evtx", whole),
        ("cut.evtx", whole[: 4096 + 65536 + 30_000]),
        ("cut_header.evtx", whole[:4000]),
        ("chunk.evtx", bytes(broken)),
        ("record.evtx", bytes(damaged)),
        ("header.evtx", b"ElfFilX\x00" + whole[8:]),
        ("fields.evtx", bytes(scrambled)),
        ("notevtx.evtx", b"not an EVTX file at all"),
        ("empty.evtx", b"ElfFile\x00" + b"\x00" * 100),
    ]


@needs_shared
@pytest.mark.parametrize("frame_rows", [2, 50_000])
def test_records_handed_back_keep_their_place(frame_rows: int) -> None:
    """Records the native side hands back (floats, odd JSON...) are rendered by ``_row``
    in their place among the native rows (forced here: every 3rd record id)."""
    rows, problems = assert_same_items([*evtx_inputs()[:30], *damaged_inputs()], frame_rows, hand_back_every=3)
    assert rows > 0 and problems > 0


@needs_shared
def test_damaged_files_report_the_same() -> None:
    _, problems = assert_same_items(damaged_inputs())
    assert problems > 0


def randomly_damaged_inputs() -> list[Input]:
    """Seeded random overwrites and cuts of ``whole.evtx``."""
    rng = random.Random(20261128)
    whole = damaged_inputs()[0][1]
    inputs: list[Input] = []
    for trial in range(60):
        data = bytearray(whole)
        if trial % 4 == 0:
            data = data[: rng.randrange(4096, len(data))]
        else:
            start = rng.randrange(4096, len(data))
            for at in range(start, min(len(data), start + rng.choice([1, 4, 32, 400]))):
                data[at] = rng.randrange(256)
        inputs.append((f"fuzz{trial}.evtx", bytes(data)))
    return inputs


@needs_shared
def test_random_damage_reports_the_same() -> None:
    """Seeded random overwrites and cuts: the parser's record, chunk and file errors."""
    rows, problems = assert_same_items(randomly_damaged_inputs(), 500)
    assert rows > 0 and problems > 0


def unit_segments(inputs: Sequence[Input]) -> list[tuple[int, bytes, bool]]:
    """``(file index, ids, complete)`` of every file a native unit finished reading."""
    module = native()
    assert module is not None
    columns = evtx_reader.NativeColumns(module)
    unit = module.EvtxUnit(list(inputs))
    ids: dict[int, bytes] = {}
    finished = []
    while True:
        segments, kind, payload = unit.step(columns.columns, 1_000_000)
        for index, _height, _width, got, done, complete in segments:
            ids[index] = ids.get(index, b"") + got
            if done:
                finished.append((index, ids.pop(index), complete))
        if kind == module.EVTX_STEP_DONE:
            return finished
        if kind == module.EVTX_STEP_FULL:
            columns.take()


@needs_shared
def test_a_file_called_complete_has_nothing_to_report() -> None:
    """A file the native unit calls complete skips Python's ledger: on every input, clean
    or damaged, the ledger given its ids must report nothing for such a file."""
    inputs = [*evtx_inputs(), *damaged_inputs(), *randomly_damaged_inputs()]
    finished = unit_segments(inputs)
    complete = incomplete = 0
    for index, ids, is_complete in finished:
        source, data = inputs[index]
        ledger = evtx_reader._Ledger(evtx_reader.scan_chunks(data))
        ledger.records(ids)
        reports = list(ledger.missing(source))
        if is_complete:
            assert reports == [], source
            complete += 1
        else:
            incomplete += 1
    assert complete >= len(evtx_inputs()) and incomplete > 10


@needs_shared
@pytest.mark.parametrize("frame_rows", [7, 50_000])
def test_an_internal_error_in_a_unit_drops_that_file_and_rereads_the_next(
    monkeypatch: pytest.MonkeyPatch, frame_rows: int
) -> None:
    """A file whose ledger fails (a bug) once the unit has read on past it: its rows and
    the later files' go, it is reported, and the later files are read again, so the unit
    yields what reading file by file does (there the failure comes at the file's start)."""
    damaged = dict(damaged_inputs())
    inputs = [*evtx_inputs()[:5], ("record.evtx", damaged["record.evtx"]), *evtx_inputs()[5:12]]
    original = evtx_reader.scan_chunks

    def failing(data: evtx_reader.LeafData) -> list[evtx_reader.ChunkInfo]:
        if data is damaged["record.evtx"]:
            raise RuntimeError("boom")
        return original(data)

    monkeypatch.setattr(evtx_reader, "scan_chunks", failing)
    expected = packed_read(inputs, use_native=False, frame_rows=frame_rows, one_unit=False)
    actual = packed_read(inputs, use_native=True, frame_rows=frame_rows)
    assert_equal_items(actual, expected)
    reports = [i for i in actual if isinstance(i, Unreadable)]
    assert [(r.source, r.position) for r in reports if "boom" in r.reason] == [("record.evtx", "file")]
    alone = [packed_read([i], use_native=False, frame_rows=9) for i in inputs if i[0] != "record.evtx"]
    assert count_items(actual)[0] == sum(count_items(items)[0] for items in alone)


@needs_shared
@pytest.mark.parametrize("stop_after", [1, 2, 4, 7])
def test_closing_inside_a_unit_leaves_the_builder_as_file_by_file(stop_after: int) -> None:
    """A consumer that stops while a unit is read (after some frames and reports): the
    builder keeps what reading file by file would have left in it."""
    inputs = [*evtx_inputs()[:8], *damaged_inputs(), *evtx_inputs()[8:16]]

    def stop(use_native: bool) -> list[Item]:
        packer = make_packer(use_native, 3)
        reading = packer.read_files(inputs)
        items = [item for _, item in zip(range(stop_after), reading)]
        reading.close()
        return items + list(packer.flush())

    assert_equal_items(stop(True), stop(False))


@needs_shared
def test_closing_mid_file_rolls_back_the_same() -> None:
    """A consumer that stops inside a file (GeneratorExit) leaves the same rows behind."""
    inputs = evtx_inputs()[:6]

    def stop_in_last(use_native: bool) -> list[Item]:
        previous = os.environ.get("SIGMAHUNT_NATIVE")
        os.environ["SIGMAHUNT_NATIVE"] = "1" if use_native else "off"
        try:
            packer = evtx_reader.EvtxPacker(3)
        finally:
            os.environ.pop("SIGMAHUNT_NATIVE")
            if previous is not None:
                os.environ["SIGMAHUNT_NATIVE"] = previous
        items: list[Item] = []
        for source, data in inputs[:-1]:
            items += packer.read(source, data)
        reading = packer.read(*inputs[-1])
        items.append(next(reading, None) or pl.DataFrame())
        reading.close()
        return items + list(packer.flush())

    expected, actual = stop_in_last(False), stop_in_last(True)
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        if isinstance(want, pl.DataFrame):
            assert isinstance(got, pl.DataFrame)
            assert_frame_equal(got, want)
        else:
            assert got == want


def test_rows_added_from_python_build_the_same_frame() -> None:
    """Records handed back to Python (and non-EVTX reports' files) enter through ``add``."""
    module = native()
    assert module is not None
    rows = [
        {"a": "1", "b": None, "_source": "s", "_position": "record 1"},
        {"a": "é\x00\n", "c": "", "_source": "s", "_position": "record 2"},
        {"b": "x" * 1000, "_source": "s", "_position": "record 3"},
    ]
    python, rust = ColumnBuilder(), evtx_reader.NativeColumns(module)
    for row in rows:
        python.add(dict(row))
        rust.add(dict(row))
    mark_python, mark_rust = python.mark(), rust.mark()
    assert mark_python == mark_rust
    for builder in (python, rust):
        builder.add({"d": "gone"})
        builder.add({"a": "gone too", "b": "a long value rolled back with its row"})
    python.rollback(mark_python)
    rust.rollback(mark_rust)
    for builder in (python, rust):  # rows after a rollback reuse the rows it freed
        builder.add({"b": "after", "_source": "s", "_position": "record 4"})
    assert_frame_equal(rust.take(), python.take())
    assert rust.height == 0

def test_columns_are_handed_over_as_one_arrow_struct_array() -> None:
    """``take`` exports the columns once, through the Arrow PyCapsule interface, as a struct
    array of ``string_view`` columns in the order asked for; the buffers live as long as a
    frame uses them, after the builder and the export are gone."""
    module = native()
    assert module is not None
    rust = evtx_reader.NativeColumns(module)
    rust.add({"a": "short", "b": "a value longer than twelve bytes"})
    rust.add({"b": None, "c": "x"})
    exported = rust.columns.take()
    assert (exported.height, exported.names) == (2, ["a", "b", "c"])
    for order in ([0, 3], [1, 1]):
        with pytest.raises(ValueError, match="reorder"):
            exported.reorder(order)
    exported.reorder([2, 0])  # "b" left out
    with pytest.raises(ValueError, match="own schema"):
        exported.__arrow_c_array__(pa.struct([]).__arrow_c_schema__())
    array = pa.array(exported)
    with pytest.raises(ValueError, match="already exported"):
        exported.__arrow_c_array__()
    assert array.type == pa.struct([pa.field("c", pa.string_view()), pa.field("a", pa.string_view())])
    assert [array.field(i).null_count for i in range(2)] == [1, 1]
    assert array.to_pylist() == [{"c": None, "a": "short"}, {"c": "x", "a": None}]
    rust.add({"a": "short", "b": "a value longer than twelve bytes"})
    frame = rust.take()
    del rust, exported, array
    gc.collect()
    assert frame.to_dicts() == [{"a": "short", "b": "a value longer than twelve bytes"}]


def test_exported_columns_are_freed_imported_or_not() -> None:
    """The release callbacks free every buffer: whether Polars adopts the columns and
    drops them, or the capsules go without anyone importing them."""
    import resource

    module = native()
    assert module is not None
    value = "v" * 200

    def export() -> object:
        rust = evtx_reader.NativeColumns(module)
        for row in range(20_000):  # ~4 MB of strings in each of five columns, a null in each
            rust.add({f"f{k}": value for k in range(5) if (row + k) % 7})
        return rust.columns.take()

    def peak_mib() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    for _ in range(3):  # warm the allocator
        pl.DataFrame(export())
    before = peak_mib()
    for _ in range(25):  # ~500 MB if nothing were freed
        frame = pl.DataFrame(export())
        assert frame.height == 20_000 and frame["f1"].null_count() == sum((r + 1) % 7 == 0 for r in range(20_000))
        del frame
        export().__arrow_c_array__()  # capsules dropped unimported
    assert peak_mib() - before < 100



# -- the Rust port of timestamps.iso_utc ------------------------------------------------

_STAMP_PIECES = [
    "2020-10-19", "0001-01-01", "9999-12-31", "2024-02-29", "2023-02-29", "0000-01-01", "2020-13-01",
    "T", "t", " ", "12:28:44", "00:00:00", "23:59:59", "24:00:00", "12:60:00",
    ".", ",", ".5", ".6466242", ".123456789", ",1", "", "Z", "z", "UTC", " UTC", "+02:00", "-0530",
    "+14:00", "-23:59", "+2:00", "+02:0", " ", "\t", "\n", "\u00a0", "\u0085", "\u001c", "\u2003", "\x0b",
    "x", "9", "-",
]


def test_rust_iso_utc_agrees_with_python_on_generated_strings() -> None:
    """Every string built from timestamp pieces (valid, odd and broken) gets the same answer."""
    import random

    from sigmahunt.ingest.timestamps import iso_utc
    from sigmahunt.native import native

    module = native()
    if module is None or not hasattr(module, "evtx_iso_utc"):
        pytest.skip("the native EVTX reader is not available")
    rng = random.Random(5)
    values = ["2026-04-20T10:00:35.6466242Z UTC", "0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00",
              " 2020-10-19T12:28:44.1 ", "2020-10-19 12:28:44", "2020-10-19T12:28:44Z\nUTC"]
    for _ in range(20_000):
        values.append("".join(rng.choice(_STAMP_PIECES) for _ in range(rng.randint(1, 7))))
        date, time = rng.choice(_STAMP_PIECES[:7]), rng.choice(_STAMP_PIECES[10:15])
        tail = "".join(rng.choice(_STAMP_PIECES[15:]) for _ in range(rng.randint(0, 3)))
        values.append(f"{rng.choice(['', ' '])}{date}{rng.choice('Tt ')}{time}{tail}")
    mismatches = [(v, module.evtx_iso_utc(v), iso_utc(v)) for v in values if module.evtx_iso_utc(v) != iso_utc(v)]
    assert mismatches == []
    assert sum(iso_utc(v) is not None for v in values) > 2_000  # the valid shapes are well represented


def test_native_iso_utc_column_agrees_with_the_polars_one() -> None:
    """``iso_utc_series`` (native ``iso_utc_array``) against its Polars twin and the
    per-value function, on the same generated strings plus nulls."""
    import random

    from sigmahunt.ingest.timestamps import iso_utc, iso_utc_series, iso_utc_series_polars
    from sigmahunt.native import native

    module = native()
    if module is None or not hasattr(module, "iso_utc_array"):
        pytest.skip("the native timestamp column is not available")
    rng = random.Random(9)
    values: list[str | None] = [None, "2020-10-19T12:28:44Z", None]
    for _ in range(20_000):
        date, time = rng.choice(_STAMP_PIECES[:7]), rng.choice(_STAMP_PIECES[10:15])
        tail = "".join(rng.choice(_STAMP_PIECES[15:]) for _ in range(rng.randint(0, 3)))
        stamp = f"{rng.choice(['', ' '])}{date}{rng.choice('Tt ')}{time}{tail}"
        values.append(stamp if rng.random() > 0.05 else None)
    series = pl.Series("ts", values, dtype=pl.String)
    native_column = iso_utc_series(series)
    assert native_column.name == "ts" and native_column.dtype == pl.String
    assert native_column.to_list() == iso_utc_series_polars(series).to_list() == [iso_utc(v) for v in values]
    assert iso_utc_series(series.slice(7, 100)).to_list() == [iso_utc(v) for v in values[7:107]]  # an offset
