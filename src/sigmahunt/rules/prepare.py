"""From rule paths to compiled rules, with a content-keyed cache of the compiled form.

Parsing, pySigma's rule objects and compiling them to the engine's form cost ~1.5 ms of
CPU per rule file with libyaml (~5 s for SigmaHQ's 3,754 files; ~10 s with PyYAML's
pure-Python parser). The compiled form of a file depends only on its bytes, the
placeholder values and the compiler version, so it is cached as JSON (never pickle: the
cache folder is just files a user could edit) under that key. A warm start reads JSON
instead of YAML+pySigma.

On a cold start with ``workers`` > 1, files are compiled in spawned worker processes and
in this one (see :func:`_compile_in_workers`); each file's result is the JSON a cache
entry holds, so parallel and sequential starts give the same rules, failures and order.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from sigmahunt import __version__
from sigmahunt.cache import cache_root, write_entry
from sigmahunt.collector import collector_paused
from sigmahunt.engines.embedded.compiler import RuleCompileError, compile_rule
from sigmahunt.engines.embedded.ir import CompiledRule
from sigmahunt.rules.loader import (
    LoadedCorrelation,
    LoadedFilter,
    RuleFailure,
    iter_rule_files,
    load_rule_file,
)

# Not imported here: sigmahunt.results (pandas, ~0.35 s) and sigmahunt.rules.filters
# (which imports it). Worker processes import this module, and a start-up should not pay
# for pandas before it needs it.

CACHE_SCHEMA = "1"

#: Below this many files to compile, one process does it: starting a worker (spawn,
#: imports) costs ~0.5-1 s of CPU, about as much as compiling ~500 files.
MIN_PARALLEL_FILES = 500
#: Files per task of a worker: small enough that the two ends meet evenly (see
#: :func:`_compile_in_workers`), large enough that task overhead is negligible.
CHUNK_FILES = 50
#: Tasks given to each worker ahead of time: enough that it never waits for this
#: process to hand out the next one, few enough to leave little to wait for at the end.
QUEUED_CHUNKS = 2


def default_cache_dir() -> Path | None:
    root = cache_root()
    return None if root is None else root / "rules"


@dataclass
class PreparedRules:
    """Compiled rules ready for an engine, and everything that could not be used."""

    compiled: list[CompiledRule] = field(default_factory=list)
    failures: list[RuleFailure] = field(default_factory=list)
    correlations: list[LoadedCorrelation] = field(default_factory=list)
    filters: list[LoadedFilter] = field(default_factory=list)
    files: int = 0
    cache_hits: int = 0
    # Correlations resolved against the rules (sigmahunt.correlation.CorrelationPlan), and
    # which filters were applied to which rule (rule key -> filter titles).
    correlation_plan: Any = None
    filtered: dict[str, list[str]] = field(default_factory=dict)
    _plan: Any = field(default=None, repr=False)

    def plan(self) -> Any:
        """The embedded engine's plan for the runnable rules, built once and reused."""
        if self._plan is None:
            from sigmahunt.engines.embedded.evaluator import RuleSetPlan

            with collector_paused():
                self._plan = RuleSetPlan.build(self.runnable)
        return self._plan

    @property
    def runnable(self) -> list[CompiledRule]:
        return [r for r in self.compiled if not r.inapplicable]

    @property
    def inapplicable(self) -> list[CompiledRule]:
        return [r for r in self.compiled if r.inapplicable]


@dataclass(frozen=True)
class RuleSelection:
    """The CLI's rule filters: ``--level`` (minimum), ``--status``, ``--tag``, ``--rule-id``."""

    min_level: str | None = None
    statuses: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    rule_ids: tuple[str, ...] = ()

    def keeps(self, rule: CompiledRule) -> bool:
        from sigmahunt.results import LEVEL_RANK

        meta = rule.meta
        if self.min_level and LEVEL_RANK.get(meta.level, -1) < LEVEL_RANK[self.min_level]:
            return False
        if self.statuses and meta.status not in self.statuses:
            return False
        if self.tags:
            lowered = {t.lower() for t in meta.tags}
            if not any(t.lower() in lowered for t in self.tags):
                return False
        if self.rule_ids and meta.rule_id not in self.rule_ids:
            return False
        return True


