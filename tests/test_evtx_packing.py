"""EVTX packing: rows of consecutive EVTX files share frames (``EvtxPacker``).

Packing must change nothing but how rows are cut into batches: the rows, columns,
values, ``_source``/``_position`` and Unreadable reports of a mixed read are exactly
those of reading each file alone, in input order.  EVTX samples come from ../shared
(SigmaHQ regression data; skipped where absent), damaged ones are derived from them in
tmp_path, and the project's JSON/CSV/XML fixtures are interleaved with them.
"""

from __future__ import annotations

import math
import mmap
import struct
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from sigmahunt.ingest import EventBatch, Unreadable, evtx_reader, read_logs
from sigmahunt.ingest import reader as reader_module
from sigmahunt.ingest.fields import order_columns
from sigmahunt.ingest.frames import BuilderMark, ColumnBuilder

FIXTURES = Path(__file__).parent / "fixtures"
SHARED = Path(__file__).resolve().parents[2] / "shared"
REGRESSION = SHARED / "sigma" / "regression_data"

needs_shared = pytest.mark.skipif(not REGRESSION.is_dir(), reason="../shared is absent")


def read(paths: Sequence[Path], **kwargs: Any) -> tuple[list[pl.DataFrame], list[Unreadable]]:
    frames, problems = [], []
    for item in read_logs([str(p) for p in paths], **kwargs):
        if isinstance(item, EventBatch):
            frames.append(item.frame)
        else:
            problems.append(item)
    return frames, problems


def combined(frames: Iterable[pl.DataFrame]) -> pl.DataFrame:
    frames = [f for f in frames if f.height]
    frame = pl.concat(frames, how="diagonal")
    return frame.select(order_columns(frame.columns))


def read_one_by_one(paths: Sequence[Path], **kwargs: Any) -> tuple[pl.DataFrame, list[Unreadable]]:
    frames, problems = [], []
    for path in paths:
        one, lost = read([path], **kwargs)
        frames += one
        problems += lost
    return combined(frames), problems


def assert_same_read(paths: Sequence[Path], batch_size: int) -> list[pl.DataFrame]:
    """Packed read == per-file reads (rows in input order, columns, values, problems)."""
    expected, expected_problems = read_one_by_one(paths, batch_size=batch_size)
    batches, problems = read(paths, batch_size=batch_size)
    assert all(b.height <= batch_size for b in batches)
    for batch in batches:  # each batch is in canonical column order, as before
        assert batch.columns == order_columns(batch.columns)
    packed = combined(batches)
    assert packed.columns == expected.columns
    assert_frame_equal(packed, expected)
    assert problems == expected_problems
    return batches


def regression_evtx() -> list[Path]:
    return sorted(REGRESSION.rglob("*.evtx"))


def damaged_samples(files: list[Path], into: Path) -> list[Path]:
    """Corrupt EVTX files built as tests/test_ingest.py does, plus a non-EVTX ``.evtx``."""
    samples = {
        "cut.evtx": files[1].read_bytes()[: 4096 + 30_000],
        "header.evtx": b"ElfFilX\x00" + files[0].read_bytes()[8:],
        "notevtx.evtx": b"not an EVTX file at all",
    }
    chunk = bytearray(files[2].read_bytes())
    chunk[4096:4104] = b"XXXXXXXX"  # the only chunk's signature
    samples["chunk.evtx"] = bytes(chunk)
    record = bytearray(files[3].read_bytes())
    record[4096 + 600 : 4096 + 900] = b"\xff" * 300  # record bytes
    samples["record.evtx"] = bytes(record)
    paths = []
    for name, data in samples.items():
        (into / name).write_bytes(data)
        paths.append(into / name)
    return paths


