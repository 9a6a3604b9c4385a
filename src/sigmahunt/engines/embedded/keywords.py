"""Find the few rows a keyword (field-less) search can match, without touching the others.

A keyword rule with no log-source restriction (SigmaHQ's "Mimikatz Use") must look at
every field of every event: on the Security-Datasets corpus that is ~1.5 GB of text,
more than all field rules together. The exact keyword test (per field, per distinct
value) stays in :mod:`.matcher`; this module only prefilters rows.

Why Hyperscan: it scans an Arrow string column's data buffer in place (no copy, no Python
per row) at ~2 GB/s per core for a set of literals with ASCII case folding, reporting
match end offsets that map back to rows through the Arrow offsets. Polars'
``str.contains_any`` does the same at ~0.4 GB/s. Where the ``hyperscan`` wheel is missing
the Polars path is used: same rows, slower. The one scan of a batch's columns for all
selectors (:class:`BatchKeywordScanner`) prefers the native module's scanner, which needs
no conversion of the columns (see :class:`_SelectorDatabase`).

A prefilter must be a superset: a match that spans two adjacent values only adds a
candidate (the exact test rejects it), and the only characters whose lowercase form is
ASCII (KELVIN SIGN, LATIN CAPITAL I WITH DOT ABOVE) are searched for explicitly, since
ASCII case folding would miss ``sekurlsa`` written with a Kelvin sign.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cached_property
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from sigmahunt.engines.embedded.kernel import arrow_strings
from sigmahunt.engines.embedded.scanners import USE_HYPERSCAN_ENV, cached_database
from sigmahunt.native import native

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
        """Scan the column's Arrow data buffer in place; rows from match ends by binary search."""
        strings = _large_strings(column)
        if strings is None:
            return
        offsets, data = strings
        ends = self._ends(data)
        if ends.size:
            rows = np.searchsorted(offsets, ends - 1, side="right") - 1
            rows = rows[(rows >= 0) & (rows < len(offsets) - 1)]
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


def _large_strings(column: pl.Series) -> tuple[np.ndarray, pa.Buffer] | None:
    """The column as Arrow large_string offsets (``len + 1`` of them) and data buffer, or
    None when it holds no byte.

    A copy: Polars' own string-view buffers can be exported without one, but mapping
    matches back through thousands of small buffers cost more than the copy saved.
    """
    array = column.to_arrow()
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if not pa.types.is_large_string(array.type):
        array = array.cast(pa.large_string())
    _, offsets_buffer, data = array.buffers()
    if data is None or data.size == 0:
        return None
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[array.offset: array.offset + len(array) + 1]
    return offsets, data


def _keyword_literals(folded: Sequence[str], cased: Sequence[str]) -> list[tuple[str, bool]]:
    """(literal, with ASCII case folding?) searched for these ASCII literals: the folded
    ones folded, then the cased ones, then (with folded ones) the characters whose
    lowercase is ASCII, which that folding would miss."""
    literals = [(literal, True) for literal in folded]
    literals += [(literal, False) for literal in cased]
    if folded:
        literals += [(char, False) for char in _UNICODE_TO_ASCII_FOLDS]
    return literals


def _hyperscan_on() -> bool:
    """Hyperscan is installed and not turned off (``SIGMAHUNT_HYPERSCAN=0``, the benchmark's
    portable run)."""
    return hyperscan is not None and os.environ.get(USE_HYPERSCAN_ENV, "1") != "0"


def _hyperscan_flag(caseless: bool) -> int:
    return int(hyperscan.HS_FLAG_CASELESS) if caseless else 0


def _compile(folded: Sequence[str], cased: Sequence[str]) -> object:
    literals = _keyword_literals(folded, cased)
    expressions = [_literal_pattern(literal) for literal, _ in literals]
    flags = [_hyperscan_flag(caseless) for _, caseless in literals]
    database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    database.compile(expressions=expressions, ids=list(range(len(expressions))), elements=len(expressions),
                     flags=flags)
    return database


