"""Use every core: worker processes each read and hunt a share of the log files.

Parsing and matching are partly Python, so threads would share one core (the GIL);
processes do not. Each worker rebuilds the rule plan from the compiled rules' JSON
(Hyperscan databases come from the on-disk cache after the first run), reads its files
with the same reader, evaluates with the same evaluator, and sends back detection
records as JSON; the parent only merges. Results are identical to the sequential path
(the records are sorted by a total key before any output).

Used for temporary stores only: a persistent ``--store`` writes Parquet parts per source
in one process, to keep its manifest updates simple and atomic.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from queue import Empty, Queue
from typing import TYPE_CHECKING, Any

import orjson

from sigmahunt.engines.embedded.ir import CompiledRule

if TYPE_CHECKING:
    from sigmahunt.ingest.sources import LogFile

#: Below this many bytes of input, starting workers costs more than it saves.
MIN_PARALLEL_BYTES = 16 * 1024 * 1024  # on disk: compressed logs expand ~10-30x
#: Tasks per worker: more tasks balance uneven files, fewer keep batches full.
TASKS_PER_WORKER = 3

_worker_state: dict[str, Any] = {}


#: Cores one hunting process keeps busy: its reader threads parse JSON in Polars without
#: the GIL while its main thread matches (see ``sigmahunt.ingest.reader``). On this
#: project's 2-core machine one process beat two (21.6 s against 30.6 s wall over the
#: Security-Datasets corpus): two processes only fought over the same cores.
CORES_PER_PROCESS = 2


def worker_count(requested: int | None = None) -> int:
    """Processes to use: ``requested``, else ``SIGMAHUNT_WORKERS``, else one per
    :data:`CORES_PER_PROCESS` usable cores."""
    configured = os.environ.get("SIGMAHUNT_WORKERS")
    if requested is not None:
        return max(1, requested)
    if configured:
        return max(1, int(configured))
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // CORES_PER_PROCESS)


def should_parallelise(sizes: Sequence[int], workers: int) -> bool:
    """Whether files of these sizes are worth worker processes."""
    if workers < 2 or len(sizes) < 2:
        return False
    return sum(sizes) >= MIN_PARALLEL_BYTES


@dataclass
class WorkerResult:
    records: list[dict[str, Any]] = field(default_factory=list)
    events_read: int = 0
    unreadable: list[dict[str, str]] = field(default_factory=list)
    bytes_done: int = 0


def partition(files: Sequence[LogFile], sizes: Sequence[int], parts: int) -> list[list[LogFile]]:
    """Greedy balance by size (largest first), each part in input (walk) order for determinism."""
    buckets: list[tuple[int, list[int]]] = [(0, []) for _ in range(max(1, min(parts, len(files))))]
    for index in sorted(range(len(files)), key=lambda i: (-sizes[i], i)):
        size, members = min(buckets, key=lambda b: b[0])
        buckets.remove((size, members))
        members.append(index)
        buckets.append((size + sizes[index], members))
    return [[files[i] for i in sorted(members)] for _, members in buckets if members]


def hunt_in_workers(
    files: Sequence[LogFile],
    sizes: Sequence[int],
    runnable: Sequence[CompiledRule],
    format_in: str | None,
    on_result: Callable[[WorkerResult], None],
    workers: int = 2,
    event_filter: Callable[[Any], Any] | None = None,
    local: HuntState | None = None,
) -> None:
    """Run the files' hunt in worker processes; ``on_result`` gets each task's result.

    With ``local`` (the caller's own rule plan) the calling process is one of the
    ``workers``: it hunts tasks itself while ``workers - 1`` processes take the others
    from the same queue. That saves a process's start-up (imports and plan: ~2 CPU-s)
    and its memory, and the caller's core works from the first second instead of
    waiting for spawned processes to import. ``on_result`` always runs in the caller's
    thread.
    """
    rules_json = orjson.dumps([r.to_json() for r in runnable])
    tasks: deque[list[LogFile]] = deque(partition(files, sizes, workers * TASKS_PER_WORKER))
    finished: Queue[Future[bytes]] = Queue()
    processes = workers - 1 if local is not None else workers
    context = multiprocessing.get_context("spawn")  # never fork a process with Rust thread pools
    with ProcessPoolExecutor(max_workers=max(1, processes), mp_context=context, initializer=_init_worker,
                             initargs=(rules_json,)) as pool:
        outstanding = 0
        lock = threading.Lock()

        def submit_next() -> None:
            nonlocal outstanding
            try:
                task = tasks.popleft()
            except IndexError:
                return
            with lock:
                outstanding += 1
            future = pool.submit(_hunt_task, task, format_in, event_filter)
            future.add_done_callback(on_done)

        def on_done(future: Future[bytes]) -> None:
            submit_next()  # first: the caller must not see 0 outstanding while tasks remain
            finished.put(future)

        def drain(block: bool) -> None:
            nonlocal outstanding
            while True:
                with lock:
                    if outstanding == 0:
                        return
                try:
                    future = finished.get(block=block)
                except Empty:
                    return
                with lock:
                    outstanding -= 1
                on_result(WorkerResult(**orjson.loads(future.result())))

        for _ in range(max(1, processes)):
            submit_next()
        while local is not None:
            try:
                task = tasks.popleft()
            except IndexError:
                break
            on_result(hunt_files(local, task, format_in, event_filter))
            drain(block=False)
        drain(block=True)


@dataclass
class HuntState:
    """What a process needs to hunt: the rules, their evaluator and the read projection."""

    rules: Sequence[CompiledRule]
    evaluator: Any  # BatchEvaluator (imported lazily: workers start faster)
    projection: Any  # sigmahunt.ingest.Projection

    @classmethod
    def of(cls, rules: Sequence[CompiledRule], evaluator: Any) -> HuntState:
        from sigmahunt.hunting import hunt_projection

        return cls(rules, evaluator, hunt_projection(evaluator))


def _init_worker(rules_json: bytes) -> None:
    from sigmahunt.engines.embedded.evaluator import BatchEvaluator, RuleSetPlan

    rules = [CompiledRule.from_json(r) for r in orjson.loads(rules_json)]
    _worker_state["state"] = HuntState.of(rules, BatchEvaluator(RuleSetPlan.build(rules)))
    gc.collect()
    gc.freeze()  # the plan lives as long as the worker: keep the collector off it


def _hunt_task(files: list[LogFile], format_in: str | None, event_filter: Callable[[Any], Any] | None = None) -> bytes:
    return orjson.dumps(hunt_files(_worker_state["state"], files, format_in, event_filter).__dict__)


def hunt_files(state: HuntState, files: list[LogFile], format_in: str | None,
               event_filter: Callable[[Any], Any] | None = None) -> WorkerResult:
    """One task: read the files (small ones packed into full batches) and hunt them."""
    from sigmahunt.hunting import BATCH_ROWS, DetectionCollector
    from sigmahunt.ingest import EventBatch, read_logs
    from sigmahunt.ingest.sources import file_size

    collector = DetectionCollector(state.rules)
    result = WorkerResult(bytes_done=sum(file_size(file.path) for file in files))
    for item in read_logs(files, format_in=format_in, batch_size=BATCH_ROWS, projection=state.projection):
        if not isinstance(item, EventBatch):
            result.unreadable.append({"source": item.source, "position": item.position, "reason": item.reason})
            continue
        frame = item.frame
        if frame.height == 0:
            continue
        result.events_read += frame.height
        if event_filter is not None:
            frame = event_filter(frame)
            if frame.height == 0:
                continue
        collector.collect(frame, state.evaluator.evaluate(frame))
    result.records = collector.records
    return result
