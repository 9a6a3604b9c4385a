//! The rule set's evaluation of one batch, as few calls as possible: the Rust twin of
//! `BatchEvaluator.evaluate` (engines/embedded/evaluator.py), which stays the reference.
//!
//! Why native: with the field matchers native (matcher.rs), what was left on the hunting
//! thread was Python glue around them: about 95 calls per batch, one per field, the
//! log-source selectors, and thousands of small NumPy operations for the rule trees. That
//! glue holds the GIL, and the reading threads (native too, but driven from Python) then
//! waited for it: measured over the Security-Datasets corpus, reading and matching in one
//! process took the sum of their times rather than the larger (bench/RESULTS.md, session
//! 4). Here a batch is three GIL-free passes: selectors and field rows (`start`), every
//! native field matcher (`match_fields`), the trees (`finish`). Python keeps what only it
//! answers (keywords, fieldref, cidr / numeric / time-part fields, non-ASCII values) and
//! hands its masks in between.
//!
//! Masks are bitsets (one bit per row) with constant folding, as the Python twin folds
//! `True`/`False`; the rows each rule detects come out the same by construction: the
//! same predicates, on the same rows, through the same AND/OR/NOT.

use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyCapsule};

use crate::arrow_view::StringArrayView;
use crate::fast_map::FastMap;
use crate::matcher::{Declined, FieldMatcher};

// Expression nodes as ir.py writes them: [op, payload].
const AND: u8 = 0;
const OR: u8 = 1;
const NOT: u8 = 2;
const PRED: u8 = 3;
const CONST: u8 = 4;

// Row predicates: exists and null from a column's validity; fieldref compares two columns
// (rows where either value is non-ASCII are Python's: its lowercasing is the reference).
const ROW_EXISTS: u8 = 0;
const ROW_NULL: u8 = 1;
const ROW_FIELDREF: u8 = 2;
const REF_EQUALS: u8 = 0;
const REF_STARTSWITH: u8 = 1;
const REF_ENDSWITH: u8 = 2;

/// A row mask: all false, all true, or one bit per row (bits past the height are zero).
#[derive(Clone)]
enum Mask {
    False,
    True,
    Bits(Vec<u64>),
}

impl Mask {
    fn is_false(&self) -> bool {
        matches!(self, Mask::False)
    }

    /// `Bits` with no bit set becomes `False` (the Python twin's `.any()` checks).
    fn folded(self) -> Mask {
        match self {
            Mask::Bits(words) if words.iter().all(|w| *w == 0) => Mask::False,
            other => other,
        }
    }

    fn and(self, other: &Mask) -> Mask {
        match (self, other) {
            (Mask::False, _) | (_, Mask::False) => Mask::False,
            (Mask::True, b) => b.clone(),
            (a, Mask::True) => a,
            (Mask::Bits(mut a), Mask::Bits(b)) => {
                a.iter_mut().zip(b).for_each(|(x, y)| *x &= y);
                Mask::Bits(a)
            }
        }
    }

    fn or(self, other: &Mask) -> Mask {
        match (self, other) {
            (Mask::True, _) | (_, Mask::True) => Mask::True,
            (Mask::False, b) => b.clone(),
            (a, Mask::False) => a,
            (Mask::Bits(mut a), Mask::Bits(b)) => {
                a.iter_mut().zip(b).for_each(|(x, y)| *x |= y);
                Mask::Bits(a)
            }
        }
    }

    fn not(self, height: usize) -> Mask {
        match self {
            Mask::False => Mask::True,
            Mask::True => Mask::False,
            Mask::Bits(mut words) => {
                words.iter_mut().for_each(|w| *w = !*w);
                clear_tail(&mut words, height);
                Mask::Bits(words)
            }
        }
    }

    /// The rows it holds, ascending.
    fn rows(&self, height: usize) -> Vec<usize> {
        match self {
            Mask::False => Vec::new(),
            Mask::True => (0..height).collect(),
            Mask::Bits(words) => {
                let mut out = Vec::new();
                for (i, &word) in words.iter().enumerate() {
                    let mut w = word;
                    while w != 0 {
                        out.push(i * 64 + w.trailing_zeros() as usize);
                        w &= w - 1;
                    }
                }
                out
            }
        }
    }

