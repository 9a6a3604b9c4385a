"""Rule start-up (issue 3): libyaml parsing, one read per file, rules compiled in worker processes.

Every path must give what the plain sequential path gives: the same rules, failures,
correlations, filters and order, and the same cache entries.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from sigmahunt.rules import loader, prepare
from sigmahunt.rules.loader import parse_yaml_documents
from sigmahunt.rules.prepare import PreparedRules, prepare_rules

from .conftest import EXAMPLES, SHARED, requires_shared

RULE = """\
title: Rule {n}
id: 00000000-0000-4000-8000-{n:012d}
status: test
logsource:
    product: windows
    category: process_creation
detection:
    sel:
        Image|endswith: '\\\\tool{n}.exe'
        CommandLine|contains|all:
            - 'a{n}'
            - 'b'
    filter:
        User|startswith: 'NT AUTHORITY'
    condition: sel and not filter
level: high
"""

ODD_FILES = {
    "bad_yaml.yml": "title: x\ndetection: [unclosed\n",
    "empty.yml": "",
    "list.yml": "- just\n- a list\n",
    "unknown_modifier.yml": RULE.format(n=900).replace("Image|endswith", "Image|endswithh"),
    "duplicate.yml": RULE.format(n=1).replace("Rule 1", "Rule 1 again"),
    "placeholder.yml": RULE.format(n=901).replace("Image|endswith: '\\\\tool901.exe'", "User|expand: '%admins%'"),
    "surrogate_escape.yml": RULE.format(n=902).replace("'b'", '"b\\ud800"'),  # libyaml refuses, PyYAML reads
    "two_docs.yml": RULE.format(n=903) + "---\n" + RULE.format(n=904),
    "not_windows.yml": RULE.format(n=905).replace("product: windows", "product: linux"),
}


def _rule_folder(root: Path, count: int = 24) -> Path:
    folder = root / "rules"
    (folder / "sub").mkdir(parents=True)
    for n in range(1, count + 1):
        (folder / ("sub" if n % 3 == 0 else "") / f"rule_{n:03d}.yml").write_text(RULE.format(n=n))
    for name, text in ODD_FILES.items():
        (folder / name).write_text(text, encoding="utf-8")
    for example in sorted(EXAMPLES.joinpath("rules").glob("*.yml")):  # correlations too
        (folder / example.name).write_bytes(example.read_bytes())
    (folder / "filter.yml").write_text("""\
title: Not for the admin
logsource:
    product: windows
    category: process_creation
filter:
    rules:
        - 00000000-0000-4000-8000-000000000002
    selection:
        User: admin
    condition: not selection
""")
    return folder


def _normalised(predicates: list[Any]) -> list[Any]:
    # A glob's ``required`` literals of equal length come out of a set (compiler.py), so
    # their order depends on the process's string hash seed; any order means the same.
    return [[*p[:6], sorted(p[6])] for p in predicates]


def _summary(prepared: PreparedRules) -> dict[str, Any]:
    compiled = []
    for rule in prepared.compiled:
        data = rule.to_json()
        data["predicates"] = _normalised(data["predicates"])
        compiled.append(data)
    return {
        "compiled": compiled,
        "failures": [f.to_dict() for f in prepared.failures],
        "correlations": [(c.path, str(c.rule.id)) for c in prepared.correlations],
        "filters": [(f.path, str(f.filter.id), f.filter.title) for f in prepared.filters],
        "filtered": prepared.filtered,
        "files": prepared.files,
    }


def _cache_entries(root: Path) -> dict[str, Any]:
    out = {}
    for path in sorted(root.rglob("*.json")):
        data = orjson.loads(path.read_bytes())
        if "compiled" in data:
            for rule in data["compiled"]:
                rule["predicates"] = _normalised(rule["predicates"])
        out[str(path.relative_to(root))] = data
    return out


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Use the worker path even for a handful of files, in many chunks."""
    monkeypatch.setattr(prepare, "MIN_PARALLEL_FILES", 0)
    monkeypatch.setattr(prepare, "CHUNK_FILES", 2)


# -- YAML ---------------------------------------------------------------------------------

