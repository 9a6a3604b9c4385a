"""Sigma correlations over detection records: sliding windows, per group, every type.

Input: the detection records the hunt produced (one per rule and event, the format of
:mod:`sigmahunt.results`); output: one correlation record per match. It works on the
records of any engine, so Elasticsearch/OpenSearch and Spark get the same answers by
running :func:`correlate` on the detections they return.

Semantics (README "Correlations" has the user-facing version):

* **Group**: the values of the ``group-by`` fields (through ``aliases`` per rule) in the
  detection's event; a detection whose event lacks a group-by field takes no part (like
  ``stats ... by`` and terms aggregations). Values compare exactly.
* **Window**: the events of one group within ``timespan`` of each other, ends included
  (events exactly ``timespan`` apart share a window; one microsecond more and they do
  not). Windows slide: every window of length ``timespan`` ending at an event is a
  candidate, so a burst across any clock boundary is found.
* **Maximal windows**: the condition is tested on the windows no longer window contains
  (the next event of the group would push the oldest one out). For ``gt``/``gte`` this finds
  every burst a shorter window could find and reports the whole burst once; for ``lt``,
  ``lte``, ``eq`` and ranges it means "over the whole activity in the window": a burst of
  1,000 failed logons never matches ``lt: 10`` through its first few events. ``lt: N``
  therefore means "a window with at least one event and fewer than N": the absence of
  events is not a detection (there is nothing to anchor a window on).
* **One detection per window**: a matched window's events are consumed, so a long burst
  yields consecutive, non-overlapping detections of at most ``timespan`` each.
* **Ordering**: detections are sorted by time within each group before windowing, so input
  order (files out of order, interleaved hosts) never changes the result. Memory: the
  sort keys of the correlated rules' detections (the hunt holds those records anyway)
  and, while windowing, the events within one ``timespan`` of the current group.
* ``event_count`` counts events (an event two referenced rules both match counts once);
  ``value_count`` distinct values of ``field``; ``value_sum``/``value_avg``/
  ``value_median``/``value_percentile`` aggregate the numeric values of ``field`` (other
  values are ignored; percentile: linear interpolation between closest ranks, as numpy's
  default); ``temporal`` counts distinct referenced rules in the window (default
  condition: all of them); ``temporal_ordered`` the length of the longest prefix of the
  ``rules`` list found in that order (equal timestamps count as in order).
"""

from __future__ import annotations

import bisect
import math
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sigmahunt.correlation.conditions import holds
from sigmahunt.correlation.plan import (
    CorrelationPlan,
    CorrelationSpec,
    evaluate_expression,
    record_key,
)
from sigmahunt.logsources import CATEGORY_SOURCES

#: Sigma field -> event fields it is logged as by some Windows source (``Image`` is
#: ``NewProcessName`` in Security 4688): tried when the event lacks the Sigma name.
FIELD_FALLBACKS: dict[str, tuple[str, ...]] = {}
for _sources in CATEGORY_SOURCES.values():
    for _source in _sources:
        for _sigma, _logged in _source.field_map:
            if _logged not in FIELD_FALLBACKS.get(_sigma, ()):
                FIELD_FALLBACKS[_sigma] = (*FIELD_FALLBACKS.get(_sigma, ()), _logged)

#: Group-by fields that name the computer (the record's ``computer`` column).
COMPUTER_FIELDS = frozenset({"computer", "computername", "hostname", "host.name", "host"})

#: Keys a correlation record adds to the single-detection record.
CORRELATION_KEYS = ("correlation_type", "group", "window_start", "window_end", "value",
                    "event_ids", "event_rules", "events")


class Item:
    """One detection as a correlation sees it."""

    __slots__ = ("also", "event_key", "nested", "rank", "record", "rule", "seq", "ts", "value")

    def __init__(self, ts: int, seq: int, rank: int, rule: str, event_key: Any, value: Any,
                 record: Mapping[str, Any]) -> None:
        self.ts = ts
        self.seq = seq
        self.rank = rank
        self.rule = rule
        self.event_key = event_key
        self.value = value
        self.record = record
        self.also: list[str] | None = None  # other referenced rules that matched the same event
        self.nested = is_correlation(record)  # a correlation match (chains), not one event


