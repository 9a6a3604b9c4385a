"""Evaluate a whole compiled rule set on one columnar batch of events.

The order of work is what makes it fast and what keeps it exact:

1. log-source selectors first (Channel/EventID ``is_in``), so a rule for Sysmon 1 never
   looks at Security 4624 rows and inactive rules cost nothing;
2. every predicate the active rules need, grouped by field, over distinct values
   (:class:`~.matcher.ValueMatcher`), broadcast back to rows;
3. each rule's AND/OR/NOT tree over those row masks, with constant folding: a predicate
   that matched no row is ``False`` without an array, so ``selection and not filter``
   costs nothing when ``selection`` never matched.

Missing fields follow Sigma, not SQL: a test of a field the event lacks is false, so its
``not`` is true (``selection and not filter`` fires when the filter's field is absent).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from sigmahunt.engines.embedded.ir import (
    AND,
    CONST,
    NOT,
    OR,
    PRED,
    CompiledRule,
    Expr,
    Kind,
    Predicate,
    Selector,
    predicates_of,
)
from sigmahunt.engines.embedded.matcher import ValueMatcher

#: Columns the ingest adds for provenance; never matched by keyword searches.
META_PREFIX = "_"
ROW_KINDS = frozenset({Kind.EXISTS, Kind.NULL, Kind.FIELDREF})

Mask = np.ndarray | bool


@dataclass
class PlannedVariant:
    rule_index: int
    selector: int
    expr: Expr
    predicates: frozenset[int]


@dataclass
class RuleSetPlan:
    """The rule set with predicates deduplicated across rules (global ids)."""

    rules: list[CompiledRule]
    predicates: list[Predicate] = field(default_factory=list)
    selectors: list[Selector] = field(default_factory=list)
    variants: list[PlannedVariant] = field(default_factory=list)
    matchers: dict[str | None, ValueMatcher] = field(default_factory=dict)

    @classmethod
    def build(cls, rules: list[CompiledRule]) -> RuleSetPlan:
        plan = cls(rules=rules)
        pred_ids: dict[Predicate, int] = {}
        selector_ids: dict[Selector, int] = {}
        for index, rule in enumerate(rules):
            remap = []
            for p in rule.predicates:
                gid = pred_ids.get(p)
                if gid is None:
                    gid = pred_ids[p] = len(plan.predicates)
                    plan.predicates.append(p)
                remap.append(gid)
            for variant in rule.variants:
                sid = selector_ids.get(variant.selector)
                if sid is None:
                    sid = selector_ids[variant.selector] = len(plan.selectors)
                    plan.selectors.append(variant.selector)
                expr = _remap(variant.expr, remap)
                plan.variants.append(PlannedVariant(index, sid, expr, frozenset(predicates_of(expr))))
        by_field: dict[str | None, list[tuple[int, Predicate]]] = defaultdict(list)
        for gid, p in enumerate(plan.predicates):
            if p.kind not in ROW_KINDS:
                by_field[p.field].append((gid, p))
        plan.matchers = {f: ValueMatcher.build(items) for f, items in by_field.items()}
        return plan


def _remap(expr: Expr, remap: list[int]) -> Expr:
    op, payload = expr
    if op == PRED:
        return [PRED, remap[payload]]
    if op == NOT:
        return [NOT, _remap(payload, remap)]
    if op in (AND, OR):
        return [op, [_remap(c, remap) for c in payload]]
    return [op, payload]


class BatchEvaluator:
    """Evaluates a :class:`RuleSetPlan` on Polars batches (all columns strings)."""

    def __init__(self, plan: RuleSetPlan) -> None:
        self.plan = plan

    def evaluate(self, frame: pl.DataFrame) -> dict[int, np.ndarray]:
        """Rule index -> sorted row indices of the batch that the rule detects."""
        if frame.height == 0:
            return {}
        columns = _ColumnIndex(frame)
        selector_masks = [self._selector_mask(s, columns) for s in self.plan.selectors]
        active = [v for v in self.plan.variants if selector_masks[v.selector] is not False]
        needed: set[int] = set()
        for variant in active:
            needed |= variant.predicates
        values = self._predicate_masks(needed, columns)
        hits: dict[int, np.ndarray] = {}
        for variant in active:
            mask = _and(_evaluate(variant.expr, values, frame.height), selector_masks[variant.selector])
            if mask is False:
                continue
            if mask is True:
                rows = np.arange(frame.height)
            else:
                rows = np.flatnonzero(mask)
                if rows.size == 0:
                    continue
            previous = hits.get(variant.rule_index)
            hits[variant.rule_index] = rows if previous is None else np.union1d(previous, rows)
        return hits

    # -- log-source selectors -------------------------------------------------------------

    def _selector_mask(self, selector: Selector, columns: _ColumnIndex) -> Mask:
        mask: Mask = True
        if selector.channels is not None:
            mask = _and(mask, columns.folded_is_in("Channel", selector.channels))
        if selector.event_ids is not None and mask is not False:
            mask = _and(mask, columns.is_in("EventID", selector.event_ids))
        for name, value in selector.conditions:
            if mask is False:
                break
            mask = _and(mask, columns.folded_is_in(name, (value.lower(),)))
        if mask is not True and mask is not False and not mask.any():
            return False
        return mask

    # -- predicates -------------------------------------------------------------------------

    def _predicate_masks(self, needed: set[int], columns: _ColumnIndex) -> dict[int, Mask]:
        out: dict[int, Mask] = {}
        by_field: dict[str | None, list[int]] = defaultdict(list)
        for gid in needed:
            p = self.plan.predicates[gid]
            if p.kind in ROW_KINDS:
                out[gid] = self._row_predicate(p, columns)
            else:
                by_field[p.field].append(gid)
        for field_name, gids in by_field.items():
            matcher = self.plan.matchers[field_name]
            wanted = set(gids)
            if field_name is None:
                masks = self._keyword_masks(matcher, wanted, columns)
            else:
                masks = self._field_masks(matcher, wanted, columns.get(field_name), columns.height)
            for gid in gids:
                out[gid] = masks.get(gid, False)
        return out

    def _field_masks(
        self, matcher: ValueMatcher, wanted: set[int], column: pl.Series | None, height: int
    ) -> dict[int, Mask]:
        if column is None:
            return {}
        codes, distinct = _dictionary_encode(column)
        if not distinct:
            return {}
        matched = matcher.match_values(distinct)
        per_pred: dict[int, list[int]] = defaultdict(list)
        for index, pids in enumerate(matched):
            for pid in pids:
                if pid in wanted:
                    per_pred[pid].append(index)
        masks: dict[int, Mask] = {}
        size = len(distinct) + 1  # last slot: null rows, never matched
        for pid, indices in per_pred.items():
            lut = np.zeros(size, dtype=bool)
            lut[indices] = True
            masks[pid] = lut[codes]
        return masks

    def _keyword_masks(self, matcher: ValueMatcher, wanted: set[int], columns: _ColumnIndex) -> dict[int, Mask]:
        out: dict[int, Mask] = {}
        for name in columns.frame.columns:
            if name.startswith(META_PREFIX):
                continue
            for pid, mask in self._field_masks(matcher, wanted, columns.frame[name], columns.height).items():
                out[pid] = _or(out.get(pid, False), mask)
        return out

    def _row_predicate(self, p: Predicate, columns: _ColumnIndex) -> Mask:
        column = columns.get(p.field) if p.field is not None else None
        if p.kind is Kind.EXISTS:
            return False if column is None else _as_mask(column.is_not_null().to_numpy())
        if p.kind is Kind.NULL:
            return True if column is None else _as_mask(column.is_null().to_numpy())
        # FIELDREF: compare two columns row by row, case-insensitively like every string test.
        other = columns.get(p.value)
        if column is None or other is None:
            return False
        left, right = column.str.to_lowercase(), other.str.to_lowercase()
        if p.op == "startswith":
            result = pl.select(pl.lit(left).str.starts_with(pl.lit(right))).to_series()
        elif p.op == "endswith":
            result = pl.select(pl.lit(left).str.ends_with(pl.lit(right))).to_series()
        else:
            result = left == right
        return _as_mask(result.fill_null(False).to_numpy())


class _ColumnIndex:
    """Case-insensitive access to a batch's columns (``image`` finds ``Image``)."""

    def __init__(self, frame: pl.DataFrame) -> None:
        self.frame = frame
        self.height = frame.height
        self._by_lower: dict[str, str] = {}
        for name in frame.columns:
            self._by_lower.setdefault(name.lower(), name)
        self._folded: dict[str, pl.Series] = {}

    def get(self, name: str) -> pl.Series | None:
        if name in self.frame.columns:
            return self.frame[name]
        actual = self._by_lower.get(name.lower())
        return None if actual is None else self.frame[actual]

    def folded_is_in(self, name: str, values: tuple[str, ...]) -> Mask:
        series = self._folded.get(name)
        if series is None:
            column = self.get(name)
            if column is None:
                return False
            series = self._folded[name] = column.str.to_lowercase()
        return _as_mask(series.is_in(list(values)).fill_null(False).to_numpy())

    def is_in(self, name: str, values: tuple[str, ...]) -> Mask:
        column = self.get(name)
        if column is None:
            return False
        return _as_mask(column.is_in(list(values)).fill_null(False).to_numpy())