def load_placeholders(path: str | Path | None) -> dict[str, list[str]]:
    """Placeholder values (``|expand``) from a YAML mapping ``name: [values]``."""
    if path is None:
        return {}
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: placeholders file must be a mapping of name -> list of values")
    out: dict[str, list[str]] = {}
    for name, values in data.items():
        items = values if isinstance(values, list) else [values]
        out[str(name)] = [str(v) for v in items]
    return out


def prepare_rules(
    paths: Sequence[str | Path],
    placeholders: Mapping[str, Any] | None = None,
    cache_dir: Path | None | bool = None,
    selection: RuleSelection | None = None,
    filters: Sequence[str | Path] = (),
    workers: int | None = 1,
) -> PreparedRules:
    """Load and compile every rule below ``paths``. ``cache_dir=False`` disables the cache.

    ``filters`` are Sigma filter files or folders (``--filters``), applied with the filter
    documents found among the rules; correlations are resolved last (see
    :func:`sigmahunt.rules.filters.finish_prepared`).

    ``workers``: processes that compile files missing from the cache (``None``:
    ``SIGMAHUNT_WORKERS``, else one per core), used when at least :data:`MIN_PARALLEL_FILES`
    files miss. The default is 1 for the same reason as :func:`sigmahunt.run_hunt`'s: worker
    processes are spawned, and spawning re-imports the caller's ``__main__``, so a script
    passing ``workers=None`` must guard its top level with ``if __name__ == "__main__":``.
    The result is the same with any number of workers.
    """
    from sigmahunt.rules.filters import finish_prepared

    root = cache_dir if isinstance(cache_dir, Path) else None if cache_dir is False else default_cache_dir()
    cache = None if root is None else Cache(root, placeholders)
    out = PreparedRules()
    seen_ids: dict[str, str] = {}
    unselected: list[CompiledRule] = []
    files = list(iter_rule_files(paths))
    entries, out.cache_hits = _file_entries(files, placeholders, cache, workers)
    for path, entry in zip(files, entries):
        out.files += 1
        if entry is None:
            out.failures.append(RuleFailure(str(path), "no such file or folder"))
            continue
        out.failures.extend(entry.failures)
        out.correlations.extend(entry.correlations)
        out.filters.extend(entry.filters)
        for rule in entry.compiled:
            rule_id = rule.meta.rule_id
            if rule_id and rule_id in seen_ids:
                out.failures.append(RuleFailure(str(path), f"duplicate rule id {rule_id} (already loaded from "
                                                           f"{seen_ids[rule_id]})", rule_id, rule.meta.title))
                continue
            if rule_id:
                seen_ids[rule_id] = str(path)
            if selection is None or selection.keeps(rule):
                out.compiled.append(rule)
            else:
                unselected.append(rule)
    finish_prepared(out, unselected, selection, placeholders, cache, filters)  # filters, correlations
    return out


@dataclass
class _FileEntry:
    compiled: list[CompiledRule] = field(default_factory=list)
    failures: list[RuleFailure] = field(default_factory=list)
    correlations: list[LoadedCorrelation] = field(default_factory=list)
    filters: list[LoadedFilter] = field(default_factory=list)

    @property
    def cacheable(self) -> bool:
        # Correlations and filters stay pySigma objects (they refer across files).
        return not self.correlations and not self.filters


def _read(path: Path) -> bytes | None:
    """The file's bytes, or None when unreadable (:func:`load_rule_file` then reports why)."""
    try:
        return path.read_bytes()
    except OSError:
        return None


