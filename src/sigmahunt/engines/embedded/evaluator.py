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

With the native module, :meth:`BatchEvaluator.evaluate` runs these steps in the rule
kernel (native/src/kernel.rs, glue in :mod:`.kernel`) without the GIL; the Python code
here answers what the kernel leaves to it and stays the reference (``_evaluate_python``).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

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
from sigmahunt.engines.embedded.kernel import NativeKernel, arrow_strings
from sigmahunt.engines.embedded.keywords import (
    BatchKeywordScanner,
    ChunkKeywordScanner,
    KeywordPrefilter,
    RawKeywordPrefilter,
)
from sigmahunt.engines.embedded.matcher import ValueMatcher
from sigmahunt.ingest import RAW_COL, RAW_HITS_COL, complete_rows
from sigmahunt.native import native

#: Batches at least this tall build a field's native matcher (native/src/matcher.rs) on first
#: use; shorter ones, as in a hunt over a few events, keep the Python matcher unless the
#: native one exists already: building them all (~0.5 s) costs more than such a hunt.
NATIVE_MIN_ROWS = 2_000

#: Columns the ingest adds for provenance; never matched by keyword searches.
META_PREFIX = "_"
ROW_KINDS = frozenset({Kind.EXISTS, Kind.NULL, Kind.FIELDREF})

Mask = np.ndarray | bool
#: Selector index -> rows: a list over all selectors, or (the kernel's keyword search) a mapping.
SelectorMasks = Sequence[Mask] | Mapping[int, Mask]


@dataclass
class PlannedVariant:
    rule_index: int
    selector: int
    expr: Expr
    predicates: frozenset[int]
    #: The tree's value when every predicate is False (``not filter`` alone is True).
    when_all_false: bool = False
    #: Sets of predicates of which at least one must hold somewhere for the tree to hold
    #: anywhere (see :func:`necessary_clauses`): a cheap set test before the tree's arrays.
    clauses: tuple[frozenset[int], ...] = ()


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
                preds = frozenset(predicates_of(expr))
                baseline = _evaluate(expr, dict.fromkeys(preds, False), 0)
                plan.variants.append(
                    PlannedVariant(index, sid, expr, preds, bool(baseline), tuple(necessary_clauses(expr))))
        by_field: dict[str | None, list[tuple[int, Predicate]]] = defaultdict(list)
        for gid, p in enumerate(plan.predicates):
            if p.kind not in ROW_KINDS:
                by_field[p.field].append((gid, p))
        plan.matchers = {f: ValueMatcher.build(items) for f, items in by_field.items()}
        return plan

    def fields_read(self) -> frozenset[str]:
        """Every field a predicate or a log-source selector tests (keywords aside): what a
        hunt must read of each event (see :class:`sigmahunt.ingest.Projection`)."""
        names = {"Channel", "EventID"}
        for p in self.predicates:
            if p.field is not None:
                names.add(p.field)
            if p.kind is Kind.FIELDREF:
                names.add(p.value)
        for selector in self.selectors:
            names.update(name for name, _ in selector.conditions)
        return frozenset(names)


def necessary_clauses(expr: Expr) -> list[frozenset[int]]:
    """Predicate sets each of which must contain a predicate that holds on some row of a
    batch for ``expr`` to hold on any row. Sound, not complete: ``a and (b or c) and not d``
    gives ``{a}, {b, c}``; a ``not`` gives nothing (it holds when its inside does not).

    Most variants a batch touches (through one common predicate, ``Image|endswith:
    \\powershell.exe``) fail such a test: a set lookup instead of their trees' arrays.
    """
    op, payload = expr
    if op == PRED:
        return [frozenset((payload,))]
    if op == AND:
        return [clause for child in payload for clause in necessary_clauses(child)]
    if op == OR:
        union: set[int] = set()
        for child in payload:
            clauses = necessary_clauses(child)
            if not clauses:  # this branch may hold with nothing live: no clause for the OR
                return []
            union |= min(clauses, key=len)
        return [frozenset(union)]
    if op == CONST and not payload:
        return [frozenset()]  # never holds
    return []