    /// One byte per row (NumPy's bool layout), for Python.
    fn to_bytes(&self, height: usize) -> Vec<u8> {
        let mut out = vec![0u8; height];
        match self {
            Mask::False => {}
            Mask::True => out.fill(1),
            Mask::Bits(_) => self.rows(height).into_iter().for_each(|r| out[r] = 1),
        }
        out
    }

    fn from_bools(bools: &[u8]) -> Mask {
        let mut words = vec![0u64; bools.len().div_ceil(64)];
        for (row, &b) in bools.iter().enumerate() {
            if b != 0 {
                words[row / 64] |= 1 << (row % 64);
            }
        }
        Mask::Bits(words).folded()
    }

    fn from_rows(rows: &[usize], height: usize) -> Mask {
        let mut words = vec![0u64; height.div_ceil(64)];
        for &row in rows {
            words[row / 64] |= 1 << (row % 64);
        }
        Mask::Bits(words).folded()
    }
}

fn clear_tail(words: &mut [u64], height: usize) {
    if !height.is_multiple_of(64) {
        if let Some(last) = words.last_mut() {
            *last &= (1u64 << (height % 64)) - 1;
        }
    }
}

/// A rule tree over predicate ids.
enum Node {
    Pred(u32),
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Const(bool),
}

impl Node {
    fn parse(expr: &Bound<'_, PyAny>) -> PyResult<Node> {
        let op: u8 = expr.get_item(0)?.extract()?;
        let payload = expr.get_item(1)?;
        Ok(match op {
            PRED => Node::Pred(payload.extract()?),
            CONST => Node::Const(payload.is_truthy()?),
            NOT => Node::Not(Box::new(Node::parse(&payload)?)),
            AND | OR => {
                let children = payload.try_iter()?.map(|c| Node::parse(&c?)).collect::<PyResult<Vec<_>>>()?;
                if op == AND { Node::And(children) } else { Node::Or(children) }
            }
            _ => return Err(PyValueError::new_err(format!("unknown expression node {op}"))),
        })
    }

    /// Mirrors evaluator._evaluate: a predicate without a mask is false.
    fn evaluate(&self, values: &FastMap<u32, Mask>, height: usize) -> Mask {
        match self {
            Node::Pred(pid) => values.get(pid).cloned().unwrap_or(Mask::False),
            Node::Const(value) => if *value { Mask::True } else { Mask::False },
            Node::Not(inner) => inner.evaluate(values, height).not(height),
            Node::And(children) => {
                let mut result = Mask::True;
                for child in children {
                    result = result.and(&child.evaluate(values, height));
                    if result.is_false() {
                        return Mask::False;
                    }
                }
                result
            }
            Node::Or(children) => {
                let mut result = Mask::False;
                for child in children {
                    result = result.or(&child.evaluate(values, height));
                    if matches!(result, Mask::True) {
                        return Mask::True;
                    }
                }
                result
            }
        }
    }
}

/// What `match_fields` leaves to Python: field rows, fieldref rows, declined values.
type PythonShare<'py> = (Vec<(usize, Bound<'py, PyAny>)>, Vec<(usize, Bound<'py, PyAny>)>, Vec<(usize, Declined)>);
/// A row predicate as `NativeKernel.build` lays it out: (pid, column slot, ROW_* kind,
/// selectors, fieldref's other slot, REF_* comparison).
type RowPredicateSpec = (u32, Option<usize>, u8, Vec<u32>, Option<usize>, u8);
/// A variant: (rule index, selector, tree as ir.py writes it, predicates, value when every
/// predicate is false, necessary clauses).
type VariantSpec<'py> = (u32, u32, Bound<'py, PyAny>, Vec<u32>, bool, Vec<Vec<u32>>);

/// A log-source test: the column's value (ASCII-lowercased when `folded`) is one of `values`.
struct InTest {
    slot: usize,
    folded: bool,
    values: Vec<Vec<u8>>,
}

struct FieldWork {
    /// None: keywords (any field), always Python's.
    slot: Option<usize>,
    wanted: Vec<u32>,
    selectors: Vec<u32>,
}

struct RowPredicate {
    pid: u32,
    slot: Option<usize>,
    kind: u8,
    selectors: Vec<u32>,
    /// Fieldref: the other column's slot, and how the two compare (REF_*).
    other: Option<usize>,
    op: u8,
}

