"""Value objects shared by every ingest module.

They live in their own module so that readers, sources and the public
``sigmahunt.ingest`` namespace can all import them without cycles.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import polars as pl

#: Metadata columns present in every batch, always first and in this order.
SOURCE_COL = "_source"
POSITION_COL = "_position"
TIMESTAMP_COL = "_timestamp"
METADATA_COLUMNS: tuple[str, ...] = (SOURCE_COL, POSITION_COL, TIMESTAMP_COL)
#: The raw JSON line of an event read under a :class:`Projection` (see there). Never
#: stored or shown; a data key of this name is renamed like a metadata one.
RAW_COL = "_sigmahunt_raw"
#: Per event read under a projection with a :class:`RawLineScanner`: bit flags of the
#: keyword literal groups its raw line may hold (UInt64).
RAW_HITS_COL = "_sigmahunt_raw_hits"
RESERVED_COLUMNS: frozenset[str] = frozenset((*METADATA_COLUMNS, RAW_COL, RAW_HITS_COL))


@dataclass(frozen=True)
class Unreadable:
    """One record, chunk, archive member or file that could not be read.

    Yielded in-line with the batches so that nothing is ever lost silently:
    for every input, events in batches + Unreadable records == records in.
    """

    source: str  # file path; archive members as "path/to/a.zip!member.json"
    position: str  # "line 17", "record 5", "chunk 3", "byte 1234" or "file"
    reason: str  # human readable cause


def internal_error(source: str, exc: Exception) -> Unreadable:
    """A file whose reading failed with an unexpected exception (a bug), reported as
    unreadable so that the other files are still read."""
    return Unreadable(source, "file", f"internal error while reading: {exc!r}")


@dataclass
class EventBatch:
    """A columnar batch of normalised events; every column is ``pl.String``."""

    frame: pl.DataFrame

    def __len__(self) -> int:
        return self.frame.height


class RawLineScanner(Protocol):
    """Which literal groups each line of a chunk of raw JSON lines may hold."""

    def scan(self, data: bytes, offsets: np.ndarray) -> np.ndarray:
        """Row i is ``data[offsets[i]:offsets[i + 1]]``; returns one UInt64 of flags per row."""
        ...


@dataclass(frozen=True)
class Projection:
    """The fields a hunt reads: flat JSON lines are parsed into these columns only.

    Parsing JSON into columns is most of a hunt's cost, and it grows with the columns
    built: a Security-Datasets line carries ~30 of ~500 distinct keys, of which the whole
    SigmaHQ rule set tests ~220. Under a projection the fast JSON reader builds only the
    wanted columns (names compared case-insensitively, so ``image`` is read for ``Image``)
    and keeps each event's raw line in :data:`RAW_COL`; whoever needs every field of a few
    events (keyword searches, detection output) gets them from
    :func:`sigmahunt.ingest.complete_rows`. Other readers ignore the projection: their
    frames carry every field and no raw line.
    """

    fields: frozenset[str]  # lowercased names
    #: Scans each chunk's raw lines for keyword literals where the bytes already lie
    #: contiguous (one pass, no copy), filling :data:`RAW_HITS_COL`.
    raw_scanner: RawLineScanner | None = field(default=None, compare=False)

    @classmethod
    def of(cls, names: Iterable[str], raw_scanner: RawLineScanner | None = None) -> Projection:
        return cls(frozenset(name.lower() for name in names), raw_scanner)

    def wants(self, name: str) -> bool:
        return name.lower() in self.fields