def _keyword_prefilters(
    plan: RuleSetPlan,
) -> tuple[dict[int, KeywordPrefilter | None], dict[int, RawKeywordPrefilter | None]]:
    """Per selector, prefilters over the literals one of which any keyword match must
    contain: over columns, and over raw JSON lines (projected events)."""
    by_selector: dict[int, list[tuple[int, Predicate]]] = defaultdict(list)
    for variant in plan.variants:
        for gid in variant.predicates:
            p = plan.predicates[gid]
            if p.field is None and p.kind not in ROW_KINDS:
                by_selector[variant.selector].append((gid, p))
    out: dict[int, KeywordPrefilter | None] = {}
    raw: dict[int, RawKeywordPrefilter | None] = {}
    for selector, items in by_selector.items():
        literals = ValueMatcher.build(items).prefilter_literals()
        out[selector] = None if literals is None else KeywordPrefilter(*literals)
        raw[selector] = None if literals is None else RawKeywordPrefilter.of(*literals)
    return out, raw


def _remap(expr: Expr, remap: list[int]) -> Expr:
    op, payload = expr
    if op == PRED:
        return (PRED, remap[payload])
    if op == NOT:
        return (NOT, _remap(payload, remap))
    if op in (AND, OR):
        return (op, tuple(_remap(c, remap) for c in payload))
    return (op, payload)


@dataclass
class _Work:
    """The rule set's work laid out once: per field the predicates tested on it, and per
    predicate the variants testing it, so a batch touches only what its rows can make
    true (grouping thousands of predicates per batch was a third of the evaluation)."""

    #: Per field (None: keywords): the predicates tested on it, and the selectors of the
    #: variants testing them (its values matter on those selectors' rows only).
    fields: list[tuple[str | None, set[int], frozenset[int]]]
    #: Row-level predicates (exists, null, fieldref) and the selectors of the variants testing each.
    row_predicates: list[tuple[int, frozenset[int]]]
    #: Predicate id -> indices (into plan.variants) of the variants testing it (tuples:
    #: the garbage collector stops tracking them, see ``ir.Expr``).
    variants_of: dict[int, tuple[int, ...]]
    #: Variants true where all their tests are false (``not filter`` alone): always evaluated.
    true_when_all_false: list[int]

    @classmethod
    def build(cls, plan: RuleSetPlan) -> _Work:
        by_field: dict[str | None, set[int]] = defaultdict(set)
        field_selectors: dict[str | None, set[int]] = defaultdict(set)
        rows: dict[int, set[int]] = defaultdict(set)
        variants_of: dict[int, list[int]] = defaultdict(list)
        for index, variant in enumerate(plan.variants):
            for gid in variant.predicates:
                variants_of[gid].append(index)
                p = plan.predicates[gid]
                if p.kind in ROW_KINDS:
                    rows[gid].add(variant.selector)
                else:
                    by_field[p.field].add(gid)
                    field_selectors[p.field].add(variant.selector)
        return cls(
            fields=[(name, gids, frozenset(field_selectors[name])) for name, gids in by_field.items()],
            row_predicates=[(gid, frozenset(rows[gid])) for gid in sorted(rows)],
            variants_of={gid: tuple(indices) for gid, indices in variants_of.items()},
            true_when_all_false=[i for i, v in enumerate(plan.variants) if v.when_all_false],
        )

    def touched_by(
        self, plan: RuleSetPlan, values: dict[int, Mask], selector_masks: list[Mask]
    ) -> list[PlannedVariant]:
        """The variants that can hold: of a selector with rows here, testing a predicate true
        on some row or true when every test is false. Every other variant is false."""
        indices = set(self.true_when_all_false)
        for gid in values:
            indices.update(self.variants_of.get(gid, ()))
        variants = (plan.variants[i] for i in sorted(indices))
        return [v for v in variants if selector_masks[v.selector] is not False]


