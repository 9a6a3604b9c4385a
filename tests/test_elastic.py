"""The Elasticsearch/OpenSearch engine against a real node: same detections as the embedded engine.

One embedded OpenSearch 2.19 node (real Lucene, real query DSL) is started for the session
(``tests/support/opensearch_node.py``), or ``$SIGMAHUNT_ES_URL`` names a cluster to use
instead. The project's fixtures and SigmaHQ's regression samples are loaded with
``sigmahunt ingest``'s code, every rule runs on both engines, and the detections must be
identical, event for event. The Elasticsearch client path runs against an embedded
Elasticsearch 7.17 node the same way (for a subset of the rules: Lucene's per-query cost
makes the whole SigmaHQ set a two-minute run, done once, on OpenSearch).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sigmahunt import cli
from sigmahunt.hunting import run_hunt
from sigmahunt.rules.prepare import prepare_rules
from tests.conftest import EXAMPLES, SHARED
from tests.support.elastic import (
    ClusterUnderTest,
    Unavailable,
    cleanup,
    cluster_under_test,
    embedded_cluster,
    external_url,
)

pytestmark = pytest.mark.opensearch
pytest.importorskip("opensearchpy", reason="the OpenSearch engine needs opensearch-py (extra 'elastic')")

from sigmahunt.engines.elastic import connect  # noqa: E402
from sigmahunt.engines.elastic.hunt import ElasticHuntOptions, run_elastic_hunt  # noqa: E402
from sigmahunt.engines.elastic.ingest import ingest_logs  # noqa: E402

TESTS = Path(__file__).parent
FIXTURES = TESTS / "fixtures"
ELASTIC = FIXTURES / "elastic"
EVENTS = ELASTIC / "events.jsonl"
SEED = EXAMPLES / "rules" / "seed_susp_prog_location_network_connection.yml"
SIGMA = SHARED / "sigma"
SIGMA_RULES = [SIGMA / "rules", SIGMA / "rules-emerging-threats", SIGMA / "rules-threat-hunting"]


def log_paths() -> list[Path]:
    paths = [EXAMPLES / "logs", FIXTURES]
    if (SIGMA / "regression_data").exists():
        paths.append(SIGMA / "regression_data")
    return paths


def rule_paths() -> list[Path]:
    own = [EXAMPLES / "rules", ELASTIC / "rules"]
    if SIGMA.exists():
        return SIGMA_RULES + own
    return own + [FIXTURES / "ruletest" / "rules"]


def keys(records: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {(r["rule_id"], r["source"], str(r["position"])) for r in records}


def by_key(records: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(r["rule_id"], r["source"], str(r["position"])): r for r in records}


# -- session fixtures --------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def node() -> Iterator[ClusterUnderTest]:
    try:
        with cluster_under_test() as found:
            yield found
    except Unavailable as reason:
        pytest.skip(str(reason))


@pytest.fixture(scope="session")
def cluster(node: ClusterUnderTest) -> Iterator[Any]:
    connection = connect(node.url, node.flavor, timeout=300)
    yield connection
    cleanup(connection, node.prefix)


@pytest.fixture(scope="session")
def prepared() -> Any:
    return prepare_rules(rule_paths())


@pytest.fixture(scope="session")
def raw_index(cluster: Any, node: ClusterUnderTest) -> tuple[str, Any]:
    name = f"{node.prefix}-raw"
    return name, ingest_logs(cluster, log_paths(), index=name, pipeline="raw")


@pytest.fixture(scope="session")
def embedded(prepared: Any) -> Any:
    return run_hunt(log_paths(), prepared=prepared)


@pytest.fixture(scope="session")
def elastic(cluster: Any, raw_index: tuple[str, Any], prepared: Any) -> Any:
    return run_elastic_hunt(cluster, prepared, ElasticHuntOptions(index=raw_index[0], pipeline="raw"))


# -- ingest ------------------------------------------------------------------------------------------

def test_ingest_indexes_every_event_read(raw_index: tuple[str, Any], embedded: Any) -> None:
    _, report = raw_index
    assert report.failed == []
    assert report.indexed == report.events_read == embedded.summary.events_read
    assert all(item["reason"] for item in report.unreadable)  # (folders: non-log files are skipped quietly)
    assert report.values_not_searchable == 0


def test_every_event_is_retrievable(cluster: Any, raw_index: tuple[str, Any]) -> None:
    name, report = raw_index
    assert cluster.count(name) == report.indexed


# -- the differential ----------------------------------------------------------------------------------

def test_detections_equal_the_embedded_engines(elastic: Any, embedded: Any) -> None:
    ours, theirs = by_key(elastic.records), by_key(embedded.records)
    assert set(ours) == set(theirs), {
        "only on the cluster": sorted(set(ours) - set(theirs))[:20],
        "only embedded": sorted(set(theirs) - set(ours))[:20],
    }
    assert len(elastic.records) == len(embedded.records)
    for key, record in theirs.items():
        mine = ours[key]
        assert mine["event"] == record["event"], key
        for column in ("rule_title", "level", "timestamp", "computer", "channel", "event_id", "record_id"):
            assert mine[column] == record[column], (key, column)
    # the DataFrames too (same columns, same order after the shared sort)
    left = elastic.dataframe.drop(columns=["event"]).reset_index(drop=True)
    right = embedded.dataframe.drop(columns=["event"]).reset_index(drop=True)
    assert left.equals(right)
    print(f"\n{len(elastic.records)} detections on both engines; cluster report: "
          f"{ {k: v for k, v in elastic.elastic.to_dict().items() if k not in ('verified', 'not_converted')} }")


def test_case_insensitive_matches_and_near_misses(elastic: Any) -> None:
    hits = {(r["position"], r["event"].get("Image") or r["event"].get("NewProcessName"))
            for r in elastic.records if r["rule_title"] == "Public folder binaries (case-insensitive)"}
    images = {image for _, image in hits}
    assert "c:\\users\\public\\y.exe" in images  # lowercase, as logged
    assert "C:\\Users\\Public\\x.exe" in images
    assert "C:\\Users\\Public\\Q.EXE" in images  # Security 4688 (NewProcessName)
    assert "C:\\Users\\Publicity\\z.exe" not in images


@pytest.mark.parametrize(("title", "positions"), [
    ("Cased value", {"line 3"}),
    ("Case-sensitive anchored regex", {"line 1"}),
    ("Regex with anchor inside an alternation", {"line 15"}),
    ("Regex Lucene cannot express (word boundary)", {"line 6", "line 15"}),
    ("Trailing backslash and quotes", {"line 2"}),
    ("Escaped wildcard characters", {"line 8"}),
    ("Private destinations", {"line 4", "line 5"}),
    ("Numeric comparisons (hex included)", {"line 7"}),
    ("Process accessing its own image", {"line 13"}),
    ("Absent user", {"line 6", "line 12"}),
    ("Registry value (unicode)", {"line 11"}),
])
def test_fixture_features(elastic: Any, title: str, positions: set[str]) -> None:
    found = {r["position"] for r in elastic.records
             if r["rule_title"] == title and r["source"].endswith("events.jsonl")}
    assert found == positions


def test_unicode_keyword_follows_sigma(cluster: Any, raw_index: tuple[str, Any]) -> None:
    """Keywords fold case beyond ASCII (É/é), as SigmaHQ's reference semantics say."""
    from sigma.collection import SigmaCollection

    from sigmahunt.engines.reference import rule_matches

    rule_file = ELASTIC / "reference" / "keywords_unicode.yml"
    result = run_elastic_hunt(cluster, prepare_rules([rule_file], cache_dir=False),
                              ElasticHuntOptions(index=raw_index[0]))
    found = {(r["source"], r["position"]) for r in result.records}
    sigma_rule = SigmaCollection.from_yaml(rule_file.read_text(encoding="utf-8")).rules[0]
    events = [json.loads(line) for line in EVENTS.read_text(encoding="utf-8").splitlines()]
    expected = {i + 1 for i, e in enumerate(events)
                if rule_matches(sigma_rule, {k: str(v) for k, v in e.items()})}
    assert expected == {11}
    assert {p for s, p in found if s.endswith("events.jsonl")} == {"line 11"}


