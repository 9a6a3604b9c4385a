"""Sigma filter documents (``filter:`` with ``rules:`` targets), applied before compilation.

Filters come from ``--filters PATH`` and from filter documents found among the rules.
Each is applied by pySigma (``SigmaFilter.apply_on_rule``: the rule's condition becomes
``(condition) and (filter condition)``, only when the rule's log source is within the
filter's and the rule is named by id or name, or ``rules: any``), and the filtered rule
is what gets compiled, so every engine runs the filtered rule.

The compiled-rule cache is keyed by a file's bytes: a filtered rule is compiled from a
fresh pySigma parse of its file, with the filters' own digests added to the cache key,
so a cached unfiltered compilation is never used for a filtered rule (nor the reverse).

A filter naming a rule that is not loaded is reported (as a failure of the filter's
file); so is a filter naming a correlation rule (Sigma filters apply to detection rules).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sigma.filters import SigmaFilter

from sigmahunt.correlation import build_plan, rule_key
from sigmahunt.correlation import conditions as _conditions  # noqa: F401  (pySigma: range conditions)
from sigmahunt.engines.embedded.compiler import RuleCompileError, compile_rule
from sigmahunt.engines.embedded.ir import CompiledRule
from sigmahunt.results import write_atomically
from sigmahunt.rules.loader import (
    LoadedCorrelation,
    LoadedFilter,
    RuleFailure,
    iter_rule_files,
    load_rule_file,
)


@dataclass
class FilterReport:
    """Which filters applied to which rules (rule key -> filter titles)."""

    applied: dict[str, list[str]] = field(default_factory=dict)
    failures: list[RuleFailure] = field(default_factory=list)


def load_filters(paths: Sequence[str | Path]) -> tuple[list[LoadedFilter], list[RuleFailure]]:
    """Filter documents below ``paths`` (``--filters``); other documents there are reported."""
    filters: list[LoadedFilter] = []
    failures: list[RuleFailure] = []
    for path in iter_rule_files(paths):
        if not path.exists():
            failures.append(RuleFailure(str(path), "no such filter file or folder"))
            continue
        loaded = load_rule_file(path)
        failures.extend(loaded.failures)
        filters.extend(loaded.filters)
        for item in [*(r.rule for r in loaded.rules), *(c.rule for c in loaded.correlations)]:
            failures.append(RuleFailure(str(path), "a --filters file holds a rule, not a filter: ignored",
                                        str(item.id) if item.id else None, item.title))
        if not loaded.filters and not loaded.failures and not loaded.rules and not loaded.correlations:
            failures.append(RuleFailure(str(path), "no filter document in this file"))
    return filters, failures


def _filter_digest(loaded: LoadedFilter) -> str:
    try:
        content = orjson.dumps(loaded.filter.to_dict(), default=str, option=orjson.OPT_SORT_KEYS)
    except (TypeError, ValueError, AttributeError):
        content = Path(loaded.path).read_bytes() + str(loaded.filter.title).encode()
    return hashlib.sha256(content).hexdigest()


def _title(loaded: LoadedFilter) -> str:
    return loaded.filter.title or (str(loaded.filter.id) if loaded.filter.id else loaded.path)


def _logsource_may_match(sigma_filter: SigmaFilter, rule: CompiledRule) -> bool:
    """A cheap necessary condition for ``rule.logsource in filter.logsource`` (pySigma decides)."""
    parts = set(rule.meta.logsource.split("/")) if rule.meta.logsource else set()
    source = sigma_filter.logsource
    return all(value is None or value in parts for value in (source.product, source.category, source.service))


def _targets_any(sigma_filter: SigmaFilter) -> bool:
    rules = sigma_filter.filter.rules
    return isinstance(rules, str) and rules.lower() == "any"


def apply_filters(
    rules: Sequence[CompiledRule],
    filters: Sequence[LoadedFilter],
    correlations: Sequence[LoadedCorrelation] = (),
    placeholders: Mapping[str, Any] | None = None,
    cache: Any = None,
) -> tuple[dict[int, CompiledRule | RuleFailure], FilterReport]:
    """Recompile every rule some filter targets, with the filters applied by pySigma.

    Returns {index in ``rules``: the filtered compiled rule, or a failure when the filtered
    rule cannot compile} and a report (filters applied per rule, filters naming unknown
    rules). ``cache`` is the :class:`sigmahunt.rules.prepare.Cache` (its ``root`` and ``salt``) or None.
    """
    report = FilterReport()
    if not filters:
        return {}, report
    unique: dict[tuple[str, str], LoadedFilter] = {}
    for loaded in filters:
        unique.setdefault((_filter_digest(loaded), _title(loaded)), loaded)
    ordered = sorted(unique.items())  # deterministic order: the cache key depends on it

    by_id: dict[str, list[int]] = {}
    by_name: dict[str, list[int]] = {}
    for position, rule in enumerate(rules):
        if rule.meta.rule_id:
            by_id.setdefault(rule.meta.rule_id.lower(), []).append(position)
        if rule.meta.name:
            by_name.setdefault(rule.meta.name, []).append(position)
    correlation_refs = {str(c.rule.id).lower() for c in correlations if c.rule.id} | {
        c.rule.name for c in correlations if c.rule.name}

    candidates: dict[int, list[tuple[str, LoadedFilter]]] = {}
    for (digest, _), loaded in ordered:
        sigma_filter = loaded.filter
        if _targets_any(sigma_filter):
            targets: Iterable[int] = (i for i, r in enumerate(rules) if _logsource_may_match(sigma_filter, r))
        else:
            found: list[int] = []
            for reference in sigma_filter.filter.rules:
                text = str(getattr(reference, "reference", reference)).strip()
                hits = by_id.get(text.lower()) or by_name.get(text)
                if hits:
                    found.extend(hits)
                elif text.lower() in correlation_refs or text in correlation_refs:
                    report.failures.append(RuleFailure(
                        loaded.path, f"filter '{_title(loaded)}' names correlation rule '{text}': Sigma filters "
                                     f"apply to detection rules only (not applied)"))
                else:
                    report.failures.append(RuleFailure(
                        loaded.path, f"filter '{_title(loaded)}' targets unknown rule '{text}' "
                                     f"(no loaded rule has this id or name)"))
            targets = [i for i in found if _logsource_may_match(sigma_filter, rules[i])]
        for position in targets:
            candidates.setdefault(position, []).append((digest, loaded))

    by_path: dict[str, list[int]] = {}
    for position in candidates:
        by_path.setdefault(rules[position].meta.path, []).append(position)
    replaced: dict[int, CompiledRule | RuleFailure] = {}
    for path, positions in sorted(by_path.items()):
        wanted = {p: candidates[p] for p in positions}
        replaced.update(_refilter_file(Path(path), rules, wanted, placeholders, cache, report))
    return replaced, report


def _same_rule(compiled: CompiledRule, rule: Any) -> bool:
    meta = compiled.meta
    if meta.rule_id:
        return bool(rule.id) and str(rule.id).lower() == meta.rule_id.lower()
    return not rule.id and (rule.title or "") == meta.title and (rule.name or "") == meta.name


def _rule_ident(rule_id: str, title: str, name: str) -> str:
    return f"{rule_id}|{title}|{name}"


def _refilter_file(
    path: Path,
    rules: Sequence[CompiledRule],
    wanted: Mapping[int, list[tuple[str, LoadedFilter]]],
    placeholders: Mapping[str, Any] | None,
    cache: Any,
    report: FilterReport,
) -> dict[int, CompiledRule | RuleFailure]:
    digests = sorted({d for pairs in wanted.values() for d, _ in pairs})
    cache_file = _cache_file(cache, path, digests)
    out: dict[int, CompiledRule | RuleFailure] = {}
    entries = _cache_read(cache_file)
    if entries is not None:
        for position in wanted:
            meta = rules[position].meta
            entry = entries.get(_rule_ident(meta.rule_id, meta.title, meta.name))
            if entry is None:
                break
            if entry["applied"]:
                compiled = CompiledRule.from_json(entry["compiled"])
                compiled.meta.path = str(path)
                out[position] = compiled
                report.applied[_key(compiled)] = list(entry["applied"])
        else:
            return out
        out.clear()
    loaded = load_rule_file(path)
    to_cache: dict[str, Any] = {}
    cacheable = True
    for position, pairs in wanted.items():
        target = rules[position]
        ident = _rule_ident(target.meta.rule_id, target.meta.title, target.meta.name)
        matches = [r for r in loaded.rules if _same_rule(target, r.rule)]
        if len(matches) != 1:
            cacheable = False
            continue
        loaded_rule = matches[0]
        titles = []
        for _, loaded_filter in pairs:
            before = list(loaded_rule.rule.detection.condition)
            loaded_rule.rule = loaded_filter.filter.apply_on_rule(loaded_rule.rule)  # type: ignore[assignment]
            if loaded_rule.rule.detection.condition != before:
                titles.append(_title(loaded_filter))
        if not titles:
            to_cache[ident] = {"applied": [], "compiled": None}
            continue  # pySigma decided the rule's log source is outside the filter's
        try:
            compiled = compile_rule(loaded_rule, placeholders)
        except Exception as error:  # noqa: BLE001 - RuleCompileError, or a filter the rule cannot take
            reason = str(error) if isinstance(error, RuleCompileError) else f"cannot apply: {error}"
            out[position] = RuleFailure(str(path), f"with filter(s) {', '.join(titles)}: {reason}",
                                        target.meta.rule_id or None, target.meta.title)
            cacheable = False
            continue
        out[position] = compiled
        report.applied[_key(compiled)] = titles
        to_cache[ident] = {"applied": titles, "compiled": compiled.to_json()}
    if cache_file is not None and cacheable:
        try:
            write_atomically(cache_file, orjson.dumps(to_cache))
        except OSError:
            pass  # a read-only cache folder only costs speed
    return out


def _cache_file(cache: Any, path: Path, digests: Sequence[str]) -> Path | None:
    """The cache entry of a file compiled with these filters: its bytes + the filters + the cache's salt."""
    root, salt = getattr(cache, "root", None), getattr(cache, "salt", None)
    if root is None or not isinstance(salt, str):
        return None  # no cache, or one this module does not know: compile without caching
    try:
        content = path.read_bytes()
    except OSError:
        return None
    digest = hashlib.sha256(content + b"\0filters\0" + "\n".join(digests).encode() + salt.encode()).hexdigest()
    return Path(root) / "filtered" / digest[:2] / f"{digest}.json"


