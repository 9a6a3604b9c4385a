"""Rule start-up, cold and warm, each run in a fresh Python process (issue 3).

"Ready" is :func:`sigmahunt.rules.prepare.prepare_rules` returned and its ``.plan()`` built
(the evaluator's plan, Hyperscan databases included), measured end to end from process
start, imports included. Cold = an empty ``SIGMAHUNT_CACHE_DIR`` (it holds both the
compiled-rule cache and the Hyperscan database cache); warm = one filled by an earlier run.
Every cache is a temporary folder: the user's own cache is never read or written.

    python bench/startup_bench.py                       # SigmaHQ's folders under ../shared/sigma
    python bench/startup_bench.py --rules DIR --runs 5 --workers 1 --workers 2 --cli
    python bench/startup_bench.py --breakdown           # one cold run, time by phase

Each row gives wall seconds (median, min-max of the runs), CPU seconds of the process and
its workers, and the load average before the runs: on a shared machine the wall time
depends on what else runs, the CPU time much less.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SIGMA = REPO.parent / "shared" / "sigma"
DEFAULT_FOLDERS = ("rules", "rules-emerging-threats", "rules-threat-hunting")

#: Runs in the child: the time from interpreter start is taken by the parent; the child
#: reports its phases (imports, prepare_rules, plan) as one JSON line.
READY = """
import json, sys, time
t0 = time.perf_counter()
from sigmahunt.rules.prepare import prepare_rules
t1 = time.perf_counter()
workers = json.loads(sys.argv[2])
prepared = prepare_rules(json.loads(sys.argv[1]), **({} if workers == 1 else {"workers": workers}))
t2 = time.perf_counter()
prepared.plan()
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "prepare": t2 - t1, "plan": t3 - t2, "files": prepared.files,
                  "rules": len(prepared.compiled), "failed": len(prepared.failures), "hits": prepared.cache_hits}))
"""

#: One cold run with each phase timed by wrapping the functions that do it (the wrappers
#: add a little overhead). Sequential, so the phases add up.
BREAKDOWN = """
import json, sys, time
T = {}
def timed(owner, name, key):
    original = getattr(owner, name, None)
    if original is None:  # another version of sigmahunt: not this phase
        return
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            T[key] = T.get(key, 0.0) + time.perf_counter() - start
    setattr(owner, name, wrapper)
t0 = time.perf_counter()
import hyperscan
from sigma.collection import SigmaCollection
import sigmahunt.engines.embedded.evaluator
import sigmahunt.engines.embedded.scanners as scanners
import sigmahunt.rules.filters
import sigmahunt.rules.loader as loader
import sigmahunt.rules.prepare as prepare
T["imports (incl. evaluator, hyperscan)"] = time.perf_counter() - t0
timed(loader, "parse_yaml_documents", "YAML parse")
if not hasattr(loader, "parse_yaml_documents"):  # before libyaml: a generator, timed as a list
    import yaml
    safe_load_all = yaml.safe_load_all
    yaml.safe_load_all = lambda stream: list(safe_load_all(stream))
    timed(yaml, "safe_load_all", "YAML parse")
