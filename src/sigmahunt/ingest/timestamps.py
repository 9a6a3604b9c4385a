"""Timestamp normalisation to ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC).

One regular expression drives both the per-record Python function and the
vectorised Polars expression, so the fast and slow readers agree exactly.
Accepted: a date, ``T`` or a space, a time, optional fraction of any length
(truncated, not rounded, to microseconds), and an optional ``Z``/``UTC`` or
``+hh:mm``/``+hhmm`` offset.  Naive times are taken as UTC.  Anything else
(or an impossible date) yields null: the raw field is still kept.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import polars as pl

TIMESTAMP_PATTERN = (
    r"^\s*(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})[Tt ](?P<time>[0-9]{2}:[0-9]{2}:[0-9]{2})"
    r"(?:[.,](?P<frac>[0-9]+))?\s*(?P<zone>[Zz]|UTC|[+-][0-9]{2}:?[0-9]{2})?(?:\s*UTC)?\s*$"
)
_REGEX = re.compile(TIMESTAMP_PATTERN)
ISO_FORMAT_PY = "%Y-%m-%dT%H:%M:%S.%fZ"
ISO_FORMAT_PL = "%Y-%m-%dT%H:%M:%S%.6fZ"


def _offset_minutes(zone: str | None) -> int:
    if not zone or zone[0] not in "+-":
        return 0
    digits = zone[1:].replace(":", "")
    minutes = int(digits[:2]) * 60 + int(digits[2:4])
    return -minutes if zone[0] == "-" else minutes


def iso_utc(value: object) -> str | None:
    """Normalise one timestamp string; None when it is not a timestamp."""
    if not isinstance(value, str):
        return None
    match = _REGEX.match(value)
    if match is None:
        return None
    frac = (match["frac"] or "")[:6].ljust(6, "0")
    try:
        moment = datetime.strptime(f"{match['date']} {match['time']}.{frac}", "%Y-%m-%d %H:%M:%S.%f")
        moment -= timedelta(minutes=_offset_minutes(match["zone"]))
    except (ValueError, OverflowError):
        return None
    return moment.strftime(ISO_FORMAT_PY)


def iso_utc_expr(expr: pl.Expr) -> pl.Expr:
    """Vectorised :func:`iso_utc` over a String expression."""
    parts = expr.str.extract_groups(TIMESTAMP_PATTERN)
    frac = parts.struct.field("frac").fill_null("").str.slice(0, 6).str.pad_end(6, "0")
    text = pl.concat_str(
        [parts.struct.field("date"), pl.lit(" "), parts.struct.field("time"), pl.lit("."), frac]
    )
    moment = text.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", strict=False, time_unit="us")
    zone = parts.struct.field("zone").str.replace(":", "", literal=True)
    signed = zone.str.starts_with("+") | zone.str.starts_with("-")
    minutes = zone.str.slice(1, 2).cast(pl.Int64, strict=False) * 60 + zone.str.slice(3, 2).cast(
        pl.Int64, strict=False
    )
    offset = (
        pl.when(signed & zone.str.starts_with("-"))
        .then(-minutes)
        .when(signed)
        .then(minutes)
        .otherwise(pl.lit(0, dtype=pl.Int64))
    )
    return (moment - pl.duration(minutes=offset)).dt.strftime(ISO_FORMAT_PL)
