"""Find the few rows a keyword (field-less) search can match, without touching the others.

A keyword rule with no log-source restriction (SigmaHQ's "Mimikatz Use") must look at
every field of every event: on the Security-Datasets corpus that is ~1.5 GB of text,
more than all field rules together. The exact keyword test (per field, per distinct
value) stays in :mod:`.matcher`; this module only prefilters rows.

Why Hyperscan: it scans an Arrow string column's data buffer in place (no copy, no Python
per row) at ~2 GB/s per core for a set of literals with ASCII case folding, reporting
match end offsets that map back to rows through the Arrow offsets. Polars'
``str.contains_any`` does the same at ~0.4 GB/s. Where the ``hyperscan`` wheel is missing
the Polars path is used: same rows, slower.

A prefilter must be a superset: a match that spans two adjacent values only adds a
candidate (the exact test rejects it), and the only characters whose lowercase form is
ASCII (KELVIN SIGN, LATIN CAPITAL I WITH DOT ABOVE) are searched for explicitly, since
ASCII case folding would miss ``sekurlsa`` written with a Kelvin sign.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
import pyarrow as pa

try:  # optional accelerator
    import hyperscan
except ImportError:  # pragma: no cover - exercised where the wheel is absent
    hyperscan = None

_UNICODE_TO_ASCII_FOLDS = ("\u212a", "\u0130")


class KeywordPrefilter:
    """Rows of a batch that contain at least one of a fixed set of literals, in any column."""

    def __init__(self, folded: Sequence[str], cased: Sequence[str]) -> None:
        # ASCII case folding (Hyperscan's, Aho-Corasick's) cannot fold "É" to "é": literals
        # with non-ASCII characters are searched in the Unicode-lowercased text instead.
        self.unicode_folded = sorted({lit for lit in folded if not lit.isascii()})
        self.folded = sorted({lit for lit in folded if lit.isascii()})
        self.cased = sorted(set(cased))
        wanted = self.folded or self.cased
        self._database = _compile(self.folded, self.cased) if hyperscan is not None and wanted else None

    def candidate_rows(self, columns: Sequence[pl.Series], height: int) -> np.ndarray:
        hit = np.zeros(height, dtype=bool)
        for column in columns:
            if column.null_count() == column.len():
                continue
            if self._database is not None:
                self._scan_hyperscan(column, hit)
            elif self.folded or self.cased:
                hit |= self._scan_polars(column)
            if self.unicode_folded:
                found = column.str.to_lowercase().str.contains_any(self.unicode_folded)
                hit |= found.fill_null(False).to_numpy()
        return hit

    def _scan_hyperscan(self, column: pl.Series, hit: np.ndarray) -> None:
        """Scan the column's Arrow data buffer in place; rows from match ends by binary search.

        (Polars' own string-view buffers can be exported without a copy, but mapping
        matches back through thousands of small buffers cost more than the copy saved.)
        """
        array = column.to_arrow()
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks()
        if not pa.types.is_large_string(array.type):
            array = array.cast(pa.large_string())
        _, offsets_buffer, data = array.buffers()
        if data is None or data.size == 0:
            return
        offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[array.offset: array.offset + len(array) + 1]
        ends = self._ends(data)
        if ends.size:
            rows = np.searchsorted(offsets, ends - 1, side="right") - 1
            rows = rows[(rows >= 0) & (rows < len(array))]
            hit[rows] = True

    def _ends(self, data: pa.Buffer) -> np.ndarray:
        ends: list[int] = []
        if data.size:
            self._database.scan(data, match_event_handler=lambda _id, _from, to, _flags, _ctx: ends.append(to))
        return np.asarray(ends, dtype=np.int64)

    def _scan_polars(self, column: pl.Series) -> np.ndarray:
        found = pl.Series(np.zeros(column.len(), dtype=bool))
        if self.folded:
            found = found | column.str.contains_any(self.folded, ascii_case_insensitive=True)
            for char in _UNICODE_TO_ASCII_FOLDS:
                found = found | column.str.contains(char, literal=True)
        if self.cased:
            found = found | column.str.contains_any(self.cased)
        return found.fill_null(False).to_numpy()


def _compile(folded: Sequence[str], cased: Sequence[str]) -> object:
    expressions: list[bytes] = []
    flags: list[int] = []
    for literal in folded:
        expressions.append(_literal_pattern(literal))
        flags.append(hyperscan.HS_FLAG_CASELESS)
    for literal in cased:
        expressions.append(_literal_pattern(literal))
        flags.append(0)
    if folded:
        for char in _UNICODE_TO_ASCII_FOLDS:
            expressions.append(_literal_pattern(char))
            flags.append(0)
    database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    database.compile(expressions=expressions, ids=list(range(len(expressions))), elements=len(expressions),
                     flags=flags)
    return database


def _literal_pattern(literal: str) -> bytes:
    """A Hyperscan pattern matching the literal's UTF-8 bytes exactly."""
    return b"".join(b"\\x%02x" % byte for byte in literal.encode("utf-8"))