def _literal_pattern(literal: str) -> bytes:
    """A Hyperscan pattern matching the literal's UTF-8 bytes exactly."""
    return b"".join(b"\\x%02x" % byte for byte in literal.encode("utf-8"))


class BatchKeywordScanner:
    """Keyword candidates of a batch's columns for every active selector, each column
    converted and scanned once.

    Scanning per selector (:meth:`KeywordPrefilter.candidate_rows`) converted every string
    column to Arrow once per selector and batch: on EVTX batches (~100 columns, a few
    keyword selectors active) the conversions and their Python glue cost most of the
    evaluation, the Hyperscan scans themselves little. Here one database holds the active
    selectors' literals (each pattern id knows the selectors whose literal it is), so each
    column is converted and scanned once, and a match marks its row for those selectors.

    The rows are those :class:`KeywordPrefilter` gives: the same literals and flags, the
    same Polars search of the Unicode-lowercased text for non-ASCII literals. One
    difference, which only removes candidates no keyword can match: a match must lie
    within one value (a literal has a fixed byte length, so its start is known), whereas
    scanning a column's buffer may report a match spanning two adjacent values, and which
    values are adjacent depends on the row subset scanned.

    The search is the native module's, or without it Hyperscan's (see
    :class:`_SelectorDatabase`); :meth:`build` gives None without either (each selector's
    :class:`KeywordPrefilter` then searches with Polars).
    """

    def __init__(self, prefilters: dict[int, KeywordPrefilter], engine: str = "auto") -> None:
        """``engine``: see :meth:`_SelectorDatabase.compile` (tests compare the ways)."""
        self._prefilters = prefilters
        self._engine = engine
        #: Active selectors (sorted) -> their database; few distinct sets occur in a hunt.
        self._databases: dict[tuple[int, ...], _SelectorDatabase | None] = {}

    @classmethod
    def build(cls, prefilters: dict[int, KeywordPrefilter | None], engine: str = "auto") -> BatchKeywordScanner | None:
        """None without the native module and Hyperscan (or without any selector with literals)."""
        usable = {s: p for s, p in prefilters.items() if p is not None}
        if not usable or (native() is None and not _hyperscan_on()):
            return None
        return cls(usable, engine)

    def candidate_rows(
        self, columns: Sequence[pl.Series], height: int, selectors: Sequence[int],
        columns_hit: set[int] | None = None,
    ) -> dict[int, np.ndarray]:
        """Per selector (each must have a prefilter), the rows of these columns that contain
        one of its literals. ``columns_hit``, when given, receives the indices of the columns
        where some literal was found (no keyword can match in the others)."""
        active = tuple(sorted(set(selectors)))
        hit = np.zeros((len(active), height), dtype=bool)
        database = self._database(active)
        unicode_folded = [(k, self._prefilters[s].unicode_folded) for k, s in enumerate(active)
                          if self._prefilters[s].unicode_folded]
        searched = [(index, column) for index, column in enumerate(columns) if column.null_count() < column.len()]
        found: set[int] = set()
        if database is not None:
            found |= {searched[i][0] for i in database.scan([column for _, column in searched], hit)}
        if unicode_folded:
            for index, column in searched:
                if _scan_unicode_folded(column, unicode_folded, hit):
                    found.add(index)
        if columns_hit is not None:
            columns_hit |= found
        return {selector: hit[k] for k, selector in enumerate(active)}

    def _database(self, active: tuple[int, ...]) -> _SelectorDatabase | None:
        if active not in self._databases:
            self._databases[active] = _SelectorDatabase.compile([self._prefilters[s] for s in active], self._engine)
        return self._databases[active]


