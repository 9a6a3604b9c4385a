"""Multi-pattern scanners: which contains/startswith/endswith/glob predicates a value satisfies.

Two implementations of one contract, so the engine runs everywhere and the fast one can
be checked against the portable one (the test suite runs the semantics under both):

* :class:`HyperscanScanner` (default where the ``hyperscan`` wheel exists): the literals of
  a field in Hyperscan databases (SIMD multi-literal search, linear time); contains
  literals are reported once per value, so the Python work per value is a few calls plus
  one callback per predicate that holds.
* :class:`AhoCorasickScanner` (``pyahocorasick`` + RE2): one automaton over the literals,
  position checks for startswith/endswith in Python, globs verified in RE2 when their
  rarest literal occurs.

Values are lowercased in Python before scanning for case-insensitive predicates (and the
literals were lowercased by the same ``str.lower`` at compile time), so both scanners agree
with Python's Unicode case folding exactly.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import ahocorasick
import re2

from sigmahunt.cache import cache_root
from sigmahunt.engines.embedded.ir import Kind
from sigmahunt.results import write_atomically

try:  # optional accelerator
    import hyperscan
except ImportError:  # pragma: no cover - exercised where the wheel is absent
    hyperscan = None

#: Set to "0" to force the portable scanner (tests run both).
USE_HYPERSCAN_ENV = "SIGMAHUNT_HYPERSCAN"


@dataclass(frozen=True)
class ScanEntry:
    """One predicate a scanner answers: ``text`` is the literal, or the glob's regex."""

    pid: int
    kind: Kind  # PREFIX, SUFFIX, CONTAINS or GLOB
    text: str
    required: tuple[str, ...] = ()


class Scanner(Protocol):
    def matches(self, text: str) -> list[int]: ...


def build_scanner(entries: Sequence[ScanEntry]) -> Scanner | None:
    if not entries:
        return None
    if hyperscan is not None and os.environ.get(USE_HYPERSCAN_ENV, "1") != "0":
        try:
            return HyperscanScanner(entries)
        except hyperscan.error:  # a pattern Hyperscan refuses: the portable path is exact too
            pass
    return AhoCorasickScanner(entries)


class HyperscanScanner:
    """Three Hyperscan databases of plain literals (anchored patterns compile ~25x slower).

    * contains literals, and each glob's rarest literal as a hint, reported once per value;
    * startswith literals, scanned over the value's first bytes only: a match ending at
      byte ``len(literal)`` starts at 0;
    * endswith literals, scanned over the value's last bytes only: a match ending at the
      slice's end ends the value.

    Globs whose hint occurs (or that have no literal) are verified with RE2.
    """

    def __init__(self, entries: Sequence[ScanEntry]) -> None:
        contains: list[tuple[int, bytes]] = []
        self._prefix: list[tuple[int, int]] = []  # pid, byte length
        self._suffix: list[int] = []
        prefix_words: list[bytes] = []
        suffix_words: list[bytes] = []
        self._globs: list[tuple[int, object]] = []
        self._unhinted_globs: list[int] = []
        for entry in entries:
            if entry.kind is Kind.GLOB:
                index = len(self._globs)
                self._globs.append((entry.pid, re2.compile(entry.text)))
                if entry.required:
                    contains.append((-1 - index, entry.required[0].encode("utf-8", "surrogatepass")))
                else:
                    self._unhinted_globs.append(index)
                continue
            data = entry.text.encode("utf-8", "surrogatepass")
            if entry.kind is Kind.CONTAINS:
                contains.append((entry.pid, data))
            elif entry.kind is Kind.PREFIX:
                self._prefix.append((entry.pid, len(data)))
                prefix_words.append(data)
            else:
                self._suffix.append(entry.pid)
                suffix_words.append(data)
        self._contains_ids = [pid for pid, _ in contains]
        self._contains = _database([w for _, w in contains], hyperscan.HS_FLAG_SINGLEMATCH)
        self._prefixes = _database(prefix_words, 0)
        self._suffixes = _database(suffix_words, 0)
        self._prefix_span = max((len(w) for w in prefix_words), default=0)
        self._suffix_span = max((len(w) for w in suffix_words), default=0)

    def matches(self, text: str) -> list[int]:
        data = text.encode("utf-8", "surrogatepass")
        found: list[int] = []
        hinted: list[int] = []
        if not data:  # Hyperscan refuses empty buffers; no literal occurs in "" anyway
            return [pid for pid, pattern in (self._globs[i] for i in self._unhinted_globs) if pattern.search(text)]
        if self._contains is not None:
            ids = self._contains_ids

            def on_contains(i: int, _f: int, _t: int, _fl: int, _c: object) -> None:
                pid = ids[i]
                (found if pid >= 0 else hinted).append(pid)

            self._contains.scan(data, match_event_handler=on_contains)
        if self._prefixes is not None:
            prefixes = self._prefix

            def on_prefix(i: int, _f: int, to: int, _fl: int, _c: object) -> None:
                pid, length = prefixes[i]
                if to == length:
                    found.append(pid)

            self._prefixes.scan(data[: self._prefix_span], match_event_handler=on_prefix)
        if self._suffixes is not None:
            tail = data[-self._suffix_span:]
            end, suffixes = len(tail), self._suffix

            def on_suffix(i: int, _f: int, to: int, _fl: int, _c: object) -> None:
                if to == end:
                    found.append(suffixes[i])

            self._suffixes.scan(tail, match_event_handler=on_suffix)
        if self._globs:
            for index in [-1 - h for h in hinted] + self._unhinted_globs:
                pid, pattern = self._globs[index]
                if pattern.search(text):
                    found.append(pid)
        return found