@pytest.mark.shared
def test_every_sigmahq_rule_runs_without_a_query_error(elastic: Any, prepared: Any) -> None:
    if not SIGMA.exists():
        pytest.skip("../shared is not present")
    report = elastic.elastic
    assert report.rules == len(prepared.runnable) > 2500
    assert report.rejected == {}, list(report.rejected.items())[:5]
    assert report.not_converted == {}, list(report.not_converted.items())[:5]
    loading = Counter("placeholder" if "placeholder" in f.reason else "duplicate id" if "duplicate" in f.reason
                      else f.reason[:50] for f in prepared.failures)
    print(f"\nSigmaHQ on {report.flavor}: {report.rules} rules ran ({report.exact} as exact queries, "
          f"{len(report.verified)} relaxed and verified by the embedded evaluator: "
          f"{dict(Counter(report.verified.values()))}), {report.queries} queries, 0 rejected; "
          f"not loaded: {dict(loading)}; {len(prepared.inapplicable)} not about Windows logs")


# -- pipelines -----------------------------------------------------------------------------------------

def test_helk_seed_workflow(cluster: Any, node: ClusterUnderTest) -> None:
    """The seed notebook's hunt: HELK indices and names, the seed rule, every hit, case-insensitively."""
    suffix = f"{node.prefix}-helk"
    report = ingest_logs(cluster, [EXAMPLES / "logs", EVENTS], index=suffix, pipeline="helk")
    assert report.failed == [] and report.indexed == report.events_read
    assert f"logs-endpoint-winevent-sysmon-{suffix}" in report.indices
    index = None if not node.external else f"logs-endpoint-winevent-*-{suffix},logs-{suffix}"
    prepared = prepare_rules([SEED, ELASTIC / "rules"], cache_dir=False)
    ours = run_elastic_hunt(cluster, prepared, ElasticHuntOptions(index=index, pipeline="helk"))
    theirs = run_hunt([EXAMPLES / "logs", EVENTS], prepared=prepared)
    assert keys(ours.records) == keys(theirs.records)
    seed_hits = [r for r in ours.records if r["rule_id"] == "7b434893-c57d-4f41-908d-6a17bf1ae98f"]
    images = {r["event"]["Image"] for r in seed_hits}
    assert "c:\\users\\public\\x.exe" in images and "C:\\Perflogs\\evil.exe" in images
    assert all(r["event"].get("EventID") == "3" for r in seed_hits)  # EVTX names restored