class _SelectorDatabase:
    """One search over several selectors' ASCII literals; pattern ``i`` has byte length
    ``lengths[i]`` and is a literal of selector (row of the hit matrix) ``k`` where
    ``members[i, k]``.

    Two ways to search, the same rows: the native module's ``KeywordScanner`` (no GIL, all
    selectors at once, no conversion), else Hyperscan, each column converted to
    ``large_string`` and scanned. Why native first: Hyperscan's scans are fast, but the
    conversions were not; over 100,000 packed EVTX records (~1,400 columns of 8,000 rows,
    every one scanned for SigmaHQ's "Mimikatz Use") the hunting thread spent 0.16-0.19 s
    in that path and 0.11-0.14 s in the native one (bench/RESULTS.md, session 7).
    """

    def __init__(self, database: Any, scanner: Any, lengths: np.ndarray, members: np.ndarray) -> None:
        self._database = database
        self._scanner = scanner
        self._lengths = lengths
        self._members = members

    @classmethod
    def compile(cls, prefilters: Sequence[KeywordPrefilter], engine: str = "auto") -> _SelectorDatabase | None:
        """None when no prefilter has an ASCII literal. A literal several selectors share is
        one pattern (one callback per match). ``engine`` (tests): "auto", or "hyperscan" or
        "native" to force one way."""
        index: dict[tuple[str, bool], int] = {}
        owners: list[list[int]] = []
        for k, prefilter in enumerate(prefilters):
            for literal in _keyword_literals(prefilter.folded, prefilter.cased):
                if literal not in index:
                    index[literal] = len(owners)
                    owners.append([])
                owners[index[literal]].append(k)
        if not index:
            return None
        members = np.zeros((len(index), len(prefilters)), dtype=bool)
        for i, ks in enumerate(owners):
            members[i, ks] = True
        lengths = np.asarray([len(literal.encode("utf-8")) for literal, _ in index], dtype=np.int64)
        module = native()
        if engine == "hyperscan" or (engine == "auto" and module is None):
            database = cached_database([_literal_pattern(literal) for literal, _ in index],
                                       [_hyperscan_flag(caseless) for _, caseless in index])
            return cls(database, None, lengths, members)
        assert module is not None, "BatchKeywordScanner.build checks for Hyperscan or the native module"
        return cls(None, module.KeywordScanner(list(index)), lengths, members)

    def scan(self, columns: Sequence[pl.Series], hit: np.ndarray) -> set[int]:
        """Set ``hit[k, row]`` where a column's value at ``row`` contains a literal of
        selector ``k``; return the indices of the columns where a literal was found."""
        if self._database is None:
            capsules = [arrow_strings(column).__arrow_c_array__() for column in columns]
            patterns, rows, found_in = (np.frombuffer(b, dtype=np.int64) for b in self._scanner.scan(capsules))
            self._mark(patterns, rows, hit)
            return set(np.unique(found_in).tolist())
        found: set[int] = set()
        for index, column in enumerate(columns):
            if self._scan_column(column, hit):
                found.add(index)
        return found

    def _scan_column(self, column: pl.Series, hit: np.ndarray) -> bool:
        strings = _large_strings(column)
        if strings is None:
            return False
        offsets, data = strings
        patterns, stops = _matches(self._database, data)
        if not patterns.size:
            return False
        rows = np.searchsorted(offsets, stops - 1, side="right") - 1
        inside = (rows >= 0) & (rows < len(offsets) - 1)  # ends within some value's bytes
        patterns, stops, rows = patterns[inside], stops[inside], rows[inside]
        within = stops - self._lengths[patterns] >= offsets[rows]  # starts there too
        self._mark(patterns[within], rows[within], hit)
        return bool(within.any())

    def _mark(self, patterns: np.ndarray, rows: np.ndarray, hit: np.ndarray) -> None:
        if patterns.size:
            pairs, selectors = np.nonzero(self._members[patterns])
            hit[selectors, rows[pairs]] = True


def _matches(database: Any, data: Any) -> tuple[np.ndarray, np.ndarray]:
    """(pattern id, match end offset) of every Hyperscan match in ``data``, as int64 arrays."""
    ids: list[int] = []
    ends: list[int] = []

    def on_match(i: int, _from: int, to: int, _flags: int, _context: object) -> None:
        ids.append(i)
        ends.append(to)

    database.scan(data, match_event_handler=on_match)
    return np.asarray(ids, dtype=np.int64), np.asarray(ends, dtype=np.int64)