struct Variant {
    rule: u32,
    selector: u32,
    tree: Node,
    predicates: Vec<u32>,
    when_all_false: bool,
    clauses: Vec<Vec<u32>>,
}

/// The rule set's layout (evaluator._Work's twin), shared by the kernel and its batches.
struct Plan {
    slots: usize,
    in_tests: Vec<InTest>,
    /// Per selector: the in-tests ANDed (none: every row).
    selectors: Vec<Vec<usize>>,
    fields: Vec<FieldWork>,
    row_predicates: Vec<RowPredicate>,
    variants: Vec<Variant>,
    variants_of: FastMap<u32, Vec<u32>>,
    true_when_all_false: Vec<u32>,
}

impl Plan {
    /// Every index in range and every kind known: the batches index without checking.
    fn check(&self) -> PyResult<()> {
        let (slots, selectors) = (self.slots, self.selectors.len() as u32);
        let slot_ok = |slot: &Option<usize>| slot.is_none_or(|s| s < slots);
        let tests_ok = self.in_tests.iter().all(|t| t.slot < slots)
            && self.selectors.iter().flatten().all(|&t| t < self.in_tests.len());
        let fields_ok = self.fields.iter().all(|f| slot_ok(&f.slot) && f.selectors.iter().all(|&s| s < selectors));
        let rows_ok = self.row_predicates.iter().all(|r| {
            slot_ok(&r.slot)
                && slot_ok(&r.other)
                && r.selectors.iter().all(|&s| s < selectors)
                && [ROW_EXISTS, ROW_NULL, ROW_FIELDREF].contains(&r.kind)
                && [REF_EQUALS, REF_STARTSWITH, REF_ENDSWITH].contains(&r.op)
        });
        let variants_ok = self.variants.iter().all(|v| v.selector < selectors);
        if tests_ok && fields_ok && rows_ok && variants_ok {
            Ok(())
        } else {
            Err(PyValueError::new_err("the rule layout refers to an unknown column, test, selector or kind"))
        }
    }
}

enum MatcherState {
    /// Not decided yet: Python builds it on a batch tall enough (`NATIVE_MIN_ROWS`).
    Unbuilt,
    /// Python's matcher answers (cidr, numeric, time-part tests; keywords).
    Python,
    Native(Py<FieldMatcher>),
}

/// A compiled rule set (see the module docs); built by `BatchEvaluator`.
#[pyclass(module = "sigmahunt_native")]
pub struct RuleKernel {
    plan: Arc<Plan>,
    matchers: Vec<MatcherState>,
}

/// One batch's state between the kernel's passes.
#[pyclass(module = "sigmahunt_native")]
pub struct KernelBatch {
    plan: Arc<Plan>,
    height: usize,
    views: Vec<Option<StringArrayView>>,
    _capsules: Vec<Py<PyCapsule>>,
    selector_masks: Vec<Mask>,
    /// Per field: the rows its values matter on (its selectors' union).
    field_rows: Vec<Mask>,
    row_predicate_rows: Vec<Mask>,
    /// Per fieldref predicate (row-predicate index): the rows Python must compare.
    python_rows: Vec<(usize, Mask)>,
    values: FastMap<u32, Mask>,
    declined: Vec<(usize, Declined)>,
}

/// A `FieldMatcher` borrowed for one GIL-free pass (the borrow guards outlive it).
struct MatcherPtr(*mut FieldMatcher);
// SAFETY: each pointer comes from a distinct PyRefMut held by the caller for the pass.
unsafe impl Send for MatcherPtr {}

