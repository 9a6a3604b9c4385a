"""``sigmahunt convert``: the command as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sigmahunt import cli
from tests.conftest import EXAMPLES, SHARED, requires_shared

SEED = EXAMPLES / "rules" / "seed_susp_prog_location_network_connection.yml"
FIXTURE_RULES = Path(__file__).parent / "fixtures" / "elastic" / "rules"


@pytest.fixture(autouse=True)
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command as cli.py registers it (COMMAND_MODULES entry)."""
    if "sigmahunt.convert" not in cli.COMMAND_MODULES:
        monkeypatch.setattr(cli, "COMMAND_MODULES", (*cli.COMMAND_MODULES, "sigmahunt.convert"))


def test_convert_seed_rule_to_helk_lucene(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["convert", str(SEED), "--target", "lucene", "--pipeline", "helk"])
    out, err = capsys.readouterr()
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "# Suspicious Program Location with Network Connections"
    assert "# index: logs-endpoint-winevent-sysmon-*" in lines
    assert any(line.startswith("# note: case-insensitive only where each queried field is a keyword with a "
                               "lowercase normalizer") for line in lines)
    query = [line for line in lines if not line.startswith("#") and line][0]
    assert query.startswith("event_id:3 AND (process_path:")
    assert query.count("process_path:") == 11
    assert "1 rules converted to lucene (pipeline helk), 0 refused" in " ".join(err.split())


def test_convert_json_for_every_target(capsys: pytest.CaptureFixture[str]) -> None:
    for target in ("lucene", "es-dsl", "esql"):
        assert cli.main(["convert", str(FIXTURE_RULES), "-t", target, "-p", "ecs-windows", "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
        assert len(data) == len(list(FIXTURE_RULES.glob("*.yml")))
        for item in data:
            assert item["target"] == target and item["pipeline"] == "ecs-windows"
            assert (item["query"] is None) == (item["refused"] is not None)
        refused = {item["title"]: item["refused"] for item in data if item["refused"]}
        assert all(reason for reason in refused.values())
        if target == "es-dsl":
            assert {"Regex Lucene cannot express (word boundary)"} == set(refused)
            dsl = json.dumps(next(i["query"] for i in data if i["title"] == "Cased value"))
            assert '{"wildcard": {"process.command_line.cased": {"value": "*MiXeD*"}}}' in dsl
            assert '{"term": {"winlog.channel": {"value": "security", "case_insensitive": true}}}' in dsl


def test_convert_index_override_tests_channels_by_field(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["convert", str(SEED), "-p", "helk", "--index", "helk-*"]) == 0
    out = capsys.readouterr().out
    assert "# index: helk-*" in out
    assert 'channel:"microsoft-windows-sysmon/operational" AND event_id:3' in out


def test_convert_refusal_is_reported_not_fatal(capsys: pytest.CaptureFixture[str]) -> None:
    rule = FIXTURE_RULES / "regex_wordboundary.yml"
    code = cli.main(["convert", str(rule), "-t", "lucene"])
    out, err = capsys.readouterr()
    assert code == 2  # nothing converted
    assert "# refused: regex '\\\\bq\\\\.exe\\\\b': word boundaries (\\b, \\B) have no Lucene equivalent" in out
    assert "0 rules converted" in err


@requires_shared
@pytest.mark.shared
def test_sigmahq_conversion_counts(capsys: pytest.CaptureFixture[str]) -> None:
    """Every SigmaHQ rule converts, or is refused with a reason (numbers printed for the record)."""
    from collections import Counter

    from sigmahunt.engines.elastic.query import convert
    from sigmahunt.pipelines import get_pipeline
    from sigmahunt.rules.prepare import prepare_rules

    folders = [SHARED / "sigma" / f for f in ("rules", "rules-emerging-threats", "rules-threat-hunting")]
    applicable = prepare_rules(folders).runnable
    assert len(applicable) > 2500
    lines = []
    for target in ("lucene", "es-dsl", "esql"):
        refused = [c for c in (convert(r, get_pipeline("raw"), target) for r in applicable) if c.refused]
        reasons = Counter(_reason_kind(c.refused) for c in refused)
        lines.append(f"{target}: {len(applicable) - len(refused)} converted, {len(refused)} refused "
                     f"{dict(reasons.most_common(5))}")
        assert len(refused) < 0.03 * len(applicable)
    with capsys.disabled():
        print("\n" + "\n".join(lines))


def _reason_kind(reason: str | None) -> str:
    text = reason or ""
    for key in ("word boundaries", "lookarounds", "backreferences", "anchor", "negated class", "fieldref",
                "keywords", "scoped flag", "timestamp-part", "not a valid"):
        if key in text:
            return key
    return text[:60]