def _scan_unicode_folded(column: pl.Series, literals: Sequence[tuple[int, Sequence[str]]], hit: np.ndarray) -> bool:
    """``hit[k]`` where the Unicode-lowercased value contains one of selector ``k``'s
    non-ASCII literals (lowercased once per column for all of them); whether any did."""
    lowered = column.str.to_lowercase()
    found = False
    for k, selector_literals in literals:
        rows = lowered.str.contains_any(list(selector_literals)).fill_null(False).to_numpy()
        hit[k] |= rows
        found = found or bool(rows.any())
    return found


# --------------------------------------------------------------------------------------
# raw JSON lines


#: JSON's structural characters: nested values are re-encoded compactly, while the raw
#: line may space them (``[1, 2]``), so the raw pattern allows whitespace around them.
_STRUCTURAL = frozenset(",:[]{}")
#: Characters an encoder may write escaped or not (``\\/``); ``"`` is escaped inside a
#: string and bare around a nested value's keys.
_OPTIONALLY_ESCAPED = frozenset('"/')
_SHORT_ESCAPES = {"\\": rb"\\\\", "\n": rb"\\n", "\r": rb"\\r", "\t": rb"\\t"}
#: Lines that may hide a literal's ASCII character behind a ``\\uXXXX`` escape, or hold a
#: non-ASCII character whose lowercase is ASCII: always candidates.
_RAW_ESCAPES = (rb"\\u00[0-7][0-9a-fA-F]", rb"\\u212[aA]", rb"\\u0130")


def raw_pattern(literal: str) -> bytes | None:
    """A regex that any raw JSON line holding a value that contains ``literal`` matches
    (with ASCII case folding), or None when no useful one exists.

    Built from the literal's longest run without non-ASCII or control characters (those
    may be escaped at the encoder's choice; an escaped ASCII character is covered by
    :data:`_RAW_ESCAPES`): a backslash is ``\\\\`` in JSON, ``"`` and ``/`` may be preceded
    by one, and structural characters may have whitespace around them.
    """
    runs: list[str] = [""]
    for char in literal:
        if (char.isascii() and char.isprintable()) or char in _SHORT_ESCAPES:
            runs[-1] += char
        else:
            runs.append("")
    run = max(runs, key=len)
    if not run:
        return None
    parts = []
    for char in run:
        if char in _SHORT_ESCAPES:
            parts.append(_SHORT_ESCAPES[char])
        elif char in _OPTIONALLY_ESCAPED:
            parts.append(rb"\\?" + _hex(char))
        elif char in _STRUCTURAL:
            parts.append(rb"\s*" + _hex(char) + rb"\s*")
        else:
            parts.append(_hex(char))
    return b"".join(parts)


def _hex(char: str) -> bytes:
    return b"\\x%02x" % ord(char)


class RawKeywordPrefilter:
    """Rows whose raw JSON line may hold a keyword match in some field's value.

    Used for events read under a projection (see :class:`sigmahunt.ingest.Projection`):
    their columns hold only the fields rules name, but a keyword may match any field, so
    the raw line is scanned instead and only the candidate rows are read in full. A
    superset by construction: each literal's :func:`raw_pattern` is searched with ASCII
    case folding (so ``|cased`` keywords and canonical channel case are covered), and a
    line with an escaped ASCII character or a case-folding-to-ASCII character is always a
    candidate. Built only when every literal has a pattern (else every row is one).
    """

    def __init__(self, patterns: Sequence[bytes]) -> None:
        self.patterns = sorted(set(patterns))

    @cached_property
    def _hyperscan_scanner(self) -> KeywordPrefilter | None:
        """The patterns' Hyperscan database, compiled on first use (None: Polars scans).

        Why on first use: with Hyperscan the ingest's :class:`ChunkKeywordScanner` flags
        raw lines for every selector at once, so these databases serve only rows it did not
        see; compiling all selectors' up front cost every hunt ~0.04 s, EVTX ones for nothing.
        """
        if not _hyperscan_on():
            return None
        scanner = KeywordPrefilter((), ())
        try:
            scanner._database = _compile_raw(self.patterns)
        except hyperscan.error:  # a pattern Hyperscan refuses: Polars scans, same rows
            return None
        return scanner

    @classmethod
    def of(cls, folded: Sequence[str], cased: Sequence[str]) -> RawKeywordPrefilter | None:
        patterns = [raw_pattern(literal) for literal in (*folded, *cased)]
        if not patterns or any(p is None for p in patterns):
            return None
        return cls([p for p in patterns if p is not None])

    def candidate_rows(self, raw: pl.Series, height: int) -> np.ndarray:
        scanner = self._hyperscan_scanner
        if scanner is not None:
            return scanner.candidate_rows([raw], height)
        literal = "(?i-u:" + "|".join(p.decode() for p in self.patterns) + ")"
        always = "|".join(p.decode() for p in _RAW_ESCAPES) + "|" + "|".join(_UNICODE_TO_ASCII_FOLDS)
        return raw.str.contains(literal + "|" + always).fill_null(False).to_numpy()