#[pymethods]
impl RuleKernel {
    #[new]
    fn new(
        slots: usize,
        in_tests: Vec<(usize, bool, Vec<String>)>,
        selectors: Vec<Vec<usize>>,
        fields: Vec<(Option<usize>, Vec<u32>, Vec<u32>)>,
        row_predicates: Vec<RowPredicateSpec>,
        variants: Vec<VariantSpec<'_>>,
    ) -> PyResult<Self> {
        let in_tests: Vec<InTest> = in_tests
            .into_iter()
            .map(|(slot, folded, values)| InTest { slot, folded, values: values.into_iter().map(String::into_bytes).collect() })
            .collect();
        let fields: Vec<FieldWork> =
            fields.into_iter().map(|(slot, wanted, selectors)| FieldWork { slot, wanted, selectors }).collect();
        let row_predicates: Vec<RowPredicate> = row_predicates
            .into_iter()
            .map(|(pid, slot, kind, selectors, other, op)| RowPredicate { pid, slot, kind, selectors, other, op })
            .collect();
        let mut parsed = Vec::with_capacity(variants.len());
        for (rule, selector, expr, predicates, when_all_false, clauses) in variants {
            parsed.push(Variant { rule, selector, tree: Node::parse(&expr)?, predicates, when_all_false, clauses });
        }
        let mut variants_of: FastMap<u32, Vec<u32>> = FastMap::default();
        for (index, variant) in parsed.iter().enumerate() {
            for &pid in &variant.predicates {
                variants_of.entry(pid).or_default().push(index as u32);
            }
        }
        let true_when_all_false =
            parsed.iter().enumerate().filter(|(_, v)| v.when_all_false).map(|(i, _)| i as u32).collect();
        let matchers =
            fields.iter().map(|f| if f.slot.is_none() { MatcherState::Python } else { MatcherState::Unbuilt }).collect();
        let plan = Plan { slots, in_tests, selectors, fields, row_predicates, variants: parsed, variants_of, true_when_all_false };
        plan.check()?;
        Ok(RuleKernel { plan: Arc::new(plan), matchers })
    }

    /// Decide field `index`'s matcher: a native one, or None for Python's.
    fn set_matcher(&mut self, index: usize, matcher: Option<Py<FieldMatcher>>) -> PyResult<()> {
        let state = self.matchers.get_mut(index).ok_or_else(|| PyValueError::new_err("no such field"))?;
        *state = match matcher {
            Some(m) => MatcherState::Native(m),
            None => MatcherState::Python,
        };
        Ok(())
    }

    /// First pass: log-source selectors and each field's rows. `columns`: the batch's
    /// present columns as (slot, Arrow schema capsule, Arrow array capsule). None when a
    /// selector's column holds a non-ASCII value (Python's `str.lower` must fold it: the
    /// caller evaluates that batch in Python).
    fn start(
        &self,
        py: Python<'_>,
        columns: Vec<(usize, Bound<'_, PyCapsule>, Bound<'_, PyCapsule>)>,
        height: usize,
    ) -> PyResult<Option<KernelBatch>> {
        let mut views: Vec<Option<StringArrayView>> = (0..self.plan.slots).map(|_| None).collect();
        let mut capsules = Vec::with_capacity(columns.len() * 2);
        for (slot, schema, array) in columns {
            let view = StringArrayView::from_capsules(&schema, &array)?;
            if slot >= self.plan.slots || view.len() != height {
                return Err(PyValueError::new_err("a column's slot or length does not fit the batch"));
            }
            views[slot] = Some(view);
            capsules.push(schema.unbind());
            capsules.push(array.unbind());
        }
        let plan = Arc::clone(&self.plan);
        let masks = py.detach(|| selector_and_field_rows(&plan, &views, height));
        let Some((selector_masks, field_rows, row_predicate_rows)) = masks else {
            return Ok(None);
        };
        Ok(Some(KernelBatch {
            plan,
            height,
            views,
            _capsules: capsules,
            selector_masks,
            field_rows,
            row_predicate_rows,
            python_rows: Vec::new(),
            values: FastMap::default(),
            declined: Vec::new(),
        }))
    }

    /// Fields with rows and a column in this batch whose matcher is not decided yet (see
    /// `set_matcher`): the caller decides them before `match_fields`.
    fn undecided(&self, batch: &KernelBatch) -> Vec<usize> {
        (0..self.plan.fields.len())
            .filter(|&index| matches!(self.matchers[index], MatcherState::Unbuilt) && batch.field_live(index))
            .collect()
    }

