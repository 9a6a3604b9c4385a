"""The Spark engine returns exactly the embedded engine's detections.

The executor side (:func:`hunt_partition`) is plain Python over Arrow batches and is
tested without Spark; everything else runs on one ``local[2]`` session per module and
compares full records (every key, the ``event`` dicts) and the run summary (minus timing)
with :func:`sigmahunt.run_hunt` on the same rules and logs. Marked ``spark``: a quick local
run can ``-m "not spark"``; without pyspark or Java those tests skip (fail instead with
``SIGMAHUNT_REQUIRE_SPARK=1``, as CI sets it).
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from sigmahunt.engines import spark as engine
from sigmahunt.engines.embedded.evaluator import BatchEvaluator, RuleSetPlan
from sigmahunt.hunting import HuntResult, NothingToHunt, run_hunt
from sigmahunt.results import render, to_dataframe
from sigmahunt.rules.prepare import prepare_rules
from sigmahunt.store import EventStore
from tests.conftest import EXAMPLES, REPO, SHARED, compile_yaml, frame_of, requires_shared, rule

FIXTURES = REPO / "tests" / "fixtures"
PROJECT_RULES = [EXAMPLES / "rules", FIXTURES / "ruletest" / "rules"]
SIGMA = SHARED / "sigma"
SIGMA_RULES = [SIGMA / "rules", SIGMA / "rules-emerging-threats", SIGMA / "rules-threat-hunting"]

try:
    import pyspark  # noqa: F401

    HAVE_PYSPARK = True
except ImportError:
    HAVE_PYSPARK = False
HAVE_JAVA = shutil.which("java") is not None or bool(os.environ.get("JAVA_HOME"))

#: CI sets SIGMAHUNT_REQUIRE_SPARK=1: there a missing pyspark or Java fails these tests instead of skipping them.
REQUIRED = os.environ.get("SIGMAHUNT_REQUIRE_SPARK") == "1"

needs_spark = [
    pytest.mark.spark,
    pytest.mark.skipif(not HAVE_PYSPARK and not REQUIRED, reason="pyspark is not installed (pip install "
                                                                 "'sigmahunt[spark]')"),
    pytest.mark.skipif(not HAVE_JAVA and not REQUIRED, reason="no Java (java on PATH or JAVA_HOME)"),
]


def spark_test(func: Any) -> Any:
    for mark in needs_spark:
        func = mark(func)
    return func


@pytest.fixture(scope="module")
def spark():  # type: ignore[no-untyped-def]
    session = engine.spark_session("local[2]", {"spark.sql.shuffle.partitions": "2"})
    yield session
    session.stop()


def canonical(records: list[dict[str, Any]]) -> list[bytes]:
    return sorted(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in records)


def summary_of(result: HuntResult) -> dict[str, Any]:
    data = result.summary.to_dict()
    data.pop("seconds")
    return data


def assert_same(spark_result: HuntResult, embedded: HuntResult) -> None:
    assert summary_of(spark_result) == summary_of(embedded)
    assert canonical(spark_result.records) == canonical(embedded.records)
    # The severity-sorted DataFrame every output is rendered from: equal cell by cell, and
    # the exports byte for byte.
    pd.testing.assert_frame_equal(spark_result.dataframe, embedded.dataframe)
    for fmt in ("jsonl", "csv"):
        assert render(spark_result.dataframe, fmt) == render(embedded.dataframe, fmt)


# -- the executor side, without Spark --------------------------------------------------------

PROC_RULE = rule("""
    selection:
        Image|endswith: '\\whoami.exe'
    condition: selection
""", "product: windows\n    category: process_creation")
KEYWORD_RULE = rule("""
    keywords:
        - 'mimikatz'
    condition: keywords
