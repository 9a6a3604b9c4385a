"""Where the hunting thread's time goes: waiting for batches, evaluating them, making
detection records (the parts of ``run_hunt``'s sequential loop, timed separately).

    python bench/caller_timeline.py --rules ../shared/sigma/rules --rules ../shared/sigma/rules-emerging-threats \\
        --rules ../shared/sigma/rules-threat-hunting --logs ../shared/datasets/security-datasets

``SIGMAHUNT_NATIVE=off`` for the Python twins. One run; never asserted in a test.
"""

from __future__ import annotations

import argparse
import gc
import time
from pathlib import Path

from hunt_bench import windows_only

from sigmahunt.engines.embedded.evaluator import BatchEvaluator
from sigmahunt.hunting import BATCH_ROWS, DetectionCollector, expand_log_paths, hunt_projection
from sigmahunt.ingest import Unreadable, read_logs
from sigmahunt.native import status
from sigmahunt.rules.prepare import prepare_rules


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rules", action="append", required=True)
    parser.add_argument("--logs", action="append", required=True)
    args = parser.parse_args()
    prepared = windows_only(prepare_rules([Path(r) for r in args.rules]))
    started = time.perf_counter()
    evaluator = BatchEvaluator(prepared.plan())
    collector = DetectionCollector(prepared.runnable)
    plan_s = time.perf_counter() - started
    gc.collect()
    gc.freeze()
    waiting = evaluating = collecting = 0.0
    events = batches = 0
    started, cpu = time.perf_counter(), time.process_time()
    items = iter(read_logs(expand_log_paths(args.logs), batch_size=BATCH_ROWS, projection=hunt_projection(evaluator)))
    while True:
        mark = time.perf_counter()
        item = next(items, None)
        waiting += time.perf_counter() - mark
        if item is None:
            break
        if isinstance(item, Unreadable):
            continue
        events, batches = events + item.frame.height, batches + 1
        mark = time.perf_counter()
        hits = evaluator.evaluate(item.frame)
        evaluating += time.perf_counter() - mark
        mark = time.perf_counter()
        collector.collect(item.frame, hits)
        collecting += time.perf_counter() - mark
    total = time.perf_counter() - started
    print(f"native parts: {status()}; rule plan {plan_s:.2f} s")
    print(f"{events} events in {batches} batches, {len(collector.records)} detections: {total:.2f} s wall, "
          f"{time.process_time() - cpu:.2f} CPU-s; the hunting thread: waiting {waiting:.2f} s, "
          f"evaluating {evaluating:.2f} s, detection records {collecting:.2f} s")


if __name__ == "__main__":
    main()
