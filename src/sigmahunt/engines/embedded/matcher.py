"""Match every predicate on one field at once, over the field's *distinct* values.

Why by hand: no library evaluates Sigma; the field's multi-pattern tools do the heavy
part. For one field we gather every literal any rule tests (equals via a dict; contains,
startswith, endswith and the literal hints of wildcard globs via one Aho-Corasick
automaton, ``pyahocorasick``), regexes run vectorised in Polars (Rust's linear-time
``regex`` crate, so no rule can backtrack catastrophically), globs in RE2. Work is done
once per distinct value and cached across batches, then broadcast to rows; real logs
repeat ``Image``, ``User``, ``ParentImage`` heavily, so most rows cost a lookup.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import ahocorasick
import numpy as np
import polars as pl
import re2

from sigmahunt.engines.embedded.ir import Kind, Predicate

# Entry kinds in the automaton payload.
_CONTAINS, _PREFIX, _SUFFIX, _HINT = 0, 1, 2, 3
_AC_KINDS = {Kind.CONTAINS: _CONTAINS, Kind.PREFIX: _PREFIX, Kind.SUFFIX: _SUFFIX}

#: Distinct values remembered per field before the cache is reset (bounds memory).
CACHE_LIMIT = 200_000


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
    regexes: list[tuple[int, str]] = field(default_factory=list)
    globs: list[tuple[int, object, bool, bool]] = field(default_factory=list)  # pid, re2, cased, hinted
    cidrs: list[tuple[int, ipaddress.IPv4Network | ipaddress.IPv6Network]] = field(default_factory=list)
    compares: list[tuple[int, str, float]] = field(default_factory=list)
    timeparts: list[tuple[int, str, float]] = field(default_factory=list)
    automaton_fold: ahocorasick.Automaton | None = None
    automaton_cased: ahocorasick.Automaton | None = None
    cache: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @classmethod
    def build(cls, items: Iterable[tuple[int, Predicate]]) -> ValueMatcher:
        self = cls()
        fold_entries: dict[str, list[tuple[int, int, int]]] = {}
        cased_entries: dict[str, list[tuple[int, int, int]]] = {}
        for pid, p in items:
            target = cased_entries if p.cased else fold_entries
            if p.kind is Kind.EQ:
                (self.eq_cased if p.cased else self.eq_fold).setdefault(p.value, []).append(pid)
            elif p.kind in _AC_KINDS:
                if p.value == "":  # "contains ''" holds for every value
                    self.any_value.append(pid)
                else:
                    target.setdefault(p.value, []).append((pid, _AC_KINDS[p.kind], len(p.value)))
            elif p.kind is Kind.ANY:
                self.any_value.append(pid)
            elif p.kind is Kind.GLOB:
                hinted = bool(p.required)
                if hinted:
                    target.setdefault(p.required[0], []).append((len(self.globs), _HINT, 0))
                self.globs.append((pid, re2.compile(p.value), p.cased, hinted))
            elif p.kind is Kind.REGEX:
                self.regexes.append((pid, p.value))
            elif p.kind is Kind.CIDR:
                self.cidrs.append((pid, ipaddress.ip_network(p.value, strict=False)))
            elif p.kind is Kind.CMP:
                self.compares.append((pid, p.op, p.number))
            elif p.kind is Kind.TIMEPART:
                self.timeparts.append((pid, p.op, p.number))
            else:
                raise ValueError(f"{p.kind} is not a value-level predicate")
        self.automaton_fold = _automaton(fold_entries)
        self.automaton_cased = _automaton(cased_entries)
        return self

    def prefilter_literals(self) -> tuple[list[str], list[str]] | None:
        """Literals one of which every matching value contains (folded, cased); None if unknown.

        Used to skip rows cheaply: a value can only satisfy a contains/startswith/endswith/
        equals or hinted-glob predicate if it contains that predicate's literal.
        """
        if self.any_value or self.regexes or self.cidrs or self.compares or self.timeparts:
            return None
        if any(not hinted for _, _, _, hinted in self.globs):
            return None
        if "" in self.eq_fold or "" in self.eq_cased:
            return None
        folded = set(self.eq_fold) | set(self._automaton_words(self.automaton_fold))
        cased = set(self.eq_cased) | set(self._automaton_words(self.automaton_cased))
        return sorted(folded), sorted(cased)

    @staticmethod
    def _automaton_words(automaton: ahocorasick.Automaton | None) -> list[str]:
        return [] if automaton is None else list(automaton.keys())

    def match_values(self, values: Sequence[str]) -> list[tuple[int, ...]]:
        """For each distinct value, the ids of the predicates it satisfies (cached)."""
        cache = self.cache
        missing = [v for v in values if v not in cache]
        if missing:
            if len(cache) + len(missing) > CACHE_LIMIT:
                cache.clear()
                missing = list(values)
            regex_hits = self._regex_hits(missing)
            for i, value in enumerate(missing):
                cache[value] = self._match_one(value, regex_hits.get(i, ()))
        return [cache[v] for v in values]

    def _regex_hits(self, values: list[str]) -> dict[int, list[int]]:
        hits: dict[int, list[int]] = {}
        if not self.regexes:
            return hits
        # One Polars query for all of the field's regexes: one pass into Rust, run in parallel.
        frame = pl.DataFrame({"v": pl.Series(values, dtype=pl.String)})
        result = frame.select(
            [pl.col("v").str.contains(pattern).alias(str(n)) for n, (_, pattern) in enumerate(self.regexes)]
        )
        for n, (pid, _) in enumerate(self.regexes):
            for i in np.flatnonzero(result.get_column(str(n)).fill_null(False).to_numpy()):
                hits.setdefault(int(i), []).append(pid)
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
        glob_candidates: set[int] = set()
        if self.automaton_fold is not None:
            _scan(self.automaton_fold, folded, found, glob_candidates)
        if self.automaton_cased is not None:
            _scan(self.automaton_cased, value, found, glob_candidates)
        for index, (pid, pattern, cased, hinted) in enumerate(self.globs):
            if hinted and index not in glob_candidates:
                continue
            if pattern.search(value if cased else folded):
                found.add(pid)
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


def _automaton(entries: dict[str, list[tuple[int, int, int]]]) -> ahocorasick.Automaton | None:
    if not entries:
        return None
    automaton = ahocorasick.Automaton()
    for literal, payload in entries.items():
        automaton.add_word(literal, tuple(payload))
    automaton.make_automaton()
    return automaton


def _scan(automaton: ahocorasick.Automaton, text: str, found: set[int], globs: set[int]) -> None:
    last = len(text) - 1
    for end, payload in automaton.iter(text):
        for pid, kind, length in payload:
            if kind == _CONTAINS:
                found.add(pid)
            elif kind == _PREFIX:
                if end + 1 == length:
                    found.add(pid)
            elif kind == _SUFFIX:
                if end == last:
                    found.add(pid)
            else:
                globs.add(pid)  # here pid is the glob's index


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