def _database(words: Sequence[bytes], flag: int) -> object | None:
    """Compile (or load from the cache: compiling SigmaHQ's literals takes ~3 s) a database."""
    if not words:
        return None
    return cached_database([_hex(w) for w in words], [flag] * len(words))


def cached_database(expressions: Sequence[bytes], flags: Sequence[int]) -> object:
    """A block-mode database of these expressions, from the on-disk cache when there.

    Raises ``hyperscan.error`` when Hyperscan refuses an expression.
    """
    key = hashlib.sha256(b"%s\0" % hyperscan.__version__.encode() + b"\0".join(
        b"%d\0%s" % (flag, expression) for expression, flag in zip(expressions, flags, strict=True))).hexdigest()
    root = cache_root()
    path = None if root is None else root / "hyperscan" / key[:2] / f"{key}.hsdb"
    if path is not None and path.exists():
        try:
            loaded = hyperscan.loadb(path.read_bytes(), hyperscan.HS_MODE_BLOCK)
            loaded.scratch = hyperscan.Scratch(loaded)  # a deserialised database has none
            return loaded
        except (hyperscan.error, OSError, ValueError):
            pass  # damaged entry: rebuild it
    database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    database.compile(expressions=list(expressions), ids=list(range(len(expressions))), elements=len(expressions),
                     flags=list(flags))
    if path is not None:
        try:
            write_atomically(path, hyperscan.dumpb(database))
        except OSError:
            pass  # a read-only cache only costs time
    return database


#: ``\\xNN`` for every byte value (see :func:`_hex`).
_HEX_ESCAPES = [b"\\x%02x" % byte for byte in range(256)]


def _hex(data: bytes) -> bytes:
    """A Hyperscan expression matching exactly these bytes. By table lookup: formatting
    each byte took 0.16 s (cProfile) of a hunt's first small batch (SigmaHQ's ~23,000
    literals of the fields Python matches there, bench/RESULTS.md, session 11), even with
    every database cached, since the expressions are the cache's key."""
    return b"".join(map(_HEX_ESCAPES.__getitem__, data))


_CONTAINS, _PREFIX, _SUFFIX, _HINT = 0, 1, 2, 3
_AC_KINDS = {Kind.CONTAINS: _CONTAINS, Kind.PREFIX: _PREFIX, Kind.SUFFIX: _SUFFIX}


