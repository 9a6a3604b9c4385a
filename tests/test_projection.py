"""Hunting under a projection: flat JSON lines are read into the rules' fields only.

What must hold (see :class:`sigmahunt.ingest.Projection`): the projected columns equal
the full read's; every detection equals the full read's, keyword rules included (their
candidates come from a scan of the raw line); detection output carries every field.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from sigmahunt.engines.embedded.evaluator import BatchEvaluator, RuleSetPlan
from sigmahunt.engines.embedded.keywords import RawKeywordPrefilter, raw_pattern
from sigmahunt.engines.embedded.scanners import USE_HYPERSCAN_ENV, RegexPrefilter
from sigmahunt.hunting import DetectionCollector, hunt_projection, run_hunt
from sigmahunt.ingest import RAW_COL, RAW_HITS_COL, EventBatch, Projection, complete_rows, read_logs
from tests.conftest import compile_yaml, rule


@pytest.fixture(autouse=True, params=["hyperscan", "portable"])
def scanner(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(USE_HYPERSCAN_ENV, "1" if request.param == "hyperscan" else "0")


#: Raw JSON lines written the ways real encoders write them: spaced and compact, ``\/``,
#: ``\u`` escapes of ASCII characters, nested values, case-variant keys, non-ASCII text.
LINES = [
    '{"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 1, "Image": "C:\\\\Windows\\\\cmd.exe",'
    ' "CommandLine": "cmd /c whoami", "Hostname": "ws1", "TimeCreated": "2026-01-01T00:00:00Z",'
    ' "Notes": "nothing to see", "tags": ["a", "b"]}',
    '{"Channel":"Microsoft-Windows-Sysmon/Operational","EventID":1,"Image":"C:\\\\Tools\\\\x.exe",'
    '"CommandLine":"x.exe","Notes":"run sekurlsa::logonpasswords now","tags":["c"]}',
    '{"Channel": "Security", "EventID": 4624, "TargetUserName": "bob", "Notes": "path C:\\/temp\\/evil"}',
    '{"Channel": "Security", "EventID": 4624, "TargetUserName": "eve", "Notes": "\\u004dIMIKATZ in escapes"}',
    '{"Channel": "Security", "EventID": 4625, "targetusername": "mallory", "Notes": "\u212aerberos::list"}',
    '{"Channel": "Security", "EventID": 4625, "TargetUserName": "trent", "Extra": {"k": [1, 2]}}',
    '{"Channel": "Security", "EventID": 4625, "TargetUserName": "ann", "Notes": "caf\u00e9 cr\u00e8me"}',
    '',
    '{"Channel": "Security", "EventID": 4634, "TargetUserName": "bob", "Notes": "Quoted \\"MimiKatz\\" here"}',
]

RULES = [
    rule("""
        keywords:
            - 'sekurlsa::logonpasswords'
            - 'mimikatz'
            - 'kerberos::list'
            - 'C:/temp/evil'
            - '"mimikatz"'
            - 'café crème'
        condition: keywords
    """),
    rule("""
        keywords:
            - '"k":[1,2]'
        condition: keywords
    """),
    rule("""
        keywords:
            - '|all':
                - 'whoami'
                - 'cmd.exe'
        condition: keywords
    """, "product: windows\n    service: sysmon"),
    rule("""
        sel:
            TargetUserName: 'mallory'
        condition: sel
    """, "product: windows\n    service: security"),
    rule("""
        sel:
            Image|endswith: '\\x.exe'
        condition: sel
    """, "product: windows\n    category: process_creation"),
    rule("""
        sel:
            Notes|re: '(?i)^quoted'
        condition: sel
    """),
]


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    return path


def _compiled() -> list[Any]:
    rules = []
    for index, text in enumerate(RULES):
        text = text.replace("00000000-0000-0000-0000-000000000001", f"00000000-0000-0000-0000-00000000000{index}")
        rules.append(compile_yaml(text))
    return rules


def _frame(path: Path, projection: Projection | None) -> pl.DataFrame:
    frames = [item.frame for item in read_logs([path], projection=projection) if isinstance(item, EventBatch)]
    return pl.concat(frames, how="diagonal")


def _detections(frame: pl.DataFrame, rules: list[Any]) -> list[dict[str, Any]]:
    plan = RuleSetPlan.build(rules)
    collector = DetectionCollector(rules)
    collector.collect(frame, BatchEvaluator(plan).evaluate(frame))
    return sorted(collector.records, key=lambda r: (r["rule_id"], r["position"]))


def test_projected_columns_equal_the_full_read(log_file: Path) -> None:
    full = _frame(log_file, None)
    projected = _frame(log_file, Projection.of(["TargetUserName", "Image"]))
    assert RAW_COL in projected.columns and RAW_COL not in full.columns
    assert "Notes" not in projected.columns and "CommandLine" not in projected.columns
    # case-variant spellings are read too; the ingest's own inputs (aliases, times) always
    for name in ("TargetUserName", "targetusername", "Image", "Computer", "Hostname", "_timestamp", "EventID"):
        assert projected.get_column(name).to_list() == full.get_column(name).to_list(), name


def test_complete_rows_restores_every_field(log_file: Path) -> None:
    full = _frame(log_file, None)
    projected = _frame(log_file, Projection.of(["EventID"]))
    completed = complete_rows(projected)
    assert completed.columns == full.columns
    assert completed.to_dicts() == full.to_dicts()
    assert complete_rows(full).equals(full)


def test_detections_equal_with_and_without_projection(log_file: Path) -> None:
    rules = _compiled()
    full = _frame(log_file, None)
    projected = _frame(log_file, hunt_projection(BatchEvaluator(RuleSetPlan.build(rules))))
    expected = _detections(full, rules)
    # with Hyperscan the keyword literals were looked for as the lines were read
    assert (RAW_HITS_COL in projected.columns) is (os.environ[USE_HYPERSCAN_ENV] == "1")
    assert _detections(projected, rules) == expected
    by_rule = {}
    for record in expected:
        by_rule.setdefault(record["rule_id"], []).append(record["position"])
    assert by_rule == {
        "00000000-0000-0000-0000-000000000000": ["line 2", "line 3", "line 4", "line 5", "line 7", "line 9"],
        "00000000-0000-0000-0000-000000000001": ["line 6"],
        "00000000-0000-0000-0000-000000000002": ["line 1"],
        "00000000-0000-0000-0000-000000000003": ["line 5"],
        "00000000-0000-0000-0000-000000000004": ["line 2"],
        "00000000-0000-0000-0000-000000000005": ["line 9"],
    }
    # the output event carries fields no rule names
    assert any(r["event"].get("Notes") == "run sekurlsa::logonpasswords now" for r in expected)


def test_run_hunt_uses_the_projection_and_reports_full_events(log_file: Path, tmp_path: Path) -> None:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    for index, text in enumerate(RULES):
        text = text.replace("00000000-0000-0000-0000-000000000001", f"00000000-0000-0000-0000-00000000000{index}")
        (rules_dir / f"r{index}.yml").write_text(text)
    result = run_hunt([log_file], [rules_dir], cache_dir=False)
    expected = _detections(_frame(log_file, None), _compiled())
    assert sorted((r["rule_id"], r["position"]) for r in result.records) == \
        [(r["rule_id"], r["position"]) for r in expected]
    events = {r["position"]: r["event"] for r in result.records}
    assert events["line 1"]["tags"] == '["a","b"]'
    assert RAW_COL not in json.dumps(result.records)


@pytest.mark.parametrize(("literal", "line", "expected"), [
    ("mimikatz", '{"a":"MiMiKaTz"}', True),
    ("c:\\windows\\", '{"a":"C:\\\\Windows\\\\x"}', True),
    ("c:/temp", '{"a":"C:\\/Temp"}', True),
    ("1,2", '{"a":[1, 2]}', True),
    ('a":"b', '{"a" : "b"}', True),
    ("mimikatz", '{"a":"\\u006dimikatz"}', True),  # escaped ASCII: always a candidate
    ("kerberos", '{"a":"\u212aerberos"}', True),  # KELVIN SIGN lowercases to k
    ("mimikatz", '{"a":"mimi katz"}', False),
    ("mimikatz", '{"a":"caf\\u00e9"}', False),  # a non-ASCII escape cannot hide ASCII
])
def test_raw_prefilter_is_a_superset(literal: str, line: str, expected: bool) -> None:
    prefilter = RawKeywordPrefilter.of([literal], [])
    assert prefilter is not None
    assert bool(prefilter.candidate_rows(pl.Series([line]), 1)[0]) is expected


def test_raw_pattern_needs_an_ascii_run() -> None:
    assert raw_pattern("é") is None
    assert RawKeywordPrefilter.of(["é"], []) is None  # every row is then a candidate


def test_regex_prefilter_never_rules_out_a_match() -> None:
    """Whatever the prefilter keeps, the exact regex decides; it may only drop non-matches."""
    patterns = [r"-k\s\w{1,64}", r"(?i)^quoted", r"\x{212A}", r"(a)\1", "", r"caf\w", r"\p{L}+x", r"^$"]
    values = ["-k abc", "QUOTED x", "K", "aa", "", "café", "éx", "plain", "-k\té", "\n"]
    prefilter = RegexPrefilter.build(patterns)
    candidates = prefilter.candidates(values) if prefilter else {n: range(len(values)) for n in range(len(patterns))}
    for n, pattern in enumerate(patterns):
        try:
            exact = pl.Series(values).str.contains(pattern).to_list()
        except pl.exceptions.ComputeError:
            continue
        kept = set(candidates.get(n, ()))
        for index, matched in enumerate(exact):
            if matched:
                assert index in kept, (pattern, values[index])


def test_invalid_utf8_anywhere_in_a_chunk_takes_the_per_record_path(tmp_path: Path) -> None:
    """The raw-line column wraps the chunk's bytes as text: only valid UTF-8 may get there."""
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"Channel": "Security", "EventID": 1, "Notes": "caf\xff"}\n{"Channel": "Security"}\n')
    frame = _frame(path, Projection.of(["EventID"]))
    assert RAW_COL not in frame.columns  # declined: every field, read record by record
    assert frame.get_column("Notes").to_list() == ["caf\ufffd", None]


def test_a_raw_line_that_cannot_be_reread_keeps_its_projected_fields(log_file: Path) -> None:
    """``complete_records`` re-reads each projected row's raw line; a line it cannot decode
    (Polars read it, so this should not happen) gives the row's projected fields, not a
    lost event, and only the raw columns are left out."""
    from sigmahunt.ingest import complete_records

    projected = _frame(log_file, Projection.of(["EventID"]))
    full = _frame(log_file, None)
    broken = projected.with_columns(
        pl.when(pl.int_range(pl.len()) == 1).then(pl.lit("{not json")).otherwise(pl.col(RAW_COL)).alias(RAW_COL))
    records = complete_records(broken)
    assert records[0] == {k: v for k, v in full.row(0, named=True).items() if v is not None}
    kept = {k: v for k, v in projected.row(1, named=True).items()
            if v is not None and k not in (RAW_COL, RAW_HITS_COL)}
    assert records[1] == kept and "EventID" in kept and len(kept) < len(records[0])
    assert records[2:] == complete_records(projected)[2:]