    /// Second pass: every native field matcher over its rows, and the row predicates
    /// (exists, null, fieldref on ASCII values). Returns Python's share, ``(fields,
    /// row_predicates, declined)``:
    /// - ``[(field, rows)]``: fields whose matcher is Python's or still undecided;
    /// - ``[(row predicate, rows)]``: fieldref rows with a non-ASCII value;
    /// - ``[(field, [(value, [row...])])]``: non-ASCII values native matchers handed back.
    ///
    /// ``rows``: True, or a mask of one byte per row.
    fn match_fields<'py>(
        &self,
        py: Python<'py>,
        batch: &mut KernelBatch,
    ) -> PyResult<PythonShare<'py>> {
        if !Arc::ptr_eq(&self.plan, &batch.plan) {
            return Err(PyValueError::new_err("the batch was started by another kernel"));
        }
        let mut guards = Vec::new();
        let mut native: Vec<(usize, MatcherPtr)> = Vec::new();
        let mut python_fields = Vec::new();
        for index in 0..self.plan.fields.len() {
            if !batch.field_live(index) {
                continue;
            }
            let rows = &batch.field_rows[index];
            match &self.matchers[index] {
                MatcherState::Native(matcher) => {
                    let mut guard = matcher.bind(py).try_borrow_mut()?;
                    native.push((index, MatcherPtr(&mut *guard as *mut FieldMatcher)));
                    guards.push(guard);
                }
                _ => python_fields.push((index, rows_to_py(py, rows, batch.height)?)),
            }
        }
        let state: &mut KernelBatch = batch;
        py.detach(|| state.run_native(native));
        drop(guards);
        let mut python_rows = Vec::new();
        for (index, rows) in std::mem::take(&mut batch.python_rows) {
            python_rows.push((index, rows_to_py(py, &rows, batch.height)?));
        }
        Ok((python_fields, python_rows, std::mem::take(&mut batch.declined)))
    }
}

#[pymethods]
impl KernelBatch {
    /// Selector masks for Python's keyword search: False, True or one byte per row.
    fn selector_masks<'py>(&self, py: Python<'py>, selectors: Vec<usize>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        selectors
            .into_iter()
            .map(|s| {
                let mask = self.selector_masks.get(s).ok_or_else(|| PyValueError::new_err("no such selector"))?;
                rows_to_py(py, mask, self.height)
            })
            .collect()
    }

    /// Python's masks (one byte per row; None: every row), ORed into the predicates' masks.
    fn add_masks(&mut self, masks: Vec<(u32, Option<Vec<u8>>)>) -> PyResult<()> {
        for (pid, bools) in masks {
            let mask = match bools {
                None => Mask::True,
                Some(bools) if bools.len() == self.height => Mask::from_bools(&bools),
                Some(_) => return Err(PyValueError::new_err("a mask's length differs from the batch's")),
            };
            self.merge(pid, mask);
        }
        Ok(())
    }

    /// Rows Python's matcher found for values handed back, ORed into the predicates' masks.
    fn add_rows(&mut self, rows: Vec<(u32, Vec<usize>)>) -> PyResult<()> {
        for (pid, rows) in rows {
            if rows.iter().any(|&r| r >= self.height) {
                return Err(PyValueError::new_err("a row is beyond the batch"));
            }
            let mask = Mask::from_rows(&rows, self.height);
            self.merge(pid, mask);
        }
        Ok(())
    }

    /// Last pass: the rule trees. ``[(rule index, rows as little-endian i64 bytes)]``.
    fn finish<'py>(&mut self, py: Python<'py>) -> Vec<(u32, Bound<'py, PyBytes>)> {
        let hits = py.detach(|| self.trees());
        hits.into_iter()
            .map(|(rule, rows)| {
                let bytes: Vec<u8> = rows.iter().flat_map(|&r| (r as i64).to_le_bytes()).collect();
                (rule, PyBytes::new(py, &bytes))
            })
            .collect()
    }
}

impl KernelBatch {
    /// The field has rows that matter and (keywords aside) a column with a value.
    fn field_live(&self, index: usize) -> bool {
        let present = self.plan.fields[index].slot.is_none_or(|slot| self.views[slot].is_some());
        present && !self.field_rows[index].is_false()
    }

    fn merge(&mut self, pid: u32, mask: Mask) {
        if mask.is_false() {
            return;
        }
        let merged = match self.values.remove(&pid) {
            Some(previous) => previous.or(&mask),
            None => mask,
        };
        self.values.insert(pid, merged);
    }