class AhoCorasickScanner:
    def __init__(self, entries: Sequence[ScanEntry]) -> None:
        words: dict[str, list[tuple[int, int, int]]] = {}
        self._globs: list[tuple[int, object, bool]] = []  # pid, compiled, hinted
        for entry in entries:
            if entry.kind is Kind.GLOB:
                hinted = bool(entry.required)
                if hinted:
                    words.setdefault(entry.required[0], []).append((len(self._globs), _HINT, 0))
                self._globs.append((entry.pid, re2.compile(entry.text), hinted))
            else:
                words.setdefault(entry.text, []).append((entry.pid, _AC_KINDS[entry.kind], len(entry.text)))
        self._automaton: ahocorasick.Automaton | None = None
        if words:
            self._automaton = ahocorasick.Automaton()
            for word, payload in words.items():
                self._automaton.add_word(word, tuple(payload))
            self._automaton.make_automaton()

    def matches(self, text: str) -> list[int]:
        found: set[int] = set()
        candidates: set[int] = set()
        if self._automaton is not None:
            last = len(text) - 1
            for end, payload in self._automaton.iter(text):
                for pid, kind, length in payload:
                    if kind == _CONTAINS or (kind == _PREFIX and end + 1 == length) or (
                            kind == _SUFFIX and end == last):
                        found.add(pid)
                    elif kind == _HINT:
                        candidates.add(pid)  # the glob's index
        for index, (pid, pattern, hinted) in enumerate(self._globs):
            if (not hinted or index in candidates) and pattern.search(text):
                found.add(pid)
        return list(found)


class RegexPrefilter:
    """Which of a field's regexes may match a value, so the exact regex runs only there.

    Why: Polars compiles a regex on every call, and some SigmaHQ regexes cost tens of
    milliseconds to compile (``-k\\s\\w{1,64}...`` builds a large Unicode automaton), so
    running every regex of ``CommandLine`` on each batch's new values cost more than all
    other predicates together. Hyperscan in prefilter mode (compiled once, cached on disk)
    answers "cannot match" for most (value, regex) pairs; the exact Rust-regex test still
    decides every remaining one, so the hits are unchanged.

    It only ever rules out pairs it is sure of: it screens ASCII values against ASCII
    patterns (where Hyperscan's byte semantics and Rust's Unicode semantics agree: ``\\w``,
    ``.``, case folding); a non-ASCII or empty value, and a regex Hyperscan refuses, always
    go to the exact test. Prefilter mode itself may over-report, never under-report.
    """

    def __init__(self, patterns: Sequence[str]) -> None:
        self.always = [n for n, p in enumerate(patterns) if not p.isascii()]  # tested on every value
        screened = [(n, p) for n, p in enumerate(patterns) if p.isascii()]
        try:
            self._ids, self._database = self._compile(screened)
        except hyperscan.error:  # find the refused ones (rare), screen the others
            accepted = []
            for n, pattern in screened:
                try:
                    self._compile([(n, pattern)])
                    accepted.append((n, pattern))
                except hyperscan.error:
                    self.always.append(n)
            self._ids, self._database = self._compile(accepted)

    @staticmethod
    def _compile(patterns: Sequence[tuple[int, str]]) -> tuple[list[int], object | None]:
        if not patterns:
            return [], None
        flags = hyperscan.HS_FLAG_PREFILTER | hyperscan.HS_FLAG_ALLOWEMPTY | hyperscan.HS_FLAG_SINGLEMATCH
        database = cached_database([p.encode() for _, p in patterns], [flags] * len(patterns))
        return [n for n, _ in patterns], database

    @classmethod
    def build(cls, patterns: Sequence[str]) -> RegexPrefilter | None:
        if hyperscan is None or os.environ.get(USE_HYPERSCAN_ENV, "1") == "0" or not patterns:
            return None
        return cls(patterns)

    def candidates(self, values: Sequence[str]) -> dict[int, list[int]]:
        """Regex index -> indexes of the values it may match."""
        out: dict[int, list[int]] = {n: list(range(len(values))) for n in self.always}
        ids, database = self._ids, self._database
        if database is None:
            return out
        for index, value in enumerate(values):
            if not value or not value.isascii():
                for n in ids:
                    out.setdefault(n, []).append(index)
                continue

            def on_match(i: int, _f: int, _t: int, _fl: int, _c: object, index: int = index) -> None:
                out.setdefault(ids[i], []).append(index)

            database.scan(value.encode(), match_event_handler=on_match)
        return out