def test_ecs_windows_pipeline_differential(cluster: Any, node: ClusterUnderTest) -> None:
    name = f"{node.prefix}-ecs"
    logs = [EXAMPLES / "logs", ELASTIC, FIXTURES / "ingest"]
    report = ingest_logs(cluster, logs, index=name, pipeline="ecs-windows")
    assert report.failed == []
    prepared = prepare_rules([EXAMPLES / "rules", ELASTIC / "rules"], cache_dir=False)
    ours = run_elastic_hunt(cluster, prepared, ElasticHuntOptions(index=name, pipeline="ecs-windows"))
    theirs = run_hunt(logs, prepared=prepared)
    assert keys(ours.records) == keys(theirs.records) and ours.records


# -- paging and failures ----------------------------------------------------------------------------------

def test_paging_returns_every_hit(cluster: Any, raw_index: tuple[str, Any]) -> None:
    prepared = prepare_rules([EXAMPLES / "rules", ELASTIC / "rules"], cache_dir=False)
    paged = run_elastic_hunt(cluster, prepared, ElasticHuntOptions(index=raw_index[0], page_size=2))
    whole = run_elastic_hunt(cluster, prepared, ElasticHuntOptions(index=raw_index[0]))
    assert keys(paged.records) == keys(whole.records)
    assert len(paged.records) == len(whole.records)
    assert max(Counter(r["rule_id"] for r in whole.records).values()) > 2  # paging really happened


