"""The hunt: rules + logs -> detections, on the embedded engine.

Flow: rules are prepared (loaded, compiled, cached); each log file is read into
normalised columnar batches (:mod:`sigmahunt.ingest`), kept in the event store and
evaluated as it streams, so memory is bounded by one batch. A persistent store that
already holds a file with the same content is not re-parsed: its stored events are hunted.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from sigmahunt.engines.embedded.evaluator import BatchEvaluator
from sigmahunt.engines.embedded.ir import CompiledRule
from sigmahunt.ingest import (
    RAW_COL,
    EventBatch,
    LogFile,
    Projection,
    Unreadable,
    complete_records,
    iter_files,
    read_logs,
)
from sigmahunt.ingest.sources import file_size
from sigmahunt.parallel import HuntState, WorkerResult, hunt_in_workers, should_parallelise, worker_count
from sigmahunt.results import Detection, HuntSummary, level_counts, to_dataframe
from sigmahunt.results import Unreadable as UnreadableRecord
from sigmahunt.rules.prepare import PreparedRules, RuleSelection, prepare_rules
from sigmahunt.store import EventStore, file_digest

#: Provenance columns of a stored event and the detection fields they fill.
PROVENANCE = {
    "_timestamp": "timestamp",
    "Computer": "computer",
    "Channel": "channel",
    "EventID": "event_id",
    "_source": "source",
    "EventRecordID": "record_id",
    "_position": "position",
}


class NothingToHunt(Exception):
    """No rule or no readable log: the hunt cannot run (CLI exits non-zero)."""


@dataclass
class Progress:
    """Callbacks the CLI uses for progress bars; all optional."""

    on_rules: Callable[[int], None] = lambda n: None
    on_file: Callable[[str], None] = lambda path: None
    on_events: Callable[[int], None] = lambda n: None
    total_bytes: Callable[[int], None] = lambda n: None
    on_bytes: Callable[[int], None] = lambda n: None


@dataclass
class HuntResult:
    """Everything a hunt produced; ``dataframe`` is the source of every output."""

    records: list[dict[str, Any]]
    summary: HuntSummary
    rules: PreparedRules
    _frame: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def dataframe(self) -> pd.DataFrame:
        if self._frame is None:
            self._frame = to_dataframe(self.records)
        return self._frame


def log_files(paths: Iterable[str | Path]) -> tuple[list[LogFile], list[Unreadable]]:
    """The files a hunt reads under ``paths``, and the reports of the paths it cannot (no
    such file or folder; not a regular file).

    Folders are walked as the ingest walks them (:func:`sigmahunt.ingest.iter_files`: sorted;
    hidden folders, metadata and non-log files left out; a file found there that is not a
    log skipped silently when read), so a hunt that hands its files on in parts (worker
    processes, the event store) reads exactly what ``read_logs`` of the folder reads.
    """
    files: list[LogFile] = []
    problems: list[Unreadable] = []
    for entry in iter_files(list(paths)):
        if isinstance(entry, Unreadable):
            problems.append(entry)
        else:
            files.append(entry)
    return files, problems


def expand_log_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files named, and the files below named folders as a hunt reads them (see
    :func:`log_files`), in order; a path that does not exist is kept, for the caller to report."""
    return [Path(entry.source if isinstance(entry, Unreadable) else entry.path) for entry in iter_files(list(paths))]


class DetectionCollector:
    """Turns the evaluator's (rule, rows) hits on a batch into detection records."""

    def __init__(self, rules: Sequence[CompiledRule]) -> None:
        self.rules = rules
        self.records: list[dict[str, Any]] = []

    def collect(self, frame: pl.DataFrame, hits: Mapping[int, np.ndarray]) -> int:
        if not hits:
            return 0
        rows = np.unique(np.concatenate(list(hits.values())))
        events = _row_events(frame, rows)
        before = len(self.records)
        for rule_index in sorted(hits):
            meta = self.rules[rule_index].meta
            for row in hits[rule_index]:
                fields, provenance = events[int(row)]
                detection = Detection(rule=meta, event=fields, **provenance)
                self.records.append(detection.to_record())
        return len(self.records) - before