def _file_entries(
    files: Sequence[Path],
    placeholders: Mapping[str, Any] | None,
    cache: Cache | None,
    workers: int | None,
) -> tuple[list[_FileEntry | None], int]:
    """Each file's entry, in the order of ``files`` (None: no such file), and the cache hits.

    Every file is read once: its bytes are the cache key and, on a miss, what is parsed.
    """
    entries: list[_FileEntry | None] = [None] * len(files)
    misses: list[tuple[int, bytes | None]] = []  # index in files, content
    with collector_paused():  # cached entries only: compiling misses (pySigma) makes cycles
        for index, path in enumerate(files):
            if not path.exists():
                continue
            content = _read(path)
            entry = cache.get(path, content) if cache is not None and content is not None else None
            if entry is None:
                misses.append((index, content))
            else:
                entries[index] = entry
    hits = len(files) - entries.count(None)  # before the misses are filled in
    count = 1
    if misses and len(misses) >= MIN_PARALLEL_FILES and multiprocessing.parent_process() is None:
        count = _process_count(workers)  # never a pool inside a worker process
    sources = [(files[index], content) for index, content in misses]
    if count > 1:
        compiled = _compile_in_workers(sources, placeholders, cache, count)
    else:
        compiled = [_compile_and_cache(path, content, placeholders, cache) for path, content in sources]
    for (index, _), entry in zip(misses, compiled):
        entries[index] = entry
    return entries, hits


def _process_count(workers: int | None) -> int:
    """``workers``, else ``SIGMAHUNT_WORKERS``, else one process per usable core.

    Not :func:`sigmahunt.parallel.worker_count`'s one per two cores: a hunting process
    keeps two cores busy (Polars threads), compiling rules is pure Python (one core each).
    """
    if workers is not None:
        return max(1, workers)
    configured = os.environ.get("SIGMAHUNT_WORKERS")
    if configured:
        return max(1, int(configured))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _compile_file(path: Path, placeholders: Mapping[str, Any] | None, content: bytes | None = None) -> _FileEntry:
    loaded = load_rule_file(path, content)
    entry = _FileEntry(failures=list(loaded.failures), correlations=loaded.correlations, filters=loaded.filters)
    for rule in loaded.rules:
        try:
            entry.compiled.append(compile_rule(rule, placeholders))
        except RuleCompileError as error:
            entry.failures.append(RuleFailure(rule.path, str(error), rule.rule_id or None, rule.rule.title))
    return entry


def _compile_and_cache(
    path: Path, content: bytes | None, placeholders: Mapping[str, Any] | None, cache: Cache | None
) -> _FileEntry:
    """Compile one file in this process, and cache the result when it can be."""
    entry = _compile_file(path, placeholders, content)
    if cache is not None and entry.cacheable and content is not None:
        cache.put(path, entry, content)
    return entry


def _compile_chunk(
    paths: Sequence[Path], placeholders: Mapping[str, Any] | None, root: Path | None
) -> list[bytes | None]:
    """In a worker process: compile files into cache entries' JSON, and cache them.

    None for a file holding correlations or filters (those stay pySigma objects) or that
    JSON cannot hold: the parent process compiles that file itself.
    """
    cache = None if root is None else Cache(root, placeholders)
    out: list[bytes | None] = []
    for path in paths:
        content = _read(path)
        entry = _compile_file(path, placeholders, content)
        if not entry.cacheable:
            out.append(None)
            continue
        data = _entry_to_json(entry)
        if cache is not None and content is not None and data is not None:
            cache.write(content, data)
        out.append(data)
    return out