def test_a_rejected_rule_is_reported_and_the_others_run(cluster: Any, raw_index: tuple[str, Any],
                                                        tmp_path: Path) -> None:
    (tmp_path / "complex.yml").write_text(
        "title: Too complex for Lucene\nid: e1a571c0-0000-4000-8000-0000000000aa\n"
        "logsource:\n    category: process_creation\n    product: windows\n"
        "detection:\n    sel:\n        CommandLine|re: 'a[^b]{1,64}c[^d]{1,64}e'\n    condition: sel\n",
        encoding="utf-8")
    prepared = prepare_rules([tmp_path / "complex.yml", ELASTIC / "rules" / "contains_ci.yml"], cache_dir=False)
    # The plain layout (an index mapped by another shipper) cannot verify hits itself: the
    # cluster's refusal is reported; sigmahunt's layout relaxes the regex and verifies.
    plain = run_elastic_hunt(cluster, prepared, ElasticHuntOptions(index=raw_index[0], layout="plain"))
    failed = {f["rule_id"]: f["reason"] for f in plain.summary.failed_rules}
    assert "rejected by" in failed["e1a571c0-0000-4000-8000-0000000000aa"]
    assert "Determinizing" in failed["e1a571c0-0000-4000-8000-0000000000aa"]
    assert any(r["rule_title"] == "Public folder binaries (case-insensitive)" for r in plain.records)
    ours = run_elastic_hunt(cluster, prepared, ElasticHuntOptions(index=raw_index[0]))
    assert ours.summary.failed_rules == []
    assert ours.elastic.verified == {"e1a571c0-0000-4000-8000-0000000000aa": "regex too complex for the cluster"}
    embedded = run_hunt(log_paths(), prepared=prepared)
    assert keys(ours.records) == keys(embedded.records)


# -- the command line -------------------------------------------------------------------------------------