def _row_events(frame: pl.DataFrame, rows: np.ndarray) -> dict[int, tuple[dict[str, Any], dict[str, Any]]]:
    hit = frame[rows.tolist()]
    # Columns null on every hit row add nothing to a record (nulls are dropped) but cost a
    # dict entry per row: EVTX batches are wide and sparse (~110 columns, ~35 set a row).
    present = [column for column in hit.get_columns() if column.null_count() < hit.height]
    if present:
        hit = pl.DataFrame(present)
    if RAW_COL not in hit.columns:
        return dict(zip(rows.tolist(), _complete_row_events(hit), strict=True))
    records = complete_records(hit)  # every field, also of events read under a projection
    out = {}
    for row, record in zip(rows.tolist(), records):
        # Sorted keys: the same event gives byte-identical output whatever batch it was in.
        fields = {k: record[k] for k in sorted(record) if record[k] is not None and not k.startswith("_")}
        provenance = {target: record.get(column) for column, target in PROVENANCE.items()}
        out[row] = (fields, provenance)
    return out


def _complete_row_events(hit: pl.DataFrame) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """``_row_events``' records for rows whose columns hold every field (no raw line to
    re-read: EVTX, stores), built column by column with the names sorted once: a hunt with
    many detections (noisy rules, the packed EVTX benchmark's 141,724) spent most of its
    record time sorting and filtering a dict per row."""
    fields: list[dict[str, Any]] = [{} for _ in range(hit.height)]
    for name in sorted(n for n in hit.columns if not n.startswith("_")):
        for record, value in zip(fields, hit.get_column(name).to_list(), strict=True):
            if value is not None:
                record[name] = value
    provenance: list[dict[str, Any]] = [{} for _ in range(hit.height)]
    for column, target in PROVENANCE.items():
        values = hit.get_column(column).to_list() if column in hit.columns else [None] * hit.height
        for record, value in zip(provenance, values, strict=True):
            record[target] = value
    return list(zip(fields, provenance, strict=True))


