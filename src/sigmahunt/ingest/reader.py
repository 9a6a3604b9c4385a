"""``read_logs``: paths in, normalised batches and Unreadable reports out."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import polars as pl

from ..native import native
from .csv_reader import read_csv
from .evtx_reader import FRAME_ROWS, EvtxPacker
from .formats import (
    MAYBE_LOG_SUFFIXES,
    SNIFF_BYTES,
    LogFormat,
    detect_format,
    is_blank,
    sniff_content,
    suffix_of,
)
from .frames import Batcher
from .json_reader import JsonPlan, execute_json, plan_json
from .model import EventBatch, Projection, Unreadable, internal_error
from .sources import Leaf, LogFile, Prefetched, iter_leaves, prefetch
from .xml_reader import read_evtx_xml

DEFAULT_BATCH_SIZE = 50_000
#: Password for encrypted zip/7z members, when ``archive_password`` is not given.
ARCHIVE_PASSWORD_ENV = "SIGMAHUNT_ARCHIVE_PASSWORD"


def read_logs(
    paths: Sequence[str | Path | LogFile] | str | Path | LogFile,
    format_in: str | LogFormat | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    archive_password: str | None = None,
    projection: Projection | None = None,
) -> Iterator[EventBatch | Unreadable]:
    """Read Windows event logs of any supported format into String batches.

    ``paths`` are files or folders (walked recursively in sorted order), or the
    :class:`LogFile` entries of such a walk, handed on;
    gzip, zip and 7z are unwrapped in memory; ``archive_password`` opens
    encrypted zip (ZipCrypto) and 7z members (members that need it, or
    another one, are reported as Unreadable).  ``format_in`` forces the format of
    every leaf (see :class:`LogFormat` for names and aliases); otherwise it
    is detected per file from content, then extension.  Arguments are
    validated eagerly; reading happens lazily as the iterator is consumed.
    ``projection``: a hunt's fields, for the fast flat-JSON reader (see :class:`Projection`).
    """
    forced = LogFormat.parse(format_in) if format_in is not None else None
    batcher = Batcher(batch_size)
    if isinstance(paths, (str, Path, LogFile)):
        paths = [paths]
    if archive_password is None:  # the CLI passes it this way, so worker processes inherit it
        archive_password = os.environ.get(ARCHIVE_PASSWORD_ENV) or None
    return _read(list(paths), forced, batcher, archive_password, projection)


@dataclass
class _Task:
    """A leaf with its format decided and, for JSON, its reading planned."""

    leaf: Leaf
    fmt: LogFormat
    plan: JsonPlan | None = None


def _read(
    paths: list[str | Path | LogFile], forced: LogFormat | None, batcher: Batcher, password: str | None = None,
    projection: Projection | None = None,
) -> Iterator[EventBatch | Unreadable]:
    # A three-stage pipeline: one thread inflates and plans (the native JSON reader, or
    # Polars' schema inference), one reads the planned chunks into frames and cuts them into
    # batches, and the caller's thread (the hunt's matching) takes the batches. The readers
    # and the matching run in Rust without the GIL for most of their time, so the stages
    # overlap on every core; batching sits in a reading thread to keep its Python off the
    # matching thread. Binary EVTX files are read in units by lanes of their own threads
    # (see _outputs).
    bundles = _bundled(_prepare(iter_leaves(paths, password), forced, projection))
    tasks = _unbundled(prefetch(bundles, BUNDLES_AHEAD, _bundle_size, BUNDLES_AHEAD_BYTES))
    yield from prefetch(_batched(_outputs(tasks, batcher.batch_size), batcher))


#: Tasks cross from the planning thread in bundles of up to this many bytes of input,
#: and the thread reads ahead up to this many bundles and bytes (a larger bundle alone).
BUNDLE_BYTES = 1 << 20
BUNDLE_ITEMS = 256
BUNDLES_AHEAD = 16
BUNDLES_AHEAD_BYTES = 16 << 20


class _Bundle(NamedTuple):
    """Consecutive tasks, and their input's bytes (a file counted once: a JSON file's
    chunks share it), which the read-ahead weighs."""

    tasks: list[_Task | Unreadable]
    size: int


def _bundle_size(bundle: _Bundle) -> int:
    return bundle.size


def _bundled(items: Iterator[_Task | Unreadable]) -> Iterator[_Bundle]:
    """Consecutive tasks in bundles of up to ``BUNDLE_BYTES`` of input (a larger task alone).

    Why: handing each task over on its own woke the consuming thread per file, and with
    a folder of small EVTX files (a host's logs, ~70 KB each) those hand-overs between
    threads cost more than reading the files; reading ahead by bytes, not by one item,
    lets the planning thread run on while the EVTX lanes parse (bench/RESULTS.md,
    session 10).
    """
    tasks: list[_Task | Unreadable] = []
    leaves: set[int] = set()
    size = 0
    for item in items:
        tasks.append(item)
        if isinstance(item, _Task) and id(item.leaf) not in leaves:
            leaves.add(id(item.leaf))
            size += len(item.leaf.data)
        if size >= BUNDLE_BYTES or len(tasks) >= BUNDLE_ITEMS:
            yield _Bundle(tasks, size)
            tasks, leaves, size = [], set(), 0
    if tasks:
        yield _Bundle(tasks, size)


def _unbundled(bundles: Iterator[_Bundle]) -> Iterator[_Task | Unreadable]:
    for bundle in bundles:
        yield from bundle.tasks


def _batched(outputs: Iterator[pl.DataFrame | Unreadable], batcher: Batcher) -> Iterator[EventBatch | Unreadable]:
    for output in outputs:
        if isinstance(output, Unreadable):
            yield output
        else:
            yield from batcher.add(output)
    yield from batcher.flush()


#: EVTX files are read in units of at least this many bytes (a large file alone, small
#: consecutive ones together, so that their rows still share frames: see EvtxPacker).
EVTX_UNIT_BYTES = 16 << 20
#: Frames a unit read ahead of its turn may hold (8,000-row frames in a hunt).
EVTX_UNIT_DEPTH = 4


def evtx_lanes() -> int:
    """EVTX units read at once: one per core (up to 4) with the native reader, whose steps
    release the GIL; one without it, since the Python reader holds the GIL throughout."""
    if native() is None:
        return 1
    return max(1, min(4, os.cpu_count() or 1))


def _outputs(tasks: Iterator[_Task | Unreadable], batch_size: int) -> Iterator[pl.DataFrame | Unreadable]:
    """Every task's frames and reports, in input order.

    Binary EVTX files are grouped into units (``EVTX_UNIT_BYTES``), each read by its own
    :class:`EvtxPacker` in a worker thread; up to :func:`evtx_lanes` units are read at once,
    the next ones ahead of their turn (``EVTX_UNIT_DEPTH`` frames at most), and their
    outputs are handed on unit by unit. Why: the native EVTX reader is one core's work per
    file (bench/RESULTS.md, EVTX), and a collection of logs is many files. Any other task
    waits until the units before it are handed on, to keep input order.
    """
    frame_rows = min(batch_size, FRAME_ROWS)
    lanes = evtx_lanes()
    started: deque[Prefetched[pl.DataFrame | Unreadable]] = deque()
    unit: list[_Task] = []
    unit_bytes = 0
    try:
        for item in tasks:
            if isinstance(item, _Task) and _reads_binary_evtx(item):
                unit.append(item)
                unit_bytes += len(item.leaf.data)
                if unit_bytes >= EVTX_UNIT_BYTES:
                    started.append(Prefetched(_read_evtx_unit(unit, frame_rows), EVTX_UNIT_DEPTH))
                    unit, unit_bytes = [], 0
                    while len(started) >= lanes:
                        yield from started.popleft()
                continue
            if unit:
                started.append(Prefetched(_read_evtx_unit(unit, frame_rows), EVTX_UNIT_DEPTH))
                unit, unit_bytes = [], 0
            while started:
                yield from started.popleft()
            if isinstance(item, Unreadable):
                yield item
            else:
                yield from _execute(item)
        if unit:
            started.append(Prefetched(_read_evtx_unit(unit, frame_rows), EVTX_UNIT_DEPTH))
        while started:
            yield from started.popleft()
    finally:
        for lane in started:
            lane.close()


def _read_evtx_unit(unit: list[_Task], frame_rows: int) -> Iterator[pl.DataFrame | Unreadable]:
    """One unit of EVTX files through one shared builder (see EvtxPacker)."""
    packer = EvtxPacker(frame_rows)
    yield from packer.read_files([(task.leaf.source, task.leaf.data) for task in unit])
    yield from packer.flush()


def _prepare(
    leaves: Iterator[Leaf | Unreadable], forced: LogFormat | None, projection: Projection | None = None
) -> Iterator[_Task | Unreadable]:
    """Runs in the prefetch thread: format decision and JSON planning."""
    for leaf in leaves:
        if isinstance(leaf, Unreadable):
            yield leaf
            continue
        fmt = _choose_format(leaf, forced)
        if fmt is None or isinstance(fmt, Unreadable):
            if fmt is not None:
                yield fmt
            continue
        if not fmt.is_json:
            yield _Task(leaf, fmt)
            continue
        try:
            for plan in plan_json(leaf.source, leaf.read(), fmt, projection):
                yield _Task(leaf, fmt, plan)
        except Exception as exc:
            yield internal_error(leaf.source, exc)


def _reads_binary_evtx(task: _Task) -> bool:
    """Whether the task goes to the EVTX reader (in units: see :func:`_outputs`); the
    other readers build their own frames (:func:`_execute`)."""
    return task.plan is None and task.fmt not in (LogFormat.EVTX_XML, LogFormat.CSV)


def _execute(task: _Task) -> Iterator[pl.DataFrame | Unreadable]:
    """One task's frames, for a task that is not binary EVTX."""
    try:
        if task.plan is not None:
            yield from execute_json(task.plan)
        elif task.fmt is LogFormat.EVTX_XML:
            yield from read_evtx_xml(task.leaf.source, task.leaf.read())
        elif task.fmt is LogFormat.CSV:
            yield from read_csv(task.leaf.source, task.leaf.read())
        else:
            raise AssertionError("binary EVTX tasks are read in units")
    except Exception as exc:
        yield internal_error(task.leaf.source, exc)


def _choose_format(leaf: Leaf, forced: LogFormat | None) -> LogFormat | Unreadable | None:
    """The leaf's format; an Unreadable to report; or None (skip silently:
    an empty file, or text that is not a log inside a folder/archive)."""
    head = leaf.data[:SNIFF_BYTES]
    if is_blank(head) and is_blank(leaf.read()):
        return None
    detected = sniff_content(head)
    if forced is not None:
        if forced is not LogFormat.EVTX and detected is LogFormat.EVTX:
            return Unreadable(leaf.source, "file", f"content is EVTX, not {forced.value} (format_in={forced.value!r})")
        return forced
    fmt = detected or detect_format(leaf.source, head=b"")
    if fmt is not None and not fmt.is_container:
        return fmt
    if not leaf.explicit and suffix_of(leaf.source.rsplit("!", 1)[-1]) in MAYBE_LOG_SUFFIXES:
        return None
    return Unreadable(
        leaf.source,
        "file",
        "unrecognised format: not EVTX, JSON, EVTX XML, CSV (with an event header; "
        "else force format_in='csv'), gzip, zip or 7z content",
    )
