"""Scale-out engine: the embedded evaluator inside Apache Spark executors.

Sigma semantics are not re-implemented here: the compiled rule set (plain JSON, see
:mod:`sigmahunt.engines.embedded.ir`) is broadcast to the executors, each Python worker
rebuilds the embedded engine's :class:`~sigmahunt.engines.embedded.evaluator.RuleSetPlan`
from it once (cached per worker, keyed by the JSON's hash), and ``mapInArrow`` runs the
embedded :class:`~sigmahunt.engines.embedded.evaluator.BatchEvaluator` on each batch.
Every rule is about one event, so the job is a pure map over partitions: no shuffle, and
only matching events leave the executors.

Where the events come from::

    LOGS ──read on the driver (run_hunt's own loop)──> staged Parquet parts ─┐
    --store DIR (a sigmahunt store) ─────────────────> its Parquet parts ───┤
                                                                             │
      reader "parts" (default): the driver lists (part, row range) units; each executor
      reads its units with Polars, exactly as the embedded engine reads a stored part;
      reader "dataframe": Spark reads the parts (mergeSchema), Arrow batches to Python.
                                                                             │
    --table NAME|PATH (Spark table, Parquet or JSON) ─> DataFrame, every column cast to
      string ─> mapInArrow (columns entirely null in a batch are dropped, as if absent)
                                                                             v
      one row per matching event: the rules it matched (indices), provenance, the event
      as JSON; plus one row per partition with the number of events it read
                                                                             v
      driver: detection records (the embedded engine's ``Detection`` records), correlations
      (as ``run_hunt``); or, with ``--results-path``, Parquet written by the executors

pyspark is an optional dependency (``pip install 'sigmahunt[spark]'``): nothing here
imports it until a Spark hunt runs. Settings (``--spark-conf KEY=VALUE``) of sigmahunt's
own: ``spark.sigmahunt.reader`` (parts|dataframe), ``spark.sigmahunt.rowsPerUnit``,
``spark.sigmahunt.stagingDir`` (where LOGS are staged; a shared folder on a cluster).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import heapq
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import polars as pl
import pyarrow as pa

from sigmahunt import hunting
from sigmahunt.engines.embedded.evaluator import BatchEvaluator, RuleSetPlan
from sigmahunt.engines.embedded.ir import CompiledRule
from sigmahunt.hunting import (
    PROVENANCE,
    HuntResult,
    NothingToHunt,
    Progress,
    _count_unreadable,
    _hunted_batches,
    _row_events,
    expand_log_paths,
    start_summary,
)
from sigmahunt.results import LEVELS, Detection, HuntSummary, level_counts
from sigmahunt.rules.prepare import PreparedRules, RuleSelection, prepare_rules
from sigmahunt.store import MANIFEST, PARTS, EventStore

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

    from sigmahunt.timefilter import TimeFilter

DEFAULT_MASTER = "local[2]"
#: Session settings when sigmahunt creates the session (``--spark-conf`` overrides them).
DEFAULT_CONF: dict[str, str] = {
    "spark.driver.memory": "1g",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "4",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # Batches as large as the ingest's: the evaluator matches each distinct value once per batch.
    "spark.sql.execution.arrow.maxRecordsPerBatch": "50000",
    # Stored parts may hold `Image` in one source and `image` in another: keep both columns.
    "spark.sql.caseSensitive": "true",
    "spark.sql.session.timeZone": "UTC",
    "spark.python.worker.reuse": "true",
}

#: One output row per matching event (``rules`` = indices into ``prepared.runnable``), plus
#: one row per partition with ``rules`` null and ``events`` = the events it read.
PROVENANCE_FIELDS = tuple(PROVENANCE.values())  # timestamp, computer, channel, event_id, source, ...
HITS_DDL = ", ".join(["rules array<int>", *(f"{name} string" for name in PROVENANCE_FIELDS),
                      "event string", "events bigint"])

#: Reading a sigmahunt store: ``parts`` (executors read the Parquet parts themselves, as the
#: embedded engine does) or ``dataframe`` (Spark reads them with a merged schema).
READER_CONF = "spark.sigmahunt.reader"
#: Rows per work unit in ``parts`` mode (default: enough units for 3 per core, 10k..50k rows).
ROWS_PER_UNIT_CONF = "spark.sigmahunt.rowsPerUnit"
MIN_UNIT_ROWS, MAX_UNIT_ROWS = 10_000, 50_000

#: Where LOGS are staged as Parquet for the executors (default: a local temporary folder;
#: on a cluster, a folder every executor can read at the same path).
STAGING_CONF = "spark.sigmahunt.stagingDir"

TIMESTAMP_CONF = "spark.sql.parquet.outputTimestampType"

#: Parsed plans per Python worker, keyed by the rule set JSON's hash (a few rule sets at most).
_PLANS: dict[str, BatchEvaluator] = {}
_MAX_PLANS = 4


# -- the executor side ---------------------------------------------------------------------

def rules_payload(rules: Sequence[CompiledRule]) -> bytes:
    """The runnable rule set as JSON, with only the metadata an executor needs (none, really)."""
    items = []
    for rule in rules:
        data = rule.to_json()
        meta = data["meta"]
        data["meta"] = {"rule_id": meta["rule_id"], "title": "", "level": meta["level"], "status": "",
                        "tags": [], "path": ""}
        items.append(data)
    return orjson.dumps(items)


def payload_key(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def evaluator_for(key: str, payload: Any) -> BatchEvaluator:
    """The worker's evaluator for a rule set, built from its JSON on first use.

    ``payload`` is the JSON bytes or a Spark broadcast of them; the broadcast is only
    read when this worker has not built the plan yet.
    """
    evaluator = _PLANS.get(key)
    if evaluator is None:
        data = payload if isinstance(payload, (bytes, bytearray)) else payload.value
        rules = [CompiledRule.from_json(item) for item in orjson.loads(data)]
        evaluator = BatchEvaluator(RuleSetPlan.build(rules))
        while len(_PLANS) >= _MAX_PLANS:
            _PLANS.pop(next(iter(_PLANS)))
        _PLANS[key] = evaluator
    return evaluator


def hits_schema() -> pa.Schema:
    return pa.schema([pa.field("rules", pa.list_(pa.int32())),
                      *(pa.field(name, pa.string()) for name in PROVENANCE_FIELDS),
                      pa.field("event", pa.string()), pa.field("events", pa.int64())])


def _count_batch(events: int, schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(
        {"rules": [None], **{name: [None] for name in PROVENANCE_FIELDS}, "event": [None], "events": [events]},
        schema=schema)


def event_filter_of(data: Any) -> TimeFilter | None:
    """The ``--since/--until/--computer`` filter from its JSON form (plain strings)."""
    if not data:
        return None
    from sigmahunt.timefilter import TimeFilter

    return TimeFilter(data["since"], data["before"], tuple(data["computers"]))


def _filter_json(event_filter: TimeFilter | None) -> dict[str, Any] | None:
    if event_filter is None:
        return None
    return {"since": event_filter.since, "before": event_filter.before, "computers": list(event_filter.computers)}


def hunt_partition(
    key: str, payload: Any, options_json: bytes, batches: Iterable[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` body over a table's rows: the embedded evaluator on each Arrow batch.

    Columns arrive positionally named (``c0``, ``c1``...: pyspark cannot pass a column
    named ``event.code`` through ``mapInArrow``); ``options_json`` holds ``{"names": their
    real names, "filter": the event filter or null}``.
    """
    evaluator = evaluator_for(key, payload)
    options = orjson.loads(options_json)
    names, keep = options["names"], event_filter_of(options.get("filter"))
    schema = hits_schema()
    events = 0
    for batch in batches:
        events += batch.num_rows  # read, then filtered: as run_hunt counts them
        if batch.num_rows == 0:
            continue
        frame = as_frame(batch.rename_columns(names))
        if keep is not None:
            frame = keep(frame)
            if frame.height == 0:
                continue
        hits = evaluate_frame(evaluator, frame)
        if hits:
            yield hits_batch(frame, hits, schema)
    yield _count_batch(events, schema)


