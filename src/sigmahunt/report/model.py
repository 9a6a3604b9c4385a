"""The numbers behind the HTML report, computed once from the detections DataFrame.

Everything here is deterministic for a given input: rows are visited in the DataFrame's
order (severity, time, rule, source, position), ties are broken by name, and nothing reads
the clock.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from sigmahunt.report.attack import OTHER, TACTIC_ORDER, technique_cells, technique_sort_key
from sigmahunt.report.common import (
    as_list,
    clean,
    detections_frame,
    epoch_seconds,
    iso_utc,
    iter_rows,
    key_field,
    level_rank,
    ordered_levels,
)
from sigmahunt.results import LEVELS

#: Detections embedded in the report's table (the charts count all of them).
DEFAULT_MAX_ROWS = 20_000
#: Hosts drawn in the timeline chart (most severe and busiest first).
DEFAULT_MAX_HOSTS = 60
#: Events of one correlation listed in its details.
MAX_CORRELATION_EVENTS = 50

#: Candidate bin widths of the timeline, in seconds (bins align to multiples of these).
BIN_WIDTHS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
              86400, 172800, 604800, 1209600, 2592000, 7776000, 31536000)
TARGET_BINS = 120


@dataclass
class HostStat:
    name: str
    total: int = 0
    by_level: Counter[str] = field(default_factory=Counter)
    first: float | None = None
    last: float | None = None
    rules: Counter[str] = field(default_factory=Counter)

    @property
    def max_rank(self) -> int:
        return max((level_rank(lv) for lv in self.by_level), default=-1)


@dataclass
class RuleStat:
    key: str
    rule_id: str
    title: str
    level: str
    count: int = 0
    hosts: set[str] = field(default_factory=set)
    first: float | None = None
    last: float | None = None
    techniques: list[str] = field(default_factory=list)
    correlation: str | None = None


@dataclass
class Cell:
    """One (tactic, technique) square of the heatmap."""

    tactic: str
    technique: str
    count: int = 0
    rules: Counter[str] = field(default_factory=Counter)
    hosts: set[str] = field(default_factory=set)


@dataclass
class Binning:
    start: float  # epoch seconds of the first bin's start
    width: float  # seconds per bin
    count: int

    @property
    def end(self) -> float:
        return self.start + self.width * self.count

    def index(self, t: float) -> int:
        return min(self.count - 1, max(0, int((t - self.start) // self.width)))


@dataclass
class ReportModel:
    title: str
    generated_at: str | None
    summary: dict[str, Any]
    total: int
    level_counts: dict[str, int]
    hosts: list[HostStat]
    rules: list[RuleStat]
    cells: dict[str, list[Cell]]  # tactic -> cells, busiest first
    untagged: int  # detections whose rule has no ATT&CK technique
    binning: Binning | None
    histogram: dict[int, Counter[str]]  # bin -> level counts
    host_bins: dict[str, dict[int, Counter[str]]]  # host -> bin -> level counts
    host_bin_rules: dict[tuple[str, int], Counter[str]]  # (host, bin) -> rule titles
    no_time: int  # detections without a timestamp (not on the timeline)
    first: float | None
    last: float | None
    table: dict[str, Any]  # what the page's script renders
    max_rows: int
    rule_info: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def truncated(self) -> bool:
        return self.total > self.max_rows


def choose_binning(first: float, last: float, target: int = TARGET_BINS) -> Binning:
    span = max(last - first, 1.0)
    width = next((w for w in BIN_WIDTHS if span / w <= target), BIN_WIDTHS[-1])
    start = math.floor(first / width) * width
    count = max(1, int(math.floor((last - start) / width)) + 1)
    return Binning(float(start), float(width), count)


def _host_name(value: Any) -> str:
    return str(value) if value not in (None, "") else ""


def _rule_key(row: dict[str, Any]) -> str:
    return str(row.get("rule_id") or row.get("rule_path") or row.get("rule_title") or "")


def rule_metadata(result: Any) -> dict[str, dict[str, Any]]:
    """Rule details a HuntResult knows beyond the records (description, author...), by id/path."""
    prepared = getattr(result, "rules", None)
    out: dict[str, dict[str, Any]] = {}
    for compiled in getattr(prepared, "compiled", None) or []:
        meta = compiled.meta
        info = {
            "description": meta.description or "",
            "author": meta.author or "",
            "falsepositives": list(meta.falsepositives or []),
            "references": list(meta.references or []),
            "logsource": meta.logsource or "",
        }
        for key in (meta.rule_id, meta.path):
            if key and key not in out:
                out[key] = info
    for loaded in getattr(prepared, "correlations", None) or []:  # correlation rules have their own text
        rule = loaded.rule
        if rule.id:
            out[str(rule.id)] = {
                "description": rule.description or "",
                "author": rule.author or "",
                "falsepositives": [str(f) for f in (rule.falsepositives or [])],
                "references": [str(r) for r in (rule.references or [])],
                "logsource": "",
            }
    return out


def build_model(
    source: Any,
    *,
    title: str = "sigmahunt report",
    generated_at: str | None = None,
    summary: dict[str, Any] | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> ReportModel:
    frame = detections_frame(source)
    if summary is None:
        hunt_summary = getattr(source, "summary", None)
        if hunt_summary is not None and hasattr(hunt_summary, "to_dict"):
            summary = hunt_summary.to_dict()
        else:
            summary = dict(frame.attrs.get("summary") or {})
    rule_info = rule_metadata(source)

    times = frame["timestamp"] if "timestamp" in frame.columns and len(frame) else pd.Series([], dtype=object)
    valid = pd.to_datetime(times, utc=True, errors="coerce").dropna() if len(times) else times
    first = epoch_seconds(valid.min()) if len(valid) else None
    last = epoch_seconds(valid.max()) if len(valid) else None
    binning = choose_binning(first, last) if first is not None and last is not None else None

    levels: Counter[str] = Counter()
    hosts: dict[str, HostStat] = {}
    rules: dict[str, RuleStat] = {}
    cells: dict[tuple[str, str], Cell] = {}
    histogram: dict[int, Counter[str]] = {}
    host_bins: dict[str, dict[int, Counter[str]]] = {}
    host_bin_rules: dict[tuple[str, int], Counter[str]] = {}
    untagged = 0
    no_time = 0
    rule_rows: dict[str, int] = {}
    rule_list: list[list[Any]] = []
    rows: list[list[Any]] = []

    for row in iter_rows(frame):
        level = str(row.get("level") or "")
        levels[level] += 1
        host = _host_name(row.get("computer"))
        t = epoch_seconds(row.get("timestamp"))
        title_text = str(row.get("rule_title") or "")
        key = _rule_key(row)
        correlation = row.get("correlation_type")

        stat = hosts.setdefault(host, HostStat(host))
        stat.total += 1
        stat.by_level[level] += 1
        stat.rules[title_text] += 1
        rule = rules.get(key)
        if rule is None:
            rule = rules[key] = RuleStat(key, str(row.get("rule_id") or ""), title_text, level,
                                         techniques=[str(x) for x in as_list(row.get("techniques"))],
                                         correlation=str(correlation) if correlation else None)
        rule.count += 1
        rule.hosts.add(host)
        if t is not None:
            stat.first = t if stat.first is None else min(stat.first, t)
            stat.last = t if stat.last is None else max(stat.last, t)
            rule.first = t if rule.first is None else min(rule.first, t)
            rule.last = t if rule.last is None else max(rule.last, t)
        if binning is not None and t is not None:
            b = binning.index(t)
            histogram.setdefault(b, Counter())[level] += 1
            host_bins.setdefault(host, {}).setdefault(b, Counter())[level] += 1
            host_bin_rules.setdefault((host, b), Counter())[title_text] += 1
        else:
            no_time += 1

        placed = technique_cells(as_list(row.get("techniques")), as_list(row.get("tactics")))
        if not placed:
            untagged += 1
        for tactic, tid in placed:
            cell = cells.setdefault((tactic, tid), Cell(tactic, tid))
            cell.count += 1
            cell.rules[title_text] += 1
            cell.hosts.add(host)

        if len(rows) < max_rows:
            if key not in rule_rows:
                rule_rows[key] = len(rule_list)
                rule_list.append(_rule_entry(row, rule_info))
            rows.append(_table_row(row, rule_rows[key]))

    by_tactic: dict[str, list[Cell]] = {}
    for cell in cells.values():
        by_tactic.setdefault(cell.tactic, []).append(cell)
    ordered_tactics = [t for t in (*TACTIC_ORDER, OTHER) if t in by_tactic]
    cells_out = {t: sorted(by_tactic[t], key=lambda c: (-c.count, technique_sort_key(c.technique)))
                 for t in ordered_tactics}

    host_list = sorted(hosts.values(), key=lambda h: (-h.max_rank, -h.total, h.name))
    rule_stats = sorted(rules.values(), key=lambda r: (-r.count, -level_rank(r.level), r.title, r.key))
    level_counts = {lv: levels.get(lv, 0) for lv in LEVELS}
    for lv in ordered_levels(set(levels)):
        level_counts.setdefault(lv, levels[lv])

    table = {
        "total": len(frame),
        "shown": len(rows),
        "levels": list(level_counts),
        "rules": rule_list,
        "rows": rows,
    }
    return ReportModel(
        title=title, generated_at=generated_at, summary=clean(summary) or {}, total=len(frame),
        level_counts=level_counts, hosts=host_list, rules=rule_stats, cells=cells_out, untagged=untagged,
        binning=binning, histogram=histogram, host_bins=host_bins, host_bin_rules=host_bin_rules,
        no_time=no_time, first=first, last=last, table=table, max_rows=max_rows, rule_info=rule_info,
    )


def _rule_entry(row: dict[str, Any], rule_info: dict[str, dict[str, Any]]) -> list[Any]:
    rule_id = str(row.get("rule_id") or "")
    info = rule_info.get(rule_id, {}) if rule_id else rule_info.get(str(row.get("rule_path") or ""), {})
    return [
        str(row.get("rule_id") or ""),
        str(row.get("rule_title") or ""),
        str(row.get("level") or ""),
        str(row.get("status") or ""),
        [str(t) for t in as_list(row.get("tags"))],
        str(row.get("rule_path") or ""),
        info.get("description", ""),
        info.get("author", ""),
        info.get("falsepositives", []),
        info.get("references", []),
        [str(t) for t in as_list(row.get("techniques"))],
    ]


def _table_row(row: dict[str, Any], rule_index: int) -> list[Any]:
    event = clean(row.get("event")) or {}
    correlation = None
    if row.get("correlation_type"):
        events = [clean(e) for e in as_list(row.get("events"))]
        correlation = {
            "type": str(row.get("correlation_type")),
            "group": clean(row.get("group")),
            "window_start": clean(row.get("window_start")),
            "window_end": clean(row.get("window_end")),
            "value": clean(row.get("value")),
            "count": len(events) or len(as_list(row.get("event_ids"))),
            "events": events[:MAX_CORRELATION_EVENTS],
        }
    event_id = row.get("event_id")
    return [
        _time_text(row.get("timestamp")),
        str(row.get("level") or ""),
        rule_index,
        _host_name(row.get("computer")),
        str(row.get("channel") or ""),
        _id_text(event_id),
        str(row.get("source") or ""),
        str(row.get("position") or ""),
        _id_text(row.get("record_id")),
        key_field(event),
        event,
        correlation,
    ]


def _id_text(value: Any) -> str:
    """An EventID / record id as text: ``4625``, never ``4625.0`` (pandas makes a column with
    a missing value float)."""
    value = clean(value)
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _time_text(value: Any) -> str | None:
    return iso_utc(value) if isinstance(value, pd.Timestamp) else clean(value)