    fn run_native(&mut self, matchers: Vec<(usize, MatcherPtr)>) {
        let plan = Arc::clone(&self.plan);
        for (index, pointer) in matchers {
            let field = &plan.fields[index];
            let Some(view) = field.slot.and_then(|slot| self.views[slot].as_ref()) else { continue };
            let rows = &self.field_rows[index];
            let positions = match rows {
                Mask::True => None,
                other => Some(other.rows(self.height)),
            };
            // SAFETY: see MatcherPtr; no other reference to this matcher exists meanwhile.
            let matcher = unsafe { &mut *pointer.0 };
            let result = matcher.compute(view, positions.as_deref());
            for (pid, bools) in result.by_pid {
                if field.wanted.binary_search(&pid).is_ok() {
                    let mask = Mask::from_bools(&bools);
                    self.merge(pid, mask);
                }
            }
            if !result.declined.is_empty() {
                self.declined.push((index, result.declined));
            }
        }
        for (index, predicate) in plan.row_predicates.iter().enumerate() {
            if self.row_predicate_rows[index].is_false() {
                continue;
            }
            let view = predicate.slot.and_then(|slot| self.views[slot].as_ref());
            if predicate.kind == ROW_FIELDREF {
                let other = predicate.other.and_then(|slot| self.views[slot].as_ref());
                let (Some(view), Some(other)) = (view, other) else { continue };  // a column absent: false
                let rows = self.row_predicate_rows[index].rows(self.height);
                let (mask, python) = fieldref(view, other, predicate.op, &rows, self.height);
                if !python.is_false() {
                    self.python_rows.push((index, python));
                }
                self.merge(predicate.pid, mask);
                continue;
            }
            let valid = match view {
                None => Mask::False,
                Some(view) => validity(view),
            };
            let mask = if predicate.kind == ROW_EXISTS { valid } else { valid.not(self.height) };
            self.merge(predicate.pid, mask.folded());
        }
    }

    /// Mirrors BatchEvaluator.evaluate after the predicate masks: the variants a live
    /// predicate (or none at all) can make true, in plan order; each rule's rows united.
    fn trees(&self) -> Vec<(u32, Vec<usize>)> {
        let plan = &self.plan;
        let mut touched: Vec<u32> = plan.true_when_all_false.clone();
        for pid in self.values.keys() {
            if let Some(indices) = plan.variants_of.get(pid) {
                touched.extend_from_slice(indices);
            }
        }
        touched.sort_unstable();
        touched.dedup();
        let live = |pid: &u32| self.values.contains_key(pid);
        let mut order: Vec<u32> = Vec::new();
        let mut by_rule: FastMap<u32, Mask> = FastMap::default();
        for index in touched {
            let variant = &plan.variants[index as usize];
            let selector = &self.selector_masks[variant.selector as usize];
            if selector.is_false() || variant.clauses.iter().any(|clause| !clause.iter().any(live)) {
                continue;
            }
            let mask = if !variant.predicates.iter().any(live) {
                if variant.when_all_false { selector.clone() } else { Mask::False }
            } else {
                variant.tree.evaluate(&self.values, self.height).and(selector)
            };
            let mask = mask.folded();
            if mask.is_false() {
                continue;
            }
            match by_rule.remove(&variant.rule) {
                Some(previous) => {
                    by_rule.insert(variant.rule, previous.or(&mask));
                }
                None => {
                    order.push(variant.rule);
                    by_rule.insert(variant.rule, mask);
                }
            }
        }
        order.into_iter().map(|rule| (rule, by_rule[&rule].rows(self.height))).collect()
    }
}

fn rows_to_py<'py>(py: Python<'py>, mask: &Mask, height: usize) -> PyResult<Bound<'py, PyAny>> {
    Ok(match mask {
        Mask::False => false.into_pyobject(py)?.to_owned().into_any(),
        Mask::True => true.into_pyobject(py)?.to_owned().into_any(),
        Mask::Bits(_) => PyByteArray::new(py, &mask.to_bytes(height)).into_any(),
    })
}

