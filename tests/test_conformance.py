"""SigmaHQ's regression samples: every case present in ../shared must pass (SigmaHQ's criterion).

A case passes when its rule fires on the sample at least ``match_count`` times (at least
once where none is given). Each sample is hunted once against the whole rule set, as
SigmaHQ's CI runs its checker, so this also shows no other rule breaks the run.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sigmahunt.hunting import run_hunt
from sigmahunt.rules.prepare import prepare_rules
from tests.conftest import SHARED, requires_shared

SIGMA = SHARED / "sigma"
RULE_FOLDERS = [SIGMA / "rules", SIGMA / "rules-emerging-threats", SIGMA / "rules-threat-hunting"]


def regression_cases() -> list[tuple[str, str, Path, int]]:
    cases = []
    for info_path in sorted((SIGMA / "regression_data").rglob("info.yml")) if SIGMA.exists() else []:
        info = yaml.safe_load(info_path.read_text(encoding="utf-8"))
        rule_id = info["rule_metadata"][0]["id"]
        for test in info["regression_tests_info"]:
            cases.append((rule_id, test["type"], SIGMA / test["path"], int(test.get("match_count", 1))))
    return cases


@pytest.fixture(scope="module")
def all_rules():  # type: ignore[no-untyped-def]
    return prepare_rules(RULE_FOLDERS, cache_dir=False)


@requires_shared
@pytest.mark.shared
def test_all_sigmahq_rules_load(all_rules) -> None:  # type: ignore[no-untyped-def]
    files = sum(1 for folder in RULE_FOLDERS for p in folder.rglob("*.yml"))
    assert all_rules.files == files
    reasons = {f.reason for f in all_rules.failures}
    # The only rules that cannot run are |expand rules without placeholder values, each listed.
    assert all("placeholder" in r for r in reasons), reasons
    assert len(all_rules.compiled) + len(all_rules.failures) == files


@requires_shared
@pytest.mark.shared
@pytest.mark.parametrize("sample_kind", ["evtx", "json"])
def test_regression_cases_fire(all_rules, sample_kind: str) -> None:  # type: ignore[no-untyped-def]
    cases = regression_cases()
    assert len(cases) >= 90
    failures = []
    for rule_id, _kind, evtx_path, match_count in cases:
        sample = evtx_path if sample_kind == "evtx" else evtx_path.with_suffix(".json")
        result = run_hunt([sample], prepared=all_rules)
        hits = sum(1 for r in result.records if r["rule_id"] == rule_id)
        if hits < match_count or result.summary.events_unreadable:
            failures.append((rule_id, str(sample), hits, match_count, result.summary.events_unreadable))
    assert not failures, failures
