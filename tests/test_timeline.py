"""``sigmahunt timeline``: Timesketch-ready CSV/JSONL, detections or every event, time-sorted."""

from __future__ import annotations

import argparse
import csv
import io
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from rich.console import Console

from sigmahunt.hunting import run_hunt
from sigmahunt.ingest import EventBatch, read_logs
from sigmahunt.report import timeline
from sigmahunt.report.timeline import (
    CSV_COLUMNS,
    timeline_frame,
    timeline_rows,
    write_rows,
    write_timeline,
)
from sigmahunt.results import to_dataframe

FIXTURES = Path(__file__).parent / "fixtures" / "report"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
REQUIRED = ("message", "datetime", "timestamp_desc")


def parse_csv(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


def check_timesketch_row(row: dict[str, Any]) -> datetime:
    for name in REQUIRED:
        assert row[name] not in (None, ""), name
    moment = datetime.fromisoformat(row["datetime"])
    assert moment.tzinfo is not None and moment.utcoffset().total_seconds() == 0
    assert int(row["timestamp"]) == int(moment.timestamp()) * 1_000_000 + moment.microsecond
    return moment


def write(source: Any, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    write_rows(timeline_rows(source, **options), buffer, fmt)
    return buffer.getvalue()


def events_of(*paths: Path) -> list[pl.DataFrame]:
    return [item.frame for item in read_logs(list(paths)) if isinstance(item, EventBatch)]


@pytest.fixture(scope="module")
def examples_result() -> Any:
    return run_hunt([EXAMPLES / "logs"], [EXAMPLES / "rules"], cache_dir=False)


def test_detections_csv(examples_result: Any) -> None:
    rows = parse_csv(write(examples_result, "csv"))
    assert tuple(parse_csv(write(examples_result, "csv"))[0].keys()) == CSV_COLUMNS
    assert len(rows) == len(examples_result.records) == 12
    times = [check_timesketch_row(r) for r in rows]
    assert times == sorted(times)
    first = rows[0]
    assert first["message"].startswith(
        "[high] Suspicious Program Location with Network Connections | ws01.corp.example")
    assert first["timestamp_desc"] == "Event Time" and first["event_id"] == "3" and first["detections"] == "1"
    assert json.loads(first["event"])["Image"] == "c:\\users\\public\\x.exe"
    spray = next(r for r in rows if r["correlation_type"] == "value_count")
    assert spray["timestamp_desc"] == "Correlation Window End" and "(value_count correlation)" in spray["message"]
    encoded = next(r for r in rows if r["rule_title"] == "Encoded PowerShell Command Line")
    assert encoded["tags"] == "attack.execution;attack.t1059.001" and encoded["techniques"] == "T1059.001"


def test_detections_jsonl_flattens_event_fields() -> None:
    records = [{
        "rule_id": "r1", "rule_title": "Rule", "level": "high", "status": "test", "tags": ["attack.t1059"],
        "techniques": ["T1059"], "tactics": [], "timestamp": "2026-11-20T08:00:00.250000Z", "computer": "WS01",
        "channel": "Security", "event_id": 4688, "source": "a.json", "record_id": 7, "position": "line 1",
        "rule_path": "r.yml", "event": {"message": "a field named message", "CommandLine": "x", "datetime": "y"},
    }]
    lines = write(to_dataframe(records), "jsonl").decode().splitlines()
    row = json.loads(lines[0])
    check_timesketch_row(row)
    assert row["datetime"] == "2026-11-20T08:00:00.250000+00:00"
    assert row["CommandLine"] == "x" and row["event_message"] == "a field named message"
    assert row["event_datetime"] == "y" and row["message"].startswith("[high] Rule")
    assert row["tags"] == ["attack.t1059"] and row["event_id"] == "4688" and row["record_id"] == "7"


def test_all_events_are_sorted_across_files_and_carry_detections(tmp_path: Path) -> None:
    # two files overlapping in time, one of them out of order inside
    a = tmp_path / "a.jsonl"
    b = tmp_path / "b.jsonl"
    def line(host: str, minute: int, user: str) -> str:
        return json.dumps({"EventID": 4625, "Channel": "Security", "Hostname": host,
                           "TimeCreated": f"2026-11-21 03:{minute:02d}:00.000", "TargetUserName": user,
                           "LogonType": "3"})
    a.write_text("\n".join([line("DC01", 30, "bob"), line("DC01", 5, "Administrator"), line("DC01", 50, "x")]) + "\n")
    b.write_text("\n".join([line("DC02", 1, "alice"), line("DC02", 40, "admin"), line("DC02", 45, "eve")]) + "\n")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yml").write_text((FIXTURES / "rules" / "failed_logon_admin.yml").read_text())
    result = run_hunt([a, b], [tmp_path / "rules"], cache_dir=False)
    assert len(result.records) == 2
    for run_rows in (2, 1000):  # several runs merged, or one
        rows = list(timeline_rows(result, events=events_of(a, b), run_rows=run_rows))
        assert [r["datetime"][11:16] for r in rows] == ["03:01", "03:05", "03:30", "03:40", "03:45", "03:50"]
        assert [r["detections"] for r in rows] == [0, 1, 0, 1, 0, 0]
        matched = [r for r in rows if r["detections"]]
        assert {r["computer"] for r in matched} == {"DC01", "DC02"}
        assert all(r["level"] == "low" and r["rule_title"] == "Failed Logon As Administrator" for r in matched)
        assert rows[0]["message"] == "Security EventID 4625 on DC02: TargetUserName: alice"
        assert rows[1]["message"].startswith("[low] Failed Logon As Administrator | Security EventID 4625 on DC01")


def test_all_events_with_correlations_and_spool_cleanup(examples_result: Any, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    rows = list(timeline_rows(examples_result, events=events_of(EXAMPLES / "logs"), spool_dir=spool, run_rows=10))
    assert not list(spool.iterdir())  # runs removed
    assert len(rows) == examples_result.summary.events_read + 4  # every event, plus 4 correlations
    assert [r["datetime"] for r in rows] == sorted(r["datetime"] for r in rows)
    assert sum(1 for r in rows if r["correlation_type"]) == 4
    plain = [r for r in rows if not r["correlation_type"]]
    detected = sum(r["detections"] for r in plain)
    assert detected == sum(1 for r in examples_result.records if not r.get("correlation_type"))
    for row in rows:
        check_timesketch_row(row)
    data = io.BytesIO()
    write_rows(iter(rows), data, "csv")
    assert len(parse_csv(data.getvalue())) == len(rows)


def test_events_without_time_get_the_epoch(tmp_path: Path) -> None:
    events = [pl.DataFrame({"_source": ["x"], "_position": ["line 1"], "_timestamp": [None], "Channel": ["System"],
                            "EventID": ["7036"], "param1": ["Spooler"]},
                           schema={c: pl.String for c in ("_source", "_position", "_timestamp", "Channel", "EventID",
                                                          "param1")})]
    rows = list(timeline_rows(to_dataframe([]), events=events))
    assert rows[0]["datetime"] == "1970-01-01T00:00:00+00:00" and rows[0]["timestamp_desc"] == "Time unknown"
    assert rows[0]["message"] == "System EventID 7036 on (no computer): param1=Spooler"


def test_write_timeline_to_file_and_python_frame(examples_result: Any, tmp_path: Path) -> None:
    target = tmp_path / "t" / "timeline.jsonl"
    assert write_timeline(examples_result, target, "jsonl") == 12
    assert len(target.read_text().splitlines()) == 12
    assert [p.name for p in target.parent.iterdir()] == ["timeline.jsonl"]
    frame = timeline_frame(examples_result)
    assert list(frame.columns) == list(CSV_COLUMNS) and len(frame) == 12
    with pytest.raises(ValueError):
        write_rows(iter([]), io.BytesIO(), "xml")


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="sigmahunt")
    sub = parser.add_subparsers(dest="command")
    timeline.add_parser(sub)
    args = parser.parse_args(argv)
    code = args.handler(args, Console(stderr=True, highlight=False))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "all.csv"
    code, _, err = run_cli(["timeline", str(EXAMPLES / "logs"), "--rules", str(EXAMPLES / "rules"), "--no-cache",
                            "--all-events", "-o", str(out)], capsys)
    assert code == 0 and "85 rows" in err
    rows = parse_csv(out.read_bytes())
    assert len(rows) == 85 and [r["datetime"] for r in rows] == sorted(r["datetime"] for r in rows)
    code, stdout, _ = run_cli(["timeline", str(EXAMPLES / "logs"), "--rules", str(EXAMPLES / "rules"), "--no-cache",
                               "--format", "jsonl", "--since", "2026-11-21", "--computer", "dc01", "-q"], capsys)
    assert code == 0
    lines = [json.loads(x) for x in stdout.splitlines()]
    assert lines and all(r["computer"] == "DC01" and r["datetime"] >= "2026-11-21" for r in lines)
    store = tmp_path / "store"
    code, stdout, _ = run_cli(["timeline", str(EXAMPLES / "logs"), "--rules", str(EXAMPLES / "rules"), "--no-cache",
                               "--all-events", "--store", str(store), "--until", "2026-11-20", "-q"], capsys)
    assert code == 0 and (store / "manifest.json").exists()
    rows = parse_csv(stdout.encode())
    assert rows and all(r["datetime"] < "2026-11-21" for r in rows)
    code, _, err = run_cli(["timeline", str(EXAMPLES / "logs")], capsys)
    assert code == 2 and "no rules" in err
    code, _, err = run_cli(["timeline", str(EXAMPLES / "logs"), "-r", str(EXAMPLES / "rules"), "--since", "soon"],
                           capsys)
    assert code == 2 and "cannot read 'soon'" in err


def test_timeline_is_deterministic() -> None:
    result = run_hunt([FIXTURES / "logs"], [FIXTURES / "rules"], cache_dir=False)
    again = run_hunt([FIXTURES / "logs"], [FIXTURES / "rules"], cache_dir=False)
    assert write(result, "csv") == write(again, "csv")
    events = events_of(FIXTURES / "logs")
    assert write(result, "jsonl", events=events, run_rows=3) == write(again, "jsonl", events=events)


def test_external_sort_matches_an_in_memory_sort(tmp_path: Path) -> None:
    import random

    rng = random.Random(9)
    batches = []
    for b in range(25):  # 25 "files", each locally unordered, all overlapping in time
        n = rng.randrange(1, 120)
        stamps = [f"2026-11-{rng.randrange(20, 23):02d}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:00.000000Z"
                  for _ in range(n)]
        batches.append(pl.DataFrame({
            "_source": [f"file{b:02d}.jsonl"] * n, "_position": [f"line {i + 1}" for i in range(n)],
            "_timestamp": stamps, "Channel": ["Security"] * n, "EventID": ["4624"] * n,
            **({"Computer": [f"H{b % 4}"] * n} if b % 2 else {"Other": ["x"] * n}),  # differing columns
        }))
    expected = sorted((row["_timestamp"], row["_source"], int(row["_position"].split()[1]))
                       for frame in batches for row in frame.iter_rows(named=True))
    rows = list(timeline_rows(to_dataframe([]), events=iter(batches), run_rows=200, spool_dir=tmp_path))
    got = [(r["datetime"].replace("+00:00", "Z"), r["source"], int(r["position"].split()[1])) for r in rows]
    assert got == expected
    assert not list(tmp_path.iterdir())