def run_hunt(
    logs: Sequence[str | Path] = (),
    rules: Sequence[str | Path] = (),
    *,
    store: str | Path | None = None,
    placeholders: Mapping[str, Any] | None = None,
    selection: RuleSelection | None = None,
    format_in: str | None = None,
    cache_dir: Path | None | bool = None,
    progress: Progress | None = None,
    prepared: PreparedRules | None = None,
    filters: Sequence[str | Path] = (),
    event_filter: Callable[[pl.DataFrame], pl.DataFrame] | None = None,
    workers: int | None = 1,
) -> HuntResult:
    """Run every rule over every event; see :func:`sigmahunt.hunt` for the DataFrame API.

    ``filters``: Sigma filter files or folders applied to the rules they target.
    ``event_filter``: applied to each batch of events before matching, e.g. a
    :class:`sigmahunt.timefilter.TimeFilter` (``--since``/``--until``/``--computer``; it must
    pickle, for worker processes). Events count as read, and are stored, before it applies.
    ``workers``: processes to hunt in (``None``: one per two cores, as the CLI does). The Python
    default is 1 because worker processes are spawned, and spawning re-imports the caller's
    ``__main__``: a script must then guard its top level with ``if __name__ == "__main__":``.
    """
    started = time.perf_counter()
    progress = progress or Progress()
    prepared = prepared or prepare_rules(rules, placeholders, cache_dir, selection, filters=filters)
    runnable = prepared.runnable
    summary = start_summary(prepared)
    progress.on_rules(len(runnable))
    collector = DetectionCollector(runnable)
    with EventStore(store) as event_store, _rule_plan_frozen(prepared):
        walked = log_files(logs) if logs else None
        worker_total = worker_count(workers)
        sizes = _parallel_sizes(walked, worker_total) if event_store.temporary else None
        if walked is not None and sizes is not None:
            progress.total_bytes(sum(sizes))
            local = HuntState.of(runnable, BatchEvaluator(prepared.plan()))
            hunt_in_workers(walked[0], sizes, runnable, format_in,
                            lambda part: _merge(part, summary, collector, progress),
                            workers=worker_total, event_filter=event_filter, local=local)
        else:
            evaluator = BatchEvaluator(prepared.plan())
            evaluator.start_preparing()  # built while the first batch is read
            projection = hunt_projection(evaluator)
            for frame in _hunted_batches(logs, event_store, summary, format_in, progress, projection, walked):
                summary.events_read += frame.height
                progress.on_events(frame.height)
                if event_filter is not None:
                    frame = event_filter(frame)
                    if frame.height == 0:
                        continue
                summary.detections += collector.collect(frame, evaluator.evaluate(frame))
    if summary.events_read == 0 and summary.events_unreadable == 0 and not logs and store is None:
        raise NothingToHunt("no logs given")
    if summary.events_read == 0 and summary.unreadable:
        raise NothingToHunt("no readable log: " + "; ".join(
            f"{u.source} ({u.position}): {u.reason}" for u in summary.unreadable[:5]))
    summary.unreadable.sort(key=lambda u: (u.source, _natural(u.position)))
    records = collector.records
    if prepared.correlation_plan:  # correlations over the base detections; hides generate: false rules
        from sigmahunt.correlation import apply_plan

        records = apply_plan(prepared.correlation_plan, records)
        summary.detections = len(records)
    summary.detections_by_level = level_counts(records)
    summary.seconds = time.perf_counter() - started
    return HuntResult(records, summary, prepared)


@contextmanager
def _rule_plan_frozen(prepared: PreparedRules) -> Iterator[None]:
    """Keep the garbage collector off the rule plan while hunting.

    The compiled rule set is millions of long-lived objects; every full collection the
    hunt's allocations trigger would walk them all again (~10% of a hunt with many
    detections). ``gc.freeze`` moves what exists now out of the collector's sight;
    ``unfreeze`` gives it back afterwards, so a long-running caller loses nothing.

    Only the young generations are collected before freezing: a full collection walks the
    whole rule set (~270,000 tracked objects with SigmaHQ's Windows rules, ~0.14 s) on
    every hunt. Garbage already in the oldest generation is frozen with the rest and
    collected after the hunt, at the first full collection after ``unfreeze``.
    """
    prepared.plan()
    gc.collect(1)
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _natural(position: str) -> tuple[str, int]:
    head, _, number = position.rpartition(" ")
    return (head, int(number)) if number.isdigit() else (position, 0)


def _parallel_sizes(walked: tuple[list[LogFile], list[Unreadable]] | None, workers: int) -> list[int] | None:
    """The files' sizes when the hunt should run in worker processes, else None (one
    process; also when a path cannot be read: the sequential path reports it)."""
    if walked is None or walked[1] or workers < 2 or len(walked[0]) < 2:
        return None
    sizes = [file_size(file.path) for file in walked[0]]
    return sizes if should_parallelise(sizes, workers) else None


def _merge(part: WorkerResult, summary: HuntSummary, collector: DetectionCollector, progress: Progress) -> None:
    summary.events_read += part.events_read
    for item in part.unreadable:
        summary.unreadable.append(UnreadableRecord(item["source"], item["position"], item["reason"]))
        summary.events_unreadable += 1
    collector.records.extend(part.records)
    summary.detections += len(part.records)
    progress.on_events(part.events_read)
    progress.on_bytes(part.bytes_done)


