"""``sigmahunt timeline``: detections (and, with ``--all-events``, every event) in time order,
as CSV or JSONL that Timesketch imports as it is.

Columns (Timesketch's required three first): ``datetime`` (ISO 8601, ``+00:00``),
``timestamp`` (microseconds since the epoch), ``timestamp_desc``, ``message``, then
``level``, ``rule_title``, ``rule_id``, ``tags``, ``techniques``, ``tactics``, ``computer``,
``channel``, ``event_id``, ``record_id``, ``source``, ``position``, ``detections`` (how many
rules matched the row's event), ``correlation_type`` and the event: in CSV one ``event``
column of JSON; in JSONL the event's fields as top-level attributes (a field named like a
column above is written as ``event_<name>``). Lists are ``;``-joined in CSV.

Rows: without ``--all-events``, one per detection (a correlation is one row at its last
event's time). With it, one row per event: an event that rules matched carries their
titles and tags (``;``-joined) and its highest level; correlations stay rows of their own.
A row without a timestamp gets the epoch (``1970-01-01T00:00:00+00:00``, Timesketch needs a
time) and ``timestamp_desc`` "Time unknown"; such rows sort first.

Order and memory (``--all-events``): events arrive in batches (per file, and a file's events
are usually but not always in time order; files overlap in time). Each run of about
``run_rows`` events is sorted in memory and written to a temporary Parquet file; the runs are
then merged (k-way, a few thousand rows of each in memory at a time), so the whole event set
is never held in memory. Detections are joined to events by (source, position); they are few
next to the events and are held in memory (the hunt holds them anyway). Ties in time order
by source then position, so the output is deterministic.
"""

from __future__ import annotations

import argparse
import csv
import heapq
import io
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson
import polars as pl

from sigmahunt.report.common import as_list, clean, detections_frame, iso_utc, iter_rows, key_field, level_rank

COLUMNS = (
    "datetime", "timestamp", "timestamp_desc", "message", "level", "rule_title", "rule_id", "tags",
    "techniques", "tactics", "computer", "channel", "event_id", "record_id", "source", "position",
    "detections", "correlation_type",
)
CSV_COLUMNS = (*COLUMNS, "event")
FORMATS = ("csv", "jsonl")
EPOCH = "1970-01-01T00:00:00+00:00"
EVENT_TIME = "Event Time"
CORRELATION_TIME = "Correlation Window End"
NO_TIME = "Time unknown"
#: Events sorted in memory per run of the external sort.
RUN_ROWS = 50_000
#: Rows read from each run at a time while merging (fewer when there are many runs) ...
MERGE_CHUNK = 4_096
#: ... so that about this many rows are in memory across all runs.
MERGE_BUDGET = 200_000
_POSITION_NUMBER = re.compile(r"(\d+)\s*$")

#: Event metadata columns of an ingest batch that are not event fields.
_METADATA = ("_source", "_position", "_timestamp")


# -- rows ----------------------------------------------------------------------------------------

def _time_columns(iso: str | None) -> tuple[str, int, str]:
    """(datetime, timestamp in µs, timestamp_desc) from the ingest's ISO text."""
    if not iso:
        return EPOCH, 0, NO_TIME
    try:
        moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return EPOCH, 0, NO_TIME
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    micros = int(moment.timestamp()) * 1_000_000 + moment.microsecond
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00"), micros, EVENT_TIME


def _position_number(position: Any) -> int:
    match = _POSITION_NUMBER.search(str(position or ""))
    return int(match.group(1)) if match else 0


def _detection_message(level: str, title: str, computer: str, channel: str, event_id: str, key: str,
                       correlation: str | None) -> str:
    where = " ".join(p for p in (channel, f"EventID {event_id}" if event_id else "") if p)
    parts = [f"[{level}] {title}" + (f" ({correlation} correlation)" if correlation else "")]
    parts.extend(p for p in (computer, where, key) if p)
    return " | ".join(parts)