def _compile_raw(patterns: Sequence[bytes]) -> object:
    expressions = [*patterns, *_RAW_ESCAPES] + [_literal_pattern(char) for char in _UNICODE_TO_ASCII_FOLDS]
    flags = [hyperscan.HS_FLAG_CASELESS] * len(patterns) + [0] * (len(expressions) - len(patterns))
    database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    database.compile(expressions=expressions, ids=list(range(len(expressions))), elements=len(expressions),
                     flags=flags)
    return database


class ChunkKeywordScanner:
    """One Hyperscan pass over a whole chunk of raw JSON lines for every keyword group.

    The ingest calls it (see :class:`sigmahunt.ingest.Projection`) while a chunk's lines
    still lie contiguous in one buffer: no per-column copy, one scan for all selectors,
    instead of a scan per selector over each batch's raw-line column. Each selector's
    :class:`RawKeywordPrefilter` patterns set its bit (bits are shared modulo 64: a shared
    bit only adds candidates); the escape patterns set every bit.
    """

    def __init__(self, prefilters: dict[int, RawKeywordPrefilter]) -> None:
        self.bits = {selector: 1 << (n % 64) for n, selector in enumerate(sorted(prefilters))}
        everything = 0
        for bit in self.bits.values():
            everything |= bit
        expressions: list[bytes] = []
        flags: list[int] = []
        masks: list[int] = []
        for selector in sorted(prefilters):
            for pattern in prefilters[selector].patterns:
                expressions.append(pattern)
                flags.append(hyperscan.HS_FLAG_CASELESS)
                masks.append(self.bits[selector])
        for pattern in (*_RAW_ESCAPES, *(_literal_pattern(char) for char in _UNICODE_TO_ASCII_FOLDS)):
            expressions.append(pattern)
            flags.append(0)
            masks.append(everything)
        self._masks = np.asarray(masks, dtype=np.uint64)
        self._database = cached_database(expressions, flags)

    @classmethod
    def build(cls, prefilters: dict[int, RawKeywordPrefilter | None]) -> ChunkKeywordScanner | None:
        """None without Hyperscan (the evaluator then scans the raw-line column itself)."""
        usable = {s: p for s, p in prefilters.items() if p is not None}
        if not usable or not _hyperscan_on():
            return None
        try:
            return cls(usable)
        except hyperscan.error:  # a pattern Hyperscan refuses: each batch's raw column is scanned
            return None

    def scan(self, data: bytes, offsets: np.ndarray) -> np.ndarray:
        flags = np.zeros(len(offsets) - 1, dtype=np.uint64)
        if not data:
            return flags
        ids, ends = _matches(self._database, data)
        if ids.size:
            rows = np.searchsorted(offsets, ends - 1, side="right") - 1
            keep = (rows >= 0) & (rows < len(flags))
            np.bitwise_or.at(flags, rows[keep], self._masks[ids[keep]])
        return flags