def _dictionary_encode(column: pl.Series) -> tuple[np.ndarray, list[str]]:
    """Row codes into the column's distinct non-null values; nulls get code len(distinct).

    Arrow's hash-based ``dictionary_encode`` does this in C++ (~10 ms per 500k rows).
    """
    if column.dtype != pl.String:
        column = column.cast(pl.String)
    encoded = pc.dictionary_encode(column.to_arrow())
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    distinct = encoded.dictionary.to_pylist()
    codes = pc.fill_null(encoded.indices, len(distinct)).to_numpy()
    return codes, distinct


def _as_mask(array: np.ndarray) -> Mask:
    return array.astype(bool, copy=False)


def _and(a: Mask, b: Mask) -> Mask:
    if a is False or b is False:
        return False
    if a is True:
        return b
    if b is True:
        return a
    return a & b


def _or(a: Mask, b: Mask) -> Mask:
    if a is True or b is True:
        return True
    if a is False:
        return b
    if b is False:
        return a
    return a | b


def _evaluate(expr: Expr, values: dict[int, Mask], height: int) -> Mask:
    op, payload = expr
    if op == PRED:
        return values[payload]
    if op == AND:
        result: Mask = True
        for child in payload:
            result = _and(result, _evaluate(child, values, height))
            if result is False:
                return False
        return result
    if op == OR:
        result = False
        for child in payload:
            result = _or(result, _evaluate(child, values, height))
            if result is True:
                return True
        return result
    if op == NOT:
        inner = _evaluate(payload, values, height)
        if inner is True:
            return False
        if inner is False:
            return True
        return ~inner
    if op == CONST:
        return bool(payload)
    raise ValueError(f"unknown expression node {op}")