def _event_message(event: dict[str, Any], computer: str, channel: str, event_id: str) -> str:
    head = " ".join(p for p in (channel, f"EventID {event_id}" if event_id else "") if p) or "event"
    key = key_field(event)
    if not key:
        skip = {"Channel", "EventID", "Computer", "EventRecordID", "TimeCreated", "Provider_Name",
                "Provider_Guid", "Version", "Level", "Task", "Opcode", "Keywords", "Execution_ProcessID",
                "Execution_ThreadID", "Security_UserID", "Hostname"}
        fields = [f"{k}={v}" for k, v in event.items() if k not in skip and v not in (None, "")][:4]
        key = " ".join(fields)
    return f"{head} on {computer or '(no computer)'}" + (f": {key}" if key else "")


def _text(value: Any) -> str:
    value = clean(value)
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def detection_row(record: dict[str, Any]) -> dict[str, Any]:
    """One timeline row for one detection record (a row of the detections DataFrame)."""
    ts = record.get("timestamp")
    iso = iso_utc(ts) if not isinstance(ts, str) else ts
    dt, micros, desc = _time_columns(iso)
    correlation = record.get("correlation_type") or None
    if correlation and desc == EVENT_TIME:
        desc = CORRELATION_TIME
    event = clean(record.get("event")) or {}
    level = _text(record.get("level"))
    title = _text(record.get("rule_title"))
    computer, channel, event_id = _text(record.get("computer")), _text(record.get("channel")), _text(
        record.get("event_id"))
    return {
        "datetime": dt, "timestamp": micros, "timestamp_desc": desc,
        "message": _detection_message(level, title, computer, channel, event_id, key_field(event),
                                      str(correlation) if correlation else None),
        "level": level, "rule_title": title, "rule_id": _text(record.get("rule_id")),
        "tags": [str(t) for t in as_list(record.get("tags"))],
        "techniques": [str(t) for t in as_list(record.get("techniques"))],
        "tactics": [str(t) for t in as_list(record.get("tactics"))],
        "computer": computer, "channel": channel, "event_id": event_id,
        "record_id": _text(record.get("record_id")), "source": _text(record.get("source")),
        "position": _text(record.get("position")), "detections": 1,
        "correlation_type": str(correlation) if correlation else "",
        "event": event,
        "_key": (iso or "", -level_rank(level), title, _text(record.get("source")),
                 _position_number(record.get("position"))),
    }


def _merge_detections(base: dict[str, Any], detections: list[dict[str, Any]]) -> dict[str, Any]:
    """An event row carrying the rules that matched it."""
    ordered = sorted(detections, key=lambda r: (-level_rank(r["level"]), r["rule_title"], r["rule_id"]))
    worst = ordered[0]
    base["level"] = worst["level"]
    base["rule_title"] = ";".join(r["rule_title"] for r in ordered)
    base["rule_id"] = ";".join(r["rule_id"] for r in ordered)
    for column in ("tags", "techniques", "tactics"):
        seen: list[str] = []
        for r in ordered:
            seen.extend(t for t in r[column] if t not in seen)
        base[column] = seen
    base["detections"] = len(ordered)
    titles = ", ".join(r["rule_title"] for r in ordered[:3]) + (f" +{len(ordered) - 3}" if len(ordered) > 3 else "")
    base["message"] = f"[{worst['level']}] {titles} | {base['message']}"
    return base


def timeline_rows(source: Any, *, events: Iterable[pl.DataFrame] | None = None,
                  spool_dir: str | Path | None = None, run_rows: int = RUN_ROWS) -> Iterator[dict[str, Any]]:
    """Timeline rows in time order for a HuntResult / detections DataFrame / records.

    ``events``: ingest batches of every event hunted (``--all-events``); each row's
    ``event`` is then the event's fields. Rows are dicts with :data:`COLUMNS` and ``event``.
    """
    frame = detections_frame(source)
    detections = [detection_row(r) for r in iter_rows(frame)]
    if events is None:
        detections.sort(key=lambda r: r["_key"])
        for row in detections:
            row.pop("_key", None)
            yield row
        return
    by_event: dict[tuple[str, str], list[dict[str, Any]]] = {}
    extra: list[dict[str, Any]] = []
    for row in detections:
        if row["correlation_type"]:
            extra.append(row)
        else:
            by_event.setdefault((row["source"], row["position"]), []).append(row)
    extra.sort(key=lambda r: r["_key"])
    with _spool(spool_dir) as folder:
        runs = _write_runs(events, folder, run_rows)
        chunk = _merge_chunk(len(runs))
        streams: list[Iterator[tuple[tuple[Any, ...], bool, dict[str, Any]]]] = [
            _run_rows(path, i, chunk) for i, path in enumerate(runs)]
        streams.append(((r["_key"][0], r["source"], _position_number(r["position"]), len(runs), n), True, r)
                       for n, r in enumerate(extra))
        for _, is_correlation, item in heapq.merge(*streams, key=lambda entry: entry[0]):
            if is_correlation:
                item.pop("_key", None)
                yield item
                continue
            row = _event_row(item)
            matched = by_event.get((row["source"], row["position"]))
            if matched:
                _merge_detections(row, matched)
            yield row


