"""Time and host filters: ``--since``, ``--until`` and ``--computer``.

* ``--since`` / ``--until`` take ISO 8601 (``2026-11-20``, ``2026-11-20T08:00``,
  ``2026-11-20 08:00:00+01:00``, ``...Z``; a time without an offset is UTC) or a relative
  time ``N`` + unit meaning "now minus": ``90s``, ``30m`` (minutes), ``12h``, ``7d``, ``2w``
  (also ``now``). Both bounds are inclusive; a date alone as ``--until`` means the end of
  that day (``--until 2026-11-20`` keeps all of the 20th).
* ``--computer`` (repeatable) keeps events whose ``Computer`` matches any pattern, case-
  insensitively; ``*`` and ``?`` are wildcards; a pattern without a dot also matches the
  host part of a fully qualified name (``ws01`` matches ``WS01.corp.example``).
* With ``--since``/``--until``, events without a timestamp are left out (they cannot be
  shown to be in range); with ``--computer``, events without a ``Computer``.

:class:`TimeFilter` applies to ingest batches (Polars, before matching: ``_timestamp`` is the
ingest's ``YYYY-MM-DDTHH:MM:SS.ffffffZ``, compared as text, which orders as time) and to
detection records or the detections DataFrame (for engines that return detections). "Now"
is injectable (``now=``) so relative times are testable; nothing else reads the clock.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl

__all__ = [
    "TimeFilter",
    "add_filter_options",
    "filter_dataframe",
    "filter_frame",
    "filter_records",
    "from_args",
    "parse_time",
]

_RELATIVE = re.compile(
    r"^\s*(\d+(?:\.\d+)?)\s*(s|secs?|seconds?|m|mins?|minutes?|h|hours?|d|days?|w|weeks?)\s*(?:ago)?\s*$",
    re.IGNORECASE,
)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DATE_ONLY = re.compile(r"^\s*\d{4}-\d{2}-\d{2}\s*$")
_ONE_MICROSECOND = timedelta(microseconds=1)


def _iso(moment: datetime) -> str:
    """The ingest's canonical form, which orders as text the way times order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _utc_now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    return now if now.tzinfo else now.replace(tzinfo=UTC)