YAML_TEXTS = [
    "a: 1\n---\nb: [x, 'y', \"z\"]\n",
    "a: 2020-01-01\nb: yes\nc: 0o17\nd: 017\ne: .inf\nf: ~\ng: 1_000\n",
    "<<: {a: 1}\nb: &x 2\nc: *x\n",
    'a: "\\ud800"\n',  # libyaml: error; PyYAML: a lone surrogate
    "%FOO bar\n---\na: 1\n",  # libyaml: error; PyYAML: ignores the unknown directive
    "a: \U0001F600\nb: 'x\n\n  y'\n",
    "title: x\ndetection: [unclosed\n",
    "a: b\x07c\n",
    "a:\n\tb: c\n",
    "a: !!python/object:os.system x\n",
]


@pytest.mark.parametrize("text", YAML_TEXTS)
def test_yaml_documents_and_errors_are_pure_python_pyyamls(text: str) -> None:
    try:
        expected: Any = list(yaml.safe_load_all(text))
    except yaml.YAMLError as error:
        with pytest.raises(yaml.YAMLError) as raised:
            parse_yaml_documents(text)
        assert str(raised.value) == str(error)
    else:
        got = parse_yaml_documents(text)
        assert repr(got) == repr(expected)


def test_libyaml_is_used_when_present() -> None:
    assert loader._FAST_LOADER is getattr(yaml, "CSafeLoader", None)


@requires_shared
def test_libyaml_reads_every_sigmahq_rule_as_pure_python_pyyaml() -> None:
    folders = [SHARED / "sigma" / name for name in ("rules", "rules-emerging-threats", "rules-threat-hunting")]
    for path in loader.iter_rule_files([f for f in folders if f.exists()]):
        text = path.read_bytes().decode("utf-8-sig")
        assert repr(parse_yaml_documents(text)) == repr(list(yaml.safe_load_all(text))), path


# -- parallel compile = sequential compile ------------------------------------------------


def test_workers_give_the_same_rules_failures_order_and_cache(tmp_path: Path, small_chunks: None) -> None:
    folder = _rule_folder(tmp_path)
    paths = [folder, tmp_path / "missing.yml", folder / "rule_001.yml"]  # a file twice: a duplicate id
    sequential = prepare_rules(paths, cache_dir=tmp_path / "seq", workers=1)
    parallel = prepare_rules(paths, cache_dir=tmp_path / "par", workers=2)
    assert _summary(parallel) == _summary(sequential)
    assert _cache_entries(tmp_path / "par") == _cache_entries(tmp_path / "seq")

    reasons = {Path(f.path).name: f.reason for f in sequential.failures}
    for name in ("bad_yaml.yml", "empty.yml", "list.yml", "unknown_modifier.yml", "placeholder.yml",
                 "missing.yml"):
        assert name in reasons, name
    assert sum("duplicate rule id" in f.reason for f in sequential.failures) == 2  # in the folder, and listed twice
    assert reasons["bad_yaml.yml"].startswith("invalid YAML")
    assert sequential.correlations and sequential.filters and sequential.filtered
    assert any(r.meta.path.endswith("surrogate_escape.yml") for r in sequential.compiled)

    warm = prepare_rules(paths, cache_dir=tmp_path / "par", workers=2)  # what the workers cached
    assert _summary(warm) == _summary(sequential)
    # Cached: all but the missing file, the 3 correlation files, the filter file and the file
    # JSON cannot hold (a lone surrogate).
    assert warm.cache_hits == sequential.files - 1 - 3 - 1 - 1


def test_no_cache_and_placeholders_in_workers(tmp_path: Path, small_chunks: None) -> None:
    folder = _rule_folder(tmp_path)
    placeholders = {"admins": ["alice", "bob"]}
    sequential = prepare_rules([folder], placeholders, cache_dir=False, workers=1)
    parallel = prepare_rules([folder], placeholders, cache_dir=False, workers=2)
    assert _summary(parallel) == _summary(sequential)
    assert any(r.meta.path.endswith("placeholder.yml") for r in parallel.compiled)


def test_a_chunk_compiled_in_a_spawned_process_is_the_same(tmp_path: Path) -> None:
    folder = _rule_folder(tmp_path)
    files = list(loader.iter_rule_files([folder]))
    here = prepare._compile_chunk(files, None, tmp_path / "here")
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        there = pool.submit(prepare._compile_chunk, files, None, tmp_path / "there").result()
    assert [x is None for x in there] == [x is None for x in here]
    assert [_normalised_entry(x) for x in there] == [_normalised_entry(x) for x in here]
    assert _cache_entries(tmp_path / "there") == _cache_entries(tmp_path / "here")


