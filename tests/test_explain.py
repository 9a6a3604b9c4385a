"""``sigmahunt explain``: which selection, field, value and modifier matched a detection."""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from sigma.collection import SigmaCollection

from sigmahunt.hunting import run_hunt
from sigmahunt.report import explain
from sigmahunt.report.explain import explain_event, explain_record, explain_result, text_lines

FIXTURES = Path(__file__).parent / "fixtures" / "report"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SHARED = Path(__file__).resolve().parents[2] / "shared"


def rule_of(text: str) -> Any:
    return SigmaCollection.from_yaml(textwrap.dedent(text)).rules[0]


def selection(explanation: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in explanation["selections"] if s["name"] == name)


@pytest.fixture(scope="module")
def fixture_explanations() -> list[dict[str, Any]]:
    result = run_hunt([FIXTURES / "logs"], [FIXTURES / "rules"], cache_dir=False)
    return explain_result(result, limit=None)


def test_every_detection_is_explained_as_matching(fixture_explanations: list[dict[str, Any]]) -> None:
    assert len(fixture_explanations) == 9
    assert all(e["matched"] is True and not e.get("error") for e in fixture_explanations)
    assert all(any(s["matched"] for s in e["selections"]) for e in fixture_explanations)


def test_selections_items_values_and_field_renames(fixture_explanations: list[dict[str, Any]]) -> None:
    whoami = next(e for e in fixture_explanations if e["rule_title"].startswith("Shell Echoing")
                  and e["computer"] == "WS01")
    assert whoami["condition"] == ["all of selection_* and not filter_admin"]
    assert whoami["logsource_variant"] == "Channel in Security and EventID in 4688"
    assert whoami["field_renames"]["Image"] == "NewProcessName"
    cmd = selection(whoami, "selection_cmd")
    assert cmd["matched"] and cmd["items"] == [{
        "field": "Image", "event_field": "NewProcessName", "modifiers": ["endswith"], "values": ["\\cmd.exe"],
        "linking": "any", "matched_values": ["\\cmd.exe"], "matched": True,
        "actual": "C:\\Windows\\System32\\cmd.exe"}]
    what = selection(whoami, "selection_what")
    assert what["linking"] == "any" and what["matched"]
    first, second = what["items"]
    assert first["alternative"] == 1 and first["matched"] and first["items"][0]["matched_values"] == ["whoami"]
    assert second["alternative"] == 2 and not second["matched"]
    assert second["items"][0]["modifiers"] == ["contains", "all"] and second["items"][0]["linking"] == "all"
    admin = selection(whoami, "filter_admin")
    assert not admin["matched"] and admin["items"][0]["actual"] is None  # absent field: the filter is false

    hostile = next(e for e in fixture_explanations if e["computer"] == "WS03<b>bold</b>")
    item = selection(hostile, "selection_what")["items"][1]["items"][0]
    assert item["matched"] and item["matched_values"] == ["<script>", "onerror"]

    ntds = next(e for e in fixture_explanations if e["rule_title"] == "Domain Discovery or NTDS Dump"
                and e["computer"] == "WS02")
    assert not selection(ntds, "ntds")["matched"] and selection(ntds, "net")["matched"]
    assert selection(ntds, "net")["items"][0]["values"] == ['net\\s+group\\s+"?domain admins']  # as written

    logon = next(e for e in fixture_explanations if e["rule_title"] == "Failed Logon As Administrator")
    items = {i["field"]: i for i in selection(logon, "selection")["items"]}
    assert items["LogonType"]["values"] == ["2", "3"] and items["LogonType"]["matched_values"] == ["3"]
    assert items["TargetUserName"]["modifiers"][0] == "re" and items["TargetUserName"]["values"] == [
        "^admin(istrator)?$"]


def test_value_kinds_keywords_and_not_matching() -> None:
    rule = rule_of("""
        title: kinds
        logsource: {product: windows, service: security}
        detection:
            kinds:
                EventID: 4624
                IpAddress|cidr: 10.0.0.0/8
                LogonType|gte: 3
                TargetUserName|fieldref: SubjectUserName
                LogonGuid|exists: true
                ElevatedToken: null
            words:
                - 'mimikatz'
                - 'sekurlsa'
            condition: kinds and not words
        """)
    event = {"Channel": "Security", "EventID": "4624", "IpAddress": "10.1.2.3", "LogonType": "10",
             "TargetUserName": "bob", "SubjectUserName": "BOB", "LogonGuid": "{0}", "CommandLine": "run sekurlsa"}
    e = explain_event(rule, event)
    assert e["matched"] is False  # the keyword selection holds, so "not words" fails
    kinds = {i["field"]: i for i in selection(e, "kinds")["items"]}
    assert all(i["matched"] for i in kinds.values())
    assert kinds["IpAddress"]["values"] == ["10.0.0.0/8"] and kinds["IpAddress"]["modifiers"] == ["cidr"]
    assert kinds["TargetUserName"]["referenced"] == {"field": "SubjectUserName", "actual": "BOB"}
    assert kinds["ElevatedToken"]["values"] == ["null"] and kinds["ElevatedToken"]["actual"] is None
    words = selection(e, "words")
    keyword = words["items"][0]
    assert keyword["field"] is None and keyword["matched_values"] == ["sekurlsa"]
    assert keyword["actual"] == {"CommandLine": "run sekurlsa"}
    outside = explain_event(rule, {"Channel": "System", "EventID": "4624"})
    assert outside["logsource_selects_event"] is False and outside["matched"] is False