def start_summary(prepared: PreparedRules) -> HuntSummary:
    """The summary's rule counts, for every engine; raises when no rule can run."""
    if not prepared.compiled:
        raise NothingToHunt("no usable rule was loaded" + _first_failures(prepared))
    return HuntSummary(
        rules_loaded=len(prepared.compiled),
        rules_failed=len(prepared.failures),
        rules_inapplicable=len(prepared.inapplicable),
        failed_rules=[f.to_dict() for f in prepared.failures],
    )


def _first_failures(prepared: PreparedRules) -> str:
    if not prepared.failures:
        return ""
    shown = "; ".join(f"{f.path}: {f.reason}" for f in prepared.failures[:3])
    return f" ({len(prepared.failures)} failed: {shown})"


def _hunted_batches(
    logs: Sequence[str | Path],
    store: EventStore,
    summary: HuntSummary,
    format_in: str | None,
    progress: Progress,
    projection: Projection | None = None,
    walked: tuple[list[LogFile], list[Unreadable]] | None = None,
) -> Iterator[pl.DataFrame]:
    """Batches of every log named (from the store when unchanged), or of the whole store.

    ``projection`` applies to a temporary store only: a persistent store keeps every field.
    ``walked``: :func:`log_files` of ``logs``, when the caller has it already.
    """
    if not logs:
        for source in sorted(store.sources.values(), key=lambda s: s.path):
            _count_unreadable(summary, source.unreadable)
        yield from coalesce(store.iter_batches())
        return
    files, problems = walked if walked is not None else log_files(logs)
    for problem in problems:
        _record_unreadable(summary, problem)
    progress.total_bytes(sum(file_size(file.path) for file in files))
    if store.temporary:
        # One reader over every file: it overlaps reading with hunting and packs small
        # files into full batches (per-batch costs are paid per batch, not per file).
        yield from _read_all(files, summary, format_in, progress, projection)
        return
    yield from coalesce(_per_file_batches(files, store, summary, format_in, progress))


def hunt_projection(evaluator: BatchEvaluator) -> Projection:
    """What a hunt reads of each event: the fields the rules test, and ``Computer`` for
    ``--computer`` (the ingest adds what it derives columns from); keyword literals are
    looked for in the raw lines as they are read."""
    return Projection.of([*evaluator.plan.fields_read(), "Computer"], evaluator.chunk_keyword_scanner)


def _read_all(files: list[LogFile], summary: HuntSummary, format_in: str | None,
              progress: Progress, projection: Projection | None = None) -> Iterator[pl.DataFrame]:
    for item in read_logs(files, format_in=format_in, batch_size=BATCH_ROWS, projection=projection):
        if isinstance(item, Unreadable):
            _record_unreadable(summary, item)
        elif item.frame.height:
            progress.on_bytes(0)
            yield item.frame


def _per_file_batches(files: list[LogFile], store: EventStore, summary: HuntSummary, format_in: str | None,
                      progress: Progress) -> Iterator[pl.DataFrame]:
    for file, digest in _hashed(files, summary, progress):
        if store.is_current(file.path, digest):
            _count_unreadable(summary, store.sources[file.path].unreadable)
            yield from store.iter_batches([file.path])
        else:
            yield from _ingest_file(file, digest, store, summary, format_in)
        progress.on_bytes(file_size(file.path))


def _hashed(files: list[LogFile], summary: HuntSummary, progress: Progress) -> Iterator[tuple[LogFile, str]]:
    """Each file with its content hash (the store's key), as progress reaches it; a file
    that cannot be hashed (it went after the walk, say) is reported and left out."""
    for file in files:
        progress.on_file(file.path)
        try:
            digest = file_digest(Path(file.path))
        except OSError as exc:
            _record_unreadable(summary, Unreadable(file.path, "file", f"cannot read file: {exc.strerror or exc}"))
            continue
        yield file, digest


#: Rows per evaluated batch: large enough that per-batch costs vanish, small enough for
#: memory. Over the Security-Datasets benchmark (bench/RESULTS.md) 8,000 rows ran as fast
#: as 32,000 and peaked at ~790 MB instead of ~1,090 MB (three reading stages keep batches
#: in flight, so the batch size sets the working set).
BATCH_ROWS = 8_000


