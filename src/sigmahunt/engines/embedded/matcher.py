"""Match every predicate on one field at once, over the field's *distinct* values.

Why by hand: no library evaluates Sigma; the field's multi-pattern tools do the heavy
part. For one field we gather every test any rule makes (equals via a dict; contains,
startswith, endswith and wildcard globs via one multi-pattern scanner, see
:mod:`.scanners`), regexes run vectorised in Polars (Rust's linear-time ``regex`` crate,
so no rule can backtrack catastrophically). Work is done
once per distinct value and cached across batches, then broadcast to rows; real logs
repeat ``Image``, ``User``, ``ParentImage`` heavily, so most rows cost a lookup.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from sigmahunt.engines.embedded.compiler import pcre_dollar
from sigmahunt.engines.embedded.ir import Kind, Predicate
from sigmahunt.engines.embedded.scanners import RegexPrefilter, ScanEntry, Scanner, build_scanner
from sigmahunt.native import native

#: Scanned kinds as the native FieldMatcher numbers them (native/src/matcher.rs).
_NATIVE_KIND = {Kind.CONTAINS: 0, Kind.PREFIX: 1, Kind.SUFFIX: 2}

#: Kinds answered by the multi-pattern scanners.
_SCANNED = frozenset({Kind.CONTAINS, Kind.PREFIX, Kind.SUFFIX})

#: Characters of distinct values remembered per field before its cache is reset: bounds
#: memory (a field like PowerShell's ContextInfo holds kilobytes per value).
CACHE_CHARS = 8_000_000
#: Values longer than this are matched every time, never cached: they rarely repeat.
CACHE_VALUE_CHARS = 2_048


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("::ffff:") and "." in text:  # IPv4-mapped, as Windows logs write them
        text = text[7:]
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def _parse_number(text: str) -> float | None:
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return float(int(text, 0))  # 0x1F as logged by Windows
    except ValueError:
        return None


_COMPARE = {
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "neq": lambda a, b: a != b,
}


@dataclass
class ValueMatcher:
    """All value-level predicates of one field (or of keywords), compiled together."""

    eq_fold: dict[str, list[int]] = field(default_factory=dict)
    eq_cased: dict[str, list[int]] = field(default_factory=dict)
    any_value: list[int] = field(default_factory=list)
    regexes: list[tuple[int, str, str]] = field(default_factory=list)  # pid, Rust dialect, Sigma (PCRE)
    cidrs: list[tuple[int, ipaddress.IPv4Network | ipaddress.IPv6Network]] = field(default_factory=list)
    compares: list[tuple[int, str, float]] = field(default_factory=list)
    timeparts: list[tuple[int, str, float]] = field(default_factory=list)
    scan_fold: list[ScanEntry] = field(default_factory=list)
    scan_cased: list[ScanEntry] = field(default_factory=list)
    #: Built on first use: with the native matcher most fields never need them (only its
    #: non-ASCII values come here), and building them all cost ~0.3 s of every hunt's start.
    scanner_fold: Scanner | None = None
    scanner_cased: Scanner | None = None
    scanners_built: bool = False
    cache: dict[str, tuple[int, ...]] = field(default_factory=dict)
    cache_chars: int = 0
    regex_prefilter: RegexPrefilter | None = None  # built on first use (None: no Hyperscan)
    regex_prefilter_built: bool = False
    #: The native module when it was on as the plan was built (decided then, so a plan
    #: keeps one behaviour), and the Rust twin built from it on first use.
    native_module: Any = None
    native: Any = None
    native_built: bool = False

    @classmethod
    def build(cls, items: Iterable[tuple[int, Predicate]]) -> ValueMatcher:
        self = cls(native_module=native())
        for pid, p in items:
            scan = self.scan_cased if p.cased else self.scan_fold
            if p.kind is Kind.EQ:
                (self.eq_cased if p.cased else self.eq_fold).setdefault(p.value, []).append(pid)
            elif p.kind in _SCANNED:
                if p.value == "":  # "contains ''" holds for every value
                    self.any_value.append(pid)
                else:
                    scan.append(ScanEntry(pid, p.kind, p.value))
            elif p.kind is Kind.ANY:
                self.any_value.append(pid)
            elif p.kind is Kind.GLOB:
                scan.append(ScanEntry(pid, p.kind, p.value, p.required))
            elif p.kind is Kind.REGEX:
                self.regexes.append((pid, rust_dialect(p.value), p.value))
            elif p.kind is Kind.CIDR:
                self.cidrs.append((pid, ipaddress.ip_network(p.value, strict=False)))
            elif p.kind is Kind.CMP:
                self.compares.append((pid, p.op, p.number))
            elif p.kind is Kind.TIMEPART:
                self.timeparts.append((pid, p.op, p.number))
            else:
                raise ValueError(f"{p.kind} is not a value-level predicate")
        return self

    def _build_scanners(self) -> None:
        self.scanner_fold = build_scanner(self.scan_fold)
        self.scanner_cased = build_scanner(self.scan_cased)
        self.scanners_built = True

    def prefilter_literals(self) -> tuple[list[str], list[str]] | None:
        """Literals one of which every matching value contains (folded, cased); None if unknown.

        Used to skip rows cheaply: a value can only satisfy a contains/startswith/endswith/
        equals predicate, or a glob, if it contains that predicate's (longest) literal.
        """
        if self.any_value or self.regexes or self.cidrs or self.compares or self.timeparts:
            return None
        if "" in self.eq_fold or "" in self.eq_cased:
            return None
        folded, cased = set(self.eq_fold), set(self.eq_cased)
        for entries, target in ((self.scan_fold, folded), (self.scan_cased, cased)):
            for entry in entries:
                if entry.kind is Kind.GLOB:
                    if not entry.required:
                        return None
                    target.add(entry.required[0])
                else:
                    target.add(entry.text)
        return sorted(folded), sorted(cased)

    def native_matcher(self) -> Any | None:
        """The Rust twin of this matcher (row masks straight from Arrow buffers, ASCII values;
        see native/src/matcher.rs), or None: native module absent or off, or a cidr, numeric
        or time-part test, which only this Python matcher answers."""
        if not self.native_built:
            self.native_built = True
            self.native = self._build_native()
        return self.native

    def _build_native(self, dfa_after_bytes: int | None = None) -> Any | None:
        """``dfa_after_bytes``: when the literal sets switch to a DFA (None: the native
        default, ``DFA_AFTER_BYTES`` in native/src/matcher.rs); tests pass 0 and a huge one."""
        module = self.native_module
        if module is None or self.cidrs or self.compares or self.timeparts:
            return None

        def literals(entries: list[ScanEntry]) -> list[tuple[int, int, str]]:
            return [(e.pid, _NATIVE_KIND[e.kind], e.text) for e in entries if e.kind is not Kind.GLOB]

        def globs(entries: list[ScanEntry]) -> list[tuple[int, str, str | None]]:
            return [(e.pid, e.text, e.required[0] if e.required else None) for e in entries if e.kind is Kind.GLOB]

        extra = {} if dfa_after_bytes is None else {"dfa_after_bytes": dfa_after_bytes}
        try:
            return module.FieldMatcher(
                list(self.eq_fold.items()), list(self.eq_cased.items()), list(self.any_value),
                literals(self.scan_fold), literals(self.scan_cased), globs(self.scan_fold), globs(self.scan_cased),
                [(pid, pattern) for pid, pattern, _ in self.regexes], **extra,
            )
        except (ValueError, UnicodeEncodeError):  # a pattern Rust refuses, a lone surrogate: Python answers
            return None

    def match_values(self, values: Sequence[str]) -> list[tuple[int, ...]]:
        """For each distinct value, the ids of the predicates it satisfies (cached)."""
        cache = self.cache
        missing = [v for v in values if v not in cache]
        if not missing:
            return [cache[v] for v in values]
        if not self.scanners_built:
            self._build_scanners()
        regex_hits = self._regex_hits(missing)
        fresh = {value: self._match_one(value, regex_hits.get(i, ())) for i, value in enumerate(missing)}
        out = [cache[v] if v in cache else fresh[v] for v in values]
        if self.cache_chars > CACHE_CHARS:
            cache.clear()
            self.cache_chars = 0
        for value, pids in fresh.items():
            if len(value) <= CACHE_VALUE_CHARS:
                cache[value] = pids
                self.cache_chars += len(value)
        return out

    def _regex_hits(self, values: list[str]) -> dict[int, list[int]]:
        hits: dict[int, list[int]] = {}
        if not self.regexes:
            return hits
        # Only the (value, regex) pairs the prefilter cannot rule out, in one Polars query:
        # one pass into Rust, run in parallel.
        if not self.regex_prefilter_built:
            self.regex_prefilter = RegexPrefilter.build([source for _, _, source in self.regexes])
            self.regex_prefilter_built = True
        if self.regex_prefilter is not None:
            wanted = {n: rows for n, rows in self.regex_prefilter.candidates(values).items() if rows}
            union = sorted({i for rows in wanted.values() for i in rows})
        else:
            wanted = dict.fromkeys(range(len(self.regexes)), [])
            union = list(range(len(values)))
        if not wanted:
            return hits
        frame = pl.DataFrame({"v": pl.Series([values[i] for i in union], dtype=pl.String)})
        result = frame.select(
            [pl.col("v").str.contains(self.regexes[n][1]).alias(str(n)) for n in sorted(wanted)]
        )
        for n in sorted(wanted):
            pid = self.regexes[n][0]
            for i in np.flatnonzero(result.get_column(str(n)).fill_null(False).to_numpy()):
                hits.setdefault(union[int(i)], []).append(pid)
        return hits

    def _match_one(self, value: str, regex_pids: Iterable[int]) -> tuple[int, ...]:
        found: set[int] = set(regex_pids)
        found.update(self.any_value)
        folded = value.lower()
        pids = self.eq_fold.get(folded)
        if pids:
            found.update(pids)
        pids = self.eq_cased.get(value)
        if pids:
            found.update(pids)
        if self.scanner_fold is not None:
            found.update(self.scanner_fold.matches(folded))
        if self.scanner_cased is not None:
            found.update(self.scanner_cased.matches(value))
        if self.cidrs:
            address = _parse_ip(value)
            if address is not None:
                found.update(pid for pid, net in self.cidrs if address.version == net.version and address in net)
        if self.compares:
            number = _parse_number(value)
            if number is not None and not math.isnan(number):
                found.update(pid for pid, op, ref in self.compares if _COMPARE[op](number, ref))
        if self.timeparts:
            found.update(_timepart_hits(value, self.timeparts))
        return tuple(sorted(found))


def rust_dialect(pattern: str) -> str:
    """A Sigma (PCRE) regex for Rust's ``regex``: ``$`` without multi-line mode also matches
    before a final newline in PCRE, so it is rewritten (see :func:`pcre_dollar`). Patterns
    that turn multi-line mode on anywhere are left as they are (``$`` then means end of line
    in both dialects)."""
    if _MULTILINE_FLAG.search(pattern):
        return pattern
    return pcre_dollar(pattern)


_MULTILINE_FLAG = re.compile(r"\(\?[a-zA-Z]*m[a-zA-Z-]*[:)]")


def _timepart_hits(value: str, parts: list[tuple[int, str, float]]) -> list[int]:
    from datetime import datetime

    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        return []
    numbers = {
        "minute": moment.minute,
        "hour": moment.hour,
        "day": moment.day,
        "week": moment.isocalendar().week,
        "month": moment.month,
        "year": moment.year,
    }
    return [pid for pid, part, number in parts if numbers[part] == number]