class BatchEvaluator:
    """Evaluates a :class:`RuleSetPlan` on Polars batches (all columns strings)."""

    def __init__(self, plan: RuleSetPlan) -> None:
        self.plan = plan
        # Which selectors' rows each field (None: keywords) must be matched on.
        self._keyword_prefilters, self._raw_keyword_prefilters = _keyword_prefilters(plan)
        #: For the ingest: scans raw lines for every keyword group at once (see RAW_HITS_COL).
        self.chunk_keyword_scanner = ChunkKeywordScanner.build(self._raw_keyword_prefilters)
        #: Column keyword candidates for all selectors at once (None without Hyperscan).
        self._batch_keyword_scanner = BatchKeywordScanner.build(self._keyword_prefilters)
        self._native_module = native()
        self._kernel: NativeKernel | None = None
        self._preparing: threading.Thread | None = None
        self._preparing_error: BaseException | None = None

    @cached_property
    def _work(self) -> _Work:
        """The per-rule work tables: built on first use, or by :meth:`start_preparing`."""
        return _Work.build(self.plan)

    def start_preparing(self) -> None:
        """Build the work tables and the native kernel in a thread, from now on.

        Why: with SigmaHQ's Windows rules they take ~0.08 s, which a hunt would otherwise
        spend before it starts reading. A hunt calls this first; the reader parses its first
        batch meanwhile, natively and mostly without the GIL (bench/RESULTS.md, session 8).
        :meth:`evaluate` waits for the thread and raises what it raised.
        """
        if self._preparing is None and self._kernel is None:
            self._preparing = threading.Thread(target=self._prepare, name="sigmahunt-evaluator-prepare",
                                               daemon=True)
            self._preparing.start()

    def _prepare(self) -> None:
        try:
            self._native_kernel()
        except BaseException as exc:  # handed to the evaluating thread by _prepared
            self._preparing_error = exc

    def _prepared(self) -> None:
        if self._preparing is not None:
            self._preparing.join()
            self._preparing = None
            error, self._preparing_error = self._preparing_error, None
            if error is not None:
                raise error

    def _native_kernel(self) -> NativeKernel | None:
        if self._native_module is None:
            self._work  # noqa: B018 - the Python path's tables, built here on purpose
            return None
        if self._kernel is None:
            self._kernel = NativeKernel.build(self._native_module, self.plan, self._work,
                                              sorted(self._raw_keyword_prefilters))
        return self._kernel

    def evaluate(self, frame: pl.DataFrame) -> dict[int, np.ndarray]:
        """Rule index -> sorted row indices of the batch that the rule detects."""
        if frame.height == 0:
            return {}
        self._prepared()
        columns = _ColumnIndex(frame)
        kernel = self._native_kernel()
        if kernel is not None:
            hits = kernel.evaluate(self, columns, frame.height >= NATIVE_MIN_ROWS)
            if hits is not None:
                return hits
        return self._evaluate_python(columns)

    def _evaluate_python(self, columns: _ColumnIndex) -> dict[int, np.ndarray]:
        """The reference evaluation (and the twin of native/src/kernel.rs)."""
        frame = columns.frame
        selector_masks = [self._selector_mask(s, columns) for s in self.plan.selectors]
        values = self._predicate_masks(columns, selector_masks)
        live = set(values)
        hits: dict[int, np.ndarray] = {}
        for variant in self._work.touched_by(self.plan, values, selector_masks):
            if any(clause.isdisjoint(live) for clause in variant.clauses):
                continue  # a necessary predicate holds nowhere: false on every row
            if variant.predicates.isdisjoint(live):  # every test false: the value is known
                mask = selector_masks[variant.selector]
            else:
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
            mask = _and(mask, columns.folded_in("Channel", selector.channels))
        if selector.event_ids is not None and mask is not False:
            mask = _and(mask, columns.exact_in("EventID", selector.event_ids))
        for name, value in selector.conditions:
            if mask is False:
                break
            mask = _and(mask, columns.folded_in(name, (value.lower(),)))
        if mask is not True and mask is not False and not mask.any():
            return False
        return mask

    # -- predicates -------------------------------------------------------------------------

    def _predicate_masks(self, columns: _ColumnIndex, selector_masks: list[Mask]) -> dict[int, Mask]:
        """Masks of the predicates that hold on some row; a predicate absent is False."""
        out: dict[int, Mask] = {}
        unions: dict[frozenset[int], Mask] = {}
        for gid, selectors in self._work.row_predicates:
            rows = self._rows_of(selectors, selector_masks, unions)
            if rows is False:
                continue
            mask = self._row_predicate(self.plan.predicates[gid], columns, rows)
            if mask is not False:
                out[gid] = mask
        for field_name, wanted, selectors in self._work.fields:
            rows = self._rows_of(selectors, selector_masks, unions)
            if rows is False:
                continue
            matcher = self.plan.matchers[field_name]
            if field_name is None:
                masks = self._keyword_masks(matcher, wanted, columns, rows, selector_masks)
            else:
                masks = self._field_masks(matcher, wanted, columns.get(field_name), rows, columns.height)
            for gid, mask in masks.items():
                if mask is not False:
                    out[gid] = mask
        return out

    def _rows_of(
        self, selectors: frozenset[int], selector_masks: list[Mask], unions: dict[frozenset[int], Mask]
    ) -> Mask:
        """Rows whose values matter for tests made by variants of ``selectors``: the rows of
        those selectors.

        Outside them every rule making the test is false anyway (its selector is ANDed), so
        matching there would be wasted work: a Security-only batch never scans CommandLine
        for the 1,400 process_creation rules' literals unless 4688 rows are present.
        """
        active = frozenset(s for s in selectors if selector_masks[s] is not False)
        if active in unions:
            return unions[active]
        mask: Mask = False
        for s in active:
            mask = _or(mask, selector_masks[s])
            if mask is True:
                break
        unions[active] = mask
        return mask

    def _field_masks(
        self, matcher: ValueMatcher, wanted: set[int], column: pl.Series | None, rows: Mask, height: int
    ) -> dict[int, Mask]:
        if column is None:
            return {}
        native_matcher = matcher.native_matcher() if matcher.native_built or height >= NATIVE_MIN_ROWS else None
        if native_matcher is not None:
            return _native_field_masks(native_matcher, matcher, wanted, column, rows, height)
        positions = None
        if rows is not True:
            positions = np.flatnonzero(rows)
            column = column.filter(pl.Series(rows))
        if column.null_count() == column.len():
            return {}
        codes, distinct = _encode_arrow(arrow_strings(column))
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
            if positions is None:
                masks[pid] = lut[codes]
            else:
                full = np.zeros(height, dtype=bool)
                full[positions] = lut[codes]
                masks[pid] = full
        return masks

    def _keyword_masks(
        self, matcher: ValueMatcher, wanted: set[int], columns: _ColumnIndex, rows: Mask,
        selector_masks: SelectorMasks,
    ) -> dict[int, Mask]:
        """Keywords: any field's value. One vectorised pass finds candidate rows, then exact.

        A keyword rule with no log-source restriction (SigmaHQ's "Mimikatz Use") must look
        at every field of every event; matching each column's distinct values costs more
        than the rest of the rule set. Instead a literal prefilter (:mod:`.keywords`) keeps
        only rows that can match: over the columns of complete rows, over the raw line of
        rows read under a projection (whose columns hold only the fields rules name). The
        exact per-field test then runs on the candidates alone, projected ones read in full.
        """
        frame = columns.frame
        projected: Mask = False
        if RAW_COL in frame.columns:
            projected = _as_mask(frame.get_column(RAW_COL).is_not_null().to_numpy())
            projected = _as_constant(projected)
        candidates, searched = self._candidates_and_columns(frame, _and(rows, _not(projected)), selector_masks)
        if projected is not False and RAW_HITS_COL in frame.columns and self.chunk_keyword_scanner is not None:
            raw_candidates = self._scanned_candidates(frame, _and(rows, projected), selector_masks)
            candidates = _or(candidates, raw_candidates)
        elif projected is not False:
            raw_candidates = self._keyword_candidates(
                self._raw_keyword_prefilters, lambda prefilter, subset: prefilter.candidate_rows(
                    subset.get_column(RAW_COL), subset.height),
                frame, _and(rows, projected), selector_masks)
            candidates = _or(candidates, raw_candidates)
        if candidates is False:
            return {}
        if projected is not False:  # the candidates, every field: few rows
            positions = np.flatnonzero(np.broadcast_to(candidates, (frame.height,)))
            frame = complete_rows(frame[positions.tolist()])
            candidates = True
        else:
            positions = None
        names = [n for n in frame.columns if not n.startswith(META_PREFIX)]
        if positions is None and searched is not None:  # only columns where a literal lies
            names = [n for n in names if n in searched]
        out: dict[int, Mask] = {}
        for name in names:
            column_masks = self._field_masks(matcher, wanted, frame[name], candidates, frame.height)
            for pid, mask in column_masks.items():
                out[pid] = _or(out.get(pid, False), mask)
        if positions is not None:
            out = {pid: _scatter(mask, positions, columns.height) for pid, mask in out.items()}
        return out

    def _scanned_candidates(self, frame: pl.DataFrame, rows: Mask, selector_masks: SelectorMasks) -> Mask:
        """Keyword candidates among projected rows, from the ingest's raw-line scan flags."""
        if rows is False:
            return False
        flags = frame.get_column(RAW_HITS_COL).fill_null(0).to_numpy()
        bits = self.chunk_keyword_scanner.bits
        hit = np.zeros(frame.height, dtype=bool)
        for selector, prefilter in self._raw_keyword_prefilters.items():
            mask = _and(selector_masks[selector], rows)
            if mask is False:
                continue
            found = (flags & np.uint64(bits[selector])) != 0 if prefilter is not None else True
            hit |= np.broadcast_to(_and(found, mask), (frame.height,))
        return hit if hit.any() else False

    def _column_candidates(self, frame: pl.DataFrame, rows: Mask, selector_masks: SelectorMasks) -> Mask:
        """Keyword candidates among ``rows`` (complete rows), searched in every column."""
        return self._candidates_and_columns(frame, rows, selector_masks)[0]

    def _candidates_and_columns(
        self, frame: pl.DataFrame, rows: Mask, selector_masks: SelectorMasks
    ) -> tuple[Mask, set[str] | None]:
        """Keyword candidates among ``rows`` (complete rows), searched in every column, and
        the columns a keyword can match in (None: any).

        With the batch scanner all active selectors are searched at once
        (:class:`.BatchKeywordScanner`: each column scanned once per batch, not once per
        selector), over the union of their rows, then each selector's candidates are ANDed
        with its rows; a keyword only matches a value holding one of its selector's
        literals, so only the columns where one was found need the exact test (on EVTX
        batches, a few of ~100). Without the scanner each selector's
        :class:`.KeywordPrefilter` searches its own rows with Polars.
        """
        names = [n for n in frame.columns if not n.startswith(META_PREFIX)]
        scanner = self._batch_keyword_scanner
        if scanner is None:
            return self._keyword_candidates(
                self._keyword_prefilters, lambda prefilter, subset: prefilter.candidate_rows(
                    subset.select(names).get_columns(), subset.height),
                frame, rows, selector_masks), None
        if frame.width == 0 or rows is False:
            return False, None
        hit = np.zeros(frame.height, dtype=bool)
        scanned: dict[int, Mask] = {}  # selector with literals -> its rows among ``rows``
        any_column = False
        for selector, prefilter in self._keyword_prefilters.items():
            mask = _and(selector_masks[selector], rows)
            if mask is False:
                continue
            if prefilter is None:  # a keyword without any literal: every row of the selector
                hit |= mask
                any_column = True
            else:
                scanned[selector] = mask
        columns_hit: set[int] = set()
        if scanned:
            found = _scan_columns(scanner, [frame.get_column(n) for n in names], frame.height, scanned, columns_hit)
            for selector, mask in scanned.items():
                hit |= _and(found[selector], mask)
        searched = None if any_column else {names[i] for i in columns_hit}
        return (hit if hit.any() else False), searched

    def _keyword_candidates(
        self, prefilters: dict[int, Any], scan: Callable[[Any, pl.DataFrame], np.ndarray],
        frame: pl.DataFrame, rows: Mask, selector_masks: SelectorMasks,
    ) -> Mask:
        """Rows that contain a literal of some active keyword rule (see :mod:`.keywords`)."""
        if frame.width == 0 or rows is False:
            return False
        hit = np.zeros(frame.height, dtype=bool)
        for selector, prefilter in prefilters.items():
            mask = _and(selector_masks[selector], rows)
            if mask is False:
                continue
            if prefilter is None:  # a keyword without any literal: every row of the selector
                hit |= mask if mask is not True else np.ones(frame.height, dtype=bool)
                continue
            if mask is True:
                hit |= scan(prefilter, frame)
                continue
            positions = np.flatnonzero(mask)
            if positions.size == 0:
                continue
            subset = frame[positions.tolist()] if positions.size < frame.height // 2 else frame
            found = scan(prefilter, subset)
            if subset is frame:
                hit |= found & mask
            else:
                hit[positions[found]] = True
        return hit if hit.any() else False

    def _row_predicate(self, p: Predicate, columns: _ColumnIndex, rows: Mask) -> Mask:
        """Exists / null / fieldref. ``rows``: where it matters (elsewhere its rules' selectors
        are false, so its value there is never used)."""
        column = columns.get(p.field) if p.field is not None else None
        if p.kind is Kind.EXISTS:
            return False if column is None else _valid_mask(column)
        if p.kind is Kind.NULL:
            return True if column is None else _not(_valid_mask(column))
        # FIELDREF: compare two columns row by row, case-insensitively like every string test,
        # on the rows that matter only (lowercasing whole columns per batch cost ~1 s a hunt).
        other = columns.get(p.value)
        if column is None or other is None:
            return False
        positions = None
        if rows is not True:
            positions = np.flatnonzero(rows)
            selected = pl.Series(rows)
            column, other = column.filter(selected), other.filter(selected)
        left, right = column.str.to_lowercase(), other.str.to_lowercase()
        if p.op == "startswith":
            result = pl.select(pl.lit(left).str.starts_with(pl.lit(right))).to_series()
        elif p.op == "endswith":
            result = pl.select(pl.lit(left).str.ends_with(pl.lit(right))).to_series()
        else:
            result = left == right
        mask = _as_mask(result.fill_null(False).to_numpy())
        return mask if positions is None else _scatter(mask, positions, columns.height)