# -- reading records ---------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp_us(text: Any) -> int | None:
    """Microseconds since the epoch of a record timestamp (ISO 8601; naive means UTC), None if absent."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def is_correlation(record: Mapping[str, Any]) -> bool:
    return bool(record.get("correlation_type"))


def field_value(record: Mapping[str, Any], name: str) -> Any:
    """A field of a detection's event (a correlation record: of its group), None if absent.

    Exact name first, then the Windows field renames (``Image`` -> ``NewProcessName``),
    then a case-insensitive match. A correlation match has the fields it grouped by, and
    any field all its events share one value of.
    """
    if is_correlation(record):
        value = _lookup(record.get("group") or {}, name)
        if value is None:
            values = {_lookup(event, name) for event in record.get("events") or ()}
            if len(values) == 1:
                value = values.pop()
        return value
    return _lookup(record.get("event") or {}, name)


def _lookup(source: Mapping[str, Any], name: str) -> Any:
    if not source:
        return None
    value = source.get(name)
    if value is not None and value != "":
        return value
    for other in FIELD_FALLBACKS.get(name, ()):
        value = source.get(other)
        if value is not None and value != "":
            return value
    lowered = name.lower()
    for key, value in source.items():
        if key.lower() == lowered and value is not None and value != "":
            return value
    return None


def event_id_of(record: Mapping[str, Any]) -> tuple[Any, ...]:
    """Identity of the event behind a detection: its (source, position) or the correlation match."""
    if is_correlation(record):
        return ("correlation", record_key(record), record.get("window_end"),
                tuple(sorted((str(k), str(v)) for k, v in (record.get("group") or {}).items())))
    return (record.get("source"), record.get("position"), record.get("record_id"))


def number(value: Any) -> int | float | None:
    """A numeric field value (``1024``, ``-3``, ``1.5``, ``0x400``), None when not a number."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value if not (isinstance(value, float) and math.isnan(value)) else None
    text = str(value).strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        if text.lower().startswith(("0x", "-0x")):
            return int(text, 16)
        result = float(text)
    except ValueError:
        return None
    return result if math.isfinite(result) else None


# -- aggregation -------------------------------------------------------------------------

class Aggregate:
    """The value of a correlation over the items of a window, maintained as items come and go."""

    def __init__(self, spec: CorrelationSpec) -> None:
        self.spec = spec
        self.kind = spec.type
        self.clear()

    def clear(self) -> None:
        self.n = 0
        self.values: Counter[Any] = Counter()
        self.total: int | float = 0
        self.numbers = 0
        self.sorted: list[int | float] = []

    def add(self, item: Item) -> None:
        self.n += 1
        kind = self.kind
        if kind in ("value_count", "temporal"):
            key = item.rule if kind == "temporal" else item.value
            if key is not None:
                self.values[key] += 1
        elif kind in ("value_sum", "value_avg") and item.value is not None:
            self.total += item.value
            self.numbers += 1
        elif kind in ("value_median", "value_percentile") and item.value is not None:
            bisect.insort(self.sorted, item.value)

    def remove(self, item: Item) -> None:
        self.n -= 1
        kind = self.kind
        if kind in ("value_count", "temporal"):
            key = item.rule if kind == "temporal" else item.value
            if key is not None:
                self.values[key] -= 1
                if not self.values[key]:
                    del self.values[key]
        elif kind in ("value_sum", "value_avg") and item.value is not None:
            self.total -= item.value
            self.numbers -= 1
        elif kind in ("value_median", "value_percentile") and item.value is not None:
            del self.sorted[bisect.bisect_left(self.sorted, item.value)]

    def value(self, window: Sequence[Item]) -> Any:
        kind = self.kind
        if kind == "event_count":
            return self.n
        if kind in ("value_count", "temporal"):
            return len(self.values)
        if kind == "temporal_ordered":
            return ordered_prefix(window, self.spec.refs)
        if kind == "value_sum":
            return self.total if self.numbers else None
        if kind == "value_avg":
            return self.total / self.numbers if self.numbers else None
        if kind == "value_median":
            return percentile(self.sorted, 50.0)
        if kind == "value_percentile":
            return percentile(self.sorted, float(self.spec.percentile or 0))
        raise ValueError(kind)

    def matches(self, window: Sequence[Item]) -> tuple[bool, Any]:
        if self.spec.expression is not None:
            present = set(self.values)
            return evaluate_expression(self.spec.expression, present), len(present)
        value = self.value(window)
        return holds(value, self.spec.bounds), value


