"""Spark (local mode) vs the embedded engine on a realistic corpus, same rules, same events.

    python bench/spark_bench.py [--corpus DIR_OR_FILES...] [--rules PATH ...] [--limit EVENTS]
                                [--master local[2]] [--spark-conf KEY=VALUE ...] [--store DIR]

Defaults: the OTRF Security-Datasets archives in ../shared/datasets/security-datasets
(649k events) and every SigmaHQ rule in ../shared/sigma. The corpus is ingested once into
a sigmahunt store (timed apart: both engines read the very same Parquet parts), then:

* embedded: ``run_hunt(store=...)``, one process;
* spark: ``run_spark_hunt(store=...)`` on ``--master``, per ``--readers`` (``parts``: the
  executors read the store's Parquet parts; ``dataframe``: Spark reads them with a merged
  schema). The session start is timed apart; each reader runs ``--runs`` times on the
  same session (the very first run also starts the Python workers and builds the plan in
  each; later runs reuse them, as a long-running cluster would).

Prints events, rules, wall seconds and events/s for each, and checks that the detections
are identical (full records, event dicts included). Exit code 1 if they are not.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DEFAULT_CORPUS = SHARED / "datasets" / "security-datasets"
DEFAULT_RULES = [SHARED / "sigma" / "rules", SHARED / "sigma" / "rules-emerging-threats",
                 SHARED / "sigma" / "rules-threat-hunting"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", nargs="+", default=[str(DEFAULT_CORPUS)], help="log files or folders")
    parser.add_argument("--rules", action="append", default=[], help="rule file or folder (repeatable)")
    parser.add_argument("--limit", type=int, default=0,
                        help="stop ingesting after this many events (whole files; 0: everything)")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--spark-conf", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--store", help="keep the ingested store here (reused when it exists)")
    parser.add_argument("--runs", type=int, default=2, help="Spark hunts per reader on one session (default 2)")
    parser.add_argument("--readers", default="parts,dataframe",
                        help="how Spark reads the store: parts (executors read the Parquet parts), dataframe "
                             "(Spark reads them, merged schema); comma-separated (default both)")
    parser.add_argument("--json", help="also write the numbers as JSON to this file")
    args = parser.parse_args(argv)

    from sigmahunt.engines import spark as engine
    from sigmahunt.hunting import _ingest_file, expand_log_paths, run_hunt
    from sigmahunt.results import HuntSummary
    from sigmahunt.rules.prepare import prepare_rules
    from sigmahunt.store import EventStore, file_digest

    rules = args.rules or [str(p) for p in DEFAULT_RULES]
    started = time.perf_counter()
    prepared = prepare_rules(rules)
    prepare_s = time.perf_counter() - started
    print(f"rules: {len(prepared.runnable):,} runnable ({len(prepared.compiled):,} loaded, "
          f"{len(prepared.failures):,} failed) in {prepare_s:.1f} s", flush=True)

    scratch = None if args.store else Path(tempfile.mkdtemp(prefix="sigmahunt-bench-"))
    store_dir = Path(args.store) if args.store else scratch
    assert store_dir is not None
    try:
        started = time.perf_counter()
        store = EventStore(store_dir)
        summary = HuntSummary()
        for path in expand_log_paths(args.corpus):
            if args.limit and store.events() >= args.limit:
                break
            if path.name.upper().startswith(("LICENSE", "README")):
                continue
            digest = file_digest(path)
            if not store.is_current(str(path), digest):
                for _ in _ingest_file(path, digest, store, summary, None):
                    pass
        ingest_s = time.perf_counter() - started
        files = len(store.sources)
        events = store.events()
        parts = sum(len(s.parts) for s in store.sources.values())
        print(f"corpus: {events:,} events from {files} files ({parts} Parquet parts), "
              f"ingested in {ingest_s:.1f} s", flush=True)

        started = time.perf_counter()
        embedded = run_hunt(store=store_dir, prepared=prepared)
        embedded_s = time.perf_counter() - started
        print(f"embedded: {embedded_s:.1f} s, {events / embedded_s:,.0f} events/s, "
              f"{embedded.summary.detections:,} detections", flush=True)

        conf = engine.parse_conf(args.spark_conf)
        started = time.perf_counter()
        spark = engine.spark_session(args.master, conf)
        session_s = time.perf_counter() - started
        cores = spark.sparkContext.defaultParallelism
        print(f"spark session ({args.master}, {cores} cores): {session_s:.1f} s", flush=True)
        rows = []  # (label, seconds, result)
        try:
            for reader in args.readers.split(","):
                for run in range(max(1, args.runs)):
                    started = time.perf_counter()
                    result = engine.run_spark_hunt(store=store_dir, spark=spark, prepared=prepared, reader=reader)
                    seconds = time.perf_counter() - started
                    label = f"spark {args.master} {reader} run {run + 1}" + (" (cold workers)" if not rows else "")
                    rows.append((label, seconds, result))
                    print(f"{label}: {seconds:.1f} s, {events / seconds:,.0f} events/s, "
                          f"{result.summary.detections:,} detections", flush=True)
        finally:
            spark.stop()

        expected = canonical(embedded.records)
        checks = [canonical(r.records) == expected and strip(r.summary.to_dict()) == strip(embedded.summary.to_dict())
                  for _, _, r in rows]
        print()
        print("| engine | events | rules | wall s | events/s | detections | identical |")
        print("|---|---:|---:|---:|---:|---:|---|")
        print(f"| embedded (1 process) | {events:,} | {len(prepared.runnable):,} | {embedded_s:.1f} | "
              f"{events / embedded_s:,.0f} | {embedded.summary.detections:,} | reference |")
        for (label, seconds, result), same in zip(rows, checks):
            print(f"| {label} | {events:,} | {len(prepared.runnable):,} | {seconds:.1f} | {events / seconds:,.0f} | "
                  f"{result.summary.detections:,} | {'yes' if same else 'NO'} |")
        print(f"\nspark session start {session_s:.1f} s (not included above); detections identical: {all(checks)}")
        if args.json:
            Path(args.json).write_bytes(orjson.dumps({
                "events": events, "files": files, "parts": parts, "rules": len(prepared.runnable),
                "ingest_s": ingest_s, "embedded_s": embedded_s, "spark_session_s": session_s, "master": args.master,
                "spark_runs": [{"label": label, "seconds": seconds} for label, seconds, _ in rows],
                "detections": embedded.summary.detections, "identical": all(checks),
            }, option=orjson.OPT_INDENT_2))
        return 0 if all(checks) else 1
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def canonical(records: list[dict]) -> list[bytes]:  # type: ignore[type-arg]
    return sorted(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in records)


def strip(summary: dict) -> dict:  # type: ignore[type-arg]
    return {k: v for k, v in summary.items() if k != "seconds"}


if __name__ == "__main__":
    sys.exit(main())