def _cache_read(cache_file: Path | None) -> dict[str, Any] | None:
    if cache_file is None or not cache_file.exists():
        return None
    try:
        data = orjson.loads(cache_file.read_bytes())
        return data if isinstance(data, dict) else None
    except (orjson.JSONDecodeError, OSError):
        return None


def _key(rule: CompiledRule) -> str:
    return rule.meta.rule_id or f"{rule.meta.path}::{rule.meta.title}"


def finish_prepared(
    out: Any,
    unselected: list[CompiledRule],
    selection: Any,
    placeholders: Mapping[str, Any] | None,
    cache: Any,
    filter_paths: Sequence[str | Path],
) -> None:
    """The end of ``prepare_rules``: apply filters to the rules they target, then resolve correlations.

    ``out`` is the :class:`~sigmahunt.rules.prepare.PreparedRules` being built.

    Rules the selection left out still take filters and may be pulled back in: a selected
    correlation needs its rules evaluated (their own detections are then not output).
    """
    if filter_paths:
        extra, failures = load_filters(filter_paths)
        out.filters.extend(extra)
        out.failures.extend(failures)
    if out.filters:
        pool = out.compiled + unselected
        replaced, report = apply_filters(pool, out.filters, out.correlations, placeholders, cache)
        out.failures.extend(report.failures)
        out.filtered = report.applied
        for position, item in replaced.items():
            if isinstance(item, RuleFailure):
                out.failures.append(item)
            else:
                pool[position] = item
        n = len(out.compiled)
        out.compiled = [r for i, r in enumerate(pool[:n]) if not isinstance(replaced.get(i), RuleFailure)]
        unselected[:] = [r for i, r in enumerate(pool[n:], n) if not isinstance(replaced.get(i), RuleFailure)]
    if out.correlations:
        selected = {rule_key(r.meta.rule_id, r.meta.path, r.meta.title) for r in out.compiled}
        plan = build_plan(out.correlations, out.compiled + unselected, selection,
                          selected if selection is not None else None)
        out.failures.extend(plan.failures)
        needed = [r for r in unselected if rule_key(r.meta.rule_id, r.meta.path, r.meta.title) in plan.base_keys]
        out.compiled.extend(needed)
        out.correlation_plan = plan