@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registrations cli.py carries for this engine (ENGINE_MODULES, COMMAND_MODULES)."""
    engines = dict(cli.ENGINE_MODULES)
    engines.setdefault("elasticsearch", "sigmahunt.engines.elastic")
    engines.setdefault("opensearch", "sigmahunt.engines.elastic")
    monkeypatch.setattr(cli, "ENGINE_MODULES", engines)
    modules = tuple(cli.COMMAND_MODULES)
    if "sigmahunt.engines.elastic.ingest" not in modules:
        modules += ("sigmahunt.engines.elastic.ingest",)
    monkeypatch.setattr(cli, "COMMAND_MODULES", modules)


def test_cli_ingest_then_hunt(registered: None, cluster: Any, node: ClusterUnderTest, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    name = f"{node.prefix}-cli"
    assert cli.main(["ingest", str(EVENTS), "--url", node.url, "--index", name, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["indexed"] == report["events_read"] == 18 and report["failed"] == []
    out = tmp_path / "cluster.jsonl"
    engine = cluster.flavor
    assert cli.main(["hunt", "--engine", engine, "--url", node.url, "--index", name, "--rules", str(ELASTIC / "rules"),
                     "--format", "jsonl", "--output", str(out), "--summary", str(tmp_path / "s.json"), "-q"]) == 0
    local = tmp_path / "embedded.jsonl"
    assert cli.main(["hunt", str(EVENTS), "--rules", str(ELASTIC / "rules"), "--format", "jsonl",
                     "--output", str(local), "-q"]) == 0
    ours = [json.loads(line) for line in out.read_text().splitlines()]
    theirs = [json.loads(line) for line in local.read_text().splitlines()]
    assert ours == theirs  # the same records, in the same order
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["detections"] == len(ours) > 20


def test_cli_hunt_refuses_logs_and_reports_unreachable_clusters(registered: None,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["hunt", "--engine", "opensearch", "--url", "http://127.0.0.1:9", "--rules",
                     str(SEED), str(EVENTS)]) == 2
    assert "sigmahunt ingest" in capsys.readouterr().err
    assert cli.main(["hunt", "--engine", "opensearch", "--url", "http://127.0.0.1:9", "--max-retries", "0",
                     "--rules", str(SEED)]) == 2
    assert "cannot reach the opensearch cluster at http://127.0.0.1:9" in " ".join(capsys.readouterr().err.split())


def test_credentials_are_never_printed(registered: None, node: ClusterUnderTest) -> None:
    secret = "s3cr3t-Pa55-do-not-print"
    env = {**os.environ, "SIGMAHUNT_ES_USER": "hunter", "SIGMAHUNT_ES_PASSWORD": secret,
           "SIGMAHUNT_ES_API_KEY": "", "SIGMAHUNT_CACHE_DIR": os.environ.get("SIGMAHUNT_CACHE_DIR", "")}
    if node.external:
        pytest.skip("a real cluster would refuse these credentials")
    code = ("import sys; from sigmahunt import cli; "
            "cli.ENGINE_MODULES.update(elasticsearch='sigmahunt.engines.elastic', "
            "opensearch='sigmahunt.engines.elastic'); "
            "cli.COMMAND_MODULES += ('sigmahunt.engines.elastic.ingest',); sys.exit(cli.main(sys.argv[1:]))")
    runs = [
        ["hunt", "--engine", "opensearch", "--url", node.url, "--index", f"{node.prefix}-raw", "--rules",
         str(SEED), "--format", "json"],
        ["hunt", "--engine", "opensearch", "--url", "http://127.0.0.1:9", "--max-retries", "0", "--rules", str(SEED)],
        ["ingest", str(EVENTS), "--url", "https://127.0.0.1:9", "--index", "x", "--max-retries", "0"],
    ]
    for argv in runs:
        done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env,
                              timeout=300)
        assert secret not in done.stdout and secret not in done.stderr, argv
    assert cli.main(["hunt", "--engine", "opensearch", "--url", f"http://hunter:{secret}@127.0.0.1:9",
                     "--rules", str(SEED)]) == 2  # credentials in the URL are refused, not used


# -- the Elasticsearch client path (Elasticsearch 7.17 node) ---------------------------------------------------

@pytest.fixture(scope="module")
def es7() -> Iterator[tuple[ClusterUnderTest, Any]]:
    pytest.importorskip("elasticsearch", reason="the Elasticsearch engine needs the elasticsearch client")
    if external_url():
        pytest.skip("SIGMAHUNT_ES_URL is set: the tests use that cluster, not the embedded Elasticsearch node")
    try:
        with embedded_cluster("elasticsearch") as found:
            connection = connect(found.url, "elasticsearch", timeout=300)
            yield found, connection
    except Unavailable as reason:
        pytest.skip(str(reason))


def test_elasticsearch_client_path(es7: tuple[ClusterUnderTest, Any], embedded: Any) -> None:
    found, cluster = es7
    assert cluster.version.startswith("7.17")
    name = f"{found.prefix}-raw"
    report = ingest_logs(cluster, log_paths(), index=name, pipeline="raw")
    assert report.failed == [] and report.indexed == report.events_read
    # The fixture rules, and every rule that fires on the samples (the whole rule set ran on OpenSearch).
    fired = {Path(r["rule_path"]) for r in embedded.records if r.get("rule_path")}
    paths = sorted({EXAMPLES / "rules", ELASTIC / "rules", *fired})
    prepared = prepare_rules(paths)
    assert len(prepared.runnable) > 20
    ours = run_elastic_hunt(cluster, prepared, ElasticHuntOptions(index=name, page_size=3))
    theirs = run_hunt(log_paths(), prepared=prepared)
    assert ours.elastic.rejected == {}
    assert keys(ours.records) == keys(theirs.records)
    assert by_key(ours.records) == by_key(theirs.records)
    # HELK on Elasticsearch: the seed
    suffix = f"{found.prefix}-helk"
    ingest_logs(cluster, [EXAMPLES / "logs"], index=suffix, pipeline="helk")
    seed = prepare_rules([SEED], cache_dir=False)
    helk = run_elastic_hunt(cluster, seed, ElasticHuntOptions(pipeline="helk"))
    assert keys(helk.records) == keys(run_hunt([EXAMPLES / "logs"], prepared=seed).records) != set()
