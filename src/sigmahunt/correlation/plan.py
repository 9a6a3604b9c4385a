"""From pySigma correlation rules to a resolved, ordered correlation plan.

A correlation names its rules by id or by ``name``. Names are resolved in the
correlation's own file first (the specification's multi-document files reuse short
names such as ``failed_login`` from file to file), then across every loaded rule, where
a name defined by several rules is reported as ambiguous rather than guessed. References
may be Sigma rules or other correlations (chains); cycles, unknown and ambiguous
references fail the correlation with a reason, and so does every correlation that
depends on a failed one.

The plan also decides what the hunt outputs:

* ``generate: false`` (pySigma's and the specification's default) hides the detections of
  the rules a correlation refers to; a rule referred to by several correlations is hidden
  as soon as one of them does not generate it (pySigma's ``disable_output`` rule).
* The CLI's rule selection (``--level``, ``--tag``...) selects correlations like rules;
  the rules a selected correlation needs are evaluated even when the selection leaves
  them out, and their own detections are then not output.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sigma.correlations import (
    CorrelationConditionAND,
    CorrelationConditionNOT,
    CorrelationConditionOR,
    SigmaCorrelationRule,
    SigmaExtendedCorrelationCondition,
    SigmaRuleReference,
)

from sigmahunt.correlation.conditions import bounds_of
from sigmahunt.engines.embedded.compiler import meta_of
from sigmahunt.engines.embedded.ir import RuleMeta
from sigmahunt.rules.loader import LoadedCorrelation, RuleFailure

#: Sigma levels, least severe first.
_LEVEL_ORDER = ("informational", "low", "medium", "high", "critical")

TYPES = (
    "event_count", "value_count", "temporal", "temporal_ordered",
    "value_sum", "value_avg", "value_percentile", "value_median",
)
#: Types that aggregate a field's values (``condition.field``).
VALUE_TYPES = frozenset({"value_count", "value_sum", "value_avg", "value_percentile", "value_median"})
TEMPORAL_TYPES = frozenset({"temporal", "temporal_ordered"})


def rule_key(rule_id: str | None, path: str | None, title: str | None, correlation: bool = False) -> str:
    """The identity of a rule in records: its id, else its file and title."""
    if rule_id:
        return str(rule_id).lower()
    return f"{path}::{title}" + ("::correlation" if correlation else "")


def record_key(record: Mapping[str, Any]) -> str:
    """:func:`rule_key` of the rule that produced a detection record."""
    return rule_key(record.get("rule_id"), record.get("rule_path"), record.get("rule_title"),
                    bool(record.get("correlation_type")))


@dataclass
class CorrelationSpec:
    """One correlation rule, resolved and ready for :mod:`sigmahunt.correlation.engine`."""

    meta: RuleMeta
    key: str
    type: str
    refs: list[str]  # keys of the referenced rules, in the rule's order (duplicates kept)
    timespan: str
    span_us: int  # timespan in microseconds
    group_by: list[str]
    aliases: dict[str, dict[str, str]]  # alias -> {referenced rule key -> field}
    value_field: str | list[str] | None
    percentile: float | None
    bounds: list[tuple[str, int | float]]
    generate: bool
    expression: Any = None  # extended (boolean) condition of a temporal correlation, over rule keys
    correlation_refs: list[str] = field(default_factory=list)  # refs that are correlations
    level_explicit: bool = True

    @property
    def ref_set(self) -> set[str]:
        return set(self.refs)


@dataclass
class CorrelationPlan:
    """The active correlations in dependency order, and what the hunt outputs."""

    correlations: list[CorrelationSpec] = field(default_factory=list)
    suppressed: set[str] = field(default_factory=set)  # rule keys whose own detections are not output
    base_keys: set[str] = field(default_factory=set)  # Sigma rules the correlations read
    failures: list[RuleFailure] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.correlations) or bool(self.suppressed)

    def by_key(self) -> dict[str, CorrelationSpec]:
        return {c.key: c for c in self.correlations}


class _Unresolved(Exception):
    pass


@dataclass
class _Entry:
    key: str
    rule_id: str
    name: str
    path: str
    correlation: bool
    meta: RuleMeta | None = None


class _Index:
    """Rule and correlation lookup by id, and by name (own file first)."""

    def __init__(self) -> None:
        self.by_id: dict[str, _Entry] = {}
        self.by_name: dict[str, list[_Entry]] = {}

    def add(self, entry: _Entry) -> None:
        if entry.rule_id:
            self.by_id.setdefault(entry.rule_id.lower(), entry)
        if entry.name:
            self.by_name.setdefault(entry.name, []).append(entry)

    def resolve(self, reference: str, from_path: str) -> _Entry:
        text = str(reference).strip()
        entry = self.by_id.get(text.lower())
        if entry is not None:
            return entry
        named = self.by_name.get(text, [])
        local = [e for e in named if e.path == from_path]
        candidates = local or named
        if not candidates:
            raise _Unresolved(f"refers to unknown rule '{text}' (no loaded rule or correlation has this id or name)")
        if len(candidates) > 1:
            where = ", ".join(sorted({e.path for e in candidates}))
            raise _Unresolved(f"rule name '{text}' is ambiguous: defined by {len(candidates)} rules ({where})")
        return candidates[0]


class _MetaHolder:
    """What :meth:`RuleSelection.keeps` reads (``.meta``)."""

    def __init__(self, meta: RuleMeta) -> None:
        self.meta = meta


def correlation_meta(loaded: LoadedCorrelation) -> RuleMeta:
    rule = loaded.rule
    return meta_of(rule, str(rule.id) if rule.id else "", loaded.path, "", default_level="")


def build_plan(
    correlations: Sequence[LoadedCorrelation],
    rules: Iterable[Any],
    selection: Any = None,
    selected: set[str] | None = None,
) -> CorrelationPlan:
    """Resolve ``correlations`` against ``rules`` (compiled rules: anything with ``.meta``).

    ``selected`` holds the keys of the rules the user's selection kept (None: all of them);
    ``selection`` (a :class:`~sigmahunt.rules.prepare.RuleSelection`) selects correlations.
    """
    plan = CorrelationPlan()
    if not correlations:
        return plan
    index = _Index()
    metas: dict[str, RuleMeta] = {}
    for rule in rules:
        meta = rule.meta
        key = rule_key(meta.rule_id, meta.path, meta.title)
        metas[key] = meta
        index.add(_Entry(key, meta.rule_id, meta.name, meta.path, False, meta))
    loaded_by_key: dict[str, LoadedCorrelation] = {}
    for loaded in correlations:
        meta = correlation_meta(loaded)
        key = rule_key(meta.rule_id, meta.path, meta.title, correlation=True)
        if key in loaded_by_key:
            plan.failures.append(RuleFailure(loaded.path, f"duplicate correlation id {meta.rule_id} (already loaded "
                                                          f"from {loaded_by_key[key].path})", meta.rule_id, meta.title))
            continue
        loaded_by_key[key] = loaded
        index.add(_Entry(key, meta.rule_id, meta.name, meta.path, True, meta))

    specs: dict[str, CorrelationSpec] = {}
    failed: dict[str, str] = {}
    for key, loaded in loaded_by_key.items():
        try:
            specs[key] = _spec(loaded, key, index)
        except _Unresolved as error:
            failed[key] = str(error)

    order = _dependency_order(specs, failed)
    _inherit_levels(order, specs, metas)

    # Selection: correlations are selected like rules; what they need comes along.
    chosen = [k for k in order if selection is None or selection.keeps(_MetaHolder(specs[k].meta))]
    active: set[str] = set()
    stack = list(chosen)
    while stack:
        key = stack.pop()
        if key in active:
            continue
        active.add(key)
        stack.extend(r for r in specs[key].correlation_refs)
    plan.correlations = [specs[k] for k in order if k in active]
    for spec in plan.correlations:
        for ref in spec.refs:
            if ref not in specs:
                plan.base_keys.add(ref)
        if not spec.generate:
            plan.suppressed.update(spec.refs)
        if spec.key not in chosen:
            plan.suppressed.add(spec.key)  # needed by a selected correlation, not selected itself
    if selected is not None:
        plan.suppressed.update(k for k in plan.base_keys if k not in selected)
    for key, reason in failed.items():
        loaded = loaded_by_key[key]
        meta = correlation_meta(loaded)
        plan.failures.append(RuleFailure(loaded.path, f"correlation: {reason}", meta.rule_id or None, meta.title))
    return plan


def _spec(loaded: LoadedCorrelation, key: str, index: _Index) -> CorrelationSpec:
    rule: SigmaCorrelationRule = loaded.rule
    kind = rule.type.name.lower()
    if kind not in TYPES:
        raise _Unresolved(f"correlation type '{kind}' is not supported")
    condition = rule.condition
    expression = None
    if isinstance(condition, SigmaExtendedCorrelationCondition):
        if kind != "temporal":
            raise _Unresolved("an extended (boolean) condition is supported for 'temporal' correlations only "
                              "(the order of 'temporal_ordered' under 'not'/'or' is not defined)")
        references = [SigmaRuleReference(r) for r in condition.get_referenced_rules()]
        if rule.rules:
            references = list(rule.rules)
    else:
        references = list(rule.rules or [])
    if not references:
        raise _Unresolved("refers to no rule")
    entries = [index.resolve(r.reference, loaded.path) for r in references]
    refs = [e.key for e in entries]
    if key in refs:
        raise _Unresolved("refers to itself")
    by_reference = {r.reference: e.key for r, e in zip(references, entries)}
    if isinstance(condition, SigmaExtendedCorrelationCondition):
        expression = _expression(
            condition.parsed, lambda ref: by_reference.get(ref) or index.resolve(ref, loaded.path).key)
        bounds: list[tuple[str, int | float]] = []
        value_field = None
        percentile = None
    else:
        bounds = bounds_of(condition)
        value_field = condition.fieldref
        percentile = float(condition.percentile) if condition.percentile is not None else None
    if kind in VALUE_TYPES and not value_field:
        raise _Unresolved(f"a {kind} correlation needs 'field' in its condition")
    if kind == "value_percentile":
        if percentile is None:
            raise _Unresolved("a value_percentile correlation needs 'percentile' (0-100) in its condition")
        if not 0 <= percentile <= 100:
            raise _Unresolved(f"percentile {percentile:g} is not between 0 and 100")
    aliases: dict[str, dict[str, str]] = {}
    for alias in rule.aliases or []:
        mapping: dict[str, str] = {}
        for reference, field_name in alias.mapping.items():
            try:
                mapping[index.resolve(reference.reference, loaded.path).key] = str(field_name)
            except _Unresolved as error:
                raise _Unresolved(f"alias '{alias.alias}': {error}") from None
        aliases[alias.alias] = mapping
    meta = correlation_meta(loaded)
    return CorrelationSpec(
        meta=meta,
        key=key,
        type=kind,
        refs=refs,
        timespan=rule.timespan.spec,
        span_us=int(rule.timespan.seconds) * 1_000_000,
        group_by=[str(g) for g in (rule.group_by or [])],
        aliases=aliases,
        value_field=value_field,
        percentile=percentile,
        bounds=bounds,
        generate=bool(rule.generate),
        expression=expression,
        correlation_refs=[e.key for e in entries if e.correlation],
        level_explicit=bool(meta.level),
    )


def _expression(node: Any, resolve: Any) -> Any:
    """An extended condition as nested tuples over rule keys: ('and'|'or', [..]), ('not', x), key."""
    if isinstance(node, SigmaRuleReference):
        return resolve(node.reference)
    if isinstance(node, CorrelationConditionNOT):
        return ("not", _expression(node.args[0], resolve))
    if isinstance(node, CorrelationConditionAND):
        return ("and", [_expression(a, resolve) for a in node.args])
    if isinstance(node, CorrelationConditionOR):
        return ("or", [_expression(a, resolve) for a in node.args])
    raise _Unresolved(f"unsupported element in extended condition: {node!r}")


def evaluate_expression(expression: Any, present: set[str]) -> bool:
    if isinstance(expression, str):
        return expression in present
    op, payload = expression
    if op == "not":
        return not evaluate_expression(payload, present)
    if op == "and":
        return all(evaluate_expression(p, present) for p in payload)
    return any(evaluate_expression(p, present) for p in payload)


def _dependency_order(specs: dict[str, CorrelationSpec], failed: dict[str, str]) -> list[str]:
    """Correlations after the correlations they refer to; cycles and failed dependencies fail."""
    order: list[str] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(key: str, path: list[str]) -> bool:
        if key in failed:
            return False
        if state.get(key) == 2:
            return True
        if state.get(key) == 1:
            cycle = " -> ".join(specs[k].meta.title or k for k in [*path[path.index(key):], key])
            for k in path[path.index(key):]:
                failed.setdefault(k, f"correlation cycle: {cycle}")
            return False
        state[key] = 1
        ok = True
        for ref in specs[key].correlation_refs:
            if ref not in specs:
                failed.setdefault(key, f"refers to correlation '{ref}' which failed to load")
                ok = False
            elif not visit(ref, [*path, key]):
                failed.setdefault(key, f"refers to correlation '{specs[ref].meta.title or ref}' which cannot run"
                                       f" ({failed.get(ref, 'failed')})")
                ok = False
        state[key] = 2
        if ok and key not in failed:
            order.append(key)
            return True
        return False

    for key in specs:
        visit(key, [])
    return [k for k in order if k not in failed]


def _inherit_levels(order: list[str], specs: dict[str, CorrelationSpec], metas: dict[str, RuleMeta]) -> None:
    """A correlation without ``level`` keeps the most severe level of the rules it refers to.

    The specification calls a correlation's level an *adjustment* of its rules' levels;
    without one there is nothing to adjust.
    """
    for key in order:  # dependencies first
        spec = specs[key]
        if spec.meta.level:
            continue
        levels = []
        for ref in spec.refs:
            meta = specs[ref].meta if ref in specs else metas.get(ref)
            if meta is not None and meta.level in _LEVEL_ORDER:
                levels.append(_LEVEL_ORDER.index(meta.level))
        spec.meta.level = _LEVEL_ORDER[max(levels)] if levels else "informational"