def coalesce(frames: Iterable[pl.DataFrame], rows: int = BATCH_ROWS) -> Iterator[pl.DataFrame]:
    """Pack small frames (one per small file) into batches of about ``rows`` rows."""
    pending: list[pl.DataFrame] = []
    count = 0
    for frame in frames:
        pending.append(frame)
        count += frame.height
        if count >= rows:
            yield _concat(pending)
            pending, count = [], 0
    if pending:
        yield _concat(pending)


def _concat(frames: list[pl.DataFrame]) -> pl.DataFrame:
    if len(frames) == 1:
        return frames[0]
    return pl.concat(frames, how="diagonal").rechunk()


def _record_unreadable(summary: HuntSummary, item: Unreadable) -> None:
    summary.unreadable.append(UnreadableRecord(item.source, item.position, item.reason))
    summary.events_unreadable += 1


def _ingest_file(
    file: LogFile, digest: str, store: EventStore, summary: HuntSummary, format_in: str | None
) -> Iterator[pl.DataFrame]:
    writer = None if store.temporary else store.begin_source(file.path, digest)
    for item in read_logs([file], format_in=format_in, batch_size=BATCH_ROWS):
        if isinstance(item, Unreadable):
            _record_unreadable(summary, item)
            if writer:
                writer.add_unreadable(item.position, item.reason, item.source)
        elif isinstance(item, EventBatch) and item.frame.height:
            if writer:
                writer.add_batch(item.frame)
            yield item.frame
    if writer:
        writer.commit()


@dataclass
class IngestReport:
    """What ``sigmahunt ingest`` did to a store."""

    files_read: int = 0
    files_unchanged: int = 0
    events_stored: int = 0
    events_unreadable: int = 0
    unreadable: list[UnreadableRecord] = field(default_factory=list)


def ingest_into_store(logs: Sequence[str | Path], store: str | Path, format_in: str | None = None,
                      progress: Progress | None = None) -> IngestReport:
    """Add logs to a persistent store; a file already stored with the same content is skipped.

    Idempotent by construction: a source is keyed by path and content hash; a changed
    file replaces its earlier events; an interrupted run leaves the manifest as it was.
    """
    progress = progress or Progress()
    report = IngestReport()
    summary = HuntSummary()
    files, problems = log_files(logs)
    for problem in problems:
        _record_unreadable(summary, problem)
    with EventStore(store) as event_store:
        for file, digest in _hashed(files, summary, progress):
            if event_store.is_current(file.path, digest):
                report.files_unchanged += 1
                continue
            report.files_read += 1
            for frame in _ingest_file(file, digest, event_store, summary, format_in):
                report.events_stored += frame.height
                progress.on_events(frame.height)
    report.events_unreadable += summary.events_unreadable
    report.unreadable.extend(summary.unreadable)
    return report


def _count_unreadable(summary: HuntSummary, unreadable: list[dict[str, str]]) -> None:
    for item in unreadable:
        summary.unreadable.append(UnreadableRecord(item["source"], item["position"], item["reason"]))
        summary.events_unreadable += 1


def hunt(
    logs: str | Path | Sequence[str | Path] = (),
    rules: str | Path | Sequence[str | Path] = (),
    **options: Any,
) -> pd.DataFrame:
    """Hunt ``logs`` with ``rules``; returns one DataFrame row per (rule, matching event).

    Options are those of :func:`run_hunt` (``store``, ``placeholders``, ``selection``...).
    The run summary is attached as ``frame.attrs["summary"]``.
    """
    result = run_hunt(_as_list(logs), _as_list(rules), **options)
    frame = result.dataframe
    frame.attrs["summary"] = result.summary.to_dict()
    return frame


def _as_list(value: str | Path | Sequence[str | Path]) -> list[str | Path]:
    if isinstance(value, (str, Path)):
        return [value]
    return list(value)
