"""Measure ingest throughput: ``python -m sigmahunt.ingest.bench PATH... [--format-in F]``.

Reads the paths with :func:`read_logs` exactly as the engine does (all in one
call, so prefetching overlaps decompression/planning with parsing) and
prints events, Unreadable records, wall and CPU seconds, and events/s.  CPU
seconds are reported because wall time on a shared machine says more about
the neighbours than about the code.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence

from . import EventBatch, read_logs


def measure(paths: Sequence[str], format_in: str | None = None, batch_size: int = 50_000) -> dict[str, float]:
    """Read everything once; return counts and timings."""
    events = unreadable = batches = 0
    wall, cpu = time.perf_counter(), time.process_time()
    for item in read_logs(list(paths), format_in=format_in, batch_size=batch_size):
        if isinstance(item, EventBatch):
            events += len(item)
            batches += 1
        else:
            unreadable += 1
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "events": events,
        "unreadable": unreadable,
        "batches": batches,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "events_per_s": round(events / wall) if wall else 0,
        "events_per_cpu_s": round(events / cpu) if cpu else 0,
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--format-in")
    parser.add_argument("--batch-size", type=int, default=50_000)
    args = parser.parse_args(argv)
    result = measure(args.paths, args.format_in, args.batch_size)
    print(" ".join(f"{key}={value}" for key, value in result.items()))


if __name__ == "__main__":
    main()