@contextmanager
def _spool(folder: str | Path | None) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="sigmahunt-timeline-", dir=folder))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _write_runs(events: Iterable[pl.DataFrame], folder: Path, run_rows: int) -> list[Path]:
    """Sorted runs of about ``run_rows`` events, each a narrow Parquet file: the sort key, the
    few fields a row's columns need, and the event's non-null fields as one JSON text (so the
    merge never holds wide, sparse rows)."""
    runs: list[Path] = []
    pending: list[pl.DataFrame] = []
    count = 0

    def flush() -> None:
        nonlocal pending, count
        if not pending:
            return
        frame = pl.concat(pending, how="diagonal_relaxed") if len(pending) > 1 else pending[0]
        pending, count = [], 0
        for column in _METADATA:
            if column not in frame.columns:
                frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(column))
        frame = frame.with_columns(
            pl.col("_timestamp").fill_null("").alias("__ts"),
            pl.col("_source").fill_null("").alias("__src"),
            pl.col("_position").fill_null("").str.extract(r"(\d+)\s*$", 1).cast(pl.Int64, strict=False)
            .fill_null(0).alias("__pos"),
        ).sort(["__ts", "__src", "__pos"], maintain_order=True)
        fields = [c for c in frame.columns if not c.startswith("_")]
        documents = [orjson.dumps({k: v for k, v in zip(fields, values) if v is not None}).decode("utf-8")
                     for values in frame.select(fields).iter_rows()] if fields else ["{}"] * frame.height
        narrow = frame.select("__ts", "__src", "__pos", *_METADATA).with_columns(
            pl.Series("__event", documents, dtype=pl.String))
        path = folder / f"run-{len(runs):05d}.parquet"
        narrow.write_parquet(path, compression="zstd", compression_level=1, row_group_size=MERGE_CHUNK * 4)
        runs.append(path)

    for batch in events:
        if batch.height == 0:
            continue
        pending.append(batch)
        count += batch.height
        if count >= run_rows:
            flush()
    flush()
    return runs


def _run_rows(path: Path, index: int, chunk: int = MERGE_CHUNK) -> Iterator[
        tuple[tuple[Any, ...], bool, dict[str, Any]]]:
    import pyarrow.parquet as pq

    n = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk):
        for item in batch.to_pylist():
            yield (item["__ts"], item["__src"], item["__pos"], index, n), False, item
            n += 1