""")


def _partition(events: list[dict[str, Any]], rules: list[Any]) -> pa.Table:
    frame = frame_of(events)
    payload = engine.rules_payload(rules)
    options = orjson.dumps({"names": frame.columns, "filter": None})
    batch = frame.to_arrow().rename_columns([f"c{i}" for i in range(frame.width)]).to_batches()[0]
    out = list(engine.hunt_partition(engine.payload_key(payload), payload, options, [batch]))
    return pa.Table.from_batches(out, schema=engine.hits_schema())


def test_partition_emits_matching_events_and_a_count() -> None:
    events = [
        {"_source": "a.json", "_position": "event 1", "Channel": "Microsoft-Windows-Sysmon/Operational",
         "EventID": "1", "Image": "C:\\Windows\\System32\\whoami.exe", "CommandLine": "whoami /all"},
        {"_source": "a.json", "_position": "event 2", "Channel": "Security", "EventID": "4624",
         "TargetUserName": "mimikatz"},
        {"_source": "a.json", "_position": "event 3", "Channel": "Security", "EventID": "4624"},
    ]
    table = _partition(events, [compile_yaml(PROC_RULE), compile_yaml(KEYWORD_RULE)]).to_pydict()
    assert table["rules"] == [[0], [1], None]
    assert table["position"] == ["event 1", "event 2", None]
    assert table["events"] == [None, None, 3]
    # The event is its non-null, non-metadata fields, exactly as the embedded engine records it.
    assert orjson.loads(table["event"][1]) == {"Channel": "Security", "EventID": "4624", "TargetUserName": "mimikatz"}


def test_partition_with_case_variant_columns_matches_each_spelling() -> None:
    """Two sources spell a field differently; each source's own batch would match both."""
    events = [
        {"_position": "event 1", "Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": "1",
         "Image": "C:\\x\\whoami.exe"},
        {"_position": "event 2", "Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": "1",
         "image": "C:\\y\\whoami.exe"},
    ]
    rules = [compile_yaml(PROC_RULE)]
    evaluator = BatchEvaluator(RuleSetPlan.build(rules))
    per_source = [evaluator.evaluate(frame_of([e])) for e in events]
    assert all(list(h.get(0, [])) == [0] for h in per_source)
    table = _partition(events, rules).to_pydict()
    assert table["rules"][:2] == [[0], [0]]


def test_parts_partition_reads_units_like_the_store(tmp_path: Path) -> None:
    events = [{"_source": "a", "_position": f"event {i}", "Channel": "Microsoft-Windows-Sysmon/Operational",
               "EventID": "1", "Image": f"C:\\x\\{'whoami' if i % 3 == 0 else 'cmd'}.exe"} for i in range(10)]
    path = tmp_path / "part.parquet"
    frame_of(events).write_parquet(path)
    units = engine.work_units([str(path)], 4)
    assert units == [(str(path), 0, 4), (str(path), 4, 4), (str(path), 8, 2)]
    bins = engine.pack_units(units, 2)
    assert sorted(len(b) for b in bins) == [1, 2] and sorted(u for b in bins for u in b) == sorted(units)
    payload = engine.rules_payload([compile_yaml(PROC_RULE)])
    batch = pa.RecordBatch.from_pydict({"id": [0, 1]})
    work = orjson.dumps({"rows": 3, "bins": bins})
    out = pa.Table.from_batches(list(engine.hunt_parts_partition(engine.payload_key(payload), payload,
                                                                 work, [batch])))
    data = out.to_pydict()
    assert sorted(p for p in data["position"] if p) == ["event 0", "event 3", "event 6", "event 9"]
    assert sum(n for n in data["events"] if n) == 10


def test_plan_is_built_once_per_worker() -> None:
    payload = engine.rules_payload([compile_yaml(PROC_RULE)])
    key = engine.payload_key(payload)
    first = engine.evaluator_for(key, payload)
    assert engine.evaluator_for(key, b"not even json") is first


def test_rules_payload_round_trips_the_compiled_rules() -> None:
    compiled = prepare_rules([EXAMPLES / "rules"], cache_dir=False).runnable
    items = orjson.loads(engine.rules_payload(compiled))
    assert [i["predicates"] for i in items] == [r.to_json()["predicates"] for r in compiled]
    assert [i["variants"] for i in items] == [r.to_json()["variants"] for r in compiled]


def test_nothing_to_hunt_needs_no_session() -> None:
    with pytest.raises(NothingToHunt):
        engine.run_spark_hunt([], [EXAMPLES / "rules"])
    with pytest.raises(NothingToHunt):
        engine.run_spark_hunt([EXAMPLES / "logs"], [FIXTURES / "no-such-rules"])


def test_spark_conf_parsing() -> None:
    assert engine.parse_conf(["spark.executor.memory=4g", "a.b=x=y"]) == {"spark.executor.memory": "4g",
                                                                          "a.b": "x=y"}
    with pytest.raises(ValueError):
        engine.parse_conf(["novalue"])


# -- Spark local[2] == embedded --------------------------------------------------------------

READERS = ["parts", "dataframe"]


@spark_test
@pytest.mark.parametrize("reader", READERS)
def test_examples(spark, reader: str) -> None:  # type: ignore[no-untyped-def]
    prepared = prepare_rules([EXAMPLES / "rules"], cache_dir=False)
    result = engine.run_spark_hunt([EXAMPLES / "logs"], spark=spark, prepared=prepared, reader=reader)
    assert result.records
    assert_same(result, run_hunt([EXAMPLES / "logs"], prepared=prepared))