def mixed_inputs(tmp_path: Path) -> list[Path]:
    """EVTX files with damaged ones and the project's other-format fixtures in between."""
    files = regression_evtx()
    damaged = damaged_samples(files, tmp_path)
    others = sorted(p for folder in ("ingest", "ingest_more") for p in (FIXTURES / folder).iterdir()
                    if p.suffix in (".json", ".jsonl", ".ndjson", ".csv", ".xml"))
    sibling_json = [p.with_suffix(".json") for p in files[::7] if p.with_suffix(".json").is_file()]
    mixed: list[Path] = []
    extras = damaged + others + sibling_json
    step = max(1, len(files) // len(extras))
    for index, path in enumerate(files):
        mixed.append(path)
        if index % step == step - 1 and extras:
            mixed.append(extras.pop(0))
    return mixed + extras


# --------------------------------------------------------------------------


@needs_shared
@pytest.mark.parametrize("batch_size", [7, 1000, 50_000])
def test_many_small_evtx_files_read_as_each_alone(batch_size: int) -> None:
    files = regression_evtx()
    assert len(files) > 20
    batches = assert_same_read(files, batch_size)
    rows = sum(b.height for b in batches)
    # packed: full batches, not one frame per file
    assert len(batches) == math.ceil(rows / batch_size) < len(files)
    assert [b.height for b in batches[:-1]] == [batch_size] * (len(batches) - 1)


@needs_shared
@pytest.mark.parametrize("batch_size", [7, 1000, 50_000])
def test_mixed_formats_and_corrupt_evtx_read_as_each_alone(tmp_path: Path, batch_size: int) -> None:
    paths = mixed_inputs(tmp_path)
    assert {p.suffix for p in paths} >= {".evtx", ".json", ".csv", ".xml"}
    assert_same_read(paths, batch_size)
    _, problems = read(paths, batch_size=batch_size)
    damaged = {p.source.rsplit("/", 1)[-1] for p in problems}
    assert {"cut.evtx", "header.evtx", "notevtx.evtx", "chunk.evtx", "record.evtx"} <= damaged


@needs_shared
def test_shared_frames_respect_the_row_limit() -> None:
    """The shared builder hands on a frame whenever it holds ``frame_rows`` rows."""
    packer = evtx_reader.EvtxPacker(5)
    heights = []
    for path in regression_evtx()[:10]:
        for item in packer.read(str(path), path.read_bytes()):
            if isinstance(item, pl.DataFrame):
                heights.append(item.height)
    heights += [f.height for f in packer.flush()]
    assert heights[:-1] == [5] * (len(heights) - 1) and 1 <= heights[-1] <= 5


@needs_shared
def test_internal_error_drops_only_that_files_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file whose reading fails leaves no rows or columns in the shared builder.

    (Rows of such a file already handed on in a full frame stay, as before packing; with
    small files and batches no frame fills up in between, so the read is exactly as before.)
    """
    files = regression_evtx()
    counts = [read([path])[0][0].height for path in files]
    at = next(i for i, n in enumerate(counts) if n > 1 and i > 0)  # fails on its 2nd record
    files = files[max(0, at - 3) : at + 3]
    failing = str(files[min(at, 3)])
    original = evtx_reader._row
    seen: dict[str, int] = {}

    def flaky(source: str, item: dict[str, Any]) -> Any:
        row = original(source, item)
        if source == failing and isinstance(row, dict):
            seen[source] = seen.get(source, 0) + 1
            if seen[source] > 1:
                raise RuntimeError("boom")
            row["OnlyInTheFailingFile"] = None  # a column only its (dropped) rows have
        return row

    monkeypatch.setattr(evtx_reader, "_row", flaky)
    monkeypatch.setenv("SIGMAHUNT_NATIVE", "off")  # _row is the Python reader's (see test_native_evtx)
    for batch_size in (1000, 50_000):
        seen.clear()
        expected, expected_problems = read_one_by_one(files, batch_size=batch_size)
        seen.clear()
        batches, problems = read(files, batch_size=batch_size)
        assert_frame_equal(combined(batches), expected)
        assert problems == expected_problems
        assert [p.position for p in problems] == ["file"] and "boom" in problems[0].reason
        assert "OnlyInTheFailingFile" not in expected.columns
        assert failing not in expected["_source"].to_list()


def test_column_builder_rollback() -> None:
    builder = ColumnBuilder()
    builder.add({"a": "1", "b": None})
    builder.add({"a": "2"})
    mark = builder.mark()
    before = builder.frame()
    builder.add({"a": "3", "c": None})
    builder.add({"b": "4", "d": "x"})
    builder.rollback(mark)
    assert_frame_equal(builder.frame(), before)
    builder.add({"c": "5"})
    assert builder.frame().to_dicts() == [
        {"a": "1", "b": None, "c": None}, {"a": "2", "b": None, "c": None}, {"a": None, "b": None, "c": "5"}]
    with pytest.raises(ValueError):
        builder.rollback(BuilderMark(10, 0))


def test_non_evtx_files_report_the_same_without_shared(tmp_path: Path) -> None:
    """Runs without ../shared: damaged '.evtx' files among the project's JSON fixtures."""
    (tmp_path / "a.evtx").write_bytes(b"not evtx")
    (tmp_path / "b.evtx").write_bytes(b"ElfFile\x00" + b"\x00" * 100)
    paths = [tmp_path / "a.evtx", FIXTURES / "ingest" / "flat_sample.jsonl", tmp_path / "b.evtx",
             FIXTURES / "ingest" / "winlogbeat.ndjson"]
    for batch_size in (2, 50_000):
        expected, expected_problems = read_one_by_one(paths, batch_size=batch_size)
        batches, problems = read(paths, batch_size=batch_size)
        assert_frame_equal(combined(batches), expected)
        assert problems == expected_problems and len(problems) >= 2


def test_packer_rejects_an_empty_limit() -> None:
    with pytest.raises(ValueError):
        evtx_reader.EvtxPacker(0)


@pytest.mark.parametrize("seed", range(10))
def test_chunk_seen_ids_behave_as_a_set(seed: int) -> None:
    """``ChunkInfo`` keeps an in-order run plus a set; marking ids in any order (gaps
    closed later, ids past the run) answers ``has_seen`` exactly as a plain set would."""
    import random

    rng = random.Random(seed)
    chunk = evtx_reader.ChunkInfo(0, first_id=100, last_id=139)
    order = list(range(100, 140))
    if seed % 2:
        rng.shuffle(order)
    else:  # mostly in order, a few swapped: the common shape of a real file
        for _ in range(3):
            i, j = rng.randrange(40), rng.randrange(40)
            order[i], order[j] = order[j], order[i]
    reference: set[int] = set()
    for record_id in order[: rng.randrange(1, 41)]:
        chunk.mark_seen(record_id)
        reference.add(record_id)
        assert chunk.seen_ids() == reference
        assert all(chunk.has_seen(i) == (i in reference) for i in range(95, 145))
        assert not any(0 <= i - chunk.first_id < chunk.seen_count for i in chunk.seen)


@pytest.mark.parametrize("seed", range(20))
def test_ledger_bulk_records_equal_one_by_one(seed: int) -> None:
    """``_Ledger.records`` (native steps, in bulk) == ``record`` per id, on runs with
    duplicates, gaps, ids out of every range and interleaved parser errors."""
    import random

    rng = random.Random(seed)
    chunks = [evtx_reader.ChunkInfo(i, first_id=10 * i + 1, last_id=10 * i + rng.choice([5, 10])) for i in range(4)]
    chunks.append(evtx_reader.ChunkInfo(4, problem="corrupt"))
    ids: list[int] = []
    for _ in range(rng.randrange(1, 8)):  # ascending runs (the bulk path) and random ids
        if rng.random() < 0.6:
            ids += sorted(rng.sample(range(0, 45), rng.randrange(1, 12)))
        else:
            ids += [rng.randrange(0, 50) for _ in range(rng.randrange(1, 6))]
    cuts = sorted(rng.sample(range(len(ids) + 1), k=min(3, len(ids) + 1)))
    one = evtx_reader._Ledger(chunks)
    bulk = evtx_reader._Ledger([evtx_reader.ChunkInfo(**vars(c) | {"seen": set()}) for c in chunks])
    for begin, end in zip([0, *cuts], [*cuts, len(ids)]):
        for record_id in ids[begin:end]:
            one.record(record_id)
        bulk.records(struct.pack(f"<{end - begin}Q", *ids[begin:end]))
        hit = rng.choice(chunks[:4])
        message = f"Failed to parse chunk containing record IDs {hit.first_id}..{hit.last_id}: boom"
        one.error(message)
        bulk.error(message)
    assert [c.seen_ids() for c in bulk.chunks] == [c.seen_ids() for c in one.chunks]
    assert bulk.cursor == one.cursor


# --------------------------------------------------------------------------
# reading lanes: EVTX units read in threads, handed on in input order


@pytest.fixture
def small_units(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every EVTX file a unit of its own, three lanes: the tests' small files then take the
    threaded path that only files of 16 MB reach in real use."""
    monkeypatch.setattr(reader_module, "EVTX_UNIT_BYTES", 1)
    monkeypatch.setattr(reader_module, "evtx_lanes", lambda: 3)


@needs_shared
@pytest.mark.parametrize("batch_size", [7, 1000])
def test_lanes_keep_input_order(tmp_path: Path, small_units: None, batch_size: int) -> None:
    """Units read ahead in threads give the rows and reports of reading each file alone,
    in input order, with other formats and damaged files in between."""
    paths = mixed_inputs(tmp_path)
    assert_same_read(paths, batch_size)


@needs_shared
def test_lanes_group_small_files_into_units(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files below the unit size share a unit (and so frames); each unit gets one packer."""
    files = regression_evtx()[:12]
    sizes = [p.stat().st_size for p in files]
    monkeypatch.setattr(reader_module, "EVTX_UNIT_BYTES", sum(sizes[:4]))
    monkeypatch.setattr(reader_module, "evtx_lanes", lambda: 2)
    packers: list[int] = []
    real = reader_module.EvtxPacker

    def counting(frame_rows: int) -> evtx_reader.EvtxPacker:
        packers.append(frame_rows)
        return real(frame_rows)

    assert_same_read(files, 1000)
    monkeypatch.setattr(reader_module, "EvtxPacker", counting)
    read(files, batch_size=1000)
    assert 2 <= len(packers) < len(files)


@needs_shared
def test_abandoned_read_stops_its_lanes(small_units: None) -> None:
    """A consumer that stops early leaves no reading thread behind."""
    before = {t.ident for t in threading.enumerate()}
    iterator = read_logs([str(p) for p in regression_evtx()[:20]], batch_size=1)
    next(iterator)
    iterator.close()  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lingering = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
        if not lingering:
            break
        time.sleep(0.05)
    assert not lingering


# -- large EVTX files are mapped, not read (sources.read_file) -----------------------------


def test_only_large_evtx_files_are_mapped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sigmahunt.ingest import sources

    monkeypatch.setattr(sources, "MAP_EVTX_BYTES", 64)
    big_evtx, small_evtx, big_json = tmp_path / "a.evtx", tmp_path / "b.evtx", tmp_path / "c.json"
    big_evtx.write_bytes(b"ElfFile\x00" + b"\x01" * 100)
    small_evtx.write_bytes(b"ElfFile\x00" + b"\x01" * 10)
    big_json.write_bytes(b'{"a": "' + b"x" * 100 + b'"}\n')
    mapped = sources.read_file(big_evtx)
    assert isinstance(mapped, mmap.mmap) and mapped[:] == big_evtx.read_bytes()
    assert sources.read_file(small_evtx) == small_evtx.read_bytes()
    assert sources.read_file(big_json) == big_json.read_bytes()
    monkeypatch.setenv(sources.MMAP_ENV, "off")
    assert sources.read_file(big_evtx) == big_evtx.read_bytes()


@needs_shared
@pytest.mark.parametrize("native_reader", ["on", "off"])
def test_mapped_files_read_as_read_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, native_reader: str) -> None:
    """Every EVTX file mapped (damaged ones and other formats mixed in): the same batches
    and reports as with every file read, with the native reader and the Python one."""
    from sigmahunt.ingest import sources

    monkeypatch.setenv("SIGMAHUNT_NATIVE", native_reader)
    paths = mixed_inputs(tmp_path)
    monkeypatch.setenv(sources.MMAP_ENV, "off")
    expected, expected_problems = read(paths, batch_size=1000)
    monkeypatch.delenv(sources.MMAP_ENV)
    monkeypatch.setattr(sources, "MAP_EVTX_BYTES", 1)
    mapped = [p for p in paths if isinstance(sources.read_file(p), mmap.mmap)]
    assert len(mapped) > 20 and {p.name for p in mapped} >= {"cut.evtx", "chunk.evtx", "record.evtx"}
    batches, problems = read(paths, batch_size=1000)
    assert_frame_equal(combined(batches), combined(expected))
    assert problems == expected_problems
