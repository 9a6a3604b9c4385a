"""From rule paths to compiled rules, with a content-keyed cache of the compiled form.

pySigma needs ~2 ms per rule file to parse (about 7 s for SigmaHQ's 3,754 files on this
machine); the compiled form of a file depends only on its bytes, the placeholder values
and the compiler version, so it is cached as JSON (never pickle: the cache folder is just
files a user could edit) under that key. A warm start reads JSON instead of YAML+pySigma.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from sigmahunt import __version__
from sigmahunt.cache import cache_root
from sigmahunt.engines.embedded.compiler import RuleCompileError, compile_rule
from sigmahunt.engines.embedded.ir import CompiledRule
from sigmahunt.results import LEVEL_RANK, write_atomically
from sigmahunt.rules.filters import finish_prepared
from sigmahunt.rules.loader import (
    LoadedCorrelation,
    LoadedFilter,
    RuleFailure,
    iter_rule_files,
    load_rule_file,
)

CACHE_SCHEMA = "1"


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
) -> PreparedRules:
    """Load and compile every rule below ``paths``. ``cache_dir=False`` disables the cache.

    ``filters`` are Sigma filter files or folders (``--filters``), applied with the filter
    documents found among the rules; correlations are resolved last (see
    :func:`sigmahunt.rules.filters.finish_prepared`).
    """
    root = cache_dir if isinstance(cache_dir, Path) else None if cache_dir is False else default_cache_dir()
    cache = None if root is None else Cache(root, placeholders)
    out = PreparedRules()
    seen_ids: dict[str, str] = {}
    unselected: list[CompiledRule] = []
    for path in iter_rule_files(paths):
        out.files += 1
        if not path.exists():
            out.failures.append(RuleFailure(str(path), "no such file or folder"))
            continue
        entry = cache.get(path) if cache else None
        if entry is None:
            entry = _compile_file(path, placeholders)
            if cache and entry.cacheable:
                cache.put(path, entry)
        else:
            out.cache_hits += 1
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


def _compile_file(path: Path, placeholders: Mapping[str, Any] | None) -> _FileEntry:
    loaded = load_rule_file(path)
    entry = _FileEntry(failures=list(loaded.failures), correlations=loaded.correlations, filters=loaded.filters)
    for rule in loaded.rules:
        try:
            entry.compiled.append(compile_rule(rule, placeholders))
        except RuleCompileError as error:
            entry.failures.append(RuleFailure(rule.path, str(error), rule.rule_id or None, rule.rule.title))
    return entry


class Cache:
    """JSON files named by sha256(file bytes, placeholders, sigmahunt version)."""

    def __init__(self, root: Path, placeholders: Mapping[str, Any] | None) -> None:
        self.root = root
        salt = orjson.dumps(dict(placeholders or {}), option=orjson.OPT_SORT_KEYS)
        self.salt = hashlib.sha256(salt + __version__.encode() + CACHE_SCHEMA.encode()).hexdigest()

    def _key(self, path: Path) -> Path | None:
        try:
            content = path.read_bytes()
        except OSError:
            return None
        digest = hashlib.sha256(content + self.salt.encode()).hexdigest()
        return self.root / digest[:2] / f"{digest}.json"

    def get(self, path: Path) -> _FileEntry | None:
        key = self._key(path)
        if key is None or not key.exists():
            return None
        try:
            data = orjson.loads(key.read_bytes())
            entry = _FileEntry(
                compiled=[CompiledRule.from_json(r) for r in data["compiled"]],
                failures=[RuleFailure(str(path), f["reason"], f.get("rule_id"), f.get("title"))
                          for f in data["failures"]],
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None  # a damaged cache entry is just a miss
        for rule in entry.compiled:  # the same bytes may live at another path now
            rule.meta.path = str(path)
        return entry

    def put(self, path: Path, entry: _FileEntry) -> None:
        key = self._key(path)
        if key is None:
            return
        data = {
            "compiled": [r.to_json() for r in entry.compiled],
            "failures": [f.to_dict() for f in entry.failures],
        }
        try:
            write_atomically(key, orjson.dumps(data))
        except OSError:
            pass  # a read-only cache folder only costs speed