@spark_test
@pytest.mark.parametrize("reader", READERS)
def test_ingest_fixtures_with_unreadable_records(spark, reader: str) -> None:  # type: ignore[no-untyped-def]
    logs = [FIXTURES / "ingest", EXAMPLES / "logs", FIXTURES / "ruletest" / "regression_data",
            FIXTURES / "correlation"]
    prepared = prepare_rules(PROJECT_RULES, cache_dir=False)
    result = engine.run_spark_hunt(logs, spark=spark, prepared=prepared, reader=reader)
    embedded = run_hunt(logs, prepared=prepared)
    assert embedded.summary.events_unreadable and embedded.records
    assert_same(result, embedded)


@spark_test
def test_time_and_host_filter_applies_before_matching(spark) -> None:  # type: ignore[no-untyped-def]
    from sigmahunt.timefilter import TimeFilter

    prepared = prepare_rules(PROJECT_RULES, cache_dir=False)
    logs = [EXAMPLES / "logs", FIXTURES / "ingest"]
    keep = TimeFilter.build(since="2026-11-20T08:00:04", computers=["ws01", "DC01"])
    embedded = run_hunt(logs, prepared=prepared, event_filter=keep)
    unfiltered = run_hunt(logs, prepared=prepared)
    assert 0 < embedded.summary.detections < unfiltered.summary.detections
    for reader in READERS:
        assert_same(engine.run_spark_hunt(logs, spark=spark, prepared=prepared, reader=reader,
                                          event_filter=keep), embedded)


