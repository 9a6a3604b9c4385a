"""Timestamp normalisation to ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC).

One grammar drives both the per-record Python function and the vectorised
Polars version, so the fast and slow readers agree exactly.  Accepted, after
trimming blanks: a date, ``T`` or a space, a time, an optional fraction of
any length (truncated, not rounded, to microseconds), and an optional
``Z`` / ``UTC`` / ``+hh:mm`` / ``+hhmm`` zone (``2026-04-20T10:00:35.6466242Z
UTC`` from the evtx package included).  Naive times are taken as UTC.
Anything else, or an impossible date, yields null; the raw field is kept.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import polars as pl
import pyarrow as pa

from sigmahunt.native import native

#: Python's whitespace (``str.isspace``), spelled so that Rust's regex (Polars) agrees:
#: its ``\s`` lacks the separators U+001C..U+001F, which Python's ``\s`` includes.
_WS = r"[\s\x1c-\x1f]"
TIMESTAMP_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}"
    rf"(?:[.,][0-9]+)?{_WS}*(?:[Zz]|UTC|[+-][0-9]{{2}}:?[0-9]{{2}})?(?:{_WS}*UTC)?$"
)
_FRACTION = r"^[.,]([0-9]+)"
_FRACTION_AT = r"[.,]([0-9]+)"
_OFFSET = rf"([+-][0-9]{{2}}):?([0-9]{{2}})(?:{_WS}*UTC)?$"
_REGEX = re.compile(TIMESTAMP_PATTERN)
_FRACTION_RE = re.compile(_FRACTION_AT)
_OFFSET_RE = re.compile(_OFFSET)
ISO_FORMAT_PL = "%Y-%m-%dT%H:%M:%S%.6fZ"
_BLANKS = " \t\r\n"


def iso_utc(value: object) -> str | None:
    """Normalise one timestamp string; None when it is not a timestamp."""
    if not isinstance(value, str):
        return None
    text = value.strip(_BLANKS)
    if _REGEX.match(text) is None:
        return None
    fraction = _FRACTION_RE.match(text, 19)
    digits = (fraction.group(1) if fraction else "")[:6].ljust(6, "0")
    try:  # int() slices rather than strptime: this runs once per EVTX record
        moment = datetime(
            int(text[0:4]), int(text[5:7]), int(text[8:10]),
            int(text[11:13]), int(text[14:16]), int(text[17:19]), int(digits),
        )  # fmt: skip
        offset = _OFFSET_RE.search(text, 19)
        if offset is None:
            return f"{text[:10]}T{text[11:19]}.{digits}Z"
        sign = -1 if offset.group(1).startswith("-") else 1
        moment -= timedelta(minutes=sign * (abs(int(offset.group(1))) * 60 + int(offset.group(2))))
    except (ValueError, OverflowError):
        return None
    # Not strftime: glibc's %Y does not pad years below 1000 ("1-01-01..."), unlike the
    # no-offset branch above and the vectorised twins.
    return (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:{moment.minute:02d}:"
            f"{moment.second:02d}.{moment.microsecond:06d}Z")


def iso_utc_series(values: pl.Series) -> pl.Series:
    """Vectorised :func:`iso_utc` over a String series: by the native module's
    ``iso_utc_array`` where it is on (the Polars version below, its twin, costs ~1.2
    CPU-s per Security-Datasets corpus), else in Polars."""
    module = native()
    if module is None:
        return iso_utc_series_polars(values)
    array = values.cast(pl.String).to_arrow(compat_level=pl.CompatLevel.newest())
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    validity, offsets, data = module.iso_utc_array(*array.__arrow_c_array__())
    result = pa.LargeStringArray.from_buffers(
        len(array), pa.py_buffer(offsets), pa.py_buffer(data), None if validity is None else pa.py_buffer(validity))
    return pl.Series(values.name, result, dtype=pl.String)


def iso_utc_series_polars(values: pl.Series) -> pl.Series:
    """Vectorised :func:`iso_utc` in Polars (the native version's twin).

    Works on fixed character positions once the shape is validated, so each
    value is scanned by a regex only once or twice.
    """
    text = values.str.strip_chars(_BLANKS)
    frame = pl.DataFrame({"t": text})
    valid = pl.col("t").str.contains(TIMESTAMP_PATTERN)
    tail = pl.col("t").str.slice(19)
    digits = tail.str.extract(_FRACTION, 1).fill_null("").str.slice(0, 6).str.pad_end(6, "0")
    stamp = pl.concat_str(
        [pl.col("t").str.slice(0, 10), pl.lit(" "), pl.col("t").str.slice(11, 8), pl.lit("."), digits]
    )
    # Year 0000 is a valid Polars date but not a Python one (datetime: 1..9999).
    valid = valid & (pl.col("t").str.slice(0, 4) != "0000")
    moment = pl.when(valid).then(stamp).str.to_datetime("%Y-%m-%d %H:%M:%S%.f", strict=False, time_unit="us")
    if text.str.contains(rf"[0-9][+-][0-9]{{2}}:?[0-9]{{2}}(?:{_WS}*UTC)?$").any():
        hours = tail.str.extract(_OFFSET, 1).cast(pl.Int64, strict=False)
        minutes = tail.str.extract(_OFFSET, 2).cast(pl.Int64, strict=False)
        sign = pl.when(tail.str.extract(_OFFSET, 1).str.starts_with("-")).then(-1).otherwise(1)
        total = (hours.abs() * 60 + minutes) * sign
        moment = moment - pl.duration(minutes=total.fill_null(0))
        # An offset that moves the moment out of years 1..9999 is an OverflowError in Python.
        moment = pl.when(moment.dt.year().is_between(1, 9999)).then(moment)
    return frame.select(moment.dt.strftime(ISO_FORMAT_PL)).to_series().alias(values.name)