def percentile(ordered: Sequence[int | float], p: float) -> float | None:
    """The p-th percentile of sorted values, interpolating linearly between closest ranks."""
    if not ordered:
        return None
    position = (len(ordered) - 1) * p / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    fraction = position - low
    return ordered[low] + (ordered[high] - ordered[low]) * fraction


def ordered_prefix(window: Sequence[Item], refs: Sequence[str]) -> int:
    """How many of ``refs`` appear in that order in the window (greedy earliest match)."""
    need = 0
    last_event = None
    for item in window:  # sorted by (time, rank in refs)
        if need == len(refs):
            break
        if item.rule == refs[need] and (need == 0 or item.event_key != last_event):
            need += 1
            last_event = item.event_key
    return need


# -- windows -----------------------------------------------------------------------------

def sliding_matches(items: Iterable[Item], spec: CorrelationSpec,
                    stats: dict[str, int] | None = None) -> Iterable[tuple[list[Item], Any]]:
    """Matched maximal windows of one group's items (sorted by time), consumed as matched.

    State: the items within ``timespan`` of the newest one (``stats["max_window"]`` records
    the largest such window), never the group's whole history.
    """
    span = spec.span_us
    largest = 0
    window: deque[Item] = deque()
    aggregate = Aggregate(spec)
    for item in items:
        if window and item.ts - span > window[0].ts:
            # The window ending at the previous item is maximal: this item pushes its oldest out.
            matched, value = aggregate.matches(window)
            if matched:
                yield list(window), value
                window.clear()
                aggregate.clear()
            else:
                limit = item.ts - span
                while window and window[0].ts < limit:
                    aggregate.remove(window.popleft())
        window.append(item)
        aggregate.add(item)
        largest = max(largest, len(window))
    if stats is not None and largest > stats.get("max_window", 0):
        stats["max_window"] = largest
    if window:
        matched, value = aggregate.matches(window)
        if matched:
            yield list(window), value


# -- the correlation of one rule ---------------------------------------------------------

def correlate_one(spec: CorrelationSpec, inputs: Iterable[Mapping[str, Any]],
                  stats: dict[str, int] | None = None,
                  times: dict[int, int | None] | None = None) -> list[dict[str, Any]]:
    """Correlation records of ``spec`` over the detection records of the rules it refers to.

    ``times`` caches parsed timestamps by record identity across correlations.
    """
    stats = stats if stats is not None else {}
    times = times if times is not None else {}
    rank: dict[str, int] = {}
    for position, ref in enumerate(spec.refs):
        rank.setdefault(ref, position)
    temporal = spec.type in ("temporal", "temporal_ordered")
    value_fields = spec.value_field if isinstance(spec.value_field, list) else (
        [spec.value_field] if spec.value_field else [])
    groups: dict[tuple[Any, ...], list[Item]] = {}
    seen_events: dict[Any, Item] = {}
    seq = 0
    for record in inputs:
        rule = record_key(record)
        if rule not in rank:
            continue
        ts = times.get(id(record), -1)
        if ts == -1:
            ts = times[id(record)] = timestamp_us(record.get("timestamp"))
        if ts is None:
            stats["untimed"] = stats.get("untimed", 0) + 1
            continue
        group: list[str] = []
        for name in spec.group_by:
            value = field_value(record, spec.aliases.get(name, {}).get(rule, name))
            if value is None:
                break
            group.append(value if isinstance(value, str) else str(value))
        else:
            event_key = event_id_of(record)
            if not temporal:
                known = seen_events.get(event_key)
                if known is not None:  # one event matched by two referenced rules counts once
                    title = record.get("rule_id") or record.get("rule_title") or ""
                    known.also = [*(known.also or []), title]
                    continue
            value = None
            if value_fields:
                values = [field_value(record, spec.aliases.get(f, {}).get(rule, f)) for f in value_fields]
                if spec.type == "value_count":
                    value = values[0] if len(values) == 1 else (tuple(values) if all(
                        v is not None for v in values) else None)
                else:
                    value = number(values[0])
            item = Item(ts, seq, rank[rule], rule, event_key, value, record)
            if not temporal:
                seen_events[event_key] = item
            groups.setdefault(tuple(group), []).append(item)
            seq += 1
            continue
        stats["ungrouped"] = stats.get("ungrouped", 0) + 1
    out = []
    stats["groups"] = stats.get("groups", 0) + len(groups)
    for group_values, items in groups.items():
        items.sort(key=lambda it: (it.ts, it.rank, it.seq))
        for window, value in sliding_matches(items, spec, stats):
            out.append(correlation_record(spec, dict(zip(spec.group_by, group_values)), window, value))
    return out