def test_text_output(fixture_explanations: list[dict[str, Any]]) -> None:
    lines = [line for line, _ in text_lines(fixture_explanations[:3])]
    text = "\n".join(lines)
    assert "#1 [critical] Encoded PowerShell" in text
    assert "condition: all of selection_* and not filter_admin  => true" in text
    assert "✔ selection_what (any of 2)" in text and "✘ alternative 2 (all of)" in text
    assert "✔ Image|endswith: '\\\\cmd.exe'" in text
    assert "event NewProcessName (Sigma field Image) = 'C:\\\\Windows\\\\System32\\\\cmd.exe'" in text
    assert "✘ filter_admin" in text and "event User = absent" in text


def test_correlations_are_explained_by_their_events() -> None:
    result = run_hunt([EXAMPLES / "logs"], [EXAMPLES / "rules"], cache_dir=False)
    explanations = explain_result(result, limit=None)
    spray = next(e for e in explanations if e.get("correlation", {}).get("type") == "value_count")
    c = spray["correlation"]
    assert c["events"] == 12 and c["group"] == {"IpAddress": "203.0.113.50"} and len(c["explained_events"]) == 3
    assert all(sub["matched"] and sub["rule_title"] == "Failed Network Logon" for sub in c["explained_events"])
    text = "\n".join(line for line, _ in text_lines([spray]))
    assert "correlation value_count: 12 events" in text and "by rule Failed Network Logon" in text
    assert explain_result(result, limit=2)[1]["rule_title"] == explanations[1]["rule_title"]
    only = explain_result(result, limit=None, rule_ids=["7B434893-C57D-4F41-908D-6A17BF1AE98F"])
    assert len(only) == 4


def test_missing_or_changed_rule_file(tmp_path: Path) -> None:
    record = {"rule_id": "x", "rule_title": "t", "rule_path": str(tmp_path / "gone.yml"), "event": {}}
    assert "no such file" in explain_record(record)["error"] or "cannot read" in explain_record(record)["error"]
    other = tmp_path / "other.yml"
    other.write_text((FIXTURES / "rules" / "failed_logon_admin.yml").read_text())
    assert "no rule with id x" in explain_record({**record, "rule_path": str(other)})["error"]
    assert any("cannot explain" in line for line, _ in text_lines([explain_record(record)]))


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="sigmahunt")
    sub = parser.add_subparsers(dest="command")
    explain.add_parser(sub)
    args = parser.parse_args(argv)
    code = args.handler(args, Console(stderr=True, highlight=False))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_command(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["explain", str(FIXTURES / "logs"), "--rules", str(FIXTURES / "rules"), "--no-cache"]
    code, out, err = run_cli([*base, "--json", "--limit", "0"], capsys)
    assert code == 0 and len(json.loads(out)) == 9 and "explained 9 of 9" in err
    code, out, err = run_cli([*base, "--limit", "4"], capsys)
    assert code == 0 and out.count("condition:") == 4 and "explained 4 of 9" in err
    assert "</script><script>" in out and "#1 [critical]" in out  # plain text, never console markup
    code, out, _ = run_cli([*base, "--rule-id", "8d1c0a6e-0f3c-4c55-9c61-2f3b7c1e0a03", "--json", "-q"], capsys)
    assert code == 0 and {e["rule_title"] for e in json.loads(out)} == {"Domain Discovery or NTDS Dump"}
    code, out, _ = run_cli([*base, "--computer", "dc01", "--since", "2026-11-21T03:00:30Z", "--json", "-q"], capsys)
    assert [e["timestamp"] for e in json.loads(out)] == ["2026-11-21T03:01:00.000000Z", "2026-11-21T03:02:00.000000Z"]
    code, _, err = run_cli([*base, "--limit", "-1"], capsys)
    assert code == 2 and "--limit" in err


@pytest.mark.shared
@pytest.mark.skipif(not (SHARED / "sigma" / "regression_data").exists(), reason="../shared is not present")
def test_sigmahq_regression_detections_all_explain_as_matching() -> None:
    logs = sorted((SHARED / "sigma" / "regression_data").rglob("*.json"))
    result = run_hunt(logs, [SHARED / "sigma" / "rules" / "windows"])
    explanations = explain_result(result, limit=None)
    assert len(explanations) == len(result.records) > 50
    failures = [(e["rule_title"], e["source"], e.get("error")) for e in explanations
                if e.get("error") or e.get("matched") is not True]
    assert failures == []
    assert all(any(s["matched"] for s in e["selections"]) for e in explanations)


def test_sigma_filters_applied_by_the_hunt_are_explained(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_hunt([FIXTURES / "logs"], [FIXTURES / "rules"], filters=[FIXTURES / "filters"], cache_dir=False)
    assert len(result.records) == 8  # the filter removed WS02's encoded PowerShell
    encoded = [e for e in explain_result(result, limit=None) if e["rule_title"] == "Encoded PowerShell"]
    assert len(encoded) == 1 and encoded[0]["computer"] == "WS01" and encoded[0]["matched"]
    e = encoded[0]
    assert e["filters"] == ["Not on the build server WS02"]
    assert e["condition"] == ["(selection) and (not [filter 'Not on the build server WS02': selection])"]
    names = [s["name"] for s in e["selections"]]
    assert names == ["selection", "filter 'Not on the build server WS02': selection"]
    assert not e["selections"][1]["matched"] and e["selections"][1]["filter"] is True
    again = explain_result(result, limit=None)  # deterministic: pySigma's random names never show
    assert [x for x in again if x["rule_title"] == "Encoded PowerShell"] == encoded
    code, out, _ = run_cli(["explain", str(FIXTURES / "logs"), "--rules", str(FIXTURES / "rules"), "--no-cache",
                            "--filters", str(FIXTURES / "filters"), "--limit", "1", "-q"], capsys)
    assert code == 0 and "filters applied: Not on the build server WS02" in out
