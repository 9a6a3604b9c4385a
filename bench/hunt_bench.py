"""Benchmark: a rule set over a log corpus, end to end from the files to detection records.

    python bench/hunt_bench.py --rules ../shared/sigma/rules --rules ../shared/sigma/rules-emerging-threats \
        --rules ../shared/sigma/rules-threat-hunting --logs ../shared/datasets/security-datasets --scaling

Prints the machine, versions, events, rules, wall and CPU seconds, events/s, peak RSS,
optionally the rules x events scaling table, and the detections per rule (written in
full to --detections-out), so a speed change can never hide a correctness change:
``--verify-portable`` re-runs the hunt with the portable scanner (Aho-Corasick + RE2
instead of Hyperscan) and ``--verify-reference N`` checks N sampled events against the
plain one-event reference evaluator; both must give exactly the same hits.

Numbers are for one run on this machine; never assert them in unit tests.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import resource
import subprocess
import sys
import time
import zipfile
from collections import Counter
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson

from sigmahunt.hunting import expand_log_paths, run_hunt
from sigmahunt.rules.prepare import PreparedRules, prepare_rules


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    versions = {name: _version(name) for name in ("sigmahunt", "pysigma", "polars", "pyarrow", "hyperscan",
                                                   "pyahocorasick", "evtx", "orjson", "numpy")}
    from sigmahunt.native import status

    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(memory, 1), "python": platform.python_version(),
            "versions": versions, "native": status(), "load_average": os.getloadavg()}


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def windows_only(prepared: PreparedRules, limit: int | None = None) -> PreparedRules:
    """The rules with ``product: windows`` (the issue's 2,858), optionally the first ``limit``."""
    rules = [r for r in prepared.compiled if r.meta.logsource.split("/")[0] == "windows"]
    rules.sort(key=lambda r: (r.meta.path, r.meta.rule_id))
    if limit is not None:
        rules = rules[:limit]
    return PreparedRules(compiled=rules, failures=prepared.failures, files=prepared.files)


def count_events(path: Path) -> int:
    """Lines of a JSON-lines zip (the corpus layout), for choosing event subsets."""
    if path.suffix != ".zip":
        return 0
    with zipfile.ZipFile(path) as archive:
        return sum(sum(1 for line in archive.open(info) if line.strip()) for info in archive.infolist()
                   if not info.is_dir())


def first_files(files: list[Path], events: int) -> list[Path]:
    chosen, total = [], 0
    for path in files:
        if total >= events:
            break
        chosen.append(path)
        total += count_events(path)
    return chosen


def timed_hunt(logs: list[Path], prepared: PreparedRules) -> dict[str, Any]:
    started, cpu = time.perf_counter(), time.process_time()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = run_hunt(logs, prepared=prepared, workers=None)
    wall = time.perf_counter() - started
    child_cpu = _cpu(resource.getrusage(resource.RUSAGE_CHILDREN)) - _cpu(children)
    per_rule = Counter(r["rule_id"] for r in result.records)
    return {
        "events": result.summary.events_read,
        "unreadable": result.summary.events_unreadable,
        "rules": len(prepared.runnable),
        "detections": result.summary.detections,
        "wall_s": round(wall, 2),
        "cpu_s": round(time.process_time() - cpu + child_cpu, 2),
        "events_per_s": round(result.summary.events_read / wall) if wall else 0,
        "per_rule": dict(sorted(per_rule.items())),
        "hits": sorted((r["rule_id"], r["source"], r["position"]) for r in result.records),
    }


def _cpu(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def peak_rss_mib() -> dict[str, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"self_mib": round(own, 1), "largest_child_mib": round(children, 1)}


def verify_portable(args: argparse.Namespace, logs: list[Path], expected: list[tuple[str, str, str]]) -> bool:
    """Re-run in a fresh process with the portable scanner; the hits must be identical."""
    env = dict(os.environ, SIGMAHUNT_HYPERSCAN="0")
    command = [sys.executable, __file__, "--hits-only", *sum((["--rules", r] for r in args.rules), []),
               *sum((["--logs", str(p)] for p in logs), [])]
    output = subprocess.run(command, env=env, check=True, capture_output=True).stdout
    portable = [tuple(h) for h in orjson.loads(output)]
    return portable == [tuple(h) for h in expected]


def verify_reference(rule_paths: list[str], logs: list[Path], sample: int, hits: set[tuple[str, str, str]],
                     seed: int = 7) -> dict[str, Any]:
    """Check ``sample`` random events with the plain reference evaluator (slow by design)."""
    from sigma.collection import SigmaCollection

    from sigmahunt.engines.reference import rule_matches
    from sigmahunt.ingest import EventBatch, read_logs
    from sigmahunt.rules.loader import iter_rule_files

    rules = []
    for path in iter_rule_files(rule_paths):
        try:
            for rule in SigmaCollection.from_yaml(path.read_text(encoding="utf-8"), collect_errors=True).rules:
                if not rule.errors and getattr(rule, "logsource", None) and rule.logsource.product == "windows":
                    rules.append(rule)
        except Exception:  # noqa: BLE001 - a benchmark skips what the hunt reported as failed
            continue
    events = []
    for item in read_logs(logs):
        if isinstance(item, EventBatch):
            events.extend(item.frame.iter_rows(named=True))
    random.Random(seed).shuffle(events)
    events = events[:sample]
    mismatches = []
    for event in events:
        for rule in rules:
            try:
                expected = rule_matches(rule, event)
            except Exception:  # noqa: BLE001 - e.g. a placeholder rule the engine refused
                continue
            actual = (str(rule.id), event["_source"], event["_position"]) in hits
            if expected != actual:
                mismatches.append({"rule": str(rule.id), "source": event["_source"], "position": event["_position"],
                                   "reference": expected, "engine": actual})
    return {"events": len(events), "rules": len(rules), "checks": len(events) * len(rules),
            "mismatches": mismatches[:20], "mismatch_count": len(mismatches)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rules", action="append", required=True)
    parser.add_argument("--logs", action="append", required=True)
    parser.add_argument("--all-products", action="store_true", help="do not restrict to product: windows rules")
    parser.add_argument("--scaling", action="store_true", help="also print the rules x events table")
    parser.add_argument("--verify-portable", action="store_true")
    parser.add_argument("--verify-reference", type=int, default=0, metavar="N")
    parser.add_argument("--detections-out", default="bench/last_detections.json")
    parser.add_argument("--hits-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    logs = expand_log_paths(args.logs)
    logs = [p for p in logs if p.suffix.lower() in (".zip", ".gz", ".json", ".jsonl", ".evtx", ".xml", ".csv")]
    rule_start = time.perf_counter()
    prepared = prepare_rules(args.rules)
    if not args.all_products:
        prepared = windows_only(prepared)
    prepared.plan()
    rule_seconds = time.perf_counter() - rule_start
    if args.hits_only:
        sys.stdout.buffer.write(orjson.dumps(timed_hunt(logs, prepared)["hits"]))
        return 0

    report: dict[str, Any] = {"machine": machine(), "command": " ".join(sys.argv),
                              "rules_ready_s": round(rule_seconds, 2), "rule_cache_hits": prepared.cache_hits}
    run = timed_hunt(logs, prepared)
    report["run"] = {k: v for k, v in run.items() if k not in ("per_rule", "hits")}
    report["peak_rss"] = peak_rss_mib()
    digest = hashlib.sha256(orjson.dumps(run["hits"])).hexdigest()[:16]
    report["hits_sha256_16"] = digest
    Path(args.detections_out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.detections_out).write_bytes(orjson.dumps({"per_rule": run["per_rule"], "hits_sha256_16": digest},
                                                       option=orjson.OPT_INDENT_2))
    print(json.dumps(report, indent=2))
    print("top rules by detections:")
    for rule_id, count in Counter(run["per_rule"]).most_common(15):
        title = next((r.meta.title for r in prepared.compiled if r.meta.rule_id == rule_id), "?")
        print(f"  {count:7d}  {rule_id}  {title}")

    if args.scaling:
        print("\nscaling: wall seconds (events/s)")
        subsets = [("100k", first_files(logs, 100_000)), ("all", logs)]
        sizes: list[tuple[str, int | None]] = [("100", 100), ("1000", 1000), ("all", None)]
        print(f"{'rules':>8} | " + " | ".join(f"{name:>22}" for name, _ in subsets))
        for label, limit in sizes:
            subset_rules = windows_only(prepared, limit) if limit else prepared
            cells = []
            for _, files in subsets:
                cell = timed_hunt(files, subset_rules)
                cells.append(f"{cell['wall_s']:>7.2f}s ({cell['events_per_s']:>7,}/s)")
            print(f"{label:>8} | " + " | ".join(f"{c:>22}" for c in cells))

    ok = True
    if args.verify_portable:
        same = verify_portable(args, logs, run["hits"])
        print(f"\nportable scanner gives identical hits: {same}")
        ok &= same
    if args.verify_reference:
        check = verify_reference(args.rules, logs, args.verify_reference, set(run["hits"]))
        print(f"\nreference evaluator on {check['events']} sampled events x {check['rules']} rules "
              f"({check['checks']:,} checks): {check['mismatch_count']} mismatches")
        for item in check["mismatches"]:
            print("  ", item)
        ok &= check["mismatch_count"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