def parse_time(text: str | datetime | date, *, now: datetime | None = None, end: bool = False) -> datetime:
    """A bound as an aware UTC datetime.

    ``end=True`` (for ``--until``) makes a date alone mean the end of that day: the
    result is then the first instant *after* the day, an exclusive bound (see
    :meth:`TimeFilter.build`). Raises ValueError with a readable message.
    """
    if isinstance(text, datetime):
        return text if text.tzinfo else text.replace(tzinfo=UTC)
    if isinstance(text, date):
        moment = datetime(text.year, text.month, text.day, tzinfo=UTC)
        return moment + timedelta(days=1) if end else moment
    raw = str(text).strip()
    if not raw:
        raise ValueError("empty time")
    if raw.lower() == "now":
        return _utc_now(now)
    relative = _RELATIVE.match(raw)
    if relative:
        amount = float(relative.group(1))
        unit = relative.group(2).lower()
        unit = "m" if unit.startswith("min") or unit == "m" else unit[0]
        return _utc_now(now) - timedelta(seconds=amount * _UNIT_SECONDS[unit])
    try:
        if _DATE_ONLY.match(raw):
            day = date.fromisoformat(raw)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return moment + timedelta(days=1) if end else moment
        moment = datetime.fromisoformat(raw.replace(" ", "T", 1) if "T" not in raw else raw)
    except ValueError:
        raise ValueError(
            f"cannot read {raw!r} as a time: use ISO 8601 (2026-11-20, 2026-11-20T08:00:00Z) "
            "or a relative time such as 30m, 12h, 7d"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _glob_regex(pattern: str) -> str:
    """One ``--computer`` pattern as a regex body (``*``/``?`` wildcards, the rest literal)."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern.strip())
    if "." not in pattern:
        body += r"(?:\..*)?"  # a short name matches the host part of an FQDN
    return body


@dataclass(frozen=True)
class TimeFilter:
    """Keep events with ``since <= time < before`` on a computer matching ``computers``.

    ``since``/``before`` are canonical ISO strings (or None: unbounded). Call the filter on
    an ingest batch (``filter(frame)``), or use :meth:`records` / :meth:`dataframe`.
    """

    since: str | None = None
    before: str | None = None
    computers: tuple[str, ...] = ()

    @classmethod
    def build(
        cls,
        since: str | datetime | date | None = None,
        until: str | datetime | date | None = None,
        computers: Iterable[str] | None = (),
        now: datetime | None = None,
    ) -> TimeFilter:
        """From the command line's values (``until`` inclusive); ValueError on bad input."""
        lower = parse_time(since, now=now) if since not in (None, "") else None
        upper = None
        if until not in (None, ""):
            upper = parse_time(until, now=now, end=True)
            if isinstance(until, datetime) or not (isinstance(until, date) or _DATE_ONLY.match(str(until))):
                upper = upper + _ONE_MICROSECOND  # inclusive: keep events at exactly --until
        if lower is not None and upper is not None and lower >= upper:
            raise ValueError(f"--since ({_iso(lower)}) is not before --until ({_iso(upper - _ONE_MICROSECOND)})")
        patterns = tuple(p.strip() for p in (computers or ()) if p and p.strip())
        return cls(_iso(lower) if lower else None, _iso(upper) if upper else None, patterns)

    @property
    def active(self) -> bool:
        return bool(self.since or self.before or self.computers)

    @property
    def computer_regex(self) -> str | None:
        if not self.computers:
            return None
        return "(?is)^(?:" + "|".join(_glob_regex(p) for p in self.computers) + ")$"

    def describe(self) -> str:
        parts = []
        if self.since:
            parts.append(f"since {self.since}")
        if self.before:
            parts.append(f"before {self.before}")
        if self.computers:
            parts.append("computer " + " or ".join(self.computers))
        return ", ".join(parts) or "no filter"

    # -- ingest batches (Polars), before matching ------------------------------------------

    def expression(self, columns: Sequence[str]) -> pl.Expr | None:
        """The Polars predicate for a batch with these columns (None: keep everything)."""
        conditions: list[pl.Expr] = []
        if self.since or self.before:
            if "_timestamp" not in columns:
                return pl.lit(False)
            ts = pl.col("_timestamp")
            if self.since:
                conditions.append(ts >= self.since)
            if self.before:
                conditions.append(ts < self.before)
        if self.computers:
            if "Computer" not in columns:
                return pl.lit(False)
            conditions.append(pl.col("Computer").str.contains(self.computer_regex or ""))
        if not conditions:
            return None
        combined = conditions[0]
        for condition in conditions[1:]:
            combined = combined & condition
        return combined.fill_null(False)

    def __call__(self, frame: pl.DataFrame) -> pl.DataFrame:
        return self.frame(frame)

    def frame(self, frame: pl.DataFrame) -> pl.DataFrame:
        expression = self.expression(frame.columns)
        if expression is None:
            return frame
        return frame.filter(expression)

    # -- detections ---------------------------------------------------------------------------

    def keeps(self, timestamp: Any, computer: Any) -> bool:
        """Does a detection with this time (ISO text or datetime) and computer pass?"""
        if self.since or self.before:
            text = _record_time(timestamp)
            if text is None:
                return False
            if self.since and text < self.since:
                return False
            if self.before and text >= self.before:
                return False
        if self.computers:
            if computer is None or not re.match(self.computer_regex or "", str(computer)):
                return False
        return True

    def records(self, records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Detection records (``timestamp``, ``computer`` keys) that pass."""
        return [r for r in records if self.keeps(r.get("timestamp"), r.get("computer"))]

    def dataframe(self, frame: Any) -> Any:
        """Rows of a detections DataFrame (pandas; ``timestamp`` datetime64[UTC]) that pass."""
        if not self.active or len(frame) == 0:
            return frame
        mask = [self.keeps(t, c) for t, c in zip(frame["timestamp"], frame["computer"])]
        return frame[mask].reset_index(drop=True)


def _record_time(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):  # pandas Timestamp included
        try:
            if value != value:  # NaT
                return None
        except TypeError:
            pass
        return _iso(value if value.tzinfo else value.replace(tzinfo=UTC))
    text = str(value).strip()
    if not text or text.lower() in ("nat", "nan", "none"):
        return None
    if len(text) == 27 and text.endswith("Z") and text[10] == "T":
        return text  # already canonical
    try:
        return _iso(parse_time(text))
    except ValueError:
        return None


def filter_frame(
    frame: pl.DataFrame,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    computers: Iterable[str] | None = (),
    now: datetime | None = None,
) -> pl.DataFrame:
    """Rows of an ingest batch within ``[since, until]`` on matching computers."""
    return TimeFilter.build(since, until, computers, now).frame(frame)


def filter_records(
    records: Iterable[dict[str, Any]],
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    computers: Iterable[str] | None = (),
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Detection records within ``[since, until]`` on matching computers."""
    return TimeFilter.build(since, until, computers, now).records(records)


def filter_dataframe(frame: Any, since: str | datetime | None = None, until: str | datetime | None = None,
                     computers: Iterable[str] | None = (), now: datetime | None = None) -> Any:
    """The detections DataFrame's rows within ``[since, until]`` on matching computers."""
    return TimeFilter.build(since, until, computers, now).dataframe(frame)


# -- command line ------------------------------------------------------------------------------

def add_filter_options(parser: argparse.ArgumentParser) -> None:
    """``--since``, ``--until``, ``--computer`` (for hunt, timeline, explain)."""
    parser.add_argument("--since", metavar="TIME",
                        help="only events at or after TIME: ISO 8601 (2026-11-20, 2026-11-20T08:00Z) "
                             "or relative to now (30m, 12h, 7d)")
    parser.add_argument("--until", metavar="TIME",
                        help="only events at or before TIME (a date alone: the end of that day)")
    parser.add_argument("--computer", action="append", default=[], metavar="NAME",
                        help="only events of this computer (repeatable; case-insensitive; * and ? "
                             "wildcards; ws01 also matches ws01.corp.example)")


def from_args(args: argparse.Namespace, now: datetime | None = None) -> TimeFilter | None:
    """The filter the options ask for, or None; ValueError (a usage error) on bad times."""
    time_filter = TimeFilter.build(getattr(args, "since", None), getattr(args, "until", None),
                                   getattr(args, "computer", None) or (), now)
    return time_filter if time_filter.active else None