def _merge_chunk(runs: int) -> int:
    """Rows read from each run at a time: bounded in all (about MERGE_BUDGET rows in memory)."""
    return max(64, min(MERGE_CHUNK, MERGE_BUDGET // max(1, runs)))


def _event_row(item: dict[str, Any]) -> dict[str, Any]:
    event = orjson.loads(item["__event"])
    dt, micros, desc = _time_columns(item.get("_timestamp"))
    computer = str(event.get("Computer") or "")
    channel = str(event.get("Channel") or "")
    event_id = str(event.get("EventID") or "")
    return {
        "datetime": dt, "timestamp": micros, "timestamp_desc": desc,
        "message": _event_message(event, computer, channel, event_id),
        "level": "", "rule_title": "", "rule_id": "", "tags": [], "techniques": [], "tactics": [],
        "computer": computer, "channel": channel, "event_id": event_id,
        "record_id": str(event.get("EventRecordID") or ""), "source": str(item.get("_source") or ""),
        "position": str(item.get("_position") or ""), "detections": 0, "correlation_type": "",
        "event": event, "_event_json": item["__event"],
    }


# -- writing -------------------------------------------------------------------------------------

def write_rows(rows: Iterable[dict[str, Any]], out: IO[bytes], fmt: str = "csv") -> int:
    """Write timeline rows as CSV or JSONL to a binary stream; returns the row count."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown timeline format {fmt!r} (csv or jsonl)")
    count = 0
    if fmt == "csv":
        text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            event = row.get("_event_json") or orjson.dumps(row.get("event") or {}).decode("utf-8")
            writer.writerow([_csv_value(row.get(c)) for c in COLUMNS] + [event])
            count += 1
        text.flush()
        text.detach()
        return count
    for row in rows:
        out.write(orjson.dumps(_jsonl_row(row), default=str) + b"\n")
        count += 1
    return count


def _csv_value(value: Any) -> Any:
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    return "" if value is None else value


def _jsonl_row(row: dict[str, Any]) -> dict[str, Any]:
    out = {c: row.get(c) for c in COLUMNS}
    for key, value in (row.get("event") or {}).items():
        name = f"event_{key}" if key in out else key
        out[name] = value
    return out


def write_timeline(source: Any, target: str | Path | IO[bytes] | None = None, fmt: str = "csv", *,
                   events: Iterable[pl.DataFrame] | None = None, spool_dir: str | Path | None = None) -> int:
    """Write the timeline to a path (atomically: a temporary file renamed at the end), a binary
    stream, or stdout (``None`` / ``"-"``). Returns the number of rows written."""
    rows = timeline_rows(source, events=events, spool_dir=spool_dir)
    if target is None or target == "-":
        count = write_rows(rows, sys.stdout.buffer, fmt)
        sys.stdout.buffer.flush()
        return count
    if not isinstance(target, (str, Path)):
        return write_rows(rows, target, fmt)
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            count = write_rows(rows, handle, fmt)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


def timeline_frame(source: Any) -> Any:
    """The detections timeline as a pandas DataFrame (the Python API's form of the CSV)."""
    import pandas as pd

    rows = list(timeline_rows(source))
    return pd.DataFrame(rows, columns=list(CSV_COLUMNS))


# -- command line --------------------------------------------------------------------------------

DESCRIPTION = """\
Hunt, then write detections in time order as CSV or JSONL that Timesketch imports
(columns message, datetime, timestamp_desc, timestamp, then rule, level, computer, channel,
event_id, tags, source...). With --all-events every event is written, each carrying the rules
that matched it; events are sorted with a bounded-memory external sort."""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """The ``timeline`` subcommand (registered through ``sigmahunt.cli.COMMAND_MODULES``)."""
    from sigmahunt.report.cli_common import add_hunt_options, handle_usage

    parser = subparsers.add_parser("timeline", help="detections (or every event) in time order, for Timesketch",
                                   description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("logs", nargs="*", help="log files or folders")
    add_hunt_options(parser)
    parser.add_argument("--all-events", action="store_true",
                        help="write every event, not only detections (each with the rules that matched it)")
    parser.add_argument("--format", choices=FORMATS, default="csv", help="csv (default) or jsonl")
    parser.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of stdout")
    parser.set_defaults(handler=handle_usage(cmd_timeline))
    return parser


def cmd_timeline(args: argparse.Namespace, err: Any) -> int:
    from sigmahunt.report.cli_common import hunt_from_args, stored_events

    with hunt_from_args(args, err, keep_events=args.all_events) as (result, store_root, time_filter):
        events = stored_events(store_root, args.logs, time_filter) if args.all_events else None
        with _status(err, args, "writing the timeline"):
            try:
                count = write_timeline(result, args.output, args.format, events=events)
            except BrokenPipeError:  # the reader went away (`| head`): stop quietly
                from sigmahunt.report.cli_common import silence_stdout

                silence_stdout()
                return 0
    if not args.quiet:
        what = "events" if args.all_events else "detections"
        err.print(f"timeline: {count:,} rows ({what}{', with detections' if args.all_events else ''})"
                  + (f" written to {args.output}" if args.output else ""))
    return 0


@contextmanager
def _status(err: Any, args: argparse.Namespace, text: str) -> Iterator[None]:
    if getattr(args, "quiet", False) or not getattr(err, "is_terminal", False):
        yield
        return
    with err.status(text):
        yield
