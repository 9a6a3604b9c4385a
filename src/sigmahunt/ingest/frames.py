"""Building all-String Polars frames from rows, and cutting them into batches."""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import polars as pl

from .fields import order_columns
from .model import EventBatch
from .normalise import Row


class ColumnBuilder:
    """Accumulates rows column-wise; absent fields become nulls.

    Columns are padded lazily (only when a column is next touched, and once
    at the end) so adding a row costs O(fields in that row), not O(columns).
    (Grouping rows by key signature and transposing with ``zip`` was tried:
    no faster on EVTX records, and slower when event types are many.)
    """

    def __init__(self) -> None:
        self._columns: dict[str, list[str | None]] = {}
        self.height = 0

    def add(self, row: Row) -> None:
        height = self.height
        columns = self._columns
        for name, value in row.items():
            column = columns.get(name)
            if column is None:
                column = columns[name] = [None] * height
            elif len(column) < height:
                column.extend([None] * (height - len(column)))
            column.append(value)
        self.height = height + 1

    def frame(self) -> pl.DataFrame:
        """The accumulated rows as a frame (columns in canonical order)."""
        height = self.height
        series = []
        for name in order_columns(list(self._columns)):
            column = self._columns[name]
            if len(column) < height:
                column.extend([None] * (height - len(column)))
            series.append(pl.Series(name, column, dtype=pl.String))
        return pl.DataFrame(series) if series else pl.DataFrame(height=height)

    def take(self) -> pl.DataFrame:
        """Return the frame and start afresh."""
        frame = self.frame()
        self._columns = {}
        self.height = 0
        return frame

    def mark(self) -> BuilderMark:
        """The current size, to :meth:`rollback` to (rows and columns only grow until then)."""
        return BuilderMark(self.height, len(self._columns))

    def rollback(self, mark: BuilderMark) -> None:
        """Drop the rows added since ``mark``, and the columns only they had.

        A builder shared by several files (see ``EvtxPacker``) must not keep part
        of a file whose reading failed; columns are removed by creation order
        (dicts keep it) because a column's values may legitimately all be null.
        """
        if mark.height > self.height or mark.width > len(self._columns):
            raise ValueError("mark is not from this builder's current frame")
        for name in list(self._columns)[mark.width :]:
            del self._columns[name]
        for column in self._columns.values():
            del column[mark.height :]
        self.height = mark.height


class BuilderMark(NamedTuple):
    """A :class:`ColumnBuilder`'s size at some point: rows, and columns created."""

    height: int
    width: int


class Batcher:
    """Cuts frames into batches of at most ``batch_size`` rows.

    Frames from small files (fewer than ``SMALL_FRAME_ROWS`` rows, or than
    ``batch_size``) are concatenated diagonally (missing columns become
    null) so the engine sees few, large batches; bigger frames are sliced
    and passed through without copying, since concatenating wide sparse
    frames costs more than it saves.
    """

    SMALL_FRAME_ROWS = 4096

    def __init__(self, batch_size: int) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.batch_size = batch_size
        self._small = min(batch_size, self.SMALL_FRAME_ROWS)
        self._pending: list[pl.DataFrame] = []
        self._rows = 0

    def add(self, frame: pl.DataFrame) -> Iterator[EventBatch]:
        if frame.height == 0:
            return
        if frame.height >= self._small:
            yield from self.flush()
            yield from self._slices(frame)
            return
        self._pending.append(frame)
        self._rows += frame.height
        if self._rows >= self.batch_size:
            combined = self._combine()
            full = combined.height - combined.height % self.batch_size
            yield from self._slices(combined.slice(0, full))
            rest = combined.slice(full)
            self._pending = [rest] if rest.height else []
            self._rows = rest.height

    def flush(self) -> Iterator[EventBatch]:
        if self._pending:
            combined = self._combine()
            self._pending, self._rows = [], 0
            yield from self._slices(combined)

    def _slices(self, frame: pl.DataFrame) -> Iterator[EventBatch]:
        for start in range(0, frame.height, self.batch_size):
            yield EventBatch(frame.slice(start, self.batch_size))

    def _combine(self) -> pl.DataFrame:
        """The pending frames as one, each column in one chunk.

        Why one chunk: the hunt exports the columns to Arrow (the native kernel, the
        keyword scan), and each export of a column made of many chunks (a batch from a
        folder of small EVTX files holds ~25 readers' frames) joined them on the hunting
        thread, ~17 ms per 8,000-row batch; joined here, in the reading thread, once
        (bench/RESULTS.md, session 11).
        """
        if len(self._pending) == 1:
            return self._pending[0]
        combined = pl.concat(self._pending, how="diagonal", rechunk=True)
        return combined.select(order_columns(combined.columns))
