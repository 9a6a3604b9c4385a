"""Detection records, the run summary, and every export (DataFrame, JSONL, CSV, JSON, Parquet).

One record per (rule, matching event). The pandas DataFrame is the source of every other
output, so the CLI, the Python API and the reports can never disagree.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from sigmahunt.engines.embedded.ir import RuleMeta

#: Sigma levels, most severe first (table and report order).
LEVELS = ("critical", "high", "medium", "low", "informational")
LEVEL_RANK = {name: rank for rank, name in enumerate(reversed(LEVELS))}  # informational=0 .. critical=4

#: Columns of the detections DataFrame, in order; the JSONL keys the CLI contract names.
COLUMNS = (
    "rule_id", "rule_title", "level", "status", "tags", "techniques", "tactics", "timestamp",
    "computer", "channel", "event_id", "source", "record_id", "position", "rule_path", "event",
)


@dataclass
class Detection:
    """One rule matching one event."""

    rule: RuleMeta
    timestamp: str | None
    computer: str | None
    channel: str | None
    event_id: str | None
    source: str | None
    record_id: str | None
    position: str | None
    event: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        record = {
            "rule_id": self.rule.rule_id,
            "rule_title": self.rule.title,
            "level": self.rule.level,
            "status": self.rule.status,
            "tags": list(self.rule.tags),
            "techniques": self.rule.techniques,
            "tactics": self.rule.tactics,
            "timestamp": self.timestamp,
            "computer": self.computer,
            "channel": self.channel,
            "event_id": _as_int(self.event_id),
            "source": self.source,
            "record_id": _as_int(self.record_id),
            "position": self.position,
            "rule_path": self.rule.path,
            "event": self.event,
        }
        record.update(self.extra)
        return record


def _as_int(value: str | None) -> int | str | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return value


@dataclass
class Unreadable:
    source: str
    position: str
    reason: str


@dataclass
class HuntSummary:
    """What a run did, in numbers; written by ``--summary FILE``."""

    events_read: int = 0
    events_unreadable: int = 0
    rules_loaded: int = 0
    rules_failed: int = 0
    rules_inapplicable: int = 0
    detections: int = 0
    seconds: float = 0.0
    unreadable: list[Unreadable] = field(default_factory=list)
    failed_rules: list[dict[str, Any]] = field(default_factory=list)
    detections_by_level: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "events_read": self.events_read,
            "events_unreadable": self.events_unreadable,
            "rules_loaded": self.rules_loaded,
            "rules_failed": self.rules_failed,
            "rules_inapplicable": self.rules_inapplicable,
            "detections": self.detections,
            "detections_by_level": self.detections_by_level,
            "seconds": round(self.seconds, 3),
            "unreadable": [u.__dict__ for u in self.unreadable],
            "failed_rules": self.failed_rules,
        }


def sort_key(record: dict[str, Any]) -> tuple[Any, ...]:
    """Most severe first, then by time, then stable by rule and event position."""
    return (
        -LEVEL_RANK.get(str(record["level"]), -1),
        record["timestamp"] or "",
        record["rule_id"] or "",
        record["source"] or "",
        _position_number(record.get("position")),
    )


def _position_number(position: Any) -> tuple[int, str]:
    text = str(position or "")
    digits = text.rsplit(" ", 1)[-1]
    return (int(digits), text) if digits.isdigit() else (0, text)


def to_dataframe(records: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The detections DataFrame: one row per (rule, event), severity-sorted."""
    ordered = sorted(records, key=sort_key)
    frame = pd.DataFrame(ordered, columns=list(COLUMNS) + sorted(
        {k for r in ordered for k in r} - set(COLUMNS)))
    if not frame.empty:
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True, errors="coerce", format="ISO8601")
    return frame


def level_counts(records: Iterable[dict[str, Any]]) -> dict[str, int]:
    counts = Counter(str(r["level"]) for r in records)
    return {level: counts[level] for level in LEVELS if counts[level]}


# -- writers -----------------------------------------------------------------------------

def _json_default(value: Any) -> Any:
    if isinstance(value, pd.Timestamp):
        return value.isoformat().replace("+00:00", "Z")
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _plain_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for record in frame.to_dict(orient="records"):
        ts = record.get("timestamp")
        record["timestamp"] = None if ts is None or pd.isna(ts) else _iso(ts)
        out.append({k: (None if _is_missing(v) else v) for k, v in record.items()})
    return out


def _iso(ts: pd.Timestamp) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _is_missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value)) if not isinstance(value, (list, dict, tuple)) else False
    except (TypeError, ValueError):
        return False


def render(frame: pd.DataFrame, fmt: str) -> bytes:
    """Serialise detections as jsonl, json, csv or parquet (bytes, deterministic)."""
    if fmt == "jsonl":
        return b"".join(orjson.dumps(r, default=_json_default) + b"\n" for r in _plain_records(frame))
    if fmt == "json":
        return orjson.dumps(_plain_records(frame), default=_json_default, option=orjson.OPT_INDENT_2) + b"\n"
    if fmt == "csv":
        flat = _flat_columns(frame)
        if not flat.empty:
            flat["timestamp"] = flat["timestamp"].map(lambda t: None if pd.isna(t) else _iso(t))
        return flat.to_csv(index=False).encode()
    if fmt == "parquet":
        buffer = io.BytesIO()
        _flat_columns(frame).to_parquet(buffer, index=False)
        return buffer.getvalue()
    raise ValueError(f"unknown output format {fmt!r}")


def _flat_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Tabular formats: tag lists joined with ';', nested values (event, group...) as JSON."""
    flat = frame.copy()
    for column in ("tags", "techniques", "tactics"):
        flat[column] = flat[column].map(lambda v: ";".join(v) if isinstance(v, list) else v)
    for column in flat.columns:
        if flat[column].dtype == object and flat[column].map(lambda v: isinstance(v, (dict, list))).any():
            flat[column] = flat[column].map(
                lambda v: orjson.dumps(v, option=orjson.OPT_SORT_KEYS, default=str).decode()
                if isinstance(v, (dict, list)) else v)
    return flat


def write_atomically(path: str | Path, data: bytes) -> None:
    """Write to a temporary file beside ``path`` then rename: never a half-written output.

    A target that exists and is not a regular file (``/dev/null``, ``/dev/stdout``, a FIFO)
    is written in place: renaming over it would replace the device with a file.
    """
    target = Path(path)
    if target.exists() and not target.is_file():
        with open(target, "wb") as handle:
            handle.write(data)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; an output file gets the usual mode
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