def _compile_in_workers(
    sources: Sequence[tuple[Path, bytes | None]],
    placeholders: Mapping[str, Any] | None,
    cache: Cache | None,
    workers: int,
) -> list[_FileEntry]:
    """Each source's entry, compiled by ``workers - 1`` spawned processes and this one.

    This process compiles chunks from the start while the workers get chunks from the end,
    at most :data:`QUEUED_CHUNKS` each at a time, until the two ends meet. This process
    starts at once while a worker spends ~0.5-1.5 s starting, and it never waits for a
    worker: a chunk a worker has not finished by then (a busy machine can leave it little
    CPU; or it died) is compiled here as well. So a start is never much slower than with
    one process, and on a machine with a free core it is faster. No task is cancelled
    (Python 3.11's pool can hang when it breaks with cancelled tasks). A worker's result
    is a cache entry's JSON (plain data, see :func:`_compile_chunk`), so it is what a warm
    start would read. Entries are in the order of ``sources``.
    """
    chunks = [list(sources[i:i + CHUNK_FILES]) for i in range(0, len(sources), CHUNK_FILES)]
    args = (dict(placeholders) if placeholders else None, None if cache is None else cache.root)

    def here(chunk: list[tuple[Path, bytes | None]]) -> list[_FileEntry]:
        return [_compile_and_cache(path, content, placeholders, cache) for path, content in chunk]

    def submit(chunk: list[tuple[Path, bytes | None]]) -> Future[list[bytes | None]]:
        return pool.submit(_compile_chunk, [path for path, _ in chunk], *args)

    done: dict[int, list[_FileEntry]] = {}
    queued: dict[int, Future[list[bytes | None]]] = {}
    front, back = 0, len(chunks)
    pool = ProcessPoolExecutor(max_workers=workers - 1, mp_context=multiprocessing.get_context("spawn"))
    try:
        while front < back:
            while front < back and sum(not f.done() for f in queued.values()) < QUEUED_CHUNKS * (workers - 1):
                try:
                    queued[back - 1] = submit(chunks[back - 1])
                except BrokenProcessPool:
                    break
                back -= 1
            if front < back:
                done[front] = here(chunks[front])
                front += 1
        for index in sorted(queued):  # nearest the meeting point first: a worker does those last
            future = queued[index]
            if not future.done() or future.exception() is not None:
                done[index] = here(chunks[index])  # rather than wait for a worker short of CPU, or lost
                continue
            done[index] = [
                _compile_and_cache(path, content, placeholders, cache) if data is None
                else _entry_from_json(path, data)
                for (path, content), data in zip(chunks[index], future.result())
            ]
    finally:
        pool.shutdown(wait=False)  # a worker still busy finishes its task (harmlessly), then exits
    return [entry for index in range(len(chunks)) for entry in done[index]]


def _entry_to_json(entry: _FileEntry) -> bytes | None:
    """The entry as cache JSON; None when JSON cannot hold it (a lone surrogate such as
    ``"\\ud800"``, which PyYAML reads): such a file is compiled in the parent, uncached."""
    try:
        return orjson.dumps({
            "compiled": [r.to_json() for r in entry.compiled],
            "failures": [f.to_dict() for f in entry.failures],
        })
    except TypeError:
        return None


def _entry_from_json(path: Path, data: bytes) -> _FileEntry:
    """A cache entry's JSON as the file's entry; raises ValueError/KeyError/TypeError if damaged."""
    parsed = orjson.loads(data)
    entry = _FileEntry(
        compiled=[CompiledRule.from_json(r) for r in parsed["compiled"]],
        failures=[RuleFailure(str(path), f["reason"], f.get("rule_id"), f.get("title")) for f in parsed["failures"]],
    )
    for rule in entry.compiled:  # the same bytes may live at another path now
        rule.meta.path = str(path)
    return entry


class Cache:
    """JSON files named by sha256(file bytes, placeholders, sigmahunt version).

    ``content`` arguments are the file's bytes when the caller has read them already;
    without them the file is read again.
    """

    def __init__(self, root: Path, placeholders: Mapping[str, Any] | None) -> None:
        self.root = root
        salt = orjson.dumps(dict(placeholders or {}), option=orjson.OPT_SORT_KEYS)
        self.salt = hashlib.sha256(salt + __version__.encode() + CACHE_SCHEMA.encode()).hexdigest()

    def key(self, content: bytes) -> Path:
        digest = hashlib.sha256(content + self.salt.encode()).hexdigest()
        return self.root / digest[:2] / f"{digest}.json"

    def _key(self, path: Path, content: bytes | None) -> Path | None:
        content = content if content is not None else _read(path)
        return None if content is None else self.key(content)

    def get(self, path: Path, content: bytes | None = None) -> _FileEntry | None:
        key = self._key(path, content)
        if key is None:
            return None
        try:
            return _entry_from_json(path, key.read_bytes())
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None  # absent, or damaged: a miss either way

    def put(self, path: Path, entry: _FileEntry, content: bytes | None = None) -> None:
        key = self._key(path, content)
        data = _entry_to_json(entry)
        if key is not None and data is not None:
            self._write(key, data)

    def write(self, content: bytes, data: bytes) -> None:
        """Store an entry's JSON (from :func:`_entry_to_json`) for a file of this content."""
        self._write(self.key(content), data)

    @staticmethod
    def _write(key: Path, data: bytes) -> None:
        try:
            write_entry(key, data)
        except OSError:
            pass  # a read-only cache folder only costs speed
