"""Value objects shared by every ingest module.

They live in their own module so that readers, sources and the public
``sigmahunt.ingest`` namespace can all import them without cycles.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

#: Metadata columns present in every batch, always first and in this order.
SOURCE_COL = "_source"
POSITION_COL = "_position"
TIMESTAMP_COL = "_timestamp"
METADATA_COLUMNS: tuple[str, ...] = (SOURCE_COL, POSITION_COL, TIMESTAMP_COL)


@dataclass(frozen=True)
class Unreadable:
    """One record, chunk, archive member or file that could not be read.

    Yielded in-line with the batches so that nothing is ever lost silently:
    for every input, events in batches + Unreadable records == records in.
    """

    source: str  # file path; archive members as "path/to/a.zip!member.json"
    position: str  # "line 17", "record 5", "chunk 3", "byte 1234" or "file"
    reason: str  # human readable cause


@dataclass
class EventBatch:
    """A columnar batch of normalised events; every column is ``pl.String``."""

    frame: pl.DataFrame

    def __len__(self) -> int:
        return self.frame.height