class _ColumnIndex:
    """Case-insensitive access to a batch's columns (``image`` finds ``Image``)."""

    def __init__(self, frame: pl.DataFrame) -> None:
        self.frame = frame
        self.height = frame.height
        self._by_lower: dict[str, list[str]] = defaultdict(list)
        for name in frame.columns:
            self._by_lower[name.lower()].append(name)
        self._merged: dict[str, pl.Series] = {}
        self._encodings: dict[tuple[str, bool], tuple[np.ndarray, dict[str, list[int]]] | None] = {}
        self._in_masks: dict[tuple[str, tuple[str, ...], bool], Mask] = {}

    def get(self, name: str) -> pl.Series | None:
        """The field's values; spellings that differ in case (``Image`` from one source,
        ``image`` from another, packed into one batch) are merged, exact spelling first."""
        spellings = self._by_lower.get(name.lower())
        if not spellings:
            return None
        if len(spellings) == 1:
            return self.frame[spellings[0]]
        merged = self._merged.get(name)
        if merged is None:
            # As pl.coalesce, Series by Series: a frame-level select (or Series.fill_null,
            # built on one) runs Polars' lazy engine, ~2 ms on a wide batch
            # (bench/RESULTS.md, session 10).
            first, *others = (self.frame.get_column(s) for s in sorted(spellings, key=lambda s: s != name))
            for other in others:
                first = first.zip_with(first.is_not_null(), other)
            merged = self._merged[name] = first.alias(name)
        return merged

    def _encoded(self, name: str, folded: bool) -> tuple[np.ndarray, dict[str, list[int]]] | None:
        """Codes of a (small-cardinality) column and value -> code indices, cached per batch."""
        key = (name, folded)
        if key not in self._encodings:
            column = self.get(name)
            if column is None:
                self._encodings[key] = None
            else:
                codes, distinct = _dictionary_encode(column)
                index: dict[str, list[int]] = defaultdict(list)
                for i, value in enumerate(distinct):
                    index[value.lower() if folded else value].append(i)
                self._encodings[key] = (codes, index)
        return self._encodings[key]

    def folded_in(self, name: str, values: tuple[str, ...]) -> Mask:
        return self._in(name, values, folded=True)

    def exact_in(self, name: str, values: tuple[str, ...]) -> Mask:
        return self._in(name, values, folded=False)

    def _in(self, name: str, values: tuple[str, ...], folded: bool) -> Mask:
        """Rows whose value is one of ``values``; remembered per batch (dozens of selectors
        share a channel, and several rules the same EventID list)."""
        key = (name, values, folded)
        mask = self._in_masks.get(key)
        if mask is None:
            mask = self._in_masks[key] = self._compute_in(name, values, folded)
        return mask

    def _compute_in(self, name: str, values: tuple[str, ...], folded: bool) -> Mask:
        encoded = self._encoded(name, folded)
        if encoded is None:
            return False
        codes, index = encoded
        hits = [i for v in values for i in index.get(v, ())]
        if not hits:
            return False
        lut = np.zeros(int(codes.max(initial=0)) + 2, dtype=bool)
        lut[hits] = True
        return lut[codes]


