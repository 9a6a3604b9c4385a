"""Spark (local mode) vs the embedded engine on a realistic corpus, same rules, same events.

    python bench/spark_bench.py [--corpus DIR_OR_FILES...] [--rules PATH ...] [--limit EVENTS]
                                [--master local[2]] [--spark-conf KEY=VALUE ...] [--store DIR]
                                [--rounds N] [--readers parts[,dataframe]] [--json FILE]

Defaults: the OTRF Security-Datasets archives in ../shared/datasets/security-datasets
(649k events) and every SigmaHQ rule in ../shared/sigma. The corpus is ingested once into
a sigmahunt store (timed apart: both engines hunt the very same Parquet parts), then:

* embedded: ``run_hunt(store=...)`` (one process);
* spark: ``run_spark_hunt(store=...)`` on ``--master`` with each of ``--readers``
  (``parts``: the executors read the store's Parquet parts; ``dataframe``: Spark reads
  them with a merged schema). The session start and the first hunt (which also starts
  the Python workers and builds the plan in each) are reported apart; then ``--rounds``
  rounds alternate embedded and Spark hunts on the same session, so both see the same
  machine load (a long-running cluster keeps its workers warm the same way).

Prints events, rules, wall seconds and events/s (best and median of the rounds) and the
load average, and checks that every hunt's detections are identical to the embedded
engine's (full records, event dicts included): exit code 1 if not.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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
    parser.add_argument("--rounds", type=int, default=3, help="alternating embedded/Spark rounds (default 3)")
    parser.add_argument("--readers", default="parts",
                        help="how Spark reads the store, comma-separated: parts (default; executors read the "
                             "Parquet parts), dataframe (Spark reads them, merged schema)")
    parser.add_argument("--json", help="also write the numbers as JSON to this file")
    args = parser.parse_args(argv)

    from sigmahunt.engines import spark as engine
    from sigmahunt.hunting import _ingest_file, log_files, run_hunt
    from sigmahunt.results import HuntSummary
    from sigmahunt.rules.prepare import prepare_rules
    from sigmahunt.store import EventStore, file_digest

    readers = [r.strip() for r in args.readers.split(",") if r.strip()]
    rules = args.rules or [str(p) for p in DEFAULT_RULES]
    started = time.perf_counter()
    prepared = prepare_rules(rules)
    print(f"rules: {len(prepared.runnable):,} runnable ({len(prepared.compiled):,} loaded, "
          f"{len(prepared.failures):,} failed) in {time.perf_counter() - started:.1f} s", flush=True)

    scratch = None if args.store else Path(tempfile.mkdtemp(prefix="sigmahunt-bench-"))
    store_dir = Path(args.store) if args.store else scratch
    assert store_dir is not None
    try:
        started = time.perf_counter()
        store = EventStore(store_dir)
        for file in log_files(args.corpus)[0]:
            if args.limit and store.events() >= args.limit:
                break
            if Path(file.path).name.upper().startswith(("LICENSE", "README")):
                continue
            digest = file_digest(Path(file.path))
            if not store.is_current(file.path, digest):
                for _ in _ingest_file(file, digest, store, HuntSummary(), None):
                    pass
        ingest_s = time.perf_counter() - started
        files, events = len(store.sources), store.events()
        parts = sum(len(s.parts) for s in store.sources.values())
        print(f"corpus: {events:,} events from {files} files ({parts} Parquet parts), "
              f"ingested in {ingest_s:.1f} s (not included below)", flush=True)

        load_before = os.getloadavg()
        timings: dict[str, list[float]] = {"embedded": [], **{f"spark {r}": [] for r in readers}}
        reference = None
        identical = True

        def check(label: str, seconds: float, result: Any) -> None:
            nonlocal reference, identical
            key = (canonical(result.records), strip(result.summary.to_dict()))
            if reference is None:
                reference = key
            same = key == reference
            identical &= same
            print(f"{label}: {seconds:.1f} s, {events / seconds:,.0f} events/s, {result.summary.detections:,} "
                  f"detections{'' if same else ' DIFFERENT FROM EMBEDDED'}", flush=True)

        def embedded_run() -> None:
            started = time.perf_counter()
            result = run_hunt(store=store_dir, prepared=prepared)
            seconds = time.perf_counter() - started
            timings["embedded"].append(seconds)
            check("embedded", seconds, result)

        embedded_run()  # the reference detections
        conf = engine.parse_conf(args.spark_conf)
        started = time.perf_counter()
        spark = engine.spark_session(args.master, conf)
        session_s = time.perf_counter() - started
        cores = spark.sparkContext.defaultParallelism
        print(f"spark session ({args.master}, {cores} cores): {session_s:.1f} s", flush=True)
        cold: dict[str, float] = {}
        try:
            for round_number in range(max(1, args.rounds) + 1):
                if round_number > 1:
                    embedded_run()
                for reader in readers:
                    started = time.perf_counter()
                    result = engine.run_spark_hunt(store=store_dir, spark=spark, prepared=prepared, reader=reader)
                    seconds = time.perf_counter() - started
                    if round_number == 0:
                        cold[reader] = seconds
                        check(f"spark {reader} (first run: starts workers, builds plans)", seconds, result)
                    else:
                        timings[f"spark {reader}"].append(seconds)
                        check(f"spark {reader}", seconds, result)
        finally:
            spark.stop()
        load_after = os.getloadavg()

        print()
        print(f"{events:,} events, {len(prepared.runnable):,} rules, master {args.master}; load average "
              f"{load_before[0]:.1f} before, {load_after[0]:.1f} after (on {os.cpu_count()} CPUs)")
        print()
        print("| engine | wall s (best) | wall s (median) | events/s (best) | runs |")
        print("|---|---:|---:|---:|---:|")
        for label, values in timings.items():
            if values:
                best = min(values)
                print(f"| {label} | {best:.1f} | {statistics.median(values):.1f} | {events / best:,.0f} | "
                      f"{len(values)} |")
        for reader, seconds in cold.items():
            print(f"| spark {reader}, first run (cold workers) | {seconds:.1f} | | {events / seconds:,.0f} | 1 |")
        print(f"\nspark session start {session_s:.1f} s (not included); detections identical in every run: "
              f"{identical}")
        if args.json:
            Path(args.json).write_bytes(orjson.dumps({
                "events": events, "files": files, "parts": parts, "rules": len(prepared.runnable),
                "master": args.master, "ingest_s": ingest_s, "spark_session_s": session_s,
                "timings_s": timings, "cold_s": cold, "load_average": [load_before, load_after],
                "detections": result.summary.detections, "identical": identical,
            }, option=orjson.OPT_INDENT_2))
        return 0 if identical else 1
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def canonical(records: list[dict[str, Any]]) -> list[bytes]:
    return sorted(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in records)


def strip(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k != "seconds"}


if __name__ == "__main__":
    sys.exit(main())
