"""What every report output shares: levels and their colours, and detections as plain rows.

Every output of this package starts from the detections DataFrame
(:func:`sigmahunt.results.to_dataframe`, the source of every output), or from a
:class:`~sigmahunt.hunting.HuntResult` whose ``dataframe`` it takes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from sigmahunt.results import LEVEL_RANK, LEVELS, to_dataframe

#: Colours of the levels (report, navigator legend), most severe first.
LEVEL_COLORS = {
    "critical": "#7b1fa2",
    "high": "#d32f2f",
    "medium": "#ef8f00",
    "low": "#2e7d32",
    "informational": "#607d8b",
}
UNKNOWN_LEVEL_COLOR = "#9e9e9e"

#: Event fields an analyst reads first; the first one present is a detection's "key field".
KEY_FIELDS = ("CommandLine", "Image", "NewProcessName", "TargetFilename", "TargetObject", "ImageLoaded",
              "QueryName", "DestinationIp", "ScriptBlockText", "ServiceName", "TargetUserName",
              "PipeName", "ObjectName", "Payload", "Details", "Message")

#: Keys of correlation records (sigmahunt.correlation.CORRELATION_KEYS, repeated so this
#: module needs nothing from the correlation package).
CORRELATION_FIELDS = ("correlation_type", "group", "window_start", "window_end", "value",
                      "event_ids", "event_rules", "events")


def level_color(level: str | None) -> str:
    return LEVEL_COLORS.get(str(level or ""), UNKNOWN_LEVEL_COLOR)


def level_rank(level: str | None) -> int:
    """informational=0 .. critical=4; unknown levels -1."""
    return LEVEL_RANK.get(str(level or ""), -1)


def ordered_levels(levels: set[str] | list[str]) -> list[str]:
    """Known levels most severe first, then unknown ones sorted."""
    known = [lv for lv in LEVELS if lv in levels]
    return known + sorted(set(levels) - set(LEVELS))


def detections_frame(source: Any) -> pd.DataFrame:
    """The detections DataFrame of a HuntResult, a DataFrame, or a list of records."""
    if isinstance(source, pd.DataFrame):
        return source
    frame = getattr(source, "dataframe", None)
    if isinstance(frame, pd.DataFrame):
        return frame
    if isinstance(source, (list, tuple)):
        return to_dataframe(list(source))
    raise TypeError(f"expected a HuntResult, a detections DataFrame or records, not {type(source).__name__}")


def missing(value: Any) -> bool:
    """None, NaN, NaT (not lists, dicts or strings)."""
    if value is None:
        return True
    kind = type(value)
    if kind is str or kind is int or kind is dict or kind is list:
        return False
    if kind is float:
        return math.isnan(value)
    if value is pd.NaT:
        return True
    if isinstance(value, (list, tuple, dict, str)):
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def clean(value: Any) -> Any:
    """A JSON-friendly value: missing -> None, numpy scalars -> Python, timestamps -> ISO."""
    kind = type(value)
    if kind is str or kind is int or kind is bool:
        return value
    if missing(value):
        return None
    if isinstance(value, pd.Timestamp):
        return iso_utc(value)
    if isinstance(value, dict):
        if all(type(v) is str for v in value.values()):  # an event: every value a string
            return dict(value)
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def iso_utc(ts: pd.Timestamp | datetime | None) -> str | None:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (the ingest's form), or None."""
    if ts is None or missing(ts):
        return None
    if isinstance(ts, pd.Timestamp):
        ts = ts.to_pydatetime()
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def epoch_seconds(ts: Any) -> float | None:
    if ts is None or missing(ts):
        return None
    if isinstance(ts, str):
        try:
            ts = pd.Timestamp(ts)
        except ValueError:
            return None
        if ts.tzinfo is None:
            ts = ts.tz_localize("UTC")
    if isinstance(ts, pd.Timestamp):
        return ts.value / 1e9
    if isinstance(ts, datetime):
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        return ts.timestamp()
    return None


def iter_rows(frame: pd.DataFrame) -> Iterator[dict[str, Any]]:
    """The frame's rows as dicts with missing values as None (lists and dicts kept)."""
    columns = [str(c) for c in frame.columns]
    data = [frame[c].tolist() for c in frame.columns]  # column-wise: fast on Arrow-backed columns
    for values in zip(*data):
        yield {c: (None if missing(v) else v) for c, v in zip(columns, values)}


def key_field(event: dict[str, Any] | None) -> str:
    """``Field: value`` for the first key field the event has, or ''."""
    if not event:
        return ""
    for name in KEY_FIELDS:
        value = event.get(name)
        if value:
            return f"{name}: {value}"
    return ""


def as_list(value: Any) -> list[Any]:
    if value is None or missing(value):
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    if hasattr(value, "tolist"):
        return list(value.tolist())
    return [value]