def _normalised_entry(data: bytes | None) -> Any:
    if data is None:
        return None
    parsed = orjson.loads(data)
    for rule in parsed["compiled"]:
        rule["predicates"] = _normalised(rule["predicates"])
    return parsed


class _FakePool:
    """Stands in for the process pool: every task already finished, or the pool broken."""

    def __init__(self, outcome: Callable[..., Future[Any]]) -> None:
        self.outcome = outcome
        self.submitted = 0

    def __call__(self, *args: Any, **kwargs: Any) -> _FakePool:
        return self

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        self.submitted += 1
        return self.outcome(fn, *args)

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


def _done(fn: Callable[..., Any], *args: Any) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(fn(*args))
    return future


def _broken(fn: Callable[..., Any], *args: Any) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_exception(BrokenProcessPool("a worker died"))
    return future


def _refused(fn: Callable[..., Any], *args: Any) -> Future[Any]:
    raise BrokenProcessPool("the pool is broken")


@pytest.mark.parametrize("outcome", [_done, _broken, _refused],
                         ids=["workers-did-everything", "tasks-lost", "pool-refuses-tasks"])
def test_chunks_done_elsewhere_or_lost_give_the_same_result(
        tmp_path: Path, small_chunks: None, monkeypatch: pytest.MonkeyPatch, outcome: Callable[..., Future[Any]],
) -> None:
    folder = _rule_folder(tmp_path)
    sequential = prepare_rules([folder], cache_dir=tmp_path / "seq", workers=1)
    pool = _FakePool(outcome)
    monkeypatch.setattr(prepare, "ProcessPoolExecutor", pool)
    other = prepare_rules([folder], cache_dir=tmp_path / "other", workers=2)
    assert pool.submitted >= 1
    assert _summary(other) == _summary(sequential)
    assert _cache_entries(tmp_path / "other") == _cache_entries(tmp_path / "seq")


def test_few_files_or_one_worker_start_no_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _rule_folder(tmp_path)

    def no_pool(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("no worker process expected")

    monkeypatch.setattr(prepare, "ProcessPoolExecutor", no_pool)
    prepare_rules([folder], cache_dir=False, workers=2)  # fewer files than MIN_PARALLEL_FILES
    monkeypatch.setattr(prepare, "MIN_PARALLEL_FILES", 0)
    prepare_rules([folder], cache_dir=False, workers=1)
    prepare_rules([folder], cache_dir=False)  # the Python default is one process
    plain = tmp_path / "plain"
    plain.mkdir()
    for n in range(1, 6):
        (plain / f"rule_{n}.yml").write_text(RULE.format(n=n))
    prepare_rules([plain], cache_dir=tmp_path / "cache", workers=1)
    assert prepare_rules([plain], cache_dir=tmp_path / "cache", workers=2).cache_hits == 5  # warm: no compile


# -- cache ----------------------------------------------------------------------------------


def test_each_rule_file_is_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    for n in range(1, 6):
        (folder / f"rule_{n}.yml").write_text(RULE.format(n=n))
    reads: list[str] = []
    original = Path.read_bytes

    def counting(self: Path) -> bytes:
        reads.append(self.name)
        return original(self)

    monkeypatch.setattr(Path, "read_bytes", counting)
    cold = prepare_rules([folder], cache_dir=tmp_path / "cache")
    rule_reads = sorted(r for r in reads if r.startswith("rule_"))
    assert rule_reads == sorted(f"rule_{n}.yml" for n in range(1, 6))
    assert len(cold.compiled) == 5 and cold.cache_hits == 0
    assert prepare_rules([folder], cache_dir=tmp_path / "cache").cache_hits == 5


def test_damaged_or_unwritable_cache_costs_only_speed(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "rule.yml").write_text(RULE.format(n=1))
    cache = tmp_path / "cache"
    cold = prepare_rules([folder], cache_dir=cache)
    (entry,) = cache.rglob("*.json")
    entry.write_bytes(b"{not json")
    again = prepare_rules([folder], cache_dir=cache)
    assert again.cache_hits == 0 and _summary(again) == _summary(cold)
    assert orjson.loads(entry.read_bytes())["compiled"]  # rewritten
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    assert _summary(prepare_rules([folder], cache_dir=blocker / "cache")) == _summary(cold)
    assert not [p for p in cache.rglob("*") if p.name.startswith(".")]  # no temporary file left


def test_cache_root_moves_both_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sigmahunt.cache import CACHE_ENV, cache_root

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c"
    assert prepare.default_cache_dir() == tmp_path / "c" / "rules"
    monkeypatch.setenv(CACHE_ENV, "off")
    assert cache_root() is None and prepare.default_cache_dir() is None


def test_worker_processes_import_no_pandas() -> None:
    """A worker imports this module to compile rules: pandas alone would cost it ~0.35 s."""
    code = "import sys, sigmahunt.rules.prepare; print('pandas' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_process_count_is_one_per_core_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIGMAHUNT_WORKERS", raising=False)
    assert prepare._process_count(3) == 3
    assert prepare._process_count(0) == 1
    assert prepare._process_count(None) == len(os.sched_getaffinity(0))  # not one per two cores: pure Python
    monkeypatch.setenv("SIGMAHUNT_WORKERS", "1")
    assert prepare._process_count(None) == 1


