"""Sigma filters: applied (by pySigma) to the rules they target before compilation.

From ``--filters PATH`` (``prepare_rules(filters=...)`` / ``run_hunt(filters=...)``) and
from filter documents among the rules; by id, by name, or ``rules: any`` within the
filter's log source; reported when they name no loaded rule; never mixed up with the
compiled-rule cache.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest

from sigmahunt.hunting import run_hunt
from sigmahunt.rules.prepare import RuleSelection, prepare_rules

from .conftest import EXAMPLES

ENCODED_PS = "5b7c3a57-1a8e-4d0c-9d7e-1f6a2b0c9e01"  # examples/rules/proc_creation_encoded_powershell.yml
LOGS = [EXAMPLES / "logs"]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def filter_doc(rules: str, selection: str, logsource: str = "{product: windows, category: process_creation}",
               title: str = "Filter cmd parents") -> str:
    return f"""
        title: {title}
        description: test filter
        logsource: {logsource}
        filter:
            rules: {rules}
            selection: {selection}
            condition: not selection
        """


def titles(result: Any, title: str) -> list[str]:
    return sorted(str(r["computer"]) for r in result.records if r["rule_title"] == title)


def test_without_filters_the_rule_fires_on_both_hosts() -> None:
    result = run_hunt(LOGS, [EXAMPLES / "rules"], cache_dir=False)
    assert titles(result, "Encoded PowerShell Command Line") == ["WS02", "ws01.corp.example"]


@pytest.mark.parametrize("target", [ENCODED_PS, ENCODED_PS.upper()])
def test_filter_by_id_from_filters_path(tmp_path: Path, target: str) -> None:
    write(tmp_path / "filters" / "f.yml",
          filter_doc(f"[{target}]", "{ParentProcessName|endswith: '\\cmd.exe'}"))
    result = run_hunt(LOGS, [EXAMPLES / "rules"], cache_dir=False, filters=[tmp_path / "filters"])
    assert titles(result, "Encoded PowerShell Command Line") == ["ws01.corp.example"]
    assert result.rules.filtered == {ENCODED_PS: ["Filter cmd parents"]}
    assert not result.summary.failed_rules


def test_filter_by_name_alongside_rules(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(EXAMPLES / "rules", rules)
    text = (rules / "proc_creation_encoded_powershell.yml").read_text()
    (rules / "proc_creation_encoded_powershell.yml").write_text(text.replace("status:", "name: encoded_ps\nstatus:", 1))
    write(rules / "zz_filter.yml", filter_doc("encoded_ps", "{CommandLine|contains: 'SQBFAFgA'}"))
    result = run_hunt(LOGS, [rules], cache_dir=False)
    assert titles(result, "Encoded PowerShell Command Line") == []


def test_rules_any_within_the_filter_log_source(tmp_path: Path) -> None:
    flt = write(tmp_path / "any.yml", filter_doc("any", "{Computer: WS02}"))
    result = run_hunt(LOGS, [EXAMPLES / "rules"], cache_dir=False, filters=[flt])
    assert titles(result, "Encoded PowerShell Command Line") == ["ws01.corp.example"]
    # Applied only to process_creation rules: the Security and network rules are untouched.
    assert sorted(result.rules.filtered) == ["0c1f3e52-8a0b-4d3c-9d51-6e2f7a9b1c21", ENCODED_PS]
    other = write(tmp_path / "sec.yml", filter_doc("any", "{Computer: WS02}",
                                                   logsource="{product: windows, service: security}"))
    result = run_hunt(LOGS, [EXAMPLES / "rules"], cache_dir=False, filters=[other])
    assert titles(result, "Encoded PowerShell Command Line") == ["WS02", "ws01.corp.example"]
    assert ENCODED_PS not in result.rules.filtered


def test_filter_targeting_rule_of_other_log_source_is_not_applied(tmp_path: Path) -> None:
    # pySigma applies a filter only when the rule's log source is within the filter's.
    flt = write(tmp_path / "f.yml", filter_doc(f"[{ENCODED_PS}]", "{Computer: WS02}",
                                               logsource="{product: windows, service: security}"))
    result = run_hunt(LOGS, [EXAMPLES / "rules"], cache_dir=False, filters=[flt])
    assert titles(result, "Encoded PowerShell Command Line") == ["WS02", "ws01.corp.example"]


def test_filters_naming_unknown_rules_or_correlations_are_reported(tmp_path: Path) -> None:
    flt = write(tmp_path / "f.yml", filter_doc(
        "[00000000-0000-4000-8000-00000000dead, no_such_rule, 0c1f3e52-8a0b-4d3c-9d51-6e2f7a9b1c22]",
        "{Computer: X}"))
    prepared = prepare_rules([EXAMPLES / "rules"], cache_dir=False, filters=[flt])
    reasons = [f.reason for f in prepared.failures]
    assert any("unknown rule '00000000-0000-4000-8000-00000000dead'" in r for r in reasons)
    assert any("unknown rule 'no_such_rule'" in r for r in reasons)
    assert any("names correlation rule" in r for r in reasons)
    assert all(f.path == str(flt) for f in prepared.failures)


def test_rules_in_a_filters_path_are_reported_not_loaded(tmp_path: Path) -> None:
    shutil.copy(EXAMPLES / "rules" / "security_failed_logon_admin.yml", tmp_path / "rule.yml")
    prepared = prepare_rules([EXAMPLES / "rules" / "net_conn_internal_smb.yml"], cache_dir=False,
                             filters=[tmp_path])
    assert [f.reason for f in prepared.failures] == ["a --filters file holds a rule, not a filter: ignored"]
    assert len(prepared.compiled) == 1


def test_compiled_rule_cache_never_serves_the_unfiltered_rule(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    flt = write(tmp_path / "f.yml", filter_doc(f"[{ENCODED_PS}]", "{ParentProcessName|endswith: '\\cmd.exe'}"))
    plain1 = run_hunt(LOGS, [EXAMPLES / "rules"], cache_dir=cache)
    filtered1 = run_hunt(LOGS, [EXAMPLES / "rules"], cache_dir=cache, filters=[flt])
    filtered2 = run_hunt(LOGS, [EXAMPLES / "rules"], cache_dir=cache, filters=[flt])  # filtered cache entry
    plain2 = run_hunt(LOGS, [EXAMPLES / "rules"], cache_dir=cache)
    assert titles(plain1, "Encoded PowerShell Command Line") == titles(plain2, "Encoded PowerShell Command Line") \
        == ["WS02", "ws01.corp.example"]
    assert titles(filtered1, "Encoded PowerShell Command Line") == titles(
        filtered2, "Encoded PowerShell Command Line") == ["ws01.corp.example"]
    assert filtered2.rules.filtered == {ENCODED_PS: ["Filter cmd parents"]}
    assert list((cache / "filtered").rglob("*.json"))  # the filtered compilation has its own key
    # Changing the filter changes the key: the new filter is applied, not the cached one.
    flt.write_text(flt.read_text().replace("cmd.exe", "explorer.exe"))
    changed = run_hunt(LOGS, [EXAMPLES / "rules"], cache_dir=cache, filters=[flt])
    assert titles(changed, "Encoded PowerShell Command Line") == ["WS02", "ws01.corp.example"]


def test_filter_on_a_correlation_base_rule(tmp_path: Path) -> None:
    # Filtering the spray's base rule for one address removes the spray it formed.
    flt = write(tmp_path / "f.yml", filter_doc("[failed_network_logon]", "{IpAddress: 203.0.113.50}",
                                               logsource="{product: windows, service: security}"))
    rules = [EXAMPLES / "rules" / "correlation_password_spray.yml"]
    logs = [EXAMPLES / "logs" / "correlation_security.jsonl"]
    assert len(run_hunt(logs, rules, cache_dir=False).records) == 1
    assert run_hunt(logs, rules, cache_dir=False, filters=[flt]).records == []


def test_filter_applies_to_rules_left_out_by_the_selection(tmp_path: Path) -> None:
    # --level medium leaves the informational discovery rule out, but its correlation needs it:
    # the rule runs filtered (WS03's commands are excluded, so only ws01 bursts).
    flt = write(tmp_path / "f.yml", filter_doc("[discovery_command]", "{Computer: WS03}"))
    logs = [EXAMPLES / "logs" / "correlation_security.jsonl", EXAMPLES / "logs" / "correlation_sysmon.json"]
    result = run_hunt(logs, [EXAMPLES / "rules" / "correlation_discovery_burst.yml"], cache_dir=False,
                      filters=[flt], selection=RuleSelection(min_level="medium"))
    assert [r["group"] for r in result.records] == [{"Computer": "ws01.corp.example"}]


def test_filter_with_wildcard_condition_and_several_filters(tmp_path: Path) -> None:
    write(tmp_path / "f" / "one.yml", """
        title: Not from cmd
        logsource: {product: windows, category: process_creation}
        filter:
            rules: [5b7c3a57-1a8e-4d0c-9d7e-1f6a2b0c9e01]
            filter_a: {ParentProcessName|endswith: '\\cmd.exe'}
            filter_b: {ParentImage|endswith: '\\services.exe'}
            condition: not 1 of filter_*
        """)
    write(tmp_path / "f" / "two.yml", filter_doc("any", "{Computer: ws01.corp.example}", title="Not ws01"))
    result = run_hunt(LOGS, [EXAMPLES / "rules"], cache_dir=False, filters=[tmp_path / "f"])
    assert titles(result, "Encoded PowerShell Command Line") == []
    assert sorted(result.rules.filtered[ENCODED_PS]) == ["Not from cmd", "Not ws01"]
