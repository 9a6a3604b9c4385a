"""--since / --until / --computer: parsing, and filtering ingest batches and detections."""

from __future__ import annotations

import argparse
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from sigmahunt.hunting import run_hunt
from sigmahunt.results import to_dataframe
from sigmahunt.timefilter import (
    TimeFilter,
    add_filter_options,
    filter_dataframe,
    filter_frame,
    filter_records,
    from_args,
    parse_time,
)

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
FIXTURES = Path(__file__).parent / "fixtures" / "report"


def frame() -> pl.DataFrame:
    return pl.DataFrame({
        "_timestamp": ["2026-11-20T08:00:00.000000Z", "2026-11-21T11:30:00.000000Z", None,
                       "2026-11-21T12:00:00.000000Z", "2026-11-14T12:00:00.000000Z"],
        "Computer": ["WS01.corp.example", "dc01", "WS01", None, "ws011"],
        "EventID": ["1", "2", "3", "4", "5"],
    }, schema={"_timestamp": pl.String, "Computer": pl.String, "EventID": pl.String})


def ids(result: pl.DataFrame) -> list[str]:
    return result["EventID"].to_list()


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-20", datetime(2026, 11, 20, tzinfo=UTC)),
    ("2026-11-20T08:30", datetime(2026, 11, 20, 8, 30, tzinfo=UTC)),
    ("2026-11-20 08:30:15", datetime(2026, 11, 20, 8, 30, 15, tzinfo=UTC)),
    ("2026-11-20T08:30:00Z", datetime(2026, 11, 20, 8, 30, tzinfo=UTC)),
    ("2026-11-20T09:30:00+01:00", datetime(2026, 11, 20, 8, 30, tzinfo=UTC)),
    ("2026-11-20T08:30:00.123456Z", datetime(2026, 11, 20, 8, 30, 0, 123456, tzinfo=UTC)),
    ("7d", NOW - timedelta(days=7)),
    ("12h", NOW - timedelta(hours=12)),
    ("30m", NOW - timedelta(minutes=30)),
    ("90s", NOW - timedelta(seconds=90)),
    ("2w", NOW - timedelta(weeks=2)),
    ("1.5h", NOW - timedelta(minutes=90)),
    ("3 days ago", NOW - timedelta(days=3)),
    ("now", NOW),
])
def test_parse_time(text: str, expected: datetime) -> None:
    assert parse_time(text, now=NOW) == expected


def test_parse_time_errors_and_end_of_day() -> None:
    for bad in ("yesterday", "", "7x", "2026-13-01", "20261120T"):
        with pytest.raises(ValueError):
            parse_time(bad, now=NOW)
    assert parse_time("2026-11-20", end=True) == datetime(2026, 11, 21, tzinfo=UTC)
    assert parse_time(date(2026, 11, 20)) == datetime(2026, 11, 20, tzinfo=UTC)
    assert parse_time(datetime(2026, 11, 20, 8)) == datetime(2026, 11, 20, 8, tzinfo=UTC)


def test_bounds_are_inclusive() -> None:
    f = TimeFilter.build("2026-11-20T08:00:00Z", "2026-11-21T12:00:00Z")
    assert ids(f(frame())) == ["1", "2", "4"]  # both ends kept; the event without a time is not
    assert f.since == "2026-11-20T08:00:00.000000Z" and f.before == "2026-11-21T12:00:00.000001Z"
    assert ids(filter_frame(frame(), until="2026-11-20")) == ["1", "5"]  # a date: the whole day
    assert ids(filter_frame(frame(), since="2026-11-21")) == ["2", "4"]
    assert ids(filter_frame(frame(), since="1h", now=NOW)) == ["2", "4"]
    assert ids(filter_frame(frame(), since="7d", until="1d", now=NOW)) == ["1", "5"]  # 5 is exactly 7 days old
    with pytest.raises(ValueError, match="not before"):
        TimeFilter.build("2026-11-21", "2026-11-20T00:00:00Z")


def test_computer_patterns() -> None:
    assert ids(filter_frame(frame(), computers=["ws01"])) == ["1", "3"]  # short name matches the FQDN
    assert ids(filter_frame(frame(), computers=["WS01.CORP.EXAMPLE"])) == ["1"]
    assert ids(filter_frame(frame(), computers=["ws01*"])) == ["1", "3", "5"]
    assert ids(filter_frame(frame(), computers=["DC0?", "nothing"])) == ["2"]
    assert ids(filter_frame(frame(), computers=["*.corp.example"])) == ["1"]
    assert ids(filter_frame(frame(), computers=["ws0[1]"])) == []  # brackets are literal, not a class
    assert ids(filter_frame(frame(), computers=["ws01"], since="2026-11-20T12:00:00Z")) == []
    assert filter_frame(frame(), computers=[" ", ""]).height == 5  # blank patterns: no filter


def test_missing_columns_and_no_filter() -> None:
    no_time = pl.DataFrame({"Computer": ["a"]})
    assert filter_frame(no_time, since="2026-01-01").height == 0
    assert filter_frame(no_time, computers=["a"]).height == 1
    assert filter_frame(pl.DataFrame({"_timestamp": ["2026-11-20T08:00:00.000000Z"]}), computers=["a"]).height == 0
    f = TimeFilter.build()
    assert not f.active and f(frame()) is not None and f(frame()).height == 5
    assert f.describe() == "no filter"
    assert "computer ws01" in TimeFilter.build(computers=["ws01"]).describe()


def test_records_and_dataframe_match_the_frame_filter() -> None:
    result = run_hunt([FIXTURES / "logs"], [FIXTURES / "rules"], cache_dir=False)
    kept = filter_records(result.records, since="2026-11-21", computers=["dc01"])
    assert {(r["computer"], r["rule_title"]) for r in kept} == {
        ("DC01", "Domain Discovery or NTDS Dump"), ("DC01", "Failed Logon As Administrator")}
    assert len(kept) == 4
    df = filter_dataframe(to_dataframe(result.records), since="2026-11-21", computers=["dc01"])
    assert len(df) == 4 and set(df["computer"]) == {"DC01"}
    assert len(filter_dataframe(to_dataframe(result.records))) == 9
    # filtering the events before matching gives the same detections (no correlations here)
    f = TimeFilter.build(since="2026-11-21", computers=["dc01"])
    from sigmahunt.ingest import EventBatch, read_logs

    events = pl.concat([item.frame for item in read_logs([FIXTURES / "logs"]) if isinstance(item, EventBatch)],
                       how="diagonal")
    kept_events = f(events)
    assert sorted(kept_events["_position"].to_list()) == sorted(
        {r["position"] for r in kept} | {"line 9", "line 8", "line 7"})


def test_command_line_options() -> None:
    parser = argparse.ArgumentParser()
    add_filter_options(parser)
    args = parser.parse_args(["--since", "12h", "--computer", "ws01", "--computer", "dc*"])
    f = from_args(args, now=NOW)
    assert f is not None and f.since == "2026-11-21T00:00:00.000000Z" and f.computers == ("ws01", "dc*")
    assert from_args(parser.parse_args([])) is None
    with pytest.raises(ValueError):
        from_args(parser.parse_args(["--until", "soon"]))