def _native_field_masks(native_matcher: Any, matcher: ValueMatcher, wanted: set[int], column: pl.Series,
                        rows: Mask, height: int) -> dict[int, Mask]:
    """``_field_masks`` by the native twin: one pass over the column's Arrow buffers (only
    the ``rows`` positions), masks built in Rust. Values it hands back (non-ASCII, where
    case folding must stay Python's) are matched by the Python matcher here."""
    if column.null_count() == column.len():
        return {}
    positions = None if rows is True else np.flatnonzero(rows)
    if positions is not None and positions.size == 0:
        return {}
    schema, array = arrow_strings(column).__arrow_c_array__()
    wanted_rows = None if positions is None else positions.astype("<i8").tobytes()
    found, declined = native_matcher.masks(schema, array, wanted_rows)
    masks: dict[int, Mask] = {pid: np.frombuffer(mask, dtype=bool) for pid, mask in found if pid in wanted}
    if declined:
        for (_, value_rows), pids in zip(declined, matcher.match_values([value for value, _ in declined])):
            for pid in pids:
                if pid in wanted:
                    _set_rows(masks, pid, value_rows, height)
    return masks


def _scan_columns(
    scanner: BatchKeywordScanner, columns: list[pl.Series], height: int, masks: dict[int, Mask],
    columns_hit: set[int] | None = None,
) -> dict[int, np.ndarray]:
    """Per selector, the rows (of ``height``) holding one of its literals in one of the
    ``columns``; searched in the union of the selectors' rows (gathered first when under
    half the batch, as each selector's own rows once were; elsewhere the answer is unused).
    ``height`` is explicit: a batch without any column has none. ``columns_hit`` receives
    the indices of the columns where a literal was found. Columns, not a frame: selecting
    ~100 of a batch's columns into a frame ran Polars' lazy engine, ~2 ms a batch
    (bench/RESULTS.md, session 10)."""
    union: Mask = False
    for mask in masks.values():
        union = _or(union, mask)
    positions = None if union is True else np.flatnonzero(union)
    if positions is None or positions.size >= height // 2:
        return scanner.candidate_rows(columns, height, list(masks), columns_hit)
    subset = [column.gather(positions) for column in columns]
    found = scanner.candidate_rows(subset, positions.size, list(masks), columns_hit)
    out: dict[int, np.ndarray] = {}
    for selector, rows in found.items():
        out[selector] = np.zeros(height, dtype=bool)
        out[selector][positions] = rows
    return out