def correlation_record(spec: CorrelationSpec, group: dict[str, Any], window: Sequence[Item],
                       value: Any) -> dict[str, Any]:
    """A correlation detection, with the keys of a single detection where they apply."""
    events: list[dict[str, Any]] = []
    event_ids: list[list[Any]] = []
    event_rules: list[list[str]] = []
    index: dict[tuple[Any, Any], int] = {}
    start = window[0].record.get("timestamp") or ""
    for item in window:
        record = item.record
        if item.nested:
            nested: Iterable[tuple[Any, Any, Any]] = zip(
                record.get("events") or [], record.get("event_ids") or [], record.get("event_rules") or [])
            start = min(start, record.get("window_start") or start)
        else:
            rules = [record.get("rule_id") or record.get("rule_title") or ""]
            if item.also:
                rules.extend(item.also)
            nested = ((record.get("event") or {}, (record.get("source"), record.get("position")), rules),)
        for event, ids, rules in nested:
            ident = (ids[0], ids[1])
            position = index.get(ident)
            if position is not None:
                known = event_rules[position]
                known.extend(r for r in rules if r not in known)
                continue
            index[ident] = len(events)
            events.append(event)
            event_ids.append([ident[0], ident[1]])
            event_rules.append(list(rules))
    meta = spec.meta
    last = window[-1].record  # the event that completed the match: the row's provenance
    computer = next((v for k, v in group.items() if k.lower() in COMPUTER_FIELDS), None)
    return {
        "rule_id": meta.rule_id,
        "rule_title": meta.title,
        "level": meta.level,
        "status": meta.status,
        "tags": list(meta.tags),
        "techniques": meta.techniques,
        "tactics": meta.tactics,
        "timestamp": last.get("timestamp"),
        "computer": computer if computer is not None else last.get("computer"),
        "channel": last.get("channel"),
        "event_id": last.get("event_id"),
        "source": last.get("source"),
        "record_id": last.get("record_id"),
        "position": last.get("position"),
        "rule_path": meta.path,
        "event": last.get("event") or {},
        "correlation_type": spec.type,
        "group": group,
        "window_start": start,
        "window_end": last.get("timestamp"),
        "value": value,
        "event_ids": event_ids,
        "event_rules": event_rules,
        "events": events,
    }


# -- every correlation -------------------------------------------------------------------

def correlate(correlations: CorrelationPlan | Sequence[CorrelationSpec],
              records: Sequence[Mapping[str, Any]],
              stats: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """Correlation records of every correlation over ``records`` (chains included).

    ``correlations`` must be in dependency order (a :class:`CorrelationPlan` is);
    ``records`` are the base rules' detections, from any engine.
    """
    specs = correlations.correlations if isinstance(correlations, CorrelationPlan) else list(correlations)
    by_rule: dict[str, list[Mapping[str, Any]]] = {}
    wanted = {ref for spec in specs for ref in spec.refs}
    for record in records:
        key = record_key(record)
        if key in wanted:
            by_rule.setdefault(key, []).append(record)
    out: list[dict[str, Any]] = []
    times: dict[int, int | None] = {}
    for spec in specs:
        inputs = (r for ref in dict.fromkeys(spec.refs) for r in by_rule.get(ref, ()))
        produced = correlate_one(spec, inputs, stats, times)
        if spec.key in wanted:
            by_rule[spec.key] = list(produced)
        out.extend(produced)
    return out


def apply_plan(plan: CorrelationPlan, records: Sequence[dict[str, Any]],
               stats: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """The hunt's output: records minus hidden rules' detections, plus correlation matches."""
    if not plan:
        return list(records)
    matches = correlate(plan, records, stats)
    kept = [r for r in records if record_key(r) not in plan.suppressed]
    kept.extend(m for m in matches if record_key(m) not in plan.suppressed)
    if stats is not None:
        stats["correlation_detections"] = sum(1 for m in matches if record_key(m) not in plan.suppressed)
    return kept
