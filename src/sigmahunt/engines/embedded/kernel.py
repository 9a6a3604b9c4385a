"""The native rule kernel's glue (``sigmahunt_native.RuleKernel``, native/src/kernel.rs).

Why: with every field matcher native, the hunting thread still spent most of its time in
Python around them: a call per field per batch, the log-source selectors, and the rule
trees as thousands of small NumPy operations. That Python holds the GIL, and the reading
threads, which need it between their own native calls, waited: over the Security-Datasets
corpus reading and matching in one process took the sum of their times, not the larger
(bench/RESULTS.md, session 4). The kernel does a batch in three GIL-free passes; this
module lays the rule set out for it once and, per batch, hands it the columns and answers
what only Python answers (keywords, fieldref, cidr / numeric / time-part fields, non-ASCII
values). :class:`BatchEvaluator`'s Python path stays the reference, and the twin used when
the native package is absent or off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import pyarrow as pa

from sigmahunt.engines.embedded.ir import Kind

if TYPE_CHECKING:
    from sigmahunt.engines.embedded.evaluator import BatchEvaluator, RuleSetPlan, _ColumnIndex, _Work

#: The kernel's row-predicate kinds (ROW_*) and fieldref comparisons (REF_*).
_ROW_KIND = {Kind.EXISTS: 0, Kind.NULL: 1, Kind.FIELDREF: 2}
_FIELDREF_OP = {"eq": 0, "startswith": 1, "endswith": 2}


def arrow_strings(column: pl.Series) -> pa.Array:
    """The column as one Arrow string array, without a copy where Polars allows."""
    if column.dtype != pl.String:
        column = column.cast(pl.String)
    # Arrow's string_view is Polars' own layout: exported without a copy (the classic
    # large_string export copied every batch's column once per field, ~2 s per corpus).
    array = column.to_arrow(compat_level=pl.CompatLevel.newest())
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array


@dataclass
class NativeKernel:
    """A rule set laid out for the native kernel: column slots (field names as rules write
    them, looked up case-insensitively per batch) and the kernel built over them."""

    kernel: Any
    slot_names: list[str]
    #: Kernel field index -> (field name or None for keywords, wanted predicate ids).
    fields: list[tuple[str | None, set[int]]]
    #: Kernel row-predicate index -> predicate id (only Python's kinds are ever asked for).
    row_predicates: list[int]
    keyword_selectors: list[int]

    @classmethod
    def build(cls, module: Any, plan: RuleSetPlan, work: _Work, keyword_selectors: list[int]) -> NativeKernel:
        slots: dict[str, int] = {}

        def slot(name: str) -> int:
            return slots.setdefault(name, len(slots))

        tests: dict[tuple[int, bool, tuple[str, ...]], int] = {}

        def test(name: str, folded: bool, values: tuple[str, ...]) -> int:
            return tests.setdefault((slot(name), folded, values), len(tests))

        selectors = []
        for selector in plan.selectors:
            ands = []
            if selector.channels is not None:
                ands.append(test("Channel", True, selector.channels))
            if selector.event_ids is not None:
                ands.append(test("EventID", False, selector.event_ids))
            ands.extend(test(name, True, (value.lower(),)) for name, value in selector.conditions)
            selectors.append(ands)
        fields = [(None if name is None else slot(name), sorted(gids), sorted(sels))
                  for name, gids, sels in work.fields]
        row_predicates = []
        for gid, sels in work.row_predicates:
            p = plan.predicates[gid]
            other = slot(p.value) if p.kind is Kind.FIELDREF else None
            row_predicates.append((gid, None if p.field is None else slot(p.field), _ROW_KIND[p.kind], sorted(sels),
                                   other, _FIELDREF_OP.get(p.op, 0)))
        variants = [(v.rule_index, v.selector, v.expr, sorted(v.predicates), v.when_all_false,
                     [sorted(c) for c in v.clauses]) for v in plan.variants]
        kernel = module.RuleKernel(len(slots), [(s, f, list(v)) for (s, f, v) in tests], selectors, fields,
                                   row_predicates, variants)
        return cls(
            kernel=kernel,
            slot_names=list(slots),
            fields=[(name, gids) for name, gids, _ in work.fields],
            row_predicates=[gid for gid, _ in work.row_predicates],
            keyword_selectors=keyword_selectors,
        )

    def evaluate(
        self, evaluator: BatchEvaluator, columns: _ColumnIndex, may_build: bool
    ) -> dict[int, np.ndarray] | None:
        """``BatchEvaluator.evaluate``'s result, or None when the kernel declines the batch
        (a non-ASCII value in a log-source column: Python's case folding must decide).

        ``may_build``: the batch is tall enough to build a field's native matcher on its
        first use (see ``NATIVE_MIN_ROWS``); otherwise undecided fields use Python's.
        """
        batch = self.kernel.start(self._arrays(columns), columns.height)
        if batch is None:
            return None
        for index in self.kernel.undecided(batch):
            matcher = evaluator.plan.matchers[self.fields[index][0]]
            if may_build or matcher.native_built:
                self.kernel.set_matcher(index, matcher.native_matcher())
        python_fields, python_rows, declined = self.kernel.match_fields(batch)
        batch.add_masks(self._python_masks(evaluator, columns, batch, python_fields, python_rows))
        if declined:
            batch.add_rows(self._declined_rows(evaluator, declined))
        return {rule: np.frombuffer(rows, dtype=np.int64) for rule, rows in batch.finish()}

    def _arrays(self, columns: _ColumnIndex) -> list[tuple[int, Any, Any]]:
        """The batch's columns the kernel reads, as (slot, Arrow schema, Arrow array) capsules."""
        arrays = []
        for slot, name in enumerate(self.slot_names):
            column = columns.get(name)
            if column is not None and column.null_count() < column.len():
                schema, array = arrow_strings(column).__arrow_c_array__()
                arrays.append((slot, schema, array))
        return arrays

    def _python_masks(
        self, evaluator: BatchEvaluator, columns: _ColumnIndex, batch: Any,
        python_fields: list[tuple[int, Any]], python_rows: list[tuple[int, Any]],
    ) -> list[tuple[int, bytes | None]]:
        """Masks of what the kernel left to Python: keywords, fields with Python's matcher
        (or none decided yet), fieldref rows with non-ASCII values."""
        masks: list[tuple[int, bytes | None]] = []
        selector_masks = None
        for index, rows in python_fields:
            name, wanted = self.fields[index]
            matcher = evaluator.plan.matchers[name]
            if name is None:
                if selector_masks is None:
                    selector_masks = dict(zip(self.keyword_selectors, map(
                        _mask, batch.selector_masks(self.keyword_selectors)), strict=True))
                found = evaluator._keyword_masks(matcher, wanted, columns, _mask(rows), selector_masks)
            else:
                found = evaluator._field_masks(matcher, wanted, columns.get(name), _mask(rows), columns.height)
            masks.extend(_mask_bytes(pid, mask) for pid, mask in found.items() if mask is not False)
        for index, rows in python_rows:
            gid = self.row_predicates[index]
            mask = evaluator._row_predicate(evaluator.plan.predicates[gid], columns, _mask(rows))
            if mask is not False:
                masks.append(_mask_bytes(gid, mask))
        return masks

    def _declined_rows(self, evaluator: BatchEvaluator, declined: list[Any]) -> list[tuple[int, list[int]]]:
        """The non-ASCII values native matchers handed back, matched by Python's matcher."""
        out: list[tuple[int, list[int]]] = []
        for index, items in declined:
            name, wanted = self.fields[index]
            matcher = evaluator.plan.matchers[name]
            for (_, rows), pids in zip(items, matcher.match_values([value for value, _ in items]), strict=True):
                out.extend((pid, rows) for pid in pids if pid in wanted)
        return out


def _mask(rows: Any) -> Any:
    """The kernel's rows (False, True or one byte per row) as an evaluator mask."""
    if rows is True or rows is False:
        return rows
    return np.frombuffer(rows, dtype=bool)


def _mask_bytes(pid: int, mask: Any) -> tuple[int, bytes | None]:
    if mask is True:
        return pid, None
    return pid, np.ascontiguousarray(mask, dtype=bool).tobytes()