def _set_rows(masks: dict[int, Mask], pid: int, rows: list[int], height: int) -> None:
    """``masks[pid][rows] = True``, creating the mask when the pid has none yet."""
    mask = masks.get(pid)
    if not isinstance(mask, np.ndarray):
        mask = masks[pid] = np.zeros(height, dtype=bool)
    mask[rows] = True


def _encode_arrow(array: pa.Array) -> tuple[np.ndarray, list[str]]:
    """Row codes into the distinct non-null values; nulls get code len(distinct).

    Arrow's hash-based ``dictionary_encode`` does this in C++ (~10 ms per 500k rows).
    """
    encoded = pc.dictionary_encode(array)
    distinct = encoded.dictionary.to_pylist()
    codes = pc.fill_null(encoded.indices, len(distinct)).to_numpy()
    return codes, distinct


def _dictionary_encode(column: pl.Series) -> tuple[np.ndarray, list[str]]:
    return _encode_arrow(arrow_strings(column))


def _valid_mask(column: pl.Series) -> Mask:
    """Rows where the column has a value, folded to a constant when all or none do (a
    Polars ``is_not_null`` runs a lazy query per call: ~0.25 ms, 29 times per batch)."""
    nulls = column.null_count()
    if nulls == 0:
        return True
    if nulls == column.len():
        return False
    return np.asarray(arrow_strings(column).is_valid().to_numpy(zero_copy_only=False), dtype=bool)


def _as_mask(array: np.ndarray) -> Mask:
    return array.astype(bool, copy=False)


def _not(a: Mask) -> Mask:
    if a is True or a is False:
        return not a
    return ~a


def _as_constant(mask: np.ndarray) -> Mask:
    """An all-true or all-false mask as the constant (so folding applies)."""
    if mask.all():
        return True
    if not mask.any():
        return False
    return mask


def _scatter(mask: Mask, positions: np.ndarray, height: int) -> Mask:
    """A mask over a subset's rows (at ``positions``) as a mask over all ``height`` rows."""
    if mask is False:
        return False
    full = np.zeros(height, dtype=bool)
    full[positions] = mask
    return full


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
        return values.get(payload, False)
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