/// Mirrors the fieldref branch of `BatchEvaluator._row_predicate` on `rows`: both values
/// lowercased, then equal / startswith / endswith; a null on either side is false. Rows
/// with a non-ASCII value come back as the second mask, for Python.
fn fieldref(view: &StringArrayView, other: &StringArrayView, op: u8, rows: &[usize], height: usize) -> (Mask, Mask) {
    let mut hit = Vec::new();
    let mut python = Vec::new();
    for &row in rows {
        let (Some(left), Some(right)) = (view.value(row), other.value(row)) else { continue };
        if !left.is_ascii() || !right.is_ascii() {
            python.push(row);
            continue;
        }
        let holds = match op {
            REF_STARTSWITH => left.len() >= right.len() && left[..right.len()].eq_ignore_ascii_case(right),
            REF_ENDSWITH => left.len() >= right.len() && left[left.len() - right.len()..].eq_ignore_ascii_case(right),
            _ => left.eq_ignore_ascii_case(right),
        };
        if holds {
            hit.push(row);
        }
    }
    (Mask::from_rows(&hit, height), Mask::from_rows(&python, height))
}

fn validity(view: &StringArrayView) -> Mask {
    let height = view.len();
    let mut words = vec![0u64; height.div_ceil(64)];
    let mut all = true;
    for row in 0..height {
        if view.value(row).is_some() {
            words[row / 64] |= 1 << (row % 64);
        } else {
            all = false;
        }
    }
    if all { Mask::True } else { Mask::Bits(words) }
}

/// Each in-test's mask via the column's distinct values (a handful per batch for Channel
/// and EventID); None when a folded test's column holds a non-ASCII value.
fn in_test_masks(plan: &Plan, views: &[Option<StringArrayView>], height: usize) -> Option<Vec<Mask>> {
    let mut encoded: FastMap<usize, (Vec<u32>, Vec<&[u8]>)> = FastMap::default();
    let mut out = Vec::with_capacity(plan.in_tests.len());
    for test in &plan.in_tests {
        let Some(view) = views[test.slot].as_ref() else {
            out.push(Mask::False);
            continue;
        };
        let (codes, distinct) = encoded.entry(test.slot).or_insert_with(|| encode(view));
        if test.folded && distinct.iter().any(|v| !v.is_ascii()) {
            return None;
        }
        let hit: Vec<bool> = distinct
            .iter()
            .map(|value| {
                let lowered;
                let value: &[u8] = if test.folded && value.iter().any(u8::is_ascii_uppercase) {
                    lowered = value.to_ascii_lowercase();
                    &lowered
                } else {
                    value
                };
                test.values.iter().any(|wanted| wanted.as_slice() == value)
            })
            .collect();
        if !hit.iter().any(|h| *h) {
            out.push(Mask::False);
            continue;
        }
        let mut words = vec![0u64; height.div_ceil(64)];
        for (row, &code) in codes.iter().enumerate() {
            if code != u32::MAX && hit[code as usize] {
                words[row / 64] |= 1 << (row % 64);
            }
        }
        out.push(Mask::Bits(words).folded());
    }
    Some(out)
}

/// Row codes into the distinct values (u32::MAX: null).
fn encode(view: &StringArrayView) -> (Vec<u32>, Vec<&[u8]>) {
    let mut index: FastMap<&[u8], u32> = FastMap::default();
    let mut distinct = Vec::new();
    let codes = (0..view.len())
        .map(|row| match view.value(row) {
            None => u32::MAX,
            Some(value) => *index.entry(value).or_insert_with(|| {
                distinct.push(value);
                (distinct.len() - 1) as u32
            }),
        })
        .collect();
    (codes, distinct)
}

type RowMasks = (Vec<Mask>, Vec<Mask>, Vec<Mask>);

fn selector_and_field_rows(plan: &Plan, views: &[Option<StringArrayView>], height: usize) -> Option<RowMasks> {
    let tests = in_test_masks(plan, views, height)?;
    let selector_masks: Vec<Mask> = plan
        .selectors
        .iter()
        .map(|ands| ands.iter().fold(Mask::True, |mask, &t| mask.and(&tests[t])).folded())
        .collect();
    let union = |selectors: &[u32]| {
        let mut mask = Mask::False;
        for &s in selectors {
            mask = mask.or(&selector_masks[s as usize]);
            if matches!(mask, Mask::True) {
                break;
            }
        }
        mask
    };
    let field_rows = plan.fields.iter().map(|f| union(&f.selectors)).collect();
    let row_predicate_rows = plan.row_predicates.iter().map(|r| union(&r.selectors)).collect();
    Some((selector_masks, field_rows, row_predicate_rows))
}