@spark_test
def test_parts_are_cut_into_units(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Small work units (many per part) give the same detections as whole parts."""
    prepared = prepare_rules(PROJECT_RULES, cache_dir=False)
    store = tmp_path / "store"
    embedded = run_hunt([EXAMPLES / "logs", FIXTURES / "ingest"], store=store, prepared=prepared)
    parts = sorted(str(p) for p in (store / "parts").glob("*.parquet"))
    units = engine.work_units(parts, 7)
    assert len(units) > len(parts)
    spark.conf.set(engine.ROWS_PER_UNIT_CONF, "7")
    try:
        result = engine.run_spark_hunt(store=store, spark=spark, prepared=prepared)
    finally:
        spark.conf.unset(engine.ROWS_PER_UNIT_CONF)
    assert_same(result, embedded)


@spark_test
def test_store_is_rehunted_without_logs(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = tmp_path / "store"
    prepared = prepare_rules(PROJECT_RULES, cache_dir=False)
    run_hunt([EXAMPLES / "logs", FIXTURES / "ingest"], store=store, prepared=prepared)
    embedded = run_hunt(store=store, prepared=prepared)
    assert_same(engine.run_spark_hunt(store=store, spark=spark, prepared=prepared), embedded)
    # LOGS with --store: only those logs, read from the store (unchanged files are not re-read).
    only = run_hunt([EXAMPLES / "logs"], store=store, prepared=prepared)
    assert_same(engine.run_spark_hunt([EXAMPLES / "logs"], store=store, spark=spark, prepared=prepared), only)
    # A store folder given as --table.
    assert canonical(engine.run_spark_hunt(table=str(store), spark=spark, prepared=prepared).records) == \
        canonical(embedded.records)


@spark_test
def test_parquet_and_json_tables(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Any Parquet or JSON table with the store's columns, one file holding every source."""
    store = tmp_path / "store"
    prepared = prepare_rules(PROJECT_RULES, cache_dir=False)
    embedded = run_hunt([EXAMPLES / "logs", FIXTURES / "ingest"], store=store, prepared=prepared)
    frames = list(EventStore(store).iter_batches())
    table = pl.concat(frames, how="diagonal")
    table.write_parquet(tmp_path / "events.parquet")
    table.write_ndjson(tmp_path / "events.jsonl")
    for path in (tmp_path / "events.parquet", tmp_path / "events.jsonl"):
        result = engine.run_spark_hunt(table=str(path), spark=spark, prepared=prepared)
        assert result.summary.events_read == embedded.summary.events_read
        assert canonical(result.records) == canonical(embedded.records)


@spark_test
def test_results_written_as_parquet(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    prepared = prepare_rules(PROJECT_RULES, cache_dir=False)
    logs = [EXAMPLES / "logs", FIXTURES / "ingest"]
    out = tmp_path / "detections"
    result = engine.run_spark_hunt(logs, spark=spark, prepared=prepared, results_path=str(out))
    embedded = run_hunt(logs, prepared=prepared)
    assert summary_of(result) == summary_of(embedded)
    # Correlation matches (few) come back as records; single-event detections are in the Parquet.
    correlations = [r for r in embedded.records if r.get("correlation_type")]
    assert canonical(result.records) == canonical(correlations)
    single = [r for r in embedded.records if not r.get("correlation_type")]
    written = pd.read_parquet(out)
    expected = pd.read_parquet(io.BytesIO(render(to_dataframe(single), "parquet")))
    assert list(written.columns) == list(expected.columns)
    assert len(written) == len(single) > 0

    def rows(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
        def number(value: Any) -> int | None:
            return None if pd.isna(value) else int(value)

        return sorted((r.rule_id, r.source, r.position, number(r.event_id), number(r.record_id), r.level,
                       r.rule_path, r.tags, r.techniques, r.tactics, r.event, pd.Timestamp(r.timestamp).isoformat())
                      for r in frame.itertuples())

    assert rows(written) == rows(expected)


@spark_test
def test_cli(spark, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from sigmahunt import cli

    monkeypatch.setitem(cli.ENGINE_MODULES, "spark", "sigmahunt.engines.spark")
    common = ["--rules", str(EXAMPLES / "rules"), "--format", "jsonl", "-q"]
    assert cli.main(["hunt", str(EXAMPLES / "logs"), *common, "-o", str(tmp_path / "embedded.jsonl"),
                     "--summary", str(tmp_path / "embedded.json")]) == 0
    assert cli.main(["hunt", "--engine", "spark", "--master", "local[2]", "--spark-conf",
                     "spark.sql.shuffle.partitions=2", str(EXAMPLES / "logs"), *common,
                     "-o", str(tmp_path / "spark.jsonl"), "--summary", str(tmp_path / "summary.json")]) == 0

    def lines(name: str) -> list[bytes]:
        return canonical([orjson.loads(line) for line in (tmp_path / name).read_bytes().splitlines()])

    assert lines("spark.jsonl") == lines("embedded.jsonl") != []
    def summary(name: str) -> dict[str, Any]:
        data = orjson.loads((tmp_path / name).read_bytes())
        data.pop("seconds")
        return data

    assert summary("summary.json") == summary("embedded.json")
    since = ["--since", "2026-11-20T08:00:04", "--computer", "ws01"]
    assert cli.main(["hunt", str(EXAMPLES / "logs"), *common, *since, "-o", str(tmp_path / "e-since.jsonl")]) == 0
    assert cli.main(["hunt", "--engine", "spark", str(EXAMPLES / "logs"), *common, *since,
                     "-o", str(tmp_path / "s-since.jsonl")]) == 0
    assert lines("s-since.jsonl") == lines("e-since.jsonl")
    assert 0 < len(lines("e-since.jsonl")) < len(lines("embedded.jsonl"))
    # --table and --results-path
    store = tmp_path / "store"
    run_hunt([EXAMPLES / "logs"], [EXAMPLES / "rules"], store=store)
    assert cli.main(["hunt", "--engine", "spark", "--table", str(store), *common,
                     "-o", str(tmp_path / "table.jsonl")]) == 0
    assert lines("table.jsonl") == lines("embedded.jsonl")
    assert cli.main(["hunt", "--engine", "spark", "--table", str(store), "--results-path",
                     str(tmp_path / "results"), *common, "-o", str(tmp_path / "none.jsonl")]) == 0
    # Single-event detections in the Parquet, correlation matches (collected) in --output.
    written = len(pd.read_parquet(tmp_path / "results"))
    assert written + len(lines("none.jsonl")) == len(lines("embedded.jsonl"))
    assert cli.main(["hunt", "--engine", "spark", "--table", str(store), str(EXAMPLES / "logs"), *common]) == 2
    assert cli.main(["hunt", "--engine", "spark", "--spark-conf", "oops", str(EXAMPLES / "logs"), *common]) == 2


# -- SigmaHQ's regression samples, every rule ----------------------------------------------

@spark_test
@requires_shared
@pytest.mark.shared
def test_sigmahq_regression_samples(spark) -> None:  # type: ignore[no-untyped-def]
    """Every SigmaHQ rule over every regression sample (EVTX and JSON) and the project's logs."""
    samples = sorted(p for p in (SIGMA / "regression_data").rglob("*") if p.suffix in (".json", ".evtx"))
    assert len(samples) >= 180
    logs = [*samples, FIXTURES / "ingest", EXAMPLES / "logs"]
    prepared = prepare_rules([*SIGMA_RULES, *PROJECT_RULES])
    embedded = run_hunt(logs, prepared=prepared)
    assert embedded.summary.detections >= 180 and embedded.summary.events_unreadable
    for reader in READERS:  # the merged schema of ~200 sources exercises the DataFrame route
        assert_same(engine.run_spark_hunt(logs, spark=spark, prepared=prepared, reader=reader), embedded)