def hunt_parts_partition(
    key: str, payload: Any, bins_json: bytes, batches: Iterable[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` body over bin numbers: the work units ``(path, offset, length)`` of a bin.

    ``bins_json`` holds ``{"rows": batch rows, "bins": [[unit, ...], ...], "filter": the
    event filter or null}``; the partition receives its bin numbers (``spark.range``) and
    reads each unit itself, with Polars, as the embedded engine reads a stored part. Small
    units are packed into batches of about ``rows`` rows, as ``run_hunt`` packs small parts
    (per-batch costs are paid per batch).
    """
    evaluator = evaluator_for(key, payload)
    work = orjson.loads(bins_json)
    keep = event_filter_of(work.get("filter"))
    schema = hits_schema()
    events = 0
    pending: list[pl.DataFrame] = []
    pending_rows = 0

    def flush() -> Iterator[pa.RecordBatch]:
        frame = pending[0] if len(pending) == 1 else pl.concat(pending, how="diagonal").rechunk()
        pending.clear()
        hits = evaluate_frame(evaluator, frame)
        if hits:
            yield hits_batch(frame, hits, schema)

    for batch in batches:
        for number in batch.column(0).to_pylist():
            for path, offset, length in work["bins"][number]:
                frame = read_unit(path, offset, length)
                events += frame.height  # read, then filtered: as run_hunt counts them
                if keep is not None and frame.height:
                    frame = keep(frame)
                if frame.height:
                    pending.append(frame)
                    pending_rows += frame.height
                if pending_rows >= work["rows"]:
                    yield from flush()
                    pending_rows = 0
    if pending:
        yield from flush()
    yield _count_batch(events, schema)


def read_unit(path: str, offset: int, length: int) -> pl.DataFrame:
    """Rows ``[offset, offset + length)`` of a Parquet part (the whole part when length < 0)."""
    if length < 0:
        return pl.read_parquet(path)
    return pl.scan_parquet(path).slice(offset, length).collect()


def as_frame(batch: pa.RecordBatch) -> pl.DataFrame:
    """A batch as the embedded engine sees a stored part: String columns, none entirely null.

    The merged schema gives every batch every column of the table; dropping the columns a
    batch has no value in makes it what the ingest would have produced for these events
    (and keeps keyword searches from concatenating hundreds of empty columns).
    """
    keep = [i for i, column in enumerate(batch.columns) if column.null_count < batch.num_rows]
    frame = pl.from_arrow(batch.select(keep)) if keep else pl.DataFrame()
    assert isinstance(frame, pl.DataFrame)
    casts = [pl.col(name).cast(pl.String) for name, dtype in frame.schema.items() if dtype != pl.String]
    return frame.with_columns(casts) if casts else frame


def evaluate_frame(evaluator: BatchEvaluator, frame: pl.DataFrame) -> dict[int, np.ndarray]:
    """Rule index -> rows, as on the embedded engine.

    The evaluator resolves field names case-insensitively with the first column of a
    batch winning. When a batch mixes events whose field is ``Image`` with events whose
    field is ``image`` (different sources in one partition or packed batch), its rows are
    evaluated in groups that each hold one spelling, as each source's own batch would be:
    the detections do not depend on how Spark happened to cut the table.
    """
    groups: dict[str, list[str]] = defaultdict(list)
    for name in frame.columns:
        groups[name.lower()].append(name)
    clashing = [name for names in groups.values() if len(names) > 1 for name in names]
    if not clashing:
        return evaluator.evaluate(frame)
    pattern = frame.select(pl.concat_str([pl.col(c).is_not_null().cast(pl.UInt8).cast(pl.String)
                                          for c in clashing]).alias("p"))["p"]
    if pattern.n_unique() == 1:
        return evaluator.evaluate(frame)
    hits: dict[int, list[np.ndarray]] = defaultdict(list)
    for value in pattern.unique().to_list():
        rows = np.flatnonzero((pattern == value).to_numpy())
        subset = frame[rows.tolist()]
        subset = subset.select([c for c in subset.columns if subset[c].null_count() < subset.height])
        for rule_index, local in evaluator.evaluate(subset).items():
            hits[rule_index].append(rows[local])
    return {rule_index: np.sort(np.concatenate(parts)) for rule_index, parts in hits.items()}


def hits_batch(frame: pl.DataFrame, hits: Mapping[int, np.ndarray], schema: pa.Schema) -> pa.RecordBatch:
    """One row per matching event: the rules it matched, provenance, and the event's fields.

    The fields and provenance come from the embedded engine's own ``_row_events`` (the
    event's non-null, non-metadata fields, keys sorted), so records built from them on
    the driver are the embedded engine's records.
    """
    rules_of: dict[int, list[int]] = defaultdict(list)
    for rule_index in sorted(hits):
        for row in hits[rule_index].tolist():
            rules_of[row].append(rule_index)
    rows = np.array(sorted(rules_of), dtype=np.int64)
    events = _row_events(frame, rows)
    columns: dict[str, list[Any]] = {name: [] for name in schema.names}
    for row in rows.tolist():
        fields, provenance = events[row]
        columns["rules"].append(rules_of[row])
        for name in PROVENANCE_FIELDS:
            columns[name].append(provenance[name])
        columns["event"].append(orjson.dumps(fields).decode())
        columns["events"].append(None)
    return pa.RecordBatch.from_pydict(columns, schema=schema)


# -- the driver side -----------------------------------------------------------------------

def spark_session(master: str = DEFAULT_MASTER, conf: Mapping[str, str] | None = None,
                  app_name: str = "sigmahunt") -> SparkSession:
    """A Spark session for a hunt; executors run this very Python in local mode."""
    from pyspark.sql import SparkSession

    if master.startswith("local"):
        os.environ["PYSPARK_PYTHON"] = sys.executable
        os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    else:
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    settings = {**DEFAULT_CONF, **dict(conf or {})}
    if "spark.driver.extraJavaOptions" not in settings:  # errors only on stderr, from the JVM's start
        settings["spark.driver.extraJavaOptions"] = f"-Dlog4j.configurationFile=file:{_quiet_log4j()}"
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    with _quiet_pyspark():
        session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


_LOG4J = """\
rootLogger.level = error
rootLogger.appenderRef.stderr.ref = stderr
logger.repl.name = org.apache.spark.repl.Main
logger.repl.level = error
logger.gateway.name = org.apache.spark.api.python.PythonGatewayServer
logger.gateway.level = error
appender.console.type = Console
appender.console.name = stderr
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
"""


def _quiet_log4j() -> Path:
    """A log4j2 configuration showing errors only (Spark's default prints warnings at start)."""
    path = Path(tempfile.gettempdir()) / f"sigmahunt-log4j2-{hashlib.sha1(_LOG4J.encode()).hexdigest()[:8]}.properties"
    if not path.exists():
        fd, tmp = tempfile.mkstemp(prefix=".sigmahunt-log4j2-", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(_LOG4J)
        os.replace(tmp, path)
    return path


@contextlib.contextmanager
def _quiet_pyspark() -> Iterator[None]:
    """pyspark 4 warns about pandas >= 3 when it checks versions; no pandas is used here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
        yield


def parse_conf(items: Sequence[str]) -> dict[str, str]:
    conf = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--spark-conf expects KEY=VALUE, got {item!r}")
        conf[key.strip()] = value
    return conf


def is_store(path: str | Path) -> bool:
    return Path(path).is_dir() and (Path(path) / MANIFEST).exists()


def load_table(spark: SparkSession, table: str) -> DataFrame:
    """A Parquet file/folder, a JSON (lines) file/folder, or a table name, as a DataFrame."""
    path = Path(table)
    if is_store(path):  # its manifest's parts (an interrupted ingest may have left others)
        with EventStore(path) as store:
            parts = _store_parts(store, sorted(store.sources))
        if not parts:
            raise NothingToHunt(f"{table}: the store holds no events")
        return read_parts(spark, parts)
    if path.exists():
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        suffixes = {p.suffix.lower() for p in files if not p.name.startswith((".", "_"))}
        if suffixes & {".json", ".jsonl", ".ndjson"} and not suffixes & {".parquet"}:
            return spark.read.option("primitivesAsString", "true").json(str(path))
        return spark.read.option("mergeSchema", "true").parquet(str(path))
    return spark.table(table)


def read_parts(spark: SparkSession, parts: Sequence[str]) -> DataFrame:
    return spark.read.option("mergeSchema", "true").parquet(*parts)


def as_strings(frame: DataFrame) -> DataFrame:
    """Every column as a string (nested values as JSON), named by position: ``c0``, ``c1``..."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, MapType, StringType, StructType

    columns = []
    for index, field in enumerate(frame.schema.fields):
        column = F.col("`" + field.name.replace("`", "``") + "`")
        if isinstance(field.dataType, (StructType, ArrayType, MapType)):
            column = F.to_json(column)
        elif not isinstance(field.dataType, StringType):
            column = column.cast("string")
        columns.append(column.alias(f"c{index}"))
    return frame.select(columns)


def broadcast_rules(spark: SparkSession, rules: Sequence[CompiledRule]) -> tuple[str, Any]:
    """The rule set's JSON broadcast to the executors once, and its key (for the plan cache)."""
    payload = rules_payload(rules)
    return payload_key(payload), spark.sparkContext.broadcast(payload)


def hunt_frame(frame: DataFrame, rules: Sequence[CompiledRule], shipped: tuple[str, Any] | None = None,
               event_filter: TimeFilter | None = None) -> DataFrame:
    """The hits DataFrame (:data:`HITS_DDL`) of ``rules`` over ``frame``, lazily."""
    key, broadcast = shipped or broadcast_rules(frame.sparkSession, rules)
    options = orjson.dumps({"names": [field.name for field in frame.schema.fields],
                            "filter": _filter_json(event_filter)})
    body = functools.partial(hunt_partition, key, broadcast, options)
    with _quiet_pyspark():
        return as_strings(frame).mapInArrow(body, HITS_DDL)


def work_units(parts: Sequence[str], rows_per_unit: int) -> list[tuple[str, int, int]]:
    """Each part cut into row ranges of at most ``rows_per_unit`` (footers read for row counts)."""
    import pyarrow.parquet as pq

    units = []
    for path in parts:
        try:
            rows = pq.read_metadata(path).num_rows
        except (OSError, ValueError):  # not a local file: one unit, read whole
            units.append((path, 0, -1))
            continue
        for offset in range(0, rows, rows_per_unit):
            units.append((path, offset, min(rows_per_unit, rows - offset)))
    return units


def pack_units(units: Sequence[tuple[str, int, int]], bins: int) -> list[list[tuple[str, int, int]]]:
    """Units into ``bins`` bins of about equal rows (largest first into the lightest bin)."""
    heap = [(0, i) for i in range(max(1, bins))]
    out: list[list[tuple[str, int, int]]] = [[] for _ in heap]
    for unit in sorted(units, key=lambda u: -(u[2] if u[2] >= 0 else MAX_UNIT_ROWS)):
        rows, index = heapq.heappop(heap)
        out[index].append(unit)
        heapq.heappush(heap, (rows + (unit[2] if unit[2] >= 0 else MAX_UNIT_ROWS), index))
    return [b for b in out if b]


def hunt_parts(spark: SparkSession, parts: Sequence[str], rules: Sequence[CompiledRule],
               rows_per_unit: int | None = None, shipped: tuple[str, Any] | None = None,
               event_filter: TimeFilter | None = None) -> DataFrame:
    """The hits DataFrame (:data:`HITS_DDL`) of ``rules`` over a store's Parquet parts, lazily.

    The driver only reads the parts' footers and deals the work units (part, row range)
    into about three bins per core; the executors read the units. Units are small enough
    to keep every core busy (a few large parts would otherwise leave cores idle) and large
    enough for the evaluator to amortise a batch's fixed costs. The bins are numbered
    rows of ``spark.range``: no Python is needed to build the input of the job.
    """
    parallelism = max(1, spark.sparkContext.defaultParallelism)
    if rows_per_unit is None:
        configured = spark.conf.get(ROWS_PER_UNIT_CONF, None)
        if configured:
            rows_per_unit = int(configured)
    if rows_per_unit is None:
        whole = work_units(parts, 1 << 62)
        total = sum(u[2] if u[2] >= 0 else MAX_UNIT_ROWS for u in whole)
        rows_per_unit = min(MAX_UNIT_ROWS, max(MIN_UNIT_ROWS, -(-total // (parallelism * 3))))
    bins = pack_units(work_units(parts, rows_per_unit), parallelism * 3)
    key, broadcast = shipped or broadcast_rules(spark, rules)
    work = orjson.dumps({"rows": rows_per_unit, "bins": bins, "filter": _filter_json(event_filter)})
    body = functools.partial(hunt_parts_partition, key, broadcast, work)
    with _quiet_pyspark():
        return spark.range(0, len(bins), 1, len(bins)).mapInArrow(body, HITS_DDL)


def _records(
    hits: pa.Table, rules: Sequence[CompiledRule], only: set[int] | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Detection records (built as the embedded engine builds them) and the events read."""
    records: list[dict[str, Any]] = []
    events = 0
    data = hits.to_pydict()
    for i, indices in enumerate(data["rules"]):
        if indices is None:
            events += int(data["events"][i] or 0)
            continue
        provenance = {name: data[name][i] for name in PROVENANCE_FIELDS}
        fields = orjson.loads(data["event"][i])
        for rule_index in indices:
            if only is None or rule_index in only:
                detection = Detection(rule=rules[rule_index].meta, event=dict(fields), **provenance)
                records.append(detection.to_record())
    return records, events


def _rule_keys(rules: Sequence[CompiledRule]) -> list[str]:
    from sigmahunt.correlation import rule_key

    return [rule_key(r.meta.rule_id, r.meta.path, r.meta.title) for r in rules]


def _collect(hits: DataFrame, rules: Sequence[CompiledRule], plan: Any) -> tuple[list[dict[str, Any]], int]:
    """Every detection on the driver; correlations applied as :func:`sigmahunt.run_hunt` does."""
    with _quiet_pyspark():
        table = hits.toArrow()
    records, events = _records(table, rules)
    if plan:
        from sigmahunt.correlation import apply_plan

        records = apply_plan(plan, records)
    return records, events


def _write(
    hits: DataFrame, rules: Sequence[CompiledRule], plan: Any, path: str
) -> tuple[list[dict[str, Any]], int, dict[str, int]]:
    """Detections written as Parquet by the executors (the ``--format parquet`` columns and types).

    Returns the correlation matches (collected: the base rules' detections they need come
    to the driver, correlations are few), the events read and the written detections per
    level. Detections of ``generate: false`` rules are not written, as they are not output.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    spark = hits.sparkSession
    keys = _rule_keys(rules) if plan else []
    suppressed = plan.suppressed if plan else set()
    kept = [i for i, r in enumerate(rules) if not plan or keys[i] not in suppressed]
    meta = spark.createDataFrame(
        [(i, r.meta.rule_id, r.meta.title, r.meta.level, r.meta.status, list(r.meta.tags), r.meta.techniques,
          r.meta.tactics, r.meta.path) for i, r in ((i, rules[i]) for i in kept)],
        "rule_index int, rule_id string, rule_title string, level string, status string, tags array<string>, "
        "techniques array<string>, tactics array<string>, rule_path string",
    )
    hits = hits.persist(StorageLevel.MEMORY_AND_DISK)  # read three times below, computed once
    try:
        exploded = (hits.where(F.col("rules").isNotNull())
                    .select(F.explode("rules").alias("rule_index"), *PROVENANCE_FIELDS, "event"))
        # The columns and types of ``--format parquet`` (results.render): tag lists joined with
        # ';', the event as JSON with sorted keys, a UTC timestamp, numeric ids.
        detections = (exploded.join(F.broadcast(meta), "rule_index")
                      .select("rule_id", "rule_title", "level", "status",
                              *(F.array_join(name, ";").alias(name) for name in ("tags", "techniques", "tactics")),
                              F.expr("try_cast(timestamp as timestamp)").alias("timestamp"), "computer", "channel",
                              F.expr("try_cast(event_id as bigint)").alias("event_id"), "source",
                              F.expr("try_cast(record_id as bigint)").alias("record_id"), "position",
                              "rule_path", "event"))
        previous = spark.conf.get(TIMESTAMP_CONF, None)
        spark.conf.set(TIMESTAMP_CONF, "TIMESTAMP_MICROS")  # UTC-adjusted (INT96 would read back naive)
        try:
            detections.write.mode("overwrite").parquet(path)
        finally:
            if previous is None:
                spark.conf.unset(TIMESTAMP_CONF)
            else:
                spark.conf.set(TIMESTAMP_CONF, previous)
        events = hits.where(F.col("rules").isNull()).agg(F.sum("events")).collect()[0][0] or 0
        per_rule = exploded.groupBy("rule_index").count().collect()
        kept_set = set(kept)
        levels: dict[str, int] = defaultdict(int)
        for row in per_rule:
            if row["rule_index"] in kept_set:
                levels[rules[row["rule_index"]].meta.level] += int(row["count"])
        matches: list[dict[str, Any]] = []
        if plan and plan.correlations:
            from sigmahunt.correlation import correlate, record_key

            base = [i for i, key in enumerate(keys) if key in plan.base_keys]
            wanted = hits.where(F.arrays_overlap("rules", F.array(*[F.lit(i) for i in base]))) if base else None
            with _quiet_pyspark():
                base_records = _records(wanted.toArrow(), rules, set(base))[0] if wanted is not None else []
            matches = [m for m in correlate(plan, base_records) if record_key(m) not in suppressed]
    finally:
        hits.unpersist()
    return matches, int(events), dict(levels)


def _stage_logs(
    logs: Sequence[str | Path], store: str | Path | None, staging: Path | None, summary: HuntSummary,
    format_in: str | None, progress: Progress,
) -> list[str]:
    """Read ``logs`` on the driver as :func:`sigmahunt.run_hunt` does; the Parquet parts to hunt.

    The embedded hunt's own reading loop fills the summary (unreadable records, missing
    files) so both engines report the same. Without a store, its batches are written to
    ``staging``; with one, the logs' parts in the store are hunted.
    """
    if store is None:
        assert staging is not None
        parts: list[str] = []
        with EventStore(None) as temporary:
            for frame in _hunted_batches(logs, temporary, summary, format_in, progress):
                path = staging / f"part-{len(parts):05d}.parquet"
                frame.write_parquet(path, compression="zstd", compression_level=1)
                parts.append(str(path.resolve()))
                progress.on_events(frame.height)
        return parts
    with EventStore(store) as event_store:
        for frame in _hunted_batches(logs, event_store, summary, format_in, progress):
            progress.on_events(frame.height)
        selected = dict.fromkeys(str(p) for p in expand_log_paths(logs))
        return _store_parts(event_store, [s for s in selected if s in event_store.sources])


def _store_parts(store: EventStore, sources: Sequence[str]) -> list[str]:
    return [str((store.root / PARTS / part).resolve()) for source in sources for part in store.sources[source].parts]


def run_spark_hunt(
    logs: Sequence[str | Path] = (),
    rules: Sequence[str | Path] = (),
    *,
    table: str | None = None,
    store: str | Path | None = None,
    spark: SparkSession | None = None,
    master: str = DEFAULT_MASTER,
    conf: Mapping[str, str] | None = None,
    results_path: str | None = None,
    placeholders: Mapping[str, Any] | None = None,
    selection: RuleSelection | None = None,
    format_in: str | None = None,
    cache_dir: Path | None | bool = None,
    progress: Progress | None = None,
    prepared: PreparedRules | None = None,
    filters: Sequence[str | Path] = (),
    reader: str | None = None,
    event_filter: TimeFilter | None = None,
) -> HuntResult:
    """:func:`sigmahunt.run_hunt` on Spark: same records, same summary.

    Events come from ``table`` (a store folder, Parquet/JSON path or table name), else from
    ``logs`` (ingested into ``store`` or a temporary store), else from the whole ``store``.
    ``spark`` reuses a session (left running); otherwise one is created for ``master`` and
    stopped at the end. With ``results_path`` the detections are written there as Parquet
    by the executors and ``records`` holds only correlation matches, if any (the summary
    counts both). Correlation rules run on the driver over the detections, as in ``run_hunt``.
    ``reader`` says how a store is read: ``parts`` (default; the executors read its Parquet
    parts with Polars) or ``dataframe`` (Spark reads them, merged schema); also settable
    as the Spark setting ``spark.sigmahunt.reader``. ``event_filter`` (a
    :class:`sigmahunt.timefilter.TimeFilter`: ``--since/--until/--computer``) applies on
    the executors before matching, as in ``run_hunt``; it travels as JSON.
    """
    started = time.perf_counter()
    progress = progress or Progress()
    if prepared is None:
        extra = {"filters": filters} if filters else {}
        prepared = prepare_rules(rules, placeholders, cache_dir, selection, **extra)
    runnable = prepared.runnable
    summary = start_summary(prepared)
    if table is None and not logs and store is None:
        raise NothingToHunt("no logs given: pass logs, --store DIR or --table NAME")
    progress.on_rules(len(runnable))
    plan = getattr(prepared, "correlation_plan", None)  # correlations: over the detections, on the driver
    scratch = None
    session = None
    shipped = None
    owned = False
    settings = dict(conf or {})
    try:
        parts: list[str] = []
        if table is not None and is_store(table) and not logs:
            store, table = table, None  # a store folder as --table: hunted like --store DIR
        if table is None and logs:
            if store is None:
                staging_root = settings.get(STAGING_CONF) or (spark.conf.get(STAGING_CONF, None) if spark else None)
                if staging_root:
                    Path(staging_root).mkdir(parents=True, exist_ok=True)
                scratch = Path(tempfile.mkdtemp(prefix="sigmahunt-spark-", dir=staging_root or None))
            parts = _stage_logs(logs, store, scratch, summary, format_in, progress)
        elif table is None:
            with EventStore(store) as event_store:
                selected = sorted(event_store.sources)
                for source_path in selected:
                    _count_unreadable(summary, event_store.sources[source_path].unreadable)
                parts = _store_parts(event_store, selected)
        records: list[dict[str, Any]] = []
        if table is not None or parts:
            session = spark
            if session is None:
                from pyspark.sql import SparkSession

                owned = SparkSession.getActiveSession() is None
                session = spark_session(master, conf)
            mode = reader or session.conf.get(READER_CONF, None) or "parts"
            if mode not in ("parts", "dataframe"):
                raise NothingToHunt(f"{READER_CONF} must be 'parts' or 'dataframe', not {mode!r}")
            shipped = broadcast_rules(session, runnable)
            if table is not None:
                hits = hunt_frame(load_table(session, table), runnable, shipped, event_filter)
            elif mode == "parts":
                hits = hunt_parts(session, parts, runnable, shipped=shipped, event_filter=event_filter)
            else:
                hits = hunt_frame(read_parts(session, parts), runnable, shipped, event_filter)
            if results_path:
                records, summary.events_read, written = _write(hits, runnable, plan, results_path)
                summary.detections = sum(written.values()) + len(records)
                levels = Counter(written) + Counter(level_counts(records))
                summary.detections_by_level = {lvl: levels[lvl] for lvl in LEVELS if levels.get(lvl)}
            else:
                records, summary.events_read = _collect(hits, runnable, plan)
                summary.detections = len(records)
                summary.detections_by_level = level_counts(records)
            if not logs:  # staged logs were counted as they were read
                progress.on_events(summary.events_read)
    finally:
        if shipped is not None and not owned:
            shipped[1].destroy()  # a long-lived session keeps no rule set it no longer needs
        if session is not None and owned:
            session.stop()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    if summary.events_read == 0 and summary.unreadable:
        raise NothingToHunt("no readable log: " + "; ".join(
            f"{u.source} ({u.position}): {u.reason}" for u in summary.unreadable[:5]))
    summary.unreadable.sort(key=lambda u: (u.source, _natural(u.position)))  # as run_hunt orders them
    summary.seconds = time.perf_counter() - started
    return HuntResult(records, summary, prepared)


def _natural(position: str) -> tuple[str, int]:
    """``line 10`` after ``line 9`` (run_hunt's order of unreadable records)."""
    natural = getattr(hunting, "_natural", None)
    if natural is not None:
        return natural(position)  # type: ignore[no-any-return]
    head, _, number = position.rpartition(" ")
    return (head, int(number)) if number.isdigit() else (position, -1)


# -- the command line (``sigmahunt hunt --engine spark``) ----------------------------------

def add_hunt_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("spark engine (--engine spark; pip install 'sigmahunt[spark]')")
    group.add_argument("--master", default=DEFAULT_MASTER,
                       help=f"Spark master URL (default {DEFAULT_MASTER}; e.g. spark://host:7077, yarn)")
    group.add_argument("--table", help="events to hunt: a Spark table name, a Parquet or JSON path, or a "
                                       "sigmahunt store folder (instead of LOGS)")
    group.add_argument("--spark-conf", action="append", default=[], metavar="KEY=VALUE",
                       help="a Spark setting (repeatable), e.g. spark.executor.memory=4g")
    group.add_argument("--results-path", help="write detections as Parquet here from the executors "
                                              "instead of collecting them (large results)")


def run_engine(args: argparse.Namespace, prepared: PreparedRules, progress: Progress) -> HuntResult:
    try:
        import pyspark  # noqa: F401
    except ImportError as error:
        raise NothingToHunt("the spark engine needs pyspark: pip install 'sigmahunt[spark]'") from error
    if args.table and args.logs:
        raise NothingToHunt("pass either LOGS or --table, not both")
    try:
        conf = parse_conf(args.spark_conf)
    except ValueError as error:
        raise NothingToHunt(str(error)) from error
    try:
        from sigmahunt.timefilter import from_args

        event_filter = from_args(args)
    except ImportError:  # pragma: no cover - a sigmahunt without time filters
        event_filter = None
    except ValueError as error:
        raise NothingToHunt(str(error)) from error
    return run_spark_hunt(
        args.logs,
        event_filter=event_filter,
        table=args.table,
        store=args.store,
        master=args.master,
        conf=conf,
        results_path=args.results_path,
        format_in=args.format_in,
        progress=progress,
        prepared=prepared,
    )


__all__ = ["add_hunt_options", "broadcast_rules", "hunt_frame", "hunt_parts", "run_engine", "run_spark_hunt",
           "spark_session"]