timed(SigmaCollection, "from_dicts", "pySigma rule objects")
timed(prepare, "compile_rule", "compile to IR")
timed(prepare, "_entry_to_json", "rule cache: to JSON")
timed(prepare, "write_entry", "rule cache: file writes")
timed(prepare, "write_atomically", "rule cache: file writes")  # before write_entry
class Database(hyperscan.Database):  # an extension type: wrapped by subclassing
    def compile(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return super().compile(*args, **kwargs)
        finally:
            T["Hyperscan compile"] = T.get("Hyperscan compile", 0.0) + time.perf_counter() - start
hyperscan.Database = Database
timed(hyperscan, "dumpb", "Hyperscan cache: serialise")
timed(scanners, "write_atomically", "Hyperscan cache: file writes")
t1 = time.perf_counter()
prepared = prepare.prepare_rules(json.loads(sys.argv[1]))  # one process: the default
t2 = time.perf_counter()
prepared.plan()
t3 = time.perf_counter()
T["prepare_rules (total)"] = t2 - t1
T["plan() (total)"] = t3 - t2
T["process (imports .. plan)"] = t3 - t0
print(json.dumps(T))
"""


@dataclass
class Run:
    wall: float
    cpu: float
    report: dict[str, float]


def _run(command: list[str], cache: Path) -> Run:
    env = {**os.environ, "SIGMAHUNT_CACHE_DIR": str(cache)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(command)}\n{done.stderr[-2000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    report = json.loads(lines[-1]) if lines else {}
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Run(wall, cpu, report)


def _measure(label: str, command: list[str], runs: int, scratch: Path) -> list[str]:
    load = os.getloadavg()
    cold = [_run(command, Path(tempfile.mkdtemp(dir=scratch))) for _ in range(runs)]
    warm_cache = Path(tempfile.mkdtemp(dir=scratch))
    _run(command, warm_cache)  # fills it
    warm = [_run(command, warm_cache) for _ in range(runs)]
    rows = []
    for state, items in (("cold", cold), ("warm", warm)):
        walls = [r.wall for r in items]
        phases = ""
        if items[0].report.get("prepare") is not None:
            phases = " / ".join(f"{statistics.median(r.report[k] for r in items):.2f}"
                                for k in ("import", "prepare", "plan"))
            info = items[0].report
            phases += f" ({info['files']} files, {info['rules']} rules, {info['failed']} failed, {info['hits']} hits)"
        rows.append(f"| {label} | {state} | {statistics.median(walls):.2f} ({min(walls):.2f}-{max(walls):.2f}) | "
                    f"{statistics.median(r.cpu for r in items):.2f} | {load[0]:.1f} | {phases} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rules", action="append", help="rule file or folder (repeatable)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", action="append", type=int,
                        help="prepare_rules(workers=N); 0 means None (one per core). Default: 1 and 0")
    parser.add_argument("--cli", action="store_true", help="also time `sigmahunt hunt LOGS --rules ...`")
    parser.add_argument("--logs", default=str(REPO / "examples" / "logs"), help="logs for --cli")
    parser.add_argument("--breakdown", action="store_true", help="one cold sequential run, time by phase")
    args = parser.parse_args()
    rules = args.rules or [str(SIGMA / name) for name in DEFAULT_FOLDERS if (SIGMA / name).exists()]
    if not rules:
        raise SystemExit("no rules: pass --rules DIR")
    scratch = Path(tempfile.mkdtemp(prefix="sigmahunt-startup-"))
    try:
        if args.breakdown:
            run = _run([sys.executable, "-c", BREAKDOWN, json.dumps(rules)], Path(tempfile.mkdtemp(dir=scratch)))
            print(f"cold, sequential, load average {os.getloadavg()[0]:.1f}; wall {run.wall:.2f} s from process "
                  f"start, CPU {run.cpu:.2f} s\n\n| phase | seconds |\n|---|---|")
            for phase, seconds in run.report.items():
                print(f"| {phase} | {seconds:.2f} |")
            return
        print("| what | cache | wall s, median (min-max) | CPU s | load avg | import / prepare / plan s |")
        print("|---|---|---|---|---|---|")
        for workers in args.workers or [1, 0]:
            value = None if workers == 0 else workers
            label = f"prepare_rules + plan, workers={'None' if value is None else value}"
            for row in _measure(label, [sys.executable, "-c", READY, json.dumps(rules), json.dumps(value)],
                                args.runs, scratch):
                print(row, flush=True)
        if args.cli:
            executable = shutil.which("sigmahunt")
            if executable is None:
                raise SystemExit("the sigmahunt command is not installed (pip install -e .)")
            # Not os.devnull: outputs are written atomically, by renaming a temporary file.
            output = scratch / "detections.jsonl"
            command = [executable, "hunt", args.logs, "--format", "jsonl", "--output", str(output), "--quiet"]
            for folder in rules:
                command += ["--rules", folder]
            for row in _measure("sigmahunt hunt (CLI, end to end)", command, args.runs, scratch):
                print(row, flush=True)
        print(f"\nload average after: {os.getloadavg()[0]:.1f}; {os.cpu_count()} CPUs")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