def test_rule_trees_leave_the_collectors_lists(tmp_path: Path) -> None:
    """Rule trees are tuples of ints (and nested such tuples), which the garbage collector
    stops tracking (a nesting level per collection: a tuple is dropped once its items are),
    so the full collection before each hunt walks far fewer of SigmaHQ's ~185,000 tree
    nodes. Read back from the cache they are the same tuples, and so are the plan's trees."""
    import gc

    from sigmahunt.engines.embedded.ir import CompiledRule

    fresh = prepare_rules([EXAMPLES / "rules"], cache_dir=tmp_path)
    cached = prepare_rules([EXAMPLES / "rules"], cache_dir=tmp_path)
    assert cached.cache_hits > 0  # correlation files are not cached; the rest are
    trees = [v.expr for r in fresh.compiled for v in r.variants]
    assert trees and [v.expr for r in cached.compiled for v in r.variants] == trees
    assert [v.expr for r in fresh.compiled for v in CompiledRule.from_json(
        orjson.loads(orjson.dumps(r.to_json()))).variants] == trees
    plan_trees = [v.expr for v in cached.plan().variants]
    for _ in range(max(map(_depth, trees)) + 1):  # a collection drops the lowest tracked level
        gc.collect()
    for tree in [*trees, *[v.expr for r in cached.compiled for v in r.variants], *plan_trees]:
        assert type(tree) is tuple
        assert not gc.is_tracked(tree), tree


def _depth(tree: Any) -> int:
    return 1 + max(map(_depth, tree), default=0) if isinstance(tree, tuple) else 0


def test_collector_paused_restores_what_it_found() -> None:
    import gc

    from sigmahunt.collector import collector_paused

    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner pause found it off
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("a failed load")
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # a caller's own pause is kept
    finally:
        gc.enable()


def test_a_hunt_freezes_the_plan_and_loses_no_garbage(tmp_path: Path) -> None:
    """``_rule_plan_frozen`` collects only the young generations before freezing (a full
    collection walks the whole rule set on every hunt); a cycle that was already old is
    frozen with the rest and collected once the hunt has ended."""
    import gc
    import weakref

    from sigmahunt.hunting import _rule_plan_frozen

    class Node:
        other: Any = None

    prepared = prepare_rules([EXAMPLES / "rules"], cache_dir=tmp_path)
    prepared.plan()
    gc.disable()  # no automatic collection may decide the test
    try:
        old = Node()
        old.other = old
        gone_old = weakref.ref(old)
        gc.collect()  # `old`, still named, survives into the oldest generation
        del old  # an unreachable cycle there
        young = Node()
        young.other = young
        gone_young = weakref.ref(young)
        del young  # an unreachable cycle in the youngest generation
        assert gone_old() is not None and gone_young() is not None
        with _rule_plan_frozen(prepared):
            assert gc.get_freeze_count() > 0
            assert gone_young() is None  # collected before the freeze
            assert gone_old() is not None  # frozen, not lost...
        assert gc.get_freeze_count() == 0
        gc.collect()
        assert gone_old() is None  # ...collected after the hunt
    finally:
        gc.enable()
